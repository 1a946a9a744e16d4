//! `[api]`: webhook URLs. The token is not checked here: only `callpark run` needs it
//! ([`Config::check_secrets`](crate::config::Config::check_secrets)).

use super::Bad;
use crate::config::{ApiConfig, ConfigError};

/// Checks that every webhook is an http(s) URL.
pub(super) fn check(api: &ApiConfig, bad: Bad) -> Result<(), ConfigError> {
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
