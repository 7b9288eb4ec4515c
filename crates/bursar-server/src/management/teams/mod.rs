//! `/team/*` and `/v2/team/list`: teams, their members and permissions (LiteLLM's
//! `team_endpoints`).
//!
//! Membership is stored once (`team_members`); `members_with_roles`, a user's `teams` and the
//! membership budgets are derived from it. Every change that touches several rows (a team with
//! its members, a delete with its keys, a member with their keys) is one transaction, checked
//! in full before it is written.

use super::audit::{Auditor, TEAMS_TABLE};
use super::keys::{actor, all_keys};
use super::scope::{
    self, ORG_ADMIN, TEAM_ADMIN, TEAM_USER, TeamAccess, admin_only, member_id, not_team_admin,
};
pub mod callbacks;
pub mod dto;

use super::budgets::dto::BudgetTable;
use super::keys::dto::KeyObject;
use super::users::dto::UserTable;
use super::{
    BudgetInput, FromParts, Page, bad_field, descending, json_body, json_body_parts, limit,
    missing, money, reset_at,
};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use bursar_core::access::TEAM_MEMBER_PERMISSIONS;
use bursar_core::duration::BudgetDuration;
use bursar_core::policy::teams::{TeamBudget, TeamChange, TeamState};
use bursar_core::policy::{self, LimitChange, LimitSet};
use bursar_core::roles::UserRole;
use bursar_core::time::format_ms;
use bursar_store::{
    BudgetPatch, BudgetRow, KeyQuery, MEMBER_BUDGET_KEY, NewBudget, NewMember, NewUser, OrgFilter,
    StoreError, TeamMemberRow, TeamPatch, TeamQuery, TeamRow, TeamSort,
};
use dto::{
    BulkTeamMemberAddResponse, BulkUpdateTeamMemberPermissionsResponse, DeleteTeamResponse,
    DeletedTeam, GetTeamMemberPermissionsResponse, TeamAddMemberResponse, TeamInfoResponse,
    TeamListEntry, TeamListResponse, TeamMemberAddResult, TeamMemberInfoResponse,
    TeamMemberResetBudgetResponse, TeamMemberSpendResetResponse, TeamMemberUpdateResponse,
    TeamMembership, TeamMetadataFieldSchema, TeamMetadataSchemaResponse, TeamObject, TeamWithKeys,
    UpdateTeamResponse,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashSet;
use utoipa::{IntoParams, ToSchema};

/// What team members may do when the team does not say (`DEFAULT_TEAM_MEMBER_PERMISSIONS`).
pub const DEFAULT_MEMBER_PERMISSIONS: [&str; 2] = ["/key/info", "/key/health"];

/// Largest `/team/bulk_member_add` request.
const MAX_BULK_MEMBERS: usize = 500;

/// A member as requests name it: by id, by email, or both.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = Member)]
pub struct MemberSpec {
    role: Option<String>,
    user_id: Option<String>,
    user_email: Option<String>,
}

/// Every settable team field; absent = unchanged (update) or default (create).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TeamFields {
    team_alias: Option<String>,
    organization_id: Option<String>,
    members_with_roles: Option<Vec<MemberSpec>>,
    team_member_permissions: Option<Vec<String>>,
    metadata: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    max_parallel_requests: Option<Option<i64>>,
    rpm_limit_type: Option<String>,
    tpm_limit_type: Option<String>,
    model_rpm_limit: Option<Map<String, Value>>,
    model_tpm_limit: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<f64>)]
    max_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<f64>)]
    soft_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<String>)]
    budget_duration: Option<Option<String>>,
    models: Option<Vec<String>>,
    blocked: Option<bool>,
    tags: Option<Vec<String>>,
    guardrails: Option<Vec<String>>,
    prompts: Option<Vec<String>>,
    policies: Option<Vec<String>>,
    enforced_params: Option<Vec<String>>,
    allowed_passthrough_routes: Option<Vec<String>>,
    default_team_member_models: Option<Vec<String>>,
    secret_manager_settings: Option<Value>,
    allowed_vector_store_indexes: Option<Value>,
    enforced_batch_output_expires_after: Option<Value>,
    enforced_file_expires_after: Option<Value>,
    model_aliases: Option<Map<String, Value>>,
    model_max_budget: Option<Map<String, Value>>,
    team_member_budget: Option<f64>,
    team_member_budget_duration: Option<String>,
    team_member_rpm_limit: Option<i64>,
    team_member_tpm_limit: Option<i64>,
    team_member_key_duration: Option<String>,
    object_permission: Option<Map<String, Value>>,
    router_settings: Option<Map<String, Value>>,
    access_group_ids: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TeamIdentity {
    team_id: Option<String>,
}

/// `POST /team/new`.
#[derive(Debug, ToSchema)]
pub struct NewTeamRequest {
    /// Generated when absent.
    team_id: Option<String>,
    #[serde(flatten)]
    fields: TeamFields,
}

impl FromParts for NewTeamRequest {
    type Identity = TeamIdentity;
    type Fields = TeamFields;
    fn from_parts(identity: TeamIdentity, fields: TeamFields) -> Self {
        NewTeamRequest {
            team_id: identity.team_id,
            fields,
        }
    }
}

/// `POST /team/update`: `team_id` picks it; absent fields are unchanged, `null` ones cleared.
#[derive(Debug, ToSchema)]
pub struct UpdateTeamRequest {
    team_id: Option<String>,
    #[serde(flatten)]
    fields: TeamFields,
}

impl FromParts for UpdateTeamRequest {
    type Identity = TeamIdentity;
    type Fields = TeamFields;
    fn from_parts(identity: TeamIdentity, fields: TeamFields) -> Self {
        UpdateTeamRequest {
            team_id: identity.team_id,
            fields,
        }
    }
}

/// `POST /team/member_delete`: `user_id` or `user_email`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct TeamMemberDeleteRequest(MemberRef);

/// `POST /team/model/delete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct TeamModelDeleteRequest(TeamModelsRequest);

/// Validated team changes, ready for the store.
struct TeamChanges {
    patch: TeamPatch,
    members: Vec<MemberSpec>,
    /// The shared member budget (`team_member_budget`, `team_member_*_limit`).
    member_budget: Option<BudgetPatch>,
    /// `rpm_limit_type` / `tpm_limit_type` after the change.
    guaranteed: bool,
}

fn limit_map(field: &str, map: &Map<String, Value>) -> Result<(), ApiError> {
    for (model, v) in map {
        if v.as_i64().is_none_or(|n| n < 0) {
            return Err(bad_field(
                field,
                format!("{field}[{model:?}] must be a non-negative integer"),
            ));
        }
    }
    Ok(())
}

fn check_duration(field: &str, text: &str) -> Result<(), ApiError> {
    BudgetDuration::parse(text)
        .map(|_| ())
        .map_err(|e| bad_field(field, format!("Invalid {field}: {e}")))
}

pub fn check_permissions(perms: &[String]) -> Result<(), ApiError> {
    if let Some(bad) = perms
        .iter()
        .find(|p| !TEAM_MEMBER_PERMISSIONS.contains(&p.as_str()))
    {
        return Err(bad_field(
            "team_member_permissions",
            format!(
                "Invalid team member permission {bad:?}. Available permissions: {TEAM_MEMBER_PERMISSIONS:?}"
            ),
        ));
    }
    Ok(())
}

