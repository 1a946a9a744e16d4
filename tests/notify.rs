//! systemd `Type=notify`: callpark says READY=1 once every pool is connected and restored,
//! WATCHDOG=1 every half watchdog interval while every pool loop turns, and STOPPING=1 when it
//! stops.
//!
//! Three levels: the notifier alone under a paused clock, with pools that are [`Beat`]s the
//! test turns (or stops turning, as a loop stuck inside a step would); `run_pool` with a PBX
//! the test plays through the `Pbx` trait; and `callpark run` as a process on the Asterisk
//! testbed, with the test as systemd's notification socket. (Asterisk rather than FreeSWITCH:
//! contrib/test-all.sh leaves out the FreeSWITCH targets on a machine without FreeSWITCH, and
//! the paused-clock tests here must run everywhere.)

use callpark_testkit as support;

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callpark::orbit::{OrbitRange, OrbitTable};
use callpark::park::*;
use callpark::pbx::PbxEvent;
use callpark::service::health::{Beat, Health};
use callpark::service::notify::{Notifier, Sink};
use callpark::service::{Clock, run_pool};
use callpark::store::Store;
use support::wire::Wire;
use support::{Callpark, Cutter, Setup, exclusive, tb, testbed, wait_for, wait_in};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep};

const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

// ----- the notifier under a paused clock ----------------------------------------------------

/// Keeps every notification with the (paused) time it was sent at.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Instant, String)>>>);

impl Sink for Recorder {
    async fn send(&self, msg: &str) -> io::Result<()> {
        self.0
            .lock()
            .unwrap()
            .push((Instant::now(), msg.to_string()));
        Ok(())
    }
}

impl Recorder {
    fn all(&self) -> Vec<(Instant, String)> {
        self.0.lock().unwrap().clone()
    }

    /// When the notifications holding the line `line` were sent.
    fn times_of(&self, line: &str) -> Vec<Instant> {
        self.all()
            .into_iter()
            .filter(|(_, m)| m.lines().any(|l| l == line))
            .map(|(t, _)| t)
            .collect()
    }
}

/// A pool loop that turns every `beat.turn_every()` until `stall_at` (forever without), then
/// turns no more, as a loop stuck inside a step.
fn turning(beat: Beat, stall_at: Option<Instant>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            beat.turned(Instant::now());
            if stall_at.is_some_and(|t| Instant::now() >= t) {
                return;
            }
            sleep(beat.turn_every()).await;
        }
    })
}

