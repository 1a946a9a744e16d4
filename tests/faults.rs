//! The fault-injection run of issue 9, short, on both real PBXes: parks, retrieves, hang-ups
//! and timeouts in flight while callpark is SIGKILLed, SIGSTOPped, cut off from the PBX or left
//! facing a silent one, with the invariants checked after every cycle (tests/support/faults.rs).
//! The long run is `cargo bench --bench faults`. Set CALLPARK_FAULT_SEED to replay a run,
//! CALLPARK_FAULT_CYCLES to change its length.

mod support;

use support::exclusive;
use support::faults::{Pbx, run, seed};

fn cycles() -> u32 {
    std::env::var("CALLPARK_FAULT_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

async fn no_call_lost(pbx: Pbx) {
    let _turn = exclusive().await;
    let report = run(pbx, cycles(), seed()).await;
    println!("{report}");
    assert!(report.parks > 0, "the run parked nothing: {report}");
    assert_eq!(report.lost, 0, "{report}\n{:#?}", report.problems);
}

#[tokio::test]
async fn faults_on_asterisk_lose_no_call() {
    no_call_lost(Pbx::Asterisk).await;
}

#[tokio::test]
async fn faults_on_freeswitch_lose_no_call() {
    no_call_lost(Pbx::Freeswitch).await;
}
