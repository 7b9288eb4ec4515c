//! A team's logging callbacks (`/team/{team_id}/callback`, `/team/{team_id}/disable_logging`),
//! kept in the team's `metadata.logging` as LiteLLM keeps them. Credential values are stored
//! and never shown: the team's own answers and the audit log show them as `***REDACTED***`.

use super::{TeamObject, find_team, patch_team};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::management::scope::TeamAccess;
use crate::management::{bad_field, invalid, json_body};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use bursar_core::callbacks::{self, REDACTED};
use bursar_store::{TeamPatch, TeamRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// `POST /team/{team_id}/callback`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AddTeamCallback {
    callback_name: String,
    /// `success`, `failure` or `success_and_failure` (the default).
    callback_type: Option<String>,
    /// Values of LiteLLM's callback variables (`langfuse_host`, `langfuse_secret_key`, …).
    #[schema(value_type = BTreeMap<String, String>)]
    callback_vars: Map<String, Value>,
}

/// `{status, data}` around a team.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamCallbackAdded {
    pub status: String,
    pub data: TeamObject,
}

/// A team's callbacks as they are in effect.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamCallbackSettings {
    pub team_id: String,
    pub success_callbacks: Vec<String>,
    pub failure_callbacks: Vec<String>,
    /// The callbacks' variables, credentials as `***REDACTED***`.
    pub callback_vars: BTreeMap<String, String>,
}

/// `GET /team/{team_id}/callback`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamCallbacksResponse {
    pub status: String,
    pub data: TeamCallbackSettings,
}

/// Which callbacks remain.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamCallbackNames {
    pub team_id: String,
    pub success_callbacks: Vec<String>,
    pub failure_callbacks: Vec<String>,
}

/// `DELETE /team/{team_id}/callback/{callback_name}` and `POST /team/{team_id}/disable_logging`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamCallbackDeleteResponse {
    pub status: String,
    pub message: String,
    pub data: TeamCallbackNames,
}

fn logging(team: &TeamRow) -> Vec<Map<String, Value>> {
    team.metadata
        .get("logging")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e.as_object().cloned())
                .collect()
        })
        .unwrap_or_default()
}

fn field<'a>(entry: &'a Map<String, Value>, name: &str) -> &'a str {
    entry.get(name).and_then(Value::as_str).unwrap_or_default()
}

fn names(team: &TeamRow) -> TeamCallbackNames {
    let mut success_callbacks = Vec::new();
    let mut failure_callbacks = Vec::new();
    for entry in logging(team) {
        let name = field(&entry, "callback_name").to_string();
        match field(&entry, "callback_type") {
            "success" => success_callbacks.push(name),
            "failure" => failure_callbacks.push(name),
            _ => {
                success_callbacks.push(name.clone());
                failure_callbacks.push(name);
            }
        }
    }
    TeamCallbackNames {
        team_id: team.team_id.clone(),
        success_callbacks,
        failure_callbacks,
    }
}

/// A team's metadata with every callback variable's value replaced by [`REDACTED`] (for
/// answers and the audit log).
pub fn redacted_metadata(metadata: &Value) -> Value {
    let mut out = metadata.clone();
    let hide = |vars: &mut Value| {
        if let Some(vars) = vars.as_object_mut() {
            for value in vars.values_mut() {
                *value = Value::String(REDACTED.into());
            }
        }
    };
    if let Some(entries) = out.get_mut("logging").and_then(Value::as_array_mut) {
        for entry in entries {
            if let Some(vars) = entry.get_mut("callback_vars") {
                hide(vars);
            }
        }
    }
    if let Some(vars) = out
        .get_mut("callback_settings")
        .and_then(|s| s.get_mut("callback_vars"))
    {
        hide(vars);
    }
    out
}

