//! `/user/*`: internal users (LiteLLM's `internal_user_endpoints`).
//!
//! Creating a user can create its first key and team memberships; deleting users removes their
//! keys and memberships. Both are single transactions, validated before anything is written.

pub mod dto;

use super::audit::{Auditor, KEYS_TABLE, USERS_TABLE};
use super::keys::dto::{GenerateKeyResponse, KeyObject, RequestEcho};
use super::keys::{actor, all_keys, expiry, is_admin_reader, key_json};
use super::teams::dto::TeamObject;
use super::{
    Page, bad_field, descending, json_body, limit, limit_change, money, money_change, reset_at,
};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use bursar_core::keys::{abbreviate_key, generate_key, hash_key};
use bursar_core::roles::UserRole;
use bursar_store::{
    KeyQuery, KeyRow, NewBudget, NewKey, NewUser, StoreError, UserPatch, UserQuery, UserSort,
    UserTeam,
};
use dto::{
    AvailableUsersResponse, BulkUpdateUserResponse, NewUserResponse, RoleDescription,
    UpdateUserResponse, UserInfoResponse, UserInfoV2Response, UserListResponse, UserTable,
    UserUpdateResult,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Roles `/user/new` and `/user/update` accept.
const ASSIGNABLE_ROLES: [UserRole; 4] = [
    UserRole::ProxyAdmin,
    UserRole::ProxyAdminViewer,
    UserRole::InternalUser,
    UserRole::InternalUserViewer,
];

/// A team to join: its id, or its id with the member's role and budget in the team.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
enum TeamEntry {
    Id(String),
    Detailed {
        team_id: String,
        user_role: Option<String>,
        max_budget_in_team: Option<f64>,
    },
}

/// `POST /user/new`. Every field is optional; `user_id` defaults to a new UUID.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct NewUserRequest {
    user_id: Option<String>,
    user_email: Option<String>,
    user_alias: Option<String>,
    user_role: Option<String>,
    teams: Option<Vec<TeamEntry>>,
    /// A team to join as `user` (LiteLLM's older field; it wins over `teams`).
    team_id: Option<String>,
    organizations: Option<Vec<String>>,
    auto_create_key: Option<bool>,
    send_invite_email: Option<bool>,
    sso_user_id: Option<String>,
    password: Option<String>,
    key_alias: Option<String>,
    duration: Option<String>,
    models: Option<Vec<String>>,
    max_budget: Option<f64>,
    soft_budget: Option<f64>,
    budget_duration: Option<String>,
    max_parallel_requests: Option<i64>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    metadata: Option<Map<String, Value>>,
    model_max_budget: Option<Map<String, Value>>,
}

fn parse_role(role: &str) -> Result<UserRole, ApiError> {
    role.parse::<UserRole>()
        .ok()
        .filter(|r| ASSIGNABLE_ROLES.contains(r))
        .ok_or_else(|| {
            bad_field(
                "user_role",
                format!("Invalid user_role {role:?}: expected one of proxy_admin, proxy_admin_viewer, internal_user, internal_user_viewer"),
            )
        })
}

fn check_password(password: &Option<String>) -> Result<(), ApiError> {
    match password {
        Some(p) if !(8..=128).contains(&p.chars().count()) => Err(bad_field(
            "password",
            "password must be between 8 and 128 characters",
        )),
        _ => Ok(()),
    }
}

fn update_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { .. } => {
            bad_field("sso_user_id", "Another user already has this sso_user_id")
        }
        other => other.into(),
    }
}

fn conflict(user: &NewUser) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::Conflict { what: "key" } => {
            bad_field("key_alias", "A key with this alias already exists")
        }
        StoreError::Conflict { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "bad_request_error",
            format!("User with id {} already exists", user.user_id),
        ),
        other => other.into(),
    }
}

/// Creates a user, with its first key unless `auto_create_key` is false.
#[utoipa::path(
    post,
    path = "/user/new",
    operation_id = "new_user",
    tag = crate::openapi::USERS,
    request_body = NewUserRequest,
    responses((status = 200, body = NewUserResponse)),
)]
pub async fn new_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<NewUserResponse>, ApiError> {
    let r: NewUserRequest = json_body(&state, &headers, body).await?;
    Ok(Json(create_user(&state, &principal, &headers, r).await?))
}

