//! `callpark doctor`: for each `[[pbx]]`, whether a park would work end to end, and what to
//! change where it would not, with the exact line to add.
//!
//! Each PBX has two halves, as the adapters do: gathering the facts (connections, the PBX's
//! own view of its dial plan and settings, files under its configuration directory), and pure
//! checks that turn facts and the configuration into [`Check`]s. The checks are unit-tested on
//! facts written out by hand; the gathering is tested against the real testbeds.

pub mod asterisk;
pub mod freeswitch;

use std::fmt::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::{Config, PbxConfig, PbxKind};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Ok,
    /// Parks work, but something users expect does not (lamps, caller id on retrieve, music).
    Warn,
    /// A park would not work (or would drop calls) until this is fixed.
    Fail,
    /// Could not be checked: what it needs failed first (named in `said`), or was not given.
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One thing checked: what was found, and what to change when it is not right.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub status: Status,
    /// A short name of what is checked (`connection`, `include`, `lint`, ...).
    pub topic: &'static str,
    /// What was found, in a sentence that names the file, context or setting.
    pub said: String,
    /// The exact lines to add or commands to run, one per entry; empty when nothing to do.
    pub fix: Vec<String>,
}

impl Check {
    pub fn ok(topic: &'static str, said: impl Into<String>) -> Check {
        Check {
            status: Status::Ok,
            topic,
            said: said.into(),
            fix: Vec::new(),
        }
    }

    pub fn warn(topic: &'static str, said: impl Into<String>, fix: Vec<String>) -> Check {
        Check {
            status: Status::Warn,
            topic,
            said: said.into(),
            fix,
        }
    }

    pub fn fail(topic: &'static str, said: impl Into<String>, fix: Vec<String>) -> Check {
        Check {
            status: Status::Fail,
            topic,
            said: said.into(),
            fix,
        }
    }

    pub fn skip(topic: &'static str, said: impl Into<String>) -> Check {
        Check {
            status: Status::Skip,
            topic,
            said: said.into(),
            fix: Vec::new(),
        }
    }
}

/// What the doctor found for one `[[pbx]]`.
#[derive(Debug, Clone, Serialize)]
pub struct PoolReport {
    pub pool: String,
    pub kind: PbxKind,
    pub address: String,
    pub checks: Vec<Check>,
}

impl PoolReport {
    /// Whether a park would work end to end on this pool: nothing failed.
    pub fn works(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }
}

/// What `callpark doctor` is told beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only these pools (all when empty).
    pub pools: Vec<String>,
    /// The contexts the phones dial from (found from the PBX when empty).
    pub contexts: Vec<String>,
    /// Asterisk's configuration directory (`/etc/asterisk`).
    pub asterisk_etc: PathBuf,
    /// Asterisk's manager interface, when given: `host:port`, user and secret.
    pub ami: Option<Ami>,
}

/// How to reach Asterisk's manager interface (AMI).
#[derive(Debug, Clone)]
pub struct Ami {
    pub address: String,
    pub username: String,
    pub secret: String,
}

/// Runs every check on every pool asked for.
pub async fn examine(cfg: &Config, opts: &Options) -> Vec<PoolReport> {
    let mut out = Vec::new();
    for p in cfg
        .pbx
        .iter()
        .filter(|p| opts.pools.is_empty() || opts.pools.contains(&p.name))
    {
        let checks = match p.kind {
            PbxKind::Asterisk => asterisk::examine(cfg, p, opts).await,
            PbxKind::Freeswitch => freeswitch::examine(cfg, p, opts).await,
        };
        out.push(PoolReport {
            pool: p.name.clone(),
            kind: p.kind,
            address: p.address.clone(),
            checks,
        });
    }
    out
}

