//! `GET /metrics`: the Prometheus text format (version 0.0.4), encoded by prometheus-client,
//! which also escapes label values (lots come from the configuration, kinds and pools from
//! the store: any of them may hold a `"`, a `\` or a newline).
//!
//! Nothing is counted here: a scrape reads what the store keeps as entries are committed (the
//! events per pool and kind, the time-to-retrieve histogram), the parked calls' snapshot and
//! the pools' health, and hands them to the encoder as one [`Collector`]. Its cost is a few
//! rows per pool and lot however long the log is, and pruning the log changes no metric.
//!
//! The exposed names, types and labels:
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `callpark_parked` | gauge | pool, lot |
//! | `callpark_lot_orbits` | gauge | pool, lot |
//! | `callpark_lot_utilisation` | gauge | pool, lot |
//! | `callpark_events_total` | counter | pool, kind |
//! | `callpark_pbx_connected` | gauge | pool |
//! | `callpark_pbx_connects_total` | counter | pool |
//! | `callpark_store_commit_seconds` | histogram | pool |
//! | `callpark_time_to_retrieve_seconds` | histogram | pool, lot |
//! | `callpark_pool_lease_holder` | gauge | pool, node |
//! | `callpark_pool_lease_epoch` | gauge | pool |
//! | `callpark_pool_lease_takeovers_total` | counter | pool |
//!
//! The lease families are there on a PostgreSQL store only (several nodes): the holder of each
//! pool's live lease (1), the lease's epoch, and the takeovers so far (every epoch after the
//! first: a node that took over a lease that ran out, or was handed one). Every node shows them
//! for every pool.
//!
//! The counters are named without `_total` (`callpark_events`): the encoder adds it to the
//! names it writes, `# HELP` and `# TYPE` lines included.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use super::calls::lot_name;
use super::{ApiState, Failure};
use crate::config::Config;
use crate::service::health::{COMMIT_BUCKETS, Commits};
use crate::store::{WAIT_BUCKETS_MS, WaitBucket};

/// What one scrape shows.
#[derive(Debug)]
struct Scrape {
    /// Every configured pool and lot, sorted, each once.
    lots: Vec<Lot>,
    /// Log entries per pool and kind, in the store's order.
    events: Vec<(String, String, u64)>,
    /// The pools' PBX connections and store commits, where the API has the pools' health.
    pools: Option<Pools>,
    /// The pools' leases (PostgreSQL store).
    leases: Vec<crate::store::LeaseRow>,
}

/// One pool's lot.
#[derive(Debug)]
struct Lot {
    pool: String,
    lot: String,
    /// Calls in callpark's hands now.
    parked: u64,
    /// Orbits configured.
    orbits: u64,
    /// Parked calls that hold an orbit.
    on_orbits: u64,
    /// How long retrieved calls waited, in seconds.
    waits: Histogram,
}

#[derive(Debug)]
struct Pools {
    /// Pool, connected now, connections made.
    connections: Vec<(String, bool, u64)>,
    /// Pool, its store commits' durations in seconds.
    commits: Vec<(String, Histogram)>,
}

/// A histogram as the encoder takes it: a count per bucket (not cumulative), the count of
/// all (`le="+Inf"`, the samples above every bound included) and their sum.
#[derive(Debug, Default, Clone, PartialEq)]
struct Histogram {
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum: f64,
}

impl Histogram {
    /// From cumulative counts, one per bound.
    fn from_cumulative(bounds: impl IntoIterator<Item = (f64, u64)>, count: u64, sum: f64) -> Self {
        let mut below = 0;
        let buckets = bounds
            .into_iter()
            .map(|(le, n)| {
                let own = n.saturating_sub(below);
                below = below.max(n);
                (le, own)
            })
            .collect();
        Histogram {
            buckets,
            count,
            sum,
        }
    }
}

