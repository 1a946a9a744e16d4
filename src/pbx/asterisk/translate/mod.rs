//! The pure half of the Asterisk adapter: ARI events and REST replies in, core events and REST
//! requests out. No socket, no clock.
//!
//! The dialplan sends calls into the Stasis application with arguments that say why:
//! `park[,lot[,orbit[,moh]]]` (`moh`: the include put the call on hold already),
//! `retrieve,<orbit>`; channels callpark originates carry `leg`.
//! A park by blind transfer is recognised by `BLINDTRANSFER` on the parked channel, which
//! names the transferer's channel and so the parker's endpoint; `ATTENDEDTRANSFER` marks an
//! attended one. ari.conf's `channelvars` puts both in the event; without it they are read
//! over REST before the park is reported.

mod adopt;
mod arrival;
mod command;
mod music;
mod names;

pub use names::caller_id_param;
use names::path_channel;

use std::collections::{HashMap, HashSet, VecDeque};

use tracing::{debug, warn};

use super::model::{AriEvent, Bridge, Channel, ChannelState, Variable};
pub use super::request::{Failure, PlaybackId, Reply, Request, Tag, TransferVar, Verb};
use crate::orbit::Orbit;
use crate::park::{ChannelId, Command, Event, Moh, Party};
use crate::pbx::trunk::Trunks;
use crate::pbx::{Output, PbxEvent, Translator};

/// Sounds of Asterisk's core sound set that callpark plays.
/// What a page's end is called in requests: a 404 for it is routine.
pub(crate) const END_PAGE: &str = "end the page";
pub(crate) const SOUND_ORBIT_EMPTY: &str = "sound:pbx-invalidpark";
pub(crate) const SOUND_PARK_FAILED: &str = "sound:pbx-parkingfailed";

/// What the translator needs to know of its `[[pbx]]`.
#[derive(Debug, Clone)]
pub struct AriSettings {
    pub pool: String,
    pub app: String,
    /// The PJSIP endpoint through which `sip:` destinations are dialled.
    pub sip_endpoint: Option<String>,
    /// The other pools whose transferred calls may arrive here to park (`X-Callpark-Park`).
    pub trunks: Trunks,
}

/// What happens when a playback ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterPlayback {
    Hangup(ChannelId),
    /// Back to the dialplan after Stasis().
    Continue(ChannelId),
    /// The orbit announcement ended: music on hold may start.
    Moh(ChannelId),
    /// A custom music-on-hold file ended: play it again while the call is held.
    Loop {
        channel: ChannelId,
        media: String,
    },
}

impl AfterPlayback {
    fn channel(&self) -> &ChannelId {
        match self {
            AfterPlayback::Hangup(c) | AfterPlayback::Continue(c) | AfterPlayback::Moh(c) => c,
            AfterPlayback::Loop { channel, .. } => channel,
        }
    }
}

/// How many ended channels are remembered (see `AriTranslator::ended`).
const ENDED_KEPT: usize = 1024;

/// What the translator knows of a channel callpark has seen.
#[derive(Debug, Clone, Default)]
struct Chan {
    up: bool,
    /// A leg callpark originated that has not answered yet.
    ringing: bool,
    /// Playing the orbit: music waits for its end.
    announcing: bool,
    /// On hold by the include's StartMusicOnHold() (Stasis argument `moh`): callpark's first
    /// music on hold for it is already playing.
    dialplan_music: bool,
    deferred_moh: Option<Moh>,
    /// The playback of a custom music-on-hold file.
    file_moh: Option<PlaybackId>,
}

/// A park waiting for the transfer variables read over REST.
#[derive(Debug, Clone)]
struct PendingPark {
    channel: Channel,
    caller: Party,
    lot: Option<String>,
    orbit: Option<Orbit>,
    /// Found on (re)connecting rather than announced by StasisStart.
    found: bool,
    /// The channel this one took the place of (a phone's REFER with Replaces).
    replaces: Option<ChannelId>,
}

/// The translator; see the module docs.
#[derive(Debug)]
pub struct AriTranslator {
    s: AriSettings,
    chans: HashMap<ChannelId, Chan>,
    /// Bridges asked for and not complete: bridge id -> its two channels.
    pending_bridges: HashMap<String, (ChannelId, ChannelId)>,
    /// Complete bridges: channel -> (bridge id, peer).
    bridged: HashMap<ChannelId, (String, ChannelId)>,
    after: HashMap<PlaybackId, AfterPlayback>,
    lookups: HashMap<ChannelId, PendingPark>,
    /// Channels in callpark's bridges when the last `GET /bridges` was answered.
    found_bridged: HashMap<ChannelId, String>,
    /// Channels whose StasisStart came over this connection: handled live, so the listing
    /// (which may be older than those events) must not report them again.
    seen: HashSet<ChannelId>,
    seq: u64,
    /// Music sources already reported as not playing: each is logged once.
    silent_music: HashSet<String>,
    /// The channels that ended last, oldest first: a command the core sent before it heard
    /// of the end (a caller hanging up as it is parked) acts on one of them, and must not
    /// leave state behind that no event would ever clear. Bounded by [`ENDED_KEPT`].
    ended: VecDeque<ChannelId>,
    ended_set: HashSet<ChannelId>,
    /// Channels the translator held state for when this connection began: those the
    /// connection's listing does not show ended while callpark was not looking.
    before_connect: HashSet<ChannelId>,
}

