//! The I/O half of the Asterisk adapter: the events websocket, and REST requests over a small
//! pool of keep-alive connections. Requests on one channel (or device) run in the order they
//! were asked; requests on different ones run concurrently, so a park's music, lamp and
//! announcement do not wait on each other.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use reqwest_websocket::{Message, Upgrade, WebSocket};
use thiserror::Error;
use tracing::warn;

use super::model::decode_event;
use super::rest::{Ari, AriError};
use super::translate::{AriTranslator, Reply, Request};
use super::translate::{Failure, Verb};
use crate::pbx::{Fence, Incoming, Transport};

/// How long opening the events websocket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) struct AriTransport {
    ari: Ari,
    app: String,
    ws: Option<WebSocket>,
    /// Requests under way, by number: kept here (their futures own a copy) so that giving the
    /// connection up can fail each one at once rather than let it wait out the timeout.
    sent: HashMap<u64, Request>,
    inflight: FuturesUnordered<BoxFuture<'static, (u64, Result<String, AriError>)>>,
    seq: u64,
    /// Replies decided without Asterisk (requests failed when the connection was given up).
    ready: VecDeque<(Request, Reply)>,
    /// Per key: requests waiting behind the one in flight (present while one is in flight).
    queues: HashMap<String, VecDeque<Request>>,
    /// A websocket ping is to be sent (see [`Transport::probe`]).
    ping_due: bool,
    /// A REST request timed out: Asterisk stopped answering; the connection is given up
    /// (after that reply is handed on) so the reconnection reconciles.
    failing: Option<String>,
    /// Nothing is sent to Asterisk once it is closed ([`Transport::fence`]).
    fence: Fence,
}

impl AriTransport {
    pub fn new(ari: Ari, app: &str) -> AriTransport {
        AriTransport {
            ari,
            app: app.to_string(),
            ws: None,
            sent: HashMap::new(),
            inflight: FuturesUnordered::new(),
            seq: 0,
            ready: VecDeque::new(),
            queues: HashMap::new(),
            ping_due: false,
            failing: None,
            fence: Fence::open(),
        }
    }

    fn start(&mut self, req: Request) {
        let ari = self.ari.clone();
        self.seq += 1;
        let n = self.seq;
        let (method, path, query) = (http_method(req.method), req.path.clone(), req.query.clone());
        let variables = req.variables.clone();
        self.sent.insert(n, req);
        let fence = self.fence.clone();
        self.inflight.push(Box::pin(async move {
            // Checked as the request is written, not when it was queued: a request started
            // behind another of its key, or before a freeze, must not go out after the lease.
            if !fence.valid() {
                return (n, Err(AriError::Fenced { method, path }));
            }
            let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let reply = ari.call_with(method, &path, &query, &variables).await;
            (n, reply)
        }));
    }

    /// The request done: the next one of its key may go.
    fn done(&mut self, req: &Request) {
        let Some(key) = &req.key else {
            return;
        };
        let next = match self.queues.get_mut(key) {
            Some(q) => q.pop_front(),
            None => return,
        };
        match next {
            Some(r) => self.start(r),
            None => {
                self.queues.remove(key);
            }
        }
    }
}

/// Why the events websocket could not be opened.
#[derive(Debug, Error)]
pub(crate) enum ConnectError {
    /// Shown with its causes: the upgrade's own message alone hides why.
    #[error("{}", error_chain(.0))]
    Websocket(reqwest_websocket::Error),
    #[error("no answer to the websocket upgrade in {0:?}")]
    Timeout(Duration),
}

