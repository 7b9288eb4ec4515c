//! Teams and team membership. Membership lives only in `team_members`: a team's members, a
//! user's teams and the membership budgets are all read from it, so no view can drift.

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
pub struct TeamRow {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub organization_id: Option<String>,
    pub metadata: Value,
    pub max_budget: Option<NanoUsd>,
    pub soft_budget: Option<NanoUsd>,
    pub spend: NanoUsd,
    pub models: Vec<String>,
    pub max_parallel_requests: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub blocked: bool,
    pub model_max_budget: Value,
    pub model_spend: Value,
    pub model_aliases: Value,
    pub team_member_permissions: Vec<String>,
    pub object_permission: Option<Value>,
    pub router_settings: Value,
    pub access_group_ids: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Every settable team column; `None` leaves a column alone (updates) or takes its default
/// (creation). `Some(None)` clears a nullable column.
#[derive(Debug, Clone, Default)]
pub struct TeamPatch {
    pub team_alias: Option<Option<String>>,
    pub organization_id: Option<Option<String>>,
    pub metadata: Option<Value>,
    pub max_budget: Option<Option<NanoUsd>>,
    pub soft_budget: Option<Option<NanoUsd>>,
    pub models: Option<Vec<String>>,
    pub max_parallel_requests: Option<Option<i64>>,
    pub tpm_limit: Option<Option<i64>>,
    pub rpm_limit: Option<Option<i64>>,
    pub budget_duration: Option<Option<String>>,
    pub budget_reset_at: Option<Option<i64>>,
    pub blocked: Option<bool>,
    pub model_max_budget: Option<Value>,
    pub model_aliases: Option<Value>,
    pub team_member_permissions: Option<Vec<String>>,
    pub object_permission: Option<Option<Value>>,
    pub router_settings: Option<Value>,
    pub access_group_ids: Option<Vec<String>>,
}

/// A member to add: an existing user, or one created in the same transaction.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub user_id: String,
    pub role: String,
    /// The member's budget inside the team (`max_budget_in_team`, member limits).
    pub budget: Option<NewBudget>,
    /// Set when the user does not exist yet.
    pub create_user: Option<NewUser>,
}

/// One row of `team_members`, with the member's email.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamMemberRow {
    pub team_id: String,
    pub user_id: String,
    pub user_email: Option<String>,
    pub role: String,
    pub budget_id: Option<String>,
    pub spend: NanoUsd,
    pub total_spend: NanoUsd,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TeamSort {
    #[default]
    CreatedAt,
    TeamId,
    TeamAlias,
    Spend,
    MaxBudget,
}

impl TeamSort {
    fn column(self) -> &'static str {
        match self {
            TeamSort::CreatedAt => "created_at",
            TeamSort::TeamId => "team_id",
            TeamSort::TeamAlias => "team_alias",
            TeamSort::Spend => "spend_nano",
            TeamSort::MaxBudget => "max_budget_nano",
        }
    }
}

/// Which organization a team list is restricted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgFilter {
    Id(String),
    /// Teams without an organization (`default_organization`).
    None,
}

/// Filters and page of the team lists.
#[derive(Debug, Clone, Default)]
pub struct TeamQuery {
    /// Teams this user is a member of.
    pub member: Option<String>,
    pub organization: Option<OrgFilter>,
    pub team_id: Option<String>,
    /// Case-insensitive substring of the alias.
    pub alias_contains: Option<String>,
    /// Non-admin visibility: teams the user is a member of, or teams of these organizations.
    pub visible_to: Option<(String, Vec<String>)>,
    pub sort: TeamSort,
    pub descending: bool,
    pub page: u32,
    /// 0 = every row.
    pub size: u32,
}

/// A team archived by `/team/delete`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedTeamRow {
    pub team_id: String,
    pub data: Value,
    pub deleted_at: i64,
    pub deleted_by: Option<String>,
}

