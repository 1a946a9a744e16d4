//! A seeded fault-injection run on a real testbed: parks, retrieves, hang-ups and timeouts in
//! flight while callpark is killed (SIGKILL), frozen (SIGSTOP, then SIGCONT), cut off from its
//! PBX (connections closed) or left talking to a silent PBX (connections open, nothing passes).
//! After every cycle the invariants are checked until they hold: that wait is the recovery.
//!
//! The run is reproducible from its seed (printed first): the seed decides every action, every
//! fault and every delay. The PBX's own timing is not the seed's, so two runs with one seed
//! take the same decisions, not the same interleavings.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use callpark::park::ParkedCall;
use serde_json::Value;

use super::fs::{self, Esl};
use super::stats::Slowest;
use super::{Ami, Ari, Callpark, Cutter, Setup};

/// SplitMix64: small, seedable, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len() as u64) as usize])
    }
}

/// A seed from the clock, or `CALLPARK_FAULT_SEED` to replay a run.
pub fn seed() -> u64 {
    match std::env::var("CALLPARK_FAULT_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CALLPARK_FAULT_SEED={s}: not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    None,
    /// SIGKILL, then a new process.
    Kill,
    /// SIGSTOP for a while, then SIGCONT: a hung process.
    Stop,
    /// Every connection to the PBX closed, new ones refused for a while.
    Cut,
    /// Connections open, nothing passes: a hung PBX or a path that drops everything.
    Silence,
}

const FAULTS: [Fault; 5] = [
    Fault::None,
    Fault::Kill,
    Fault::Stop,
    Fault::Cut,
    Fault::Silence,
];

/// Which testbed a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pbx {
    Asterisk,
    Freeswitch,
}

impl Pbx {
    /// The testbed's name for [`super::exclusive_of`].
    pub fn testbed(self) -> &'static str {
        match self {
            Pbx::Asterisk => "asterisk",
            Pbx::Freeswitch => "freeswitch",
        }
    }
}

impl fmt::Display for Pbx {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Pbx::Asterisk => "asterisk",
            Pbx::Freeswitch => "freeswitch",
        })
    }
}

/// What a run did and found.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub cycles: u32,
    pub faults: BTreeMap<String, u32>,
    pub parks: u32,
    pub retrieves: u32,
    pub hangups: u32,
    /// Calls lost: in callpark's hands and unknown to the store, in the store without a live
    /// channel, or logged parked and gone without a final log entry. Must be 0.
    pub lost: u32,
    pub problems: Vec<String>,
    /// The slowest recovery, and its cycle.
    pub slowest_recovery: Slowest<u32>,
    pub elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "seed {}: {} cycles in {:.0?}; faults {:?}; parks {}, retrieves {}, hang-ups {}; calls lost {}; slowest recovery {:.1?} (cycle {})",
            self.seed,
            self.cycles,
            self.elapsed,
            self.faults,
            self.parks,
            self.retrieves,
            self.hangups,
            self.lost,
            self.slowest_recovery.time,
            self.slowest_recovery.of
        )
    }
}

/// The testbed as the run sees it: phones to act with, and what the PBX holds.
enum Bed {
    Asterisk { ari: Ari, ami: Ami },
    Freeswitch { esl: Esl },
}

const PARKER_MODES: [&str; 4] = ["answer", "answer", "noanswer", "busy"];

impl Bed {
    async fn set_phone(&self, phone: &str, mode: &str) {
        match self {
            Bed::Asterisk { ami, .. } => ami.set_phone(phone, mode).await,
            Bed::Freeswitch { esl } => esl.set_phone(phone, mode).await,
        }
    }

    /// A call blind-transferred to the park code by `phone`; the caller's channel.
    async fn park(&self, phone: &str, n: u32) -> String {
        match self {
            Bed::Asterisk { ari, ami } => {
                let cid = format!("\"F{n}\" <5557{:03}>", n % 1000);
                let (caller, _) = super::park_by_transfer(ari, ami, phone, &cid).await;
                caller["id"].as_str().unwrap().to_string()
            }
            Bed::Freeswitch { esl } => {
                fs::park_by_transfer(
                    esl,
                    phone,
                    &format!("F{n}"),
                    &format!("5557{:03}", n % 1000),
                )
                .await
            }
        }
    }