/// The shared body of `/user/new` and `/management/v1/users/bulk`.
pub(super) async fn create_user(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    r: NewUserRequest,
) -> Result<NewUserResponse, ApiError> {
    if r.send_invite_email == Some(true) {
        return Err(bad_field(
            "send_invite_email",
            "Email alerting is not configured on this proxy; cannot send an invite email",
        ));
    }
    check_password(&r.password)?;
    let defaults = &state.config().internal_user_defaults;
    let role = match (&r.user_role, defaults.user_role) {
        (Some(role), _) => parse_role(role)?,
        (None, Some(default)) => default,
        (None, None) => UserRole::InternalUser,
    };
    if matches!(role, UserRole::ProxyAdmin | UserRole::ProxyAdminViewer)
        && !principal.is_proxy_admin()
    {
        return Err(ApiError::forbidden(
            "Only proxy admins can create admin users",
        ));
    }
    let user_id = r
        .user_id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if state.store().users().find(&user_id).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "bad_request_error",
            format!("User with id {user_id} already exists"),
        )
        .with_param("user_id"));
    }
    if let Some(email) = &r.user_email
        && state.store().users().find_by_email(email).await?.is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "bad_request_error",
            format!("User with email {email} already exists"),
        )
        .with_param("user_email"));
    }
    let mut orgs: Vec<(String, String)> = Vec::new();
    for org in r.organizations.clone().unwrap_or_default() {
        if state.store().orgs().find(&org).await?.is_none() {
            return Err(
                ApiError::not_found(format!("Organization {org} does not exist"))
                    .with_param("organizations"),
            );
        }
        if !orgs.iter().any(|(o, _)| o == &org) {
            // LiteLLM makes every new member an internal_user of the organization.
            orgs.push((org, UserRole::InternalUser.as_str().to_string()));
        }
    }
    let mut memberships: Vec<UserTeam> = Vec::new();
    let teams = match r.team_id.clone().filter(|t| !t.is_empty()) {
        Some(team_id) => vec![TeamEntry::Id(team_id)],
        None => r.teams.unwrap_or_default(),
    };
    for entry in teams {
        let (team_id, team_role, max_budget_in_team) = match entry {
            TeamEntry::Id(team_id) => (team_id, None, None),
            TeamEntry::Detailed {
                team_id,
                user_role,
                max_budget_in_team,
            } => (team_id, user_role, max_budget_in_team),
        };
        let team_role = team_role.unwrap_or_else(|| "user".into());
        if team_role != "user" && team_role != "admin" {
            return Err(bad_field(
                "teams",
                format!("Invalid team role {team_role:?}: expected user or admin"),
            ));
        }
        if memberships.iter().any(|m| m.team_id == team_id) {
            return Err(bad_field(
                "teams",
                format!("Team {team_id} is listed more than once"),
            ));
        }
        let budget = money("max_budget_in_team", max_budget_in_team)?.map(|max| NewBudget {
            budget_id: uuid::Uuid::new_v4().to_string(),
            max_budget: Some(max),
            created_by: actor(principal),
            ..NewBudget::default()
        });
        memberships.push(UserTeam {
            team_id,
            role: team_role,
            budget,
        });
    }
    let team_ids: Vec<String> = memberships.iter().map(|m| m.team_id.clone()).collect();
    if let Some(missing) = state
        .store()
        .users()
        .missing_teams(&team_ids)
        .await?
        .first()
    {
        return Err(
            ApiError::not_found(format!("Team {missing} does not exist")).with_param("teams"),
        );
    }
    let budget_duration = r
        .budget_duration
        .clone()
        .or_else(|| defaults.budget_duration.clone());
    let budget_reset_at = budget_duration
        .as_deref()
        .map(|d| reset_at("budget_duration", d))
        .transpose()?;
    let models = r.models.clone().or_else(|| defaults.models.clone());
    let user = NewUser {
        user_id: user_id.clone(),
        user_alias: r.user_alias,
        user_email: r.user_email,
        user_role: role.as_str().to_string(),
        sso_user_id: r.sso_user_id,
        organization_id: None,
        max_budget: money("max_budget", r.max_budget.or(defaults.max_budget))?,
        soft_budget: money("soft_budget", r.soft_budget)?,
        models: models.clone().unwrap_or_default(),
        metadata: r.metadata.map(Value::Object),
        max_parallel_requests: limit("max_parallel_requests", r.max_parallel_requests)?,
        tpm_limit: limit("tpm_limit", r.tpm_limit)?,
        rpm_limit: limit("rpm_limit", r.rpm_limit)?,
        budget_duration,
        budget_reset_at,
        model_max_budget: r.model_max_budget.map(Value::Object),
    };
    let raw_key = (r.auto_create_key != Some(false)).then(generate_key);
    let expires_at = r.duration.as_deref().map(expiry).transpose()?.flatten();
    if let Some(alias) = &r.key_alias
        && state.store().keys().find_by_alias(alias).await?.is_some()
    {
        return Err(bad_field(
            "key_alias",
            format!(
                "Key with alias '{alias}' already exists. Unique key aliases across all keys are required."
            ),
        ));
    }
    let key = raw_key.as_ref().map(|raw| NewKey {
        token: hash_key(raw),
        key_name: Some(abbreviate_key(raw)),
        key_alias: r.key_alias.clone(),
        user_id: Some(user_id.clone()),
        models: models.unwrap_or_default(),
        expires_at,
        created_by: Some(actor(principal)),
        ..Default::default()
    });
    let created = state
        .store()
        .users()
        .create(&user, key.as_ref(), &memberships, &orgs)
        .await
        .map_err(conflict(&user))?;
    let auditor = Auditor::new(state, principal, headers);
    auditor
        .record(
            state,
            "created",
            USERS_TABLE,
            &created.user_id,
            None,
            Some(UserTable::audit(&created, &team_ids)),
        )
        .await;
    let mut first_key = None;
    if let (Some(raw), Some(key)) = (raw_key, key)
        && let Some(row) = state.store().keys().find_by_hash(&key.token).await?
    {
        auditor
            .record(
                state,
                "created",
                KEYS_TABLE,
                &row.token,
                None,
                Some(key_json(&row)),
            )
            .await;
        let echo = RequestEcho {
            duration: r.duration.clone(),
            key_type: Some("default".into()),
        };
        first_key = Some(GenerateKeyResponse::new(raw, &row, echo));
    }
    Ok(NewUserResponse::new(&created, &team_ids, first_key))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InfoQuery {
    /// The user; defaults to the calling key's user.
    user_id: Option<String>,
}

