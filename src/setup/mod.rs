//! `callpark setup asterisk|freeswitch`: makes the changes README.md's "Use with your
//! Asterisk" / "Use with your FreeSWITCH" sections ask administrators to make by hand.
//!
//! Every change is first computed as a [`Change`] (path, old text, new text) by pure functions
//! of the files' texts and the configuration, so that what would be written can be shown as a
//! diff, confirmed, tested without a PBX, and found empty on a second run. Only then are files
//! backed up and written ([`apply`]), and the PBX reloaded (in `cli::setup`).

pub mod apply;
pub mod asterisk;
pub(crate) mod esl;
pub mod extensions;
pub mod freeswitch;
pub(crate) mod fsxml;
pub mod ini;

#[cfg(test)]
mod asterisk_tests;
#[cfg(test)]
mod freeswitch_tests;

use std::path::{Path, PathBuf};

use crate::config::{Config, PbxConfig, PbxKind};

pub use apply::apply;

/// One file to write: its text now (`None` when it does not exist yet) and after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: PathBuf,
    pub old: Option<String>,
    pub new: String,
    /// Secrets the diff must not show (the ARI or event-socket password, before and after).
    pub secrets: Vec<String>,
}

impl Change {
    /// The unified diff of the change, as `diff -u` shows it, secrets masked.
    pub fn diff(&self) -> String {
        let old = self.old.as_deref().unwrap_or("");
        let shown = self.path.display().to_string();
        let from = if self.old.is_some() {
            shown.clone()
        } else {
            "/dev/null".to_string()
        };
        let text = similar::TextDiff::from_lines(old, &self.new)
            .unified_diff()
            .context_radius(3)
            .header(&from, &shown)
            .to_string();
        mask(&text, &self.secrets)
    }
}

/// `text` with each secret replaced on the lines that set a password, so that a diff printed
/// on a terminal (or pasted into a ticket) does not give the secret away. Only those lines: a
/// short secret could otherwise blank out unrelated text.
fn mask(text: &str, secrets: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.to_ascii_lowercase().contains("password") {
            let mut l = line.to_string();
            for s in secrets.iter().filter(|s| !s.is_empty()) {
                l = l.replace(s.as_str(), "********");
            }
            out.push_str(&l);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// What `setup` found to do for one pool.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The pool (`[[pbx]]` name) set up.
    pub pool: String,
    /// The files that change; empty when everything is set up already.
    pub changes: Vec<Change>,
    /// What the plan chose and why (the contexts and where they came from), for the terminal.
    pub notes: Vec<String>,
    /// The dialplan contexts the phones dial from, as set up (the doctor checks these).
    pub contexts: Vec<String>,
}

impl Plan {
    /// Adds `path` to the changes when `new` differs from what it holds now.
    pub(crate) fn change(
        &mut self,
        path: &Path,
        old: Option<String>,
        new: String,
        secrets: &[String],
    ) {
        if old.as_deref() != Some(new.as_str()) {
            self.changes.push(Change {
                path: path.to_path_buf(),
                old,
                new,
                secrets: secrets.to_vec(),
            });
        }
    }
}

/// Input that setup cannot work with: a file it cannot read, a context that does not exist, a
/// secret that is not set. The message names the file (and line) and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl BadInput {
    /// A message about `path` (and its 1-based `line`, when known).
    pub fn at(path: &Path, line: Option<usize>, message: impl std::fmt::Display) -> BadInput {
        match line {
            Some(l) => BadInput(format!("{}:{l}: {message}", path.display())),
            None => BadInput(format!("{}: {message}", path.display())),
        }
    }
}

/// The text of `path`, `None` when there is no such file. Any other failure (no permission, a
/// directory, not UTF-8) is bad input: setup must not guess at a file it cannot read.
pub fn read(path: &Path) -> Result<Option<String>, BadInput> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BadInput::at(
            path,
            None,
            format!(
                "cannot read it ({e}): run setup as a user who can (root, or the PBX's own user)"
            ),
        )),
    }
}

/// The `[[pbx]]` of `kind` that setup works on: `pool`, or the first of that kind.
pub fn pick_pool<'a>(
    cfg: &'a Config,
    pool: Option<&str>,
    kind: PbxKind,
) -> Result<&'a PbxConfig, BadInput> {
    let file = config_file(cfg);
    match pool {
        Some(name) => {
            let p = cfg.pbx.iter().find(|p| p.name == name).ok_or_else(|| {
                BadInput::at(
                    &file,
                    None,
                    format!("--pool {name}: no [[pbx]] of that name; name one of the file's [[pbx]] entries"),
                )
            })?;
            if p.kind != kind {
                return Err(BadInput::at(
                    &file,
                    pbx_line(cfg, p, "kind"),
                    format!(
                        "[[pbx]] {name} has kind = \"{}\": run `callpark setup {}` for it, or name a kind = \"{}\" pool with --pool",
                        kind_word(p.kind),
                        kind_word(p.kind),
                        kind_word(kind)
                    ),
                ));
            }
            Ok(p)
        }
        None => cfg.pbx.iter().find(|p| p.kind == kind).ok_or_else(|| {
            BadInput::at(
                &file,
                None,
                format!(
                    "no [[pbx]] with kind = \"{}\": add one (README.md shows it) and run setup again",
                    kind_word(kind)
                ),
            )
        }),
    }
}

