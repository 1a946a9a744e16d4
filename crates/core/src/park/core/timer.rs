//! A call's deadline passed: a ringback starts, a leg rang too long, a bridge never came up.

use crate::park::types::*;

use super::ParkCore;
use super::labels::orbit_caller_id;

impl ParkCore {
    pub(super) fn on_deadline(&mut self, now: Millis, parked: ChannelId, out: &mut Vec<Command>) {
        if let Some(w) = self.waiting.remove(&parked) {
            return self.settled(now, parked, w, out);
        }
        let Some(call) = self.calls.get(&parked) else {
            return;
        };
        let cfg = self.cfg_of(&parked);
        match &call.state {
            CallState::Parked => {
                let endpoint = call.parker.endpoint.clone();
                match endpoint {
                    // Nobody to ring back (the parker is unknown, or dialled the park code
                    // itself): straight to the fallback, or parked until retrieved.
                    None if cfg.on_timeout.is_none() || call.fallback_tried => {
                        self.push_log(
                            now,
                            LogKind::KeptParked,
                            &parked,
                            call.orbit,
                            "nobody to ring back and no on_timeout destination: parked until retrieved"
                                .into(),
                        );
                        self.update(&parked, |c| c.deadline = NO_DEADLINE);
                    }
                    Some(ep) if call.attempts < cfg.max_pickup_attempts => {
                        let attempt = call.attempts + 1;
                        let leg = parked.leg(&format!("rb{attempt}"));
                        out.push(Command::Originate {
                            channel: leg.clone(),
                            target: Target::Endpoint(ep),
                            caller_id: orbit_caller_id(call, &cfg),
                            timeout_ms: cfg.ringback_ring_time,
                            purpose: LegPurpose::Ringback { attempt },
                        });
                        self.push_log(
                            now,
                            LogKind::RingbackStarted,
                            &parked,
                            call.orbit,
                            format!("ringback {attempt} of {}", cfg.max_pickup_attempts),
                        );
                        let deadline = now + cfg.ringback_ring_time;
                        self.update(&parked, |c| {
                            c.attempts = attempt;
                            c.state = CallState::Ringback { leg, attempt };
                            c.deadline = deadline;
                        });
                    }
                    _ => self.go_fallback(now, &parked, out),
                }
            }
            CallState::Ringback { .. }
            | CallState::Fallback { .. }
            | CallState::Returning { .. }
            | CallState::Delivering { .. } => {
                self.leg_lost(now, &parked, "not answered in time", true, out);
            }
            CallState::Connecting { .. } => {
                self.leg_lost(
                    now,
                    &parked,
                    "the bridge did not come up in time",
                    true,
                    out,
                );
            }
            CallState::Replaced => self.finish(
                now,
                &parked,
                LogKind::Abandoned,
                "replaced by a transfer whose caller never arrived".into(),
                out,
            ),
        }
    }
}
