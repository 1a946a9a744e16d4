//! Liveness of the pool loops, shared between the pool tasks ([`super::run_pool`]) and the
//! systemd notifier ([`super::notify`]).
//!
//! A pool loop records every turn on its [`Beat`]; it turns at least every
//! [`Health::turn_every`] even when idle, so a loop whose last turn is much older than that is
//! stuck inside a step (a store write or a command send that does not return), not waiting
//! for work. Times are [`tokio::time::Instant`]s so that tests can pause the clock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How often an idle pool loop turns when nothing asks for a shorter period.
pub(crate) const TURN_EVERY: Duration = Duration::from_secs(1);

/// Every pool's liveness. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    turn_every: Duration,
    pools: Mutex<BTreeMap<String, Arc<PoolState>>>,
}

#[derive(Debug)]
struct PoolState {
    last_turn: Mutex<Instant>,
    ready: AtomicBool,
    /// Connected to its PBX now, and how many times it connected (the metrics).
    connected: AtomicBool,
    connects: std::sync::atomic::AtomicU64,
    /// Store commit durations: a count per bucket of [`COMMIT_BUCKETS`] (the last: above
    /// them all), and the sum in microseconds.
    commits: [std::sync::atomic::AtomicU64; COMMIT_BUCKETS.len() + 1],
    commit_us: std::sync::atomic::AtomicU64,
}

/// Upper bounds (seconds) of the store-commit histogram's buckets.
pub(crate) const COMMIT_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// One pool's store commits: cumulative counts per bucket of `COMMIT_BUCKETS` (then all),
/// and the sum of their durations in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Commits {
    pub cumulative: Vec<u64>,
    pub sum_secs: f64,
}

/// One pool's side of [`Health`]: what its loop reports.
#[derive(Clone, Debug)]
pub struct Beat {
    state: Arc<PoolState>,
    turn_every: Duration,
}

/// The locks only guard a plain value that every writer sets in one assignment, so a panic
/// while one was held cannot leave it half-written: a poisoned lock is used as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for Health {
    fn default() -> Self {
        Health::new(TURN_EVERY)
    }
}

