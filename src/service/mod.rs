//! The running service: one task per pool drives that pool's [`ParkCore`] with the events of
//! its PBX adapter and the clock, writes every step to the store before the PBX carries out the
//! step's commands, and resumes every stored call at start.

pub mod clock;
pub mod health;
pub(crate) mod lamps;
pub(crate) mod lease;
pub mod media;
pub mod notify;
pub(crate) mod sched;

use std::collections::{HashMap, HashSet};

use thiserror::Error;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

pub use clock::{Clock, ManualClock};

use crate::config::{Config, ParkConfig};
use crate::orbit::Orbit;
use crate::park::{
    Change, ChannelId, Command, Event, LampState, Millis, Moh, OperatorError, ParkCore,
    ParkRequest, PoolOrbits, Settings, Target,
};
use crate::pbx::{Held, Pbx, PbxError, PbxEvent};
use crate::store::{Store, StoreError};
use health::Beat;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pbx(#[from] PbxError),
    #[error("pool {0}: the PBX adapter stopped")]
    AdapterGone(String),
}

/// Wall-clock time in ms since the Unix epoch (the system [`Clock`]'s reading).
pub fn now_ms() -> Millis {
    clock::system_now()
}

/// The core's settings of one lot (`[park]`, or a lot's); `moh_file` is the stored copy of
/// its custom music file.
pub(crate) fn settings_of(p: &ParkConfig, moh_file: Option<String>) -> Settings {
    let moh = if !p.music_on_hold {
        Moh::Off
    } else if let Some(f) = moh_file {
        Moh::File(f)
    } else {
        Moh::Class(p.music_on_hold_class.clone())
    };
    Settings {
        pickup_timeout: p.pickup_timeout.as_millis() as Millis,
        max_pickup_attempts: p.max_pickup_attempts,
        ringback_ring_time: p.ringback_ring_time.as_millis() as Millis,
        on_timeout: p.on_timeout.clone(),
        moh,
        bridge_timeout: crate::park::BRIDGE_TIMEOUT,
        caller_id_prefix: p.caller_id_prefix.clone(),
        on_busy_orbit: p.on_busy_orbit,
        page: p.page.clone(),
        page_repeat: p.page_repeat,
        page_interval: p.page_interval.as_millis() as Millis,
    }
}

/// Every lot's settings: the general lot's and each `[[lot]]`'s.
#[derive(Debug, Clone, Default)]
pub(crate) struct CoreSettings {
    pub general: Settings,
    pub lots: HashMap<String, Settings>,
}

/// Builds a pool's core from the store: every stored call of the pool is restored with its
/// deadline. Calls whose orbit left the configuration are ended and logged at `clock`'s time,
/// the clock the pool then runs on.
pub(crate) async fn restore_core(
    store: &Store,
    cfg: &Config,
    pool: &str,
    settings: CoreSettings,
    clock: &Clock,
) -> Result<ParkCore, StoreError> {
    let stored = store.parked(Some(pool)).await?;
    let n = stored.len();
    debug!(pool, calls = n, "parked calls read from the store");
    let (core, rejected) = ParkCore::restore(
        settings.general,
        cfg.policies.clone(),
        PoolOrbits::new(&cfg.orbits, pool),
        stored.into_iter().map(|(_, c)| c).collect(),
    );
    let core = core.with_lots(settings.lots);
    if !rejected.is_empty() {
        warn!(
            pool,
            count = rejected.len(),
            "stored calls whose orbit is no longer configured were dropped"
        );
        store
            .drop_calls(
                pool,
                &rejected,
                clock.now(),
                "orbit no longer in the configuration",
            )
            .await?;
    }
    info!(pool, restored = n - rejected.len(), "parked calls restored");
    Ok(core)
}

