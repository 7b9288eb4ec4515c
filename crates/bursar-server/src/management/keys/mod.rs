//! `/key/*`: virtual key management (LiteLLM's `key_management_endpoints`).
//!
//! Object-level rules live here, after the route check in the auth middleware: a non-admin may
//! only act on keys it owns and only create keys for itself; read-only admins may read
//! everything. Every write invalidates the key's cached snapshot, so a blocked, deleted or
//! rotated key stops working on the very next request.

pub mod dto;

use super::audit::{Auditor, KEYS_TABLE};
use super::scope;
use super::teams::{admin_team_ids, may_manage_team_key};
use super::{
    FromParts, Page, bad_field, descending, json_body, json_body_parts, limit_change, money,
    money_change, nullable, reset_at,
};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use bursar_core::NanoUsd;
use bursar_core::access::routes_for_key_type;
use bursar_core::duration::BudgetDuration;
use bursar_core::keys::{
    KEY_PREFIX, abbreviate_key, generate_key, hash_key, is_key_hash, mask_key,
};
use bursar_core::policy::keys::{
    Authority, BudgetFields, KeyRequest, KeyState, OrgPlacement, TeamPlacement,
};
use bursar_core::policy::{self, Ceiling, LimitChange, LimitSet};
use bursar_core::roles::UserRole;
use bursar_store::{AliasQuery, KeyPatch, KeyQuery, KeyRow, KeySort, NewKey, StoreError, TeamRow};
use dto::{
    BulkUpdateKeyResponse, DeleteKeyResponse, FailedKeyUpdate, GenerateKeyResponse,
    KeyAliasesResponse, KeyHealthResponse, KeyInfoResponse, KeyListItem, KeyListResponseObject,
    KeyObject, RequestEcho, ResetKeySpendResponse, SuccessfulKeyUpdate, UpdateKeyResponse,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// Shortest caller-chosen key accepted (LiteLLM's `MINIMUM_CUSTOM_KEY_LENGTH`).
const MIN_CUSTOM_KEY_LENGTH: usize = 16;

/// The fields shared by `/key/generate`, `/key/update` and `/key/regenerate`. Absent = unchanged.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct KeyFields {
    key_alias: Option<String>,
    /// How long the key lives (`30d`, `-1` or `null` = forever).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    duration: Option<Option<String>>,
    models: Option<Vec<String>>,
    spend: Option<f64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>)]
    max_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>)]
    soft_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    budget_duration: Option<Option<String>>,
    budget_id: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    organization_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    max_parallel_requests: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    rpm_limit: Option<Option<i64>>,
    rpm_limit_type: Option<String>,
    tpm_limit_type: Option<String>,
    model_max_budget: Option<Map<String, Value>>,
    model_rpm_limit: Option<Map<String, Value>>,
    model_tpm_limit: Option<Map<String, Value>>,
    metadata: Option<Map<String, Value>>,
    permissions: Option<Map<String, Value>>,
    aliases: Option<Map<String, Value>>,
    allowed_routes: Option<Vec<String>>,
    key_type: Option<String>,
    tags: Option<Vec<String>>,
    guardrails: Option<Vec<String>>,
    enforced_params: Option<Vec<String>>,
    blocked: Option<bool>,
}

/// The identifying fields of a request; the rest is [`KeyFields`], parsed from the same body
/// (not flattened, so type errors keep their field name).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct KeyIdentity {
    key: Option<String>,
    new_key: Option<String>,
    grace_period: Option<String>,
}

/// `POST /key/generate`.
#[derive(Debug, ToSchema)]
pub struct GenerateKeyRequest {
    /// A caller-chosen key (`sk-…`, at least 16 characters); generated when absent.
    key: Option<String>,
    #[serde(flatten)]
    fields: KeyFields,
}

impl FromParts for GenerateKeyRequest {
    type Identity = KeyIdentity;
    type Fields = KeyFields;
    fn from_parts(identity: KeyIdentity, fields: KeyFields) -> Self {
        GenerateKeyRequest {
            key: identity.key,
            fields,
        }
    }
}

/// `POST /key/update`: `key` (or, without it, `key_alias`) picks the key; absent fields are
/// unchanged, `null` ones are cleared.
#[derive(Debug, ToSchema)]
pub struct UpdateKeyRequest {
    /// The key or its hash.
    key: Option<String>,
    #[serde(flatten)]
    fields: KeyFields,
}

impl FromParts for UpdateKeyRequest {
    type Identity = KeyIdentity;
    type Fields = KeyFields;
    fn from_parts(identity: KeyIdentity, fields: KeyFields) -> Self {
        UpdateKeyRequest {
            key: identity.key,
            fields,
        }
    }
}

/// `POST /key/regenerate` and `POST /key/{key}/regenerate`.
#[derive(Debug, ToSchema)]
pub struct RegenerateKeyRequest {
    #[serde(flatten)]
    identity: KeyIdentity,
    #[serde(flatten)]
    fields: KeyFields,
}

impl FromParts for RegenerateKeyRequest {
    type Identity = KeyIdentity;
    type Fields = KeyFields;
    fn from_parts(identity: KeyIdentity, fields: KeyFields) -> Self {
        RegenerateKeyRequest { identity, fields }
    }
}

/// Validated changes, ready for the store.
struct Changes {
    patch: KeyPatch,
    key_type: Option<String>,
}

/// `duration` → `expires_at`; `"-1"` or absent means never.
pub(super) fn expiry(duration: &str) -> Result<Option<i64>, ApiError> {
    if duration.trim() == "-1" {
        return Ok(None);
    }
    reset_at("duration", duration).map(Some)
}

