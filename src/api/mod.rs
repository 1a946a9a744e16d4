//! The admin HTTP API of `callpark run` (`[api]`): parked calls, orbits and settings as JSON,
//! the event log as Server-Sent Events, and Prometheus metrics. Every request needs the bearer
//! token; one without it (or with a wrong one) gets 401 and is logged without the token.
//!
//! It reads the store, which every pool writes each step to before the PBX acts on it, so what
//! the API shows is what a restart would resume; it never talks to a PBX.

pub mod cpu;
mod gzip;
pub mod webhook;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use thiserror::Error;

use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{info, warn};

use crate::config::Config;
use crate::orbit::Orbit;
use crate::park::{Destination, GENERAL_LOT, OperatorError, ParkedCall, Target};
use crate::service::Control;
use crate::service::health::Health;
use crate::store::{LogRow, Store, StoreError, WAIT_BUCKETS_MS, WaitBucket};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    store: Store,
    cfg: Arc<Config>,
    token: Arc<str>,
    feed: broadcast::Sender<Arc<Batch>>,
    /// Each running pool's operator requests.
    pools: Arc<HashMap<String, mpsc::Sender<Control>>>,
    /// The pools' PBX connections, for the metrics.
    health: Option<Health>,
    /// The parked calls as last read, decoded and rendered, with the store generation they
    /// were read at: a list asked for many times a second between two commits is read from
    /// the store and decoded once.
    snapshot: Arc<std::sync::Mutex<Option<Arc<Snapshot>>>>,
}

/// The parked calls at one store generation.
struct Snapshot {
    generation: i64,
    calls: Vec<(String, ParkedCall)>,
    /// `GET /api/v1/parked`'s body.
    json: bytes::Bytes,
}

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("[api] listen {addr}: {source} (is another process on it? change [api] listen)")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the event log cannot be read at start ({0}); the API is not started rather than replay the whole log to every subscriber and webhook"
    )]
    StartLog(StoreError),
    #[error("webhooks: no HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("the event feed stopped: {0}")]
    Feed(String),
}

/// A request's failure as the client sees it: a status and a message naming what to fix.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        warn!("API: store: {e}");
        Failure(StatusCode::INTERNAL_SERVER_ERROR, format!("store: {e}"))
    }
}

/// One tick of the feed: the log entries that came since the last tick, with their
/// Server-Sent-Events frames rendered once and laid end to end. A thousand subscribers share
/// one serialization, and each gets one write a tick rather than one per entry.
#[derive(Debug)]
pub struct Batch {
    /// The entries, in log order.
    pub rows: Vec<LogRow>,
    /// Their frames, end to end.
    frames: bytes::Bytes,
    /// Where each entry's frame starts in `frames`.
    starts: Vec<usize>,
    /// All the frames as one gzip segment, made once for every subscriber that takes gzip.
    gz: std::sync::OnceLock<bytes::Bytes>,
}

impl Batch {
    pub fn new(rows: Vec<LogRow>) -> Batch {
        let mut frames = Vec::new();
        let mut starts = Vec::with_capacity(rows.len());
        for r in &rows {
            starts.push(frames.len());
            frames.extend_from_slice(&frame(r));
        }
        Batch {
            rows,
            frames: frames.into(),
            starts,
            gz: std::sync::OnceLock::new(),
        }
    }

    /// The frames of the entries after entry `last`, if there are any.
    fn after(&self, last: i64) -> Option<bytes::Bytes> {
        let i = self.rows.partition_point(|r| r.id <= last);
        (i < self.rows.len()).then(|| self.frames.slice(self.starts[i]..))
    }

    /// [`Batch::after`] as a gzip segment: the whole batch (what nearly every subscriber
    /// wants) is compressed once and shared; a part of it, for a subscriber that joined in
    /// the middle of it, is compressed for that one.
    fn after_gz(&self, last: i64) -> Option<bytes::Bytes> {
        let i = self.rows.partition_point(|r| r.id <= last);
        match i {
            0 if !self.rows.is_empty() => {
                Some(self.gz.get_or_init(|| gzip::segment(&self.frames)).clone())
            }
            _ => self.after(last).map(|b| gzip::segment(&b)),
        }
    }

    /// The id of the batch's last entry.
    fn last_id(&self) -> Option<i64> {
        self.rows.last().map(|r| r.id)
    }
}

/// The SSE frame of a log entry.
fn frame(r: &LogRow) -> Vec<u8> {
    format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        r.id,
        r.kind,
        event_json(r)
    )
    .into_bytes()
}

/// How often the event feed looks for new log entries while the log is quiet: a lone park
/// reaches the console and the webhooks within this.
const FEED_EVERY: Duration = Duration::from_millis(200);
/// The least time between two batches: while entries keep coming they go out once a second,
/// so a thousand subscribers cost a thousand writes a second however fast calls are parked.
const FEED_GAP: Duration = Duration::from_secs(1);

