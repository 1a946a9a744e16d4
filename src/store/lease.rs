//! Pool leases, on PostgreSQL only (several nodes share one database; an SQLite store has one
//! node). A lease names its holder and its epoch; it runs out at `expires`, by the database's
//! clock. Taking a lease that ran out adds one to its epoch, so two holders never share one,
//! and a store [fenced](Store::fenced) by a lease refuses every write once its epoch is not
//! the row's any more.

use std::sync::Arc;

use super::{Db, Store, StoreError, Tx};

/// The database's clock, in ms since the Unix epoch.
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// A lease held: this node drives `pool` in `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub pool: String,
    pub holder: String,
    pub epoch: i64,
}

/// A pool's lease as the database holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub pool: String,
    pub holder: String,
    pub epoch: i64,
    /// Milliseconds until it runs out (negative: it ran out that long ago).
    pub left_ms: i64,
}

impl Store {
    fn postgres(&self, what: &'static str) -> Result<&sqlx::PgPool, StoreError> {
        match &self.db {
            Db::Postgres(p) => Ok(p),
            Db::Sqlite(_) => Err(StoreError::NotPostgresFor { what }),
        }
    }

    /// Whether the store is PostgreSQL's: leases, and so several nodes, need it.
    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// Takes `pool`'s lease for `node` for `ttl_ms` if nobody holds it or its lease ran out;
    /// the lease taken (a new epoch), or `None` while another node holds it.
    pub async fn take_lease(
        &self,
        pool: &str,
        node: &str,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let db = self.postgres("pool leases")?;
        let epoch: Option<i64> = sqlx::query_scalar(&format!(
            "INSERT INTO pool_lease (pool, holder, epoch, expires, taken)
             VALUES ($1, $2, 1, {DB_NOW} + $3, {DB_NOW})
             ON CONFLICT (pool) DO UPDATE
               SET holder = excluded.holder, epoch = pool_lease.epoch + 1,
                   expires = excluded.expires, taken = excluded.taken
               WHERE pool_lease.expires < {DB_NOW}
             RETURNING epoch"
        ))
        .bind(pool)
        .bind(node)
        .bind(ttl_ms)
        .fetch_optional(db)
        .await?;
        Ok(epoch.map(|epoch| Lease {
            pool: pool.into(),
            holder: node.into(),
            epoch,
        }))
    }

    /// Extends `lease` by `ttl_ms` from now; false when it is not this lease any more (it ran
    /// out, and may have been taken).
    pub async fn renew_lease(&self, lease: &Lease, ttl_ms: i64) -> Result<bool, StoreError> {
        let db = self.postgres("pool leases")?;
        let r = sqlx::query(&format!(
            "UPDATE pool_lease SET expires = {DB_NOW} + $4
             WHERE pool = $1 AND holder = $2 AND epoch = $3 AND expires >= {DB_NOW}"
        ))
        .bind(&lease.pool)
        .bind(&lease.holder)
        .bind(lease.epoch)
        .bind(ttl_ms)
        .execute(db)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives `lease` up now, so another node may take the pool at once (an orderly stop).
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let db = self.postgres("pool leases")?;
        sqlx::query(&format!(
            "UPDATE pool_lease SET expires = {DB_NOW} - 1
             WHERE pool = $1 AND holder = $2 AND epoch = $3"
        ))
        .bind(&lease.pool)
        .bind(&lease.holder)
        .bind(lease.epoch)
        .execute(db)
        .await?;
        Ok(())
    }

