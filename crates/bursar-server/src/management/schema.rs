//! The documented shapes of management request bodies that are parsed in two parts, and of the
//! responses that handlers build as JSON. Names are LiteLLM's, so generated clients keep their
//! model classes. Every object allows more properties than listed; the listed ones are typed as
//! served (schemathesis checks served responses against them in CI).

#![allow(dead_code)]

use super::keys::{KeyFields, KeyIdentity};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `POST /key/generate`.
#[derive(ToSchema)]
pub struct GenerateKeyRequest {
    /// A caller-chosen key (`sk-…`, at least 16 characters); generated when absent.
    key: Option<String>,
    #[serde(flatten)]
    fields: KeyFields,
}

/// `POST /key/update`: `key` picks the key; absent fields are unchanged.
#[derive(ToSchema)]
pub struct UpdateKeyRequest {
    /// The key or its hash.
    key: String,
    #[serde(flatten)]
    fields: KeyFields,
}

/// `POST /key/regenerate` and `POST /key/{key}/regenerate`.
#[derive(ToSchema)]
pub struct RegenerateKeyRequest {
    #[serde(flatten)]
    identity: KeyIdentity,
    #[serde(flatten)]
    fields: KeyFields,
}

/// A virtual key as the management routes answer it (never the raw key).
#[derive(ToSchema)]
#[schema(as = LiteLLM_VerificationToken)]
pub struct KeyObject {
    /// The key's hash: its id in every other key route (left out by `/key/info`).
    token: Option<String>,
    /// The abbreviated key (`sk-...abcd`).
    key_name: Option<String>,
    key_alias: Option<String>,
    spend: f64,
    max_budget: Option<f64>,
    expires: Option<String>,
    models: Vec<String>,
    aliases: Value,
    config: Value,
    user_id: Option<String>,
    team_id: Option<String>,
    organization_id: Option<String>,
    budget_id: Option<String>,
    permissions: Value,
    max_parallel_requests: Option<i64>,
    metadata: Value,
    blocked: Option<bool>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    budget_duration: Option<String>,
    budget_reset_at: Option<String>,
    allowed_cache_controls: Vec<Value>,
    allowed_routes: Vec<String>,
    model_spend: Value,
    model_max_budget: Value,
    litellm_budget_table: Option<Map<String, Value>>,
    rotation_count: Option<i64>,
    created_at: Option<String>,
    created_by: Option<String>,
    updated_at: Option<String>,
    updated_by: Option<String>,
    last_active: Option<String>,
}

/// `POST /key/generate` and `/key/regenerate`: the key's fields and the new raw key.
#[derive(ToSchema)]
pub struct GenerateKeyResponse {
    /// The new key, shown only here.
    key: String,
    /// The key's hash.
    token_id: Option<String>,
    token: Option<String>,
    key_name: Option<String>,
    key_alias: Option<String>,
    expires: Option<String>,
    models: Option<Vec<String>>,
    spend: Option<f64>,
    max_budget: Option<f64>,
    user_id: Option<String>,
    team_id: Option<String>,
    organization_id: Option<String>,
    metadata: Option<Value>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    max_parallel_requests: Option<i64>,
    budget_duration: Option<String>,
}

/// `GET /key/info`.
#[derive(ToSchema)]
pub struct KeyInfoResponse {
    /// The key as given.
    key: String,
    info: KeyObject,
}

/// `POST /key/delete`.
#[derive(ToSchema)]
pub struct DeleteKeyResponse {
    deleted_keys: Vec<String>,
}

/// `GET /key/list`: key hashes, or whole keys with `return_full_object=true`.
#[derive(ToSchema)]
pub struct KeyListResponseObject {
    keys: Vec<Value>,
    total_count: Option<u64>,
    current_page: Option<u32>,
    total_pages: Option<u64>,
}

/// `POST /key/health`.
#[derive(ToSchema)]
pub struct KeyHealthResponse {
    key: String,
    logging_callbacks: Option<Value>,
}

/// A team member with their role.
#[derive(ToSchema)]
#[schema(as = Member)]
pub struct TeamMember {
    user_id: Option<String>,
    user_email: Option<String>,
    /// `admin` or `user`.
    role: String,
}

/// A team as the management routes answer it.
#[derive(ToSchema)]
#[schema(as = LiteLLM_TeamTable)]
pub struct TeamObject {
    team_id: String,
    team_alias: Option<String>,
    organization_id: Option<String>,
    admins: Vec<String>,
    members: Vec<String>,
    members_with_roles: Vec<TeamMember>,
    team_member_permissions: Value,
    metadata: Value,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    max_budget: Option<f64>,
    soft_budget: Option<f64>,
    budget_duration: Option<String>,
    budget_reset_at: Option<String>,
    models: Vec<String>,
    blocked: bool,
    spend: f64,
    max_parallel_requests: Option<i64>,
    model_spend: Value,
    model_max_budget: Value,
    model_id: Option<i64>,
    litellm_model_table: Option<Map<String, Value>>,
    object_permission: Value,
    router_settings: Value,
    access_group_ids: Value,
    created_at: String,
    updated_at: String,
}

