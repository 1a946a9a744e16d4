//! Opening the database (creating it, applying the migrations) and keeping its file: the
//! write-ahead log's checkpoints, backups, closing.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Store, StoreError};

/// The write-ahead log's size beyond which a checkpoint empties it ([`Store::checkpoint`]).
pub(crate) const WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// One frame of the log: a 4 KiB page and its 24-byte header.
const WAL_FRAME_BYTES: i64 = 4096 + 24;

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
