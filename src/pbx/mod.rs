//! The one interface between callpark and a PBX.
//!
//! An adapter (`asterisk` over ARI, later `freeswitch` over ESL) turns wire events into core
//! [`Event`]s and core [`Command`]s into wire calls. Nothing above this module knows which PBX
//! it drives: the service hands an adapter two channels and runs the core.

pub mod asterisk;

use std::collections::HashSet;
use std::future::Future;

use thiserror::Error;
use tokio::sync::mpsc;

use crate::park::{ChannelId, Command, Event};

/// What an adapter reports to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbxEvent {
    /// (Re)connected. `channels` is every channel the PBX has now; the service reconciles its
    /// parked calls against it (a call whose channel vanished while we were away is ended).
    Connected { channels: HashSet<ChannelId> },
    /// The connection dropped; the adapter reconnects by itself.
    Disconnected { reason: String },
    /// A call event for the core.
    Call(Event),
}

/// An adapter's failure that it cannot recover from by reconnecting.
#[derive(Debug, Error)]
pub enum PbxError {
    #[error("{pbx}: {message}")]
    Fatal { pbx: String, message: String },
}

/// A PBX adapter.
pub trait Pbx: Send + 'static {
    /// The pool this PBX is (its `[[pbx]]` name).
    fn name(&self) -> &str;

    /// Runs until `commands` is closed: connects, reconnects with backoff, sends events, and
    /// carries out commands in the order received.
    fn run(
        self,
        events: mpsc::Sender<PbxEvent>,
        commands: mpsc::Receiver<Command>,
    ) -> impl Future<Output = Result<(), PbxError>> + Send;
}