/// How often the event log is pruned of entries older than `[service] keep_log`, at most.
pub(crate) const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// How often a log kept for `keep` is pruned: hourly, or every tenth of `keep` when that is
/// sooner, so the store holds at most about 1.1 × `keep` of entries (a `"1h"` log pruned only
/// hourly would hold up to two hours).
pub fn prune_every(keep: std::time::Duration) -> std::time::Duration {
    PRUNE_EVERY
        .min(keep / 10)
        .max(std::time::Duration::from_secs(1))
}
/// Entries deleted per transaction: a pool's commit waits at most this many deletions for
/// SQLite's write lock. `cargo bench --bench metrics` (2 million entries, channel names
/// scattered over the index as real ones are): 500 take 3.7 ms (p99 10 ms) and put the pool's
/// commit p99 at 5 ms beside them (2 ms alone); 2,000 took 11 ms and put it at 19 ms.
pub const PRUNE_BATCH: i64 = 500;
/// The pause between two batches, in which the pools commit freely.
pub const PRUNE_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Deletes the log entries logged before `before` in batches of [`PRUNE_BATCH`], `pause`
/// apart; returns how many went. `callpark log` and `backup` see what is left.
pub async fn prune_log(
    store: &Store,
    before: Millis,
    pause: std::time::Duration,
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = store.prune_log(before, PRUNE_BATCH).await?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
        tokio::time::sleep(pause).await;
    }
}

/// Prunes the event log at start and every [`prune_every`] of the entries older than `keep`
/// by `clock`; runs until dropped. A failed prune is logged and tried again next time: the
/// log only grows meanwhile.
pub async fn run_pruning(store: Store, keep: std::time::Duration, clock: Clock) {
    let mut every = tokio::time::interval(prune_every(keep));
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let before = clock.now() - keep.as_millis() as Millis;
        match prune_log(&store, before, PRUNE_PAUSE).await {
            Ok(0) => {}
            Ok(n) => info!(entries = n, "event log: entries older than keep_log pruned"),
            Err(e) => warn!(
                "event log: pruning failed ({e}); trying again in {}",
                humantime::format_duration(prune_every(keep))
            ),
        }
    }
}

/// An operator's request to a pool (the admin API), answered once the step is in the store.
#[derive(Debug)]
pub enum Control {
    /// Ring `to` with the call on `orbit`, and bridge them when it answers.
    Deliver {
        orbit: Orbit,
        to: Target,
        label: String,
        reply: oneshot::Sender<Result<(), OperatorError>>,
    },
    /// Hang up the call on `orbit`.
    HangUp {
        orbit: Orbit,
        reply: oneshot::Sender<Result<(), OperatorError>>,
    },
}

/// Drives one pool until `shutdown` turns true (or its sender is dropped). Returns the core so
/// callers (tests) can look. The loop reports every turn on `beat`, and that the pool is ready
/// once the PBX is connected and the calls reconciled.
pub async fn run_pool<P: Pbx>(
    core: ParkCore,
    store: Store,
    pbx: P,
    shutdown: watch::Receiver<bool>,
    beat: Beat,
    clock: Clock,
) -> Result<ParkCore, ServiceError> {
    run_pool_controlled(core, store, pbx, shutdown, beat, clock, Links::default()).await
}

/// What links one pool's loop to the rest of `callpark run`: operators' requests, and the
/// busy lamps of the other pools. The requests' receiver is lent: a pool driven under a lease
/// keeps it across its terms.
#[derive(Debug, Default)]
pub(crate) struct Links<'a> {
    pub control: Option<&'a mut mpsc::Receiver<Control>>,
    pub lamps: Option<lamps::LampBoard>,
}

