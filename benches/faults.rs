//! The long fault-injection run (`cargo bench --bench faults`): 1,000 cycles on every PBX the
//! project supports, the figures printed for the closing note. Options after `--`:
//! `--cycles N`, `--pbx asterisk|freeswitch`, `--seed S`, `--minutes M` (a time budget), and
//! `--nodes`: three callpark nodes on one PostgreSQL instead of one process, faulted as the
//! pool's holder (killed, frozen, cut off from the PBX or from PostgreSQL) and by PostgreSQL
//! restarts, each node's writes to the PBX checked against the epochs it held. Without
//! `--bench` (as `cargo test --all-targets` runs it) it makes one cycle per PBX, to keep the
//! command working.

use callpark_testkit as support;

use support::exclusive_of;
use support::faults::{Layout, Pbx, run, seed};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let full = args.iter().any(|a| a == "--bench");
    let cycles: u32 = match value("--cycles") {
        Some(c) => c.parse().expect("--cycles N"),
        None if full => 1000,
        None => 1,
    };
    let seed = match value("--seed") {
        Some(s) => s.parse().expect("--seed S"),
        None => seed(),
    };
    // --minutes M: stop after M minutes (the report says how many cycles ran).
    let budget = value("--minutes")
        .map(|m| std::time::Duration::from_secs(m.parse::<u64>().expect("--minutes M") * 60));
    let layout = if args.iter().any(|a| a == "--nodes") {
        Layout::Nodes
    } else {
        Layout::OneNode
    };
    let pbxes = match value("--pbx").as_deref() {
        Some("asterisk") => vec![Pbx::Asterisk],
        Some("freeswitch") => vec![Pbx::Freeswitch],
        Some(other) => panic!("--pbx {other}: asterisk or freeswitch"),
        None => vec![Pbx::Asterisk, Pbx::Freeswitch],
    };
    let mut sound = true;
    for pbx in pbxes {
        let _turn = exclusive_of(pbx.testbed()).await;
        let report = run(pbx, layout, cycles, seed, budget).await;
        println!("faults/{pbx}: {report}");
        for p in &report.problems {
            println!("  {p}");
        }
        sound &= report.sound();
    }
    assert!(
        sound,
        "calls were lost, or a node wrote to the PBX out of its epoch"
    );
}