/// The log lines written while `f` runs (this test's thread only: `tokio::test` runs every
/// task on it).
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogWriter(w.clone()))
            .finish();
        (Logs(buf), tracing::subscriber::set_default(sub))
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_string)
            .collect()
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `notifier` over `health` from now for `how_long` (paused), then stops it. Tests stop
/// between two ticks, so that which of a tick and the stop comes first is not left to chance.
async fn notify_for(notifier: Notifier<Recorder>, health: &Health, how_long: Duration) {
    let (stop, stop_rx) = watch::channel(false);
    let h = health.clone();
    let task = tokio::spawn(async move { notifier.run(&h, stop_rx).await });
    sleep(how_long).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn pings_go_on_while_every_pool_turns() {
    let rec = Recorder::default();
    let notifier = Notifier::new(rec.clone(), Some(S(1)));
    let health = Health::new(notifier.turn_every());
    let t0 = Instant::now();
    for name in ["pbx-a", "pbx-b"] {
        let beat = health.pool(name);
        beat.ready();
        turning(beat, None);
    }
    notify_for(notifier, &health, MS(10_100)).await;

    assert_eq!(rec.times_of("READY=1"), [t0]);
    let pings = rec.times_of("WATCHDOG=1");
    // Every half second from the start until the stop.
    assert_eq!(pings.len(), 21, "{pings:?}");
    for w in pings.windows(2) {
        assert_eq!(w[1] - w[0], MS(500));
    }
    let all = rec.all();
    assert_eq!(all.last().unwrap().1, "STOPPING=1\nSTATUS=stopping");
    assert_eq!(all.last().unwrap().0, t0 + MS(10_100));
}

#[tokio::test(start_paused = true)]
async fn a_stuck_pool_stops_the_pings_and_is_named_once_until_it_turns_again() {
    let (logs, _guard) = Logs::capture();
    let rec = Recorder::default();
    let watchdog = S(1);
    let notifier = Notifier::new(rec.clone(), Some(watchdog));
    let health = Health::new(notifier.turn_every());
    let t0 = Instant::now();
    let a = health.pool("pbx-a");
    let b = health.pool("pbx-b");
    a.ready();
    b.ready();
    turning(a, None);
    // pbx-b's loop stops turning 2 s in, and stays stuck for 8 s.
    let stall = t0 + S(2);
    turning(b.clone(), Some(stall));
    let resume = tokio::spawn(async move {
        tokio::time::sleep_until(t0 + S(10)).await;
        turning(b, None);
    });
    notify_for(notifier, &health, MS(12_100)).await;
    resume.await.unwrap();

    let pings = rec.times_of("WATCHDOG=1");
    let before: Vec<Instant> = pings
        .iter()
        .copied()
        .filter(|t| *t <= stall + S(1))
        .collect();
    let after: Vec<Instant> = pings
        .iter()
        .copied()
        .filter(|t| *t > stall + S(1))
        .collect();
    // Pings went on until the stall, and stopped no later than the stuck bound (W/2) after
    // it: systemd, which kills us W after the last ping, does so by stall + 3W/2.
    let last = *before.last().unwrap();
    assert!(last >= stall, "pings stopped early: {pings:?}");
    assert!(
        last <= stall + watchdog / 2,
        "pings went on too long: {pings:?}"
    );
    // Then none for longer than the watchdog interval: systemd would have restarted us.
    let first_again = after[0];
    assert!(first_again - last > watchdog, "{pings:?}");
    assert!(
        first_again >= t0 + S(10),
        "pinged while pbx-b was stuck: {pings:?}"
    );
    // Once pbx-b turns again, the pings come back within one ping period.
    assert!(first_again <= t0 + S(10) + MS(500), "{pings:?}");

    let lines = logs.lines();
    let stuck: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("has not turned"))
        .collect();
    assert_eq!(stuck.len(), 1, "{lines:#?}");
    assert!(
        stuck[0].contains("ERROR") && stuck[0].contains("pool=pbx-b"),
        "{stuck:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("turns again") && l.contains("pool=pbx-b")),
        "{lines:#?}"
    );
    let status: Vec<String> = rec
        .all()
        .into_iter()
        .filter(|(_, m)| m.contains("stuck"))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(status, ["STATUS=pool pbx-b stuck for 500ms"]);
}

