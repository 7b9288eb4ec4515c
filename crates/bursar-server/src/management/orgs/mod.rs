//! `/organization/*`: organizations, their budgets and members (LiteLLM's
//! `organization_endpoints`).
//!
//! Every organization has a budget row holding its budget and limits. Only proxy admins create
//! or delete organizations; org admins (membership role `org_admin`) manage their own.

use super::audit::{Auditor, ORGS_TABLE};
use super::keys::{actor, is_admin_reader};
use super::scope::{ORG_ADMIN, member_id};
pub mod dto;

use super::teams::dto::TeamObject;
use super::teams::{member_user_id, resolve_member, with_budgets};
use super::users::dto::UserTable;
use super::{BudgetInput, FromParts, bad_field, json_body, json_body_parts, missing, money};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use bursar_core::policy::keys::BudgetFields;
use bursar_core::policy::orgs::OrgGoverned;
use bursar_core::policy::{self, LimitChange, LimitSet};
use bursar_store::{
    BudgetPatch, NewBudget, NewOrgMember, OrgFilter, OrgMemberRow, OrgPatch, OrgRow, StoreError,
    TeamQuery,
};
use dto::{OrgMembership, OrgParts, OrganizationAddMemberResponse, OrganizationObject};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashSet;
use utoipa::{IntoParams, ToSchema};

/// Roles a member can hold in an organization.
const ORG_ROLES: [&str; 3] = [ORG_ADMIN, "internal_user", "internal_user_viewer"];

/// The organization fields of `/organization/new` and `/organization/update`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OrgFields {
    organization_alias: Option<String>,
    models: Option<Vec<String>>,
    budget_id: Option<String>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<f64>)]
    max_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<f64>)]
    soft_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    max_parallel_requests: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    rpm_limit: Option<Option<i64>>,
    model_max_budget: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<String>)]
    budget_duration: Option<Option<String>>,
    metadata: Option<Map<String, Value>>,
    blocked: Option<bool>,
    tags: Option<Vec<String>>,
    model_rpm_limit: Option<Map<String, Value>>,
    model_tpm_limit: Option<Map<String, Value>>,
    object_permission: Option<Map<String, Value>>,
    /// The UI's nested budget; its fields count as top-level ones.
    litellm_budget_table: Option<Map<String, Value>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OrgIdentity {
    organization_id: Option<String>,
}

/// `POST /organization/new`.
#[derive(Debug, ToSchema)]
pub struct NewOrganizationRequest {
    /// Generated when absent.
    organization_id: Option<String>,
    #[serde(flatten)]
    fields: OrgFields,
}

impl FromParts for NewOrganizationRequest {
    type Identity = OrgIdentity;
    type Fields = OrgFields;
    fn from_parts(identity: OrgIdentity, fields: OrgFields) -> Self {
        NewOrganizationRequest {
            organization_id: identity.organization_id,
            fields,
        }
    }
}

/// `PATCH /organization/update`: `organization_id` picks it; absent fields are unchanged.
#[derive(Debug, ToSchema)]
pub struct UpdateOrganizationRequest {
    organization_id: Option<String>,
    #[serde(flatten)]
    fields: OrgFields,
}

impl FromParts for UpdateOrganizationRequest {
    type Identity = OrgIdentity;
    type Fields = OrgFields;
    fn from_parts(identity: OrgIdentity, fields: OrgFields) -> Self {
        UpdateOrganizationRequest {
            organization_id: identity.organization_id,
            fields,
        }
    }
}

/// `DELETE /organization/member_delete`: `user_id` or `user_email`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct OrganizationMemberDeleteRequest(MemberRef);

struct OrgChanges {
    patch: OrgPatch,
    budget: BudgetPatch,
    /// Metadata keys to set (merged into the stored metadata).
    metadata: Map<String, Value>,
}

