//! What the spend routes answer: LiteLLM's daily-activity models (`SpendAnalyticsPaginatedResponse`
//! and its parts), spend-log rows, and the global spend reports. Metrics Bursar does not track
//! (PTU hours, compression and caching savings, flat costs) are 0, as LiteLLM reports them when
//! unused.

use bursar_store::{DailyMetrics, KeyRow, SpendLogRow};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;

/// LiteLLM's `SpendMetrics`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpendMetrics {
    pub spend: f64,
    pub flat_cost: f64,
    pub ptu_hours: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub compression_saved_tokens: i64,
    pub compression_savings_spend: f64,
    pub prompt_caching_savings_spend: f64,
    pub gateway_injected_caching_savings_spend: f64,
    pub autorouter_savings_spend: f64,
    pub total_tokens: i64,
    pub successful_requests: i64,
    pub failed_requests: i64,
    pub api_requests: i64,
    pub total_response_time_ms: i64,
    pub timed_requests: i64,
}

impl SpendMetrics {
    pub fn new(m: &DailyMetrics) -> SpendMetrics {
        SpendMetrics {
            spend: m.spend.as_usd(),
            flat_cost: 0.0,
            ptu_hours: 0.0,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
            cache_read_input_tokens: m.cache_read_input_tokens,
            cache_creation_input_tokens: m.cache_creation_input_tokens,
            compression_saved_tokens: 0,
            compression_savings_spend: 0.0,
            prompt_caching_savings_spend: 0.0,
            gateway_injected_caching_savings_spend: 0.0,
            autorouter_savings_spend: 0.0,
            total_tokens: m.total_tokens(),
            successful_requests: m.successful_requests,
            failed_requests: m.failed_requests,
            api_requests: m.api_requests,
            total_response_time_ms: m.total_response_time_ms,
            timed_requests: m.api_requests,
        }
    }
}

/// What a breakdown says about a key (LiteLLM's `KeyMetadata`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyMetadata {
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub key_exists: Option<bool>,
}

impl KeyMetadata {
    pub fn new(hash: &str, keys: &HashMap<String, KeyRow>) -> KeyMetadata {
        let key = keys.get(hash);
        KeyMetadata {
            key_alias: key.and_then(|k| k.key_alias.clone()),
            team_id: key.and_then(|k| k.team_id.clone()),
            user_id: key.and_then(|k| k.user_id.clone()),
            user_email: None,
            key_exists: Some(key.is_some()),
        }
    }
}

/// A key's metrics with what is known of the key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyMetricWithMetadata {
    pub metrics: SpendMetrics,
    pub metadata: KeyMetadata,
}

/// One breakdown entry (a model, provider, endpoint, entity…): its metrics, its metadata and
/// its metrics per key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricWithMetadata {
    pub metrics: SpendMetrics,
    pub metadata: Map<String, Value>,
    pub api_key_breakdown: BTreeMap<String, KeyMetricWithMetadata>,
}

/// A day's spend broken down by model, model group, provider, endpoint, key and entity.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct BreakdownMetrics {
    pub mcp_servers: BTreeMap<String, MetricWithMetadata>,
    pub models: BTreeMap<String, MetricWithMetadata>,
    pub model_groups: BTreeMap<String, MetricWithMetadata>,
    pub providers: BTreeMap<String, MetricWithMetadata>,
    pub endpoints: BTreeMap<String, MetricWithMetadata>,
    pub api_keys: BTreeMap<String, KeyMetricWithMetadata>,
    pub entities: BTreeMap<String, MetricWithMetadata>,
    pub guardrails: BTreeMap<String, Value>,
}

/// One day of activity.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DailySpendData {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub metrics: SpendMetrics,
    pub breakdown: BreakdownMetrics,
}

/// The totals over every day of the answer, and its paging.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DailySpendMetadata {
    pub total_spend: f64,
    pub total_flat_cost: f64,
    pub total_ptu_hours: f64,
    pub total_prompt_tokens: i64,
    pub total_completion_tokens: i64,
    pub total_tokens: i64,
    pub total_api_requests: i64,
    pub total_successful_requests: i64,
    pub total_failed_requests: i64,
    pub total_cache_read_input_tokens: i64,
    pub total_cache_creation_input_tokens: i64,
    pub total_compression_saved_tokens: i64,
    pub total_compression_savings_spend: f64,
    pub total_prompt_caching_savings_spend: f64,
    pub total_gateway_injected_caching_savings_spend: f64,
    pub total_autorouter_savings_spend: f64,
    pub total_response_time_ms: i64,
    pub total_timed_requests: i64,
    pub page: u64,
    pub total_pages: u64,
    pub has_more: bool,
    pub api_key_limit: Option<u64>,
    pub total_api_keys: Option<u64>,
    pub entity_total_api_keys: Option<BTreeMap<String, u64>>,
}

