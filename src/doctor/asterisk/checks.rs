//! The Asterisk checks: pure, from [`Facts`] and the configuration, in the order a park needs
//! them: ARI answers callpark's user, lets it write, callpark is connected; the include is
//! the current one and Asterisk has loaded it; the phones' contexts reach it; then what users
//! notice (who parked in the events, caller id on retrieve, music).

use std::path::{Path, PathBuf};

use super::ami::AmiError;
use super::files::{ConfFile, Etc, Loaded};
use super::{Answer, Facts, contexts, settings};
use crate::config::{Config, PbxConfig};
use crate::doctor::{Check, Options};
use crate::pbx::asterisk::dialplan::generate;
use crate::pbx::stamp;

/// The command that makes Asterisk read its dial plan files again.
pub(super) const DIALPLAN_RELOAD: &str = "asterisk -rx \"dialplan reload\"";

/// The line that makes extensions.conf read the include, by the name README gives it.
const HASH_INCLUDE: &str = "#include callpark.conf   (in extensions.conf)";

fn config_path(cfg: &Config) -> String {
    cfg.file.as_deref().map_or_else(
        || "/etc/callpark/callpark.toml".into(),
        |f| f.display().to_string(),
    )
}

/// The command that writes the current include to `to`.
pub(super) fn regenerate(cfg: &Config, pbx: &PbxConfig, to: &Path) -> String {
    format!(
        "callpark --config {} dialplan asterisk --pool {} > {}",
        config_path(cfg),
        pbx.name,
        to.display()
    )
}

/// The stamp of the include this configuration generates.
pub(super) fn expected_stamp(cfg: &Config, pbx: &PbxConfig) -> String {
    stamp::find(&generate(cfg, &pbx.name)).unwrap_or_default()
}

/// What the `[[pbx]]` itself lacks before anything can be asked.
pub fn settings_of(pbx: &PbxConfig) -> Option<Check> {
    let a = pbx.address.trim();
    if !a.starts_with("http://") && !a.starts_with("https://") {
        return Some(Check::fail(
            "connection",
            format!("address `{a}` is not Asterisk's HTTP server"),
            vec![format!(
                "address = \"http://127.0.0.1:8088\"   (in [[pbx]] {}: http.conf's bindaddr:bindport)",
                pbx.name
            )],
        ));
    }
    if pbx.username.is_none() {
        return Some(Check::fail(
            "connection",
            "no username: ARI needs the user of ari.conf callpark logs in as",
            vec![format!(
                "username = \"callpark\"   (in [[pbx]] {})",
                pbx.name
            )],
        ));
    }
    None
}

/// Every check of one pool, in the order a park needs them.
pub fn checks(cfg: &Config, pbx: &PbxConfig, opts: &Options, f: &Facts) -> Vec<Check> {
    if let Some(c) = settings_of(pbx) {
        return vec![c];
    }
    let mut out = Vec::new();
    match connection(pbx, f) {
        Ok(c) => out.push(c),
        Err(c) => {
            out.push(c);
            return out;
        }
    }
    out.push(write(pbx, f));
    out.push(application(cfg, pbx, f));
    let etc = &f.etc;
    if etc.present {
        out.push(include(cfg, pbx, f));
    } else {
        out.push(Check::skip(
            "files",
            format!(
                "{} is not a directory here: Asterisk's configuration files were not checked (pass --asterisk-etc DIR where they are)",
                etc.dir.display()
            ),
        ));
    }
    out.extend(loaded(cfg, pbx, opts, f));
    out.extend(contexts::phones(cfg, pbx, opts, f));
    if etc.present {
        out.push(settings::channelvars(f));
        out.push(settings::caller_id(f));
    }
    out.extend(settings::music(cfg, pbx, f));
    out
}