    /// Every pool's lease, by pool.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let db = self.postgres("pool leases")?;
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(&format!(
            "SELECT pool, holder, epoch, expires - {DB_NOW} FROM pool_lease ORDER BY pool"
        ))
        .fetch_all(db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(pool, holder, epoch, left_ms)| LeaseRow {
                pool,
                holder,
                epoch,
                left_ms,
            })
            .collect())
    }

    /// Records that `node` is alive now.
    pub async fn node_seen(&self, node: &str) -> Result<(), StoreError> {
        let db = self.postgres("nodes")?;
        sqlx::query(&format!(
            "INSERT INTO node (name, seen) VALUES ($1, {DB_NOW})
             ON CONFLICT (name) DO UPDATE SET seen = excluded.seen"
        ))
        .bind(node)
        .execute(db)
        .await?;
        Ok(())
    }

    /// Whether `node` was seen alive in the last `within_ms`.
    pub async fn node_alive(&self, node: &str, within_ms: i64) -> Result<bool, StoreError> {
        let db = self.postgres("nodes")?;
        let seen: Option<i64> =
            sqlx::query_scalar(&format!("SELECT {DB_NOW} - seen FROM node WHERE name = $1"))
                .bind(node)
                .fetch_optional(db)
                .await?;
        Ok(seen.is_some_and(|ago| ago <= within_ms))
    }

    /// This store, with every write of [`Store::apply`] refused unless `lease` is still the
    /// pool's (its epoch is the row's): a node that lost its lease cannot change what the
    /// new holder restored.
    pub fn fenced(&self, lease: Lease) -> Store {
        Store {
            db: self.db.clone(),
            fence: Some(Arc::new(lease)),
        }
    }

    /// Inside `tx`: refuses unless the store's lease is still the pool's. The row is locked
    /// for share until the commit, so a takeover (which updates it) waits for this write and
    /// then restores it: no write lands after a takeover's restore.
    pub(super) async fn check_fence(&self, tx: &mut Tx, pool: &str) -> Result<(), StoreError> {
        let Some(lease) = &self.fence else {
            return Ok(());
        };
        let Tx::Postgres(t) = tx else {
            return Ok(());
        };
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT epoch FROM pool_lease WHERE pool = $1 AND holder = $2 AND epoch = $3 FOR SHARE",
        )
        .bind(pool)
        .bind(&lease.holder)
        .bind(lease.epoch)
        .fetch_optional(&mut **t)
        .await?;
        match held {
            Some(_) => Ok(()),
            None => Err(StoreError::Fenced {
                pool: pool.into(),
                holder: lease.holder.clone(),
                epoch: lease.epoch,
            }),
        }
    }
}

/// How long a forwarded operator request waits for the holder's answer, and is kept.
pub const REQUEST_TTL_MS: i64 = 15_000;

impl Store {
    /// Files an operator's request (`request`, JSON) for the holder of `pool`; its id.
    pub async fn file_request(&self, pool: &str, request: &str) -> Result<i64, StoreError> {
        let db = self.postgres("forwarded operator requests")?;
        // Old rows go as new ones come: the table holds the last minutes only.
        sqlx::query(&format!(
            "DELETE FROM operator_request WHERE asked < {DB_NOW} - 4 * $1"
        ))
        .bind(REQUEST_TTL_MS)
        .execute(db)
        .await?;
        Ok(sqlx::query_scalar(&format!(
            "INSERT INTO operator_request (pool, request, asked) VALUES ($1, $2, {DB_NOW})
             RETURNING id"
        ))
        .bind(pool)
        .bind(request)
        .fetch_one(db)
        .await?)
    }

    /// The requests for `pool` nobody answered yet, recent enough that someone still waits,
    /// oldest first: (id, request).
    pub async fn open_requests(&self, pool: &str) -> Result<Vec<(i64, String)>, StoreError> {
        let db = self.postgres("forwarded operator requests")?;
        Ok(sqlx::query_as(&format!(
            "SELECT id, request FROM operator_request
             WHERE pool = $1 AND answer IS NULL AND asked >= {DB_NOW} - $2 ORDER BY id"
        ))
        .bind(pool)
        .bind(REQUEST_TTL_MS)
        .fetch_all(db)
        .await?)
    }

    /// Answers request `id` (once: a second answer changes nothing).
    pub async fn answer_request(&self, id: i64, answer: &str) -> Result<(), StoreError> {
        let db = self.postgres("forwarded operator requests")?;
        sqlx::query("UPDATE operator_request SET answer = $2 WHERE id = $1 AND answer IS NULL")
            .bind(id)
            .bind(answer)
            .execute(db)
            .await?;
        Ok(())
    }

    /// Request `id`'s answer, once there is one.
    pub async fn request_answer(&self, id: i64) -> Result<Option<String>, StoreError> {
        let db = self.postgres("forwarded operator requests")?;
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT answer FROM operator_request WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(db)
        .await?
        .flatten())
    }
}
