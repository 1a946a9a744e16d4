//! The driver loop every adapter shares: connect, feed the translator, send what it asks,
//! reconnect with backoff. The transport (sockets, wire format) is the only PBX-specific part.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Fence, Held, Output, PbxError, PbxEvent, Translator};
use crate::park::Command;

/// What a transport hands the loop.
pub(crate) enum Incoming<T: Translator> {
    Wire(T::Wire),
    Reply(T::Request, T::Reply),
    /// The connection dropped; why. Requests under way are failed when the driver then
    /// [closes](Transport::close) it, and their failures follow as replies.
    Closed(String),
    /// The answer to [`Transport::probe`]: the PBX is there.
    Alive,
}

/// The I/O half of an adapter.
pub(crate) trait Transport: Send + 'static {
    type Tr: Translator;

    /// Whether a reply proves the event stream alive: true where replies come over the same
    /// connection as the events, in order (the event socket), false where they come over
    /// other connections (ARI's REST, which answers beside a dead websocket).
    const REPLIES_PROVE_LIFE: bool;

    /// Why a connection could not be opened; logged, then tried again.
    type ConnectError: std::error::Error + Send;

    /// What the log calls the connection (`ARI`, `the event socket`).
    fn kind(&self) -> &'static str;

    /// Opens (and authenticates) a connection; requests can be sent afterwards.
    fn connect(&mut self) -> impl Future<Output = Result<(), Self::ConnectError>> + Send;

    /// Starts a request without waiting; its reply comes back through [`Transport::next`].
    /// A transport that cannot send now keeps it or answers it with a failure reply.
    fn send(&mut self, req: <Self::Tr as Translator>::Request);

    /// The next event or reply, in arrival order. Must be cancel-safe; pends while there is
    /// nothing to wait for.
    fn next(&mut self) -> impl Future<Output = Incoming<Self::Tr>> + Send;

    /// Asks the PBX for a sign of life over the connection (a websocket ping, a cheap
    /// command); the answer comes back as [`Incoming::Alive`].
    fn probe(&mut self);

    /// Writes to the PBX only while `fence` is open. Checked where the bytes are written (a
    /// writer task, a request's own future, a wake-up connection), not only where a request
    /// is handed over: a process frozen between the two would write after its lease ran out.
    fn fence(&mut self, fence: Fence);

    /// Drops the connection, and fails every request sent over it or waiting to be: their
    /// failures come back through [`Transport::next`] (a request the PBX may have carried out
    /// is reconciled by the next connection's listing, not retried).
    fn close(&mut self);
}

