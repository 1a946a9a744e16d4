//! The invariants a fault run checks after every cycle: no call lost between the PBX, the
//! store and the log, and no orbit held twice.

use std::collections::{HashMap, HashSet};

use callpark::park::ParkedCall;
use callpark::store::LogRow;

use super::bed::Bed;
use super::site::Site;

/// The channel a problem names: an Asterisk id (`1796526023.500`) or a FreeSWITCH uuid.
pub(super) fn problem_id(p: &str) -> Option<&str> {
    p.split_whitespace().find(|w| {
        (w.len() == 36 && w.matches('-').count() == 4)
            || w.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            })
    })
}

/// Ids the store knows: parked channels and the legs of their calls.
pub(super) fn known(store: &[ParkedCall]) -> HashSet<String> {
    let mut k = HashSet::new();
    for c in store {
        k.insert(c.channel.as_str().to_string());
        if let Some(l) = c.state.leg() {
            k.insert(l.as_str().to_string());
        }
    }
    k
}

/// What a park may start once: the run's `max_pickup_attempts` is 1, and there is one
/// `on_timeout` destination. A second start in one park is a deadline fired twice (by two
/// holders, or by one that forgot it had).
const AT_MOST_ONCE: [&str; 2] = ["ringback_started", "fallback_started"];

/// Deadlines fired twice, read from the event log: a second ringback or fallback within one
/// park, or a call parked again after callpark hung it up (its timers then run a second
/// time). History, not a state a recovery mends: each is reported once (`reported` keeps
/// what was).
pub(super) fn fired_twice(rows: &[LogRow], reported: &mut HashSet<String>) -> Vec<String> {
    let mut rows: Vec<&LogRow> = rows.iter().collect();
    rows.sort_by_key(|r| r.id);
    // channel -> (the previous entry's kind, starts in the current park)
    let mut calls: HashMap<&str, (&str, HashMap<&str, u32>)> = HashMap::new();
    let mut found = Vec::new();
    for r in rows {
        let (last, starts) = calls.entry(r.channel.as_str()).or_default();
        let kind = r.kind.as_str();
        if kind == "parked" {
            if *last == "disconnected" {
                found.push(format!(
                    "{} was parked again after callpark hung it up (entry {})",
                    r.channel, r.id
                ));
            }
            starts.clear();
        }
        if AT_MOST_ONCE.contains(&kind) {
            let n = starts.entry(kind).or_default();
            *n += 1;
            if *n > 1 {
                found.push(format!(
                    "{} has a second `{kind}` in one park (entry {}): a deadline fired twice",
                    r.channel, r.id
                ));
            }
        }
        *last = kind;
    }
    found.retain(|p| reported.insert(p.clone()));
    found
}

/// One look at the invariants; the problems found, none when they hold.
pub(super) async fn look(bed: &Bed, site: &Site, handed: &HashSet<String>) -> Vec<String> {
    let store = site.parked().await;
    let chans = bed.channels().await;
    let known = known(&store);
    let held = bed.held(&chans, &known).await;
    let mut problems = Vec::new();
    if let Some(who) = site.exited() {
        problems.push(format!(
            "{who} exited by itself (its log's last ERROR or panic says why)"
        ));
    }
    let mut orbits = HashSet::new();
    for c in &store {
        if !chans.contains_key(c.channel.as_str()) {
            problems.push(format!(
                "the store holds {} without a live channel",
                c.channel
            ));
        }
        if let Some(o) = c.orbit {
            if !orbits.insert(o) {
                problems.push(format!("orbit {o} is held twice"));
            }
        }
    }
    // A retriever told its orbit is empty (or a park refused) in the last 15 s is being
    // answered by callpark: it hears the prompt, then is hung up (or sent back); it is not a
    // call left behind. One still there after that is.
    let rows = site.log_rows().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let answered: HashSet<&str> = rows
        .iter()
        .filter(|r| matches!(r.kind.as_str(), "orbit_empty" | "refused"))
        .filter(|r| now - r.at < 15_000)
        .map(|r| r.channel.as_str())
        .collect();
    for h in &held {
        if !known.contains(h) && !answered.contains(h.as_str()) {
            problems.push(format!(
                "{h} sits in callpark's hands, unknown to the store"
            ));
        }
    }
    // A call callpark logged as parked is parked still, or its park has a final entry.
    let mut last: HashMap<&str, &str> = HashMap::new();
    for r in &rows {
        last.insert(r.channel.as_str(), r.kind.as_str());
    }
    let finals = [
        "retrieved",
        "reconnected",
        "fallback_answered",
        "returned",
        "disconnected",
        "abandoned",
    ];
    for ch in handed {
        let parked_once = rows.iter().any(|r| r.channel == *ch && r.kind == "parked");
        let in_store = store.iter().any(|c| c.channel.as_str() == ch);
        let ended = last.get(ch.as_str()).is_some_and(|k| finals.contains(k));
        if parked_once && !in_store && !ended {
            problems.push(format!(
                "{ch} was parked and left the store without a final entry"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The channel a problem names, as a slow recovery looks for it in callpark's log.
    fn row(id: i64, channel: &str, kind: &str) -> LogRow {
        LogRow {
            id,
            at: id * 1000,
            pool: "pbx-b".into(),
            kind: kind.into(),
            channel: channel.into(),
            orbit: Some("605".into()),
            lot: None,
            detail: String::new(),
        }
    }

    /// One ringback and one fallback per park; a new park (re-parked after a retrieve) starts
    /// afresh; a park after callpark's own hang-up is the hang-up lost, and is reported, each
    /// problem once.
    #[test]
    fn a_deadline_fired_twice_is_found_once() {
        let log = [
            row(1, "a", "parked"),
            row(2, "a", "ringback_started"),
            row(3, "a", "ringback_missed"),
            row(4, "a", "fallback_started"),
            row(5, "a", "fallback_answered"),
            row(6, "a", "parked"),
            row(7, "a", "ringback_started"),
            row(8, "b", "parked"),
            row(9, "b", "fallback_started"),
            row(10, "b", "fallback_missed"),
            row(11, "b", "disconnected"),
            row(12, "b", "parked"),
            row(13, "b", "fallback_started"),
            row(14, "c", "parked"),
            row(15, "c", "ringback_started"),
            row(16, "c", "ringback_started"),
        ];
        let mut reported = HashSet::new();
        assert_eq!(
            fired_twice(&log, &mut reported),
            [
                "b was parked again after callpark hung it up (entry 12)",
                "c has a second `ringback_started` in one park (entry 16): a deadline fired twice",
            ]
        );
        assert!(fired_twice(&log, &mut reported).is_empty(), "each once");
    }

    #[test]
    fn a_problem_names_its_channel() {
        assert_eq!(
            problem_id("the store holds 1796526023.500 without a live channel"),
            Some("1796526023.500")
        );
        assert_eq!(
            problem_id(
                "0b7c3b1e-8a4c-4f57-9d2e-0c1f4f6a9e21 sits in callpark's hands, unknown to the store"
            ),
            Some("0b7c3b1e-8a4c-4f57-9d2e-0c1f4f6a9e21")
        );
        assert_eq!(problem_id("orbit 701 is held twice"), None);
        assert_eq!(
            problem_id("callpark exited by itself (its log's last ERROR or panic says why)"),
            None
        );
    }
}