impl KeyFields {
    /// Validates every field and folds LiteLLM's metadata-borne fields into `metadata`.
    fn into_changes(self, existing_metadata: Option<&Value>) -> Result<Changes, ApiError> {
        let mut patch = KeyPatch::default();
        if let Some(alias) = self.key_alias {
            patch.key_alias = Some(Some(alias).filter(|a| !a.is_empty()));
        }
        match &self.duration {
            Some(Some(d)) => patch.expires_at = Some(expiry(d)?),
            Some(None) => patch.expires_at = Some(None),
            None => {}
        }
        patch.models = self.models;
        if let Some(spend) = self.spend {
            patch.spend = money("spend", Some(spend))?;
        }
        patch.max_budget = money_change("max_budget", self.max_budget)?;
        patch.soft_budget = money_change("soft_budget", self.soft_budget)?;
        match self.budget_duration {
            Some(Some(d)) => {
                patch.budget_reset_at = Some(Some(reset_at("budget_duration", &d)?));
                patch.budget_duration = Some(Some(d));
            }
            // Cleared: the key's spend no longer resets.
            Some(None) => {
                patch.budget_reset_at = Some(None);
                patch.budget_duration = Some(None);
            }
            None => {}
        }
        patch.budget_id = self.budget_id.map(Some);
        patch.user_id = self.user_id.map(Some);
        patch.team_id = self.team_id.map(Some);
        patch.organization_id = self.organization_id.map(Some);
        patch.max_parallel_requests =
            limit_change("max_parallel_requests", self.max_parallel_requests)?;
        patch.tpm_limit = limit_change("tpm_limit", self.tpm_limit)?;
        patch.rpm_limit = limit_change("rpm_limit", self.rpm_limit)?;
        patch.model_max_budget = self.model_max_budget.map(Value::Object);
        patch.permissions = self.permissions.map(Value::Object);
        patch.aliases = self.aliases.map(Value::Object);
        patch.blocked = self.blocked;

        if let Some(key_type) = &self.key_type {
            let seeded = routes_for_key_type(key_type).ok_or_else(|| {
                bad_field("key_type", format!("Invalid key_type {key_type:?}: expected llm_api, management, read_only or default"))
            })?;
            if self.allowed_routes.is_none() {
                patch.allowed_routes = Some(seeded);
            }
        }
        if let Some(routes) = self.allowed_routes {
            patch.allowed_routes = Some(routes);
        }
        for (field, value) in [
            ("rpm_limit_type", &self.rpm_limit_type),
            ("tpm_limit_type", &self.tpm_limit_type),
        ] {
            if let Some(v) = value
                && !matches!(
                    v.as_str(),
                    "guaranteed_throughput" | "best_effort_throughput" | "dynamic"
                )
            {
                return Err(bad_field(
                    field,
                    format!(
                        "Invalid {field} {v:?}: expected guaranteed_throughput, best_effort_throughput or dynamic"
                    ),
                ));
            }
        }

        // Fields LiteLLM keeps inside metadata.
        let mut folded: Vec<(&str, Value)> = Vec::new();
        if let Some(v) = self.model_rpm_limit {
            folded.push(("model_rpm_limit", Value::Object(v)));
        }
        if let Some(v) = self.model_tpm_limit {
            folded.push(("model_tpm_limit", Value::Object(v)));
        }
        for (name, list) in [
            ("tags", self.tags),
            ("guardrails", self.guardrails),
            ("enforced_params", self.enforced_params),
        ] {
            if let Some(list) = list {
                folded.push((name, Value::from(list)));
            }
        }
        for (name, v) in [
            ("rpm_limit_type", self.rpm_limit_type),
            ("tpm_limit_type", self.tpm_limit_type),
        ] {
            if let Some(v) = v {
                folded.push((name, Value::String(v)));
            }
        }
        if self.metadata.is_some() || !folded.is_empty() {
            let mut metadata = match (self.metadata, existing_metadata) {
                (Some(m), _) => m,
                (None, Some(Value::Object(m))) => m.clone(),
                (None, _) => Map::new(),
            };
            for (name, value) in folded {
                metadata.insert(name.to_string(), value);
            }
            patch.metadata = Some(Value::Object(metadata));
        }
        Ok(Changes {
            patch,
            key_type: self.key_type,
        })
    }
}

/// The caller's identity for `created_by` / `updated_by`.
pub(super) fn actor(principal: &Principal) -> String {
    principal.user_id().unwrap_or("default_user_id").to_string()
}

pub(super) fn is_admin_reader(principal: &Principal) -> bool {
    matches!(
        principal.role(),
        UserRole::ProxyAdmin | UserRole::ProxyAdminViewer
    )
}

/// Owners and admins may act on a key.
fn may_manage(principal: &Principal, key: &KeyRow) -> bool {
    if principal.is_proxy_admin() {
        return true;
    }
    match (principal.user_id(), &key.user_id) {
        (Some(me), Some(owner)) => me == owner,
        _ => matches!(principal, Principal::VirtualKey(s) if s.key.token == key.token),
    }
}

/// Decides whether the caller may perform `route` on `key`. A team's key follows the team's
/// rules (team and org admins; plain members only for routes in `team_member_permissions`);
/// any other key its owner's. `denied` is the refusal for personal keys.
/// On success, the caller's standing towards the key, which decides what it may change.
async fn authorize(
    state: &AppState,
    principal: &Principal,
    key: &KeyRow,
    route: &str,
    denied: &str,
) -> Result<Authority, ApiError> {
    if principal.is_proxy_admin() {
        return Ok(Authority::ProxyAdmin);
    }
    // Admin readers, and a key reading itself, may read it.
    if route == "/key/info"
        && (is_admin_reader(principal)
            || matches!(principal, Principal::VirtualKey(s) if s.key.token == key.token))
    {
        return Ok(Authority::Holder);
    }
    if let Some(team_id) = &key.team_id
        && let Some(team) = state.store().teams().find(team_id).await?
    {
        let access = may_manage_team_key(state, principal, &team, route).await?;
        return Ok(if access.manages() {
            Authority::Admin
        } else {
            Authority::Holder
        });
    }
    if may_manage(principal, key) {
        Ok(Authority::Holder)
    } else {
        Err(ApiError::forbidden(denied.to_string()))
    }
}

/// The caller as the key policy sees it.
fn policy_caller<'a>(
    state: &'a AppState,
    authority: Authority,
    ceiling: &'a Ceiling,
) -> policy::keys::Caller<'a> {
    policy::keys::Caller {
        authority,
        ceiling,
        catalog: state.catalog(),
    }
}

/// The key as the policy compares against it.
fn key_state(row: &KeyRow) -> KeyState {
    KeyState {
        limits: LimitSet {
            max_budget: row.max_budget,
            rpm_limit: row.rpm_limit,
            tpm_limit: row.tpm_limit,
            max_parallel_requests: row.max_parallel_requests,
        },
        models: row.models.clone(),
        blocked: row.blocked,
        expires_at: row.expires_at,
        allowed_routes: row.allowed_routes.clone(),
        budget: BudgetFields {
            spend: row.spend,
            max_budget: row.max_budget,
            soft_budget: row.soft_budget,
            budget_duration: row.budget_duration.clone(),
            budget_id: row.budget_id.clone(),
            model_max_budget: row.model_max_budget.clone(),
            governing_metadata: BudgetFields::governing(&row.metadata),
        },
    }
}

/// What `patch` asks of the policy; `existing` supplies what it leaves unchanged.
fn key_request(patch: &KeyPatch, existing: Option<&KeyRow>) -> KeyRequest {
    let base = existing.map(key_state).unwrap_or_default();
    let object = |v: &Option<Value>| v.as_ref().and_then(Value::as_object).cloned();
    KeyRequest {
        limits: LimitChange {
            max_budget: patch.max_budget,
            rpm_limit: patch.rpm_limit,
            tpm_limit: patch.tpm_limit,
            max_parallel_requests: patch.max_parallel_requests,
        },
        models: patch.models.clone(),
        blocked: patch.blocked,
        expires_at: patch.expires_at,
        permissions: object(&patch.permissions),
        allowed_routes: patch.allowed_routes.clone(),
        aliases: object(&patch.aliases),
        sets_spend: patch.spend.is_some(),
        budget: BudgetFields {
            spend: patch.spend.unwrap_or(base.budget.spend),
            max_budget: patch.max_budget.unwrap_or(base.budget.max_budget),
            soft_budget: patch.soft_budget.unwrap_or(base.budget.soft_budget),
            budget_duration: patch
                .budget_duration
                .clone()
                .unwrap_or(base.budget.budget_duration),
            budget_id: patch.budget_id.clone().unwrap_or(base.budget.budget_id),
            model_max_budget: patch
                .model_max_budget
                .clone()
                .unwrap_or(base.budget.model_max_budget),
            governing_metadata: match &patch.metadata {
                Some(m) => BudgetFields::governing(m),
                None => base.budget.governing_metadata,
            },
        },
    }
}

/// Writes what the policy narrowed back into the patch.
fn narrow(patch: &mut KeyPatch, request: KeyRequest) {
    patch.max_budget = request.limits.max_budget;
    patch.rpm_limit = request.limits.rpm_limit;
    patch.tpm_limit = request.limits.tpm_limit;
    patch.max_parallel_requests = request.limits.max_parallel_requests;
    patch.models = request.models;
    patch.expires_at = request.expires_at;
    patch.allowed_routes = request.allowed_routes;
}

