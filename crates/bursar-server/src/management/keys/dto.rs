//! What the key routes answer: LiteLLM's response models, field for field. Every declared field
//! is written (null when unset), as FastAPI writes a pydantic response model; fields Bursar has
//! no feature for are `Option<Value>`, always null. These types are the documented schema and the wire format at once.

use bursar_core::NanoUsd;
use bursar_core::time::format_ms;
use bursar_store::KeyRow;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

fn time(ms: Option<i64>) -> Option<String> {
    ms.map(format_ms)
}

/// A key's soft budget, where LiteLLM shows it: in the key's budget row.
fn budget_table(row: &KeyRow) -> Option<Value> {
    row.soft_budget.map(|s| json!({"soft_budget": s.as_usd()}))
}

/// A virtual key as the management routes show it (never the raw key): LiteLLM's
/// `LiteLLM_VerificationToken`, plus `organization_id` (the column LiteLLM's rows carry).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LiteLLM_VerificationToken)]
pub struct KeyObject {
    /// The key's hash: its id in every other key route (left out by `/key/info`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The abbreviated key (`sk-...abcd`).
    pub key_name: Option<String>,
    pub key_alias: Option<String>,
    pub spend: f64,
    pub total_spend: f64,
    pub max_budget: Option<f64>,
    pub expires: Option<String>,
    pub models: Vec<String>,
    pub aliases: Value,
    pub config: Map<String, Value>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub agent_id: Option<String>,
    pub project_id: Option<String>,
    pub max_parallel_requests: Option<i64>,
    pub metadata: Value,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpd_limit: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<String>,
    pub allowed_cache_controls: Vec<String>,
    pub allowed_routes: Vec<String>,
    pub key_type: Option<String>,
    pub permissions: Value,
    pub model_spend: Value,
    pub model_max_budget: Value,
    pub budget_fallbacks: Map<String, Value>,
    pub soft_budget_cooldown: bool,
    pub blocked: Option<bool>,
    pub litellm_budget_table: Option<Value>,
    pub budget_id: Option<String>,
    pub org_id: Option<String>,
    pub organization_id: Option<String>,
    pub created_at: Option<String>,
    pub created_by: Option<String>,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
    pub settings_updated_at: Option<String>,
    pub last_active: Option<String>,
    pub object_permission_id: Option<String>,
    pub object_permission: Option<Value>,
    pub access_group_ids: Option<Vec<String>>,
    pub rotation_count: Option<i64>,
    pub auto_rotate: Option<bool>,
    pub rotation_interval: Option<String>,
    pub last_rotation_at: Option<String>,
    pub key_rotation_at: Option<String>,
    pub router_settings: Option<Value>,
    pub budget_limits: Option<Value>,
}

impl KeyObject {
    pub fn new(row: &KeyRow) -> KeyObject {
        KeyObject {
            token: Some(row.token.clone()),
            key_name: row.key_name.clone(),
            key_alias: row.key_alias.clone(),
            spend: row.spend.as_usd(),
            total_spend: row.spend.as_usd(),
            max_budget: row.max_budget.map(NanoUsd::as_usd),
            expires: time(row.expires_at),
            models: row.models.clone(),
            aliases: row.aliases.clone(),
            config: Map::new(),
            user_id: row.user_id.clone(),
            team_id: row.team_id.clone(),
            agent_id: None,
            project_id: None,
            max_parallel_requests: row.max_parallel_requests,
            metadata: row.metadata.clone(),
            tpm_limit: row.tpm_limit,
            rpm_limit: row.rpm_limit,
            tpd_limit: None,
            budget_duration: row.budget_duration.clone(),
            budget_reset_at: time(row.budget_reset_at),
            allowed_cache_controls: Vec::new(),
            allowed_routes: row.allowed_routes.clone(),
            key_type: None,
            permissions: row.permissions.clone(),
            model_spend: row.model_spend.clone(),
            model_max_budget: row.model_max_budget.clone(),
            budget_fallbacks: Map::new(),
            soft_budget_cooldown: false,
            blocked: Some(row.blocked),
            litellm_budget_table: budget_table(row),
            budget_id: row.budget_id.clone(),
            org_id: row.organization_id.clone(),
            organization_id: row.organization_id.clone(),
            created_at: Some(format_ms(row.created_at)),
            created_by: row.created_by.clone(),
            updated_at: Some(format_ms(row.updated_at)),
            updated_by: row.updated_by.clone(),
            settings_updated_at: None,
            last_active: time(row.last_active_at),
            object_permission_id: None,
            object_permission: None,
            access_group_ids: None,
            rotation_count: Some(row.rotation_count),
            auto_rotate: Some(false),
            rotation_interval: None,
            last_rotation_at: None,
            key_rotation_at: None,
            router_settings: None,
            budget_limits: None,
        }
    }

