//! One step of a pool's core written atomically: its changed calls, its log entries and the
//! counters they move, in one transaction.

use crate::park::{Change, LogEvent, LogKind, Millis, ParkedCall};

use super::{Store, StoreError, counters};

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
                counters::count_wait(&mut tx, pool, e, id).await?;
            }
        }
        counters::add_counts(&mut tx, pool, &counts).await?;
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