/// The secret of a `[[pbx]]` (empty when it sets none), or the check that says it is missing.
pub(crate) fn secret_of(p: &PbxConfig) -> Result<String, Check> {
    match p.secret() {
        Ok(s) => Ok(s.unwrap_or_default()),
        Err(e) => Err(Check::fail(
            "secret",
            e,
            vec![match &p.password_env {
                Some(v) => format!("export {v}=...   (or set it in /etc/default/callpark)"),
                None => "password_env = \"CALLPARK_PBX_PASSWORD\"   (in this [[pbx]])".into(),
            }],
        )),
    }
}

/// A lint report on the phones' context `ctx` as checks: each finding a failure naming the
/// rule (`what` before its name: "extension " on FreeSWITCH), where it is, the orbits it takes
/// and the lint's fix (one line per entry); `ok` when there is none.
pub(crate) fn lint_checks(
    report: &crate::lint::Report,
    ctx: &str,
    what: &str,
    ok: String,
) -> Vec<Check> {
    if report.findings.is_empty() {
        return vec![Check::ok("lint", ok)];
    }
    report
        .findings
        .iter()
        .map(|fd| {
            let runs: Vec<String> = crate::lint::report::caught_texts(report, &fd.caught)
                .into_iter()
                .take(6)
                .map(|(a, b)| if a == b { a } else { format!("{a}-{b}") })
                .collect();
            Check::fail(
                "lint",
                format!(
                    "context {ctx}: {what}{} ({}:{}) {} {} orbit(s): {}",
                    fd.rule,
                    fd.file,
                    fd.line,
                    fd.certainty.as_str(),
                    fd.count(),
                    runs.join(", ")
                ),
                // One line each, as the lint writes a fix of several extensions.
                fd.fix.lines().map(String::from).collect(),
            )
        })
        .collect()
}

/// FreeSWITCH's `switch_true`: yes, on, true, t, enabled, active, allow, or a non-zero number.
pub(crate) fn switch_true(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    matches!(
        v.as_str(),
        "yes" | "on" | "true" | "t" | "enabled" | "active" | "allow"
    ) || v.parse::<i64>().is_ok_and(|n| n != 0)
}

/// The reports as people read them: one block per pool, one line per check, the fix under it.
pub fn text(reports: &[PoolReport]) -> String {
    let mut s = String::new();
    for r in reports {
        let kind = match r.kind {
            PbxKind::Asterisk => "Asterisk",
            PbxKind::Freeswitch => "FreeSWITCH",
        };
        let _ = writeln!(s, "{} ({kind} at {})", r.pool, r.address);
        for c in &r.checks {
            let _ = writeln!(s, "  {:<5} {:<12} {}", c.status.label(), c.topic, c.said);
            for (i, f) in c.fix.iter().enumerate() {
                let lead = if i == 0 { "fix:" } else { "" };
                let _ = writeln!(s, "  {:<5} {:<12}   {lead:<4} {f}", "", "");
            }
        }
        let _ = writeln!(
            s,
            "  => {}\n",
            if r.works() {
                "a park would work end to end"
            } else {
                "a park would NOT work: fix the FAIL lines above"
            }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_check_fails_the_pool_and_shows_its_fix() {
        let r = PoolReport {
            pool: "pbx-a".into(),
            kind: PbxKind::Asterisk,
            address: "http://127.0.0.1:8088".into(),
            checks: vec![
                Check::ok("connection", "ARI answers"),
                Check::fail(
                    "include",
                    "not loaded",
                    vec!["#include callpark.conf".into()],
                ),
            ],
        };
        assert!(!r.works());
        let t = text(&[r]);
        assert!(t.contains("FAIL  include      not loaded"), "{t}");
        assert!(t.contains("fix: #include callpark.conf"), "{t}");
        assert!(t.contains("would NOT work"), "{t}");
    }

    #[test]
    fn warnings_and_skips_do_not_fail_a_pool() {
        let r = PoolReport {
            pool: "pbx-b".into(),
            kind: PbxKind::Freeswitch,
            address: "127.0.0.1:8021".into(),
            checks: vec![
                Check::warn("presence", "off", vec![]),
                Check::skip("x", "y"),
            ],
        };
        assert!(r.works());
    }
}