impl OrgFields {
    fn validate(
        mut self,
        current_budget: Option<&bursar_store::BudgetRow>,
    ) -> Result<OrgChanges, ApiError> {
        if let Some(nested) = self.litellm_budget_table.take() {
            let nested: OrgFields =
                super::parse_body(Value::Object(nested).to_string().as_bytes())?;
            self.max_budget = self.max_budget.or(nested.max_budget);
            self.soft_budget = self.soft_budget.or(nested.soft_budget);
            self.tpm_limit = self.tpm_limit.or(nested.tpm_limit);
            self.rpm_limit = self.rpm_limit.or(nested.rpm_limit);
            self.max_parallel_requests =
                self.max_parallel_requests.or(nested.max_parallel_requests);
            self.budget_duration = self.budget_duration.or(nested.budget_duration);
            self.model_max_budget = self.model_max_budget.or(nested.model_max_budget);
        }
        let mut budget = BudgetInput {
            max_budget: self.max_budget,
            soft_budget: self.soft_budget,
            tpm_limit: self.tpm_limit,
            rpm_limit: self.rpm_limit,
            max_parallel_requests: self.max_parallel_requests,
            budget_duration: self.budget_duration,
        }
        .validate(
            current_budget.and_then(|b| b.max_budget),
            current_budget.and_then(|b| b.soft_budget),
        )?;
        budget.model_max_budget = self.model_max_budget.map(Value::Object);
        let mut metadata = self.metadata.unwrap_or_default();
        for (name, v) in [
            ("tags", self.tags.map(Value::from)),
            ("model_rpm_limit", self.model_rpm_limit.map(Value::Object)),
            ("model_tpm_limit", self.model_tpm_limit.map(Value::Object)),
        ] {
            if let Some(v) = v {
                metadata.insert(name.to_string(), v);
            }
        }
        if let Some(alias) = &self.organization_alias
            && alias.trim().is_empty()
        {
            return Err(bad_field(
                "organization_alias",
                "organization_alias must not be empty",
            ));
        }
        Ok(OrgChanges {
            patch: OrgPatch {
                organization_alias: self.organization_alias,
                budget_id: self.budget_id,
                models: self.models,
                metadata: None,
                blocked: self.blocked,
                object_permission: self.object_permission.map(|o| Some(Value::Object(o))),
            },
            budget,
            metadata,
        })
    }
}

async fn memberships(
    state: &AppState,
    members: &[OrgMemberRow],
) -> Result<Vec<OrgMembership>, ApiError> {
    with_budgets(state, members, |m| m.budget_id.as_ref(), OrgMembership::new).await
}

/// The users rows of `members` (one query).
async fn member_users(
    state: &AppState,
    members: &[OrgMemberRow],
) -> Result<Vec<UserTable>, ApiError> {
    let users = super::users::find_many(state, members.iter().map(|m| m.user_id.clone())).await?;
    Ok(users.iter().map(|user| UserTable::new(user, &[])).collect())
}

/// An organization with its budget, members and teams.
async fn org_object(state: &AppState, org: &OrgRow) -> Result<OrganizationObject, ApiError> {
    let budget = match &org.budget_id {
        Some(id) => state.store().budgets().find(id).await?,
        None => None,
    };
    let members = state.store().orgs().members(&org.organization_id).await?;
    let query = TeamQuery {
        organization: Some(OrgFilter::Id(org.organization_id.clone())),
        ..TeamQuery::default()
    };
    let (teams, _) = state.store().teams().list(&query).await?;
    let mut team_objects = Vec::with_capacity(teams.len());
    for team in &teams {
        let team_members = state.store().teams().members(&team.team_id).await?;
        team_objects.push(TeamObject::new(team, &team_members));
    }
    Ok(OrganizationObject::new(OrgParts {
        org,
        budget: budget.as_ref(),
        members: memberships(state, &members).await?,
        users: member_users(state, &members).await?,
        teams: team_objects,
    }))
}

fn audit<T: serde::Serialize>(body: &T) -> Option<Value> {
    serde_json::to_value(body).ok()
}

async fn find_org(state: &AppState, org_id: &str) -> Result<OrgRow, ApiError> {
    state.store().orgs().find(org_id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Organization not found for organization_id={org_id}"
        ))
        .with_param("organization_id")
    })
}

fn require_org_id(id: Option<String>) -> Result<String, ApiError> {
    super::required("organization_id", id)
}

