//! The raw shape of LiteLLM's `config.yaml`, as written by users. Only fields Bursar uses are
//! typed; everything else is collected by `serde_ignored` and reported as a warning.

use super::flex;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub model_list: Option<Vec<Value>>,
    #[serde(default)]
    pub general_settings: Option<Value>,
    #[serde(default)]
    pub litellm_settings: Option<Value>,
    #[serde(default)]
    pub router_settings: Option<Value>,
    /// Read before typing (it feeds `os.environ/` resolution); typed here so it is not
    /// reported as an unknown key.
    #[serde(default)]
    #[allow(dead_code)]
    pub environment_variables: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawGeneralSettings {
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub master_key: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub database_url: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub database_connection_pool_limit: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub max_request_size_mb: Option<f64>,
    /// Bursar: the body cap of management routes, in MB (default 2).
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub max_management_request_size_mb: Option<f64>,
    /// Bursar: output tokens assumed for requests without `max_tokens` when estimating cost.
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub default_output_tokens_estimate: Option<u64>,
    /// `litellm` (default) or `strict`.
    pub budget_admission: Option<String>,
    /// The team metadata fields the UI offers (`[{key, label}]`).
    #[serde(default)]
    pub team_metadata_schema: Option<serde_json::Value>,
    /// Bursar: seconds a client has to send a request's headers.
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub request_header_timeout: Option<f64>,
    /// Bursar: seconds a client has to send a request's body.
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub request_body_timeout: Option<f64>,
    /// Seconds an idle keep-alive connection stays open (env `KEEPALIVE_TIMEOUT`); Bursar
    /// uses the smaller of it and `request_header_timeout` for every idle connection.
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub keepalive_timeout: Option<f64>,
    /// Bursar: open connections at most; more are refused with a 503.
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub max_connections: Option<u64>,
    /// Seconds shutdown waits for in-flight requests (env `GRACEFUL_SHUTDOWN_TIMEOUT`).
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub graceful_shutdown_timeout: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub proxy_budget_rescheduler_min_time: Option<u64>,
    /// Seconds between spend-ledger flushes (LiteLLM's name; Bursar's default is shorter).
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub proxy_batch_write_at: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub disable_spend_logs: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub use_x_forwarded_for: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub allow_requests_on_db_unavailable: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub disable_spend_updates: Option<bool>,
    /// Bursar: flush the ledger after this many events.
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub spend_batch_size: Option<u64>,
    /// Bursar: flush the ledger at least this often (milliseconds; wins over
    /// `proxy_batch_write_at`).
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub spend_flush_interval_ms: Option<u64>,
    /// Bursar: events held in memory while the database is unavailable, before spooling.
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub spend_buffer_events: Option<u64>,
    /// Bursar: the file unwritten spend events are spooled to.
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub spend_spool_path: Option<String>,
    /// LiteLLM's Redis connection settings (also read from `litellm_settings` and
    /// `router_settings`, then from `REDIS_URL` / `REDIS_HOST` / `REDIS_PORT` /
    /// `REDIS_PASSWORD` / `REDIS_USERNAME` / `REDIS_SSL`).
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_url: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_host: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub redis_port: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_password: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_username: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub redis_ssl: Option<bool>,
    /// Bursar: `fail_closed` (default) or `fail_open` when Redis is unreachable.
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_fail_mode: Option<String>,
    /// Bursar: the hash tag of every key (keeps deployments sharing a Redis apart).
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_namespace: Option<String>,
    /// Bursar: the longest one Redis operation may take, in milliseconds.
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub redis_timeout_ms: Option<u64>,
    /// Bursar: a price file in LiteLLM's `model_prices_and_context_window.json` format whose
    /// entries win over the shipped table.
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub model_cost_map_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLitellmSettings {
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub request_timeout: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub num_retries: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub drop_params: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub set_verbose: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub json_logs: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub store_audit_logs: Option<bool>,
    #[serde(default)]
    pub default_internal_user_params: Option<RawInternalUserParams>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub max_internal_user_budget: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub internal_user_budget_duration: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub budget_exceeded_status_code: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub max_end_user_budget: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub max_end_user_budget_id: Option<String>,
    /// LiteLLM's Redis connection settings (also read from `litellm_settings` and
    /// `router_settings`, then from `REDIS_URL` / `REDIS_HOST` / `REDIS_PORT` /
    /// `REDIS_PASSWORD` / `REDIS_USERNAME` / `REDIS_SSL`).
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_url: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_host: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub redis_port: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_password: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_username: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub redis_ssl: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawInternalUserParams {
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub user_role: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub max_budget: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub budget_duration: Option<String>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Teams internal users may join themselves (`/team/available`, self-join via member_add).
    #[serde(default)]
    pub available_teams: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRouterSettings {
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub routing_strategy: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub num_retries: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub timeout: Option<f64>,
    /// LiteLLM's Redis connection settings (also read from `litellm_settings` and
    /// `router_settings`, then from `REDIS_URL` / `REDIS_HOST` / `REDIS_PORT` /
    /// `REDIS_PASSWORD` / `REDIS_USERNAME` / `REDIS_SSL`).
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_url: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_host: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub redis_port: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_password: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub redis_username: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub redis_ssl: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct RawModel {
    pub model_name: String,
    pub litellm_params: RawLitellmParams,
    #[serde(default)]
    pub model_info: Option<RawModelInfo>,
}

#[derive(Debug, Deserialize)]
pub struct RawLitellmParams {
    pub model: String,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub rpm: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub tpm: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub timeout: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub stream_timeout: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_u32")]
    pub max_retries: Option<u32>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub weight: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub input_cost_per_token: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub output_cost_per_token: Option<f64>,
    /// Everything else: the provider's own settings, read by its adapter.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawModelInfo {
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub mode: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub input_cost_per_token: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub output_cost_per_token: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub cache_read_input_token_cost: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_f64")]
    pub cache_creation_input_token_cost: Option<f64>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub max_tokens: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub max_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_u64")]
    pub max_output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_string")]
    pub base_model: Option<String>,
    #[serde(default)]
    pub access_groups: Option<Vec<String>>,
}
