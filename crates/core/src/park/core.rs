//! The state machine itself. See the module docs in `park/mod.rs`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::orbit::{FreeSet, Orbit, OrbitRange, OrbitTable};

use super::policy::{GENERAL_LOT, PolicySet};
use super::types::*;

/// The orbits one pool owns, with which of them are free.
///
/// ```
/// use callpark_core::orbit::{OrbitRange, OrbitTable};
/// use callpark_core::park::PoolOrbits;
///
/// let range = |name: &str, span: &str, lot: Option<&str>| OrbitRange {
///     name: name.into(),
///     span: span.parse().unwrap(),
///     pool: "pbx1".into(),
///     lot: lot.map(Into::into),
/// };
/// let table = OrbitTable::new(vec![
///     range("general", "701-703", None),
///     range("sales", "801-899", Some("sales")),
/// ])?;
/// let mut orbits = PoolOrbits::new(&table, "pbx1");
/// assert_eq!(orbits.allocate(Some("sales")), Some("801".parse()?));
/// assert_eq!(orbits.allocate(None), Some("701".parse()?));
/// // A directed park takes a named orbit: `Some(false)` when it is in use already.
/// assert_eq!(orbits.take("702".parse()?), Some(true));
/// assert_eq!(orbits.take("702".parse()?), Some(false));
/// assert_eq!(orbits.allocate(None), Some("703".parse()?));
/// assert!(orbits.release("701".parse()?));
/// assert_eq!(orbits.allocate(None), Some("701".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PoolOrbits {
    ranges: Vec<(OrbitRange, FreeSet)>,
}

impl PoolOrbits {
    /// The ranges of `table` that `pool` owns, every orbit free.
    pub fn new(table: &OrbitTable, pool: &str) -> PoolOrbits {
        PoolOrbits {
            ranges: table
                .pool_ranges(pool)
                .map(|r| (r.clone(), FreeSet::new(r.span.len())))
                .collect(),
        }
    }

    /// The lowest free orbit, ranges taken in table order; only ranges of `lot` when given.
    pub fn allocate(&mut self, lot: Option<&str>) -> Option<Orbit> {
        self.allocate_where(|l| lot.is_none() || l == lot)
    }

    /// The lowest free orbit of the ranges whose lot (`None`: the general lot) `pick` takes.
    pub(crate) fn allocate_where(&mut self, pick: impl Fn(Option<&str>) -> bool) -> Option<Orbit> {
        for (r, free) in &mut self.ranges {
            if !pick(r.lot.as_deref()) {
                continue;
            }
            if let Some(i) = free.take_lowest() {
                return r.span.at(i);
            }
        }
        None
    }

    /// The lot of one of this pool's orbits: `None` if the pool does not own it,
    /// `Some(None)` for the general lot.
    pub fn lot_of(&self, orbit: Orbit) -> Option<Option<&str>> {
        self.ranges
            .iter()
            .find(|(r, _)| r.span.contains(orbit))
            .map(|(r, _)| r.lot.as_deref())
    }

    /// Takes a named orbit (directed park, restore). `None`: not ours; `Some(false)`: in use.
    pub fn take(&mut self, orbit: Orbit) -> Option<bool> {
        let (r, free) = self
            .ranges
            .iter_mut()
            .find(|(r, _)| r.span.contains(orbit))?;
        Some(free.take(r.span.index_of(orbit)?))
    }

    /// Frees an orbit; false if it was not held.
    pub fn release(&mut self, orbit: Orbit) -> bool {
        match self.ranges.iter_mut().find(|(r, _)| r.span.contains(orbit)) {
            Some((r, free)) => r.span.index_of(orbit).is_some_and(|i| free.release(i)),
            None => false,
        }
    }

    /// Whether `orbit` is one of this pool's.
    pub fn owns(&self, orbit: Orbit) -> bool {
        self.ranges.iter().any(|(r, _)| r.span.contains(orbit))
    }

