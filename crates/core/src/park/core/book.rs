//! The core's bookkeeping: its indexes of channels and deadlines, the changes to persist,
//! the event log, and the music a call hears.

use crate::orbit::Orbit;
use crate::park::types::*;

use super::{ParkCore, Role};

impl ParkCore {
    pub(super) fn index(&mut self, call: &ParkedCall) {
        self.channels
            .insert(call.channel.clone(), (call.channel.clone(), Role::Parked));
        if let Some(leg) = call.state.leg() {
            self.channels
                .insert(leg.clone(), (call.channel.clone(), Role::Leg));
        }
        if call.deadline != NO_DEADLINE {
            self.deadlines.insert((call.deadline, call.channel.clone()));
        }
        if let Some(t) = call.page.next {
            self.page_deadlines.insert((t, call.channel.clone()));
        }
    }

    pub(super) fn unindex(&mut self, call: &ParkedCall) {
        self.channels.remove(&call.channel);
        if let Some(leg) = call.state.leg() {
            self.channels.remove(leg);
        }
        self.deadlines
            .remove(&(call.deadline, call.channel.clone()));
        if let Some(t) = call.page.next {
            self.page_deadlines.remove(&(t, call.channel.clone()));
        }
    }

    /// Applies `f` to a call, keeping the indexes and the dirty list true.
    pub(super) fn update(&mut self, ch: &ChannelId, f: impl FnOnce(&mut ParkedCall)) {
        let Some(mut call) = self.calls.remove(ch) else {
            return;
        };
        self.unindex(&call);
        if let Some(orbit) = call.orbit {
            if !self.lamps.iter().any(|(o, _)| *o == orbit) {
                self.lamps.push((orbit, LampState::of(&call.state)));
            }
        }
        f(&mut call);
        self.index(&call);
        self.calls.insert(ch.clone(), call);
        self.dirty.push(ch.clone());
    }

    /// Ends a call's park: frees its orbit (exactly once) and forgets it.
    pub(super) fn finish(
        &mut self,
        now: Millis,
        ch: &ChannelId,
        kind: LogKind,
        detail: String,
        out: &mut Vec<Command>,
    ) {
        let Some(call) = self.calls.remove(ch) else {
            return;
        };
        self.unindex(&call);
        self.settling.remove(ch);
        // A page still ringing or speaking for it is over too.
        if let Some(leg) = call.page.leg.clone() {
            out.push(Command::EndPage { channel: leg });
        }
        // Retrievers waiting for it: it is gone (or another retriever has it).
        for (r, w) in self.waiting_for(ch) {
            self.deadlines.remove(&(w.due, r.clone()));
            out.push(Command::OrbitEmpty {
                channel: r,
                orbit: w.orbit,
            });
        }
        if let Some(o) = call.orbit {
            self.by_orbit.remove(&o);
            let freed = self.orbits.release(o);
            debug_assert!(freed, "orbit {o} freed twice");
            out.push(Command::Lamp {
                orbit: o,
                state: LampState::Idle,
            });
        }
        self.dirty.push(ch.clone());
        self.push_log(now, kind, ch, call.orbit, detail);
    }

    pub(super) fn push_log(
        &mut self,
        at: Millis,
        kind: LogKind,
        ch: &ChannelId,
        orbit: Option<Orbit>,
        detail: String,
    ) {
        // The call's lot; an ended call's is its orbit's.
        let lot = match self.calls.get(ch) {
            Some(c) => c.lot.clone(),
            None => orbit.and_then(|o| self.orbits.lot_of(o).flatten().map(str::to_string)),
        };
        self.log.push(LogEvent {
            at,
            kind,
            channel: ch.clone(),
            orbit,
            lot,
            detail,
        });
    }

    /// Music for a call of the lot whose settings are `cfg`.
    pub(super) fn start_moh_of(cfg: &Settings, ch: &ChannelId, out: &mut Vec<Command>) {
        if cfg.moh != Moh::Off {
            out.push(Command::StartMoh {
                channel: ch.clone(),
                moh: cfg.moh.clone(),
            });
        }
    }

    pub(super) fn start_moh(&self, ch: &ChannelId, out: &mut Vec<Command>) {
        Self::start_moh_of(&self.cfg_of(ch), ch, out);
    }

    pub(super) fn stop_moh(&self, ch: &ChannelId, out: &mut Vec<Command>) {
        if self.cfg_of(ch).moh != Moh::Off {
            out.push(Command::StopMoh {
                channel: ch.clone(),
            });
        }
    }
}