impl ApiState {
    /// The state and the task that feeds the event stream from the store's log.
    pub fn new(store: Store, cfg: Arc<Config>, token: String) -> ApiState {
        // At one batch a tick, this is minutes of entries for a subscriber that stalls.
        let (feed, _) = broadcast::channel(1024);
        ApiState {
            store,
            cfg,
            token: token.into(),
            feed,
            pools: Arc::default(),
            health: None,
            snapshot: Arc::default(),
        }
    }

    /// The parked calls now: the snapshot when no commit came since it was made, else read
    /// and decoded again.
    async fn parked_now(&self) -> Result<Arc<Snapshot>, StoreError> {
        // Read before the list, so the list is at least as new as the number it is kept
        // under: a commit in between makes the next request read it again, never the reverse.
        let generation = self.store.generation().await?;
        let slot = || self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = slot().as_ref().filter(|p| p.generation == generation) {
            return Ok(p.clone());
        }
        let calls = self.store.parked(None).await?;
        let views: Vec<CallView> = calls
            .iter()
            .map(|(pool, c)| call_json(&self.cfg, pool, c))
            .collect();
        let json = serde_json::to_vec(&views).expect("parked calls serialize");
        let fresh = Arc::new(Snapshot {
            generation,
            calls,
            json: json.into(),
        });
        let mut kept = slot();
        if kept.as_ref().is_none_or(|p| p.generation <= generation) {
            *kept = Some(fresh.clone());
        }
        Ok(fresh)
    }

    /// The pools' liveness, whose PBX connections the metrics show.
    pub fn with_health(mut self, health: Health) -> ApiState {
        self.health = Some(health);
        self
    }

    /// Where operator requests (retrieve to, hang up) go: each pool's control channel.
    pub fn with_pools(mut self, pools: HashMap<String, mpsc::Sender<Control>>) -> ApiState {
        self.pools = Arc::new(pools);
        self
    }

    /// Reads the log as it grows, from after entry `last`, and hands each tick's new entries
    /// to every subscriber of the stream. One reader for all of them, so a thousand
    /// subscribers cost the store one query a tick.
    pub async fn run_feed(self, mut last: i64) {
        loop {
            let pause = match self.store.log_after(last, 1000).await {
                Ok(rows) if rows.is_empty() => FEED_EVERY,
                Ok(rows) => {
                    let batch = Batch::new(rows);
                    last = batch.last_id().unwrap_or(last);
                    // No subscriber is fine: the entries are in the store for a resume.
                    let _ = self.feed.send(Arc::new(batch));
                    FEED_GAP
                }
                Err(e) => {
                    warn!("API event feed: {e}");
                    FEED_GAP
                }
            };
            tokio::time::sleep(pause).await;
        }
    }
}

/// The routes, behind the bearer token.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/parked", get(parked))
        .route("/api/v1/parked/{orbit}", get(parked_one).delete(hang_up))
        .route("/api/v1/parked/{orbit}/retrieve", post(retrieve))
        .route("/api/v1/orbits", get(orbits))
        .route("/api/v1/settings", get(settings))
        .route("/api/v1/events", get(events))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        // The console page holds no data: it asks for the token and then uses the API.
        .route("/", get(console))
        .with_state(state)
}

/// Binds `[api] listen` as a std listener, for the API's own runtime (`callpark run`).
pub fn bind_std(addr: std::net::SocketAddr) -> Result<std::net::TcpListener, ApiError> {
    let l = std::net::TcpListener::bind(addr).map_err(|source| ApiError::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| ApiError::Bind { addr, source })?;
    Ok(l)
}

