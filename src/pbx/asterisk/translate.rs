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

use std::collections::{HashMap, HashSet, VecDeque};

use tracing::{debug, info, warn};

use super::dialplan;
use super::model::{AriEvent, Bridge, Channel, ChannelState, Variable, endpoint_of};
pub use super::request::{Failure, PlaybackId, Reply, Request, Tag, TransferVar, Verb};
use crate::orbit::Orbit;
use crate::park::{
    ChannelId, Command, Destination, Event, LampState, Moh, ParkRequest, Parker, Party, Target,
};
use crate::pbx::{Output, PbxEvent, Translator};

/// Sounds of Asterisk's core sound set that callpark plays.
pub(crate) const SOUND_ORBIT_EMPTY: &str = "sound:pbx-invalidpark";
pub(crate) const SOUND_PARK_FAILED: &str = "sound:pbx-parkingfailed";

/// What the translator needs to know of its `[[pbx]]`.
#[derive(Debug, Clone)]
pub struct AriSettings {
    pub pool: String,
    pub app: String,
    /// The PJSIP endpoint through which `sip:` destinations are dialled.
    pub sip_endpoint: Option<String>,
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
    /// Set while reporting what was found on (re)connecting: events go out as `Found`.
    adopting: bool,
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

fn path_channel(ch: &ChannelId, rest: &str) -> String {
    format!("/channels/{ch}{rest}")
}

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
            adopting: false,
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

    fn play(
        &mut self,
        out: &mut Output<Request>,
        ch: &ChannelId,
        media: &str,
        after: Option<AfterPlayback>,
    ) -> PlaybackId {
        self.seq += 1;
        let pb = PlaybackId(format!("cp-{ch}-{}", self.seq));
        if let Some(a) = after {
            self.after.insert(pb.clone(), a);
        }
        out.request(self.req(
            Verb::Post,
            path_channel(ch, &format!("/play/{}", pb.0)),
            vec![("media", media.to_string())],
            Some(ch),
            Tag::Play(pb.clone()),
        ));
        pb
    }

    /// A playback ended; `failed`: it never played (a missing sound file).
    fn on_playback_finished(&mut self, pb: &PlaybackId, failed: bool, out: &mut Output<Request>) {
        let Some(after) = self.after.remove(pb) else {
            return;
        };
        match after {
            AfterPlayback::Hangup(ch) => self.action(out, Verb::Delete, &ch, "", vec![], "hang up"),
            AfterPlayback::Continue(ch) => {
                self.action(out, Verb::Post, &ch, "/continue", vec![], "continue")
            }
            AfterPlayback::Moh(ch) => {
                let c = self.chan(&ch);
                c.announcing = false;
                if let Some(moh) = c.deferred_moh.take() {
                    self.start_moh(out, &ch, moh);
                }
            }
            AfterPlayback::Loop { channel, media } => {
                if self.chans.get(&channel).and_then(|c| c.file_moh.as_ref()) != Some(pb) {
                    return;
                }
                if failed {
                    // Played again it would fail again, at once and forever: the call waits
                    // in silence (still parked), and the file is reported once.
                    self.chan(&channel).file_moh = None;
                    self.music_silent(&channel, &media);
                } else {
                    self.play_file_moh(out, &channel, &media);
                }
            }
        }
    }

    /// Music on hold that cannot play: said once per source, as a warning; the call stays
    /// parked in silence.
    fn music_silent(&mut self, ch: &ChannelId, media: &str) {
        if self.silent_music.insert(media.to_string()) {
            warn!(pbx = %self.s.pool, channel = %ch, music = %media,
                  "music on hold cannot play: parked calls wait in silence; check that the music class (musiconhold.conf) or file exists");
        } else {
            debug!(pbx = %self.s.pool, channel = %ch, music = %media, "music on hold cannot play");
        }
    }

    fn play_file_moh(&mut self, out: &mut Output<Request>, ch: &ChannelId, media: &str) {
        let after = AfterPlayback::Loop {
            channel: ch.clone(),
            media: media.to_string(),
        };
        let pb = self.play(out, ch, media, Some(after));
        self.chan(ch).file_moh = Some(pb);
    }

