//! The socket half of the FreeSWITCH adapter: one TCP connection to the event socket. Commands
//! are pipelined (FreeSWITCH answers them in order, so replies are matched to a FIFO of what
//! was sent); a writer task owns the write half so a burst of commands can never block the
//! reading of events, and the reverse.
//!
//! Beside it, each connection has wake-up connections that get FreeSWITCH to send the main
//! connection's events at once ([`waker`]), and the include's outbound connections hand over
//! the channels of dialled orbits ([`outbound`]). [`open`] makes a connection.

mod open;
mod outbound;
mod waker;

use std::collections::{HashMap, VecDeque};

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Encoder;
use tracing::{debug, warn};

pub(crate) use self::open::{ConnectError, Reader, open};
use self::outbound::Door;
use super::codec::{EslCodec, Outgoing};
use super::model::FsEvent;
use super::translate::{FsTranslator, Reply, Request, Tag};
use crate::pbx::{Fence, Incoming, Transport};

/// Requests kept while disconnected, sent after the next connect; older ones are dropped.
const HELD_MAX: usize = 10_000;

/// What waits for a reply on the main connection, in the order sent.
enum Pending {
    Request(Request),
    /// A liveness probe.
    Probe,
    /// Close this channel's outbound connection once everything before it is answered.
    Release(String),
}

struct Conn {
    reader: Reader,
    writer: mpsc::UnboundedSender<BytesMut>,
    /// Sent, waiting for their reply, in order.
    pending: VecDeque<Pending>,
    /// `Closed` was reported; nothing more is read.
    closed: bool,
    wakers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for w in &self.wakers {
            w.abort();
        }
    }
}

pub(crate) struct EslTransport {
    addr: String,
    password: String,
    conn: Option<Conn>,
    /// Requests that came while there was no connection.
    held: VecDeque<Request>,
    /// Replies decided without FreeSWITCH (a request that could not be sent).
    ready: VecDeque<(Request, Reply)>,
    codec: EslCodec,
    /// Where the include's outbound connections come in (`[[pbx]] outbound`).
    outbound: Option<String>,
    doors_in: Option<mpsc::Receiver<Door>>,
    /// Open outbound connections by channel uuid; dropping the sender closes one.
    doors: HashMap<String, oneshot::Sender<()>>,
    /// Nothing is written to FreeSWITCH once it is closed ([`Transport::fence`]).
    fence: Fence,
}

impl EslTransport {
    pub fn new(addr: &str, password: &str, outbound: Option<&str>) -> EslTransport {
        EslTransport {
            addr: addr.to_string(),
            password: password.to_string(),
            conn: None,
            held: VecDeque::new(),
            ready: VecDeque::new(),
            codec: EslCodec::default(),
            outbound: outbound.map(str::to_string),
            doors_in: None,
            doors: HashMap::new(),
            fence: Fence::open(),
        }
    }

    /// Starts listening for outbound connections, unless it does already (tried again at each
    /// connect: the port may be free by then).
    async fn listen_outbound(&mut self) {
        let Some(addr) = self.outbound.as_deref().filter(|_| self.doors_in.is_none()) else {
            return;
        };
        self.doors_in = outbound::listen(addr, self.fence.clone()).await;
    }

    fn write(&mut self, req: Request) {
        if let Tag::Release(ch) = &req.tag {
            let uuid = ch.as_str().to_string();
            match self
                .conn
                .as_mut()
                .filter(|c| !c.closed && !c.pending.is_empty())
            {
                Some(conn) => conn.pending.push_back(Pending::Release(uuid)),
                None => {
                    self.doors.remove(&uuid);
                }
            }
            return;
        }
        let Some(conn) = self.conn.as_mut().filter(|c| !c.closed) else {
            if self.held.len() >= HELD_MAX {
                if let Some(old) = self.held.pop_front() {
                    self.ready
                        .push_back((old, Reply::Lost("FreeSWITCH unreachable too long".into())));
                }
            }
            self.held.push_back(req);
            return;
        };
        let mut buf = BytesMut::new();
        if let Err(e) = self.codec.encode(&req.out, &mut buf) {
            self.ready.push_back((req, Reply::Lost(e.to_string())));
            return;
        }
        if conn.writer.send(buf).is_err() {
            self.ready
                .push_back((req, Reply::Lost("the connection is closing".into())));
            return;
        }
        conn.pending.push_back(Pending::Request(req));
    }
}

