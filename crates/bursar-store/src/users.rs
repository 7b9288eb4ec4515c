//! Internal users (`/user/*`): identity, role, budget and limits.

use crate::error::on_unique;
use crate::keys::json_column;
use crate::sql::SqlBuilder;
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

    /// Inserts a user alone (no key, no memberships).
    pub async fn insert(&self, user: &NewUser) -> Result<UserRow, StoreError> {
        self.create(user, None, &[], &[]).await
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

/// A team membership created with a user.
#[derive(Debug, Clone)]
pub struct UserTeam {
    pub team_id: String,
    pub role: String,
    pub budget: Option<crate::NewBudget>,
}

/// A partial update of a user; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub user_alias: Option<Option<String>>,
    pub user_email: Option<Option<String>>,
    pub user_role: Option<String>,
    pub sso_user_id: Option<Option<String>>,
    pub organization_id: Option<Option<String>>,
    pub max_budget: Option<Option<NanoUsd>>,
    pub soft_budget: Option<Option<NanoUsd>>,
    pub spend: Option<NanoUsd>,
    pub models: Option<Vec<String>>,
    pub metadata: Option<Value>,
    pub max_parallel_requests: Option<Option<i64>>,
    pub tpm_limit: Option<Option<i64>>,
    pub rpm_limit: Option<Option<i64>>,
    pub budget_duration: Option<Option<String>>,
    pub budget_reset_at: Option<Option<i64>>,
    pub model_max_budget: Option<Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UserSort {
    #[default]
    UserId,
    UserEmail,
    CreatedAt,
    Spend,
    UserAlias,
    UserRole,
}

impl UserSort {
    fn column(self) -> &'static str {
        match self {
            UserSort::UserId => "u.user_id",
            UserSort::UserEmail => "u.user_email",
            UserSort::CreatedAt => "u.created_at",
            UserSort::Spend => "u.spend_nano",
            UserSort::UserAlias => "u.user_alias",
            UserSort::UserRole => "u.user_role",
        }
    }
}

/// Filters and page of `/user/list`.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub role: Option<String>,
    pub user_ids: Vec<String>,
    pub sso_user_ids: Vec<String>,
    /// Case-insensitive substring of the email.
    pub email_contains: Option<String>,
    /// Case-insensitive substring of the user id.
    pub id_contains: Option<String>,
    /// Case-insensitive substring of the user id or the email.
    pub search: Option<String>,
    pub team_id: Option<String>,
    pub organization_ids: Vec<String>,
    pub sort: UserSort,
    pub descending: bool,
    pub page: u32,
    pub page_size: u32,
}

