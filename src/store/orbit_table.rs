//! The orbit table as configured when the service last started, for the CLI and the API.

use crate::orbit::OrbitTable;

use super::{Store, StoreError, Tx, on_db};

impl Store {
    /// Records the orbit table as configured now.
    pub async fn save_orbit_table(&self, table: &OrbitTable) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        on_db!(Tx, &mut tx, t => {
            sqlx::query("DELETE FROM orbit_range")
                .execute(&mut **t)
                .await?;
        });
        for r in table.ranges() {
            on_db!(Tx, &mut tx, t => {
                sqlx::query("INSERT INTO orbit_range (name, first, last, pool, lot, size) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&r.name)
                    .bind(r.span.first.to_string())
                    .bind(r.span.last.to_string())
                    .bind(&r.pool)
                    .bind(&r.lot)
                    .bind(r.span.len() as i64)
                    .execute(&mut **t)
                    .await?;
            });
        }
        tx.commit().await?;
        Ok(())
    }
}
