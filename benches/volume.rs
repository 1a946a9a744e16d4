//! Volume: thousands of ordinary cycles on each real PBX, counting every call lost. A bug that
//! drops one call in a thousand shows only here, never in a test of one park.
//!
//! Run: `cargo bench --bench volume -- [--pbx asterisk|freeswitch] [--retrieves N]
//! [--ringbacks N] [--attended-every K]`. Defaults: 2,000 park -> retrieve cycles and 500 park
//! -> ringback -> answered cycles on each PBX; one retrieve cycle in ten is an attended
//! transfer from a real SIP phone (PJSIP's pjsua2: consultation to the park code, REFER with
//! Replaces), the others blind transfers by the PBX itself. Under `cargo test` (CI): 200 of
//! each.
//!
//! Soak: `--retrieves 100000 --ringbacks 0 --attended-every 0 --music off --sample 10000
//! --keep-log 1h --workers 8` parks and retrieves as fast as the PBX allows, music off, and
//! prints callpark's resident memory and the store's size on disk every 10,000 cycles; with
//! `--keep-log` the store is pruned as `[service] keep_log` says (the shortest, `1h`, prunes
//! every 6 minutes), so its size stops growing after that long. `--workers N`: blind cycles
//! run N at a time (4 by default). `--ringback-workers N`: ringback cycles waiting at once (25
//! by default: fifty calls on hold with music keep the testbed Asterisk's two CPUs busy, its
//! Local-channel phones passing every frame through two channel pairs, and it then places
//! ringbacks a second apart, too late for some to be answered within their ring time).
//!
//! A cycle counts as lost unless its call ends the way it should: retrieved (the log's
//! `retrieved` for the parked channel) or answered by its parker at the ringback
//! (`reconnected`), with nothing on the way that ends a park (`abandoned`, `disconnected`) and
//! no retriever told the orbit is empty. The report gives counts, losses (each with its
//! reason) and the slowest cycle.

use callpark_testkit as support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callpark::store::{LogRow, Store};
use support::gesture;
use support::stats::Slowest;
use support::testbed::{AsteriskTestbed, FreeswitchTestbed, Testbed};
use support::*;
use tokio::sync::Notify;

const S: fn(u64) -> Duration = Duration::from_secs;

/// Cycles finished so far, of every kind (the soak's samples follow it).
static FINISHED: AtomicUsize = AtomicUsize::new(0);

/// Bytes the store takes on disk: the database and its write-ahead log.
fn store_bytes(db: &std::path::Path) -> u64 {
    let size = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
    size(db.to_path_buf()) + size(wal)
}

/// Prints callpark's RSS and the store's size each time another `every` cycles have finished.
fn sampler(
    pbx: String,
    pid: u32,
    db: std::path::PathBuf,
    every: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut next = every;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let done = FINISHED.load(Ordering::Relaxed);
            if done >= next {
                let (cpu, rss, _) = proc_usage(pid);
                println!(
                    "soak/{pbx}: {done:>7} cycles  {:>7.1} s  callpark RSS {:>7} KiB  store {:>8} KiB  CPU {:.1} s",
                    started.elapsed().as_secs_f64(),
                    rss,
                    store_bytes(&db) / 1024,
                    cpu
                );
                next += every;
            }
        }
    })
}

/// Every log entry callpark writes, read as it commits them (one reader for all cycles).
#[derive(Clone)]
struct Watch {
    rows: Arc<Mutex<Vec<LogRow>>>,
    news: Arc<Notify>,
    _reader: Arc<Reader>,
}

