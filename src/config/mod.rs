//! Configuration: one TOML file, overridable by `CALLPARK_*` environment variables.
//!
//! Loading has two steps. The `config` crate merges the file and the environment and
//! deserializes it (its errors carry the file and, for syntax errors, the line). Then
//! [`Config::validate`] checks bounds and the orbit table; each error names the key and, by
//! looking the key up in the file's own text, its line.

mod locate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::orbit::{Orbit, OrbitRange, OrbitTable, Span, TableError};
use crate::park::{Destination, PolicyRule, PolicySet};

/// Accepted bounds, with Lync's meaning.
pub const PICKUP_TIMEOUT_MIN: Duration = Duration::from_secs(10);
pub const PICKUP_TIMEOUT_MAX: Duration = Duration::from_secs(600);
pub const ATTEMPTS_MIN: u8 = 1;
pub const ATTEMPTS_MAX: u8 = 10;
pub const RING_TIME_MIN: Duration = Duration::from_secs(5);
pub const RING_TIME_MAX: Duration = Duration::from_secs(300);

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
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
}

/// `[service]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Where the SQLite store and custom music-on-hold files live.
    pub data_dir: PathBuf,
    /// SQLite file; defaults to `<data_dir>/callpark.db`.
    pub database: Option<PathBuf>,
    /// `tracing` filter, e.g. `info` or `callpark=debug`.
    pub log: String,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            data_dir: PathBuf::from("data"),
            database: None,
            log: "info".into(),
        }
    }
}

/// `[park]`: Lync's call park settings (Set-CsCpsConfiguration).
///
/// `D` is what `on_timeout` holds: the file gives text ([`RawConfig`]); validation parses it
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
        }
    }
}

/// `[[policy]]`: a voice policy; park is off for a user no enabling policy covers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    #[serde(default)]
    pub enable_call_park: bool,
    /// Exact user ids: caller number, endpoint (`PJSIP/alice`) or SIP URI.
    #[serde(default)]
    pub users: Vec<String>,
    /// Regular expressions matched against the whole user id.
    #[serde(default)]
    pub patterns: Vec<String>,
}