/// A user with its keys and teams.
#[utoipa::path(
    get,
    path = "/user/info",
    operation_id = "user_info",
    tag = crate::openapi::USERS,
    params(InfoQuery),
    responses((status = 200, body = UserInfoResponse)),
)]
pub async fn info(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<InfoQuery>,
) -> Result<Json<UserInfoResponse>, ApiError> {
    let me = principal.user_id().map(str::to_string);
    let user_id = match q.user_id.or(me.clone()) {
        Some(id) => id,
        None => {
            return Err(bad_field(
                "user_id",
                "user_id is required for a key without a user",
            ));
        }
    };
    if !is_admin_reader(&principal) && Some(&user_id) != me.as_ref() {
        return Err(ApiError::forbidden(format!(
            "User={} is not allowed to view information for user_id={user_id}",
            me.as_deref().unwrap_or("None")
        )));
    }
    let user = state.store().users().find(&user_id).await?;
    let Some(user) = user else {
        return Err(ApiError::not_found(format!("User {user_id} not found")).with_param("user_id"));
    };
    let teams = state.store().users().team_ids(&user_id).await?;
    let keys = all_keys_of(&state, &user_id).await?;
    let keys = keys.iter().map(KeyObject::new).collect();
    let mut team_objects = Vec::with_capacity(teams.len());
    for team_id in &teams {
        if let Some(team) = state.store().teams().find(team_id).await? {
            let members = state.store().teams().members(team_id).await?;
            team_objects.push(TeamObject::new(&team, &members));
        }
    }
    Ok(Json(UserInfoResponse {
        user_id: Some(user_id),
        user_info: Some(UserTable::new(&user, &teams)),
        keys,
        teams: team_objects,
        admin_mcp_permissions: None,
    }))
}

async fn all_keys_of(state: &AppState, user_id: &str) -> Result<Vec<KeyRow>, ApiError> {
    all_keys(
        state,
        KeyQuery {
            user_id: Some(user_id.to_string()),
            ..KeyQuery::default()
        },
    )
    .await
}

