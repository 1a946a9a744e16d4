//! Values that flow in and out of the park state machine.

use std::fmt;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::orbit::Orbit;

/// Milliseconds since the Unix epoch. Deadlines are absolute so that a restart resumes them.
pub type Millis = i64;

/// The deadline of a call that waits with no timer running: parked until retrieved (nobody to
/// ring back and no `on_timeout`). Stored like any deadline; never fires.
pub const NO_DEADLINE: Millis = Millis::MAX;

/// A PBX channel id (ARI channel id, FreeSWITCH uuid), opaque to the core.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct ChannelId(pub String);

impl ChannelId {
    /// The id as the PBX gives it.
    pub fn new(s: impl Into<String>) -> ChannelId {
        ChannelId(s.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of a channel originated on behalf of this one (ringback `rb1`, fallback `fb`,
    /// return `ret`). Derived, not random, so the core stays deterministic and the id survives
    /// a restart; shaped like a UUID because that is what every PBX accepts as the id of a
    /// channel it is asked to create (FreeSWITCH's `origination_uuid` takes 36 characters).
    ///
    /// ```
    /// use callpark_core::park::ChannelId;
    ///
    /// let parked = ChannelId::new("1700000000.42");
    /// let ringback = parked.leg("rb1");
    /// assert_eq!(ringback, parked.leg("rb1"), "the same id every time");
    /// assert_ne!(ringback, parked.leg("rb2"));
    /// assert_eq!(ringback.as_str().len(), 36);
    /// ```
    pub fn leg(&self, tag: &str) -> ChannelId {
        use sha2::{Digest, Sha256};
        let h = Sha256::digest(format!("callpark-leg/{}/{tag}", self.0));
        let x: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
        ChannelId(format!(
            "{}-{}-{}-{}-{}",
            &x[0..8],
            &x[8..12],
            &x[12..16],
            &x[16..20],
            &x[20..32]
        ))
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Caller id of a party.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Party {
    /// Caller id name.
    pub name: String,
    /// Caller id number.
    pub number: String,
}

/// Who parked the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Parker {
    /// The ids voice policies are matched against (caller number, endpoint, SIP URI).
    pub ids: Vec<String>,
    /// Where ringbacks go, as the PBX dials it (`PJSIP/alice`); `None` when unknown.
    pub endpoint: Option<String>,
    /// A printable name for logs and notifications.
    pub display: String,
}

/// Where a call goes when every ringback was missed (Lync's OnTimeoutURI).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum Destination {
    /// `exten:0@from-internal`: an extension in a dialplan context.
    Exten {
        /// The extension.
        exten: String,
        /// Its dialplan context.
        context: String,
    },
    /// `sip:operator@example.com`.
    Sip(String),
    /// A raw PBX dial string (`PJSIP/operator`, `sofia/internal/1000@example.com`).
    Dial(String),
}

impl Destination {
    /// Reads a destination as the configuration writes it; the error says what is wrong.
    ///
    /// ```
    /// use callpark_core::park::Destination;
    ///
    /// assert_eq!(
    ///     Destination::parse("exten:0@from-internal"),
    ///     Ok(Destination::Exten { exten: "0".into(), context: "from-internal".into() })
    /// );
    /// assert_eq!(Destination::parse("PJSIP/operator"), Ok(Destination::Dial("PJSIP/operator".into())));
    /// assert!(Destination::parse("sip:operator").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Destination, DestinationError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DestinationError::Empty);
        }
        if s.chars().any(char::is_whitespace) {
            return Err(DestinationError::WhiteSpace(s.into()));
        }
        if let Some(rest) = s.strip_prefix("exten:") {
            return match rest.split_once('@') {
                Some((e, c)) if !e.is_empty() && !c.is_empty() => Ok(Destination::Exten {
                    exten: e.into(),
                    context: c.into(),
                }),
                _ => Err(DestinationError::Exten(s.into())),
            };
        }
        if s.starts_with("sip:") || s.starts_with("sips:") {
            return if s.contains('@') {
                Ok(Destination::Sip(s.into()))
            } else {
                Err(DestinationError::SipUri(s.into()))
            };
        }
        if s.contains('/') {
            return Ok(Destination::Dial(s.into()));
        }
        Err(DestinationError::Unknown(s.into()))
    }
}

/// Why a string is not a [`Destination`]: the text (trimmed), and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Nothing but white space.
    #[error("is empty: give `exten:EXTEN@CONTEXT`, a `sip:` URI or a dial string")]
    Empty,
    /// White space inside it.
    #[error("`{0}` contains white space")]
    WhiteSpace(String),
    /// `exten:` without an extension, a context or the `@` between them.
    #[error("`{0}`: write an extension as `exten:EXTEN@CONTEXT`")]
    Exten(String),
    /// A `sip:` (or `sips:`) URI without a user and a host.
    #[error("`{0}`: a SIP URI needs a user and a host, like sip:operator@example.com")]
    SipUri(String),
    /// None of the forms a destination takes.
    #[error(
        "`{0}` is neither `exten:EXTEN@CONTEXT`, a `sip:` URI nor a dial string like `PJSIP/operator`"
    )]
    Unknown(String),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Exten { exten, context } => write!(f, "exten:{exten}@{context}"),
            Destination::Sip(s) | Destination::Dial(s) => f.write_str(s),
        }
    }
}

