//! Configuration: one TOML file, overridable by `CALLPARK_*` environment variables.
//!
//! Loading has two steps. The `config` crate merges the file and the environment and
//! deserializes it (its errors carry the file and, for syntax errors, the line). Then
//! `Config::validate` checks bounds and the orbit table; each error names the key and, by
//! looking the key up in the file's own text, its line.

mod locate;
mod validate;

// `callpark setup` names the line of a [[pbx]] key in its errors, as validation does.
pub(crate) use locate::line_of;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::orbit::OrbitTable;
use crate::park::{Destination, OnBusyOrbit, PolicySet};

/// Accepted bounds, with Lync's meaning.
pub(crate) const PICKUP_TIMEOUT_MIN: Duration = Duration::from_secs(10);
pub(crate) const PICKUP_TIMEOUT_MAX: Duration = Duration::from_secs(600);
pub(crate) const ATTEMPTS_MIN: u8 = 1;
pub(crate) const ATTEMPTS_MAX: u8 = 10;
pub(crate) const RING_TIME_MIN: Duration = Duration::from_secs(5);
pub(crate) const RING_TIME_MAX: Duration = Duration::from_secs(300);
/// `page_repeat`: repeats after the first page.
pub(crate) const PAGE_REPEAT_MAX: u8 = 5;
/// `page_interval` bounds.
pub(crate) const PAGE_INTERVAL_MIN: Duration = Duration::from_secs(5);
pub(crate) const PAGE_INTERVAL_MAX: Duration = Duration::from_secs(300);

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub service: ServiceConfig,
    #[serde(default)]
    pub park: ParkConfig<String>,
    #[serde(default)]
    pub policy: Vec<PolicyConfig>,
    #[serde(default)]
    pub pbx: Vec<PbxConfig>,
    #[serde(default)]
    pub orbit_range: Vec<OrbitRangeConfig>,
    #[serde(default)]
    pub lot: Vec<LotConfig>,
    /// The admin HTTP API; off when absent.
    #[serde(default)]
    pub api: Option<ApiConfig>,
}

/// `[api]`: the admin HTTP API, event stream and metrics of `callpark run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on; loopback unless you mean it.
    #[serde(default = "default_api_listen")]
    pub listen: std::net::SocketAddr,
    /// Environment variable holding the bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the bearer token (its first line).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// URLs every log entry is POSTed to as JSON.
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// How long one webhook POST may take.
    #[serde(default = "default_webhook_timeout", with = "humantime_serde")]
    pub webhook_timeout: Duration,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_api_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 8089))
}

impl ApiConfig {
    /// The bearer token, from the file or the named environment variable.
    pub fn token(&self) -> Result<String, TokenError> {
        let token = match (&self.token_env, &self.token_file) {
            (Some(_), Some(_)) => return Err(TokenError::Both),
            (Some(var), None) => {
                std::env::var(var).map_err(|_| TokenError::VarNotSet { var: var.clone() })?
            }
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|source| TokenError::Read {
                    file: f.clone(),
                    source,
                })?
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
            (None, None) => return Err(TokenError::Missing),
        };
        let token = token.trim().to_string();
        if token.len() < 16 {
            return Err(TokenError::TooShort);
        }
        Ok(token)
    }
}

/// Why the API's bearer token cannot be had ([`ApiConfig::token`]).
#[derive(Debug, Error)]
pub enum TokenError {
    #[error("set either token_env or token_file, not both")]
    Both,
    #[error("environment variable `{var}` (token_env) is not set")]
    VarNotSet { var: String },
    #[error("cannot read token_file {}: {source}", .file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("set token_env or token_file: the API needs a bearer token")]
    Missing,
    #[error("the bearer token is shorter than 16 characters")]
    TooShort,
}

/// `[service]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Where the SQLite store and custom music-on-hold files live.
    pub data_dir: PathBuf,
    /// The store: an SQLite file (defaults to `<data_dir>/callpark.db`), or a PostgreSQL
    /// database as a `postgres://` (or `postgresql://`) URL.
    pub database: Option<String>,
    /// `tracing` filter, e.g. `info` or `callpark=debug`.
    pub log: String,
    /// This node's name among the nodes sharing one PostgreSQL store (`"node-a"`); the
    /// machine's host name when unset. Each pool is driven by the node holding its lease.
    pub node: Option<String>,
    /// How long event-log entries are kept (`"90d"`): older ones are pruned in the background.
    /// Text here, checked and parsed by `Config::validate` so that a bad value is an error
    /// naming `service.keep_log`; the parsed value is [`Config::keep_log`].
    pub keep_log: String,
}

