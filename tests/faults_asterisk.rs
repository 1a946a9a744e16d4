//! The fault-injection run of issue 9, short, on the real Asterisk (tests/faults_freeswitch.rs does the
//! same on FreeSWITCH): parks, retrieves, hang-ups and timeouts in flight while callpark is
//! SIGKILLed, SIGSTOPped, cut off from the PBX or left facing a silent one, with the
//! invariants checked after every cycle (crates/testkit/src/faults/). The long run is
//! `cargo bench --bench faults`. CALLPARK_FAULT_SEED replays a run, CALLPARK_FAULT_CYCLES
//! changes its length (30 cycles).

use callpark_testkit as support;

use support::faults::{Pbx, no_call_lost};

#[tokio::test]
async fn faults_on_asterisk_lose_no_call() {
    no_call_lost(Pbx::Asterisk).await;
}
