//! A parked call survives a controller restart: the service is stopped (everything in memory
//! dropped) and started again on the same SQLite file; the same orbits are held and the timers
//! fire at their original deadlines. The service runs on a manual clock: the tests move time
//! and see each timer fire at its deadline to the millisecond, without sleeping through it.
//!
//! The PBX side here is a pair of channels the test drives by hand through the `Pbx` trait: it
//! stands for no particular PBX, and checks only what the service does with the core and store.

use callpark_testkit as support;

use std::collections::HashSet;
use std::time::Duration;

use callpark::orbit::{OrbitRange, OrbitTable};
use callpark::park::*;
use callpark::pbx::PbxEvent;
use callpark::service::health::Health;
use callpark::service::{ManualClock, run_pool};
use callpark::store::Store;
use support::wire::Wire;
use tokio::sync::{mpsc, watch};

fn settings() -> Settings {
    Settings {
        pickup_timeout: 1_500,
        max_pickup_attempts: 1,
        ringback_ring_time: 60_000,
        on_timeout: None,
        moh: Moh::Class(None),
        bridge_timeout: 10_000,
        ..Settings::default()
    }
}

fn orbits() -> PoolOrbits {
    let t = OrbitTable::new(vec![OrbitRange {
        name: "main".into(),
        span: "701-799".parse().unwrap(),
        pool: "pbx-a".into(),
        lot: None,
    }])
    .unwrap();
    PoolOrbits::new(&t, "pbx-a")
}

fn policies() -> PolicySet {
    PolicySet::new(vec![
        PolicyRule::new("all", true, &[], &[".*".to_string()]).unwrap(),
    ])
}

struct Running {
    events: mpsc::Sender<PbxEvent>,
    commands: mpsc::Receiver<Command>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<ParkCore, callpark::service::ServiceError>>,
}

/// When the first life starts (any fixed wall time: the clock is the test's).
const T0: Millis = 1_800_000_000_000;

fn start(core: ParkCore, store: Store, clock: &ManualClock) -> Running {
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run_pool(
        core,
        store,
        Wire {
            to_service: ev_rx,
            from_service: Some(cmd_tx),
        },
        stop_rx,
        Health::default().pool("pbx-a"),
        clock.clock(),
    ));
    Running {
        events: ev_tx,
        commands: cmd_rx,
        stop,
        task,
    }
}

fn park(ch: &str) -> PbxEvent {
    PbxEvent::Call(Event::Park(ParkRequest {
        channel: ChannelId::new(ch),
        caller: Party {
            name: "Caller".into(),
            number: "200".into(),
        },
        parker: Parker {
            ids: vec!["100".into()],
            endpoint: Some("PJSIP/alice".into()),
            display: "alice".into(),
        },
        announce_to: None,
        lot: None,
        orbit: None,
        replaces: None,
    }))
}

/// The next command, which must come soon.
async fn next(svc: &mut Running) -> Command {
    tokio::time::timeout(Duration::from_secs(5), svc.commands.recv())
        .await
        .expect("a command")
        .expect("the service runs")
}

/// Every command the service gives within a short while (it has nothing more to do).
async fn drain(svc: &mut Running) -> Vec<Command> {
    let mut out = Vec::new();
    while let Ok(Some(c)) =
        tokio::time::timeout(Duration::from_millis(200), svc.commands.recv()).await
    {
        out.push(c);
    }
    out
}

fn ringbacks(cmds: &[Command]) -> Vec<ChannelId> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Originate {
                channel,
                purpose: LegPurpose::Ringback { attempt: 1 },
                ..
            } => Some(channel.clone()),
            _ => None,
        })
        .collect()
}

fn rb(ch: &str) -> ChannelId {
    ChannelId::new(ch).leg("rb1")
}

