//! Typed ARI messages: the websocket events and REST resources callpark reads.
//!
//! Only the fields callpark uses are modelled; unknown event types decode as
//! [`AriEvent::Other`], unknown fields are ignored, so a newer Asterisk does not break us.

use serde::Deserialize;

/// An ARI caller id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CallerId {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub number: String,
}

/// Where a channel is in the dialplan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DialplanCep {
    #[serde(default)]
    pub context: String,
    #[serde(default)]
    pub exten: String,
    #[serde(default)]
    pub priority: i64,
    /// The application running now and its arguments (`Stasis`, `callpark,park,reception`).
    #[serde(default)]
    pub app_name: String,
    #[serde(default)]
    pub app_data: String,
}

/// A channel's state as ARI reports it; callpark only needs to tell an answered channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum ChannelState {
    Up,
    Ringing,
    #[default]
    Down,
    /// Any other of Asterisk's states (`Ring`, `Dialing`, `Busy`, `Pre-ring`...).
    Other,
}

impl From<String> for ChannelState {
    fn from(s: String) -> Self {
        match s.as_str() {
            "Up" => ChannelState::Up,
            "Ringing" => ChannelState::Ringing,
            "Down" => ChannelState::Down,
            _ => ChannelState::Other,
        }
    }
}

/// An ARI channel resource.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Channel {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub state: ChannelState,
    #[serde(default)]
    pub caller: CallerId,
    #[serde(default)]
    pub connected: CallerId,
    #[serde(default)]
    pub dialplan: Option<DialplanCep>,
    /// The variables ari.conf's `channelvars` asks Asterisk to put in every channel object
    /// (an unset one comes as ""); spares a REST round trip per park.
    #[serde(default)]
    pub channelvars: Option<std::collections::BTreeMap<String, String>>,
}

/// An ARI bridge resource.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Bridge {
    pub id: String,
    #[serde(default)]
    pub channels: Vec<String>,
}

/// An ARI playback resource.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Playback {
    pub id: String,
    #[serde(default)]
    pub target_uri: String,
    #[serde(default)]
    pub state: String,
}

/// The websocket events callpark acts on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type")]
pub enum AriEvent {
    StasisStart {
        #[serde(default)]
        args: Vec<String>,
        channel: Channel,
        /// Set when an attended transfer swapped this channel in for another.
        #[serde(default)]
        replace_channel: Option<Box<Channel>>,
    },
    StasisEnd {
        channel: Channel,
    },
    ChannelDestroyed {
        channel: Channel,
        #[serde(default)]
        cause: i64,
        #[serde(default)]
        cause_txt: String,
    },
    ChannelHangupRequest {
        channel: Channel,
        #[serde(default)]
        cause: Option<i64>,
    },
    ChannelStateChange {
        channel: Channel,
    },
    ChannelEnteredBridge {
        bridge: Bridge,
        channel: Channel,
    },
    ChannelLeftBridge {
        bridge: Bridge,
        channel: Channel,
    },
    BridgeDestroyed {
        bridge: Bridge,
    },
    PlaybackStarted {
        playback: Playback,
    },
    PlaybackFinished {
        playback: Playback,
    },
    #[serde(other)]
    Other,
}

/// `GET /channels/{id}/variable`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Variable {
    pub value: String,
}

/// An ARI error body, e.g. `{"message":"Channel not found"}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AriMessage {
    pub message: String,
}

/// Decodes one websocket text frame.
pub fn decode_event(text: &str) -> Result<AriEvent, serde_json::Error> {
    serde_json::from_str(text)
}

/// The endpoint a channel was dialled on: `PJSIP/alice-00000012` -> `PJSIP/alice`,
/// `Local/bob@calls-00000005;2` -> `Local/bob@calls`. `None` for names without a sequence.
pub fn endpoint_of(channel_name: &str) -> Option<String> {
    let base = channel_name.split(';').next()?;
    let (ep, seq) = base.rsplit_once('-')?;
    (!seq.is_empty() && seq.bytes().all(|b| b.is_ascii_hexdigit()) && ep.contains('/'))
        .then(|| ep.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_of_channel_names() {
        assert_eq!(
            endpoint_of("PJSIP/alice-00000012").as_deref(),
            Some("PJSIP/alice")
        );
        assert_eq!(
            endpoint_of("Local/bob@calls-00000005;2").as_deref(),
            Some("Local/bob@calls")
        );
        assert_eq!(
            endpoint_of("SIP/my-phone-0000a1f3").as_deref(),
            Some("SIP/my-phone")
        );
        assert_eq!(endpoint_of("PJSIP/alice"), None);
        assert_eq!(endpoint_of("garbage"), None);
    }

    #[test]
    fn unknown_event_types_and_fields_decode() {
        let e = decode_event(r#"{"type":"SomethingNew","x":1}"#).unwrap();
        assert_eq!(e, AriEvent::Other);
        assert!(decode_event(r#"{"type":"StasisStart"}"#).is_err());
        assert!(decode_event("not json").is_err());
    }
}