/// `POST /user/update`: `user_id` or `user_email` picks the user; absent fields are unchanged.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UpdateUserRequest {
    user_id: Option<String>,
    user_email: Option<String>,
    user_alias: Option<String>,
    user_role: Option<String>,
    password: Option<String>,
    spend: Option<f64>,
    models: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<f64>)]
    max_budget: Option<Option<f64>>,
    soft_budget: Option<f64>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<String>)]
    budget_duration: Option<Option<String>>,
    max_parallel_requests: Option<i64>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    rpm_limit: Option<Option<i64>>,
    metadata: Option<Map<String, Value>>,
    model_max_budget: Option<Map<String, Value>>,
    sso_user_id: Option<String>,
}

/// Updates a user (by `user_email`, an unknown address creates one, as LiteLLM does).
#[utoipa::path(
    post,
    path = "/user/update",
    operation_id = "user_update",
    tag = crate::openapi::USERS,
    request_body = UpdateUserRequest,
    responses((status = 200, body = UpdateUserResponse)),
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UpdateUserResponse>, ApiError> {
    let r: UpdateUserRequest = json_body(&state, &headers, body).await?;
    Ok(Json(update_user(&state, &principal, &headers, r).await?))
}

/// The shared body of `/user/update` and `/user/bulk_update`.
async fn update_user(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    r: UpdateUserRequest,
) -> Result<UpdateUserResponse, ApiError> {
    check_password(&r.password)?;
    let role = r.user_role.as_deref().map(parse_role).transpose()?;
    if role.is_some() && !principal.is_proxy_admin() {
        return Err(ApiError::forbidden(
            "Only proxy admins can modify user roles.",
        ));
    }
    let mut patch = UserPatch {
        user_alias: r.user_alias.map(Some),
        user_role: role.map(|r| r.as_str().to_string()),
        sso_user_id: r.sso_user_id.map(Some),
        models: r.models,
        metadata: r.metadata.map(Value::Object),
        model_max_budget: r.model_max_budget.map(Value::Object),
        ..Default::default()
    };
    if let Some(spend) = r.spend {
        patch.spend = money("spend", Some(spend))?;
    }
    // As LiteLLM: a null max_budget, tpm_limit, rpm_limit or budget_duration clears it.
    patch.max_budget = money_change("max_budget", r.max_budget)?;
    if r.soft_budget.is_some() {
        patch.soft_budget = Some(money("soft_budget", r.soft_budget)?);
    }
    if r.max_parallel_requests.is_some() {
        patch.max_parallel_requests =
            Some(limit("max_parallel_requests", r.max_parallel_requests)?);
    }
    patch.tpm_limit = limit_change("tpm_limit", r.tpm_limit)?;
    patch.rpm_limit = limit_change("rpm_limit", r.rpm_limit)?;
    match r.budget_duration {
        Some(Some(d)) => {
            patch.budget_reset_at = Some(Some(reset_at("budget_duration", &d)?));
            patch.budget_duration = Some(Some(d));
        }
        Some(None) => {
            patch.budget_reset_at = Some(None);
            patch.budget_duration = Some(None);
        }
        None => {}
    }

    let existing = match (&r.user_id, &r.user_email) {
        (Some(id), _) if id.trim().is_empty() => {
            return Err(super::invalid("user_id", "user_id must not be empty"));
        }
        (Some(id), _) => {
            if let Some(email) = &r.user_email {
                patch.user_email = Some(Some(email.clone()));
            }
            match state.store().users().find(id).await? {
                Some(found) => found,
                // LiteLLM's upsert: a proxy admin updating an unknown user_id creates it.
                None if principal.is_proxy_admin() => {
                    let user = NewUser {
                        user_id: id.clone(),
                        user_role: UserRole::InternalUser.as_str().to_string(),
                        ..Default::default()
                    };
                    let created = state
                        .store()
                        .users()
                        .create(&user, None, &[], &[])
                        .await
                        .map_err(conflict(&user))?;
                    let updated = state
                        .store()
                        .users()
                        .update(&created.user_id, &patch)
                        .await
                        .map_err(update_conflict)?
                        .unwrap_or(created);
                    Auditor::new(state, principal, headers)
                        .record(
                            state,
                            "created",
                            USERS_TABLE,
                            &updated.user_id,
                            None,
                            Some(UserTable::audit(&updated, &[])),
                        )
                        .await;
                    return Ok(UpdateUserResponse {
                        user_id: updated.user_id.clone(),
                        data: UserTable::new(&updated, &[]),
                    });
                }
                None => {
                    return Err(ApiError::not_found(
                        "User not found. Only PROXY_ADMIN can create users via /user/update; use /user/new instead.",
                    )
                    .with_param("user_id"));
                }
            }
        }
        (None, Some(email)) => match state.store().users().find_by_email(email).await? {
            Some(found) => found,
            None => {
                // LiteLLM's upsert: updating by an unknown email creates the user.
                let user = NewUser {
                    user_id: uuid::Uuid::new_v4().to_string(),
                    user_email: Some(email.clone()),
                    user_role: UserRole::InternalUser.as_str().to_string(),
                    ..Default::default()
                };
                let created = state
                    .store()
                    .users()
                    .create(&user, None, &[], &[])
                    .await
                    .map_err(conflict(&user))?;
                let updated = state
                    .store()
                    .users()
                    .update(&created.user_id, &patch)
                    .await?
                    .unwrap_or(created);
                let data = UserTable::new(&updated, &[]);
                Auditor::new(state, principal, headers)
                    .record(
                        state,
                        "created",
                        USERS_TABLE,
                        &updated.user_id,
                        None,
                        Some(UserTable::audit(&updated, &[])),
                    )
                    .await;
                return Ok(UpdateUserResponse {
                    user_id: updated.user_id,
                    data,
                });
            }
        },
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                "user_id or user_email must be provided",
            )
            .with_param("user_id"));
        }
    };
    let updated = state
        .store()
        .users()
        .update(&existing.user_id, &patch)
        .await
        .map_err(update_conflict)?
        .ok_or_else(|| ApiError::not_found(format!("User {} not found", existing.user_id)))?;
    if role.is_some() {
        // The user's keys act with its role: drop their cached snapshots.
        state.auth_cache().invalidate_all();
    }
    let teams = state.store().users().team_ids(&updated.user_id).await?;
    Auditor::new(state, principal, headers)
        .record(
            state,
            "updated",
            USERS_TABLE,
            &updated.user_id,
            Some(UserTable::audit(&existing, &teams)),
            Some(UserTable::audit(&updated, &teams)),
        )
        .await;
    Ok(UpdateUserResponse {
        user_id: updated.user_id.clone(),
        data: UserTable::new(&updated, &teams),
    })
}