impl TeamFields {
    fn validate(self, existing: Option<&TeamRow>) -> Result<TeamChanges, ApiError> {
        let mut patch = TeamPatch {
            team_alias: self.team_alias.map(Some),
            organization_id: self.organization_id.map(Some),
            models: self.models,
            blocked: self.blocked,
            model_max_budget: self.model_max_budget.map(Value::Object),
            model_aliases: self.model_aliases.map(Value::Object),
            object_permission: self.object_permission.map(|o| Some(Value::Object(o))),
            router_settings: self.router_settings.map(Value::Object),
            access_group_ids: self.access_group_ids,
            ..TeamPatch::default()
        };
        let budget = BudgetInput {
            max_budget: self.max_budget,
            soft_budget: self.soft_budget,
            tpm_limit: self.tpm_limit,
            rpm_limit: self.rpm_limit,
            max_parallel_requests: self.max_parallel_requests,
            budget_duration: self.budget_duration,
        }
        .validate(
            existing.and_then(|t| t.max_budget),
            existing.and_then(|t| t.soft_budget),
        )?;
        patch.max_budget = budget.max_budget;
        patch.soft_budget = budget.soft_budget;
        patch.tpm_limit = budget.tpm_limit;
        patch.rpm_limit = budget.rpm_limit;
        patch.max_parallel_requests = budget.max_parallel_requests;
        patch.budget_duration = budget.budget_duration;
        patch.budget_reset_at = budget.budget_reset_at;
        if let Some(perms) = &self.team_member_permissions {
            check_permissions(perms)?;
        }
        patch.team_member_permissions = self.team_member_permissions;
        if let Some(m) = &self.model_rpm_limit {
            limit_map("model_rpm_limit", m)?;
        }
        if let Some(m) = &self.model_tpm_limit {
            limit_map("model_tpm_limit", m)?;
        }
        for (field, value) in [
            ("rpm_limit_type", &self.rpm_limit_type),
            ("tpm_limit_type", &self.tpm_limit_type),
        ] {
            if let Some(v) = value
                && !matches!(
                    v.as_str(),
                    "guaranteed_throughput" | "best_effort_throughput"
                )
            {
                return Err(bad_field(
                    field,
                    format!(
                        "Invalid {field} {v:?}: expected guaranteed_throughput or best_effort_throughput"
                    ),
                ));
            }
        }
        if let Some(d) = &self.team_member_key_duration {
            check_duration("team_member_key_duration", d)?;
        }

        // The shared budget of each member.
        let mut member_budget = BudgetPatch::default();
        if self.team_member_budget.is_some() {
            member_budget.max_budget = Some(money("team_member_budget", self.team_member_budget)?);
        }
        if let Some(d) = self.team_member_budget_duration {
            member_budget.budget_reset_at =
                Some(Some(reset_at("team_member_budget_duration", &d)?));
            member_budget.budget_duration = Some(Some(d));
        }
        if self.team_member_rpm_limit.is_some() {
            member_budget.rpm_limit =
                Some(limit("team_member_rpm_limit", self.team_member_rpm_limit)?);
        }
        if self.team_member_tpm_limit.is_some() {
            member_budget.tpm_limit =
                Some(limit("team_member_tpm_limit", self.team_member_tpm_limit)?);
        }

        // Fields LiteLLM keeps inside metadata.
        let mut folded: Vec<(&str, Value)> = Vec::new();
        for (name, v) in [
            ("model_rpm_limit", self.model_rpm_limit.map(Value::Object)),
            ("model_tpm_limit", self.model_tpm_limit.map(Value::Object)),
            ("rpm_limit_type", self.rpm_limit_type.map(Value::String)),
            ("tpm_limit_type", self.tpm_limit_type.map(Value::String)),
            ("tags", self.tags.map(Value::from)),
            ("guardrails", self.guardrails.map(Value::from)),
            ("prompts", self.prompts.map(Value::from)),
            ("policies", self.policies.map(Value::from)),
            ("enforced_params", self.enforced_params.map(Value::from)),
            (
                "allowed_passthrough_routes",
                self.allowed_passthrough_routes.map(Value::from),
            ),
            (
                "default_team_member_models",
                self.default_team_member_models.map(Value::from),
            ),
            (
                "team_member_key_duration",
                self.team_member_key_duration.map(Value::String),
            ),
            ("secret_manager_settings", self.secret_manager_settings),
            (
                "allowed_vector_store_indexes",
                self.allowed_vector_store_indexes,
            ),
            (
                "enforced_batch_output_expires_after",
                self.enforced_batch_output_expires_after,
            ),
            (
                "enforced_file_expires_after",
                self.enforced_file_expires_after,
            ),
        ] {
            if let Some(v) = v.filter(|v| !v.is_null()) {
                folded.push((name, v));
            }
        }
        let existing_metadata = existing.and_then(|t| t.metadata.as_object());
        if self.metadata.is_some() || !folded.is_empty() {
            let mut metadata = match self.metadata {
                Some(mut m) => {
                    // The member-budget link and the logging callbacks (whose credentials
                    // answers only show redacted) are the server's, never the caller's: they
                    // change through their own routes.
                    for owned in [MEMBER_BUDGET_KEY, "logging"] {
                        m.remove(owned);
                        if let Some(v) = existing_metadata.and_then(|e| e.get(owned)) {
                            m.insert(owned.into(), v.clone());
                        }
                    }
                    m
                }
                None => existing_metadata.cloned().unwrap_or_default(),
            };
            for (name, value) in folded {
                metadata.insert(name.to_string(), value);
            }
            patch.metadata = Some(Value::Object(metadata));
        }
        let metadata = patch.metadata.as_ref().or(existing.map(|t| &t.metadata));
        let guaranteed = metadata.is_some_and(|m| {
            ["rpm_limit_type", "tpm_limit_type"]
                .iter()
                .any(|k| m.get(k).and_then(Value::as_str) == Some("guaranteed_throughput"))
        });
        Ok(TeamChanges {
            patch,
            members: self.members_with_roles.unwrap_or_default(),
            member_budget: (!member_budget.is_empty()).then_some(member_budget),
            guaranteed,
        })
    }
}

async fn find_team(state: &AppState, team_id: &str) -> Result<TeamRow, ApiError> {
    state.store().teams().find(team_id).await?.ok_or_else(|| {
        ApiError::not_found(format!("Team not found, passed team_id={team_id}"))
            .with_param("team_id")
    })
}

async fn team_body(state: &AppState, team: &TeamRow) -> Result<TeamObject, ApiError> {
    let members = state.store().teams().members(&team.team_id).await?;
    Ok(TeamObject::new(team, &members))
}

/// Membership rows with their budget rows (one query), shown by `show`.
pub async fn with_budgets<M, T>(
    state: &AppState,
    members: &[M],
    budget_id: impl Fn(&M) -> Option<&String>,
    show: impl Fn(&M, Option<&BudgetRow>) -> T,
) -> Result<Vec<T>, ApiError> {
    let ids: Vec<String> = members
        .iter()
        .filter_map(|m| budget_id(m).cloned())
        .collect();
    let budgets = state.store().budgets().find_many(&ids).await?;
    Ok(members
        .iter()
        .map(|m| {
            show(
                m,
                budgets.iter().find(|b| Some(&b.budget_id) == budget_id(m)),
            )
        })
        .collect())
}

/// The membership rows of a team with their budgets, as `/team/info` shows them.
async fn memberships(
    state: &AppState,
    members: &[TeamMemberRow],
) -> Result<Vec<TeamMembership>, ApiError> {
    with_budgets(
        state,
        members,
        |m| m.budget_id.as_ref(),
        TeamMembership::new,
    )
    .await
}

fn require_team_id(team_id: Option<String>) -> Result<String, ApiError> {
    super::required("team_id", team_id)
}

fn check_member_role(role: Option<&str>) -> Result<String, ApiError> {
    match role.unwrap_or(TEAM_USER) {
        r @ (TEAM_ADMIN | TEAM_USER) => Ok(r.to_string()),
        other => Err(bad_field(
            "role",
            format!("Invalid team member role {other:?}: expected admin or user"),
        )),
    }
}

/// A member resolved against the users table.
struct Resolved {
    user_id: String,
    user_email: Option<String>,
    create: Option<NewUser>,
}

/// Finds the user a member spec names, or describes the user to create (LiteLLM creates
/// unknown users; only proxy admins may choose the id of a user that does not exist yet).
pub(super) async fn resolve_member(
    state: &AppState,
    principal: &Principal,
    user_id: Option<&str>,
    user_email: Option<&str>,
    field: &str,
) -> Result<(String, Option<String>, Option<NewUser>), ApiError> {
    let users = state.store().users();
    let by_email = match user_email {
        Some(email) => users.find_by_email(email).await?,
        None => None,
    };
    let resolved = match (user_id, user_email) {
        (None, None) => {
            return Err(bad_field(
                field,
                "Either user_id or user_email must be provided",
            ));
        }
        (Some(id), email) => {
            if let Some(found) = &by_email
                && found.user_id != id
            {
                return Err(bad_field(
                    field,
                    format!(
                        "user_email '{}' and user_id '{id}' do not belong to the same user.",
                        email.unwrap_or_default()
                    ),
                ));
            }
            match users.find(id).await? {
                Some(user) => Resolved {
                    user_id: user.user_id,
                    user_email: user.user_email,
                    create: None,
                },
                None => {
                    if !principal.is_proxy_admin() {
                        return Err(ApiError::forbidden(format!(
                            "Only proxy admins can add a user_id that does not exist yet: {id}. Add the member by user_email to invite a new user, or ask a proxy admin to create the user first."
                        )));
                    }
                    Resolved {
                        user_id: id.to_string(),
                        user_email: email.map(str::to_string),
                        create: Some(new_user(state, id, email)),
                    }
                }
            }
        }
        (None, Some(email)) => match by_email {
            Some(user) => Resolved {
                user_id: user.user_id,
                user_email: user.user_email,
                create: None,
            },
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                Resolved {
                    create: Some(new_user(state, &id, Some(email))),
                    user_id: id,
                    user_email: Some(email.to_string()),
                }
            }
        },
    };
    Ok((resolved.user_id, resolved.user_email, resolved.create))
}

/// A user created because a membership named them, with the configured defaults.
fn new_user(state: &AppState, user_id: &str, email: Option<&str>) -> NewUser {
    let defaults = &state.config().internal_user_defaults;
    NewUser {
        user_id: user_id.to_string(),
        user_email: email.map(str::to_string),
        user_role: defaults
            .user_role
            .unwrap_or(UserRole::InternalUser)
            .as_str()
            .to_string(),
        models: defaults.models.clone().unwrap_or_default(),
        ..NewUser::default()
    }
}

fn member_budget(
    max_budget_in_team: Option<f64>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    created_by: &str,
) -> Result<Option<NewBudget>, ApiError> {
    let max_budget = money("max_budget_in_team", max_budget_in_team)?;
    let tpm_limit = limit("tpm_limit", tpm_limit)?;
    let rpm_limit = limit("rpm_limit", rpm_limit)?;
    if max_budget.is_none() && tpm_limit.is_none() && rpm_limit.is_none() {
        return Ok(None);
    }
    Ok(Some(NewBudget {
        budget_id: uuid::Uuid::new_v4().to_string(),
        max_budget,
        tpm_limit,
        rpm_limit,
        created_by: created_by.to_string(),
        ..NewBudget::default()
    }))
}

/// Resolves a list of member specs into new memberships; duplicates in the list are refused.
async fn new_members(
    state: &AppState,
    principal: &Principal,
    specs: &[MemberSpec],
    max_budget_in_team: Option<f64>,
    field: &str,
) -> Result<Vec<(NewMember, Option<String>)>, ApiError> {
    let mut out: Vec<(NewMember, Option<String>)> = Vec::new();
    for spec in specs {
        let role = check_member_role(spec.role.as_deref())?;
        let (user_id, email, create) = resolve_member(
            state,
            principal,
            spec.user_id.as_deref(),
            spec.user_email.as_deref(),
            field,
        )
        .await?;
        if out.iter().any(|(m, _)| m.user_id == user_id) {
            return Err(bad_field(
                field,
                format!("User {user_id} is listed more than once"),
            ));
        }
        out.push((
            NewMember {
                budget: member_budget(max_budget_in_team, None, None, &actor(principal))?,
                user_id,
                role,
                create_user: create,
            },
            email,
        ));
    }
    Ok(out)
}