macro_rules! team_columns {
    () => {
        "team_id, team_alias, organization_id, metadata, max_budget_nano, soft_budget_nano, spend_nano, \
         models, max_parallel_requests, tpm_limit, rpm_limit, budget_duration, budget_reset_at, blocked, \
         model_max_budget, model_spend, model_aliases, team_member_permissions, object_permission, \
         router_settings, access_group_ids, created_at, updated_at"
    };
}

/// A membership row with the member's email; callers append the `WHERE` clause.
macro_rules! member_select {
    () => {
        "SELECT tm.team_id, tm.user_id, u.user_email, tm.role, tm.budget_id, tm.spend_nano, \
         tm.total_spend_nano, tm.created_at FROM team_members tm \
         LEFT JOIN users u ON u.user_id = tm.user_id"
    };
}

pub struct TeamStore<'a> {
    pool: &'a AnyPool,
}

fn json(v: &Value) -> String {
    v.to_string()
}

fn list_json(v: &[String]) -> String {
    Value::from(v.to_vec()).to_string()
}

impl<'a> TeamStore<'a> {
    pub(crate) fn new(pool: &'a AnyPool) -> Self {
        TeamStore { pool }
    }

    pub async fn find(&self, team_id: &str) -> Result<Option<TeamRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            team_columns!(),
            " FROM teams WHERE team_id = $1"
        ))
        .bind(team_id)
        .fetch_optional(self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Creates a team with its members (creating missing users and member budgets) and
    /// optional extra budget rows (e.g. the team-member budget template) in one transaction.
    pub async fn create(
        &self,
        team_id: &str,
        team: &TeamPatch,
        members: &[NewMember],
        budgets: &[NewBudget],
    ) -> Result<TeamRow, StoreError> {
        let mut tx = self.pool.begin().await?;
        let written = create_in(&mut tx, team_id, team, members, budgets).await;
        crate::sql::finish(tx, written).await?;
        self.find(team_id)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    pub async fn update(
        &self,
        team_id: &str,
        patch: &TeamPatch,
    ) -> Result<Option<TeamRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let found = update_in(&mut tx, team_id, patch).await?;
        tx.commit().await?;
        if !found {
            return Ok(None);
        }
        self.find(team_id).await
    }

    /// Updates a team and, when given, its shared member budget (the row named by
    /// `metadata.team_member_budget_id`, created if missing) in one transaction.
    pub async fn update_with_member_budget(
        &self,
        team_id: &str,
        patch: &mut TeamPatch,
        member_budget: Option<&BudgetPatch>,
        actor: &str,
    ) -> Result<Option<TeamRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(budget) = member_budget {
            let row = sqlx::query("SELECT metadata FROM teams WHERE team_id = $1")
                .bind(team_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let stored: Value = json_column(&row, "metadata")?;
            let existing = stored
                .get(MEMBER_BUDGET_KEY)
                .and_then(Value::as_str)
                .map(str::to_string);
            let id = crate::budgets::upsert_in(&mut tx, existing.as_deref(), budget, actor).await?;
            let mut metadata = patch
                .metadata
                .clone()
                .unwrap_or(stored)
                .as_object()
                .cloned()
                .unwrap_or_default();
            metadata.insert(MEMBER_BUDGET_KEY.into(), Value::String(id));
            patch.metadata = Some(Value::Object(metadata));
        }
        let found = update_in(&mut tx, team_id, patch).await?;
        tx.commit().await?;
        if !found {
            return Ok(None);
        }
        self.find(team_id).await
    }
}

/// The metadata key naming a team's shared member-budget row (LiteLLM's convention).
pub const MEMBER_BUDGET_KEY: &str = "team_member_budget_id";