/// ARI's `GET /asterisk/info`: reached, the user accepted, Asterisk booted.
fn connection(pbx: &PbxConfig, f: &Facts) -> Result<Check, Check> {
    let addr = pbx.address.trim();
    let user = pbx.username.as_deref().unwrap_or_default();
    let reload_ari = "asterisk -rx \"module reload res_ari.so\"".to_string();
    match &f.info {
        Answer::Ok(body) => {
            let version = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["system"]["version"].as_str().map(String::from))
                .unwrap_or_else(|| "of unknown version".into());
            Ok(Check::ok(
                "connection",
                format!("ARI at {addr} accepted user {user}: Asterisk {version}"),
            ))
        }
        Answer::Unreachable(e) => {
            let (host, port) = host_port(addr);
            let mut said = format!("nothing answers at {addr}: {e}");
            if let Some(http) = f.etc.http.read() {
                let g = http.named("general").last();
                let v = |k: &str| g.and_then(|g| http.value(g, k)).unwrap_or("(not set)");
                said.push_str(&format!(
                    " (http.conf: enabled = {}, bindaddr = {}, bindport = {})",
                    v("enabled"),
                    v("bindaddr"),
                    v("bindport")
                ));
            }
            Err(Check::fail(
                "connection",
                said,
                vec![
                    "enabled = yes   (in [general] of http.conf)".into(),
                    format!("bindaddr = {host}   (in [general] of http.conf)"),
                    format!(
                        "bindport = {port}   (in [general] of http.conf; or change address of [[pbx]] {})",
                        pbx.name
                    ),
                    "asterisk -rx \"module reload http\"".into(),
                ],
            ))
        }
        Answer::Status(401, _) => {
            let known = f.etc.ari.read().map(|ari| {
                match ari
                    .named(user)
                    .find(|s| ari.value(s, "type") == Some("user"))
                {
                    Some(_) => format!(
                        " (ari.conf has a [{user}] user: is its password the one callpark has?)"
                    ),
                    None => format!(" (ari.conf has no [{user}] with type = user)"),
                }
            });
            let secret = pbx.password_env.as_deref().map_or_else(
                || "the password of this [[pbx]]".to_string(),
                |v| format!("${v}"),
            );
            Err(Check::fail(
                "connection",
                format!(
                    "ARI at {addr} refused user {user} and its password (401){}",
                    known.unwrap_or_default()
                ),
                vec![
                    format!("[{user}]   (in ari.conf)"),
                    "type = user".into(),
                    "read_only = no".into(),
                    format!("password = <the same secret as {secret}>"),
                    reload_ari,
                ],
            ))
        }
        Answer::Status(403, m) => Err(Check::fail(
            "connection",
            format!("ARI at {addr} refused callpark's address: {m} (403)"),
            vec![format!(
                "permit = <callpark's address>/32   (in [{user}] of ari.conf, after its deny lines)"
            )],
        )),
        Answer::Status(404, _) => Err(Check::fail(
            "connection",
            format!("Asterisk's HTTP server answers at {addr}, but ARI does not (404)"),
            vec![
                "enabled = yes   (in [general] of ari.conf)".into(),
                "asterisk -rx \"module load res_ari.so\"".into(),
                "asterisk -rx \"module load res_ari_asterisk.so\"".into(),
            ],
        )),
        Answer::Status(503, m) => Err(Check::fail(
            "connection",
            format!(
                "Asterisk at {addr} is still starting ({m}): run the doctor again once it is up"
            ),
            vec![],
        )),
        Answer::Status(s, m) => Err(Check::fail(
            "connection",
            format!("ARI at {addr} answered {s}: {m}"),
            vec![],
        )),
    }
}

/// `host` and `port` of an http(s) URL, as http.conf spells them.
fn host_port(addr: &str) -> (String, String) {
    match reqwest::Url::parse(addr) {
        Ok(u) => (
            u.host_str().unwrap_or("127.0.0.1").to_string(),
            u.port_or_known_default().unwrap_or(8088).to_string(),
        ),
        Err(_) => ("127.0.0.1".into(), "8088".into()),
    }
}

/// Whether the user may change things. Asterisk's res_ari.c refuses any request but GET
/// and OPTIONS of a `read_only` user with 403 "Write access denied", before it looks at the
/// resource; a user who may write reaches setChannelVar, whose documented answer for a
/// channel that does not exist is 404 "Channel not found" (rest-api/api-docs/channels.json).
fn write(pbx: &PbxConfig, f: &Facts) -> Check {
    let user = pbx.username.as_deref().unwrap_or_default();
    match &f.write {
        Some(Answer::Status(404, _)) | Some(Answer::Ok(_)) => Check::ok(
            "write",
            format!("ARI user {user} may write (answer channels, make bridges)"),
        ),
        Some(Answer::Status(403, m)) => Check::fail(
            "write",
            format!("ARI user {user} is read-only ({m}): callpark could not answer a single park"),
            vec![
                format!("read_only = no   (in [{user}] of ari.conf)"),
                "asterisk -rx \"module reload res_ari.so\"".into(),
            ],
        ),
        Some(Answer::Status(s, m)) => Check::warn(
            "write",
            format!("could not tell whether ARI user {user} may write: {s} {m}"),
            vec![],
        ),
        Some(Answer::Unreachable(e)) => Check::warn(
            "write",
            format!("could not tell whether ARI user {user} may write: {e}"),
            vec![],
        ),
        None => Check::skip("write", "not asked: ARI did not answer"),
    }
}

