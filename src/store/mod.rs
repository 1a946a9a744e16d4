//! The SQLite store: parked calls with their absolute deadlines, the event log, the orbit
//! table as loaded, and custom music-on-hold files.
//!
//! WAL with `synchronous = NORMAL`: a committed step survives a killed process (the case that
//! matters for a controller), at one fsync per checkpoint rather than per event.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use thiserror::Error;

use crate::orbit::OrbitTable;
use crate::park::{Change, ChannelId, GENERAL_LOT, LogEvent, LogKind, Millis, ParkedCall};

/// The upper bounds (ms) of the time-to-retrieve histogram's buckets; a wait above the last
/// is counted under [`WAIT_INF`].
pub(crate) const WAIT_BUCKETS_MS: [i64; 8] = [
    5_000, 10_000, 30_000, 60_000, 90_000, 120_000, 300_000, 600_000,
];
/// The bucket of the waits above every bound (`le="+Inf"`).
pub(crate) const WAIT_INF: i64 = i64::MAX;

/// The write-ahead log's size beyond which a checkpoint empties it ([`Store::checkpoint`]).
pub(crate) const WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// One frame of the log: a 4 KiB page and its 24-byte header.
const WAL_FRAME_BYTES: i64 = 4096 + 24;

/// The bucket a wait of `ms` is counted in: the least bound it does not exceed.
fn wait_bucket(ms: i64) -> i64 {
    WAIT_BUCKETS_MS
        .iter()
        .copied()
        .find(|b| ms <= *b)
        .unwrap_or(WAIT_INF)
}

/// One page of the event log, read in one statement so that the two agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogPage {
    /// The oldest entry the store keeps (the next id to come when none is kept): entries
    /// before it were pruned (`[service] keep_log`).
    pub oldest: i64,
    /// The entries after the id asked for, oldest first.
    pub rows: Vec<LogRow>,
}

/// One bucket of the time-to-retrieve histogram as stored (not cumulative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WaitBucket {
    pub pool: String,
    /// The lot's name (`general` for the ranges without one).
    pub lot: String,
    /// The bucket's upper bound in ms; [`WAIT_INF`] above the last.
    pub le_ms: i64,
    pub n: i64,
    pub sum_ms: i64,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}; check that the directory exists and is writable")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("database {path}: migration failed: {source}")]
    Migrate {
        path: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(
        "database: stored call {channel} cannot be read ({source}); was it written by a newer callpark?"
    )]
    Corrupt {
        channel: String,
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database: the {what} read as one list cannot be decoded ({source})")]
    List {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// One entry of the event log as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogRow {
    pub id: i64,
    pub at: Millis,
    pub pool: String,
    pub kind: String,
    pub channel: String,
    pub orbit: Option<String>,
    pub lot: Option<String>,
    pub detail: String,
}

/// A stored media file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub size: i64,
}

#[derive(Debug, Clone)]
pub struct Store {
    db: SqlitePool,
}

