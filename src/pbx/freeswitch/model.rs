//! FreeSWITCH events as callpark reads them: the headers it acts on, from `text/event-json`
//! (what the adapter subscribes to) or `text/event-plain` (URL-encoded `Name: value` lines,
//! as in the captures). Unknown events and headers are ignored, so a newer FreeSWITCH does not
//! break us.

use serde::Deserialize;
use thiserror::Error;

use super::codec::Frame;

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct FsEvent {
    #[serde(rename = "Event-Name", default)]
    pub name: String,
    #[serde(rename = "Event-Subclass", default)]
    pub subclass: Option<String>,
    #[serde(rename = "Unique-ID", default)]
    pub uuid: Option<String>,
    #[serde(rename = "Channel-Name", default)]
    pub channel_name: Option<String>,
    #[serde(rename = "Answer-State", default)]
    pub answer_state: Option<String>,
    #[serde(rename = "Caller-Caller-ID-Name", default)]
    pub caller_name: Option<String>,
    #[serde(rename = "Caller-Caller-ID-Number", default)]
    pub caller_number: Option<String>,
    #[serde(rename = "Caller-Context", default)]
    pub context: Option<String>,
    #[serde(rename = "Caller-Destination-Number", default)]
    pub destination: Option<String>,
    /// Microseconds since the epoch; `0` while the channel was never answered.
    #[serde(rename = "Caller-Channel-Answered-Time", default)]
    pub answered_time: Option<String>,
    #[serde(rename = "Hangup-Cause", default)]
    pub hangup_cause: Option<String>,
    #[serde(rename = "Other-Leg-Unique-ID", default)]
    pub other_leg: Option<String>,
    #[serde(rename = "Job-UUID", default)]
    pub job_uuid: Option<String>,
    #[serde(rename = "Application", default)]
    pub application: Option<String>,
    /// A BACKGROUND_JOB's result (`+OK <uuid>` or `-ERR <cause>`).
    #[serde(rename = "_body", default)]
    pub body: Option<String>,
    /// Why callpark has the channel: `park` or `retrieve` (set by the include file).
    #[serde(rename = "variable_callpark_action", default)]
    pub callpark_action: Option<String>,
    #[serde(rename = "variable_callpark_orbit", default)]
    pub callpark_orbit: Option<String>,
    #[serde(rename = "variable_callpark_lot", default)]
    pub callpark_lot: Option<String>,
    /// The core's id of a leg callpark originated.
    #[serde(rename = "variable_callpark_leg", default)]
    pub callpark_leg: Option<String>,
    /// An explicit parker dial string (the include exports it for calls of directory users).
    #[serde(rename = "variable_callpark_parker", default)]
    pub callpark_parker: Option<String>,
    /// The channel this one was last bridged to: the transferer, after a blind transfer.
    #[serde(rename = "variable_bridge_channel", default)]
    pub bridge_channel: Option<String>,
    /// `<time>:<uuid>:bl_xfer:<dest>` when the channel was transferred here.
    #[serde(rename = "variable_transfer_source", default)]
    pub transfer_source: Option<String>,
    /// A SIP REFER's Referred-By, when the phone sent one.
    #[serde(rename = "variable_sip_h_Referred-By", default)]
    pub referred_by: Option<String>,
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

    pub fn from_json(body: &[u8]) -> Result<FsEvent, EventError> {
        Ok(serde_json::from_slice(body)?)
    }

    /// A plain event: URL-encoded header lines, a blank line, then the body when the event
    /// has one (BACKGROUND_JOB).
    pub fn from_plain(body: &[u8]) -> Result<FsEvent, EventError> {
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
    fn empty_channel_list() {
        assert!(
            ChannelList::parse("{\"row_count\":0}\n")
                .unwrap()
                .rows
                .is_empty()
        );
    }
}
