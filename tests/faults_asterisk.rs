//! The fault-injection run of issue 9, short, on the real Asterisk (tests/faults_freeswitch.rs does the
//! same on FreeSWITCH): parks, retrieves, hang-ups and timeouts in flight while callpark is
//! SIGKILLed, SIGSTOPped, cut off from the PBX or left facing a silent one, with the
//! invariants checked after every cycle (crates/testkit/src/faults/). The long run is
//! `cargo bench --bench faults`. CALLPARK_FAULT_SEED replays a run, CALLPARK_FAULT_CYCLES
//! changes its length (30 cycles).
//!
//! The second run does the same to three nodes on a throwaway PostgreSQL, one pool among
//! them: the holder killed, frozen, cut off from the PBX or from PostgreSQL, PostgreSQL
//! restarted; and it checks, from the PBX's side, that no node wrote to the PBX in an epoch it
//! did not hold (CALLPARK_FAULT_NODE_CYCLES, 16 cycles).

use callpark_testkit as support;

use support::faults::{Layout, Pbx, no_call_lost};

#[tokio::test]
async fn faults_on_asterisk_lose_no_call() {
    no_call_lost(Pbx::Asterisk, Layout::OneNode).await;
}

#[tokio::test]
async fn faults_on_asterisk_across_nodes_lose_no_call_and_never_share_an_epoch() {
    no_call_lost(Pbx::Asterisk, Layout::Nodes).await;
}