/// LiteLLM's org-admin gate: proxy admins pass; others must hold `org_admin` in `org_id`.
async fn org_gate(
    state: &AppState,
    principal: &Principal,
    org_id: &str,
    route: &str,
    read: bool,
) -> Result<(), ApiError> {
    if principal.is_proxy_admin() || (read && is_admin_reader(principal)) {
        return Ok(());
    }
    let denied = |message: String, param: &str| {
        Err(ApiError::unauthorized("auth_error", message).with_param(param))
    };
    let memberships = match member_id(principal) {
        Some(me) => state.store().orgs().memberships_of(me).await?,
        None => Vec::new(),
    };
    if memberships.is_empty() {
        return denied(
            format!(
                "Tried to access route={route} but you are not a member of any organization. Please contact the proxy admin to request access."
            ),
            "organization_id",
        );
    }
    match memberships.iter().find(|m| m.organization_id == org_id) {
        None => denied(
            format!(
                "You do not have a role within the selected organization. Passed organization_id: {org_id}. Please contact the organization admin to request access."
            ),
            "organization_id",
        ),
        Some(m) if m.user_role.as_deref() == Some(ORG_ADMIN) => Ok(()),
        Some(m) => {
            let role = m.user_role.as_deref().unwrap_or("None");
            denied(
                format!(
                    "You do not have the required role to perform {route} in Organization {org_id}. Your role is {role} in Organization {org_id}"
                ),
                "user_role",
            )
        }
    }
}

/// Creates an organization (proxy admins only).
#[utoipa::path(
    post,
    path = "/organization/new",
    operation_id = "new_organization",
    tag = crate::openapi::ORGS,
    request_body = NewOrganizationRequest,
    responses((status = 200, body = OrganizationObject)),
)]
pub async fn new_org(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<OrganizationObject>, ApiError> {
    let NewOrganizationRequest {
        organization_id,
        fields,
    } = json_body_parts(&state, &headers, body).await?;
    if !principal.is_proxy_admin() {
        return Err(ApiError::unauthorized(
            "auth_error",
            format!(
                "Only admins can create orgs. Your role is = {}",
                principal.role()
            ),
        )
        .with_param("user_role"));
    }
    if fields.organization_alias.is_none() {
        return Err(missing(
            "organization_alias",
            "organization_alias is required",
        ));
    }
    let mut changes = fields.validate(None)?;
    if let Principal::VirtualKey(s) = &principal
        && !s.key.models.is_empty()
        && let Some(models) = &changes.patch.models
        && let Some(m) = models.iter().find(|m| !s.key.models.contains(m))
    {
        return Err(bad_field(
            "models",
            format!(
                "User not allowed to give access to model={m}. Models you have access to = {:?}",
                s.key.models
            ),
        ));
    }
    let org_id = match organization_id.filter(|i| !i.trim().is_empty()) {
        Some(id) => {
            if state.store().orgs().find(&id).await?.is_some() {
                return Err(bad_field(
                    "organization_id",
                    format!(
                        "Organization id = {id} already exists. Please use a different organization id."
                    ),
                ));
            }
            id
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let new_budget = match &changes.patch.budget_id {
        Some(id) => {
            if state.store().budgets().find(id).await?.is_none() {
                return Err(
                    ApiError::not_found(format!("Budget {id} not found")).with_param("budget_id")
                );
            }
            None
        }
        None => Some(NewBudget {
            ..changes
                .budget
                .clone()
                .into_new(uuid::Uuid::new_v4().to_string(), actor(&principal))
        }),
    };
    changes.patch.metadata = Some(Value::Object(changes.metadata));
    let org = state
        .store()
        .orgs()
        .create(&org_id, &changes.patch, new_budget.as_ref(), &actor(&principal))
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => bad_field(
                "organization_id",
                format!("Organization id = {org_id} already exists. Please use a different organization id."),
            ),
            other => other.into(),
        })?;
    let body = org_object(&state, &org).await?;
    Auditor::new(&state, &principal, &headers)
        .record(&state, "created", ORGS_TABLE, &org_id, None, audit(&body))
        .await;
    Ok(Json(body))
}

/// Updates an organization; absent fields are unchanged.
#[utoipa::path(
    patch,
    path = "/organization/update",
    operation_id = "update_organization",
    tag = crate::openapi::ORGS,
    request_body = UpdateOrganizationRequest,
    responses((status = 200, body = OrganizationObject)),
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<OrganizationObject>, ApiError> {
    let UpdateOrganizationRequest {
        organization_id,
        fields,
    } = json_body_parts(&state, &headers, body).await?;
    let org_id = require_org_id(organization_id)?;
    let data = change_organization(&state, &principal, &headers, &org_id, fields, false).await?;
    Ok(Json(data))
}

/// `PATCH /v2/organization/{organization_id}`: a merge patch. A sent field is written (`null`
/// clears a budget field or the metadata), an absent one is left alone; unknown fields are
/// refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OrganizationUpdateRequestV2)]
pub struct OrganizationPatch {
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<String>)]
    organization_alias: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<f64>)]
    max_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<f64>)]
    soft_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    max_parallel_requests: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<Object>)]
    model_max_budget: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<String>)]
    budget_duration: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<Object>)]
    object_permission: Option<Option<Map<String, Value>>>,
}