/// `POST /user/delete`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteUserRequest {
    user_ids: Vec<String>,
}

/// Deletes users with their keys and memberships; all or nothing. Answers how many.
#[utoipa::path(
    post,
    path = "/user/delete",
    operation_id = "delete_user",
    tag = crate::openapi::USERS,
    request_body = DeleteUserRequest,
    responses((status = 200, description = "The number of users deleted", content_type = "application/json", body = usize)),
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<usize>, ApiError> {
    let r: DeleteUserRequest = json_body(&state, &headers, body).await?;
    if r.user_ids.is_empty() {
        return Err(bad_field("user_ids", "user_ids must not be empty"));
    }
    let mut users = Vec::new();
    for id in &r.user_ids {
        match state.store().users().find(id).await? {
            Some(user) => users.push(user),
            None => {
                return Err(ApiError::not_found(format!(
                    "User {id} not found; nothing was deleted"
                ))
                .with_param("user_ids"));
            }
        }
    }
    delete_users(&state, &principal, &headers, &users).await?;
    Ok(Json(r.user_ids.len()))
}

/// The rows of these users that exist, in user id order (one query; none for no ids).
pub(crate) async fn find_many(
    state: &AppState,
    ids: impl IntoIterator<Item = String>,
) -> Result<Vec<bursar_store::UserRow>, ApiError> {
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let query = UserQuery {
        page: 1,
        page_size: u32::try_from(ids.len()).unwrap_or(u32::MAX),
        user_ids: ids,
        ..UserQuery::default()
    };
    let (rows, _) = state.store().users().list(&query).await?;
    Ok(rows.into_iter().map(|(user, _)| user).collect())
}

