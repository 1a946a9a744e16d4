//! The socket half of the FreeSWITCH adapter: one TCP connection to the event socket. Commands
//! are pipelined (FreeSWITCH answers them in order, so replies are matched to a FIFO of what
//! was sent); a writer task owns the write half so a burst of commands can never block the
//! reading of events, and the reverse.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;
use tokio_util::codec::{Encoder, FramedRead};
use tracing::{debug, warn};

use super::codec::{EslCodec, Frame, Outgoing};
use super::model::FsEvent;
use super::translate::{FsTranslator, Reply, Request};
use crate::pbx::{Incoming, Transport};

/// Requests kept while disconnected, sent after the next connect; older ones are dropped.
const HELD_MAX: usize = 10_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

struct Conn {
    reader: FramedRead<OwnedReadHalf, EslCodec>,
    writer: mpsc::UnboundedSender<BytesMut>,
    /// Sent, waiting for their reply, in order; `None` is a liveness probe.
    pending: VecDeque<Option<Request>>,
    /// `Closed` was reported; nothing more is read.
    closed: bool,
}

pub struct EslTransport {
    addr: String,
    password: String,
    conn: Option<Conn>,
    /// Requests that came while there was no connection.
    held: VecDeque<Request>,
    /// Replies decided without FreeSWITCH (a request that could not be sent).
    ready: VecDeque<(Request, Reply)>,
    codec: EslCodec,
}

impl EslTransport {
    pub fn new(addr: &str, password: &str) -> EslTransport {
        EslTransport {
            addr: addr.to_string(),
            password: password.to_string(),
            conn: None,
            held: VecDeque::new(),
            ready: VecDeque::new(),
            codec: EslCodec::default(),
        }
    }

    fn write(&mut self, req: Request) {
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
        conn.pending.push_back(Some(req));
    }
}

/// Reads one frame during the handshake.
async fn handshake_frame(
    reader: &mut FramedRead<OwnedReadHalf, EslCodec>,
) -> Result<Frame, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, reader.next()).await {
        Err(_) => Err("no answer from the event socket".into()),
        Ok(None) => Err("the event socket closed the connection".into()),
        Ok(Some(Err(e))) => Err(format!("malformed frame: {e}")),
        Ok(Some(Ok(f))) => Ok(f),
    }
}

impl Transport for EslTransport {
    type Tr = FsTranslator;

    fn kind(&self) -> &'static str {
        "FreeSWITCH"
    }

    async fn connect(&mut self) -> Result<(), String> {
        self.close();
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| format!("{}: connection timed out", self.addr))?
            .map_err(|e| format!("{}: {e}", self.addr))?;
        // Commands are small and latency is the point: send each at once.
        let _ = stream.set_nodelay(true);
        let (r, mut w) = stream.into_split();
        let mut reader = FramedRead::new(r, EslCodec::default());
        let greeting = handshake_frame(&mut reader).await?;
        if greeting.content_type() != "auth/request" {
            return Err(format!(
                "{} did not greet like an event socket (Content-Type {:?})",
                self.addr,
                greeting.content_type()
            ));
        }
        let mut auth = BytesMut::new();
        self.codec
            .encode(&Outgoing::new(format!("auth {}", self.password)), &mut auth)
            .map_err(|e| e.to_string())?;
        w.write_all(&auth).await.map_err(|e| e.to_string())?;
        let reply = handshake_frame(&mut reader).await?;
        let text = reply.reply_text();
        if !text.starts_with("+OK") {
            return Err(format!(
                "the event socket refused the password ({}); check password / password_env against event_socket.conf.xml",
                text.trim()
            ));
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<BytesMut>();
        tokio::spawn(async move {
            while let Some(mut buf) = rx.recv().await {
                // Everything queued meanwhile goes out in one write.
                while let Ok(more) = rx.try_recv() {
                    buf.extend_from_slice(&more);
                }
                if let Err(e) = w.write_all(&buf).await {
                    debug!("event socket write: {e}");
                    return;
                }
            }
        });
        self.conn = Some(Conn {
            reader,
            writer: tx,
            pending: VecDeque::new(),
            closed: false,
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
            let frame = match conn.reader.next().await {
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
                "command/reply" | "api/response" => match conn.pending.pop_front() {
                    Some(Some(req)) => {
                        return Incoming::Reply(req, Reply::Text(frame.reply_text().into_owned()));
                    }
                    Some(None) => return Incoming::Alive,
                    None => warn!("a reply nobody asked for: {}", frame.reply_text()),
                },
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
            conn.pending.push_back(None);
        }
    }

    fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            // The writer task ends with its channel; replies that will never come are lost.
            for req in conn.pending.into_iter().flatten() {
                self.ready.push_back((
                    req,
                    Reply::Lost("the event socket connection dropped".into()),
                ));
            }
        }
    }
}
