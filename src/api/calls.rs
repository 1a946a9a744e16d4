//! The parked calls, one call, an operator's retrieve and hang-up, the orbits and the
//! settings: the JSON handlers of `/api/v1/`, and the views they render.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use super::{ApiState, Failure};
use crate::config::Config;
use crate::orbit::Orbit;
use crate::park::{Destination, GENERAL_LOT, OperatorError, ParkedCall, Target};
use crate::service::Control;
use crate::store::StoreError;

/// The parked calls at one store generation.
pub(super) struct Snapshot {
    generation: i64,
    pub(super) calls: Vec<(String, ParkedCall)>,
    /// `GET /api/v1/parked`'s body.
    json: bytes::Bytes,
}

impl ApiState {
    /// The parked calls now: the snapshot when no commit came since it was made, else read
    /// and decoded again.
    pub(super) async fn parked_now(&self) -> Result<Arc<Snapshot>, StoreError> {
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
}

/// A lot's name as the API shows it: `general` for the ranges and calls without one.
pub(super) fn lot_name(lot: &Option<String>) -> &str {
    lot.as_deref().unwrap_or(GENERAL_LOT)
}

/// One parked call as the API shows it, serialized straight from the stored call: the list
/// of hundreds is asked for many times a second, and a `serde_json::Value` tree of it cost
/// more in allocations than the rest of the request. The fields are in the order of their
/// names, the order they have always come out in.
#[derive(Debug, serde::Serialize)]
pub(crate) struct CallView<'a> {
    attempt: u8,
    caller: CallerView<'a>,
    channel: &'a str,
    lot: &'a str,
    max_attempts: u8,
    /// Pages its lot places at most (1 + `page_repeat`); 0 when its lot does not page.
    max_pages: u8,
    /// `None`: no timer runs (parked until retrieved).
    next_deadline: Option<crate::park::Millis>,
    /// When its next page is placed; `None`: no more.
    next_page: Option<crate::park::Millis>,
    orbit: Option<Orbit>,
    /// Pages placed so far (park and page).
    pages: u8,
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
pub(crate) fn call_json<'a>(cfg: &Config, pool: &'a str, c: &'a ParkedCall) -> CallView<'a> {
    let park = cfg.lot_park(c.lot.as_deref());
    CallView {
        attempt: c.attempts,
        caller: CallerView {
            name: &c.caller.name,
            number: &c.caller.number,
        },
        channel: c.channel.as_str(),
        lot: lot_name(&c.lot),
        max_attempts: park.max_pickup_attempts,
        max_pages: if park.page.is_some() {
            park.page_repeat.saturating_add(1)
        } else {
            0
        },
        next_deadline: (c.deadline != crate::park::NO_DEADLINE).then_some(c.deadline),
        next_page: c.page.next,
        orbit: c.orbit,
        pages: c.page.sent,
        parked_at: c.parked_at,
        parker: &c.parker.display,
        pool,
        state: c.state.name(),
    }
}

pub(super) async fn parked(State(s): State<ApiState>) -> Result<Response, Failure> {
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

pub(super) async fn parked_one(
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
pub(super) struct RetrieveTo {
    to: String,
}

/// Retrieve a parked call to an extension (`exten:201@phones`), a `sip:` URI or a dial string
/// (`PJSIP/attendant`): it rings there, and is bridged when answered.
pub(super) async fn retrieve(
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
pub(super) async fn hang_up(
    State(s): State<ApiState>,
    Path(orbit): Path<String>,
) -> Result<StatusCode, Failure> {
    let orbit = parse_orbit(&orbit)?;
    let tx = pool_of(&s, orbit)?;
    ask(tx, |reply| Control::HangUp { orbit, reply }).await?;
    info!(%orbit, "API: hung up");
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn orbits(State(s): State<ApiState>) -> Result<Json<Value>, Failure> {
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

pub(super) async fn settings(State(s): State<ApiState>) -> Json<Value> {
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
