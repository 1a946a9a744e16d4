//! What the core is told: a call to park, and what the PBX reports.

use crate::orbit::Orbit;

use super::channel::ChannelId;
use super::party::{Parker, Party};

/// A call that arrived at the park code (or was transferred to an orbit): what the core needs
/// to park it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkRequest {
    /// The channel to park.
    pub channel: ChannelId,
    /// Its caller id.
    pub caller: Party,
    /// Who parks it.
    pub parker: Parker,
    /// The channel that should hear the orbit spoken, when the parker is on the line
    /// (the park code dialled directly, or an attended transfer not yet completed).
    pub announce_to: Option<ChannelId>,
    /// Parking lot asked for; `None` takes any range of the pool.
    pub lot: Option<String>,
    /// Directed park: this orbit and no other.
    pub orbit: Option<Orbit>,
    /// The channel whose place this call takes: a phone's attended transfer (SIP REFER with
    /// Replaces) swapped the caller in for its consultation call, which was parked on an orbit
    /// and heard it. The caller is handed that orbit, with the transferring phone as parker.
    pub replaces: Option<ChannelId>,
}

impl ParkRequest {
    /// A plain park of `channel`: no announcement, any lot, any orbit.
    pub fn new(channel: ChannelId, caller: Party, parker: Parker) -> ParkRequest {
        ParkRequest {
            channel,
            caller,
            parker,
            announce_to: None,
            lot: None,
            orbit: None,
            replaces: None,
        }
    }
}

/// What a PBX tells the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A call arrived at the park code.
    Park(ParkRequest),
    /// Someone dialled an orbit.
    Retrieve {
        /// The channel that dialled.
        channel: ChannelId,
        /// The orbit it dialled.
        orbit: Orbit,
        /// Its caller id.
        by: Party,
        /// Who dialled, as a parker: dialling a free orbit holds the call there (the phone's
        /// consultation call of an attended transfer to that orbit, which REFER with Replaces
        /// hands to the caller), if a voice policy lets it park.
        dialler: Parker,
    },
    /// A channel the core originated (ringback, fallback, return) was answered.
    Answered {
        /// The originated channel.
        channel: ChannelId,
    },
    /// A channel the core originated failed before answer (busy, no answer, congestion).
    OriginateFailed {
        /// The originated channel.
        channel: ChannelId,
        /// The PBX's cause, for the log.
        reason: String,
    },
    /// The bridge the core asked for is up; `channel` is either of its two channels.
    Bridged {
        /// One of the bridged channels.
        channel: ChannelId,
    },
    /// A channel hung up or vanished.
    Hangup {
        /// The channel.
        channel: ChannelId,
    },
    /// A channel left because a transfer replaced it (the consultation call of a phone's
    /// attended transfer, REFER with Replaces), and the call that takes its place is on its way
    /// as a [`ParkRequest`] with `replaces` naming it. What it held waits for that call.
    Replaced {
        /// The channel that left.
        channel: ChannelId,
    },
}

impl Event {
    /// The channel the event is about, and whether the PBX still had it when it told: every
    /// event but a hang-up or a replacement names a channel that was there.
    pub fn channel(&self) -> (&ChannelId, bool) {
        match self {
            Event::Park(r) => (&r.channel, true),
            Event::Retrieve { channel, .. }
            | Event::Answered { channel }
            | Event::Bridged { channel } => (channel, true),
            Event::OriginateFailed { channel, .. }
            | Event::Hangup { channel }
            | Event::Replaced { channel } => (channel, false),
        }
    }
}
