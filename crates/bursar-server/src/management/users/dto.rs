//! What the user routes answer: LiteLLM's response models, every declared field written (null
//! when unset). Fields Bursar has no feature for are always null.

use crate::management::keys::dto::{GenerateKeyResponse, KeyObject};
use crate::management::teams::dto::TeamObject;
use bursar_core::NanoUsd;
use bursar_core::time::format_ms;
use bursar_store::UserRow;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A user as the management routes answer it: LiteLLM's `LiteLLM_UserTable`, plus the user's
/// `soft_budget` (a Bursar column) and, in `/user/list`, its key count.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LiteLLM_UserTable)]
pub struct UserTable {
    pub user_id: String,
    pub user_alias: Option<String>,
    pub team_id: Option<String>,
    pub sso_user_id: Option<String>,
    pub organization_id: Option<String>,
    pub object_permission_id: Option<String>,
    pub password_reset_required: Option<bool>,
    pub last_breach_check_at: Option<String>,
    /// Team ids (empty in lists).
    pub teams: Vec<String>,
    /// `proxy_admin`, `proxy_admin_viewer`, `internal_user` or `internal_user_viewer`.
    pub user_role: Option<String>,
    pub max_budget: Option<f64>,
    pub soft_budget: Option<f64>,
    pub spend: f64,
    pub user_email: Option<String>,
    pub models: Vec<String>,
    pub metadata: Option<Value>,
    pub max_parallel_requests: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<String>,
    pub allowed_cache_controls: Vec<String>,
    pub policies: Vec<String>,
    pub model_spend: Option<Value>,
    pub model_max_budget: Option<Value>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub organization_memberships: Option<Vec<Value>>,
    pub object_permission: Option<Value>,
    /// The user's key count (`/user/list` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_count: Option<i64>,
}

impl UserTable {
    pub fn new(user: &UserRow, teams: &[String]) -> UserTable {
        UserTable {
            user_id: user.user_id.clone(),
            user_alias: user.user_alias.clone(),
            team_id: None,
            sso_user_id: user.sso_user_id.clone(),
            organization_id: user.organization_id.clone(),
            object_permission_id: None,
            password_reset_required: None,
            last_breach_check_at: None,
            teams: teams.to_vec(),
            user_role: Some(user.user_role.clone()),
            max_budget: user.max_budget.map(NanoUsd::as_usd),
            soft_budget: user.soft_budget.map(NanoUsd::as_usd),
            spend: user.spend.as_usd(),
            user_email: user.user_email.clone(),
            models: user.models.clone(),
            metadata: Some(user.metadata.clone()),
            max_parallel_requests: user.max_parallel_requests,
            tpm_limit: user.tpm_limit,
            rpm_limit: user.rpm_limit,
            budget_duration: user.budget_duration.clone(),
            budget_reset_at: user.budget_reset_at.map(format_ms),
            allowed_cache_controls: Vec::new(),
            policies: Vec::new(),
            model_spend: Some(user.model_spend.clone()),
            model_max_budget: Some(user.model_max_budget.clone()),
            created_at: Some(format_ms(user.created_at)),
            updated_at: Some(format_ms(user.updated_at)),
            organization_memberships: None,
            object_permission: None,
            key_count: None,
        }
    }

    /// The user as the audit log records it.
    pub fn audit(user: &UserRow, teams: &[String]) -> Value {
        serde_json::to_value(UserTable::new(user, teams)).unwrap_or(Value::Null)
    }
}

/// `POST /user/new`: LiteLLM's `NewUserResponse`, the user's settings and its first key (`key`
/// is `""` with `auto_create_key: false`, as LiteLLM sends it).
#[derive(Debug, Serialize, ToSchema)]
pub struct NewUserResponse {
    #[serde(flatten)]
    pub key: GenerateKeyResponse,
    pub user_email: Option<String>,
    pub user_role: Option<String>,
    pub teams: Option<Vec<String>>,
    pub user_alias: Option<String>,
}

