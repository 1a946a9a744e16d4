//! What a fault run faults: one callpark process, or several nodes sharing a PostgreSQL store
//! and taking the pool over from one another. Either way the run reads the same things (the
//! store, the event log, callpark's own log) and injects a fault, then ends it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use callpark::park::ParkedCall;
use callpark::store::{Location, LogRow, Store};

use super::Pbx;
use super::bed::Bed;
use super::plan::Fault;
use crate::postgres::PgCluster;
use crate::{Callpark, Cutter};

/// Where the run's callpark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One process on an SQLite store, as most sites run it.
    OneNode,
    /// Three nodes on one PostgreSQL, one pool among them (README, "Several nodes").
    Nodes,
}

/// The run's callpark, as it is faulted.
pub(super) enum Site {
    One {
        cp: Callpark,
        /// In front of the PBX.
        pbx: Cutter,
    },
    Nodes(Nodes),
}

pub(super) struct Nodes {
    pg: Arc<PgCluster>,
    /// The store's URL on the cluster itself, not through a node's path: the run reads it
    /// while a node's path is cut.
    url: String,
    nodes: Vec<Node>,
    /// What the PBX checks found, for the report.
    pub seen: Commands,
}

struct Node {
    name: &'static str,
    cp: Callpark,
    /// The node's own path to the PBX, tapped: what passes is what this node sent the PBX.
    pbx: Cutter,
    /// The node's own path to PostgreSQL.
    db: Cutter,
    /// Writes to the PBX not yet checked against the epochs.
    unchecked: Vec<(SystemTime, usize)>,
}

/// Who sent the PBX what, epoch by epoch, as the nodes' tapped paths saw it.
#[derive(Debug, Default)]
pub struct Commands {
    /// Writes to the PBX checked against the epoch in force when they passed.
    pub writes: u64,
    /// Epochs the pool went through (takeovers + 1).
    pub epochs: u64,
    /// Epochs in which some node that did not hold them wrote to the PBX. Must be 0.
    pub shared: u64,
}

/// How long after a write the run waits before checking it: a lease taken just before it
/// may not be committed yet.
const SETTLED: Duration = Duration::from_secs(1);

/// Test-side record of every epoch the pool went through: the nodes write only the current
/// lease, so a trigger keeps each epoch's holder and start (the database's clock, in ms).
const HISTORY: &str = "
CREATE TABLE fault_run_epochs (pool TEXT, epoch BIGINT, holder TEXT, taken BIGINT,
                               PRIMARY KEY (pool, epoch));
CREATE FUNCTION fault_run_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO fault_run_epochs VALUES (NEW.pool, NEW.epoch, NEW.holder, NEW.taken)
  ON CONFLICT DO NOTHING;
  RETURN NEW;
END $$;
CREATE TRIGGER fault_run_epoch AFTER INSERT OR UPDATE ON pool_lease
  FOR EACH ROW EXECUTE FUNCTION fault_run_epoch();
";

const NODE_NAMES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// What a node's log says once it runs its pools under leases.
const STANDING: &str = "pools are driven under leases";

impl Site {
    /// The run's callpark, configured for `bed` through paths to `target` (the PBX's port).
    pub(super) async fn start(layout: Layout, pbx: Pbx, bed: &Bed, target: &str) -> Site {
        match layout {
            Layout::OneNode => {
                let cutter = Cutter::start(target.to_string()).await;
                let cp = Callpark::start(&bed.setup(cutter.port)).await;
                Site::One { cp, pbx: cutter }
            }
            Layout::Nodes => Site::Nodes(Nodes::start(pbx, bed, target).await),
        }
    }

    /// The store's parked calls.
    pub(super) async fn parked(&self) -> Vec<ParkedCall> {
        match self {
            Site::One { cp, .. } => cp.parked().await,
            Site::Nodes(n) => {
                let s = n.store().await;
                let v = s.parked(None).await.expect("the parked calls");
                s.close().await;
                v.into_iter().map(|(_, c)| c).collect()
            }
        }
    }

