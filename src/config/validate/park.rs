//! `[park]`: Lync's call park settings, checked once for `[park]` and once for each lot with
//! its overrides.

use std::time::Duration;

use super::Bad;
use crate::config::{
    ATTEMPTS_MAX, ATTEMPTS_MIN, ConfigError, PAGE_INTERVAL_MAX, PAGE_INTERVAL_MIN, PAGE_REPEAT_MAX,
    PICKUP_TIMEOUT_MAX, PICKUP_TIMEOUT_MIN, ParkConfig, RING_TIME_MAX, RING_TIME_MIN,
};
use crate::park::Destination;

/// Checks one set of park settings (`[park]`, or a lot's with its overrides) and parses its
/// `on_timeout`; `at` is the table the keys are reported under (`park`, `lot[2]`).
pub(super) fn check(p: &ParkConfig<String>, at: &str, bad: Bad) -> Result<ParkConfig, ConfigError> {
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
    within(
        p.ringback_ring_time,
        (RING_TIME_MIN, RING_TIME_MAX),
        &key("ringback_ring_time"),
        bad,
    )?;
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
    let page = match &p.page {
        Some(text) => Some(Destination::parse(text).map_err(|e| bad(key("page"), e.to_string()))?),
        None => None,
    };
    if p.page_repeat > PAGE_REPEAT_MAX {
        return Err(bad(
            key("page_repeat"),
            format!(
                "{} is out of bounds: accepted 0 to {PAGE_REPEAT_MAX} repeats after the first page",
                p.page_repeat
            ),
        ));
    }
    within(
        p.page_interval,
        (PAGE_INTERVAL_MIN, PAGE_INTERVAL_MAX),
        &key("page_interval"),
        bad,
    )?;
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
        page,
        page_repeat: p.page_repeat,
        page_interval: p.page_interval,
    })
}

/// A duration between two bounds, both included; the error shows the bounds as written.
fn within(
    d: Duration,
    (min, max): (Duration, Duration),
    key: &str,
    bad: Bad,
) -> Result<(), ConfigError> {
    if d < min || d > max {
        return Err(bad(
            key.to_string(),
            format!(
                "{} is out of bounds: accepted {} to {}",
                humantime::format_duration(d),
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(())
}
