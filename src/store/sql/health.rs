//! The health probe `/readyz` uses: one round trip on the pool reads use.
//! Written once for both backends (see `store/sql/mod.rs`).

use async_trait::async_trait;

use super::{map_err, Backend};
use crate::store::{Health, StoreError};

#[async_trait]
impl Health for Backend {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(self.reader())
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
