//! The orbit table as configured when the service last started, for the CLI and the API.

use crate::orbit::OrbitTable;

use super::{Store, StoreError};

impl Store {
    /// Records the orbit table as configured now.
    pub(crate) async fn save_orbit_table(&self, table: &OrbitTable) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        sqlx::query("DELETE FROM orbit_range")
            .execute(&mut *tx)
            .await?;
        for r in table.ranges() {
            sqlx::query("INSERT INTO orbit_range (name, first, last, pool, lot, size) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(&r.name)
                .bind(r.span.first.to_string())
                .bind(r.span.last.to_string())
                .bind(&r.pool)
                .bind(&r.lot)
                .bind(r.span.len() as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
