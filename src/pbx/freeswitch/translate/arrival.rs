//! A call arriving in callpark's hands (a park, a retrieve, a leg answered), its parker, and
//! the end of the music it waits to.

use tracing::{debug, warn};

use super::names::{dialled_parker, endpoint_of, parker_at};
use super::{Chan, FsTranslator, Request, SOUND_ORBIT_EMPTY, SOUND_PARK_FAILED, Tag};
use crate::orbit::Orbit;
use crate::park::{ChannelId, Event, ParkRequest, Parker, Party};
use crate::pbx::Output;
use crate::pbx::freeswitch::model::FsEvent;
use crate::pbx::trunk::unreachable_parker;

impl FsTranslator {
    pub(super) fn on_park(&mut self, ev: &FsEvent, id: ChannelId, out: &mut Output<Request>) {
        let music =
            |app: &Option<String>| matches!(app.as_deref(), Some("playback" | "endless_playback"));
        // The include's music, or (found on reconnecting) music playing: either way it need
        // not be started again.
        let dialplan_music = ev.name == "CHANNEL_EXECUTE"
            || (ev.name == "CHANNEL_DATA" && music(&ev.current_application));
        let chan = Chan {
            answered: ev.answered(),
            dialplan_music,
            music: ev
                .application_data
                .clone()
                .filter(|_| ev.name == "CHANNEL_EXECUTE"),
            bridging: false,
            return_armed: false,
            sip_call_id: ev.sip_call_id.clone(),
            door: ev.outbound,
            // Found on (re)connecting: what callpark queued on it before cannot be known, so
            // its first bridge flushes the queue all the same.
            queued: ev.name == "CHANNEL_DATA",
        };
        let caller = Party {
            name: ev.caller_name.clone().unwrap_or_default(),
            number: ev.caller_number.clone().unwrap_or_default(),
        };
        let context = ev.context.as_deref().unwrap_or("default");
        match ev.callpark_action.as_deref() {
            Some("park") => {
                self.take(out, &id, chan);
                let lot = ev.callpark_lot.clone().filter(|l| !l.is_empty());
                // A phone's REFER with Replaces: FreeSWITCH ended the consultation call and
                // sent the caller here by a blind transfer; the Refer-To names the call.
                let replaces = ev.replaces_call_id().and_then(|call_id| {
                    let i = self.replaced.iter().position(|(c, _)| *c == call_id)?;
                    self.replaced.remove(i).map(|(_, k)| k)
                });
                let (parker, announce_to) = match self.parker_of(ev, context) {
                    Some(p) => (p, None),
                    // Dialled directly (or the first leg of an attended transfer): the caller
                    // parks itself and hears the orbit; there is no other phone to ring back.
                    None => (dialled_parker(ev, &caller, context), Some(id.clone())),
                };
                // Transferred to an orbit (the include marks it `park` with the orbit): a
                // directed park.
                let orbit = ev
                    .callpark_orbit
                    .as_deref()
                    .and_then(|o| o.parse::<Orbit>().ok());
                let req = ParkRequest {
                    channel: id.clone(),
                    caller,
                    parker,
                    announce_to,
                    lot,
                    orbit,
                    replaces,
                };
                // Dialled through a loopback call a phone's session placed (FreeSWITCH's
                // `att_xfer`: the consultation to the park code, which the phone's hang-up
                // later connects to the caller): that phone is the parker, once its name is
                // known.
                match ev
                    .loopback_from
                    .as_deref()
                    .filter(|u| req.announce_to.is_some() && !u.is_empty())
                {
                    Some(from) => {
                        let line = format!("uuid_getvar {from} channel_name");
                        out.request(self.api(line, Tag::PlacedBy(id.clone())));
                        self.placed_by.insert(id, (req, ev.name == "CHANNEL_DATA"));
                    }
                    None => out.event(Event::Park(req)),
                }
            }
            Some("retrieve") => {
                self.take(out, &id, chan);
                match ev.callpark_orbit.as_deref().map(str::parse::<Orbit>) {
                    Some(Ok(orbit)) => out.event(Event::Retrieve {
                        channel: id,
                        orbit,
                        dialler: dialled_parker(ev, &caller, context),
                        by: caller,
                    }),
                    other => {
                        warn!(pbx = %self.s.pool, channel = %id, "retrieve of a bad orbit: {other:?}");
                        self.say_then_hang_up(out, &id, SOUND_ORBIT_EMPTY);
                    }
                }
            }
            _ => {}
        }
    }