    async fn dial(&self, orbit: &str, n: u32) -> String {
        match self {
            Bed::Asterisk { ari, .. } => {
                let r =
                    super::dial_orbit(ari, orbit, &format!("\"R{n}\" <5558{:03}>", n % 1000)).await;
                r["id"].as_str().unwrap().to_string()
            }
            // Not waiting for the loopback's other half (fs::dial_orbit): a retrieve bridged
            // and ended at once (its parked caller hung up as it came) is gone before that
            // half can be read, and the run then waited out 10 s and panicked.
            Bed::Freeswitch { esl } => {
                esl.start_call(orbit, &format!("R{n}"), &format!("5558{:03}", n % 1000))
                    .await
            }
        }
    }

    async fn hang_up(&self, ch: &str) {
        match self {
            Bed::Asterisk { ari, .. } => {
                ari.delete(&format!("/channels/{ch}")).await;
            }
            Bed::Freeswitch { esl } => {
                esl.api(&format!("uuid_kill {ch}")).await;
            }
        }
    }

    /// Every channel the PBX has: id -> (name, the application it runs).
    async fn channels(&self) -> HashMap<String, Value> {
        let list = match self {
            Bed::Asterisk { ari, .. } => ari.channels().await,
            Bed::Freeswitch { esl } => esl.channels().await,
        };
        let key = match self {
            Bed::Asterisk { .. } => "id",
            Bed::Freeswitch { .. } => "uuid",
        };
        list.into_iter()
            .filter_map(|c| Some((c[key].as_str()?.to_string(), c)))
            .collect()
    }

    /// Channels sitting in callpark's hands and not talking to anyone: what the store must
    /// know (a park, a retrieve or a leg on its way to a bridge).
    async fn held(
        &self,
        chans: &HashMap<String, Value>,
        legs: &HashSet<String>,
    ) -> HashSet<String> {
        match self {
            Bed::Asterisk { ari, .. } => {
                let talking: HashSet<String> = ari
                    .bridges()
                    .await
                    .into_iter()
                    .filter_map(|b| b["channels"].as_array().cloned())
                    .filter(|c| c.len() >= 2)
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect();
                chans
                    .iter()
                    .filter(|(id, c)| {
                        c["dialplan"]["app_name"] == "Stasis"
                            && c["dialplan"]["app_data"]
                                .as_str()
                                .is_some_and(|d| d.starts_with("callpark,"))
                            && !talking.contains(*id)
                    })
                    .map(|(id, _)| id.clone())
                    .collect()
            }
            Bed::Freeswitch { esl } => {
                let mut held = HashSet::new();
                for (id, c) in chans {
                    let app = c["application"].as_str().unwrap_or("");
                    let dest = c["dest"].as_str().unwrap_or("");
                    // Candidates: what the include hands over (the park code, orbits 601-699
                    // on the testbed) and legs callpark placed (their ids are the core's).
                    let candidate = matches!(app, "park" | "playback" | "endless_playback")
                        && (dest == "park"
                            || dest.parse::<u32>().is_ok_and(|o| (601..=699).contains(&o))
                            || legs.contains(id));
                    if !candidate {
                        continue;
                    }
                    // The include marks what it hands over; the phone side of a test call
                    // (the loopback half that dialled) is not marked.
                    let leg = esl.getvar(id, "callpark_leg").await;
                    let action = esl.getvar(id, "callpark_action").await;
                    let set = |v: &str| {
                        !v.is_empty() && !v.starts_with("-ERR") && !v.starts_with("_undef_")
                    };
                    if leg == *id || (set(&action) && !set(&leg)) {
                        held.insert(id.clone());
                    }
                }
                held
            }
        }
    }

    /// Hangs up everything that is not a kept channel or bound to one (the other half of a
    /// Local or loopback channel): finished conversations, calls at the operator, phones.
    async fn clean(&self, chans: &HashMap<String, Value>, keep: &HashSet<String>) {
        let mut bound = keep.clone();
        for (id, c) in chans {
            if !keep.contains(id) {
                continue;
            }
            match self {
                Bed::Asterisk { .. } => {
                    let name = c["name"].as_str().unwrap_or("");
                    let other = if let Some(p) = name.strip_suffix(";1") {
                        format!("{p};2")
                    } else if let Some(p) = name.strip_suffix(";2") {
                        format!("{p};1")
                    } else {
                        continue;
                    };
                    bound.extend(
                        chans
                            .iter()
                            .filter(|(_, c)| c["name"] == other.as_str())
                            .map(|(id, _)| id.clone()),
                    );
                }
                Bed::Freeswitch { esl } => {
                    let other = esl.getvar(id, "other_loopback_leg_uuid").await;
                    if other.len() == 36 {
                        bound.insert(other);
                    }
                }
            }
        }
        for id in chans.keys() {
            if !bound.contains(id) {
                self.hang_up(id).await;
            }
        }
    }
}

