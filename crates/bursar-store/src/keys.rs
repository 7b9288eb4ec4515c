//! Virtual keys. Rows are addressed by `token`, the SHA-256 hex of the raw key.

use crate::error::on_unique;
use crate::{StoreError, now_ms};
use bursar_core::NanoUsd;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// A key as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub token: String,
    pub key_name: Option<String>,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
    pub budget_id: Option<String>,
    pub models: Vec<String>,
    pub aliases: Value,
    pub metadata: Value,
    pub permissions: Value,
    pub allowed_routes: Vec<String>,
    pub blocked: bool,
    pub expires_at: Option<i64>,
    pub max_budget: Option<NanoUsd>,
    pub soft_budget: Option<NanoUsd>,
    pub spend: NanoUsd,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub model_max_budget: Value,
    pub model_spend: Value,
    pub rotation_count: i64,
    pub created_at: i64,
    pub created_by: Option<String>,
    pub updated_at: i64,
    pub updated_by: Option<String>,
    pub last_active_at: Option<i64>,
}

/// What a caller decides when creating a key; everything else starts at its default.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub token: String,
    pub key_name: Option<String>,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
    pub budget_id: Option<String>,
    pub models: Vec<String>,
    pub aliases: Option<Value>,
    pub metadata: Option<Value>,
    pub permissions: Option<Value>,
    pub allowed_routes: Vec<String>,
    pub blocked: bool,
    pub expires_at: Option<i64>,
    pub max_budget: Option<NanoUsd>,
    pub soft_budget: Option<NanoUsd>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub model_max_budget: Option<Value>,
    pub created_by: Option<String>,
}

pub struct KeyStore<'a> {
    pool: &'a AnyPool,
}

/// The key columns in decode order; a macro so queries stay `&'static str`.
macro_rules! key_columns {
    () => {
        "token, key_name, key_alias, user_id, team_id, organization_id, budget_id, models, \
    aliases, metadata, permissions, allowed_routes, blocked, expires_at, max_budget_nano, soft_budget_nano, \
    spend_nano, budget_duration, budget_reset_at, max_parallel_requests, tpm_limit, rpm_limit, \
    model_max_budget, model_spend, rotation_count, created_at, created_by, updated_at, updated_by, last_active_at"
    };
}

impl<'a> KeyStore<'a> {
    pub(crate) fn new(pool: &'a AnyPool) -> Self {
        KeyStore { pool }
    }

    /// Inserts a key; a duplicate token is a [`StoreError::Conflict`].
    pub async fn insert(&self, key: &NewKey) -> Result<KeyRow, StoreError> {
        let now = now_ms();
        let json = |v: &Option<Value>| {
            v.as_ref()
                .map(Value::to_string)
                .unwrap_or_else(|| "{}".to_string())
        };
        let list = |v: &Vec<String>| Value::from(v.clone()).to_string();
        sqlx::query(
            "INSERT INTO keys (token, key_name, key_alias, user_id, team_id, organization_id, budget_id, models, \
             aliases, metadata, permissions, allowed_routes, blocked, expires_at, max_budget_nano, soft_budget_nano, \
             budget_duration, budget_reset_at, max_parallel_requests, tpm_limit, rpm_limit, model_max_budget, \
             created_at, created_by, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
             $22, $23, $24, $25, $26)",
        )
        .bind(&key.token)
        .bind(&key.key_name)
        .bind(&key.key_alias)
        .bind(&key.user_id)
        .bind(&key.team_id)
        .bind(&key.organization_id)
        .bind(&key.budget_id)
        .bind(list(&key.models))
        .bind(json(&key.aliases))
        .bind(json(&key.metadata))
        .bind(json(&key.permissions))
        .bind(list(&key.allowed_routes))
        .bind(i64::from(key.blocked))
        .bind(key.expires_at)
        .bind(key.max_budget.map(|m| m.0))
        .bind(key.soft_budget.map(|m| m.0))
        .bind(&key.budget_duration)
        .bind(key.budget_reset_at)
        .bind(key.max_parallel_requests)
        .bind(key.tpm_limit)
        .bind(key.rpm_limit)
        .bind(json(&key.model_max_budget))
        .bind(now)
        .bind(&key.created_by)
        .bind(now)
        .bind(&key.created_by)
        .execute(self.pool)
        .await
        .map_err(on_unique("key"))?;
        self.find_by_hash(&key.token)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Looks a key up by its hash.
    pub async fn find_by_hash(&self, token: &str) -> Result<Option<KeyRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM keys WHERE token = $1"
        ))
        .bind(token)
        .fetch_optional(self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }
}

impl KeyStore<'_> {
    /// Deletes a key; returns whether a row was removed.
    pub async fn delete_by_hash(&self, token: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM keys WHERE token = $1")
            .bind(token)
            .execute(self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

fn decode(row: &AnyRow) -> Result<KeyRow, StoreError> {
    Ok(KeyRow {
        token: row.try_get("token")?,
        key_name: row.try_get("key_name")?,
        key_alias: row.try_get("key_alias")?,
        user_id: row.try_get("user_id")?,
        team_id: row.try_get("team_id")?,
        organization_id: row.try_get("organization_id")?,
        budget_id: row.try_get("budget_id")?,
        models: json_column(row, "models")?,
        aliases: json_column(row, "aliases")?,
        metadata: json_column(row, "metadata")?,
        permissions: json_column(row, "permissions")?,
        allowed_routes: json_column(row, "allowed_routes")?,
        blocked: row.try_get::<i64, _>("blocked")? != 0,
        expires_at: row.try_get("expires_at")?,
        max_budget: row
            .try_get::<Option<i64>, _>("max_budget_nano")?
            .map(NanoUsd),
        soft_budget: row
            .try_get::<Option<i64>, _>("soft_budget_nano")?
            .map(NanoUsd),
        spend: NanoUsd(row.try_get("spend_nano")?),
        budget_duration: row.try_get("budget_duration")?,
        budget_reset_at: row.try_get("budget_reset_at")?,
        max_parallel_requests: row.try_get("max_parallel_requests")?,
        tpm_limit: row.try_get("tpm_limit")?,
        rpm_limit: row.try_get("rpm_limit")?,
        model_max_budget: json_column(row, "model_max_budget")?,
        model_spend: json_column(row, "model_spend")?,
        rotation_count: row.try_get("rotation_count")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
        last_active_at: row.try_get("last_active_at")?,
    })
}

/// Reads a JSON text column into any deserializable type.
pub(crate) fn json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &'static str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|source| StoreError::CorruptJson { column, source })
}
