//! What the ARI translator asks of Asterisk and hears back, in its own terms: no HTTP
//! client's types, so the translator is tested without one and only the driver knows reqwest.

use std::fmt;

use crate::park::ChannelId;

/// A method of ARI's REST interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request has no reply body. `text` is the whole story for the log (method, path,
/// status or cause), as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Asterisk answered with an error status.
    #[error("{text}")]
    Status {
        status: u16,
        message: String,
        text: String,
    },
    /// Never answered: callpark gave the connection up first. Asterisk may or may not have
    /// carried it out; the reconnection's listing says which.
    #[error("{text}")]
    Lost { text: String },
    /// Anything else: Asterisk unreachable or too slow, an answer that cannot be read.
    #[error("{text}")]
    Other { text: String },
}

impl Failure {
    /// An error status, as Asterisk gave it for `method path`.
    pub fn status(method: Verb, path: &str, status: u16, message: &str) -> Failure {
        Failure::Status {
            status,
            message: message.to_string(),
            text: format!("ARI {method} {path}: {status}: {message}"),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Failure::Status { status: 404, .. })
    }

    pub fn is_lost(&self) -> bool {
        matches!(self, Failure::Lost { .. })
    }
}

/// One REST request and what its reply means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Verb,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    /// Channel variables set as the channel is made (an originate's JSON body, `variables`);
    /// mostly none.
    pub variables: Vec<(String, String)>,
    /// Requests with the same key run one after another, in order; different keys run
    /// concurrently. The key is the channel (or device) the request acts on.
    pub key: Option<String>,
    pub tag: Tag,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    /// `GET /bridges`, asked just before the list of channels: callpark's bridges as they are.
    Bridges,
    /// `GET /channels`: its reply is the reconciliation, and what sits in the Stasis
    /// application is adopted.
    List,
    /// A transfer variable of a channel waiting to be reported as a park.
    Var(ChannelId, TransferVar),
    /// A playback; if it cannot start, what should follow it happens at once.
    Play(PlaybackId),
    /// A bridge was created for two channels; they are added next.
    BridgeCreated {
        bridge: String,
        parked: ChannelId,
        other: ChannelId,
    },
    /// An originate; an error means the leg was never placed.
    Originate(ChannelId),
    /// Anything else, for the log.
    Action(&'static str),
}

/// Which transfer variable a lookup reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferVar {
    Blind,
    Attended,
    /// The channel whose Dial forwarded the call here: a phone that deflected it (SIP 302).
    Forwarder,
}

impl TransferVar {
    pub(super) fn name(self) -> &'static str {
        match self {
            TransferVar::Blind => "BLINDTRANSFER",
            TransferVar::Attended => "ATTENDEDTRANSFER",
            TransferVar::Forwarder => "FORWARDERNAME",
        }
    }
}

/// The reply to a request: its body, or why there is none.
pub type Reply = Result<String, Failure>;

/// A playback id (`cp-<channel>-<n>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlaybackId(pub String);