/// Deletes `users` with their keys and memberships in one transaction, drops the keys'
/// cached principals and records it all (`/user/delete` and the v1 bulk deletion).
pub(super) async fn delete_users(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    users: &[bursar_store::UserRow],
) -> Result<(), ApiError> {
    let auditor = Auditor::new(state, principal, headers);
    let mut keys = Vec::new();
    // The keys' rows are read only for their audit entries.
    if auditor.enabled() {
        for user in users {
            keys.extend(all_keys_of(state, &user.user_id).await?);
        }
    }
    let ids: Vec<String> = users.iter().map(|u| u.user_id.clone()).collect();
    let tokens = state.store().users().delete_with_keys(&ids).await?;
    for token in &tokens {
        state.auth_cache().invalidate(token).await;
    }
    for user in users {
        auditor
            .record(
                state,
                "deleted",
                USERS_TABLE,
                &user.user_id,
                Some(UserTable::audit(user, &[])),
                None,
            )
            .await;
    }
    for key in &keys {
        auditor
            .record(
                state,
                "deleted",
                KEYS_TABLE,
                &key.token,
                Some(key_json(key)),
                None,
            )
            .await;
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Filter users by role.
    role: Option<String>,
    /// Comma-separated user ids; a single id matches as a case-insensitive substring.
    user_ids: Option<String>,
    /// Case-insensitive substring of the user id or email.
    search: Option<String>,
    /// Comma-separated SSO user ids.
    sso_user_ids: Option<String>,
    /// Filter users by partial email match.
    user_email: Option<String>,
    /// Filter users by team id.
    team: Option<String>,
    /// Comma-separated organization ids.
    organization_ids: Option<String>,
    /// Page number.
    #[param(minimum = 1, default = 1)]
    page: Option<u32>,
    /// Number of items per page.
    #[param(minimum = 1, maximum = 100, default = 25)]
    page_size: Option<u32>,
    /// `user_id`, `user_email`, `created_at`, `spend`, `user_alias` or `user_role`.
    sort_by: Option<String>,
    /// `asc` or `desc`.
    #[param(default = "asc")]
    sort_order: Option<String>,
}

fn comma_list(value: Option<String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Users, filtered, sorted and paged (admins only).
#[utoipa::path(
    get,
    path = "/user/list",
    operation_id = "get_users",
    tag = crate::openapi::USERS,
    params(ListQuery),
    responses((status = 200, body = UserListResponse)),
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<UserListResponse>, ApiError> {
    if !is_admin_reader(&principal) {
        return Err(ApiError::forbidden("Only proxy admins can list users"));
    }
    let paging = Page::parse(q.page, q.page_size, "page_size", 25, 100)?;
    let (page, page_size) = (paging.page, paging.size);
    let sort = match q.sort_by.as_deref() {
        None | Some("user_id") => UserSort::UserId,
        Some("user_email") => UserSort::UserEmail,
        Some("created_at") => UserSort::CreatedAt,
        Some("spend") => UserSort::Spend,
        Some("user_alias") => UserSort::UserAlias,
        Some("user_role") => UserSort::UserRole,
        Some(other) => {
            return Err(bad_field(
                "sort_by",
                format!(
                    "Invalid sort_by {other:?}: expected user_id, user_email, created_at, spend, user_alias or user_role"
                ),
            ));
        }
    };
    let descending = descending(q.sort_order.as_deref(), false)?;
    if let Some(role) = &q.role {
        role.parse::<UserRole>()
            .map_err(|_| bad_field("role", format!("Invalid role {role:?}")))?;
    }
    let mut user_ids = comma_list(q.user_ids);
    // As LiteLLM: one id is a substring match, several are exact.
    let id_contains = (user_ids.len() == 1).then(|| user_ids.remove(0));
    let query = UserQuery {
        role: q.role,
        user_ids,
        id_contains,
        search: q.search.filter(|s| !s.is_empty()),
        sso_user_ids: comma_list(q.sso_user_ids),
        email_contains: q.user_email.filter(|e| !e.is_empty()),
        team_id: q.team,
        organization_ids: comma_list(q.organization_ids),
        sort,
        descending,
        page,
        page_size,
    };
    let (rows, total) = state.store().users().list(&query).await?;
    let total_pages = paging.total_pages_in_range(total)?;
    let users = rows
        .iter()
        .map(|(user, key_count)| UserTable {
            key_count: Some(*key_count),
            ..UserTable::new(user, &[])
        })
        .collect();
    Ok(Json(UserListResponse {
        users,
        total,
        page,
        page_size,
        total_pages,
    }))
}

/// The roles a user can have, with their descriptions.
#[utoipa::path(
    get,
    path = "/user/available_roles",
    operation_id = "ui_get_available_role",
    tag = crate::openapi::USERS,
    responses((status = 200, body = BTreeMap<String, RoleDescription>)),
)]
pub async fn available_roles() -> Json<BTreeMap<&'static str, RoleDescription>> {
    let role = |description, ui_label| RoleDescription {
        description,
        ui_label,
    };
    Json(BTreeMap::from([
        (
            "proxy_admin",
            role(
                "Proxy admin: can create, update and delete keys, users, teams and models",
                "Admin (All Permissions)",
            ),
        ),
        (
            "proxy_admin_viewer",
            role(
                "Proxy admin viewer: can view all keys, users, teams and spend",
                "Admin (View Only)",
            ),
        ),
        (
            "internal_user",
            role(
                "Internal user: can create, delete and view their own keys and spend",
                "Internal User (Create/Delete/View)",
            ),
        ),
        (
            "internal_user_viewer",
            role(
                "Internal user viewer: can view their own keys and spend",
                "Internal User (View Only)",
            ),
        ),
    ]))
}

