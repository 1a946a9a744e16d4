//! Opening the database (creating it, applying the migrations) and keeping its file: the
//! write-ahead log's checkpoints, backups, closing. SQLite's migrations are in
//! `migrations/sqlite`, PostgreSQL's in `migrations/postgres`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

use super::{Db, Location, PgUrl, Store, StoreError};

/// How long opening a PostgreSQL store waits for the server's first answer: a host that drops
/// packets would otherwise hold `callpark run` for the system's TCP timeout (minutes).
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections to PostgreSQL per store: every pool commits its steps concurrently, and the
/// API's reads run beside them.
const PG_CONNECTIONS: u32 = 8;

/// The write-ahead log's size beyond which a checkpoint empties it ([`Store::checkpoint`]).
pub(crate) const WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// One frame of the log: a 4 KiB page and its 24-byte header.
const WAL_FRAME_BYTES: i64 = 4096 + 24;

impl Store {
    /// Opens the store `at` names: [`Store::open`] for an SQLite file,
    /// [`Store::open_postgres`] for a PostgreSQL URL.
    pub async fn open_at(at: &Location) -> Result<Store, StoreError> {
        match at {
            Location::Sqlite(path) => Store::open(path).await,
            Location::Postgres(url) => Store::open_postgres(url).await,
        }
    }

    /// Opens (creating when missing) the SQLite database at `path` and applies the migrations.
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
        sqlx::migrate!("./migrations/sqlite")
            .run(&db)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.into(),
                source,
            })?;
        Ok(Store {
            db: Db::Sqlite(db),
            fence: None,
        })
    }

    /// Opens the PostgreSQL database `url` names (it must exist) and applies the migrations
    /// (sqlx holds an advisory lock meanwhile, so two callparks starting at once migrate once).
    pub async fn open_postgres(url: &PgUrl) -> Result<Store, StoreError> {
        let opts =
            PgConnectOptions::from_str(url.secret()).map_err(|source| StoreError::PgUrl {
                url: url.clone(),
                source,
            })?;
        // One connection first, to say what is wrong at once: the pool retries a refused
        // connection until its acquire timeout and then reports only that it timed out.
        match tokio::time::timeout(PG_CONNECT_TIMEOUT, opts.connect()).await {
            Ok(Ok(c)) => {
                let _ = c.close().await;
            }
            Ok(Err(e)) => return Err(connect_error(url, &opts, e)),
            Err(_) => {
                return Err(StoreError::PgTimeout {
                    server: url.server(),
                    secs: PG_CONNECT_TIMEOUT.as_secs(),
                });
            }
        }
        let db = PgPoolOptions::new()
            .max_connections(PG_CONNECTIONS)
            .acquire_timeout(PG_CONNECT_TIMEOUT)
            .connect_with(opts.clone())
            .await
            .map_err(|e| connect_error(url, &opts, e))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&db)
            .await
            .map_err(|source| StoreError::PgMigrate {
                url: url.clone(),
                source,
            })?;
        Ok(Store {
            db: Db::Postgres(db),
            fence: None,
        })
    }

    /// A consistent copy of the database while it is in use (`VACUUM INTO`). A PostgreSQL
    /// store is backed up by PostgreSQL's own tools, which also keep its replicas.
    pub(crate) async fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        let Db::Sqlite(db) = &self.db else {
            return Err(StoreError::NotSqlite {
                what: "`callpark backup`",
                instead: "back it up with pg_dump (or the server's base backups)",
            });
        };
        sqlx::query("VACUUM INTO ?")
            .bind(dest.to_string_lossy().to_string())
            .execute(db)
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
    ///
    /// PostgreSQL checkpoints by itself: nothing to do.
    pub async fn checkpoint_within(&self, limit: i64) -> Result<(), StoreError> {
        let Db::Sqlite(db) = &self.db else {
            return Ok(());
        };
        let (_busy, frames, _copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(db)
                .await?;
        if frames > limit {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(db)
                .await?;
        }
        Ok(())
    }

    pub async fn close(self) {
        match self.db {
            Db::Sqlite(db) => db.close().await,
            Db::Postgres(db) => db.close().await,
        }
    }
}

/// A failed connection to PostgreSQL as what the administrator should check.
fn connect_error(url: &PgUrl, opts: &PgConnectOptions, e: sqlx::Error) -> StoreError {
    let server = url.server();
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            StoreError::PgRefused { server }
        }
        // A name that does not resolve, a network that is down, a socket directory without
        // the server's socket.
        sqlx::Error::Io(source) => StoreError::PgUnreachable { server, source },
        sqlx::Error::PoolTimedOut => StoreError::PgTimeout {
            server,
            secs: PG_CONNECT_TIMEOUT.as_secs(),
        },
        sqlx::Error::Database(d) => match d.code().as_deref() {
            // invalid_authorization_specification, invalid_password
            Some("28000" | "28P01") => StoreError::PgAuth {
                server,
                user: opts.get_username().to_string(),
                message: d.message().to_string(),
            },
            // invalid_catalog_name
            Some("3D000") => StoreError::PgNoDatabase {
                server,
                database: url.database(),
            },
            _ => StoreError::PgConnect {
                url: url.clone(),
                source: sqlx::Error::Database(d),
            },
        },
        source => StoreError::PgConnect {
            url: url.clone(),
            source,
        },
    }
}
