//! Configuration: one TOML file, overridable by `CALLPARK_*` environment variables.
//!
//! Loading has two steps. The `config` crate merges the file and the environment and
//! deserializes it (its errors carry the file and, for syntax errors, the line). Then
//! `Config::validate` checks bounds and the orbit table; each error names the key and, by
//! looking the key up in the file's own text, its line.

mod locate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::orbit::{Orbit, OrbitRange, OrbitTable, Span, TableError};
use crate::park::{Destination, GENERAL_LOT, OnBusyOrbit, PolicyRule, PolicySet};

/// Accepted bounds, with Lync's meaning.
pub(crate) const PICKUP_TIMEOUT_MIN: Duration = Duration::from_secs(10);
pub(crate) const PICKUP_TIMEOUT_MAX: Duration = Duration::from_secs(600);
pub(crate) const ATTEMPTS_MIN: u8 = 1;
pub(crate) const ATTEMPTS_MAX: u8 = 10;
pub(crate) const RING_TIME_MIN: Duration = Duration::from_secs(5);
pub(crate) const RING_TIME_MAX: Duration = Duration::from_secs(300);

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
    pub fn token(&self) -> Result<String, String> {
        let token = match (&self.token_env, &self.token_file) {
            (Some(_), Some(_)) => return Err("set either token_env or token_file, not both".into()),
            (Some(var), None) => std::env::var(var)
                .map_err(|_| format!("environment variable `{var}` (token_env) is not set"))?,
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read token_file {}: {e}", f.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
            (None, None) => {
                return Err("set token_env or token_file: the API needs a bearer token".into());
            }
        };
        let token = token.trim().to_string();
        if token.len() < 16 {
            return Err("the bearer token is shorter than 16 characters".into());
        }
        Ok(token)
    }
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
const POOL_NAME: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$";

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
    pub(crate) fn validate(
        raw: RawConfig,
        file: &str,
        text: Option<&str>,
    ) -> Result<Config, ConfigError> {
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
        let keep_log = humantime::parse_duration(raw.service.keep_log.trim()).map_err(|e| {
            bad(
                "service.keep_log".into(),
                format!(
                    "`{}` is not a duration ({e}): write it like \"90d\", \"12h\" or \"2w\"",
                    raw.service.keep_log
                ),
            )
        })?;
        if keep_log < KEEP_LOG_MIN {
            return Err(bad(
                "service.keep_log".into(),
                format!(
                    "{} is too short: keep the event log for at least 1h, so a console or webhook that reconnects can resume",
                    humantime::format_duration(keep_log)
                ),
            ));
        }
        let park = check_park(&raw.park, "park", &bad)?;
        let mut lots: Vec<Lot> = Vec::new();
        for (i, l) in raw.lot.iter().enumerate() {
            let key = |k: &str| format!("lot[{i}].{k}");
            if l.name.trim().is_empty() || l.name.contains([',', ' ', '/', '"', '<', '>']) {
                return Err(bad(
                    key("name"),
                    format!(
                        "`{}` is not a lot name: use letters, digits, - or _",
                        l.name
                    ),
                ));
            }
            if l.name == GENERAL_LOT {
                return Err(bad(
                    key("name"),
                    format!(
                        "`{GENERAL_LOT}` names the ranges without a lot; set its settings in [park]"
                    ),
                ));
            }
            if lots.iter().any(|x| x.name == l.name) {
                return Err(bad(
                    key("name"),
                    format!("lot `{}` is defined twice", l.name),
                ));
            }
            let mut p = raw.park.clone();
            if let Some(v) = l.pickup_timeout {
                p.pickup_timeout = v;
            }
            if let Some(v) = l.max_pickup_attempts {
                p.max_pickup_attempts = v;
            }
            if let Some(v) = l.ringback_ring_time {
                p.ringback_ring_time = v;
            }
            match l.on_timeout.as_deref() {
                Some("none") => p.on_timeout = None,
                Some(v) => p.on_timeout = Some(v.to_string()),
                None => {}
            }
            // A lot's music replaces the general one as a whole.
            if let Some(v) = l.music_on_hold {
                p.music_on_hold = v;
                if !v {
                    p.music_on_hold_class = None;
                    p.music_on_hold_file = None;
                }
            }
            if let Some(v) = &l.music_on_hold_class {
                p.music_on_hold_class = Some(v.clone());
                p.music_on_hold_file = l.music_on_hold_file.clone();
            } else if let Some(v) = &l.music_on_hold_file {
                p.music_on_hold_file = Some(v.clone());
                p.music_on_hold_class = None;
            }
            if let Some(v) = &l.caller_id_prefix {
                p.caller_id_prefix = v.clone();
            }
            if let Some(v) = l.on_busy_orbit {
                p.on_busy_orbit = v;
            }
            let park_codes = l
                .park_codes
                .clone()
                .unwrap_or_else(|| vec![format!("{}-{}", raw.park.park_code, l.name)]);
            if park_codes.is_empty() {
                return Err(bad(
                    key("park_codes"),
                    format!(
                        "lot `{}` has no park code: leave park_codes out for `{}-{}`",
                        l.name, raw.park.park_code, l.name
                    ),
                ));
            }
            let park = check_park(&p, &format!("lot[{i}]"), &bad)?;
            lots.push(Lot {
                name: l.name.clone(),
                park_codes,
                park,
            });
        }
        // Every park code parks into exactly one lot.
        let mut codes: Vec<(String, String, String)> = vec![(
            park.park_code.clone(),
            "park.park_code".into(),
            GENERAL_LOT.into(),
        )];
        for (i, l) in lots.iter().enumerate() {
            for (j, c) in l.park_codes.iter().enumerate() {
                if c.trim().is_empty() || c.chars().any(char::is_whitespace) {
                    return Err(bad(
                        format!("lot[{i}].park_codes"),
                        format!(
                            "park code `{c}` of lot `{}` is empty or has white space",
                            l.name
                        ),
                    ));
                }
                if let Some((_, k, lot)) = codes.iter().find(|(x, _, _)| x == c) {
                    return Err(bad(
                        format!("lot[{i}].park_codes"),
                        format!(
                            "park code `{c}` of lot `{}` is already {k} (lot `{lot}`): a code parks into one lot",
                            l.name
                        ),
                    ));
                }
                let _ = j;
                codes.push((c.clone(), format!("lot[{i}].park_codes"), l.name.clone()));
            }
        }
        let lot_known = |name: &str| name == GENERAL_LOT || lots.iter().any(|l| l.name == name);

        let mut policies = Vec::new();
        for (i, pc) in raw.policy.iter().enumerate() {
            let rule = PolicyRule::new(&pc.name, pc.enable_call_park, &pc.users, &pc.patterns)
                .map_err(|m| bad(format!("policy[{i}].patterns"), m))?;
            for l in pc.lots.iter().flatten() {
                if !lot_known(l) {
                    return Err(bad(
                        format!("policy[{i}].lots"),
                        format!(
                            "policy `{}` names lot `{l}`, which no [[lot]] defines (`{GENERAL_LOT}` is the ranges without a lot)",
                            pc.name
                        ),
                    ));
                }
            }
            if let Some(d) = &pc.default_lot {
                if !lot_known(d) {
                    return Err(bad(
                        format!("policy[{i}].default_lot"),
                        format!(
                            "policy `{}`: lot `{d}` is not defined by any [[lot]]",
                            pc.name
                        ),
                    ));
                }
                if pc.lots.as_ref().is_some_and(|ls| !ls.contains(d)) {
                    return Err(bad(
                        format!("policy[{i}].default_lot"),
                        format!("policy `{}`: default lot `{d}` is not in its lots", pc.name),
                    ));
                }
            }
            policies.push(rule.with_lots(pc.lots.clone(), pc.default_lot.clone()));
        }

        let mut names = std::collections::HashSet::new();
        let pool_name = regex::Regex::new(POOL_NAME).expect("a valid pattern");
        for (i, pbx) in raw.pbx.iter().enumerate() {
            if !pool_name.is_match(&pbx.name) {
                return Err(bad(
                    format!("pbx[{i}].name"),
                    format!(
                        "`{}` is not a pool name: use 1 to 63 letters, digits, `_`, `.` or `-`, starting with a letter or digit (e.g. \"pbx-a\")",
                        pbx.name.escape_debug()
                    ),
                ));
            }
            if !names.insert(pbx.name.as_str()) {
                return Err(bad(
                    format!("pbx[{i}].name"),
                    format!("`{}` is used by two [[pbx]] entries", pbx.name),
                ));
            }
            // Both set is a mistake in the file; a variable not set here may be set where
            // `callpark run` runs: only `run` needs it ([`Config::check_secrets`]).
            if pbx.password.is_some() && pbx.password_env.is_some() {
                return Err(bad(
                    format!("pbx[{i}].password"),
                    "set either password or password_env, not both".into(),
                ));
            }
            if let Some(o) = &pbx.outbound {
                if pbx.kind != PbxKind::Freeswitch {
                    return Err(bad(
                        format!("pbx[{i}].outbound"),
                        "only a FreeSWITCH pool has an outbound socket; remove it".into(),
                    ));
                }
                if o.parse::<std::net::SocketAddr>().is_err() {
                    return Err(bad(
                        format!("pbx[{i}].outbound"),
                        format!(
                            "`{}` is not an address to listen on: use IP:PORT, like \"127.0.0.1:8041\"",
                            o.escape_debug()
                        ),
                    ));
                }
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
            if let Some(l) = r
                .lot
                .as_deref()
                .filter(|l| !lots.iter().any(|x| x.name == *l))
            {
                return Err(bad(
                    format!("orbit_range[{i}].lot"),
                    format!(
                        "range `{}` names lot `{l}`, which no [[lot]] defines: add [[lot]] name = \"{l}\"",
                        r.name
                    ),
                ));
            }
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

        for (i, l) in lots.iter().enumerate() {
            if !orbits
                .ranges()
                .iter()
                .any(|r| r.lot.as_deref() == Some(&l.name))
            {
                return Err(bad(
                    format!("lot[{i}].name"),
                    format!(
                        "lot `{}` has no orbits: name it in an [[orbit_range]] (lot = \"{}\")",
                        l.name, l.name
                    ),
                ));
            }
        }

        if let Some(api) = &raw.api {
            for (i, u) in api.webhooks.iter().enumerate() {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(bad(
                        format!("api.webhooks[{i}]"),
                        format!("`{u}` is not an http:// or https:// URL"),
                    ));
                }
            }
        }

        Ok(Config {
            file: None,
            service: raw.service,
            park,
            policies: PolicySet::new(policies),
            pbx: raw.pbx,
            orbits,
            lots,
            api: raw.api,
            keep_log,
        })
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
            .map(|message| Invalid {
                file: file.clone(),
                line: None,
                key: "api.token_env".into(),
                message,
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

    /// The SQLite file.
    pub(crate) fn database_path(&self) -> PathBuf {
        self.service
            .database
            .clone()
            .unwrap_or_else(|| self.service.data_dir.join("callpark.db"))
    }
}

/// Checks one set of park settings (`[park]`, or a lot's with its overrides) and parses its
/// `on_timeout`; `at` is the table the keys are reported under (`park`, `lot[2]`).
fn check_park(
    p: &ParkConfig<String>,
    at: &str,
    bad: &impl Fn(String, String) -> ConfigError,
) -> Result<ParkConfig, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    if p.pickup_timeout < PICKUP_TIMEOUT_MIN || p.pickup_timeout > PICKUP_TIMEOUT_MAX {
        return Err(bad(
            key("pickup_timeout"),
            format!(
                "{} is out of bounds: CallPickupTimeoutThreshold accepts 10s to 10m",
                humantime::format_duration(p.pickup_timeout)
            ),
        ));
    }
    if !(ATTEMPTS_MIN..=ATTEMPTS_MAX).contains(&p.max_pickup_attempts) {
        return Err(bad(
            key("max_pickup_attempts"),
            format!(
                "{} is out of bounds: MaxCallPickupAttempts accepts 1 to 10",
                p.max_pickup_attempts
            ),
        ));
    }
    if p.ringback_ring_time < RING_TIME_MIN || p.ringback_ring_time > RING_TIME_MAX {
        return Err(bad(
            key("ringback_ring_time"),
            format!(
                "{} is out of bounds: accepted 5s to 5m",
                humantime::format_duration(p.ringback_ring_time)
            ),
        ));
    }
    let on_timeout = match &p.on_timeout {
        Some(text) => Some(Destination::parse(text).map_err(|m| bad(key("on_timeout"), m))?),
        None => None,
    };
    if p.park_code.trim().is_empty() {
        return Err(bad(key("park_code"), "must not be empty".into()));
    }
    if !p.music_on_hold && (p.music_on_hold_class.is_some() || p.music_on_hold_file.is_some()) {
        return Err(bad(
            key("music_on_hold"),
            "is false, yet music_on_hold_class or music_on_hold_file is set: remove one".into(),
        ));
    }
    if p.music_on_hold_class.is_some() && p.music_on_hold_file.is_some() {
        return Err(bad(
            key("music_on_hold_file"),
            "set either music_on_hold_class or music_on_hold_file, not both".into(),
        ));
    }
    if p.caller_id_prefix
        .chars()
        .any(|c| c.is_control() || c == '"')
    {
        return Err(bad(
            key("caller_id_prefix"),
            "must not contain quotes or control characters".into(),
        ));
    }
    Ok(ParkConfig {
        pickup_timeout: p.pickup_timeout,
        max_pickup_attempts: p.max_pickup_attempts,
        ringback_ring_time: p.ringback_ring_time,
        on_timeout,
        music_on_hold: p.music_on_hold,
        music_on_hold_class: p.music_on_hold_class.clone(),
        music_on_hold_file: p.music_on_hold_file.clone(),
        park_code: p.park_code.clone(),
        caller_id_prefix: p.caller_id_prefix.clone(),
        on_busy_orbit: p.on_busy_orbit,
    })
}
