//! The pure half of the FreeSWITCH adapter: event-socket events and replies in, core events and
//! event-socket commands out. No socket, no clock.
//!
//! How calls reach callpark: the include file (`callpark dialplan freeswitch`) sets
//! `callpark_action` (`park`, or `retrieve` with `callpark_orbit`), schedules a transfer to a
//! `callpark-down-*` extension a few seconds ahead, and parks the channel, or, for a call
//! transferred to the park code, starts its hold music (the caller is on hold as fast as with
//! FreeSWITCH's own valet_park). On that CHANNEL_PARK or CHANNEL_EXECUTE callpark cancels the
//! transfer (`sched_del <uuid>`) and takes the call; while callpark is not there to cancel it,
//! the transfer tells the caller and moves on, so no call waits in silence. Legs callpark originates carry `callpark_leg` and the core's id as their uuid.
//! The event socket is subscribed to exactly the events these variables mark (filters).

use std::collections::{HashMap, HashSet, VecDeque};

use tracing::{debug, info, warn};

use super::codec::Outgoing;
use super::dialplan::RETURN_EXTEN;
use super::model::{ChannelList, ChannelRow, FsEvent};
use crate::orbit::Orbit;
use crate::park::{
    ChannelId, Command, Destination, Event, LampState, Moh, ParkRequest, Parker, Party, Target,
};
use crate::pbx::{Output, PbxEvent, Translator};

/// Prompts, as paths under FreeSWITCH's `sound_prefix` (the names of the en-us-callie set).
pub(crate) const SOUND_ORBIT_EMPTY: &str = "ivr/ivr-that_was_an_invalid_entry.wav";
pub(crate) const SOUND_PARK_FAILED: &str = "ivr/ivr-call_cannot_be_completed_as_dialed.wav";

/// The events callpark subscribes to.
/// PRESENCE_PROBE: sofia answers a phone's SUBSCRIBE with an empty (idle) NOTIFY and asks
/// for the presence; it keeps none of the PRESENCE_IN callpark sent before (seen on
/// FreeSWITCH 1.11), so callpark answers the probe of a lit orbit.
pub(crate) const EVENTS: &str = "CHANNEL_PARK CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_HANGUP BACKGROUND_JOB PRESENCE_PROBE";

/// Only channels marked by the include file or by an originate, and our jobs' results: a busy
/// FreeSWITCH's other calls never cross the socket.
pub(crate) const FILTERS: [&str; 4] = [
    "filter variable_callpark_action /./",
    "filter variable_callpark_leg /./",
    "filter Event-Name BACKGROUND_JOB",
    "filter Event-Name PRESENCE_PROBE",
];

/// The events someone waits on callpark for: a park or a retrieve dialled, a transferred
/// call's music (its park), a ringback leg answered (parked), a call gone, an originate that
/// failed. The driver's wake-up connections listen for these only (see `driver.rs`).
pub(crate) const WAKE_EVENTS: &str = "CHANNEL_PARK CHANNEL_EXECUTE CHANNEL_HANGUP BACKGROUND_JOB";

/// What the translator needs to know of its `[[pbx]]`.
#[derive(Debug, Clone)]
pub struct FsSettings {
    pub pool: String,
    /// The sofia profile through which `sip:` destinations are dialled.
    pub sip_profile: Option<String>,
    /// The domain of busy-lamp presence and SIP MESSAGEs (`701@<domain>`).
    pub domain: String,
}

/// One request to the event socket and what its reply means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub out: Outgoing,
    pub tag: Tag,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    /// Subscriptions: a refusal means the event socket cannot serve callpark.
    Setup,
    /// `show channels as json`: its reply is the reconciliation.
    List,
    /// `uuid_dump <uuid> json` of a channel that may sit in callpark's hands after a
    /// (re)connection: its variables say whether it does.
    Dump(ChannelId),
    /// `uuid_dump <uuid> json` of a call the core holds parked that the listing left out:
    /// whether it still exists (see [`FsTranslator::verify`]).
    Verify(ChannelId),
    /// `uuid_getvar <uuid> channel_name` of the phone that placed a park's loopback call: the
    /// park waits for it to know its parker.
    PlacedBy(ChannelId),
    /// A `bgapi originate`: `-ERR` here means the leg was never placed.
    Originate(ChannelId),
    /// Any other command, for the log.
    Action(&'static str, Option<ChannelId>),
    /// Not sent: the driver closes the channel's outbound connection once everything asked
    /// before it is answered (the bridge set up), which lets its thread go on.
    Release(ChannelId),
}

/// The event socket's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `Reply-Text` of a command/reply, or the body of an api/response.
    Text(String),
    /// Never answered: the connection dropped first.
    Lost(String),
}

/// A channel in callpark's hands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Chan {
    answered: bool,
    /// On hold by the include's own music, which runs until a bridge ends it: callpark's
    /// music on hold for this channel is already playing.
    dialplan_music: bool,
    /// The music on hold it plays (`local_stream://moh`, a file), as FreeSWITCH expanded it.
    music: Option<String>,
    /// A bridge was asked for: its music ends because the bridge took the channel.
    bridging: bool,
    /// A bridge was asked for and has not started: its `transfer_after_bridge` (the way back
    /// into `park` should the other side vanish) is still set.
    return_armed: bool,
    /// Its SIP Call-ID, which a REFER with Replaces names.
    sip_call_id: Option<String>,
    /// Its thread waits in the include's outbound connection (see [`Tag::Release`]).
    door: bool,
    /// callpark sent it applications (`sendmsg` execute: the orbit spoken, music) that may
    /// still wait in its queue: `uuid_bridge` ends only the one playing, and the channel runs
    /// the next before the bridge takes it (an orbit's caller retrieved during its
    /// announcement then hears music and nobody, half-bridged).
    queued: bool,
}

