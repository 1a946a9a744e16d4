//! The cost of the operator's side: park latency on the Asterisk testbed with no `[api]`, and
//! again with the API on, 1,000 Server-Sent-Events subscribers and two slow webhooks (one
//! answers after 2 s, one never answers), at a paced park rate; plus the API's own request
//! latency (`GET /api/v1/parked`) under that load.
//!
//! Park latency is from just before the blind transfer (AMI BlindTransfer) is sent to the
//! arrival of the AMI event of callpark's busy lamp for the call's orbit turning INUSE, which
//! callpark sets once the orbit is allocated and the step committed: the "in a slot" of
//! `benches/asterisk_park.rs`, in µs. The orbit of each call comes from callpark's log.
//!
//! The runs without and with the operator's side alternate (which goes first too), `--rounds`
//! times, and the figures are over all rounds: one run's p99 on this shared 2-core machine
//! moves by more than the cost being measured. They are given again over the rounds in which
//! the hypervisor's steal time stayed under 5 % of a core in both halves (a round with 55 %
//! steal had a p99 of 620 ms without the API), and the rounds left out are named. The API is
//! asked for `GET /api/v1/parked` (every parked call) every `--probe-every` ms (1,000: an
//! operator's request a second) meanwhile, for its own latency; `--prober-idle` runs that
//! client in the clients' idle cgroup too.
//!
//! The subscribers stand for browsers on other machines. They run in a process of their own
//! in a `cpu.idle` cgroup (else a session whose autogroup has nice 19). By default they leave
//! what callpark sends in their sockets' receive buffers until the parks are timed, then read,
//! decode (gunzip) and count every entry: reading and decoding a thousand streams is the work
//! of the receptionists' machines. What callpark does for them stays in the timed part: the
//! API's threads, every write, and the kernel's loopback delivery of it into the receive
//! buffers, which on a real network another machine would do. The bench checks that callpark
//! sent every byte meanwhile (`ss`: nothing written and unsent, no connection ever limited by
//! its receive window), so a full receive window did not hold a write back. `--read-live` makes
//! them read as it comes (and decode after), `--decode-live` read and decode as it comes.
//!
//! Run: `cargo bench --bench operator_side [-- --calls N --rate R --rounds K --subscribers S
//! --probe-every MS --prober-idle --identity --read-live --decode-live]` (defaults 600 calls at
//! 200 per second, 10 rounds, 1,000 subscribers); under `cargo test` it parks 20 calls at 20
//! per second with 50 subscribers, once.

use callpark_testkit as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::stats::{Summary, median, percentile, percentile_sorted, us_ms};
use support::*;

const TOKEN: &str = "operator-side-bench-token";

/// p50 and p99, then the rest of the tail.
fn summary(v: &[i64]) -> String {
    let s = Summary::new(v.iter().copied());
    format!(
        "p50 {}  p99 {}  (p90 {}  p95 {}  max {})",
        us_ms(s.median()),
        us_ms(s.p(0.99)),
        us_ms(s.p(0.9)),
        us_ms(s.p(0.95)),
        us_ms(s.max())
    )
}

/// A bridged pair for call `i`, its caller named `P<i>`; returns the transferer's name.
async fn pair(ari: &Ari, ami: &Ami, i: usize) -> String {
    let tag = format!("o{i}");
    let mark = ami.mark();
    let b = format!("{tag}-b");
    ari.post(
        "/channels",
        &[
            ("endpoint", &format!("Local/to-dev-{tag}@calls")),
            ("extension", "answer"),
            ("context", "phones"),
            ("priority", "1"),
            ("callerId", &format!("\"P{i}\" <5550100>")),
            ("channelId", &format!("{tag}-a")),
            ("otherChannelId", &b),
        ],
    )
    .await;
    let callee = format!("Local/dev-{tag}@phones-");
    let t = Duration::from_secs(30);
    ami.wait_event(mark, "BridgeEnter", t, |m| {
        m.get("Channel").is_some_and(|c| c.starts_with(&callee))
    })
    .await;
    ami.wait_event(mark, "BridgeEnter", t, |m| {
        m.get("Uniqueid").map(String::as_str) == Some(b.as_str())
    })
    .await["Channel"]
        .clone()
}