    /// (range, used, free) per range.
    pub fn usage(&self) -> impl Iterator<Item = (&OrbitRange, u64, u64)> {
        self.ranges
            .iter()
            .map(|(r, f)| (r, f.len() - f.free(), f.free()))
    }
}

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
    dirty: Vec<ChannelId>,
    log: Vec<LogEvent>,
    /// Orbits whose call `update` changed in this step, with the lamp they showed before.
    lamps: Vec<(Orbit, LampState)>,
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
            dirty: Vec::new(),
            log: Vec::new(),
            lamps: Vec::new(),
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
        self.channels.contains_key(channel)
    }

    /// The earliest deadline, for the service's timer.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.deadlines.first().map(|(t, _)| *t)
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
        while let Some((t, ch)) = self.deadlines.first().cloned() {
            if t > now {
                break;
            }
            self.deadlines.remove(&(t, ch.clone()));
            self.on_deadline(now, ch, &mut out);
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

    // ----- bookkeeping -------------------------------------------------------------------

    fn index(&mut self, call: &ParkedCall) {
        self.channels
            .insert(call.channel.clone(), (call.channel.clone(), Role::Parked));
        if let Some(leg) = call.state.leg() {
            self.channels
                .insert(leg.clone(), (call.channel.clone(), Role::Leg));
        }
        if call.deadline != NO_DEADLINE {
            self.deadlines.insert((call.deadline, call.channel.clone()));
        }
    }

    fn unindex(&mut self, call: &ParkedCall) {
        self.channels.remove(&call.channel);
        if let Some(leg) = call.state.leg() {
            self.channels.remove(leg);
        }
        self.deadlines
            .remove(&(call.deadline, call.channel.clone()));
    }

    /// Applies `f` to a call, keeping the indexes and the dirty list true.
    fn update(&mut self, ch: &ChannelId, f: impl FnOnce(&mut ParkedCall)) {
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
    fn finish(
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

    fn push_log(
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
    fn start_moh_of(cfg: &Settings, ch: &ChannelId, out: &mut Vec<Command>) {
        if cfg.moh != Moh::Off {
            out.push(Command::StartMoh {
                channel: ch.clone(),
                moh: cfg.moh.clone(),
            });
        }
    }

    fn start_moh(&self, ch: &ChannelId, out: &mut Vec<Command>) {
        Self::start_moh_of(&self.cfg_of(ch), ch, out);
    }

    fn stop_moh(&self, ch: &ChannelId, out: &mut Vec<Command>) {
        if self.cfg_of(ch).moh != Moh::Off {
            out.push(Command::StopMoh {
                channel: ch.clone(),
            });
        }
    }

    // ----- events -----------------------------------------------------------------------

    fn on_park(&mut self, now: Millis, mut req: ParkRequest, out: &mut Vec<Command>) {
        if self.channels.contains_key(&req.channel) {
            return; // a repeated park of a call we hold already
        }
        if let Some(replaced) = req.replaces.clone() {
            if self.can_hand_over(&replaced) {
                return self.hand_over(now, replaced, req, out);
            }
        }
        let wanted = req.orbit;
        let orbit = match self.choose_orbit(&req.parker, req.lot.as_deref(), wanted) {
            Ok(o) => o,
            Err(reason) => {
                // A refused call keeps the lot it asked for (the orbit's, when directed).
                if req.lot.is_none() {
                    req.lot =
                        wanted.and_then(|o| self.orbits.lot_of(o).flatten().map(str::to_string));
                }
                return self.refuse(now, req, reason, out);
            }
        };
        let ParkRequest {
            channel: ch,
            caller,
            parker,
            announce_to,
            ..
        } = req;
        // The call belongs to its orbit's lot, whose settings it follows.
        let lot = self.orbits.lot_of(orbit).flatten().map(str::to_string);
        let cfg = self.cfg(lot.as_deref());
        out.push(Command::Answer {
            channel: ch.clone(),
        });
        if let Some(a) = &announce_to {
            out.push(Command::Announce {
                channel: a.clone(),
                orbit,
            });
        }
        Self::start_moh_of(&cfg, &ch, out);
        // The lamp after the media: the parked caller should not wait on busy-lamp updates.
        out.push(Command::Lamp {
            orbit,
            state: LampState::InUse,
        });
        // A directed park moved on from an orbit in use says so.
        let moved = wanted.filter(|w| *w != orbit);
        if let Some(ep) = &parker.endpoint {
            let text = match moved {
                Some(w) => format!(
                    "Call from {} parked on {orbit} ({w} is in use)",
                    party_label(&caller)
                ),
                None => format!("Call from {} parked on {orbit}", party_label(&caller)),
            };
            out.push(Command::Notify {
                endpoint: ep.clone(),
                text,
            });
        }
        let mut detail = format!("by {} from {}", parker.display, party_label(&caller));
        if let Some(w) = moved {
            detail.push_str(&format!(" ({w} was in use)"));
        }
        self.hold(now, &ch, orbit, caller, parker, lot, &cfg);
        self.push_log(now, LogKind::Parked, &ch, Some(orbit), detail);
    }

    /// Records `ch` as parked on `orbit` (taken already) from `now`, its pickup timer running.
    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        now: Millis,
        ch: &ChannelId,
        orbit: Orbit,
        caller: Party,
        parker: Parker,
        lot: Option<String>,
        cfg: &Settings,
    ) {
        let call = ParkedCall {
            channel: ch.clone(),
            orbit: Some(orbit),
            caller,
            parker,
            lot,
            parked_at: now,
            deadline: now + cfg.pickup_timeout,
            attempts: 0,
            fallback_tried: false,
            state: CallState::Parked,
        };
        self.by_orbit.insert(orbit, ch.clone());
        self.index(&call);
        self.calls.insert(ch.clone(), call);
        self.dirty.push(ch.clone());
    }

    /// Whether the call on `replaced` can pass its orbit on to the channel taking its place:
    /// it is parked on an orbit and waits there (not being connected to anyone).
    fn can_hand_over(&self, replaced: &ChannelId) -> bool {
        self.calls.get(replaced).is_some_and(|c| {
            c.orbit.is_some()
                && matches!(
                    c.state,
                    CallState::Parked
                        | CallState::Replaced
                        | CallState::Ringback { .. }
                        | CallState::Fallback { .. }
                )
        })
    }

    /// An attended transfer completed: the caller took the place of the consultation call
    /// parked on an orbit (which heard that orbit). The orbit passes to the caller without
    /// being freed (no other park can take it in between), the transferring phone becomes the
    /// parker, and the pickup timeout starts now. The consultation is released.
    fn hand_over(
        &mut self,
        now: Millis,
        replaced: ChannelId,
        req: ParkRequest,
        out: &mut Vec<Command>,
    ) {
        let Some(old) = self.calls.remove(&replaced) else {
            return;
        };
        self.unindex(&old);
        // Removed before the new call is written: the store allows one call per orbit.
        self.dirty.push(replaced.clone());
        if let Some(leg) = old.state.leg() {
            out.push(Command::Hangup {
                channel: leg.clone(),
            });
        }
        let orbit = old.orbit.expect("only calls on an orbit are handed over");
        let cfg = self.cfg(old.lot.as_deref());
        let ch = req.channel;
        // The phone that transferred is the parker; a replacing call that names nobody keeps
        // the consultation's parker (the same phone).
        let parker = if req.parker.endpoint.is_some() || old.parker.endpoint.is_none() {
            req.parker
        } else {
            old.parker
        };
        out.push(Command::Answer {
            channel: ch.clone(),
        });
        Self::start_moh_of(&cfg, &ch, out);
        out.push(Command::Hangup {
            channel: replaced.clone(),
        });
        if let Some(ep) = &parker.endpoint {
            out.push(Command::Notify {
                endpoint: ep.clone(),
                text: format!("Call from {} parked on {orbit}", party_label(&req.caller)),
            });
        }
        let detail = format!(
            "by {} from {} (took the place of {replaced})",
            parker.display,
            party_label(&req.caller)
        );
        self.hold(now, &ch, orbit, req.caller, parker, old.lot, &cfg);
        // The lamp was lit for the consultation and stays lit (ringing becomes in use).
        if LampState::of(&old.state) != LampState::InUse {
            out.push(Command::Lamp {
                orbit,
                state: LampState::InUse,
            });
        }
        self.push_log(now, LogKind::HandedOver, &ch, Some(orbit), detail);
    }

    /// Whether a voice policy enables call park for `parker`.
    fn may_park(&self, parker: &Parker) -> bool {
        self.policies
            .rule_for(parker.ids.iter().map(String::as_str))
            .is_some_and(|r| r.enable_call_park)
    }

    /// The orbit a park gets, by the parker's voice policy: the orbit asked for (directed
    /// park; in use, the lot's `on_busy_orbit` decides), else the lowest free one of the lot
    /// asked for, of the parker's default lot, or of any lot the policy allows.
    fn choose_orbit(
        &mut self,
        parker: &Parker,
        lot: Option<&str>,
        wanted: Option<Orbit>,
    ) -> Result<Orbit, RefuseReason> {
        let Some(rule) = self
            .policies
            .rule_for(parker.ids.iter().map(String::as_str))
            .filter(|r| r.enable_call_park)
        else {
            return Err(RefuseReason::NotAllowed);
        };
        let rule = rule.clone();
        if let Some(o) = wanted {
            let Some(orbit_lot) = self.orbits.lot_of(o) else {
                return Err(RefuseReason::NotOurOrbit);
            };
            let orbit_lot = orbit_lot.map(str::to_string);
            if !rule.allows_lot(orbit_lot.as_deref()) {
                return Err(RefuseReason::LotNotAllowed);
            }
            return match self.orbits.take(o) {
                Some(true) => Ok(o),
                None => Err(RefuseReason::NotOurOrbit),
                Some(false) => match self.cfg(orbit_lot.as_deref()).on_busy_orbit {
                    OnBusyOrbit::Return => Err(RefuseReason::OrbitBusy),
                    OnBusyOrbit::NextFree => self
                        .orbits
                        .allocate_where(|l| l == orbit_lot.as_deref())
                        .ok_or(RefuseReason::Full),
                },
            };
        }
        // The general lot is asked for by name only through a policy's default lot.
        let asked = lot.or(rule.default_lot.as_deref());
        match asked {
            Some(l) => {
                let l = (l != GENERAL_LOT).then_some(l);
                if !rule.allows_lot(l) {
                    return Err(RefuseReason::LotNotAllowed);
                }
                self.orbits
                    .allocate_where(|r| r == l)
                    .ok_or(RefuseReason::Full)
            }
            None => self
                .orbits
                .allocate_where(|r| rule.allows_lot(r))
                .ok_or(RefuseReason::Full),
        }
    }

    fn refuse(
        &mut self,
        now: Millis,
        req: ParkRequest,
        reason: RefuseReason,
        out: &mut Vec<Command>,
    ) {
        let ParkRequest {
            channel: ch,
            caller,
            parker,
            announce_to,
            lot,
            ..
        } = req;
        let cfg = self.cfg(lot.as_deref());
        let detail = format!("{}: {}", parker.display, reason.as_str());
        self.push_log(now, LogKind::Refused, &ch, None, detail);
        if let Some(e) = self.log.last_mut() {
            e.lot = lot.clone();
        }
        out.push(Command::Answer {
            channel: ch.clone(),
        });
        // The parker is on this very line (park code dialled directly, or an attended
        // transfer not completed): tell it and give the call back to the dialplan.
        let parker_on_line = announce_to.is_some();
        let Some(endpoint) = parker.endpoint.clone().filter(|_| !parker_on_line) else {
            out.push(Command::Refuse {
                channel: ch.clone(),
                reason,
            });
            if !parker_on_line {
                // Nobody to give the call back to: it is hung up, and the log says why.
                self.push_log(
                    now,
                    LogKind::Disconnected,
                    &ch,
                    None,
                    "refused and the parker is unknown".into(),
                );
                if let Some(e) = self.log.last_mut() {
                    e.lot = lot.clone();
                }
            }
            return;
        };
        // A transferred call: ring its parker back at once, as a timed-out park would.
        out.push(Command::Notify {
            endpoint: endpoint.clone(),
            text: format!(
                "Call from {} could not be parked: {}",
                party_label(&caller),
                reason.as_str()
            ),
        });
        Self::start_moh_of(&cfg, &ch, out);
        let leg = ch.leg("ret");
        out.push(Command::Originate {
            channel: leg.clone(),
            target: Target::Endpoint(endpoint),
            caller_id: Party {
                name: format!("Park failed: {}", caller_name(&caller)),
                number: caller.number.clone(),
            },
            timeout_ms: cfg.ringback_ring_time,
            purpose: LegPurpose::Return,
        });
        let call = ParkedCall {
            channel: ch.clone(),
            orbit: None,
            caller,
            parker,
            lot,
            parked_at: now,
            deadline: now + cfg.ringback_ring_time,
            attempts: 0,
            fallback_tried: false,
            state: CallState::Returning { leg, reason },
        };
        self.index(&call);
        self.calls.insert(ch.clone(), call);
        self.dirty.push(ch);
    }

    fn on_retrieve(
        &mut self,
        now: Millis,
        ch: ChannelId,
        orbit: Orbit,
        by: Party,
        dialler: Parker,
        out: &mut Vec<Command>,
    ) {
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

    fn on_answered(&mut self, now: Millis, leg: ChannelId, out: &mut Vec<Command>) {
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

    fn on_bridged(&mut self, now: Millis, ch: ChannelId, out: &mut Vec<Command>) {
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

    fn on_leg_failed(&mut self, now: Millis, leg: ChannelId, reason: &str, out: &mut Vec<Command>) {
        let Some((parked, Role::Leg)) = self.channels.get(&leg).cloned() else {
            return;
        };
        self.leg_lost(now, &parked, reason, false, out);
    }

    /// A leg is gone: it failed, was not answered in time, or hung up.
    fn leg_lost(
        &mut self,
        now: Millis,
        parked: &ChannelId,
        reason: &str,
        hang_up_leg: bool,
        out: &mut Vec<Command>,
    ) {
        let call = &self.calls[parked];
        if hang_up_leg {
            if let Some(leg) = call.state.leg() {
                out.push(Command::Hangup {
                    channel: leg.clone(),
                });
            }
        }
        match call.state.clone() {
            CallState::Parked | CallState::Replaced => {}
            CallState::Delivering { to, resume, .. } => {
                // Nobody took it where the operator sent it: it waits on its orbit again.
                self.push_log(
                    now,
                    LogKind::RetrieveAbandoned,
                    parked,
                    call.orbit,
                    format!("operator to {to}: {reason}"),
                );
                let deadline = resume.max(now);
                self.update(parked, |c| {
                    c.state = CallState::Parked;
                    c.deadline = deadline;
                });
            }
            CallState::Ringback { attempt, .. } => {
                self.push_log(
                    now,
                    LogKind::RingbackMissed,
                    parked,
                    call.orbit,
                    format!("ringback {attempt}: {reason}"),
                );
                self.after_missed_ringback(now, parked, out);
            }
            CallState::Fallback { .. } => {
                self.push_log(
                    now,
                    LogKind::FallbackMissed,
                    parked,
                    call.orbit,
                    reason.to_string(),
                );
                out.push(Command::Hangup {
                    channel: parked.clone(),
                });
                self.finish(
                    now,
                    parked,
                    LogKind::Disconnected,
                    "nobody answered at the fallback".into(),
                    out,
                );
            }
            CallState::Returning { .. } => {
                out.push(Command::Hangup {
                    channel: parked.clone(),
                });
                self.finish(
                    now,
                    parked,
                    LogKind::Disconnected,
                    format!("refused call not answered by its parker: {reason}"),
                    out,
                );
            }
            CallState::Connecting { via, resume, .. } => match via {
                Via::Retrieve { by } => {
                    // The retriever left before the bridge: the call stays parked.
                    self.push_log(
                        now,
                        LogKind::RetrieveAbandoned,
                        parked,
                        call.orbit,
                        party_label(&by),
                    );
                    self.start_moh(parked, out);
                    let deadline = resume.max(now);
                    self.update(parked, |c| {
                        c.state = CallState::Parked;
                        c.deadline = deadline;
                    });
                }
                Via::Ringback { attempt } => {
                    self.push_log(
                        now,
                        LogKind::RingbackMissed,
                        parked,
                        call.orbit,
                        format!("ringback {attempt}: {reason}"),
                    );
                    self.start_moh(parked, out);
                    self.after_missed_ringback(now, parked, out);
                }
                Via::Fallback => {
                    out.push(Command::Hangup {
                        channel: parked.clone(),
                    });
                    self.finish(
                        now,
                        parked,
                        LogKind::Disconnected,
                        format!("fallback left before the bridge: {reason}"),
                        out,
                    );
                }
                Via::Return => {
                    out.push(Command::Hangup {
                        channel: parked.clone(),
                    });
                    self.finish(
                        now,
                        parked,
                        LogKind::Disconnected,
                        format!("parker left before the bridge: {reason}"),
                        out,
                    );
                }
            },
        }
    }

    /// After a missed ringback: park again until the attempts are spent, then the fallback.
    fn after_missed_ringback(&mut self, now: Millis, parked: &ChannelId, out: &mut Vec<Command>) {
        let call = &self.calls[parked];
        let cfg = self.cfg_of(parked);
        if call.attempts < cfg.max_pickup_attempts {
            let deadline = now + cfg.pickup_timeout;
            self.update(parked, |c| {
                c.state = CallState::Parked;
                c.deadline = deadline;
            });
        } else {
            self.go_fallback(now, parked, out);
        }
    }

    fn go_fallback(&mut self, now: Millis, parked: &ChannelId, out: &mut Vec<Command>) {
        let call = &self.calls[parked];
        let cfg = self.cfg_of(parked);
        match cfg.on_timeout.clone() {
            Some(dest) if !call.fallback_tried => {
                let leg = parked.leg("fb");
                out.push(Command::Originate {
                    channel: leg.clone(),
                    target: Target::Destination(dest.clone()),
                    caller_id: orbit_caller_id(call, &cfg),
                    timeout_ms: cfg.ringback_ring_time,
                    purpose: LegPurpose::Fallback,
                });
                let detail = match call.parker.endpoint {
                    Some(_) => dest.to_string(),
                    None => format!("{dest} (nobody to ring back)"),
                };
                self.push_log(now, LogKind::FallbackStarted, parked, call.orbit, detail);
                let deadline = now + cfg.ringback_ring_time;
                self.update(parked, |c| {
                    c.state = CallState::Fallback { leg };
                    c.fallback_tried = true;
                    c.deadline = deadline;
                });
            }
            _ => {
                out.push(Command::Hangup {
                    channel: parked.clone(),
                });
                let why = if cfg.on_timeout.is_some() {
                    "nobody answered at the fallback"
                } else {
                    "every ringback missed and no on_timeout destination is set"
                };
                self.finish(now, parked, LogKind::Disconnected, why.into(), out);
            }
        }
    }

    fn on_hangup(&mut self, now: Millis, ch: ChannelId, out: &mut Vec<Command>) {
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

    fn on_deadline(&mut self, now: Millis, parked: ChannelId, out: &mut Vec<Command>) {
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

    /// A held call's channel left, replaced by a transfer: its orbit waits (still lit, not
    /// retrievable) for the call taking its place, for at most [`HANDOVER_TIMEOUT`].
    fn on_replaced(&mut self, now: Millis, ch: ChannelId, out: &mut Vec<Command>) {
        if !self.can_hand_over(&ch) {
            return self.on_hangup(now, ch, out);
        }
        if let Some(leg) = self.calls[&ch].state.leg() {
            out.push(Command::Hangup {
                channel: leg.clone(),
            });
        }
        self.update(&ch, |c| {
            c.state = CallState::Replaced;
            c.deadline = now + HANDOVER_TIMEOUT;
        });
    }
}

fn party_label(p: &Party) -> String {
    match (p.name.is_empty(), p.number.is_empty()) {
        (false, false) => format!("{} <{}>", p.name, p.number),
        (false, true) => p.name.clone(),
        (true, false) => p.number.clone(),
        (true, true) => "an unknown caller".into(),
    }
}

fn destination_label(s: &Settings) -> String {
    s.on_timeout
        .as_ref()
        .map(|d| d.to_string())
        .unwrap_or_default()
}

/// The name to show of a caller: its name, else its number.
fn caller_name(p: &Party) -> &str {
    if p.name.is_empty() {
        &p.number
    } else {
        &p.name
    }
}

/// What a ringback or fallback shows: `Parked 701: Carol` (the lot's prefix) and the parked
/// caller's own number, so the phone can tell whose call comes back.
fn orbit_caller_id(call: &ParkedCall, cfg: &Settings) -> Party {
    let prefix = &cfg.caller_id_prefix;
    let orbit = match call.orbit {
        Some(o) => format!("{prefix} {o}"),
        None => format!("{prefix} call"),
    };
    let who = caller_name(&call.caller);
    Party {
        name: if who.is_empty() {
            orbit
        } else {
            format!("{orbit}: {who}")
        },
        number: call.caller.number.clone(),
    }
}