/// A count from the store (never negative) as the encoder takes it.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The number of orbits of a pool's lot.
fn lot_size(cfg: &Config, pool: &str, lot: &str) -> u64 {
    cfg.orbits
        .ranges()
        .iter()
        .filter(|r| r.pool == pool && lot_name(&r.lot) == lot)
        .map(|r| r.span.len())
        .sum()
}

/// The commit histogram of one pool, from the cumulative counts its health keeps (one per
/// bound of [`COMMIT_BUCKETS`], then all).
fn commit_histogram(c: &Commits) -> Histogram {
    Histogram::from_cumulative(
        COMMIT_BUCKETS
            .iter()
            .copied()
            .zip(c.cumulative.iter().copied()),
        c.cumulative.last().copied().unwrap_or(0),
        c.sum_secs,
    )
}

/// The time-to-retrieve histogram of one pool's lot, from the store's buckets.
fn wait_histogram(waits: &[WaitBucket], pool: &str, lot: &str) -> Histogram {
    let mine: Vec<&WaitBucket> = waits
        .iter()
        .filter(|w| w.pool == pool && w.lot == lot)
        .collect();
    let cumulative = WAIT_BUCKETS_MS.iter().map(|&b| {
        let n: i64 = mine.iter().filter(|w| w.le_ms <= b).map(|w| w.n).sum();
        (b as f64 / 1000.0, count(n))
    });
    Histogram::from_cumulative(
        cumulative,
        count(mine.iter().map(|w| w.n).sum()),
        mine.iter().map(|w| w.sum_ms).sum::<i64>() as f64 / 1000.0,
    )
}

impl Scrape {
    /// Reads what a scrape shows: the parked calls' snapshot, the store's counters and the
    /// pools' health.
    async fn read(s: &ApiState) -> Result<Scrape, Failure> {
        let parked = s.parked_now().await?;
        let calls = &parked.calls;
        let mut names: Vec<(String, String)> = s
            .cfg
            .orbits
            .ranges()
            .iter()
            .map(|r| (r.pool.clone(), lot_name(&r.lot).to_string()))
            .collect();
        names.sort();
        names.dedup();
        let waits = s.store.retrieve_waits().await?;
        let lots = names
            .into_iter()
            .map(|(pool, lot)| {
                let here = || {
                    calls
                        .iter()
                        .filter(|(p, c)| *p == pool && lot_name(&c.lot) == lot)
                };
                Lot {
                    parked: here().count() as u64,
                    orbits: lot_size(&s.cfg, &pool, &lot),
                    on_orbits: here().filter(|(_, c)| c.orbit.is_some()).count() as u64,
                    waits: wait_histogram(&waits, &pool, &lot),
                    pool,
                    lot,
                }
            })
            .collect();
        let events = s
            .store
            .log_counts()
            .await?
            .into_iter()
            .map(|(pool, kind, n)| (pool, kind, count(n)))
            .collect();
        let pools = s.health.as_ref().map(|h| Pools {
            connections: h.connections(),
            commits: h
                .commits()
                .iter()
                .map(|(pool, c)| (pool.clone(), commit_histogram(c)))
                .collect(),
        });
        let leases = if s.store.is_postgres() {
            s.store.leases().await?
        } else {
            Vec::new()
        };
        Ok(Scrape {
            lots,
            events,
            pools,
            leases,
        })
    }

