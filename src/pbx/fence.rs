//! A node's right to send a pool's PBX anything, as the lease keeper last saw it renewed: the
//! driver checks it before each connection and each request, and drops the connection the
//! moment it runs out. It runs out by the monotonic clock, which goes on while the process is
//! frozen (SIGSTOP): a node woken after its lease ran out sends nothing, whether or not its
//! keeper has run since.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

/// Always open for a single node ([`Fence::open`]); otherwise open until the time the keeper
/// last [extended](Fence::extend_until) it to.
#[derive(Debug, Clone, Default)]
pub struct Fence(Option<Arc<Until>>);

#[derive(Debug)]
struct Until {
    base: Instant,
    /// Microseconds after `base`; 0 is closed.
    until_us: AtomicU64,
}

impl Fence {
    /// A fence that never closes: one node, no lease.
    pub fn open() -> Fence {
        Fence(None)
    }

    /// A fence closed until extended.
    pub fn closed() -> Fence {
        Fence(Some(Arc::new(Until {
            base: Instant::now(),
            until_us: AtomicU64::new(0),
        })))
    }

    /// Open until `t` (a renewal's time plus what the lease is sure to last beyond it). Never
    /// moves the end back, and never reopens a [revoked](Fence::revoke) fence.
    pub fn extend_until(&self, t: Instant) {
        if let Some(u) = &self.0 {
            let us = t.saturating_duration_since(u.base).as_micros() as u64;
            let _ = u
                .until_us
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                    (cur != u64::MAX && us > cur).then_some(us)
                });
        }
    }

    /// Closed for good: the lease is lost.
    pub fn revoke(&self) {
        if let Some(u) = &self.0 {
            u.until_us.store(u64::MAX, Ordering::Release);
        }
    }

    /// The end, if there is one; `None` for an open fence.
    fn until(&self) -> Option<Instant> {
        let u = self.0.as_ref()?;
        let us = u.until_us.load(Ordering::Acquire);
        Some(if us == u64::MAX {
            u.base
        } else {
            u.base + std::time::Duration::from_micros(us)
        })
    }

    /// Whether the node may act on the PBX now.
    pub fn valid(&self) -> bool {
        self.until().is_none_or(|t| Instant::now() < t)
    }

    /// Resolves once the fence is closed (pends for ever on an open one).
    pub async fn closed_now(&self) {
        loop {
            match self.until() {
                None => std::future::pending::<()>().await,
                Some(t) if Instant::now() >= t => return,
                Some(t) => tokio::time::sleep_until(t).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_fence_lasts_until_its_end_and_a_revoked_one_stays_closed() {
        assert!(Fence::open().valid());
        let f = Fence::closed();
        assert!(!f.valid(), "closed until extended");
        f.extend_until(Instant::now() + Duration::from_secs(2));
        assert!(f.valid());
        // An older renewal's end arriving late does not shorten it.
        f.extend_until(Instant::now() + Duration::from_secs(1));
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert!(f.valid());
        let t0 = Instant::now();
        f.closed_now().await;
        assert_eq!(Instant::now() - t0, Duration::from_millis(500));
        assert!(!f.valid());
        f.extend_until(Instant::now() + Duration::from_secs(5));
        assert!(
            f.valid(),
            "extended again after running out: a renewal came late"
        );
        f.revoke();
        assert!(!f.valid());
        f.extend_until(Instant::now() + Duration::from_secs(5));
        assert!(!f.valid(), "a revoked fence never reopens");
        f.closed_now().await;
    }
}