fn over_org(
    field: &str,
    what: &str,
    value: impl std::fmt::Display,
    org_value: impl std::fmt::Display,
    org: &str,
) -> ApiError {
    bad_field(
        field,
        format!(
            "Team {what} ({value}) exceeds organization's {what} ({org_value}). Organization: {org}"
        ),
    )
}

/// The team must fit inside its organization: budget, models and limits at most the org's,
/// and with guaranteed throughput the org's limits may not be over-allocated across teams.
async fn check_org_fit(
    state: &AppState,
    team_id: &str,
    org_id: &str,
    patch: &TeamPatch,
    guaranteed: bool,
) -> Result<(), ApiError> {
    let org = state.store().orgs().find(org_id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Organization not found for organization_id={org_id}"
        ))
        .with_param("organization_id")
    })?;
    let budget = match &org.budget_id {
        Some(id) => state.store().budgets().find(id).await?,
        None => None,
    };
    if let (Some(Some(max)), Some(org_max)) =
        (patch.max_budget, budget.as_ref().and_then(|b| b.max_budget))
        && max > org_max
    {
        return Err(over_org(
            "max_budget",
            "max_budget",
            max.as_usd(),
            org_max.as_usd(),
            org_id,
        ));
    }
    if let Some(models) = &patch.models
        && !org.models.is_empty()
        && !org.models.iter().any(|m| m == "all-proxy-models")
        && let Some(m) = models.iter().find(|m| !org.models.contains(m))
    {
        return Err(bad_field(
            "models",
            format!(
                "Model '{m}' not in organization's allowed models. Organization allowed models={:?}. Organization: {org_id}",
                org.models
            ),
        ));
    }
    let org_tpm = budget.as_ref().and_then(|b| b.tpm_limit);
    let org_rpm = budget.as_ref().and_then(|b| b.rpm_limit);
    for (field, value, org_value) in [
        ("tpm_limit", patch.tpm_limit.flatten(), org_tpm),
        ("rpm_limit", patch.rpm_limit.flatten(), org_rpm),
    ] {
        if let (Some(v), Some(o)) = (value, org_value)
            && v > o
        {
            return Err(over_org(field, field, v, o, org_id));
        }
    }
    if !guaranteed {
        return Ok(());
    }
    let query = TeamQuery {
        organization: Some(OrgFilter::Id(org_id.to_string())),
        ..TeamQuery::default()
    };
    let (others, _) = state.store().teams().list(&query).await?;
    let others: Vec<&TeamRow> = others.iter().filter(|t| t.team_id != team_id).collect();
    for (field, label, value, org_value, pick) in [
        (
            "tpm_limit",
            "TPM",
            patch.tpm_limit.flatten(),
            org_tpm,
            (|t: &TeamRow| t.tpm_limit) as fn(&TeamRow) -> Option<i64>,
        ),
        (
            "rpm_limit",
            "RPM",
            patch.rpm_limit.flatten(),
            org_rpm,
            |t: &TeamRow| t.rpm_limit,
        ),
    ] {
        let allocated: i64 = others.iter().filter_map(|t| pick(t)).sum();
        if let (Some(v), Some(o)) = (value, org_value)
            && v.saturating_add(allocated) > o
        {
            return Err(bad_field(
                field,
                format!(
                    "Allocated {label} limit={allocated} + Team {label} limit={v} is greater than organization {label} limit={o}"
                ),
            ));
        }
    }
    for (field, label, org_value) in [
        ("model_tpm_limit", "TPM", org_tpm),
        ("model_rpm_limit", "RPM", org_rpm),
    ] {
        let Some(requested) = patch
            .metadata
            .as_ref()
            .and_then(|m| m.get(field))
            .and_then(Value::as_object)
        else {
            continue;
        };
        let org_model = org.metadata.get(field).and_then(Value::as_object);
        for (model, v) in requested {
            let v = v.as_i64().unwrap_or(0);
            let allocated: i64 = others
                .iter()
                .filter_map(|t| t.metadata.get(field)?.get(model)?.as_i64())
                .sum();
            let cap = org_value.or_else(|| org_model.and_then(|m| m.get(model)?.as_i64()));
            if let Some(cap) = cap
                && v.saturating_add(allocated) > cap
            {
                return Err(bad_field(
                    field,
                    format!(
                        "Allocated {label} limit={allocated} + Team {label} limit={v} is greater than organization {label} limit={cap}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A team created by a non-admin may not be richer than its creator.
async fn check_creator_limits(
    state: &AppState,
    principal: &Principal,
    patch: &TeamPatch,
) -> Result<(), ApiError> {
    let Some(user_id) = member_id(principal) else {
        return Ok(());
    };
    let Some(user) = state.store().users().find(user_id).await? else {
        return Ok(());
    };
    let role = principal.role();
    if let (Some(Some(max)), Some(user_max)) = (patch.max_budget, user.max_budget)
        && max > user_max
    {
        return Err(bad_field(
            "max_budget",
            format!(
                "max budget higher than user max. User max budget={}. User role={role}",
                user_max.as_usd()
            ),
        ));
    }
    if let Some(models) = &patch.models
        && !user.models.is_empty()
        && let Some(m) = models.iter().find(|m| !user.models.contains(m))
    {
        return Err(bad_field(
            "models",
            format!(
                "Model not in allowed user models. User allowed models={:?}. User id={user_id}. Model={m}",
                user.models
            ),
        ));
    }
    for (field, value, user_value) in [
        ("tpm_limit", patch.tpm_limit.flatten(), user.tpm_limit),
        ("rpm_limit", patch.rpm_limit.flatten(), user.rpm_limit),
    ] {
        if let (Some(v), Some(u)) = (value, user_value)
            && v > u
        {
            let name = &field[..3];
            return Err(bad_field(
                field,
                format!(
                    "{name} limit higher than user max. User {name} limit={u}. User role={role}"
                ),
            ));
        }
    }
    Ok(())
}

/// Creates a team.
#[utoipa::path(
    post,
    path = "/team/new",
    operation_id = "new_team",
    tag = crate::openapi::TEAMS,
    request_body = NewTeamRequest,
    responses((status = 200, body = TeamObject)),
)]
pub async fn new_team(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TeamObject>, ApiError> {
    let NewTeamRequest { team_id, fields } = json_body_parts(&state, &headers, body).await?;
    let mut changes = fields.validate(None)?;
    let team_id = match team_id.filter(|t| !t.trim().is_empty()) {
        Some(id) => {
            if state.store().teams().find(&id).await?.is_some() {
                return Err(bad_field(
                    "team_id",
                    format!("Team id = {id} already exists. Please use a different team id."),
                ));
            }
            id
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let org_id = changes.patch.organization_id.clone().flatten();
    if !principal.is_proxy_admin() {
        let role = principal.role();
        match &org_id {
            Some(org) => {
                let their = match member_id(&principal) {
                    Some(me) => state
                        .store()
                        .orgs()
                        .member(org, me)
                        .await?
                        .and_then(|m| m.user_role),
                    None => None,
                };
                if their.as_deref() != Some(ORG_ADMIN) {
                    return Err(ApiError::unauthorized(
                        "auth_error",
                        format!(
                            "You do not have the required role to call /team/new. Your role is {} in Organization {org}",
                            their.as_deref().unwrap_or("None")
                        ),
                    )
                    .with_param("user_role"));
                }
            }
            None => {
                let admin_of = scope::admin_org_ids(&state, &principal).await?;
                if !admin_of.is_empty() {
                    return Err(ApiError::unauthorized(
                        "auth_error",
                        format!("Passed organization_id is None, please specify the organization_id in your request. You are part of multiple organizations: {admin_of:?}"),
                    )
                    .with_param("organization_id"));
                }
                if role != UserRole::OrgAdmin {
                    return Err(admin_only(&principal, "/team/new"));
                }
            }
        }
        check_creator_limits(&state, &principal, &changes.patch).await?;
    }
    if let Some(org) = &org_id {
        check_org_fit(&state, &team_id, org, &changes.patch, changes.guaranteed).await?;
    }
    if changes.patch.team_member_permissions.is_none() {
        changes.patch.team_member_permissions = Some(
            DEFAULT_MEMBER_PERMISSIONS
                .iter()
                .map(|p| p.to_string())
                .collect(),
        );
    }
    let mut members = new_members(
        &state,
        &principal,
        &changes.members,
        None,
        "members_with_roles",
    )
    .await?;
    // The creator becomes a team admin (not the master key: it has no user row).
    if let Some(me) = member_id(&principal)
        && !members.iter().any(|(m, _)| m.user_id == me)
    {
        members.push((
            NewMember {
                user_id: me.to_string(),
                role: TEAM_ADMIN.to_string(),
                budget: None,
                create_user: None,
            },
            None,
        ));
    }
    let mut budgets = Vec::new();
    if let Some(template) = changes.member_budget.take() {
        let id = format!(
            "team-{}-budget-{}",
            changes
                .patch
                .team_alias
                .clone()
                .flatten()
                .unwrap_or_default()
                .replace(' ', "-"),
            uuid::Uuid::new_v4().simple()
        )
        .replace("team--budget", "team-budget");
        let mut metadata = changes
            .patch
            .metadata
            .take()
            .and_then(|m| m.as_object().cloned())
            .unwrap_or_default();
        metadata.insert(MEMBER_BUDGET_KEY.into(), Value::String(id.clone()));
        changes.patch.metadata = Some(Value::Object(metadata));
        budgets.push(template.into_new(id, actor(&principal)));
    }
    let members: Vec<NewMember> = members.into_iter().map(|(m, _)| m).collect();
    let team = state
        .store()
        .teams()
        .create(&team_id, &changes.patch, &members, &budgets)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { what: "team" } => bad_field(
                "team_id",
                format!("Team id = {team_id} already exists. Please use a different team id."),
            ),
            StoreError::Conflict { .. } => bad_field(
                "members_with_roles",
                "A listed user already exists or is listed twice",
            ),
            other => other.into(),
        })?;
    let body = team_body(&state, &team).await?;
    Auditor::new(&state, &principal, &headers)
        .record(
            &state,
            "created",
            TEAMS_TABLE,
            &team.team_id,
            None,
            serde_json::to_value(&body).ok(),
        )
        .await;
    Ok(Json(body))
}

/// A team admin's change, checked by the team policy (keep or lower the team's limits; no
/// wider models, no unblocking, no move).
fn check_team_admin_changes(team: &TeamRow, patch: &TeamPatch) -> Result<(), ApiError> {
    let state = TeamState {
        team_id: &team.team_id,
        limits: LimitSet {
            max_budget: team.max_budget,
            rpm_limit: team.rpm_limit,
            tpm_limit: team.tpm_limit,
            max_parallel_requests: team.max_parallel_requests,
        },
        models: &team.models,
        blocked: team.blocked,
        organization_id: team.organization_id.as_deref(),
        budget: TeamBudget::new(
            team.soft_budget,
            team.budget_duration.clone(),
            team.model_max_budget.clone(),
            &team.metadata,
        ),
    };
    let change = TeamChange {
        limits: LimitChange {
            max_budget: patch.max_budget,
            rpm_limit: patch.rpm_limit,
            tpm_limit: patch.tpm_limit,
            max_parallel_requests: patch.max_parallel_requests,
        },
        models: patch.models.as_deref(),
        blocked: patch.blocked,
        organization_id: patch.organization_id.as_ref().map(Option::as_deref),
        budget: TeamBudget::new(
            patch.soft_budget.unwrap_or(team.soft_budget),
            patch
                .budget_duration
                .clone()
                .unwrap_or_else(|| team.budget_duration.clone()),
            patch
                .model_max_budget
                .clone()
                .unwrap_or_else(|| team.model_max_budget.clone()),
            patch.metadata.as_ref().unwrap_or(&team.metadata),
        ),
    };
    Ok(policy::teams::team_admin_change(&state, &change)?)
}

/// Updates a team; absent fields are unchanged.
#[utoipa::path(
    post,
    path = "/team/update",
    operation_id = "update_team",
    tag = crate::openapi::TEAMS,
    request_body = UpdateTeamRequest,
    responses((status = 200, body = UpdateTeamResponse)),
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UpdateTeamResponse>, ApiError> {
    let UpdateTeamRequest { team_id, fields } = json_body_parts(&state, &headers, body).await?;
    let team_id = require_team_id(team_id)?;
    let data = change_team(&state, &principal, &headers, &team_id, fields, false).await?;
    Ok(Json(UpdateTeamResponse { team_id, data }))
}

/// `PATCH /team/{team_id}`: like `/team/update`, the team in the path.
#[derive(Debug, ToSchema)]
pub struct PatchTeamRequest {
    /// Must be the path's team when given.
    team_id: Option<String>,
    #[serde(flatten)]
    fields: TeamFields,
}

impl FromParts for PatchTeamRequest {
    type Identity = TeamIdentity;
    type Fields = TeamFields;
    fn from_parts(identity: TeamIdentity, fields: TeamFields) -> Self {
        PatchTeamRequest {
            team_id: identity.team_id,
            fields,
        }
    }
}

/// Updates the team in the path as `/team/update` does, except that `metadata` is merged into
/// the stored metadata (RFC 7386: `null` removes a key); answers the team.
#[utoipa::path(
    patch,
    path = "/team/{team_id}",
    operation_id = "patch_team",
    tag = crate::openapi::TEAMS,
    params(("team_id" = String, Path, description = "The team")),
    request_body = PatchTeamRequest,
    responses((status = 200, body = TeamObject)),
)]
pub async fn patch(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(team_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TeamObject>, ApiError> {
    let PatchTeamRequest {
        team_id: named,
        fields,
    } = json_body_parts(&state, &headers, body).await?;
    if let Some(named) = named.filter(|n| *n != team_id) {
        return Err(bad_field(
            "team_id",
            format!("team_id in body ({named}) does not match team_id in path ({team_id})"),
        ));
    }
    Ok(Json(
        change_team(&state, &principal, &headers, &team_id, fields, true).await?,
    ))
}

/// RFC 7386 merge of `patch` into `target`.
fn merge_patch(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(existing) = slot {
                    merge_patch(existing, inner);
                }
            }
            other => {
                target.insert(key, other);
            }
        }
    }
}

/// The shared body of `/team/update` and `PATCH /team/{team_id}`.
async fn change_team(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    team_id: &str,
    mut fields: TeamFields,
    merge_metadata: bool,
) -> Result<TeamObject, ApiError> {
    let team_id = team_id.to_string();
    let existing = find_team(state, &team_id).await?;
    let access = TeamAccess::of(state, principal, &existing).await?;
    if !access.manages() {
        return Err(not_team_admin("/team/update", &team_id));
    }
    if merge_metadata && let Some(patch) = fields.metadata.take() {
        let mut merged = existing.metadata.as_object().cloned().unwrap_or_default();
        merge_patch(&mut merged, patch);
        fields.metadata = Some(merged);
    }
    let changes = fields.validate(Some(&existing))?;
    if !changes.members.is_empty() {
        return Err(bad_field(
            "members_with_roles",
            "Use /team/member_add, /team/member_update and /team/member_delete to change members",
        ));
    }
    let mut patch = changes.patch;
    if !access.proxy_admin && !access.org_admin {
        check_team_admin_changes(&existing, &patch)?;
    }
    let new_org = patch.organization_id.clone().flatten();
    let org_changed = patch.organization_id.is_some() && new_org != existing.organization_id;
    if org_changed
        && !access.proxy_admin
        && let Some(org) = &new_org
        && !scope::is_org_admin(state, principal, org).await?
    {
        return Err(ApiError::forbidden(format!(
            "Only a proxy admin or an org admin of {org} can move a team into it"
        )));
    }
    if let Some(org) = new_org.as_ref().or(existing.organization_id.as_ref()) {
        // Moving into an organization checks everything the team has; otherwise what changes.
        let mut check = patch.clone();
        if org_changed {
            check.max_budget = check.max_budget.or(Some(existing.max_budget));
            check.models = check.models.or(Some(existing.models.clone()));
            check.tpm_limit = check.tpm_limit.or(Some(existing.tpm_limit));
            check.rpm_limit = check.rpm_limit.or(Some(existing.rpm_limit));
        }
        check_org_fit(state, &team_id, org, &check, changes.guaranteed).await?;
    }
    let member_budget = changes.member_budget;
    let updated = state
        .store()
        .teams()
        .update_with_member_budget(
            &team_id,
            &mut patch,
            member_budget.as_ref(),
            &actor(principal),
        )
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Team not found, passed team_id={team_id}")))?;
    finish_change(state, principal, headers, &existing, &updated, "updated").await
}

/// The end of every team change: drops the team's cached keys, records the change with the
/// team's members read once for both sides, and returns the updated team object.
async fn finish_change(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    before: &TeamRow,
    after: &TeamRow,
    action: &str,
) -> Result<TeamObject, ApiError> {
    state.auth_cache().invalidate_team(&after.team_id);
    let members = state.store().teams().members(&after.team_id).await?;
    Auditor::new(state, principal, headers)
        .record(
            state,
            action,
            TEAMS_TABLE,
            &after.team_id,
            Some(TeamObject::audit(before, &members)),
            Some(TeamObject::audit(after, &members)),
        )
        .await;
    Ok(TeamObject::new(after, &members))
}

/// Applies `patch` to `team`, then [`finish_change`].
async fn patch_team(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    team: &TeamRow,
    patch: &TeamPatch,
    action: &str,
) -> Result<TeamObject, ApiError> {
    let updated = state
        .store()
        .teams()
        .update(&team.team_id, patch)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("Team not found, passed team_id={}", team.team_id))
        })?;
    finish_change(state, principal, headers, team, &updated, action).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = DeleteTeamRequest)]