/// callpark's Stasis application exists only while `callpark run` is connected.
fn application(cfg: &Config, pbx: &PbxConfig, f: &Facts) -> Check {
    let app = &pbx.app;
    let names: Option<Vec<String>> = match &f.apps {
        Some(Answer::Ok(body)) => serde_json::from_str::<Vec<serde_json::Value>>(body)
            .ok()
            .map(|v| {
                v.iter()
                    .filter_map(|a| a["name"].as_str().map(String::from))
                    .collect()
            }),
        _ => None,
    };
    match names {
        Some(n) if n.contains(app) => Check::ok(
            "application",
            format!("callpark run is connected: ARI has the application {app}"),
        ),
        Some(_) => Check::warn(
            "application",
            format!(
                "ARI has no application {app}: callpark run is not connected, so parks go to [callpark-down] until it is"
            ),
            vec![
                "systemctl start callpark".into(),
                format!("(or: callpark --config {} run)", config_path(cfg)),
            ],
        ),
        None => Check::warn(
            "application",
            "could not list ARI's applications (GET /ari/applications)",
            vec![],
        ),
    }
}

/// The include file: #included by extensions.conf, and the one this configuration generates.
fn include(cfg: &Config, pbx: &PbxConfig, f: &Facts) -> Check {
    let etc = &f.etc;
    let want = expected_stamp(cfg, pbx);
    let ext = etc.path("extensions.conf");
    match &etc.dialplan {
        Loaded::Absent => {
            return Check::skip(
                "include",
                format!(
                    "{ext} does not exist: the dial plan files were not checked (pass --asterisk-etc DIR where Asterisk's configuration is)"
                ),
            );
        }
        Loaded::Unreadable(e) if etc.dialplan_files.is_empty() => {
            return Check::fail(
                "include",
                format!("{ext} cannot be read: {e}"),
                vec![format!(
                    "run the doctor as a user who may read {} (root, or one of Asterisk's group)",
                    etc.dir.display()
                )],
            );
        }
        _ => {}
    }
    let Some(file) = found_include(etc) else {
        if let Some(named) = included_by_name(etc) {
            return Check::fail(
                "include",
                format!(
                    "{} is #included, but holds no callpark include (no stamp, no [callpark])",
                    named.path.display()
                ),
                vec![regenerate(cfg, pbx, &named.path), DIALPLAN_RELOAD.into()],
            );
        }
        let default = etc.dir.join("callpark.conf");
        return match &etc.loose_include {
            Some(loose) => {
                let mut fix = vec![HASH_INCLUDE.to_string(), DIALPLAN_RELOAD.into()];
                if !current(loose, &want) {
                    fix.insert(0, regenerate(cfg, pbx, &loose.path));
                }
                Check::fail(
                    "include",
                    format!(
                        "{} is there, but {ext} does not #include it",
                        loose.path.display()
                    ),
                    fix,
                )
            }
            None => Check::fail(
                "include",
                format!("neither {ext} nor a file it #includes holds callpark's include"),
                vec![
                    regenerate(cfg, pbx, &default),
                    HASH_INCLUDE.into(),
                    DIALPLAN_RELOAD.into(),
                ],
            ),
        };
    };
    let path = file.path.display();
    let has = stamp::find(&file.text);
    let fix = vec![regenerate(cfg, pbx, &file.path), DIALPLAN_RELOAD.into()];
    match has {
        Some(s) if s == want && stamp::verifies(&file.text) => Check::ok(
            "include",
            format!(
                "{path} is #included and is the one this configuration generates (stamp {want})"
            ),
        ),
        Some(s) if s == want => Check::fail(
            "include",
            format!(
                "{path} was edited by hand since it was generated: its stamp no longer matches what it holds"
            ),
            fix,
        ),
        other => Check::fail(
            "include",
            format!(
                "{path} is stale: it carries {}, this configuration generates stamp {want}",
                other.map_or_else(|| "no stamp".to_string(), |s| format!("stamp {s}"))
            ),
            fix,
        ),
    }
}

