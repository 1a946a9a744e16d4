//! The store: parked calls with their absolute deadlines, the event log, the orbit table as
//! loaded, and custom music-on-hold files; in an embedded SQLite file (the default) or in
//! PostgreSQL (`[service] database = "postgres://…"`). Nothing outside this module knows which:
//! [`Store`] has one API, and each query is written once where both back ends take its SQL
//! (`$1` parameters, `ON CONFLICT`, `RETURNING`) and once per back end where they differ.
//!
//! SQLite: WAL with `synchronous = NORMAL`: a committed step survives a killed process (the
//! case that matters for a controller), at one fsync per checkpoint rather than per event.
//!
//! One file per part: where the store is (`location.rs`), opening the database and keeping
//! its file (`open.rs`), copying an SQLite store into PostgreSQL (`migrate.rs`), the atomic write
//! of a pool's step (`step.rs`), the parked calls (`calls.rs`), the event log and its pruning
//! (`event_log.rs`), the metrics' counters (`counters.rs`), the orbit table as loaded
//! (`orbit_table.rs`) and the media files (`media.rs`); the tests' fixtures in `tests.rs`.

mod calls;
mod counters;
mod event_log;
mod lease;
mod location;
mod media;
mod migrate;
mod open;
mod orbit_table;
mod step;
#[cfg(test)]
pub(crate) mod tests;

use std::path::PathBuf;

use sqlx::{PgPool, SqlitePool};
use thiserror::Error;

// `WAIT_INF` is named outside the store by the metrics' tests only.
pub(crate) use self::counters::WAIT_BUCKETS_MS;
#[cfg(test)]
pub(crate) use self::counters::WAIT_INF;
pub use self::counters::WaitBucket;
pub use self::event_log::LogRow;
pub use self::lease::{Lease, LeaseRow, REQUEST_TTL_MS};
pub use self::location::{Location, PgUrl};
pub use self::media::Media;
pub use self::migrate::Copied;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}; check that the directory exists and is writable")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("database {path}: migration failed: {source}")]
    Migrate {
        path: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(
        "PostgreSQL at {server} refused the connection: is it running, and does `database` name \
         the right host and port?"
    )]
    PgRefused { server: String },
    #[error(
        "PostgreSQL at {server} cannot be reached ({source}): check the host in `database` and \
         that this machine can reach it"
    )]
    PgUnreachable {
        server: String,
        source: std::io::Error,
    },
    #[error(
        "PostgreSQL at {server} did not answer within {secs} s: check the host and port in \
         `database` and any firewall between"
    )]
    PgTimeout { server: String, secs: u64 },
    #[error(
        "PostgreSQL at {server} did not let {user} in ({message}): check the user and password \
         in `database` and the server's pg_hba.conf"
    )]
    PgAuth {
        server: String,
        user: String,
        message: String,
    },
    #[error(
        "PostgreSQL at {server} has no database {database}: create it (`createdb -O USER \
         {database}`) or name another in `database`"
    )]
    PgNoDatabase { server: String, database: String },
    #[error(
        "{url} is not a PostgreSQL URL callpark can use ({source}): write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    )]
    PgUrl { url: PgUrl, source: sqlx::Error },
    #[error("{url}: {source}")]
    PgConnect { url: PgUrl, source: sqlx::Error },
    #[error("{url}: migration failed: {source}")]
    PgMigrate {
        url: PgUrl,
        source: sqlx::migrate::MigrateError,
    },
    #[error("{what} is for an SQLite store; the store is in PostgreSQL: {instead}")]
    NotSqlite {
        what: &'static str,
        instead: &'static str,
    },
    #[error(
        "{what} need a PostgreSQL store: set `[service] database = \"postgres://…\"` (an \
         SQLite store serves one node)"
    )]
    NotPostgresFor { what: &'static str },
    #[error(
        "pool {pool}: this node ({holder}) lost its lease (epoch {epoch}); another node drives \
         the pool now, so this write was refused"
    )]
    Fenced {
        pool: String,
        holder: String,
        epoch: i64,
    },
    #[error("`callpark migrate --to` copies into PostgreSQL: name a postgres:// URL")]
    NotPostgres,
    #[error(
        "{url} already holds {calls} parked calls and {entries} log entries (or metric counters): \
         `callpark migrate` copies into an empty store only; point --to at a new database"
    )]
    TargetNotEmpty {
        url: PgUrl,
        calls: i64,
        entries: i64,
    },
    #[error(
        "database: stored call {channel} cannot be read ({source}); was it written by a newer callpark?"
    )]
    Corrupt {
        channel: String,
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database: the {what} read as one list cannot be decoded ({source})")]
    List {
        what: &'static str,
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// The lease every write must still hold ([`Store::fenced`]); none for a single node.
    fence: Option<std::sync::Arc<Lease>>,
}

/// The pool of the back end the store runs on.
#[derive(Debug, Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on either back end (what [`Db`]'s `begin` gives).
enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// `$body` with `$c` bound to the pool (or transaction) of the back end `$v` holds: the body
/// is compiled once per back end, so a query whose SQL both take is written once, each arm
/// with its own driver's types. `$e` names the enum (`Db` or `Tx`).
macro_rules! on_db {
    ($e:ident, $v:expr, $c:ident => $body:expr) => {
        match $v {
            $e::Sqlite($c) => $body,
            $e::Postgres($c) => $body,
        }
    };
}
use on_db;

impl Db {
    async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }
}

impl Tx {
    async fn commit(self) -> Result<(), sqlx::Error> {
        on_db!(Tx, self, t => t.commit().await)
    }
}

/// A list read as one JSON array, decoded. SQLite's lists are read this way because sqlx hands
/// each row from the connection's thread to the caller through a channel, waking the caller's
/// thread again and again for a list of hundreds (the admin API's parked calls and event feed,
/// many times a second): one row is one wake-up. PostgreSQL's are too (`json_agg`), so that
/// one decoding serves both.
fn decode_list<T: serde::de::DeserializeOwned>(
    what: &'static str,
    json: &str,
) -> Result<Vec<T>, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::List { what, source })
}
