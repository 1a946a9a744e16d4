//! What the translator asks of the event socket, and the answers it gets.

use crate::park::ChannelId;
use crate::pbx::freeswitch::codec::Outgoing;

/// One request to the event socket and what its reply means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub out: Outgoing,
    pub tag: Tag,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    /// Subscriptions: a refusal means the event socket cannot serve callpark.
    Setup,
    /// `show channels as json`: its reply is the reconciliation.
    List,
    /// `uuid_dump <uuid> json` of a channel that may sit in callpark's hands after a
    /// (re)connection: its variables say whether it does.
    Dump(ChannelId),
    /// `uuid_dump <uuid> json` of a call the core holds parked that the listing left out:
    /// whether it still exists (see [`FsTranslator::verify`]).
    Verify(ChannelId),
    /// `uuid_getvar <uuid> channel_name` of the phone that placed a park's loopback call: the
    /// park waits for it to know its parker.
    PlacedBy(ChannelId),
    /// A `bgapi originate`: `-ERR` here means the leg was never placed.
    Originate(ChannelId),
    /// Any other command, for the log.
    Action(&'static str, Option<ChannelId>),
    /// Not sent: the driver closes the channel's outbound connection once everything asked
    /// before it is answered (the bridge set up), which lets its thread go on.
    Release(ChannelId),
}

/// The event socket's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `Reply-Text` of a command/reply, or the body of an api/response.
    Text(String),
    /// Never answered: the connection dropped first.
    Lost(String),
}
