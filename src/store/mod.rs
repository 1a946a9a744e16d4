//! The SQLite store: parked calls with their absolute deadlines, the event log, the orbit
//! table as loaded, and custom music-on-hold files.
//!
//! WAL with `synchronous = NORMAL`: a committed step survives a killed process (the case that
//! matters for a controller), at one fsync per checkpoint rather than per event.
//!
//! One file per part: opening the database and keeping its file (`open.rs`), the atomic write
//! of a pool's step (`step.rs`), the parked calls (`calls.rs`), the event log and its pruning
//! (`event_log.rs`), the metrics' counters (`counters.rs`), the orbit table as loaded
//! (`orbit_table.rs`) and the media files (`media.rs`); the tests' fixtures in `tests.rs`.

mod calls;
mod counters;
mod event_log;
mod media;
mod open;
mod orbit_table;
mod step;
#[cfg(test)]
pub(crate) mod tests;

use std::path::PathBuf;

use sqlx::SqlitePool;
use thiserror::Error;

// `WAIT_INF` is named outside the store by the metrics' tests only.
#[cfg(test)]
pub(crate) use self::counters::WAIT_INF;
pub(crate) use self::counters::{WAIT_BUCKETS_MS, WaitBucket};
pub use self::event_log::LogRow;
pub use self::media::Media;

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

#[derive(Debug, Clone)]
pub struct Store {
    db: SqlitePool,
}

impl Store {
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
}
