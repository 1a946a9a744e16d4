//! Connecting a parked call: a dial of its orbit, an originated leg answered, the bridge up.

use crate::orbit::Orbit;
use crate::park::types::*;

use super::labels::{destination_label, party_label};
use super::{ParkCore, Role, Waiting};

impl ParkCore {
    pub(super) fn on_retrieve(
        &mut self,
        now: Millis,
        ch: ChannelId,
        orbit: Orbit,
        by: Party,
        dialler: Parker,
        out: &mut Vec<Command>,
    ) {
        if self.waiting.contains_key(&ch) {
            return; // waiting already (reported again on reconnecting)
        }
        match self.channels.get(&ch).cloned() {
            // The retriever being connected, reported again (found on reconnect, not bridged):
            // it must not hear "empty", it is the one the call waits for.
            Some((parked, Role::Leg)) => return self.bridge_again(now, &parked, out),
            // A dial of a free orbit held there (see below), reported again as the retrieve it
            // looked like: it is the call on that orbit already, never its own retriever.
            Some((_, Role::Parked)) => return,
            None => {}
        }
        let parked = self.by_orbit.get(&orbit).cloned();
        // The orbit's call is being handed over (its consultation replaced, the caller on the
        // way): the retriever waits for the caller, as it would for a settling call.
        if let Some(p) = parked.as_ref().filter(|p| {
            self.calls
                .get(*p)
                .is_some_and(|c| c.state == CallState::Replaced)
        }) {
            let due = self.calls[p].deadline.saturating_add(1);
            self.deadlines.insert((due, ch.clone()));
            let w = Waiting {
                parked: p.clone(),
                orbit,
                by,
                dialler,
                due,
            };
            self.waiting.insert(ch, w);
            return;
        }
        let Some(parked) = parked.filter(|p| {
            matches!(
                self.calls.get(p).map(|c| &c.state),
                Some(
                    CallState::Parked
                        | CallState::Ringback { .. }
                        | CallState::Fallback { .. }
                        | CallState::Delivering { .. }
                )
            )
        }) else {
            // A free orbit of ours: the call is held there, hearing the orbit, as if it had
            // dialled the park code and been given that orbit. It is how a phone's attended
            // transfer to an orbit starts (the consultation call), which its REFER with
            // Replaces completes by handing the orbit to the caller; the PBX cannot tell it
            // from a retrieve until then. Only a parker a voice policy allows is held.
            let free = !self.by_orbit.contains_key(&orbit) && self.orbits.owns(orbit);
            if free && self.may_park(&dialler) && !self.channels.contains_key(&ch) {
                let req = ParkRequest {
                    announce_to: Some(ch.clone()),
                    orbit: Some(orbit),
                    ..ParkRequest::new(ch, by, dialler)
                };
                return self.on_park(now, req, out);
            }
            // Empty orbit, or another retriever won the race: exactly one is bridged.
            out.push(Command::Answer {
                channel: ch.clone(),
            });
            out.push(Command::OrbitEmpty {
                channel: ch.clone(),
                orbit,
            });
            self.push_log(now, LogKind::OrbitEmpty, &ch, Some(orbit), party_label(&by));
            return;
        };
        // A call parked by dialling, moments ago: as likely as not a phone's consultation
        // whose transfer is on its way. The retriever waits for it to settle.
        if let Some(&until) = self.settling.get(&parked) {
            if now < until {
                self.deadlines.insert((until, ch.clone()));
                let w = Waiting {
                    parked,
                    orbit,
                    by,
                    dialler,
                    due: until,
                };
                self.waiting.insert(ch, w);
                return;
            }
            self.settling.remove(&parked);
        }
        let call = &self.calls[&parked];
        let resume = match &call.state {
            CallState::Parked => call.deadline,
            _ => now + self.cfg_of(&parked).pickup_timeout,
        };
        if let Some(leg) = call.state.leg() {
            out.push(Command::Hangup {
                channel: leg.clone(),
            });
        }
        out.push(Command::Answer {
            channel: ch.clone(),
        });
        self.stop_moh(&parked, out);
        out.push(Command::Bridge {
            parked: parked.clone(),
            other: ch.clone(),
        });
        self.push_log(
            now,
            LogKind::RetrieveStarted,
            &parked,
            Some(orbit),
            party_label(&by),
        );
        let deadline = now + self.settings.bridge_timeout;
        self.update(&parked, |c| {
            c.state = CallState::Connecting {
                leg: ch,
                via: Via::Retrieve { by },
                resume,
            };
            c.deadline = deadline;
        });
    }

