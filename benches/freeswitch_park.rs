//! callpark against FreeSWITCH's own mod_valet_parking, side by side on the same testbed
//! FreeSWITCH: park -> parked-and-on-hold latency, park+retrieve cycles, and 500 calls parked at
//! once through callpark (CPU and memory of the callpark process).
//!
//! Run: `cargo bench --bench freeswitch_park` (needs the testbed: contrib/testbed/freeswitch).
//! Under `cargo test` it runs a few cycles of each only, so the code cannot rot.
//! `-- --concurrent N` sets how many calls are parked at once (and restarted with);
//! `-- --dialled` parks those as single channels dialling the park code (see `main`).
//! `-- --postgres` runs callpark on a PostgreSQL store (a throwaway cluster, as the tests make)
//! instead of its embedded SQLite: "in a slot" is then park -> committed to PostgreSQL.
//!
//! Both systems park the same call the same way: a bridged loopback pair whose caller is
//! blind-transferred (`uuid_transfer`) to `park` (callpark's include) or to `valet`
//! (`valet_park` of the testbed dialplan). "Parked and on hold" is FreeSWITCH's PLAYBACK_START
//! of the hold music (the same `local_stream://moh` for both) on the parked channel (for
//! callpark that music is started by its include, before callpark takes the call); "in a slot"
//! is callpark's busy-lamp PRESENCE_IN (sent once the orbit is allocated and committed to the
//! store) or valet's `valet_parking::info` hold event. A retrieve is done when the parked
//! channel's CHANNEL_BRIDGE fires. Each time runs from just before the command is sent to the
//! instant FreeSWITCH fired the event (its `Event-Date-Timestamp`, on FreeSWITCH's clock,
//! whose offset from ours is measured first): not to the event's arrival here, which
//! mod_event_socket delays by up to 20 ms (its idle connection thread polls every 20 ms) and
//! would blur both systems' figures alike.

use callpark_testkit as support;

use std::time::{Duration, Instant};

use support::fs::*;
use support::stats::{ms, pct};
use support::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum System {
    Callpark,
    Valet,
}

impl System {
    fn label(self) -> &'static str {
        match self {
            System::Callpark => "callpark",
            System::Valet => "valet_park",
        }
    }

    fn park_code(self) -> &'static str {
        match self {
            System::Callpark => "park",
            System::Valet => "valet",
        }
    }
}

const T: Duration = Duration::from_secs(20);

/// FreeSWITCH's clock against ours: `stamp - offset` is an event's time on our clock.
#[derive(Clone, Copy)]
struct Clock {
    offset_us: i64,
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_micros() as i64
}

impl Clock {
    /// The smallest difference over a few events fired on request: the command's own
    /// travel makes every other sample larger.
    async fn measure(esl: &Esl) -> Clock {
        let mut best = i64::MAX;
        for _ in 0..20 {
            let mark = esl.mark();
            let sent = now_us();
            let r = esl
                .sendevent("CUSTOM", &[("Event-Subclass", "callpark::clock")])
                .await;
            assert!(r.starts_with("+OK"), "sendevent: {r}");
            let e = esl
                .wait_event(mark, "the clock event", T, |e| {
                    e.get("Event-Subclass") == "callpark::clock"
                })
                .await;
            best = best.min(e.stamp_us() - sent);
        }
        Clock { offset_us: best }
    }

    /// From `t0_us` (our clock) to when FreeSWITCH fired `e`.
    fn since(self, t0_us: i64, e: &Ev) -> Duration {
        Duration::from_micros((e.stamp_us() - self.offset_us - t0_us).max(0) as u64)
    }
}

/// A bridged pair; returns the caller's uuid (the channel that will be parked).
async fn pair(esl: &Esl, tag: &str) -> String {
    let caller = esl.call("to-answer", "Bench", "5550100").await;
    wait_for(&format!("pair {tag} bridged"), T, || async {
        (esl.getvar(&caller, "bridge_uuid").await.len() == 36).then_some(())
    })
    .await;
    caller
}

