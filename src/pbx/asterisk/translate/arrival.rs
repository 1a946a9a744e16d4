//! A channel entering the Stasis application (a park, a retrieve, a leg callpark placed) and
//! the parker of a park, read from the transfer variables when the event lacks them.

use tracing::warn;

use super::names::{dialled_parker, path_channel, transferer};
use super::{
    AfterPlayback, AriTranslator, PendingPark, Request, SOUND_ORBIT_EMPTY, SOUND_PARK_FAILED, Tag,
    TransferVar, Verb,
};
use crate::orbit::Orbit;
use crate::park::{ChannelId, Event, ParkRequest, Party};
use crate::pbx::Output;
use crate::pbx::asterisk::model::{Channel, ChannelState};
use crate::pbx::trunk::unreachable_parker;

impl AriTranslator {
    /// A channel entered the Stasis application: with the include's arguments, or with none
    /// when a phone's attended transfer (REFER with Replaces) swapped it in for the channel
    /// that was there (`replaced`, whose arguments then say what it was). `found`: sitting in
    /// the Stasis application when a (re)connection listed it, rather than announced by
    /// StasisStart (the park read over REST is then reported [`crate::pbx::PbxEvent::Found`]).
    pub(super) fn on_stasis_start(
        &mut self,
        mut args: Vec<String>,
        ch: Channel,
        replaced: Option<Channel>,
        found: bool,
        out: &mut Output<Request>,
    ) {
        let id = ChannelId::new(ch.id.clone());
        let mut replaces = None;
        if args.is_empty() {
            let replaced_args = replaced
                .as_ref()
                .and_then(|r| r.dialplan.as_ref())
                .map(|dp| {
                    dp.app_data
                        .split(',')
                        .skip(1)
                        .map(|a| a.trim().to_string())
                        .collect::<Vec<_>>()
                });
            match (replaced, replaced_args) {
                (Some(r), Some(a)) if !a.is_empty() => {
                    // The consultation was a park (the park code) or dialled an orbit: the caller
                    // is parked in its place, on the orbit the consultation heard.
                    args = match a[0].as_str() {
                        "retrieve" => vec![
                            "park".into(),
                            String::new(),
                            a.get(1).cloned().unwrap_or_default(),
                        ],
                        _ => a.into_iter().take(3).collect(),
                    };
                    replaces = Some(ChannelId::new(r.id));
                }
                _ => {
                    // Nothing says why it is here; it is not sent back to the dialplan (whose
                    // next step after Stasis() would end it): it is parked.
                    warn!(pbx = %self.s.pool, channel = %ch.name, "entered Stasis({}) with no arguments and replacing no call of callpark's; parking it", self.s.app);
                    args = vec!["park".into()];
                }
            }
        }
        if !found {
            self.seen.insert(id.clone());
        }
        if ch.state == ChannelState::Up {
            self.chan(&id).up = true;
        }
        let caller = Party {
            name: ch.caller.name.clone(),
            number: ch.caller.number.clone(),
        };
        match args.first().map(String::as_str) {
            Some("retrieve") | Some("leg") => {}
            Some("park") => {}
            other => {
                // Not sent back to the dialplan, whose next step after Stasis() would end it.
                warn!(pbx = %self.s.pool, channel = %ch.name, "Stasis({},{other:?}) is not a call callpark expects; parking it", self.s.app);
                args = vec!["park".into()];
            }
        }
        match args.first().map(String::as_str) {
            Some("park") => {
                if args.get(3).is_some_and(|a| a == "moh") {
                    self.chan(&id).dialplan_music = true;
                }
                let lot = args.get(1).filter(|s| !s.is_empty()).cloned();
                let orbit = match args.get(2).filter(|s| !s.is_empty()).map(|s| s.parse()) {
                    None => None,
                    Some(Ok(o)) => Some(o),
                    Some(Err(e)) => {
                        warn!(pbx = %self.s.pool, channel = %ch.name, "directed park to a bad orbit: {e}");
                        let after = AfterPlayback::Continue(id.clone());
                        self.play(out, &id, SOUND_PARK_FAILED, Some(after));
                        return;
                    }
                };
                // Sent over the trunk by another pool's PBX, where a phone transferred it to
                // this orbit: the include passes the call's `X-Callpark-Park`. The transferer
                // is on that PBX, named by the header, and no transfer variable here knows it.
                if let Some(h) = args.get(4).map(|h| h.trim()).filter(|h| !h.is_empty()) {
                    let parker = self.s.trunks.parker(h).unwrap_or_else(|e| {
                        warn!(pbx = %self.s.pool, channel = %ch.name, "{e}: the call is parked, with no parker to ring back");
                        unreachable_parker(h)
                    });
                    let park = Event::Park(ParkRequest {
                        channel: id,
                        caller,
                        parker,
                        announce_to: None,
                        lot,
                        orbit,
                        replaces,
                    });
                    if found {
                        out.found(park);
                    } else {
                        out.event(park);
                    }
                    return;
                }
                let pending = PendingPark {
                    channel: ch,
                    caller,
                    lot,
                    orbit,
                    found,
                    replaces,
                };
                self.resolve_park(id, pending, out);
            }
            Some("retrieve") => match args.get(1).map(|s| s.parse::<Orbit>()) {
                Some(Ok(orbit)) => out.event(Event::Retrieve {
                    channel: id,
                    orbit,
                    dialler: dialled_parker(&ch, &caller),
                    by: caller,
                }),
                other => {
                    warn!(pbx = %self.s.pool, channel = %ch.name, "retrieve of a bad orbit: {other:?}");
                    let after = AfterPlayback::Hangup(id.clone());
                    self.play(out, &id, SOUND_ORBIT_EMPTY, Some(after));
                }
            },
            Some("leg") => {
                self.chan(&id).ringing = false;
                out.event(Event::Answered { channel: id });
            }
            // Made one of the three above.
            _ => {}
        }
    }

