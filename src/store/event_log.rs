//! The event log: what happened to each call, read by the API's feed, the CLI and webhooks;
//! and its pruning (`[service] keep_log`).

use crate::park::{ChannelId, Millis};

use super::{Db, Store, StoreError, decode_list, on_db};

/// An entry as read: id, at, pool, kind, channel, orbit, lot, detail.
type Entry = (
    i64,
    Millis,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
);

/// One page of the event log, read in one statement so that the two agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogPage {
    /// The oldest entry the store keeps (the next id to come when none is kept): entries
    /// before it were pruned (`[service] keep_log`).
    pub oldest: i64,
    /// The entries after the id asked for, oldest first.
    pub rows: Vec<LogRow>,
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

impl Store {
    /// Whether callpark hung `channel` up: its newest entry is `disconnected` (nobody answered
    /// anywhere). The other ends are outcomes the PBX confirmed (a bridge, a caller gone), so
    /// a channel found parked after them was parked anew; after this one it is a hang-up
    /// that did not reach the PBX.
    pub async fn hung_up(&self, channel: &ChannelId) -> Result<bool, StoreError> {
        let kind: Option<String> = on_db!(Db, &self.db, db => {
            sqlx::query_scalar(
                "SELECT kind FROM event_log WHERE channel = $1 ORDER BY id DESC LIMIT 1",
            )
            .bind(channel.as_str())
            .fetch_optional(db)
            .await?
        });
        Ok(kind.as_deref() == Some(crate::park::LogKind::Disconnected.as_str()))
    }

    /// The newest `limit` log entries, oldest first.
    pub async fn log(&self, limit: i64) -> Result<Vec<LogRow>, StoreError> {
        let rows: Vec<Entry> = on_db!(Db, &self.db, db => {
            sqlx::query_as(
                "SELECT id, at, pool, kind, channel, orbit, lot, detail FROM
                   (SELECT * FROM event_log ORDER BY id DESC LIMIT $1) AS newest ORDER BY id",
            )
            .bind(limit)
            .fetch_all(db)
            .await?
        });
        Ok(rows.into_iter().map(log_row).collect())
    }

    /// Log entries after `id`, oldest first, at most `limit`.
    pub async fn log_after(&self, id: i64, limit: i64) -> Result<Vec<LogRow>, StoreError> {
        Ok(self.log_page(id, limit).await?.rows)
    }

    /// Log entries after `id`, oldest first, at most `limit`, with the oldest id the store
    /// keeps (the event stream's resume): when `id` is below `oldest - 1`, entries between
    /// them were pruned and the page does not follow on from `id`.
    pub(crate) async fn log_page(&self, id: i64, limit: i64) -> Result<LogPage, StoreError> {
        // One statement, so one snapshot: a prune between reading the oldest id and the
        // rows cannot make a gap look like none. The oldest id when none is kept: the one
        // after the last given (SQLite's AUTOINCREMENT counter, PostgreSQL's sequence).
        let (oldest, json): (i64, String) = match &self.db {
            Db::Sqlite(db) => {
                sqlx::query_as(
                    "SELECT COALESCE((SELECT MIN(id) FROM event_log),
                                     (SELECT seq FROM sqlite_sequence WHERE name = 'event_log') + 1, 1),
                            (SELECT json_group_array(
                                json_array(id, at, pool, kind, channel, orbit, lot, detail) ORDER BY id)
                             FROM (SELECT * FROM event_log WHERE id > $1 ORDER BY id LIMIT $2))",
                )
                .bind(id)
                .bind(limit)
                .fetch_one(db)
                .await?
            }
            Db::Postgres(db) => {
                sqlx::query_as(
                    "SELECT COALESCE((SELECT MIN(id) FROM event_log),
                                     pg_sequence_last_value('event_log_id_seq') + 1, 1),
                            COALESCE((SELECT json_agg(
                                json_build_array(id, at, pool, kind, channel, orbit, lot, detail) ORDER BY id)
                             FROM (SELECT * FROM event_log WHERE id > $1 ORDER BY id LIMIT $2) AS page)::text,
                             '[]')",
                )
                .bind(id)
                .bind(limit)
                .fetch_one(db)
                .await?
            }
        };
        let rows: Vec<Entry> = decode_list("event log", &json)?;
        let rows = rows.into_iter().map(log_row).collect();
        Ok(LogPage { oldest, rows })
    }

    /// The newest log entry's id (0 when nothing was ever logged). Ids are never reused
    /// (AUTOINCREMENT): after a prune that emptied the log this is still the last id given.
    ///
    /// On PostgreSQL the sequence counts only when the log is empty: it moves as entries are
    /// inserted, before they are committed, and a reader starting after an id not committed
    /// yet would miss it.
    pub async fn last_log_id(&self) -> Result<i64, StoreError> {
        let id: Option<i64> = match &self.db {
            Db::Sqlite(db) => {
                sqlx::query_scalar(
                    "SELECT MAX(COALESCE((SELECT MAX(id) FROM event_log), 0),
                                COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'event_log'), 0))",
                )
                .fetch_one(db)
                .await?
            }
            Db::Postgres(db) => {
                sqlx::query_scalar(
                    "SELECT COALESCE((SELECT MAX(id) FROM event_log),
                                     pg_sequence_last_value('event_log_id_seq'), 0)",
                )
                .fetch_one(db)
                .await?
            }
        };
        Ok(id.unwrap_or(0))
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
        Ok(on_db!(Db, &self.db, db => {
            sqlx::query(
                "DELETE FROM event_log WHERE id IN
                   (SELECT id FROM (SELECT id, at FROM event_log ORDER BY id LIMIT $1) AS oldest
                     WHERE at < $2)",
            )
            .bind(batch)
            .bind(before)
            .execute(db)
            .await?
            .rows_affected()
        }))
    }

    /// The oldest entry kept, if any (`callpark log` and tests).
    pub async fn oldest_log_id(&self) -> Result<Option<i64>, StoreError> {
        Ok(on_db!(Db, &self.db, db => {
            sqlx::query_scalar("SELECT MIN(id) FROM event_log")
                .fetch_one(db)
                .await?
        }))
    }
}

fn log_row((id, at, pool, kind, channel, orbit, lot, detail): Entry) -> LogRow {
    LogRow {
        id,
        at,
        pool,
        kind,
        channel,
        orbit,
        lot,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{entry, store};

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
}