/// Parks `calls` calls at `rate` per second; returns each park's latency in µs, and the
/// steal time meanwhile (share of one core, %).
async fn park_run(
    ari: &Ari,
    ami: &Ami,
    cp: &Callpark,
    calls: usize,
    rate: f64,
    subscribers: Option<u32>,
) -> (Vec<i64>, f64) {
    // The pairs first, so the paced part is only the transfers.
    let mut transferers = Vec::new();
    for chunk in (0..calls).collect::<Vec<_>>().chunks(10) {
        let pairs = chunk.iter().map(|i| pair(ari, ami, *i));
        transferers.extend(futures_util::future::join_all(pairs).await);
    }
    let mark = ami.mark();
    let cpu0 = Cpu::now(cp.pid(), subscribers);
    let start = Instant::now();
    let transfers = transferers.iter().enumerate().map(|(i, t)| {
        let ami = ami.clone();
        async move {
            tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into())
                .await;
            let t0 = Instant::now();
            ami.blind_transfer(t, "park", "park-in").await;
            (i, t0)
        }
    });
    let sent = futures_util::future::join_all(transfers).await;
    let took = start.elapsed();
    wait_for("every call parked", Duration::from_secs(60), || async {
        (cp.parked().await.len() >= calls).then_some(())
    })
    .await;
    let cpu = Cpu::now(cp.pid(), subscribers);
    println!("    {}", cpu.since(&cpu0));
    let steal = cpu.steal_since(&cpu0);
    println!(
        "    {calls} transfers sent in {:.2} s ({:.0} per second)",
        took.as_secs_f64(),
        calls as f64 / took.as_secs_f64()
    );
    let rows = cp.log_rows().await;
    let mut lit = Vec::new();
    for (i, t0) in sent {
        let who = format!("from P{i} <");
        let orbit = rows
            .iter()
            .find(|r| r.kind == "parked" && r.detail.contains(&who))
            .and_then(|r| r.orbit.clone())
            .unwrap_or_else(|| panic!("call P{i} was not parked"));
        let device = format!("Stasis:callpark-{orbit}");
        let on = ami
            .wait_event(mark, "DeviceStateChange", Duration::from_secs(10), |m| {
                m.get("Device") == Some(&device)
                    && m.get("State").map(String::as_str) == Some("INUSE")
            })
            .await;
        lit.push(arrived(&on).duration_since(t0).as_micros() as i64);
    }
    (lit, steal)
}

