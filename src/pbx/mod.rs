//! The one interface between callpark and a PBX.
//!
//! Every adapter has the same two halves:
//! - a **translator** ([`Translator`]): pure, no sockets, no clock. Wire events and replies go
//!   in; core [`Event`]s and wire requests come out. It holds what the adapter must remember
//!   between events (which channels are answered, which playback ends in a hang-up), typed.
//!   It is unit-tested on captured frames without a PBX.
//! - a **driver** (`Transport` plus `drive`): owns the sockets, sends the translator's
//!   requests, hands back wire events and replies in the order they arrived, reconnects with
//!   backoff. `drive` is the same loop for every PBX.
//!
//! `asterisk` speaks ARI (REST + websocket), `freeswitch` the event socket. Nothing above this
//! module knows which one it drives: the service hands `drive` two channels and runs the core.

pub mod asterisk;
mod driver;
mod fence;
pub mod freeswitch;
pub mod stamp;
pub mod trunk;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use thiserror::Error;
use tokio::sync::mpsc;

use crate::park::{ChannelId, Command, Event};

pub(crate) use driver::{Incoming, Transport, drive};
pub use driver::{PROBE_TIMEOUT, QUIET};
pub use fence::Fence;

/// What an adapter reports to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbxEvent {
    /// (Re)connected. `channels` is every channel the PBX has now; the service reconciles its
    /// parked calls against it (a call whose channel vanished while we were away is ended).
    /// [`PbxEvent::Found`] events follow for the channels sitting in callpark's hands.
    Connected { channels: HashSet<ChannelId> },
    /// The connection dropped; the adapter reconnects by itself.
    Disconnected { reason: String },
    /// A call event for the core.
    Call(Event),
    /// After `Connected`: a channel found in callpark's hands, reported as the event its
    /// arrival would have produced (a park, a retrieve, an answered leg, a bridge). It may
    /// have arrived while callpark could not act (stopped, crashed, cut off), so nobody
    /// else will ever end it. The service hands it to the core like a new event, unless the
    /// store says the call's park ended already (then the channel is hung up).
    Found(Event),
}

/// The channels the core holds parked and nothing more (no leg of callpark's under way for
/// them), kept up to date by the service as it commits. A reconnection need not read those in
/// full to adopt them: with 1,000 calls parked on FreeSWITCH, reading each one (`uuid_dump`)
/// was most of a restart's time, and FreeSWITCH's real-time threads doing it kept callpark
/// itself off the CPU.
#[derive(Debug, Clone, Default)]
pub struct Held(Arc<Mutex<HashSet<ChannelId>>>);

impl Held {
    pub fn new(channels: impl IntoIterator<Item = ChannelId>) -> Held {
        Held(Arc::new(Mutex::new(channels.into_iter().collect())))
    }

    /// The call on `channel` is held (`true`) or not (ended, or has a leg under way).
    pub fn set(&self, channel: &ChannelId, held: bool) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if held {
            s.insert(channel.clone());
        } else {
            s.remove(channel);
        }
    }

    /// What is held now.
    pub fn snapshot(&self) -> HashSet<ChannelId> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// An adapter that cannot start: its configuration is unusable.
#[derive(Debug, Error)]
pub enum PbxError {
    #[error("pbx `{pbx}`: {message}")]
    Config { pbx: String, message: String },
    #[error("pbx `{pbx}`: this node's lease on the pool ran out; it no longer acts on the PBX")]
    Fenced { pbx: String },
}

/// What a translator gives back for one input, in order.
#[derive(Debug)]
pub struct Output<R> {
    pub events: Vec<PbxEvent>,
    pub requests: Vec<R>,
}

impl<R> Default for Output<R> {
    fn default() -> Self {
        Output {
            events: Vec::new(),
            requests: Vec::new(),
        }
    }
}

impl<R> Output<R> {
    pub fn event(&mut self, e: Event) {
        self.events.push(PbxEvent::Call(e));
    }

    /// A call event found on (re)connecting ([`PbxEvent::Found`]).
    pub fn found(&mut self, e: Event) {
        self.events.push(PbxEvent::Found(e));
    }