pub struct DeleteTeamsRequest {
    team_ids: Vec<String>,
}

/// Deletes teams with their keys; all or nothing.
#[utoipa::path(
    post,
    path = "/team/delete",
    operation_id = "delete_team",
    tag = crate::openapi::TEAMS,
    request_body = DeleteTeamsRequest,
    responses((status = 200, body = DeleteTeamResponse)),
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DeleteTeamResponse>, ApiError> {
    let r: DeleteTeamsRequest = json_body(&state, &headers, body).await?;
    if r.team_ids.is_empty() {
        return Err(bad_field("team_ids", "team_ids must not be empty"));
    }
    let mut archive = Vec::new();
    let mut seen = HashSet::new();
    for team_id in &r.team_ids {
        if !seen.insert(team_id.clone()) {
            continue;
        }
        let team = find_team(&state, team_id).await.map_err(|e| {
            ApiError::not_found(format!(
                "Team not found, passed team_id={team_id}; nothing was deleted"
            ))
            .with_param(e.param.unwrap_or_else(|| "team_ids".into()))
        })?;
        let access = TeamAccess::of(&state, &principal, &team).await?;
        if !access.manages() {
            return Err(if access.is_member() {
                not_team_admin("/team/delete", team_id)
            } else {
                admin_only(&principal, "/team/delete")
            });
        }
        archive.push((
            team_id.clone(),
            serde_json::to_value(team_body(&state, &team).await?).unwrap_or_default(),
        ));
    }
    let auditor = Auditor::new(&state, &principal, &headers);
    let tokens = state
        .store()
        .teams()
        .delete(&archive, &actor(&principal), principal.api_key_hash())
        .await?;
    for token in &tokens {
        state.auth_cache().invalidate(token).await;
    }
    for (team_id, data) in archive {
        auditor
            .record(&state, "deleted", TEAMS_TABLE, &team_id, Some(data), None)
            .await;
    }
    Ok(Json(DeleteTeamResponse {
        deleted_teams: r.team_ids,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InfoQuery {
    team_id: Option<String>,
}

/// A team with its members, keys and budgets.
#[utoipa::path(
    get,
    path = "/team/info",
    operation_id = "team_info",
    tag = crate::openapi::TEAMS,
    params(InfoQuery),
    responses((status = 200, body = TeamInfoResponse)),
)]
pub async fn info(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<InfoQuery>,
) -> Result<Json<TeamInfoResponse>, ApiError> {
    let team_id = require_team_id(q.team_id)?;
    let team = find_team(&state, &team_id).await?;
    let access = TeamAccess::of(&state, &principal, &team).await?;
    if !access.reads() {
        return Err(ApiError::forbidden(format!(
            "User={} not authorized to access this team={team_id}",
            principal.user_id().unwrap_or("None")
        )));
    }
    let members = state.store().teams().members(&team_id).await?;
    let keys = all_keys(
        &state,
        KeyQuery {
            team_id: Some(team_id.clone()),
            ..KeyQuery::default()
        },
    )
    .await?;
    Ok(Json(TeamInfoResponse {
        team_id,
        team_info: TeamObject::new(&team, &members),
        keys: keys.iter().map(KeyObject::new).collect(),
        team_memberships: memberships(&state, &members).await?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    user_id: Option<String>,
    organization_id: Option<String>,
}

fn org_filter(org: Option<String>) -> Option<OrgFilter> {
    org.map(|o| {
        if o == "default_organization" {
            OrgFilter::None
        } else {
            OrgFilter::Id(o)
        }
    })
}

/// Restricts a team query to what the caller may see: admins see everything; others their
/// own teams and the teams of organizations they administer.
async fn visibility(
    state: &AppState,
    principal: &Principal,
    user_id: Option<&str>,
    query: &mut TeamQuery,
) -> Result<(), ApiError> {
    if super::keys::is_admin_reader(principal) {
        return Ok(());
    }
    let me = member_id(principal);
    if user_id.is_some() && user_id != me {
        return Err(ApiError::unauthorized(
            "auth_error",
            format!(
                "Only admin users can query all teams/other teams. Your user role={}",
                principal.role()
            ),
        ));
    }
    match me {
        Some(me) => {
            query.visible_to = Some((
                me.to_string(),
                scope::admin_org_ids(state, principal).await?,
            ));
        }
        None => {
            // A key without a user sees only its own team.
            let own = match principal {
                Principal::VirtualKey(s) => s.key.team_id.clone(),
                Principal::MasterKey => None,
            };
            query.team_id = Some(own.unwrap_or_default());
            query.member = None;
        }
    }
    Ok(())
}

/// Teams the caller may see.
#[utoipa::path(
    get,
    path = "/team/list",
    operation_id = "list_team",
    tag = crate::openapi::TEAMS,
    params(ListQuery),
    responses((status = 200, body = Vec<TeamWithKeys>)),
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<TeamWithKeys>>, ApiError> {
    let mut query = TeamQuery {
        member: q.user_id.clone(),
        organization: org_filter(q.organization_id),
        ..TeamQuery::default()
    };
    visibility(&state, &principal, q.user_id.as_deref(), &mut query).await?;
    let (teams, _) = state.store().teams().list(&query).await?;
    let mut out = Vec::with_capacity(teams.len());
    for team in &teams {
        let members = state.store().teams().members(&team.team_id).await?;
        let keys = all_keys(
            &state,
            KeyQuery {
                team_id: Some(team.team_id.clone()),
                ..KeyQuery::default()
            },
        )
        .await?;
        out.push(TeamWithKeys {
            team: TeamObject::new(team, &members),
            keys: keys.iter().map(KeyObject::new).collect(),
            team_memberships: memberships(&state, &members).await?,
        });
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListV2Query {
    user_id: Option<String>,
    organization_id: Option<String>,
    team_id: Option<String>,
    team_alias: Option<String>,
    /// Page number.
    #[param(minimum = 1, default = 1)]
    page: Option<u32>,
    /// Teams per page.
    #[param(minimum = 1, maximum = 100, default = 10)]
    page_size: Option<u32>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    status: Option<String>,
}

/// Teams, filtered, sorted and paged.
#[utoipa::path(
    get,
    path = "/v2/team/list",
    operation_id = "list_team_v2",
    tag = crate::openapi::TEAMS,
    params(ListV2Query),
    responses((status = 200, body = TeamListResponse)),
)]
pub async fn list_v2(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ListV2Query>,
) -> Result<Json<TeamListResponse>, ApiError> {
    let paging = Page::parse(q.page, q.page_size, "page_size", 10, 100)?;
    let sort = match q.sort_by.as_deref() {
        None | Some("created_at") => TeamSort::CreatedAt,
        Some("team_id") => TeamSort::TeamId,
        Some("team_alias") => TeamSort::TeamAlias,
        Some("spend") => TeamSort::Spend,
        Some("max_budget") => TeamSort::MaxBudget,
        Some(other) => {
            return Err(bad_field(
                "sort_by",
                format!(
                    "Invalid sort_by {other:?}: expected team_id, team_alias, created_at, spend or max_budget"
                ),
            ));
        }
    };
    let mut query = TeamQuery {
        member: q.user_id.clone(),
        organization: org_filter(q.organization_id),
        team_id: q.team_id,
        alias_contains: q.team_alias.filter(|a| !a.is_empty()),
        sort,
        descending: descending(q.sort_order.as_deref(), sort == TeamSort::CreatedAt)?,
        page: paging.page,
        size: paging.size,
        visible_to: None,
    };
    let teams: Vec<TeamListEntry>;
    let total: u64;
    match q.status.as_deref() {
        Some("deleted") => {
            if !super::keys::is_admin_reader(&principal) {
                return Err(ApiError::unauthorized(
                    "auth_error",
                    format!(
                        "Only admin users can list deleted teams. Your user role={}",
                        principal.role()
                    ),
                ));
            }
            let (rows, n) = state.store().teams().list_deleted(&query).await?;
            teams = rows
                .into_iter()
                .map(|row| {
                    let mut team = match row.data {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    };
                    team.remove("deleted_at");
                    team.remove("deleted_by");
                    TeamListEntry::Deleted(DeletedTeam {
                        team,
                        deleted_at: format_ms(row.deleted_at),
                        deleted_by: row.deleted_by,
                    })
                })
                .collect();
            total = n;
        }
        None | Some("active") => {
            visibility(&state, &principal, q.user_id.as_deref(), &mut query).await?;
            let (rows, n) = state.store().teams().list(&query).await?;
            let mut out = Vec::with_capacity(rows.len());
            for team in &rows {
                out.push(TeamListEntry::Team(Box::new(
                    team_body(&state, team).await?,
                )));
            }
            teams = out;
            total = n;
        }
        Some(other) => {
            return Err(bad_field(
                "status",
                format!("Invalid status {other:?}: expected active or deleted"),
            ));
        }
    }
    let total_pages = paging.total_pages_in_range(total)?;
    Ok(Json(TeamListResponse {
        teams,
        total,
        page: paging.page,
        page_size: paging.size,
        total_pages,
    }))
}

/// Teams any user may join (`default_team_settings`' available teams).
#[utoipa::path(
    get,
    path = "/team/available",
    operation_id = "list_available_teams",
    tag = crate::openapi::TEAMS,
    responses((status = 200, body = Vec<TeamObject>)),
)]
pub async fn available(State(state): State<AppState>) -> Result<Json<Vec<TeamObject>>, ApiError> {
    let mut out = Vec::new();
    for team_id in &state.config().internal_user_defaults.available_teams {
        if let Some(team) = state.store().teams().find(team_id).await? {
            out.push(team_body(&state, &team).await?);
        }
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterQuery {
    team_id: Option<String>,
    team_alias: Option<String>,
}

/// Team ids and aliases matching a filter, for the UI.
#[utoipa::path(
    get,
    path = "/team/filter/ui",
    operation_id = "ui_view_teams",
    tag = crate::openapi::TEAMS,
    params(FilterQuery),
    responses((status = 200, body = Vec<TeamObject>)),
)]
pub async fn filter_ui(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<FilterQuery>,
) -> Result<Json<Vec<TeamObject>>, ApiError> {
    let mut query = TeamQuery {
        team_id: q.team_id,
        alias_contains: q.team_alias.filter(|a| !a.is_empty()),
        ..TeamQuery::default()
    };
    visibility(&state, &principal, None, &mut query).await?;
    let (teams, _) = state.store().teams().list(&query).await?;
    let mut out = Vec::with_capacity(teams.len());
    for team in &teams {
        out.push(team_body(&state, team).await?);
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(as = TeamMembers)]
enum OneOrMany {
    Many(Vec<MemberSpec>),
    One(MemberSpec),
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TeamMemberAddRequest)]
pub struct MemberAddRequest {
    team_id: Option<String>,
    member: Option<OneOrMany>,
    max_budget_in_team: Option<f64>,
}

/// Who may add members: team managers, or a user joining an available team as a plain member.
fn may_add(
    state: &AppState,
    principal: &Principal,
    access: &TeamAccess,
    team_id: &str,
    specs: &[MemberSpec],
) -> bool {
    if access.manages() {
        return true;
    }
    let me = member_id(principal);
    state
        .config()
        .internal_user_defaults
        .available_teams
        .iter()
        .any(|t| t == team_id)
        && specs.iter().all(|s| {
            s.user_id.as_deref() == me
                && me.is_some()
                && s.role.as_deref().unwrap_or(TEAM_USER) == TEAM_USER
        })
}

/// Adds users to a team, creating unknown ones.
#[utoipa::path(
    post,
    path = "/team/member_add",
    operation_id = "team_member_add",
    tag = crate::openapi::TEAMS,
    request_body = MemberAddRequest,
    responses((status = 200, body = TeamAddMemberResponse)),
)]
pub async fn member_add(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TeamAddMemberResponse>, ApiError> {
    let r: MemberAddRequest = json_body(&state, &headers, body).await?;
    let team_id = require_team_id(r.team_id)?;
    let (specs, single) = match r.member {
        Some(OneOrMany::One(m)) => (vec![m], true),
        Some(OneOrMany::Many(list)) if !list.is_empty() => (list, false),
        _ => return Err(missing("member", "member is required")),
    };
    let team = find_team(&state, &team_id).await?;
    let access = TeamAccess::of(&state, &principal, &team).await?;
    if !may_add(&state, &principal, &access, &team_id, &specs) {
        return Err(not_team_admin("/team/member_add", &team_id));
    }
    let resolved = new_members(&state, &principal, &specs, r.max_budget_in_team, "member").await?;
    let existing = state.store().teams().members(&team_id).await?;
    let existing_members = TeamObject::new(&team, &existing).members_with_roles;
    let existing_json = serde_json::to_value(&existing_members).unwrap_or_default();
    let (dupes, fresh): (Vec<_>, Vec<_>) = resolved
        .into_iter()
        .partition(|(m, _)| existing.iter().any(|e| e.user_id == m.user_id));
    if fresh.is_empty() {
        let message = if single {
            let (m, email) = &dupes[0];
            format!(
                "User already in team. Member: user_id={}, user_email={}. Existing members={existing_json}",
                m.user_id,
                email.as_deref().unwrap_or("None")
            )
        } else {
            format!("All users are already in team. Existing members={existing_json}")
        };
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "team_member_already_in_team",
            message,
        )
        .with_param("member"));
    }
    let members: Vec<NewMember> = fresh.iter().map(|(m, _)| m.clone()).collect();
    state
        .store()
        .teams()
        .add_members(&team_id, &members)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "team_member_already_in_team",
                "A member was added concurrently; nothing was changed",
            )
            .with_param("member"),
            other => other.into(),
        })?;
    let mut users = Vec::new();
    for m in &members {
        if let Some(user) = state.store().users().find(&m.user_id).await? {
            let teams = state.store().users().team_ids(&user.user_id).await?;
            users.push(UserTable::new(&user, &teams));
        }
    }
    let rows = state.store().teams().members(&team_id).await?;
    let added: Vec<TeamMemberRow> = rows
        .iter()
        .filter(|row| members.iter().any(|m| m.user_id == row.user_id))
        .cloned()
        .collect();
    let body = TeamAddMemberResponse {
        team: TeamObject::new(&team, &rows),
        updated_users: users,
        updated_team_memberships: memberships(&state, &added).await?,
    };
    let members_after = serde_json::to_value(&body.team.members_with_roles).unwrap_or_default();
    Auditor::new(&state, &principal, &headers)
        .record(
            &state,
            "updated",
            TEAMS_TABLE,
            &team_id,
            Some(audit_members(existing_json)),
            Some(audit_members(members_after)),
        )
        .await;
    Ok(Json(body))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = BulkTeamMemberAddRequest)]