#[tokio::test(start_paused = true)]
async fn a_pool_that_never_turns_gets_no_ping_at_all_once_stuck() {
    let (logs, _guard) = Logs::capture();
    let rec = Recorder::default();
    let notifier = Notifier::new(rec.clone(), Some(S(1)));
    let health = Health::new(notifier.turn_every());
    let t0 = Instant::now();
    let a = health.pool("pbx-a");
    a.ready();
    turning(a, None);
    // Registered and ready, but its loop never turns: blocked from the start.
    health.pool("pbx-b").ready();
    notify_for(notifier, &health, MS(10_100)).await;

    // Only the pings of the first half second, before pbx-b's age passed the bound.
    let pings = rec.times_of("WATCHDOG=1");
    assert_eq!(pings, [t0, t0 + MS(500)]);
    let lines = logs.lines();
    let stuck: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("has not turned"))
        .collect();
    assert_eq!(stuck.len(), 1, "{lines:#?}");
    assert!(stuck[0].contains("pool=pbx-b"), "{stuck:?}");
    assert!(
        !lines.iter().any(|l| l.contains("pool=pbx-a")),
        "{lines:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn ready_waits_for_the_last_pool() {
    let rec = Recorder::default();
    let notifier = Notifier::new(rec.clone(), Some(S(30)));
    let health = Health::new(notifier.turn_every());
    let t0 = Instant::now();
    let a = health.pool("pbx-a");
    let b = health.pool("pbx-b");
    turning(a.clone(), None);
    turning(b.clone(), None);
    tokio::spawn(async move {
        sleep(S(1)).await;
        a.ready();
        sleep(S(2)).await;
        b.ready();
    });
    notify_for(notifier, &health, MS(5_100)).await;

    // Readiness is polled every 250 ms: READY=1 follows pbx-b's within that.
    let ready = rec.times_of("READY=1");
    assert_eq!(ready.len(), 1, "{:?}", rec.all());
    assert!(ready[0] >= t0 + S(3) && ready[0] <= t0 + S(3) + MS(250));
    let waiting: Vec<String> = rec
        .all()
        .into_iter()
        .filter(|(t, _)| *t < ready[0])
        .map(|(_, m)| m)
        .filter(|m| m.starts_with("STATUS="))
        .collect();
    assert_eq!(
        waiting,
        [
            "STATUS=waiting for pbx-a, pbx-b to connect",
            "STATUS=waiting for pbx-b to connect"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_watchdog_there_are_no_pings() {
    let rec = Recorder::default();
    let notifier = Notifier::new(rec.clone(), None);
    let health = Health::new(notifier.turn_every());
    health.pool("pbx-a").ready();
    notify_for(notifier, &health, S(60)).await;
    let msgs: Vec<String> = rec.all().into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        msgs,
        [
            "READY=1\nSTATUS=every pool connected",
            "STOPPING=1\nSTATUS=stopping"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_stop_sender_stops_the_notifier() {
    let rec = Recorder::default();
    let notifier = Notifier::new(rec.clone(), Some(S(1)));
    let health = Health::new(notifier.turn_every());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move { notifier.run(&health, stop_rx).await });
    sleep(S(1)).await;
    drop(stop);
    tokio::time::timeout(S(1), task)
        .await
        .expect("the notifier ends")
        .unwrap();
    assert_eq!(rec.all().last().unwrap().1, "STOPPING=1\nSTATUS=stopping");
}

// ----- run_pool ---------------------------------------------------------------------------------

fn core() -> ParkCore {
    let settings = Settings {
        pickup_timeout: 60_000,
        max_pickup_attempts: 1,
        ringback_ring_time: 60_000,
        on_timeout: None,
        moh: Moh::Class(None),
        bridge_timeout: 10_000,
        ..Settings::default()
    };
    let table = OrbitTable::new(vec![OrbitRange {
        name: "main".into(),
        span: "701-799".parse().unwrap(),
        pool: "pbx-a".into(),
        lot: None,
    }])
    .unwrap();
    let policies = PolicySet::new(vec![
        PolicyRule::new("all", true, &[], &[".*".to_string()]).unwrap(),
    ]);
    ParkCore::new(settings, policies, PoolOrbits::new(&table, "pbx-a"))
}

/// One pool on the system clock, driven by the test's events; its commands are dropped.
fn spawn_pool(
    store: &Store,
    events: mpsc::Receiver<PbxEvent>,
    stop: watch::Receiver<bool>,
    beat: Beat,
) -> tokio::task::JoinHandle<Result<ParkCore, callpark::service::ServiceError>> {
    tokio::spawn(run_pool(
        core(),
        store.clone(),
        Wire {
            to_service: events,
            from_service: None,
        },
        stop,
        beat,
        Clock::system(),
    ))
}

#[tokio::test]
async fn a_pool_is_ready_once_connected_and_turns_while_idle() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("callpark.db")).await.unwrap();
    let health = Health::new(MS(50));
    let (events, events_rx) = mpsc::channel(16);
    let (stop, stop_rx) = watch::channel(false);
    let task = spawn_pool(&store, events_rx, stop_rx, health.pool("pbx-a"));
    // Idle and not connected: the loop turns all the same, and the pool is not ready.
    for _ in 0..10 {
        sleep(MS(100)).await;
        assert!(
            health.stuck(Instant::now(), MS(400)).is_empty(),
            "an idle loop looks stuck"
        );
        assert!(!health.all_ready());
    }
    events
        .send(PbxEvent::Connected {
            channels: HashSet::new(),
        })
        .await
        .unwrap();
    tokio::time::timeout(S(5), async {
        while !health.all_ready() {
            sleep(MS(10)).await;
        }
    })
    .await
    .expect("ready after Connected");
    stop.send(true).unwrap();
    tokio::time::timeout(S(5), task)
        .await
        .expect("the pool stops")
        .unwrap()
        .unwrap();
    store.close().await;
}

#[tokio::test]
async fn a_dropped_shutdown_sender_stops_the_pool_instead_of_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("callpark.db")).await.unwrap();
    let (_events, events_rx) = mpsc::channel(16);
    let (stop, stop_rx) = watch::channel(false);
    let task = spawn_pool(&store, events_rx, stop_rx, Health::default().pool("pbx-a"));
    sleep(MS(200)).await;
    drop(stop);
    tokio::time::timeout(S(5), task)
        .await
        .expect("the pool stops once nobody can stop it any more")
        .unwrap()
        .unwrap();
    store.close().await;
}