/// Tries to read the newest log id a few times: where the feed starts. Never 0 on a store
/// error: that would replay the whole log to every subscriber and webhook.
async fn start_id(store: &Store) -> Result<i64, ApiError> {
    let mut wait = Duration::from_millis(100);
    for attempt in 1.. {
        match store.last_log_id().await {
            Ok(id) => return Ok(id),
            Err(e) if attempt >= 5 => return Err(ApiError::StartLog(e)),
            Err(e) => warn!("API start: the event log cannot be read ({e}); trying again"),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    unreachable!("the loop returns")
}

/// Serves the API (and feeds its event stream) until the task is dropped. It returns only
/// on a failure (the listener or the feed failed): the caller stops the service, which has
/// no API otherwise.
pub async fn serve(state: ApiState, listener: tokio::net::TcpListener) -> Result<(), ApiError> {
    let addr = listener.local_addr().map_err(|source| ApiError::Bind {
        addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let last = start_id(&state.store).await?;
    if let Some(api) = state.cfg.api.as_ref().filter(|a| !a.webhooks.is_empty()) {
        // One client for every webhook and delivery: its connections are reused.
        let client = reqwest::Client::builder()
            .timeout(api.webhook_timeout)
            .build()
            .map_err(ApiError::Client)?;
        for url in &api.webhooks {
            webhook::spawn(url.clone(), state.feed.subscribe(), client.clone());
        }
    }
    info!(%addr, "admin API listening");
    let mut feed = tokio::spawn(state.clone().run_feed(last));
    let served = tokio::select! {
        served = axum::serve(listener, router(state)) => match served {
            Ok(()) => Err(ApiError::Bind {
                addr,
                source: std::io::Error::other("the listener stopped"),
            }),
            Err(source) => Err(ApiError::Bind { addr, source }),
        },
        // The feed loops for ever: its end is a panic.
        ended = &mut feed => Err(ApiError::Feed(match ended {
            Err(e) => e.to_string(),
            Ok(()) => "it returned".into(),
        })),
    };
    feed.abort();
    served
}

/// The attendant's console: plain HTML and JavaScript, built into the binary.
async fn console() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        include_str!("console.html"),
    )
}

/// Equal in time whatever the first difference, so the token cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authorize(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if same(t.as_bytes(), s.token.as_bytes()) => next.run(req).await,
        _ => {
            // Never the token itself: only that one was missing or wrong.
            warn!(
                method = %req.method(),
                path = %req.uri().path(),
                token = if given.is_some() { "wrong" } else { "missing" },
                "API request refused"
            );
            let mut r = Failure(
                StatusCode::UNAUTHORIZED,
                "send Authorization: Bearer <token> ([api] token_env or token_file)".into(),
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("a header"),
            );
            r
        }
    }
}

fn lot_name(lot: &Option<String>) -> &str {
    lot.as_deref().unwrap_or(GENERAL_LOT)
}

/// One parked call as the API shows it, serialized straight from the stored call: the list
/// of hundreds is asked for many times a second, and a `serde_json::Value` tree of it cost
/// more in allocations than the rest of the request. The fields are in the order of their
/// names, the order they have always come out in.
#[derive(Debug, serde::Serialize)]
pub struct CallView<'a> {
    attempt: u8,
    caller: CallerView<'a>,
    channel: &'a str,
    lot: &'a str,
    max_attempts: u8,
    /// `None`: no timer runs (parked until retrieved).
    next_deadline: Option<crate::park::Millis>,
    orbit: Option<Orbit>,
    parked_at: crate::park::Millis,
    parker: &'a str,
    pool: &'a str,
    state: &'static str,
}

#[derive(Debug, serde::Serialize)]
struct CallerView<'a> {
    name: &'a str,
    number: &'a str,
}

/// One parked call as the API shows it.
pub fn call_json<'a>(cfg: &Config, pool: &'a str, c: &'a ParkedCall) -> CallView<'a> {
    CallView {
        attempt: c.attempts,
        caller: CallerView {
            name: &c.caller.name,
            number: &c.caller.number,
        },
        channel: c.channel.as_str(),
        lot: lot_name(&c.lot),
        max_attempts: cfg.lot_park(c.lot.as_deref()).max_pickup_attempts,
        next_deadline: (c.deadline != crate::park::NO_DEADLINE).then_some(c.deadline),
        orbit: c.orbit,
        parked_at: c.parked_at,
        parker: &c.parker.display,
        pool,
        state: c.state.name(),
    }
}

async fn parked(State(s): State<ApiState>) -> Result<Response, Failure> {
    let p = s.parked_now().await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], p.json.clone()).into_response())
}

fn parse_orbit(text: &str) -> Result<Orbit, Failure> {
    text.parse().map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("orbit: `{text}` is not an orbit: {e}"),
        )
    })
}

async fn parked_one(
    State(s): State<ApiState>,
    Path(orbit): Path<String>,
) -> Result<Response, Failure> {
    let orbit = parse_orbit(&orbit)?;
    if s.cfg.orbits.range_of(orbit).is_none() {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            format!("orbit: {orbit} is in no configured orbit range"),
        ));
    }
    let p = s.parked_now().await?;
    match p.calls.iter().find(|(_, c)| c.orbit == Some(orbit)) {
        Some((pool, c)) => Ok(Json(call_json(&s.cfg, pool, c)).into_response()),
        None => Err(Failure(
            StatusCode::NOT_FOUND,
            format!("orbit: no call is parked on {orbit}"),
        )),
    }
}

/// The pool owning `orbit`, and its control channel.
fn pool_of(s: &ApiState, orbit: Orbit) -> Result<mpsc::Sender<Control>, Failure> {
    let range = s.cfg.orbits.range_of(orbit).ok_or_else(|| {
        Failure(
            StatusCode::NOT_FOUND,
            format!("orbit: {orbit} is in no configured orbit range"),
        )
    })?;
    s.pools.get(&range.pool).cloned().ok_or_else(|| {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("pool {} is not running here", range.pool),
        )
    })
}