/// The user alone (LiteLLM's lighter `/user/info`): the caller itself, or anyone for admins,
/// team admins for their teams' members and org admins for their organizations' members.
/// Any other user is "not found", as in LiteLLM.
#[utoipa::path(
    get,
    path = "/v2/user/info",
    operation_id = "user_info_v2",
    tag = crate::openapi::USERS,
    params(InfoQuery),
    responses((status = 200, body = UserInfoV2Response)),
)]
pub async fn info_v2(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<InfoQuery>,
) -> Result<Json<UserInfoV2Response>, ApiError> {
    let me = principal.user_id().map(str::to_string);
    let Some(user_id) = q.user_id.filter(|u| !u.is_empty()).or(me.clone()) else {
        return Err(bad_field(
            "user_id",
            "user_id is required. Either pass it as a query parameter or authenticate with a user-bound key.",
        ));
    };
    let not_found =
        || ApiError::not_found(format!("User not found: {user_id}")).with_param("user_id");
    let user = state
        .store()
        .users()
        .find(&user_id)
        .await?
        .ok_or_else(not_found)?;
    let teams = state.store().users().team_ids(&user_id).await?;
    let allowed = is_admin_reader(&principal)
        || me.as_deref() == Some(user_id.as_str())
        || match me.as_deref() {
            Some(me) => administers(&state, me, &user_id, &teams).await?,
            None => false,
        };
    if !allowed {
        return Err(not_found());
    }
    Ok(Json(UserInfoV2Response::new(&user, teams)))
}

/// Whether `me` is a team admin of one of `teams` or an org admin of an organization `user_id`
/// belongs to.
async fn administers(
    state: &AppState,
    me: &str,
    user_id: &str,
    teams: &[String],
) -> Result<bool, ApiError> {
    for team_id in teams {
        if let Some(member) = state.store().teams().member(team_id, me).await?
            && member.role == "admin"
        {
            return Ok(true);
        }
    }
    let mine = state.store().orgs().memberships_of(me).await?;
    let theirs = state.store().orgs().memberships_of(user_id).await?;
    Ok(mine.iter().any(|m| {
        m.user_role.as_deref() == Some("org_admin")
            && theirs
                .iter()
                .any(|t| t.organization_id == m.organization_id)
    }))
}

/// Seat usage: how many users and teams exist (Bursar has no seat limits).
#[utoipa::path(
    get,
    path = "/user/available_users",
    operation_id = "available_enterprise_users",
    tag = crate::openapi::USERS,
    responses((status = 200, body = AvailableUsersResponse)),
)]
pub async fn available_users(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<AvailableUsersResponse>, ApiError> {
    if !is_admin_reader(&principal) {
        return Err(ApiError::forbidden("Only admins can view seat usage"));
    }
    let users = UserQuery {
        page: 1,
        page_size: 1,
        ..UserQuery::default()
    };
    let (_, total_users_used) = state.store().users().list(&users).await?;
    let teams = bursar_store::TeamQuery {
        page: 1,
        size: 1,
        ..bursar_store::TeamQuery::default()
    };
    let (_, total_teams_used) = state.store().teams().list(&teams).await?;
    Ok(Json(AvailableUsersResponse {
        total_users: None,
        total_teams: None,
        total_users_used,
        total_teams_used,
        total_teams_remaining: None,
        total_users_remaining: None,
    }))
}

/// Users `/user/bulk_update` changes at most by list (LiteLLM's limit).
const MAX_BULK_USERS: usize = 500;

/// `POST /user/bulk_update`: `users` (each a `/user/update` body), or `all_users: true` with
/// `user_updates` (the same fields without `user_id` / `user_email`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkUpdateUserRequest {
    #[schema(value_type = Option<Vec<UpdateUserRequest>>)]
    users: Option<Vec<Map<String, Value>>>,
    all_users: Option<bool>,
    #[schema(value_type = Option<UpdateUserRequest>)]
    user_updates: Option<Map<String, Value>>,
}

