//! The service's clock. Deadlines are absolute wall-clock times (ms since the Unix epoch) so a
//! restart resumes each timer; the clock gives `now` for the core and waits for the next
//! deadline. In production it is the system clock; tests drive a [`ManualClock`], so a timer
//! test says "advance 1,499 ms: nothing; 1 ms more: the ringback" instead of sleeping and
//! allowing for scheduling slack. Only a `ManualClock` can be moved: the [`Clock`] the service
//! runs on only reads time, so the system clock cannot be set by mistake.

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

/// The time the service runs on: the system's, or a [`ManualClock`]'s. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Clock(Source);

#[derive(Debug, Clone)]
enum Source {
    System,
    /// Reads a [`ManualClock`]: moves only when it is moved.
    Manual(watch::Receiver<Millis>),
}

impl Clock {
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    pub fn now(&self) -> Millis {
        match &self.0 {
            Source::System => system_now(),
            Source::Manual(t) => *t.borrow(),
        }
    }

    /// Returns once the clock reads `at` or later. Cancel-safe.
    pub async fn sleep_until(&self, at: Millis) {
        match &self.0 {
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
                let mut rx = t.clone();
                // Err: the manual clock is gone; nothing will move it again.
                if rx.wait_for(|now| *now >= at).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// A clock that starts at a given time and moves only when told to: a test's. The service
/// runs on the [`Clock`] that reads it ([`ManualClock::clock`]).
#[derive(Debug)]
pub struct ManualClock(watch::Sender<Millis>);

impl ManualClock {
    pub fn new(start: Millis) -> ManualClock {
        ManualClock(watch::channel(start).0)
    }

    /// A clock that reads this one, for the service to run on.
    pub fn clock(&self) -> Clock {
        Clock(Source::Manual(self.0.subscribe()))
    }

    pub fn now(&self) -> Millis {
        *self.0.borrow()
    }

    /// Moves the clock forward.
    pub fn advance(&self, ms: Millis) {
        self.set(self.now() + ms);
    }

    /// Sets the clock (it never moves back).
    pub fn set(&self, to: Millis) {
        self.0.send_modify(|now| *now = (*now).max(to));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_exactly_when_advanced_to_the_deadline() {
        let manual = ManualClock::new(1_000);
        let waiter = tokio::spawn({
            let c = manual.clock();
            async move { c.sleep_until(2_500).await }
        });
        manual.advance(1_499);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "woke 1 ms early");
        manual.advance(1);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woke at the deadline")
            .unwrap();
        manual.set(0);
        assert_eq!(manual.now(), 2_500, "never moves back");
        assert_eq!(manual.clock().now(), 2_500);
    }

    #[tokio::test]
    async fn the_system_clock_returns_at_once_for_a_past_deadline() {
        let c = Clock::system();
        tokio::time::timeout(Duration::from_secs(1), c.sleep_until(c.now() - 10))
            .await
            .expect("past deadline");
    }
}