/// The reader's task, stopped with the last `Watch`: left running, it outlived its callpark,
/// whose directory (and store) goes with it, and panicked reading a store no longer there.
struct Reader(tokio::task::JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Watch {
    async fn start(db: std::path::PathBuf) -> Watch {
        let (rows, news): (Arc<Mutex<Vec<LogRow>>>, Arc<Notify>) = Default::default();
        let (rows_w, news_w) = (rows.clone(), news.clone());
        let store = Store::open(&db).await.expect("open the store");
        let reader = tokio::spawn(async move {
            let mut last = 0;
            loop {
                let got = store.log_after(last, 5_000).await.expect("read the log");
                if let Some(r) = got.last() {
                    last = r.id;
                    rows.lock().unwrap().extend(got);
                    news.notify_waiters();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Watch {
            rows: rows_w,
            news: news_w,
            _reader: Arc::new(Reader(reader)),
        }
    }

    fn mark(&self) -> usize {
        self.rows.lock().unwrap().len()
    }

    /// The first entry after `mark` that `pred` takes, or why none came in time.
    async fn wait(
        &self,
        mark: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&LogRow) -> bool,
    ) -> Result<LogRow, String> {
        let end = Instant::now() + timeout;
        let mut from = mark;
        loop {
            let notified = self.news.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let rows = self.rows.lock().unwrap();
                if let Some(r) = rows[from..].iter().find(|r| pred(r)) {
                    return Ok(r.clone());
                }
                from = rows.len();
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                return Err(format!("no {what} within {timeout:?}"));
            }
        }
    }

    /// The kinds logged for `channel`, oldest first.
    fn kinds_of(&self, channel: &str) -> Vec<String> {
        self.rows
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.channel == channel)
            .map(|r| r.kind.clone())
            .collect()
    }

    /// Waits for `kind` on `channel`; fails at once when the park ended some other way.
    async fn outcome(
        &self,
        mark: usize,
        channel: &str,
        kind: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let row = self
            .wait(mark, &format!("`{kind}` for {channel}"), timeout, |r| {
                r.channel == channel
                    && (r.kind == kind || matches!(r.kind.as_str(), "abandoned" | "disconnected"))
            })
            .await
            .map_err(|e| format!("{e}; log {:?}", self.kinds_of(channel)))?;
        if row.kind != kind {
            return Err(format!(
                "{channel}: {} ({}), log {:?}",
                row.kind,
                row.detail,
                self.kinds_of(channel)
            ));
        }
        Ok(())
    }
}

/// A call from `phone` (a simulated phone that answers), blind-transferred to the park code:
/// the parked channel.
async fn park(pbx: &impl Testbed, phone: &str, n: usize) -> String {
    pbx.park_by_transfer(phone, &format!("Bench{n}"), &format!("55{n:05}"))
        .await
        .id
}

/// Another phone dials `orbit`: the retrieving channel.
async fn retrieve(pbx: &impl Testbed, orbit: &str) -> String {
    pbx.dial_orbit(orbit, "Dave", "202").await.id
}

#[derive(Default)]
struct Tally {
    name: &'static str,
    done: usize,
    lost: Vec<String>,
    slowest: Slowest,
}

impl Tally {
    fn add(&mut self, r: Result<Duration, String>) {
        self.done += 1;
        match r {
            Ok(d) => self.slowest.add(d, ()),
            Err(e) => self.lost.push(e),
        }
    }
}

/// Park by blind transfer, retrieve by dialling the orbit, hang up.
async fn retrieve_cycle(
    pbx: &impl Testbed,
    w: &Watch,
    phone: &str,
    n: usize,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mark = w.mark();
    let parked = park(pbx, phone, n).await;
    let row = w
        .wait(mark, &format!("`parked` for {parked}"), S(20), |r| {
            r.channel == parked && r.kind == "parked"
        })
        .await?;
    let orbit = row.orbit.clone().unwrap();
    let retriever = retrieve(pbx, &orbit).await;
    let result = w.outcome(mark, &parked, "retrieved", S(20)).await;
    pbx.hang_up(&retriever).await;
    if w.kinds_of(&retriever).iter().any(|k| k == "orbit_empty") {
        return Err(format!("{retriever} was told {orbit} is empty"));
    }
    result.map(|_| t0.elapsed())
}

/// Park by blind transfer; nobody retrieves; the parker answers its ringback; hang up.
async fn ringback_cycle(
    pbx: &impl Testbed,
    w: &Watch,
    phone: &str,
    n: usize,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mark = w.mark();
    let parked = park(pbx, phone, n).await;
    let result = w.outcome(mark, &parked, "reconnected", S(40)).await;
    pbx.hang_up(&parked).await;
    result.map(|_| t0.elapsed())
}

/// The SIP phone's attended transfer to the park code, then a retrieve of the caller.
async fn attended_cycle(
    pbx: &impl Testbed,
    alice: &support::phone::Phone,
    cp: &Callpark,
    w: &Watch,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mark = w.mark();
    let c1 = gesture::alice_talks_to_carol(pbx, alice).await;
    let (c2, orbit) = gesture::consult(pbx, cp, alice, c1, "park").await;
    alice.xfer_replaces(c1, c2).await;
    let row = w
        .wait(
            mark,
            "`handed_over` of the consultation's orbit",
            S(20),
            |r| r.kind == "handed_over" && r.orbit.as_deref() == Some(orbit.as_str()),
        )
        .await?;
    let retriever = retrieve(pbx, &orbit).await;
    let result = w.outcome(mark, &row.channel, "retrieved", S(20)).await;
    pbx.hang_up(&retriever).await;
    result.map(|_| t0.elapsed())
}

/// `n` cycles of `f`, `workers` at a time, each worker with a phone of its own.
async fn run_cycles<F, Fut>(name: &'static str, n: usize, workers: usize, f: F) -> Tally
where
    F: Fn(String, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Duration, String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally {
        name,
        ..Tally::default()
    }));
    let mut tasks = Vec::new();
    for _ in 0..workers.min(n.max(1)) {
        let (next, tally, f) = (next.clone(), tally.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                // A phone of its own per cycle: the previous call of a phone may still be
                // going away when the next one starts.
                let r = f(format!("{name}{i}"), i).await;
                tally.lock().unwrap().add(r);
                FINISHED.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("a cycle worker panicked");
    }
    Arc::into_inner(tally).unwrap().into_inner().unwrap()
}

fn report(pbx: &str, t: &Tally) {
    println!(
        "volume/{pbx}: {:<10} {:>5} cycles, {} lost, slowest {}",
        t.name,
        t.done,
        t.lost.len(),
        ms(t.slowest.time)
    );
    for l in t.lost.iter().take(20) {
        println!("  lost: {l}");
    }
}

struct Plan {
    retrieves: usize,
    ringbacks: usize,
    attended_every: usize,
    music: bool,
    sample: usize,
    workers: usize,
    ringback_workers: usize,
    keep_log: Option<String>,
}

/// The cycles on one testbed, taken for as long as they run; the calls lost.
async fn one_pbx<T: Testbed + Send + 'static>(pbx: T, plan: &Plan) -> usize {
    let Plan {
        retrieves,
        ringbacks,
        attended_every,
        music,
        sample,
        workers,
        ..
    } = *plan;
    let which = pbx.name();
    // Shared by the cycles' tasks.
    let pbx = Arc::new(pbx);
    // The testbed's whole pool, every orbit its include routes: fifty ringbacks wait at once.
    let mut setup = pbx.setup(&format!(
        "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"10s\"\n{}",
        if music { "" } else { "music_on_hold = false\n" }
    ));
    setup.log = "info";
    if let Some(keep) = &plan.keep_log {
        setup.service = format!("keep_log = \"{keep}\"");
    }
    let before: std::collections::HashSet<String> =
        pbx.channels().await.into_iter().map(|(id, _)| id).collect();
    let cp = Callpark::start(&setup).await;
    let watch = Watch::start(cp.db()).await;
    FINISHED.store(0, Ordering::Relaxed);
    let sampling = (sample > 0).then(|| {
        sampler(
            which.to_string(),
            cp.pid().expect("callpark runs"),
            cp.db(),
            sample,
        )
    });
    let attended = retrieves.checked_div(attended_every).unwrap_or(0);
    let started = Instant::now();

    // Blind retrieves, `workers` at a time, beside the SIP phone's attended ones.
    let (d, w) = (pbx.clone(), watch.clone());
    let blind = tokio::spawn(run_cycles(
        "retrieve",
        retrieves - attended,
        workers,
        move |p, i| {
            let (d, w) = (d.clone(), w.clone());
            async move { retrieve_cycle(&*d, &w, &p, i).await }
        },
    ));
    let mut att = Tally {
        name: "attended",
        ..Tally::default()
    };
    if attended > 0 {
        let alice = gesture::alice(&*pbx).await;
        alice.auto("answer").await;
        for _ in 0..attended {
            att.add(attended_cycle(&*pbx, &alice, &cp, &watch).await);
        }
        alice.quit().await;
    }
    let blind = blind.await.expect("the blind cycles panicked");
    let retrieve_time = started.elapsed();

    // Ringbacks: each waits out the pickup timeout, so fifty wait at once.
    let (d, w) = (pbx.clone(), watch.clone());
    let started = Instant::now();
    let rb = run_cycles("ringback", ringbacks, plan.ringback_workers, move |p, i| {
        let (d, w) = (d.clone(), w.clone());
        async move { ringback_cycle(&*d, &w, &p, 100_000 + i).await }
    })
    .await;
    // Every call a cycle made ends with it, the parked caller by callpark's hang-up of a
    // bridge's other side: what is still up once callpark has had a moment is a call nobody
    // will end (in callpark or in the bench's own phones), counted as lost.
    let mut left = Vec::new();
    for _ in 0..50 {
        left = pbx
            .channels()
            .await
            .into_iter()
            .filter(|(id, _)| !before.contains(id))
            .collect();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    report(which, &blind);
    report(which, &att);
    report(which, &rb);
    println!(
        "volume/{which}: {} channels left up 10 s after the last cycle",
        left.len()
    );
    for (id, name) in left.iter().take(20) {
        println!("  left up: {name} ({id})");
    }
    println!(
        "volume/{which}: retrieves took {}, ringbacks {}",
        ms(retrieve_time),
        ms(started.elapsed())
    );
    if let Some(s) = sampling {
        s.abort();
    }
    blind.lost.len() + att.lost.len() + rb.lost.len() + left.len()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let full = args.iter().any(|a| a == "--bench");
    let num = |flag: &str, full_default: usize, test_default: usize| {
        value(flag)
            .map(|v| v.parse().unwrap_or_else(|_| panic!("{flag} N")))
            .unwrap_or(if full { full_default } else { test_default })
    };
    let retrieves = num("--retrieves", 2000, 200);
    let ringbacks = num("--ringbacks", 500, 200);
    let attended_every = num("--attended-every", 10, 10);
    let sample = num("--sample", 0, 0);
    let workers = num("--workers", 4, 4);
    // Each waiting ringback is a parked call with music on hold (see the module docs).
    let ringback_workers = num("--ringback-workers", 25, 25);
    let music = match value("--music").as_deref() {
        None | Some("on") => true,
        Some("off") => false,
        Some(other) => panic!("--music {other}: on or off"),
    };
    let pbxes = match value("--pbx").as_deref() {
        Some(p @ ("asterisk" | "freeswitch")) => vec![p.to_string()],
        Some(other) => panic!("--pbx {other}: asterisk or freeswitch"),
        None => vec!["asterisk".into(), "freeswitch".into()],
    };
    let plan = Plan {
        retrieves,
        ringbacks,
        attended_every,
        music,
        sample,
        workers,
        ringback_workers,
        keep_log: value("--keep-log"),
    };
    let mut lost = 0;
    for pbx in pbxes {
        // Each testbed is taken as every test takes it (the turn of both) for its cycles,
        // with clients that keep no events: a client keeping every call event grew past
        // 20 GB in a 100,000-cycle soak.
        lost += match pbx.as_str() {
            "asterisk" => one_pbx(AsteriskTestbed::take_lean().await, &plan).await,
            _ => one_pbx(FreeswitchTestbed::take_lean().await, &plan).await,
        };
    }
    assert_eq!(lost, 0, "calls were lost");
}
