//! `GET /api/v1/events`: the event log as Server-Sent Events. Each subscriber gets the feed's
//! batches (src/api/feed.rs) from after the last entry it was sent; a resume
//! (`Last-Event-ID`) or a subscriber behind the feed reads the store in pages until caught up,
//! and a stream whose entries are gone (pruned) or cannot be read ends with a `reset` event.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::broadcast;
use tracing::warn;

use super::feed::{Batch, chunks};
use super::{ApiState, Failure, gzip};
use crate::store::Store;

/// The event log as Server-Sent Events: each entry once, in order. `Last-Event-ID` (sent by
/// browsers on reconnecting) resumes after that entry, from the store; without it the stream
/// starts with what happens next.
pub(super) async fn events(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
