//! What the core asks a PBX to do, and the lamps it lights.

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::orbit::Orbit;

use super::call::{CallState, Via};
use super::channel::ChannelId;
use super::destination::Destination;
use super::party::Party;
use super::refusal::RefuseReason;
use super::settings::Moh;
use super::time::Millis;

/// Why an originated leg is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum LegPurpose {
    /// Ringback `attempt` (1-based) to the parker.
    Ringback {
        /// Which ringback, from 1.
        attempt: u8,
    },
    /// OnTimeoutURI.
    Fallback,
    /// Giving a refused call back to its parker.
    Return,
    /// An operator's retrieve to an extension or endpoint (the admin API).
    Deliver,
}

/// Where an originated leg dials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum Target {
    /// A parker's endpoint, as the PBX dials it (`PJSIP/alice`).
    Endpoint(String),
    /// A configured destination (`on_timeout`, an operator's retrieve).
    Destination(Destination),
}

/// What the core asks a PBX to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Answer a channel.
    Answer {
        /// The channel.
        channel: ChannelId,
    },
    /// Play music on hold (or silence) to a channel.
    StartMoh {
        /// The channel.
        channel: ChannelId,
        /// What it hears.
        moh: Moh,
    },
    /// Stop a channel's music.
    StopMoh {
        /// The channel.
        channel: ChannelId,
    },
    /// Speak the orbit to a channel (the parker on the line).
    Announce {
        /// Who hears it.
        channel: ChannelId,
        /// The orbit.
        orbit: Orbit,
    },
    /// Text to the parker's endpoint (SIP MESSAGE where the PBX can).
    Notify {
        /// The endpoint, as the PBX dials it.
        endpoint: String,
        /// The message.
        text: String,
    },
    /// Place a call whose channel gets the id `channel`; events for it use that id.
    Originate {
        /// The id the new channel gets.
        channel: ChannelId,
        /// Where it dials.
        target: Target,
        /// The caller id it shows.
        caller_id: Party,
        /// How long it rings before it counts as missed.
        timeout_ms: Millis,
        /// Why it is placed.
        purpose: LegPurpose,
    },
    /// Connect a parked call to another channel.
    Bridge {
        /// The parked channel.
        parked: ChannelId,
        /// The retriever, or an answered leg.
        other: ChannelId,
    },
    /// Hang a channel up.
    Hangup {
        /// The channel.
        channel: ChannelId,
    },
    /// Tell a retriever the orbit holds no call, then hang it up.
    OrbitEmpty {
        /// The retriever.
        channel: ChannelId,
        /// The orbit it dialled.
        orbit: Orbit,
    },
    /// Tell a caller why its park was refused, then hand it back to the dialplan.
    Refuse {
        /// The refused channel.
        channel: ChannelId,
        /// Why.
        reason: RefuseReason,
    },
    /// Tell a channel, connected already, that the park it asked for failed (the transferor
    /// a refused call came back to); nothing follows.
    ParkFailed {
        /// The channel.
        channel: ChannelId,
    },
    /// Call the lot's page destination (with the PBX's auto-answer headers) and announce
    /// the orbit there, then hang up. Nothing of the page leg comes back as an event: it
    /// lives in the PBX's hands, and a missed or failed page changes nothing for the call.
    Page {
        /// The id the page's channel gets.
        channel: ChannelId,
        /// Where it calls.
        target: Destination,
        /// The orbit it announces.
        orbit: Orbit,
        /// The caller id it shows (`Parked 701: Carol`).
        caller_id: Party,
        /// How long it rings before it is given up.
        timeout_ms: Millis,
    },
    /// End a page that may still be ringing or speaking (its call was retrieved or ended);
    /// one already over is no error.
    EndPage {
        /// The page's channel.
        channel: ChannelId,
    },
    /// Busy-lamp state of an orbit.
    Lamp {
        /// The orbit.
        orbit: Orbit,
        /// What its lamp shows now.
        state: LampState,
    },
}

impl Command {
    /// Whether the PBX may carry this out before the step is in the store. Only what puts a
    /// call on hold may: answering, music, the spoken orbit. A crash before the commit then
    /// leaves the call where a crash just before the event was handled would have left it
    /// (in the PBX's hands, unknown to the store), only with music; done before the commit,
    /// they take the store's write off the caller's path to music. Everything that ends,
    /// bridges or places a call, lights a lamp or tells a parker an orbit waits for the commit
    /// (write-ahead), so the store never knows less about those than the PBX.
    pub fn may_precede_commit(&self) -> bool {
        matches!(
            self,
            Command::Answer { .. } | Command::StartMoh { .. } | Command::Announce { .. }
        )
    }

    /// The channels this command acts on (none for a lamp or a message to an endpoint).
    pub fn channels(&self) -> Vec<&ChannelId> {
        match self {
            Command::Answer { channel }
            | Command::StartMoh { channel, .. }
            | Command::StopMoh { channel }
            | Command::Announce { channel, .. }
            | Command::Originate { channel, .. }
            | Command::Hangup { channel }
            | Command::OrbitEmpty { channel, .. }
            | Command::Refuse { channel, .. }
            | Command::ParkFailed { channel }
            | Command::Page { channel, .. }
            | Command::EndPage { channel } => vec![channel],
            Command::Bridge { parked, other } => vec![parked, other],
            Command::Notify { .. } | Command::Lamp { .. } => vec![],
        }
    }
}

/// What an orbit's busy-lamp key shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum LampState {
    /// No call on the orbit.
    Idle,
    /// A call waits on the orbit (or is being retrieved).
    InUse,
    /// The call rings out: a ringback to its parker, or its fallback destination.
    Ringing,
}

impl LampState {
    /// The lamp of a call in `state` (a call without an orbit has none).
    pub fn of(state: &CallState) -> LampState {
        match state {
            CallState::Parked
            | CallState::Replaced
            | CallState::Returning { .. }
            | CallState::Connecting {
                via: Via::Retrieve { .. } | Via::Return,
                ..
            } => LampState::InUse,
            CallState::Ringback { .. }
            | CallState::Fallback { .. }
            | CallState::Delivering { .. }
            | CallState::Connecting {
                via: Via::Ringback { .. } | Via::Fallback,
                ..
            } => LampState::Ringing,
        }
    }
}
