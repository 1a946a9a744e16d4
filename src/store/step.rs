//! One step of a pool's core written atomically: its changed calls, its log entries and the
//! counters they move, in one transaction.

use crate::park::{Change, LogEvent, LogKind, Millis, ParkedCall};

use super::{Db, Store, StoreError, Tx, counters, on_db};

impl Store {
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
        self.check_fence(&mut tx, pool).await?;
        // First, so that on PostgreSQL the row's lock orders the commits: log ids are taken
        // from a sequence as entries are inserted, and a later commit of a lower id would be
        // missed by a reader already past it (the event stream reads `id > last`). SQLite has
        // one writer at a time anyway.
        on_db!(Tx, &mut tx, t => {
            sqlx::query("UPDATE store_generation SET n = n + 1 WHERE id = 1")
                .execute(&mut **t)
                .await?;
        });
        // Removals first, so an orbit freed and taken again in one step does not collide.
        for c in changes {
            if let Change::Remove(ch) = c {
                on_db!(Tx, &mut tx, t => {
                    sqlx::query("DELETE FROM parked_call WHERE channel = $1")
                        .bind(ch.as_str())
                        .execute(&mut **t)
                        .await?;
                });
            }
        }
        for c in changes {
            if let Change::Upsert(call) = c {
                let record = serde_json::to_string(&**call).expect("a parked call serializes");
                let (orbit, caller) = (
                    call.orbit.map(|o| o.to_string()),
                    format!("{} <{}>", call.caller.name, call.caller.number),
                );
                on_db!(Tx, &mut tx, t => {
                    sqlx::query(
                        "INSERT INTO parked_call (channel, pool, orbit, parker, caller, parked_at, deadline, attempt, state, record, lot)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                         ON CONFLICT (channel) DO UPDATE SET orbit = excluded.orbit, lot = excluded.lot, deadline = excluded.deadline,
                           attempt = excluded.attempt, state = excluded.state, record = excluded.record",
                    )
                    .bind(call.channel.as_str())
                    .bind(pool)
                    .bind(&orbit)
                    .bind(&call.parker.display)
                    .bind(&caller)
                    .bind(call.parked_at)
                    .bind(call.deadline)
                    .bind(i64::from(call.attempts))
                    .bind(call.state.name())
                    .bind(&record)
                    .bind(&call.lot)
                    .execute(&mut **t)
                    .await?;
                });
            }
        }
        // The metrics' counters move in the same transaction as the entries they count, so a
        // scrape never sees one without the other, and pruning entries later changes neither.
        let mut counts: Vec<(&str, i64)> = Vec::new();
        for e in log {
            let orbit = e.orbit.map(|o| o.to_string());
            let id: i64 = match &mut tx {
                Tx::Sqlite(t) => sqlx::query(
                    "INSERT INTO event_log (at, pool, kind, channel, orbit, lot, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(e.at)
                .bind(pool)
                .bind(e.kind.as_str())
                .bind(e.channel.as_str())
                .bind(&orbit)
                .bind(&e.lot)
                .bind(&e.detail)
                .execute(&mut **t)
                .await?
                .last_insert_rowid(),
                Tx::Postgres(t) => sqlx::query_scalar(
                    "INSERT INTO event_log (at, pool, kind, channel, orbit, lot, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     RETURNING id",
                )
                .bind(e.at)
                .bind(pool)
                .bind(e.kind.as_str())
                .bind(e.channel.as_str())
                .bind(&orbit)
                .bind(&e.lot)
                .bind(&e.detail)
                .fetch_one(&mut **t)
                .await?,
            };
            match counts.iter_mut().find(|(k, _)| *k == e.kind.as_str()) {
                Some((_, n)) => *n += 1,
                None => counts.push((e.kind.as_str(), 1)),
            }
            if e.kind == LogKind::Retrieved {
                counters::count_wait(&mut tx, pool, e, id).await?;
            }
        }
        counters::add_counts(&mut tx, pool, &counts).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A number that moves with every commit changing the parked calls or the log: a list
    /// read after reading it is at least as new as it ([`Store::apply`] bumps it in the
    /// same transaction).
    pub(crate) async fn generation(&self) -> Result<i64, StoreError> {
        Ok(on_db!(Db, &self.db, db => {
            sqlx::query_scalar("SELECT n FROM store_generation WHERE id = 1")
                .fetch_one(db)
                .await?
        }))
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
}