/// CPU time so far, in clock ticks, of what shares the machine while parking: callpark's
/// threads by name, Asterisk, the subscribers' process, and the kernel's softirq work (the
/// loopback's delivery of every write runs there).
struct Cpu {
    callpark: std::collections::BTreeMap<String, u64>,
    /// Context switches so far of callpark's threads by name: each is a thread woken for
    /// some work, and on a virtual machine a switch costs as much as a little work.
    switches: std::collections::BTreeMap<String, u64>,
    asterisk: u64,
    subscribers: u64,
    softirq: u64,
    /// Time the hypervisor ran something else while this machine's vCPUs wanted to run.
    steal: u64,
    /// Nanoseconds each thread (by pid/tid) of Asterisk and of callpark's pools has waited on
    /// a run queue, ready but not running (/proc/…/schedstat), with the part it belongs to:
    /// what the timed parks feel of the CPU being taken by someone else.
    waited: std::collections::HashMap<(u32, u32), (&'static str, u64)>,
    at: Instant,
}

/// Each thread's run-queue wait (ns) of process `pid`, as `part`.
fn waits(
    pid: u32,
    part: impl Fn(&str) -> Option<&'static str>,
    into: &mut std::collections::HashMap<(u32, u32), (&'static str, u64)>,
) {
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let Some(part) = part(comm.trim()) else {
            continue;
        };
        let tid = t.file_name().to_string_lossy().parse().unwrap_or(0);
        let wait = std::fs::read_to_string(t.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse().ok());
        if let Some(wait) = wait {
            into.insert((pid, tid), (part, wait));
        }
    }
}

/// utime + stime of a /proc stat file, and the name in it.
fn stat_ticks(path: &std::path::Path) -> Option<(String, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let (head, rest) = s.rsplit_once(") ")?;
    let name = head.split_once(" (")?.1.to_string();
    let f: Vec<&str> = rest.split(' ').collect();
    Some((
        name,
        f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    ))
}

impl Cpu {
    fn now(callpark: Option<u32>, subscribers: Option<u32>) -> Cpu {
        let mut by_name = std::collections::BTreeMap::new();
        let mut switches = std::collections::BTreeMap::new();
        if let Some(pid) = callpark
            && let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task"))
        {
            for t in tasks.flatten() {
                if let Some((n, v)) = stat_ticks(&t.path().join("stat")) {
                    let status = std::fs::read_to_string(t.path().join("status"));
                    let switched: u64 = status
                        .iter()
                        .flat_map(|s| s.lines())
                        .filter(|l| l.contains("ctxt_switches:"))
                        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                        .sum();
                    *switches.entry(n.clone()).or_insert(0) += switched;
                    *by_name.entry(n).or_insert(0) += v;
                }
            }
        }
        let mut waited = std::collections::HashMap::new();
        if let Some(pid) = callpark {
            // The pools' runtime and the store's writer; the API's own threads are not on
            // the parks' path.
            waits(
                pid,
                |comm| {
                    (comm.starts_with("tokio-rt") || comm.starts_with("sqlx")).then_some("callpark")
                },
                &mut waited,
            );
        }
        let mut asterisk = 0;
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            if let Some((n, v)) = stat_ticks(&p.path().join("stat"))
                && n == "asterisk"
            {
                asterisk += v;
                let pid = p.file_name().to_string_lossy().parse().unwrap_or(0);
                waits(pid, |_| Some("asterisk"), &mut waited);
            }
        }
        let subscribers = subscribers
            .and_then(|p| stat_ticks(std::path::Path::new(&format!("/proc/{p}/stat"))))
            .map_or(0, |(_, v)| v);
        // The `cpu` line: user nice system idle iowait irq softirq steal ...
        let total = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let field = |n: usize| -> u64 {
            total
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(n)?.parse().ok())
                .unwrap_or(0)
        };
        let (softirq, steal) = (field(7), field(8));
        Cpu {
            callpark: by_name,
            switches,
            asterisk,
            subscribers,
            softirq,
            steal,
            waited,
            at: Instant::now(),
        }
    }

    /// Clock ticks `now - was` as a share of one core (%) over the time since `before`.
    fn share(&self, before: &Cpu, now: u64, was: u64) -> f64 {
        let hz = rustix::param::clock_ticks_per_second() as f64;
        let secs = self.at.duration_since(before.at).as_secs_f64();
        now.saturating_sub(was) as f64 / hz / secs * 100.0
    }

    /// The hypervisor's steal time since `before`, as a share of one core (%).
    fn steal_since(&self, before: &Cpu) -> f64 {
        self.share(before, self.steal, before.steal)
    }

    /// The CPU used since `before`, as a share of one core over the time between them.
    fn since(&self, before: &Cpu) -> String {
        let secs = self.at.duration_since(before.at).as_secs_f64();
        let pct = |a: u64, b: u64| format!("{:.0} %", self.share(before, a, b));
        let mut parts: Vec<String> = self
            .callpark
            .iter()
            .map(|(n, v)| {
                format!(
                    "{n} {}",
                    pct(*v, before.callpark.get(n).copied().unwrap_or(0))
                )
            })
            .collect();
        parts.push(format!("asterisk {}", pct(self.asterisk, before.asterisk)));
        if self.subscribers > 0 {
            parts.push(format!(
                "subscribers {}",
                pct(self.subscribers, before.subscribers)
            ));
        }
        parts.push(format!("softirq {}", pct(self.softirq, before.softirq)));
        parts.push(format!("steal {}", pct(self.steal, before.steal)));
        // Threads that ended in between (Asterisk's per-call ones) are not counted.
        let mut waited = std::collections::BTreeMap::new();
        for (k, (part, ns)) in &self.waited {
            if let Some((_, was)) = before.waited.get(k) {
                *waited.entry(*part).or_insert(0) += ns.saturating_sub(*was);
            }
        }
        let waited: Vec<String> = waited
            .iter()
            .map(|(part, ns)| format!("{part} {:.0} ms", *ns as f64 / 1e6))
            .collect();
        // Threads that ended in between are not counted here either.
        let switched: Vec<String> = self
            .switches
            .iter()
            .filter_map(|(n, v)| {
                let was = before.switches.get(n)?;
                Some(format!("{n} {:.0}", v.saturating_sub(*was) as f64 / secs))
            })
            .collect();
        format!(
            "CPU over {secs:.1} s (of one core): {}\n    ready but waiting for a CPU: {}\n    \
             context switches a second: {}",
            parts.join(", "),
            waited.join(", "),
            switched.join(", ")
        )
    }
}

/// Where callpark put its API threads (src/service/sched.rs): their cpu cgroups, from /proc.
fn api_threads_cgroup(pid: u32) -> String {
    let mut where_: Vec<String> = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() != "callpark-api" {
            continue;
        }
        let cg = std::fs::read_to_string(t.path().join("cgroup")).unwrap_or_default();
        let cpu = cg
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|c| c == "cpu"))
            })
            .or_else(|| cg.lines().find(|l| l.starts_with("0::")))
            .and_then(|l| l.rsplit(':').next())
            .unwrap_or("?")
            .to_string();
        if !where_.contains(&cpu) {
            where_.push(cpu);
        }
    }
    format!("API threads in cpu cgroup {}", where_.join(", "))
}

/// Subscribers connected, and entries they got.
type Counts = (Arc<AtomicUsize>, Arc<AtomicUsize>);

/// Counts the entries (one `id:` line each) in the text of a stream as it comes; the tail of a
/// chunk is kept so a line split across two chunks is counted once.
struct Counter {
    gunzip: Option<flate2::write::GzDecoder<Vec<u8>>>,
    carry: Vec<u8>,
}

impl Counter {
    fn new(gzip: bool) -> Counter {
        Counter {
            gunzip: gzip.then(|| flate2::write::GzDecoder::new(Vec::new())),
            carry: b"\n".to_vec(),
        }
    }