    /// The exposition.
    fn render(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

/// A metric family's samples, each with its labels. Its type is its samples': a
/// [`ConstCounter`]'s name is written with `_total`.
fn family<L, M>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet,
    M: EncodeMetric + TypedMetric,
{
    let mut m = encoder.encode_descriptor(name, help, None, M::TYPE)?;
    for (labels, value) in samples {
        value.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A histogram family's samples, each with its labels.
fn histograms<'a, L>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, &'a Histogram)>,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet,
{
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in samples {
        m.encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
    }
    Ok(())
}

/// A lot's labels.
fn lot_labels(l: &Lot) -> [(&'static str, &str); 2] {
    [("pool", l.pool.as_str()), ("lot", l.lot.as_str())]
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        family(
            &mut e,
            "callpark_parked",
            "Calls in callpark's hands now, per pool and lot.",
            self.lots
                .iter()
                .map(|l| (lot_labels(l), ConstGauge::new(l.parked))),
        )?;
        family(
            &mut e,
            "callpark_lot_orbits",
            "Orbits per pool and lot.",
            self.lots
                .iter()
                .map(|l| (lot_labels(l), ConstGauge::new(l.orbits))),
        )?;
        family(
            &mut e,
            "callpark_lot_utilisation",
            "Share of a lot's orbits in use now (0 to 1).",
            self.lots.iter().map(|l| {
                let share = l.on_orbits as f64 / l.orbits.max(1) as f64;
                (lot_labels(l), ConstGauge::new(share))
            }),
        )?;
        family(
            &mut e,
            "callpark_events",
            "Park events logged, per pool and kind (parked, retrieved, ringback_started, fallback_started, disconnected, refused...).",
            self.events.iter().map(|(pool, kind, n)| {
                (
                    [("pool", pool.as_str()), ("kind", kind.as_str())],
                    ConstCounter::new(*n),
                )
            }),
        )?;
        if let Some(p) = &self.pools {
            family(
                &mut e,
                "callpark_pbx_connected",
                "Whether the pool's PBX connection is up.",
                p.connections.iter().map(|(pool, up, _)| {
                    ([("pool", pool.as_str())], ConstGauge::new(u64::from(*up)))
                }),
            )?;
            family(
                &mut e,
                "callpark_pbx_connects",
                "Connections made to the pool's PBX (the first and every reconnect).",
                p.connections
                    .iter()
                    .map(|(pool, _, n)| ([("pool", pool.as_str())], ConstCounter::new(*n))),
            )?;
            histograms(
                &mut e,
                "callpark_store_commit_seconds",
                "How long each step's store commit took.",
                p.commits
                    .iter()
                    .map(|(pool, h)| ([("pool", pool.as_str())], h)),
            )?;
        }
        if !self.leases.is_empty() {
            family(
                &mut e,
                "callpark_pool_lease_holder",
                "The node holding the pool's live lease (1); none while it has run out.",
                self.leases.iter().filter(|l| l.left_ms > 0).map(|l| {
                    (
                        [("pool", l.pool.as_str()), ("node", l.holder.as_str())],
                        ConstGauge::new(1),
                    )
                }),
            )?;
            family(
                &mut e,
                "callpark_pool_lease_epoch",
                "The epoch of the pool's lease: one more at every takeover.",
                self.leases
                    .iter()
                    .map(|l| ([("pool", l.pool.as_str())], ConstGauge::new(l.epoch))),
            )?;
            family(
                &mut e,
                "callpark_pool_lease_takeovers",
                "Times another lease was taken on the pool after its first.",
                self.leases.iter().map(|l| {
                    (
                        [("pool", l.pool.as_str())],
                        ConstCounter::new((l.epoch - 1).max(0) as u64),
                    )
                }),
            )?;
        }
        histograms(
            &mut e,
            "callpark_time_to_retrieve_seconds",
            "How long retrieved calls waited on their orbit.",
            self.lots.iter().map(|l| (lot_labels(l), &l.waits)),
        )
    }
}

/// The metrics, in the Prometheus text format.
pub(super) async fn metrics(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    let text = Scrape::read(&s).await?.render();
    Ok((
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        text,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lot(pool: &str, lot: &str, parked: u64, orbits: u64, waits: Histogram) -> Lot {
        Lot {
            pool: pool.into(),
            lot: lot.into(),
            parked,
            orbits,
            on_orbits: parked,
            waits,
        }
    }

    fn wait(pool: &str, lot: &str, le_ms: i64, n: i64, sum_ms: i64) -> WaitBucket {
        WaitBucket {
            pool: pool.into(),
            lot: lot.into(),
            le_ms,
            n,
            sum_ms,
        }
    }

    #[test]
    fn the_exposition_keeps_its_names_types_and_labels() {
        // Two retrieves of pbx-a's general lot: 41.5 s (60 s bucket) and 700 s (above all).
        let waits = [
            wait("pbx-a", "general", 60_000, 1, 41_500),
            wait("pbx-a", "general", crate::store::WAIT_INF, 1, 700_000),
        ];
        let commits = Commits {
            cumulative: vec![0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3],
            sum_secs: 1.5308,
        };
        let text = Scrape {
            lots: vec![
                lot(
                    "pbx-a",
                    "general",
                    0,
                    9,
                    wait_histogram(&waits, "pbx-a", "general"),
                ),
                lot(
                    "pbx-a",
                    "sales",
                    1,
                    2,
                    wait_histogram(&waits, "pbx-a", "sales"),
                ),
            ],
            events: vec![
                ("pbx-a".into(), "parked".into(), 2),
                ("pbx-a".into(), "retrieved".into(), 1),
            ],
            pools: Some(Pools {
                connections: vec![("pbx-a".into(), true, 2)],
                commits: vec![("pbx-a".into(), commit_histogram(&commits))],
            }),
            leases: vec![],
        }
        .render();
        let want = r#"# HELP callpark_parked Calls in callpark's hands now, per pool and lot.
# TYPE callpark_parked gauge
callpark_parked{pool="pbx-a",lot="general"} 0
callpark_parked{pool="pbx-a",lot="sales"} 1
# HELP callpark_lot_orbits Orbits per pool and lot.
# TYPE callpark_lot_orbits gauge
callpark_lot_orbits{pool="pbx-a",lot="general"} 9
callpark_lot_orbits{pool="pbx-a",lot="sales"} 2
# HELP callpark_lot_utilisation Share of a lot's orbits in use now (0 to 1).
# TYPE callpark_lot_utilisation gauge
callpark_lot_utilisation{pool="pbx-a",lot="general"} 0.0
callpark_lot_utilisation{pool="pbx-a",lot="sales"} 0.5
# HELP callpark_events_total Park events logged, per pool and kind (parked, retrieved, ringback_started, fallback_started, disconnected, refused...).
# TYPE callpark_events_total counter
callpark_events_total{pool="pbx-a",kind="parked"} 2
callpark_events_total{pool="pbx-a",kind="retrieved"} 1
# HELP callpark_pbx_connected Whether the pool's PBX connection is up.
# TYPE callpark_pbx_connected gauge
callpark_pbx_connected{pool="pbx-a"} 1
# HELP callpark_pbx_connects_total Connections made to the pool's PBX (the first and every reconnect).
# TYPE callpark_pbx_connects_total counter
callpark_pbx_connects_total{pool="pbx-a"} 2
# HELP callpark_store_commit_seconds How long each step's store commit took.
# TYPE callpark_store_commit_seconds histogram
callpark_store_commit_seconds_bucket{pool="pbx-a",le="0.0005"} 0
callpark_store_commit_seconds_bucket{pool="pbx-a",le="0.001"} 1
callpark_store_commit_seconds_bucket{pool="pbx-a",le="0.002"} 1
callpark_store_commit_seconds_bucket{pool="pbx-a",le="0.005"} 1
callpark_store_commit_seconds_bucket{pool="pbx-a",le="0.01"} 1
callpark_store_commit_seconds_bucket{pool="pbx-a",le="0.025"} 1
callpark_store_commit_seconds_bucket{pool="pbx-a",le="0.05"} 2
callpark_store_commit_seconds_bucket{pool="pbx-a",le="0.1"} 2
callpark_store_commit_seconds_bucket{pool="pbx-a",le="0.25"} 2
callpark_store_commit_seconds_bucket{pool="pbx-a",le="1"} 2
callpark_store_commit_seconds_bucket{pool="pbx-a",le="+Inf"} 3
callpark_store_commit_seconds_sum{pool="pbx-a"} 1.5308
callpark_store_commit_seconds_count{pool="pbx-a"} 3
# HELP callpark_time_to_retrieve_seconds How long retrieved calls waited on their orbit.
# TYPE callpark_time_to_retrieve_seconds histogram
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="general",le="5"} 0
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="general",le="10"} 0
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="general",le="30"} 0
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="general",le="60"} 1
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="general",le="90"} 1
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="general",le="120"} 1
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="general",le="300"} 1
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="general",le="600"} 1
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="general",le="+Inf"} 2
callpark_time_to_retrieve_seconds_sum{pool="pbx-a",lot="general"} 741.5
callpark_time_to_retrieve_seconds_count{pool="pbx-a",lot="general"} 2
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="sales",le="5"} 0
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="sales",le="10"} 0
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="sales",le="30"} 0
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="sales",le="60"} 0
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="sales",le="90"} 0
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="sales",le="120"} 0
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="sales",le="300"} 0
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="sales",le="600"} 0
callpark_time_to_retrieve_seconds_bucket{pool="pbx-a",lot="sales",le="+Inf"} 0
callpark_time_to_retrieve_seconds_sum{pool="pbx-a",lot="sales"} 0.0
callpark_time_to_retrieve_seconds_count{pool="pbx-a",lot="sales"} 0
"#;
        assert_eq!(text, want);
    }

    #[test]
    fn label_values_are_escaped() {
        // A lot name may hold a backslash; a kind or pool in an old store anything.
        let odd = "pool \"x\"\\y\nnext";
        let text = Scrape {
            lots: vec![lot(odd, "a\\b", 1, 1, Histogram::default())],
            events: vec![(odd.into(), "parked".into(), 1)],
            pools: Some(Pools {
                connections: vec![(odd.into(), false, 0)],
                commits: vec![],
            }),
            leases: vec![
                crate::store::LeaseRow {
                    pool: odd.into(),
                    holder: "node-b".into(),
                    epoch: 3,
                    left_ms: 2400,
                },
                // Run out: no holder shown, its epoch and takeovers still are.
                crate::store::LeaseRow {
                    pool: "pbx-c".into(),
                    holder: "node-a".into(),
                    epoch: 1,
                    left_ms: -5,
                },
            ],
        }
        .render();
        assert!(
            !text.contains(r#"callpark_pool_lease_holder{pool="pbx-c""#),
            "{text}"
        );
        let pool = r#"pool="pool \"x\"\\y\nnext""#;
        for line in [
            format!(r#"callpark_pool_lease_holder{{{pool},node="node-b"}} 1"#),
            format!(r#"callpark_pool_lease_epoch{{{pool}}} 3"#),
            format!(r#"callpark_pool_lease_takeovers_total{{{pool}}} 2"#),
            r#"callpark_pool_lease_epoch{pool="pbx-c"} 1"#.to_string(),
            r#"callpark_pool_lease_takeovers_total{pool="pbx-c"} 0"#.to_string(),
            format!(r#"callpark_parked{{{pool},lot="a\\b"}} 1"#),
            format!(r#"callpark_events_total{{{pool},kind="parked"}} 1"#),
            format!(r#"callpark_pbx_connected{{{pool}}} 0"#),
            format!(r#"callpark_time_to_retrieve_seconds_count{{{pool},lot="a\\b"}} 0"#),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        // Every sample is one line with balanced quotes.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let unescaped = l.replace("\\\\", "").replace("\\\"", "");
            assert_eq!(unescaped.matches('"').count() % 2, 0, "{l}");
        }
        // Nothing but the families above: no `# EOF` of OpenMetrics, no `# UNIT`.
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
    }
}
