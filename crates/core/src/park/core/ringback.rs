//! A leg that failed, rang out or left: the next ringback, the fallback (`on_timeout`), or
//! the end of the call.

use crate::park::types::*;

use super::labels::{orbit_caller_id, party_label};
use super::{ParkCore, Role};

impl ParkCore {
    pub(super) fn on_leg_failed(
        &mut self,
        now: Millis,
        leg: ChannelId,
        reason: &str,
        out: &mut Vec<Command>,
    ) {
        let Some((parked, Role::Leg)) = self.channels.get(&leg).cloned() else {
            return;
        };
        self.leg_lost(now, &parked, reason, false, out);
    }

    /// A leg is gone: it failed, was not answered in time, or hung up.
    pub(super) fn leg_lost(
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

    pub(super) fn go_fallback(&mut self, now: Millis, parked: &ChannelId, out: &mut Vec<Command>) {
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
}
