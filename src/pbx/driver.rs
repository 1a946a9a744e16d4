//! The driver loop every adapter shares: connect, feed the translator, send what it asks,
//! reconnect with backoff. The transport (sockets, wire format) is the only PBX-specific part.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Output, PbxError, PbxEvent, Translator};
use crate::park::Command;

/// What a transport hands the loop.
pub enum Incoming<T: Translator> {
    Wire(T::Wire),
    Reply(T::Request, T::Reply),
    /// The connection dropped; why. Requests under way are failed when the driver then
    /// [closes](Transport::close) it, and their failures follow as replies.
    Closed(String),
    /// The answer to [`Transport::probe`]: the PBX is there.
    Alive,
}

/// The I/O half of an adapter.
pub trait Transport: Send + 'static {
    type Tr: Translator;

    /// What the log calls the connection (`ARI`, `the event socket`).
    fn kind(&self) -> &'static str;

    /// Opens (and authenticates) a connection; requests can be sent afterwards.
    fn connect(&mut self) -> impl Future<Output = Result<(), String>> + Send;

    /// Starts a request without waiting; its reply comes back through [`Transport::next`].
    /// A transport that cannot send now keeps it or answers it with a failure reply.
    fn send(&mut self, req: <Self::Tr as Translator>::Request);

    /// The next event or reply, in arrival order. Must be cancel-safe; pends while there is
    /// nothing to wait for.
    fn next(&mut self) -> impl Future<Output = Incoming<Self::Tr>> + Send;

    /// Asks the PBX for a sign of life over the connection (a websocket ping, a cheap
    /// command); the answer comes back as [`Incoming::Alive`].
    fn probe(&mut self);

    /// Drops the connection, and fails every request sent over it or waiting to be: their
    /// failures come back through [`Transport::next`] (a request the PBX may have carried out
    /// is reconciled by the next connection's listing, not retried).
    fn close(&mut self);
}

const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// An event stream quiet this long is probed...
pub const QUIET: Duration = Duration::from_secs(3);
/// ...and given up if the probe is not answered in this time: a PBX that hangs (or a network
/// path that silently drops everything) is noticed within `QUIET + PROBE_TIMEOUT` and
/// reconnected, and the reconnection reconciles every call. Both PBXes answer a probe (a
/// websocket ping, `api uptime`) from their socket's own thread, in milliseconds even when
/// busy, so 3 s is ample; together with the reconnection this keeps recovery under 10 s.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs an adapter until `commands` closes (the service stopped).
pub async fn drive<T: Transport>(
    pool: &str,
    mut tp: T,
    mut tr: T::Tr,
    events: mpsc::Sender<PbxEvent>,
    mut commands: mpsc::Receiver<Command>,
) -> Result<(), PbxError> {
    let mut backoff = BACKOFF_MIN;
    loop {
        match tp.connect().await {
            Ok(()) => {
                backoff = BACKOFF_MIN;
                let mut out = Output::default();
                tr.on_connect(&mut out);
                if !flush(pool, &mut tp, &events, out).await {
                    return Ok(());
                }
                let mut heard = Instant::now();
                let mut probing = false;
                let reason = loop {
                    let mut out = Output::default();
                    let check = heard
                        + if probing {
                            QUIET + PROBE_TIMEOUT
                        } else {
                            QUIET
                        };
                    tokio::select! {
                        inc = tp.next() => match inc {
                            // Only the event stream says the connection is alive: REST replies
                            // (ARI's own HTTP connections) keep coming over a dead websocket.
                            Incoming::Wire(w) => {
                                heard = Instant::now();
                                probing = false;
                                tr.on_wire(w, &mut out);
                            }
                            Incoming::Alive => {
                                heard = Instant::now();
                                probing = false;
                            }
                            Incoming::Reply(req, rep) => tr.on_reply(req, rep, &mut out),
                            Incoming::Closed(reason) => break reason,
                        },
                        cmd = commands.recv() => match cmd {
                            Some(c) => tr.on_command(c, &mut out),
                            None => return Ok(()),
                        },
                        _ = tokio::time::sleep_until(check) => {
                            if probing {
                                break format!(
                                    "{} did not answer for {:?}",
                                    tp.kind(),
                                    QUIET + PROBE_TIMEOUT
                                );
                            }
                            tp.probe();
                            probing = true;
                        }
                    }
                    if !flush(pool, &mut tp, &events, out).await {
                        return Ok(());
                    }
                };
                tp.close();
                tr.on_disconnect();
                warn!(pbx = pool, %reason, "{} connection lost; reconnecting", tp.kind());
                if events
                    .send(PbxEvent::Disconnected { reason })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            Err(e) => {
                warn!(
                    pbx = pool,
                    "cannot connect to {} ({e}); retrying in {backoff:?}",
                    tp.kind()
                );
            }
        }
        // Keep taking commands and replies while waiting: a transport may still carry some
        // (ARI's REST works without the websocket) and keeps the rest for the next connection.
        let wait = tokio::time::sleep(backoff);
        tokio::pin!(wait);
        loop {
            let mut out = Output::default();
            tokio::select! {
                _ = &mut wait => break,
                inc = tp.next() => match inc {
                    Incoming::Wire(w) => tr.on_wire(w, &mut out),
                    Incoming::Reply(req, rep) => tr.on_reply(req, rep, &mut out),
                    Incoming::Closed(_) | Incoming::Alive => {}
                },
                cmd = commands.recv() => match cmd {
                    Some(c) => tr.on_command(c, &mut out),
                    None => return Ok(()),
                },
            }
            if !flush(pool, &mut tp, &events, out).await {
                return Ok(());
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Sends the requests first (they are on the latency path), then reports the events.
/// False when the service is gone.
async fn flush<T: Transport>(
    pool: &str,
    tp: &mut T,
    events: &mpsc::Sender<PbxEvent>,
    out: Output<<T::Tr as Translator>::Request>,
) -> bool {
    for r in out.requests {
        tp.send(r);
    }
    for e in out.events {
        if let PbxEvent::Connected { channels } = &e {
            info!(
                pbx = pool,
                channels = channels.len(),
                "connected to {}",
                tp.kind()
            );
        }
        if events.send(e).await.is_err() {
            return false;
        }
    }
    true
}
