//! Takeover time of a pool between two callpark nodes on one PostgreSQL, on the FreeSWITCH
//! testbed, with calls parked all along: from the dead holder's last good lease renewal to the
//! standby having adopted every call (its log's "reconciled" line), per fault kind:
//! - `kill`: the holder is SIGKILLed (then started again, as a standby);
//! - `stop`: the holder is frozen (SIGSTOP; thawed after the takeover, it finds its lease gone);
//! - `cut`: the holder's PostgreSQL connections are cut and refused (through a TCP forwarder);
//! - `silence`: they stay open and carry nothing.
//!
//! The last good renewal is read from the lease row at the fault (its expiry less the 3 s a
//! lease lasts, on the database's clock, which is this machine's). After every takeover the
//! store must still hold every parked call, and the lease's epoch must be one more; at the end
//! every parked channel must still be alive in FreeSWITCH.
//!
//! Run: `cargo bench --bench takeover` (100 takeovers per kind, 99 calls parked: every orbit of the testbed's 601-699; `--kinds
//! kill,stop`, `--takeovers N`, `--calls N` change that). Under `cargo test` it runs 2 takeovers
//! per kind with 5 calls, so the code cannot rot.

use callpark_testkit as support;

use std::time::{Duration, Instant};

use callpark::store::{Location, Store};
use support::postgres::PgCluster;
use support::stats::{ms, pct};
use support::testbed::*;
use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;
/// How long a lease lasts after a renewal (service::lease::TTL).
const TTL_MS: i64 = 3_000;

struct Node {
    cp: Callpark,
    /// The node's own path to PostgreSQL.
    db: Cutter,
    name: &'static str,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Times the log has `what`.
fn count(cp: &Callpark, what: &str) -> usize {
    cp.log_text().matches(what).count()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let takeovers: usize = arg(&args, "--takeovers")
        .map(|v| v.parse().expect("--takeovers N"))
        .unwrap_or(if full { 100 } else { 2 });
    let calls: u32 = arg(&args, "--calls")
        .map(|v| v.parse().expect("--calls N"))
        .unwrap_or(if full { 99 } else { 5 });
    let kinds: Vec<String> = arg(&args, "--kinds")
        .unwrap_or_else(|| "kill,stop,cut,silence".into())
        .split(',')
        .map(str::to_string)
        .collect();

    let fs = FreeswitchTestbed::take().await;
    let pg = PgCluster::start();
    let url = pg.create_db("callpark");
    let store = Store::open_at(&Location::from_setting(&url)).await.unwrap();
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b"] {
        let db = Cutter::start(format!("127.0.0.1:{}", pg.port())).await;
        let mut setup = fs.setup("pickup_timeout = \"10m\"\n");
        setup.log = "info";
        setup.service = format!(
            "database = \"postgres://callpark@127.0.0.1:{}/callpark\"\nnode = \"{name}\"\n",
            db.port
        );
        let cp = Callpark::start_node(&setup).await;
        if nodes.is_empty() {
            wait_for("node-a to drive the pool", S(20), || async {
                (count(&cp, "reconciled") >= 1).then_some(())
            })
            .await;
        }
        nodes.push(Node { cp, db, name });
    }
    let mut channels: Vec<Chan> = Vec::new();
    println!("{calls} calls parked afresh for each kind; {takeovers} takeovers per kind");

    for kind in &kinds {
        // Fresh calls for each kind: a kind's takeovers (about 3.3 s each) end well within
        // the longest pickup timeout (10 min), so no ringback comes among them.
        for c in channels.drain(..) {
            fs.hang_up(&c.id).await;
        }
        wait_for("the previous kind's calls gone", S(30), || async {
            store.parked(None).await.unwrap().is_empty().then_some(())
        })
        .await;
        let holder = store.leases().await.unwrap().remove(0).holder;
        let by = nodes.iter().find(|n| n.name == holder).unwrap();
        for i in 1..=calls {
            let c = fs
                .park_by_transfer(&format!("t{i}"), &format!("T{i}"), &format!("5559{i:03}"))
                .await;
            by.cp.wait_parked_on(&fs.orbit(i)).await;
            channels.push(c);
        }
        let mut took = Vec::new();
        for round in 0..takeovers {
            let lease = store.leases().await.unwrap().remove(0);
            let (h, s) = if lease.holder == nodes[0].name {
                (0, 1)
            } else {
                (1, 0)
            };
            let adopted_before = count(&nodes[s].cp, "reconciled");
            let read_at = Instant::now();
            match kind.as_str() {
                "kill" => nodes[h].cp.kill(),
                "stop" => nodes[h].cp.freeze(),
                "cut" => nodes[h].db.cut(),
                "silence" => nodes[h].db.freeze(),
                other => panic!("--kinds: no fault kind `{other}` (kill, stop, cut, silence)"),
            }
            // The lease as the holder last renewed it: read at once (its renewals stop now).
            let row = store
                .leases()
                .await
                .unwrap()
                .into_iter()
                .find(|l| l.pool == lease.pool)
                .unwrap();
            let since_renewal = Duration::from_millis((TTL_MS - row.left_ms).max(0) as u64);
            let last_renewal = read_at - since_renewal;
            wait_for(
                &format!("{kind} {round}: the standby to adopt every call"),
                S(30),
                || async { (count(&nodes[s].cp, "reconciled") > adopted_before).then_some(()) },
            )
            .await;
            let adopted = Instant::now();
            took.push(adopted.saturating_duration_since(last_renewal));
            let after = store.leases().await.unwrap().remove(0);
            assert_eq!(
                (after.holder.as_str(), after.epoch),
                (nodes[s].name, lease.epoch + 1),
                "{kind} {round}"
            );
            let held = store.parked(None).await.unwrap().len();
            assert_eq!(held, calls as usize, "{kind} {round}: calls in the store");
            // The faulted node back, standing by.
            match kind.as_str() {
                "kill" => {
                    nodes[h]
                        .cp
                        .spawn_until_logged("pools are driven under leases")
                        .await
                }
                "stop" => {
                    let lost = count(&nodes[h].cp, "lease lost");
                    nodes[h].cp.thaw();
                    wait_for("the thawed node to find its lease lost", S(10), || async {
                        (count(&nodes[h].cp, "lease lost") > lost).then_some(())
                    })
                    .await;
                }
                _ => {
                    // Connections a silence left hanging are dropped, then the path reopens.
                    nodes[h].db.cut();
                    nodes[h].db.restore();
                }
            }
        }
        took.sort();
        println!(
            "{kind:>8}: takeover (last renewal -> every call adopted) p50 {}  p99 {}  max {}  over {} takeovers",
            ms(pct(&took, 0.5)),
            ms(pct(&took, 0.99)),
            ms(*took.last().unwrap()),
            took.len()
        );
        let mut alive = 0;
        for c in &channels {
            if fs.exists(&c.id).await {
                alive += 1;
            }
        }
        let held = store.parked(None).await.unwrap().len();
        println!(
            "{kind:>8}: after the takeovers {alive} of {calls} parked channels alive in FreeSWITCH, {held} in the store"
        );
        assert_eq!((alive, held), (calls as usize, calls as usize));
    }
    drop(nodes);
}