/// The channel a problem names: an Asterisk id (`1796526023.500`) or a FreeSWITCH uuid.
fn problem_id(p: &str) -> Option<&str> {
    p.split_whitespace().find(|w| {
        (w.len() == 36 && w.matches('-').count() == 4)
            || w.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            })
    })
}

/// Ids the store knows: parked channels and the legs of their calls.
fn known(store: &[ParkedCall]) -> HashSet<String> {
    let mut k = HashSet::new();
    for c in store {
        k.insert(c.channel.as_str().to_string());
        if let Some(l) = c.state.leg() {
            k.insert(l.as_str().to_string());
        }
    }
    k
}

/// One look at the invariants; the problems found, none when they hold.
async fn look(bed: &Bed, cp: &Callpark, handed: &HashSet<String>) -> Vec<String> {
    let store = cp.parked().await;
    let chans = bed.channels().await;
    let known = known(&store);
    let held = bed.held(&chans, &known).await;
    let mut problems = Vec::new();
    if cp.exited() {
        problems.push("callpark exited by itself (its log's last ERROR or panic says why)".into());
    }
    let mut orbits = HashSet::new();
    for c in &store {
        if !chans.contains_key(c.channel.as_str()) {
            problems.push(format!(
                "the store holds {} without a live channel",
                c.channel
            ));
        }
        if let Some(o) = c.orbit {
            if !orbits.insert(o) {
                problems.push(format!("orbit {o} is held twice"));
            }
        }
    }
    // A retriever told its orbit is empty (or a park refused) in the last 15 s is being
    // answered by callpark: it hears the prompt, then is hung up (or sent back); it is not a
    // call left behind. One still there after that is.
    let rows = cp.log_rows().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let answered: HashSet<&str> = rows
        .iter()
        .filter(|r| matches!(r.kind.as_str(), "orbit_empty" | "refused"))
        .filter(|r| now - r.at < 15_000)
        .map(|r| r.channel.as_str())
        .collect();
    for h in &held {
        if !known.contains(h) && !answered.contains(h.as_str()) {
            problems.push(format!(
                "{h} sits in callpark's hands, unknown to the store"
            ));
        }
    }
    // A call callpark logged as parked is parked still, or its park has a final entry.
    let mut last: HashMap<&str, &str> = HashMap::new();
    for r in &rows {
        last.insert(r.channel.as_str(), r.kind.as_str());
    }
    let finals = [
        "retrieved",
        "reconnected",
        "fallback_answered",
        "returned",
        "disconnected",
        "abandoned",
    ];
    for ch in handed {
        let parked_once = rows.iter().any(|r| r.channel == *ch && r.kind == "parked");
        let in_store = store.iter().any(|c| c.channel.as_str() == ch);
        let ended = last.get(ch.as_str()).is_some_and(|k| finals.contains(k));
        if parked_once && !in_store && !ended {
            problems.push(format!(
                "{ch} was parked and left the store without a final entry"
            ));
        }
    }
    problems
}

/// callpark's log filter in a fault run: `CALLPARK_FAULT_LOG` (e.g. `callpark=info`) or
/// debug. Debug by default: a call lost once in hundreds of cycles is explained only by the
/// requests and replies around it, and the run costs no more for it (945 s for 300 cycles
/// on FreeSWITCH at debug, 927 s at info).
fn fault_log() -> &'static str {
    match std::env::var("CALLPARK_FAULT_LOG") {
        Ok(f) => Box::leak(f.into_boxed_str()),
        Err(_) => "callpark=debug",
    }
}

