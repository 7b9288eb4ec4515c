//! `/management/v1/*`: LiteLLM's bulk user and team-member operations. Each row succeeds or
//! fails on its own and says so; a request that cannot be taken at all is answered with an RFC
//! 9457 problem document (`application/problem+json`), as LiteLLM's v1 routes answer.

use super::audit::Auditor;
use super::keys::actor;
use super::scope::{self, TeamAccess};
use super::{limit_change, management_body, money_change, parse_body};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bursar_store::{BudgetPatch, StoreError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashSet;
use utoipa::ToSchema;

/// Rows one bulk request takes at most (LiteLLM's limit).
const MAX_ROWS: usize = 500;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:litellm:error:<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl Problem {
    fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:litellm:error:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }
}

impl From<ApiError> for Problem {
    fn from(e: ApiError) -> Problem {
        let slug = match e.status.as_u16() {
            400 => "invalid-request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not-found",
            409 => "conflict",
            413 => "request-too-large",
            422 => "invalid-request-body",
            503 => "service-unavailable",
            _ => "internal-error",
        };
        Problem::new(e.status, slug, e.message)
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        ApiError::from(e).into()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// A v1 answer: the rows, or a problem.
type V1<T> = Result<axum::Json<T>, Problem>;

/// Reads a body (size-capped and checked) as `T`, a problem when it cannot be.
async fn body<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Problem> {
    let bytes = management_body(state, headers, body).await?;
    Ok(parse_body(&bytes)?)
}

fn check_count(n: usize, what: &str) -> Result<(), Problem> {
    if (1..=MAX_ROWS).contains(&n) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request-body",
            format!("{what}: between 1 and {MAX_ROWS} entries are required, got {n}"),
        ))
    }
}

/// `POST /management/v1/users/bulk`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkNewUserRequest {
    /// Each a `/user/new` body (`auto_create_key` defaults to false here).
    #[schema(value_type = Vec<super::users::NewUserRequest>)]
    users: Vec<Map<String, Value>>,
}

/// One user of a bulk creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkNewUserResult {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub success: bool,
    pub teams: Option<Vec<String>>,
    /// The new key, when one was asked for.
    pub key: Option<String>,
    pub error: Option<String>,
}

/// Counts of a bulk creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkNewUserMeta {
    pub total_requested: usize,
    pub created: usize,
    pub failed: usize,
}

/// `POST /management/v1/users/bulk`: one result per user, in the request's order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkNewUserResponse {
    pub data: Vec<BulkNewUserResult>,
    pub meta: BulkNewUserMeta,
}

fn text(item: &Map<String, Value>, name: &str) -> Option<String> {
    item.get(name).and_then(Value::as_str).map(str::to_string)
}

