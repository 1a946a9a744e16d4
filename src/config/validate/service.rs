//! `[service]`: the log filter and how long the event log is kept.

use std::time::Duration;

use super::Bad;
use crate::config::{ConfigError, KEEP_LOG_MIN, ServiceConfig};

/// Checks `[service]` and parses its `keep_log`.
pub(super) fn check(service: &ServiceConfig, bad: Bad) -> Result<Duration, ConfigError> {
    // Checked here so a typo is reported at load, not silently ignored by the subscriber.
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&service.log) {
        return Err(bad(
            "service.log".into(),
            format!("`{}` is not a log filter: {e}", service.log),
        ));
    }
    if let Some(node) = &service.node {
        let name = regex::Regex::new(crate::config::POOL_NAME).expect("a valid pattern");
        if !name.is_match(node) {
            return Err(bad(
                "service.node".into(),
                format!(
                    "`{}` is not a node name: use 1 to 63 letters, digits, `_`, `.` or `-`, starting with a letter or digit (e.g. \"node-a\")",
                    node.escape_debug()
                ),
            ));
        }
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
