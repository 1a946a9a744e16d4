//! A parked call as the core keeps it (and the store persists it), and where it is in its life.

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::orbit::Orbit;

use super::channel::ChannelId;
use super::party::{Parker, Party};
use super::refusal::RefuseReason;
use super::time::Millis;

/// Where a parked call is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum CallState {
    /// Waiting on its orbit; the deadline starts the next ringback (or the fallback).
    Parked,
    /// The parker's phone rings; the orbit stays retrievable. Deadline: end of ring time.
    Ringback {
        /// The ringing channel.
        leg: ChannelId,
        /// Which ringback, from 1.
        attempt: u8,
    },
    /// OnTimeoutURI rings; the orbit stays retrievable. Deadline: end of ring time.
    Fallback {
        /// The ringing channel.
        leg: ChannelId,
    },
    /// Park was refused; the parker is called back. Deadline: end of ring time.
    Returning {
        /// The ringing channel.
        leg: ChannelId,
        /// Why the park was refused.
        reason: RefuseReason,
    },
    /// An operator retrieves the call to `to`, which rings; the orbit stays retrievable.
    /// Deadline: end of ring time; missed, the call is parked again until `resume`.
    Delivering {
        /// The ringing channel.
        leg: ChannelId,
        /// Where it rings, as the operator named it.
        to: String,
        /// The pickup deadline the call goes back to when nobody answers.
        resume: Millis,
    },
    /// The channel was replaced by a transfer; the caller taking its place is on its way and
    /// gets the orbit. Deadline: [`HANDOVER_TIMEOUT`](super::HANDOVER_TIMEOUT).
    Replaced,
    /// A bridge with `leg` was asked for. Deadline: bridge timeout.
    Connecting {
        /// The channel the call is being bridged to.
        leg: ChannelId,
        /// How that channel came.
        via: Via,
        /// Deadline to go back to when a retriever leaves before the bridge.
        resume: Millis,
    },
}

impl CallState {
    /// The state's name, as the store keeps it and the CLI shows it.
    pub fn name(&self) -> &'static str {
        match self {
            CallState::Parked => "parked",
            CallState::Ringback { .. } => "ringback",
            CallState::Fallback { .. } => "fallback",
            CallState::Returning { .. } => "returning",
            CallState::Delivering { .. } => "delivering",
            CallState::Replaced => "handing_over",
            CallState::Connecting { .. } => "connecting",
        }
    }

    /// The other channel the call is waiting on, if any.
    pub fn leg(&self) -> Option<&ChannelId> {
        match self {
            CallState::Parked | CallState::Replaced => None,
            CallState::Ringback { leg, .. }
            | CallState::Fallback { leg }
            | CallState::Returning { leg, .. }
            | CallState::Delivering { leg, .. }
            | CallState::Connecting { leg, .. } => Some(leg),
        }
    }
}

/// Who the parked call is being connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum Via {
    /// Someone dialled the orbit.
    Retrieve {
        /// The retriever's caller id.
        by: Party,
    },
    /// The parker answered a ringback.
    Ringback {
        /// Which ringback, from 1.
        attempt: u8,
    },
    /// The fallback destination answered.
    Fallback,
    /// The parker of a refused call answered.
    Return,
}

/// One parked (or returning) call: everything needed to resume it after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct ParkedCall {
    /// The parked channel.
    pub channel: ChannelId,
    /// `None` only for a refused call being returned.
    pub orbit: Option<Orbit>,
    /// Its caller id.
    pub caller: Party,
    /// Who parked it.
    pub parker: Parker,
    /// Its lot (`None`: the general lot).
    pub lot: Option<String>,
    /// When it was parked.
    pub parked_at: Millis,
    /// When its state times out (see [`CallState`]); [`NO_DEADLINE`](super::NO_DEADLINE) for never.
    pub deadline: Millis,
    /// Ringbacks placed so far.
    pub attempts: u8,
    /// Whether the fallback was tried.
    pub fallback_tried: bool,
    /// Where it is in its life.
    pub state: CallState,
    /// Its pages (park and page), when its lot pages.
    #[cfg_attr(feature = "serde", serde(default))]
    pub page: Paging,
}

/// Where a call's pages stand: a page is a call to the lot's `page` destination that
/// announces the orbit, repeated at `page_interval` until the call is retrieved or
/// `page_repeat` runs out. Kept with the call so a restart neither repeats nor forgets one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Paging {
    /// Pages placed so far.
    pub sent: u8,
    /// When the next page is due; `None`: no more.
    pub next: Option<Millis>,
    /// The latest page's channel, ended when the call's park ends.
    pub leg: Option<ChannelId>,
}

/// A change to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A call to store as it is now.
    Upsert(Box<ParkedCall>),
    /// A call that ended: forget it.
    Remove(ChannelId),
}