/// Where a key goes, as the placement rule sees it: its team (after the caller passed the
/// team's route check) and its organization.
async fn place(
    state: &AppState,
    principal: &Principal,
    authority: Authority,
    owner: Option<&str>,
    team: Option<&TeamRow>,
    organization_id: Option<&str>,
) -> Result<(), ApiError> {
    if authority == Authority::ProxyAdmin {
        return Ok(());
    }
    let owner_is_member = match (team, owner) {
        (Some(team), Some(owner)) => state
            .store()
            .teams()
            .member(&team.team_id, owner)
            .await?
            .is_some(),
        _ => false,
    };
    // The caller's own membership matters only for a key outside a team.
    let caller_is_member = match (team, organization_id, principal.user_id()) {
        (None, Some(org), Some(me)) => state.store().orgs().member(org, me).await?.is_some(),
        _ => false,
    };
    policy::keys::place_key(
        authority,
        principal.user_id(),
        owner,
        team.map(|t| TeamPlacement {
            team_id: &t.team_id,
            team_org: t.organization_id.as_deref(),
            owner_is_member,
        }),
        organization_id.map(|o| OrgPlacement {
            organization_id: o,
            caller_is_member,
        }),
    )?;
    Ok(())
}

/// A caller-chosen secret must be new: not the master key, nor any key's current or
/// rotated-out secret.
async fn check_new_secret(state: &AppState, raw: &str, field: &str) -> Result<(), ApiError> {
    let token = hash_key(raw);
    let taken = state.master_key().is_some_and(|m| m.matches(raw))
        || state.store().keys().find_by_hash(&token).await?.is_some()
        || state
            .store()
            .keys()
            .find_by_deprecated_hash(&token, 0)
            .await?
            .is_some();
    if taken {
        return Err(bad_field(
            field,
            "This key value is already in use; choose another or let the proxy generate one",
        ));
    }
    Ok(())
}

/// The checks every change of an existing key runs (update and regeneration): the key
/// policy for the caller's standing, and, when the key moves to another team or
/// organization, the same checks as creating it there.
async fn check_key_change(
    state: &AppState,
    principal: &Principal,
    authority: Authority,
    existing: &KeyRow,
    changes: &mut Changes,
) -> Result<(), ApiError> {
    let team_moves = changes
        .patch
        .team_id
        .as_ref()
        .is_some_and(|t| *t != existing.team_id);
    let org_moves = changes
        .patch
        .organization_id
        .as_ref()
        .is_some_and(|o| *o != existing.organization_id);
    let moves = team_moves || org_moves;
    let team_id = changes
        .patch
        .team_id
        .clone()
        .unwrap_or_else(|| existing.team_id.clone());
    let team = match (&team_id, moves) {
        (Some(id), true) => Some(find_team(state, id).await?),
        _ => None,
    };
    // Moving into a team asks for the standing there; the change is judged by the weaker of
    // the two standings.
    let mut authority = authority;
    if let Some(team) = &team
        && team_moves
        && authority != Authority::ProxyAdmin
    {
        let there = if may_manage_team_key(state, principal, team, "/key/generate")
            .await?
            .manages()
        {
            Authority::Admin
        } else {
            Authority::Holder
        };
        if there == Authority::Holder {
            authority = Authority::Holder;
        }
    }
    let ceiling = scope::ceiling(state, principal);
    let mut request = key_request(&changes.patch, Some(existing));
    if moves {
        // A key moved is a key created there: all its limits must fit the caller's ceiling.
        let l = &mut request.limits;
        l.max_budget = l.max_budget.or(Some(existing.max_budget));
        l.rpm_limit = l.rpm_limit.or(Some(existing.rpm_limit));
        l.tpm_limit = l.tpm_limit.or(Some(existing.tpm_limit));
        l.max_parallel_requests = l
            .max_parallel_requests
            .or(Some(existing.max_parallel_requests));
    }
    policy::keys::change_key(
        &policy_caller(state, authority, &ceiling),
        &key_state(existing),
        &mut request,
    )?;
    narrow(&mut changes.patch, request);
    if !moves {
        return Ok(());
    }
    if let Some(team) = &team
        && team_moves
    {
        if changes.patch.models.is_none() {
            changes.patch.models = Some(existing.models.clone());
        }
        check_team_models(team, changes)?;
        if changes.patch.organization_id.is_none() {
            changes.patch.organization_id = Some(team.organization_id.clone());
        }
    }
    let owner = changes
        .patch
        .user_id
        .clone()
        .unwrap_or_else(|| existing.user_id.clone());
    let org = changes
        .patch
        .organization_id
        .clone()
        .unwrap_or_else(|| existing.organization_id.clone());
    place(
        state,
        principal,
        authority,
        owner.as_deref(),
        team.as_ref(),
        org.as_deref(),
    )
    .await
}

async fn find_team(state: &AppState, team_id: &str) -> Result<TeamRow, ApiError> {
    state.store().teams().find(team_id).await?.ok_or_else(|| {
        ApiError::not_found(format!("Team not found, passed team_id={team_id}"))
            .with_param("team_id")
    })
}

/// Every key matching `query`'s filters, read page by page.
pub(super) async fn all_keys(state: &AppState, query: KeyQuery) -> Result<Vec<KeyRow>, ApiError> {
    const PAGE: u32 = 100;
    let mut out = Vec::new();
    for page in 1.. {
        let q = KeyQuery {
            page,
            size: PAGE,
            ..query.clone()
        };
        let (rows, total) = state.store().keys().list(&q).await?;
        let done = rows.len() < PAGE as usize
            || out.len() + rows.len() >= usize::try_from(total).unwrap_or(usize::MAX);
        out.extend(rows);
        if done {
            break;
        }
    }
    Ok(out)
}

/// A key as the audit log and other families' answers show it.
pub fn key_json(row: &KeyRow) -> Value {
    KeyObject::audit(row)
}

/// Accepts a raw `sk-…` key or a stored hash; anything else is malformed.
fn token_of(key: &str) -> Result<String, ApiError> {
    if is_key_hash(key) {
        Ok(key.to_string())
    } else if key.starts_with(KEY_PREFIX) {
        Ok(hash_key(key))
    } else {
        Err(bad_field("key", "Invalid key format."))
    }
}

async fn find_key(state: &AppState, key: &str) -> Result<KeyRow, ApiError> {
    let token = token_of(key)?;
    state
        .store()
        .keys()
        .find_by_hash(&token)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("Key not found: {}", abbreviated(key))).with_param("key")
        })
}

fn abbreviated(key: &str) -> String {
    if is_key_hash(key) {
        key.to_string()
    } else {
        abbreviate_key(key)
    }
}

fn alias_taken(alias: &str) -> ApiError {
    bad_field(
        "key_alias",
        format!(
            "Key with alias '{alias}' already exists. Unique key aliases across all keys are required."
        ),
    )
}

fn map_conflict(alias: Option<&str>) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::Conflict { .. } => match alias {
            Some(a) => alias_taken(a),
            None => ApiError::bad_request("A key with this value already exists"),
        },
        other => other.into(),
    }
}

/// Creates a virtual key; the raw key is in the answer only.
#[utoipa::path(
    post,
    path = "/key/generate",
    operation_id = "generate_key_fn",
    tag = crate::openapi::KEYS,
    request_body = GenerateKeyRequest,
    responses((status = 200, body = GenerateKeyResponse)),
)]
pub async fn generate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<GenerateKeyResponse>, ApiError> {
    let request: GenerateKeyRequest = json_body_parts(&state, &headers, body).await?;
    create_key(&state, &principal, &headers, request, false).await
}

