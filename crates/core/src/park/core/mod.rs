//! The state machine itself. See the module docs in `park/mod.rs`. One file per path through
//! it: parking, retrieving, legs and their ringbacks, timers, hang-ups, the operator's
//! requests; this one holds the state and dispatches events.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::orbit::Orbit;

use super::policy::PolicySet;
use super::types::*;

mod book;
mod hangup;
mod labels;
mod operator;
mod page;
mod park;
mod pool;
mod retrieve;
mod ringback;
mod timer;

pub use self::pool::PoolOrbits;

/// What role a channel plays for a parked call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Parked,
    Leg,
}

/// The park state machine of one pool: see the [module docs](crate::park) and the
/// [crate example](crate).
#[derive(Debug, Clone)]
pub struct ParkCore {
    /// The general lot's settings (`[park]`), and each named lot's.
    settings: Arc<Settings>,
    lots: HashMap<String, Arc<Settings>>,
    policies: PolicySet,
    orbits: PoolOrbits,
    calls: HashMap<ChannelId, ParkedCall>,
    by_orbit: HashMap<Orbit, ChannelId>,
    /// Every channel the core knows: parked channels and their legs, to the parked channel.
    channels: HashMap<ChannelId, (ChannelId, Role)>,
    deadlines: BTreeSet<(Millis, ChannelId)>,
    /// When each paging call's next page is due, by parked channel.
    page_deadlines: BTreeSet<(Millis, ChannelId)>,
    dirty: Vec<ChannelId>,
    log: Vec<LogEvent>,
    /// Orbits whose call `update` changed in this step, with the lamp they showed before.
    lamps: Vec<(Orbit, LampState)>,
    /// Calls parked by dialling, until when a retrieve of them waits ([`SETTLE_TIME`]). Not
    /// stored: after a restart they are retrieved at once.
    settling: HashMap<ChannelId, Millis>,
    /// Retrievers waiting for such a call to settle, by retriever; each has a deadline.
    waiting: HashMap<ChannelId, Waiting>,
}

/// A retrieve held back until the call on its orbit settles (see `on_retrieve`).
#[derive(Debug, Clone)]
struct Waiting {
    parked: ChannelId,
    orbit: Orbit,
    by: Party,
    dialler: Parker,
    due: Millis,
}

impl ParkCore {
    /// A core with no call, parking on `orbits` for the users `policies` allow, with the
    /// general lot's `settings`.
    pub fn new(settings: Settings, policies: PolicySet, orbits: PoolOrbits) -> ParkCore {
        ParkCore {
            settings: Arc::new(settings),
            lots: HashMap::new(),
            policies,
            orbits,
            calls: HashMap::new(),
            by_orbit: HashMap::new(),
            channels: HashMap::new(),
            deadlines: BTreeSet::new(),
            page_deadlines: BTreeSet::new(),
            dirty: Vec::new(),
            log: Vec::new(),
            lamps: Vec::new(),
            settling: HashMap::new(),
            waiting: HashMap::new(),
        }
    }

    /// Rebuilds the core from stored calls after a restart. Calls whose orbit is no longer in
    /// the table (the configuration changed) or already taken are returned, not restored.
    pub fn restore(
        settings: Settings,
        policies: PolicySet,
        orbits: PoolOrbits,
        stored: Vec<ParkedCall>,
    ) -> (ParkCore, Vec<ParkedCall>) {
        let mut core = ParkCore::new(settings, policies, orbits);
        let mut rejected = Vec::new();
        for call in stored {
            if let Some(o) = call.orbit {
                if core.orbits.take(o) != Some(true) {
                    rejected.push(call);
                    continue;
                }
                core.by_orbit.insert(o, call.channel.clone());
            }
            core.index(&call);
            core.calls.insert(call.channel.clone(), call);
        }
        (core, rejected)
    }

    /// Gives named lots their own settings; a lot not named here uses the general ones.
    pub fn with_lots(mut self, lots: HashMap<String, Settings>) -> ParkCore {
        self.lots = lots.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        self
    }