/// How long the event log is kept when `[service] keep_log` is not set.
pub(crate) const KEEP_LOG_DEFAULT: &str = "90d";
/// The shortest `keep_log`: a resuming console or webhook needs the last minutes at least.
pub(crate) const KEEP_LOG_MIN: Duration = Duration::from_secs(3600);

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            data_dir: PathBuf::from("data"),
            database: None,
            node: None,
            log: "info".into(),
            keep_log: KEEP_LOG_DEFAULT.into(),
        }
    }
}

/// `[park]`: Lync's call park settings (Set-CsCpsConfiguration).
///
/// `D` is what `on_timeout` holds: the file gives text (`RawConfig`); validation parses it
/// once, so every user of a [`Config`] gets the [`Destination`] and none parses it again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParkConfig<D = Destination> {
    /// CallPickupTimeoutThreshold.
    #[serde(with = "humantime_serde")]
    pub pickup_timeout: Duration,
    /// MaxCallPickupAttempts.
    pub max_pickup_attempts: u8,
    /// How long each ringback to the parker rings.
    #[serde(with = "humantime_serde")]
    pub ringback_ring_time: Duration,
    /// OnTimeoutURI.
    pub on_timeout: Option<D>,
    /// EnableMusicOnHold.
    pub music_on_hold: bool,
    /// PBX music-on-hold class.
    pub music_on_hold_class: Option<String>,
    /// A custom audio file, kept in the data directory with its checksum.
    pub music_on_hold_file: Option<PathBuf>,
    /// What the parker dials (or transfers to) to park.
    pub park_code: String,
    /// What a ringback or fallback shows before the orbit: `Parked 701: Carol`.
    pub caller_id_prefix: String,
    /// A call transferred to an orbit in use: `return` (to the transferor) or `next_free`.
    pub on_busy_orbit: OnBusyOrbit,
    /// Park and page: where a parked call is announced ("call parked on 701"); none when unset.
    pub page: Option<D>,
    /// How many times the page is repeated after the first, 0 to 5.
    pub page_repeat: u8,
    /// Time between pages, 5 s to 300 s.
    #[serde(with = "humantime_serde")]
    pub page_interval: Duration,
}

impl<D> Default for ParkConfig<D> {
    fn default() -> Self {
        ParkConfig {
            pickup_timeout: Duration::from_secs(90),
            max_pickup_attempts: 1,
            ringback_ring_time: Duration::from_secs(20),
            on_timeout: None,
            music_on_hold: true,
            music_on_hold_class: None,
            music_on_hold_file: None,
            park_code: "park".into(),
            caller_id_prefix: "Parked".into(),
            on_busy_orbit: OnBusyOrbit::Return,
            page: None,
            page_repeat: 0,
            page_interval: Duration::from_secs(30),
        }
    }
}

/// `[[policy]]`: a voice policy; park is off for a user no enabling policy covers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyConfig {
    pub name: String,
    #[serde(default)]
    pub enable_call_park: bool,
    /// Exact user ids: caller number, endpoint (`PJSIP/alice`) or SIP URI.
    #[serde(default)]
    pub users: Vec<String>,
    /// Regular expressions matched against the whole user id.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Lots its users may park into (`general`: the ranges naming no lot); all when unset.
    #[serde(default)]
    pub lots: Option<Vec<String>>,
    /// Where a plain park of its users goes (the park code without a lot).
    #[serde(default)]
    pub default_lot: Option<String>,
}

/// `[[lot]]`: a parking lot, the orbit ranges naming it, with its own park codes and any of
/// the `[park]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LotConfig {
    pub name: String,
    /// What parks into this lot; `<park_code>-<name>` when unset.
    #[serde(default)]
    pub park_codes: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde::option")]
    pub pickup_timeout: Option<Duration>,
    #[serde(default)]
    pub max_pickup_attempts: Option<u8>,
    #[serde(default, with = "humantime_serde::option")]
    pub ringback_ring_time: Option<Duration>,
    /// `"none"`: no fallback for this lot even when `[park]` has one.
    #[serde(default)]
    pub on_timeout: Option<String>,
    #[serde(default)]
    pub music_on_hold: Option<bool>,
    #[serde(default)]
    pub music_on_hold_class: Option<String>,
    #[serde(default)]
    pub music_on_hold_file: Option<PathBuf>,
    #[serde(default)]
    pub caller_id_prefix: Option<String>,
    #[serde(default)]
    pub on_busy_orbit: Option<OnBusyOrbit>,
    /// `"none"`: no page for this lot even when `[park]` has one.
    #[serde(default)]
    pub page: Option<String>,
    #[serde(default)]
    pub page_repeat: Option<u8>,
    #[serde(default, with = "humantime_serde::option")]
    pub page_interval: Option<Duration>,
}

