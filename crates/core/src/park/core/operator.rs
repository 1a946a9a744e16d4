//! What an operator asks of a parked call through the admin API: send it somewhere, or
//! hang it up.

use crate::orbit::Orbit;
use crate::park::types::*;

use super::ParkCore;

impl ParkCore {
    /// An operator sends the call on `orbit` to `to` (an extension or endpoint): it rings
    /// there, is bridged when answered, as if `to` had dialled the orbit, and stays parked (with
    /// its music and timers) if nobody answers. Refused for an orbit with no call, or a call
    /// being connected already.
    pub fn deliver(
        &mut self,
        now: Millis,
        orbit: Orbit,
        to: Target,
        label: &str,
    ) -> Result<Vec<Command>, OperatorError> {
        let parked = self
            .by_orbit
            .get(&orbit)
            .cloned()
            .ok_or(OperatorError::NoCall(orbit))?;
        let call = &self.calls[&parked];
        if matches!(
            call.state,
            CallState::Connecting { .. } | CallState::Replaced
        ) {
            return Err(OperatorError::Busy(orbit));
        }
        let cfg = self.cfg_of(&parked);
        let mut out = Vec::new();
        if let Some(leg) = call.state.leg() {
            out.push(Command::Hangup {
                channel: leg.clone(),
            });
        }
        let resume = match &call.state {
            CallState::Parked => call.deadline,
            _ => now + cfg.pickup_timeout,
        };
        // Its own id per request, derived from the time so the core stays deterministic.
        let leg = parked.leg(&format!("op{now}"));
        out.push(Command::Originate {
            channel: leg.clone(),
            target: to,
            caller_id: call.caller.clone(),
            timeout_ms: cfg.ringback_ring_time,
            purpose: LegPurpose::Deliver,
        });
        self.push_log(
            now,
            LogKind::RetrieveStarted,
            &parked,
            Some(orbit),
            format!("operator to {label}"),
        );
        let deadline = now + cfg.ringback_ring_time;
        self.update(&parked, |c| {
            c.state = CallState::Delivering {
                leg,
                to: label.to_string(),
                resume,
            };
            c.deadline = deadline;
        });
        self.flush_lamps(&mut out);
        Ok(out)
    }

    /// An operator hangs up the call on `orbit`.
    pub fn hang_up(&mut self, now: Millis, orbit: Orbit) -> Result<Vec<Command>, OperatorError> {
        let parked = self
            .by_orbit
            .get(&orbit)
            .cloned()
            .ok_or(OperatorError::NoCall(orbit))?;
        let mut out = Vec::new();
        if let Some(leg) = self.calls[&parked].state.leg() {
            out.push(Command::Hangup {
                channel: leg.clone(),
            });
        }
        out.push(Command::Hangup {
            channel: parked.clone(),
        });
        self.finish(
            now,
            &parked,
            LogKind::Disconnected,
            "hung up by the operator".into(),
            &mut out,
        );
        Ok(out)
    }
}
