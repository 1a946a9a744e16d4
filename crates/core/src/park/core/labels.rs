//! How the core names parties and destinations in its log, notifications and caller ids.

use crate::park::types::*;

pub(super) fn party_label(p: &Party) -> String {
    match (p.name.is_empty(), p.number.is_empty()) {
        (false, false) => format!("{} <{}>", p.name, p.number),
        (false, true) => p.name.clone(),
        (true, false) => p.number.clone(),
        (true, true) => "an unknown caller".into(),
    }
}

pub(super) fn destination_label(s: &Settings) -> String {
    s.on_timeout
        .as_ref()
        .map(|d| d.to_string())
        .unwrap_or_default()
}

/// The name to show of a caller: its name, else its number.
pub(super) fn caller_name(p: &Party) -> &str {
    if p.name.is_empty() {
        &p.number
    } else {
        &p.name
    }
}

/// What a ringback or fallback shows: `Parked 701: Carol` (the lot's prefix) and the parked
/// caller's own number, so the phone can tell whose call comes back.
pub(super) fn orbit_caller_id(call: &ParkedCall, cfg: &Settings) -> Party {
    let prefix = &cfg.caller_id_prefix;
    let orbit = match call.orbit {
        Some(o) => format!("{prefix} {o}"),
        None => format!("{prefix} call"),
    };
    let who = caller_name(&call.caller);
    Party {
        name: if who.is_empty() {
            orbit
        } else {
            format!("{orbit}: {who}")
        },
        number: call.caller.number.clone(),
    }
}