/// Creates up to 500 users as `/user/new` does, each on its own.
#[utoipa::path(
    post,
    path = "/management/v1/users/bulk",
    operation_id = "bulk_create_users_route",
    tag = crate::openapi::USERS,
    request_body = BulkNewUserRequest,
    responses(
        (status = 200, body = BulkNewUserResponse),
        (status = "default", description = "A request that cannot be taken (a problem document; the route check answers in the usual envelope)", content((Problem = "application/problem+json"), (crate::error::ErrorResponse = "application/json"))),
    ),
)]
pub async fn bulk_create_users(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    raw: Body,
) -> V1<BulkNewUserResponse> {
    let request: BulkNewUserRequest = body(&state, &headers, raw).await?;
    check_count(request.users.len(), "users")?;
    if request
        .users
        .iter()
        .any(|u| u.get("send_invite_email") == Some(&Value::Bool(true)))
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request-body",
            "send_invite_email is not supported for bulk user creation",
        ));
    }
    let (mut seen_ids, mut seen_emails) = (HashSet::new(), HashSet::new());
    let mut data = Vec::with_capacity(request.users.len());
    for mut item in request.users {
        let user_id = text(&item, "user_id");
        let user_email = text(&item, "user_email");
        let duplicate = if let Some(id) = &user_id
            && !seen_ids.insert(id.clone())
        {
            Some(format!("Duplicate user_id in request: {id}"))
        } else if let Some(email) = &user_email
            && !seen_emails.insert(email.to_lowercase())
        {
            Some(format!("Duplicate user_email in request: {email}"))
        } else {
            None
        };
        let outcome = match duplicate {
            Some(error) => Err(error),
            None => {
                item.entry("auto_create_key").or_insert(Value::Bool(false));
                match serde_json::to_vec(&item)
                    .map_err(|e| ApiError::bad_request(e.to_string()))
                    .and_then(|bytes| parse_body(&bytes))
                {
                    Ok(r) => super::users::create_user(&state, &principal, &headers, r)
                        .await
                        .map_err(|e| e.message),
                    Err(e) => Err(e.message),
                }
            }
        };
        data.push(match outcome {
            Ok(created) => BulkNewUserResult {
                user_id: created.key.user_id.clone(),
                user_email: created.user_email.clone(),
                success: true,
                teams: created.teams.clone(),
                key: Some(created.key.key.clone()).filter(|k| !k.is_empty()),
                error: None,
            },
            Err(error) => BulkNewUserResult {
                user_id,
                user_email,
                success: false,
                teams: None,
                key: None,
                error: Some(error),
            },
        });
    }
    let created = data.iter().filter(|d| d.success).count();
    Ok(axum::Json(BulkNewUserResponse {
        meta: BulkNewUserMeta {
            total_requested: data.len(),
            created,
            failed: data.len() - created,
        },
        data,
    }))
}

/// `POST /management/v1/users/bulk_delete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDeleteUserRequest {
    user_ids: Vec<String>,
}

/// One user of a bulk deletion.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkDeleteUserResult {
    pub user_id: String,
    pub user_email: Option<String>,
    pub success: bool,
    /// The teams the user was removed from.
    pub teams_removed: Vec<String>,
    pub error: Option<String>,
}

/// `POST /management/v1/users/bulk_delete`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkDeleteUsersResponse {
    pub data: Vec<BulkDeleteUserResult>,
}

/// Deletes up to 500 users with their keys and memberships; the valid ones go in one
/// transaction. Proxy admins may delete anyone, org admins the members of their organizations.
#[utoipa::path(
    post,
    path = "/management/v1/users/bulk_delete",
    operation_id = "bulk_delete_users_action",
    tag = crate::openapi::USERS,
    request_body = BulkDeleteUserRequest,
    responses(
        (status = 200, body = BulkDeleteUsersResponse),
        (status = "default", description = "A request that cannot be taken (a problem document; the route check answers in the usual envelope)", content((Problem = "application/problem+json"), (crate::error::ErrorResponse = "application/json"))),
    ),
)]
pub async fn bulk_delete_users(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    raw: Body,
) -> V1<BulkDeleteUsersResponse> {
    let request: BulkDeleteUserRequest = body(&state, &headers, raw).await?;
    check_count(request.user_ids.len(), "user_ids")?;
    let administered = if principal.is_proxy_admin() {
        None
    } else {
        let orgs = scope::admin_org_ids(&state, &principal).await?;
        if orgs.is_empty() {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Only PROXY_ADMIN or ORG_ADMIN users may delete users.",
            ));
        }
        Some(orgs)
    };
    let mut seen = HashSet::new();
    let mut data = Vec::with_capacity(request.user_ids.len());
    let mut doomed = Vec::new();
    for user_id in request.user_ids {
        let fail = |error: String, email: Option<String>| BulkDeleteUserResult {
            user_id: user_id.clone(),
            user_email: email,
            success: false,
            teams_removed: Vec::new(),
            error: Some(error),
        };
        if !seen.insert(user_id.clone()) {
            data.push(fail(
                format!("Duplicate user_id in request: {user_id}"),
                None,
            ));
            continue;
        }
        let Some(user) = state.store().users().find(&user_id).await? else {
            data.push(fail(format!("User id={user_id} not found"), None));
            continue;
        };
        if let Some(orgs) = &administered {
            let theirs = state.store().orgs().memberships_of(&user_id).await?;
            let in_scope = theirs.iter().any(|m| orgs.contains(&m.organization_id));
            if !in_scope {
                data.push(fail(
                    format!(
                        "User {user_id} is not within your admin scope. Only PROXY_ADMIN may delete users outside your administered organizations."
                    ),
                    user.user_email.clone(),
                ));
                continue;
            }
        }
        let teams = state.store().users().team_ids(&user_id).await?;
        data.push(BulkDeleteUserResult {
            user_id,
            user_email: user.user_email.clone(),
            success: true,
            teams_removed: teams,
            error: None,
        });
        doomed.push(user);
    }
    super::users::delete_users(&state, &principal, &headers, &doomed).await?;
    Ok(axum::Json(BulkDeleteUsersResponse { data }))
}