/// `GET /v2/team/list`.
#[derive(ToSchema)]
pub struct TeamListResponse {
    teams: Vec<Value>,
    total: u64,
    page: u32,
    page_size: u32,
    total_pages: u64,
}

/// A budget (`LiteLLM_BudgetTable`).
#[derive(ToSchema)]
#[schema(as = LiteLLM_BudgetTable)]
pub struct BudgetObject {
    budget_id: String,
    max_budget: Option<f64>,
    soft_budget: Option<f64>,
    max_parallel_requests: Option<i64>,
    tpm_limit: Option<i64>,
    rpm_limit: Option<i64>,
    model_max_budget: Value,
    budget_duration: Option<String>,
    budget_reset_at: Option<String>,
    created_at: Option<String>,
    created_by: Option<String>,
    updated_at: Option<String>,
    updated_by: Option<String>,
}

/// An organization with its budget, members and teams.
#[derive(ToSchema)]
#[schema(as = LiteLLM_OrganizationTableWithMembers)]
pub struct OrganizationObject {
    organization_id: String,
    organization_alias: Option<String>,
    budget_id: Option<String>,
    metadata: Value,
    models: Vec<String>,
    spend: f64,
    model_spend: Value,
    blocked: bool,
    object_permission: Value,
    created_at: String,
    created_by: Option<String>,
    updated_at: String,
    updated_by: Option<String>,
    litellm_budget_table: Option<BudgetObject>,
    members: Vec<Value>,
    teams: Vec<TeamObject>,
    users: Vec<Value>,
}

/// A customer (end user) with its budget.
#[derive(ToSchema)]
#[schema(as = CustomerResponse)]
pub struct CustomerObject {
    user_id: String,
    alias: Option<String>,
    spend: f64,
    blocked: bool,
    allowed_model_region: Option<String>,
    default_model: Option<String>,
    budget_id: Option<String>,
    litellm_budget_table: Option<BudgetObject>,
    metadata: Option<Value>,
    object_permission: Option<Value>,
}

/// `GET /…/daily/activity`: per-day spend with breakdowns, paged.
#[derive(ToSchema)]
pub struct SpendAnalyticsPaginatedResponse {
    results: Vec<Value>,
    metadata: Map<String, Value>,
}

/// `POST /organization/new`.
#[derive(ToSchema)]
pub struct NewOrganizationRequest {
    /// Generated when absent.
    organization_id: Option<String>,
    #[serde(flatten)]
    fields: super::orgs::OrgFields,
}

/// `PATCH /organization/update`: `organization_id` picks it; absent fields are unchanged.
#[derive(ToSchema)]
pub struct UpdateOrganizationRequest {
    organization_id: String,
    #[serde(flatten)]
    fields: super::orgs::OrgFields,
}

/// `POST /team/new`.
#[derive(ToSchema)]
pub struct NewTeamRequest {
    /// Generated when absent.
    team_id: Option<String>,
    #[serde(flatten)]
    fields: super::teams::TeamFields,
}

/// `POST /team/update`: `team_id` picks it; absent fields are unchanged.
#[derive(ToSchema)]
pub struct UpdateTeamRequest {
    team_id: String,
    #[serde(flatten)]
    fields: super::teams::TeamFields,
}

// LiteLLM gives these bodies their own names; Bursar parses them with a shared type.

/// `POST /team/member_delete`: `user_id` or `user_email`.
#[derive(ToSchema)]
pub struct TeamMemberDeleteRequest(super::teams::MemberRef);

/// `POST /team/model/delete`.
#[derive(ToSchema)]
pub struct TeamModelDeleteRequest(super::teams::TeamModelsRequest);

/// `DELETE /organization/member_delete`: `user_id` or `user_email`.
#[derive(ToSchema)]
pub struct OrganizationMemberDeleteRequest(super::orgs::MemberRef);

/// `POST /customer/update`: `user_id` picks the customer; absent fields are unchanged.
#[derive(ToSchema)]
pub struct UpdateCustomerRequest(super::customers::CustomerFields);

/// `POST /customer/block` and `/customer/unblock`.
#[derive(ToSchema)]
pub struct BlockUsers(super::customers::UserIds);

/// `POST /team/member_add` and `/team/bulk_member_add`: one result per requested member.
#[derive(ToSchema)]
pub struct TeamAddMemberResponse {
    team_id: String,
    results: Vec<Value>,
    total_requested: Option<u64>,
}

/// `GET /team/permissions_list`.
#[derive(ToSchema)]
pub struct GetTeamMemberPermissionsResponse {
    team_id: String,
    team_member_permissions: Value,
    all_available_permissions: Vec<String>,
}

/// `POST /customer/delete`.
#[derive(ToSchema)]
pub struct DeleteCustomersResponse {
    deleted_customers: u64,
    message: String,
}

/// `POST /customer/block`.
#[derive(ToSchema)]
pub struct BlockUsersResponse {
    blocked_users: Vec<CustomerObject>,
}

/// `GET /audit`: audit log entries, newest first.
#[derive(ToSchema)]
pub struct PaginatedAuditLogResponse {
    data: Vec<Value>,
    total: u64,
    page: u32,
    page_size: u32,
    total_pages: u64,
}