pub struct BulkMemberAddRequest {
    team_id: Option<String>,
    members: Option<Vec<MemberSpec>>,
    all_users: Option<bool>,
    max_budget_in_team: Option<f64>,
}

/// Adds many users (or every user) to a team.
#[utoipa::path(
    post,
    path = "/team/bulk_member_add",
    operation_id = "bulk_team_member_add",
    tag = crate::openapi::TEAMS,
    request_body = BulkMemberAddRequest,
    responses((status = 200, body = BulkTeamMemberAddResponse)),
)]
pub async fn bulk_member_add(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BulkTeamMemberAddResponse>, ApiError> {
    let r: BulkMemberAddRequest = json_body(&state, &headers, body).await?;
    let team_id = require_team_id(r.team_id)?;
    let team = find_team(&state, &team_id).await?;
    let access = TeamAccess::of(&state, &principal, &team).await?;
    if !access.manages() {
        return Err(if access.is_member() {
            not_team_admin("/team/bulk_member_add", &team_id)
        } else {
            admin_only(&principal, "/team/bulk_member_add")
        });
    }
    let specs: Vec<MemberSpec> = if r.all_users == Some(true) {
        let mut all = Vec::new();
        for page in 1.. {
            let query = bursar_store::UserQuery {
                page,
                page_size: 100,
                ..Default::default()
            };
            let (rows, total) = state.store().users().list(&query).await?;
            let done = rows.is_empty()
                || all.len() + rows.len() >= usize::try_from(total).unwrap_or(usize::MAX);
            all.extend(rows.into_iter().map(|(u, _)| MemberSpec {
                role: None,
                user_id: Some(u.user_id),
                user_email: None,
            }));
            if done {
                break;
            }
        }
        all
    } else {
        r.members.unwrap_or_default()
    };
    if specs.is_empty() {
        return Err(bad_field(
            "members",
            "members must not be empty (or pass all_users: true)",
        ));
    }
    if specs.len() > MAX_BULK_MEMBERS {
        return Err(bad_field(
            "members",
            format!(
                "At most {MAX_BULK_MEMBERS} members can be added at once; got {}",
                specs.len()
            ),
        ));
    }
    money("max_budget_in_team", r.max_budget_in_team)?;
    let mut results = Vec::with_capacity(specs.len());
    let mut ok = 0usize;
    for spec in &specs {
        // Each member is its own transaction: one bad entry does not stop the others.
        let outcome = add_one(&state, &principal, &team_id, spec, r.max_budget_in_team).await;
        let (success, error, user_id) = match outcome {
            Ok(user_id) => (true, None, Some(user_id)),
            Err(e) => (false, Some(e.message), spec.user_id.clone()),
        };
        ok += usize::from(success);
        results.push(TeamMemberAddResult {
            user_id,
            user_email: spec.user_email.clone(),
            success,
            error,
            updated_user: None,
            updated_team_membership: None,
        });
    }
    let updated = find_team(&state, &team_id).await?;
    let updated_team = team_body(&state, &updated).await?;
    Auditor::new(&state, &principal, &headers)
        .record(
            &state,
            "updated",
            TEAMS_TABLE,
            &team_id,
            None,
            serde_json::to_value(&updated_team).ok(),
        )
        .await;
    Ok(Json(BulkTeamMemberAddResponse {
        team_id,
        results,
        total_requested: specs.len(),
        successful_additions: ok,
        failed_additions: specs.len() - ok,
        updated_team: Some(updated_team),
    }))
}

async fn add_one(
    state: &AppState,
    principal: &Principal,
    team_id: &str,
    spec: &MemberSpec,
    max_budget_in_team: Option<f64>,
) -> Result<String, ApiError> {
    let mut resolved = new_members(
        state,
        principal,
        std::slice::from_ref(spec),
        max_budget_in_team,
        "members",
    )
    .await?;
    let (member, _) = resolved.remove(0);
    if state
        .store()
        .teams()
        .member(team_id, &member.user_id)
        .await?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "team_member_already_in_team",
            format!("User {} is already in team {team_id}", member.user_id),
        ));
    }
    state
        .store()
        .teams()
        .add_members(team_id, std::slice::from_ref(&member))
        .await?;
    Ok(member.user_id)
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TeamMemberUpdateRequest)]
pub struct MemberRef {
    team_id: Option<String>,
    user_id: Option<String>,
    user_email: Option<String>,
    role: Option<String>,
    max_budget_in_team: Option<f64>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
}