/// Closes the outbound connections released at the front of `pending`.
fn release_front(
    pending: &mut VecDeque<Pending>,
    doors: &mut HashMap<String, oneshot::Sender<()>>,
) {
    while let Some(Pending::Release(_)) = pending.front() {
        if let Some(Pending::Release(uuid)) = pending.pop_front() {
            doors.remove(&uuid);
        }
    }
}

impl Transport for EslTransport {
    type Tr = FsTranslator;
    type ConnectError = ConnectError;
    const REPLIES_PROVE_LIFE: bool = true;

    fn kind(&self) -> &'static str {
        "FreeSWITCH"
    }

    async fn connect(&mut self) -> Result<(), ConnectError> {
        self.close();
        self.listen_outbound().await;
        let (reader, mut w) = open(&self.addr, &self.password).await?;
        let (tx, mut rx) = mpsc::unbounded_channel::<BytesMut>();
        let fence = self.fence.clone();
        tokio::spawn(async move {
            while let Some(mut buf) = rx.recv().await {
                // Everything queued meanwhile goes out in one write.
                while let Ok(more) = rx.try_recv() {
                    buf.extend_from_slice(&more);
                }
                // The lease ran out (the process may have been frozen since the request was
                // handed over): the write half closes with this task, unwritten.
                if !fence.valid() {
                    debug!("event socket write dropped: the lease ran out");
                    return;
                }
                if let Err(e) = w.write_all(&buf).await {
                    debug!("event socket write: {e}");
                    return;
                }
            }
        });
        let wakers = waker::start(&self.addr, &self.password, &tx, &self.fence);
        self.conn = Some(Conn {
            reader,
            writer: tx,
            pending: VecDeque::new(),
            closed: false,
            wakers,
        });
        Ok(())
    }

    fn send(&mut self, req: Request) {
        self.write(req);
    }

    async fn next(&mut self) -> Incoming<FsTranslator> {
        loop {
            if let Some((req, rep)) = self.ready.pop_front() {
                return Incoming::Reply(req, rep);
            }
            // What was held while disconnected goes out behind the connection's own setup.
            if self.conn.as_ref().is_some_and(|c| !c.closed) && !self.held.is_empty() {
                let held = std::mem::take(&mut self.held);
                for r in held {
                    self.write(r);
                }
                continue;
            }
            let Some(conn) = self.conn.as_mut().filter(|c| !c.closed) else {
                return std::future::pending().await;
            };
            let door = async {
                match self.doors_in.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let frame = tokio::select! {
                biased;
                f = conn.reader.next() => f,
                d = door => {
                    let Some((ev, release)) = d else {
                        self.doors_in = None;
                        continue;
                    };
                    if let Some(uuid) = ev.uuid.clone() {
                        self.doors.insert(uuid, release);
                        return Incoming::Wire(ev);
                    }
                    continue;
                }
            };
            let frame = match frame {
                Some(Ok(f)) => f,
                Some(Err(e)) => {
                    conn.closed = true;
                    return Incoming::Closed(format!("malformed frame from FreeSWITCH: {e}"));
                }
                None => {
                    conn.closed = true;
                    return Incoming::Closed("FreeSWITCH closed the event socket".into());
                }
            };
            match frame.content_type() {
                "command/reply" | "api/response" => {
                    let front = conn.pending.pop_front();
                    release_front(&mut conn.pending, &mut self.doors);
                    match front {
                        Some(Pending::Request(req)) => {
                            return Incoming::Reply(
                                req,
                                Reply::Text(frame.reply_text().into_owned()),
                            );
                        }
                        Some(Pending::Probe) => return Incoming::Alive,
                        Some(Pending::Release(_)) | None => {
                            warn!("a reply nobody asked for: {}", frame.reply_text())
                        }
                    }
                }
                "text/event-json" | "text/event-plain" => match FsEvent::from_frame(&frame) {
                    Ok(ev) => return Incoming::Wire(ev),
                    Err(e) => warn!(
                        "undecodable event ({e}): {}",
                        frame.body_text().chars().take(200).collect::<String>()
                    ),
                },
                "text/disconnect-notice" => {
                    conn.closed = true;
                    return Incoming::Closed(format!(
                        "FreeSWITCH ended the session: {}",
                        frame.body_text().trim()
                    ));
                }
                other => debug!("ignored frame of type {other:?}"),
            }
        }
    }

    fn fence(&mut self, fence: Fence) {
        self.fence = fence;
    }

    fn probe(&mut self) {
        // `api uptime`: answered by the event socket's own thread, costs FreeSWITCH nothing.
        let Some(conn) = self.conn.as_mut().filter(|c| !c.closed) else {
            return;
        };
        let mut buf = BytesMut::new();
        if self
            .codec
            .encode(&Outgoing::new("api uptime"), &mut buf)
            .is_ok()
            && conn.writer.send(buf).is_ok()
        {
            conn.pending.push_back(Pending::Probe);
        }
    }

    fn close(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // The writer task ends with its channel; replies that will never come are lost.
            // Outbound connections go too: their channels go on into `park`, where the next
            // connection's listing finds them.
            self.doors.clear();
            let reqs = std::mem::take(&mut conn.pending)
                .into_iter()
                .filter_map(|p| match p {
                    Pending::Request(r) => Some(r),
                    _ => None,
                });
            for req in reqs {
                self.ready.push_back((
                    req,
                    Reply::Lost("the event socket connection dropped".into()),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::broadcast;

    use super::waker::WAKERS;
    use super::*;
    use crate::park::ChannelId;

    /// What the fake event socket saw.
    #[derive(Default)]
    struct Seen {
        wakers: usize,
        nudges: usize,
        /// The first line of each command the main connection sent.
        commands: Vec<String>,
        /// Main connections whose writing side callpark closed.
        ends: usize,
    }

    /// An event socket that behaves as mod_event_socket does when its connection threads
    /// never time out of their poll: a connection gets its queued events only once it has
    /// received a byte. Wake-up connections (`event plain`) are treated the same, but the
    /// test's events reach them at once, as a wake-up connection whose turn has come.
    async fn fake_event_socket(
        events: broadcast::Sender<String>,
        seen: Arc<Mutex<Seen>>,
    ) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (sock, _) = listener.accept().await.unwrap();
                let (events, seen) = (events.subscribe(), seen.clone());
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r).lines();
                    let mut events = events;
                    w.write_all(b"Content-Type: auth/request\n\n")
                        .await
                        .unwrap();
                    let (mut waker, mut command, mut queued) = (false, Vec::new(), Vec::new());
                    loop {
                        tokio::select! {
                            line = lines.next_line() => {
                                let Ok(Some(line)) = line else {
                                    if !waker {
                                        seen.lock().unwrap().ends += 1;
                                    }
                                    return;
                                };
                                if !line.is_empty() {
                                    command.push(line);
                                    continue;
                                }
                                if command.is_empty() {
                                    // A byte between frames: the thread wakes, sends its queue.
                                    if !waker {
                                        seen.lock().unwrap().nudges += 1;
                                    }
                                    for body in queued.drain(..) {
                                        let body: String = body;
                                        let head = format!(
                                            "Content-Length: {}\nContent-Type: text/event-json\n\n",
                                            body.len()
                                        );
                                        w.write_all(head.as_bytes()).await.unwrap();
                                        w.write_all(body.as_bytes()).await.unwrap();
                                    }
                                    continue;
                                }
                                if command[0].starts_with("event plain") {
                                    waker = true;
                                    seen.lock().unwrap().wakers += 1;
                                }
                                if !waker && !command[0].starts_with("auth") {
                                    seen.lock().unwrap().commands.push(command[0].clone());
                                }
                                command.clear();
                                w.write_all(b"Content-Type: command/reply\nReply-Text: +OK\n\n")
                                    .await
                                    .unwrap();
                            }
                            ev = events.recv() => {
                                let Ok(body) = ev else { return };
                                if waker {
                                    let head = format!(
                                        "Content-Length: {}\nContent-Type: text/event-plain\n\n",
                                        body.len()
                                    );
                                    w.write_all(head.as_bytes()).await.unwrap();
                                    w.write_all(body.as_bytes()).await.unwrap();
                                } else {
                                    queued.push(body);
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn an_event_heard_by_a_wake_up_connection_wakes_the_main_connection() {
        let (events, _) = broadcast::channel(16);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let addr = fake_event_socket(events.clone(), seen.clone()).await;
        let mut esl = EslTransport::new(&addr, "ClueCon", None);
        esl.connect()
            .await
            .expect("connects to the fake event socket");
        esl.send(Request {
            out: Outgoing::new("event json CHANNEL_PARK"),
            tag: Tag::Setup,
        });
        let guard = Duration::from_secs(10);
        match tokio::time::timeout(guard, esl.next()).await.unwrap() {
            Incoming::Reply(req, Reply::Text(t)) => {
                assert_eq!(req.out, Outgoing::new("event json CHANNEL_PARK"));
                assert!(t.starts_with("+OK"), "{t}");
            }
            _ => panic!("the subscription's reply first"),
        }
        // Every wake-up connection subscribed before the event is fired.
        tokio::time::timeout(guard, async {
            while seen.lock().unwrap().wakers < WAKERS as usize {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the wake-up connections subscribe");
        events
            .send(r#"{"Event-Name":"CHANNEL_PARK","Unique-ID":"u-1"}"#.to_string())
            .unwrap();
        // The main connection would hold the event forever without a nudge; the guard only
        // turns that hang into a failure.
        match tokio::time::timeout(guard, esl.next()).await {
            Ok(Incoming::Wire(ev)) => {
                assert_eq!(ev.name, "CHANNEL_PARK");
                assert_eq!(ev.uuid.as_deref(), Some("u-1"));
            }
            Ok(_) => panic!("the event, nothing else"),
            Err(_) => panic!("the main connection was never woken for the event"),
        }
        assert!(seen.lock().unwrap().nudges >= 1);
        // The wake-up connections end with the main connection.
        esl.close();
    }

    /// A request handed over while the lease lasted but written after it ran out (the
    /// process frozen in between) is never written, and neither is a probe: the connection's
    /// writing side closes unwritten.
    #[tokio::test]
    async fn nothing_is_written_to_the_event_socket_once_the_fence_is_closed() {
        let (events, _) = broadcast::channel(16);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let addr = fake_event_socket(events, seen.clone()).await;
        let mut esl = EslTransport::new(&addr, "ClueCon", None);
        let fence = Fence::closed();
        fence.extend_until(tokio::time::Instant::now() + Duration::from_secs(3600));
        esl.fence(fence.clone());
        esl.connect()
            .await
            .expect("connects to the fake event socket");
        esl.send(Request {
            out: Outgoing::new("api status"),
            tag: Tag::Setup,
        });
        let guard = Duration::from_secs(10);
        match tokio::time::timeout(guard, esl.next()).await.unwrap() {
            Incoming::Reply(req, Reply::Text(t)) => {
                assert_eq!(req.out, Outgoing::new("api status"));
                assert!(t.starts_with("+OK"), "{t}");
            }
            _ => panic!("the reply to the request made while the lease lasted"),
        }
        fence.revoke();
        esl.send(Request {
            out: Outgoing::new("api uuid_kill u-1"),
            tag: Tag::Setup,
        });
        esl.probe();
        tokio::time::timeout(guard, async {
            while seen.lock().unwrap().ends == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the writing side closes once the fence is");
        assert_eq!(seen.lock().unwrap().commands, ["api status"]);
        esl.close();
    }

    #[tokio::test]
    async fn an_outbound_connection_reads_its_channel_and_closes_when_released() {
        use tokio::io::AsyncReadExt;
        let (events, _) = broadcast::channel(16);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let addr = fake_event_socket(events, seen).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let outbound = format!("127.0.0.1:{port}");
        let mut esl = EslTransport::new(&addr, "ClueCon", Some(&outbound));
        esl.connect()
            .await
            .expect("connects to the fake event socket");
        // FreeSWITCH's side: the include's `socket` application.
        let mut fs = TcpStream::connect(&outbound)
            .await
            .expect("callpark listens");
        let mut said = [0u8; 9];
        fs.read_exact(&mut said).await.unwrap();
        assert_eq!(&said, b"connect\n\n");
        fs.write_all(
            b"Event-Name: CHANNEL_DATA\nUnique-ID: r-1\nCaller-Destination-Number: 701\nvariable_callpark_action: retrieve\nvariable_callpark_orbit: 701\nContent-Type: command/reply\nReply-Text: %2BOK\nSocket-Mode: static\n\n",
        )
        .await
        .unwrap();
        let guard = Duration::from_secs(10);
        match tokio::time::timeout(guard, esl.next()).await.unwrap() {
            Incoming::Wire(ev) => {
                assert_eq!(ev.name, "CHANNEL_PARK");
                assert!(ev.outbound);
                assert_eq!(ev.uuid.as_deref(), Some("r-1"));
                assert_eq!(ev.callpark_orbit.as_deref(), Some("701"));
            }
            _ => panic!("the channel, as a park event"),
        }
        // Held open until released; nothing is waiting for a reply, so released at once.
        let mut byte = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(200), fs.read(&mut byte))
                .await
                .is_err(),
            "still open before its release"
        );
        esl.send(Request {
            out: Outgoing::new("release r-1"),
            tag: Tag::Release(ChannelId::new("r-1")),
        });
        let n = tokio::time::timeout(guard, fs.read(&mut byte))
            .await
            .expect("closed once released")
            .unwrap();
        assert_eq!(n, 0, "closed, nothing sent");
        esl.close();
    }
}