impl OrganizationPatch {
    /// The patch as `/organization/update` fields (the metadata replaces the stored one).
    fn into_fields(self) -> Result<OrgFields, ApiError> {
        let sent = [
            self.organization_alias.is_some(),
            self.models.is_some(),
            self.metadata.is_some(),
            self.tpm_limit.is_some(),
            self.rpm_limit.is_some(),
            self.max_budget.is_some(),
            self.soft_budget.is_some(),
            self.max_parallel_requests.is_some(),
            self.model_max_budget.is_some(),
            self.budget_duration.is_some(),
            self.object_permission.is_some(),
        ];
        if !sent.contains(&true) {
            return Err(super::invalid("body", "the patch changes nothing"));
        }
        let organization_alias = match self.organization_alias {
            Some(None) => {
                return Err(super::invalid(
                    "organization_alias",
                    "organization_alias cannot be cleared; it is required",
                ));
            }
            other => other.flatten(),
        };
        let models = match self.models {
            Some(None) => {
                return Err(super::invalid(
                    "models",
                    "models cannot be set to null; send [] to clear it",
                ));
            }
            other => other.flatten(),
        };
        Ok(OrgFields {
            organization_alias,
            models,
            max_budget: self.max_budget,
            soft_budget: self.soft_budget,
            max_parallel_requests: self.max_parallel_requests,
            tpm_limit: self.tpm_limit,
            rpm_limit: self.rpm_limit,
            model_max_budget: self.model_max_budget.map(Option::unwrap_or_default),
            budget_duration: self.budget_duration,
            metadata: self.metadata.map(Option::unwrap_or_default),
            object_permission: self.object_permission.map(Option::unwrap_or_default),
            ..OrgFields::default()
        })
    }
}