/// The user id a member reference names; an unknown email is a 404.
/// The user a member reference names (team and organization member routes); an unknown
/// email is a 404.
pub(super) async fn member_user_id(
    state: &AppState,
    user_id: Option<&String>,
    user_email: Option<&String>,
) -> Result<String, ApiError> {
    match (user_id, user_email) {
        (Some(id), _) => Ok(id.clone()),
        (None, Some(email)) => Ok(state
            .store()
            .users()
            .find_by_email(email)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("User with email {email} not found"))
                    .with_param("user_email")
            })?
            .user_id),
        (None, None) => Err(bad_field(
            "user_id",
            "Either user_id or user_email must be provided",
        )),
    }
}

/// Removes a member from a team.
#[utoipa::path(
    post,
    path = "/team/member_delete",
    operation_id = "team_member_delete",
    tag = crate::openapi::TEAMS,
    request_body = TeamMemberDeleteRequest,
    responses((status = 200, body = TeamObject)),
)]
pub async fn member_delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TeamObject>, ApiError> {
    let TeamMemberDeleteRequest(r) = json_body(&state, &headers, body).await?;
    let team_id = require_team_id(r.team_id.clone())?;
    let team = find_team(&state, &team_id).await?;
    let access = TeamAccess::of(&state, &principal, &team).await?;
    if !access.manages() {
        return Err(not_team_admin("/team/member_delete", &team_id));
    }
    let user_id = member_user_id(&state, r.user_id.as_ref(), r.user_email.as_ref()).await?;
    if state
        .store()
        .teams()
        .member(&team_id, &user_id)
        .await?
        .is_none()
    {
        // LiteLLM's status and message.
        return Err(bad_field("user_id", "User not found in team"));
    }
    let before = team_body(&state, &team).await?;
    let tokens = state
        .store()
        .teams()
        .remove_members(&team_id, &[user_id])
        .await?;
    for token in &tokens {
        state.auth_cache().invalidate(token).await;
    }
    let body = team_body(&state, &team).await?;
    Auditor::new(&state, &principal, &headers)
        .record(
            &state,
            "updated",
            TEAMS_TABLE,
            &team_id,
            serde_json::to_value(&before).ok(),
            serde_json::to_value(&body).ok(),
        )
        .await;
    Ok(Json(body))
}

