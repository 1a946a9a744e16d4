//! Parking a call: the orbit it gets by its parker's voice policy, a transfer's caller taking
//! its consultation call's place, and a refused park given back to its parker.

use crate::orbit::Orbit;
use crate::park::policy::GENERAL_LOT;
use crate::park::types::*;

use super::ParkCore;
use super::labels::{caller_name, party_label};

/// A call that takes an orbit: what [`ParkCore::hold`] records of it.
struct Held {
    /// The parked channel.
    channel: ChannelId,
    /// Its orbit, taken already.
    orbit: Orbit,
    /// Its caller id.
    caller: Party,
    /// Who parked it.
    parker: Parker,
    /// Its orbit's lot (`None`: the general lot).
    lot: Option<String>,
}

impl ParkCore {
    pub(super) fn on_park(&mut self, now: Millis, mut req: ParkRequest, out: &mut Vec<Command>) {
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
        let held = Held {
            channel: ch.clone(),
            orbit,
            caller,
            parker,
            lot,
        };
        self.hold(now, held, &cfg);
        if announce_to.is_some() {
            self.settling.insert(ch.clone(), now + SETTLE_TIME);
        }
        self.push_log(now, LogKind::Parked, &ch, Some(orbit), detail);
        if cfg.page.is_some() {
            self.page(now, &ch, out);
        }
    }

    /// Records a call as parked on its orbit (taken already) from `now`, its pickup timer
    /// running by `cfg`, its lot's settings.
    fn hold(&mut self, now: Millis, held: Held, cfg: &Settings) {
        let Held {
            channel: ch,
            orbit,
            caller,
            parker,
            lot,
        } = held;
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
            page: Paging::default(),
        };
        self.by_orbit.insert(orbit, ch.clone());
        self.index(&call);
        self.calls.insert(ch.clone(), call);
        self.dirty.push(ch);
    }

    /// Whether the call on `replaced` can pass its orbit on to the channel taking its place:
    /// it is parked on an orbit and waits there, or someone dialled that orbit and is being
    /// connected to it (the consultation of an attended park, retrieved as the phone's REFER
    /// was on its way: the retriever then gets the caller, see [`Self::hand_over`]).
    pub(super) fn can_hand_over(&self, replaced: &ChannelId) -> bool {
        self.calls.get(replaced).is_some_and(|c| {
            c.orbit.is_some()
                && matches!(
                    c.state,
                    CallState::Parked
                        | CallState::Replaced
                        | CallState::Ringback { .. }
                        | CallState::Fallback { .. }
                        | CallState::Connecting {
                            via: Via::Retrieve { .. },
                            ..
                        }
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
        // A retriever being connected to the consultation: it gets the caller instead (below).
        let retriever = match &old.state {
            CallState::Connecting {
                leg,
                via: Via::Retrieve { by },
                ..
            } => Some((leg.clone(), by.clone())),
            state => {
                if let Some(leg) = state.leg() {
                    out.push(Command::Hangup {
                        channel: leg.clone(),
                    });
                }
                None
            }
        };
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
        let held = Held {
            channel: ch.clone(),
            orbit,
            caller: req.caller,
            parker,
            lot: old.lot,
        };
        self.hold(now, held, &cfg);
        // The orbit's pages go on as they were: it is the orbit that was announced.
        if old.page != Paging::default() {
            self.update(&ch, |c| c.page = old.page.clone());
        }
        // The lamp was lit for the consultation and stays lit (ringing becomes in use).
        if LampState::of(&old.state) != LampState::InUse {
            out.push(Command::Lamp {
                orbit,
                state: LampState::InUse,
            });
        }
        self.push_log(now, LogKind::HandedOver, &ch, Some(orbit), detail);
        if let Some((leg, by)) = retriever {
            // Dialled while the orbit was the consultation's: the caller is what it dialled.
            let dialler = Parker {
                display: party_label(&by),
                ids: vec![by.number.clone()],
                endpoint: None,
            };
            self.on_retrieve(now, leg, orbit, by, dialler, out);
        }
        // Those who dialled it while the consultation settled: the caller, to the first.
        self.settling.remove(&replaced);
        let mut waiting = self.waiting_for(&replaced);
        waiting.sort_by_key(|(_, w)| w.due);
        for (r, w) in waiting {
            self.deadlines.remove(&(w.due, r.clone()));
            self.on_retrieve(now, r, w.orbit, w.by, w.dialler, out);
        }
    }

    /// Whether a voice policy enables call park for `parker`.
    pub(super) fn may_park(&self, parker: &Parker) -> bool {
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
            page: Paging::default(),
        };
        self.index(&call);
        self.calls.insert(ch.clone(), call);
        self.dirty.push(ch);
    }
}