/// Parks the caller of a fresh pair; returns the latencies to its hold music and to its slot,
/// the parked channel and the event mark from before the park.
async fn park(
    esl: &Esl,
    clock: Clock,
    sys: System,
    tag: &str,
) -> (Duration, Duration, String, usize) {
    let caller = pair(esl, tag).await;
    let mark = esl.mark();
    let cmd = format!(
        "uuid_transfer {caller} {} XML {}",
        sys.park_code(),
        fb("CONTEXT")
    );
    let t0 = now_us();
    let r = esl.api(&cmd).await;
    assert!(r.starts_with("+OK"), "{cmd}: {r}");
    let on_hold = esl
        .wait_event(mark, "hold music on the parked call", T, |e| {
            e.name() == "PLAYBACK_START"
                && e.uuid() == caller
                && e.get("Playback-File-Path").contains("local_stream://moh")
        })
        .await;
    let in_slot = esl
        .wait_event(
            mark,
            &format!("the call in a slot of {}", sys.label()),
            T,
            |e| match sys {
                System::Callpark => {
                    e.name() == "PRESENCE_IN"
                        && e.get("unique-id") == "callpark-601"
                        && e.get("answer-state") == "confirmed"
                }
                System::Valet => {
                    e.get("Event-Subclass") == "valet_parking::info"
                        && e.get("Action") == "hold"
                        && e.uuid() == caller
                }
            },
        )
        .await;
    (
        clock.since(t0, &on_hold),
        clock.since(t0, &in_slot),
        caller,
        mark,
    )
}

/// The slot a call was parked on: callpark's lowest free orbit, or valet's from its event.
fn slot(esl: &Esl, sys: System, caller: &str, mark: usize) -> String {
    match sys {
        System::Callpark => "601".into(),
        System::Valet => esl
            .events_since(mark)
            .iter()
            .rev()
            .find(|e| {
                e.get("Event-Subclass") == "valet_parking::info"
                    && e.get("Action") == "hold"
                    && e.uuid() == caller
            })
            .map(|e| e.get("Valet-Extension").to_string())
            .expect("valet_parking::info hold event"),
    }
}

/// Dials the slot and waits until the parked call is bridged; returns the time it took.
async fn retrieve(esl: &Esl, clock: Clock, caller: &str, slot: &str) -> Duration {
    let mark = esl.mark();
    let t0 = now_us();
    let r = esl
        .bgapi(&format!(
            "originate {{origination_caller_id_number=5550200}}loopback/{slot}/{} &park()",
            fb("CONTEXT")
        ))
        .await;
    assert!(r.starts_with("+OK"), "{r}");
    let bridged = esl
        .wait_event(mark, "the parked call bridged", T, |e| {
            e.name() == "CHANNEL_BRIDGE"
                && (e.uuid() == caller || e.get("Other-Leg-Unique-ID") == caller)
        })
        .await;
    let took = clock.since(t0, &bridged);
    esl.api(&format!("uuid_kill {caller}")).await;
    took
}

