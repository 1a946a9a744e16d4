//! callpark against Asterisk's own res_parking, side by side on the same testbed Asterisk:
//! park -> parked-and-on-hold latency, park+retrieve cycles, and 500 calls parked at once
//! through callpark (CPU and memory of the callpark process).
//!
//! Run: `cargo bench --bench asterisk_park` (needs the testbed: contrib/testbed/asterisk).
//! Under `cargo test` it runs a few cycles of each only, so the code cannot rot.
//!
//! Both systems park the same way, by Asterisk's blind transfer of a bridged pair (AMI
//! BlindTransfer): to `park@park-in` (callpark) or to `800@resparking` (`Park()`). "Parked and
//! on hold" is Asterisk's own MusicOnHoldStart event for the parked channel (for callpark that
//! music is started by its include, before Stasis()); "in a slot" is res_parking's ParkedCall
//! event, or callpark's busy lamp turning INUSE (after the orbit is allocated and committed); a
//! retrieve is done when the retrieving channel's BridgeEnter event arrives. Times are taken from the
//! arrival of those AMI events, measured from just before the transfer action is sent.

use callpark_testkit as support;

use std::time::{Duration, Instant};

use support::stats::{ms, pct};
use support::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum System {
    Callpark,
    ResParking,
}

impl System {
    fn label(self) -> &'static str {
        match self {
            System::Callpark => "callpark",
            System::ResParking => "res_parking",
        }
    }

    fn park_target(self) -> (&'static str, &'static str) {
        match self {
            System::Callpark => ("park", "park-in"),
            System::ResParking => ("800", "resparking"),
        }
    }
}

const T: Duration = Duration::from_secs(20);

/// A phone that answers (`answer@phones`) dials `endpoint`; the Local channel's halves get
/// the ids `a` (the phone) and `b` (the half that runs the dialled extension).
async fn phone_dials(ari: &Ari, endpoint: &str, a: &str, b: &str, caller_id: &str) {
    ari.post(
        "/channels",
        &[
            ("endpoint", endpoint),
            ("extension", "answer"),
            ("context", "phones"),
            ("priority", "1"),
            ("callerId", caller_id),
            ("channelId", a),
            ("otherChannelId", b),
        ],
    )
    .await;
}

/// A bridged pair for iteration `tag`; returns the transferer's channel name.
async fn pair(ari: &Ari, ami: &Ami, tag: &str) -> String {
    let mark = ami.mark();
    let ep = format!("Local/to-dev-{tag}@calls");
    let b = format!("{tag}-b");
    phone_dials(ari, &ep, &format!("{tag}-a"), &b, "\"Bench\" <5550100>").await;
    let callee = format!("Local/dev-{tag}@phones-");
    ami.wait_event(mark, "BridgeEnter", T, |m| {
        m.get("Channel").is_some_and(|c| c.starts_with(&callee))
    })
    .await;
    ami.wait_event(mark, "BridgeEnter", T, |m| {
        m.get("Uniqueid").map(String::as_str) == Some(b.as_str())
    })
    .await["Channel"]
        .clone()
}

/// Parks the far party of a fresh pair; returns the latencies to its music on hold and to its
/// slot, and its parking space. In a slot: res_parking's ParkedCall event; callpark's busy
/// lamp (DeviceStateChange of `Stasis:callpark-701` to INUSE), which it sets once the orbit is
/// allocated and the park committed to its store.
async fn park(ari: &Ari, ami: &Ami, sys: System, tag: &str) -> (Duration, Duration, String) {
    let transferer = pair(ari, ami, tag).await;
    let mark = ami.mark();
    let callee = format!("Local/dev-{tag}@phones-");
    let (exten, context) = sys.park_target();
    let t0 = Instant::now();
    ami.blind_transfer(&transferer, exten, context).await;
    let moh = ami
        .wait_event(mark, "MusicOnHoldStart", T, |m| {
            m.get("Channel").is_some_and(|c| c.starts_with(&callee))
        })
        .await;
    let latency = arrived(&moh).saturating_duration_since(t0);
    let (slot, space) = match sys {
        System::Callpark => {
            let lamp = ami
                .wait_event(mark, "DeviceStateChange", T, |m| {
                    m.get("Device").map(String::as_str) == Some("Stasis:callpark-701")
                        && m.get("State").map(String::as_str) == Some("INUSE")
                })
                .await;
            (arrived(&lamp), "701".to_string())
        }
        System::ResParking => {
            let parked = ami
                .wait_event(mark, "ParkedCall", T, |m| {
                    m.get("ParkeeChannel")
                        .is_some_and(|c| c.starts_with(&callee))
                })
                .await;
            (arrived(&parked), parked["ParkingSpace"].clone())
        }
    };
    (latency, slot.saturating_duration_since(t0), space)
}

