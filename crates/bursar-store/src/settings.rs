//! Small named settings shared by every instance (never secrets).

use crate::{StoreError, now_ms};
use sqlx::{AnyPool, Row};

pub struct SettingsStore<'a> {
    pool: &'a AnyPool,
}

impl<'a> SettingsStore<'a> {
    pub(crate) fn new(pool: &'a AnyPool) -> Self {
        SettingsStore { pool }
    }

    pub async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>("value")).transpose()?)
    }

    pub async fn put(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now_ms())
        .execute(self.pool)
        .await?;
        Ok(())
    }
}