/// Runs `cycles` cycles against one testbed, or as many as fit in `budget`. Panics only if
/// the testbed itself fails.
pub async fn run(pbx: Pbx, cycles: u32, seed: u64, budget: Option<Duration>) -> Report {
    println!(
        "fault run on {pbx}: {cycles} cycles, seed {seed} (CALLPARK_FAULT_SEED={seed} replays it)"
    );
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let (bed, target) = match pbx {
        Pbx::Asterisk => {
            let (ari, ami) = super::testbed().await;
            let target = super::tb("ARI_URL")
                .trim_start_matches("http://")
                .to_string();
            (Bed::Asterisk { ari, ami }, target)
        }
        Pbx::Freeswitch => (
            Bed::Freeswitch {
                esl: fs::fs_testbed().await,
            },
            fs::esl_addr(),
        ),
    };
    let cutter = Cutter::start(target).await;
    let park = "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"5s\"\n";
    let (fallback, setup) = match pbx {
        Pbx::Asterisk => (
            "on_timeout = \"exten:answer@phones\"\n",
            Setup {
                ari_url: Some(format!("http://127.0.0.1:{}", cutter.port)),
                log: fault_log(),
                ..Setup::default()
            },
        ),
        Pbx::Freeswitch => (
            "on_timeout = \"exten:answer@callpark-test\"\n",
            Setup {
                esl_addr: Some(format!("127.0.0.1:{}", cutter.port)),
                log: fault_log(),
                ..Setup::freeswitch()
            },
        ),
    };
    let orbit_base = match pbx {
        Pbx::Asterisk => 701,
        Pbx::Freeswitch => 601,
    };
    let mut cp = Callpark::start(&Setup {
        park: format!("{park}{fallback}"),
        ..setup
    })
    .await;
    let mut report = Report {
        seed,
        cycles,
        ..Report::default()
    };
    let mut handed: HashSet<String> = HashSet::new();
    let mut n = 0u32;
    for cycle in 1..=cycles {
        if budget.is_some_and(|b| started.elapsed() > b) {
            println!("time budget spent after {} cycles", cycle - 1);
            report.cycles = cycle - 1;
            break;
        }
        let fault = *rng.pick(&FAULTS).unwrap();
        *report.faults.entry(format!("{fault:?}")).or_default() += 1;
        // The actions of this cycle, decided up front so the seed alone decides them.
        let parks = 1 + rng.below(2) as u32;
        let store = cp.parked().await;
        let mut plan: Vec<(Duration, Action)> = Vec::new();
        for _ in 0..parks {
            n += 1;
            let phone = format!("f{}", n % 40);
            let mode = *rng.pick(&PARKER_MODES).unwrap();
            plan.push((rng.ms(0, 1500), Action::Park { phone, mode, n }));
        }
        for _ in 0..rng.below(3) {
            n += 1;
            // Mostly orbits in use; sometimes one that may be empty.
            let orbit = match rng.pick(&store) {
                Some(c) if rng.below(4) > 0 => c.orbit.map(|o| o.to_string()),
                _ => None,
            }
            .unwrap_or_else(|| (orbit_base + rng.below(5)).to_string());
            plan.push((rng.ms(0, 1500), Action::Retrieve { orbit, n }));
        }
        if let Some(c) = rng.pick(&store).filter(|_| rng.below(3) == 0) {
            plan.push((
                rng.ms(0, 1500),
                Action::HangUp(c.channel.as_str().to_string()),
            ));
        }
        let fault_at = rng.ms(0, 1500);
        let fault_for = rng.ms(300, 3000);

        // Actions and the fault, at their moments, together.
        let t0 = Instant::now();
        let actions = futures_util::future::join_all(plan.into_iter().map(|(at, a)| {
            let bed = &bed;
            async move {
                tokio::time::sleep(at).await;
                a.run(bed).await
            }
        }));
        let inject = async {
            tokio::time::sleep(fault_at).await;
            match fault {
                Fault::None => {}
                Fault::Kill => {
                    cp.kill();
                    tokio::time::sleep(fault_for).await;
                    cp.spawn().await;
                }
                Fault::Stop => {
                    cp.freeze();
                    tokio::time::sleep(fault_for).await;
                    cp.thaw();
                }
                Fault::Cut => {
                    cutter.cut();
                    tokio::time::sleep(fault_for).await;
                    cutter.restore();
                }
                Fault::Silence => {
                    cutter.freeze();
                    tokio::time::sleep(fault_for).await;
                    cutter.restore();
                }
            }
        };
        let (done, ()) = tokio::join!(actions, inject);
        for d in done {
            match d {
                Done::Parked(ch) => {
                    report.parks += 1;
                    handed.insert(ch);
                }
                Done::Retrieved => report.retrieves += 1,
                Done::HungUp => report.hangups += 1,
            }
        }
        let fault_over = Instant::now();

        // Recovery: the invariants hold again, within a bound.
        let limit = Duration::from_secs(40);
        let mut first: Option<Vec<String>> = None;
        let problems = loop {
            let problems = look(&bed, &cp, &handed).await;
            if problems.is_empty() || fault_over.elapsed() > limit {
                break problems;
            }
            first.get_or_insert_with(|| problems.clone());
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let recovery = fault_over.elapsed();
        // A slow recovery says what it waited for.
        if recovery > Duration::from_secs(5) {
            println!("cycle {cycle}: waited {recovery:.1?} for {first:?}");
            let log = cp.log_text();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| {
                    l.contains("WARN")
                        || l.contains("ERROR")
                        || l.contains("panicked")
                        || l.contains("connected to")
                        || l.contains("reconciling")
                        || first
                            .iter()
                            .flatten()
                            .filter_map(|p| problem_id(p))
                            .any(|id| l.contains(id))
                })
                .collect();
            for l in &lines[lines.len().saturating_sub(30)..] {
                println!("  | {l}");
            }
        }
        report.slowest_recovery.add(recovery, cycle);
        if !problems.is_empty() {
            report.lost += problems.len() as u32;
            for p in &problems {
                report
                    .problems
                    .push(format!("cycle {cycle} ({fault:?}): {p}"));
            }
            println!("cycle {cycle}: {fault:?}: NOT RECOVERED after {recovery:.1?}: {problems:?}");
            // What callpark said about the channels concerned: the only trace left once the
            // run ends (the process's log lives in a temporary directory).
            let log = cp.log_text();
            // Errors and panics with the lines after them (a panic's message follows it).
            let lines: Vec<&str> = log.lines().collect();
            let mut shown = 0;
            for (i, l) in lines.iter().enumerate().rev() {
                if shown == 5 {
                    break;
                }
                if l.contains("ERROR") || l.contains("panicked") {
                    println!(
                        "---- callpark's log: {} ----",
                        lines[i..]
                            .iter()
                            .take(3)
                            .copied()
                            .collect::<Vec<_>>()
                            .join("\n  ")
                    );
                    shown += 1;
                }
            }
            for p in &problems {
                let Some(id) = p
                    .split_whitespace()
                    .find(|w| w.contains('.') || w.len() == 36)
                else {
                    continue;
                };
                println!("---- callpark's log on {id} ----");
                for line in log.lines().filter(|l| l.contains(id)) {
                    println!("{line}");
                }
            }
        }
        // Only parked calls carry over: finished conversations and calls at the operator go.
        let store = cp.parked().await;
        let chans = bed.channels().await;
        bed.clean(&chans, &known(&store)).await;
        println!(
            "cycle {cycle}/{cycles}: {fault:?} at {fault_at:?} for {fault_for:?}; recovered in {recovery:.1?}; cycle {:.1?}; {} parked, {} channels",
            t0.elapsed(),
            store.len(),
            chans.len()
        );
    }
    report.elapsed = started.elapsed();
    cp.kill();
    report
}