/// Hands a request to its pool and waits for the step to be in the store.
async fn ask(
    tx: mpsc::Sender<Control>,
    make: impl FnOnce(oneshot::Sender<Result<(), OperatorError>>) -> Control,
) -> Result<(), Failure> {
    let (reply, answer) = oneshot::channel();
    let gone = || {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the pool is stopping".into(),
        )
    };
    tx.send(make(reply)).await.map_err(|_| gone())?;
    match answer.await.map_err(|_| gone())? {
        Ok(()) => Ok(()),
        Err(e @ OperatorError::NoCall(_)) => Err(Failure(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ OperatorError::Busy(_)) => Err(Failure(StatusCode::CONFLICT, e.to_string())),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrieveTo {
    to: String,
}

/// Retrieve a parked call to an extension (`exten:201@phones`), a `sip:` URI or a dial string
/// (`PJSIP/attendant`): it rings there, and is bridged when answered.
async fn retrieve(
    State(s): State<ApiState>,
    Path(orbit): Path<String>,
    body: Result<Json<RetrieveTo>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), Failure> {
    let orbit = parse_orbit(&orbit)?;
    let Json(body) = body.map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!(
                "body: {} (send {{\"to\": \"exten:201@phones\"}})",
                e.body_text()
            ),
        )
    })?;
    let dest = Destination::parse(&body.to)
        .map_err(|m| Failure(StatusCode::BAD_REQUEST, format!("to: {m}")))?;
    let tx = pool_of(&s, orbit)?;
    let label = dest.to_string();
    ask(tx, |reply| Control::Deliver {
        orbit,
        to: Target::Destination(dest),
        label,
        reply,
    })
    .await?;
    info!(%orbit, to = %body.to, "API: retrieve to");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "orbit": orbit.to_string(), "state": "delivering", "to": body.to })),
    ))
}

/// Hang up a parked call.
async fn hang_up(
    State(s): State<ApiState>,
    Path(orbit): Path<String>,
) -> Result<StatusCode, Failure> {
    let orbit = parse_orbit(&orbit)?;
    let tx = pool_of(&s, orbit)?;
    ask(tx, |reply| Control::HangUp { orbit, reply }).await?;
    info!(%orbit, "API: hung up");
    Ok(StatusCode::NO_CONTENT)
}

async fn orbits(State(s): State<ApiState>) -> Result<Json<Value>, Failure> {
    let used: Vec<Orbit> = s
        .store
        .used_per_orbit()
        .await?
        .iter()
        .filter_map(|o| o.parse().ok())
        .collect();
    let ranges: Vec<Value> = s
        .cfg
        .orbits
        .ranges()
        .iter()
        .map(|r| {
            let n = used.iter().filter(|o| r.span.contains(**o)).count() as u64;
            json!({
                "name": r.name,
                "pool": r.pool,
                "lot": lot_name(&r.lot),
                "first": r.span.first.to_string(),
                "last": r.span.last.to_string(),
                "size": r.span.len(),
                "used": n,
                "free": r.span.len() - n,
            })
        })
        .collect();
    Ok(Json(Value::Array(ranges)))
}

fn park_json(p: &crate::config::ParkConfig) -> Value {
    json!({
        "pickup_timeout_ms": p.pickup_timeout.as_millis() as u64,
        "max_pickup_attempts": p.max_pickup_attempts,
        "ringback_ring_time_ms": p.ringback_ring_time.as_millis() as u64,
        "on_timeout": p.on_timeout.as_ref().map(ToString::to_string),
        "music_on_hold": p.music_on_hold,
        "music_on_hold_class": p.music_on_hold_class,
        "music_on_hold_file": p.music_on_hold_file.as_ref().map(|f| f.display().to_string()),
        "caller_id_prefix": p.caller_id_prefix,
        "on_busy_orbit": p.on_busy_orbit,
    })
}

async fn settings(State(s): State<ApiState>) -> Json<Value> {
    let mut lots = serde_json::Map::new();
    lots.insert(
        GENERAL_LOT.into(),
        json!({ "park_codes": [s.cfg.park.park_code], "settings": park_json(&s.cfg.park) }),
    );
    for l in &s.cfg.lots {
        lots.insert(
            l.name.clone(),
            json!({ "park_codes": l.park_codes, "settings": park_json(&l.park) }),
        );
    }
    Json(json!({
        "lots": lots,
        "pools": s.cfg.pbx.iter().map(|p| json!({ "name": p.name, "kind": p.kind })).collect::<Vec<_>>(),
    }))
}

/// A log entry as the event stream and the webhooks give it: the entry, and whether its
/// orbit was freed by it (the call's park ended).
pub fn event_json(r: &LogRow) -> Value {
    let mut v = serde_json::to_value(r).expect("a log row serializes");
    let ended = crate::park::LogKind::ALL
        .iter()
        .any(|k| k.is_final() && k.as_str() == r.kind);
    v["orbit_freed"] = Value::Bool(ended && r.orbit.is_some());
    v
}