    fn start_moh(&mut self, out: &mut Output<Request>, ch: &ChannelId, moh: Moh) {
        match moh {
            Moh::Off => {}
            Moh::Class(class) => {
                let q = class.map(|c| ("mohClass", c)).into_iter().collect();
                self.action(out, Verb::Post, ch, "/moh", q, "start music on hold");
            }
            Moh::File(path) => {
                // ARI plays sound files by path without their extension.
                let p = std::path::Path::new(&path);
                let media = format!("sound:{}", p.with_extension("").display());
                self.play_file_moh(out, ch, &media);
            }
        }
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

    /// Every channel the translator holds state for.
    fn known_channels(&self) -> HashSet<ChannelId> {
        let mut k: HashSet<ChannelId> = self.chans.keys().cloned().collect();
        k.extend(self.lookups.keys().cloned());
        k.extend(self.bridged.keys().cloned());
        k.extend(self.found_bridged.keys().cloned());
        k.extend(self.after.values().map(|a| a.channel().clone()));
        for (a, b) in self.pending_bridges.values() {
            k.insert(a.clone());
            k.insert(b.clone());
        }
        k
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

    /// A call event, as `Found` while reporting what a (re)connection found.
    fn report(&self, out: &mut Output<Request>, e: Event) {
        if self.adopting {
            out.events.push(PbxEvent::Found(e));
        } else {
            out.event(e);
        }
    }

    /// callpark's bridges (`cp-<parked channel>`) as a (re)connection finds them. A complete
    /// one is a call connected while callpark was not looking: reported bridged, and its pair
    /// remembered so that one side leaving ends the other, as for a bridge seen to come up.
    /// One with a single channel lost the other side meanwhile: the conversation is over, so
    /// the one left is hung up rather than left alone in a bridge.
    fn on_bridges(&mut self, bridges: Vec<Bridge>, out: &mut Output<Request>) {
        self.found_bridged.clear();
        for b in bridges.into_iter().filter(|b| b.id.starts_with("cp-")) {
            for c in &b.channels {
                self.found_bridged
                    .insert(ChannelId::new(c.clone()), b.id.clone());
            }
            match &b.channels[..] {
                [a, c] => {
                    let (a, c) = (ChannelId::new(a.clone()), ChannelId::new(c.clone()));
                    self.bridged.insert(a.clone(), (b.id.clone(), c.clone()));
                    self.bridged.insert(c, (b.id.clone(), a));
                }
                [alone] => {
                    let alone = ChannelId::new(alone.clone());
                    info!(pbx = %self.s.pool, channel = %alone, bridge = %b.id,
                          "found alone in a callpark bridge; hanging up");
                    self.action(out, Verb::Delete, &alone, "", vec![], "hang up");
                }
                _ => {}
            }
            if b.channels.len() < 2 {
                out.request(self.req(
                    Verb::Delete,
                    format!("/bridges/{}", b.id),
                    vec![],
                    None,
                    Tag::Action("destroy an emptied bridge"),
                ));
            }
        }
    }

    /// Reports every channel sitting in the Stasis application as what it is, as its
    /// StasisStart would have: it may have arrived while callpark could not act.
    fn adopt(&mut self, chs: Vec<Channel>, out: &mut Output<Request>) {
        let prefix = format!("{},", self.s.app);
        self.adopting = true;
        for ch in chs {
            let Some(dp) = &ch.dialplan else { continue };
            let in_app = dp.app_name.eq_ignore_ascii_case("stasis")
                && (dp.app_data == self.s.app || dp.app_data.starts_with(&prefix));
            if !in_app {
                continue;
            }
            let id = ChannelId::new(ch.id.clone());
            // Already handled over this connection, or being bridged by it: the listing is
            // older than what those events said.
            let bridging = self.bridged.contains_key(&id)
                || self
                    .pending_bridges
                    .values()
                    .any(|(a, b)| *a == id || *b == id);
            if self.seen.contains(&id) || (bridging && !self.found_bridged.contains_key(&id)) {
                continue;
            }
            if let Some(bridge) = self.found_bridged.get(&id) {
                // In a complete bridge (alone ones are being hung up): connected.
                if self.bridged.contains_key(&id) {
                    if let Some(parked) = bridge.strip_prefix("cp-") {
                        if parked == id.as_str() {
                            self.report(out, Event::Bridged { channel: id });
                        }
                    }
                }
                continue;
            }
            let args: Vec<String> = dp
                .app_data
                .split(',')
                .skip(1)
                .map(|a| a.trim().to_string())
                .collect();
            self.on_stasis_start(args, ch, None, out);
        }
        self.adopting = false;
    }

    /// A channel entered the Stasis application: with the include's arguments, or with none
    /// when a phone's attended transfer (REFER with Replaces) swapped it in for the channel
    /// that was there (`replaced`, whose arguments then say what it was).
    fn on_stasis_start(
        &mut self,
        mut args: Vec<String>,
        ch: Channel,
        replaced: Option<Channel>,
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
        if !self.adopting {
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
                let pending = PendingPark {
                    channel: ch,
                    caller,
                    lot,
                    orbit,
                    found: self.adopting,
                    replaces,
                };
                self.resolve_park(id, pending, out);
            }
            Some("retrieve") => match args.get(1).map(|s| s.parse::<Orbit>()) {
                Some(Ok(orbit)) => self.report(
                    out,
                    Event::Retrieve {
                        channel: id,
                        orbit,
                        dialler: dialled_parker(&ch, &caller),
                        by: caller,
                    },
                ),
                other => {
                    warn!(pbx = %self.s.pool, channel = %ch.name, "retrieve of a bad orbit: {other:?}");
                    let after = AfterPlayback::Hangup(id.clone());
                    self.play(out, &id, SOUND_ORBIT_EMPTY, Some(after));
                }
            },
            Some("leg") => {
                self.chan(&id).ringing = false;
                self.report(out, Event::Answered { channel: id });
            }
            // Made one of the three above.
            _ => {}
        }
    }

    /// Reports a park once who parked is known: from the event's channelvars, else the
    /// variables are read over REST first (BLINDTRANSFER, then ATTENDEDTRANSFER, then
    /// FORWARDERNAME, each only if the one before is unset).
    fn resolve_park(&mut self, id: ChannelId, p: PendingPark, out: &mut Output<Request>) {
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

    fn lookup(&mut self, id: ChannelId, p: PendingPark, v: TransferVar, out: &mut Output<Request>) {
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
    fn report_park(
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
            out.events.push(PbxEvent::Found(park));
        } else {
            out.event(park);
        }
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
        if !matches!(req.tag, Tag::Play(_) | Tag::Action(_)) {
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

    fn dial_string(&self, t: &Target) -> Result<String, String> {
        Ok(match t {
            Target::Endpoint(e) => e.clone(),
            Target::Destination(Destination::Exten { exten, context }) => {
                format!("Local/{exten}@{context}")
            }
            Target::Destination(Destination::Dial(d)) => d.clone(),
            Target::Destination(Destination::Sip(uri)) => match &self.s.sip_endpoint {
                Some(ep) => format!("PJSIP/{ep}/{uri}"),
                None => {
                    return Err(format!(
                        "cannot dial {uri}: set sip_endpoint for pbx `{}`",
                        self.s.pool
                    ));
                }
            },
        })
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
                key: key.clone(),
                tag,
            });
        }
    }

    fn on_disconnect(&mut self) {}

    fn on_wire(&mut self, ev: AriEvent, out: &mut Output<Request>) {
        debug!(pbx = %self.s.pool, ?ev, "ARI event");
        match ev {
            AriEvent::StasisStart {
                args,
                channel,
                replace_channel,
            } => self.on_stasis_start(args, channel, replace_channel.map(|c| *c), out),
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
    fn command(&mut self, cmd: Command, out: &mut Output<Request>) {
        match cmd {
            Command::Answer { channel } => {
                let c = self.chan(&channel);
                if !c.up {
                    c.up = true;
                    self.action(out, Verb::Post, &channel, "/answer", vec![], "answer");
                }
            }
            Command::StartMoh { channel, moh } => {
                let c = self.chan(&channel);
                if c.dialplan_music {
                    return;
                }
                if c.announcing {
                    c.deferred_moh = Some(moh);
                } else {
                    self.start_moh(out, &channel, moh);
                }
            }
            Command::StopMoh { channel } => {
                let c = self.chan(&channel);
                c.deferred_moh = None;
                // Stopping works alike on the include's music: from now on music is callpark's.
                c.dialplan_music = false;
                match c.file_moh.take() {
                    Some(pb) => {
                        self.after.remove(&pb);
                        out.request(self.req(
                            Verb::Delete,
                            format!("/playbacks/{}", pb.0),
                            vec![],
                            Some(&channel),
                            Tag::Action("stop music on hold file"),
                        ));
                    }
                    None => self.action(
                        out,
                        Verb::Delete,
                        &channel,
                        "/moh",
                        vec![],
                        "stop music on hold",
                    ),
                }
            }
            Command::Announce { channel, orbit } => {
                // `characters:` spells `*` and `#` as well as digits.
                self.chan(&channel).announcing = true;
                let after = AfterPlayback::Moh(channel.clone());
                self.play(out, &channel, &format!("characters:{orbit}"), Some(after));
            }
            Command::Notify { endpoint, text } => {
                // SIP MESSAGE only reaches PJSIP endpoints; others learn from the event log.
                if let Some(user) = endpoint.strip_prefix("PJSIP/") {
                    out.request(self.req(
                        Verb::Put,
                        "/endpoints/sendMessage".into(),
                        vec![
                            ("to", format!("pjsip:{user}")),
                            ("from", "callpark".into()),
                            ("body", text),
                        ],
                        None,
                        Tag::Action("send message"),
                    ));
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
                let cid = caller_id_param(&caller_id);
                let timeout = ((timeout_ms + 999) / 1000).max(1).to_string();
                self.chan(&channel).ringing = true;
                out.request(self.req(
                    Verb::Post,
                    path_channel(&channel, ""),
                    vec![
                        ("endpoint", dial),
                        ("app", self.s.app.clone()),
                        ("appArgs", "leg".into()),
                        ("callerId", cid),
                        ("timeout", timeout),
                    ],
                    Some(&channel),
                    Tag::Originate(channel.clone()),
                ));
            }
            Command::Bridge { parked, other } => {
                let bridge = format!("cp-{parked}");
                // Asked again (a channel found again on reconnecting): a bridge of this pair
                // that is up is reported, one being built is left to finish; replacing either
                // would take the call apart.
                if self
                    .bridged
                    .get(&parked)
                    .is_some_and(|(_, peer)| *peer == other)
                {
                    out.event(Event::Bridged { channel: parked });
                    return;
                }
                if self.pending_bridges.get(&bridge) == Some(&(parked.clone(), other.clone())) {
                    return;
                }
                // Pending from now on, so a second ask meanwhile finds it.
                self.pending_bridges
                    .insert(bridge.clone(), (parked.clone(), other.clone()));
                // A bridge left over from an earlier try (retriever gone) is replaced. Keyed by
                // the parked channel: these run after its music has stopped.
                out.request(self.req(
                    Verb::Delete,
                    format!("/bridges/{bridge}"),
                    vec![],
                    Some(&parked),
                    Tag::Action("remove an old bridge"),
                ));
                out.request(self.req(
                    Verb::Post,
                    format!("/bridges/{bridge}"),
                    vec![("type", "mixing".into())],
                    Some(&parked),
                    Tag::BridgeCreated {
                        bridge,
                        parked: parked.clone(),
                        other,
                    },
                ));
            }
            Command::Hangup { channel } => {
                self.action(out, Verb::Delete, &channel, "", vec![], "hang up")
            }
            Command::OrbitEmpty { channel, orbit } => {
                info!(pbx = %self.s.pool, channel = %channel, %orbit, "orbit empty");
                let after = AfterPlayback::Hangup(channel.clone());
                self.play(out, &channel, SOUND_ORBIT_EMPTY, Some(after));
            }
            Command::Refuse { channel, reason } => {
                info!(pbx = %self.s.pool, channel = %channel, reason = reason.as_str(), "park refused");
                // The caller hears why, then goes back to the dialplan after Stasis().
                let after = AfterPlayback::Continue(channel.clone());
                self.play(out, &channel, SOUND_PARK_FAILED, Some(after));
            }
            Command::ParkFailed { channel } => {
                // Played to this channel only, inside the bridge.
                self.play(out, &channel, SOUND_PARK_FAILED, None);
            }
            Command::Lamp { orbit, state } => {
                // RINGING, not RINGINUSE: PJSIP's dialog-info shows RINGING as `early` (a
                // blinking key) but RINGINUSE as `confirmed`, the same as INUSE (seen on
                // Asterisk 22).
                let state = match state {
                    LampState::Idle => "NOT_INUSE",
                    LampState::InUse => "INUSE",
                    LampState::Ringing => "RINGING",
                };
                let device = dialplan::device_name(orbit);
                out.request(Request {
                    method: Verb::Put,
                    path: format!("/deviceStates/{}", encode_segment(&device)),
                    query: vec![("deviceState", state.into())],
                    key: Some(device),
                    tag: Tag::Action("busy lamp"),
                });
            }
        }
    }

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

/// The parker of a call that dialled the park code (or an orbit) itself: matched against
/// voice policies by its number and endpoint, with no phone to ring back (it is on the line).
fn dialled_parker(ch: &Channel, caller: &Party) -> Parker {
    let ep = endpoint_of(&ch.name);
    let mut ids = vec![caller.number.clone()];
    ids.extend(ep.clone());
    Parker {
        ids,
        endpoint: None,
        display: ep.unwrap_or_else(|| caller.number.clone()),
    }
}

/// The parker named by a transfer variable (a channel name like `PJSIP/alice-00000012`):
/// ringbacks go to its endpoint; policies match the endpoint and its user.
fn transferer(channel: &str) -> Parker {
    let ep = endpoint_of(channel).unwrap_or_else(|| channel.to_string());
    let user = ep
        .split_once('/')
        .map(|(_, u)| u.split('@').next().unwrap_or(u).to_string());
    let mut ids = vec![ep.clone()];
    ids.extend(user);
    Parker {
        ids,
        endpoint: Some(ep.clone()),
        display: ep,
    }
}

/// A caller id as ARI's originate `callerId` wants it, `"name" <number>`, written so that
/// Asterisk's parser (`ast_callerid_parse`: the number is what the last `<…>` holds, the name is
/// unquoted and unescaped by `ast_unescape_quoted`) reads back exactly `name`: `"` and `\` in it
/// are escaped. Control characters (nothing a phone could show) become spaces; the number
/// loses what would end it early.
pub fn caller_id_param(p: &Party) -> String {
    let mut name = String::with_capacity(p.name.len() + 2);
    for c in p.name.trim().chars() {
        match c {
            '"' | '\\' => {
                name.push('\\');
                name.push(c);
            }
            c if c.is_control() => name.push(' '),
            c => name.push(c),
        }
    }
    let number: String = p
        .number
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '"') && !c.is_control())
        .collect();
    format!("\"{name}\" <{number}>")
}

/// What may not stand raw in a device name as a URL path segment (`#` above all): all but
/// ASCII letters, digits and `-._~:*` (Asterisk's device names use `:` and orbits `*`).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'*');

/// Percent-encodes a URL path segment (UTF-8, upper-case hex).
fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::encode_segment;

    /// The encoding by hand it replaced: every byte but the kept ones as %XX.
    fn by_hand(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~:*".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    #[test]
    fn segments_encode_as_before_through_latin_extended() {
        for c in (0u32..=0x024F).filter_map(char::from_u32) {
            let s = format!("Custom:park{c}#7*01");
            assert_eq!(encode_segment(&s), by_hand(&s), "{c:?}");
        }
        assert_eq!(encode_segment("Custom:#701"), "Custom:%23701");
    }
}