#[tokio::test]
async fn parked_calls_survive_a_restart_and_keep_their_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("callpark.db");

    // First life: park three calls at T0, retrieve none.
    let clock = ManualClock::new(T0);
    let store = Store::open(&db).await.unwrap();
    let mut svc = start(
        ParkCore::new(settings(), policies(), orbits()),
        store.clone(),
        &clock,
    );
    for c in ["c1", "c2", "c3"] {
        svc.events.send(park(c)).await.unwrap();
    }
    let mut lamps = HashSet::new();
    while lamps.len() < 3 {
        if let Command::Lamp {
            orbit,
            state: LampState::InUse,
        } = next(&mut svc).await
        {
            lamps.insert(orbit.to_string());
        }
    }
    assert_eq!(
        lamps,
        HashSet::from(["701".to_string(), "702".into(), "703".into()])
    );
    // Stopped 400 ms later, well before the 1.5 s pickup timeout.
    clock.advance(400);
    svc.stop.send(true).unwrap();
    svc.task.await.unwrap().unwrap();
    drop(svc.commands);
    store.close().await;

    // Second life, from the file alone, another 100 ms later.
    let clock = ManualClock::new(T0 + 500);
    let store = Store::open(&db).await.unwrap();
    let stored = store.parked(Some("pbx-a")).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert!(
        stored.iter().all(|(_, c)| c.deadline == T0 + 1_500),
        "deadlines are stored as absolute times"
    );
    let (core, rejected) = ParkCore::restore(
        settings(),
        policies(),
        orbits(),
        stored.into_iter().map(|(_, c)| c).collect(),
    );
    assert!(rejected.is_empty());
    let held: HashSet<String> = core.calls().map(|c| c.orbit.unwrap().to_string()).collect();
    assert_eq!(held, lamps);
    let mut svc = start(core, store.clone(), &clock);
    // A new call must not get an orbit that is still held.
    svc.events.send(park("c4")).await.unwrap();
    let cmds = drain(&mut svc).await;
    assert!(cmds.contains(&Command::Lamp {
        orbit: "704".parse().unwrap(),
        state: LampState::InUse
    }));
    assert!(ringbacks(&cmds).is_empty());
    // 1 ms before the stored deadline: nothing.
    clock.set(T0 + 1_499);
    assert!(ringbacks(&drain(&mut svc).await).is_empty(), "fired early");
    // At it: the three calls of the first life ring back, c4 (parked at T0 + 500) not yet.
    clock.set(T0 + 1_500);
    let mut fired = ringbacks(&drain(&mut svc).await);
    fired.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut want = vec![rb("c1"), rb("c2"), rb("c3")];
    want.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(fired, want);
    clock.set(T0 + 1_999);
    assert!(ringbacks(&drain(&mut svc).await).is_empty());
    clock.set(T0 + 2_000);
    assert_eq!(ringbacks(&drain(&mut svc).await), [rb("c4")]);

    svc.stop.send(true).unwrap();
    let core = svc.task.await.unwrap().unwrap();
    assert_eq!(core.calls().count(), 4);
    // The store agrees: four calls ringing back, and the log has each at its deadline.
    let stored = store.parked(None).await.unwrap();
    assert_eq!(
        stored
            .iter()
            .filter(|(_, c)| matches!(c.state, CallState::Ringback { .. }))
            .count(),
        4
    );
    let log = store.log(100).await.unwrap();
    assert_eq!(log.iter().filter(|r| r.kind == "parked").count(), 4);
    let mut at: Vec<(String, Millis)> = log
        .iter()
        .filter(|r| r.kind == "ringback_started")
        .map(|r| (r.channel.clone(), r.at))
        .collect();
    at.sort();
    assert_eq!(
        at,
        [
            ("c1".to_string(), T0 + 1_500),
            ("c2".into(), T0 + 1_500),
            ("c3".into(), T0 + 1_500),
            ("c4".into(), T0 + 2_000)
        ]
    );
}