/// Changes a member's role, budget or limits in the team.
#[utoipa::path(
    post,
    path = "/team/member_update",
    operation_id = "team_member_update",
    tag = crate::openapi::TEAMS,
    request_body = MemberRef,
    responses((status = 200, body = TeamMemberUpdateResponse)),
)]
pub async fn member_update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TeamMemberUpdateResponse>, ApiError> {
    let r: MemberRef = json_body(&state, &headers, body).await?;
    let team_id = require_team_id(r.team_id.clone())?;
    let team = find_team(&state, &team_id).await?;
    let access = TeamAccess::of(&state, &principal, &team).await?;
    if !access.manages() {
        return Err(not_team_admin("/team/member_update", &team_id));
    }
    let user_id = member_user_id(&state, r.user_id.as_ref(), r.user_email.as_ref()).await?;
    let role = r
        .role
        .as_deref()
        .map(|role| check_member_role(Some(role)))
        .transpose()?;
    let mut budget = BudgetPatch::default();
    if r.max_budget_in_team.is_some() {
        budget.max_budget = Some(money("max_budget_in_team", r.max_budget_in_team)?);
    }
    if r.tpm_limit.is_some() {
        budget.tpm_limit = Some(limit("tpm_limit", r.tpm_limit)?);
    }
    if r.rpm_limit.is_some() {
        budget.rpm_limit = Some(limit("rpm_limit", r.rpm_limit)?);
    }
    let member = state
        .store()
        .teams()
        .update_member(
            &team_id,
            &user_id,
            role.as_deref(),
            &budget,
            &actor(&principal),
        )
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("User {user_id} is not a member of team {team_id}"))
                .with_param("user_id")
        })?;
    let budget_row = match &member.budget_id {
        Some(id) => state.store().budgets().find(id).await?,
        None => None,
    };
    // The member's keys act with the member's team budget and role.
    state.auth_cache().invalidate_team(&team_id);
    let body = TeamMemberUpdateResponse::new(&member, budget_row.as_ref());
    record_team_change(&state, &principal, &headers, &team_id, &body).await;
    Ok(Json(body))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = BlockTeamRequest)]
pub struct TeamIdBody {
    team_id: Option<String>,
}

/// Blocks a team: its keys' requests are refused.
#[utoipa::path(
    post,
    path = "/team/block",
    operation_id = "block_team",
    tag = crate::openapi::TEAMS,
    request_body = TeamIdBody,
    responses((status = 200, body = TeamObject)),
)]
pub async fn block(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TeamObject>, ApiError> {
    set_blocked(state, principal, headers, body, true).await
}

/// Unblocks a team.
#[utoipa::path(
    post,
    path = "/team/unblock",
    operation_id = "unblock_team",
    tag = crate::openapi::TEAMS,
    request_body = TeamIdBody,
    responses((status = 200, body = TeamObject)),
)]
pub async fn unblock(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TeamObject>, ApiError> {
    set_blocked(state, principal, headers, body, false).await
}

async fn set_blocked(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
    blocked: bool,
) -> Result<Json<TeamObject>, ApiError> {
    let route = if blocked {
        "/team/block"
    } else {
        "/team/unblock"
    };
    let r: TeamIdBody = json_body(&state, &headers, body).await?;
    let team_id = require_team_id(r.team_id)?;
    let team = find_team(&state, &team_id).await?;
    let access = TeamAccess::of(&state, &principal, &team).await?;
    if !access.proxy_admin && !access.org_admin {
        return Err(admin_only(&principal, route));
    }
    let patch = TeamPatch {
        blocked: Some(blocked),
        ..TeamPatch::default()
    };
    let action = if blocked { "blocked" } else { "unblocked" };
    Ok(Json(
        patch_team(&state, &principal, &headers, &team, &patch, action).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TeamModelAddRequest)]
pub struct TeamModelsRequest {
    team_id: Option<String>,
    models: Vec<String>,
}

/// Adds models to a team's allowed models.
#[utoipa::path(
    post,
    path = "/team/model/add",
    operation_id = "team_model_add",
    tag = crate::openapi::TEAMS,
    request_body = TeamModelsRequest,
    responses((status = 200, body = TeamObject)),
)]
pub async fn model_add(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TeamObject>, ApiError> {
    let r: TeamModelsRequest = json_body(&state, &headers, body).await?;
    change_models(state, principal, headers, r, true).await
}

/// Removes models from a team's allowed models.
#[utoipa::path(
    post,
    path = "/team/model/delete",
    operation_id = "team_model_delete",
    tag = crate::openapi::TEAMS,
    request_body = TeamModelDeleteRequest,
    responses((status = 200, body = TeamObject)),
)]
pub async fn model_delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TeamObject>, ApiError> {
    let TeamModelDeleteRequest(r) = json_body(&state, &headers, body).await?;
    change_models(state, principal, headers, r, false).await
}

async fn change_models(
    state: AppState,
    principal: Principal,
    headers: HeaderMap,
    r: TeamModelsRequest,
    add: bool,
) -> Result<Json<TeamObject>, ApiError> {
    let team_id = require_team_id(r.team_id)?;
    let team = find_team(&state, &team_id).await?;
    let access = TeamAccess::of(&state, &principal, &team).await?;
    if !access.manages() {
        return Err(ApiError::forbidden(
            "Only proxy admin or team admin can modify team models",
        ));
    }
    let mut models = team.models.clone();
    if add {
        for m in &r.models {
            if !models.contains(m) {
                models.push(m.clone());
            }
        }
    } else {
        models.retain(|m| !r.models.contains(m));
    }
    let patch = TeamPatch {
        models: Some(models),
        ..TeamPatch::default()
    };
    if let Some(org) = &team.organization_id {
        check_org_fit(&state, &team_id, org, &patch, false).await?;
    }
    let data = patch_team(&state, &principal, &headers, &team, &patch, "updated").await?;
    Ok(Json(data))
}

/// The permissions team members may be given, and those they have.
#[utoipa::path(
    get,
    path = "/team/permissions_list",
    operation_id = "team_member_permissions",
    tag = crate::openapi::TEAMS,
    params(InfoQuery),
    responses((status = 200, body = GetTeamMemberPermissionsResponse)),
)]
pub async fn permissions_list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<InfoQuery>,
) -> Result<Json<GetTeamMemberPermissionsResponse>, ApiError> {
    let team_id = require_team_id(q.team_id)?;
    let team = find_team(&state, &team_id).await?;
    let access = TeamAccess::of(&state, &principal, &team).await?;
    if !access.manages() && !access.viewer {
        return Err(not_team_admin("/team/permissions_list", &team_id));
    }
    Ok(Json(GetTeamMemberPermissionsResponse {
        team_id,
        team_member_permissions: Some(team.team_member_permissions),
        all_available_permissions: TEAM_MEMBER_PERMISSIONS
            .iter()
            .map(|p| p.to_string())
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = UpdateTeamMemberPermissionsRequest)]
pub struct PermissionsUpdateRequest {
    team_id: Option<String>,
    team_member_permissions: Vec<String>,
}

/// Sets the permissions team members have.
#[utoipa::path(
    post,
    path = "/team/permissions_update",
    operation_id = "update_team_member_permissions",
    tag = crate::openapi::TEAMS,
    request_body = PermissionsUpdateRequest,
    responses((status = 200, body = TeamObject)),
)]
pub async fn permissions_update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TeamObject>, ApiError> {
    let r: PermissionsUpdateRequest = json_body(&state, &headers, body).await?;
    let team_id = require_team_id(r.team_id)?;
    let team = find_team(&state, &team_id).await?;
    let access = TeamAccess::of(&state, &principal, &team).await?;
    if !access.manages() {
        return Err(not_team_admin("/team/permissions_update", &team_id));
    }
    check_permissions(&r.team_member_permissions)?;
    let patch = TeamPatch {
        team_member_permissions: Some(r.team_member_permissions),
        ..TeamPatch::default()
    };
    let data = patch_team(&state, &principal, &headers, &team, &patch, "updated").await?;
    Ok(Json(data))
}

/// Whether the caller may perform a key-management `route` on a key of `team` (team
/// managers always; plain members when the team grants the route). On success, the caller's
/// standing towards the team.
pub async fn may_manage_team_key(
    state: &AppState,
    principal: &Principal,
    team: &TeamRow,
    route: &str,
) -> Result<TeamAccess, ApiError> {
    let access = TeamAccess::of(state, principal, team).await?;
    if access.manages() {
        return Ok(access);
    }
    match access.role.as_deref() {
        None => Err(ApiError::unauthorized(
            "team_member_permission_error",
            format!(
                "User {} does not belong to team {}. Team-scoped key management endpoints can only be used for keys in your own team.",
                principal.user_id().unwrap_or("None"),
                team.team_id
            ),
        )
        .with_param(route)),
        Some(_) if team.team_member_permissions.iter().any(|p| p == route) => Ok(access),
        Some(_) => Err(ApiError::unauthorized(
            "team_member_permission_error",
            format!(
                "Team member does not have permissions for endpoint: {route}. You only have access to the following endpoints: {:?} for team {}. To create keys for this team, please ask your proxy admin to check the team member permission settings and update the settings to allow team member users to create keys.",
                team.team_member_permissions, team.team_id
            ),
        )
        .with_param(route)),
    }
}

/// The ids of teams the user administers (for `include_team_keys`).
pub async fn admin_team_ids(state: &AppState, user_id: &str) -> Result<Vec<String>, ApiError> {
    Ok(state
        .store()
        .teams()
        .memberships_of(user_id)
        .await?
        .into_iter()
        .filter(|(_, role)| role == TEAM_ADMIN)
        .map(|(team, _)| team)
        .collect())
}

/// A team's membership as the audit log records a member change.
fn audit_members(members_with_roles: Value) -> Value {
    let mut map = Map::new();
    map.insert("members_with_roles".into(), members_with_roles);
    Value::Object(map)
}