/// The key that orders the requests of a (re)connection: bridges first, then channels.
const RECONNECT_KEY: &str = "reconnect";

impl AriTranslator {
    pub fn new(s: AriSettings) -> AriTranslator {
        AriTranslator {
            s,
            chans: HashMap::new(),
            pending_bridges: HashMap::new(),
            bridged: HashMap::new(),
            after: HashMap::new(),
            lookups: HashMap::new(),
            found_bridged: HashMap::new(),
            seen: HashSet::new(),
            seq: 0,
            silent_music: HashSet::new(),
            ended: VecDeque::new(),
            ended_set: HashSet::new(),
            before_connect: HashSet::new(),
        }
    }

    fn chan(&mut self, ch: &ChannelId) -> &mut Chan {
        self.chans.entry(ch.clone()).or_default()
    }

    fn req(
        &self,
        method: Verb,
        path: String,
        query: Vec<(&'static str, String)>,
        key: Option<&ChannelId>,
        tag: Tag,
    ) -> Request {
        Request {
            method,
            path,
            query,
            variables: vec![],
            key: key.map(|k| k.as_str().to_string()),
            tag,
        }
    }

    fn action(
        &self,
        out: &mut Output<Request>,
        method: Verb,
        ch: &ChannelId,
        rest: &str,
        query: Vec<(&'static str, String)>,
        what: &'static str,
    ) {
        out.request(self.req(
            method,
            path_channel(ch, rest),
            query,
            Some(ch),
            Tag::Action(what),
        ));
    }

    /// A bridged call ends for both parties when one leaves.
    fn drop_bridge_of(&mut self, ch: &ChannelId, out: &mut Output<Request>) {
        if let Some((bridge, peer)) = self.bridged.remove(ch) {
            self.bridged.remove(&peer);
            self.action(out, Verb::Delete, &peer, "", vec![], "hang up bridge peer");
            out.request(self.req(
                Verb::Delete,
                format!("/bridges/{bridge}"),
                vec![],
                None,
                Tag::Action("destroy bridge"),
            ));
        }
    }

    /// A channel ended: everything held for it goes.
    fn forget(&mut self, ch: &ChannelId) {
        self.drop_state(ch);
        if self.ended_set.insert(ch.clone()) {
            self.ended.push_back(ch.clone());
            if self.ended.len() > ENDED_KEPT {
                if let Some(old) = self.ended.pop_front() {
                    self.ended_set.remove(&old);
                }
            }
        }
    }

    fn drop_state(&mut self, ch: &ChannelId) {
        self.chans.remove(ch);
        self.lookups.remove(ch);
        self.seen.remove(ch);
        self.found_bridged.remove(ch);
        self.pending_bridges.retain(|_, (a, b)| a != ch && b != ch);
        self.after.retain(|_, a| a.channel() != ch);
        if let Some((_, peer)) = self.bridged.remove(ch) {
            if self.bridged.get(&peer).is_some_and(|(_, p)| p == ch) {
                self.bridged.remove(&peer);
            }
        }
    }

    /// How many entries the translator holds (channels, playbacks, bridges, lookups), not
    /// counting the fixed-size memory of ended channels: it returns to where it was once
    /// the calls that made it have ended, however many there were.
    pub fn state_size(&self) -> usize {
        self.chans.len()
            + self.pending_bridges.len()
            + self.bridged.len()
            + self.after.len()
            + self.lookups.len()
            + self.found_bridged.len()
            + self.seen.len()
            + self.silent_music.len()
            + self.before_connect.len()
    }

    /// Asterisk says it does not know a channel callpark acted on (a playback, an answer,
    /// music): the channel ended without its ChannelDestroyed reaching callpark (it ended as a
    /// connection was being made, after the listing that still showed it). Reported gone, once,
    /// rather than left holding its orbit until a timer finds out.
    fn gone_unheard(&mut self, req: &Request, e: &Failure, out: &mut Output<Request>) {
        let Failure::Status {
            status, message, ..
        } = e
        else {
            return;
        };
        if *status != 404 || !message.contains("Channel not found") {
            return;
        }
        // A page's channel is never the core's: its end, heard or not, is nothing to report.
        if !matches!(req.tag, Tag::Play(_) | Tag::Action(_)) || req.tag == Tag::Action(END_PAGE) {
            return;
        }
        let Some(id) = req
            .path
            .strip_prefix("/channels/")
            .and_then(|rest| rest.split('/').next())
            .filter(|id| !id.is_empty())
        else {
            return;
        };
        let ch = ChannelId::new(id.to_string());
        if self.ended_set.contains(&ch) {
            return;
        }
        debug!(pbx = %self.s.pool, channel = %ch, "gone without a ChannelDestroyed");
        self.drop_bridge_of(&ch, out);
        self.forget(&ch);
        out.event(Event::Hangup { channel: ch });
    }

    /// A request abandoned with its connection: Asterisk may or may not have carried it out.
    /// What sits in the Stasis application is found again by the next connection's listing
    /// (a park whose variables were being read, a retrieve whose bridge was being made), and a
    /// leg being originated is either among the channels listed or reconciled as gone: none
    /// is reported failed or asked again here.
    fn on_lost(&mut self, tag: Tag, e: &Failure, out: &mut Output<Request>) {
        debug!(pbx = %self.s.pool, "{e}");
        match tag {
            Tag::Var(id, _) => {
                self.lookups.remove(&id);
            }
            Tag::BridgeCreated { bridge, .. } => {
                self.pending_bridges.remove(&bridge);
            }
            // What was to follow the playback happens now, as when it ends: a call must not
            // wait on the end of a playback that may never have started.
            Tag::Play(pb) => self.on_playback_finished(&pb, false, out),
            Tag::Bridges | Tag::List | Tag::Originate(_) | Tag::Action(_) => {}
        }
    }
}

impl Translator for AriTranslator {
    type Wire = AriEvent;
    type Request = Request;
    type Reply = Reply;

    /// Asterisk's listing carries what adoption needs (`channelvars`), so every channel is
    /// read from it and `held` changes nothing here.
    fn on_connect(&mut self, _held: HashSet<ChannelId>, out: &mut Output<Request>) {
        self.seen.clear();
        self.before_connect = self.known_channels();
        // Asked only once the websocket is up, so no event falls in between; one key, so the
        // bridges are known when the channels are read.
        let key = Some(RECONNECT_KEY.to_string());
        for (path, tag) in [("/bridges", Tag::Bridges), ("/channels", Tag::List)] {
            out.request(Request {
                method: Verb::Get,
                path: path.into(),
                query: vec![],
                variables: vec![],
                key: key.clone(),
                tag,
            });
        }
    }

    /// Asterisk keeps its channels in the Stasis application, their playbacks and callpark's
    /// bridges when the websocket drops, and no listing tells again what callpark asked of
    /// them (a playback's follow-up, a bridge being made, a leg ringing): that stays. What
    /// goes is what only the connection's reconciliation used (its bridge listing, the
    /// channels its listing was to check) and the parks whose transfer variables were being
    /// read over it: their requests are abandoned with it, and the next connection's listing
    /// finds those calls again.
    fn on_disconnect(&mut self) {
        self.lookups.clear();
        self.found_bridged.clear();
        self.before_connect.clear();
    }

    fn on_wire(&mut self, ev: AriEvent, out: &mut Output<Request>) {
        debug!(pbx = %self.s.pool, ?ev, "ARI event");
        match ev {
            AriEvent::StasisStart {
                args,
                channel,
                replace_channel,
            } => self.on_stasis_start(args, channel, replace_channel.map(|c| *c), false, out),
            AriEvent::ChannelStateChange { channel } if channel.state == ChannelState::Up => {
                self.chan(&ChannelId::new(channel.id)).up = true;
            }
            AriEvent::ChannelDestroyed {
                channel, cause_txt, ..
            } => {
                let id = ChannelId::new(channel.id);
                self.drop_bridge_of(&id, out);
                let ringing = self.chans.get(&id).is_some_and(|c| c.ringing);
                self.forget(&id);
                out.event(if ringing {
                    Event::OriginateFailed {
                        channel: id,
                        reason: cause_txt,
                    }
                } else {
                    Event::Hangup { channel: id }
                });
            }
            AriEvent::StasisEnd { channel } => {
                let id = ChannelId::new(channel.id);
                self.drop_bridge_of(&id, out);
                self.forget(&id);
                out.event(Event::Hangup { channel: id });
            }
            AriEvent::ChannelEnteredBridge { bridge, .. } => {
                if let Some((a, b)) = self.pending_bridges.get(&bridge.id).cloned() {
                    let has = |c: &ChannelId| bridge.channels.iter().any(|x| x == c.as_str());
                    if has(&a) && has(&b) {
                        self.pending_bridges.remove(&bridge.id);
                        self.bridged
                            .insert(a.clone(), (bridge.id.clone(), b.clone()));
                        self.bridged.insert(b, (bridge.id, a.clone()));
                        out.event(Event::Bridged { channel: a });
                    }
                }
            }
            AriEvent::ChannelLeftBridge { channel, .. } => {
                self.drop_bridge_of(&ChannelId::new(channel.id), out)
            }
            AriEvent::PlaybackFinished { playback } => {
                let failed = playback.state == "failed";
                self.on_playback_finished(&PlaybackId(playback.id), failed, out)
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
        self.command(cmd, out);
        // Sent all the same (Asterisk answers 404), but nothing is kept for a channel that
        // has ended: no event would ever clear it.
        for ch in &ended {
            self.drop_state(ch);
        }
    }

    fn on_reply(&mut self, req: Request, reply: Reply, out: &mut Output<Request>) {
        if let Err(e) = &reply {
            if e.is_lost() {
                return self.on_lost(req.tag, e, out);
            }
        }
        self.reply(req, reply, out)
    }
}

impl AriTranslator {
    fn reply(&mut self, req: Request, reply: Reply, out: &mut Output<Request>) {
        if let Err(e) = &reply {
            self.gone_unheard(&req, e, out);
        }
        match req.tag {
            Tag::Bridges => match reply.and_then(|body| {
                serde_json::from_str::<Vec<Bridge>>(&body).map_err(|e| Failure::Other {
                    text: format!("ARI {}: unexpected answer: {e}", req.path),
                })
            }) {
                Ok(bridges) => self.on_bridges(bridges, out),
                Err(e) => warn!(pbx = %self.s.pool, "cannot list bridges: {e}"),
            },
            Tag::List => match reply.and_then(|body| {
                serde_json::from_str::<Vec<Channel>>(&body).map_err(|e| Failure::Other {
                    text: format!("ARI {}: unexpected answer: {e}", req.path),
                })
            }) {
                Ok(chs) => {
                    // What ended while callpark was not looking: the core hears it from the
                    // reconciliation; here its state goes. Channels first met since the
                    // connection began are kept: the listing may be older than their events.
                    let live: HashSet<ChannelId> =
                        chs.iter().map(|c| ChannelId::new(c.id.clone())).collect();
                    for ch in std::mem::take(&mut self.before_connect) {
                        if !live.contains(&ch) {
                            self.forget(&ch);
                        }
                    }
                    out.events.push(PbxEvent::Connected {
                        channels: live.into_iter().collect(),
                    });
                    self.adopt(chs, out);
                }
                Err(e) => warn!(pbx = %self.s.pool, "cannot list channels: {e}"),
            },
            Tag::Var(id, v) => {
                let Some(mut p) = self.lookups.remove(&id) else {
                    return; // hung up meanwhile
                };
                let value = match reply {
                    Ok(body) => serde_json::from_str::<Variable>(&body)
                        .ok()
                        .map(|x| x.value)
                        .filter(|s| !s.is_empty()),
                    Err(e) if e.is_not_found() => None,
                    Err(e) => {
                        warn!(pbx = %self.s.pool, "cannot read {} of {id}: {e}", v.name());
                        None
                    }
                };
                // Known now, whatever it is: the next step reads it from the channel.
                p.channel
                    .channelvars
                    .get_or_insert_with(Default::default)
                    .insert(v.name().into(), value.unwrap_or_default());
                self.resolve_park(id, p, out);
            }
            Tag::Play(pb) => {
                if let Err(e) = reply {
                    warn!(pbx = %self.s.pool, "play on {}: {e}", req.path);
                    // Could not play: do the follow-up now rather than leave the call waiting.
                    self.on_playback_finished(&pb, true, out);
                }
            }
            Tag::BridgeCreated {
                bridge,
                parked,
                other,
            } => match reply {
                Ok(_) => {
                    out.request(self.req(
                        Verb::Post,
                        format!("/bridges/{bridge}/addChannel"),
                        vec![("channel", format!("{parked},{other}"))],
                        Some(&parked),
                        Tag::Action("bridge"),
                    ));
                }
                Err(e) => {
                    warn!(pbx = %self.s.pool, "create bridge: {e}");
                    self.pending_bridges.remove(&bridge);
                }
            },
            Tag::Originate(leg) => {
                if let Err(e) = reply {
                    warn!(pbx = %self.s.pool, "originate {leg}: {e}");
                    self.chan(&leg).ringing = false;
                    out.event(Event::OriginateFailed {
                        channel: leg,
                        reason: e.to_string(),
                    });
                }
            }
            Tag::Action(what) => match reply {
                Err(e) if e.is_not_found() => debug!(pbx = %self.s.pool, "{what}: {e}"),
                Err(e) => warn!(pbx = %self.s.pool, "{what}: {e}"),
                Ok(_) => {}
            },
        }
    }
}