/// Which PBX a `[[pbx]]` entry drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
    pub fn reach_from(&self, kind: PbxKind) -> Option<&str> {
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
pub struct OrbitRangeConfig {
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
}

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

    /// Checks every rule; `text` is the file's text, used to find the line of a key.
    pub fn validate(raw: RawConfig, file: &str, text: Option<&str>) -> Result<Config, ConfigError> {
        let bad = |key: String, message: String| {
            // A value from the environment has no line in the file: name the variable instead.
            let var = format!("CALLPARK_{}", key.replace('.', "__").to_uppercase());
            if std::env::var_os(&var).is_some() {
                return ConfigError::Invalid(Invalid {
                    file: file.to_string(),
                    line: None,
                    key: format!("{key} (from {var})"),
                    message,
                });
            }
            let line = text.and_then(|t| locate::line_of(t, &key));
            ConfigError::Invalid(Invalid {
                file: file.to_string(),
                line,
                key,
                message,
            })
        };
        // Checked here so a typo is reported at load, not silently ignored by the subscriber.
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.service.log) {
            return Err(bad(
                "service.log".into(),
                format!("`{}` is not a log filter: {e}", raw.service.log),
            ));
        }
        let p = &raw.park;
        if p.pickup_timeout < PICKUP_TIMEOUT_MIN || p.pickup_timeout > PICKUP_TIMEOUT_MAX {
            return Err(bad(
                "park.pickup_timeout".into(),
                format!(
                    "{} is out of bounds: CallPickupTimeoutThreshold accepts 10s to 10m",
                    humantime::format_duration(p.pickup_timeout)
                ),
            ));
        }
        if !(ATTEMPTS_MIN..=ATTEMPTS_MAX).contains(&p.max_pickup_attempts) {
            return Err(bad(
                "park.max_pickup_attempts".into(),
                format!(
                    "{} is out of bounds: MaxCallPickupAttempts accepts 1 to 10",
                    p.max_pickup_attempts
                ),
            ));
        }
        if p.ringback_ring_time < RING_TIME_MIN || p.ringback_ring_time > RING_TIME_MAX {
            return Err(bad(
                "park.ringback_ring_time".into(),
                format!(
                    "{} is out of bounds: accepted 5s to 5m",
                    humantime::format_duration(p.ringback_ring_time)
                ),
            ));
        }
        let on_timeout = match &p.on_timeout {
            Some(text) => {
                Some(Destination::parse(text).map_err(|m| bad("park.on_timeout".into(), m))?)
            }
            None => None,
        };
        if p.park_code.trim().is_empty() {
            return Err(bad("park.park_code".into(), "must not be empty".into()));
        }
        if !p.music_on_hold && (p.music_on_hold_class.is_some() || p.music_on_hold_file.is_some()) {
            return Err(bad(
                "park.music_on_hold".into(),
                "is false, yet music_on_hold_class or music_on_hold_file is set: remove one".into(),
            ));
        }
        if p.music_on_hold_class.is_some() && p.music_on_hold_file.is_some() {
            return Err(bad(
                "park.music_on_hold_file".into(),
                "set either music_on_hold_class or music_on_hold_file, not both".into(),
            ));
        }

        let mut policies = Vec::new();
        for (i, pc) in raw.policy.iter().enumerate() {
            let rule = PolicyRule::new(&pc.name, pc.enable_call_park, &pc.users, &pc.patterns)
                .map_err(|m| bad(format!("policy[{i}].patterns"), m))?;
            policies.push(rule);
        }

        let mut names = std::collections::HashSet::new();
        for (i, pbx) in raw.pbx.iter().enumerate() {
            if !names.insert(pbx.name.as_str()) {
                return Err(bad(
                    format!("pbx[{i}].name"),
                    format!("`{}` is used by two [[pbx]] entries", pbx.name),
                ));
            }
            if let Err(m) = pbx.secret() {
                return Err(bad(format!("pbx[{i}].password"), m));
            }
        }

        let mut ranges = Vec::new();
        for (i, r) in raw.orbit_range.iter().enumerate() {
            let first: Orbit = r.first.parse().map_err(|e| {
                bad(
                    format!("orbit_range[{i}].first"),
                    format!("range `{}`: {e}", r.name),
                )
            })?;
            let last: Orbit = r.last.parse().map_err(|e| {
                bad(
                    format!("orbit_range[{i}].last"),
                    format!("range `{}`: {e}", r.name),
                )
            })?;
            let span = Span::new(first, last).map_err(|e| {
                bad(
                    format!("orbit_range[{i}].last"),
                    format!("range `{}`: {e}", r.name),
                )
            })?;
            if !raw.pbx.is_empty() && !raw.pbx.iter().any(|p| p.name == r.pool) {
                return Err(bad(
                    format!("orbit_range[{i}].pool"),
                    format!(
                        "range `{}` names pool `{}`, which no [[pbx]] entry defines",
                        r.name, r.pool
                    ),
                ));
            }
            ranges.push(OrbitRange {
                name: r.name.clone(),
                span,
                pool: r.pool.clone(),
                lot: r.lot.clone(),
            });
        }
        let orbits = OrbitTable::new(ranges).map_err(|e| {
            let idx = |name: &str| raw.orbit_range.iter().position(|r| r.name == name);
            let key = match &e {
                TableError::TooLarge { name, .. } => idx(name).map(|i| format!("orbit_range[{i}]")),
                TableError::Overlap { b, .. } => idx(b).map(|i| format!("orbit_range[{i}]")),
                TableError::DuplicateName(name) => raw
                    .orbit_range
                    .iter()
                    .rposition(|r| &r.name == name)
                    .map(|i| format!("orbit_range[{i}].name")),
            };
            bad(key.unwrap_or_else(|| "orbit_range".into()), e.to_string())
        })?;

        Ok(Config {
            file: None,
            service: raw.service,
            park: ParkConfig {
                pickup_timeout: raw.park.pickup_timeout,
                max_pickup_attempts: raw.park.max_pickup_attempts,
                ringback_ring_time: raw.park.ringback_ring_time,
                on_timeout,
                music_on_hold: raw.park.music_on_hold,
                music_on_hold_class: raw.park.music_on_hold_class,
                music_on_hold_file: raw.park.music_on_hold_file,
                park_code: raw.park.park_code,
            },
            policies: PolicySet::new(policies),
            pbx: raw.pbx,
            orbits,
        })
    }

    /// The SQLite file.
    pub fn database_path(&self) -> PathBuf {
        self.service
            .database
            .clone()
            .unwrap_or_else(|| self.service.data_dir.join("callpark.db"))
    }
}
