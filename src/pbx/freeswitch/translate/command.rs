//! The core's commands as event-socket requests.

use thiserror::Error;
use tracing::{info, warn};

use super::names::{originate_value, page_announcement, sip_user_of, spoken};
use super::{FsTranslator, Request, SOUND_ORBIT_EMPTY, SOUND_PARK_FAILED, Tag};
use crate::orbit::Orbit;
use crate::park::{ChannelId, Command, Destination, Event, LampState, Moh, Target};
use crate::pbx::Output;
use crate::pbx::freeswitch::codec::Outgoing;
use crate::pbx::freeswitch::dialplan::RETURN_EXTEN;

/// Why a target cannot be dialled; the text is the originate's failure, logged and reported.
#[derive(Debug, Error)]
pub(super) enum DialError {
    #[error("cannot dial {uri}: set sip_endpoint (the sofia profile) for pbx `{pool}`")]
    NoSipEndpoint { uri: String, pool: String },
}

impl FsTranslator {
    pub(super) fn command(&mut self, cmd: Command, out: &mut Output<Request>) {
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
                    Err(e) => {
                        let reason = e.to_string();
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
                // A dial string's own leading `{…}` (a `reach` that sets a trunk header, for a
                // parker on another pool's PBX) joins callpark's: an originate reads one block.
                let line = match dial.strip_prefix('{') {
                    Some(rest) => format!("bgapi originate {{{vars},{rest} &park()"),
                    None => format!("bgapi originate {{{vars}}}{dial} &park()"),
                };
                // The job's id is the leg's: a failure is reported for the leg without any
                // state here, even after a restart.
                out.request(Request {
                    out: Outgoing::new(line).header("Job-UUID", channel.as_str()),
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
                let secs = ((timeout_ms + 999) / 1000).max(1);
                // sofia's `sip_auto_answer` sends `Call-Info: <sip:…>;answer-after=0`; the
                // Alert-Info is what Polycom, Yealink and snom phones answer on. No callpark
                // variable: nothing of the page crosses the event socket but its job's result,
                // and `&playback` hangs the page up when it has spoken.
                let vars = format!(
                    "origination_uuid={channel},origination_caller_id_name={},\
                     origination_caller_id_number={},originate_timeout={secs},\
                     sip_auto_answer=true,alert_info=info=alert-autoanswer,ignore_early_media=true",
                    originate_value(&caller_id.name),
                    originate_value(&caller_id.number),
                );
                info!(pbx = %self.s.pool, channel = %channel, %orbit, "page to {dial}");
                self.pages.insert(channel.clone());
                out.request(Request {
                    out: Outgoing::new(format!(
                        "bgapi originate {{{vars}}}{dial} &playback({})",
                        page_announcement(orbit)
                    ))
                    .header("Job-UUID", channel.as_str()),
                    tag: Tag::Action("page", None),
                });
            }
            Command::EndPage { channel } => {
                // Over already, it answers `-ERR No such channel`: routine, not a hang-up.
                self.action(out, "end the page", None, format!("uuid_kill {channel}"))
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

    pub(super) fn say_then_hang_up(&self, out: &mut Output<Request>, id: &ChannelId, sound: &str) {
        // One inline dialplan does all three, so nothing waits on a playback's end.
        self.action(
            out,
            "play and hang up",
            Some(id),
            format!("uuid_transfer {id} answer,playback:{sound},hangup inline"),
        );
    }

    pub(super) fn dial_string(&self, t: &Target) -> Result<String, DialError> {
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
                    return Err(DialError::NoSipEndpoint {
                        uri: uri.clone(),
                        pool: self.s.pool.clone(),
                    });
                }
            },
        })
    }

    pub(super) fn lamp(&self, orbit: Orbit, lamp: LampState) -> Request {
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