/// The file extensions.conf #includes (directly or not) that holds callpark's include: its
/// stamp, or the context it defines. extensions.conf itself is never taken for it: the fix
/// regenerates the file it names.
pub(super) fn found_include(etc: &Etc) -> Option<&ConfFile> {
    etc.dialplan_files.iter().skip(1).find(|c| {
        stamp::find(&c.text).is_some() || c.text.lines().any(|l| l.trim() == "[callpark]")
    })
}

/// A file named as README names the include that extensions.conf reads, whatever it holds.
fn included_by_name(etc: &Etc) -> Option<&ConfFile> {
    etc.dialplan_files
        .iter()
        .skip(1)
        .find(|c| c.path.file_name().is_some_and(|n| n == "callpark.conf"))
}

/// Where the include is, or where it is to be written.
pub(super) fn include_path(etc: &Etc) -> PathBuf {
    found_include(etc)
        .or_else(|| included_by_name(etc))
        .map_or_else(|| etc.dir.join("callpark.conf"), |c| c.path.clone())
}

fn current(c: &ConfFile, want: &str) -> bool {
    stamp::find(&c.text).as_deref() == Some(want) && stamp::verifies(&c.text)
}

/// What Asterisk has loaded, asked over AMI: the stamp of `[callpark-down]`.
fn loaded(cfg: &Config, pbx: &PbxConfig, opts: &Options, f: &Facts) -> Vec<Check> {
    let Some(a) = &opts.ami else {
        return vec![Check::skip(
            "loaded",
            "the files were checked, not the dial plan Asterisk has loaded: --ami HOST:PORT (and the manager secret in $CALLPARK_AMI_SECRET) checks that too",
        )];
    };
    let Some(am) = &f.ami else {
        return vec![Check::skip(
            "loaded",
            "AMI was not asked: ARI did not answer",
        )];
    };
    let user = &a.username;
    let session = match &am.connect {
        None => Check::ok(
            "ami",
            format!("logged in to AMI at {} as {user}", a.address),
        ),
        Some(AmiError::Unreachable(e)) => Check::warn(
            "ami",
            format!(
                "AMI at {} did not answer: {e}: what Asterisk has loaded was not checked",
                a.address
            ),
            vec![
                "enabled = yes   (in [general] of manager.conf)".into(),
                format!(
                    "port = {}   (in [general] of manager.conf)",
                    a.address.rsplit_once(':').map_or("5038", |(_, p)| p)
                ),
                "asterisk -rx \"manager reload\"".into(),
            ],
        ),
        Some(AmiError::Refused(m)) => Check::warn(
            "ami",
            format!(
                "AMI at {} refused user {user} ({m}): what Asterisk has loaded was not checked",
                a.address
            ),
            vec![
                format!("[{user}]   (in manager.conf)"),
                "secret = <the secret in $CALLPARK_AMI_SECRET, or the variable --ami-secret-env names>".into(),
                // Action: Command needs the command class to write, nothing to read.
                "write = command".into(),
                "asterisk -rx \"manager reload\"".into(),
            ],
        ),
    };
    if am.connect.is_some() {
        return vec![session];
    }
    let want = expected_stamp(cfg, pbx);
    let files_current = found_include(&f.etc).is_some_and(|c| current(c, &want));
    let reload = if files_current || !f.etc.present {
        vec![DIALPLAN_RELOAD.to_string()]
    } else {
        vec![format!(
            "{DIALPLAN_RELOAD}   (once the include above is right)"
        )]
    };
    let check = match &am.stamp {
        Some(Ok(out)) => match stamp::find(out) {
            Some(s) if s == want => Check::ok(
                "loaded",
                format!("Asterisk has loaded the current include (stamp {want})"),
            ),
            Some(s) => Check::fail(
                "loaded",
                format!(
                    "the dial plan Asterisk has loaded is stale: it carries stamp {s}, this configuration generates {want}"
                ),
                reload,
            ),
            None => Check::fail(
                "loaded",
                "the dial plan Asterisk has loaded has no callpark include (no callpark-stamp@callpark-down)",
                reload,
            ),
        },
        Some(Err(e)) => Check::warn(
            "loaded",
            format!("AMI did not run `dialplan show` ({e})"),
            vec![format!("write = command   (in [{user}] of manager.conf)")],
        ),
        None => Check::skip("loaded", "AMI was not asked"),
    };
    vec![session, check]
}
