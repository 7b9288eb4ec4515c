//! Internal users (`/user/*`): identity, role, budget and limits.

use crate::error::on_unique;
use crate::keys::json_column;
use crate::{StoreError, now_ms};
use bursar_core::NanoUsd;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub user_id: String,
    pub user_alias: Option<String>,
    pub user_email: Option<String>,
    pub user_role: String,
    pub sso_user_id: Option<String>,
    pub organization_id: Option<String>,
    pub max_budget: Option<NanoUsd>,
    pub soft_budget: Option<NanoUsd>,
    pub spend: NanoUsd,
    pub models: Vec<String>,
    pub metadata: Value,
    pub max_parallel_requests: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub model_max_budget: Value,
    pub model_spend: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub user_id: String,
    pub user_alias: Option<String>,
    pub user_email: Option<String>,
    pub user_role: String,
    pub sso_user_id: Option<String>,
    pub organization_id: Option<String>,
    pub max_budget: Option<NanoUsd>,
    pub soft_budget: Option<NanoUsd>,
    pub models: Vec<String>,
    pub metadata: Option<Value>,
    pub max_parallel_requests: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub model_max_budget: Option<Value>,
}

macro_rules! user_columns {
    () => {
        "user_id, user_alias, user_email, user_role, sso_user_id, organization_id, max_budget_nano, \
         soft_budget_nano, spend_nano, models, metadata, max_parallel_requests, tpm_limit, rpm_limit, \
         budget_duration, budget_reset_at, model_max_budget, model_spend, created_at, updated_at"
    };
}

pub struct UserStore<'a> {
    pool: &'a AnyPool,
}

impl<'a> UserStore<'a> {
    pub(crate) fn new(pool: &'a AnyPool) -> Self {
        UserStore { pool }
    }

    pub async fn insert(&self, user: &NewUser) -> Result<UserRow, StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO users (user_id, user_alias, user_email, user_role, sso_user_id, organization_id, \
             max_budget_nano, soft_budget_nano, models, metadata, max_parallel_requests, tpm_limit, rpm_limit, \
             budget_duration, budget_reset_at, model_max_budget, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(&user.user_id)
        .bind(&user.user_alias)
        .bind(&user.user_email)
        .bind(&user.user_role)
        .bind(&user.sso_user_id)
        .bind(&user.organization_id)
        .bind(user.max_budget.map(|m| m.0))
        .bind(user.soft_budget.map(|m| m.0))
        .bind(Value::from(user.models.clone()).to_string())
        .bind(user.metadata.as_ref().map_or_else(|| "{}".to_string(), Value::to_string))
        .bind(user.max_parallel_requests)
        .bind(user.tpm_limit)
        .bind(user.rpm_limit)
        .bind(&user.budget_duration)
        .bind(user.budget_reset_at)
        .bind(user.model_max_budget.as_ref().map_or_else(|| "{}".to_string(), Value::to_string))
        .bind(now)
        .bind(now)
        .execute(self.pool)
        .await
        .map_err(on_unique("user"))?;
        self.find(&user.user_id)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    pub async fn find(&self, user_id: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }
}

fn decode(row: &AnyRow) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        user_id: row.try_get("user_id")?,
        user_alias: row.try_get("user_alias")?,
        user_email: row.try_get("user_email")?,
        user_role: row.try_get("user_role")?,
        sso_user_id: row.try_get("sso_user_id")?,
        organization_id: row.try_get("organization_id")?,
        max_budget: row
            .try_get::<Option<i64>, _>("max_budget_nano")?
            .map(NanoUsd),
        soft_budget: row
            .try_get::<Option<i64>, _>("soft_budget_nano")?
            .map(NanoUsd),
        spend: NanoUsd(row.try_get("spend_nano")?),
        models: json_column(row, "models")?,
        metadata: json_column(row, "metadata")?,
        max_parallel_requests: row.try_get("max_parallel_requests")?,
        tpm_limit: row.try_get("tpm_limit")?,
        rpm_limit: row.try_get("rpm_limit")?,
        budget_duration: row.try_get("budget_duration")?,
        budget_reset_at: row.try_get("budget_reset_at")?,
        model_max_budget: json_column(row, "model_max_budget")?,
        model_spend: json_column(row, "model_spend")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
