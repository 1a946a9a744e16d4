//! The rules a configuration must keep, one function per table; every error names the key
//! (and its line in the file, or the variable that set it).

use super::*;

/// Reports a broken rule as the key and its line in `file`, or the `CALLPARK_*` variable
/// that set the key.
type Bad<'a> = &'a dyn Fn(String, String) -> ConfigError;

impl Config {
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
        let bad: Bad = &bad;
        let keep_log = check_service(&raw.service, bad)?;
        let park = check_park(&raw.park, "park", bad)?;
        let lots = check_lots(&raw, bad)?;
        check_park_codes(&park, &lots, bad)?;
        let policies = check_policies(&raw.policy, &lots, bad)?;
        check_pbx(&raw.pbx, bad)?;
        let orbits = check_orbit_ranges(&raw, &lots, bad)?;
        check_lot_orbits(&lots, &orbits, bad)?;
        if let Some(api) = &raw.api {
            check_api(api, bad)?;
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
}

/// `[service]`: the log filter and how long the event log is kept.
fn check_service(service: &ServiceConfig, bad: Bad) -> Result<Duration, ConfigError> {
    // Checked here so a typo is reported at load, not silently ignored by the subscriber.
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&service.log) {
        return Err(bad(
            "service.log".into(),
            format!("`{}` is not a log filter: {e}", service.log),
        ));
    }
    let keep_log = humantime::parse_duration(service.keep_log.trim()).map_err(|e| {
        bad(
            "service.keep_log".into(),
            format!(
                "`{}` is not a duration ({e}): write it like \"90d\", \"12h\" or \"2w\"",
                service.keep_log
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
    Ok(keep_log)
}

/// `[[lot]]`: names, and each lot's park settings (`[park]` with the lot's overrides).
fn check_lots(raw: &RawConfig, bad: Bad) -> Result<Vec<Lot>, ConfigError> {
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
        let park = check_park(&p, &format!("lot[{i}]"), bad)?;
        lots.push(Lot {
            name: l.name.clone(),
            park_codes,
            park,
        });
    }
    Ok(lots)
}

/// Every park code parks into exactly one lot.
fn check_park_codes(park: &ParkConfig, lots: &[Lot], bad: Bad) -> Result<(), ConfigError> {
    // Every park code parks into exactly one lot.
    let mut codes: Vec<(String, String, String)> = vec![(
        park.park_code.clone(),
        "park.park_code".into(),
        GENERAL_LOT.into(),
    )];
    for (i, l) in lots.iter().enumerate() {
        for c in &l.park_codes {
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
            codes.push((c.clone(), format!("lot[{i}].park_codes"), l.name.clone()));
        }
    }
    Ok(())
}

/// `[[policy]]`: each rule's patterns, and the lots it names exist.
fn check_policies(
    policy: &[PolicyConfig],
    lots: &[Lot],
    bad: Bad,
) -> Result<Vec<PolicyRule>, ConfigError> {
    let lot_known = |name: &str| name == GENERAL_LOT || lots.iter().any(|l| l.name == name);
    let mut policies = Vec::new();
    for (i, pc) in policy.iter().enumerate() {
        let rule = PolicyRule::new(&pc.name, pc.enable_call_park, &pc.users, &pc.patterns)
            .map_err(|e| bad(format!("policy[{i}].patterns"), e.to_string()))?;
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

    Ok(policies)
}

/// `[[pbx]]`: pool names, secrets given once, the outbound socket.
fn check_pbx(pbx_list: &[PbxConfig], bad: Bad) -> Result<(), ConfigError> {
    let mut names = std::collections::HashSet::new();
    let pool_name = regex::Regex::new(POOL_NAME).expect("a valid pattern");
    for (i, pbx) in pbx_list.iter().enumerate() {
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

    Ok(())
}

/// `[[orbit_range]]`: each range, the lot and pool it names, and the table they make.
fn check_orbit_ranges(raw: &RawConfig, lots: &[Lot], bad: Bad) -> Result<OrbitTable, ConfigError> {
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

    Ok(orbits)
}

/// Every lot has orbits.
fn check_lot_orbits(lots: &[Lot], orbits: &OrbitTable, bad: Bad) -> Result<(), ConfigError> {
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

    Ok(())
}

/// `[api]`: webhook URLs.
fn check_api(api: &ApiConfig, bad: Bad) -> Result<(), ConfigError> {
    for (i, u) in api.webhooks.iter().enumerate() {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(bad(
                format!("api.webhooks[{i}]"),
                format!("`{u}` is not an http:// or https:// URL"),
            ));
        }
    }
    Ok(())
}

/// Checks one set of park settings (`[park]`, or a lot's with its overrides) and parses its
/// `on_timeout`; `at` is the table the keys are reported under (`park`, `lot[2]`).
fn check_park(p: &ParkConfig<String>, at: &str, bad: Bad) -> Result<ParkConfig, ConfigError> {
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
        Some(text) => {
            Some(Destination::parse(text).map_err(|e| bad(key("on_timeout"), e.to_string()))?)
        }
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