/// Dials the space and waits until the retriever is bridged; returns the time it took.
async fn retrieve(ari: &Ari, ami: &Ami, sys: System, tag: &str, space: &str) -> Duration {
    let mark = ami.mark();
    let context = match sys {
        System::Callpark => "park-in",
        System::ResParking => "resparking",
    };
    let ep = format!("Local/{space}@{context}");
    let a = format!("{tag}-r");
    let b = format!("{tag}-r2");
    let t0 = Instant::now();
    phone_dials(ari, &ep, &a, &b, "\"Retriever\" <5550200>").await;
    let entered = ami
        .wait_event(mark, "BridgeEnter", T, |m| {
            m.get("Uniqueid").map(String::as_str) == Some(b.as_str())
        })
        .await;
    let took = arrived(&entered).saturating_duration_since(t0);
    ari.delete(&format!("/channels/{a}")).await;
    ari.delete(&format!("/channels/{tag}-a")).await;
    took
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
    // CALLPARK_BENCH_ROUNDS / CALLPARK_BENCH_CONCURRENT change the sizes for a quick look.
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
    let (ari, ami) = testbed().await;
    // Logging as shipped (info), unless the debug log is asked for.
    let log = match std::env::var("CALLPARK_BENCH_LOG") {
        Ok(_) => "callpark=debug",
        Err(_) => "info",
    };
    let cp = Callpark::start(&Setup {
        park: "pickup_timeout = \"10m\"\n".into(),
        ranges: vec![("701", "799"), ("5000", "5999")],
        log,
        ..Setup::default()
    })
    .await;

    // 1 and 2: latency and cycles, the two systems interleaved so both see the same Asterisk.
    let mut lat = [Vec::new(), Vec::new()];
    let mut slotted = [Vec::new(), Vec::new()];
    let mut cyc = [Vec::new(), Vec::new()];
    for i in 0..rounds {
        for (k, sys) in [System::Callpark, System::ResParking]
            .into_iter()
            .enumerate()
        {
            let tag = format!("b{}{i}", &sys.label()[..1]);
            let t0 = Instant::now();
            let (l, in_slot, space) = park(&ari, &ami, sys, &tag).await;
            let r = retrieve(&ari, &ami, sys, &tag, &space).await;
            let _ = t0;
            lat[k].push(l);
            slotted[k].push(in_slot);
            cyc[k].push(l + r);
        }
    }
    ari.reset().await;
    println!("park -> parked and on hold ({rounds} parks each, blind transfer):");
    for (k, sys) in [System::Callpark, System::ResParking]
        .into_iter()
        .enumerate()
    {
        println!(
            "  {:<12} p50 {:>9}  p99 {:>9}",
            sys.label(),
            ms(pct(&lat[k], 0.5)),
            ms(pct(&lat[k], 0.99))
        );
    }
    println!(
        "  p99 ratio callpark/res_parking: {:.2}",
        pct(&lat[0], 0.99).as_secs_f64() / pct(&lat[1], 0.99).as_secs_f64()
    );
    println!("park -> in a slot (callpark: orbit committed, lamp set; res_parking: ParkedCall):");
    for (k, sys) in [System::Callpark, System::ResParking]
        .into_iter()
        .enumerate()
    {
        println!(
            "  {:<12} p50 {:>9}  p99 {:>9}",
            sys.label(),
            ms(pct(&slotted[k], 0.5)),
            ms(pct(&slotted[k], 0.99))
        );
    }
    println!("park + retrieve cycle (transfer -> on hold -> dial -> bridged), sequential:");
    for (k, sys) in [System::Callpark, System::ResParking]
        .into_iter()
        .enumerate()
    {
        let total: Duration = cyc[k].iter().sum();
        println!(
            "  {:<12} p50 {:>9}  p99 {:>9}  {:.1} cycles/s",
            sys.label(),
            ms(pct(&cyc[k], 0.5)),
            ms(pct(&cyc[k], 0.99)),
            rounds as f64 / total.as_secs_f64()
        );
    }

    // 3: many calls parked at once through callpark. In silence: music on hold is Asterisk's
    // own media work (on this 2-core testbed Asterisk alone used 137% CPU with about 90
    // parked calls on hold), which would measure Asterisk rather than callpark.
    // CALLPARK_BENCH_LOG=FILE keeps callpark's debug log of the latency phase for a look.
    if let Ok(f) = std::env::var("CALLPARK_BENCH_LOG") {
        std::fs::write(f, cp.log_text()).expect("write CALLPARK_BENCH_LOG");
    }
    drop(cp);
    // The include is generated from this configuration (music off), as a deployment would.
    let mut cp = Callpark::start(&Setup {
        park: "pickup_timeout = \"10m\"\nmusic_on_hold = false\n".into(),
        ranges: vec![("701", "799"), ("5000", "5999")],
        ast_include_from_config: true,
        log,
        ..Setup::default()
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
            let (ari, ami) = (ari.clone(), ami.clone());
            async move {
                let tag = format!("m{j}");
                let transferer = pair(&ari, &ami, &tag).await;
                ami.blind_transfer(&transferer, "park", "park-in").await;
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
    tokio::time::sleep(Duration::from_secs(if full { 10 } else { 1 })).await;
    let calls = cp.parked().await;
    let mut alive = 0;
    for c in &calls {
        if ari.channel_exists(c.channel.as_str()).await {
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
        "{concurrent} calls parked at once through callpark (no music): parked {parked} in {:.1} s, {} in the store after holding, {alive} alive in Asterisk, {problems} warnings/errors in callpark's log",
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
    assert_eq!(alive, concurrent, "every parked call still up in Asterisk");
    assert_eq!(problems, 0, "callpark logged warnings:\n{log}");

    // 4: restarts with every call parked (stopped as systemd stops it, started as systemd
    // starts it): the time from exec to READY=1, when every pool is connected and its calls
    // restored from the store and reconciled with what the PBX holds.
    let restarts = if full { 3 } else { 1 };
    for run in 1..=restarts {
        cp.restart_with_calls(run, restarts, concurrent, "Asterisk", |id| {
            let ari = ari.clone();
            async move { ari.channel_exists(&id).await }
        })
        .await;
    }
    ari.reset().await;
    drop(cp);
    let shipped = std::path::Path::new(REPO).join("dialplan/asterisk/callpark.conf");
    install_asterisk_include(&std::fs::read_to_string(shipped).unwrap());
}
