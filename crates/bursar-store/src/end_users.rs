//! Customers (end users, `LiteLLM_EndUserTable`): the `user` named in a request, with its spend,
//! its budget row and whether it is blocked.

use crate::budgets::{BudgetPatch, NewBudget};
use crate::error::on_unique;
use crate::keys::{json_column, optional_json_column};
use crate::sql::SqlBuilder;
use crate::{StoreError, now_ms};
use bursar_core::NanoUsd;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, PartialEq)]
pub struct EndUserRow {
    pub user_id: String,
    pub alias: Option<String>,
    pub spend: NanoUsd,
    pub allowed_model_region: Option<String>,
    pub default_model: Option<String>,
    pub budget_id: Option<String>,
    pub blocked: bool,
    pub object_permission: Option<Value>,
    pub metadata: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An end user to create.
#[derive(Debug, Clone, Default)]
pub struct NewEndUser {
    pub user_id: String,
    pub alias: Option<String>,
    pub spend: NanoUsd,
    pub allowed_model_region: Option<String>,
    pub default_model: Option<String>,
    pub budget_id: Option<String>,
    pub blocked: bool,
    pub object_permission: Option<Value>,
    pub metadata: Option<Value>,
}

/// Settable end-user columns; `None` leaves a column alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct EndUserPatch {
    pub alias: Option<Option<String>>,
    pub allowed_model_region: Option<Option<String>>,
    pub default_model: Option<Option<String>>,
    pub budget_id: Option<Option<String>>,
    pub blocked: Option<bool>,
    pub object_permission: Option<Option<Value>>,
    pub metadata: Option<Value>,
    pub spend: Option<NanoUsd>,
}

macro_rules! end_user_columns {
    () => {
        "user_id, alias, spend_nano, allowed_model_region, default_model, budget_id, blocked, \
         object_permission, metadata, created_at, updated_at"
    };
}

pub struct EndUserStore<'a> {
    pool: &'a AnyPool,
}

impl<'a> EndUserStore<'a> {
    pub(crate) fn new(pool: &'a AnyPool) -> Self {
        EndUserStore { pool }
    }