/// Updates many users as `/user/update` does, each on its own (one failure does not stop the
/// others); `all_users` applies one change to every user (proxy admins only).
#[utoipa::path(
    post,
    path = "/user/bulk_update",
    operation_id = "bulk_user_update",
    tag = crate::openapi::USERS,
    request_body = BulkUpdateUserRequest,
    responses((status = 200, body = BulkUpdateUserResponse)),
)]
pub async fn bulk_update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BulkUpdateUserResponse>, ApiError> {
    let r: BulkUpdateUserRequest = json_body(&state, &headers, body).await?;
    let all = r.all_users == Some(true);
    let items: Vec<Map<String, Value>> = match (r.users, all, r.user_updates) {
        (Some(_), true, _) => {
            return Err(super::invalid(
                "users",
                "Cannot specify both 'users' and 'all_users=True'. Choose one approach.",
            ));
        }
        (Some(users), false, _) => {
            if users.len() > MAX_BULK_USERS {
                return Err(bad_field(
                    "users",
                    format!(
                        "Maximum {MAX_BULK_USERS} users can be updated at once. Found {} users.",
                        users.len()
                    ),
                ));
            }
            users
        }
        (None, true, Some(updates)) => {
            if !principal.is_proxy_admin() {
                return Err(ApiError::forbidden(
                    "Only proxy admins can update all users at once.",
                ));
            }
            if updates.contains_key("password") {
                return Err(bad_field(
                    "password",
                    "Setting one password for all users is not supported. Use per-user updates via the 'users' list instead.",
                ));
            }
            if let Some(field) = ["user_id", "user_email"]
                .iter()
                .find(|f| updates.contains_key(**f))
            {
                return Err(super::invalid(
                    "user_updates",
                    format!("user_updates cannot name a user ({field})"),
                ));
            }
            let mut ids = Vec::new();
            let mut page = 1;
            loop {
                let query = UserQuery {
                    page,
                    page_size: 100,
                    ..UserQuery::default()
                };
                let (rows, total) = state.store().users().list(&query).await?;
                let last_page = rows.is_empty();
                ids.extend(rows.into_iter().map(|(u, _)| u.user_id));
                if last_page || rows_done(ids.len(), total) {
                    break;
                }
                page += 1;
            }
            ids.into_iter()
                .map(|id| {
                    let mut item = updates.clone();
                    item.insert("user_id".into(), Value::String(id));
                    item
                })
                .collect()
        }
        _ => {
            return Err(super::invalid(
                "users",
                "Must specify either 'users' for individual updates or 'all_users=True' with 'user_updates' for bulk updates",
            ));
        }
    };
    if items.is_empty() {
        return Err(bad_field("users", "No users found to update"));
    }
    let total_requested = items.len();
    let mut results = Vec::with_capacity(total_requested);
    for item in items {
        let text = |name: &str| item.get(name).and_then(Value::as_str).map(str::to_string);
        let (user_id, user_email) = (text("user_id"), text("user_email"));
        let outcome = match serde_json::to_vec(&item)
            .map_err(|e| ApiError::bad_request(e.to_string()))
            .and_then(|bytes| super::parse_body::<UpdateUserRequest>(&bytes))
        {
            Ok(request) => update_user(&state, &principal, &headers, request).await,
            Err(e) => Err(e),
        };
        results.push(match outcome {
            Ok(updated) => UserUpdateResult {
                user_id: Some(updated.user_id),
                user_email: updated.data.user_email.clone(),
                success: true,
                error: None,
                updated_user: Some(updated.data),
            },
            Err(e) => UserUpdateResult {
                user_id,
                user_email,
                success: false,
                error: Some(e.message),
                updated_user: None,
            },
        });
    }
    let successful_updates = results.iter().filter(|r| r.success).count();
    Ok(Json(BulkUpdateUserResponse {
        total_requested,
        successful_updates,
        failed_updates: total_requested - successful_updates,
        results,
    }))
}

fn rows_done(seen: usize, total: u64) -> bool {
    u64::try_from(seen).unwrap_or(u64::MAX) >= total
}
