//! The event log: how each call's park went.

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::orbit::Orbit;

use super::channel::ChannelId;
use super::time::Millis;

/// How a call's park ended, or a step on the way; written to the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum LogKind {
    /// The call got its orbit.
    Parked,
    /// The park was refused (see the entry's detail).
    Refused,
    /// A ringback to the parker started.
    RingbackStarted,
    /// Nobody answered the ringback.
    RingbackMissed,
    /// The fallback destination (`on_timeout`) rings.
    FallbackStarted,
    /// Nobody answered at the fallback destination.
    FallbackMissed,
    /// Someone dialled the orbit (or an operator retrieves the call): it is being connected.
    RetrieveStarted,
    /// The retriever left before the call was connected.
    RetrieveAbandoned,
    /// Someone dialled an orbit with no call.
    OrbitEmpty,
    /// A caller took the place of the consultation call parked on its orbit (an attended
    /// transfer completed with REFER/Replaces): the call on the orbit is now the caller's.
    HandedOver,
    /// The pickup timeout passed with nobody to ring back (the parker is unknown, or dialled
    /// the park code itself) and no `on_timeout`: the call stays parked until retrieved.
    KeptParked,
    /// The call was announced at its lot's page destination (park and page).
    Paged,
    /// Ended: bridged to a retriever.
    Retrieved,
    /// Ended: the parker answered a ringback.
    Reconnected,
    /// Ended: answered at the fallback destination.
    FallbackAnswered,
    /// Ended: a refused call was answered by its parker.
    Returned,
    /// Ended: nobody answered anywhere; the call was hung up.
    Disconnected,
    /// Ended: the parked caller hung up.
    Abandoned,
}

impl LogKind {
    /// Every kind, in declaration order.
    pub const ALL: [LogKind; 18] = [
        LogKind::Parked,
        LogKind::Refused,
        LogKind::RingbackStarted,
        LogKind::RingbackMissed,
        LogKind::FallbackStarted,
        LogKind::FallbackMissed,
        LogKind::RetrieveStarted,
        LogKind::RetrieveAbandoned,
        LogKind::OrbitEmpty,
        LogKind::HandedOver,
        LogKind::KeptParked,
        LogKind::Paged,
        LogKind::Retrieved,
        LogKind::Reconnected,
        LogKind::FallbackAnswered,
        LogKind::Returned,
        LogKind::Disconnected,
        LogKind::Abandoned,
    ];

    /// The kind's name, as the store and the API write it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Parked => "parked",
            LogKind::Refused => "refused",
            LogKind::RingbackStarted => "ringback_started",
            LogKind::RingbackMissed => "ringback_missed",
            LogKind::FallbackStarted => "fallback_started",
            LogKind::FallbackMissed => "fallback_missed",
            LogKind::RetrieveStarted => "retrieve_started",
            LogKind::RetrieveAbandoned => "retrieve_abandoned",
            LogKind::OrbitEmpty => "orbit_empty",
            LogKind::HandedOver => "handed_over",
            LogKind::KeptParked => "kept_parked",
            LogKind::Paged => "paged",
            LogKind::Retrieved => "retrieved",
            LogKind::Reconnected => "reconnected",
            LogKind::FallbackAnswered => "fallback_answered",
            LogKind::Returned => "returned",
            LogKind::Disconnected => "disconnected",
            LogKind::Abandoned => "abandoned",
        }
    }

    /// Whether the call's park is over (and its orbit, if any, freed).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            LogKind::Retrieved
                | LogKind::Reconnected
                | LogKind::FallbackAnswered
                | LogKind::Returned
                | LogKind::Disconnected
                | LogKind::Abandoned
        )
    }
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct LogEvent {
    /// When it happened.
    pub at: Millis,
    /// What happened.
    pub kind: LogKind,
    /// The parked channel it is about.
    pub channel: ChannelId,
    /// Its orbit, if it has one.
    pub orbit: Option<Orbit>,
    /// The lot of the call (its orbit's lot; the lot asked for when it got no orbit).
    #[cfg_attr(feature = "serde", serde(default))]
    pub lot: Option<String>,
    /// More, in words (who retrieved, why a park was refused).
    pub detail: String,
}