    pub async fn find(&self, user_id: &str) -> Result<Option<EndUserRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            end_user_columns!(),
            " FROM end_users WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Every end user, by id.
    pub async fn list(&self) -> Result<Vec<EndUserRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            end_user_columns!(),
            " FROM end_users ORDER BY user_id"
        ))
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// The ids of every blocked end user, in order.
    pub async fn blocked_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT user_id FROM end_users WHERE blocked = 1 ORDER BY user_id")
            .fetch_all(self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get("user_id").map_err(StoreError::from))
            .collect()
    }

    /// Creates an end user and, when given, its new budget row, in one transaction. An
    /// existing id is a [`StoreError::Conflict`].
    pub async fn create(
        &self,
        user: &NewEndUser,
        budget: Option<&NewBudget>,
    ) -> Result<EndUserRow, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(budget) = budget {
            crate::budgets::insert_in(&mut tx, budget).await?;
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO end_users (user_id, alias, spend_nano, allowed_model_region, default_model, \
             budget_id, blocked, object_permission, metadata, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&user.user_id)
        .bind(&user.alias)
        .bind(user.spend.0)
        .bind(&user.allowed_model_region)
        .bind(&user.default_model)
        .bind(budget.map(|b| b.budget_id.clone()).or(user.budget_id.clone()))
        .bind(i64::from(user.blocked))
        .bind(user.object_permission.as_ref().map(Value::to_string))
        .bind(
            user.metadata
                .as_ref()
                .map_or_else(|| "{}".to_string(), Value::to_string),
        )
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(on_unique("end user"))?;
        tx.commit().await?;
        self.find(&user.user_id)
            .await?
            .ok_or(StoreError::Conflict { what: "end user" })
    }

    /// The end user named `user_id`, created with `budget_id` if it does not exist yet. Safe
    /// under concurrency: of racing creators exactly one inserts and all read the same row.
    pub async fn ensure(
        &self,
        user_id: &str,
        budget_id: Option<&str>,
    ) -> Result<EndUserRow, StoreError> {
        if let Some(found) = self.find(user_id).await? {
            return Ok(found);
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO end_users (user_id, budget_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(budget_id)
        .bind(now)
        .bind(now)
        .execute(self.pool)
        .await?;
        self.find(user_id)
            .await?
            .ok_or(StoreError::Conflict { what: "end user" })
    }

    /// Applies `patch` and, when not empty, `budget` to the end user's budget row (creating
    /// one when it has none, or when `fresh_budget` says its row is shared and must not
    /// change). `None` when there is no such end user.
    pub async fn update(
        &self,
        user_id: &str,
        patch: &EndUserPatch,
        budget: &BudgetPatch,
        fresh_budget: bool,
        actor: &str,
    ) -> Result<Option<EndUserRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Write first, so the transaction holds SQLite's write lock before it reads (a read
        // that later upgrades can fail at once with "database is locked").
        let touched = sqlx::query("UPDATE end_users SET updated_at = $1 WHERE user_id = $2")
            .bind(now_ms())
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if touched == 0 {
            return Ok(None);
        }
        let current = sqlx::query("SELECT budget_id FROM end_users WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        let mut budget_id = patch.budget_id.clone();
        if !budget.is_empty() {
            let existing: Option<String> = match &budget_id {
                Some(chosen) => chosen.clone(),
                None => current.try_get("budget_id")?,
            };
            let existing = existing.filter(|_| !fresh_budget);
            let id = crate::budgets::upsert_in(&mut tx, existing.as_deref(), budget, actor).await?;
            budget_id = Some(Some(id));
        }
        let mut q = SqlBuilder::new("UPDATE end_users SET updated_at = ");
        q.bind(now_ms());
        q.set_if("alias", patch.alias.clone())
            .set_if("allowed_model_region", patch.allowed_model_region.clone())
            .set_if("default_model", patch.default_model.clone())
            .set_if("budget_id", budget_id)
            .set_if("blocked", patch.blocked.map(i64::from))
            .set_if(
                "object_permission",
                patch
                    .object_permission
                    .as_ref()
                    .map(|o| o.as_ref().map(Value::to_string)),
            )
            .set_if("metadata", patch.metadata.as_ref().map(Value::to_string))
            .set_if("spend_nano", patch.spend.map(|s| s.0));
        q.push(" WHERE user_id = ").bind(user_id.to_string());
        q.build()?.execute(&mut *tx).await?;
        tx.commit().await?;
        self.find(user_id).await
    }

    /// Deletes all of `user_ids` or none: when any is unknown, nothing is deleted and the
    /// unknown ids come back as the error value.
    pub async fn delete_all(
        &self,
        user_ids: &[String],
    ) -> Result<Result<u64, Vec<String>>, StoreError> {
        let mut unique: Vec<&String> = Vec::with_capacity(user_ids.len());
        for id in user_ids {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        let mut tx = self.pool.begin().await?;
        let mut missing = Vec::new();
        let mut deleted = 0;
        for id in unique {
            let gone = sqlx::query("DELETE FROM end_users WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone == 0 {
                missing.push(id.clone());
            }
            deleted += gone;
        }
        if !missing.is_empty() {
            return Ok(Err(missing)); // the transaction rolls back: nothing is deleted
        }
        tx.commit().await?;
        Ok(Ok(deleted))
    }

    /// Sets `blocked` on each of `user_ids`, creating the ones that do not exist yet; returns
    /// the rows as they are now.
    pub async fn set_blocked(
        &self,
        user_ids: &[String],
        blocked: bool,
    ) -> Result<Vec<EndUserRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        for id in user_ids {
            sqlx::query(
                "INSERT INTO end_users (user_id, blocked, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id) DO UPDATE SET blocked = $2, updated_at = $4",
            )
            .bind(id)
            .bind(i64::from(blocked))
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let mut rows = Vec::with_capacity(user_ids.len());
        for id in user_ids {
            if let Some(row) = self.find(id).await?
                && !rows.iter().any(|r: &EndUserRow| r.user_id == row.user_id)
            {
                rows.push(row);
            }
        }
        Ok(rows)
    }
}

fn decode(row: &AnyRow) -> Result<EndUserRow, StoreError> {
    Ok(EndUserRow {
        user_id: row.try_get("user_id")?,
        alias: row.try_get("alias")?,
        spend: NanoUsd(row.try_get("spend_nano")?),
        allowed_model_region: row.try_get("allowed_model_region")?,
        default_model: row.try_get("default_model")?,
        budget_id: row.try_get("budget_id")?,
        blocked: row.try_get::<i64, _>("blocked")? != 0,
        object_permission: optional_json_column(row, "object_permission")?,
        metadata: json_column(row, "metadata")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