/// Patches an organization; answers it with its members, teams and budget.
#[utoipa::path(
    patch,
    path = "/v2/organization/{organization_id}",
    operation_id = "update_organization_v2",
    tag = crate::openapi::ORGS,
    params(("organization_id" = String, Path, description = "The organization")),
    request_body = OrganizationPatch,
    responses((status = 200, body = OrganizationObject)),
)]
pub async fn patch_v2(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<OrganizationObject>, ApiError> {
    let patch: OrganizationPatch = json_body(&state, &headers, body).await?;
    let fields = patch.into_fields()?;
    let data = change_organization(&state, &principal, &headers, &org_id, fields, true).await?;
    Ok(Json(data))
}

/// The shared body of `/organization/update` (metadata merged) and the v2 patch (replaced).
async fn change_organization(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    org_id: &str,
    fields: OrgFields,
    replace_metadata: bool,
) -> Result<OrganizationObject, ApiError> {
    let org_id = org_id.to_string();
    let existing = find_org(state, &org_id).await?;
    org_gate(state, principal, &org_id, "/organization/update", false).await?;
    let replaces = replace_metadata && fields.metadata.is_some();
    let current_budget = match &existing.budget_id {
        Some(id) => state.store().budgets().find(id).await?,
        None => None,
    };
    let mut changes = fields.validate(current_budget.as_ref())?;
    if let Some(id) = &changes.patch.budget_id
        && state.store().budgets().find(id).await?.is_none()
    {
        return Err(ApiError::not_found(format!("Budget {id} not found")).with_param("budget_id"));
    }
    if replaces {
        changes.patch.metadata = Some(Value::Object(std::mem::take(&mut changes.metadata)));
    } else if !changes.metadata.is_empty() {
        // LiteLLM merges metadata on update.
        let mut merged = existing.metadata.as_object().cloned().unwrap_or_default();
        merged.extend(std::mem::take(&mut changes.metadata));
        changes.patch.metadata = Some(Value::Object(merged));
    }
    let current = governed(&existing, current_budget.as_ref());
    let after = governed_after(&current, &existing, &changes);
    policy::orgs::change_org(principal.is_proxy_admin(), &current, &after)?;
    let before = audit(&org_object(state, &existing).await?);
    let updated = state
        .store()
        .orgs()
        .update(&org_id, &changes.patch, &changes.budget, &actor(principal))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Organization not found for organization_id={org_id}"
            ))
        })?;
    state.auth_cache().invalidate_all();
    let data = org_object(state, &updated).await?;
    Auditor::new(state, principal, headers)
        .record(state, "updated", ORGS_TABLE, &org_id, before, audit(&data))
        .await;
    Ok(data)
}

/// What bounds the organization, as the policy compares it.
fn governed(org: &OrgRow, budget: Option<&bursar_store::BudgetRow>) -> OrgGoverned {
    let limits = LimitSet {
        max_budget: budget.and_then(|b| b.max_budget),
        rpm_limit: budget.and_then(|b| b.rpm_limit),
        tpm_limit: budget.and_then(|b| b.tpm_limit),
        max_parallel_requests: budget.and_then(|b| b.max_parallel_requests),
    };
    OrgGoverned {
        limits,
        budget: BudgetFields {
            spend: org.spend,
            max_budget: limits.max_budget,
            soft_budget: budget.and_then(|b| b.soft_budget),
            budget_duration: budget.and_then(|b| b.budget_duration.clone()),
            budget_id: org.budget_id.clone(),
            model_max_budget: budget
                .and_then(|b| b.model_max_budget.clone())
                .unwrap_or(Value::Null),
            governing_metadata: BudgetFields::governing(&org.metadata),
        },
        models: org.models.clone(),
        blocked: org.blocked,
    }
}

/// [`governed`] after `changes`.
fn governed_after(current: &OrgGoverned, org: &OrgRow, changes: &OrgChanges) -> OrgGoverned {
    let b = &changes.budget;
    let limits = LimitChange {
        max_budget: b.max_budget,
        rpm_limit: b.rpm_limit,
        tpm_limit: b.tpm_limit,
        max_parallel_requests: b.max_parallel_requests,
    }
    .applied_to(current.limits);
    let p = &changes.patch;
    OrgGoverned {
        limits,
        budget: BudgetFields {
            spend: org.spend,
            max_budget: limits.max_budget,
            soft_budget: b.soft_budget.unwrap_or(current.budget.soft_budget),
            budget_duration: b
                .budget_duration
                .clone()
                .unwrap_or_else(|| current.budget.budget_duration.clone()),
            budget_id: p
                .budget_id
                .clone()
                .or_else(|| current.budget.budget_id.clone()),
            model_max_budget: b
                .model_max_budget
                .clone()
                .unwrap_or_else(|| current.budget.model_max_budget.clone()),
            governing_metadata: match &p.metadata {
                Some(m) => BudgetFields::governing(m),
                None => current.budget.governing_metadata.clone(),
            },
        },
        models: p.models.clone().unwrap_or_else(|| current.models.clone()),
        blocked: p.blocked.unwrap_or(current.blocked),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = DeleteOrganizationRequest)]
pub struct DeleteOrgsRequest {
    organization_ids: Vec<String>,
}