    /// An application ended on a channel in callpark's hands. When it was its music on hold
    /// and no bridge took the channel from it, the music could not play (a missing file or
    /// class, sounds not installed) or ran out (a short file): the call waits in silence, in
    /// the `park` the include or the service put it in, never hung up. Said once per source.
    pub(super) fn on_music_ended(&mut self, ev: &FsEvent, id: &ChannelId) {
        let Some(chan) = self.chans.get(id) else {
            return;
        };
        let (Some(music), Some(data)) = (&chan.music, &ev.application_data) else {
            return;
        };
        // Only a playback can be the music. A dialled orbit held as a park (the consultation
        // of an attended transfer) still has the include's `set`, `sched_transfer` and
        // `socket` to complete, and their ends can reach callpark after the park itself (the
        // outbound connection outruns the event stream).
        if !matches!(
            ev.application.as_deref(),
            Some("playback" | "endless_playback")
        ) {
            return;
        }
        // `${hold_music}` reaches events expanded: then any playback but the spoken orbit and
        // the prompts is the music.
        let is_music = if music.contains("${") {
            !data.starts_with("file_string://") && data != SOUND_PARK_FAILED
        } else {
            music == data
        };
        if !is_music || chan.bridging || ev.answer_state.as_deref() == Some("hangup") {
            return;
        }
        let music = data.clone();
        let why = ev.application_response.as_deref().unwrap_or("ended");
        if self.silent_music.insert(music.clone()) {
            warn!(pbx = %self.s.pool, channel = %id, music = %music,
                  "music on hold stopped ({why}): parked calls wait in silence; check that the music class or file exists (FreeSWITCH's sound packages, local_stream.conf.xml, `hold_music` in vars.xml, or music_on_hold_class / music_on_hold_file)");
        } else {
            debug!(pbx = %self.s.pool, channel = %id, music = %music, "music on hold stopped ({why})");
        }
        if let Some(c) = self.chans.get_mut(id) {
            c.dialplan_music = false;
        }
    }

    /// Who parked a call transferred here, as a dial string for its ringbacks. An explicit
    /// `callpark_parker` wins; else, for a call another pool's PBX sent over the trunk to park
    /// here, the transferer its `X-Callpark-Park` names (rung back through that pool's
    /// `reach`); else the channel it was bridged to before the transfer (the
    /// transferer); else, for a call a phone sent on with a 302 before answering (deflect,
    /// forward: sofia transfers the caller to the Contact's user), the directory user it had
    /// dialled. `None`: the caller dialled the park code itself.
    fn parker_of(&self, ev: &FsEvent, context: &str) -> Option<Parker> {
        if let Some(p) = ev.callpark_parker.as_deref().filter(|p| !p.is_empty()) {
            return Some(parker_at(p.to_string()));
        }
        if let Some(h) = ev.trunk_park.as_deref().filter(|h| !h.is_empty()) {
            return Some(self.s.trunks.parker(h).unwrap_or_else(|e| {
                warn!(pbx = %self.s.pool, "{e}: the call is parked, with no parker to ring back");
                unreachable_parker(h)
            }));
        }
        if !ev.blind_transferred() {
            return None;
        }
        if let Some(b) = ev.bridge_channel.as_deref().filter(|b| !b.is_empty()) {
            return endpoint_of(b, context).map(parker_at);
        }
        let user = ev.dialed_user.as_deref().filter(|u| !u.is_empty())?;
        let domain = ev
            .dialed_domain
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or(&self.s.domain);
        // The phone's registration on the profile that followed the 302 (`%`: sofia looks
        // the contact up), so that a SIP MESSAGE can name the profile too; else the directory.
        let profile = ev
            .sip_redirect_dialstring
            .as_deref()
            .and_then(|d| d.strip_prefix("sofia/"))
            .and_then(|d| d.split_once('/'))
            .map(|(p, _)| p);
        Some(parker_at(match profile {
            Some(p) => format!("sofia/{p}/{user}%{domain}"),
            None => format!("user/{user}@{domain}"),
        }))
    }
}
