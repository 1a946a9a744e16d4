//! The core's commands as ARI requests.

use thiserror::Error;
use tracing::{info, warn};

use super::names::{caller_id_param, encode_segment, path_channel};
use super::{
    AfterPlayback, AriTranslator, Request, SOUND_ORBIT_EMPTY, SOUND_PARK_FAILED, Tag, Verb,
};
use crate::park::{Command, Destination, Event, LampState, Target};
use crate::pbx::Output;
use crate::pbx::asterisk::dialplan;

/// Why a target cannot be dialled; the text is the originate's failure, logged and reported.
#[derive(Debug, Error)]
pub(super) enum DialError {
    #[error("cannot dial {uri}: set sip_endpoint for pbx `{pool}`")]
    NoSipEndpoint { uri: String, pool: String },
}

impl AriTranslator {
    pub(super) fn dial_string(&self, t: &Target) -> Result<String, DialError> {
        Ok(match t {
            Target::Endpoint(e) => e.clone(),
            Target::Destination(Destination::Exten { exten, context }) => {
                format!("Local/{exten}@{context}")
            }
            Target::Destination(Destination::Dial(d)) => d.clone(),
            Target::Destination(Destination::Sip(uri)) => match &self.s.sip_endpoint {
                Some(ep) => format!("PJSIP/{ep}/{uri}"),
                None => {
                    return Err(DialError::NoSipEndpoint {
                        uri: uri.clone(),
                        pool: self.s.pool.clone(),
                    });
                }
            },
        })
    }

    pub(super) fn command(&mut self, cmd: Command, out: &mut Output<Request>) {
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
                    Err(e) => {
                        let reason = e.to_string();
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
            Command::Page {
                channel,
                target,
                orbit,
                caller_id,
                timeout_ms,
            } => {
                let dial = match self.dial_string(&Target::Destination(target)) {
                    Ok(d) => d,
                    Err(e) => {
                        warn!(pbx = %self.s.pool, "page of {orbit}: {e}");
                        return;
                    }
                };
                let secs = ((timeout_ms + 999) / 1000).max(1).to_string();
                // A Local channel into the include's [callpark-page]: its far side dials the
                // destination with a pre-dial handler that adds the auto-answer headers (ARI
                // cannot add SIP headers to a call it places), this side speaks the orbit once
                // answered and hangs up. Neither enters Stasis: the page is the PBX's to finish.
                let mut req = self.req(
                    Verb::Post,
                    path_channel(&channel, ""),
                    vec![
                        (
                            "endpoint",
                            format!("Local/page@{}/n", dialplan::PAGE_CONTEXT),
                        ),
                        ("context", dialplan::PAGE_CONTEXT.into()),
                        ("extension", dialplan::PAGE_SAY.into()),
                        ("priority", "1".into()),
                        ("callerId", caller_id_param(&caller_id)),
                        ("timeout", secs.clone()),
                    ],
                    Some(&channel),
                    Tag::Action("page"),
                );
                req.variables = vec![
                    ("_CALLPARK_PAGE_DIAL".into(), dial.clone()),
                    ("_CALLPARK_PAGE_RING".into(), secs),
                    ("CALLPARK_PAGE_ORBIT".into(), orbit.to_string()),
                ];
                info!(pbx = %self.s.pool, channel = %channel, %orbit, "page to {dial}");
                out.request(req);
            }
            Command::EndPage { channel } => {
                // Over already, Asterisk answers 404: routine.
                self.action(out, Verb::Delete, &channel, "", vec![], super::END_PAGE);
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
                    variables: vec![],
                    key: Some(device),
                    tag: Tag::Action("busy lamp"),
                });
            }
        }
    }
}
