//! The rules a configuration must keep, one module per table of the file; every error names
//! the key (and its line in the file, or the variable that set it).
//!
//! The tables are checked in a fixed order, each with what the earlier ones gave: the lots need
//! `[park]` (their defaults), the policies and ranges the lots, the ranges the pools. The order
//! is also the order of the errors, so a file with several mistakes reports the same one first
//! every time.

mod api;
mod lot;
mod orbit_range;
mod park;
mod pbx;
mod policy;
mod service;

use super::{Config, ConfigError, Invalid, RawConfig, locate};
use crate::park::PolicySet;

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
        let keep_log = service::check(&raw.service, bad)?;
        let park = park::check(&raw.park, "park", bad)?;
        let lots = lot::check(&raw, bad)?;
        lot::check_park_codes(&park, &lots, bad)?;
        let policies = policy::check(&raw.policy, &lots, bad)?;
        pbx::check(&raw.pbx, bad)?;
        let orbits = orbit_range::check(&raw, &lots, bad)?;
        lot::check_orbits(&lots, &orbits, bad)?;
        if let Some(api) = &raw.api {
            api::check(api, bad)?;
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