fn kind_word(kind: PbxKind) -> &'static str {
    match kind {
        PbxKind::Asterisk => "asterisk",
        PbxKind::Freeswitch => "freeswitch",
    }
}

/// The secret of `pbx`, which setup writes into the PBX's configuration: it must be set.
pub fn secret(cfg: &Config, pbx: &PbxConfig) -> Result<String, BadInput> {
    let file = config_file(cfg);
    match pbx.secret() {
        Ok(Some(s)) if !s.is_empty() => Ok(s),
        Ok(_) => Err(BadInput::at(
            &file,
            pbx_line(cfg, pbx, "name"),
            format!(
                "[[pbx]] {} has no secret: add password_env = \"CALLPARK_{}_PASSWORD\" to it and export that variable (or set it in /etc/default/callpark), then run setup again",
                pbx.name,
                if pbx.kind == PbxKind::Asterisk {
                    "ARI"
                } else {
                    "ESL"
                }
            ),
        )),
        Err(e) => Err(BadInput::at(
            &file,
            pbx_line(cfg, pbx, "password_env"),
            format!(
                "[[pbx]] {}: {e}: export it (or set it in /etc/default/callpark) and run setup again",
                pbx.name
            ),
        )),
    }
}

/// The configuration file, as errors name it.
pub(crate) fn config_file(cfg: &Config) -> PathBuf {
    cfg.file
        .clone()
        .unwrap_or_else(|| PathBuf::from("callpark.toml"))
}

/// The line of `key` of the `[[pbx]]` entry `pbx` in the configuration file, when it is known.
pub(crate) fn pbx_line(cfg: &Config, pbx: &PbxConfig, key: &str) -> Option<usize> {
    let index = cfg.pbx.iter().position(|p| p.name == pbx.name)?;
    let text = std::fs::read_to_string(cfg.file.as_deref()?).ok()?;
    crate::config::line_of(&text, &format!("pbx[{index}].{key}"))
}

/// A host as a bind address names it: `localhost` is the loopback address, brackets go.
pub(crate) fn bind_host(host: &str) -> String {
    let h = host.trim_matches(['[', ']']);
    if h.eq_ignore_ascii_case("localhost") {
        "127.0.0.1".into()
    } else {
        h.to_string()
    }
}

/// Whether a server listening on `listen` (an IP address, `0.0.0.0` or `::`) is reached at
/// `host`: the wildcard addresses cover every address of their family (`::` both families, as
/// Linux binds it dual-stack by default), any other only itself.
pub(crate) fn covers(listen: &str, host: &str) -> bool {
    let listen = listen.trim().trim_matches(['[', ']']);
    let host = bind_host(host);
    let Ok(h) = host.parse::<std::net::IpAddr>() else {
        return listen.eq_ignore_ascii_case(&host);
    };
    match listen.parse::<std::net::IpAddr>() {
        Ok(l) if l.is_unspecified() => l.is_ipv6() || h.is_ipv4(),
        Ok(l) => l == h,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_their_family_and_others_only_themselves() {
        assert!(covers("::", "127.0.0.1"));
        assert!(covers("0.0.0.0", "127.0.0.1"));
        assert!(covers("[::]", "::1"));
        assert!(!covers("0.0.0.0", "::1"));
        assert!(covers("127.0.0.1", "localhost"));
        assert!(!covers("192.0.2.1", "127.0.0.1"));
        assert!(!covers("$${local_ip_v4}", "127.0.0.1"));
    }

    #[test]
    fn a_diff_hides_the_secret_on_password_lines_only() {
        let c = Change {
            path: "ari.conf".into(),
            old: Some("[u]\npassword = old\n".into()),
            new: "[u]\npassword = s3cret\ns3cret_thing = 1\n".into(),
            secrets: vec!["s3cret".into(), "old".into()],
        };
        let d = c.diff();
        assert!(d.contains("-password = ********"), "{d}");
        assert!(d.contains("+password = ********"), "{d}");
        assert!(d.contains("+s3cret_thing = 1"), "{d}");
        assert!(d.starts_with("--- ari.conf\n+++ ari.conf\n"), "{d}");
    }

    #[test]
    fn a_new_file_diffs_from_dev_null() {
        let c = Change {
            path: "x.conf".into(),
            old: None,
            new: "a\n".into(),
            secrets: vec![],
        };
        assert!(c.diff().starts_with("--- /dev/null\n+++ x.conf\n"));
    }
}
