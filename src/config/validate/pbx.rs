//! `[[pbx]]`: the pools.

use super::Bad;
use crate::config::{ConfigError, POOL_NAME, PbxConfig, PbxKind};

/// `[[pbx]]`: pool names, secrets given once, the outbound socket.
pub(super) fn check(pbx_list: &[PbxConfig], bad: Bad) -> Result<(), ConfigError> {
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
        if let Some(p) = &pbx.prefer
            && !pool_name.is_match(p)
        {
            return Err(bad(
                format!("pbx[{i}].prefer"),
                format!(
                    "`{}` is not a node name: name a node's `[service] node` (e.g. \"node-a\")",
                    p.escape_debug()
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