/// Deletes organizations with no teams left; all or nothing.
#[utoipa::path(
    delete,
    path = "/organization/delete",
    operation_id = "delete_organization",
    tag = crate::openapi::ORGS,
    request_body = DeleteOrgsRequest,
    responses((status = 200, body = Vec<OrganizationObject>)),
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Vec<OrganizationObject>>, ApiError> {
    let r: DeleteOrgsRequest = json_body(&state, &headers, body).await?;
    if !principal.is_proxy_admin() {
        return Err(ApiError::unauthorized(
            "auth_error",
            format!(
                "Only proxy admins can delete organizations. Your role is = {}",
                principal.role()
            ),
        )
        .with_param("user_role"));
    }
    if r.organization_ids.is_empty() {
        return Err(bad_field(
            "organization_ids",
            "organization_ids must not be empty",
        ));
    }
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    let mut deleted = Vec::new();
    let mut archive = Vec::new();
    for id in &r.organization_ids {
        if !seen.insert(id.clone()) {
            continue;
        }
        let org = state.store().orgs().find(id).await?.ok_or_else(|| {
            ApiError::not_found(format!(
                "Organization not found for organization_id={id}; nothing was deleted"
            ))
            .with_param("organization_ids")
        })?;
        deleted.push(org_object(&state, &org).await?);
        let query = TeamQuery {
            organization: Some(OrgFilter::Id(id.clone())),
            ..TeamQuery::default()
        };
        let (teams, _) = state.store().teams().list(&query).await?;
        for team in &teams {
            let members = state.store().teams().members(&team.team_id).await?;
            archive.push((team.team_id.clone(), TeamObject::audit(team, &members)));
        }
        ids.push(id.clone());
    }
    let tokens = state
        .store()
        .orgs()
        .delete(&ids, &archive, &actor(&principal), principal.api_key_hash())
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "bad_request_error",
                "A team was added to the organization while it was being deleted; nothing was deleted, retry",
            ),
            other => other.into(),
        })?;
    for token in &tokens {
        state.auth_cache().invalidate(token).await;
    }
    let auditor = Auditor::new(&state, &principal, &headers);
    for (id, data) in ids.iter().zip(&deleted) {
        auditor
            .record(&state, "deleted", ORGS_TABLE, id, audit(data), None)
            .await;
    }
    Ok(Json(deleted))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    org_id: Option<String>,
    org_alias: Option<String>,
}

/// Organizations the caller belongs to (all, for admins).
#[utoipa::path(
    get,
    path = "/organization/list",
    operation_id = "list_organization",
    tag = crate::openapi::ORGS,
    params(ListQuery),
    responses((status = 200, body = Vec<OrganizationObject>)),
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<OrganizationObject>>, ApiError> {
    let only: Option<Vec<String>> = if is_admin_reader(&principal) {
        None
    } else {
        let mine = match member_id(&principal) {
            Some(me) => state.store().orgs().memberships_of(me).await?,
            None => Vec::new(),
        };
        Some(mine.into_iter().map(|m| m.organization_id).collect())
    };
    let orgs = state
        .store()
        .orgs()
        .list(
            only.as_deref(),
            q.org_id.as_deref(),
            q.org_alias.as_deref().filter(|a| !a.is_empty()),
        )
        .await?;
    let mut out = Vec::with_capacity(orgs.len());
    for org in &orgs {
        out.push(org_object(&state, org).await?);
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InfoQuery {
    organization_id: Option<String>,
}

/// An organization with its budget, members and teams.
#[utoipa::path(
    get,
    path = "/organization/info",
    operation_id = "info_organization",
    tag = crate::openapi::ORGS,
    params(InfoQuery),
    responses((status = 200, body = OrganizationObject)),
)]
pub async fn info(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<InfoQuery>,
) -> Result<Json<OrganizationObject>, ApiError> {
    let org_id = require_org_id(q.organization_id)?;
    let org = find_org(&state, &org_id).await?;
    org_gate(&state, &principal, &org_id, "/organization/info", true).await?;
    Ok(Json(org_object(&state, &org).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = OrganizationRequest)]
pub struct InfoBody {
    organizations: Vec<String>,
}

/// The deprecated `POST /organization/info` with a list of ids.
#[utoipa::path(
    post,
    path = "/organization/info",
    operation_id = "deprecated_info_organization",
    tag = crate::openapi::ORGS,
    request_body = InfoBody,
    responses((status = 200, body = Vec<OrganizationObject>)),
)]
pub async fn info_many(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Vec<OrganizationObject>>, ApiError> {
    let r: InfoBody = json_body(&state, &headers, body).await?;
    let mut out = Vec::with_capacity(r.organizations.len());
    for id in &r.organizations {
        let org = find_org(&state, id).await?;
        org_gate(&state, &principal, id, "/organization/info", true).await?;
        out.push(org_object(&state, &org).await?);
    }
    Ok(Json(out))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = OrgMember)]