    pub(super) fn on_answered(&mut self, now: Millis, leg: ChannelId, out: &mut Vec<Command>) {
        let Some((parked, role)) = self.channels.get(&leg).cloned() else {
            // Only legs the core placed are reported answered. One it no longer knows (its
            // call ended while callpark was down, or the answer crossed a retrieve) would
            // otherwise wait in the PBX in silence.
            out.push(Command::Hangup { channel: leg });
            return;
        };
        if role != Role::Leg {
            return;
        }
        let call = &self.calls[&parked];
        let via = match &call.state {
            CallState::Ringback { attempt, .. } => Via::Ringback { attempt: *attempt },
            CallState::Fallback { .. } => Via::Fallback,
            CallState::Returning { .. } => Via::Return,
            CallState::Delivering { to, .. } => Via::Retrieve {
                by: Party {
                    name: "operator".into(),
                    number: to.clone(),
                },
            },
            // Answered again while connecting: found answered and not bridged on reconnect
            // (callpark stopped between asking for the bridge and seeing it). Ask again.
            CallState::Connecting { .. } => return self.bridge_again(now, &parked, out),
            CallState::Parked | CallState::Replaced => return,
        };
        self.stop_moh(&parked, out);
        out.push(Command::Bridge {
            parked: parked.clone(),
            other: leg.clone(),
        });
        let deadline = now + self.settings.bridge_timeout;
        let resume = now + self.cfg_of(&parked).pickup_timeout;
        self.update(&parked, |c| {
            c.state = CallState::Connecting { leg, via, resume };
            c.deadline = deadline;
        });
    }

    /// Asks again for the bridge of a connecting call, with a fresh bridge deadline.
    fn bridge_again(&mut self, now: Millis, parked: &ChannelId, out: &mut Vec<Command>) {
        let Some(CallState::Connecting { leg, .. }) = self.calls.get(parked).map(|c| &c.state)
        else {
            return;
        };
        let leg = leg.clone();
        self.stop_moh(parked, out);
        out.push(Command::Bridge {
            parked: parked.clone(),
            other: leg,
        });
        let deadline = now + self.settings.bridge_timeout;
        self.update(parked, |c| c.deadline = deadline);
    }

    pub(super) fn on_bridged(&mut self, now: Millis, ch: ChannelId, out: &mut Vec<Command>) {
        let Some((parked, _)) = self.channels.get(&ch).cloned() else {
            return;
        };
        let call = &self.calls[&parked];
        let CallState::Connecting { via, leg, .. } = &call.state else {
            return;
        };
        let (kind, detail) = match via {
            Via::Retrieve { by } => (LogKind::Retrieved, format!("by {}", party_label(by))),
            Via::Ringback { attempt } => (
                LogKind::Reconnected,
                format!("parker answered ringback {attempt}"),
            ),
            Via::Fallback => (
                LogKind::FallbackAnswered,
                destination_label(&self.cfg_of(&parked)),
            ),
            Via::Return => (LogKind::Returned, "parker answered".into()),
        };
        if let (Via::Retrieve { by }, Some(ep), Some(o)) = (via, &call.parker.endpoint, call.orbit)
        {
            out.push(Command::Notify {
                endpoint: ep.clone(),
                text: format!(
                    "Call from {} on {o} was retrieved by {}",
                    party_label(&call.caller),
                    party_label(by)
                ),
            });
        }
        if let Via::Return = via {
            // The transferor hears why the call came back, on its own side of the bridge.
            out.push(Command::ParkFailed {
                channel: leg.clone(),
            });
        }
        self.finish(now, &parked, kind, detail, out);
    }

    /// A waiting retriever's time is up, or the call it waits for settled: it is retrieved
    /// as if it dialled now (the caller that took the consultation's place, the consultation
    /// itself, or "orbit empty"). A call still being handed over is waited for until the
    /// hand-over ends.
    pub(super) fn settled(
        &mut self,
        now: Millis,
        ch: ChannelId,
        w: Waiting,
        out: &mut Vec<Command>,
    ) {
        self.deadlines.remove(&(w.due, ch.clone()));
        self.settling.remove(&w.parked);
        if let Some(call) = self
            .calls
            .get(&w.parked)
            .filter(|c| c.state == CallState::Replaced)
        {
            let due = call.deadline.saturating_add(1);
            self.deadlines.insert((due, ch.clone()));
            self.waiting.insert(ch, Waiting { due, ..w });
            return;
        }
        self.on_retrieve(now, ch, w.orbit, w.by, w.dialler, out);
    }

    /// The retrievers waiting for `parked` to settle: it did (ended, or handed its orbit on).
    pub(super) fn waiting_for(&mut self, parked: &ChannelId) -> Vec<(ChannelId, Waiting)> {
        let ids: Vec<ChannelId> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.parked == *parked)
            .map(|(r, _)| r.clone())
            .collect();
        ids.into_iter()
            .filter_map(|r| self.waiting.remove(&r).map(|w| (r, w)))
            .collect()
    }
}