impl NewUserResponse {
    /// The user's own settings over the key's: LiteLLM answers with what the user got.
    pub fn new(user: &UserRow, teams: &[String], key: Option<GenerateKeyResponse>) -> Self {
        let mut body = key.unwrap_or_else(|| GenerateKeyResponse {
            config: Some(Map::new()),
            allowed_cache_controls: Some(Vec::new()),
            ..GenerateKeyResponse::default()
        });
        body.user_id = Some(user.user_id.clone());
        body.models = Some(user.models.clone());
        body.spend = Some(user.spend.as_usd());
        body.max_budget = user.max_budget.map(NanoUsd::as_usd);
        body.metadata = Some(user.metadata.clone());
        body.max_parallel_requests = user.max_parallel_requests;
        body.tpm_limit = user.tpm_limit;
        body.rpm_limit = user.rpm_limit;
        body.budget_duration = user.budget_duration.clone();
        body.model_max_budget = Some(user.model_max_budget.clone());
        body.created_at = Some(format_ms(user.created_at));
        body.updated_at = Some(format_ms(user.updated_at));
        NewUserResponse {
            key: body,
            user_email: user.user_email.clone(),
            user_role: Some(user.user_role.clone()),
            teams: Some(teams.to_vec()),
            user_alias: user.user_alias.clone(),
        }
    }
}

/// `GET /user/info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfoResponse {
    pub user_id: Option<String>,
    pub user_info: Option<UserTable>,
    pub keys: Vec<KeyObject>,
    pub teams: Vec<TeamObject>,
    pub admin_mcp_permissions: Option<Value>,
}

/// `POST /user/update`: the user after the change.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateUserResponse {
    pub user_id: String,
    pub data: UserTable,
}

/// `GET /user/list`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserListResponse {
    pub users: Vec<UserTable>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    pub total_pages: u64,
}

/// One role of `GET /user/available_roles`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleDescription {
    pub description: &'static str,
    pub ui_label: &'static str,
}

/// `GET /v2/user/info`: LiteLLM's `UserInfoV2Response`, the user alone (no keys or teams' rows).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfoV2Response {
    pub user_id: String,
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    pub user_role: Option<String>,
    pub spend: f64,
    pub max_budget: Option<f64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub models: Vec<String>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<String>,
    pub metadata: Option<Value>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub sso_user_id: Option<String>,
    /// Team ids.
    pub teams: Vec<String>,
    pub object_permission: Option<Value>,
    pub model_max_budget: Option<Value>,
    pub model_max_budget_usage: Option<Value>,
}

impl UserInfoV2Response {
    pub fn new(user: &UserRow, teams: Vec<String>) -> Self {
        UserInfoV2Response {
            user_id: user.user_id.clone(),
            user_email: user.user_email.clone(),
            user_alias: user.user_alias.clone(),
            user_role: Some(user.user_role.clone()),
            spend: user.spend.as_usd(),
            max_budget: user.max_budget.map(NanoUsd::as_usd),
            tpm_limit: user.tpm_limit,
            rpm_limit: user.rpm_limit,
            models: user.models.clone(),
            budget_duration: user.budget_duration.clone(),
            budget_reset_at: user.budget_reset_at.map(format_ms),
            metadata: Some(user.metadata.clone()),
            created_at: Some(format_ms(user.created_at)),
            updated_at: Some(format_ms(user.updated_at)),
            sso_user_id: user.sso_user_id.clone(),
            teams,
            object_permission: None,
            model_max_budget: Some(user.model_max_budget.clone()),
            model_max_budget_usage: None,
        }
    }
}

/// `GET /user/available_users`: seat counts (no seat limits: the totals are null).
#[derive(Debug, Serialize, ToSchema)]
pub struct AvailableUsersResponse {
    pub total_users: Option<u64>,
    pub total_teams: Option<u64>,
    pub total_users_used: u64,
    pub total_teams_used: u64,
    pub total_teams_remaining: Option<u64>,
    pub total_users_remaining: Option<u64>,
}

/// One user of `/user/bulk_update`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserUpdateResult {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub success: bool,
    pub error: Option<String>,
    pub updated_user: Option<UserTable>,
}

/// `POST /user/bulk_update`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkUpdateUserResponse {
    pub results: Vec<UserUpdateResult>,
    pub total_requested: usize,
    pub successful_updates: usize,
    pub failed_updates: usize,
}
