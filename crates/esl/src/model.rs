//! FreeSWITCH events as callpark reads them: the headers it acts on, from `text/event-json`
//! (what the adapter subscribes to) or `text/event-plain` (URL-encoded `Name: value` lines,
//! as in the captures). Unknown events and headers are ignored, so a newer FreeSWITCH does not
//! break us.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{self, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use thiserror::Error;

use crate::codec::Frame;

/// An event that cannot be read.
#[derive(Debug, Error)]
pub enum EventError {
    #[error("event JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("plain event: {0}")]
    Plain(String),
    #[error("frame of type {0:?} is not an event")]
    NotAnEvent(String),
}

/// The headers of one event that callpark uses. Names are FreeSWITCH's own.
///
/// Read by hand rather than derived: FreeSWITCH's JSON events repeat some keys
/// (`Hangup-Cause` twice in CHANNEL_HANGUP_COMPLETE, as captured) and give a variable set more
/// than once as an array (`variable_transfer_history`); the last value wins, as in a channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsEvent {
    pub name: String,
    pub subclass: Option<String>,
    pub uuid: Option<String>,
    pub channel_name: Option<String>,
    pub answer_state: Option<String>,
    /// The channel's state machine (`CS_EXECUTE`, `CS_HANGUP`...) and its call state
    /// (`ACTIVE`, `HANGUP`...), as `uuid_dump` and channel events give them.
    pub channel_state: Option<String>,
    pub call_state: Option<String>,
    pub caller_name: Option<String>,
    pub caller_number: Option<String>,
    pub context: Option<String>,
    pub destination: Option<String>,
    /// Microseconds since the epoch; `0` while the channel was never answered.
    pub answered_time: Option<String>,
    pub hangup_cause: Option<String>,
    pub other_leg: Option<String>,
    pub job_uuid: Option<String>,
    pub application: Option<String>,
    /// The application the channel runs now (`uuid_dump`'s view of it).
    pub current_application: Option<String>,
    /// A BACKGROUND_JOB's result (`+OK <uuid>` or `-ERR <cause>`).
    pub body: Option<String>,
    /// Why callpark has the channel: `park` or `retrieve` (set by the include file).
    pub callpark_action: Option<String>,
    pub callpark_orbit: Option<String>,
    pub callpark_lot: Option<String>,
    /// The core's id of a leg callpark originated.
    pub callpark_leg: Option<String>,
    /// An explicit parker dial string (the include exports it for calls of directory users).
    pub callpark_parker: Option<String>,
    /// The channel this one was last bridged to: the transferer, after a blind transfer.
    pub bridge_channel: Option<String>,
    /// `<time>:<uuid>:bl_xfer:<dest>` when the channel was transferred here.
    pub transfer_source: Option<String>,
    /// `X-Callpark-Park` of the INVITE that brought the call: a call transferred to this
    /// pool's orbit on another PBX, sent over the trunk to park here (`<pool>/<transferer>`).
    pub trunk_park: Option<String>,
    /// A SIP REFER's Referred-By, when the phone sent one.
    pub referred_by: Option<String>,
    /// Whose presence a PRESENCE_PROBE asks for (`701@domain`): a phone subscribed to it.
    pub presence_to: Option<String>,
    /// The argument of the application an EXECUTE event is about (the music played).
    pub application_data: Option<String>,
    /// How an application ended (CHANNEL_EXECUTE_COMPLETE: `FILE PLAYED`, `FILE NOT FOUND`).
    pub application_response: Option<String>,
    /// The SIP Call-ID of a sofia channel: what a REFER's Replaces names.
    pub sip_call_id: Option<String>,
    /// The Refer-To of the REFER that transferred this channel here; `Replaces=` in it names
    /// the call (its Call-ID) it takes the place of.
    pub sip_refer_to: Option<String>,
    /// `replaced` on a consultation call an attended transfer (REFER with Replaces) ended.
    pub transfer_disposition: Option<String>,
    /// The directory user (and its domain) this call last dialled: after a phone answered it
    /// with a 302 (deflect, forward), the phone that sent it on.
    pub dialed_user: Option<String>,
    pub dialed_domain: Option<String>,
    /// How sofia followed that 302 (`sofia/internal/sip:park@…`): the phone's profile.
    pub sip_redirect_dialstring: Option<String>,
    /// The channel whose session placed this loopback call: the phone running FreeSWITCH's
    /// `att_xfer` (its consultation call to the park code).
    pub loopback_from: Option<String>,
    /// Read from the include's outbound connection (its `socket` application), which holds
    /// the channel's thread until callpark lets it go, not from the event stream.
    pub outbound: bool,
}