impl UserStore<'_> {
    /// Creates a user and, optionally, its first key and team memberships, in one transaction.
    pub async fn create(
        &self,
        user: &NewUser,
        key: Option<&crate::NewKey>,
        teams: &[UserTeam],
        orgs: &[(String, String)],
    ) -> Result<UserRow, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        insert_in(&mut tx, user).await?;
        for team in teams {
            if let Some(budget) = &team.budget {
                crate::budgets::insert_in(&mut tx, budget).await?;
            }
            sqlx::query("INSERT INTO team_members (team_id, user_id, role, budget_id, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&team.team_id)
                .bind(&user.user_id)
                .bind(&team.role)
                .bind(team.budget.as_ref().map(|b| b.budget_id.clone()))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(on_unique("team member"))?;
        }
        for (org_id, role) in orgs {
            crate::orgs::insert_member_in(&mut tx, org_id, &user.user_id, role, None).await?;
        }
        if let Some(key) = key {
            crate::keys::insert_in(&mut tx, key).await?;
        }
        tx.commit().await?;
        self.find(&user.user_id)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Finds a user by email, ignoring case.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE lower(user_email) = lower($1) ORDER BY user_id LIMIT 1"
        ))
        .bind(email)
        .fetch_optional(self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Team ids that do not exist, among `team_ids`.
    pub async fn missing_teams(&self, team_ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut missing = Vec::new();
        for id in team_ids {
            let found = sqlx::query("SELECT team_id FROM teams WHERE team_id = $1")
                .bind(id)
                .fetch_optional(self.pool)
                .await?;
            if found.is_none() {
                missing.push(id.clone());
            }
        }
        Ok(missing)
    }

    /// Team ids the user is a member of.
    pub async fn team_ids(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT team_id FROM team_members WHERE user_id = $1 ORDER BY team_id")
                .bind(user_id)
                .fetch_all(self.pool)
                .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("team_id").map_err(StoreError::from))
            .collect()
    }

    pub async fn update(
        &self,
        user_id: &str,
        patch: &UserPatch,
    ) -> Result<Option<UserRow>, StoreError> {
        let mut q = SqlBuilder::new("UPDATE users SET updated_at = ");
        q.bind(now_ms());
        let json = |v: &Value| v.to_string();
        let money = |v: &Option<NanoUsd>| v.map(|m| m.0);
        q.set_if("user_alias", patch.user_alias.clone())
            .set_if("user_email", patch.user_email.clone())
            .set_if("user_role", patch.user_role.clone())
            .set_if("sso_user_id", patch.sso_user_id.clone())
            .set_if("organization_id", patch.organization_id.clone())
            .set_if("max_budget_nano", patch.max_budget.as_ref().map(money))
            .set_if("soft_budget_nano", patch.soft_budget.as_ref().map(money))
            .set_if("spend_nano", patch.spend.map(|m| m.0))
            .set_if(
                "models",
                patch
                    .models
                    .as_ref()
                    .map(|v| Value::from(v.clone()).to_string()),
            )
            .set_if("metadata", patch.metadata.as_ref().map(json))
            .set_if("max_parallel_requests", patch.max_parallel_requests)
            .set_if("tpm_limit", patch.tpm_limit)
            .set_if("rpm_limit", patch.rpm_limit)
            .set_if("budget_duration", patch.budget_duration.clone())
            .set_if("budget_reset_at", patch.budget_reset_at)
            .set_if(
                "model_max_budget",
                patch.model_max_budget.as_ref().map(json),
            );
        q.push(" WHERE user_id = ").bind(user_id.to_string());
        let done = q
            .build()?
            .execute(self.pool)
            .await
            .map_err(on_unique("sso_user_id"))?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.find(user_id).await
    }

    /// Deletes users with their keys and memberships in one transaction; returns the tokens of
    /// the deleted keys (so callers can drop cached snapshots).
    pub async fn delete_with_keys(&self, user_ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut tokens = Vec::new();
        for user_id in user_ids {
            let rows = sqlx::query("SELECT token FROM keys WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
            for row in rows {
                tokens.push(row.try_get::<String, _>("token")?);
            }
            for sql in [
                "DELETE FROM deprecated_keys WHERE active_token IN (SELECT token FROM keys WHERE user_id = $1)",
                "DELETE FROM keys WHERE user_id = $1",
                "DELETE FROM budgets WHERE budget_id IN (SELECT budget_id FROM team_members WHERE user_id = $1)",
                "DELETE FROM budgets WHERE budget_id IN (SELECT budget_id FROM org_members WHERE user_id = $1)",
                "DELETE FROM team_members WHERE user_id = $1",
                "DELETE FROM org_members WHERE user_id = $1",
                "DELETE FROM users WHERE user_id = $1",
            ] {
                sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(tokens)
    }

    /// One page of users with their key counts, and the total for the same filters.
    pub async fn list(&self, query: &UserQuery) -> Result<(Vec<(UserRow, i64)>, u64), StoreError> {
        fn filters(q: &mut SqlBuilder, query: &UserQuery) {
            q.push(" WHERE 1 = 1");
            if let Some(role) = &query.role {
                q.push(" AND u.user_role = ").bind(role.clone());
            }
            if !query.user_ids.is_empty() {
                q.push(" AND u.user_id IN (")
                    .bind_list(query.user_ids.iter().cloned())
                    .push(")");
            }
            if !query.sso_user_ids.is_empty() {
                q.push(" AND u.sso_user_id IN (")
                    .bind_list(query.sso_user_ids.iter().cloned())
                    .push(")");
            }
            if let Some(email) = &query.email_contains {
                q.push(" AND lower(u.user_email) LIKE ")
                    .bind(format!("%{}%", escape_like(&email.to_lowercase())))
                    .push(" ESCAPE '\\'");
            }
            if let Some(id) = &query.id_contains {
                q.push(" AND lower(u.user_id) LIKE ")
                    .bind(format!("%{}%", escape_like(&id.to_lowercase())))
                    .push(" ESCAPE '\\'");
            }
            if let Some(text) = &query.search {
                let pattern = format!("%{}%", escape_like(&text.to_lowercase()));
                q.push(" AND (lower(u.user_id) LIKE ")
                    .bind(pattern.clone())
                    .push(" ESCAPE '\\' OR lower(u.user_email) LIKE ")
                    .bind(pattern)
                    .push(" ESCAPE '\\')");
            }
            if let Some(team) = &query.team_id {
                q.push(" AND EXISTS (SELECT 1 FROM team_members tm WHERE tm.user_id = u.user_id AND tm.team_id = ")
                    .bind(team.clone())
                    .push(")");
            }
            if !query.organization_ids.is_empty() {
                q.push(" AND (u.organization_id IN (")
                    .bind_list(query.organization_ids.iter().cloned())
                    .push(") OR EXISTS (SELECT 1 FROM org_members om WHERE om.user_id = u.user_id AND om.organization_id IN (")
                    .bind_list(query.organization_ids.iter().cloned())
                    .push(")))");
            }
        }
        let mut count = SqlBuilder::new("SELECT COUNT(*) AS n FROM users u");
        filters(&mut count, query);
        let total: i64 = count.build()?.fetch_one(self.pool).await?.try_get("n")?;

        let mut q = SqlBuilder::new(concat!(
            "SELECT ",
            user_columns!(),
            ", (SELECT COUNT(*) FROM keys k WHERE k.user_id = u.user_id) AS key_count FROM users u"
        ));
        filters(&mut q, query);
        let direction = if query.descending { " DESC" } else { " ASC" };
        q.push(" ORDER BY ")
            .push(query.sort.column())
            .push(direction)
            .push(", u.user_id")
            .push(direction);
        let size = query.page_size.max(1);
        q.push(" LIMIT ").bind(i64::from(size));
        q.push(" OFFSET ")
            .bind(i64::from(query.page.max(1) - 1) * i64::from(size));
        let rows = q.build()?.fetch_all(self.pool).await?;
        let users = rows
            .iter()
            .map(|r| Ok((decode(r)?, r.try_get::<i64, _>("key_count")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((users, u64::try_from(total).unwrap_or(0)))
    }
}

/// The user insert, as a literal both statements below are built from.
macro_rules! insert_user_sql {
    () => {
        "INSERT INTO users (user_id, user_alias, user_email, user_role, sso_user_id, organization_id, \
         max_budget_nano, soft_budget_nano, models, metadata, max_parallel_requests, tpm_limit, rpm_limit, \
         budget_duration, budget_reset_at, model_max_budget, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    };
}

/// Inserts a user inside a caller's transaction.
pub(crate) async fn insert_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user: &NewUser,
) -> Result<(), StoreError> {
    insert_with(tx, user, insert_user_sql!()).await
}

/// Inserts a user unless one with its `user_id` exists (created meanwhile by a concurrent
/// request naming the same new member): creating missing users is idempotent.
pub(crate) async fn insert_missing_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user: &NewUser,
) -> Result<(), StoreError> {
    insert_with(
        tx,
        user,
        concat!(insert_user_sql!(), " ON CONFLICT (user_id) DO NOTHING"),
    )
    .await
}

async fn insert_with(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user: &NewUser,
    sql: &'static str,
) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(sql)
        .bind(&user.user_id)
        .bind(&user.user_alias)
        .bind(&user.user_email)
        .bind(&user.user_role)
        .bind(&user.sso_user_id)
        .bind(&user.organization_id)
        .bind(user.max_budget.map(|m| m.0))
        .bind(user.soft_budget.map(|m| m.0))
        .bind(Value::from(user.models.clone()).to_string())
        .bind(
            user.metadata
                .as_ref()
                .map_or_else(|| "{}".to_string(), Value::to_string),
        )
        .bind(user.max_parallel_requests)
        .bind(user.tpm_limit)
        .bind(user.rpm_limit)
        .bind(&user.budget_duration)
        .bind(user.budget_reset_at)
        .bind(
            user.model_max_budget
                .as_ref()
                .map_or_else(|| "{}".to_string(), Value::to_string),
        )
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(on_unique("user"))?;
    Ok(())
}

pub(crate) fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
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