/// How many replaced calls wait for the call taking their place (FreeSWITCH ends the
/// consultation some 20 ms before the caller arrives); the oldest is forgotten beyond this.
const REPLACED_KEPT: usize = 64;

/// The translator; see the module docs.
#[derive(Debug)]
pub struct FsTranslator {
    s: FsSettings,
    chans: HashMap<ChannelId, Chan>,
    /// The last lamp sent of each orbit that is not idle, to answer presence probes (idle is
    /// what sofia shows by itself). Kept across reconnections: lamps sent meanwhile count.
    lamps: HashMap<Orbit, LampState>,
    /// Held calls an attended transfer replaced, by SIP Call-ID, until their caller arrives.
    replaced: VecDeque<(String, ChannelId)>,
    /// Music sources already reported as not playing: each is logged once.
    silent_music: HashSet<String>,
    /// Parks waiting for the name of the channel that placed them (see [`Tag::PlacedBy`]).
    placed_by: HashMap<ChannelId, (ParkRequest, bool)>,
    /// The channels that ended last, oldest first: a command the core sent before it heard
    /// of the end acts on one of them and must not leave state behind that no event would
    /// ever clear. Bounded by [`ENDED_KEPT`].
    ended: VecDeque<ChannelId>,
    ended_set: HashSet<ChannelId>,
    /// The channels the core holds parked, as given at the last connect, until its listing
    /// is read: those found still parked are taken back without reading them in full.
    held: HashSet<ChannelId>,
    /// A listing that left out calls the core holds parked, kept until each of them is read
    /// on its own (see [`FsTranslator::verify`]).
    listing: Option<(ChannelList, HashSet<ChannelId>)>,
}

/// How many ended channels are remembered (see `FsTranslator::ended`).
const ENDED_KEPT: usize = 1024;

impl FsTranslator {
    pub fn new(s: FsSettings) -> FsTranslator {
        FsTranslator {
            s,
            chans: HashMap::new(),
            lamps: HashMap::new(),
            replaced: VecDeque::new(),
            silent_music: HashSet::new(),
            placed_by: HashMap::new(),
            ended: VecDeque::new(),
            ended_set: HashSet::new(),
            held: HashSet::new(),
            listing: None,
        }
    }

    fn ended(&mut self, ch: &ChannelId) {
        if self.ended_set.insert(ch.clone()) {
            self.ended.push_back(ch.clone());
            if self.ended.len() > ENDED_KEPT {
                if let Some(old) = self.ended.pop_front() {
                    self.ended_set.remove(&old);
                }
            }
        }
    }

    /// How many entries the translator holds (channels, parks being resolved, replaced
    /// calls), not counting what is bounded by design (lamps by the orbits, the memory of
    /// ended channels, music sources): it returns to where it was once the calls that made
    /// it have ended, however many there were.
    pub fn state_size(&self) -> usize {
        self.chans.len()
            + self.placed_by.len()
            + self.replaced.len()
            + self.held.len()
            + self
                .listing
                .as_ref()
                .map_or(0, |(l, w)| l.rows.len() + w.len())
    }

    fn api(&self, line: String, tag: Tag) -> Request {
        Request {
            out: Outgoing::new(format!("api {line}")),
            tag,
        }
    }

    /// Runs a dialplan application on a channel in callpark's hands (`sendmsg` execute): it
    /// starts at once, where `uuid_broadcast` first waits out five frames of lead-in (100 ms
    /// measured on the testbed, 200 ms until playback). Queued executes run in order.
    fn execute(
        &mut self,
        out: &mut Output<Request>,
        what: &'static str,
        ch: &ChannelId,
        app: &str,
        arg: &str,
    ) {
        if let Some(c) = self.chans.get_mut(ch) {
            c.queued = true;
        }
        out.request(Request {
            out: Outgoing::new(format!("sendmsg {ch}"))
                .header("call-command", "execute")
                .header("execute-app-name", app)
                .header("execute-app-arg", arg)
                .header("event-lock", "true"),
            tag: Tag::Action(what, Some(ch.clone())),
        });
    }

    fn action(
        &self,
        out: &mut Output<Request>,
        what: &'static str,
        ch: Option<&ChannelId>,
        line: String,
    ) {
        out.request(self.api(line, Tag::Action(what, ch.cloned())));
    }

    /// A call came into callpark's hands: cancel the include's fallback transfer.
    fn take(&mut self, out: &mut Output<Request>, id: &ChannelId, c: Chan) {
        self.action(out, "take the call", Some(id), format!("sched_del {id}"));
        self.chans.insert(id.clone(), c);
    }