/// The event log as Server-Sent Events: each entry once, in order. `Last-Event-ID` (sent by
/// browsers on reconnecting) resumes after that entry, from the store; without it the stream
/// starts with what happens next.
async fn events(State(s): State<ApiState>, headers: HeaderMap) -> Result<Response, Failure> {
    let resume = match headers.get("last-event-id").map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v.trim().parse::<i64>().map_err(|_| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("Last-Event-ID: `{v}` is not an event id (a number)"),
            )
        })?),
        Some(Err(_)) => {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                "Last-Event-ID: not text".into(),
            ));
        }
    };
    // Browsers take gzip: the frames shrink several times, and each batch is compressed once
    // for all the subscribers that take it (src/api/gzip.rs).
    let gz = gzip::accepted(
        headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    );
    // Subscribed before reading the backlog, so nothing falls between the two.
    let rx = s.feed.subscribe();
    let phase = spread_phase();
    // A resume reads the store from after its entry, in pages, before going live; a fresh
    // subscriber starts with what happens next.
    let (last, catch_up) = match resume {
        Some(id) => (id, true),
        None => (s.store.last_log_id().await?, false),
    };
    let sub = Subscriber {
        backlog: std::collections::VecDeque::new(),
        rx,
        last,
        catch_up,
        ended: false,
        store: s.store.clone(),
    };
    let stream = futures_util::stream::unfold(sub, move |mut sub| async move {
        loop {
            if let Some((id, b)) = sub.backlog.pop_front() {
                sub.last = sub.last.max(id);
                return Some((Some(b), sub));
            }
            if sub.ended {
                return None;
            }
            if sub.catch_up {
                match sub.next_page(gz).await {
                    Ok(()) => continue,
                    Err(reset) => {
                        sub.ended = true;
                        return Some((Some(reset), sub));
                    }
                }
            }
            match sub.rx.recv().await {
                Ok(batch) => {
                    let b = if gz {
                        batch.after_gz(sub.last)
                    } else {
                        batch.after(sub.last)
                    };
                    let Some(b) = b else { continue };
                    sub.last = batch.last_id().unwrap_or(sub.last);
                    if batch.rows.len() > BUSY_BATCH {
                        tokio::time::sleep(phase).await;
                    }
                    return Some((Some(b), sub));
                }
                // A subscriber too slow for the feed catches up from the store, page by page.
                Err(broadcast::error::RecvError::Lagged(_)) => sub.catch_up = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    // The stream's end (after a `reset`), marked so that the keep-alive ends with it.
    let stream = futures_util::StreamExt::chain(
        stream,
        futures_util::stream::once(std::future::ready(None)),
    );
    // A comment line now and then keeps proxies from closing a quiet stream.
    let keep_alive = futures_util::stream::unfold((), move |()| async move {
        tokio::time::sleep(Duration::from_secs(15)).await;
        const COMMENT: &[u8] = b": keep-alive\n\n";
        // Compressed once for every subscriber, like a batch: a compressor's state is
        // hundreds of kilobytes, too much to make a thousand times every 15 s.
        static GZ: std::sync::LazyLock<bytes::Bytes> =
            std::sync::LazyLock::new(|| gzip::segment(COMMENT));
        let b = match gz {
            true => GZ.clone(),
            false => bytes::Bytes::from_static(COMMENT),
        };
        Some((Some(b), ()))
    });
    let live = futures_util::StreamExt::map(
        futures_util::StreamExt::take_while(
            futures_util::stream::select(stream, keep_alive),
            |b| std::future::ready(b.is_some()),
        ),
        |b| Ok::<_, Infallible>(b.unwrap_or_default()),
    );
    let head = futures_util::stream::iter(
        gz.then(|| Ok::<_, Infallible>(bytes::Bytes::from_static(&gzip::HEADER))),
    );
    let body = futures_util::StreamExt::chain(head, live);
    let mut r = (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::VARY, "accept-encoding"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response();
    if gz {
        r.headers_mut().insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
    }
    Ok(r)
}

/// How many entries a catching-up subscriber reads from the store at a time.
const PAGE: i64 = 5_000;

/// One event-stream subscriber's place.
struct Subscriber {
    /// Frames read from the store, still to send, each with its last entry's id.
    backlog: std::collections::VecDeque<(i64, bytes::Bytes)>,
    rx: broadcast::Receiver<Arc<Batch>>,
    /// The last entry it was sent (or asked to resume after).
    last: i64,
    /// Reading the store until caught up (a resume, or behind the feed).
    catch_up: bool,
    /// A `reset` was sent: nothing more.
    ended: bool,
    store: Store,
}

impl Subscriber {
    /// Reads the next page after `last` into the backlog; caught up on a short page. The
    /// `reset` frame to end with instead when the entries after `last` are no longer all
    /// there (pruned, `[service] keep_log`) or the store cannot be read: the client reloads
    /// what it shows rather than miss entries without a word.
    async fn next_page(&mut self, gz: bool) -> Result<(), bytes::Bytes> {
        match self.store.log_page(self.last, PAGE).await {
            Ok(page) if self.last < page.oldest - 1 => {
                warn!(
                    after = self.last,
                    oldest = page.oldest,
                    "API event stream: the entries asked for were pruned; reset sent"
                );
                Err(reset_frame(Some(page.oldest), "pruned", gz))
            }
            Ok(page) => {
                self.catch_up = page.rows.len() as i64 >= PAGE;
                self.backlog = chunks(page.rows, gz);
                Ok(())
            }
            Err(e) => {
                warn!("API event stream: the log cannot be read ({e}); reset sent");
                let oldest = self
                    .store
                    .log_page(i64::MAX, 0)
                    .await
                    .ok()
                    .map(|p| p.oldest);
                Err(reset_frame(oldest, "store", gz))
            }
        }
    }
}

/// The `reset` event: entries the client has not had cannot be sent (`reason`: `pruned`, or
/// `store` when the log cannot be read); `oldest` is the oldest entry kept (`null` when even
/// that cannot be read). It carries no id, so a client's resume id stays its last entry's.
fn reset_frame(oldest: Option<i64>, reason: &str, gz: bool) -> bytes::Bytes {
    let data = json!({ "oldest": oldest, "reason": reason });
    let frame = format!("event: reset\ndata: {data}\n\n");
    match gz {
        true => gzip::segment(frame.as_bytes()),
        false => frame.into(),
    }
}

/// A batch larger than this is written to each subscriber at its own phase.
const BUSY_BATCH: usize = 10;
/// How far apart in time the subscribers' phases are spread.
const SPREAD: Duration = Duration::from_millis(800);
/// How many phases there are in [`SPREAD`].
const PHASES: u32 = 16;

/// The next subscriber's phase: one of [`PHASES`] points in [0, [`SPREAD`]), each
/// `SPREAD / PHASES` apart. Successive subscribers are placed by the golden ratio, so any
/// number of them is spread evenly. Under load, a thousand subscribers then get a batch in
/// sixteen groups over most of a second instead of all at once, a burst that the parks
/// caught in it paid for (their p95, in benches/operator_side.rs); and the API's thread wakes
/// sixteen times a batch rather than once for each subscriber, a context switch each
/// (measured there too).
fn spread_phase() -> Duration {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let frac = (n as f64 * 0.618_033_988_749_895).fract();
    SPREAD / PHASES * (frac * PHASES as f64) as u32
}

/// Stored entries as stream chunks of up to a thousand frames, each with its last entry's id;
/// gzip segments if `gz`.
fn chunks(rows: Vec<LogRow>, gz: bool) -> std::collections::VecDeque<(i64, bytes::Bytes)> {
    let mut out = std::collections::VecDeque::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch = Batch::new(rows.by_ref().take(1000).collect());
        let b = match gz {
            true => batch.after_gz(i64::MIN),
            false => batch.after(i64::MIN),
        };
        if let (Some(id), Some(b)) = (batch.last_id(), b) {
            out.push_back((id, b));
        }
    }
    out
}

/// The number of orbits of a pool's lot.
fn lot_size(cfg: &Config, pool: &str, lot: &str) -> u64 {
    cfg.orbits
        .ranges()
        .iter()
        .filter(|r| r.pool == pool && lot_name(&r.lot) == lot)
        .map(|r| r.span.len())
        .sum()
}

/// Prometheus text format.
async fn metrics(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    use std::fmt::Write;
    let mut out = String::new();
    let parked = s.parked_now().await?;
    let calls = &parked.calls;
    let _ = writeln!(
        out,
        "# HELP callpark_parked Calls in callpark's hands now, per pool and lot."
    );
    let _ = writeln!(out, "# TYPE callpark_parked gauge");
    let mut lots: Vec<(String, String)> = s
        .cfg
        .orbits
        .ranges()
        .iter()
        .map(|r| (r.pool.clone(), lot_name(&r.lot).to_string()))
        .collect();
    lots.sort();
    lots.dedup();
    for (pool, lot) in &lots {
        let n = calls
            .iter()
            .filter(|(p, c)| p == pool && lot_name(&c.lot) == lot)
            .count();
        let (pool, lot) = (esc(pool), esc(lot));
        let _ = writeln!(out, "callpark_parked{{pool=\"{pool}\",lot=\"{lot}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP callpark_lot_orbits Orbits per pool and lot.");
    let _ = writeln!(out, "# TYPE callpark_lot_orbits gauge");
    for (pool, lot) in &lots {
        let size = lot_size(&s.cfg, pool, lot);
        let (pool, lot) = (esc(pool), esc(lot));
        let _ = writeln!(
            out,
            "callpark_lot_orbits{{pool=\"{pool}\",lot=\"{lot}\"}} {size}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP callpark_lot_utilisation Share of a lot's orbits in use now (0 to 1)."
    );
    let _ = writeln!(out, "# TYPE callpark_lot_utilisation gauge");
    for (pool, lot) in &lots {
        let size = lot_size(&s.cfg, pool, lot);
        let n = calls
            .iter()
            .filter(|(p, c)| p == pool && lot_name(&c.lot) == lot && c.orbit.is_some())
            .count();
        let (pool, lot) = (esc(pool), esc(lot));
        let _ = writeln!(
            out,
            "callpark_lot_utilisation{{pool=\"{pool}\",lot=\"{lot}\"}} {}",
            n as f64 / size.max(1) as f64
        );
    }
    let _ = writeln!(
        out,
        "# HELP callpark_events_total Park events logged, per pool and kind (parked, retrieved, ringback_started, fallback_started, disconnected, refused...)."
    );
    let _ = writeln!(out, "# TYPE callpark_events_total counter");
    for (pool, kind, n) in s.store.log_counts().await? {
        let (pool, kind) = (esc(&pool), esc(&kind));
        let _ = writeln!(
            out,
            "callpark_events_total{{pool=\"{pool}\",kind=\"{kind}\"}} {n}"
        );
    }
    if let Some(h) = &s.health {
        let conns = h.connections();
        let _ = writeln!(
            out,
            "# HELP callpark_pbx_connected Whether the pool's PBX connection is up."
        );
        let _ = writeln!(out, "# TYPE callpark_pbx_connected gauge");
        for (pool, up, _) in &conns {
            let pool = esc(pool);
            let _ = writeln!(
                out,
                "callpark_pbx_connected{{pool=\"{pool}\"}} {}",
                u8::from(*up)
            );
        }
        let _ = writeln!(
            out,
            "# HELP callpark_pbx_connects_total Connections made to the pool's PBX (the first and every reconnect)."
        );
        let _ = writeln!(out, "# TYPE callpark_pbx_connects_total counter");
        for (pool, _, n) in &conns {
            let pool = esc(pool);
            let _ = writeln!(out, "callpark_pbx_connects_total{{pool=\"{pool}\"}} {n}");
        }
    }
    if let Some(h) = &s.health {
        use crate::service::health::COMMIT_BUCKETS;
        let _ = writeln!(
            out,
            "# HELP callpark_store_commit_seconds How long each step's store commit took."
        );
        let _ = writeln!(out, "# TYPE callpark_store_commit_seconds histogram");
        for (pool, c) in h.commits() {
            let pool = esc(&pool);
            for (b, n) in COMMIT_BUCKETS.iter().zip(&c.cumulative) {
                let _ = writeln!(
                    out,
                    "callpark_store_commit_seconds_bucket{{pool=\"{pool}\",le=\"{b}\"}} {n}"
                );
            }
            let all = c.cumulative.last().copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "callpark_store_commit_seconds_bucket{{pool=\"{pool}\",le=\"+Inf\"}} {all}"
            );
            let _ = writeln!(
                out,
                "callpark_store_commit_seconds_sum{{pool=\"{pool}\"}} {}",
                c.sum_secs
            );
            let _ = writeln!(
                out,
                "callpark_store_commit_seconds_count{{pool=\"{pool}\"}} {all}"
            );
        }
    }
    // Kept by the store as entries are committed: a few rows however long the log is.
    let _ = writeln!(
        out,
        "# HELP callpark_time_to_retrieve_seconds How long retrieved calls waited on their orbit."
    );
    let _ = writeln!(out, "# TYPE callpark_time_to_retrieve_seconds histogram");
    let waits = s.store.retrieve_waits().await?;
    for (pool, lot) in &lots {
        let mine: Vec<&WaitBucket> = waits
            .iter()
            .filter(|w| &w.pool == pool && &w.lot == lot)
            .collect();
        let labels = format!("pool=\"{}\",lot=\"{}\"", esc(pool), esc(lot));
        for b in WAIT_BUCKETS_MS {
            let n: i64 = mine.iter().filter(|w| w.le_ms <= b).map(|w| w.n).sum();
            let _ = writeln!(
                out,
                "callpark_time_to_retrieve_seconds_bucket{{{labels},le=\"{}\"}} {n}",
                b as f64 / 1000.0
            );
        }
        let all: i64 = mine.iter().map(|w| w.n).sum();
        let _ = writeln!(
            out,
            "callpark_time_to_retrieve_seconds_bucket{{{labels},le=\"+Inf\"}} {all}"
        );
        let _ = writeln!(
            out,
            "callpark_time_to_retrieve_seconds_sum{{{labels}}} {}",
            mine.iter().map(|w| w.sum_ms).sum::<i64>() as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "callpark_time_to_retrieve_seconds_count{{{labels}}} {all}"
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

/// A label value as the Prometheus text format wants it: backslash, double quote and newline
/// escaped. Pool names are restricted ([[pbx]] name), but lots and kinds come from the
/// configuration and the store.
fn esc(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    let mut out = String::with_capacity(v.len() + 4);
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.into()
}

/// Lowers the calling thread's CPU priority (Linux's nice value is per thread and inherited
/// by the threads it starts), so the API's runtime, its store connections and a thousand
/// event-stream writes yield to the pools when the CPU is short. Parking comes first.
pub fn lower_priority(nice: i32) -> std::io::Result<()> {
    // SAFETY: gettid and setpriority only read their arguments; no memory is shared.
    let r = unsafe {
        libc::setpriority(
            libc::PRIO_PROCESS,
            libc::gettid() as libc::id_t,
            nice as libc::c_int,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> LogRow {
        LogRow {
            id,
            at: 1_700_000_000_000 + id,
            pool: "pbx".into(),
            kind: "parked".into(),
            channel: format!("ch{id}"),
            orbit: Some("701".into()),
            lot: None,
            detail: format!("call {id}"),
        }
    }

    fn ids(b: &[u8]) -> Vec<i64> {
        String::from_utf8_lossy(b)
            .lines()
            .filter_map(|l| l.strip_prefix("id: ")?.parse().ok())
            .collect()
    }

    #[test]
    fn a_batch_gives_each_subscriber_what_it_has_not_seen() {
        let b = Batch::new((10..15).map(row).collect());
        assert_eq!(ids(&b.after(0).unwrap()), vec![10, 11, 12, 13, 14]);
        assert_eq!(ids(&b.after(12).unwrap()), vec![13, 14]);
        assert_eq!(b.after(14), None);
        assert_eq!(b.last_id(), Some(14));
        // Every frame ends with its blank line, so a slice is whole frames.
        let tail = b.after(11).unwrap();
        assert!(tail.starts_with(b"id: 12\n") && tail.ends_with(b"\n\n"));
        assert_eq!(Batch::new(vec![]).after(0), None);
    }

    #[test]
    fn subscribers_phases_are_spread_over_the_window() {
        let p: Vec<Duration> = (0..1000).map(|_| spread_phase()).collect();
        assert!(p.iter().all(|d| *d < SPREAD));
        // Sixteen phases, each a sixteenth of the window apart, all in use.
        let distinct: std::collections::BTreeSet<Duration> = p.iter().copied().collect();
        let want: std::collections::BTreeSet<Duration> =
            (0..PHASES).map(|k| SPREAD / PHASES * k).collect();
        assert_eq!(distinct, want);
        // Each phase holds about a sixteenth of them (62.5).
        for phase in want {
            let n = p.iter().filter(|d| **d == phase).count();
            assert!((55..=70).contains(&n), "phase {phase:?}: {n}");
        }
    }

    #[test]
    fn a_backlog_goes_out_in_chunks_of_a_thousand() {
        let c = chunks((1..=2500).map(row).collect(), false);
        let lasts: Vec<i64> = c.iter().map(|(id, _)| *id).collect();
        assert_eq!(lasts, vec![1000, 2000, 2500]);
        let all: Vec<i64> = c.iter().flat_map(|(_, b)| ids(b)).collect();
        assert_eq!(all, (1..=2500).collect::<Vec<_>>());
        assert!(chunks(vec![], false).is_empty());
        // In gzip, the same chunks decode to the same frames.
        let gz = chunks((1..=2500).map(row).collect(), true);
        assert_eq!(gz.iter().map(|(id, _)| *id).collect::<Vec<_>>(), lasts);
        let mut stream = gzip::HEADER.to_vec();
        gz.iter().for_each(|(_, b)| stream.extend_from_slice(b));
        let plain: Vec<u8> = c.iter().flat_map(|(_, b)| b.to_vec()).collect();
        assert_eq!(gunzip(&stream), plain);
    }

    /// What a reader of a gzip event stream (no trailer) has decoded.
    fn gunzip(stream: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(stream).read_to_end(&mut out) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}"),
        }
        out
    }

    #[test]
    fn a_whole_batch_is_compressed_once_and_a_part_for_its_subscriber() {
        let b = Batch::new((10..15).map(row).collect());
        let whole = b.after_gz(9).unwrap();
        // The same bytes for every subscriber that wants it all: shared, not recompressed.
        assert_eq!(whole.as_ptr(), b.after_gz(0).unwrap().as_ptr());
        let part = b.after_gz(11).unwrap();
        let decoded = gunzip(&[&gzip::HEADER[..], &whole, &part].concat());
        let want = [b.after(9).unwrap(), b.after(11).unwrap()].concat();
        assert_eq!(decoded, want);
        assert_eq!(b.after_gz(14), None);
        assert_eq!(Batch::new(vec![]).after_gz(0), None);
    }
}
