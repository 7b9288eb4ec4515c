//! Organizations and organization membership. Every organization has a budget row (its budget
//! and limits); membership lives only in `org_members`.

use crate::budgets::{BudgetPatch, NewBudget};
use crate::error::on_unique;
use crate::keys::{json_column, optional_json_column};
use crate::sql::SqlBuilder;
use crate::users::NewUser;
use crate::{StoreError, now_ms};
use bursar_core::NanoUsd;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, PartialEq)]
pub struct OrgRow {
    pub organization_id: String,
    pub organization_alias: String,
    pub budget_id: Option<String>,
    pub models: Vec<String>,
    pub metadata: Value,
    pub spend: NanoUsd,
    pub model_spend: Value,
    pub blocked: bool,
    pub object_permission: Option<Value>,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    pub updated_by: String,
}

/// Settable organization columns; `None` leaves a column alone.
#[derive(Debug, Clone, Default)]
pub struct OrgPatch {
    pub organization_alias: Option<String>,
    pub budget_id: Option<String>,
    pub models: Option<Vec<String>>,
    pub metadata: Option<Value>,
    pub blocked: Option<bool>,
    pub object_permission: Option<Option<Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrgMemberRow {
    pub organization_id: String,
    pub user_id: String,
    pub user_email: Option<String>,
    pub user_role: Option<String>,
    pub budget_id: Option<String>,
    pub spend: NanoUsd,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A member to add: an existing user, or one created in the same transaction.
#[derive(Debug, Clone)]
pub struct NewOrgMember {
    pub user_id: String,
    pub role: String,
    pub budget: Option<NewBudget>,
    pub create_user: Option<NewUser>,
}

macro_rules! org_columns {
    () => {
        "organization_id, organization_alias, budget_id, models, metadata, spend_nano, model_spend, \
         blocked, object_permission, created_at, created_by, updated_at, updated_by"
    };
}

macro_rules! member_select {
    () => {
        "SELECT om.organization_id, om.user_id, u.user_email, om.user_role, om.budget_id, om.spend_nano, \
         om.created_at, om.updated_at FROM org_members om LEFT JOIN users u ON u.user_id = om.user_id"
    };
}

pub struct OrgStore<'a> {
    pool: &'a AnyPool,
}

impl<'a> OrgStore<'a> {
    pub(crate) fn new(pool: &'a AnyPool) -> Self {
        OrgStore { pool }
    }

