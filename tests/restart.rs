//! A parked call survives a controller restart: the service is stopped (everything in memory
//! dropped) and started again on the same SQLite file; the same orbits are held and the timers
//! fire at their original deadlines.
//!
//! The PBX side here is a pair of channels the test drives by hand through the `Pbx` trait: it
//! stands for no particular PBX, and checks only what the service does with the core and store.

use std::collections::HashSet;
use std::time::Duration;

use callpark::orbit::{OrbitRange, OrbitTable};
use callpark::park::*;
use callpark::pbx::{Pbx, PbxError, PbxEvent};
use callpark::service::health::Health;
use callpark::service::{now_ms, run_pool};
use callpark::store::Store;
use tokio::sync::{mpsc, watch};

struct Wire {
    to_service: mpsc::Receiver<PbxEvent>,
    from_service: mpsc::Sender<Command>,
}

impl Pbx for Wire {
    fn name(&self) -> &str {
        "pbx-a"
    }

    async fn run(
        mut self,
        events: mpsc::Sender<PbxEvent>,
        mut commands: mpsc::Receiver<Command>,
    ) -> Result<(), PbxError> {
        loop {
            tokio::select! {
                e = self.to_service.recv() => match e {
                    Some(e) => { if events.send(e).await.is_err() { return Ok(()); } }
                    None => return Ok(()),
                },
                c = commands.recv() => match c {
                    Some(c) => { let _ = self.from_service.send(c).await; }
                    None => return Ok(()),
                },
            }
        }
    }
}

fn settings() -> Settings {
    Settings {
        pickup_timeout: 1_500,
        max_pickup_attempts: 1,
        ringback_ring_time: 60_000,
        on_timeout: None,
        moh: Moh::Class(None),
        bridge_timeout: 10_000,
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

fn start(core: ParkCore, store: Store) -> Running {
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run_pool(
        core,
        store,
        Wire {
            to_service: ev_rx,
            from_service: cmd_tx,
        },
        stop_rx,
        Health::default().pool("pbx-a"),
    ));
    Running {
        events: ev_tx,
        commands: cmd_rx,
        stop,
        task,
    }
}

fn park(ch: &str) -> PbxEvent {
    PbxEvent::Call(Event::Park {
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
    })
}

#[tokio::test]
async fn parked_calls_survive_a_restart_and_keep_their_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("callpark.db");

    // First life: park three calls, retrieve none.
    let store = Store::open(&db).await.unwrap();
    let mut svc = start(
        ParkCore::new(settings(), policies(), orbits()),
        store.clone(),
    );
    for c in ["c1", "c2", "c3"] {
        svc.events.send(park(c)).await.unwrap();
    }
    let mut lamps = HashSet::new();
    while lamps.len() < 3 {
        if let Some(Command::Lamp {
            orbit,
            in_use: true,
        }) = svc.commands.recv().await
        {
            lamps.insert(orbit.to_string());
        }
    }
    assert_eq!(
        lamps,
        HashSet::from(["701".to_string(), "702".into(), "703".into()])
    );
    // Stop well before the 1.5 s pickup timeout.
    svc.stop.send(true).unwrap();
    svc.task.await.unwrap().unwrap();
    drop(svc.commands);
    store.close().await;

    // Second life, from the file alone.
    let store = Store::open(&db).await.unwrap();
    let stored = store.parked(Some("pbx-a")).await.unwrap();
    assert_eq!(stored.len(), 3);
    let deadlines: Vec<(String, Millis)> = stored
        .iter()
        .map(|(_, c)| (c.channel.0.clone(), c.deadline))
        .collect();
    let (core, rejected) = ParkCore::restore(
        settings(),
        policies(),
        orbits(),
        stored.into_iter().map(|(_, c)| c).collect(),
    );
    assert!(rejected.is_empty());
    let held: HashSet<String> = core.calls().map(|c| c.orbit.unwrap().to_string()).collect();
    assert_eq!(held, lamps);
    let mut svc = start(core, store.clone());
    // A new call must not get an orbit that is still held.
    svc.events.send(park("c4")).await.unwrap();
    let mut ringbacks = Vec::new();
    let mut new_orbit = None;
    while ringbacks.len() < 3 || new_orbit.is_none() {
        let c = tokio::time::timeout(Duration::from_secs(10), svc.commands.recv())
            .await
            .expect("ringbacks fire")
            .unwrap();
        match c {
            Command::Originate {
                channel,
                purpose: LegPurpose::Ringback { attempt: 1 },
                ..
            } => ringbacks.push((channel, now_ms())),
            Command::Lamp {
                orbit,
                in_use: true,
            } => new_orbit = Some(orbit.to_string()),
            _ => {}
        }
    }
    assert_eq!(new_orbit.as_deref(), Some("704"));
    // A ringback leg's id is derived from its parked call's.
    let parked_of = |leg: &ChannelId| {
        ["c1", "c2", "c3", "c4"]
            .into_iter()
            .find(|c| &ChannelId::new(*c).leg("rb1") == leg)
            .expect("a ringback of a parked call")
    };
    for (ch, fired) in ringbacks
        .iter()
        .map(|(l, t)| (parked_of(l), t))
        .filter(|(c, _)| *c != "c4")
    {
        let (_, deadline) = deadlines.iter().find(|(c, _)| c == ch).unwrap();
        assert!(
            *fired >= *deadline,
            "{ch} fired {} ms early",
            deadline - fired
        );
        assert!(
            *fired - *deadline < 1_000,
            "{ch} fired {} ms late",
            fired - deadline
        );
    }
    svc.stop.send(true).unwrap();
    let core = svc.task.await.unwrap().unwrap();
    assert_eq!(core.calls().count(), 4);
    // The store agrees: four calls, three of them ringing back.
    let stored = store.parked(None).await.unwrap();
    assert_eq!(
        stored
            .iter()
            .filter(|(_, c)| matches!(c.state, CallState::Ringback { .. }))
            .count(),
        3
    );
    let log = store.log(100).await.unwrap();
    assert_eq!(log.iter().filter(|r| r.kind == "parked").count(), 4);
    assert_eq!(
        log.iter().filter(|r| r.kind == "ringback_started").count(),
        3
    );
}