    /// The general lot's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn cfg(&self, lot: Option<&str>) -> Arc<Settings> {
        lot.and_then(|l| self.lots.get(l))
            .unwrap_or(&self.settings)
            .clone()
    }

    /// The settings of a call's lot.
    fn cfg_of(&self, ch: &ChannelId) -> Arc<Settings> {
        self.cfg(self.calls.get(ch).and_then(|c| c.lot.as_deref()))
    }

    /// The pool's orbits and which of them are in use.
    pub fn orbits(&self) -> &PoolOrbits {
        &self.orbits
    }

    /// Every call the core holds (parked, ringing back, being connected or returned).
    pub fn calls(&self) -> impl Iterator<Item = &ParkedCall> {
        self.calls.values()
    }

    /// The call whose parked channel is `channel`.
    pub fn call(&self, channel: &ChannelId) -> Option<&ParkedCall> {
        self.calls.get(channel)
    }

    /// The call on `orbit`.
    pub fn call_on(&self, orbit: Orbit) -> Option<&ParkedCall> {
        self.by_orbit.get(&orbit).and_then(|c| self.calls.get(c))
    }

    /// Whether the core has anything to do with this channel.
    pub fn knows(&self, channel: &ChannelId) -> bool {
        self.channels.contains_key(channel) || self.waiting.contains_key(channel)
    }

    /// The earliest deadline, for the service's timer.
    pub fn next_deadline(&self) -> Option<Millis> {
        let call = self.deadlines.first().map(|(t, _)| *t);
        let page = self.page_deadlines.first().map(|(t, _)| *t);
        match (call, page) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Changes to persist since the last call.
    pub fn drain_changes(&mut self) -> Vec<Change> {
        let mut seen = std::collections::HashSet::new();
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .filter(|c| seen.insert(c.clone()))
            .map(|c| match self.calls.get(&c) {
                Some(call) => Change::Upsert(Box::new(call.clone())),
                None => Change::Remove(c),
            })
            .collect()
    }

    /// Log entries since the last call.
    pub fn drain_log(&mut self) -> Vec<LogEvent> {
        std::mem::take(&mut self.log)
    }

    /// Handles one PBX event at time `now`.
    pub fn handle(&mut self, now: Millis, event: Event) -> Vec<Command> {
        let mut out = Vec::new();
        match event {
            Event::Park(req) => self.on_park(now, req, &mut out),
            Event::Retrieve {
                channel,
                orbit,
                by,
                dialler,
            } => self.on_retrieve(now, channel, orbit, by, dialler, &mut out),
            Event::Answered { channel } => self.on_answered(now, channel, &mut out),
            Event::OriginateFailed { channel, reason } => {
                self.on_leg_failed(now, channel, &reason, &mut out)
            }
            Event::Bridged { channel } => self.on_bridged(now, channel, &mut out),
            Event::Hangup { channel } => self.on_hangup(now, channel, &mut out),
            Event::Replaced { channel } => self.on_replaced(now, channel, &mut out),
        }
        self.flush_lamps(&mut out);
        out
    }

    /// Fires every deadline at or before `now`.
    pub fn handle_timeout(&mut self, now: Millis) -> Vec<Command> {
        let mut out = Vec::new();
        // In time order across both kinds; a call's own deadline first at a tie (a page due
        // as the call rings back still goes out, after the ringback).
        loop {
            let call = self.deadlines.first().cloned().filter(|(t, _)| *t <= now);
            let page = self
                .page_deadlines
                .first()
                .cloned()
                .filter(|(t, _)| *t <= now);
            match (call, page) {
                (Some(c), Some(p)) if p.0 < c.0 => {
                    self.page_deadlines.remove(&p);
                    self.on_page_due(now, p.1, &mut out);
                }
                (Some(c), _) => {
                    self.deadlines.remove(&c);
                    self.on_deadline(now, c.1, &mut out);
                }
                (None, Some(p)) => {
                    self.page_deadlines.remove(&p);
                    self.on_page_due(now, p.1, &mut out);
                }
                (None, None) => break,
            }
        }
        self.flush_lamps(&mut out);
        out
    }

    /// Lamp changes of this step, after its other commands: each orbit whose call changed
    /// state gets its lamp when it differs from what it showed before the step (or from what
    /// the step showed already: a park or an end lights its lamp itself).
    fn flush_lamps(&mut self, out: &mut Vec<Command>) {
        for (orbit, before) in std::mem::take(&mut self.lamps) {
            let now = self
                .call_on(orbit)
                .map(|c| LampState::of(&c.state))
                .unwrap_or(LampState::Idle);
            let shown = out.iter().rev().find_map(|c| match c {
                Command::Lamp { orbit: o, state } if *o == orbit => Some(*state),
                _ => None,
            });
            if now != shown.unwrap_or(before) {
                out.push(Command::Lamp { orbit, state: now });
            }
        }
    }
}