enum Action {
    Park {
        phone: String,
        mode: &'static str,
        n: u32,
    },
    Retrieve {
        orbit: String,
        n: u32,
    },
    HangUp(String),
}

enum Done {
    Parked(String),
    Retrieved,
    HungUp,
}

impl Action {
    async fn run(self, bed: &Bed) -> Done {
        match self {
            Action::Park { phone, mode, n } => {
                // The phone answers the call it transfers; its ringback then does `mode`.
                bed.set_phone(&phone, "answer").await;
                let ch = bed.park(&phone, n).await;
                bed.set_phone(&phone, mode).await;
                Done::Parked(ch)
            }
            Action::Retrieve { orbit, n } => {
                bed.dial(&orbit, n).await;
                Done::Retrieved
            }
            Action::HangUp(ch) => {
                bed.hang_up(&ch).await;
                Done::HungUp
            }
        }
    }
}

/// The short run the tests make: CALLPARK_FAULT_CYCLES cycles (30 unless set), any seed
/// (CALLPARK_FAULT_SEED replays one); fails when a call was lost or nothing was parked.
pub async fn no_call_lost(pbx: Pbx) {
    let cycles = std::env::var("CALLPARK_FAULT_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let _turn = super::exclusive_of(pbx.testbed()).await;
    let report = run(pbx, cycles, seed(), None).await;
    println!("{report}");
    assert!(report.parks > 0, "the run parked nothing: {report}");
    assert_eq!(report.lost, 0, "{report}\n{:#?}", report.problems);
}