impl DailySpendMetadata {
    /// The totals `t`, on page `page` of `total_pages`.
    pub fn new(t: &DailyMetrics, page: u64, total_pages: u64, has_more: bool) -> Self {
        DailySpendMetadata {
            total_spend: t.spend.as_usd(),
            total_flat_cost: 0.0,
            total_ptu_hours: 0.0,
            total_prompt_tokens: t.prompt_tokens,
            total_completion_tokens: t.completion_tokens,
            total_tokens: t.total_tokens(),
            total_api_requests: t.api_requests,
            total_successful_requests: t.successful_requests,
            total_failed_requests: t.failed_requests,
            total_cache_read_input_tokens: t.cache_read_input_tokens,
            total_cache_creation_input_tokens: t.cache_creation_input_tokens,
            total_compression_saved_tokens: 0,
            total_compression_savings_spend: 0.0,
            total_prompt_caching_savings_spend: 0.0,
            total_gateway_injected_caching_savings_spend: 0.0,
            total_autorouter_savings_spend: 0.0,
            total_response_time_ms: t.total_response_time_ms,
            total_timed_requests: t.api_requests,
            page,
            total_pages,
            has_more,
            api_key_limit: None,
            total_api_keys: None,
            entity_total_api_keys: None,
        }
    }
}

/// `GET /{user,team,organization,tag,customer}/daily/activity`: per-day spend with breakdowns.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpendAnalyticsPaginatedResponse {
    pub results: Vec<DailySpendData>,
    pub metadata: DailySpendMetadata,
}

/// One spend-log row: LiteLLM's `LiteLLM_SpendLogs` with the columns LiteLLM's rows carry.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LiteLLM_SpendLogs)]
pub struct SpendLog {
    pub request_id: String,
    pub call_type: String,
    pub api_key: String,
    pub spend: f64,
    pub total_tokens: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
    #[serde(rename = "startTime")]
    pub start_time: String,
    #[serde(rename = "endTime")]
    pub end_time: String,
    #[serde(rename = "completionStartTime")]
    pub completion_start_time: Option<String>,
    pub request_duration_ms: Option<i64>,
    pub model: String,
    pub model_id: String,
    pub model_group: String,
    pub custom_llm_provider: String,
    pub api_base: String,
    pub user: String,
    pub metadata: Value,
    pub cache_hit: String,
    pub cache_key: String,
    pub request_tags: Value,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
    pub end_user: String,
    pub requester_ip_address: Option<String>,
    pub session_id: Option<String>,
    pub status: String,
    pub endpoint: String,
    /// Not stored (LiteLLM stores them only with `store_prompts_in_spend_logs`).
    pub messages: Map<String, Value>,
    pub response: Map<String, Value>,
    pub proxy_server_request: Map<String, Value>,
}

impl SpendLog {
    pub fn new(row: &SpendLogRow) -> SpendLog {
        let time = bursar_core::time::format_ms;
        SpendLog {
            // LiteLLM's request id is the answer's id; the call id stays in the metadata.
            request_id: row
                .response_id
                .clone()
                .unwrap_or_else(|| row.request_id.clone()),
            call_type: row.call_type.clone(),
            api_key: row.api_key.clone(),
            spend: row.spend.as_usd(),
            total_tokens: row.total_tokens,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            cache_read_input_tokens: row.cache_read_input_tokens,
            cache_creation_input_tokens: row.cache_creation_input_tokens,
            start_time: time(row.start_time),
            end_time: time(row.end_time),
            completion_start_time: row.completion_start_time.map(time),
            request_duration_ms: row.request_duration_ms,
            model: row.model.clone(),
            model_id: row.model_id.clone(),
            model_group: row.model_group.clone(),
            custom_llm_provider: row.custom_llm_provider.clone(),
            api_base: row.api_base.clone(),
            user: row.user_id.clone().unwrap_or_default(),
            metadata: row.metadata.clone(),
            cache_hit: row.cache_hit.clone(),
            cache_key: "Cache OFF".into(),
            request_tags: row.request_tags.clone(),
            team_id: row.team_id.clone(),
            organization_id: row.organization_id.clone(),
            end_user: row.end_user.clone().unwrap_or_default(),
            requester_ip_address: row.requester_ip_address.clone(),
            session_id: row.session_id.clone(),
            status: row.status.clone(),
            endpoint: row.endpoint.clone(),
            messages: Map::new(),
            response: Map::new(),
            proxy_server_request: Map::new(),
        }
    }
}

/// One day of the `/spend/logs` summary: its total, its spend per user and model, and (as
/// LiteLLM writes them) one field per key hash with that key's spend.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpendLogsDay {
    #[serde(rename = "startTime")]
    pub start_time: String,
    pub spend: f64,
    pub users: BTreeMap<String, f64>,
    pub models: BTreeMap<String, f64>,
    #[serde(flatten)]
    pub api_keys: BTreeMap<String, f64>,
}

/// `GET /spend/logs`: spend-log rows, or with a date range and `summarize` one entry per day.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SpendLogsEntry {
    Log(Box<SpendLog>),
    Day(SpendLogsDay),
}

/// `GET /spend/logs/v2`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpendLogsPage {
    pub data: Vec<SpendLog>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    pub total_pages: u64,
}

