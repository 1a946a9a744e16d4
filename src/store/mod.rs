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
use crate::park::{Change, ChannelId, LogEvent, Millis, ParkedCall};

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
        for e in log {
            sqlx::query(
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
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Calls held now, of one pool or of all, ordered by orbit.
    pub async fn parked(
        &self,
        pool: Option<&str>,
    ) -> Result<Vec<(String, ParkedCall)>, StoreError> {
        let rows = sqlx::query(
            "SELECT pool, channel, record FROM parked_call WHERE (?1 IS NULL OR pool = ?1) ORDER BY parked_at, channel",
        )
        .bind(pool)
        .fetch_all(&self.db)
        .await?;
        rows.into_iter()
            .map(|r| {
                let channel: String = r.get("channel");
                let record: String = r.get("record");
                let call = serde_json::from_str(&record)
                    .map_err(|source| StoreError::Corrupt { channel, source })?;
                Ok((r.get("pool"), call))
            })
            .collect()
    }

    /// Drops calls the core would not take back (their orbit left the table), logging why.
    pub async fn drop_calls(
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
    pub async fn save_orbit_table(&self, table: &OrbitTable) -> Result<(), StoreError> {
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

    /// Log entries after `id`, oldest first, at most `limit` (the event stream's resume).
    pub async fn log_after(&self, id: i64, limit: i64) -> Result<Vec<LogRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, pool, kind, channel, orbit, lot, detail FROM event_log
             WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        Ok(rows.into_iter().map(log_row).collect())
    }

    /// The newest log entry's id (0 when the log is empty).
    pub async fn last_log_id(&self) -> Result<i64, StoreError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM event_log")
            .fetch_one(&self.db)
            .await?;
        Ok(id.unwrap_or(0))
    }

    /// How many log entries of each kind each pool wrote: `(pool, kind, count)`.
    pub async fn log_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT pool, kind, COUNT(*) AS n FROM event_log GROUP BY pool, kind ORDER BY pool, kind",
        )
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get("pool"), r.get("kind"), r.get("n")))
            .collect())
    }

    /// How long each retrieved call waited, from its park to its retrieve (ms), per pool and lot.
    pub async fn retrieve_waits(&self) -> Result<Vec<(String, Option<String>, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.pool AS pool, r.lot AS lot, r.at - MAX(p.at) AS waited
               FROM event_log r JOIN event_log p
                 ON p.channel = r.channel AND p.kind = 'parked' AND p.id < r.id
              WHERE r.kind = 'retrieved'
              GROUP BY r.id",
        )
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get("pool"), r.get("lot"), r.get("waited")))
            .collect())
    }

    /// Number of calls held per orbit range name.
    pub async fn used_per_orbit(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT orbit FROM parked_call WHERE orbit IS NOT NULL")
            .fetch_all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|r| r.get("orbit")).collect())
    }

    pub async fn put_media(&self, m: &Media, now: Millis) -> Result<(), StoreError> {
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
    pub async fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        sqlx::query("VACUUM INTO ?")
            .bind(dest.to_string_lossy().to_string())
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Copies the write-ahead log into the database without waiting for (or blocking)
    /// writers; the service calls it every few seconds, off the park path.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.db)
            .await?;
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
