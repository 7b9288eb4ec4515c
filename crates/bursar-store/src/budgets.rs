//! Shared budget rows (`LiteLLM_BudgetTable`): the budget and limits of an organization, of a
//! user inside a team or an organization, and the template for new team members.

use crate::keys::{json_column, optional_json_column};
use crate::sql::SqlBuilder;
use crate::{StoreError, now_ms};
use bursar_core::NanoUsd;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRow {
    pub budget_id: String,
    pub max_budget: Option<NanoUsd>,
    pub soft_budget: Option<NanoUsd>,
    pub max_parallel_requests: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub model_max_budget: Option<Value>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub allowed_models: Vec<String>,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    pub updated_by: String,
}

/// A budget row to create; `budget_id` is chosen by the caller.
#[derive(Debug, Clone, Default)]
pub struct NewBudget {
    pub budget_id: String,
    pub max_budget: Option<NanoUsd>,
    pub soft_budget: Option<NanoUsd>,
    pub max_parallel_requests: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub model_max_budget: Option<Value>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub allowed_models: Vec<String>,
    pub created_by: String,
}

/// A partial update of a budget row: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct BudgetPatch {
    pub max_budget: Option<Option<NanoUsd>>,
    pub soft_budget: Option<Option<NanoUsd>>,
    pub max_parallel_requests: Option<Option<i64>>,
    pub tpm_limit: Option<Option<i64>>,
    pub rpm_limit: Option<Option<i64>>,
    pub model_max_budget: Option<Value>,
    pub budget_duration: Option<Option<String>>,
    pub budget_reset_at: Option<Option<i64>>,
    pub allowed_models: Option<Vec<String>>,
}

impl BudgetPatch {
    pub fn is_empty(&self) -> bool {
        self.max_budget.is_none()
            && self.soft_budget.is_none()
            && self.max_parallel_requests.is_none()
            && self.tpm_limit.is_none()
            && self.rpm_limit.is_none()
            && self.model_max_budget.is_none()
            && self.budget_duration.is_none()
            && self.budget_reset_at.is_none()
            && self.allowed_models.is_none()
    }

    /// The new row this patch describes when there is no row yet.
    pub fn into_new(self, budget_id: String, created_by: String) -> NewBudget {
        NewBudget {
            budget_id,
            max_budget: self.max_budget.flatten(),
            soft_budget: self.soft_budget.flatten(),
            max_parallel_requests: self.max_parallel_requests.flatten(),
            tpm_limit: self.tpm_limit.flatten(),
            rpm_limit: self.rpm_limit.flatten(),
            model_max_budget: self.model_max_budget,
            budget_duration: self.budget_duration.flatten(),
            budget_reset_at: self.budget_reset_at.flatten(),
            allowed_models: self.allowed_models.unwrap_or_default(),
            created_by,
        }
    }
}

macro_rules! budget_columns {
    () => {
        "budget_id, max_budget_nano, soft_budget_nano, max_parallel_requests, tpm_limit, rpm_limit, \
         model_max_budget, budget_duration, budget_reset_at, allowed_models, created_at, created_by, \
         updated_at, updated_by"
    };
}

pub struct BudgetStore<'a> {
    pool: &'a AnyPool,
}

impl<'a> BudgetStore<'a> {
    pub(crate) fn new(pool: &'a AnyPool) -> Self {
        BudgetStore { pool }
    }

    pub async fn find(&self, budget_id: &str) -> Result<Option<BudgetRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            budget_columns!(),
            " FROM budgets WHERE budget_id = $1"
        ))
        .bind(budget_id)
        .fetch_optional(self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }
}

impl BudgetStore<'_> {
    /// Every budget row, by id.
    pub async fn list(&self) -> Result<Vec<BudgetRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            budget_columns!(),
            " FROM budgets ORDER BY budget_id"
        ))
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Creates a budget row; an existing id is a [`StoreError::Conflict`].
    pub async fn create(&self, budget: &NewBudget) -> Result<BudgetRow, StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_in(&mut tx, budget).await?;
        tx.commit().await?;
        self.find(&budget.budget_id)
            .await?
            .ok_or(StoreError::Conflict { what: "budget" })
    }

    /// Applies `patch`; `None` when there is no such row.
    pub async fn update(
        &self,
        budget_id: &str,
        patch: &BudgetPatch,
        actor: &str,
    ) -> Result<Option<BudgetRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        update_in(&mut tx, budget_id, patch, actor).await?;
        tx.commit().await?;
        self.find(budget_id).await
    }

    /// Deletes a budget row and unlinks everything that pointed at it (keys, organizations,
    /// memberships and end users keep no dangling id); returns the row as it was.
    pub async fn delete(&self, budget_id: &str) -> Result<Option<BudgetRow>, StoreError> {
        let Some(row) = self.find(budget_id).await? else {
            return Ok(None);
        };
        let mut tx = self.pool.begin().await?;
        for sql in [
            "UPDATE keys SET budget_id = NULL WHERE budget_id = $1",
            "UPDATE organizations SET budget_id = NULL WHERE budget_id = $1",
            "UPDATE org_members SET budget_id = NULL WHERE budget_id = $1",
            "UPDATE team_members SET budget_id = NULL WHERE budget_id = $1",
            "UPDATE end_users SET budget_id = NULL WHERE budget_id = $1",
            "DELETE FROM budgets WHERE budget_id = $1",
        ] {
            sqlx::query(sql).bind(budget_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some(row))
    }

    /// The rows among `budget_ids` that exist.
    pub async fn find_many(&self, budget_ids: &[String]) -> Result<Vec<BudgetRow>, StoreError> {
        if budget_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = SqlBuilder::new(concat!(
            "SELECT ",
            budget_columns!(),
            " FROM budgets WHERE budget_id IN ("
        ));
        q.bind_list(budget_ids.iter().cloned()).push(")");
        let rows = q.build()?.fetch_all(self.pool).await?;
        rows.iter().map(decode).collect()
    }
}