/// Creates a team's service-account key: a key without an owner, named in its metadata
/// (`service_account_id`: the alias, or a new id).
#[utoipa::path(
    post,
    path = "/key/service-account/generate",
    operation_id = "generate_service_account_key_fn",
    tag = crate::openapi::KEYS,
    request_body = GenerateKeyRequest,
    responses((status = 200, body = GenerateKeyResponse)),
)]
pub async fn generate_service_account(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<GenerateKeyResponse>, ApiError> {
    let request: GenerateKeyRequest = json_body_parts(&state, &headers, body).await?;
    create_key(&state, &principal, &headers, request, true).await
}

/// The shared body of `/key/generate` and `/key/service-account/generate`.
async fn create_key(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    GenerateKeyRequest { key, mut fields }: GenerateKeyRequest,
    service_account: bool,
) -> Result<Json<GenerateKeyResponse>, ApiError> {
    if service_account {
        let Some(team_id) = fields.team_id.as_deref().filter(|t| !t.is_empty()) else {
            return Err(bad_field(
                "team_id",
                "team_id is required for service account keys. Please specify `team_id` in the request body.",
            ));
        };
        if state.store().teams().find(team_id).await?.is_none() {
            return Err(bad_field(
                "team_id",
                "team_id does not exist in the database. Please specify a valid `team_id` in the request body.",
            ));
        }
        fields.user_id = None;
        let name = fields
            .key_alias
            .clone()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        fields
            .metadata
            .get_or_insert_with(Map::new)
            .entry("service_account_id")
            .or_insert(Value::String(name));
    }
    let raw = match key {
        Some(custom) => {
            if !custom.starts_with(KEY_PREFIX) {
                return Err(bad_field(
                    "key",
                    format!(
                        "Invalid key format. LiteLLM Virtual Key must start with 'sk-'. Received: {}",
                        mask_key(&custom)
                    ),
                ));
            }
            if custom.len() < MIN_CUSTOM_KEY_LENGTH {
                return Err(bad_field(
                    "key",
                    format!("Custom key must be at least {MIN_CUSTOM_KEY_LENGTH} characters long"),
                ));
            }
            check_new_secret(state, &custom, "key").await?;
            custom
        }
        None => generate_key(),
    };
    let duration = fields.duration.clone().flatten();
    let requested_duration = duration.is_some();
    let mut changes = fields.into_changes(None)?;
    let team = match changes.patch.team_id.clone().flatten() {
        Some(team_id) => Some(find_team(state, &team_id).await?),
        None => None,
    };
    let authority = match &team {
        _ if principal.is_proxy_admin() => Authority::ProxyAdmin,
        Some(team) => {
            if may_manage_team_key(state, principal, team, "/key/generate")
                .await?
                .manages()
            {
                Authority::Admin
            } else {
                Authority::Holder
            }
        }
        None => Authority::Holder,
    };
    if service_account {
        // A service account has no owner, whoever creates it.
        changes.patch.user_id = Some(None);
    } else if authority != Authority::ProxyAdmin {
        let me = principal.user_id().map(str::to_string);
        match changes.patch.user_id.clone().flatten() {
            // Team admins may create team keys for members (checked by `place`).
            Some(_) if team.is_some() && authority == Authority::Admin => {}
            Some(requested) if Some(&requested) != me.as_ref() => {
                return Err(ApiError::forbidden(format!(
                    "User can only create keys for themselves. Got user_id={requested}, Your ID={}",
                    me.as_deref().unwrap_or("None")
                )));
            }
            _ => changes.patch.user_id = Some(me),
        }
    }
    if let Some(team) = &team {
        check_team_key(
            team,
            &mut changes,
            authority != Authority::Holder,
            requested_duration,
        )?;
    }
    let ceiling = scope::ceiling(state, principal);
    let mut asked = key_request(&changes.patch, None);
    policy::keys::new_key(&policy_caller(state, authority, &ceiling), &mut asked)?;
    narrow(&mut changes.patch, asked);
    if let Some(team) = &team {
        // What the policy filled in must fit the team too.
        check_team_models(team, &changes)?;
    }
    place(
        state,
        principal,
        authority,
        changes.patch.user_id.clone().flatten().as_deref(),
        team.as_ref(),
        changes.patch.organization_id.clone().flatten().as_deref(),
    )
    .await?;
    let alias = changes.patch.key_alias.clone().flatten();
    if let Some(a) = &alias
        && state.store().keys().find_by_alias(a).await?.is_some()
    {
        return Err(alias_taken(a));
    }
    let p = changes.patch;
    let new = NewKey {
        token: hash_key(&raw),
        key_name: Some(abbreviate_key(&raw)),
        key_alias: alias.clone(),
        user_id: p.user_id.flatten(),
        team_id: p.team_id.flatten(),
        organization_id: p.organization_id.flatten(),
        budget_id: p.budget_id.flatten(),
        models: p.models.unwrap_or_default(),
        aliases: p.aliases,
        metadata: p.metadata,
        permissions: p.permissions,
        allowed_routes: p.allowed_routes.unwrap_or_default(),
        blocked: p.blocked.unwrap_or(false),
        expires_at: p.expires_at.flatten(),
        max_budget: p.max_budget.flatten(),
        soft_budget: p.soft_budget.flatten(),
        budget_duration: p.budget_duration.flatten(),
        budget_reset_at: p.budget_reset_at.flatten(),
        max_parallel_requests: p.max_parallel_requests.flatten(),
        tpm_limit: p.tpm_limit.flatten(),
        rpm_limit: p.rpm_limit.flatten(),
        model_max_budget: p.model_max_budget,
        created_by: Some(actor(principal)),
        spend: p.spend.unwrap_or_default(),
    };
    let row = state
        .store()
        .keys()
        .insert(&new)
        .await
        .map_err(map_conflict(alias.as_deref()))?;
    state.auth_cache().invalidate(&row.token).await;
    Auditor::new(state, principal, headers)
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
        duration,
        key_type: Some(changes.key_type.unwrap_or_else(|| "default".into())),
    };
    Ok(Json(GenerateKeyResponse::new(raw, &row, echo)))
}

/// The rules of a team key: the key's models within the team's, its organization the
/// team's, and members' keys no longer-lived than `team_member_key_duration`. (Its owner's
/// membership is checked by [`place`].)
fn check_team_key(
    team: &TeamRow,
    changes: &mut Changes,
    manages_team: bool,
    requested_duration: bool,
) -> Result<(), ApiError> {
    check_team_models(team, changes)?;
    if changes.patch.organization_id.is_none() {
        changes.patch.organization_id = Some(team.organization_id.clone());
    }
    if !manages_team
        && let Some(limit) = team
            .metadata
            .get("team_member_key_duration")
            .and_then(Value::as_str)
    {
        let cap = expiry(limit)?;
        let asked = changes.patch.expires_at.flatten();
        if !requested_duration || asked.is_none() || asked.zip(cap).is_some_and(|(a, c)| a > c) {
            changes.patch.expires_at = Some(cap);
        }
    }
    Ok(())
}

