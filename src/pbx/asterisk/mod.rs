//! Asterisk over ARI: REST for commands, the `/ari/events` websocket for events.
//!
//! The dialplan sends calls into the Stasis application with arguments that say why:
//! `park[,lot[,orbit]]`, `retrieve,<orbit>`; channels callpark originates carry `leg`.
//! A park by blind transfer is recognised by `BLINDTRANSFER` on the parked channel, which
//! names the transferer's channel and so the parker's endpoint.

pub mod dialplan;
pub mod model;
pub mod rest;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest_websocket::{Message, Upgrade};
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{Config, PbxConfig};
use crate::orbit::Orbit;
use crate::park::{ChannelId, Command, Destination, Event, Moh, Parker, Party, Target};

use self::model::{AriEvent, Channel, decode_event, endpoint_of};
use self::rest::{Ari, AriError};
use super::{Pbx, PbxError, PbxEvent};

#[derive(Debug, Error)]
pub enum AsteriskError {
    #[error("pbx `{pbx}`: {message}")]
    Config { pbx: String, message: String },
}

/// Sounds of Asterisk's core sound set that callpark plays.
const SOUND_ORBIT_EMPTY: &str = "sound:pbx-invalidpark";
const SOUND_PARK_FAILED: &str = "sound:pbx-parkingfailed";

/// The Asterisk adapter.
pub struct Asterisk {
    name: String,
    ari: Ari,
    app: String,
    sip_endpoint: Option<String>,
}

impl Asterisk {
    pub fn new(pbx: &PbxConfig, _cfg: &Config) -> Result<Asterisk, AsteriskError> {
        let err = |message: String| AsteriskError::Config {
            pbx: pbx.name.clone(),
            message,
        };
        if !pbx.address.starts_with("http://") && !pbx.address.starts_with("https://") {
            return Err(err(format!(
                "address `{}` must be Asterisk's HTTP server, like http://127.0.0.1:8088",
                pbx.address
            )));
        }
        let user = pbx
            .username
            .clone()
            .ok_or_else(|| err("username (the ari.conf user) is missing".into()))?;
        let pass = pbx
            .secret()
            .map_err(err)?
            .ok_or_else(|| err("password or password_env is missing".into()))?;
        Ok(Asterisk {
            name: pbx.name.clone(),
            ari: Ari::new(&pbx.address, &user, &pass),
            app: pbx.app.clone(),
            sip_endpoint: pbx.sip_endpoint.clone(),
        })
    }

    /// For tests and tools: an adapter from its parts.
    pub fn from_parts(name: &str, base: &str, user: &str, pass: &str, app: &str) -> Asterisk {
        Asterisk {
            name: name.into(),
            ari: Ari::new(base, user, pass),
            app: app.into(),
            sip_endpoint: None,
        }
    }
}

/// What to do when a playback ends.
#[derive(Debug, Clone)]
enum AfterPlayback {
    Hangup(String),
    Continue(String),
    /// The orbit announcement to a parked channel ended: its music on hold may start.
    Moh(String),
    /// A custom music-on-hold file ended: play it again while the call is held.
    Loop {
        channel: String,
        media: String,
    },
}

/// What the adapter remembers between events; lost on restart, rebuilt from events.
#[derive(Default)]
struct State {
    /// Legs originated and not answered yet.
    ringing: HashSet<String>,
    /// Bridges asked for and not complete: bridge id -> the two channels.
    pending: HashMap<String, (String, String)>,
    /// Complete bridges: channel -> (bridge id, peer).
    bridged: HashMap<String, (String, String)>,
    after: HashMap<String, AfterPlayback>,
    /// Music on hold waiting for an announcement on the same channel to end.
    deferred_moh: HashMap<String, Moh>,
    /// Channels playing a custom music-on-hold file: channel -> playback id.
    file_moh: HashMap<String, String>,
    announcing: HashSet<String>,
    /// Channels known to be answered already: answering them again is a wasted round trip.
    up: HashSet<String>,
    seq: u64,
}