#[tokio::test]
async fn a_deadline_that_passed_while_down_fires_at_once_and_reconcile_ends_vanished_calls() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("callpark.db");
    let store = Store::open(&db).await.unwrap();
    let mut svc = start(
        ParkCore::new(settings(), policies(), orbits()),
        store.clone(),
    );
    svc.events.send(park("k1")).await.unwrap();
    svc.events.send(park("k2")).await.unwrap();
    let mut n = 0;
    while n < 2 {
        if let Some(Command::Lamp { in_use: true, .. }) = svc.commands.recv().await {
            n += 1;
        }
    }
    svc.stop.send(true).unwrap();
    svc.task.await.unwrap().unwrap();
    store.close().await;
    // Down for longer than the pickup timeout.
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let store = Store::open(&db).await.unwrap();
    let stored: Vec<ParkedCall> = store
        .parked(None)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let (core, _) = ParkCore::restore(settings(), policies(), orbits(), stored);
    let t0 = now_ms();
    let mut svc = start(core, store.clone());
    let first = tokio::time::timeout(Duration::from_millis(500), svc.commands.recv())
        .await
        .expect("overdue timer fires at once")
        .unwrap();
    assert!(matches!(first, Command::Originate { .. }), "{first:?}");
    assert!(now_ms() - t0 < 500);
    // The PBX reconnects and only k1 (and its ringback leg) is still there: k2 is ended.
    svc.events
        .send(PbxEvent::Connected {
            channels: HashSet::from([ChannelId::new("k1"), ChannelId::new("k1").leg("rb1")]),
        })
        .await
        .unwrap();
    loop {
        let c = tokio::time::timeout(Duration::from_secs(5), svc.commands.recv())
            .await
            .unwrap()
            .unwrap();
        if let Command::Lamp {
            orbit,
            in_use: false,
        } = c
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
    assert!(
        log.iter()
            .any(|r| r.kind == "abandoned" && r.channel == "k2")
    );
}