    /// The entries that `bytes`, as they came from the wire, complete.
    fn count(&mut self, bytes: &[u8]) -> usize {
        match &mut self.gunzip {
            Some(g) => {
                std::io::Write::write_all(g, bytes).expect("the stream is gzip");
                std::io::Write::flush(g).expect("the stream is gzip");
                self.carry.append(g.get_mut());
            }
            None => self.carry.extend_from_slice(bytes),
        }
        let n = self.carry.windows(4).filter(|w| w == b"\nid:").count();
        self.carry = self.carry[self.carry.len().saturating_sub(3)..].to_vec();
        n
    }
}

/// `n` event-stream subscribers, counting the entries they get, until the service ends. They
/// keep what they read as it came off the wire and count it only once `decode` is true: the
/// decoding and parsing a browser does happens on the receptionist's machine, not on the one
/// whose parks are timed.
async fn subscribe(
    http: reqwest::Client,
    api: String,
    n: usize,
    gzip: bool,
    read_after: bool,
    decode: tokio::sync::watch::Receiver<bool>,
    counts: Counts,
) {
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (http, api) = (http.clone(), api.clone());
        let (connected, events) = (counts.0.clone(), counts.1.clone());
        let mut decode = decode.clone();
        all.spawn(async move {
            let r = http
                .get(format!("{api}/events"))
                // Asked as browsers do; `--identity` stands for clients that do not take gzip.
                .header(
                    reqwest::header::ACCEPT_ENCODING,
                    if gzip { "gzip" } else { "identity" },
                )
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("subscribe");
            assert!(r.status().is_success(), "subscribe: {}", r.status());
            let gzipped = r
                .headers()
                .get(reqwest::header::CONTENT_ENCODING)
                .is_some_and(|v| v == "gzip");
            assert_eq!(gzipped, gzip, "Content-Encoding as asked");
            connected.fetch_add(1, Ordering::Relaxed);
            if read_after {
                // Not polled, the body reads nothing off the socket: what is sent waits in
                // the kernel's receive buffer, as it would on the way to another machine.
                let _ = decode.wait_for(|d| *d).await;
            }
            let mut s = r.bytes_stream();
            let mut counter = Counter::new(gzip);
            let mut kept = Vec::new();
            loop {
                // Some(chunk) off the wire, or None once told to decode what is kept.
                let next = tokio::select! {
                    chunk = s.next() => match chunk {
                        Some(Ok(chunk)) => Some(chunk),
                        _ => break,
                    },
                    Ok(_) = decode.wait_for(|d| *d), if !kept.is_empty() => None,
                };
                match next {
                    Some(chunk) if *decode.borrow() => {
                        kept.extend_from_slice(&chunk);
                        events.fetch_add(counter.count(&kept), Ordering::Relaxed);
                        kept.clear();
                    }
                    Some(chunk) => kept.extend_from_slice(&chunk),
                    None => {
                        events.fetch_add(counter.count(&kept), Ordering::Relaxed);
                        kept = Vec::new();
                    }
                }
            }
        });
    }
    all.join_all().await;
}

/// Two webhooks that are no help: one answers after 2 s, one accepts and never answers. They
/// stand for systems on other machines, like the subscribers: they are served from a thread
/// and runtime of their own, in the subscribers' idle cgroup where this process may make it,
/// so that taking callpark's posts neither uses the CPU the parks need nor delays the
/// runtime that timestamps them. Their URLs, and where the thread runs.
fn bad_webhooks() -> (String, String, String, i32) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("bad-webhooks".into())
        .spawn(move || {
            let tid = rustix::thread::gettid().as_raw_pid();
            let placed = this_thread_to_clients_cgroup();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let slow_url = format!("http://{}/hook", slow.local_addr().unwrap());
                tokio::spawn(async move {
                    let app = axum::Router::new().route(
                        "/hook",
                        axum::routing::post(|| async {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            "ok"
                        }),
                    );
                    axum::serve(slow, app).await
                });
                let dead_url = dead_webhook().await;
                tx.send((slow_url, dead_url, placed, tid)).unwrap();
                std::future::pending::<()>().await
            })
        })
        .expect("start the webhooks' thread");
    rx.recv().expect("the webhooks' addresses")
}

/// Moves the calling thread into the clients' idle cgroup where this process may make it;
/// says where it runs.
fn this_thread_to_clients_cgroup() -> String {
    let dir = std::path::Path::new(CLIENTS_CGROUP);
    let tid = rustix::thread::gettid().as_raw_pid();
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join("cpu.idle"), "1"))
        .and_then(|()| std::fs::write(dir.join("tasks"), tid.to_string()))
        .map_or_else(
            |e| format!("in this process's cgroup (no idle cgroup: {e})"),
            |()| format!("in cgroup {} (cpu.idle = 1)", dir.display()),
        )
}