    pub async fn find(&self, organization_id: &str) -> Result<Option<OrgRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            org_columns!(),
            " FROM organizations WHERE organization_id = $1"
        ))
        .bind(organization_id)
        .fetch_optional(self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Creates an organization and, when given, its new budget row, in one transaction.
    pub async fn create(
        &self,
        organization_id: &str,
        org: &OrgPatch,
        budget: Option<&NewBudget>,
        actor: &str,
    ) -> Result<OrgRow, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(budget) = budget {
            crate::budgets::insert_in(&mut tx, budget).await?;
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO organizations (organization_id, organization_alias, budget_id, models, metadata, \
             blocked, object_permission, created_at, created_by, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(organization_id)
        .bind(org.organization_alias.clone().unwrap_or_default())
        .bind(
            budget
                .map(|b| b.budget_id.clone())
                .or_else(|| org.budget_id.clone()),
        )
        .bind(Value::from(org.models.clone().unwrap_or_default()).to_string())
        .bind(
            org.metadata
                .as_ref()
                .map_or_else(|| "{}".to_string(), Value::to_string),
        )
        .bind(i64::from(org.blocked.unwrap_or(false)))
        .bind(
            org.object_permission
                .clone()
                .flatten()
                .as_ref()
                .map(Value::to_string),
        )
        .bind(now)
        .bind(actor)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await
        .map_err(on_unique("organization"))?;
        tx.commit().await?;
        self.find(organization_id)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Updates the organization row and its budget row in one transaction (a missing budget
    /// row is created).
    pub async fn update(
        &self,
        organization_id: &str,
        patch: &OrgPatch,
        budget: &BudgetPatch,
        actor: &str,
    ) -> Result<Option<OrgRow>, StoreError> {
        let Some(existing) = self.find(organization_id).await? else {
            return Ok(None);
        };
        let mut tx = self.pool.begin().await?;
        let mut budget_id = patch.budget_id.clone();
        if !budget.is_empty() {
            let target = budget_id.clone().or(existing.budget_id.clone());
            budget_id =
                Some(crate::budgets::upsert_in(&mut tx, target.as_deref(), budget, actor).await?);
        }
        let mut q = SqlBuilder::new("UPDATE organizations SET updated_at = ");
        q.bind(now_ms());
        q.push(", updated_by = ").bind(actor.to_string());
        q.set_if("organization_alias", patch.organization_alias.clone())
            .set_if("budget_id", budget_id)
            .set_if(
                "models",
                patch
                    .models
                    .as_ref()
                    .map(|m| Value::from(m.clone()).to_string()),
            )
            .set_if("metadata", patch.metadata.as_ref().map(Value::to_string))
            .set_if("blocked", patch.blocked.map(i64::from))
            .set_if(
                "object_permission",
                patch
                    .object_permission
                    .as_ref()
                    .map(|o| o.as_ref().map(Value::to_string)),
            );
        q.push(" WHERE organization_id = ")
            .bind(organization_id.to_string());
        q.build()?.execute(&mut *tx).await?;
        tx.commit().await?;
        self.find(organization_id).await
    }

    /// Deletes organizations with their teams (archived like `/team/delete`), keys,
    /// memberships and budget rows, in one transaction. `team_archive` holds the API object
    /// of every team of these organizations. Returns the deleted keys' tokens.
    pub async fn delete(
        &self,
        organization_ids: &[String],
        team_archive: &[(String, Value)],
        deleted_by: &str,
        deleted_by_api_key: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut tokens =
            crate::teams::delete_in(&mut tx, team_archive, deleted_by, deleted_by_api_key).await?;
        for org in organization_ids {
            let remaining =
                sqlx::query("SELECT COUNT(*) AS n FROM teams WHERE organization_id = $1")
                    .bind(org)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get::<i64, _>("n")?;
            if remaining > 0 {
                // A team was added after the caller read the list: refuse rather than orphan it.
                return Err(StoreError::Conflict {
                    what: "organization team",
                });
            }
            let rows = sqlx::query("SELECT token FROM keys WHERE organization_id = $1")
                .bind(org)
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                tokens.push(row.try_get::<String, _>("token")?);
            }
            for sql in [
                "DELETE FROM deprecated_keys WHERE active_token IN (SELECT token FROM keys WHERE organization_id = $1)",
                "DELETE FROM keys WHERE organization_id = $1",
                "DELETE FROM budgets WHERE budget_id IN (SELECT budget_id FROM org_members WHERE organization_id = $1)",
                "DELETE FROM org_members WHERE organization_id = $1",
                "UPDATE users SET organization_id = NULL WHERE organization_id = $1",
            ] {
                sqlx::query(sql).bind(org).execute(&mut *tx).await?;
            }
            let budget =
                sqlx::query("SELECT budget_id FROM organizations WHERE organization_id = $1")
                    .bind(org)
                    .fetch_optional(&mut *tx)
                    .await?;
            sqlx::query("DELETE FROM organizations WHERE organization_id = $1")
                .bind(org)
                .execute(&mut *tx)
                .await?;
            if let Some(budget) = budget
                && let Some(id) = budget.try_get::<Option<String>, _>("budget_id")?
            {
                // Shared budget rows stay while anything else still refers to them.
                sqlx::query(
                    "DELETE FROM budgets WHERE budget_id = $1 \
                     AND NOT EXISTS (SELECT 1 FROM organizations WHERE budget_id = $1) \
                     AND NOT EXISTS (SELECT 1 FROM keys WHERE budget_id = $1) \
                     AND NOT EXISTS (SELECT 1 FROM end_users WHERE budget_id = $1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(tokens)
    }

    /// Every organization, or only those listed in `only`, by creation time.
    pub async fn list(
        &self,
        only: Option<&[String]>,
        org_id: Option<&str>,
        alias_contains: Option<&str>,
    ) -> Result<Vec<OrgRow>, StoreError> {
        let mut q = SqlBuilder::new(concat!(
            "SELECT ",
            org_columns!(),
            " FROM organizations WHERE 1 = 1"
        ));
        if let Some(ids) = only {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            q.push(" AND organization_id IN (")
                .bind_list(ids.iter().cloned())
                .push(")");
        }
        if let Some(id) = org_id {
            q.push(" AND organization_id = ").bind(id.to_string());
        }
        if let Some(alias) = alias_contains {
            q.push(" AND lower(organization_alias) LIKE ")
                .bind(format!(
                    "%{}%",
                    crate::users::escape_like(&alias.to_lowercase())
                ))
                .push(" ESCAPE '\\'");
        }
        q.push(" ORDER BY created_at, organization_id");
        let rows = q.build()?.fetch_all(self.pool).await?;
        rows.iter().map(decode).collect()
    }

    pub async fn members(&self, organization_id: &str) -> Result<Vec<OrgMemberRow>, StoreError> {
        let rows = sqlx::query(concat!(
            member_select!(),
            " WHERE om.organization_id = $1 ORDER BY om.created_at, om.user_id"
        ))
        .bind(organization_id)
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(decode_member).collect()
    }

    pub async fn member(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<OrgMemberRow>, StoreError> {
        let row = sqlx::query(concat!(
            member_select!(),
            " WHERE om.organization_id = $1 AND om.user_id = $2"
        ))
        .bind(organization_id)
        .bind(user_id)
        .fetch_optional(self.pool)
        .await?;
        row.as_ref().map(decode_member).transpose()
    }

    /// Every organization membership of a user.
    pub async fn memberships_of(&self, user_id: &str) -> Result<Vec<OrgMemberRow>, StoreError> {
        let rows = sqlx::query(concat!(
            member_select!(),
            " WHERE om.user_id = $1 ORDER BY om.organization_id"
        ))
        .bind(user_id)
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(decode_member).collect()
    }

    /// Adds members (creating missing users and budgets) in one transaction; an existing
    /// membership is a [`StoreError::Conflict`] and nothing is written.
    pub async fn add_members(
        &self,
        organization_id: &str,
        members: &[NewOrgMember],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for member in members {
            if let Some(user) = &member.create_user {
                crate::users::insert_in(&mut tx, user).await?;
            }
            if let Some(budget) = &member.budget {
                crate::budgets::insert_in(&mut tx, budget).await?;
            }
            insert_member_in(
                &mut tx,
                organization_id,
                &member.user_id,
                &member.role,
                member.budget.as_ref().map(|b| b.budget_id.as_str()),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Changes a member's role and/or budget in one transaction.
    pub async fn update_member(
        &self,
        organization_id: &str,
        user_id: &str,
        role: Option<&str>,
        budget: &BudgetPatch,
        actor: &str,
    ) -> Result<Option<OrgMemberRow>, StoreError> {
        let Some(existing) = self.member(organization_id, user_id).await? else {
            return Ok(None);
        };
        let mut tx = self.pool.begin().await?;
        let mut q = SqlBuilder::new("UPDATE org_members SET updated_at = ");
        q.bind(now_ms());
        if !budget.is_empty() {
            let id =
                crate::budgets::upsert_in(&mut tx, existing.budget_id.as_deref(), budget, actor)
                    .await?;
            q.set_if("budget_id", Some(id));
        }
        q.set_if("user_role", role.map(str::to_string));
        q.push(" WHERE organization_id = ")
            .bind(organization_id.to_string())
            .push(" AND user_id = ")
            .bind(user_id.to_string());
        q.build()?.execute(&mut *tx).await?;
        tx.commit().await?;
        self.member(organization_id, user_id).await
    }

    /// Removes a membership and its budget row; returns whether it existed.
    pub async fn remove_member(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM budgets WHERE budget_id IN (SELECT budget_id FROM org_members WHERE organization_id = $1 AND user_id = $2)",
        )
        .bind(organization_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let done =
            sqlx::query("DELETE FROM org_members WHERE organization_id = $1 AND user_id = $2")
                .bind(organization_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

pub(crate) async fn insert_member_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    organization_id: &str,
    user_id: &str,
    role: &str,
    budget_id: Option<&str>,
) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO org_members (organization_id, user_id, user_role, budget_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(organization_id)
    .bind(user_id)
    .bind(role)
    .bind(budget_id)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(on_unique("organization member"))?;
    Ok(())
}

fn decode_member(row: &AnyRow) -> Result<OrgMemberRow, StoreError> {
    Ok(OrgMemberRow {
        organization_id: row.try_get("organization_id")?,
        user_id: row.try_get("user_id")?,
        user_email: row.try_get("user_email")?,
        user_role: row.try_get("user_role")?,
        budget_id: row.try_get("budget_id")?,
        spend: NanoUsd(row.try_get("spend_nano")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn decode(row: &AnyRow) -> Result<OrgRow, StoreError> {
    Ok(OrgRow {
        organization_id: row.try_get("organization_id")?,
        organization_alias: row.try_get("organization_alias")?,
        budget_id: row.try_get("budget_id")?,
        models: json_column(row, "models")?,
        metadata: json_column(row, "metadata")?,
        spend: NanoUsd(row.try_get("spend_nano")?),
        model_spend: json_column(row, "model_spend")?,
        blocked: row.try_get::<i64, _>("blocked")? != 0,
        object_permission: optional_json_column(row, "object_permission")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}
