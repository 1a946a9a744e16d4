//! `callpark migrate --from sqlite:PATH --to postgres://…`: a site's store moved from its SQLite
//! file into PostgreSQL. Needs no configuration: both ends are on the command line.

use std::path::Path;
use std::process::ExitCode;

use crate::store::{Location, PgUrl, Store};

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The SQLite store to copy: `sqlite:PATH` (or just PATH).
    #[arg(long)]
    pub from: String,
    /// The PostgreSQL database to copy into, which must exist and hold no calls or log yet:
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (the password may come from
    /// PGPASSWORD or ~/.pgpass instead).
    #[arg(long)]
    pub to: String,
}

/// Exit codes: 0 copied, 1 not copied (the target not empty, a database error), 2 bad input.
pub async fn run(args: &MigrateArgs) -> ExitCode {
    let from = match Location::from_setting(args.from.strip_prefix("sqlite:").unwrap_or(&args.from))
    {
        Location::Sqlite(path) => path,
        Location::Postgres(_) => {
            eprintln!(
                "error: --from names an SQLite store (sqlite:PATH); {} is PostgreSQL",
                PgUrl::new(&args.from).map_or_else(String::new, |u| u.to_string())
            );
            return ExitCode::from(2);
        }
    };
    let Some(to) = PgUrl::new(&args.to) else {
        eprintln!(
            "error: --to names a PostgreSQL database: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
        );
        return ExitCode::from(2);
    };
    // Opening a missing SQLite file would make an empty store, and copy nothing.
    if !from.is_file() {
        eprintln!(
            "error: no SQLite store at {}: name the `database` file of the site (by default \
             <data_dir>/callpark.db)",
            from.display()
        );
        return ExitCode::from(2);
    }
    match copy(&from, &to).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn copy(from: &Path, to: &PgUrl) -> Result<(), crate::store::StoreError> {
    let source = Store::open(from).await?;
    let target = Store::open_postgres(to).await?;
    let copied = source.copy_into(&target, to).await;
    source.close().await;
    target.close().await;
    let c = copied?;
    println!(
        "copied {} to {to}: {} parked calls, {} log entries, {} metric counters, {} \
         time-to-retrieve buckets, {} music file records, {} orbit ranges",
        from.display(),
        c.calls,
        c.log_entries,
        c.counters,
        c.wait_buckets,
        c.media,
        c.orbit_ranges
    );
    Ok(())
}
