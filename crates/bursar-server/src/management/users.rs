//! `/user/*`: internal users (LiteLLM's `internal_user_endpoints`).
//!
//! Creating a user can create its first key and team memberships; deleting users removes their
//! keys and memberships. Both are single transactions, validated before anything is written.

use super::audit::{Auditor, KEYS_TABLE, USERS_TABLE};
use super::keys::{actor, all_keys, expiry, is_admin_reader, key_json};
use super::{Page, bad_field, descending, json_body, limit, money, reset_at};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use bursar_core::NanoUsd;
use bursar_core::keys::{abbreviate_key, generate_key, hash_key};
use bursar_core::roles::UserRole;
use bursar_core::time::format_ms;
use bursar_store::{
    KeyQuery, KeyRow, NewBudget, NewKey, NewUser, StoreError, UserPatch, UserQuery, UserRow,
    UserSort, UserTeam,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
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

/// A user as the management routes answer it (LiteLLM's `LiteLLM_UserTable`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LiteLLM_UserTable)]
pub struct UserTable {
    user_id: String,
    user_alias: Option<String>,
    user_email: Option<String>,
    /// `proxy_admin`, `proxy_admin_viewer`, `internal_user` or `internal_user_viewer`.
    user_role: String,
    sso_user_id: Option<String>,
    organization_id: Option<String>,
    /// Team ids (empty in lists).
    teams: Vec<String>,
    max_budget: Option<f64>,
    soft_budget: Option<f64>,
    spend: f64,
    models: Vec<String>,
    metadata: Value,
    max_parallel_requests: Option<i64>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    budget_duration: Option<String>,
    budget_reset_at: Option<String>,
    model_max_budget: Value,
    model_spend: Value,
    created_at: String,
    updated_at: String,
    /// The user's key count (`/user/list` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    key_count: Option<i64>,
}

impl UserTable {
    pub fn new(user: &UserRow, teams: &[String]) -> UserTable {
        UserTable {
            user_id: user.user_id.clone(),
            user_alias: user.user_alias.clone(),
            user_email: user.user_email.clone(),
            user_role: user.user_role.clone(),
            sso_user_id: user.sso_user_id.clone(),
            organization_id: user.organization_id.clone(),
            teams: teams.to_vec(),
            max_budget: user.max_budget.map(NanoUsd::as_usd),
            soft_budget: user.soft_budget.map(NanoUsd::as_usd),
            spend: user.spend.as_usd(),
            models: user.models.clone(),
            metadata: user.metadata.clone(),
            max_parallel_requests: user.max_parallel_requests,
            tpm_limit: user.tpm_limit,
            rpm_limit: user.rpm_limit,
            budget_duration: user.budget_duration.clone(),
            budget_reset_at: user.budget_reset_at.map(format_ms),
            model_max_budget: user.model_max_budget.clone(),
            model_spend: user.model_spend.clone(),
            created_at: format_ms(user.created_at),
            updated_at: format_ms(user.updated_at),
            key_count: None,
        }
    }
}

pub fn user_json(user: &UserRow, teams: &[String]) -> Value {
    serde_json::to_value(UserTable::new(user, teams)).unwrap_or(Value::Null)
}

/// `POST /user/new`: the user, and its first key's fields when one was created.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NewUserResponse {
    #[schema(inline)]
    #[serde(flatten)]
    user: UserTable,
    /// The new key (shown once), or null with `auto_create_key: false`.
    key: Option<String>,
    /// The key's hash, its id in the other key routes.
    token_id: Option<String>,
    key_alias: Option<String>,
    expires: Option<String>,
}

/// `GET /user/info`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserInfoResponse {
    user_id: String,
    user_info: UserTable,
    keys: Vec<super::schema::KeyObject>,
    teams: Vec<super::schema::TeamObject>,
}

/// `POST /user/update`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UpdateUserResponse {
    user_id: String,
    data: UserTable,
}