/// After every (re)connection the service sends the lamp of each call it holds again, as the
/// call stands: a restarted PBX forgot it (FreeSWITCH keeps no presence), or a change was lost
/// with the connection.
#[tokio::test]
async fn every_held_call_is_lit_again_after_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("callpark.db")).await.unwrap();
    let clock = ManualClock::new(T0);
    let mut svc = start(
        ParkCore::new(settings(), policies(), orbits()),
        store.clone(),
        &clock,
    );
    svc.events.send(park("l1")).await.unwrap();
    drain(&mut svc).await;
    clock.set(T0 + 1_000);
    svc.events.send(park("l2")).await.unwrap();
    drain(&mut svc).await;
    // l1 rings back, l2 still waits.
    clock.set(T0 + 1_500);
    assert_eq!(ringbacks(&drain(&mut svc).await), [rb("l1")]);
    svc.events
        .send(PbxEvent::Connected {
            channels: HashSet::from([ChannelId::new("l1"), rb("l1"), ChannelId::new("l2")]),
        })
        .await
        .unwrap();
    let mut lamps: Vec<(String, LampState)> = drain(&mut svc)
        .await
        .into_iter()
        .filter_map(|c| match c {
            Command::Lamp { orbit, state } => Some((orbit.to_string(), state)),
            _ => None,
        })
        .collect();
    lamps.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        lamps,
        [
            ("701".to_string(), LampState::Ringing),
            ("702".to_string(), LampState::InUse)
        ]
    );
    svc.stop.send(true).unwrap();
    svc.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_deadline_that_passed_while_down_fires_at_once_and_reconcile_ends_vanished_calls() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("callpark.db");
    let clock = ManualClock::new(T0);
    let store = Store::open(&db).await.unwrap();
    let mut svc = start(
        ParkCore::new(settings(), policies(), orbits()),
        store.clone(),
        &clock,
    );
    svc.events.send(park("k1")).await.unwrap();
    svc.events.send(park("k2")).await.unwrap();
    let mut n = 0;
    while n < 2 {
        if let Command::Lamp {
            state: LampState::InUse,
            ..
        } = next(&mut svc).await
        {
            n += 1;
        }
    }
    svc.stop.send(true).unwrap();
    svc.task.await.unwrap().unwrap();
    store.close().await;
    // Down for longer than the pickup timeout: started again at T0 + 1.7 s.
    let clock = ManualClock::new(T0 + 1_700);
    let store = Store::open(&db).await.unwrap();
    let stored: Vec<ParkedCall> = store
        .parked(None)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let (core, _) = ParkCore::restore(settings(), policies(), orbits(), stored);
    let mut svc = start(core, store.clone(), &clock);
    // Overdue: both fire at once, without the clock moving.
    let mut fired = Vec::new();
    while fired.len() < 2 {
        fired.extend(ringbacks(&[next(&mut svc).await]));
    }
    fired.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut want = vec![rb("k1"), rb("k2")];
    want.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(fired, want);
    // The PBX reconnects and only k1 (and its ringback leg) is still there: k2 is ended.
    svc.events
        .send(PbxEvent::Connected {
            channels: HashSet::from([ChannelId::new("k1"), rb("k1")]),
        })
        .await
        .unwrap();
    loop {
        if let Command::Lamp {
            orbit,
            state: LampState::Idle,
        } = next(&mut svc).await
        {
            assert_eq!(orbit.to_string(), "702");
            break;
        }
    }
    svc.stop.send(true).unwrap();
    let core = svc.task.await.unwrap().unwrap();
    assert_eq!(
        core.calls()
            .map(|c| c.channel.0.as_str())
            .collect::<Vec<_>>(),
        vec!["k1"]
    );
    let log = store.log(100).await.unwrap();
    let at = |kind: &str, ch: &str| {
        log.iter()
            .find(|r| r.kind == kind && r.channel == ch)
            .map(|r| r.at)
    };
    assert_eq!(at("ringback_started", "k1"), Some(T0 + 1_700));
    assert_eq!(at("abandoned", "k2"), Some(T0 + 1_700));
}

fn entry(ch: &str, at: Millis) -> LogEvent {
    LogEvent {
        at,
        kind: LogKind::Parked,
        channel: ChannelId::new(ch),
        orbit: None,
        lot: None,
        detail: String::new(),
    }
}