/// Asks the API for its list of parked calls every `every` until `stop`; each request's
/// latency in µs. On a thread and runtime of its own, so that reading the lists does not delay
/// the runtime that timestamps the parks.
fn probe(
    api: String,
    every: Duration,
    idle: bool,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<i64>> {
    std::thread::Builder::new()
        .name("api-prober".into())
        .spawn(move || {
            if idle {
                println!("    the prober runs {}", this_thread_to_clients_cgroup());
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let http = reqwest::Client::new();
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let r = http
                        .get(format!("{api}/parked"))
                        .bearer_auth(TOKEN)
                        .send()
                        .await
                        .expect("GET /parked");
                    assert!(r.status().is_success());
                    let _ = r.bytes().await;
                    lat.push(t0.elapsed().as_micros() as i64);
                    tokio::time::sleep(every).await;
                }
                lat
            })
        })
        .expect("start the prober")
}

/// When the subscribers read the stream and decode it: work that browsers do on the
/// receptionists' machines, and that here shares the two cores with the parks being timed.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Reading {
    /// Read and decode as it comes (`--decode-live`).
    Live,
    /// Read as it comes, keep it raw, decode once the parks are timed (`--read-live`).
    Keep,
    /// Leave it in the sockets' receive buffers until the parks are timed, then read and
    /// decode it (the default).
    After,
}

impl Reading {
    fn word(self) -> &'static str {
        match self {
            Reading::Live => "live",
            Reading::Keep => "keep",
            Reading::After => "after",
        }
    }

    fn from_word(w: &str) -> Option<Reading> {
        [Reading::Live, Reading::Keep, Reading::After]
            .into_iter()
            .find(|r| r.word() == w)
    }

    fn describe(self) -> &'static str {
        match self {
            Reading::Live => "read and decoded as it comes (--decode-live)",
            Reading::Keep => "read as it comes, decoded once the parks are timed (--read-live)",
            Reading::After => "left in the sockets and read once the parks are timed",
        }
    }
}

struct Load {
    calls: usize,
    rate: f64,
    subscribers: usize,
    /// Whether the subscribers take the stream in gzip, as browsers do.
    gzip: bool,
    /// When the subscribers read and decode the stream.
    reading: Reading,
    /// The pause between two API requests of the prober.
    probe_every: Duration,
    /// Whether the prober runs in the clients' idle cgroup (`--prober-idle`).
    prober_idle: bool,
}

fn base() -> Setup {
    Setup {
        park: "pickup_timeout = \"10m\"\nmusic_on_hold = false\n".into(),
        ranges: vec![("701", "799"), ("5000", "5999")],
        ast_include_from_config: true,
        log: "info",
        ..Setup::default()
    }
}

/// One run with the API on, its subscribers and the webhooks: the park latencies and the
/// steal time meanwhile, the API's own request latencies (µs), and how many entries the
/// subscribers got.
async fn with_api(
    ari: &Ari,
    ami: &Ami,
    load: &Load,
    hooks: &(String, String, String, i32),
) -> ((Vec<i64>, f64), Vec<i64>, usize) {
    let (api_toml, port, _api_dir) = api_table(TOKEN);
    let cp = Callpark::start(&Setup {
        extra: format!(
            "{api_toml}webhooks = [\"{}\", \"{}\"]\nwebhook_timeout = \"30s\"\n",
            hooks.0, hooks.1
        ),
        ..base()
    })
    .await;
    let api = format!("http://127.0.0.1:{port}/api/v1");
    println!("    {}", api_threads_cgroup(cp.pid().unwrap()));
    let (connected, events) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    // The subscribers stand for receptionists' browsers, which run on their own machines. Here
    // they share this machine's two cores with Asterisk, callpark and the transfers being
    // timed, so they run as a process of their own, in a session (scheduler autogroup) of
    // their own at the lowest CPU priority: reading a thousand streams is the clients' work,
    // not callpark's, and must not delay the timed transfers either.
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(
            SUBSCRIBE,
            format!(
                "{} {} {} {api}",
                load.subscribers,
                load.gzip,
                load.reading.word()
            ),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the subscribers");
    {
        let (connected, events) = (connected.clone(), events.clone());
        let out = child.stdout.take().unwrap();
        tokio::spawn(async move {
            let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(out));
            while let Ok(Some(l)) = lines.next_line().await {
                let (k, v) = l.split_once(' ').unwrap_or((&l, "0"));
                let v: usize = v.parse().unwrap_or(0);
                match k {
                    "placed" => println!("    subscribers {}", l.trim_start_matches("placed ")),
                    "connected" => connected.store(v, Ordering::Relaxed),
                    "events" => events.store(v, Ordering::Relaxed),
                    _ => {}
                }
            }
        });
    }
    wait_for(
        "every subscriber connected",
        Duration::from_secs(60),
        || async { (connected.load(Ordering::Relaxed) >= load.subscribers).then_some(()) },
    )
    .await;
    // The API's own latency while parking goes on.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe(
        api.clone(),
        load.probe_every,
        load.prober_idle,
        stop.clone(),
    );
    let parks = park_run(ari, ami, &cp, load.calls, load.rate, child.id()).await;
    let q = Queues::read(port);
    println!("    {q}");
    if load.reading == Reading::After {
        // Left unread, the streams must still have been taken off callpark's sockets as they
        // were written, as a network would: a full receive window would have held the writes
        // back and hidden their cost from the timed parks.
        assert!(
            q.server_notsent == 0 && q.rwnd_limited == 0,
            "the subscribers' receive windows filled while parking ({q}): fewer --calls per round"
        );
    }
    // The parks are timed: now the subscribers may read what they were sent.
    let mut stdin = child.stdin.take().unwrap();
    let told = tokio::io::AsyncWriteExt::write_all(&mut stdin, b"decode\n").await;
    // With no subscribers their process has ended already.
    assert!(
        told.is_ok() || load.subscribers == 0,
        "tell the subscribers to decode: {told:?}"
    );
    // The last tick of the feed reaches the subscribers.
    let want = load.calls * load.subscribers;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while events.load(Ordering::Relaxed) < want {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let api_lat = tokio::task::spawn_blocking(move || prober.join().expect("the prober"))
        .await
        .unwrap();
    let delivered = events.load(Ordering::Relaxed);
    ari.reset().await;
    drop(cp);
    let _ = child.kill().await;
    let _ = std::fs::remove_dir(CLIENTS_CGROUP);
    (parks, api_lat, delivered)
}