/// `GET /user/list`.
#[derive(Serialize, ToSchema)]
pub struct UserListResponse {
    users: Vec<UserTable>,
    total: u64,
    page: u32,
    page_size: u32,
    total_pages: u64,
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
) -> Result<Json<Value>, ApiError> {
    let r: NewUserRequest = json_body(&state, &headers, body).await?;
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
            orgs.push((org, role.as_str().to_string()));
        }
    }
    let mut memberships: Vec<UserTeam> = Vec::new();
    for entry in r.teams.unwrap_or_default() {
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
            created_by: actor(&principal),
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
        created_by: Some(actor(&principal)),
        ..Default::default()
    });
    let created = state
        .store()
        .users()
        .create(&user, key.as_ref(), &memberships, &orgs)
        .await
        .map_err(conflict(&user))?;
    let auditor = Auditor::new(&state, &principal, &headers);
    let mut body = user_json(&created, &team_ids);
    auditor
        .record(
            &state,
            "created",
            USERS_TABLE,
            &created.user_id,
            None,
            Some(body.clone()),
        )
        .await;
    if let (Some(raw), Some(key)) = (raw_key, key) {
        let row = state.store().keys().find_by_hash(&key.token).await?;
        if let Some(row) = &row {
            auditor
                .record(
                    &state,
                    "created",
                    KEYS_TABLE,
                    &row.token,
                    None,
                    Some(key_json(row)),
                )
                .await;
        }
        if let Some(row) = row
            && let (Value::Object(out), Value::Object(k)) = (&mut body, key_json(&row))
        {
            for (name, value) in k {
                if !out.contains_key(&name) {
                    out.insert(name, value);
                }
            }
        }
        body["key"] = Value::String(raw);
        body["token_id"] = Value::String(key.token);
    } else {
        body["key"] = Value::Null;
    }
    Ok(Json(body))
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
) -> Result<Json<Value>, ApiError> {
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
    let keys: Vec<Value> = keys.iter().map(key_json).collect();
    let mut team_objects: Vec<Value> = Vec::with_capacity(teams.len());
    for team_id in &teams {
        if let Some(team) = state.store().teams().find(team_id).await? {
            let members = state.store().teams().members(team_id).await?;
            team_objects.push(super::teams::team_json(&team, &members));
        }
    }
    Ok(Json(json!({
        "user_id": user_id,
        "user_info": user_json(&user, &teams),
        "keys": keys,
        "teams": team_objects,
    })))
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
    max_budget: Option<f64>,
    soft_budget: Option<f64>,
    budget_duration: Option<String>,
    max_parallel_requests: Option<i64>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
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
) -> Result<Json<Value>, ApiError> {
    let r: UpdateUserRequest = json_body(&state, &headers, body).await?;
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
    if r.max_budget.is_some() {
        patch.max_budget = Some(money("max_budget", r.max_budget)?);
    }
    if r.soft_budget.is_some() {
        patch.soft_budget = Some(money("soft_budget", r.soft_budget)?);
    }
    for (field, value, slot) in [
        (
            "max_parallel_requests",
            r.max_parallel_requests,
            &mut patch.max_parallel_requests,
        ),
        ("tpm_limit", r.tpm_limit, &mut patch.tpm_limit),
        ("rpm_limit", r.rpm_limit, &mut patch.rpm_limit),
    ] {
        if value.is_some() {
            *slot = Some(limit(field, value)?);
        }
    }
    if let Some(d) = r.budget_duration {
        patch.budget_reset_at = Some(Some(reset_at("budget_duration", &d)?));
        patch.budget_duration = Some(Some(d));
    }

    let existing = match (&r.user_id, &r.user_email) {
        (Some(id), _) => {
            let found = state.store().users().find(id).await?;
            let found = found.ok_or_else(|| {
                ApiError::not_found(format!("User {id} not found")).with_param("user_id")
            })?;
            if let Some(email) = &r.user_email {
                patch.user_email = Some(Some(email.clone()));
            }
            found
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
                let data = user_json(&updated, &[]);
                Auditor::new(&state, &principal, &headers)
                    .record(
                        &state,
                        "created",
                        USERS_TABLE,
                        &updated.user_id,
                        None,
                        Some(data.clone()),
                    )
                    .await;
                return Ok(Json(json!({"user_id": updated.user_id, "data": data})));
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
        .map_err(|e| match e {
            StoreError::Conflict { .. } => {
                bad_field("sso_user_id", "Another user already has this sso_user_id")
            }
            other => other.into(),
        })?
        .ok_or_else(|| ApiError::not_found(format!("User {} not found", existing.user_id)))?;
    if role.is_some() {
        // The user's keys act with its role: drop their cached snapshots.
        state.auth_cache().invalidate_all();
    }
    let teams = state.store().users().team_ids(&updated.user_id).await?;
    let data = user_json(&updated, &teams);
    Auditor::new(&state, &principal, &headers)
        .record(
            &state,
            "updated",
            USERS_TABLE,
            &updated.user_id,
            Some(user_json(&existing, &teams)),
            Some(data.clone()),
        )
        .await;
    Ok(Json(json!({"user_id": updated.user_id, "data": data})))
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
    responses((status = 200, description = "The number of users deleted", body = u64)),
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let r: DeleteUserRequest = json_body(&state, &headers, body).await?;
    if r.user_ids.is_empty() {
        return Err(bad_field("user_ids", "user_ids must not be empty"));
    }
    let auditor = Auditor::new(&state, &principal, &headers);
    let mut users = Vec::new();
    let mut keys = Vec::new();
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
        // The keys' rows are read only for their audit entries.
        if auditor.enabled() {
            keys.extend(all_keys_of(&state, id).await?);
        }
    }
    let tokens = state.store().users().delete_with_keys(&r.user_ids).await?;
    for token in &tokens {
        state.auth_cache().invalidate(token).await;
    }
    for user in &users {
        auditor
            .record(
                &state,
                "deleted",
                USERS_TABLE,
                &user.user_id,
                Some(user_json(user, &[])),
                None,
            )
            .await;
    }
    for key in &keys {
        auditor
            .record(
                &state,
                "deleted",
                KEYS_TABLE,
                &key.token,
                Some(key_json(key)),
                None,
            )
            .await;
    }
    Ok(Json(json!(r.user_ids.len())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Filter users by role.
    role: Option<String>,
    /// Comma-separated user ids.
    user_ids: Option<String>,
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
    let query = UserQuery {
        role: q.role,
        user_ids: comma_list(q.user_ids),
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
    responses((status = 200, body = serde_json::Value)),
)]
pub async fn available_roles() -> Json<Value> {
    Json(json!({
        "proxy_admin": {"description": "Proxy admin: can create, update and delete keys, users, teams and models", "ui_label": "Admin (All Permissions)"},
        "proxy_admin_viewer": {"description": "Proxy admin viewer: can view all keys, users, teams and spend", "ui_label": "Admin (View Only)"},
        "internal_user": {"description": "Internal user: can create, delete and view their own keys and spend", "ui_label": "Internal User (Create/Delete/View)"},
        "internal_user_viewer": {"description": "Internal user viewer: can view their own keys and spend", "ui_label": "Internal User (View Only)"},
    }))
}