#[tokio::test]
async fn the_log_is_pruned_of_what_keep_log_no_longer_keeps_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    const DAY: Millis = 86_400_000;
    let now = 1_700_000_000_000;
    // 5,000 entries 100 days old (more than two batches), then three of yesterday.
    let old: Vec<LogEvent> = (0..5_000)
        .map(|i| entry(&format!("old-{i}"), now - 100 * DAY + i))
        .collect();
    store.apply("pbx-a", &[], &old).await.unwrap();
    let young: Vec<LogEvent> = (0..3)
        .map(|i| entry(&format!("new-{i}"), now - DAY + i))
        .collect();
    store.apply("pbx-a", &[], &young).await.unwrap();
    let counts = store.log_counts().await.unwrap();
    assert_eq!(counts, [("pbx-a".into(), "parked".into(), 5_003)]);
    // Everything older than 90 days, by the clock given.
    let pruner = tokio::spawn(callpark::service::run_pruning(
        store.clone(),
        Duration::from_secs(90 * 86_400),
        ManualClock::new(now).clock(),
    ));
    let t = std::time::Instant::now();
    while store.oldest_log_id().await.unwrap() != Some(5_001) {
        assert!(t.elapsed() < Duration::from_secs(10), "not pruned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pruner.abort();
    assert_eq!(store.log(10).await.unwrap().len(), 3);
    assert_eq!(store.last_log_id().await.unwrap(), 5_003);
    // The metrics' counters are not the log's length.
    assert_eq!(store.log_counts().await.unwrap(), counts);
    // Nothing left to prune: none goes.
    let left = callpark::service::prune_log(&store, now - 90 * DAY, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn a_short_keep_log_is_pruned_often_enough_to_hold_little_more_than_it_keeps() {
    use callpark::service::prune_every;
    let h = Duration::from_secs(3600);
    // The shortest keep_log: every 6 minutes, so at most 66 minutes of entries are held.
    assert_eq!(prune_every(h), Duration::from_secs(360));
    assert_eq!(prune_every(5 * h), Duration::from_secs(1800));
    // Long ones: hourly, as documented.
    assert_eq!(prune_every(90 * 24 * h), h);
    assert_eq!(prune_every(10 * h), h);
}

/// Bytes of the store's write-ahead log on disk.
fn wal_bytes(db: &std::path::Path) -> u64 {
    std::fs::metadata(format!("{}-wal", db.display()))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_write_ahead_log_grown_while_readers_held_it_is_emptied_by_the_next_checkpoint() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let store = Store::open(&db).await.unwrap();
    store
        .apply("pbx-a", &[], &[entry("first", 1)])
        .await
        .unwrap();
    // A reader in the middle of a read: no checkpoint can copy what comes after its snapshot.
    let mut reader = sqlx::sqlite::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert_eq!(n, 1);
    for i in 0..200 {
        store
            .apply("pbx-a", &[], &[entry(&format!("c-{i}"), 2 + i)])
            .await
            .unwrap();
    }
    store.checkpoint_within(i64::MAX).await.unwrap();
    let grown = wal_bytes(&db);
    assert!(
        grown > 200 * 4096,
        "every commit is a frame or more: {grown}"
    );
    // The reader is done. Under the limit the log stays as it is on disk...
    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    store.checkpoint_within(i64::MAX).await.unwrap();
    assert_eq!(wal_bytes(&db), grown);
    // ...past it, it is emptied, and nothing is lost.
    store.checkpoint_within(10).await.unwrap();
    assert_eq!(wal_bytes(&db), 0);
    assert_eq!(store.last_log_id().await.unwrap(), 201);
    reader.close().await.unwrap();
}

fn pages(cmds: &[Command]) -> Vec<ChannelId> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Page { channel, .. } => Some(channel.clone()),
            _ => None,
        })
        .collect()
}

