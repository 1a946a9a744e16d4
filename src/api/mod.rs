//! The admin HTTP API of `callpark run` (`[api]`): parked calls, orbits and settings as JSON,
//! the event log as Server-Sent Events, and Prometheus metrics. Every request needs the bearer
//! token; one without it (or with a wrong one) gets 401 and is logged without the token.
//!
//! It reads the store, which every pool writes each step to before the PBX acts on it, so what
//! the API shows is what a restart would resume; it never talks to a PBX.
//!
//! This module holds the routes, the token check, the shared state and the serving; the
//! handlers are in its parts:
//! - `calls`: the parked calls, one call, retrieve, hang up, orbits, settings;
//! - `feed`: the event stream's batches, read from the log once for every subscriber;
//! - `gzip`: those batches compressed once for the subscribers that take gzip;
//! - `sse`: `GET /api/v1/events`, each subscriber's Server-Sent Events and its resume;
//! - `metrics`: `GET /metrics`, the Prometheus exposition;
//! - `webhook`: each log entry POSTed to the configured URLs.
//!
//! The API's thread's CPU priority and cgroup are set by `crate::service::sched`.

mod calls;
mod feed;
mod gzip;
mod metrics;
mod sse;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;
use thiserror::Error;
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};

pub(crate) use calls::{CallView, call_json};

use crate::config::Config;
use crate::service::Control;
use crate::service::health::Health;
use crate::store::{Store, StoreError};
use feed::Batch;

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
    snapshot: Arc<std::sync::Mutex<Option<Arc<calls::Snapshot>>>>,
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
}

/// The routes, behind the bearer token.
fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/parked", get(calls::parked))
        .route(
            "/api/v1/parked/{orbit}",
            get(calls::parked_one).delete(calls::hang_up),
        )
        .route("/api/v1/parked/{orbit}/retrieve", post(calls::retrieve))
        .route("/api/v1/orbits", get(calls::orbits))
        .route("/api/v1/settings", get(calls::settings))
        .route("/api/v1/events", get(sse::events))
        .route("/metrics", get(metrics::metrics))
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

/// Whether a request's token is the API's: compared in constant time whatever the first
/// difference, so the token cannot be guessed byte by byte (a length differing is told at
/// once: the length is no secret worth keeping).
fn token_matches(given: &str, token: &str) -> bool {
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

async fn authorize(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if token_matches(t, &s.token) => next.run(req).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_matches() {
        let token = "s3cret-token-0123456789";
        assert!(token_matches(token, token));
        assert!(token_matches("", ""));
        for other in [
            "",
            "s3cret-token-012345678",
            "s3cret-token-01234567890",
            "S3cret-token-0123456789",
            "s3cret-token-0123456788",
        ] {
            assert!(!token_matches(other, token), "{other}");
        }
    }
}