/// Music on hold for parked calls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum Moh {
    /// Silence (`music_on_hold = false`).
    Off,
    /// The PBX's class; `None` is its default class.
    Class(Option<String>),
    /// A custom file, by the path the PBX can read.
    File(String),
}

/// How long the orbit of a replaced call waits for the call replacing it (FreeSWITCH hangs the
/// consultation up some 20 ms before the caller arrives). Not a setting: it only bounds the
/// wait when the transfer fails after the consultation has gone.
pub const HANDOVER_TIMEOUT: Millis = 5_000;

/// How long a requested bridge may take before it counts as failed. Not a setting in the file:
/// it only bounds the wait for a PBX that never reports the bridge, and Lync has none to mirror.
pub const BRIDGE_TIMEOUT: Millis = 10_000;

/// The settings the state machine needs, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long a call waits on its orbit before its parker is rung back.
    pub pickup_timeout: Millis,
    /// How many ringbacks are placed before the fallback (`on_timeout`).
    pub max_pickup_attempts: u8,
    /// How long a ringback or the fallback rings.
    pub ringback_ring_time: Millis,
    /// Where a call goes when every ringback was missed; `None`: it is hung up (or stays
    /// parked when nobody can be rung back).
    pub on_timeout: Option<Destination>,
    /// What a parked call hears.
    pub moh: Moh,
    /// How long a requested bridge may take before it counts as failed.
    pub bridge_timeout: Millis,
    /// What a ringback or fallback shows before the orbit: `Parked 701: Carol`.
    pub caller_id_prefix: String,
    /// What a directed park to an orbit in use gets.
    pub on_busy_orbit: OnBusyOrbit,
}

/// What a call transferred to an orbit in use gets. It is never bridged to the parked call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum OnBusyOrbit {
    /// Back to whoever transferred it, who is told why.
    #[default]
    Return,
    /// The lowest free orbit of the same lot; the transferor is told which.
    NextFree,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pickup_timeout: 90_000,
            max_pickup_attempts: 1,
            ringback_ring_time: 20_000,
            on_timeout: None,
            moh: Moh::Class(None),
            bridge_timeout: BRIDGE_TIMEOUT,
            caller_id_prefix: "Parked".into(),
            on_busy_orbit: OnBusyOrbit::Return,
        }
    }
}

/// Why a park request was turned down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum RefuseReason {
    /// No voice policy enables call park for the parker.
    NotAllowed,
    /// Every orbit of the pool (or lot) is in use.
    Full,
    /// A directed park named an orbit that is held by another call.
    OrbitBusy,
    /// A directed park named an orbit this pool does not own.
    NotOurOrbit,
    /// The parker's voice policy does not allow the lot asked for (or the orbit's lot).
    LotNotAllowed,
}

impl RefuseReason {
    /// The reason in words, for logs and the parker.
    pub fn as_str(self) -> &'static str {
        match self {
            RefuseReason::NotAllowed => {
                "call park is not enabled for this user by any voice policy"
            }
            RefuseReason::Full => "every orbit is in use",
            RefuseReason::OrbitBusy => "the requested orbit is in use",
            RefuseReason::NotOurOrbit => "the requested orbit is not one of this pool's orbits",
            RefuseReason::LotNotAllowed => "the parker's voice policy does not allow this lot",
        }
    }
}

/// Why an operator's request (the admin API) changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// No call is on the orbit.
    #[error("orbit: no call is parked on {0}")]
    NoCall(Orbit),
    /// The call on the orbit is being connected (or handed over) already.
    #[error("orbit: the call on {0} is being connected already")]
    Busy(Orbit),
}

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
            | Command::ParkFailed { channel } => vec![channel],
            Command::Bridge { parked, other } => vec![parked, other],
            Command::Notify { .. } | Command::Lamp { .. } => vec![],
        }
    }
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
    /// Busy-lamp state of an orbit.
    Lamp {
        /// The orbit.
        orbit: Orbit,
        /// What its lamp shows now.
        state: LampState,
    },
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
    /// gets the orbit. Deadline: [`HANDOVER_TIMEOUT`].
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
    /// When its state times out (see [`CallState`]); [`NO_DEADLINE`] for never.
    pub deadline: Millis,
    /// Ringbacks placed so far.
    pub attempts: u8,
    /// Whether the fallback was tried.
    pub fallback_tried: bool,
    /// Where it is in its life.
    pub state: CallState,
}

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
    pub const ALL: [LogKind; 17] = [
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

/// A change to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A call to store as it is now.
    Upsert(Box<ParkedCall>),
    /// A call that ended: forget it.
    Remove(ChannelId),
}