/// One row of `/global/spend/keys`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GlobalKeySpend {
    pub api_key: String,
    pub key_alias: Option<String>,
    pub key_name: Option<String>,
    pub total_spend: f64,
}

/// One row of `/global/spend/models`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GlobalModelSpend {
    pub model: String,
    pub total_spend: f64,
    pub total_tokens: i64,
}

/// One of the ten teams that spent most, in `/global/spend/teams`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TeamTotalSpend {
    pub team_id: String,
    pub team_alias: String,
    pub total_spend: f64,
}

/// `GET /global/spend/teams`: each day's spend per team alias, the aliases, and the top ten.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GlobalTeamSpend {
    /// `{date, <team alias>: spend, …}` per day.
    pub daily_spend: Vec<Map<String, Value>>,
    pub teams: Vec<String>,
    pub total_spend_per_team: Vec<TeamTotalSpend>,
}

/// A model's share of a key's spend in `/global/spend/report?group_by=api_key`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelCost {
    pub model: String,
    pub total_cost: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// A key's spend in `/global/spend/report?group_by=api_key`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyCostReport {
    pub api_key: String,
    pub total_cost: f64,
    pub total_input_tokens: i64,
    pub total_output_tokens: i64,
    pub model_details: Vec<ModelCost>,
}

/// A model and key's share of a group's spend in `/global/spend/report`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupDetail {
    pub model: String,
    pub api_key: String,
    pub spend: f64,
    pub total_tokens: i64,
}

/// A team's or customer's spend on one day of `/global/spend/report`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupSpend {
    /// The team (`group_by=team`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_name: Option<String>,
    /// The customer (`group_by=customer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    pub total_spend: f64,
    pub metadata: Vec<GroupDetail>,
}

/// One day of `/global/spend/report` by team or customer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupDay {
    pub group_by_day: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teams: Option<Vec<GroupSpend>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customers: Option<Vec<GroupSpend>>,
}

/// `GET /global/spend/report`: per key, or per day and team or customer.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SpendReportEntry {
    Key(KeyCostReport),
    Day(GroupDay),
}

/// A key's totals over a range (LiteLLM's `KeySpendMetrics`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeySpendMetrics {
    pub spend: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub api_requests: i64,
    pub successful_requests: i64,
    pub failed_requests: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
}

impl KeySpendMetrics {
    pub fn new(m: &DailyMetrics) -> KeySpendMetrics {
        KeySpendMetrics {
            spend: m.spend.as_usd(),
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
            total_tokens: m.total_tokens(),
            api_requests: m.api_requests,
            successful_requests: m.successful_requests,
            failed_requests: m.failed_requests,
            cache_read_input_tokens: m.cache_read_input_tokens,
            cache_creation_input_tokens: m.cache_creation_input_tokens,
        }
    }
}

/// A key and its totals over a range.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeySpendActivityRow {
    pub api_key: String,
    pub metrics: KeySpendMetrics,
    pub metadata: KeyMetadata,
}

/// A key and its full metrics over a range (`…/aggregated/search`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyActivityRow {
    pub api_key: String,
    pub metrics: SpendMetrics,
    pub metadata: KeyMetadata,
}

/// `…/daily/activity/aggregated/keys`: keys by spend, paged.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DailyActivityKeyPageResponse {
    pub api_keys: Vec<KeySpendActivityRow>,
    pub total_api_keys: usize,
    pub offset: usize,
    pub limit: usize,
}

/// `…/daily/activity/aggregated/search`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DailyActivityKeySearchResponse {
    pub api_keys: Vec<KeyActivityRow>,
}

/// `…/daily/activity/aggregated/model_top_keys`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelTopKeysResponse {
    pub model: String,
    pub by_model_group: bool,
    pub api_keys: Vec<KeySpendActivityRow>,
}

/// `/user/daily/activity/aggregated/cache_leakage_keys`: keys sending the most prompt tokens
/// that were not read from a prompt cache.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CacheLeakageKeysResponse {
    pub api_keys: Vec<KeySpendActivityRow>,
}

/// A user's totals over a range.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserActivityRow {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    pub spend: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub api_requests: i64,
    pub successful_requests: i64,
    pub failed_requests: i64,
}

/// `/user/daily/activity/aggregated/users`: users by spend, paged.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DailyActivityUserPageResponse {
    pub users: Vec<UserActivityRow>,
    pub total_users: usize,
    pub offset: usize,
    pub limit: usize,
}

/// A team member's totals over a range.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TeamUserSpendRow {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub user_id: String,
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    pub spend: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub api_requests: i64,
    pub successful_requests: i64,
    pub failed_requests: i64,
}

/// `GET /team/spend/by_user`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TeamUserSpendResponse {
    pub start_date: String,
    pub end_date: String,
    pub results: Vec<TeamUserSpendRow>,
}

/// One row of a daily-activity export (CSV columns, JSON fields).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExportRow {
    pub date: String,
    pub entity_id: String,
    pub entity_alias: Option<String>,
    pub api_key: Option<String>,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub model: Option<String>,
    pub spend: f64,
    pub flat_cost: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub api_requests: i64,
    pub successful_requests: i64,
    pub failed_requests: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
}
