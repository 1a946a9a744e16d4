//! Webhooks: every log entry POSTed as JSON to each configured URL (a paging system, a chat
//! bot), in order, with retries and backoff. Each webhook has its own bounded queue filled from
//! the event feed, so a slow or dead one delays nobody: parking never waits on the feed (the
//! feed reads the store after the fact), and a full queue drops its oldest entries, logged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tracing::{info, warn};

use super::feed::{Batch, event_json};
use crate::store::LogRow;

/// Entries a webhook may have waiting before the oldest are dropped.
const QUEUE_MAX: usize = 10_000;
/// Tries per entry: the first and the retries, 0.5 s, 1 s, 2 s, 4 s, 8 s apart.
const TRIES: u32 = 6;

/// The queue, even when a task panicked holding it: a queue of whole entries is never left
/// half-changed, and a poisoned lock must not stop every later delivery.
fn lock(q: &Mutex<VecDeque<LogRow>>) -> MutexGuard<'_, VecDeque<LogRow>> {
    q.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts one webhook: a reader that queues what the feed brings, and a sender that POSTs
/// with `client` (shared by every webhook; its timeout is `[api] webhook_timeout`).
pub(super) fn spawn(
    url: String,
    mut feed: broadcast::Receiver<Arc<Batch>>,
    client: reqwest::Client,
) {
    let queue: Arc<Mutex<VecDeque<LogRow>>> = Arc::default();
    let wake = Arc::new(Notify::new());
    {
        let (queue, wake, url) = (queue.clone(), wake.clone(), url.clone());
        tokio::spawn(async move {
            loop {
                let batch = match feed.recv().await {
                    Ok(b) => b,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(%url, skipped = n, "webhook: the event feed ran ahead; entries skipped");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let mut q = lock(&queue);
                for row in &batch.rows {
                    if q.len() >= QUEUE_MAX {
                        let old = q.pop_front();
                        warn!(%url, dropped = ?old.map(|r| r.id), "webhook: queue full, oldest entry dropped");
                    }
                    q.push_back(row.clone());
                }
                drop(q);
                wake.notify_one();
            }
        });
    }
    tokio::spawn(async move {
        info!(%url, "webhook on");
        loop {
            let next = lock(&queue).pop_front();
            let Some(row) = next else {
                wake.notified().await;
                continue;
            };
            deliver(&client, &url, &row).await;
        }
    });
}

/// POSTs one entry, trying again with backoff; gives up after [`TRIES`], logged.
async fn deliver(client: &reqwest::Client, url: &str, row: &LogRow) {
    let mut wait = Duration::from_millis(500);
    for attempt in 1..=TRIES {
        let why = match client.post(url).json(&event_json(row)).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        if attempt == TRIES {
            warn!(%url, id = row.id, "webhook: entry given up after {TRIES} tries: {why}");
            return;
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}