/// A team key's models must be within the team's.
fn check_team_models(team: &TeamRow, changes: &Changes) -> Result<(), ApiError> {
    let unrestricted = |models: &[String]| {
        models.is_empty() || models.iter().any(|m| m == "all-proxy-models" || m == "*")
    };
    if let Some(models) = &changes.patch.models
        && !unrestricted(&team.models)
        && let Some(m) = models
            .iter()
            .find(|m| *m != "all-team-models" && !team.models.contains(m))
    {
        return Err(bad_field(
            "models",
            format!(
                "Model={m} not in team's allowed models. Team allowed models={:?}. Team id={}",
                team.models, team.team_id
            ),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InfoQuery {
    /// The key or its hash; defaults to the calling key.
    key: Option<String>,
}

/// A key's settings and spend; defaults to the calling key.
#[utoipa::path(
    get,
    path = "/key/info",
    operation_id = "info_key_fn",
    tag = crate::openapi::KEYS,
    params(InfoQuery),
    responses((status = 200, body = KeyInfoResponse)),
)]
pub async fn info(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<InfoQuery>,
) -> Result<Json<KeyInfoResponse>, ApiError> {
    let (passed, row) = match query.key {
        Some(key) => {
            let row = find_key(&state, &key).await?;
            (key, row)
        }
        None => match &principal {
            Principal::VirtualKey(snapshot) => {
                let row = state
                    .store()
                    .keys()
                    .find_by_hash(&snapshot.key.token)
                    .await?;
                let row = row.ok_or_else(|| ApiError::not_found("Key not found in database"))?;
                (snapshot.key.token.clone(), row)
            }
            Principal::MasterKey => {
                return Err(
                    ApiError::not_found("The master key has no key record; pass ?key=")
                        .with_param("key"),
                );
            }
        },
    };
    authorize(
        &state,
        &principal,
        &row,
        "/key/info",
        "You are not allowed to access this key's info. Only the key's owner and admins can view it.",
    )
    .await?;
    let mut info = KeyObject::new(&row);
    // LiteLLM leaves the hash out of a key's info.
    info.token = None;
    Ok(Json(KeyInfoResponse { key: passed, info }))
}

/// Updates a key; absent fields are unchanged.
#[utoipa::path(
    post,
    path = "/key/update",
    operation_id = "update_key_fn",
    tag = crate::openapi::KEYS,
    request_body = UpdateKeyRequest,
    responses((status = 200, body = UpdateKeyResponse)),
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UpdateKeyResponse>, ApiError> {
    let request: UpdateKeyRequest = json_body_parts(&state, &headers, body).await?;
    Ok(Json(
        update_key(&state, &principal, &headers, request).await?,
    ))
}

/// The shared body of `/key/update` and the bulk key updates.
async fn update_key(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    request: UpdateKeyRequest,
) -> Result<UpdateKeyResponse, ApiError> {
    let fields = request.fields;
    let existing = match (&request.key, &fields.key_alias) {
        (Some(key), _) => find_key(state, key).await?,
        (None, Some(alias)) => state
            .store()
            .keys()
            .find_by_alias(alias)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("Key with alias '{alias}' not found"))
                    .with_param("key_alias")
            })?,
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                "either key or key_alias must be provided",
            )
            .with_param("key"));
        }
    };
    let authority = authorize(
        state,
        principal,
        &existing,
        "/key/update",
        "You are not authorized to update this key",
    )
    .await?;
    let by_alias_only = request.key.is_none();
    let mut changes = fields.into_changes(Some(&existing.metadata))?;
    if by_alias_only {
        // The alias identified the key; it is not a change.
        changes.patch.key_alias = None;
    }
    if !principal.is_proxy_admin()
        && let Some(new_owner) = &changes.patch.user_id
        && new_owner.as_deref() != existing.user_id.as_deref()
    {
        return Err(ApiError::forbidden(
            "Only proxy admins can change a key's user_id",
        ));
    }
    check_key_change(state, principal, authority, &existing, &mut changes).await?;
    let alias = changes.patch.key_alias.clone().flatten();
    if let Some(a) = &alias
        && let Some(other) = state.store().keys().find_by_alias(a).await?
        && other.token != existing.token
    {
        return Err(alias_taken(a));
    }
    changes.patch.updated_by = Some(actor(principal));
    let row = state
        .store()
        .keys()
        .update(&existing.token, &changes.patch)
        .await
        .map_err(map_conflict(alias.as_deref()))?
        .ok_or_else(|| ApiError::not_found("Key not found"))?;
    state.auth_cache().invalidate(&row.token).await;
    let new_period = changes
        .patch
        .budget_duration
        .as_ref()
        .is_some_and(|d| *d != existing.budget_duration);
    // Only an actual change of spend or period resets what admission counted (a reseed
    // takes the store's figure, which lags what was settled since).
    if changes.patch.spend.is_some() || new_period {
        // An administrator set the spend or the period: admission takes the stored figure.
        let scope = bursar_limits::ScopeId::new(bursar_limits::ScopeKind::ApiKey, &row.token);
        if let Err(e) = state.limiter().reseed(&scope).await {
            tracing::warn!(error = %e, "could not reseed the key's spend");
        }
    }
    Auditor::new(state, principal, headers)
        .record(
            state,
            "updated",
            KEYS_TABLE,
            &row.token,
            Some(key_json(&existing)),
            Some(key_json(&row)),
        )
        .await;
    Ok(UpdateKeyResponse {
        key: request.key.unwrap_or_else(|| row.token.clone()),
        updated: KeyObject::new(&row),
    })
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = KeyRequest)]
pub struct DeleteKeyRequest {
    keys: Option<Vec<String>>,
    key_aliases: Option<Vec<String>>,
}

