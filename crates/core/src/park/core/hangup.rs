//! A channel left: the parked caller hung up, a leg hung up, or a transfer replaced it.

use crate::park::types::*;

use super::{ParkCore, Role};

impl ParkCore {
    pub(super) fn on_hangup(&mut self, now: Millis, ch: ChannelId, out: &mut Vec<Command>) {
        if let Some(w) = self.waiting.remove(&ch) {
            // A waiting retriever gave up.
            self.deadlines.remove(&(w.due, ch));
            return;
        }
        let Some((parked, role)) = self.channels.get(&ch).cloned() else {
            return;
        };
        match role {
            Role::Parked => {
                // The parked caller left: cancel whatever rings for it.
                let call = &self.calls[&parked];
                match &call.state {
                    CallState::Connecting {
                        leg,
                        via: Via::Retrieve { .. },
                        ..
                    } => {
                        if let Some(o) = call.orbit {
                            out.push(Command::OrbitEmpty {
                                channel: leg.clone(),
                                orbit: o,
                            });
                        }
                    }
                    state => {
                        if let Some(leg) = state.leg() {
                            out.push(Command::Hangup {
                                channel: leg.clone(),
                            });
                        }
                    }
                }
                self.finish(
                    now,
                    &parked,
                    LogKind::Abandoned,
                    "the parked caller hung up".into(),
                    out,
                );
            }
            Role::Leg => self.leg_lost(now, &parked, "hung up", false, out),
        }
    }

    /// A held call's channel left, replaced by a transfer: its orbit waits (still lit, not
    /// retrievable) for the call taking its place, for at most [`HANDOVER_TIMEOUT`].
    pub(super) fn on_replaced(&mut self, now: Millis, ch: ChannelId, out: &mut Vec<Command>) {
        if !self.can_hand_over(&ch) {
            return self.on_hangup(now, ch, out);
        }
        let call = &self.calls[&ch];
        match (&call.state, call.orbit) {
            // The consultation of an attended park left as someone dialled its orbit: the
            // orbit is the caller's now, who is on the way; the retriever hears it empty.
            (
                CallState::Connecting {
                    leg,
                    via: Via::Retrieve { .. },
                    ..
                },
                Some(orbit),
            ) => {
                out.push(Command::OrbitEmpty {
                    channel: leg.clone(),
                    orbit,
                });
            }
            (state, _) => {
                if let Some(leg) = state.leg() {
                    out.push(Command::Hangup {
                        channel: leg.clone(),
                    });
                }
            }
        }
        self.update(&ch, |c| {
            c.state = CallState::Replaced;
            c.deadline = now + HANDOVER_TIMEOUT;
        });
    }
}
