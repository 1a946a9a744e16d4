//! The plan as callpark TOML, each table with a comment naming the Lync record it comes from.
//! With `--base`, that file comes first, less what the import replaces.

use std::fmt::Write as _;

use super::map::{Plan, Said, Settings, a_pbx, kind_str};
use super::options::Base;
use crate::config::PbxKind;

/// The `[park]` keys the import sets; the others of `--base`'s `[park]` are kept.
const IMPORTED_PARK_KEYS: [&str; 4] = [
    "pickup_timeout",
    "max_pickup_attempts",
    "on_timeout",
    "music_on_hold",
];
/// The tables the import writes whole, replacing `--base`'s.
const REPLACED: [&str; 3] = ["policy", "lot", "orbit_range"];

/// A TOML basic string.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text for a comment: a line break in a file name or an Identity would end the comment.
fn one_line(s: &str) -> String {
    s.replace(|c: char| c.is_control(), " ")
}

fn list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", q.join(", "))
}

fn duration(d: std::time::Duration) -> String {
    quote(&humantime::format_duration(d).to_string())
}

/// `--base` less what the import replaces, and the keys of its `[park]` to keep.
fn base_part(base: &Base, plan: &Plan, said: &mut Said) -> (String, Vec<(String, String)>) {
    let mut doc: toml_edit::DocumentMut = base.text.parse().expect("parsed by Options");
    let replaced: Vec<&str> = REPLACED
        .into_iter()
        .filter(|k| doc.remove(k).is_some())
        .collect();
    if !replaced.is_empty() {
        let t: Vec<String> = replaced.iter().map(|k| format!("[[{k}]]")).collect();
        said.warnings.push(format!(
            "--base {}: its {} are replaced by the imported ones",
            base.file,
            t.join(", ")
        ));
    }
    let mut kept = Vec::new();
    if let Some(park) = doc.remove("park").and_then(|p| p.into_table().ok()) {
        for (k, v) in park.iter() {
            if IMPORTED_PARK_KEYS.contains(&k) {
                continue;
            }
            if !plan.park.music_on_hold && k.starts_with("music_on_hold_") {
                said.warnings.push(format!(
                    "--base {}: park.{k} is left out: EnableMusicOnHold is False",
                    base.file
                ));
                continue;
            }
            if let Some(mut v) = v.as_value().cloned() {
                v.decor_mut().clear();
                kept.push((k.to_string(), v.to_string()));
            }
        }
    }
    let mut text = doc.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    (text, kept)
}

/// A lot's settings that differ from `[park]`'s (the rest it takes from there).
fn lot_settings(s: &mut String, set: &Settings, park: &Settings) {
    if set.pickup_timeout != park.pickup_timeout {
        let _ = writeln!(s, "pickup_timeout = {}", duration(set.pickup_timeout));
    }
    if set.max_pickup_attempts != park.max_pickup_attempts {
        let _ = writeln!(s, "max_pickup_attempts = {}", set.max_pickup_attempts);
    }
    if set.on_timeout != park.on_timeout {
        // `none`: no fallback for this lot even though [park] has one.
        let v = set.on_timeout.as_deref().unwrap_or("none");
        let _ = writeln!(s, "on_timeout = {}", quote(v));
    }
    if set.music_on_hold != park.music_on_hold {
        let _ = writeln!(s, "music_on_hold = {}", set.music_on_hold);
    }
}