async fn update_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    team_id: &str,
    patch: &TeamPatch,
) -> Result<bool, StoreError> {
    {
        let mut q = SqlBuilder::new("UPDATE teams SET updated_at = ");
        q.bind(now_ms());
        let money = |v: &Option<NanoUsd>| v.map(|m| m.0);
        q.set_if("team_alias", patch.team_alias.clone())
            .set_if("organization_id", patch.organization_id.clone())
            .set_if("metadata", patch.metadata.as_ref().map(json))
            .set_if("max_budget_nano", patch.max_budget.as_ref().map(money))
            .set_if("soft_budget_nano", patch.soft_budget.as_ref().map(money))
            .set_if("models", patch.models.as_deref().map(list_json))
            .set_if("max_parallel_requests", patch.max_parallel_requests)
            .set_if("tpm_limit", patch.tpm_limit)
            .set_if("rpm_limit", patch.rpm_limit)
            .set_if("budget_duration", patch.budget_duration.clone())
            .set_if("budget_reset_at", patch.budget_reset_at)
            .set_if("blocked", patch.blocked.map(i64::from))
            .set_if(
                "model_max_budget",
                patch.model_max_budget.as_ref().map(json),
            )
            .set_if("model_aliases", patch.model_aliases.as_ref().map(json))
            .set_if(
                "team_member_permissions",
                patch.team_member_permissions.as_deref().map(list_json),
            )
            .set_if(
                "object_permission",
                patch
                    .object_permission
                    .as_ref()
                    .map(|o| o.as_ref().map(json)),
            )
            .set_if("router_settings", patch.router_settings.as_ref().map(json))
            .set_if(
                "access_group_ids",
                patch.access_group_ids.as_deref().map(list_json),
            );
        q.push(" WHERE team_id = ").bind(team_id.to_string());
        let done = q.build()?.execute(&mut **tx).await?;
        Ok(done.rows_affected() > 0)
    }
}

