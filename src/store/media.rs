//! Custom music-on-hold files: the copy kept in the data directory and its checksum.

use sqlx::Row;

use crate::park::Millis;

use super::{Db, Store, StoreError, on_db};

/// A stored media file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub size: i64,
}

impl Store {
    /// Records a kept file (replacing the record of the same name).
    pub async fn put_media(&self, m: &Media, now: Millis) -> Result<(), StoreError> {
        on_db!(Db, &self.db, db => {
            sqlx::query(
                "INSERT INTO media (name, path, sha256, size, stored_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET path = excluded.path, sha256 = excluded.sha256,
                   size = excluded.size, stored_at = excluded.stored_at",
            )
            .bind(&m.name)
            .bind(&m.path)
            .bind(&m.sha256)
            .bind(m.size)
            .bind(now)
            .execute(db)
            .await?;
        });
        Ok(())
    }

    pub async fn media(&self) -> Result<Vec<Media>, StoreError> {
        Ok(on_db!(Db, &self.db, db => {
            sqlx::query("SELECT name, path, sha256, size FROM media ORDER BY name")
                .fetch_all(db)
                .await?
                .into_iter()
                .map(|r| Media {
                    name: r.get("name"),
                    path: r.get("path"),
                    sha256: r.get("sha256"),
                    size: r.get("size"),
                })
                .collect()
        }))
    }
}