/// The team, when the caller may manage its callbacks (proxy, org or team admin).
async fn managed_team(
    state: &AppState,
    principal: &Principal,
    team_id: &str,
    unknown: impl FnOnce(bool) -> ApiError,
) -> Result<TeamRow, ApiError> {
    let team = match state.store().teams().find(team_id).await? {
        Some(team) => team,
        None => return Err(unknown(principal.is_proxy_admin())),
    };
    if !TeamAccess::of(state, principal, &team).await?.manages() {
        return Err(ApiError::forbidden("You do not have access to this team"));
    }
    Ok(team)
}

fn no_access_or(
    status_for_admin: fn(String) -> ApiError,
    team_id: &str,
) -> impl FnOnce(bool) -> ApiError + '_ {
    move |admin| {
        if admin {
            status_for_admin(format!("Team id = {team_id} does not exist."))
        } else {
            ApiError::forbidden("You do not have access to this team")
        }
    }
}

/// Adds a logging callback to a team (its credentials are never shown again).
#[utoipa::path(
    post,
    path = "/team/{team_id}/callback",
    operation_id = "add_team_callbacks",
    tag = crate::openapi::TEAMS,
    params(("team_id" = String, Path, description = "The team")),
    request_body = AddTeamCallback,
    responses((status = 200, body = TeamCallbackAdded)),
)]
pub async fn add(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(team_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TeamCallbackAdded>, ApiError> {
    let r: AddTeamCallback = json_body(&state, &headers, body).await?;
    let team = managed_team(
        &state,
        &principal,
        &team_id,
        no_access_or(ApiError::bad_request, &team_id),
    )
    .await?;
    let callback_type = r
        .callback_type
        .unwrap_or_else(|| "success_and_failure".into());
    let mut vars = Map::new();
    for (name, value) in &r.callback_vars {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            _ => {
                return Err(invalid("callback_vars", format!("{name} must be a string")));
            }
        };
        vars.insert(name.clone(), Value::String(text));
    }
    let pairs: Vec<(&str, &str)> = vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
        .collect();
    if let Some(problem) = callbacks::check(&r.callback_name, &callback_type, &pairs) {
        return Err(invalid("callback_vars", problem));
    }
    let mut entries = logging(&team);
    if entries.iter().any(|e| {
        field(e, "callback_name") == r.callback_name && field(e, "callback_type") == callback_type
    }) {
        return Err(bad_field(
            "callback_name",
            format!(
                "callback_name = {} already exists in team_callback_settings, for team_id = {team_id} and event = {callback_type}",
                r.callback_name
            ),
        ));
    }
    let mut entry = Map::new();
    entry.insert("callback_name".into(), Value::String(r.callback_name));
    entry.insert("callback_type".into(), Value::String(callback_type));
    entry.insert("callback_vars".into(), Value::Object(vars));
    entries.push(entry);
    let data = set_logging(&state, &principal, &headers, &team, entries, None).await?;
    Ok(Json(TeamCallbackAdded {
        status: "success".into(),
        data,
    }))
}

/// Writes `entries` as the team's `metadata.logging` (and clears its callback settings when
/// `disable`).
async fn set_logging(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    team: &TeamRow,
    entries: Vec<Map<String, Value>>,
    disable: Option<()>,
) -> Result<TeamObject, ApiError> {
    let mut metadata = team.metadata.as_object().cloned().unwrap_or_default();
    metadata.insert(
        "logging".into(),
        Value::Array(entries.into_iter().map(Value::Object).collect()),
    );
    if disable.is_some() {
        let settings = metadata
            .entry("callback_settings")
            .or_insert_with(|| Value::Object(Map::new()));
        if !settings.is_object() {
            *settings = Value::Object(Map::new());
        }
        if let Some(settings) = settings.as_object_mut() {
            settings.insert("success_callback".into(), Value::Array(Vec::new()));
            settings.insert("failure_callback".into(), Value::Array(Vec::new()));
        }
    }
    let patch = TeamPatch {
        metadata: Some(Value::Object(metadata)),
        ..TeamPatch::default()
    };
    patch_team(state, principal, headers, team, &patch, "updated").await
}

/// The team's callbacks in effect, credentials redacted.
#[utoipa::path(
    get,
    path = "/team/{team_id}/callback",
    operation_id = "get_team_callbacks",
    tag = crate::openapi::TEAMS,
    params(("team_id" = String, Path, description = "The team")),
    responses((status = 200, body = TeamCallbacksResponse)),
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(team_id): Path<String>,
) -> Result<Json<TeamCallbacksResponse>, ApiError> {
    let team = managed_team(
        &state,
        &principal,
        &team_id,
        no_access_or(ApiError::not_found, &team_id),
    )
    .await?;
    let mut callback_vars = BTreeMap::new();
    for entry in logging(&team) {
        if let Some(vars) = entry.get("callback_vars").and_then(Value::as_object) {
            for (name, value) in vars {
                let shown = if callbacks::is_sensitive(name) {
                    REDACTED.to_string()
                } else {
                    value.as_str().unwrap_or_default().to_string()
                };
                callback_vars.insert(name.clone(), shown);
            }
        }
    }
    let names = names(&team);
    Ok(Json(TeamCallbacksResponse {
        status: "success".into(),
        data: TeamCallbackSettings {
            team_id: names.team_id,
            success_callbacks: names.success_callbacks,
            failure_callbacks: names.failure_callbacks,
            callback_vars,
        },
    }))
}

