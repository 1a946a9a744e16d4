//! Busy lamps across pools. Orbits are globally unique and each PBX's include routes the other
//! pools' orbits to their owner, so a phone on one PBX may have a key for an orbit another PBX
//! owns. Each pool's loop shows its lamps here; every other pool's loop sends them to its own
//! PBX as it sends its own (FreeSWITCH's presence, Asterisk's device state behind the include's
//! hints), and again after it (re)connects, from what is lit now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::orbit::Orbit;
use crate::park::LampState;

/// A lamp a pool shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shown {
    pub pool: String,
    pub orbit: Orbit,
    pub state: LampState,
}

/// What every pool of one `callpark run` shows: changes as they come, and the lamps lit now.
#[derive(Debug, Clone)]
pub(crate) struct LampBoard {
    changes: broadcast::Sender<Shown>,
    /// Lit lamps only (idle ones are dropped): bounded by the orbits in use.
    lit: Arc<Mutex<HashMap<Orbit, Shown>>>,
}

impl Default for LampBoard {
    fn default() -> Self {
        // A pool behind by more than this (a burst of parks while its loop commits) misses
        // changes: it then sends every lit lamp again (see `lit_elsewhere`).
        let (changes, _) = broadcast::channel(4096);
        LampBoard {
            changes,
            lit: Arc::default(),
        }
    }
}

impl LampBoard {
    /// `pool` shows `state` on `orbit`.
    pub(crate) fn show(&self, pool: &str, orbit: Orbit, state: LampState) {
        let shown = Shown {
            pool: pool.to_string(),
            orbit,
            state,
        };
        {
            let mut lit = self.lit.lock().unwrap_or_else(|e| e.into_inner());
            if state == LampState::Idle {
                lit.remove(&orbit);
            } else {
                lit.insert(orbit, shown.clone());
            }
        }
        // No receiver (a single pool) is no error.
        let _ = self.changes.send(shown);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Shown> {
        self.changes.subscribe()
    }

    /// The lamps other pools than `pool` have lit now.
    pub(crate) fn lit_elsewhere(&self, pool: &str) -> Vec<(Orbit, LampState)> {
        let lit = self.lit.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(Orbit, LampState)> = lit
            .values()
            .filter(|s| s.pool != pool)
            .map(|s| (s.orbit, s.state))
            .collect();
        out.sort_by_key(|(o, _)| o.to_string());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Orbit {
        s.parse().unwrap()
    }

    #[test]
    fn what_other_pools_have_lit_now_and_every_change() {
        let board = LampBoard::default();
        let mut rx = board.subscribe();
        board.show("a", o("701"), LampState::InUse);
        board.show("b", o("601"), LampState::Ringing);
        board.show("a", o("702"), LampState::InUse);
        board.show("a", o("702"), LampState::Idle);
        assert_eq!(board.lit_elsewhere("b"), [(o("701"), LampState::InUse)]);
        assert_eq!(board.lit_elsewhere("a"), [(o("601"), LampState::Ringing)]);
        let seen: Vec<(String, String, LampState)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|s| (s.pool, s.orbit.to_string(), s.state))
            .collect();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[3], ("a".into(), "702".into(), LampState::Idle));
    }
}
