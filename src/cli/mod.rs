//! The `callpark` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, ParkConfig};
use crate::park::GENERAL_LOT;
use crate::service::{self, media, now_ms};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "callpark",
    version,
    about = "Lync Server 2013 style call park for Asterisk and FreeSWITCH"
)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "CALLPARK_CONFIG",
        default_value = "/etc/callpark/callpark.toml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the service.
    Run,
    /// Check the configuration and the orbit table; exit 2 when something is wrong.
    CheckConfig,
    /// The orbit table with used and free orbits per range.
    Orbits,
    /// The calls parked now, read from the store.
    Parked {
        /// `table` for people, `json` for programs (the API's shape).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Retrieve a parked call to an extension (`exten:201@phones`), a `sip:` URI or a dial
    /// string, through the running service's admin API (`[api]`).
    Retrieve {
        orbit: String,
        #[arg(long)]
        to: String,
    },
    /// The event stream of the running service (its admin API), one line per event, until
    /// interrupted.
    Watch,
    /// The newest entries of the event log.
    Log {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Copy the database and the custom music-on-hold files into DIR, checksums verified.
    Backup { dir: PathBuf },
    /// Print the dialplan include file for a PBX.
    Dialplan {
        #[command(subcommand)]
        kind: DialplanKind,
    },
    /// Check that dial-plan normalization leaves every orbit untouched (no service needed).
    Lint(lint::LintArgs),
    /// For each `[[pbx]]`: whether a park would work end to end, and what to change where it
    /// would not; exit 0 when it would on every pool, 1 when not.
    Doctor(doctor::DoctorArgs),
    /// Configure a running PBX for callpark (the include file, the dialplan, the connection
    /// settings), after showing the changes and asking; then reload it and run the doctor.
    /// Exit 0 when the doctor passes, 1 when not (or nothing was applied), 2 on bad input.
    Setup {
        #[command(subcommand)]
        pbx: setup::SetupCmd,
    },
    /// Write a configuration from another system's call park (no service needed).
    Import {
        #[command(subcommand)]
        from: import::ImportCmd,
    },
    /// Copy an SQLite store (parked calls, event log, metric counters, music files' records,
    /// orbit table) into an empty PostgreSQL database, in one transaction (no configuration
    /// needed). Exit 0 when copied, 1 when not, 2 on bad input.
    Migrate(migrate::MigrateArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum DialplanKind {
    /// `callpark.conf` for Asterisk's extensions.conf.
    Asterisk {
        /// The pool (`[[pbx]]` name) the file is for; the first Asterisk pool by default.
        #[arg(long)]
        pool: Option<String>,
    },
    /// `callpark.xml` to include in a FreeSWITCH dialplan context.
    Freeswitch {
        /// The pool (`[[pbx]]` name) the file is for; the first FreeSWITCH pool by default.
        #[arg(long)]
        pool: Option<String>,
    },
}

/// The `tracing` filter: `CALLPARK_LOG` (when set and not empty) wins, so one run can log more
/// without editing the file; then `[service] log` of the configuration, for commands that load
/// one; then `info`.
pub fn log_filter(env: Option<&str>, service_log: Option<&str>) -> String {
    env.filter(|f| !f.trim().is_empty())
        .or(service_log)
        .unwrap_or("info")
        .to_string()
}

fn init_tracing(service_log: Option<&str>) {
    let env = std::env::var("CALLPARK_LOG").ok();
    let filter = log_filter(env.as_deref(), service_log);
    // try_init: a second call (a test driving `main` twice) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in log files or journald.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Exit codes: 0 fine, 1 failure at run time, 2 bad configuration or input.
pub async fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    // The lint runs standalone: with --orbits it needs no configuration file at all.
    if let Cmd::Lint(args) = &cli.command {
        init_tracing(None);
        return Ok(lint::run(args, &cli.config));
    }
    // So does the import: it writes a configuration rather than reading one.
    if let Cmd::Import { from } = &cli.command {
        init_tracing(None);
        return Ok(import::run(from));
    }
    // And the migration: both stores are on its command line.
    if let Cmd::Migrate(args) = &cli.command {
        init_tracing(None);
        return Ok(migrate::run(args).await);
    }
    let cfg = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, ConfigError::Read { .. }) {
                eprintln!(
                    "hint: pass --config FILE (or set CALLPARK_CONFIG); contrib/callpark.example.toml is a start"
                );
            }
            return Ok(ExitCode::from(2));
        }
    };
    init_tracing(Some(&cfg.service.log));
    tracing::debug!(file = %cli.config.display(), "configuration loaded");
    match cli.command {
        Cmd::CheckConfig => {
            check_config(&cfg);
            // It may run where the secrets are not (a build host, a review): a warning.
            for w in cfg.check_secrets() {
                println!("warning: {w} (`callpark run` needs it)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Orbits => orbits(&cfg).await,
        Cmd::Parked { format } => parked(&cfg, format).await,
        Cmd::Retrieve { orbit, to } => api_client::retrieve(&cfg, &orbit, &to).await,
        Cmd::Watch => api_client::watch(&cfg).await,
        Cmd::Log { limit } => {
            let store = Store::open_at(&cfg.database()).await?;
            for r in store.log(limit).await? {
                println!(
                    "{}  {:<8} {:<18} {:<10} {:<10} {:<24} {}",
                    fmt_ms(r.at),
                    r.pool,
                    r.kind,
                    r.orbit.unwrap_or_default(),
                    r.lot.unwrap_or_else(|| GENERAL_LOT.into()),
                    r.channel,
                    r.detail
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Backup { dir } => {
            let store = Store::open_at(&cfg.database()).await?;
            for p in media::backup(&store, &dir).await? {
                println!("{}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run => {
            let missing = cfg.check_secrets();
            if !missing.is_empty() {
                for m in &missing {
                    eprintln!("error: {m}");
                }
                return Ok(ExitCode::from(2));
            }
            crate::cli::run::run(cfg).await
        }
        Cmd::Doctor(args) => Ok(doctor::run(&cfg, &args).await),
        Cmd::Setup { pbx } => Ok(setup::run(&cfg, &pbx).await),
        Cmd::Lint(_) | Cmd::Import { .. } | Cmd::Migrate(_) => {
            unreachable!("dispatched before the configuration is loaded")
        }
        Cmd::Dialplan { kind } => {
            use crate::config::PbxKind;
            let (pool, want, generate): (_, _, fn(&Config, &str) -> String) = match kind {
                DialplanKind::Asterisk { pool } => (
                    pool,
                    PbxKind::Asterisk,
                    crate::pbx::asterisk::dialplan::generate,
                ),
                DialplanKind::Freeswitch { pool } => (
                    pool,
                    PbxKind::Freeswitch,
                    crate::pbx::freeswitch::dialplan::generate,
                ),
            };
            let pool = pool.or_else(|| {
                cfg.pbx
                    .iter()
                    .find(|p| p.kind == want)
                    .map(|p| p.name.clone())
            });
            let Some(pool) = pool.filter(|p| cfg.pbx.iter().any(|x| &x.name == p)) else {
                eprintln!("error: name a {want:?} pool with --pool (a [[pbx]] name)");
                return Ok(ExitCode::from(2));
            };
            print!("{}", generate(&cfg, &pool));
            Ok(ExitCode::SUCCESS)
        }
    }
}

mod api_client;
mod doctor;
pub mod import;
pub mod lint;
mod migrate;
mod run;
pub mod setup;

fn check_config(cfg: &Config) {
    let file = cfg.file.as_deref().unwrap_or(Path::new("-")).display();
    println!("{file}: OK");
    println!(
        "park: pickup_timeout {}, max_pickup_attempts {}, ringback_ring_time {}, on_timeout {}, music_on_hold {}",
        humantime::format_duration(cfg.park.pickup_timeout),
        cfg.park.max_pickup_attempts,
        humantime::format_duration(cfg.park.ringback_ring_time),
        cfg.park
            .on_timeout
            .as_ref()
            .map_or_else(|| "(none)".into(), ToString::to_string),
        if cfg.park.music_on_hold { "on" } else { "off" },
    );
    for p in &cfg.pbx {
        println!("pbx {}: {:?} at {}", p.name, p.kind, p.address);
    }
    for l in &cfg.lots {
        let p = &l.park;
        println!(
            "lot {}: park codes {}, pickup_timeout {}, max_pickup_attempts {}, ringback_ring_time {}, on_timeout {}, music_on_hold {}, on_busy_orbit {:?}",
            l.name,
            l.park_codes.join(" "),
            humantime::format_duration(p.pickup_timeout),
            p.max_pickup_attempts,
            humantime::format_duration(p.ringback_ring_time),
            p.on_timeout
                .as_ref()
                .map_or_else(|| "(none)".into(), ToString::to_string),
            if p.music_on_hold { "on" } else { "off" },
            p.on_busy_orbit,
        );
    }
    for r in cfg.orbits.ranges() {
        println!(
            "orbit_range {}: {} ({} orbits) pool {} lot {}",
            r.name,
            r.span,
            r.span.len(),
            r.pool,
            r.lot.as_deref().unwrap_or(GENERAL_LOT)
        );
    }
    if cfg.policies.rules().iter().all(|r| !r.enable_call_park) {
        println!("warning: no [[policy]] enables call park, so nobody can park");
    }
}

async fn orbits(cfg: &Config) -> anyhow::Result<ExitCode> {
    let store = Store::open_at(&cfg.database()).await?;
    let used: Vec<crate::orbit::Orbit> = store
        .used_per_orbit()
        .await?
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    println!(
        "{:<16} {:<10} {:<12} {:<22} {:>9} {:>9} {:>9}",
        "RANGE", "POOL", "LOT", "ORBITS", "SIZE", "USED", "FREE"
    );
    for r in cfg.orbits.ranges() {
        let n = used.iter().filter(|o| r.span.contains(**o)).count() as u64;
        println!(
            "{:<16} {:<10} {:<12} {:<22} {:>9} {:>9} {:>9}",
            r.name,
            r.pool,
            r.lot.as_deref().unwrap_or(GENERAL_LOT),
            r.span.to_string(),
            r.span.len(),
            n,
            r.span.len() - n
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn parked(cfg: &Config, format: Format) -> anyhow::Result<ExitCode> {
    let store = Store::open_at(&cfg.database()).await?;
    if format == Format::Json {
        let calls = store.parked(None).await?;
        let calls: Vec<crate::api::CallView> = calls
            .iter()
            .map(|(pool, c)| crate::api::call_json(cfg, pool, c))
            .collect();
        println!("{}", serde_json::to_string_pretty(&calls)?);
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    println!(
        "{:<10} {:<8} {:<12} {:<24} {:<20} {:<12} {:<8} {:>8}",
        "ORBIT", "POOL", "LOT", "CHANNEL", "CALLER", "STATE", "ATTEMPT", "NEXT IN"
    );
    for (pool, c) in store.parked(None).await? {
        println!(
            "{:<10} {:<8} {:<12} {:<24} {:<20} {:<12} {:<8} {:>8}",
            c.orbit.map(|o| o.to_string()).unwrap_or_else(|| "-".into()),
            pool,
            c.lot.as_deref().unwrap_or(GENERAL_LOT),
            c.channel.as_str(),
            format!("{} {}", c.caller.name, c.caller.number),
            c.state.name(),
            c.attempts,
            match c.deadline {
                crate::park::NO_DEADLINE => "-".to_string(),
                d => format!("{}s", ((d - now).max(0)) / 1000),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Reads the settings and the stored media a pool's core needs, for every lot.
pub(crate) async fn core_settings(
    cfg: &Config,
    store: &Store,
) -> anyhow::Result<service::CoreSettings> {
    // The general file keeps its media name from before lots; a lot's is named after it.
    let keep = |p: &ParkConfig, name: String| {
        let file = p.music_on_hold_file.clone().filter(|_| p.music_on_hold);
        async move {
            Ok::<_, anyhow::Error>(match file {
                Some(f) => Some(
                    media::keep_moh_file(store, &cfg.service.data_dir, &f, &name, now_ms())
                        .await?
                        .display()
                        .to_string(),
                ),
                None => None,
            })
        }
    };
    let general = service::settings_of(&cfg.park, keep(&cfg.park, "music_on_hold".into()).await?);
    let mut lots = std::collections::HashMap::new();
    for l in &cfg.lots {
        let file = keep(&l.park, format!("music_on_hold/{}", l.name)).await?;
        lots.insert(l.name.clone(), service::settings_of(&l.park, file));
    }
    Ok(service::CoreSettings { general, lots })
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn log_filter_prefers_the_environment_then_the_file() {
        assert_eq!(log_filter(Some("warn"), Some("debug")), "warn");
        assert_eq!(log_filter(None, Some("callpark=debug")), "callpark=debug");
        assert_eq!(log_filter(Some(""), Some("debug")), "debug");
        assert_eq!(log_filter(None, None), "info");
    }
}