/// A validated lot: its park codes and its whole settings (`[park]` with its overrides).
#[derive(Debug, Clone)]
pub struct Lot {
    pub name: String,
    pub park_codes: Vec<String>,
    pub park: ParkConfig,
}

/// Which PBX a `[[pbx]]` entry drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PbxKind {
    Asterisk,
    Freeswitch,
}

/// `[[pbx]]`: one PBX connection; its name is the pool that owns orbit ranges.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbxConfig {
    pub name: String,
    pub kind: PbxKind,
    /// ARI base URL (`http://127.0.0.1:8088`) or ESL address (`127.0.0.1:8021`).
    pub address: String,
    #[serde(default)]
    pub username: Option<String>,
    /// The secret itself; prefer `password_env`.
    #[serde(default)]
    pub password: Option<String>,
    /// Name of an environment variable holding the secret.
    #[serde(default)]
    pub password_env: Option<String>,
    /// With several nodes on one PostgreSQL store: the node that drives this pool whenever it
    /// is alive (the pool returns to it after a takeover).
    #[serde(default)]
    pub prefer: Option<String>,
    /// Stasis application name (Asterisk).
    #[serde(default = "default_app")]
    pub app: String,
    /// Dial string other pools use to reach this pool's orbits; `{orbit}` is replaced.
    #[serde(default)]
    pub reach: Option<Reach>,
    /// Through what `sip:` URIs (on_timeout) are dialled: Asterisk's PJSIP endpoint, or
    /// FreeSWITCH's sofia profile.
    #[serde(default)]
    pub sip_endpoint: Option<String>,
    /// FreeSWITCH: the domain of busy-lamp presence and SIP MESSAGEs (`701@<domain>`);
    /// the host of `address` when unset.
    #[serde(default)]
    pub domain: Option<String>,
    /// FreeSWITCH: where callpark listens for the include's outbound event-socket connection
    /// (its `socket` application, `127.0.0.1:8041`), on which a dialled orbit reaches callpark
    /// at once and is let go the moment its bridge is set up: a retrieve as quick as
    /// mod_valet_parking's. Unset: retrieves wait in `park` for callpark, up to 20 ms longer.
    #[serde(default)]
    pub outbound: Option<String>,
}

/// How other pools dial this pool's orbits: one dial string, or one per kind of PBX that
/// dials (an Asterisk dial string is no use to FreeSWITCH).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Reach {
    Any(String),
    ByKind(ReachByKind),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReachByKind {
    #[serde(default)]
    pub asterisk: Option<String>,
    #[serde(default)]
    pub freeswitch: Option<String>,
}

fn default_app() -> String {
    "callpark".into()
}

impl PbxConfig {
    /// The dial string a PBX of `kind` uses to reach this pool's orbits.
    pub(crate) fn reach_from(&self, kind: PbxKind) -> Option<&str> {
        match self.reach.as_ref()? {
            Reach::Any(d) => Some(d),
            Reach::ByKind(k) => match kind {
                PbxKind::Asterisk => k.asterisk.as_deref(),
                PbxKind::Freeswitch => k.freeswitch.as_deref(),
            },
        }
    }

    /// The secret, from the file or the named environment variable.
    pub fn secret(&self) -> Result<Option<String>, String> {
        match (&self.password, &self.password_env) {
            (Some(_), Some(_)) => Err("set either password or password_env, not both".into()),
            (Some(p), None) => Ok(Some(p.clone())),
            (None, Some(var)) => std::env::var(var)
                .map(Some)
                .map_err(|_| format!("environment variable `{var}` (password_env) is not set")),
            (None, None) => Ok(None),
        }
    }
}