/// Deletes keys by key or alias; all or nothing.
#[utoipa::path(
    post,
    path = "/key/delete",
    operation_id = "delete_key_fn",
    tag = crate::openapi::KEYS,
    request_body = DeleteKeyRequest,
    responses((status = 200, body = DeleteKeyResponse)),
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DeleteKeyResponse>, ApiError> {
    let request: DeleteKeyRequest = json_body(&state, &headers, body).await?;
    let mut rows = Vec::new();
    let passed: Vec<String>;
    match (request.keys, request.key_aliases) {
        (Some(keys), _) if !keys.is_empty() => {
            for key in &keys {
                let token = token_of(key)?;
                if let Some(row) = state.store().keys().find_by_hash(&token).await? {
                    rows.push(row);
                }
            }
            passed = keys;
        }
        (_, Some(aliases)) if !aliases.is_empty() => {
            for alias in &aliases {
                if let Some(row) = state.store().keys().find_by_alias(alias).await? {
                    rows.push(row);
                }
            }
            passed = aliases;
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                "either keys or key_aliases must be provided",
            )
            .with_param("keys"));
        }
    }
    if rows.is_empty() {
        return Err(ApiError::not_found("No keys found"));
    }
    if rows.len() < passed.len() {
        return Err(ApiError::not_found(format!(
            "Failed to delete all keys: {} of {} were not found; nothing was deleted",
            passed.len() - rows.len(),
            passed.len()
        )));
    }
    for row in &rows {
        authorize(
            &state,
            &principal,
            row,
            "/key/delete",
            "You are not authorized to delete this key",
        )
        .await?;
    }
    let tokens: Vec<String> = rows.iter().map(|r| r.token.clone()).collect();
    state.store().keys().delete_many(&tokens).await?;
    for token in &tokens {
        state.auth_cache().invalidate(token).await;
    }
    let auditor = Auditor::new(&state, &principal, &headers);
    for row in &rows {
        auditor
            .record(
                &state,
                "deleted",
                KEYS_TABLE,
                &row.token,
                Some(key_json(row)),
                None,
            )
            .await;
    }
    Ok(Json(DeleteKeyResponse {
        deleted_keys: passed,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = BlockKeyRequest)]
pub struct BlockRequest {
    key: String,
}

/// Blocks a key: its requests are refused until unblocked.
#[utoipa::path(
    post,
    path = "/key/block",
    operation_id = "block_key",
    tag = crate::openapi::KEYS,
    request_body = BlockRequest,
    responses((status = 200, body = KeyObject)),
)]
pub async fn block(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<KeyObject>, ApiError> {
    set_blocked(state, principal, headers, body, true).await
}

/// Unblocks a key.
#[utoipa::path(
    post,
    path = "/key/unblock",
    operation_id = "unblock_key",
    tag = crate::openapi::KEYS,
    request_body = BlockRequest,
    responses((status = 200, body = KeyObject)),
)]
pub async fn unblock(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<KeyObject>, ApiError> {
    set_blocked(state, principal, headers, body, false).await
}

async fn set_blocked(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
    blocked: bool,
) -> Result<Json<KeyObject>, ApiError> {
    let request: BlockRequest = json_body(&state, &headers, body).await?;
    let existing = find_key(&state, &request.key).await?;
    if !principal.is_proxy_admin() {
        let route = if blocked {
            "/key/block"
        } else {
            "/key/unblock"
        };
        match &existing.team_id {
            Some(_) => {
                authorize(&state, &principal, &existing, route, "").await?;
            }
            None => {
                return Err(ApiError::forbidden(
                    "Only proxy admins can block or unblock keys",
                ));
            }
        }
    }
    let patch = KeyPatch {
        blocked: Some(blocked),
        updated_by: Some(actor(&principal)),
        ..Default::default()
    };
    let row = state
        .store()
        .keys()
        .update(&existing.token, &patch)
        .await?
        .ok_or_else(|| ApiError::not_found("Key not found"))?;
    state.auth_cache().invalidate(&row.token).await;
    let action = if blocked { "blocked" } else { "unblocked" };
    Auditor::new(&state, &principal, &headers)
        .record(
            &state,
            action,
            KEYS_TABLE,
            &row.token,
            Some(key_json(&existing)),
            Some(key_json(&row)),
        )
        .await;
    Ok(Json(KeyObject::new(&row)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page number.
    #[param(minimum = 1, default = 1)]
    page: Option<u32>,
    /// Page size.
    #[param(minimum = 1, maximum = 100, default = 10)]
    size: Option<u32>,
    user_id: Option<String>,
    team_id: Option<String>,
    organization_id: Option<String>,
    key_alias: Option<String>,
    key_hash: Option<String>,
    return_full_object: Option<bool>,
    include_team_keys: Option<bool>,
    sort_by: Option<String>,
    sort_order: Option<String>,
}

/// Keys the caller may see, filtered and paged.
#[utoipa::path(
    get,
    path = "/key/list",
    operation_id = "list_keys",
    tag = crate::openapi::KEYS,
    params(ListQuery),
    responses((status = 200, body = KeyListResponseObject)),
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<KeyListResponseObject>, ApiError> {
    let paging = Page::parse(q.page, q.size, "size", 10, 100)?;
    let (page, size) = (paging.page, paging.size);
    let sort = match q.sort_by.as_deref() {
        None | Some("created_at") => KeySort::CreatedAt,
        Some("updated_at") => KeySort::UpdatedAt,
        Some("spend") => KeySort::Spend,
        Some("max_budget") => KeySort::MaxBudget,
        Some("token") => KeySort::Token,
        Some("key_alias") => KeySort::KeyAlias,
        Some(other) => {
            return Err(bad_field(
                "sort_by",
                format!(
                    "Invalid sort_by {other:?}: expected spend, max_budget, created_at, updated_at, token or key_alias"
                ),
            ));
        }
    };
    let descending = descending(q.sort_order.as_deref(), true)?;
    let mut user_id = q.user_id;
    let mut or_team_ids = Vec::new();
    if !is_admin_reader(&principal) {
        let me = principal.user_id().map(str::to_string);
        if user_id.is_some() && user_id != me {
            return Err(ApiError::forbidden("You can only list your own keys"));
        }
        let team = match &q.team_id {
            Some(team_id) => state.store().teams().find(team_id).await?,
            None => None,
        };
        match (team, me) {
            // Listing a team's keys: team admins, and members the team lets list keys.
            (Some(team), _) => {
                may_manage_team_key(&state, &principal, &team, "/key/list").await?;
                user_id = None;
            }
            (None, Some(me)) => {
                if q.include_team_keys == Some(true) {
                    or_team_ids = admin_team_ids(&state, &me).await?;
                }
                user_id = Some(me);
            }
            (None, None) => {
                return Ok(Json(KeyListResponseObject {
                    keys: Vec::new(),
                    total_count: Some(0),
                    current_page: Some(page),
                    total_pages: Some(0),
                }));
            }
        }
    }
    let query = KeyQuery {
        user_id,
        or_team_ids,
        team_id: q.team_id,
        organization_id: q.organization_id,
        key_alias: q.key_alias,
        token: q.key_hash,
        sort,
        descending,
        page,
        size,
    };
    let (rows, total) = state.store().keys().list(&query).await?;
    let total_pages = paging.total_pages_in_range(total)?;
    let full = q.return_full_object.unwrap_or(false);
    let keys = rows
        .iter()
        .map(|r| {
            if full {
                KeyListItem::Full(Box::new(KeyObject::new(r)))
            } else {
                KeyListItem::Hash(r.token.clone())
            }
        })
        .collect();
    Ok(Json(KeyListResponseObject {
        keys,
        total_count: Some(total),
        current_page: Some(page),
        total_pages: Some(total_pages),
    }))
}

/// Replaces a key with a new one, keeping its settings and spend.
#[utoipa::path(
    post,
    path = "/key/regenerate",
    operation_id = "regenerate_key_fn",
    tag = crate::openapi::KEYS,
    request_body = RegenerateKeyRequest,
    responses((status = 200, body = GenerateKeyResponse)),
)]
pub async fn regenerate(
    state: State<AppState>,
    principal: Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<GenerateKeyResponse>, ApiError> {
    regenerate_key(state, principal, None, headers, body).await
}

/// Like `/key/regenerate`, with the key in the path.
#[utoipa::path(
    post,
    path = "/key/{key}/regenerate",
    operation_id = "regenerate_key_fn",
    tag = crate::openapi::KEYS,
    request_body = RegenerateKeyRequest,
    params(("key" = String, Path, description = "The key or its hash")),
    responses((status = 200, body = GenerateKeyResponse)),
)]
pub async fn regenerate_path(
    state: State<AppState>,
    principal: Extension<Principal>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<GenerateKeyResponse>, ApiError> {
    regenerate_key(state, principal, Some(key), headers, body).await
}

async fn regenerate_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path_key: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<GenerateKeyResponse>, ApiError> {
    let RegenerateKeyRequest {
        identity: request,
        fields,
    } = json_body_parts(&state, &headers, body).await?;
    let key = path_key.or(request.key).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "key must be provided",
        )
        .with_param("key")
    })?;
    let existing = find_key(&state, &key).await?;
    let authority = authorize(
        &state,
        &principal,
        &existing,
        "/key/regenerate",
        "You are not authorized to regenerate this key",
    )
    .await?;
    let raw = match request.new_key {
        Some(new_key) if !new_key.starts_with(KEY_PREFIX) => {
            return Err(bad_field(
                "new_key",
                format!(
                    "Invalid new_key format. LiteLLM Virtual Key must start with 'sk-'. Received: {}",
                    mask_key(&new_key)
                ),
            ));
        }
        Some(new_key) => {
            if new_key.len() < MIN_CUSTOM_KEY_LENGTH {
                return Err(bad_field(
                    "new_key",
                    format!("New key must be at least {MIN_CUSTOM_KEY_LENGTH} characters long."),
                ));
            }
            check_new_secret(&state, &new_key, "new_key").await?;
            new_key
        }
        None => generate_key(),
    };
    let mut changes = fields.into_changes(Some(&existing.metadata))?;
    if !principal.is_proxy_admin()
        && changes
            .patch
            .user_id
            .as_ref()
            .is_some_and(|u| u.as_deref() != existing.user_id.as_deref())
    {
        return Err(ApiError::forbidden(
            "Only proxy admins can change a key's user_id",
        ));
    }
    check_key_change(&state, &principal, authority, &existing, &mut changes).await?;
    let grace = match &request.grace_period {
        Some(text) => Some(
            BudgetDuration::parse(text)
                .map_err(|e| bad_field("grace_period", format!("Invalid grace_period: {e}")))?,
        ),
        None => state.config().key_rotation_grace_period,
    };
    let grace_until = grace
        .filter(|d| d.millis() > 0)
        .map(|d| d.after(bursar_store::now_ms()));
    let new_token = hash_key(&raw);
    let actor_id = actor(&principal);
    changes.patch.updated_by = Some(actor_id.clone());
    let row = state
        .store()
        .keys()
        .rotate(
            &existing.token,
            &new_token,
            &abbreviate_key(&raw),
            Some(&actor_id),
            grace_until,
            &changes.patch,
        )
        .await
        .map_err(map_conflict(None))?
        .ok_or_else(|| ApiError::not_found("Key not found"))?;
    state.auth_cache().invalidate(&existing.token).await;
    state.auth_cache().invalidate(&row.token).await;
    Auditor::new(&state, &principal, &headers)
        .record(
            &state,
            "rotated",
            KEYS_TABLE,
            &row.token,
            Some(key_json(&existing)),
            Some(key_json(&row)),
        )
        .await;
    Ok(Json(GenerateKeyResponse::new(
        raw,
        &row,
        RequestEcho::default(),
    )))
}