/// A team member named by id or email (exactly one).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRow {
    user_id: Option<String>,
    user_email: Option<String>,
}

/// `POST /management/v1/teams/{team_id}/members/bulk_delete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkTeamMemberDeleteRequest {
    members: Vec<MemberRow>,
}

/// One member of a bulk removal.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkTeamMemberDeleteResult {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub success: bool,
    pub error: Option<String>,
}

/// `POST /management/v1/teams/{team_id}/members/bulk_delete`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkTeamMemberDeleteResponse {
    pub data: Vec<BulkTeamMemberDeleteResult>,
}

/// The team, when the caller manages it; problems otherwise.
async fn managed_team(
    state: &AppState,
    principal: &Principal,
    team_id: &str,
) -> Result<bursar_store::TeamRow, Problem> {
    let Some(team) = state.store().teams().find(team_id).await? else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "team-not-found",
            format!("Team id={team_id} does not exist in db"),
        ));
    };
    if !TeamAccess::of(state, principal, &team).await?.manages() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "Call not allowed. User not proxy admin OR team admin OR org admin for this team. team_id={team_id}"
            ),
        ));
    }
    Ok(team)
}

/// The member a row names, or why it names none.
async fn member_of(
    state: &AppState,
    team_id: &str,
    row: &MemberRow,
) -> Result<Result<bursar_store::TeamMemberRow, String>, Problem> {
    let user_id = match (&row.user_id, &row.user_email) {
        (Some(id), None) => Some(id.clone()),
        (None, Some(email)) => state
            .store()
            .users()
            .find_by_email(email)
            .await?
            .map(|u| u.user_id),
        _ => {
            return Ok(Err(
                "Exactly one of user_id or user_email is required".to_string()
            ));
        }
    };
    let member = match user_id {
        Some(id) => state.store().teams().member(team_id, &id).await?,
        None => None,
    };
    Ok(member.ok_or_else(|| "User not found in team".to_string()))
}

/// Removes up to 500 members from a team at once (their team keys go with them).
#[utoipa::path(
    post,
    path = "/management/v1/teams/{team_id}/members/bulk_delete",
    operation_id = "bulk_delete_team_members_action",
    tag = crate::openapi::TEAMS,
    params(("team_id" = String, Path, description = "The team")),
    request_body = BulkTeamMemberDeleteRequest,
    responses(
        (status = 200, body = BulkTeamMemberDeleteResponse),
        (status = "default", description = "A request that cannot be taken (a problem document; the route check answers in the usual envelope)", content((Problem = "application/problem+json"), (crate::error::ErrorResponse = "application/json"))),
    ),
)]
pub async fn bulk_delete_team_members(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(team_id): Path<String>,
    headers: HeaderMap,
    raw: Body,
) -> V1<BulkTeamMemberDeleteResponse> {
    let request: BulkTeamMemberDeleteRequest = body(&state, &headers, raw).await?;
    check_count(request.members.len(), "members")?;
    managed_team(&state, &principal, &team_id).await?;
    let mut seen = HashSet::new();
    let mut data = Vec::with_capacity(request.members.len());
    let mut removed = Vec::new();
    for row in &request.members {
        let outcome = match member_of(&state, &team_id, row).await? {
            Ok(member) if !seen.insert(member.user_id.clone()) => {
                Err("Duplicate member in request".to_string())
            }
            Ok(member) => {
                removed.push(member.user_id.clone());
                Ok(member)
            }
            Err(e) => Err(e),
        };
        data.push(match outcome {
            Ok(member) => BulkTeamMemberDeleteResult {
                user_id: Some(member.user_id),
                user_email: member.user_email,
                success: true,
                error: None,
            },
            Err(error) => BulkTeamMemberDeleteResult {
                user_id: row.user_id.clone(),
                user_email: row.user_email.clone(),
                success: false,
                error: Some(error),
            },
        });
    }
    if !removed.is_empty() {
        let tokens = state
            .store()
            .teams()
            .remove_members(&team_id, &removed)
            .await?;
        for token in &tokens {
            state.auth_cache().invalidate(token).await;
        }
        state.auth_cache().invalidate_team(&team_id);
        Auditor::new(&state, &principal, &headers)
            .record(
                &state,
                "updated",
                super::audit::TEAMS_TABLE,
                &team_id,
                Some(serde_json::json!({"removed_members": removed})),
                None,
            )
            .await;
    }
    Ok(axum::Json(BulkTeamMemberDeleteResponse { data }))
}