/// What waits in the event stream's TCP sockets (the API's port), as `ss` reports it.
struct Queues {
    /// Established connections on the API's side.
    sockets: usize,
    /// Bytes callpark wrote that its kernel has not sent yet (`notsent`): held back by a
    /// receive window or a congestion window.
    server_notsent: u64,
    /// Connections that were ever held back by the peer's receive window (`rwnd_limited`).
    rwnd_limited: usize,
    /// Bytes in the subscribers' receive buffers, not yet read.
    clients_unread: u64,
}

/// `ss` for the established TCP connections matching `filter`, one block per connection
/// (with `-i`, the info line is indented under the connection's).
fn ss(args: &[&str], filter: &str) -> String {
    let out = std::process::Command::new("ss")
        .args(args)
        .args(["state", "established", filter])
        .output()
        .expect("run ss (iproute2; contrib/test-all.sh installs it)");
    assert!(out.status.success(), "ss {args:?} {filter}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Queues {
    fn read(port: u16) -> Queues {
        let server = ss(&["-tinH"], &format!("( sport = :{port} )"));
        let clients = ss(&["-tnH"], &format!("( dport = :{port} )"));
        let field = |l: &str, key: &str| -> Option<u64> {
            let v = l.split_whitespace().find_map(|w| w.strip_prefix(key))?;
            // `notsent:1234`, `rwnd_limited:304ms(100.0%)`: the leading digits.
            v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        };
        let mut q = Queues {
            sockets: 0,
            server_notsent: 0,
            rwnd_limited: 0,
            clients_unread: 0,
        };
        for l in server.lines() {
            if l.starts_with(char::is_whitespace) {
                q.server_notsent += field(l, "notsent:").unwrap_or(0);
                q.rwnd_limited += usize::from(field(l, "rwnd_limited:").is_some_and(|ms| ms > 0));
            } else if !l.trim().is_empty() {
                q.sockets += 1;
            }
        }
        // Recv-Q Send-Q Local Peer
        q.clients_unread = clients
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        q
    }
}

impl std::fmt::Display for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "after the timed parks, API's {} connections: {} B written by callpark and not yet \
             sent, {} ever held back by a full receive window; {} KB waiting unread in the \
             clients' receive buffers",
            self.sockets,
            self.server_notsent,
            self.rwnd_limited,
            self.clients_unread / 1024
        )
    }
}

/// Steal time (share of one core, %) above which a round is left out of the second set of
/// figures: on this shared VM a round with 55 % steal had a p99 of 620 ms without the API.
const STEAL_LIMIT: f64 = 5.0;

/// Set in the subscribers' process: how many, whether in gzip, whether they decode as the
/// stream comes (else once told `decode` on their stdin), and the API's base URL.
const SUBSCRIBE: &str = "OPERATOR_SIDE_SUBSCRIBE";

/// The subscribers' cgroup, removed once they are gone.
const CLIENTS_CGROUP: &str = "/sys/fs/cgroup/cpu/callpark-bench-clients";

/// Puts this process where it yields the CPU to every other: a cgroup of its own with
/// `cpu.idle` (any other task that wakes takes the CPU at once), else a session of its own
/// whose scheduler autogroup has nice 19. Says which.
fn lowest_priority() -> String {
    let dir = std::path::Path::new(CLIENTS_CGROUP);
    let idle = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join("cpu.idle"), "1"))
        .and_then(|()| std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string()));
    match idle {
        Ok(()) => format!("in cgroup {} (cpu.idle = 1)", dir.display()),
        Err(e) => {
            // Fails only where it is a session leader already: then it has a session of its own.
            let _ = rustix::process::setsid();
            std::fs::write("/proc/self/autogroup", "19").expect("lower the subscribers' autogroup");
            format!("in a session of their own, autogroup nice 19 (no idle cgroup: {e})")
        }
    }
}

