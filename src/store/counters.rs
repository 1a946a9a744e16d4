//! The metrics' counters: log entries per pool and kind, and the time-to-retrieve histogram.
//! [`Store::apply`] moves them in the same transaction as the entries they count, so a scrape
//! never sees one without the other, and pruning entries later changes neither.

use crate::park::{GENERAL_LOT, LogEvent, Millis};

use super::{Db, Store, StoreError, Tx, on_db};

/// The upper bounds (ms) of the time-to-retrieve histogram's buckets; a wait above the last
/// is counted under [`WAIT_INF`].
pub(crate) const WAIT_BUCKETS_MS: [i64; 8] = [
    5_000, 10_000, 30_000, 60_000, 90_000, 120_000, 300_000, 600_000,
];
/// The bucket of the waits above every bound (`le="+Inf"`).
pub(crate) const WAIT_INF: i64 = i64::MAX;

/// The bucket a wait of `ms` is counted in: the least bound it does not exceed.
fn wait_bucket(ms: i64) -> i64 {
    WAIT_BUCKETS_MS
        .iter()
        .copied()
        .find(|b| ms <= *b)
        .unwrap_or(WAIT_INF)
}

/// One bucket of the time-to-retrieve histogram as stored (not cumulative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitBucket {
    pub pool: String,
    /// The lot's name (`general` for the ranges without one).
    pub lot: String,
    /// The bucket's upper bound in ms; [`WAIT_INF`] above the last.
    pub le_ms: i64,
    pub n: i64,
    pub sum_ms: i64,
}

impl Store {
    /// How many log entries of each kind each pool wrote: `(pool, kind, count)`, from the
    /// counters [`Store::apply`] keeps (pruning the log does not lower them).
    pub async fn log_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(on_db!(Db, &self.db, db => {
            sqlx::query_as("SELECT pool, kind, n FROM metric_counter ORDER BY pool, kind")
                .fetch_all(db)
                .await?
        }))
    }

    /// The time-to-retrieve histogram as kept by [`Store::apply`]: each retrieve's wait, from
    /// the call's park to its retrieve, counted in its bucket per pool and lot.
    pub async fn retrieve_waits(&self) -> Result<Vec<WaitBucket>, StoreError> {
        let rows: Vec<(String, String, i64, i64, i64)> = on_db!(Db, &self.db, db => {
            sqlx::query_as(
                "SELECT pool, lot, le_ms, n, sum_ms FROM retrieve_wait ORDER BY pool, lot, le_ms",
            )
            .fetch_all(db)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(pool, lot, le_ms, n, sum_ms)| WaitBucket {
                pool,
                lot,
                le_ms,
                n,
                sum_ms,
            })
            .collect())
    }
}

/// Counts the wait of a retrieve (`e`, logged as `id`) in its bucket, from the call's newest
/// park; a retrieve with no park logged is not counted. Run in [`Store::apply`]'s transaction.
pub(super) async fn count_wait(
    tx: &mut Tx,
    pool: &str,
    e: &LogEvent,
    id: i64,
) -> Result<(), StoreError> {
    // How long it waited: from its newest park (one indexed look-up by channel).
    let parked: Option<Millis> = on_db!(Tx, &mut *tx, t => {
        sqlx::query_scalar(
            "SELECT MAX(at) FROM event_log WHERE channel = $1 AND kind = 'parked' AND id < $2",
        )
        .bind(e.channel.as_str())
        .bind(id)
        .fetch_one(&mut **t)
        .await?
    });
    if let Some(parked) = parked {
        let waited = e.at - parked;
        on_db!(Tx, &mut *tx, t => {
            sqlx::query(
                "INSERT INTO retrieve_wait (pool, lot, le_ms, n, sum_ms) VALUES ($1, $2, $3, 1, $4)
                 ON CONFLICT (pool, lot, le_ms) DO UPDATE SET n = retrieve_wait.n + 1,
                   sum_ms = retrieve_wait.sum_ms + excluded.sum_ms",
            )
            .bind(pool)
            .bind(e.lot.as_deref().unwrap_or(GENERAL_LOT))
            .bind(wait_bucket(waited))
            .bind(waited)
            .execute(&mut **t)
            .await?;
        });
    }
    Ok(())
}