impl TeamStore<'_> {
    /// Deletes teams with their keys, memberships and membership budgets in one transaction,
    /// archiving each team (`archive` = its API object). Returns the deleted keys' tokens.
    pub async fn delete(
        &self,
        archive: &[(String, Value)],
        deleted_by: &str,
        deleted_by_api_key: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let tokens = delete_in(&mut tx, archive, deleted_by, deleted_by_api_key).await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// One page of teams (every team when `size` is 0) and the total for the same filters.
    pub async fn list(&self, query: &TeamQuery) -> Result<(Vec<TeamRow>, u64), StoreError> {
        fn filters(q: &mut SqlBuilder, query: &TeamQuery) {
            q.push(" WHERE 1 = 1");
            if let Some(user) = &query.member {
                q.push(" AND team_id IN (SELECT team_id FROM team_members WHERE user_id = ")
                    .bind(user.clone())
                    .push(")");
            }
            match &query.organization {
                Some(OrgFilter::Id(org)) => {
                    q.push(" AND organization_id = ").bind(org.clone());
                }
                Some(OrgFilter::None) => {
                    q.push(" AND organization_id IS NULL");
                }
                None => {}
            }
            if let Some(id) = &query.team_id {
                q.push(" AND team_id = ").bind(id.clone());
            }
            if let Some(alias) = &query.alias_contains {
                q.push(" AND lower(team_alias) LIKE ")
                    .bind(format!(
                        "%{}%",
                        crate::users::escape_like(&alias.to_lowercase())
                    ))
                    .push(" ESCAPE '\\'");
            }
            if let Some((user, orgs)) = &query.visible_to {
                q.push(" AND (team_id IN (SELECT team_id FROM team_members WHERE user_id = ")
                    .bind(user.clone())
                    .push(")");
                if !orgs.is_empty() {
                    q.push(" OR organization_id IN (")
                        .bind_list(orgs.iter().cloned())
                        .push(")");
                }
                q.push(")");
            }
        }
        let mut count = SqlBuilder::new("SELECT COUNT(*) AS n FROM teams");
        filters(&mut count, query);
        let total: i64 = count.build()?.fetch_one(self.pool).await?.try_get("n")?;

        let mut q = SqlBuilder::new(concat!("SELECT ", team_columns!(), " FROM teams"));
        filters(&mut q, query);
        let direction = if query.descending { " DESC" } else { " ASC" };
        q.push(" ORDER BY ")
            .push(query.sort.column())
            .push(direction)
            .push(", team_id")
            .push(direction);
        if query.size > 0 {
            q.push(" LIMIT ").bind(i64::from(query.size));
            q.push(" OFFSET ")
                .bind(i64::from(query.page.max(1) - 1) * i64::from(query.size));
        }
        let rows = q.build()?.fetch_all(self.pool).await?;
        let teams = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        Ok((teams, u64::try_from(total).unwrap_or(0)))
    }

    /// One page of archived teams, newest first, and their total.
    pub async fn list_deleted(
        &self,
        query: &TeamQuery,
    ) -> Result<(Vec<DeletedTeamRow>, u64), StoreError> {
        fn filters(q: &mut SqlBuilder, query: &TeamQuery) {
            q.push(" WHERE 1 = 1");
            if let Some(Some(org)) = query.organization.as_ref().map(|o| match o {
                OrgFilter::Id(id) => Some(id.clone()),
                OrgFilter::None => None,
            }) {
                q.push(" AND organization_id = ").bind(org);
            }
            if let Some(id) = &query.team_id {
                q.push(" AND team_id = ").bind(id.clone());
            }
            if let Some(alias) = &query.alias_contains {
                q.push(" AND lower(team_alias) LIKE ")
                    .bind(format!(
                        "%{}%",
                        crate::users::escape_like(&alias.to_lowercase())
                    ))
                    .push(" ESCAPE '\\'");
            }
        }
        let mut count = SqlBuilder::new("SELECT COUNT(*) AS n FROM deleted_teams");
        filters(&mut count, query);
        let total: i64 = count.build()?.fetch_one(self.pool).await?.try_get("n")?;
        let mut q =
            SqlBuilder::new("SELECT team_id, data, deleted_at, deleted_by FROM deleted_teams");
        filters(&mut q, query);
        q.push(" ORDER BY deleted_at DESC, id DESC");
        if query.size > 0 {
            q.push(" LIMIT ").bind(i64::from(query.size));
            q.push(" OFFSET ")
                .bind(i64::from(query.page.max(1) - 1) * i64::from(query.size));
        }
        let rows = q.build()?.fetch_all(self.pool).await?;
        let teams = rows
            .iter()
            .map(|r| {
                Ok(DeletedTeamRow {
                    team_id: r.try_get("team_id")?,
                    data: json_column(r, "data")?,
                    deleted_at: r.try_get("deleted_at")?,
                    deleted_by: r.try_get("deleted_by")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((teams, u64::try_from(total).unwrap_or(0)))
    }

    /// The team's members, oldest first.
    pub async fn members(&self, team_id: &str) -> Result<Vec<TeamMemberRow>, StoreError> {
        let rows = sqlx::query(concat!(
            member_select!(),
            " WHERE tm.team_id = $1 ORDER BY tm.created_at, tm.user_id"
        ))
        .bind(team_id)
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(decode_member).collect()
    }

    pub async fn member(
        &self,
        team_id: &str,
        user_id: &str,
    ) -> Result<Option<TeamMemberRow>, StoreError> {
        let row = sqlx::query(concat!(
            member_select!(),
            " WHERE tm.team_id = $1 AND tm.user_id = $2"
        ))
        .bind(team_id)
        .bind(user_id)
        .fetch_optional(self.pool)
        .await?;
        row.as_ref().map(decode_member).transpose()
    }

    /// Every membership of a user: `(team_id, role)`.
    pub async fn memberships_of(&self, user_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT team_id, role FROM team_members WHERE user_id = $1 ORDER BY team_id",
        )
        .bind(user_id)
        .fetch_all(self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("team_id")?, r.try_get("role")?)))
            .collect()
    }

    /// Adds members (creating missing users and member budgets) in one transaction; an
    /// existing membership is a [`StoreError::Conflict`] and nothing is written.
    pub async fn add_members(
        &self,
        team_id: &str,
        members: &[NewMember],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        add_members_in(&mut tx, team_id, members).await?;
        sqlx::query("UPDATE teams SET updated_at = $1 WHERE team_id = $2")
            .bind(now_ms())
            .bind(team_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes members with their membership budgets and their keys of this team, in one
    /// transaction. Returns the deleted keys' tokens.
    pub async fn remove_members(
        &self,
        team_id: &str,
        user_ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut tokens = Vec::new();
        for user_id in user_ids {
            let rows = sqlx::query("SELECT token FROM keys WHERE team_id = $1 AND user_id = $2")
                .bind(team_id)
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                tokens.push(row.try_get::<String, _>("token")?);
            }
            for sql in [
                "DELETE FROM deprecated_keys WHERE active_token IN (SELECT token FROM keys WHERE team_id = $1 AND user_id = $2)",
                "DELETE FROM keys WHERE team_id = $1 AND user_id = $2",
                "DELETE FROM budgets WHERE budget_id IN (SELECT budget_id FROM team_members WHERE team_id = $1 AND user_id = $2)",
                "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2",
            ] {
                sqlx::query(sql)
                    .bind(team_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("UPDATE teams SET updated_at = $1 WHERE team_id = $2")
            .bind(now_ms())
            .bind(team_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Sets a member's spend to `to` if it is still `expected` (so a spend settled since it was
    /// read is never lost); the lifetime total keeps at least the old spend. `false` when the
    /// spend changed meanwhile or the member is gone.
    pub async fn reset_member_spend(
        &self,
        team_id: &str,
        user_id: &str,
        expected: NanoUsd,
        to: NanoUsd,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE team_members SET total_spend_nano = CASE WHEN total_spend_nano < spend_nano \
             THEN spend_nano ELSE total_spend_nano END, spend_nano = $1 \
             WHERE team_id = $2 AND user_id = $3 AND spend_nano = $4",
        )
        .bind(to.0)
        .bind(team_id)
        .bind(user_id)
        .bind(expected.0)
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Points a member's membership at `budget_id` (or at none); `false` when not a member.
    pub async fn set_member_budget(
        &self,
        team_id: &str,
        user_id: &str,
        budget_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE team_members SET budget_id = $1 WHERE team_id = $2 AND user_id = $3",
        )
        .bind(budget_id)
        .bind(team_id)
        .bind(user_id)
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Changes a member's role and/or membership budget in one transaction.
    pub async fn update_member(
        &self,
        team_id: &str,
        user_id: &str,
        role: Option<&str>,
        budget: &BudgetPatch,
        actor: &str,
    ) -> Result<Option<TeamMemberRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let existing =
            sqlx::query("SELECT budget_id FROM team_members WHERE team_id = $1 AND user_id = $2")
                .bind(team_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(existing) = existing else {
            return Ok(None);
        };
        let budget_id: Option<String> = existing.try_get("budget_id")?;
        if !budget.is_empty() {
            // A budget row other members (or the team's member default) share is copied,
            // never changed for them all.
            let shared = match &budget_id {
                Some(id) => {
                    let others = sqlx::query(
                        "SELECT COUNT(*) AS n FROM team_members WHERE budget_id = $1 AND NOT (team_id = $2 AND user_id = $3)",
                    )
                    .bind(id)
                    .bind(team_id)
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get::<i64, _>("n")?;
                    let team = sqlx::query("SELECT metadata FROM teams WHERE team_id = $1")
                        .bind(team_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let default = team
                        .map(|t| t.try_get::<String, _>("metadata"))
                        .transpose()?
                        .and_then(|m| serde_json::from_str::<Value>(&m).ok())
                        .and_then(|m| m.get(MEMBER_BUDGET_KEY)?.as_str().map(str::to_string));
                    others > 0 || default.as_deref() == Some(id.as_str())
                }
                None => false,
            };
            let (target, patch) = match (&budget_id, shared) {
                (Some(id), true) => match crate::budgets::find_in(&mut tx, id).await? {
                    Some(row) => (None, crate::budgets::overlay(&row, budget)),
                    None => (None, budget.clone()),
                },
                _ => (budget_id.clone(), budget.clone()),
            };
            let id = crate::budgets::upsert_in(&mut tx, target.as_deref(), &patch, actor).await?;
            sqlx::query(
                "UPDATE team_members SET budget_id = $1 WHERE team_id = $2 AND user_id = $3",
            )
            .bind(id)
            .bind(team_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(role) = role {
            sqlx::query("UPDATE team_members SET role = $1 WHERE team_id = $2 AND user_id = $3")
                .bind(role)
                .bind(team_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.member(team_id, user_id).await
    }
}

/// The writes of [`TeamStore::create`], inside its transaction.
async fn create_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    team_id: &str,
    team: &TeamPatch,
    members: &[NewMember],
    budgets: &[NewBudget],
) -> Result<(), StoreError> {
    let now = now_ms();
    for budget in budgets {
        crate::budgets::insert_in(tx, budget).await?;
    }
    sqlx::query(
            "INSERT INTO teams (team_id, team_alias, organization_id, metadata, max_budget_nano, \
             soft_budget_nano, models, max_parallel_requests, tpm_limit, rpm_limit, budget_duration, \
             budget_reset_at, blocked, model_max_budget, model_aliases, team_member_permissions, \
             object_permission, router_settings, access_group_ids, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
        )
        .bind(team_id)
        .bind(team.team_alias.clone().flatten())
        .bind(team.organization_id.clone().flatten())
        .bind(team.metadata.as_ref().map_or_else(|| "{}".into(), json))
        .bind(team.max_budget.flatten().map(|m| m.0))
        .bind(team.soft_budget.flatten().map(|m| m.0))
        .bind(list_json(team.models.as_deref().unwrap_or_default()))
        .bind(team.max_parallel_requests.flatten())
        .bind(team.tpm_limit.flatten())
        .bind(team.rpm_limit.flatten())
        .bind(team.budget_duration.clone().flatten())
        .bind(team.budget_reset_at.flatten())
        .bind(i64::from(team.blocked.unwrap_or(false)))
        .bind(team.model_max_budget.as_ref().map_or_else(|| "{}".into(), json))
        .bind(team.model_aliases.as_ref().map_or_else(|| "{}".into(), json))
        .bind(list_json(
            team.team_member_permissions.as_deref().unwrap_or_default(),
        ))
        .bind(team.object_permission.clone().flatten().as_ref().map(json))
        .bind(team.router_settings.as_ref().map_or_else(|| "{}".into(), json))
        .bind(list_json(team.access_group_ids.as_deref().unwrap_or_default()))
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(on_unique("team"))?;
    add_members_in(tx, team_id, members).await
}

pub(crate) async fn add_members_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    team_id: &str,
    members: &[NewMember],
) -> Result<(), StoreError> {
    let now = now_ms();
    for member in members {
        if let Some(user) = &member.create_user {
            crate::users::insert_missing_in(tx, user).await?;
        }
        if let Some(budget) = &member.budget {
            crate::budgets::insert_in(tx, budget).await?;
        }
        sqlx::query(
            "INSERT INTO team_members (team_id, user_id, role, budget_id, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(team_id)
        .bind(&member.user_id)
        .bind(&member.role)
        .bind(member.budget.as_ref().map(|b| b.budget_id.clone()))
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(on_unique("team member"))?;
    }
    Ok(())
}

/// Archives and deletes teams inside a caller's transaction; returns the deleted keys' tokens.
pub(crate) async fn delete_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    archive: &[(String, Value)],
    deleted_by: &str,
    deleted_by_api_key: &str,
) -> Result<Vec<String>, StoreError> {
    let now = now_ms();
    let mut tokens = Vec::new();
    for (team_id, data) in archive {
        let team = sqlx::query(
            "SELECT team_alias, organization_id, created_at, metadata FROM teams WHERE team_id = $1",
        )
        .bind(team_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(team) = team else {
            // Deleted concurrently: refuse the whole delete rather than half of it.
            return Err(StoreError::Conflict {
                what: "team deleted concurrently",
            });
        };
        sqlx::query(
            "INSERT INTO deleted_teams (id, team_id, team_alias, organization_id, data, created_at, deleted_at, deleted_by, deleted_by_api_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(team_id)
        .bind(team.try_get::<Option<String>, _>("team_alias")?)
        .bind(team.try_get::<Option<String>, _>("organization_id")?)
        .bind(data.to_string())
        .bind(team.try_get::<i64, _>("created_at")?)
        .bind(now)
        .bind(deleted_by)
        .bind(deleted_by_api_key)
        .execute(&mut **tx)
        .await?;
        let rows = sqlx::query("SELECT token FROM keys WHERE team_id = $1")
            .bind(team_id)
            .fetch_all(&mut **tx)
            .await?;
        for row in &rows {
            tokens.push(row.try_get::<String, _>("token")?);
        }
        for sql in [
            "DELETE FROM deprecated_keys WHERE active_token IN (SELECT token FROM keys WHERE team_id = $1)",
            "DELETE FROM keys WHERE team_id = $1",
            "DELETE FROM budgets WHERE budget_id IN (SELECT budget_id FROM team_members WHERE team_id = $1)",
            "DELETE FROM team_members WHERE team_id = $1",
            "DELETE FROM teams WHERE team_id = $1",
        ] {
            sqlx::query(sql).bind(team_id).execute(&mut **tx).await?;
        }
        // The team's shared member-budget row goes with it.
        let metadata: Value = json_column(&team, "metadata")?;
        if let Some(budget_id) = metadata.get(MEMBER_BUDGET_KEY).and_then(Value::as_str) {
            sqlx::query("DELETE FROM budgets WHERE budget_id = $1")
                .bind(budget_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(tokens)
}

fn decode_member(row: &AnyRow) -> Result<TeamMemberRow, StoreError> {
    Ok(TeamMemberRow {
        team_id: row.try_get("team_id")?,
        user_id: row.try_get("user_id")?,
        user_email: row.try_get("user_email")?,
        role: row.try_get("role")?,
        budget_id: row.try_get("budget_id")?,
        spend: NanoUsd(row.try_get("spend_nano")?),
        total_spend: NanoUsd(row.try_get("total_spend_nano")?),
        created_at: row.try_get("created_at")?,
    })
}

fn decode(row: &AnyRow) -> Result<TeamRow, StoreError> {
    Ok(TeamRow {
        team_id: row.try_get("team_id")?,
        team_alias: row.try_get("team_alias")?,
        organization_id: row.try_get("organization_id")?,
        metadata: json_column(row, "metadata")?,
        max_budget: row
            .try_get::<Option<i64>, _>("max_budget_nano")?
            .map(NanoUsd),
        soft_budget: row
            .try_get::<Option<i64>, _>("soft_budget_nano")?
            .map(NanoUsd),
        spend: NanoUsd(row.try_get("spend_nano")?),
        models: json_column(row, "models")?,
        max_parallel_requests: row.try_get("max_parallel_requests")?,
        tpm_limit: row.try_get("tpm_limit")?,
        rpm_limit: row.try_get("rpm_limit")?,
        budget_duration: row.try_get("budget_duration")?,
        budget_reset_at: row.try_get("budget_reset_at")?,
        blocked: row.try_get::<i64, _>("blocked")? != 0,
        model_max_budget: json_column(row, "model_max_budget")?,
        model_spend: json_column(row, "model_spend")?,
        model_aliases: json_column(row, "model_aliases")?,
        team_member_permissions: json_column(row, "team_member_permissions")?,
        object_permission: optional_json_column(row, "object_permission")?,
        router_settings: json_column(row, "router_settings")?,
        access_group_ids: json_column(row, "access_group_ids")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
