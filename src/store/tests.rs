//! Fixtures of the store's tests, and of other modules' tests (a stored call).

use super::*;
use crate::park::{CallState, ChannelId, LogEvent, LogKind, Millis, ParkedCall, Parker, Party};

/// A stored call parked at `parked_at`, its deadline 90 s later (other modules' tests too).
pub(crate) fn call(ch: &str, orbit: &str, parked_at: Millis) -> ParkedCall {
    ParkedCall {
        channel: ChannelId::new(ch),
        orbit: Some(orbit.parse().unwrap()),
        caller: Party {
            name: "Carol \"Reception\" \\ Ünï 📞".into(),
            number: "5551234".into(),
        },
        parker: Parker {
            ids: vec!["alice".into()],
            endpoint: Some("PJSIP/alice".into()),
            display: "PJSIP/alice".into(),
        },
        lot: None,
        parked_at,
        deadline: parked_at + 90_000,
        attempts: 0,
        fallback_tried: false,
        state: CallState::Parked,
        page: Default::default(),
    }
}

/// A `parked` log entry of `ch`.
pub(crate) fn entry(ch: &str, orbit: Option<&str>, lot: Option<&str>, detail: &str) -> LogEvent {
    LogEvent {
        at: 1_700_000_000_123,
        kind: LogKind::Parked,
        channel: ChannelId::new(ch),
        orbit: orbit.map(|o| o.parse().unwrap()),
        lot: lot.map(str::to_string),
        detail: detail.into(),
    }
}

/// A new store in a directory of its own, removed when the directory is dropped.
pub(crate) async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Store::open(&dir.path().join("s.db")).await.unwrap(), dir)
}
