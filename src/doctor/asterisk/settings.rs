//! What users notice beyond the park itself: who parked, in ARI's events (ari.conf's
//! channelvars); whom a retriever now has, on its phone (pjsip.conf's send_pai); what a
//! parked caller hears (music classes).

use std::path::Path;

use super::Facts;
use super::ami::moh_classes;
use super::files::{Loaded, Section, ast_true};
use crate::config::{Config, ParkConfig, PbxConfig};
use crate::doctor::Check;

/// The variables callpark reads from every event's channel to learn who parked.
const CHANNELVARS: [&str; 3] = ["BLINDTRANSFER", "ATTENDEDTRANSFER", "FORWARDERNAME"];

/// The check a file that was not read turns into.
fn not_read<T>(topic: &'static str, l: &Loaded<T>, path: &str) -> Check {
    match l {
        Loaded::Unreadable(e) => Check::warn(topic, format!("{path} cannot be read: {e}"), vec![]),
        _ => Check::skip(
            topic,
            format!(
                "{path} does not exist: not checked (pass --asterisk-etc DIR where Asterisk's configuration is)"
            ),
        ),
    }
}

/// Without channelvars callpark asks ARI who parked, one request more per park.
pub(super) fn channelvars(f: &Facts) -> Check {
    let path = f.etc.path("ari.conf");
    let ari = match &f.etc.ari {
        Loaded::Read(a) => a,
        other => return not_read("channelvars", other, &path),
    };
    let set: Vec<String> = ari
        .named("general")
        .last()
        .and_then(|g| ari.value(g, "channelvars"))
        .map(|v| {
            v.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<&str> = CHANNELVARS
        .into_iter()
        .filter(|v| !set.iter().any(|s| s == v))
        .collect();
    if missing.is_empty() {
        return Check::ok(
            "channelvars",
            "ari.conf's channelvars put who parked in every event",
        );
    }
    let mut all = set.clone();
    all.extend(missing.iter().map(|m| m.to_string()));
    Check::warn(
        "channelvars",
        format!(
            "[general] of {path} does not list {} in channelvars: callpark asks ARI who parked, one request more per park",
            missing.join(", ")
        ),
        vec![
            format!(
                "channelvars = {}   (in [general] of ari.conf)",
                all.join(",")
            ),
            "asterisk -rx \"module reload res_ari.so\"".into(),
        ],
    )
}

/// PJSIP sends connected-line updates only with send_pai or send_rpid: without them a phone
/// that retrieves a call keeps showing the orbit it dialled.
pub(super) fn caller_id(f: &Facts) -> Check {
    let path = f.etc.path("pjsip.conf");
    let pjsip = match &f.etc.pjsip {
        Loaded::Read(p) => p,
        other => return not_read("caller id", other, &path),
    };
    let on = |s: &Section, k: &str| pjsip.value(s, k).is_some_and(ast_true);
    let phones = pjsip.phone_endpoints();
    let all: Vec<&str> = phones.iter().map(|s| s.name.as_str()).collect();
    let mute: Vec<&str> = phones
        .iter()
        .filter(|s| !on(s, "send_pai") && !on(s, "send_rpid"))
        .map(|s| s.name.as_str())
        .collect();
    if all.is_empty() {
        return Check::skip("caller id", format!("{path} has no phone endpoint"));
    }
    if mute.is_empty() {
        return Check::ok(
            "caller id",
            format!(
                "endpoints {} send connected-line updates: a retriever's phone shows whom it has",
                all.join(", ")
            ),
        );
    }
    const SHOWN: usize = 8;
    let mut fix: Vec<String> = mute
        .iter()
        .take(SHOWN)
        .map(|e| format!("send_pai = yes   (in [{e}] of pjsip.conf)"))
        .collect();
    if mute.len() > SHOWN {
        fix.push(format!("... and the {} others", mute.len() - SHOWN));
    }
    fix.push("asterisk -rx \"module reload res_pjsip.so\"".into());
    Check::warn(
        "caller id",
        format!(
            "endpoint(s) {} have neither send_pai nor send_rpid: a phone there that retrieves a call keeps showing the orbit, not whom it has",
            mute.join(", ")
        ),
        fix,
    )
}

/// The music each of the pool's lots parks with.
pub(super) fn music(cfg: &Config, pbx: &PbxConfig, f: &Facts) -> Vec<Check> {
    let mut lots: Vec<(String, &ParkConfig)> = vec![("general".into(), &cfg.park)];
    for l in &cfg.lots {
        if cfg
            .orbits
            .pool_ranges(&pbx.name)
            .any(|r| r.lot.as_ref() == Some(&l.name))
        {
            lots.push((format!("lot {}", l.name), &l.park));
        }
    }
    // What Asterisk has loaded, else what musiconhold.conf defines.
    let live = f
        .ami
        .as_ref()
        .and_then(|a| a.moh.as_ref())
        .and_then(|m| m.as_ref().ok())
        .map(|out| (moh_classes(out), "Asterisk has loaded"));
    let classes = live.or_else(|| {
        f.etc.moh.read().map(|moh| {
            let c: Vec<String> = moh
                .sections
                .iter()
                .filter(|s| !s.template && s.name != "general")
                .map(|s| s.name.clone())
                .collect();
            (c, "musiconhold.conf defines")
        })
    });
    lots.into_iter()
        .map(|(who, p)| {
            if !p.music_on_hold {
                return Check::ok("music", format!("{who}: music on hold is off (silence)"));
            }
            if let Some(file) = &p.music_on_hold_file {
                return if Path::new(file).is_file() {
                    Check::ok("music", format!("{who}: {} exists", file.display()))
                } else {
                    Check::warn(
                        "music",
                        format!(
                            "{who}: {} is not a file on this machine: callpark cannot play it, parked calls hear silence",
                            file.display()
                        ),
                        vec![format!("music_on_hold_file = \"<a sound file>\"   ({who} of callpark.toml)")],
                    )
                };
            }
            let class = p.music_on_hold_class.as_deref().unwrap_or("default");
            match &classes {
                None => Check::skip(
                    "music",
                    format!("{who}: class {class} not checked: no musiconhold.conf was read and AMI was not asked"),
                ),
                Some((c, whence)) if c.iter().any(|x| x == class) => Check::ok(
                    "music",
                    format!("{who}: class {class} ({whence} it)"),
                ),
                Some((c, whence)) => Check::warn(
                    "music",
                    format!(
                        "{who}: class {class} is not one {whence} ({}): parked calls hear silence",
                        if c.is_empty() { "none".to_string() } else { c.join(", ") }
                    ),
                    vec![
                        format!("[{class}]   (in musiconhold.conf, with mode = files and a directory of sound files)"),
                        "asterisk -rx \"moh reload\"".into(),
                        format!("(or music_on_hold_class = \"<a class it has>\" for {who} in callpark.toml)"),
                    ],
                ),
            }
        })
        .collect()
}