/// One row of a bulk budget update: the member, and the limits to set (`null` clears).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberBudgetRow {
    user_id: Option<String>,
    user_email: Option<String>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<f64>)]
    max_budget_in_team: Option<Option<f64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<String>)]
    budget_duration: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    allowed_models: Option<Option<Vec<String>>>,
}

/// `POST /management/v1/teams/{team_id}/members/bulk_update`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkTeamMemberBudgetUpdateRequest {
    members: Vec<MemberBudgetRow>,
}

/// One member after a bulk budget update: the limits now in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkTeamMemberBudgetUpdateResult {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub success: bool,
    pub error: Option<String>,
    pub budget_id: Option<String>,
    pub max_budget: Option<f64>,
    /// `member` (its own budget), `team_default`, or null (none).
    pub max_budget_source: Option<String>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub budget_duration: Option<String>,
    pub allowed_models: Option<Vec<String>>,
}

/// `POST /management/v1/teams/{team_id}/members/bulk_update`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkTeamMemberBudgetUpdateResponse {
    pub data: Vec<BulkTeamMemberBudgetUpdateResult>,
}

impl MemberBudgetRow {
    fn patch(&self) -> Result<BudgetPatch, ApiError> {
        let mut patch = BudgetPatch {
            max_budget: money_change("max_budget_in_team", self.max_budget_in_team)?,
            tpm_limit: limit_change("tpm_limit", self.tpm_limit)?,
            rpm_limit: limit_change("rpm_limit", self.rpm_limit)?,
            allowed_models: self.allowed_models.clone().map(Option::unwrap_or_default),
            ..BudgetPatch::default()
        };
        match &self.budget_duration {
            Some(Some(d)) => {
                patch.budget_reset_at = Some(Some(super::reset_at("budget_duration", d)?));
                patch.budget_duration = Some(Some(d.clone()));
            }
            Some(None) => {
                patch.budget_reset_at = Some(None);
                patch.budget_duration = Some(None);
            }
            None => {}
        }
        Ok(patch)
    }
}

