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

mod adopt;
mod arrival;
mod command;
mod names;
mod request;

use std::collections::{HashMap, HashSet, VecDeque};

use tracing::{debug, warn};

use super::codec::Outgoing;
use super::dialplan::RETURN_EXTEN;
use super::model::{ChannelList, FsEvent};
use crate::orbit::Orbit;
use crate::park::{ChannelId, Command, Event, LampState, ParkRequest};
use crate::pbx::trunk::Trunks;
use crate::pbx::{Output, Translator};

use names::parker_at;
pub use names::{endpoint_of, originate_value, spoken, user_of};
pub use request::{Reply, Request, Tag};

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
/// failed. The driver's wake-up connections listen for these only (see `driver/waker.rs`).
pub(crate) const WAKE_EVENTS: &str = "CHANNEL_PARK CHANNEL_EXECUTE CHANNEL_HANGUP BACKGROUND_JOB";

/// What the translator needs to know of its `[[pbx]]`.
#[derive(Debug, Clone)]
pub struct FsSettings {
    pub pool: String,
    /// The sofia profile through which `sip:` destinations are dialled.
    pub sip_profile: Option<String>,
    /// The domain of busy-lamp presence and SIP MESSAGEs (`701@<domain>`).
    pub domain: String,
    /// The other pools whose transferred calls may arrive here to park (`X-Callpark-Park`).
    pub trunks: Trunks,
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
    /// Pages placed whose job has not answered yet, to tell a failed page in the log: the
    /// core knows no page leg. Cleared with the connection (its jobs' answers go with it).
    pages: HashSet<ChannelId>,
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
            pages: HashSet::new(),
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
            + self.pages.len()
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
        // What the connection's reconciliation used, and the parks whose parker was being
        // read over it: its requests are abandoned with it, and the next listing finds
        // those calls again.
        self.held.clear();
        self.listing = None;
        self.placed_by.clear();
        self.pages.clear();
    }

    fn on_wire(&mut self, ev: FsEvent, out: &mut Output<Request>) {
        if ev.name == "PRESENCE_PROBE" {
            self.on_probe(&ev, out);
            return;
        }
        if ev.name == "BACKGROUND_JOB" {
            // A job's id is the leg's id (see Originate); other clients' jobs match no leg.
            if let (Some(job), Some(body)) = (&ev.job_uuid, &ev.body) {
                let job_id = ChannelId::new(job.clone());
                if self.pages.remove(&job_id) {
                    if let Some(reason) = body.trim().strip_prefix("-ERR") {
                        warn!(pbx = %self.s.pool, page = %job_id, "the page was not placed: {}", reason.trim());
                    }
                    return;
                }
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
            Tag::List => self.on_list(&text, out),
            Tag::Verify(id) => self.on_verify(id, &text, out),
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
                if found {
                    out.found(e);
                } else {
                    out.event(e);
                }
            }
            Tag::Dump(id) => self.on_dump(id, &text, out),
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
