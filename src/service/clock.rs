//! The service's clock. Deadlines are absolute wall-clock times (ms since the Unix epoch) so a
//! restart resumes each timer; the clock gives `now` for the core and waits for the next
//! deadline. In production it is the system clock; tests drive a manual one, so a timer test
//! says "advance 1,499 ms: nothing; 1 ms more: the ringback" instead of sleeping and allowing
//! for scheduling slack.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::park::Millis;

/// Wall-clock time in ms since the Unix epoch.
pub(crate) fn system_now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
pub struct Clock(Arc<Source>);

#[derive(Debug)]
enum Source {
    System,
    /// Moves only when told to ([`Clock::advance`]).
    Manual(watch::Sender<Millis>),
}

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(Source::System))
    }

    /// A clock that starts at `start` and moves only by [`Clock::advance`] / [`Clock::set`].
    pub fn manual(start: Millis) -> Clock {
        Clock(Arc::new(Source::Manual(watch::channel(start).0)))
    }

    pub fn now(&self) -> Millis {
        match &*self.0 {
            Source::System => system_now(),
            Source::Manual(t) => *t.borrow(),
        }
    }

    /// Returns once the clock reads `at` or later. Cancel-safe.
    pub async fn sleep_until(&self, at: Millis) {
        match &*self.0 {
            Source::System => {
                // Re-read after waking: the wall clock may have been stepped meanwhile.
                loop {
                    let left = at - system_now();
                    if left <= 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(left as u64)).await;
                }
            }
            Source::Manual(t) => {
                let mut rx = t.subscribe();
                // Err: the clock is gone with its owner; nothing will move it again.
                if rx.wait_for(|now| *now >= at).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Moves a manual clock forward. Panics on the system clock: that is a test's mistake.
    pub fn advance(&self, ms: Millis) {
        self.set(self.now() + ms);
    }

    /// Sets a manual clock (it never moves back).
    pub fn set(&self, to: Millis) {
        match &*self.0 {
            Source::System => panic!("the system clock cannot be set"),
            Source::Manual(t) => {
                t.send_modify(|now| *now = (*now).max(to));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_exactly_when_advanced_to_the_deadline() {
        let c = Clock::manual(1_000);
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.sleep_until(2_500).await }
        });
        c.advance(1_499);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "woke 1 ms early");
        c.advance(1);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woke at the deadline")
            .unwrap();
        c.set(0);
        assert_eq!(c.now(), 2_500, "never moves back");
    }

    #[tokio::test]
    async fn the_system_clock_returns_at_once_for_a_past_deadline() {
        let c = Clock::system();
        tokio::time::timeout(Duration::from_secs(1), c.sleep_until(c.now() - 10))
            .await
            .expect("past deadline");
    }
}