/// Adds a step's log entries, counted per kind, to the pool's counters. Run in
/// [`Store::apply`]'s transaction.
pub(super) async fn add_counts(
    tx: &mut Tx,
    pool: &str,
    counts: &[(&str, i64)],
) -> Result<(), StoreError> {
    for (kind, n) in counts {
        on_db!(Tx, &mut *tx, t => {
            sqlx::query(
                "INSERT INTO metric_counter (pool, kind, n) VALUES ($1, $2, $3)
                 ON CONFLICT (pool, kind) DO UPDATE SET n = metric_counter.n + excluded.n",
            )
            .bind(pool)
            .bind(*kind)
            .bind(*n)
            .execute(&mut **t)
            .await?;
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::SqlitePool;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::super::tests::{entry, store};
    use super::*;
    use crate::park::{ChannelId, LogKind};

    #[tokio::test]
    async fn counters_are_kept_per_commit_and_outlive_pruning() {
        let (s, _dir) = store().await;
        let g0 = s.generation().await.unwrap();
        let at = |mut e: LogEvent, kind: LogKind, at: Millis| {
            e.kind = kind;
            e.at = at;
            e
        };
        // c1 parked twice (a ringback re-park counts from the newest park), retrieved after
        // 40 s; c2 in lot `sales` retrieved after 700 s; c3 retrieved with no park logged.
        s.apply(
            "ast",
            &[],
            &[
                at(entry("c1", Some("701"), None, ""), LogKind::Parked, 1_000),
                at(
                    entry("c2", Some("702"), Some("sales"), ""),
                    LogKind::Parked,
                    1_000,
                ),
            ],
        )
        .await
        .unwrap();
        s.apply(
            "ast",
            &[],
            &[
                at(entry("c1", Some("701"), None, ""), LogKind::Parked, 5_000),
                at(
                    entry("c1", Some("701"), None, ""),
                    LogKind::Retrieved,
                    45_000,
                ),
                at(
                    entry("c2", Some("702"), Some("sales"), ""),
                    LogKind::Retrieved,
                    701_000,
                ),
                at(entry("c3", None, None, ""), LogKind::Retrieved, 9_000),
            ],
        )
        .await
        .unwrap();
        assert_eq!(s.generation().await.unwrap(), g0 + 2);
        let counts = vec![
            ("ast".to_string(), "parked".to_string(), 3),
            ("ast".to_string(), "retrieved".to_string(), 3),
        ];
        assert_eq!(s.log_counts().await.unwrap(), counts);
        let waits = vec![
            WaitBucket {
                pool: "ast".into(),
                lot: "general".into(),
                le_ms: 60_000,
                n: 1,
                sum_ms: 40_000,
            },
            WaitBucket {
                pool: "ast".into(),
                lot: "sales".into(),
                le_ms: WAIT_INF,
                n: 1,
                sum_ms: 700_000,
            },
        ];
        assert_eq!(s.retrieve_waits().await.unwrap(), waits);
        // Pruned in batches, oldest first, only what is older than asked.
        assert_eq!(s.prune_log(5_000, 1).await.unwrap(), 1);
        assert_eq!(s.prune_log(5_000, 10).await.unwrap(), 1);
        assert_eq!(s.prune_log(5_000, 10).await.unwrap(), 0);
        let page = s.log_page(0, 10).await.unwrap();
        assert_eq!(page.oldest, 3);
        assert_eq!(page.rows.first().map(|r| r.id), Some(3));
        assert_eq!(s.log_counts().await.unwrap(), counts);
        assert_eq!(s.retrieve_waits().await.unwrap(), waits);
        // Emptied, the log still knows where its ids stand.
        assert_eq!(s.prune_log(Millis::MAX, 100).await.unwrap(), 4);
        assert_eq!(s.last_log_id().await.unwrap(), 6);
        assert_eq!(s.log_page(0, 10).await.unwrap().oldest, 7);
        assert_eq!(s.log_counts().await.unwrap(), counts);
    }

    #[test]
    fn a_wait_falls_in_the_least_bucket_it_does_not_exceed() {
        assert_eq!(wait_bucket(-3), 5_000);
        assert_eq!(wait_bucket(5_000), 5_000);
        assert_eq!(wait_bucket(5_001), 10_000);
        assert_eq!(wait_bucket(600_000), 600_000);
        assert_eq!(wait_bucket(600_001), WAIT_INF);
    }
    /// The log of a store written before the counters (migrations 0001 and 0002 only) is
    /// counted once by migration 0003, to what committing it entry by entry gives.
    #[tokio::test]
    async fn the_counters_of_an_older_store_are_counted_from_its_log() {
        let entries: Vec<(LogKind, &str, Option<&str>, Millis)> = vec![
            (LogKind::Parked, "c1", None, 1_000),
            (LogKind::RingbackStarted, "c1", None, 91_000),
            (LogKind::Retrieved, "c1", None, 95_000),
            (LogKind::Parked, "c2", Some("sales"), 2_000),
            (LogKind::Retrieved, "c2", Some("sales"), 4_000),
            (LogKind::Parked, "c3", None, 3_000),
            (LogKind::Parked, "c3", None, 200_000),
            (LogKind::Retrieved, "c3", None, 1_000_000),
            (LogKind::Retrieved, "c4", None, 5_000),
        ];
        let event = |(kind, ch, lot, at): &(LogKind, &str, Option<&str>, Millis)| LogEvent {
            at: *at,
            kind: *kind,
            channel: ChannelId::new(*ch),
            orbit: None,
            lot: lot.map(str::to_string),
            detail: String::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        {
            let db = SqlitePool::connect_with(
                SqliteConnectOptions::new()
                    .filename(&old)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
            let mut before = sqlx::migrate!("./migrations/sqlite");
            before.migrations = before.migrations[..2].to_vec().into();
            before.run(&db).await.unwrap();
            for (kind, ch, lot, at) in &entries {
                sqlx::query(
                    "INSERT INTO event_log (at, pool, kind, channel, lot, detail) VALUES (?, 'ast', ?, ?, ?, '')",
                )
                .bind(at)
                .bind(kind.as_str())
                .bind(ch)
                .bind(lot)
                .execute(&db)
                .await
                .unwrap();
            }
            db.close().await;
        }
        let migrated = Store::open(&old).await.unwrap();
        let (fresh, _dir) = store().await;
        for e in &entries {
            fresh.apply("ast", &[], &[event(e)]).await.unwrap();
        }
        assert_eq!(
            migrated.log_counts().await.unwrap(),
            fresh.log_counts().await.unwrap()
        );
        let waits = fresh.retrieve_waits().await.unwrap();
        assert_eq!(migrated.retrieve_waits().await.unwrap(), waits);
        // c1 waited 94 s (bucket 120 s), c3 800 s from its newest park (+Inf), c2 2 s in
        // `sales`; c4 had no park logged.
        let got: Vec<(&str, i64, i64)> = waits
            .iter()
            .map(|w| (w.lot.as_str(), w.le_ms, w.sum_ms))
            .collect();
        assert_eq!(
            got,
            [
                ("general", 120_000, 94_000),
                ("general", WAIT_INF, 800_000),
                ("sales", 5_000, 2_000)
            ]
        );
    }
}