impl FsEvent {
    /// The field a header fills, if callpark reads it.
    fn slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        Some(match key {
            "Event-Subclass" => &mut self.subclass,
            "Unique-ID" => &mut self.uuid,
            "Channel-Name" => &mut self.channel_name,
            "Answer-State" => &mut self.answer_state,
            "Channel-State" => &mut self.channel_state,
            "Channel-Call-State" => &mut self.call_state,
            "Caller-Caller-ID-Name" => &mut self.caller_name,
            "Caller-Caller-ID-Number" => &mut self.caller_number,
            "Caller-Context" => &mut self.context,
            "Caller-Destination-Number" => &mut self.destination,
            "Caller-Channel-Answered-Time" => &mut self.answered_time,
            "Hangup-Cause" => &mut self.hangup_cause,
            "Other-Leg-Unique-ID" => &mut self.other_leg,
            "Job-UUID" => &mut self.job_uuid,
            "Application" => &mut self.application,
            "variable_current_application" => &mut self.current_application,
            "_body" => &mut self.body,
            "variable_callpark_action" => &mut self.callpark_action,
            "variable_callpark_orbit" => &mut self.callpark_orbit,
            "variable_callpark_lot" => &mut self.callpark_lot,
            "variable_callpark_leg" => &mut self.callpark_leg,
            "variable_callpark_parker" => &mut self.callpark_parker,
            "variable_bridge_channel" => &mut self.bridge_channel,
            "variable_transfer_source" => &mut self.transfer_source,
            "variable_sip_h_X-Callpark-Park" => &mut self.trunk_park,
            "variable_sip_h_Referred-By" => &mut self.referred_by,
            "to" => &mut self.presence_to,
            "Application-Data" => &mut self.application_data,
            "Application-Response" => &mut self.application_response,
            "variable_sip_call_id" => &mut self.sip_call_id,
            "variable_sip_refer_to" => &mut self.sip_refer_to,
            "variable_transfer_disposition" => &mut self.transfer_disposition,
            "variable_dialed_user" => &mut self.dialed_user,
            "variable_dialed_domain" => &mut self.dialed_domain,
            "variable_sip_redirect_dialstring" => &mut self.sip_redirect_dialstring,
            "variable_other_loopback_from_uuid" => &mut self.loopback_from,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for FsEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FsEvent, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = FsEvent;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a FreeSWITCH event (an object of headers)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<FsEvent, A::Error> {
        let mut e = FsEvent::default();
        let mut name = None;
        while let Some(Key(k)) = m.next_key::<Key<'de>>()? {
            if k == "Event-Name" {
                name = m.next_value::<Last>()?.0;
            } else if let Some(slot) = e.slot(&k) {
                *slot = m.next_value::<Last>()?.0;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        e.name = name.ok_or_else(|| A::Error::missing_field("Event-Name"))?;
        Ok(e)
    }
}

/// A header name, borrowed from the input when it can be.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a header name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A header's value: a string, or the last string of an array; other values are not ours.
struct Last(Option<String>);

impl<'de> Deserialize<'de> for Last {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Last, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Last;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Last, E> {
                Ok(Last(Some(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Last, E> {
                Ok(Last(Some(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Last, A::Error> {
                let mut last = None;
                while let Some(Last(v)) = s.next_element::<Last>()? {
                    last = v.or(last);
                }
                Ok(Last(last))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Last, E> {
                Ok(Last(None))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Last, E> {
                Ok(Last(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Last, E> {
                Ok(Last(Some(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Last, E> {
                Ok(Last(Some(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

impl FsEvent {
    /// Reads the event carried by an event frame.
    pub fn from_frame(f: &Frame) -> Result<FsEvent, EventError> {
        match f.content_type() {
            "text/event-json" => FsEvent::from_json(&f.body),
            "text/event-plain" => FsEvent::from_plain(&f.body),
            other => Err(EventError::NotAnEvent(other.to_string())),
        }
    }

    /// The channel an outbound connection's reply to `connect` describes (its headers are a
    /// plain event's: `Event-Name: CHANNEL_DATA`, the channel's variables).
    pub fn from_connect_reply(f: &Frame) -> Result<FsEvent, EventError> {
        FsEvent::from_plain(f.head().as_bytes())
    }

    pub fn from_json(body: &[u8]) -> Result<FsEvent, EventError> {
        Ok(serde_json::from_slice(body)?)
    }

    /// A plain event: URL-encoded header lines, a blank line, then the body when the event
    /// has one (BACKGROUND_JOB).
    pub(crate) fn from_plain(body: &[u8]) -> Result<FsEvent, EventError> {
        let text = std::str::from_utf8(body).map_err(|_| EventError::Plain("not UTF-8".into()))?;
        let (head, rest) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut map = serde_json::Map::new();
        let mut len = None;
        for line in head.split('\n').filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once(": ")
                .ok_or_else(|| EventError::Plain(format!("line {line:?} is not `Name: value`")))?;
            let v = url_decode(v)
                .ok_or_else(|| EventError::Plain(format!("bad escape in {line:?}")))?;
            if k == "Content-Length" {
                len = Some(
                    v.parse::<usize>()
                        .map_err(|_| EventError::Plain(format!("bad Content-Length {v:?}")))?,
                );
            }
            map.entry(k.to_string())
                .or_insert(serde_json::Value::String(v));
        }
        if let Some(n) = len {
            let b = rest.get(..n).ok_or_else(|| {
                EventError::Plain(format!("body shorter than Content-Length {n}"))
            })?;
            map.insert("_body".into(), serde_json::Value::String(b.to_string()));
        }
        Ok(serde_json::from_value(serde_json::Value::Object(map))?)
    }

    pub fn answered(&self) -> bool {
        self.answer_state.as_deref() == Some("answered")
    }

    /// Whether the channel came here by a blind transfer (`uuid_transfer`, a SIP REFER).
    pub fn blind_transferred(&self) -> bool {
        self.transfer_source
            .as_deref()
            .is_some_and(|s| s.contains(":bl_xfer:") || s.contains(":uuid_br:"))
    }
}

impl FsEvent {
    /// The Call-ID a REFER's `Refer-To: <sip:park@pbx?Replaces=<call-id>%3Bto-tag%3D…>` names:
    /// the call this one takes the place of.
    pub fn replaces_call_id(&self) -> Option<String> {
        let refer_to = self.sip_refer_to.as_deref()?;
        let (_, rest) = refer_to.split_once("Replaces=")?;
        let raw = rest.split(['&', '>']).next()?;
        let value = url_decode(raw)?;
        let call_id = value.split(';').next()?.trim();
        (!call_id.is_empty()).then(|| call_id.to_string())
    }
}

/// `%XX` decoding of a plain event's value; `None` on a malformed escape.
fn url_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let h = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One row of `show channels as json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelRow {
    pub uuid: String,
    #[serde(default)]
    pub name: String,
    /// What the channel runs now: `park`, `playback`, `uuid_bridge` (then `application_data`
    /// is the peer's uuid)...
    #[serde(default)]
    pub application: String,
    #[serde(default)]
    pub application_data: String,
    /// The channel's state machine (`CS_EXECUTE`, `CS_HANGUP`...).
    #[serde(default)]
    pub state: String,
    /// `ACTIVE`, `RINGING`, `HELD`, `HANGUP`...
    #[serde(default)]
    pub callstate: String,
}

impl ChannelRow {
    /// Listed, but hanging up already: its CHANNEL_HANGUP may have gone out before the
    /// listing's connection subscribed, and nothing more will say it is gone.
    pub fn ending(&self) -> bool {
        matches!(
            self.state.as_str(),
            "CS_HANGUP" | "CS_REPORTING" | "CS_DESTROY"
        ) || self.callstate == "HANGUP"
    }

    /// The row a channel read by `uuid_dump <uuid> json` would have in the listing, if it
    /// names a channel.
    pub fn from_dump(ev: &FsEvent) -> Option<ChannelRow> {
        Some(ChannelRow {
            uuid: ev.uuid.clone()?,
            name: ev.channel_name.clone().unwrap_or_default(),
            application: ev.current_application.clone().unwrap_or_default(),
            application_data: String::new(),
            state: ev.channel_state.clone().unwrap_or_default(),
            callstate: ev.call_state.clone().unwrap_or_default(),
        })
    }
}

/// `show channels as json`: `{"row_count":0}` when empty, else `{"row_count":N,"rows":[…]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelList {
    #[serde(default)]
    pub rows: Vec<ChannelRow>,
}

impl ChannelList {
    pub fn parse(body: &str) -> Result<ChannelList, serde_json::Error> {
        serde_json::from_str(body.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_decoding() {
        assert_eq!(url_decode("a%20b%3A").as_deref(), Some("a b:"));
        assert_eq!(url_decode("plain").as_deref(), Some("plain"));
        assert_eq!(url_decode("bad%2"), None);
        assert_eq!(url_decode("bad%zz"), None);
    }

    #[test]
    fn plain_event_with_body() {
        let e = FsEvent::from_plain(
            b"Event-Name: BACKGROUND_JOB\nJob-UUID: j1\nContent-Length: 15\n\n-ERR NO_ANSWER\n",
        )
        .unwrap();
        assert_eq!(e.name, "BACKGROUND_JOB");
        assert_eq!(e.job_uuid.as_deref(), Some("j1"));
        assert_eq!(e.body.as_deref(), Some("-ERR NO_ANSWER\n"));
        assert!(FsEvent::from_plain(b"Event-Name: X\nContent-Length: 9\n\nabc").is_err());
    }

    #[test]
    fn repeated_headers_and_arrays_take_the_last_value() {
        let e = FsEvent::from_json(
            br#"{"Event-Name":"CHANNEL_HANGUP_COMPLETE","Hangup-Cause":"A","Hangup-Cause":"B",
                 "variable_transfer_source":["1:x:bl_xfer:a","2:y:bl_xfer:park"],"Other":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(e.hangup_cause.as_deref(), Some("B"));
        assert_eq!(e.transfer_source.as_deref(), Some("2:y:bl_xfer:park"));
        assert!(
            FsEvent::from_json(br#"{"Unique-ID":"x"}"#).is_err(),
            "no Event-Name"
        );
        assert!(FsEvent::from_json(b"[1]").is_err());
    }

    #[test]
    fn empty_channel_list() {
        assert!(
            ChannelList::parse("{\"row_count\":0}\n")
                .unwrap()
                .rows
                .is_empty()
        );
    }
}