/// `[[orbit_range]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrbitRangeConfig {
    pub name: String,
    pub first: String,
    pub last: String,
    pub pool: String,
    #[serde(default)]
    pub lot: Option<String>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: Option<PathBuf>,
    pub service: ServiceConfig,
    pub park: ParkConfig,
    pub policies: PolicySet,
    pub pbx: Vec<PbxConfig>,
    pub orbits: OrbitTable,
    /// The named lots, in file order.
    pub lots: Vec<Lot>,
    pub api: Option<ApiConfig>,
    /// `[service] keep_log`, parsed.
    pub keep_log: Duration,
}

/// What a `[[pbx]]` name may be: it is the pool, written into the store, log lines, metric
/// labels and dial plans, so only characters that need no quoting anywhere.
pub(crate) const POOL_NAME: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$";

/// A configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the configuration: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// Syntax and type errors, as the `config` crate words them (file and line included when
    /// it knows them).
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{0}")]
    Invalid(Invalid),
}

/// A value that breaks a rule.
#[derive(Debug, Clone)]
pub struct Invalid {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}: {}", self.file, l, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.key, self.message),
        }
    }
}

/// The `CALLPARK_SECTION__KEY` variables. Variables without a double underscore
/// (`CALLPARK_CONFIG`, `CALLPARK_LOG`, secrets named by `password_env`) are not overrides.
fn overrides() -> config::Map<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("CALLPARK_") && k["CALLPARK_".len()..].contains("__"))
        .collect()
}

impl Config {
    /// Loads `path` (TOML) with `CALLPARK_*` overrides (`CALLPARK_PARK__PICKUP_TIMEOUT=2m`:
    /// sections and keys joined by a double underscore).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Config::build(&text, &path.display().to_string(), overrides())?;
        cfg.file = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses TOML text without environment overrides (tests).
    pub fn from_toml(text: &str, file: &str) -> Result<Config, ConfigError> {
        Config::build(text, file, config::Map::new())
    }

    /// The one way from text to a validated configuration, so that a file loaded by the service
    /// and text given by a test go through the same merge, deserialization and rules.
    fn build(
        text: &str,
        file: &str,
        overrides: config::Map<String, String>,
    ) -> Result<Config, ConfigError> {
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("CALLPARK")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(overrides)),
            )
            .build()
            .and_then(|c| c.try_deserialize::<RawConfig>())
            .map_err(|e| ConfigError::Parse {
                file: file.to_string(),
                message: e.to_string(),
            })?;
        Config::validate(raw, file, Some(text))
    }

    /// The secrets `callpark run` needs (each PBX's, the API's token): an error naming the key
    /// and the variable for each one that cannot be had. Commands that never talk to a PBX or
    /// serve the API do not ask.
    pub fn check_secrets(&self) -> Vec<Invalid> {
        let file = self
            .file
            .as_ref()
            .map_or_else(|| "-".to_string(), |f| f.display().to_string());
        let api = self
            .api
            .as_ref()
            .and_then(|a| a.token().err())
            .map(|e| Invalid {
                file: file.clone(),
                line: None,
                key: "api.token_env".into(),
                message: e.to_string(),
            });
        self.pbx
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let message = match p.secret() {
                    Err(m) => m,
                    Ok(None) => "password or password_env is missing".into(),
                    Ok(Some(_)) => return None,
                };
                Some(Invalid {
                    file: file.clone(),
                    line: None,
                    key: format!("pbx[{i}].password"),
                    message,
                })
            })
            .chain(api)
            .collect()
    }

    /// The settings of a lot by name (`None` or an unknown name: `[park]`).
    pub(crate) fn lot_park(&self, lot: Option<&str>) -> &ParkConfig {
        lot.and_then(|l| self.lot(l))
            .map_or(&self.park, |l| &l.park)
    }

    /// A lot by name.
    pub fn lot(&self, name: &str) -> Option<&Lot> {
        self.lots.iter().find(|l| l.name == name)
    }

    /// The store: `[service] database`, or the SQLite file in the data directory.
    /// This node's name: `[service] node`, or the machine's host name.
    pub(crate) fn node(&self) -> String {
        self.service.node.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "callpark".into())
        })
    }

    pub(crate) fn database(&self) -> crate::store::Location {
        match &self.service.database {
            Some(d) => crate::store::Location::from_setting(d),
            None => crate::store::Location::Sqlite(self.service.data_dir.join("callpark.db")),
        }
    }
}