    fn on_park(&mut self, ev: &FsEvent, id: ChannelId, out: &mut Output<Request>) {
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
    fn on_music_ended(&mut self, ev: &FsEvent, id: &ChannelId) {
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
    /// `callpark_parker` wins; else the channel it was bridged to before the transfer (the
    /// transferer); else, for a call a phone sent on with a 302 before answering (deflect,
    /// forward: sofia transfers the caller to the Contact's user), the directory user it had
    /// dialled. `None`: the caller dialled the park code itself.
    fn parker_of(&self, ev: &FsEvent, context: &str) -> Option<Parker> {
        if let Some(p) = ev.callpark_parker.as_deref().filter(|p| !p.is_empty()) {
            return Some(parker_at(p.to_string()));
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

    /// The listing is FreeSWITCH's channel table, which its SQL thread fills from events
    /// after the fact (inserts and updates on separate queues), not the channels themselves;
    /// a reconnection in CI found it empty a tenth of a second after a park. Taken at its
    /// word, such a call is ended as "hung up while callpark was away" and its caller left
    /// alone in `park`. So a call the core holds that the listing leaves out is read on its
    /// own (`uuid_dump`, from the session itself) before the reconciliation is reported.
    fn verify(&mut self, list: ChannelList, out: &mut Output<Request>) {
        let listed: HashSet<&str> = list.rows.iter().map(|r| r.uuid.as_str()).collect();
        let missing: HashSet<ChannelId> = self
            .held
            .iter()
            .filter(|id| !listed.contains(id.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() {
            self.connected(list, out);
            return;
        }
        for id in &missing {
            out.request(self.api(format!("uuid_dump {id} json"), Tag::Verify(id.clone())));
        }
        self.listing = Some((list, missing));
    }

    /// The reconciliation: every channel there is, then what may sit in callpark's hands.
    fn connected(&mut self, list: ChannelList, out: &mut Output<Request>) {
        out.events.push(PbxEvent::Connected {
            channels: list
                .rows
                .iter()
                .map(|r| ChannelId::new(r.uuid.clone()))
                .collect(),
        });
        self.adopt(list, out);
    }

    /// What a (re)connection finds: channels bridged by `uuid_bridge` are reported bridged
    /// (the core ends a connecting call on it; any other is none of its business), and the
    /// channels that may sit in callpark's hands (parked, or on the include's music) are
    /// read in full to see whether they do.
    ///
    /// A channel the core holds parked ([`crate::pbx::Held`]) and found still parked or on
    /// the include's music is taken back from its row alone: the core knows its call, so no
    /// [`PbxEvent::Found`] is needed, and its answer and music states are in the row. Only
    /// its SIP Call-ID is not: a REFER with Replaces naming a call held across a reconnection
    /// is taken as a blind transfer.
    fn adopt(&mut self, list: ChannelList, out: &mut Output<Request>) {
        let held = std::mem::take(&mut self.held);
        for row in list.rows {
            let id = ChannelId::new(row.uuid);
            let music = matches!(row.application.as_str(), "playback" | "endless_playback");
            match row.application.as_str() {
                "uuid_bridge" => out
                    .events
                    .push(PbxEvent::Found(Event::Bridged { channel: id })),
                "park" | "playback" | "endless_playback" if held.contains(&id) => {
                    let chan = Chan {
                        answered: row.callstate == "ACTIVE" || row.callstate == "HELD",
                        dialplan_music: music,
                        // What callpark queued on it before the reconnection (an orbit
                        // spoken, then music) may still wait: its bridge flushes it.
                        queued: true,
                        ..Chan::default()
                    };
                    self.take(out, &id, chan);
                }
                "park" | "playback" | "endless_playback" => {
                    let line = format!("uuid_dump {id} json");
                    out.request(self.api(line, Tag::Dump(id)));
                }
                _ => {}
            }
        }
    }

    /// One channel read after a (re)connection, reported as its arrival would have been: a
    /// park or a retrieve the include handed over, or a leg callpark placed that answered.
    fn on_found(&mut self, ev: FsEvent, id: ChannelId, out: &mut Output<Request>) {
        if ev.uuid.as_deref() != Some(id.as_str()) || self.chans.contains_key(&id) {
            return;
        }
        let mut found = Output::default();
        if ev.callpark_leg.as_deref() == Some(id.as_str()) {
            // Parked by its originate's `&park()`: answered, waiting for its bridge.
            if ev.current_application.as_deref() == Some("park") {
                self.chans.insert(
                    id.clone(),
                    Chan {
                        answered: true,
                        ..Chan::default()
                    },
                );
                found.event(Event::Answered { channel: id });
            }
        } else if ev.callpark_leg.is_none()
            // On its way to the include's "callpark is down" path: not ours any more.
            && !ev
                .destination
                .as_deref()
                .is_some_and(|d| d.starts_with("callpark-down-"))
        {
            self.on_park(&ev, id, &mut found);
        }
        out.requests.append(&mut found.requests);
        out.events.extend(found.events.into_iter().map(|e| match e {
            PbxEvent::Call(e) => PbxEvent::Found(e),
            other => other,
        }));
    }

    fn say_then_hang_up(&self, out: &mut Output<Request>, id: &ChannelId, sound: &str) {
        // One inline dialplan does all three, so nothing waits on a playback's end.
        self.action(
            out,
            "play and hang up",
            Some(id),
            format!("uuid_transfer {id} answer,playback:{sound},hangup inline"),
        );
    }

    fn dial_string(&self, t: &Target) -> Result<String, String> {
        Ok(match t {
            Target::Endpoint(e) => e.clone(),
            Target::Destination(Destination::Exten { exten, context }) => {
                format!("loopback/{exten}/{context}")
            }
            Target::Destination(Destination::Dial(d)) => d.clone(),
            Target::Destination(Destination::Sip(uri)) => match &self.s.sip_profile {
                Some(p) => format!(
                    "sofia/{p}/{}",
                    uri.trim_start_matches("sips:").trim_start_matches("sip:")
                ),
                None => {
                    return Err(format!(
                        "cannot dial {uri}: set sip_endpoint (the sofia profile) for pbx `{}`",
                        self.s.pool
                    ));
                }
            },
        })
    }

    /// A phone subscribed to `<orbit>@<domain>` (a new busy-lamp key, a re-subscription): the
    /// orbit's lamp again, when lit. Probes for anything else (phones, other domains, idle
    /// orbits) are not callpark's to answer.
    fn on_probe(&self, ev: &FsEvent, out: &mut Output<Request>) {
        let Some((user, host)) = ev.presence_to.as_deref().and_then(|t| t.split_once('@')) else {
            return;
        };
        if !host.eq_ignore_ascii_case(&self.s.domain) {
            return;
        }
        let Ok(orbit) = user.parse::<Orbit>() else {
            return;
        };
        if let Some(&state) = self.lamps.get(&orbit) {
            debug!(pbx = %self.s.pool, %orbit, ?state, "presence probe answered");
            out.request(self.lamp(orbit, state));
        }
    }

    fn lamp(&self, orbit: Orbit, lamp: LampState) -> Request {
        // `early` is the dialog state a phone blinks for; valet_park has no ringing state.
        let (status, rpid, state, answer) = match lamp {
            LampState::InUse => ("Holding", "active", "CS_ROUTING", "confirmed"),
            LampState::Ringing => ("Ringing back", "active", "CS_ROUTING", "early"),
            LampState::Idle => ("Empty", "unknown", "CS_HANGUP", "terminated"),
        };
        let from = format!("{orbit}@{}", self.s.domain);
        // proto `sip`: sofia then notifies phones subscribed to plain `701@domain`, the busy-lamp
        // key a user sets up (valet_park's `park` proto needs `park+701` subscriptions).
        let out = Outgoing::new("sendevent PRESENCE_IN")
            .header("proto", "sip")
            .header("login", orbit.to_string())
            .header("from", from)
            .header("force-status", status)
            .header("rpid", rpid)
            .header("event_type", "presence")
            .header("alt_event_type", "dialog")
            .header("unique-id", format!("callpark-{orbit}"))
            .header("channel-state", state)
            .header("answer-state", answer)
            .header("presence-call-direction", "inbound");
        Request {
            out,
            tag: Tag::Action("busy lamp", None),
        }
    }
}

impl Translator for FsTranslator {
    type Wire = FsEvent;
    type Request = Request;
    type Reply = Reply;

    fn on_connect(&mut self, held: HashSet<ChannelId>, out: &mut Output<Request>) {
        self.held = held;
        self.listing = None;
        out.request(Request {
            out: Outgoing::new(format!("event json {EVENTS}")),
            tag: Tag::Setup,
        });
        for f in FILTERS {
            out.request(Request {
                out: Outgoing::new(f),
                tag: Tag::Setup,
            });
        }
        out.request(self.api("show channels as json".into(), Tag::List));
    }

    fn on_disconnect(&mut self) {
        // Answer states may change while we are away; the next events tell them again.
        self.chans.clear();
        self.held.clear();
        self.listing = None;
    }

    fn on_wire(&mut self, ev: FsEvent, out: &mut Output<Request>) {
        if ev.name == "PRESENCE_PROBE" {
            self.on_probe(&ev, out);
            return;
        }
        if ev.name == "BACKGROUND_JOB" {
            // A job's id is the leg's id (see Originate); other clients' jobs match no leg.
            if let (Some(job), Some(body)) = (&ev.job_uuid, &ev.body) {
                if let Some(reason) = body.trim().strip_prefix("-ERR") {
                    out.event(Event::OriginateFailed {
                        channel: ChannelId::new(job.clone()),
                        reason: reason.trim().to_string(),
                    });
                }
            }
            return;
        }
        let Some(uuid) = ev.uuid.clone() else {
            return;
        };
        let id = ChannelId::new(uuid);
        // A loopback leg's other half inherits callpark_leg; only the leg itself counts.
        let leg = ev.callpark_leg.as_deref() == Some(id.as_str());
        if ev.callpark_leg.is_some() && !leg {
            return;
        }
        match ev.name.as_str() {
            "CHANNEL_PARK" if !leg && !self.chans.contains_key(&id) => self.on_park(&ev, id, out),
            // A held call whose bridge lost its other side as it started, parked again by the
            // include. Taken as a park: the core ignores it while it holds the call, and
            // parks it anew should that bridge have started and ended meanwhile (the call
            // would otherwise wait in `park` with nobody to end it).
            "CHANNEL_PARK" if !leg && ev.destination.as_deref() == Some(RETURN_EXTEN) => {
                self.on_park(&ev, id, out)
            }
            // The include's hold music for a transferred call (and not music callpark started:
            // those channels are known already).
            "CHANNEL_EXECUTE"
                if !leg
                    && !self.chans.contains_key(&id)
                    && ev.callpark_action.as_deref() == Some("park")
                    && matches!(
                        ev.application.as_deref(),
                        Some("playback" | "endless_playback")
                    ) =>
            {
                self.on_park(&ev, id, out)
            }
            "CHANNEL_ANSWER" => {
                if let Some(c) = self.chans.get_mut(&id) {
                    c.answered = true;
                }
            }
            // A leg is reported answered once it is parked (`&park()` of its originate): from
            // then on nothing else runs on it, so a bridge cannot race its originate's end.
            "CHANNEL_PARK" if leg && !self.chans.contains_key(&id) => {
                self.chans.insert(
                    id.clone(),
                    Chan {
                        answered: true,
                        ..Chan::default()
                    },
                );
                out.event(Event::Answered { channel: id });
            }
            "CHANNEL_BRIDGE" => {
                // A bridge ends the include's music.
                if let Some(c) = self.chans.get_mut(&id) {
                    c.dialplan_music = false;
                }
                // The bridge callpark asked for has started: from now on its end ends the call
                // (`hangup_after_bridge`), no longer a transfer back into `park` (see the
                // include). A bridge over before this lands sends the call there, where it is
                // parked anew (above).
                let sides = [Some(id.clone()), ev.other_leg.clone().map(ChannelId::new)];
                for side in sides.into_iter().flatten() {
                    if self
                        .chans
                        .get_mut(&side)
                        .is_some_and(|c| std::mem::take(&mut c.return_armed))
                    {
                        self.action(
                            out,
                            "end the bridge's way back to park",
                            Some(&side),
                            format!("uuid_setvar {side} transfer_after_bridge"),
                        );
                    }
                }
                out.event(Event::Bridged { channel: id })
            }
            "CHANNEL_EXECUTE_COMPLETE" if !leg => self.on_music_ended(&ev, &id),
            "CHANNEL_HANGUP" => {
                self.placed_by.remove(&id);
                self.ended(&id);
                let chan = self.chans.remove(&id);
                let answered = ev.answered_time.as_deref().is_some_and(|t| t != "0");
                let replaced = ev.transfer_disposition.as_deref() == Some("replaced")
                    || ev.hangup_cause.as_deref() == Some("ATTENDED_TRANSFER");
                if let (true, Some(call_id)) =
                    (replaced, chan.and_then(|c| c.sip_call_id).filter(|_| !leg))
                {
                    // The consultation of a phone's attended transfer: the caller follows.
                    if self.replaced.len() == REPLACED_KEPT {
                        self.replaced.pop_front();
                    }
                    self.replaced.push_back((call_id, id.clone()));
                    out.event(Event::Replaced { channel: id });
                } else if leg && !answered {
                    out.event(Event::OriginateFailed {
                        channel: id,
                        reason: ev.hangup_cause.unwrap_or_else(|| "hung up".into()),
                    });
                } else {
                    out.event(Event::Hangup { channel: id });
                }
            }
            _ => {}
        }
    }

    fn on_command(&mut self, cmd: Command, out: &mut Output<Request>) {
        debug!(pbx = %self.s.pool, ?cmd, "command");
        let ended: Vec<ChannelId> = cmd
            .channels()
            .into_iter()
            .filter(|c| self.ended_set.contains(*c))
            .cloned()
            .collect();
        // What a channel's own thread must carry out (a bridge, a prompt, music): one waiting
        // in the outbound connection is let go once the requests for it are answered. Not for
        // an answer or a hang-up, which FreeSWITCH does from any thread: let go after an
        // answer, it would sit in `park` by the time the bridge came.
        let named: Vec<ChannelId> = match &cmd {
            Command::Answer { .. } | Command::StopMoh { .. } | Command::Hangup { .. } => vec![],
            _ => cmd.channels().into_iter().cloned().collect(),
        };
        self.command(cmd, out);
        for ch in named {
            if let Some(c) = self.chans.get_mut(&ch).filter(|c| c.door) {
                c.door = false;
                out.request(Request {
                    out: Outgoing::new(format!("release {ch}")),
                    tag: Tag::Release(ch),
                });
            }
        }
        // Sent all the same (FreeSWITCH answers -ERR), but nothing is kept for a channel that
        // has ended: no event would ever clear it.
        for ch in &ended {
            self.chans.remove(ch);
        }
    }

    fn on_reply(&mut self, req: Request, reply: Reply, out: &mut Output<Request>) {
        self.reply(req, reply, out)
    }
}

impl FsTranslator {
    fn command(&mut self, cmd: Command, out: &mut Output<Request>) {
        match cmd {
            Command::Answer { channel } => {
                let c = self.chans.entry(channel.clone()).or_default();
                if !c.answered {
                    c.answered = true;
                    self.action(
                        out,
                        "answer",
                        Some(&channel),
                        format!("uuid_answer {channel}"),
                    );
                }
            }
            Command::StartMoh { channel, moh } => {
                if self.chans.get(&channel).is_some_and(|c| c.dialplan_music) {
                    return;
                }
                let (app, arg) = match moh {
                    Moh::Off => return,
                    // The PBX's own hold music (`hold_music` in vars.xml).
                    Moh::Class(None) => ("playback", "${hold_music}".to_string()),
                    Moh::Class(Some(class)) => ("playback", format!("local_stream://{class}")),
                    Moh::File(path) => ("endless_playback", path),
                };
                let c = self.chans.entry(channel.clone()).or_default();
                c.bridging = false;
                c.music = Some(arg.clone());
                self.execute(out, "start music on hold", &channel, app, &arg);
            }
            // Nothing to send: the core follows StopMoh with Bridge, and `uuid_bridge` itself
            // interrupts whatever the channel plays (Bridge flushes what callpark queued).
            Command::StopMoh { .. } => {}
            Command::Announce { channel, orbit } => {
                // Queued before the music, which starts when the orbit has been spoken.
                self.execute(
                    out,
                    "announce the orbit",
                    &channel,
                    "playback",
                    &spoken(orbit),
                );
            }
            Command::Notify { endpoint, text } => {
                // SIP MESSAGE through mod_sms to a sofia endpoint; others learn from the log.
                if let Some(to) = sip_user_of(&endpoint) {
                    let text: String = text.chars().filter(|c| *c != '|').collect();
                    self.action(
                        out,
                        "send message",
                        None,
                        format!("chat sip|callpark@{}|{to}|{text}", self.s.domain),
                    );
                }
            }
            Command::Originate {
                channel,
                target,
                caller_id,
                timeout_ms,
                ..
            } => {
                let dial = match self.dial_string(&target) {
                    Ok(d) => d,
                    Err(reason) => {
                        warn!(pbx = %self.s.pool, "{reason}");
                        out.event(Event::OriginateFailed { channel, reason });
                        return;
                    }
                };
                let secs = ((timeout_ms + 999) / 1000).max(1);
                let mut vars = format!(
                    "origination_uuid={channel},callpark_leg={channel},\
                     origination_caller_id_name={},origination_caller_id_number={},\
                     originate_timeout={secs},hangup_after_bridge=true,rdnis={RETURN_EXTEN}",
                    originate_value(&caller_id.name),
                    originate_value(&caller_id.number),
                );
                // Sofia drops a caller id name up to its first colon (`Parked 601: Carol`
                // reaches a phone as ` Carol`; seen on FreeSWITCH 1.11). Its From display is
                // taken whole from `sip_from_display`, and the Remote-Party-ID header, which
                // would still carry the cut name, is left out.
                if caller_id.name.contains(':') {
                    vars.push_str(&format!(
                        ",sip_from_display={},sip_cid_type=none",
                        originate_value(&caller_id.name)
                    ));
                }
                // The job's id is the leg's: a failure is reported for the leg without any
                // state here, even after a restart.
                out.request(Request {
                    out: Outgoing::new(format!("bgapi originate {{{vars}}}{dial} &park()"))
                        .header("Job-UUID", channel.as_str()),
                    tag: Tag::Originate(channel),
                });
            }
            // Nothing more for caller id: FreeSWITCH's bridge sends each side the other's caller
            // id (switch_ivr_bridge's send_display), which sofia passes on to the phones it
            // knows (Polycom, Yealink, Aastra, Cisco SPA: an UPDATE with P-Asserted-Identity;
            // snom: INFO); seen on the testbed in tests/caller_id.rs.
            Command::Bridge { parked, other } => {
                // `uuid_bridge` ends whatever either plays, the include's music included, but
                // not what callpark queued behind it: that is flushed first (`all`). Not sent
                // for the include's music alone, which nothing queues behind.
                for ch in [&parked, &other] {
                    let c = self.chans.entry(ch.clone()).or_default();
                    c.bridging = true;
                    c.dialplan_music = false;
                    if std::mem::take(&mut c.queued) {
                        self.action(
                            out,
                            "flush what is queued",
                            Some(ch),
                            format!("uuid_break {ch} all"),
                        );
                    }
                }
                // Should the other side be gone by the time the bridge starts, FreeSWITCH
                // hangs the held call up unless it has somewhere to go: back into `park`, by
                // the include's `callpark-return`. Unset when the bridge starts.
                if let Some(c) = self.chans.get_mut(&parked) {
                    c.return_armed = true;
                }
                self.action(
                    out,
                    "arm the way back to park",
                    Some(&parked),
                    format!("uuid_setvar {parked} transfer_after_bridge {RETURN_EXTEN}"),
                );
                self.action(
                    out,
                    "bridge",
                    Some(&parked),
                    format!("uuid_bridge {parked} {other}"),
                )
            }
            Command::Hangup { channel } => self.action(
                out,
                "hang up",
                Some(&channel),
                format!("uuid_kill {channel}"),
            ),
            Command::OrbitEmpty { channel, orbit } => {
                info!(pbx = %self.s.pool, channel = %channel, %orbit, "orbit empty");
                self.say_then_hang_up(out, &channel, SOUND_ORBIT_EMPTY);
            }
            Command::Refuse { channel, reason } => {
                info!(pbx = %self.s.pool, channel = %channel, reason = reason.as_str(), "park refused");
                self.say_then_hang_up(out, &channel, SOUND_PARK_FAILED);
            }
            Command::ParkFailed { channel } => {
                // `aleg`: to this side of the bridge only.
                self.action(
                    out,
                    "tell park failed",
                    Some(&channel),
                    format!("uuid_broadcast {channel} {SOUND_PARK_FAILED} aleg"),
                );
            }
            Command::Lamp { orbit, state } => {
                if state == LampState::Idle {
                    self.lamps.remove(&orbit);
                } else {
                    self.lamps.insert(orbit, state);
                }
                out.request(self.lamp(orbit, state))
            }
        }
    }

    fn reply(&mut self, req: Request, reply: Reply, out: &mut Output<Request>) {
        let text = match reply {
            Reply::Text(t) => t,
            Reply::Lost(why) => {
                debug!(pbx = %self.s.pool, command = %req.out.line, "never answered: {why}");
                match req.tag {
                    // FreeSWITCH may have placed the leg before the connection went: the next
                    // connection's listing says whether it exists (and reconciles it as gone
                    // if not), and the leg's ring deadline covers a connection that never
                    // returns. Reported failed here, it would be rung again beside itself.
                    Tag::Originate(_) => {}
                    // Found again when the connection is back.
                    Tag::PlacedBy(id) => {
                        self.placed_by.remove(&id);
                    }
                    _ => {}
                }
                return;
            }
        };
        match req.tag {
            Tag::List => match ChannelList::parse(&text) {
                Ok(mut list) => {
                    // A channel hanging up as it was listed is gone: the reconciliation ends
                    // its call, and it is not adopted.
                    list.rows.retain(|r| !r.ending());
                    self.verify(list, out);
                }
                Err(e) => {
                    warn!(pbx = %self.s.pool, "cannot read `show channels as json` ({e}): {}",
                    text.chars().take(200).collect::<String>())
                }
            },
            Tag::PlacedBy(id) => {
                let Some((mut req, found)) = self.placed_by.remove(&id) else {
                    return;
                };
                let name = text.trim();
                if name.starts_with("sofia/") {
                    if let Some(ep) = endpoint_of(name, "default") {
                        req.parker = parker_at(ep);
                    }
                }
                let e = Event::Park(req);
                out.events.push(if found {
                    PbxEvent::Found(e)
                } else {
                    PbxEvent::Call(e)
                });
            }
            Tag::Verify(id) => {
                let Some((list, waiting)) = self.listing.as_mut() else {
                    return;
                };
                if !waiting.remove(&id) {
                    return;
                }
                let row = FsEvent::from_json(text.as_bytes())
                    .ok()
                    .and_then(|ev| ChannelRow::from_dump(&ev))
                    .filter(|r| r.uuid == id.as_str() && !r.ending());
                match row {
                    Some(row) => {
                        warn!(pbx = %self.s.pool, channel = %id,
                            "`show channels` did not list a parked call that exists; \
                             FreeSWITCH's channel table lags its channels, so the call is kept");
                        list.rows.push(row);
                    }
                    None => debug!(pbx = %self.s.pool, channel = %id, "gone: {}", text.trim()),
                }
                if waiting.is_empty() {
                    if let Some((list, _)) = self.listing.take() {
                        self.connected(list, out);
                    }
                }
            }
            Tag::Dump(id) => match FsEvent::from_json(text.as_bytes()) {
                Ok(ev) => self.on_found(ev, id, out),
                // `-ERR No such channel!`: it ended meanwhile, and its hang-up event tells.
                Err(_) => debug!(pbx = %self.s.pool, channel = %id, "uuid_dump: {}", text.trim()),
            },
            Tag::Setup if text.starts_with("-ERR") => {
                warn!(pbx = %self.s.pool, command = %req.out.line, "the event socket refused: {text}")
            }
            Tag::Originate(leg) if text.starts_with("-ERR") => {
                out.event(Event::OriginateFailed {
                    channel: leg,
                    reason: text.trim().to_string(),
                });
            }
            Tag::Action(what, ch) if text.starts_with("-ERR") => {
                // A channel that just hung up answers `-ERR No such channel!`: routine.
                debug!(pbx = %self.s.pool, channel = ?ch, "{what}: {}", text.trim());
                // Unless its hang-up was never heard: one that ended as a connection was being
                // made (its CHANNEL_HANGUP sent before the subscription, the listing taken
                // before its row went) would otherwise hold its orbit until a timer found out.
                let gone = text.starts_with("-ERR No such channel")
                    || text.starts_with("-ERR invalid session id");
                if let Some(ch) = ch.filter(|c| gone && !self.ended_set.contains(c)) {
                    debug!(pbx = %self.s.pool, channel = %ch, "gone without a hang-up event");
                    self.ended(&ch);
                    self.chans.remove(&ch);
                    self.placed_by.remove(&ch);
                    out.event(Event::Hangup { channel: ch });
                }
            }
            _ => {}
        }
    }
}

/// A value of a `bgapi originate {…}` variable, written so that FreeSWITCH reads back exactly
/// `v` (`Parked 701: O'Brien, Zoë`). The line is taken apart three times (mod_commands splits
/// the arguments at blanks, the originate splits the `{}` block at commas, then each variable at
/// its first `=`), and each pass (switch_separate_string) drops one level of single quotes and
/// backslash escapes: so `\` and `'` are escaped once per pass, `,` for the passes from the
/// comma split on, and the whole is quoted for the blank split. Checked on the real FreeSWITCH
/// (tests/caller_id.rs). What no escape protects is replaced: braces (the `{}` block ends at the
/// first unbalanced `}`, quotes or not) by parentheses, control characters (a line break would
/// end the event-socket command) by spaces.
pub fn originate_value(v: &str) -> String {
    let plain: String = v
        .chars()
        .map(|c| match c {
            '{' => '(',
            '}' => ')',
            c => c,
        })
        .collect();
    let by_equals = fs_escape(&plain, None);
    blank_split_arg(&fs_escape(&by_equals, Some(',')))
}

/// One level of FreeSWITCH's escapes (switch_separate_string): `\` and `'` always, and the
/// pass's delimiter. Control characters, which no escape keeps (a line break would end the
/// event-socket command), become spaces; blanks at the ends go, as each pass trims them.
fn fs_escape(s: &str, delim: Option<char>) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.trim().chars() {
        if c == '\\' || c == '\'' || Some(c) == delim {
            out.push('\\');
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// A command argument that may hold blanks: quoted for mod_commands' split at blanks, with one
/// more level of escapes for that pass.
fn blank_split_arg(s: &str) -> String {
    format!("'{}'", fs_escape(s, None))
}

/// The orbit spoken digit by digit (`*` and `#` too), as one playback.
pub fn spoken(orbit: Orbit) -> String {
    let files: Vec<String> = orbit
        .to_string()
        .chars()
        .map(|c| match c {
            '*' => "digits/star.wav".to_string(),
            '#' => "digits/pound.wav".to_string(),
            d => format!("digits/{d}.wav"),
        })
        .collect();
    format!("file_string://{}", files.join("!"))
}

/// The parker of a call that dialled the park code (or an orbit) itself: matched against
/// voice policies by its number and endpoint, with no phone to ring back (it is on the line).
fn dialled_parker(ev: &FsEvent, caller: &Party, context: &str) -> Parker {
    let name = ev.channel_name.clone().unwrap_or_default();
    let ep = endpoint_of(&name, context);
    let mut ids = vec![caller.number.clone()];
    ids.extend(ep.clone());
    Parker {
        display: ep.unwrap_or_else(|| caller.number.clone()),
        ids,
        endpoint: None,
    }
}

/// A parker from the dial string its ringbacks go to.
fn parker_at(endpoint: String) -> Parker {
    let mut ids = vec![endpoint.clone()];
    ids.extend(user_of(&endpoint));
    Parker {
        ids,
        endpoint: Some(endpoint.clone()),
        display: endpoint,
    }
}

/// A dial string that reaches the phone behind a channel name: sofia names are dial strings
/// already (`sofia/internal/alice@127.0.0.1:5270`); a loopback half `loopback/<exten>-a` dials
/// `<exten>` again in the context the call is in.
pub fn endpoint_of(channel_name: &str, context: &str) -> Option<String> {
    if let Some(rest) = channel_name.strip_prefix("loopback/") {
        let exten = rest
            .strip_suffix("-a")
            .or_else(|| rest.strip_suffix("-b"))
            .unwrap_or(rest);
        return Some(format!("loopback/{exten}/{context}"));
    }
    channel_name.contains('/').then(|| channel_name.to_string())
}

/// The user part of a dial string (`sofia/internal/alice@host` -> `alice`,
/// `user/1000@domain` -> `1000`, `loopback/dev-alice/ctx` -> `dev-alice`).
fn user_of(endpoint: &str) -> Option<String> {
    let mut parts = endpoint.split('/');
    let tech = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    let who = match tech {
        "sofia" => rest.get(1)?,
        _ => rest.first()?,
    };
    let user = who.split(['@', '%']).next()?;
    (!user.is_empty()).then(|| user.to_string())
}

/// `profile/user@host` of a sofia endpoint, the `to` of a SIP MESSAGE by `chat`: the profile
/// sends it, to the contacts `user@host` registered (the port is the registrar's business).
fn sip_user_of(endpoint: &str) -> Option<String> {
    let rest = endpoint.strip_prefix("sofia/")?;
    let (profile, uri) = rest.split_once('/')?;
    let uri = uri.trim_start_matches("sip:");
    // `user%domain`: a registered user of the profile.
    let (user, host) = uri.split_once('@').or_else(|| uri.split_once('%'))?;
    let host = host.split([':', ';']).next()?;
    Some(format!("{profile}/{user}@{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_to_dial_strings() {
        assert_eq!(
            endpoint_of("loopback/dev-alice-a", "callpark-test").as_deref(),
            Some("loopback/dev-alice/callpark-test")
        );
        assert_eq!(
            endpoint_of("sofia/internal/alice@127.0.0.1:5270", "x").as_deref(),
            Some("sofia/internal/alice@127.0.0.1:5270")
        );
        assert_eq!(endpoint_of("nonsense", "x"), None);
        assert_eq!(
            user_of("sofia/internal/alice@127.0.0.1:5270").as_deref(),
            Some("alice")
        );
        assert_eq!(user_of("user/1000@example.com").as_deref(), Some("1000"));
        assert_eq!(
            sip_user_of("sofia/internal/alice@127.0.0.1:5270").as_deref(),
            Some("internal/alice@127.0.0.1")
        );
        assert_eq!(sip_user_of("loopback/x/y"), None);
        assert_eq!(
            sip_user_of("sofia/internal/alice%127.0.0.1").as_deref(),
            Some("internal/alice@127.0.0.1")
        );
        assert_eq!(
            user_of("sofia/internal/alice%127.0.0.1").as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn orbits_are_spoken_digit_by_digit() {
        assert_eq!(
            spoken("*701".parse().unwrap()),
            "file_string://digits/star.wav!digits/7.wav!digits/0.wav!digits/1.wav"
        );
    }
}
