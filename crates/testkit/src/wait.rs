//! Waiting for what a PBX or callpark does, with a bound.

use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Waits until `f` gives `Some`, polling every 100 ms; panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if t0.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first item after `mark` of a list a reader task appends to (and notifies `news` of)
/// that `pred` accepts; only what arrived since the last look is scanned again. Panics with
/// `what` after `timeout`.
pub async fn wait_in<T: Clone>(
    list: &std::sync::Mutex<Vec<T>>,
    news: &Notify,
    mark: usize,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&T) -> bool,
) -> T {
    let end = Instant::now() + timeout;
    let mut from = mark;
    loop {
        let notified = news.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let items = list.lock().unwrap();
            if let Some(m) = items[from..].iter().find(|m| pred(m)) {
                return m.clone();
            }
            from = items.len();
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
    }
}