/// An error with its causes: reqwest's own message alone ("error sending request") hides why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Transport for AriTransport {
    type Tr = AriTranslator;
    type ConnectError = ConnectError;
    const REPLIES_PROVE_LIFE: bool = false;

    fn kind(&self) -> &'static str {
        "ARI"
    }

    async fn connect(&mut self) -> Result<(), ConnectError> {
        // Requests of a connection that went silent may sit on dead keep-alive sockets.
        self.ari.renew();
        let (user, pass) = self.ari.credentials();
        let open = async {
            let resp = self
                .ari
                .http()
                .get(self.ari.events_url(&self.app))
                .basic_auth(user, Some(pass))
                .upgrade()
                .send()
                .await
                .map_err(ConnectError::Websocket)?;
            resp.into_websocket().await.map_err(ConnectError::Websocket)
        };
        // A PBX (or path) that takes the connection and never answers must not hold the
        // reconnection for the client's 10 s request timeout: the next try may find it back.
        let ws = tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .map_err(|_| ConnectError::Timeout(CONNECT_TIMEOUT))??;
        self.ws = Some(ws);
        Ok(())
    }

    fn send(&mut self, req: Request) {
        match req.key.clone() {
            Some(key) => match self.queues.get_mut(&key) {
                Some(q) => q.push_back(req),
                None => {
                    self.queues.insert(key, VecDeque::new());
                    self.start(req);
                }
            },
            None => self.start(req),
        }
    }

    async fn next(&mut self) -> Incoming<AriTranslator> {
        if let Some(why) = self.failing.take() {
            self.ws = None;
            return Incoming::Closed(why);
        }
        if std::mem::take(&mut self.ping_due) && self.fence.valid() {
            if let Some(ws) = self.ws.as_mut() {
                if let Err(e) = ws
                    .send(Message::Ping(Bytes::from_static(b"callpark")))
                    .await
                {
                    self.ws = None;
                    return Incoming::Closed(format!("websocket error: {}", error_chain(&e)));
                }
            }
        }
        if let Some((req, reply)) = self.ready.pop_front() {
            return Incoming::Reply(req, reply);
        }
        loop {
            let got = {
                let (slot, inflight) = (&mut self.ws, &mut self.inflight);
                let ws = async move {
                    match slot.as_mut() {
                        Some(ws) => ws.next().await,
                        None => std::future::pending().await,
                    }
                };
                let rest = async move {
                    if inflight.is_empty() {
                        std::future::pending().await
                    } else {
                        inflight.next().await
                    }
                };
                // REST replies first: they may unblock the next request of their key.
                tokio::select! {
                    biased;
                    Some((req, reply)) = rest => Ok((req, reply)),
                    msg = ws => Err(msg),
                }
            };
            match got {
                Ok((n, reply)) => {
                    let Some(req) = self.sent.remove(&n) else {
                        continue;
                    };
                    self.done(&req);
                    if let Err(e) = &reply {
                        if e.is_timeout() && self.ws.is_some() {
                            self.failing = Some(format!("Asterisk stopped answering: {e}"));
                        }
                    }
                    return Incoming::Reply(req, reply.map_err(failure));
                }
                Err(Some(Ok(Message::Pong(_)))) => return Incoming::Alive,
                Err(Some(Ok(Message::Text(t)))) => match decode_event(&t) {
                    Ok(ev) => return Incoming::Wire(ev),
                    Err(e) => warn!(
                        "undecodable ARI event ({e}): {}",
                        t.chars().take(200).collect::<String>()
                    ),
                },
                Err(Some(Ok(Message::Close { .. })) | None) => {
                    self.ws = None;
                    return Incoming::Closed("websocket closed".into());
                }
                Err(Some(Ok(_))) => {}
                Err(Some(Err(e))) => {
                    self.ws = None;
                    return Incoming::Closed(format!("websocket error: {}", error_chain(&e)));
                }
            }
        }
    }

    fn probe(&mut self) {
        self.ping_due = true;
    }

    fn fence(&mut self, fence: Fence) {
        self.fence = fence;
    }

    /// Also fails every request under way or waiting its turn: on a silenced connection each
    /// would otherwise wait out the client's timeout, and those queued behind it (the
    /// reconnection's own listing among them) after it.
    fn close(&mut self) {
        self.ws = None;
        self.inflight = FuturesUnordered::new();
        let mut sent: Vec<(u64, Request)> = self.sent.drain().collect();
        sent.sort_by_key(|(n, _)| *n);
        let queued = std::mem::take(&mut self.queues).into_values().flatten();
        for req in sent.into_iter().map(|(_, r)| r).chain(queued) {
            let reply = Err(Failure::Lost {
                text: format!(
                    "ARI {} {}: abandoned: the ARI connection was given up",
                    req.method, req.path
                ),
            });
            self.ready.push_back((req, reply));
        }
    }
}

/// The HTTP method of a translator's request.
fn http_method(v: Verb) -> reqwest::Method {
    match v {
        Verb::Get => reqwest::Method::GET,
        Verb::Post => reqwest::Method::POST,
        Verb::Put => reqwest::Method::PUT,
        Verb::Delete => reqwest::Method::DELETE,
    }
}

/// A failed request as the translator hears it: the status Asterisk gave, or the story.
fn failure(e: AriError) -> Failure {
    match &e {
        AriError::Status {
            status, message, ..
        } => Failure::Status {
            status: status.as_u16(),
            message: message.clone(),
            text: e.to_string(),
        },
        // Not sent at all: like a request abandoned with its connection, which the fence
        // drops next.
        AriError::Fenced { .. } => Failure::Lost {
            text: e.to_string(),
        },
        _ => Failure::Other {
            text: e.to_string(),
        },
    }
}