/// The subscribers' process: its own session and the lowest priority, then the streams; it
/// prints how many are connected and how many entries they got, until the service ends.
fn subscribers_process(spec: &str) {
    const SPEC: &str = "SUBSCRIBE: `N GZIP live|keep|after URL`";
    let mut spec = spec.splitn(4, ' ');
    let (n, gzip, reading, api) = (spec.next(), spec.next(), spec.next(), spec.next());
    let n: usize = n.and_then(|n| n.parse().ok()).expect(SPEC);
    let gzip = gzip == Some("true");
    let reading = reading.and_then(Reading::from_word).expect(SPEC);
    let api = api.expect(SPEC);
    println!("placed {}", lowest_priority());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let counts: Counts = Default::default();
    let report = counts.clone();
    rt.spawn(async move {
        let mut last = (usize::MAX, usize::MAX);
        loop {
            let now = (
                report.0.load(Ordering::Relaxed),
                report.1.load(Ordering::Relaxed),
            );
            if now != last {
                println!("connected {}\nevents {}", now.0, now.1);
                last = now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (tell, decode) = tokio::sync::watch::channel(reading == Reading::Live);
    rt.spawn(async move {
        let mut lines =
            tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
        while let Ok(Some(l)) = lines.next_line().await {
            if l == "decode" {
                tell.send_replace(true);
            }
        }
    });
    // The subscribers decode the gzip themselves, when they are told to.
    let http = reqwest::Client::builder()
        .no_gzip()
        .pool_max_idle_per_host(n + 10)
        .build()
        .unwrap();
    rt.block_on(subscribe(
        http,
        api.to_string(),
        n,
        gzip,
        reading == Reading::After,
        decode,
        counts,
    ));
}

/// How much the pooled p99 of `with` exceeds that of `without`, in %, as the 5th and 95th
/// percentile over `draws` resamplings of the rounds. A draw takes as many rounds as were run,
/// with replacement, each with both its halves: the two ran back to back, so they share
/// whatever the shared machine was doing then. The spread says how far the machine's moods
/// alone move the figure.
fn paired_interval(without: &[Vec<i64>], with: &[Vec<i64>], draws: usize) -> (f64, f64) {
    let n = without.len().min(with.len());
    // A fixed xorshift: the interval is the same for the same rounds.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut diffs: Vec<f64> = (0..draws)
        .map(|_| {
            let (mut w, mut o) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let r = (next() % n as u64) as usize;
                w.extend_from_slice(&without[r]);
                o.extend_from_slice(&with[r]);
            }
            let (w99, o99) = (percentile(&w, 0.99), percentile(&o, 0.99));
            100.0 * (o99 - w99) as f64 / w99.max(1) as f64
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    (
        percentile_sorted(&diffs, 0.05),
        percentile_sorted(&diffs, 0.95),
    )
}

fn p99(v: &[i64]) -> i64 {
    percentile(v, 0.99)
}

/// The rounds' parks without and with the API, pooled, then the p99 difference with its
/// paired interval, then the median of the rounds' p99s.
fn compare(without: &[Vec<i64>], with: &[Vec<i64>]) {
    let (w, o) = (without.concat(), with.concat());
    println!("  without: {}", summary(&w));
    println!("  with:    {}", summary(&o));
    let diff = |w: i64, o: i64| {
        format!(
            "{} ({:+.1} %)",
            us_ms(o - w),
            100.0 * (o - w) as f64 / w.max(1) as f64
        )
    };
    println!(
        "  p99 difference, the parks together: {}",
        diff(p99(&w), p99(&o))
    );
    if without.len() > 1 {
        let (lo, hi) = paired_interval(without, with, 2000);
        println!(
            "  90 % interval of that difference over the rounds (paired bootstrap, 2,000 draws): \
             {lo:+.1} % to {hi:+.1} %"
        );
    }
    // One stall of this shared machine (a round's p99 of hundreds of ms has been seen, with or
    // without the API) can make the pooled p99; the median round's cannot.
    let w99s: Vec<i64> = without.iter().map(|v| p99(v)).collect();
    let o99s: Vec<i64> = with.iter().map(|v| p99(v)).collect();
    let (mw, mo) = (median(&w99s), median(&o99s));
    println!(
        "  median of the rounds' p99: without {}, with {}; difference {}",
        us_ms(mw),
        us_ms(mo),
        diff(mw, mo)
    );
}

fn main() {
    match std::env::var(SUBSCRIBE) {
        Ok(spec) => subscribers_process(&spec),
        Err(_) => tokio::runtime::Runtime::new().unwrap().block_on(bench()),
    }
}

async fn bench() {
    let full = std::env::args().any(|a| a == "--bench");
    let arg = |k: &str, d: f64| {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (load, rounds) = if full {
        let load = Load {
            calls: arg("--calls", 600.0) as usize,
            rate: arg("--rate", 200.0),
            subscribers: arg("--subscribers", 1000.0) as usize,
            gzip: !std::env::args().any(|a| a == "--identity"),
            reading: if std::env::args().any(|a| a == "--decode-live") {
                Reading::Live
            } else if std::env::args().any(|a| a == "--read-live") {
                Reading::Keep
            } else {
                Reading::After
            },
            probe_every: Duration::from_millis(arg("--probe-every", 1000.0) as u64),
            prober_idle: std::env::args().any(|a| a == "--prober-idle"),
        };
        (load, arg("--rounds", 10.0) as usize)
    } else {
        let load = Load {
            calls: 20,
            rate: 20.0,
            subscribers: 50,
            gzip: true,
            reading: Reading::After,
            probe_every: Duration::from_millis(20),
            prober_idle: false,
        };
        (load, 1)
    };
    let _turn = exclusive_of("asterisk").await;
    let (ari, ami) = testbed().await;
    let hooks = bad_webhooks();
    let (calls, rate, subscribers) = (load.calls, load.rate, load.subscribers);
    println!(
        "park -> orbit committed and lamp lit, {calls} calls at {rate} per second, {rounds} round(s);"
    );
    println!(
        " with [api]: {subscribers} event-stream subscribers ({}, {}), a 2 s webhook and a dead one",
        if load.gzip {
            "in gzip, as browsers take it"
        } else {
            "uncompressed (--identity)"
        },
        load.reading.describe()
    );
    println!(" the webhooks run {}", hooks.2);
    let mut api_lat = Vec::new();
    // Each round's latencies, each way.
    let (mut by_round_w, mut by_round_o) = (Vec::new(), Vec::new());
    // Each round's steal time, each way (share of one core, %).
    let (mut steal_w, mut steal_o) = (Vec::new(), Vec::new());
    let mut delivered_all = true;
    for round in 1..=rounds {
        // Which goes first alternates, so a testbed that slows down (or warms up) as it runs
        // weighs on both sides alike.
        for api_on in [round % 2 == 0, round % 2 == 1] {
            if api_on {
                println!("  round {round}, with [api]:");
                let ((o, steal), a, delivered) = with_api(&ari, &ami, &load, &hooks).await;
                steal_o.push(steal);
                println!("    {}", summary(&o));
                println!(
                    "    events delivered to the subscribers: {delivered} of {} ({calls} parks x {subscribers})",
                    calls * subscribers
                );
                delivered_all &= delivered >= calls * subscribers;
                by_round_o.push(o);
                api_lat.extend(a);
            } else {
                println!("  round {round}, without [api]:");
                let cp = Callpark::start(&base()).await;
                let (w, steal) = park_run(&ari, &ami, &cp, calls, rate, None).await;
                steal_w.push(steal);
                ari.reset().await;
                drop(cp);
                println!("    {}", summary(&w));
                by_round_w.push(w);
            }
        }
    }
    // The webhooks' thread back where this process runs, so its idle cgroup can go.
    if let Some(parent) = std::path::Path::new(CLIENTS_CGROUP).parent() {
        let _ = std::fs::write(parent.join("tasks"), hooks.3.to_string());
        let _ = std::fs::remove_dir(CLIENTS_CGROUP);
    }
    let shipped = std::path::Path::new(REPO).join("dialplan/asterisk/callpark.conf");
    install_asterisk_include(&std::fs::read_to_string(shipped).unwrap());

    println!(
        " all rounds ({} parks each way):",
        by_round_w.concat().len()
    );
    compare(&by_round_w, &by_round_o);
    // The same over the rounds in which the hypervisor took (almost) nothing from either half:
    // a round with steal in it times the host's other tenants, with or without the API.
    let clean: Vec<usize> = (0..rounds)
        .filter(|&r| steal_w[r].max(steal_o[r]) <= STEAL_LIMIT)
        .collect();
    let left_out: Vec<String> = (0..rounds)
        .filter(|r| !clean.contains(r))
        .map(|r| {
            format!(
                "round {} with {:.0} % / without {:.0} %",
                r + 1,
                steal_o[r],
                steal_w[r]
            )
        })
        .collect();
    println!(
        " rounds with at most {STEAL_LIMIT} % steal in both halves: {} of {rounds}{}",
        clean.len(),
        if left_out.is_empty() {
            String::new()
        } else {
            format!(" (left out: {})", left_out.join(", "))
        }
    );
    if !clean.is_empty() && !left_out.is_empty() {
        let pick =
            |v: &[Vec<i64>]| -> Vec<Vec<i64>> { clean.iter().map(|&r| v[r].clone()).collect() };
        compare(&pick(&by_round_w), &pick(&by_round_o));
    }
    let higher = (0..rounds)
        .filter(|&r| p99(&by_round_o[r]) > p99(&by_round_w[r]))
        .count();
    println!(" rounds whose p99 was higher with the API: {higher} of {rounds}");
    println!(
        "  GET /api/v1/parked under load: {} requests, {}",
        api_lat.len(),
        summary(&api_lat)
    );
    assert!(delivered_all, "every subscriber sees every park");
}