/// The calling key's logging health (always healthy: no logging callbacks).
#[utoipa::path(
    post,
    path = "/key/health",
    operation_id = "key_health",
    tag = crate::openapi::KEYS,
    responses((status = 200, body = KeyHealthResponse)),
)]
pub async fn health() -> Json<KeyHealthResponse> {
    Json(KeyHealthResponse {
        key: "healthy".into(),
        logging_callbacks: None,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AliasesQuery {
    /// Page number.
    #[param(minimum = 1, default = 1)]
    page: Option<u32>,
    /// Page size.
    #[param(minimum = 1, maximum = 100, default = 50)]
    size: Option<u32>,
    /// Case-insensitive substring of the alias.
    search: Option<String>,
    team_id: Option<String>,
}

/// Key aliases the caller may see (its own keys' and its teams' keys' for non-admins), paged.
#[utoipa::path(
    get,
    path = "/key/aliases",
    operation_id = "key_aliases",
    tag = crate::openapi::KEYS,
    params(AliasesQuery),
    responses((status = 200, body = KeyAliasesResponse)),
)]
pub async fn aliases(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<AliasesQuery>,
) -> Result<Json<KeyAliasesResponse>, ApiError> {
    let paging = Page::parse(q.page, q.size, "size", 50, 100)?;
    let visible_to = if is_admin_reader(&principal) {
        None
    } else {
        match principal.user_id() {
            Some(me) => {
                let teams = state.store().users().team_ids(me).await?;
                Some((me.to_string(), teams))
            }
            None => {
                return Ok(Json(KeyAliasesResponse {
                    aliases: Vec::new(),
                    total_count: 0,
                    current_page: paging.page,
                    total_pages: 0,
                    size: paging.size,
                }));
            }
        }
    };
    let query = AliasQuery {
        visible_to,
        team_id: q.team_id,
        search: q.search.filter(|s| !s.is_empty()),
        page: paging.page,
        size: paging.size,
    };
    let (aliases, total) = state.store().keys().aliases(&query).await?;
    Ok(Json(KeyAliasesResponse {
        aliases,
        total_count: total,
        current_page: paging.page,
        total_pages: paging.total_pages(total),
        size: paging.size,
    }))
}

/// `POST /key/{key}/reset_spend` and `/team/{team_id}/member/{user_id}/reset_spend`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetSpendRequest {
    /// The spend to set: at least 0, at most the current spend and the budget.
    pub reset_to: f64,
}

impl ResetSpendRequest {
    /// `reset_to` checked against the current spend and the budget (LiteLLM's rules).
    pub fn checked(&self, spend: NanoUsd, budget: Option<NanoUsd>) -> Result<NanoUsd, ApiError> {
        let to = self.reset_to;
        let Some(target) = NanoUsd::from_usd(to).filter(|_| to.is_finite() && to >= 0.0) else {
            return Err(bad_field(
                "reset_to",
                "reset_to must be a finite number >= 0",
            ));
        };
        if target > spend {
            return Err(bad_field(
                "reset_to",
                format!(
                    "reset_to ({to}) must be <= current spend ({})",
                    spend.as_usd()
                ),
            ));
        }
        if let Some(budget) = budget
            && target > budget
        {
            return Err(bad_field(
                "reset_to",
                format!("reset_to ({to}) must be <= budget ({})", budget.as_usd()),
            ));
        }
        Ok(target)
    }
}

/// Sets a key's spend back (to 0 or any amount up to its current spend and budget); proxy
/// admins and admins of the key's team only.
#[utoipa::path(
    post,
    path = "/key/{key}/reset_spend",
    operation_id = "reset_key_spend_fn",
    tag = crate::openapi::KEYS,
    params(("key" = String, Path, description = "The key or its hash")),
    request_body = ResetSpendRequest,
    responses((status = 200, body = ResetKeySpendResponse)),
)]
pub async fn reset_spend(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ResetKeySpendResponse>, ApiError> {
    let request: ResetSpendRequest = json_body(&state, &headers, body).await?;
    // As LiteLLM: a value with "sk" in it is a key, anything else a hash.
    let token = if key.contains("sk") && !is_key_hash(&key) {
        hash_key(&key)
    } else {
        key.clone()
    };
    let existing = state
        .store()
        .keys()
        .find_by_hash(&token)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Key {} not found.", abbreviated(&key))))?;
    let allowed = principal.is_proxy_admin()
        || match &existing.team_id {
            Some(team_id) => {
                let team = find_team(&state, team_id).await?;
                may_manage_team_key(&state, &principal, &team, "/key/{key}/reset_spend")
                    .await
                    .is_ok_and(|a| a.manages())
            }
            None => false,
        };
    if !allowed {
        return Err(ApiError::forbidden(
            "You must be a proxy admin or team admin to reset key spend",
        ));
    }
    let budget_row = match &existing.budget_id {
        Some(id) => state.store().budgets().find(id).await?,
        None => None,
    };
    let budget = [existing.max_budget, budget_row.and_then(|b| b.max_budget)]
        .into_iter()
        .flatten()
        .min();
    let to = request.checked(existing.spend, budget)?;
    if !state
        .store()
        .keys()
        .reset_spend(&existing.token, existing.spend, to)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "bad_request_error",
            "Key spend changed since it was read; retry",
        ));
    }
    state.auth_cache().invalidate(&existing.token).await;
    let scope = bursar_limits::ScopeId::new(bursar_limits::ScopeKind::ApiKey, &existing.token);
    if let Err(e) = state.limiter().reseed(&scope).await {
        tracing::warn!(error = %e, "could not reseed the key's spend");
    }
    let row = find_key(&state, &existing.token).await?;
    Auditor::new(&state, &principal, &headers)
        .record(
            &state,
            "updated",
            KEYS_TABLE,
            &row.token,
            Some(key_json(&existing)),
            Some(key_json(&row)),
        )
        .await;
    Ok(Json(ResetKeySpendResponse {
        key_hash: row.token.clone(),
        spend: row.spend.as_usd(),
        previous_spend: existing.spend.as_usd(),
        max_budget: row.max_budget.map(NanoUsd::as_usd),
        budget_reset_at: row.budget_reset_at.map(bursar_core::time::format_ms),
    }))
}

/// Keys a bulk update changes at most (LiteLLM's limit).
const MAX_BULK_KEYS: usize = 500;