/// Changes up to 500 members' budgets in a team, each row a merge patch; a member left with
/// no limit of its own is back on the team's default.
#[utoipa::path(
    post,
    path = "/management/v1/teams/{team_id}/members/bulk_update",
    operation_id = "bulk_update_team_member_budgets_action",
    tag = crate::openapi::TEAMS,
    params(("team_id" = String, Path, description = "The team")),
    request_body = BulkTeamMemberBudgetUpdateRequest,
    responses(
        (status = 200, body = BulkTeamMemberBudgetUpdateResponse),
        (status = "default", description = "A request that cannot be taken (a problem document; the route check answers in the usual envelope)", content((Problem = "application/problem+json"), (crate::error::ErrorResponse = "application/json"))),
    ),
)]
pub async fn bulk_update_team_member_budgets(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(team_id): Path<String>,
    headers: HeaderMap,
    raw: Body,
) -> V1<BulkTeamMemberBudgetUpdateResponse> {
    let request: BulkTeamMemberBudgetUpdateRequest = body(&state, &headers, raw).await?;
    check_count(request.members.len(), "members")?;
    let team = managed_team(&state, &principal, &team_id).await?;
    let default = match team
        .metadata
        .get(bursar_store::MEMBER_BUDGET_KEY)
        .and_then(Value::as_str)
    {
        Some(id) => state.store().budgets().find(id).await?,
        None => None,
    };
    let mut seen = HashSet::new();
    let mut data = Vec::with_capacity(request.members.len());
    for row in &request.members {
        let who = MemberRow {
            user_id: row.user_id.clone(),
            user_email: row.user_email.clone(),
        };
        let outcome: Result<bursar_store::TeamMemberRow, String> =
            match member_of(&state, &team_id, &who).await? {
                Ok(member) if !seen.insert(member.user_id.clone()) => {
                    Err("Duplicate member in request".to_string())
                }
                Ok(member) => match row.patch() {
                    Err(e) => Err(e.message),
                    Ok(patch) if patch.is_empty() => Ok(member),
                    Ok(patch) => {
                        let updated = state
                            .store()
                            .teams()
                            .update_member(
                                &team_id,
                                &member.user_id,
                                None,
                                &patch,
                                &actor(&principal),
                            )
                            .await?
                            .ok_or_else(|| "User not found in team".to_string());
                        match updated {
                            Ok(m) => {
                                let own = match &m.budget_id {
                                    Some(id) => state.store().budgets().find(id).await?,
                                    None => None,
                                };
                                let empty = own.as_ref().is_some_and(|b| {
                                    b.max_budget.is_none()
                                        && b.tpm_limit.is_none()
                                        && b.rpm_limit.is_none()
                                        && b.budget_duration.is_none()
                                        && b.allowed_models.is_empty()
                                });
                                if empty {
                                    state
                                        .store()
                                        .teams()
                                        .set_member_budget(&team_id, &m.user_id, None)
                                        .await?;
                                }
                                Ok(state
                                    .store()
                                    .teams()
                                    .member(&team_id, &m.user_id)
                                    .await?
                                    .unwrap_or(m))
                            }
                            Err(e) => Err(e),
                        }
                    }
                },
                Err(e) => Err(e),
            };
        data.push(match outcome {
            Ok(member) => {
                let own = match &member.budget_id {
                    Some(id) => state.store().budgets().find(id).await?,
                    None => None,
                };
                let in_force = own.as_ref().or(default.as_ref());
                let source = match (&own, &default) {
                    (Some(b), _) if b.max_budget.is_some() => Some("member"),
                    (_, Some(d)) if d.max_budget.is_some() => Some("team_default"),
                    _ => None,
                };
                BulkTeamMemberBudgetUpdateResult {
                    user_id: Some(member.user_id),
                    user_email: member.user_email,
                    success: true,
                    error: None,
                    budget_id: in_force.map(|b| b.budget_id.clone()),
                    max_budget: in_force.and_then(|b| b.max_budget).map(|n| n.as_usd()),
                    max_budget_source: source.map(str::to_string),
                    tpm_limit: in_force.and_then(|b| b.tpm_limit),
                    rpm_limit: in_force.and_then(|b| b.rpm_limit),
                    budget_duration: in_force.and_then(|b| b.budget_duration.clone()),
                    allowed_models: in_force.map(|b| b.allowed_models.clone()),
                }
            }
            Err(error) => BulkTeamMemberBudgetUpdateResult {
                user_id: row.user_id.clone(),
                user_email: row.user_email.clone(),
                success: false,
                error: Some(error),
                budget_id: None,
                max_budget: None,
                max_budget_source: None,
                tpm_limit: None,
                rpm_limit: None,
                budget_duration: None,
                allowed_models: None,
            },
        });
    }
    state.auth_cache().invalidate_team(&team_id);
    Ok(axum::Json(BulkTeamMemberBudgetUpdateResponse { data }))
}