pub struct OrgMemberSpec {
    role: Option<String>,
    user_id: Option<String>,
    user_email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(as = OrgMembers)]
enum OneOrMany {
    Many(Vec<OrgMemberSpec>),
    One(OrgMemberSpec),
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = OrganizationMemberAddRequest)]
pub struct MemberAddRequest {
    organization_id: Option<String>,
    member: Option<OneOrMany>,
    max_budget_in_organization: Option<f64>,
}

fn check_role(role: Option<&str>) -> Result<String, ApiError> {
    let role = role.unwrap_or("internal_user");
    if ORG_ROLES.contains(&role) {
        Ok(role.to_string())
    } else {
        Err(bad_field(
            "role",
            format!("Invalid organization role {role:?}: expected one of {ORG_ROLES:?}"),
        ))
    }
}

/// Adds users to an organization, creating unknown ones.
#[utoipa::path(
    post,
    path = "/organization/member_add",
    operation_id = "organization_member_add",
    tag = crate::openapi::ORGS,
    request_body = MemberAddRequest,
    responses((status = 200, body = OrganizationAddMemberResponse)),
)]
pub async fn member_add(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<OrganizationAddMemberResponse>, ApiError> {
    let r: MemberAddRequest = json_body(&state, &headers, body).await?;
    let org_id = require_org_id(r.organization_id)?;
    let specs = match r.member {
        Some(OneOrMany::One(m)) => vec![m],
        Some(OneOrMany::Many(list)) if !list.is_empty() => list,
        _ => return Err(missing("member", "member is required")),
    };
    find_org(&state, &org_id).await?;
    org_gate(
        &state,
        &principal,
        &org_id,
        "/organization/member_add",
        false,
    )
    .await?;
    let max_budget = money("max_budget_in_organization", r.max_budget_in_organization)?;
    let mut members: Vec<NewOrgMember> = Vec::new();
    for spec in &specs {
        let role = check_role(spec.role.as_deref())?;
        let (user_id, _, create) = resolve_member(
            &state,
            &principal,
            spec.user_id.as_deref(),
            spec.user_email.as_deref(),
            "member",
        )
        .await?;
        if members.iter().any(|m| m.user_id == user_id) {
            return Err(bad_field(
                "member",
                format!("User {user_id} is listed more than once"),
            ));
        }
        if state
            .store()
            .orgs()
            .member(&org_id, &user_id)
            .await?
            .is_some()
        {
            return Err(bad_field(
                "member",
                format!("User {user_id} is already a member of organization {org_id}"),
            ));
        }
        members.push(NewOrgMember {
            budget: max_budget.map(|max| NewBudget {
                budget_id: uuid::Uuid::new_v4().to_string(),
                max_budget: Some(max),
                created_by: actor(&principal),
                ..NewBudget::default()
            }),
            user_id,
            role,
            create_user: create,
        });
    }
    state
        .store()
        .orgs()
        .add_members(&org_id, &members)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => bad_field(
                "member",
                "A member was added concurrently; nothing was changed",
            ),
            other => other.into(),
        })?;
    let mut users = Vec::new();
    let mut added = Vec::new();
    for m in &members {
        if let Some(user) = state.store().users().find(&m.user_id).await? {
            let teams = state.store().users().team_ids(&user.user_id).await?;
            users.push(UserTable::new(&user, &teams));
        }
        if let Some(row) = state.store().orgs().member(&org_id, &m.user_id).await? {
            added.push(row);
        }
    }
    let body = OrganizationAddMemberResponse {
        organization_id: org_id.clone(),
        updated_users: users,
        updated_organization_memberships: memberships(&state, &added).await?,
    };
    Auditor::new(&state, &principal, &headers)
        .record(&state, "updated", ORGS_TABLE, &org_id, None, audit(&body))
        .await;
    Ok(Json(body))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = OrganizationMemberUpdateRequest)]
