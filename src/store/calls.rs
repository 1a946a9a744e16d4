//! The parked calls as stored: each with its record (the core's [`ParkedCall`]), its pool and
//! its orbit.

use sqlx::Row;

use crate::park::ParkedCall;

use super::{Db, Store, StoreError, decode_list, on_db};

impl Store {
    /// Calls held now, of one pool or of all, ordered by orbit.
    pub async fn parked(
        &self,
        pool: Option<&str>,
    ) -> Result<Vec<(String, ParkedCall)>, StoreError> {
        let json: String = match &self.db {
            Db::Sqlite(db) => {
                sqlx::query_scalar(
                    "SELECT json_group_array(json_array(pool, channel, record)
                        ORDER BY parked_at, channel)
                     FROM parked_call WHERE (?1 IS NULL OR pool = ?1)",
                )
                .bind(pool)
                .fetch_one(db)
                .await?
            }
            Db::Postgres(db) => {
                sqlx::query_scalar(
                    "SELECT COALESCE(json_agg(json_build_array(pool, channel, record)
                        ORDER BY parked_at, channel)::text, '[]')
                     FROM parked_call WHERE ($1::text IS NULL OR pool = $1)",
                )
                .bind(pool)
                .fetch_one(db)
                .await?
            }
        };
        let rows: Vec<(String, String, String)> = decode_list("parked calls", &json)?;
        rows.into_iter()
            .map(|(pool, channel, record)| {
                let call = serde_json::from_str(&record)
                    .map_err(|source| StoreError::Corrupt { channel, source })?;
                Ok((pool, call))
            })
            .collect()
    }

    /// Number of calls held per orbit range name.
    pub async fn used_per_orbit(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_db!(Db, &self.db, db => {
            sqlx::query("SELECT orbit FROM parked_call WHERE orbit IS NOT NULL")
                .fetch_all(db)
                .await?
                .into_iter()
                .map(|r| r.get("orbit"))
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{call, store};
    use super::*;
    use crate::park::Change;

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
        let Db::Sqlite(db) = &s.db else {
            unreachable!("the fixture is SQLite")
        };
        sqlx::query("UPDATE parked_call SET record = '{\"channel\": 1' WHERE channel = 'ch-9'")
            .execute(db)
            .await
            .unwrap();
        let e = s.parked(None).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Corrupt { channel, .. } if channel == "ch-9"),
            "{e}"
        );
    }
}