/// The fields a `/key/bulk_update` item may set besides `key`.
const BULK_KEY_FIELDS: &[&str] = &[
    "budget_id",
    "max_budget",
    "team_id",
    "tags",
    "object_permission",
];

/// The fields `/team/key/bulk_update` may set (LiteLLM's `KeyUpdateFields`).
const TEAM_KEY_FIELDS: &[&str] = &[
    "max_budget",
    "budget_id",
    "budget_duration",
    "budget_limits",
    "model_max_budget",
    "tpm_limit",
    "rpm_limit",
    "model_tpm_limit",
    "model_rpm_limit",
    "max_parallel_requests",
    "rpm_limit_type",
    "tpm_limit_type",
    "temp_budget_increase",
    "temp_budget_expiry",
    "duration",
    "tags",
    "metadata",
];

/// `POST /key/bulk_update`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkUpdateKeyRequest {
    /// Each item: `key`, and any of `budget_id`, `max_budget`, `team_id`, `tags` and
    /// `object_permission`, as `/key/update` takes them (an explicit `null` clears).
    #[schema(value_type = Vec<Object>)]
    keys: Vec<Map<String, Value>>,
}

/// Applies each change as `/key/update` would, with the caller's rights; one failing key does
/// not stop the others.
async fn update_each(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    items: Vec<Map<String, Value>>,
    allowed: &[&str],
) -> BulkUpdateKeyResponse {
    let total_requested = items.len();
    let mut successful_updates = Vec::new();
    let mut failed_updates = Vec::new();
    for item in items {
        let key = item
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let unknown: Vec<&str> = item
            .keys()
            .map(String::as_str)
            .filter(|f| *f != "key" && !allowed.contains(f))
            .collect();
        let outcome = if key.is_empty() {
            Err("key is required".to_string())
        } else if !unknown.is_empty() {
            Err(format!("Fields not allowed here: {}", unknown.join(", ")))
        } else {
            match super::parts_of::<UpdateKeyRequest>(&item) {
                Ok(request) => update_key(state, principal, headers, request)
                    .await
                    .map_err(|e| e.message),
                Err(e) => Err(e.message),
            }
        };
        match outcome {
            Ok(updated) => successful_updates.push(SuccessfulKeyUpdate {
                key,
                key_info: updated.updated,
            }),
            Err(failed_reason) => {
                let key_info = match token_of(&key) {
                    Ok(token) => state
                        .store()
                        .keys()
                        .find_by_hash(&token)
                        .await
                        .ok()
                        .flatten()
                        .map(|row| KeyObject::new(&row)),
                    Err(_) => None,
                };
                failed_updates.push(FailedKeyUpdate {
                    key,
                    key_info,
                    failed_reason,
                });
            }
        }
    }
    BulkUpdateKeyResponse {
        total_requested,
        successful_updates,
        failed_updates,
    }
}

fn check_bulk_size(n: usize) -> Result<(), ApiError> {
    if n == 0 {
        return Err(bad_field("keys", "No keys provided for update"));
    }
    if n > MAX_BULK_KEYS {
        return Err(bad_field(
            "keys",
            format!("Maximum {MAX_BULK_KEYS} keys can be updated at once. Found {n} keys."),
        ));
    }
    Ok(())
}

/// Updates many keys' budget, team, tags or object permission (proxy admins only).
#[utoipa::path(
    post,
    path = "/key/bulk_update",
    operation_id = "bulk_update_keys",
    tag = crate::openapi::KEYS,
    request_body = BulkUpdateKeyRequest,
    responses((status = 200, body = BulkUpdateKeyResponse)),
)]
pub async fn bulk_update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BulkUpdateKeyResponse>, ApiError> {
    let request: BulkUpdateKeyRequest = json_body(&state, &headers, body).await?;
    if !principal.is_proxy_admin() {
        return Err(ApiError::forbidden(
            "Only proxy admins can perform bulk key updates",
        ));
    }
    check_bulk_size(request.keys.len())?;
    Ok(Json(
        update_each(&state, &principal, &headers, request.keys, BULK_KEY_FIELDS).await,
    ))
}

/// `POST /team/key/bulk_update`: `key_ids` or `all_keys_in_team`, and the fields to set.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkUpdateTeamKeysRequest {
    team_id: String,
    key_ids: Option<Vec<String>>,
    #[serde(default)]
    all_keys_in_team: bool,
    /// LiteLLM's `KeyUpdateFields`: budget, limits, duration, tags and metadata.
    #[schema(value_type = Object)]
    update_fields: Map<String, Value>,
}

/// Updates a team's keys (listed, or all of them that are neither blocked nor expired) with
/// the same fields; proxy admins, and team members allowed to update the team's keys.
#[utoipa::path(
    post,
    path = "/team/key/bulk_update",
    operation_id = "bulk_update_team_keys",
    tag = crate::openapi::KEYS,
    request_body = BulkUpdateTeamKeysRequest,
    responses((status = 200, body = BulkUpdateKeyResponse)),
)]
pub async fn team_bulk_update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BulkUpdateKeyResponse>, ApiError> {
    let request: BulkUpdateTeamKeysRequest = json_body(&state, &headers, body).await?;
    match (&request.key_ids, request.all_keys_in_team) {
        (Some(_), true) | (None, false) => {
            return Err(super::invalid(
                "key_ids",
                "Specify exactly one of key_ids or all_keys_in_team=true",
            ));
        }
        _ => {}
    }
    if request.update_fields.is_empty() {
        return Err(super::invalid(
            "update_fields",
            "update_fields must set at least one field",
        ));
    }
    if let Some(field) = request
        .update_fields
        .keys()
        .find(|f| !TEAM_KEY_FIELDS.contains(&f.as_str()))
    {
        return Err(super::invalid(
            "update_fields",
            format!("update_fields.{field} is not allowed: extra fields are forbidden"),
        ));
    }
    let team = find_team(&state, &request.team_id).await?;
    if !principal.is_proxy_admin() {
        may_manage_team_key(&state, &principal, &team, "/key/update").await?;
    }
    let team_keys = all_keys(
        &state,
        KeyQuery {
            team_id: Some(team.team_id.clone()),
            ..KeyQuery::default()
        },
    )
    .await?;
    let now = bursar_store::now_ms();
    let targets: Vec<String> = match &request.key_ids {
        Some(ids) => ids.clone(),
        None => team_keys
            .iter()
            .filter(|k| !k.blocked && k.expires_at.is_none_or(|e| e > now))
            .map(|k| k.token.clone())
            .collect(),
    };
    if request.all_keys_in_team && targets.is_empty() {
        return Err(ApiError::not_found(format!(
            "No keys found for team {}",
            team.team_id
        )));
    }
    check_bulk_size(targets.len())?;
    let mut out = BulkUpdateKeyResponse {
        total_requested: targets.len(),
        successful_updates: Vec::new(),
        failed_updates: Vec::new(),
    };
    let mut items = Vec::new();
    for id in targets {
        let in_team = token_of(&id)
            .ok()
            .is_some_and(|t| team_keys.iter().any(|k| k.token == t));
        if !in_team {
            out.failed_updates.push(FailedKeyUpdate {
                key: id,
                key_info: None,
                failed_reason: format!("Key is not in team {}", team.team_id),
            });
            continue;
        }
        let mut item = request.update_fields.clone();
        item.insert("key".into(), Value::String(id));
        items.push(item);
    }
    let done = update_each(&state, &principal, &headers, items, TEAM_KEY_FIELDS).await;
    out.successful_updates = done.successful_updates;
    out.failed_updates.extend(done.failed_updates);
    Ok(Json(out))
}