/// [`run_pool`] that also takes operators' requests from `control`.
pub(crate) async fn run_pool_controlled<P: Pbx>(
    mut core: ParkCore,
    store: Store,
    pbx: P,
    mut shutdown: watch::Receiver<bool>,
    beat: Beat,
    clock: Clock,
    links: Links<'_>,
) -> Result<ParkCore, ServiceError> {
    let Links {
        mut control,
        lamps: board,
    } = links;
    let mut others = board.as_ref().map(|b| b.subscribe());
    let pool = pbx.name().to_string();
    let (ev_tx, mut ev_rx) = mpsc::channel::<PbxEvent>(1024);
    let (cmd_tx, cmd_rx) = mpsc::channel::<Command>(4096);
    let held = Held::new(
        core.calls()
            .filter(|c| is_held(c))
            .map(|c| c.channel.clone()),
    );
    let adapter = tokio::spawn(pbx.run(ev_tx, cmd_rx, held.clone()));
    let mut run = PoolRun {
        pool: &pool,
        store: &store,
        commands: &cmd_tx,
        clock: &clock,
        beat: &beat,
        held: &held,
        board: board.as_ref(),
    };
    // Deadlines that passed while callpark was down fire at once.
    let cmds = core.handle_timeout(clock.now());
    run.step(&mut core, cmds).await?;
    // The loop turns at least this often even with no event and no deadline, so that a loop
    // whose last turn is old is known to be stuck inside a step, not waiting for work. Delay:
    // after a long step one turn is enough, not a burst of catch-up ticks.
    // Channels the PBX told of on the connection being reconciled, before its listing came:
    // the listing may be older than their events (FreeSWITCH's channel table lags; an ARI
    // listing can be answered before a StasisStart already on its way), so a call parked
    // meanwhile is live whatever the listing says. Its end, if it ends, comes on this
    // connection too.
    let mut told: HashSet<ChannelId> = HashSet::new();
    // Whether the connection was reconciled: only events before that are noted.
    let mut reconciled = false;
    let mut heartbeat = tokio::time::interval(beat.turn_every());
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        beat.turned(Instant::now());
        let next = core.next_deadline();
        let deadline = async {
            match next {
                Some(t) => clock.sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = ev_rx.recv() => match ev {
                Some(PbxEvent::Call(e)) => {
                    debug!(pool, event = ?e, "pbx event");
                    if !reconciled {
                        note_told(&mut told, &e);
                    }
                    let cmds = core.handle(clock.now(), e);
                    run.step(&mut core, cmds).await?;
                }
                Some(PbxEvent::Found(e)) => {
                    if !reconciled {
                        note_told(&mut told, &e);
                    }
                    run.found(&mut core, e).await?
                }
                Some(PbxEvent::Connected { mut channels }) => {
                    info!(pool, channels = channels.len(), "PBX connected; reconciling");
                    channels.extend(std::mem::take(&mut told));
                    reconciled = true;
                    run.reconcile(&mut core, &channels).await?;
                    run.relight(&core).await?;
                    run.relight_others().await?;
                    beat.ready();
                    beat.connected();
                    info!(pool, calls = core.calls().count(), "reconciled: every call held is adopted");
                }
                Some(PbxEvent::Disconnected { reason }) => {
                    told.clear();
                    reconciled = false;
                    beat.disconnected();
                    warn!(pool, %reason, "PBX connection lost; parked calls keep their timers");
                }
                None => {
                    return match adapter.await {
                        Ok(Err(e)) => Err(e.into()),
                        _ => Err(ServiceError::AdapterGone(pool.clone())),
                    };
                }
            },
            _ = deadline => {
                let cmds = core.handle_timeout(clock.now());
                run.step(&mut core, cmds).await?;
            }
            Some(c) = async {
                match control.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let now = clock.now();
                let (result, reply) = match c {
                    Control::Deliver { orbit, to, label, reply } => {
                        (core.deliver(now, orbit, to, &label), reply)
                    }
                    Control::HangUp { orbit, reply } => (core.hang_up(now, orbit), reply),
                };
                match result {
                    Ok(cmds) => {
                        run.step(&mut core, cmds).await?;
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            shown = async {
                match others.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match shown {
                Ok(s) if s.pool != pool => {
                    run.send_raw(vec![Command::Lamp { orbit: s.orbit, state: s.state }]).await?;
                }
                Ok(_) => {}
                // Behind: what is lit now, whole (lamps only repeat a state).
                Err(broadcast::error::RecvError::Lagged(_)) => run.relight_others().await?,
                Err(broadcast::error::RecvError::Closed) => others = None,
            },
            _ = heartbeat.tick() => beat.turned(Instant::now()),
            changed = shutdown.changed() => {
                // Err: the sender is gone, so nobody can ask us to stop any more, and
                // `changed()` would return Err at once on every turn: stop instead of spinning.
                if changed.is_err() || *shutdown.borrow() { break; }
            }
        }
    }
    drop(cmd_tx);
    let _ = adapter.await;
    Ok(core)
}

struct PoolRun<'a> {
    pool: &'a str,
    store: &'a Store,
    commands: &'a mpsc::Sender<Command>,
    clock: &'a Clock,
    beat: &'a Beat,
    held: &'a Held,
    /// Where this pool shows its lamps to the others, when there are others.
    board: Option<&'a lamps::LampBoard>,
}

/// Keeps `told` as the channels there by the events of the connection being reconciled.
fn note_told(told: &mut HashSet<ChannelId>, e: &Event) {
    match e.channel() {
        (ch, true) => {
            told.insert(ch.clone());
        }
        (ch, false) => {
            told.remove(ch);
        }
    }
}

/// Parked and nothing more: no leg of callpark's under way, nothing asked of the PBX.
fn is_held(c: &crate::park::ParkedCall) -> bool {
    matches!(c.state, crate::park::CallState::Parked)
}

impl PoolRun<'_> {
    /// Persists the step, then hands its commands to the adapter (write-ahead: a crash between
    /// the two leaves the store ahead of the PBX, which reconciliation mends). Only the
    /// commands that put a call on hold go out before the commit
    /// ([`Command::may_precede_commit`]): the caller hears music without waiting on the disk.
    async fn step(&mut self, core: &mut ParkCore, cmds: Vec<Command>) -> Result<(), ServiceError> {
        let changes = core.drain_changes();
        let log = core.drain_log();
        for e in &log {
            info!(pool = self.pool, kind = e.kind.as_str(), channel = %e.channel,
                  orbit = e.orbit.map(|o| o.to_string()).unwrap_or_default(),
                  lot = e.lot.as_deref().unwrap_or(crate::park::GENERAL_LOT),
                  detail = %e.detail, "park event");
        }
        let (early, late): (Vec<Command>, Vec<Command>) =
            cmds.into_iter().partition(Command::may_precede_commit);
        self.send(early).await?;
        let t0 = Instant::now();
        self.store.apply(self.pool, &changes, &log).await?;
        if !changes.is_empty() || !log.is_empty() {
            self.beat.committed(t0.elapsed());
        }
        for c in &changes {
            match c {
                Change::Upsert(call) => self.held.set(&call.channel, is_held(call)),
                Change::Remove(ch) => self.held.set(ch, false),
            }
        }
        self.send(late).await
    }

    async fn send(&mut self, cmds: Vec<Command>) -> Result<(), ServiceError> {
        if let Some(board) = self.board {
            for c in &cmds {
                if let Command::Lamp { orbit, state } = c {
                    board.show(self.pool, *orbit, *state);
                }
            }
        }
        self.send_raw(cmds).await
    }

    /// Hands commands to the adapter as they are: another pool's lamps are not shown again
    /// as this one's.
    async fn send_raw(&mut self, cmds: Vec<Command>) -> Result<(), ServiceError> {
        for c in cmds {
            if self.commands.send(c).await.is_err() {
                return Err(ServiceError::AdapterGone(self.pool.to_string()));
            }
        }
        Ok(())
    }

    /// A channel found in callpark's hands on (re)connecting. The core takes it as the event
    /// it is (a repeat of what it knows changes nothing, or asks again for a bridge that never
    /// came). A call the store says callpark hung up (the hang-up was written, then the
    /// connection or the process went before the PBX had it) is hung up again instead of
    /// parked a second time, with a second round of timers: whether it came as a park or, a
    /// free orbit dialled, as a retrieve.
    async fn found(&mut self, core: &mut ParkCore, e: Event) -> Result<(), ServiceError> {
        if let Event::Park(ParkRequest { channel, .. }) | Event::Retrieve { channel, .. } = &e {
            if !core.knows(channel) && self.store.hung_up(channel).await? {
                warn!(pool = self.pool, channel = %channel, "found a call callpark had hung up; hanging it up again");
                return self
                    .send(vec![Command::Hangup {
                        channel: channel.clone(),
                    }])
                    .await;
            }
        }
        // A bridge found between channels the core does not know is somebody else's call.
        let adopting = match &e {
            Event::Park(ParkRequest { channel, .. })
            | Event::Retrieve { channel, .. }
            | Event::Answered { channel } => !core.knows(channel),
            _ => false,
        };
        if !adopting {
            debug!(pool = self.pool, event = ?e, "found on connecting, known");
        } else {
            info!(pool = self.pool, event = ?e, "found in callpark's hands on connecting; adopting it");
        }
        let cmds = core.handle(self.clock.now(), e);
        self.step(core, cmds).await
    }

    /// Sends the lamp of every call still parked after a (re)connection: the PBX may have
    /// restarted and forgotten it (FreeSWITCH keeps no presence; an Asterisk restored from an
    /// older astdb shows a stale state), or missed a change sent while the connection was down.
    async fn relight(&mut self, core: &ParkCore) -> Result<(), ServiceError> {
        let lamps: Vec<Command> = core
            .calls()
            .filter_map(|c| {
                c.orbit.map(|orbit| Command::Lamp {
                    orbit,
                    state: LampState::of(&c.state),
                })
            })
            .collect();
        if !lamps.is_empty() {
            debug!(
                pool = self.pool,
                count = lamps.len(),
                "lamps re-sent after connecting"
            );
        }
        self.send(lamps).await
    }

    /// Sends the lamps other pools have lit, after a (re)connection or when this loop fell
    /// behind their changes.
    async fn relight_others(&mut self) -> Result<(), ServiceError> {
        let Some(board) = self.board else {
            return Ok(());
        };
        let lamps: Vec<Command> = board
            .lit_elsewhere(self.pool)
            .into_iter()
            .map(|(orbit, state)| Command::Lamp { orbit, state })
            .collect();
        self.send_raw(lamps).await
    }

    /// Ends what vanished from the PBX while we were not looking.
    async fn reconcile(
        &mut self,
        core: &mut ParkCore,
        live: &HashSet<ChannelId>,
    ) -> Result<(), ServiceError> {
        let mut gone = Vec::new();
        for call in core.calls() {
            if !live.contains(&call.channel) {
                gone.push(call.channel.clone());
            } else if let Some(leg) = call.state.leg().filter(|l| !live.contains(*l)) {
                gone.push(leg.clone());
            }
        }
        for ch in gone {
            warn!(pool = self.pool, channel = %ch, "channel vanished while disconnected");
            let cmds = core.handle(self.clock.now(), Event::Hangup { channel: ch });
            self.step(core, cmds).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::park::ParkedCall;

    fn config(first: &str, last: &str) -> Config {
        Config::from_toml(
            &format!(
                "[[pbx]]\nname = \"pbx-a\"\nkind = \"asterisk\"\naddress = \"http://127.0.0.1:8088\"\n\n\
                 [[orbit_range]]\nname = \"main\"\nfirst = \"{first}\"\nlast = \"{last}\"\npool = \"pbx-a\"\n"
            ),
            "test.toml",
        )
        .unwrap()
    }

    fn parked(ch: &str, orbit: &str) -> ParkedCall {
        crate::store::tests::call(ch, orbit, 1_000)
    }

    /// A call whose orbit left the configuration while callpark was stopped is ended when the
    /// pool is restored, and logged at the time of the pool's clock (time is an input).
    #[tokio::test]
    async fn a_call_whose_orbit_left_the_configuration_is_dropped_at_the_clocks_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let up = |c: ParkedCall| Change::Upsert(Box::new(c));
        store
            .apply(
                "pbx-a",
                &[up(parked("kept", "701")), up(parked("gone", "799"))],
                &[],
            )
            .await
            .unwrap();
        // 799 is no longer in the table.
        let cfg = config("700", "749");
        let settings = CoreSettings {
            general: settings_of(&cfg.park, None),
            lots: HashMap::new(),
        };
        let clock = ManualClock::new(1_234_567).clock();
        let core = restore_core(&store, &cfg, "pbx-a", settings, &clock)
            .await
            .unwrap();
        assert!(core.call(&ChannelId::new("kept")).is_some());
        assert!(core.call(&ChannelId::new("gone")).is_none());
        let left: Vec<String> = store
            .parked(Some("pbx-a"))
            .await
            .unwrap()
            .into_iter()
            .map(|(_, c)| c.channel.as_str().to_string())
            .collect();
        assert_eq!(left, ["kept"]);
        let log = store.log(10).await.unwrap();
        let row = log.iter().find(|r| r.channel == "gone").expect("logged");
        assert_eq!(row.at, 1_234_567);
        assert_eq!(row.orbit.as_deref(), Some("799"));
    }
}