// ----- callpark run -----------------------------------------------------------------------------

/// Notifications received by the test's socket, with their arrival time.
type Received = Arc<Mutex<Vec<(std::time::Instant, String)>>>;

fn lines_of(got: &Received, line: &str) -> Vec<std::time::Instant> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == line))
        .map(|(t, _)| *t)
        .collect()
}

#[tokio::test]
async fn callpark_run_is_ready_after_connecting_pings_and_says_stopping() {
    let _turn = exclusive().await;
    testbed().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = tokio::net::UnixDatagram::bind(&path).unwrap();
    let got: Received = Default::default();
    let news = Arc::new(tokio::sync::Notify::new());
    {
        let (got, news) = (got.clone(), news.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf).await {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                got.lock().unwrap().push((std::time::Instant::now(), msg));
                news.notify_waiters();
            }
        });
    }
    // Asterisk is unreachable at first: the connection goes through a cutter that refuses.
    let cutter = Cutter::start(tb("ARI_URL").trim_start_matches("http://").to_string()).await;
    cutter.cut();
    let watchdog = S(2);
    let setup = Setup {
        ari_url: Some(format!("http://127.0.0.1:{}", cutter.port)),
        env: vec![
            ("NOTIFY_SOCKET".into(), path.display().to_string()),
            ("WATCHDOG_USEC".into(), watchdog.as_micros().to_string()),
        ],
        ..Setup::default()
    };
    // `Callpark::start` returns once the log says the pool is connected; meanwhile the test
    // looks at what callpark told systemd while it could not connect, then lets it through.
    let (mut cp, opened_at) = tokio::join!(Callpark::start(&setup), async {
        wait_for(
            "two watchdog pings while Asterisk is unreachable",
            S(20),
            || async { (lines_of(&got, "WATCHDOG=1").len() >= 2).then_some(()) },
        )
        .await;
        let so_far: Vec<String> = got.lock().unwrap().iter().map(|(_, m)| m.clone()).collect();
        assert!(
            lines_of(&got, "READY=1").is_empty(),
            "READY before connecting: {so_far:?}"
        );
        assert!(
            so_far.contains(&"STATUS=waiting for pbx-a to connect".to_string()),
            "{so_far:?}"
        );
        let at = std::time::Instant::now();
        cutter.restore();
        at
    });
    let ready = wait_in(&got, &news, 0, "READY=1", S(10), |(_, m)| {
        m.lines().any(|l| l == "READY=1")
    })
    .await;
    assert!(
        ready.0 > opened_at,
        "READY=1 came before Asterisk was reachable"
    );
    assert!(
        cp.log_text().contains("connected to ARI"),
        "{}",
        cp.log_text()
    );

    // Connected and idle: the pings keep coming, never further apart than the watchdog.
    sleep(S(5)).await;
    let pings: Vec<std::time::Instant> = lines_of(&got, "WATCHDOG=1")
        .into_iter()
        .filter(|t| *t > ready.0)
        .collect();
    assert!(pings.len() >= 4, "{} pings in 5 s", pings.len());
    for w in pings.windows(2) {
        assert!(w[1] - w[0] < watchdog, "pings {:?} apart", w[1] - w[0]);
    }

    let mark = got.lock().unwrap().len();
    cp.signal("TERM");
    wait_in(&got, &news, mark, "STOPPING=1", S(10), |(_, m)| {
        m.lines().any(|l| l == "STOPPING=1")
    })
    .await;
    let status = cp.wait_exit(S(10)).await;
    assert!(status.success(), "exit status {status}");
    let last = got.lock().unwrap().last().unwrap().1.clone();
    assert_eq!(last, "STOPPING=1\nSTATUS=stopping");
    assert_eq!(lines_of(&got, "READY=1").len(), 1);
}