/// The calling key's user's own membership of a team, with its budget.
#[utoipa::path(
    get,
    path = "/team/{team_id}/members/me",
    operation_id = "team_member_me",
    tag = crate::openapi::TEAMS,
    params(("team_id" = String, Path, description = "The team")),
    responses((status = 200, body = TeamMemberInfoResponse)),
)]
pub async fn member_me(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(team_id): Path<String>,
) -> Result<Json<TeamMemberInfoResponse>, ApiError> {
    let Some(me) = principal.user_id().map(str::to_string) else {
        return Err(bad_field(
            "user_id",
            "API key has no associated user_id; cannot resolve 'me' for team membership.",
        ));
    };
    let team = find_team(&state, &team_id).await?;
    let member = state
        .store()
        .teams()
        .member(&team_id, &me)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "User user_id={me} is not a member of team_id={team_id}."
            ))
        })?;
    let budget = match &member.budget_id {
        Some(id) => state.store().budgets().find(id).await?,
        None => None,
    };
    let spend = member.spend.as_usd();
    Ok(Json(TeamMemberInfoResponse {
        user_id: member.user_id,
        team_id: team.team_id,
        budget_id: member.budget_id,
        spend: Some(spend),
        total_spend: Some(member.total_spend.as_usd().max(spend)),
        litellm_budget_table: budget.as_ref().map(BudgetTable::new),
        role: Some(member.role),
        user_email: member.user_email,
        team_alias: team.team_alias,
    }))
}

/// The membership a member reset acts on, after LiteLLM's access rules: proxy admins, org
/// admins of the team's organization and team admins; never a caller's own (but a proxy
/// admin's).
async fn member_to_reset(
    state: &AppState,
    principal: &Principal,
    team_id: &str,
    user_id: &str,
) -> Result<(TeamRow, TeamMemberRow), ApiError> {
    let team = find_team(state, team_id).await?;
    let access = TeamAccess::of(state, principal, &team).await?;
    if !access.manages() {
        return Err(ApiError::forbidden("You do not have access to this team"));
    }
    if !access.proxy_admin && principal.user_id() == Some(user_id) {
        return Err(ApiError::forbidden(
            "Cannot reset your own spend. Ask a proxy admin.",
        ));
    }
    let member = state
        .store()
        .teams()
        .member(team_id, user_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("User {user_id} is not a member of team {team_id}."))
        })?;
    Ok((team, member))
}

/// Sets a member's spend in the team back (up to its current spend and member budget).
#[utoipa::path(
    post,
    path = "/team/{team_id}/member/{user_id}/reset_spend",
    operation_id = "reset_team_member_spend_fn",
    tag = crate::openapi::TEAMS,
    params(
        ("team_id" = String, Path, description = "The team"),
        ("user_id" = String, Path, description = "The member"),
    ),
    request_body = super::keys::ResetSpendRequest,
    responses((status = 200, body = TeamMemberSpendResetResponse)),
)]
pub async fn reset_member_spend(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((team_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TeamMemberSpendResetResponse>, ApiError> {
    let request: super::keys::ResetSpendRequest = json_body(&state, &headers, body).await?;
    let (team, member) = member_to_reset(&state, &principal, &team_id, &user_id).await?;
    let budget = match &member.budget_id {
        Some(id) => state.store().budgets().find(id).await?,
        None => None,
    };
    let max = budget.as_ref().and_then(|b| b.max_budget);
    let to = request.checked(member.spend, max)?;
    if !state
        .store()
        .teams()
        .reset_member_spend(&team_id, &user_id, member.spend, to)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "bad_request_error",
            format!(
                "Member spend changed since it was read; reset_to ({}) must be <= current spend. Retry.",
                request.reset_to
            ),
        ));
    }
    state.auth_cache().invalidate_team(&team_id);
    let scope = bursar_limits::ScopeId::new(
        bursar_limits::ScopeKind::TeamMember,
        format!("{team_id}:{user_id}"),
    );
    if let Err(e) = state.limiter().reseed(&scope).await {
        tracing::warn!(error = %e, "could not reseed the member's spend");
    }
    let body = TeamMemberSpendResetResponse {
        team_id: team.team_id,
        user_id,
        spend: to.as_usd(),
        previous_spend: member.spend.as_usd(),
        max_budget: max.map(bursar_core::NanoUsd::as_usd),
    };
    record_team_change(&state, &principal, &headers, &team_id, &body).await;
    Ok(Json(body))
}

/// Puts a member back on the team's default member budget (or on none, without one): the
/// member's own budget row is detached; spend is kept.
#[utoipa::path(
    post,
    path = "/team/{team_id}/member/{user_id}/reset_budget",
    operation_id = "reset_team_member_budget_fn",
    tag = crate::openapi::TEAMS,
    params(
        ("team_id" = String, Path, description = "The team"),
        ("user_id" = String, Path, description = "The member"),
    ),
    responses((status = 200, body = TeamMemberResetBudgetResponse)),
)]
pub async fn reset_member_budget(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((team_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<TeamMemberResetBudgetResponse>, ApiError> {
    let (team, member) = member_to_reset(&state, &principal, &team_id, &user_id).await?;
    let default = match team.metadata.get(MEMBER_BUDGET_KEY).and_then(Value::as_str) {
        Some(id) => state.store().budgets().find(id).await?.map(|b| b.budget_id),
        None => None,
    };
    // A member without a budget row of their own has the team's default (admission reads
    // it so), so the reset detaches rather than shares the default row.
    state
        .store()
        .teams()
        .set_member_budget(&team_id, &user_id, None)
        .await?;
    state.auth_cache().invalidate_team(&team_id);
    let body = TeamMemberResetBudgetResponse {
        team_id: team.team_id,
        user_id,
        budget_source: if default.is_some() {
            "team_default"
        } else {
            "none"
        }
        .into(),
        budget_id: default,
        previous_budget_id: member.budget_id,
    };
    record_team_change(&state, &principal, &headers, &team_id, &body).await;
    Ok(Json(body))
}

/// The team metadata fields the configuration declares (advisory: what the UI's team form
/// offers).
#[utoipa::path(
    get,
    path = "/team/metadata_schema",
    operation_id = "get_team_metadata_schema",
    tag = crate::openapi::TEAMS,
    responses((status = 200, body = TeamMetadataSchemaResponse)),
)]
pub async fn metadata_schema(State(state): State<AppState>) -> Json<TeamMetadataSchemaResponse> {
    Json(TeamMetadataSchemaResponse {
        fields: state
            .config()
            .general
            .team_metadata_schema
            .iter()
            .map(|f| TeamMetadataFieldSchema {
                key: f.key.clone(),
                label: f.label.clone(),
            })
            .collect(),
    })
}

/// `POST /team/permissions_bulk_update`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkUpdateTeamMemberPermissionsRequest {
    /// Permissions to add to each team's member permissions.
    permissions: Vec<String>,
    team_ids: Option<Vec<String>>,
    #[serde(default)]
    apply_to_all_teams: bool,
}

/// Adds permissions to the member permissions of the listed teams, or of every team (proxy
/// admins only); a team that has them all already is left as it is.
#[utoipa::path(
    post,
    path = "/team/permissions_bulk_update",
    operation_id = "bulk_update_team_member_permissions",
    tag = crate::openapi::TEAMS,
    request_body = BulkUpdateTeamMemberPermissionsRequest,
    responses((status = 200, body = BulkUpdateTeamMemberPermissionsResponse)),
)]
pub async fn permissions_bulk_update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BulkUpdateTeamMemberPermissionsResponse>, ApiError> {
    let r: BulkUpdateTeamMemberPermissionsRequest = json_body(&state, &headers, body).await?;
    if !principal.is_proxy_admin() {
        return Err(ApiError::forbidden(
            "Only proxy admins can bulk-update team permissions",
        ));
    }
    if r.permissions.is_empty() {
        return Ok(Json(BulkUpdateTeamMemberPermissionsResponse {
            message: "No permissions provided".into(),
            teams_updated: 0,
            permissions_appended: None,
        }));
    }
    check_permissions(&r.permissions)?;
    let teams = match (r.team_ids, r.apply_to_all_teams) {
        (Some(_), true) => {
            return Err(bad_field(
                "team_ids",
                "Cannot set both apply_to_all_teams=true and team_ids",
            ));
        }
        (None, false) => {
            return Err(bad_field(
                "team_ids",
                "Must provide team_ids or set apply_to_all_teams=true",
            ));
        }
        (None, true) => state.store().teams().list(&TeamQuery::default()).await?.0,
        (Some(ids), false) => {
            let mut found = Vec::with_capacity(ids.len());
            let mut missing = Vec::new();
            for id in &ids {
                match state.store().teams().find(id).await? {
                    Some(team) => found.push(team),
                    None => missing.push(format!("'{id}'")),
                }
            }
            if !missing.is_empty() {
                return Err(ApiError::not_found(format!(
                    "Team(s) not found: [{}]",
                    missing.join(", ")
                ))
                .with_param("team_ids"));
            }
            found
        }
    };
    let mut teams_updated = 0;
    for team in &teams {
        let mut merged = team.team_member_permissions.clone();
        let before = merged.len();
        for p in &r.permissions {
            if !merged.contains(p) {
                merged.push(p.clone());
            }
        }
        if merged.len() == before {
            continue;
        }
        merged.sort();
        let patch = TeamPatch {
            team_member_permissions: Some(merged),
            ..TeamPatch::default()
        };
        patch_team(&state, &principal, &headers, team, &patch, "updated").await?;
        teams_updated += 1;
    }
    let mut appended = r.permissions;
    appended.sort();
    appended.dedup();
    Ok(Json(BulkUpdateTeamMemberPermissionsResponse {
        message: format!("Updated member permissions of {teams_updated} team(s)"),
        teams_updated,
        permissions_appended: Some(appended),
    }))
}

/// Records a change to a team whose new state `body` describes (an answer, not the row).
async fn record_team_change(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    team_id: &str,
    body: &impl serde::Serialize,
) {
    Auditor::new(state, principal, headers)
        .record(
            state,
            "updated",
            TEAMS_TABLE,
            team_id,
            None,
            serde_json::to_value(body).ok(),
        )
        .await;
}