pub struct MemberRef {
    organization_id: Option<String>,
    user_id: Option<String>,
    user_email: Option<String>,
    role: Option<String>,
    max_budget_in_organization: Option<f64>,
}

/// The organization and membership a member route names, after the org-admin gate.
async fn gated_member(
    state: &AppState,
    principal: &Principal,
    r: &MemberRef,
    route: &str,
) -> Result<(String, OrgMemberRow), ApiError> {
    let org_id = require_org_id(r.organization_id.clone())?;
    find_org(state, &org_id).await?;
    org_gate(state, principal, &org_id, route, false).await?;
    let member = member_of(state, &org_id, r).await?;
    Ok((org_id, member))
}

async fn member_of(
    state: &AppState,
    org_id: &str,
    r: &MemberRef,
) -> Result<OrgMemberRow, ApiError> {
    let user_id = member_user_id(state, r.user_id.as_ref(), r.user_email.as_ref()).await?;
    state
        .store()
        .orgs()
        .member(org_id, &user_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "User {user_id} is not a member of organization {org_id}"
            ))
            .with_param("user_id")
        })
}

/// Changes a member's role or budget in the organization.
#[utoipa::path(
    patch,
    path = "/organization/member_update",
    operation_id = "organization_member_update",
    tag = crate::openapi::ORGS,
    request_body = MemberRef,
    responses((status = 200, body = OrgMembership)),
)]
pub async fn member_update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<OrgMembership>, ApiError> {
    let r: MemberRef = json_body(&state, &headers, body).await?;
    let (org_id, member) =
        gated_member(&state, &principal, &r, "/organization/member_update").await?;
    let role = r
        .role
        .as_deref()
        .map(|role| check_role(Some(role)))
        .transpose()?;
    let mut budget = BudgetPatch::default();
    if r.max_budget_in_organization.is_some() {
        budget.max_budget = Some(money(
            "max_budget_in_organization",
            r.max_budget_in_organization,
        )?);
    }
    let updated = state
        .store()
        .orgs()
        .update_member(
            &org_id,
            &member.user_id,
            role.as_deref(),
            &budget,
            &actor(&principal),
        )
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "User {} is not a member of organization {org_id}",
                member.user_id
            ))
        })?;
    let body = memberships(&state, std::slice::from_ref(&updated))
        .await?
        .remove(0);
    Auditor::new(&state, &principal, &headers)
        .record(&state, "updated", ORGS_TABLE, &org_id, None, audit(&body))
        .await;
    Ok(Json(body))
}

/// Removes a member from the organization.
#[utoipa::path(
    delete,
    path = "/organization/member_delete",
    operation_id = "organization_member_delete",
    tag = crate::openapi::ORGS,
    request_body = OrganizationMemberDeleteRequest,
    responses((status = 200, body = OrgMembership)),
)]
pub async fn member_delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<OrgMembership>, ApiError> {
    let OrganizationMemberDeleteRequest(r) = json_body(&state, &headers, body).await?;
    let (org_id, member) =
        gated_member(&state, &principal, &r, "/organization/member_delete").await?;
    let body = memberships(&state, std::slice::from_ref(&member))
        .await?
        .remove(0);
    if !state
        .store()
        .orgs()
        .remove_member(&org_id, &member.user_id)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "User {} is not a member of organization {org_id}",
            member.user_id
        )));
    }
    Auditor::new(&state, &principal, &headers)
        .record(&state, "updated", ORGS_TABLE, &org_id, audit(&body), None)
        .await;
    Ok(Json(body))
}