    /// Takes in what reporting a (re)connection's find gave (`found`), its call events marked
    /// [`PbxEvent::Found`]: a channel found sitting in callpark's hands is reported by the
    /// same code as its arrival, into an output of its own.
    pub fn append_found(&mut self, mut found: Output<R>) {
        self.requests.append(&mut found.requests);
        self.events
            .extend(found.events.into_iter().map(|e| match e {
                PbxEvent::Call(e) => PbxEvent::Found(e),
                other => other,
            }));
    }

    pub fn request(&mut self, r: R) {
        self.requests.push(r);
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.requests.is_empty()
    }
}

/// The pure half of an adapter.
pub trait Translator: Send + 'static {
    /// One decoded event from the PBX.
    type Wire: Send;
    /// One request to the PBX. The driver gives it back with its reply.
    type Request: Send + std::fmt::Debug;
    /// The PBX's answer to a request (or why none came).
    type Reply: Send;

    /// A connection is up: what to ask first (subscriptions, the list of channels whose
    /// reply becomes [`PbxEvent::Connected`]). `held` are the channels the core holds parked
    /// ([`Held`]): found still parked, they need no [`PbxEvent::Found`].
    fn on_connect(&mut self, held: HashSet<ChannelId>, out: &mut Output<Self::Request>);
    /// The connection is gone: forget what only held for it. That is what its
    /// reconciliation used (the held channels given to [`Translator::on_connect`], a listing
    /// not yet reported, what was to be checked against it), the arrivals being read over it
    /// (their requests are abandoned with it, and the next connection's listing finds those
    /// channels again, reported [`PbxEvent::Found`]), and per-channel state that PBX does not
    /// keep across the loss of the connection and the next one's events or listing tell
    /// again. What the PBX keeps and no listing tells again (a playback's follow-up, a bridge
    /// under way, a leg ringing) stays, as does what a reconnection relies on (the memory of
    /// ended channels, lamps sent). Requests abandoned with the connection may still come
    /// back as lost replies afterwards, and find nothing left to undo.
    fn on_disconnect(&mut self);
    fn on_wire(&mut self, ev: Self::Wire, out: &mut Output<Self::Request>);
    fn on_command(&mut self, cmd: Command, out: &mut Output<Self::Request>);
    fn on_reply(&mut self, req: Self::Request, reply: Self::Reply, out: &mut Output<Self::Request>);
}

/// A PBX adapter as the service sees it.
pub trait Pbx: Send + 'static {
    /// The pool this PBX is (its `[[pbx]]` name).
    fn name(&self) -> &str;

    /// Runs until `commands` is closed: connects, reconnects with backoff, sends events, and
    /// carries out commands in the order received. `held` is read at each connection.
    fn run(
        self,
        events: mpsc::Sender<PbxEvent>,
        commands: mpsc::Receiver<Command>,
        held: Held,
    ) -> impl Future<Output = Result<(), PbxError>> + Send;
}

/// The adapter for one `[[pbx]]` entry: its transport and its translator, run by [`drive`].
/// Each PBX module builds its own (`asterisk::adapter`, `freeswitch::adapter`) from the
/// entry, checking what its transport needs.
pub(crate) struct Adapter<T: Transport> {
    name: String,
    transport: T,
    translator: T::Tr,
    fence: Fence,
}

impl<T: Transport> Adapter<T> {
    pub(crate) fn new(name: String, transport: T, translator: T::Tr) -> Adapter<T> {
        Adapter {
            name,
            transport,
            translator,
            fence: Fence::open(),
        }
    }

    /// The adapter acts on the PBX only while `fence` is open (the node holds the pool's
    /// lease).
    pub(crate) fn fenced(mut self, fence: Fence) -> Adapter<T> {
        self.fence = fence;
        self
    }
}

impl<T: Transport> Pbx for Adapter<T> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(
        self,
        events: mpsc::Sender<PbxEvent>,
        commands: mpsc::Receiver<Command>,
        held: Held,
    ) -> Result<(), PbxError> {
        drive(
            &self.name,
            self.transport,
            self.translator,
            events,
            commands,
            held,
            self.fence,
        )
        .await
    }
}