impl Health {
    /// Pool loops will be asked to turn at least every `turn_every` (at least 1 ms: a
    /// zero period would make `tokio::time::interval` panic).
    pub fn new(turn_every: Duration) -> Health {
        Health {
            inner: Arc::new(Inner {
                turn_every: turn_every.max(Duration::from_millis(1)),
                pools: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The period an idle pool loop turns at.
    pub fn turn_every(&self) -> Duration {
        self.inner.turn_every
    }

    /// Registers pool `name` (not ready, turned now) and returns its beat; a pool registered
    /// before gets a beat on the same state.
    pub fn pool(&self, name: &str) -> Beat {
        let state = lock(&self.inner.pools)
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(PoolState {
                    last_turn: Mutex::new(Instant::now()),
                    ready: AtomicBool::new(false),
                    connected: AtomicBool::new(false),
                    connects: Default::default(),
                    commits: Default::default(),
                    commit_us: Default::default(),
                })
            })
            .clone();
        Beat {
            state,
            turn_every: self.inner.turn_every,
        }
    }

    /// Whether every registered pool has been connected and restored. False while no pool is
    /// registered: a service without pools has nothing to be ready for yet.
    pub fn all_ready(&self) -> bool {
        let pools = lock(&self.inner.pools);
        !pools.is_empty() && pools.values().all(|p| p.ready.load(Ordering::Acquire))
    }

    /// The pools not (yet) connected and restored, by name.
    pub(crate) fn not_ready(&self) -> Vec<String> {
        lock(&self.inner.pools)
            .iter()
            .filter(|(_, p)| !p.ready.load(Ordering::Acquire))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Each pool's connection: (name, connected now, connections so far).
    pub fn connections(&self) -> Vec<(String, bool, u64)> {
        lock(&self.inner.pools)
            .iter()
            .map(|(n, p)| {
                (
                    n.clone(),
                    p.connected.load(Ordering::Acquire),
                    p.connects.load(Ordering::Acquire),
                )
            })
            .collect()
    }

    /// Each pool's store commits so far.
    pub fn commits(&self) -> Vec<(String, Commits)> {
        lock(&self.inner.pools)
            .iter()
            .map(|(n, p)| {
                let mut total = 0;
                let cumulative = p
                    .commits
                    .iter()
                    .map(|c| {
                        total += c.load(Ordering::Acquire);
                        total
                    })
                    .collect();
                let sum_secs = p.commit_us.load(Ordering::Acquire) as f64 / 1e6;
                (
                    n.clone(),
                    Commits {
                        cumulative,
                        sum_secs,
                    },
                )
            })
            .collect()
    }

    /// The pools whose loop last turned more than `max_age` before `now`, by name.
    pub fn stuck(&self, now: Instant, max_age: Duration) -> Vec<String> {
        lock(&self.inner.pools)
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(*lock(&p.last_turn)) > max_age)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

impl Beat {
    /// The loop went round at `now`. An earlier `now` than the one recorded (two tasks
    /// racing) does not move the record back.
    pub fn turned(&self, now: Instant) {
        let mut last = lock(&self.state.last_turn);
        if now > *last {
            *last = now;
        }
    }

    /// The pool is connected to its PBX and its calls are reconciled. It stays ready across
    /// later reconnects: readiness is what systemd waits for once, at start.
    pub fn ready(&self) {
        self.state.ready.store(true, Ordering::Release);
    }

    /// A step was committed to the store in `took`.
    pub fn committed(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = COMMIT_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(COMMIT_BUCKETS.len());
        self.state.commits[i].fetch_add(1, Ordering::AcqRel);
        self.state
            .commit_us
            .fetch_add(took.as_micros() as u64, Ordering::AcqRel);
    }

    /// The PBX connection is up (again).
    pub fn connected(&self) {
        self.state.connects.fetch_add(1, Ordering::AcqRel);
        self.state.connected.store(true, Ordering::Release);
    }

    /// The PBX connection is down.
    pub fn disconnected(&self) {
        self.state.connected.store(false, Ordering::Release);
    }

    /// The period the pool's loop must turn at when idle.
    pub fn turn_every(&self) -> Duration {
        self.turn_every
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[tokio::test(start_paused = true)]
    async fn a_pool_is_stuck_once_its_loop_has_not_turned_for_max_age() {
        let health = Health::default();
        let a = health.pool("pbx-a");
        let _b = health.pool("pbx-b");
        let t0 = Instant::now();
        assert!(health.stuck(t0, MS(500)).is_empty());
        // Exactly max_age is not yet stuck; a moment more is.
        assert!(health.stuck(t0 + MS(500), MS(500)).is_empty());
        assert_eq!(health.stuck(t0 + MS(501), MS(500)), ["pbx-a", "pbx-b"]);
        a.turned(t0 + MS(400));
        assert_eq!(health.stuck(t0 + MS(900), MS(500)), ["pbx-b"]);
        assert_eq!(health.stuck(t0 + MS(901), MS(500)), ["pbx-a", "pbx-b"]);
        assert_eq!(health.stuck(t0 + MS(901), MS(901)), Vec::<String>::new());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_turn_does_not_move_the_record_back() {
        let health = Health::default();
        let a = health.pool("pbx-a");
        let t0 = Instant::now();
        a.turned(t0 + MS(1000));
        a.turned(t0 + MS(10));
        assert!(health.stuck(t0 + MS(1400), MS(500)).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn registration_counts_as_a_turn() {
        let health = Health::default();
        tokio::time::advance(MS(5000)).await;
        let _a = health.pool("pbx-a");
        assert!(health.stuck(Instant::now(), MS(500)).is_empty());
    }

    #[test]
    fn all_ready_needs_every_pool_and_at_least_one() {
        let health = Health::default();
        assert!(!health.all_ready(), "no pool: nothing is ready");
        let a = health.pool("pbx-a");
        let b = health.pool("pbx-b");
        assert!(!health.all_ready());
        a.ready();
        assert!(!health.all_ready());
        assert_eq!(health.not_ready(), ["pbx-b"]);
        b.ready();
        assert!(health.all_ready());
        assert!(health.not_ready().is_empty());
    }

    #[test]
    fn the_same_name_shares_one_state() {
        let health = Health::default();
        let a = health.pool("pbx-a");
        let again = health.pool("pbx-a");
        again.ready();
        assert!(health.all_ready());
        drop(a);
        assert_eq!(health.not_ready(), Vec::<String>::new());
    }

    #[test]
    fn the_turn_period_reaches_the_beats_and_is_never_zero() {
        let health = Health::new(MS(250));
        assert_eq!(health.pool("p").turn_every(), MS(250));
        assert_eq!(Health::default().turn_every(), TURN_EVERY);
        assert_eq!(Health::new(Duration::ZERO).turn_every(), MS(1));
    }
}
