//! `callpark migrate`: a site's SQLite store copied into an empty PostgreSQL one, whole or not
//! at all (one transaction on each side: a snapshot of the source, one commit on the target).

use sqlx::{Postgres, QueryBuilder};

use super::{Db, PgUrl, Store, StoreError};

/// Rows per INSERT: PostgreSQL takes at most 65,535 parameters a statement, and the widest
/// table has 11 columns.
const BATCH: usize = 1000;

/// What [`Store::copy_into`] copied, table by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    pub calls: u64,
    pub log_entries: u64,
    pub counters: u64,
    pub wait_buckets: u64,
    pub media: u64,
    pub orbit_ranges: u64,
}

/// A parked call's row, column by column, as both schemas hold it.
type CallRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    String,
    Option<String>,
);
/// An event log entry's row: id, at, pool, kind, channel, orbit, lot, detail.
type LogRow = (
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
);

impl Store {
    /// Copies this store (SQLite) into `target` (PostgreSQL, `url`): the parked calls, the
    /// event log with its ids (the event stream's clients resume by id, and the target's ids
    /// go on after the source's last), the metric counters, the media records and the orbit
    /// table. Refuses a target that holds calls, log entries or counters already, so that two
    /// sites' stores are never mixed and counters never counted twice.
    pub async fn copy_into(&self, target: &Store, url: &PgUrl) -> Result<Copied, StoreError> {
        let Db::Sqlite(src) = &self.db else {
            return Err(StoreError::NotSqlite {
                what: "`callpark migrate --from`",
                instead: "name an SQLite file (sqlite:PATH)",
            });
        };
        let Db::Postgres(dst) = &target.db else {
            return Err(StoreError::NotPostgres);
        };
        // One read transaction: one snapshot of the source, even while a service writes it.
        let mut from = src.begin().await?;
        let mut to = dst.begin().await?;
        // Nobody writes the target's calls or log between the check and the commit (a
        // service started on it meanwhile waits); readers go on.
        sqlx::query(
            "LOCK TABLE parked_call, event_log, metric_counter, retrieve_wait IN EXCLUSIVE MODE",
        )
        .execute(&mut *to)
        .await?;
        let (calls, entries, counters): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM parked_call), (SELECT COUNT(*) FROM event_log),
                    (SELECT COUNT(*) FROM metric_counter) + (SELECT COUNT(*) FROM retrieve_wait)",
        )
        .fetch_one(&mut *to)
        .await?;
        if calls > 0 || entries > 0 || counters > 0 {
            return Err(StoreError::TargetNotEmpty {
                url: url.clone(),
                calls,
                entries,
            });
        }
        let mut copied = Copied::default();

        let rows: Vec<CallRow> = sqlx::query_as(
            "SELECT channel, pool, orbit, parker, caller, parked_at, deadline, attempt, state,
                    record, lot FROM parked_call ORDER BY channel",
        )
        .fetch_all(&mut *from)
        .await?;
        for chunk in rows.chunks(BATCH) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO parked_call (channel, pool, orbit, parker, caller, parked_at,
                   deadline, attempt, state, record, lot) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(&r.0)
                    .push_bind(&r.1)
                    .push_bind(&r.2)
                    .push_bind(&r.3)
                    .push_bind(&r.4)
                    .push_bind(r.5)
                    .push_bind(r.6)
                    .push_bind(r.7)
                    .push_bind(&r.8)
                    .push_bind(&r.9)
                    .push_bind(&r.10);
            });
            q.build().execute(&mut *to).await?;
        }
        copied.calls = rows.len() as u64;

        // The log can be long (`keep_log` is 90 days by default): read and written a batch at
        // a time, in id order.
        let mut after = i64::MIN;
        loop {
            let rows: Vec<LogRow> = sqlx::query_as(
                "SELECT id, at, pool, kind, channel, orbit, lot, detail FROM event_log
                  WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(BATCH as i64)
            .fetch_all(&mut *from)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO event_log (id, at, pool, kind, channel, orbit, lot, detail) ",
            );
            q.push_values(&rows, |mut b, r| {
                b.push_bind(r.0)
                    .push_bind(r.1)
                    .push_bind(&r.2)
                    .push_bind(&r.3)
                    .push_bind(&r.4)
                    .push_bind(&r.5)
                    .push_bind(&r.6)
                    .push_bind(&r.7);
            });
            q.build().execute(&mut *to).await?;
            copied.log_entries += rows.len() as u64;
        }
        // The ids to come follow the source's last given, pruned or not.
        let last_id: i64 = sqlx::query_scalar(
            "SELECT MAX(COALESCE((SELECT MAX(id) FROM event_log), 0),
                        COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'event_log'), 0))",
        )
        .fetch_one(&mut *from)
        .await?;
        if last_id > 0 {
            sqlx::query("SELECT setval(pg_get_serial_sequence('event_log', 'id'), $1)")
                .bind(last_id)
                .execute(&mut *to)
                .await?;
        }

        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT pool, kind, n FROM metric_counter ORDER BY pool, kind")
                .fetch_all(&mut *from)
                .await?;
        for chunk in rows.chunks(BATCH) {
            let mut q =
                QueryBuilder::<Postgres>::new("INSERT INTO metric_counter (pool, kind, n) ");
            q.push_values(chunk, |mut b, r| {
                b.push_bind(&r.0).push_bind(&r.1).push_bind(r.2);
            });
            q.build().execute(&mut *to).await?;
        }
        copied.counters = rows.len() as u64;

        let rows: Vec<(String, String, i64, i64, i64)> =
            sqlx::query_as("SELECT pool, lot, le_ms, n, sum_ms FROM retrieve_wait")
                .fetch_all(&mut *from)
                .await?;
        for chunk in rows.chunks(BATCH) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO retrieve_wait (pool, lot, le_ms, n, sum_ms) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(&r.0)
                    .push_bind(&r.1)
                    .push_bind(r.2)
                    .push_bind(r.3)
                    .push_bind(r.4);
            });
            q.build().execute(&mut *to).await?;
        }
        copied.wait_buckets = rows.len() as u64;

        // The records of the kept music files; the files themselves stay in the data
        // directory, which the nodes share or copy.
        let rows: Vec<(String, String, String, i64, i64)> =
            sqlx::query_as("SELECT name, path, sha256, size, stored_at FROM media")
                .fetch_all(&mut *from)
                .await?;
        for r in &rows {
            sqlx::query(
                "INSERT INTO media (name, path, sha256, size, stored_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET path = excluded.path, sha256 = excluded.sha256,
                   size = excluded.size, stored_at = excluded.stored_at",
            )
            .bind(&r.0)
            .bind(&r.1)
            .bind(&r.2)
            .bind(r.3)
            .bind(r.4)
            .execute(&mut *to)
            .await?;
        }
        copied.media = rows.len() as u64;

        // The orbit table as the source last loaded it (a service started on the target
        // writes its own anyway).
        let rows: Vec<(String, String, String, String, Option<String>, i64)> =
            sqlx::query_as("SELECT name, first, last, pool, lot, size FROM orbit_range")
                .fetch_all(&mut *from)
                .await?;
        sqlx::query("DELETE FROM orbit_range")
            .execute(&mut *to)
            .await?;
        for r in &rows {
            sqlx::query(
                "INSERT INTO orbit_range (name, first, last, pool, lot, size)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&r.0)
            .bind(&r.1)
            .bind(&r.2)
            .bind(&r.3)
            .bind(&r.4)
            .bind(r.5)
            .execute(&mut *to)
            .await?;
        }
        copied.orbit_ranges = rows.len() as u64;

        // The API reads its lists again.
        sqlx::query("UPDATE store_generation SET n = n + 1 WHERE id = 1")
            .execute(&mut *to)
            .await?;
        to.commit().await?;
        from.rollback().await?;
        Ok(copied)
    }
}