/// Park and page across a restart: the page placed in the first life is not placed again, the
/// next one fires at its stored time to the millisecond, and the count goes on where it was.
#[tokio::test]
async fn pages_go_on_after_a_restart_at_their_stored_times() {
    let paging = || Settings {
        pickup_timeout: 60_000,
        page: Some(Destination::parse("exten:8000@paging").unwrap()),
        page_repeat: 2,
        page_interval: 5_000,
        ..settings()
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("callpark.db");
    let clock = ManualClock::new(T0);
    let store = Store::open(&db).await.unwrap();
    let mut svc = start(
        ParkCore::new(paging(), policies(), orbits()),
        store.clone(),
        &clock,
    );
    svc.events.send(park("c1")).await.unwrap();
    let first = drain(&mut svc).await;
    assert_eq!(pages(&first), [ChannelId::new("c1").leg("pg1")]);
    clock.set(T0 + 5_000);
    assert_eq!(
        pages(&drain(&mut svc).await),
        [ChannelId::new("c1").leg("pg2")]
    );
    clock.set(T0 + 6_000);
    svc.stop.send(true).unwrap();
    svc.task.await.unwrap().unwrap();
    drop(svc.commands);
    store.close().await;

    // Second life: the third page is due at T0 + 10 s, as stored.
    let clock = ManualClock::new(T0 + 7_000);
    let store = Store::open(&db).await.unwrap();
    let stored: Vec<ParkedCall> = store
        .parked(Some("pbx-a"))
        .await
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert_eq!(stored[0].page.sent, 2);
    assert_eq!(stored[0].page.next, Some(T0 + 10_000));
    let (core, _) = ParkCore::restore(paging(), policies(), orbits(), stored);
    let mut svc = start(core, store.clone(), &clock);
    assert!(
        pages(&drain(&mut svc).await).is_empty(),
        "a page placed again"
    );
    clock.set(T0 + 9_999);
    assert!(pages(&drain(&mut svc).await).is_empty(), "paged early");
    clock.set(T0 + 10_000);
    assert_eq!(
        pages(&drain(&mut svc).await),
        [ChannelId::new("c1").leg("pg3")]
    );
    // The last: no fourth.
    clock.set(T0 + 20_000);
    assert!(pages(&drain(&mut svc).await).is_empty());
    svc.stop.send(true).unwrap();
    svc.task.await.unwrap().unwrap();
    let log = store.log(100).await.unwrap();
    let paged: Vec<(Millis, String)> = log
        .iter()
        .filter(|r| r.kind == "paged")
        .map(|r| (r.at, r.detail.clone()))
        .collect();
    assert_eq!(paged.len(), 3, "{paged:?}");
    assert!(
        paged
            .iter()
            .any(|(at, d)| *at == T0 + 10_000 && d.starts_with("page 3 of 3")),
        "{paged:?}"
    );
}

/// A call the PBX parks on a new connection before its channel listing comes is live,
/// whatever the listing says: the listing can be older than the park (FreeSWITCH's channel
/// table lags its channels). One the PBX said hung up, or one held from before the
/// connection that the listing leaves out, is ended. Once reconciled, later events are no
/// longer noted (nothing grows while connected).
#[tokio::test]
async fn a_call_parked_before_the_listing_came_survives_the_reconciliation() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = Store::open(&dir.path().join("callpark.db")).await.unwrap();
    let mut svc = start(
        ParkCore::new(settings(), policies(), orbits()),
        store.clone(),
        &clock,
    );
    for c in ["early", "gone"] {
        svc.events.send(park(c)).await.unwrap();
    }
    svc.events
        .send(PbxEvent::Call(Event::Hangup {
            channel: ChannelId::new("gone"),
        }))
        .await
        .unwrap();
    // The listing, older than both parks, names neither.
    svc.events
        .send(PbxEvent::Connected {
            channels: HashSet::new(),
        })
        .await
        .unwrap();
    drain(&mut svc).await;
    let held: Vec<String> = store
        .parked(None)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, c)| c.channel.to_string())
        .collect();
    assert_eq!(held, ["early"], "kept by the reconciliation");
    svc.events
        .send(PbxEvent::Disconnected {
            reason: "test".into(),
        })
        .await
        .unwrap();
    // The next connection lists nothing and told of nothing: `early` vanished meanwhile.
    svc.events
        .send(PbxEvent::Connected {
            channels: HashSet::new(),
        })
        .await
        .unwrap();
    drain(&mut svc).await;
    svc.stop.send(true).unwrap();
    svc.task.await.unwrap().unwrap();
    let log = store.log(100).await.unwrap();
    let kinds: Vec<(String, String)> = log
        .iter()
        .map(|r| (r.channel.clone(), r.kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("early".to_string(), "parked".to_string()),
            ("gone".into(), "parked".into()),
            ("gone".into(), "abandoned".into()),
            ("early".into(), "abandoned".into()),
        ],
        "`early` ended by the second reconciliation"
    );
    assert!(store.parked(None).await.unwrap().is_empty());
}