pub(crate) async fn insert_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    budget: &NewBudget,
) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO budgets (budget_id, max_budget_nano, soft_budget_nano, max_parallel_requests, \
         tpm_limit, rpm_limit, model_max_budget, budget_duration, budget_reset_at, allowed_models, \
         created_at, created_by, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&budget.budget_id)
    .bind(budget.max_budget.map(|m| m.0))
    .bind(budget.soft_budget.map(|m| m.0))
    .bind(budget.max_parallel_requests)
    .bind(budget.tpm_limit)
    .bind(budget.rpm_limit)
    .bind(budget.model_max_budget.as_ref().map(Value::to_string))
    .bind(&budget.budget_duration)
    .bind(budget.budget_reset_at)
    .bind(Value::from(budget.allowed_models.clone()).to_string())
    .bind(now)
    .bind(&budget.created_by)
    .bind(now)
    .bind(&budget.created_by)
    .execute(&mut **tx)
    .await
    .map_err(crate::error::on_unique("budget"))?;
    Ok(())
}

pub(crate) async fn update_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    budget_id: &str,
    patch: &BudgetPatch,
    updated_by: &str,
) -> Result<(), StoreError> {
    let mut q = SqlBuilder::new("UPDATE budgets SET updated_at = ");
    q.bind(now_ms());
    q.push(", updated_by = ").bind(updated_by.to_string());
    let money = |v: &Option<NanoUsd>| v.map(|m| m.0);
    q.set_if("max_budget_nano", patch.max_budget.as_ref().map(money))
        .set_if("soft_budget_nano", patch.soft_budget.as_ref().map(money))
        .set_if("max_parallel_requests", patch.max_parallel_requests)
        .set_if("tpm_limit", patch.tpm_limit)
        .set_if("rpm_limit", patch.rpm_limit)
        .set_if(
            "model_max_budget",
            patch.model_max_budget.as_ref().map(Value::to_string),
        )
        .set_if("budget_duration", patch.budget_duration.clone())
        .set_if("budget_reset_at", patch.budget_reset_at)
        .set_if(
            "allowed_models",
            patch
                .allowed_models
                .as_ref()
                .map(|m| Value::from(m.clone()).to_string()),
        );
    q.push(" WHERE budget_id = ").bind(budget_id.to_string());
    q.build()?.execute(&mut **tx).await?;
    Ok(())
}

/// Inserts the budget a patch describes, or updates the existing row; returns its id.
/// `row`'s settings with `patch` laid over them: what a private copy of a shared budget row
/// starts from.
pub(crate) fn overlay(row: &BudgetRow, patch: &BudgetPatch) -> BudgetPatch {
    BudgetPatch {
        max_budget: Some(patch.max_budget.unwrap_or(row.max_budget)),
        soft_budget: Some(patch.soft_budget.unwrap_or(row.soft_budget)),
        max_parallel_requests: Some(
            patch
                .max_parallel_requests
                .unwrap_or(row.max_parallel_requests),
        ),
        tpm_limit: Some(patch.tpm_limit.unwrap_or(row.tpm_limit)),
        rpm_limit: Some(patch.rpm_limit.unwrap_or(row.rpm_limit)),
        model_max_budget: patch
            .model_max_budget
            .clone()
            .or_else(|| row.model_max_budget.clone()),
        budget_duration: Some(
            patch
                .budget_duration
                .clone()
                .unwrap_or_else(|| row.budget_duration.clone()),
        ),
        budget_reset_at: Some(patch.budget_reset_at.unwrap_or(row.budget_reset_at)),
        allowed_models: Some(
            patch
                .allowed_models
                .clone()
                .unwrap_or_else(|| row.allowed_models.clone()),
        ),
    }
}

/// A budget row read inside a transaction.
pub(crate) async fn find_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    budget_id: &str,
) -> Result<Option<BudgetRow>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        budget_columns!(),
        " FROM budgets WHERE budget_id = $1"
    ))
    .bind(budget_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(decode).transpose()
}

pub(crate) async fn upsert_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    existing: Option<&str>,
    patch: &BudgetPatch,
    actor: &str,
) -> Result<String, StoreError> {
    match existing {
        Some(id) => {
            update_in(tx, id, patch, actor).await?;
            Ok(id.to_string())
        }
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            insert_in(tx, &patch.clone().into_new(id.clone(), actor.to_string())).await?;
            Ok(id)
        }
    }
}

pub(crate) fn decode(row: &AnyRow) -> Result<BudgetRow, StoreError> {
    Ok(BudgetRow {
        budget_id: row.try_get("budget_id")?,
        max_budget: row
            .try_get::<Option<i64>, _>("max_budget_nano")?
            .map(NanoUsd),
        soft_budget: row
            .try_get::<Option<i64>, _>("soft_budget_nano")?
            .map(NanoUsd),
        max_parallel_requests: row.try_get("max_parallel_requests")?,
        tpm_limit: row.try_get("tpm_limit")?,
        rpm_limit: row.try_get("rpm_limit")?,
        model_max_budget: optional_json_column(row, "model_max_budget")?,
        budget_duration: row.try_get("budget_duration")?,
        budget_reset_at: row.try_get("budget_reset_at")?,
        allowed_models: json_column(row, "allowed_models")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}