pub(super) fn render(plan: &Plan, files: &[&str], base: Option<&Base>, said: &mut Said) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Imported from Lync / Skype for Business Server by `callpark import lync`, from:"
    );
    for f in files {
        let _ = writeln!(s, "#   {}", one_line(f));
    }
    let _ = writeln!(
        s,
        "# What the exports cannot tell (each PBX's address and secret, `reach` between PBXes,\n# who holds a per-user or site policy) is marked below. Check it, then `callpark check-config`.\n"
    );
    let kept = match base {
        Some(b) => {
            let (text, kept) = base_part(b, plan, said);
            let _ = writeln!(s, "# From {} (--base):\n{text}", one_line(&b.file));
            kept
        }
        None => Vec::new(),
    };

    let _ = writeln!(s, "[park]");
    match &plan.park_from {
        Some(o) => {
            let from = format!("{} `{}` ({}:{})", o.cmdlet, o.identity, o.file, o.line);
            let _ = writeln!(s, "# {}", one_line(&from));
        }
        None => {
            let _ = writeln!(
                s,
                "# Lync's defaults: no Global Get-CsCpsConfiguration was given"
            );
        }
    }
    let p = &plan.park;
    let _ = writeln!(
        s,
        "pickup_timeout = {}   # CallPickupTimeoutThreshold",
        duration(p.pickup_timeout)
    );
    let _ = writeln!(
        s,
        "max_pickup_attempts = {}   # MaxCallPickupAttempts",
        p.max_pickup_attempts
    );
    if let Some(uri) = &p.on_timeout {
        let _ = writeln!(s, "on_timeout = {}   # OnTimeoutURI", quote(uri));
    }
    let _ = writeln!(
        s,
        "music_on_hold = {}   # EnableMusicOnHold",
        p.music_on_hold
    );
    for (k, v) in &kept {
        let _ = writeln!(s, "{k} = {v}");
    }

    for pol in &plan.policies {
        let _ = writeln!(s, "\n# {}", one_line(&pol.why));
        if pol.patterns.is_empty() {
            let _ = writeln!(
                s,
                "# Nobody is named: list its users (caller number, endpoint or user) or patterns."
            );
        }
        let _ = writeln!(s, "[[policy]]");
        let _ = writeln!(s, "name = {}", quote(&pol.name));
        let _ = writeln!(s, "enable_call_park = {}", pol.enable);
        let _ = writeln!(s, "users = []");
        let _ = writeln!(s, "patterns = {}", list(&pol.patterns));
        if let Some(lots) = &pol.lots {
            let _ = writeln!(s, "lots = {}", list(lots));
        }
        if let Some(d) = &pol.default_lot {
            let _ = writeln!(s, "default_lot = {}", quote(d));
        }
    }

    for pbx in plan.pbx.iter().filter(|p| !p.from_base) {
        let _ = writeln!(
            s,
            "\n# Takes the orbits of {}. Address and secret: those of {} on this machine; set this PBX's.",
            one_line(&pbx.serves.join(", ")),
            a_pbx(pbx.kind)
        );
        let _ = writeln!(s, "[[pbx]]");
        let _ = writeln!(s, "name = {}", quote(&pbx.name));
        let _ = writeln!(s, "kind = {}", quote(kind_str(pbx.kind)));
        match pbx.kind {
            PbxKind::Asterisk => {
                let _ = writeln!(s, "address = \"http://127.0.0.1:8088\"");
                let _ = writeln!(s, "username = \"callpark\"");
                let _ = writeln!(s, "password_env = \"CALLPARK_ARI_PASSWORD\"");
            }
            PbxKind::Freeswitch => {
                let _ = writeln!(s, "address = \"127.0.0.1:8021\"");
                let _ = writeln!(s, "password_env = \"CALLPARK_ESL_PASSWORD\"");
            }
        }
    }

    for lot in &plan.lots {
        let _ = writeln!(s, "\n# {}", one_line(&lot.why));
        let _ = writeln!(s, "[[lot]]");
        let _ = writeln!(s, "name = {}", quote(&lot.name));
        lot_settings(&mut s, &lot.settings, &plan.park);
    }

    for r in &plan.ranges {
        let _ = writeln!(s, "\n# {}", one_line(&r.why));
        let _ = writeln!(s, "[[orbit_range]]");
        let _ = writeln!(s, "name = {}", quote(&r.name));
        let _ = writeln!(s, "first = {}", quote(&r.span.first.to_string()));
        let _ = writeln!(s, "last = {}", quote(&r.span.last.to_string()));
        let _ = writeln!(s, "pool = {}", quote(&r.pool));
        if let Some(l) = &r.lot {
            let _ = writeln!(s, "lot = {}", quote(l));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_read_back_as_written() {
        for v in [
            "Redmond CPO 1",
            "say \"hi\"",
            "back\\slash",
            "tab\there",
            "bell\u{7}",
            "é",
        ] {
            let doc: toml_edit::DocumentMut = format!("v = {}", quote(v)).parse().unwrap();
            assert_eq!(doc["v"].as_str(), Some(v));
        }
    }
}
