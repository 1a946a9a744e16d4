//! Park and page: a parked call announced at its lot's `page` destination, repeated at
//! `page_interval` up to `page_repeat` times while it waits.

use crate::park::types::*;

use super::ParkCore;
use super::labels::caller_name;

impl ParkCore {
    /// Places the next page of a call on an orbit whose lot pages. Placed after the park's
    /// own commands: the caller's music and the lamp never wait on it.
    pub(super) fn page(&mut self, now: Millis, parked: &ChannelId, out: &mut Vec<Command>) {
        let cfg = self.cfg_of(parked);
        let Some(call) = self.calls.get(parked) else {
            return;
        };
        let (Some(target), Some(orbit)) = (cfg.page.clone(), call.orbit) else {
            return;
        };
        let n = call.page.sent + 1;
        let total = cfg.page_repeat.saturating_add(1);
        let leg = parked.leg(&format!("pg{n}"));
        let who = caller_name(&call.caller);
        // The page's number is the orbit: "call back" on the paged phone retrieves the call.
        let caller_id = Party {
            name: if who.is_empty() {
                format!("{} {orbit}", cfg.caller_id_prefix)
            } else {
                format!("{} {orbit}: {who}", cfg.caller_id_prefix)
            },
            number: orbit.to_string(),
        };
        out.push(Command::Page {
            channel: leg.clone(),
            target: target.clone(),
            orbit,
            caller_id,
            timeout_ms: cfg.ringback_ring_time,
        });
        let next = (n < total).then(|| now + cfg.page_interval);
        self.update(parked, |c| {
            c.page = Paging {
                sent: n,
                next,
                leg: Some(leg),
            }
        });
        self.push_log(
            now,
            LogKind::Paged,
            parked,
            Some(orbit),
            format!("page {n} of {total} to {target}"),
        );
    }

    /// A call's next page is due: placed while the call waits on its orbit (parked, or ringing
    /// back with the orbit still retrievable); while it is being connected or handed over, put
    /// off by one interval, as it may yet come back to its orbit.
    pub(super) fn on_page_due(&mut self, now: Millis, parked: ChannelId, out: &mut Vec<Command>) {
        let Some(call) = self.calls.get(&parked) else {
            return;
        };
        match call.state {
            CallState::Parked
            | CallState::Ringback { .. }
            | CallState::Fallback { .. }
            | CallState::Delivering { .. } => self.page(now, &parked, out),
            CallState::Connecting { .. } | CallState::Replaced | CallState::Returning { .. } => {
                let later = now + self.cfg_of(&parked).page_interval;
                self.update(&parked, |c| c.page.next = Some(later));
            }
        }
    }
}