    /// The key as the audit log records it.
    pub fn audit(row: &KeyRow) -> Value {
        serde_json::to_value(KeyObject::new(row)).unwrap_or(Value::Null)
    }
}

/// The fields LiteLLM's `GenerateKeyResponse` shares with `NewUserResponse`: the request's
/// settings as stored, and the new key.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(as = GenerateKeyResponse)]
pub struct GenerateKeyResponse {
    pub key_alias: Option<String>,
    pub duration: Option<String>,
    pub models: Option<Vec<String>>,
    pub spend: Option<f64>,
    pub max_budget: Option<f64>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub agent_id: Option<String>,
    pub max_parallel_requests: Option<i64>,
    pub metadata: Option<Value>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub budget_duration: Option<String>,
    pub budget_limits: Option<Value>,
    pub allowed_cache_controls: Option<Vec<String>>,
    pub config: Option<Map<String, Value>>,
    pub permissions: Option<Value>,
    pub model_max_budget: Option<Value>,
    pub budget_fallbacks: Option<Value>,
    pub model_rpm_limit: Option<Value>,
    pub model_tpm_limit: Option<Value>,
    pub mcp_rpm_limit: Option<Value>,
    pub tag_rpm_limit: Option<Value>,
    pub guardrails: Option<Vec<String>>,
    pub policies: Option<Vec<String>>,
    pub prompts: Option<Vec<String>>,
    pub blocked: Option<bool>,
    pub aliases: Option<Value>,
    pub object_permission: Option<Value>,
    /// The new key, shown only here.
    pub key: String,
    pub tpd_limit: Option<i64>,
    pub default_estimated_output_tokens: Option<i64>,
    pub default_estimated_output_tokens_per_model: Option<Value>,
    pub budget_id: Option<String>,
    pub end_user_budget_id: Option<String>,
    pub tags: Option<Vec<String>>,
    pub disable_global_guardrails: Option<bool>,
    pub enable_prompt_caching: Option<bool>,
    pub throttle_on_budget_exceeded: Option<bool>,
    pub enforced_params: Option<Vec<String>>,
    pub allowed_routes: Option<Vec<String>>,
    pub allowed_passthrough_routes: Option<Vec<String>>,
    pub denied_passthrough_routes: Option<Vec<String>>,
    pub allowed_vector_store_indexes: Option<Value>,
    pub rpm_limit_type: Option<String>,
    pub tpm_limit_type: Option<String>,
    pub router_settings: Option<Value>,
    pub access_group_ids: Option<Vec<String>>,
    /// The abbreviated key (`sk-...abcd`).
    pub key_name: Option<String>,
    pub key_type: Option<String>,
    pub expires: Option<String>,
    /// The key's hash, its id in the other key routes.
    pub token_id: Option<String>,
    pub organization_id: Option<String>,
    pub project_id: Option<String>,
    pub litellm_budget_table: Option<Value>,
    /// The key's hash (LiteLLM sends it under both names).
    pub token: Option<String>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// What the request said that the key row does not keep.
#[derive(Debug, Clone, Default)]
pub struct RequestEcho {
    pub duration: Option<String>,
    pub key_type: Option<String>,
}

impl GenerateKeyResponse {
    pub fn new(raw: String, row: &KeyRow, echo: RequestEcho) -> GenerateKeyResponse {
        // Fields LiteLLM keeps inside the key's metadata.
        let meta = |name: &str| row.metadata.get(name).filter(|v| !v.is_null()).cloned();
        let list = |name: &str| meta(name).and_then(|v| serde_json::from_value(v).ok());
        let text = |name: &str| meta(name).and_then(|v| v.as_str().map(str::to_string));
        GenerateKeyResponse {
            key_alias: row.key_alias.clone(),
            duration: echo.duration,
            models: Some(row.models.clone()),
            spend: Some(row.spend.as_usd()),
            max_budget: row.max_budget.map(NanoUsd::as_usd),
            user_id: row.user_id.clone(),
            team_id: row.team_id.clone(),
            max_parallel_requests: row.max_parallel_requests,
            metadata: Some(row.metadata.clone()),
            tpm_limit: row.tpm_limit,
            rpm_limit: row.rpm_limit,
            budget_duration: row.budget_duration.clone(),
            allowed_cache_controls: Some(Vec::new()),
            config: Some(Map::new()),
            permissions: Some(row.permissions.clone()),
            model_max_budget: Some(row.model_max_budget.clone()),
            model_rpm_limit: meta("model_rpm_limit"),
            model_tpm_limit: meta("model_tpm_limit"),
            guardrails: list("guardrails"),
            blocked: Some(row.blocked),
            aliases: Some(row.aliases.clone()),
            key: raw,
            budget_id: row.budget_id.clone(),
            tags: list("tags"),
            enforced_params: list("enforced_params"),
            allowed_routes: Some(row.allowed_routes.clone()),
            rpm_limit_type: text("rpm_limit_type"),
            tpm_limit_type: text("tpm_limit_type"),
            key_name: row.key_name.clone(),
            key_type: echo.key_type,
            expires: time(row.expires_at),
            token_id: Some(row.token.clone()),
            organization_id: row.organization_id.clone(),
            litellm_budget_table: budget_table(row),
            token: Some(row.token.clone()),
            created_by: row.created_by.clone(),
            updated_by: row.updated_by.clone(),
            created_at: Some(format_ms(row.created_at)),
            updated_at: Some(format_ms(row.updated_at)),
            ..GenerateKeyResponse::default()
        }
    }
}

/// `GET /key/info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfoResponse {
    /// The key as given.
    pub key: String,
    pub info: KeyObject,
}