/// Removes a callback (every event it was added for) from a team.
#[utoipa::path(
    delete,
    path = "/team/{team_id}/callback/{callback_name}",
    operation_id = "delete_team_callback",
    tag = crate::openapi::TEAMS,
    params(
        ("team_id" = String, Path, description = "The team"),
        ("callback_name" = String, Path, description = "The callback"),
    ),
    responses((status = 200, body = TeamCallbackDeleteResponse)),
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((team_id, callback_name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<TeamCallbackDeleteResponse>, ApiError> {
    let team = managed_team(
        &state,
        &principal,
        &team_id,
        no_access_or(ApiError::not_found, &team_id),
    )
    .await?;
    let mut entries = logging(&team);
    let before = entries.len();
    entries.retain(|e| field(e, "callback_name") != callback_name);
    if entries.len() == before {
        return Err(ApiError::not_found(format!(
            "Callback {callback_name} not found for team {team_id}"
        ))
        .with_param("callback_name"));
    }
    set_logging(&state, &principal, &headers, &team, entries, None).await?;
    let team = find_team(&state, &team_id).await?;
    Ok(Json(TeamCallbackDeleteResponse {
        status: "success".into(),
        message: format!("Callback {callback_name} removed for team {team_id}"),
        data: names(&team),
    }))
}

/// Turns every logging callback of a team off.
#[utoipa::path(
    post,
    path = "/team/{team_id}/disable_logging",
    operation_id = "disable_team_logging",
    tag = crate::openapi::TEAMS,
    params(("team_id" = String, Path, description = "The team")),
    responses((status = 200, body = TeamCallbackDeleteResponse)),
)]
pub async fn disable_logging(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(team_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<TeamCallbackDeleteResponse>, ApiError> {
    let Some(team) = state.store().teams().find(&team_id).await? else {
        return Err(ApiError::not_found(format!(
            "Team id = {team_id} does not exist."
        )));
    };
    if !TeamAccess::of(&state, &principal, &team).await?.manages() {
        return Err(ApiError::forbidden("You do not have access to this team"));
    }
    set_logging(&state, &principal, &headers, &team, Vec::new(), Some(())).await?;
    Ok(Json(TeamCallbackDeleteResponse {
        status: "success".into(),
        message: format!("Logging disabled for team {team_id}"),
        data: TeamCallbackNames {
            team_id,
            success_callbacks: Vec::new(),
            failure_callbacks: Vec::new(),
        },
    }))
}