impl Store {
    /// Opens (creating when missing) the database at `path` and applies the migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|source| StoreError::Open {
                path: path.into(),
                source,
            })?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5))
            // No checkpoint inside a commit: on the park path it cost up to 7 ms (an fsync of
            // the database file). The service checkpoints from its own task instead
            // ([`Store::checkpoint`]); SQLite still checkpoints when the last connection closes.
            .pragma("wal_autocheckpoint", "0")
            // A log restarted from its beginning is also cut back to this size (bytes).
            .pragma("journal_size_limit", WAL_LIMIT_BYTES.to_string())
            // A query's rows come back from the connection's thread through a channel; at
            // sqlx's 50 the thread stops and is woken again a dozen times for the API's list
            // of 600 parked calls, each a pair of context switches.
            .row_buffer_size(1024)
            .foreign_keys(true);
        let db = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: path.into(),
                source,
            })?;
        sqlx::migrate!("./migrations")
            .run(&db)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.into(),
                source,
            })?;
        Ok(Store { db })
    }

    /// Writes one step of a pool's core (its changed calls and log entries) atomically.
    pub async fn apply(
        &self,
        pool: &str,
        changes: &[Change],
        log: &[LogEvent],
    ) -> Result<(), StoreError> {
        if changes.is_empty() && log.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        // Removals first, so an orbit freed and taken again in one step does not collide.
        for c in changes {
            if let Change::Remove(ch) = c {
                sqlx::query("DELETE FROM parked_call WHERE channel = ?")
                    .bind(ch.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for c in changes {
            if let Change::Upsert(call) = c {
                let record = serde_json::to_string(&**call).expect("a parked call serializes");
                sqlx::query(
                    "INSERT INTO parked_call (channel, pool, orbit, parker, caller, parked_at, deadline, attempt, state, record, lot)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (channel) DO UPDATE SET orbit = excluded.orbit, lot = excluded.lot, deadline = excluded.deadline,
                       attempt = excluded.attempt, state = excluded.state, record = excluded.record",
                )
                .bind(call.channel.as_str())
                .bind(pool)
                .bind(call.orbit.map(|o| o.to_string()))
                .bind(&call.parker.display)
                .bind(format!("{} <{}>", call.caller.name, call.caller.number))
                .bind(call.parked_at)
                .bind(call.deadline)
                .bind(i64::from(call.attempts))
                .bind(call.state.name())
                .bind(record)
                .bind(&call.lot)
                .execute(&mut *tx)
                .await?;
            }
        }
        // The metrics' counters move in the same transaction as the entries they count, so a
        // scrape never sees one without the other, and pruning entries later changes neither.
        let mut counts: Vec<(&str, i64)> = Vec::new();
        for e in log {
            let id = sqlx::query(
                "INSERT INTO event_log (at, pool, kind, channel, orbit, lot, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(e.at)
            .bind(pool)
            .bind(e.kind.as_str())
            .bind(e.channel.as_str())
            .bind(e.orbit.map(|o| o.to_string()))
            .bind(&e.lot)
            .bind(&e.detail)
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
            match counts.iter_mut().find(|(k, _)| *k == e.kind.as_str()) {
                Some((_, n)) => *n += 1,
                None => counts.push((e.kind.as_str(), 1)),
            }
            if e.kind == LogKind::Retrieved {
                // How long it waited: from its newest park (one indexed look-up by channel).
                let parked: Option<Millis> = sqlx::query_scalar(
                    "SELECT MAX(at) FROM event_log WHERE channel = ? AND kind = 'parked' AND id < ?",
                )
                .bind(e.channel.as_str())
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                if let Some(parked) = parked {
                    let waited = e.at - parked;
                    sqlx::query(
                        "INSERT INTO retrieve_wait (pool, lot, le_ms, n, sum_ms) VALUES (?, ?, ?, 1, ?)
                         ON CONFLICT (pool, lot, le_ms) DO UPDATE SET n = n + 1, sum_ms = sum_ms + excluded.sum_ms",
                    )
                    .bind(pool)
                    .bind(e.lot.as_deref().unwrap_or(GENERAL_LOT))
                    .bind(wait_bucket(waited))
                    .bind(waited)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        for (kind, n) in counts {
            sqlx::query(
                "INSERT INTO metric_counter (pool, kind, n) VALUES (?, ?, ?)
                 ON CONFLICT (pool, kind) DO UPDATE SET n = n + excluded.n",
            )
            .bind(pool)
            .bind(kind)
            .bind(n)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE store_generation SET n = n + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A number that moves with every commit changing the parked calls or the log: a list
    /// read after reading it is at least as new as it ([`Store::apply`] bumps it in the
    /// same transaction).
    pub(crate) async fn generation(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT n FROM store_generation WHERE id = 1")
                .fetch_one(&self.db)
                .await?,
        )
    }

    /// Calls held now, of one pool or of all, ordered by orbit.
    pub async fn parked(
        &self,
        pool: Option<&str>,
    ) -> Result<Vec<(String, ParkedCall)>, StoreError> {
        let rows: Vec<(String, String, String)> = self
            .list(
                "parked calls",
                sqlx::query_scalar(
                    "SELECT json_group_array(json_array(pool, channel, record)
                        ORDER BY parked_at, channel)
                     FROM parked_call WHERE (?1 IS NULL OR pool = ?1)",
                )
                .bind(pool),
            )
            .await?;
        rows.into_iter()
            .map(|(pool, channel, record)| {
                let call = serde_json::from_str(&record)
                    .map_err(|source| StoreError::Corrupt { channel, source })?;
                Ok((pool, call))
            })
            .collect()
    }

    /// The rows of a query that gives one JSON array (`json_group_array`), decoded. A list is
    /// read this way because sqlx hands each row from the connection's thread to the caller
    /// through a channel, waking the caller's thread again and again for a list of hundreds
    /// (the admin API's parked calls and event feed, many times a second): one row is one
    /// wake-up.
    async fn list<'q, T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        query: sqlx::query::QueryScalar<
            'q,
            sqlx::Sqlite,
            String,
            sqlx::sqlite::SqliteArguments<'q>,
        >,
    ) -> Result<Vec<T>, StoreError> {
        let json = query.fetch_one(&self.db).await?;
        serde_json::from_str(&json).map_err(|source| StoreError::List { what, source })
    }

    /// Drops calls the core would not take back (their orbit left the table), logging why.
    pub(crate) async fn drop_calls(
        &self,
        pool: &str,
        calls: &[ParkedCall],
        now: Millis,
        why: &str,
    ) -> Result<(), StoreError> {
        let changes: Vec<Change> = calls
            .iter()
            .map(|c| Change::Remove(c.channel.clone()))
            .collect();
        let log: Vec<LogEvent> = calls
            .iter()
            .map(|c| LogEvent {
                at: now,
                kind: crate::park::LogKind::Disconnected,
                channel: c.channel.clone(),
                orbit: c.orbit,
                lot: c.lot.clone(),
                detail: why.to_string(),
            })
            .collect();
        self.apply(pool, &changes, &log).await
    }

    /// Whether the event log says the park of `channel` ended (its newest entry is final).
    pub async fn ended(&self, channel: &ChannelId) -> Result<bool, StoreError> {
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT kind FROM event_log WHERE channel = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(channel.as_str())
        .fetch_optional(&self.db)
        .await?;
        Ok(kind.is_some_and(|k| {
            crate::park::LogKind::ALL
                .iter()
                .any(|l| l.is_final() && l.as_str() == k)
        }))
    }

    /// The newest `limit` log entries, oldest first.
    pub async fn log(&self, limit: i64) -> Result<Vec<LogRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, pool, kind, channel, orbit, lot, detail FROM
               (SELECT * FROM event_log ORDER BY id DESC LIMIT ?) ORDER BY id",
        )
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        Ok(rows.into_iter().map(log_row).collect())
    }

    /// Records the orbit table as configured now.
    pub(crate) async fn save_orbit_table(&self, table: &OrbitTable) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        sqlx::query("DELETE FROM orbit_range")
            .execute(&mut *tx)
            .await?;
        for r in table.ranges() {
            sqlx::query("INSERT INTO orbit_range (name, first, last, pool, lot, size) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(&r.name)
                .bind(r.span.first.to_string())
                .bind(r.span.last.to_string())
                .bind(&r.pool)
                .bind(&r.lot)
                .bind(r.span.len() as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Log entries after `id`, oldest first, at most `limit`.
    pub async fn log_after(&self, id: i64, limit: i64) -> Result<Vec<LogRow>, StoreError> {
        Ok(self.log_page(id, limit).await?.rows)
    }

    /// Log entries after `id`, oldest first, at most `limit`, with the oldest id the store
    /// keeps (the event stream's resume): when `id` is below `oldest - 1`, entries between
    /// them were pruned and the page does not follow on from `id`.
    pub(crate) async fn log_page(&self, id: i64, limit: i64) -> Result<LogPage, StoreError> {
        type Row = (
            i64,
            Millis,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
        );
        // One statement, so one snapshot: a prune between reading the oldest id and the
        // rows cannot make a gap look like none.
        let (oldest, json): (i64, String) = sqlx::query_as(
            "SELECT COALESCE((SELECT MIN(id) FROM event_log),
                             (SELECT seq FROM sqlite_sequence WHERE name = 'event_log') + 1, 1),
                    (SELECT json_group_array(
                        json_array(id, at, pool, kind, channel, orbit, lot, detail) ORDER BY id)
                     FROM (SELECT * FROM event_log WHERE id > ? ORDER BY id LIMIT ?))",
        )
        .bind(id)
        .bind(limit)
        .fetch_one(&self.db)
        .await?;
        let rows: Vec<Row> = serde_json::from_str(&json).map_err(|source| StoreError::List {
            what: "event log",
            source,
        })?;
        let rows = rows
            .into_iter()
            .map(|(id, at, pool, kind, channel, orbit, lot, detail)| LogRow {
                id,
                at,
                pool,
                kind,
                channel,
                orbit,
                lot,
                detail,
            })
            .collect();
        Ok(LogPage { oldest, rows })
    }

    /// The newest log entry's id (0 when nothing was ever logged). Ids are never reused
    /// (AUTOINCREMENT): after a prune that emptied the log this is still the last id given.
    pub async fn last_log_id(&self) -> Result<i64, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(COALESCE((SELECT MAX(id) FROM event_log), 0),
                        COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'event_log'), 0))",
        )
        .fetch_one(&self.db)
        .await?;
        Ok(id.unwrap_or(0))
    }

    /// How many log entries of each kind each pool wrote: `(pool, kind, count)`, from the
    /// counters [`Store::apply`] keeps (pruning the log does not lower them).
    pub async fn log_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT pool, kind, n FROM metric_counter ORDER BY pool, kind")
                .fetch_all(&self.db)
                .await?,
        )
    }

    /// The time-to-retrieve histogram as kept by [`Store::apply`]: each retrieve's wait, from
    /// the call's park to its retrieve, counted in its bucket per pool and lot.
    pub(crate) async fn retrieve_waits(&self) -> Result<Vec<WaitBucket>, StoreError> {
        let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT pool, lot, le_ms, n, sum_ms FROM retrieve_wait ORDER BY pool, lot, le_ms",
        )
        .fetch_all(&self.db)
        .await?;
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

    /// Deletes up to `batch` of the oldest log entries logged before `before` (ms since the
    /// epoch), in one short transaction; returns how many went. The caller repeats it with a
    /// pause between, so that a pool's commit waits at most one batch for the write lock.
    ///
    /// Only the `batch` oldest entries (by id, an index walk) are looked at: a prune never
    /// scans the log's young part. Entries are logged in time order, so the oldest ids are the
    /// oldest entries; a young one among them (a pool's clock stepped back) is kept, and the
    /// prune stops where a whole batch is young.
    pub async fn prune_log(&self, before: Millis, batch: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM event_log WHERE id IN
               (SELECT id FROM (SELECT id, at FROM event_log ORDER BY id LIMIT ?) WHERE at < ?)",
        )
        .bind(batch)
        .bind(before)
        .execute(&self.db)
        .await?;
        Ok(done.rows_affected())
    }

    /// The oldest entry kept, if any (`callpark log` and tests).
    pub async fn oldest_log_id(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MIN(id) FROM event_log")
            .fetch_one(&self.db)
            .await?)
    }

    /// Number of calls held per orbit range name.
    pub(crate) async fn used_per_orbit(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT orbit FROM parked_call WHERE orbit IS NOT NULL")
            .fetch_all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|r| r.get("orbit")).collect())
    }

    pub(crate) async fn put_media(&self, m: &Media, now: Millis) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO media (name, path, sha256, size, stored_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET path = excluded.path, sha256 = excluded.sha256,
               size = excluded.size, stored_at = excluded.stored_at",
        )
        .bind(&m.name)
        .bind(&m.path)
        .bind(&m.sha256)
        .bind(m.size)
        .bind(now)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    pub async fn media(&self) -> Result<Vec<Media>, StoreError> {
        let rows = sqlx::query("SELECT name, path, sha256, size FROM media ORDER BY name")
            .fetch_all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Media {
                name: r.get("name"),
                path: r.get("path"),
                sha256: r.get("sha256"),
                size: r.get("size"),
            })
            .collect())
    }

    /// A consistent copy of the database while it is in use (`VACUUM INTO`).
    pub(crate) async fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        sqlx::query("VACUUM INTO ?")
            .bind(dest.to_string_lossy().to_string())
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Copies the write-ahead log into the database without waiting for (or blocking)
    /// writers; the service calls it every few seconds, off the park path. A log grown past
    /// `WAL_LIMIT_BYTES` is emptied: see [`Store::checkpoint_within`].
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.checkpoint_within(WAL_LIMIT_BYTES / WAL_FRAME_BYTES)
            .await
    }

    /// [`Store::checkpoint`] with the log's limit in frames (pages). A passive checkpoint
    /// never finishes while a reader holds an older snapshot, and SQLite starts the log
    /// again from its beginning only after one has: with the event stream and the pools
    /// reading many times a second, the log grew past 270 MB in a 55,000-cycle soak and
    /// kept its largest size on disk. Past `limit` frames a TRUNCATE checkpoint waits for
    /// the readers of the moment (new writers wait with them, a few ms: most frames are
    /// copied already by the passive ones) and leaves the log empty.
    pub async fn checkpoint_within(&self, limit: i64) -> Result<(), StoreError> {
        let (_busy, frames, _copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&self.db)
                .await?;
        if frames > limit {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.db)
                .await?;
        }
        Ok(())
    }

    pub async fn close(self) {
        self.db.close().await;
    }
}