const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// A PBX back after an outage is found within this (plus the connection's own time): keeps
/// the recovery of any outage within 10 s. A refused connection costs the PBX nothing.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
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
    held: Held,
    fence: Fence,
) -> Result<(), PbxError> {
    let mut backoff = BACKOFF_MIN;
    tp.fence(fence.clone());
    let fenced = |tp: &mut T| {
        tp.close();
        warn!(
            pbx = pool,
            "lease lost: {} connection dropped, nothing more sent",
            tp.kind()
        );
        Err(PbxError::Fenced { pbx: pool.into() })
    };
    loop {
        if !fence.valid() {
            return fenced(&mut tp);
        }
        match tp.connect().await {
            Ok(()) => {
                backoff = BACKOFF_MIN;
                let mut out = Output::default();
                tr.on_connect(held.snapshot(), &mut out);
                match flush(pool, &mut tp, &events, out, &fence).await {
                    Flushed::Yes => {}
                    Flushed::ServiceGone => return Ok(()),
                    Flushed::Fenced => return fenced(&mut tp),
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
                            // The event socket's replies share its connection: while a slow
                            // command (a listing of thousands of channels) is answered, the
                            // replies before it are the sign of life, not a probe stuck behind it.
                            Incoming::Wire(w) => {
                                heard = Instant::now();
                                probing = false;
                                tr.on_wire(w, &mut out);
                            }
                            Incoming::Alive => {
                                heard = Instant::now();
                                probing = false;
                            }
                            Incoming::Reply(req, rep) => {
                                if T::REPLIES_PROVE_LIFE {
                                    heard = Instant::now();
                                    probing = false;
                                }
                                tr.on_reply(req, rep, &mut out);
                            }
                            Incoming::Closed(reason) => break reason,
                        },
                        cmd = commands.recv() => match cmd {
                            Some(c) => tr.on_command(c, &mut out),
                            None if fence.valid() => return Ok(()),
                            None => return fenced(&mut tp),
                        },
                        _ = fence.closed_now() => return fenced(&mut tp),
                        _ = tokio::time::sleep_until(check) => {
                            // Woken from a freeze, this and the fence's end are both due, in
                            // either order: no probe goes out past the end.
                            if !fence.valid() {
                                return fenced(&mut tp);
                            }
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
                    match flush(pool, &mut tp, &events, out, &fence).await {
                        Flushed::Yes => {}
                        Flushed::ServiceGone => return Ok(()),
                        Flushed::Fenced => return fenced(&mut tp),
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
                _ = fence.closed_now() => return fenced(&mut tp),
                inc = tp.next() => match inc {
                    Incoming::Wire(w) => tr.on_wire(w, &mut out),
                    Incoming::Reply(req, rep) => tr.on_reply(req, rep, &mut out),
                    Incoming::Closed(_) | Incoming::Alive => {}
                },
                cmd = commands.recv() => match cmd {
                    Some(c) => tr.on_command(c, &mut out),
                    None if fence.valid() => return Ok(()),
                    None => return fenced(&mut tp),
                },
            }
            match flush(pool, &mut tp, &events, out, &fence).await {
                Flushed::Yes => {}
                Flushed::ServiceGone => return Ok(()),
                Flushed::Fenced => return fenced(&mut tp),
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// What became of a flush.
enum Flushed {
    Yes,
    /// The service is gone.
    ServiceGone,
    /// The lease ran out: nothing was sent.
    Fenced,
}

/// Sends the requests first (they are on the latency path), then reports the events. Each
/// request goes out only while the fence is open.
async fn flush<T: Transport>(
    pool: &str,
    tp: &mut T,
    events: &mpsc::Sender<PbxEvent>,
    out: Output<<T::Tr as Translator>::Request>,
    fence: &Fence,
) -> Flushed {
    for r in out.requests {
        if !fence.valid() {
            return Flushed::Fenced;
        }
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
            return Flushed::ServiceGone;
        }
    }
    Flushed::Yes
}

#[cfg(test)]
mod tests {
    use std::collections::{HashSet, VecDeque};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::park::ChannelId;

    /// What the fake transport and translator saw, shared with the test.
    #[derive(Default)]
    struct Seen {
        connects: u32,
        probes: u32,
        /// Replies handed to the translator: (request, ok).
        replies: Vec<(u32, bool)>,
        disconnects: u32,
        /// Requests handed to the transport, in order.
        sent: Vec<u32>,
        closes: u32,
    }

    struct FakeTr(Arc<Mutex<Seen>>);

    impl Translator for FakeTr {
        type Wire = ();
        type Request = u32;
        type Reply = bool;
        fn on_connect(&mut self, _: HashSet<ChannelId>, out: &mut Output<u32>) {
            // Two requests the PBX will never answer on this connection.
            out.request(1);
            out.request(2);
        }
        fn on_disconnect(&mut self) {
            self.0.lock().unwrap().disconnects += 1;
        }
        fn on_wire(&mut self, _: (), _: &mut Output<u32>) {}
        fn on_command(&mut self, _: Command, out: &mut Output<u32>) {
            out.request(7);
        }
        fn on_reply(&mut self, req: u32, ok: bool, _: &mut Output<u32>) {
            self.0.lock().unwrap().replies.push((req, ok));
        }
    }

    /// A PBX whose event stream is dead but whose other requests keep being answered (ARI's
    /// REST beside a silent websocket): a reply every second, no event, no pong.
    struct DeadStream<const LIFE: bool> {
        seen: Arc<Mutex<Seen>>,
        unanswered: Vec<u32>,
        failed: VecDeque<u32>,
    }

    impl<const LIFE: bool> Transport for DeadStream<LIFE> {
        type Tr = FakeTr;
        type ConnectError = std::convert::Infallible;
        const REPLIES_PROVE_LIFE: bool = LIFE;
        fn kind(&self) -> &'static str {
            "fake"
        }
        async fn connect(&mut self) -> Result<(), Self::ConnectError> {
            self.seen.lock().unwrap().connects += 1;
            Ok(())
        }
        fn send(&mut self, req: u32) {
            self.seen.lock().unwrap().sent.push(req);
            self.unanswered.push(req);
        }
        async fn next(&mut self) -> Incoming<FakeTr> {
            if let Some(r) = self.failed.pop_front() {
                return Incoming::Reply(r, false);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            Incoming::Reply(0, true)
        }
        fn probe(&mut self) {
            self.seen.lock().unwrap().probes += 1;
        }
        // The fake has no socket: what it is asked to send is what the tests check.
        fn fence(&mut self, _: Fence) {}
        fn close(&mut self) {
            self.seen.lock().unwrap().closes += 1;
            self.failed.extend(self.unanswered.drain(..));
        }
    }

    /// A node whose lease runs out acts on the PBX no more: the connection is dropped when the
    /// fence closes, whatever else is going on, and a command after that is never sent.
    #[tokio::test(start_paused = true)]
    async fn a_closed_fence_drops_the_connection_and_sends_nothing_more() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let tp = DeadStream::<true> {
            seen: seen.clone(),
            unanswered: vec![],
            failed: VecDeque::new(),
        };
        let (ev_tx, _ev_rx) = mpsc::channel(16);
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let fence = Fence::closed();
        let t0 = Instant::now();
        fence.extend_until(t0 + Duration::from_millis(2500));
        let driving = tokio::spawn(drive(
            "p",
            tp,
            FakeTr(seen.clone()),
            ev_tx,
            cmd_rx,
            Held::default(),
            fence.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        cmd_tx
            .send(Command::Hangup {
                channel: ChannelId::new("c1".to_string()),
            })
            .await
            .unwrap();
        let res = tokio::time::timeout(Duration::from_secs(10), driving)
            .await
            .expect("the driver stops when its fence closes")
            .unwrap();
        assert_eq!(t0.elapsed(), Duration::from_millis(2500));
        assert!(matches!(res, Err(PbxError::Fenced { .. })), "{res:?}");
        let _ = cmd_tx
            .send(Command::Hangup {
                channel: ChannelId::new("c2".to_string()),
            })
            .await;
        let s = seen.lock().unwrap();
        assert_eq!(s.sent, vec![1, 2, 7], "the command before the end only");
        assert_eq!((s.connects, s.closes), (1, 1));
    }

    /// A driver whose fence is closed before it starts (a node woken from SIGSTOP after its
    /// lease ran out) does not even connect.
    #[tokio::test(start_paused = true)]
    async fn a_driver_behind_a_closed_fence_never_connects() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let tp = DeadStream::<true> {
            seen: seen.clone(),
            unanswered: vec![],
            failed: VecDeque::new(),
        };
        let (ev_tx, _ev_rx) = mpsc::channel(16);
        let (_cmd_tx, cmd_rx) = mpsc::channel(16);
        let res = drive(
            "p",
            tp,
            FakeTr(seen.clone()),
            ev_tx,
            cmd_rx,
            Held::default(),
            Fence::closed(),
        )
        .await;
        assert!(matches!(res, Err(PbxError::Fenced { .. })), "{res:?}");
        let s = seen.lock().unwrap();
        assert_eq!((s.connects, s.sent.len()), (0, 0));
    }

    /// A node frozen past both its fence's end and its next probe wakes with both due; the
    /// probe never goes out, whichever the driver sees first (each run of `select!` tries its
    /// branches in a random order, hence the 32 runs).
    #[tokio::test(start_paused = true)]
    async fn a_node_woken_past_its_fence_sends_no_probe() {
        for _ in 0..32 {
            let seen = Arc::new(Mutex::new(Seen::default()));
            let tp = DeadStream::<false> {
                seen: seen.clone(),
                unanswered: vec![],
                failed: VecDeque::new(),
            };
            let (ev_tx, _ev_rx) = mpsc::channel(16);
            let (_cmd_tx, cmd_rx) = mpsc::channel(16);
            let fence = Fence::closed();
            fence.extend_until(Instant::now() + Duration::from_millis(2500));
            let driving = tokio::spawn(drive(
                "p",
                tp,
                FakeTr(seen.clone()),
                ev_tx,
                cmd_rx,
                Held::default(),
                fence,
            ));
            tokio::task::yield_now().await;
            // The freeze: the clock jumps past both deadlines while nothing runs.
            tokio::time::advance(QUIET + Duration::from_secs(1)).await;
            let res = driving.await.unwrap();
            assert!(matches!(res, Err(PbxError::Fenced { .. })), "{res:?}");
            assert_eq!(seen.lock().unwrap().probes, 0, "a probe past the fence");
        }
    }

    /// Replies keep coming, but only the event stream says the connection is alive: it is
    /// probed after `QUIET`, given up `PROBE_TIMEOUT` later, and the requests it carried are
    /// failed then, not left to their own timeouts.
    #[tokio::test(start_paused = true)]
    async fn replies_are_no_sign_of_life_and_giving_up_fails_what_was_under_way() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let tp = DeadStream::<false> {
            seen: seen.clone(),
            unanswered: vec![],
            failed: VecDeque::new(),
        };
        let (ev_tx, mut ev_rx) = mpsc::channel(16);
        let (_cmd_tx, cmd_rx) = mpsc::channel(16);
        let t0 = Instant::now();
        tokio::spawn(drive(
            "p",
            tp,
            FakeTr(seen.clone()),
            ev_tx,
            cmd_rx,
            Held::default(),
            Fence::open(),
        ));
        let Ok(Some(PbxEvent::Disconnected { reason })) =
            tokio::time::timeout(Duration::from_secs(60), ev_rx.recv()).await
        else {
            panic!("the dead stream was not given up within a minute");
        };
        assert_eq!(t0.elapsed(), QUIET + PROBE_TIMEOUT, "{reason}");
        {
            let s = seen.lock().unwrap();
            assert_eq!((s.connects, s.probes, s.disconnects), (1, 1, 1));
            // Replies came all along (one a second; the probe's turn may restart a wait), then
            // both requests of the dead connection failed.
            let answered = s.replies.iter().filter(|r| **r == (0, true)).count();
            assert!((4..=6).contains(&answered), "{:?}", s.replies);
        }
        tokio::time::sleep(BACKOFF_MIN / 2).await;
        let s = seen.lock().unwrap();
        assert!(
            s.replies.ends_with(&[(1, false), (2, false)]),
            "{:?}",
            s.replies
        );
    }

    /// Where replies share the events' connection (the event socket), a reply is a sign of
    /// life: a connection answering a long run of commands is not given up.
    #[tokio::test(start_paused = true)]
    async fn on_the_event_socket_replies_are_a_sign_of_life() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let tp = DeadStream::<true> {
            seen: seen.clone(),
            unanswered: vec![],
            failed: VecDeque::new(),
        };
        let (ev_tx, mut ev_rx) = mpsc::channel(16);
        let (_cmd_tx, cmd_rx) = mpsc::channel(16);
        tokio::spawn(drive(
            "p",
            tp,
            FakeTr(seen.clone()),
            ev_tx,
            cmd_rx,
            Held::default(),
            Fence::open(),
        ));
        let got = tokio::time::timeout(Duration::from_secs(60), ev_rx.recv()).await;
        assert!(got.is_err(), "given up while it answered: {got:?}");
        let s = seen.lock().unwrap();
        assert_eq!((s.connects, s.probes, s.disconnects), (1, 0, 0));
        assert!(s.replies.len() >= 59, "{}", s.replies.len());
    }
}