    /// The event log.
    pub(super) async fn log_rows(&self) -> Vec<LogRow> {
        match self {
            Site::One { cp, .. } => cp.log_rows().await,
            Site::Nodes(n) => {
                let s = n.store().await;
                let v = s.log(100_000).await.expect("the event log");
                s.close().await;
                v
            }
        }
    }

    /// callpark's own log; each line of a node's is marked with its name.
    pub(super) fn log_text(&self) -> String {
        match self {
            Site::One { cp, .. } => cp.log_text(),
            Site::Nodes(n) => n
                .nodes
                .iter()
                .flat_map(|node| {
                    node.cp
                        .log_text()
                        .lines()
                        .map(|l| format!("[{}] {l}", node.name))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// A process that ended by itself, by name.
    pub(super) fn exited(&self) -> Option<&'static str> {
        match self {
            Site::One { cp, .. } => cp.exited().then_some("callpark"),
            Site::Nodes(n) => n.nodes.iter().find(|x| x.cp.exited()).map(|x| x.name),
        }
    }

    /// Waits `at`, injects `fault`, and ends it after `lasting`: the process killed and
    /// started again, frozen and thawed, its connection to the PBX (or, with several nodes,
    /// to PostgreSQL) cut or silenced and restored, PostgreSQL stopped and started. With
    /// several nodes the fault hits the node holding the pool at that moment.
    pub(super) async fn inject(&mut self, fault: Fault, at: Duration, lasting: Duration) {
        tokio::time::sleep(at).await;
        match self {
            Site::One { cp, pbx } => match fault {
                Fault::None => {}
                Fault::Kill => {
                    cp.kill();
                    tokio::time::sleep(lasting).await;
                    cp.spawn().await;
                }
                Fault::Stop => {
                    cp.freeze();
                    tokio::time::sleep(lasting).await;
                    cp.thaw();
                }
                Fault::Cut => {
                    pbx.cut();
                    tokio::time::sleep(lasting).await;
                    pbx.restore();
                }
                Fault::Silence => {
                    pbx.freeze();
                    tokio::time::sleep(lasting).await;
                    pbx.restore();
                }
                Fault::DbCut | Fault::DbSilence | Fault::DbRestart => {
                    panic!("{fault:?} needs several nodes on PostgreSQL; one node has none")
                }
            },
            Site::Nodes(n) => n.inject(fault, lasting).await,
        }
    }

    /// Every process stopped.
    pub(super) fn stop(&mut self) {
        match self {
            Site::One { cp, .. } => cp.kill(),
            Site::Nodes(n) => {
                for node in &mut n.nodes {
                    node.cp.kill();
                }
            }
        }
    }
}

impl Nodes {
    async fn start(pbx: Pbx, bed: &Bed, target: &str) -> Nodes {
        let pg = Arc::new(PgCluster::start());
        let url = pg.create_db("callpark");
        // The schema first (the nodes find it made), then the run's own record of epochs.
        Store::open_at(&Location::from_setting(&url))
            .await
            .expect("the store made on PostgreSQL")
            .close()
            .await;
        pg.psql("callpark", HISTORY)
            .await
            .expect("the fault run's record of epochs");
        let mut nodes = Vec::new();
        for name in NODE_NAMES {
            let pbx_path = Cutter::start_tapped(target.to_string()).await;
            let db = Cutter::start(format!("127.0.0.1:{}", pg.port())).await;
            let mut setup = bed.setup(pbx_path.port);
            setup.service = format!(
                "database = \"postgres://callpark@127.0.0.1:{}/callpark\"\nnode = \"{name}\"\n",
                db.port
            );
            // README: with several nodes, FreeSWITCH's `outbound` is left unset (the
            // include's `socket` names one address, which would not follow the pool).
            setup.fs_outbound = false;
            let cp = Callpark::start_node(&setup).await;
            if nodes.is_empty() {
                // node-a drives the pool before the others come, so each run starts alike.
                let connected = match pbx {
                    Pbx::Asterisk => "connected to ARI",
                    Pbx::Freeswitch => "connected to FreeSWITCH",
                };
                crate::wait_for(
                    "node-a to drive the pool",
                    Duration::from_secs(20),
                    || async { cp.log_text().contains(connected).then_some(()) },
                )
                .await;
            }
            nodes.push(Node {
                name,
                cp,
                pbx: pbx_path,
                db,
                unchecked: Vec::new(),
            });
        }
        Nodes {
            pg,
            url,
            nodes,
            seen: Commands::default(),
        }
    }

    async fn store(&self) -> Store {
        Store::open_at(&Location::from_setting(&self.url))
            .await
            .expect("the store on PostgreSQL")
    }

    /// The pool's epochs so far: (epoch, holder, taken in ms since the Unix epoch).
    async fn epochs(&self) -> Result<Vec<(i64, String, i64)>, String> {
        let rows = self
            .pg
            .psql(
                "callpark",
                "SELECT epoch, holder, taken FROM fault_run_epochs ORDER BY epoch",
            )
            .await?;
        rows.lines()
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                match f[..] {
                    [e, h, t] => Ok((
                        e.parse().map_err(|_| format!("epoch {e}"))?,
                        h.to_string(),
                        t.parse().map_err(|_| format!("taken {t}"))?,
                    )),
                    _ => Err(format!("a row of epochs: {l}")),
                }
            })
            .collect()
    }

    /// The node holding the pool now (the newest epoch's holder).
    async fn holder(&self) -> usize {
        let epochs = crate::wait_for("the pool's epochs", Duration::from_secs(20), || async {
            self.epochs().await.ok().filter(|e| !e.is_empty())
        })
        .await;
        let holder = &epochs.last().unwrap().1;
        self.nodes
            .iter()
            .position(|n| n.name == holder)
            .unwrap_or_else(|| panic!("the pool is held by {holder}, not one of the run's nodes"))
    }

    async fn inject(&mut self, fault: Fault, lasting: Duration) {
        if fault == Fault::None {
            return;
        }
        if fault == Fault::DbRestart {
            let pg = self.pg.clone();
            tokio::task::spawn_blocking(move || pg.stop())
                .await
                .unwrap();
            tokio::time::sleep(lasting).await;
            let pg = self.pg.clone();
            tokio::task::spawn_blocking(move || pg.start_again())
                .await
                .unwrap();
            return;
        }
        let h = self.holder().await;
        let node = &mut self.nodes[h];
        match fault {
            Fault::Kill => {
                node.cp.kill();
                tokio::time::sleep(lasting).await;
                node.cp.spawn_until_logged(STANDING).await;
            }
            Fault::Stop => {
                node.cp.freeze();
                tokio::time::sleep(lasting).await;
                node.cp.thaw();
            }
            Fault::Cut => {
                node.pbx.cut();
                tokio::time::sleep(lasting).await;
                node.pbx.restore();
            }
            Fault::Silence => {
                node.pbx.freeze();
                tokio::time::sleep(lasting).await;
                node.pbx.restore();
            }
            Fault::DbCut => {
                node.db.cut();
                tokio::time::sleep(lasting).await;
                node.db.restore();
            }
            Fault::DbSilence => {
                node.db.freeze();
                tokio::time::sleep(lasting).await;
                // The hung connections end (a path back up resets what it dropped), then it
                // reopens.
                node.db.cut();
                node.db.restore();
            }
            Fault::None | Fault::DbRestart => unreachable!("handled above"),
        }
    }

    /// The PBX's side of fencing: every write a node made to the PBX (through its own tapped
    /// path) must fall in an epoch that node held, the newest one taken before it. A write
    /// by any other node is a second node commanding the PBX within one epoch. Writes newer
    /// than [`SETTLED`] wait for the next look.
    pub(super) async fn check_commands(&mut self) -> Vec<String> {
        for node in &mut self.nodes {
            node.unchecked.extend(node.pbx.written());
        }
        let epochs = match self.epochs().await {
            Ok(e) => e,
            // PostgreSQL not answering yet: the writes wait for the next look.
            Err(_) => return Vec::new(),
        };
        self.seen.epochs = epochs.len() as u64;
        let settled = SystemTime::now() - SETTLED;
        let mut writes = Vec::new();
        for node in &mut self.nodes {
            let (now, later): (Vec<_>, Vec<_>) =
                node.unchecked.drain(..).partition(|(t, _)| *t < settled);
            node.unchecked = later;
            writes.extend(now.into_iter().map(|(t, bytes)| (node.name, t, bytes)));
        }
        self.seen.writes += writes.len() as u64;
        let (shared, problems) = out_of_epoch(&epochs, &writes);
        self.seen.shared += shared;
        problems
    }
}

/// Each write (node, when, bytes) set against the epoch in force when it passed, the newest
/// taken before it: the number of epochs written by a node that did not hold them, and one
/// line per such node and epoch.
fn out_of_epoch(
    epochs: &[(i64, String, i64)],
    writes: &[(&'static str, SystemTime, usize)],
) -> (u64, Vec<String>) {
    // (node, epoch) -> (writes, bytes, first write)
    let mut wrong: BTreeMap<(&'static str, i64), (u64, usize, SystemTime)> = BTreeMap::new();
    let mut shared = std::collections::BTreeSet::new();
    for &(name, t, bytes) in writes {
        let at = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let in_force = epochs.iter().rev().find(|(_, _, taken)| *taken <= at);
        let (epoch, holder) = match in_force {
            Some((e, h, _)) => (*e, h.as_str()),
            None => (0, "nobody"),
        };
        if holder != name {
            shared.insert(epoch);
            let w = wrong.entry((name, epoch)).or_insert((0, 0, t));
            w.0 += 1;
            w.1 += bytes;
            w.2 = w.2.min(t);
        }
    }
    let problems = wrong
        .into_iter()
        .map(|((name, epoch), (writes, bytes, first))| {
            let holder = epochs
                .iter()
                .find(|(e, _, _)| *e == epoch)
                .map_or("nobody", |(_, h, _)| h.as_str());
            format!(
                "{name} wrote to the PBX in epoch {epoch}, which {holder} held: {writes} writes, {bytes} bytes, the first at {} ms since the Unix epoch",
                first
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
            )
        })
        .collect();
    (shared.len() as u64, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// A write belongs to the epoch taken last before it; node-a writing after node-b took
    /// the pool (a frozen holder thawed, say) is found, once per node and epoch, and so is a
    /// write before anyone held the pool.
    #[test]
    fn a_write_outside_the_writers_epoch_is_found() {
        let epochs = vec![
            (1, "node-a".to_string(), 1_000),
            (2, "node-b".to_string(), 5_000),
            (3, "node-a".to_string(), 9_000),
        ];
        let fine = [
            ("node-a", at(1_000), 10),
            ("node-a", at(4_999), 10),
            ("node-b", at(5_000), 10),
            ("node-b", at(8_999), 10),
            ("node-a", at(9_500), 10),
        ];
        assert_eq!(out_of_epoch(&epochs, &fine), (0, vec![]));
        let wrong = [
            ("node-b", at(900), 7),
            ("node-a", at(5_200), 10),
            ("node-a", at(5_100), 20),
            ("node-b", at(9_001), 5),
        ];
        let (shared, problems) = out_of_epoch(&epochs, &wrong);
        assert_eq!(shared, 3);
        assert_eq!(
            problems,
            [
                "node-a wrote to the PBX in epoch 2, which node-b held: 2 writes, 30 bytes, the first at 5100 ms since the Unix epoch",
                "node-b wrote to the PBX in epoch 0, which nobody held: 1 writes, 7 bytes, the first at 900 ms since the Unix epoch",
                "node-b wrote to the PBX in epoch 3, which node-a held: 1 writes, 5 bytes, the first at 9001 ms since the Unix epoch",
            ]
        );
    }
}