impl State {
    fn playback_id(&mut self, ch: &str) -> String {
        self.seq += 1;
        format!("cp-{ch}-{}", self.seq)
    }
}

struct Runner {
    name: String,
    ari: Ari,
    app: String,
    sip_endpoint: Option<String>,
    events: mpsc::Sender<PbxEvent>,
    st: State,
}

impl Pbx for Asterisk {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(
        self,
        events: mpsc::Sender<PbxEvent>,
        mut commands: mpsc::Receiver<Command>,
    ) -> Result<(), PbxError> {
        let mut r = Runner {
            name: self.name,
            ari: self.ari,
            app: self.app,
            sip_endpoint: self.sip_endpoint,
            events,
            st: State::default(),
        };
        let mut backoff = Duration::from_millis(250);
        loop {
            match r.connect().await {
                Ok(mut ws) => {
                    backoff = Duration::from_millis(250);
                    // Reconcile only after the websocket is up, so no event falls in between.
                    match r.ari.channels().await {
                        Ok(chs) => {
                            let channels = chs.into_iter().map(|c| ChannelId(c.id)).collect();
                            if r.events
                                .send(PbxEvent::Connected { channels })
                                .await
                                .is_err()
                            {
                                return Ok(());
                            }
                        }
                        Err(e) => {
                            warn!(pbx = %r.name, "cannot list channels: {e}");
                            continue;
                        }
                    }
                    info!(pbx = %r.name, app = %r.app, "connected to ARI");
                    let reason = loop {
                        tokio::select! {
                            msg = ws.next() => match msg {
                                Some(Ok(Message::Text(t))) => {
                                    if !r.on_frame(&t).await { return Ok(()); }
                                }
                                Some(Ok(Message::Close { .. })) | None => break "websocket closed".to_string(),
                                Some(Ok(_)) => {}
                                Some(Err(e)) => break format!("websocket error: {e}"),
                            },
                            cmd = commands.recv() => match cmd {
                                Some(c) => r.execute(c).await,
                                None => return Ok(()),
                            },
                        }
                    };
                    warn!(pbx = %r.name, %reason, "ARI connection lost; reconnecting");
                    if r.events
                        .send(PbxEvent::Disconnected { reason })
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                Err(e) => {
                    warn!(pbx = %r.name, "cannot connect to ARI ({e}); retrying in {backoff:?}");
                }
            }
            // Keep carrying out commands while waiting to reconnect: most still work over REST.
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    cmd = commands.recv() => match cmd {
                        Some(c) => r.execute(c).await,
                        None => return Ok(()),
                    },
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

impl Runner {
    async fn connect(&self) -> Result<reqwest_websocket::WebSocket, String> {
        let (user, pass) = self.ari.credentials();
        let resp = self
            .ari
            .http()
            .get(self.ari.events_url(&self.app))
            .basic_auth(user, Some(pass))
            .upgrade()
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        resp.into_websocket().await.map_err(|e| error_chain(&e))
    }

    async fn emit(&self, e: Event) -> bool {
        self.events.send(PbxEvent::Call(e)).await.is_ok()
    }

    /// One websocket frame; false when the service is gone.
    async fn on_frame(&mut self, text: &str) -> bool {
        let ev = match decode_event(text) {
            Ok(ev) => ev,
            Err(e) => {
                warn!(pbx = %self.name, "undecodable ARI event ({e}): {}", text.chars().take(200).collect::<String>());
                return true;
            }
        };
        debug!(pbx = %self.name, ?ev, "ARI event");
        match ev {
            AriEvent::StasisStart { args, channel, .. } => {
                if channel.state == "Up" {
                    self.st.up.insert(channel.id.clone());
                }
                return self.on_stasis_start(args, channel).await;
            }
            AriEvent::ChannelStateChange { channel } if channel.state == "Up" => {
                self.st.up.insert(channel.id);
            }
            AriEvent::ChannelDestroyed {
                channel, cause_txt, ..
            } => {
                self.drop_bridge_of(&channel.id).await;
                let id = ChannelId(channel.id.clone());
                let e = if self.st.ringing.remove(&channel.id) {
                    Event::OriginateFailed {
                        channel: id,
                        reason: cause_txt,
                    }
                } else {
                    Event::Hangup { channel: id }
                };
                self.forget(&channel.id);
                return self.emit(e).await;
            }
            AriEvent::StasisEnd { channel } => {
                self.drop_bridge_of(&channel.id).await;
                self.forget(&channel.id);
                return self
                    .emit(Event::Hangup {
                        channel: ChannelId(channel.id),
                    })
                    .await;
            }
            AriEvent::ChannelEnteredBridge { bridge, .. } => {
                if let Some((a, b)) = self.st.pending.get(&bridge.id).cloned() {
                    if bridge.channels.contains(&a) && bridge.channels.contains(&b) {
                        self.st.pending.remove(&bridge.id);
                        self.st
                            .bridged
                            .insert(a.clone(), (bridge.id.clone(), b.clone()));
                        self.st
                            .bridged
                            .insert(b.clone(), (bridge.id.clone(), a.clone()));
                        return self
                            .emit(Event::Bridged {
                                channel: ChannelId(a),
                            })
                            .await;
                    }
                }
            }
            AriEvent::ChannelLeftBridge { channel, .. } => self.drop_bridge_of(&channel.id).await,
            AriEvent::PlaybackFinished { playback } => {
                self.on_playback_finished(&playback.id).await
            }
            _ => {}
        }
        true
    }

    async fn on_stasis_start(&mut self, args: Vec<String>, ch: Channel) -> bool {
        let id = ChannelId(ch.id.clone());
        let caller = Party {
            name: ch.caller.name.clone(),
            number: ch.caller.number.clone(),
        };
        match args.first().map(String::as_str) {
            Some("park") => {
                let lot = args.get(1).filter(|s| !s.is_empty()).cloned();
                let orbit = match args
                    .get(2)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<Orbit>())
                {
                    None => None,
                    Some(Ok(o)) => Some(o),
                    Some(Err(e)) => {
                        warn!(pbx = %self.name, channel = %ch.name, "directed park to a bad orbit: {e}");
                        self.play_then(&ch.id, SOUND_PARK_FAILED, AfterPlayback::Continue)
                            .await;
                        return true;
                    }
                };
                // Who parked: a blind transfer names the transferer in BLINDTRANSFER (it has
                // left); an attended one in ATTENDEDTRANSFER (it is still on this line and
                // hears the orbit). Neither: the park code was dialled directly.
                let blind = self.transfer_var(&ch, "BLINDTRANSFER").await;
                let attended = match blind {
                    Some(_) => None,
                    None => self.transfer_var(&ch, "ATTENDEDTRANSFER").await,
                };
                let (parker, announce_to) = match (blind, attended) {
                    (Some(t), _) => (transferer(&t), None),
                    (None, Some(t)) => (transferer(&t), Some(id.clone())),
                    // The caller parks itself and hears the orbit; there is no other phone
                    // to ring back.
                    (None, None) => {
                        let ep = endpoint_of(&ch.name);
                        let mut ids = vec![caller.number.clone()];
                        ids.extend(ep.clone());
                        (
                            Parker {
                                ids,
                                endpoint: None,
                                display: ep.unwrap_or_else(|| caller.number.clone()),
                            },
                            Some(id.clone()),
                        )
                    }
                };
                self.emit(Event::Park {
                    channel: id,
                    caller,
                    parker,
                    announce_to,
                    lot,
                    orbit,
                })
                .await
            }
            Some("retrieve") => match args.get(1).map(|s| s.parse::<Orbit>()) {
                Some(Ok(orbit)) => {
                    self.emit(Event::Retrieve {
                        channel: id,
                        orbit,
                        by: caller,
                    })
                    .await
                }
                other => {
                    warn!(pbx = %self.name, channel = %ch.name, "retrieve of a bad orbit: {other:?}");
                    self.play_then(&ch.id, SOUND_ORBIT_EMPTY, AfterPlayback::Hangup)
                        .await;
                    true
                }
            },
            Some("leg") => {
                self.st.ringing.remove(&ch.id);
                self.emit(Event::Answered { channel: id }).await
            }
            other => {
                warn!(pbx = %self.name, channel = %ch.name, "Stasis({},{other:?}) is not a callpark call; sending it back to the dialplan", self.app);
                let _ = self
                    .ari
                    .post(&format!("/channels/{}/continue", ch.id), &[])
                    .await;
                true
            }
        }
    }

    /// A variable of a channel that just entered the app: from the event's `channelvars`
    /// when ari.conf lists it there, else over REST. `None` when unset or unreadable (logged).
    async fn transfer_var(&self, ch: &Channel, var: &str) -> Option<String> {
        if let Some(v) = ch.channelvars.as_ref().and_then(|m| m.get(var)) {
            return Some(v.clone()).filter(|v| !v.is_empty());
        }
        match self.ari.variable(&ch.id, var).await {
            Ok(v) => v.filter(|v| !v.is_empty()),
            Err(e) => {
                warn!(pbx = %self.name, "cannot read {var} of {}: {e}", ch.name);
                None
            }
        }
    }

    fn forget(&mut self, ch: &str) {
        self.st.up.remove(ch);
        self.st.deferred_moh.remove(ch);
        self.st.file_moh.remove(ch);
        self.st.announcing.remove(ch);
    }

    /// A bridged call ends for both parties when one leaves.
    async fn drop_bridge_of(&mut self, ch: &str) {
        if let Some((bridge, peer)) = self.st.bridged.remove(ch) {
            self.st.bridged.remove(&peer);
            self.log_err(
                "hang up bridge peer",
                self.ari.delete(&format!("/channels/{peer}"), &[]).await,
            );
            self.log_err(
                "destroy bridge",
                self.ari.delete(&format!("/bridges/{bridge}"), &[]).await,
            );
        }
    }

    async fn on_playback_finished(&mut self, pb: &str) {
        let Some(after) = self.st.after.remove(pb) else {
            return;
        };
        match after {
            AfterPlayback::Hangup(ch) => {
                self.log_err(
                    "hang up",
                    self.ari.delete(&format!("/channels/{ch}"), &[]).await,
                );
            }
            AfterPlayback::Continue(ch) => {
                self.log_err(
                    "continue",
                    self.ari
                        .post(&format!("/channels/{ch}/continue"), &[])
                        .await,
                );
            }
            AfterPlayback::Moh(ch) => {
                self.st.announcing.remove(&ch);
                if let Some(moh) = self.st.deferred_moh.remove(&ch) {
                    self.start_moh(&ch, moh).await;
                }
            }
            AfterPlayback::Loop { channel, media } => {
                if self.st.file_moh.get(&channel).map(String::as_str) == Some(pb) {
                    self.play_file_moh(&channel, &media).await;
                }
            }
        }
    }

    async fn play(&mut self, ch: &str, media: &str) -> Option<String> {
        let pb = self.st.playback_id(ch);
        match self
            .ari
            .post(&format!("/channels/{ch}/play/{pb}"), &[("media", media)])
            .await
        {
            Ok(()) => Some(pb),
            Err(e) => {
                warn!(pbx = %self.name, "play {media} on {ch}: {e}");
                None
            }
        }
    }

    async fn play_then(
        &mut self,
        ch: &str,
        media: &str,
        after: impl FnOnce(String) -> AfterPlayback,
    ) {
        match self.play(ch, media).await {
            Some(pb) => {
                self.st.after.insert(pb, after(ch.to_string()));
            }
            // Could not play: do the follow-up at once rather than leave the call hanging.
            None => {
                let pb = "none".to_string();
                self.st.after.insert(pb.clone(), after(ch.to_string()));
                self.on_playback_finished(&pb).await;
            }
        }
    }

    async fn play_file_moh(&mut self, ch: &str, media: &str) {
        if let Some(pb) = self.play(ch, media).await {
            self.st.file_moh.insert(ch.to_string(), pb.clone());
            self.st.after.insert(
                pb,
                AfterPlayback::Loop {
                    channel: ch.to_string(),
                    media: media.to_string(),
                },
            );
        }
    }

    async fn start_moh(&mut self, ch: &str, moh: Moh) {
        match moh {
            Moh::Off => {}
            Moh::Class(class) => {
                let q: Vec<(&str, &str)> = class
                    .as_deref()
                    .map(|c| ("mohClass", c))
                    .into_iter()
                    .collect();
                self.log_err(
                    "start music on hold",
                    self.ari.post(&format!("/channels/{ch}/moh"), &q).await,
                );
            }
            Moh::File(path) => {
                // ARI plays sound files by path without their extension.
                let p = std::path::Path::new(&path);
                let media = format!("sound:{}", p.with_extension("").display());
                self.play_file_moh(ch, &media).await;
            }
        }
    }

    fn log_err(&self, what: &str, r: Result<(), AriError>) {
        if let Err(e) = r {
            if e.is_not_found() {
                debug!(pbx = %self.name, "{what}: {e}");
            } else {
                warn!(pbx = %self.name, "{what}: {e}");
            }
        }
    }

    fn dial_string(&self, t: &Target) -> Result<String, String> {
        Ok(match t {
            Target::Endpoint(e) => e.clone(),
            Target::Destination(Destination::Exten { exten, context }) => {
                format!("Local/{exten}@{context}")
            }
            Target::Destination(Destination::Dial(d)) => d.clone(),
            Target::Destination(Destination::Sip(uri)) => match &self.sip_endpoint {
                Some(ep) => format!("PJSIP/{ep}/{uri}"),
                None => {
                    return Err(format!(
                        "cannot dial {uri}: set sip_endpoint for pbx `{}`",
                        self.name
                    ));
                }
            },
        })
    }

    async fn execute(&mut self, c: Command) {
        debug!(pbx = %self.name, cmd = ?c, "command");
        match c {
            Command::Answer { channel } => {
                if self.st.up.contains(channel.as_str()) {
                    return;
                }
                let r = self
                    .ari
                    .post(&format!("/channels/{channel}/answer"), &[])
                    .await;
                self.log_err("answer", r);
            }
            Command::StartMoh { channel, moh } => {
                let ch = channel.0;
                if self.st.announcing.contains(&ch) {
                    self.st.deferred_moh.insert(ch, moh);
                } else {
                    self.start_moh(&ch, moh).await;
                }
            }
            Command::StopMoh { channel } => {
                let ch = channel.0;
                self.st.deferred_moh.remove(&ch);
                if let Some(pb) = self.st.file_moh.remove(&ch) {
                    self.st.after.remove(&pb);
                    let r = self.ari.delete(&format!("/playbacks/{pb}"), &[]).await;
                    self.log_err("stop music on hold file", r);
                } else {
                    let r = self.ari.delete(&format!("/channels/{ch}/moh"), &[]).await;
                    self.log_err("stop music on hold", r);
                }
            }
            Command::Announce { channel, orbit } => {
                let ch = channel.0;
                // `characters:` spells `*` and `#` as well as digits.
                if let Some(pb) = self.play(&ch, &format!("characters:{orbit}")).await {
                    self.st.announcing.insert(ch.clone());
                    self.st.after.insert(pb, AfterPlayback::Moh(ch));
                }
            }
            Command::Notify { endpoint, text } => {
                // SIP MESSAGE only reaches PJSIP endpoints; others learn from the event log.
                if let Some(user) = endpoint.strip_prefix("PJSIP/") {
                    let to = format!("pjsip:{user}");
                    let r = self
                        .ari
                        .put(
                            "/endpoints/sendMessage",
                            &[
                                ("to", to.as_str()),
                                ("from", "callpark"),
                                ("body", text.as_str()),
                            ],
                        )
                        .await;
                    self.log_err("send message", r);
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
                        warn!(pbx = %self.name, "{reason}");
                        self.emit(Event::OriginateFailed { channel, reason }).await;
                        return;
                    }
                };
                let cid = format!(
                    "\"{}\" <{}>",
                    caller_id.name.replace('"', ""),
                    caller_id.number
                );
                let timeout = ((timeout_ms + 999) / 1000).max(1).to_string();
                self.st.ringing.insert(channel.0.clone());
                let r = self
                    .ari
                    .post(
                        &format!("/channels/{}", channel.0),
                        &[
                            ("endpoint", dial.as_str()),
                            ("app", self.app.as_str()),
                            ("appArgs", "leg"),
                            ("callerId", cid.as_str()),
                            ("timeout", timeout.as_str()),
                        ],
                    )
                    .await;
                if let Err(e) = r {
                    warn!(pbx = %self.name, "originate {dial}: {e}");
                    self.st.ringing.remove(&channel.0);
                    self.emit(Event::OriginateFailed {
                        channel,
                        reason: e.to_string(),
                    })
                    .await;
                }
            }
            Command::Bridge { parked, other } => {
                let bridge = format!("cp-{}", parked.0);
                // A bridge left over from an earlier try (retriever gone) is replaced.
                let _ = self.ari.delete(&format!("/bridges/{bridge}"), &[]).await;
                match self.ari.create_bridge(&bridge).await {
                    Ok(_) => {
                        self.st
                            .pending
                            .insert(bridge.clone(), (parked.0.clone(), other.0.clone()));
                        let list = format!("{},{}", parked.0, other.0);
                        let r = self
                            .ari
                            .post(
                                &format!("/bridges/{bridge}/addChannel"),
                                &[("channel", list.as_str())],
                            )
                            .await;
                        self.log_err("bridge", r);
                    }
                    Err(e) => warn!(pbx = %self.name, "create bridge: {e}"),
                }
            }
            Command::Hangup { channel } => {
                let r = self
                    .ari
                    .delete(&format!("/channels/{}", channel.0), &[])
                    .await;
                self.log_err("hang up", r);
            }
            Command::OrbitEmpty { channel, orbit } => {
                info!(pbx = %self.name, channel = %channel, %orbit, "orbit empty");
                self.play_then(&channel.0, SOUND_ORBIT_EMPTY, AfterPlayback::Hangup)
                    .await;
            }
            Command::Refuse { channel, reason } => {
                info!(pbx = %self.name, channel = %channel, reason = reason.as_str(), "park refused");
                // The caller hears why, then goes back to the dialplan after Stasis().
                self.play_then(&channel.0, SOUND_PARK_FAILED, AfterPlayback::Continue)
                    .await;
            }
            Command::Lamp { orbit, in_use } => {
                let state = if in_use { "INUSE" } else { "NOT_INUSE" };
                let device = dialplan::device_name(orbit);
                let r = self
                    .ari
                    .put(
                        &format!("/deviceStates/{}", encode_segment(&device)),
                        &[("deviceState", state)],
                    )
                    .await;
                self.log_err("busy lamp", r);
            }
        }
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

/// An error with its causes: reqwest's own message alone ("error sending request") hides why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Percent-encodes what may not stand raw in a URL path segment (`#` above all).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:*".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