fn log_row(r: sqlx::sqlite::SqliteRow) -> LogRow {
    LogRow {
        id: r.get("id"),
        at: r.get("at"),
        pool: r.get("pool"),
        kind: r.get("kind"),
        channel: r.get("channel"),
        orbit: r.get("orbit"),
        lot: r.get("lot"),
        detail: r.get("detail"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::park::{CallState, LogKind, Parker, Party};

    /// A stored call parked at `parked_at`, its deadline 90 s later (other modules' tests too).
    pub(crate) fn call(ch: &str, orbit: &str, parked_at: Millis) -> ParkedCall {
        ParkedCall {
            channel: ChannelId::new(ch),
            orbit: Some(orbit.parse().unwrap()),
            caller: Party {
                name: "Carol \"Reception\" \\ Ünï 📞".into(),
                number: "5551234".into(),
            },
            parker: Parker {
                ids: vec!["alice".into()],
                endpoint: Some("PJSIP/alice".into()),
                display: "PJSIP/alice".into(),
            },
            lot: None,
            parked_at,
            deadline: parked_at + 90_000,
            attempts: 0,
            fallback_tried: false,
            state: CallState::Parked,
        }
    }

    fn entry(ch: &str, orbit: Option<&str>, lot: Option<&str>, detail: &str) -> LogEvent {
        LogEvent {
            at: 1_700_000_000_123,
            kind: LogKind::Parked,
            channel: ChannelId::new(ch),
            orbit: orbit.map(|o| o.parse().unwrap()),
            lot: lot.map(str::to_string),
            detail: detail.into(),
        }
    }

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (Store::open(&dir.path().join("s.db")).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn parked_calls_come_back_whole_in_park_order_and_by_pool() {
        let (s, _dir) = store().await;
        assert!(s.parked(None).await.unwrap().is_empty());
        // Same park time: the channel decides.
        let (a, b, c) = (
            call("b-1", "701", 5),
            call("a-2", "702", 5),
            call("z-3", "5000", 1),
        );
        let up = |c: &ParkedCall| Change::Upsert(Box::new(c.clone()));
        s.apply("ast", &[up(&a), up(&b)], &[]).await.unwrap();
        s.apply("fs", &[up(&c)], &[]).await.unwrap();
        let all = s.parked(None).await.unwrap();
        assert_eq!(
            all,
            vec![
                ("fs".to_string(), c.clone()),
                ("ast".to_string(), b.clone()),
                ("ast".to_string(), a.clone())
            ]
        );
        assert_eq!(
            s.parked(Some("ast")).await.unwrap(),
            vec![("ast".to_string(), b), ("ast".to_string(), a)]
        );
        assert!(s.parked(Some("none")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_stored_call_is_named() {
        let (s, _dir) = store().await;
        let c = call("ch-9", "701", 5);
        s.apply("ast", &[Change::Upsert(Box::new(c))], &[])
            .await
            .unwrap();
        sqlx::query("UPDATE parked_call SET record = '{\"channel\": 1' WHERE channel = 'ch-9'")
            .execute(&s.db)
            .await
            .unwrap();
        let e = s.parked(None).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Corrupt { channel, .. } if channel == "ch-9"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_log_comes_back_in_order_after_an_id_and_up_to_a_limit() {
        let (s, _dir) = store().await;
        assert!(s.log_after(0, 10).await.unwrap().is_empty());
        let log = [
            entry("c1", Some("701"), Some("sales"), "by PJSIP/alice"),
            entry("c2", None, None, "quotes \" and \\ and\nnewline, Ünï 📞"),
            entry("c3", Some("#5000"), None, ""),
        ];
        s.apply("ast", &[], &log).await.unwrap();
        let rows = s.log_after(0, 10).await.unwrap();
        assert_eq!(rows.len(), 3);
        for (r, e) in rows.iter().zip(&log) {
            assert_eq!(r.pool, "ast");
            assert_eq!(r.kind, "parked");
            assert_eq!(r.at, e.at);
            assert_eq!(r.channel, e.channel.as_str());
            assert_eq!(r.orbit, e.orbit.map(|o| o.to_string()));
            assert_eq!(r.lot, e.lot);
            assert_eq!(r.detail, e.detail);
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let after: Vec<i64> = s
            .log_after(ids[0], 1)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(after, vec![ids[1]]);
        assert!(s.log_after(ids[2], 10).await.unwrap().is_empty());
        assert_eq!(s.last_log_id().await.unwrap(), ids[2]);
    }
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
            let mut before = sqlx::migrate!("./migrations");
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