    /// Reports a park once who parked is known: from the event's channelvars, else the
    /// variables are read over REST first (BLINDTRANSFER, then ATTENDEDTRANSFER, then
    /// FORWARDERNAME, each only if the one before is unset).
    pub(super) fn resolve_park(
        &mut self,
        id: ChannelId,
        p: PendingPark,
        out: &mut Output<Request>,
    ) {
        // None: not known yet; Some(None): known to be unset.
        let known = |v: TransferVar| -> Option<Option<String>> {
            let value = p.channel.channelvars.as_ref()?.get(v.name())?;
            Some(Some(value.clone()).filter(|s| !s.is_empty()))
        };
        let mut by = None;
        for v in [
            TransferVar::Blind,
            TransferVar::Attended,
            TransferVar::Forwarder,
        ] {
            match known(v) {
                None => return self.lookup(id, p, v, out),
                Some(Some(t)) => {
                    by = Some((v, t));
                    break;
                }
                Some(None) => {}
            }
        }
        self.report_park(id, p, by, out);
    }

    pub(super) fn lookup(
        &mut self,
        id: ChannelId,
        p: PendingPark,
        v: TransferVar,
        out: &mut Output<Request>,
    ) {
        out.request(self.req(
            Verb::Get,
            path_channel(&id, "/variable"),
            vec![("variable", v.name().to_string())],
            Some(&id),
            Tag::Var(id.clone(), v),
        ));
        self.lookups.insert(id, p);
    }

    /// `by`: the variable that names who parked, and the channel it names.
    pub(super) fn report_park(
        &mut self,
        id: ChannelId,
        p: PendingPark,
        by: Option<(TransferVar, String)>,
        out: &mut Output<Request>,
    ) {
        let (parker, announce_to) = match by {
            // A blind transfer names the transferer, which has left; a call forwarded or
            // deflected here (a phone's 302, Dial's forward) names the phone that sent it.
            Some((TransferVar::Blind | TransferVar::Forwarder, t)) => (transferer(&t), None),
            // An attended transfer: the transferer is still on this line and hears the orbit
            // (Asterisk's own attended transfer keeps its consultation channel), unless a
            // phone's REFER with Replaces swapped the caller in and the phone has left.
            Some((TransferVar::Attended, t)) => {
                (transferer(&t), p.replaces.is_none().then(|| id.clone()))
            }
            // The caller parks itself and hears the orbit; there is no other phone to ring.
            None => (dialled_parker(&p.channel, &p.caller), Some(id.clone())),
        };
        let park = Event::Park(ParkRequest {
            channel: id.clone(),
            caller: p.caller,
            parker,
            announce_to,
            lot: p.lot,
            orbit: p.orbit,
            replaces: p.replaces,
        });
        if p.found {
            out.found(park);
        } else {
            out.event(park);
        }
    }
}