/// The call is up and held by callpark's include: in `park`, marked as a park. A call that
/// dialled the park code itself was told its orbit by a `playback` of the digits executed
/// inside `park` (which returns to `park` when done, while `current_application` keeps naming
/// the playback); any other playback (the include's "cannot be completed" when callpark did
/// not take the call) is not parked.
async fn still_parked(esl: &Esl, id: &str) -> bool {
    if !esl.exists(id).await || esl.getvar(id, "callpark_action").await != "park" {
        return false;
    }
    match esl.getvar(id, "current_application").await.as_str() {
        "park" => true,
        "playback" => esl
            .getvar(id, "current_application_data")
            .await
            .starts_with("file_string://digits/"),
        _ => false,
    }
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (rounds, concurrent) = if full { (200, 500) } else { (3, 20) };
    // `--concurrent N`: how many calls the many-at-once phase parks (and restarts with).
    let args: Vec<String> = std::env::args().collect();
    let concurrent = args
        .iter()
        .position(|a| a == "--concurrent")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("--concurrent N"))
        .unwrap_or(concurrent);
    let num = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (rounds, concurrent) = (
        num("CALLPARK_BENCH_ROUNDS", rounds),
        num("CALLPARK_BENCH_CONCURRENT", concurrent),
    );
    // `--dialled`: the many-at-once phase parks single channels that dial the park code
    // (`null/` channels of mod_loopback) instead of blind-transferring the caller of a bridged
    // loopback pair. Every such call is still a call FreeSWITCH parks through callpark's
    // include and callpark stores, lists and adopts on restart; but it is one channel instead
    // of three or four, so the testbed's FreeSWITCH (one process on this machine, sharing its
    // cores with callpark) can hold 1,000 of them: with pairs it stalls near 600.
    let dialled = args.iter().any(|a| a == "--dialled");
    fs_testbed().await;
    // Only what the figures are read from.
    let esl = Esl::connect_for(
        "CHANNEL_PARK CHANNEL_BRIDGE PLAYBACK_START PRESENCE_IN CUSTOM valet_parking::info callpark::clock",
    )
    .await;
    let clock = Clock::measure(&esl).await;
    let log = match std::env::var("CALLPARK_BENCH_LOG") {
        Ok(_) => "callpark=debug",
        Err(_) => "info",
    };
    // `--postgres`: the store in a throwaway PostgreSQL cluster, kept until the end.
    let pg = args
        .iter()
        .any(|a| a == "--postgres")
        .then(support::postgres::PgCluster::start);
    let service = pg
        .as_ref()
        .map(|c| format!("database = \"{}\"\n", c.create_db("callpark")))
        .unwrap_or_default();
    println!(
        "store: {}",
        if pg.is_some() { "PostgreSQL" } else { "SQLite" }
    );
    let cp = Callpark::start(&Setup {
        park: "pickup_timeout = \"10m\"\n".into(),
        log,
        service,
        ..Setup::freeswitch()
    })
    .await;

    // 1 and 2: latency and cycles, the two systems interleaved so both see the same FreeSWITCH.
    let systems = [System::Callpark, System::Valet];
    let mut lat = [Vec::new(), Vec::new()];
    let mut slotted = [Vec::new(), Vec::new()];
    let mut cyc = [Vec::new(), Vec::new()];
    for i in 0..rounds {
        for (k, sys) in systems.into_iter().enumerate() {
            let tag = format!("{}{i}", &sys.label()[..1]);
            let (l, in_slot, caller, mark) = park(&esl, clock, sys, &tag).await;
            let s = slot(&esl, sys, &caller, mark);
            let r = retrieve(&esl, clock, &caller, &s).await;
            lat[k].push(l);
            slotted[k].push(in_slot);
            cyc[k].push(l + r);
            // Quiet between rounds: the next park starts from an idle FreeSWITCH.
            esl.reset().await;
        }
    }
    println!("park -> parked and on hold ({rounds} parks each, blind transfer):");
    for (k, sys) in systems.into_iter().enumerate() {
        println!(
            "  {:<12} p50 {:>9}  p99 {:>9}",
            sys.label(),
            ms(pct(&lat[k], 0.5)),
            ms(pct(&lat[k], 0.99))
        );
    }
    println!(
        "  ratio callpark/valet_park: p50 {:.2}, p99 {:.2}",
        pct(&lat[0], 0.5).as_secs_f64() / pct(&lat[1], 0.5).as_secs_f64(),
        pct(&lat[0], 0.99).as_secs_f64() / pct(&lat[1], 0.99).as_secs_f64()
    );
    println!("park -> in a slot (callpark: orbit committed, lamp sent; valet: its hold event):");
    for (k, sys) in systems.into_iter().enumerate() {
        println!(
            "  {:<12} p50 {:>9}  p99 {:>9}",
            sys.label(),
            ms(pct(&slotted[k], 0.5)),
            ms(pct(&slotted[k], 0.99))
        );
    }
    println!("park + retrieve cycle (transfer -> on hold -> dial -> bridged), sequential:");
    for (k, sys) in systems.into_iter().enumerate() {
        let total: Duration = cyc[k].iter().sum();
        println!(
            "  {:<12} p50 {:>9}  p99 {:>9}  {:.1} cycles/s",
            sys.label(),
            ms(pct(&cyc[k], 0.5)),
            ms(pct(&cyc[k], 0.99)),
            rounds as f64 / total.as_secs_f64()
        );
    }
    drop(cp);

    // 3: many calls parked at once through callpark, in silence (music is FreeSWITCH's media
    // work, not callpark's): the include is generated from this configuration, music off.
    let mut cp = Callpark::start(&Setup {
        park: "pickup_timeout = \"10m\"\nmusic_on_hold = false\n".into(),
        fs_ranges: vec![("601", "699"), ("6000", "6999")],
        fs_include_from_config: true,
        log,
        ..Setup::freeswitch()
    })
    .await;
    let pid = cp.pid().expect("callpark runs");
    let (cpu0, _, _) = proc_usage(pid);
    let t0 = Instant::now();
    let mut parked = 0usize;
    let batch = 10;
    let mut i = 0;
    while i < concurrent {
        let n = batch.min(concurrent - i);
        let futs = (i..i + n).map(|j| {
            let esl = esl.clone();
            async move {
                if dialled {
                    let r = esl
                        .api(&format!(
                            "originate {{origination_caller_id_number=555{j:04}}}null/m{j} park XML {}",
                            fb("CONTEXT")
                        ))
                        .await;
                    assert!(r.starts_with("+OK"), "{r}");
                    return;
                }
                let caller = pair(&esl, &format!("m{j}")).await;
                let r = esl
                    .api(&format!(
                        "uuid_transfer {caller} park XML {}",
                        fb("CONTEXT")
                    ))
                    .await;
                assert!(r.starts_with("+OK"), "{r}");
            }
        });
        futures_util::future::join_all(futs).await;
        i += n;
        parked = wait_for("the batch parked", T, || async {
            let n = cp.parked().await.len();
            (n >= i).then_some(n)
        })
        .await;
    }
    let took = t0.elapsed();
    // Longer than the include's takeover window: a call callpark had not taken by then would
    // have gone to the fallback and be missing below.
    tokio::time::sleep(Duration::from_secs(if full { 10 } else { 4 })).await;
    let calls = cp.parked().await;
    let mut alive = 0;
    for c in &calls {
        if still_parked(&esl, c.channel.as_str()).await {
            alive += 1;
        }
    }
    let (cpu1, rss, hwm) = proc_usage(pid);
    let log = cp.log_text();
    let problems = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .count();
    println!(
        "{concurrent} calls parked at once through callpark (no music, {}): parked {parked} in {:.1} s, {} in the store after holding, {alive} alive and still parked in FreeSWITCH, {problems} warnings/errors in callpark's log",
        if dialled {
            "each a single channel dialling the park code"
        } else {
            "each the blind-transferred caller of a bridged pair"
        },
        took.as_secs_f64(),
        calls.len()
    );
    println!(
        "  callpark process: {:.2} s CPU for the parking phase, RSS {} KiB, peak RSS {} KiB",
        cpu1 - cpu0,
        rss,
        hwm
    );
    assert_eq!(calls.len(), concurrent, "every call parked");
    assert_eq!(
        alive, concurrent,
        "every parked call still up and parked in FreeSWITCH"
    );
    assert_eq!(problems, 0, "callpark logged warnings:\n{log}");

    // 4: restarts with every call parked (stopped as systemd stops it, started as systemd
    // starts it): the time from exec to READY=1, when every pool is connected and its calls
    // restored from the store and reconciled with what the PBX holds.
    let restarts = if full { 3 } else { 1 };
    for run in 1..=restarts {
        cp.restart_with_calls(run, restarts, concurrent, "FreeSWITCH", |id| {
            let esl = esl.clone();
            async move { still_parked(&esl, &id).await }
        })
        .await;
    }
    esl.reset().await;
    drop(cp);
    install_include(&esl, &shipped_include()).await;
}