/// `POST /key/update`: the key as given, and the key after the change.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateKeyResponse {
    /// The key or hash the request named.
    pub key: String,
    #[serde(flatten)]
    pub updated: KeyObject,
}

/// `POST /key/delete`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteKeyResponse {
    pub deleted_keys: Vec<String>,
}

/// One entry of `/key/list`: a hash, or the whole key with `return_full_object=true`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum KeyListItem {
    Hash(String),
    Full(Box<KeyObject>),
}

/// `GET /key/list`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyListResponseObject {
    pub keys: Vec<KeyListItem>,
    pub total_count: Option<u64>,
    pub current_page: Option<u32>,
    pub total_pages: Option<u64>,
}

/// `POST /key/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyHealthResponse {
    pub key: String,
    pub logging_callbacks: Option<Value>,
}

/// `GET /key/aliases`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyAliasesResponse {
    pub aliases: Vec<String>,
    pub total_count: u64,
    pub current_page: u32,
    pub total_pages: u64,
    pub size: u32,
}

/// `POST /key/{key}/reset_spend`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetKeySpendResponse {
    pub key_hash: String,
    pub spend: f64,
    pub previous_spend: f64,
    pub max_budget: Option<f64>,
    pub budget_reset_at: Option<String>,
}

/// A key a bulk update changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuccessfulKeyUpdate {
    pub key: String,
    pub key_info: KeyObject,
}

/// A key a bulk update could not change, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedKeyUpdate {
    pub key: String,
    pub key_info: Option<KeyObject>,
    pub failed_reason: String,
}

/// `POST /key/bulk_update` and `/team/key/bulk_update`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkUpdateKeyResponse {
    pub total_requested: usize,
    pub successful_updates: Vec<SuccessfulKeyUpdate>,
    pub failed_updates: Vec<FailedKeyUpdate>,
}
