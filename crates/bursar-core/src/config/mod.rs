//! LiteLLM's `config.yaml`: raw YAML → `os.environ/` resolution → typed, validated [`Config`].
//!
//! Loading never stops at the first mistake: every problem (bad type, missing variable, unknown
//! provider, duplicate id) is collected so `bursar check-config` can print them all. Keys Bursar
//! does not know are warnings, never errors, so LiteLLM configs load unchanged.

mod env;
mod flex;
mod provider;
mod raw;
mod redis;

pub use env::{ENV_PREFIX, MissingEnv, resolve_env_refs};
pub use provider::{ModelNameError, ProviderParams, parse_model};

pub use redis::RedisSettings;

use crate::keys::{KEY_PREFIX, Secret};
use crate::pricing::PriceTable;
use raw::{
    RawConfig, RawGeneralSettings, RawLitellmParams, RawLitellmSettings, RawModel,
    RawRouterSettings,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Default cap on request bodies (LiteLLM has no cap unless `max_request_size_mb` is set;
/// Bursar keeps one so a single client cannot exhaust memory).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// Default cap on management request bodies.
pub const DEFAULT_MAX_MANAGEMENT_REQUEST_BYTES: usize = 2 * 1024 * 1024;
/// Default upstream timeout when neither the deployment nor the settings give one.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// One thing wrong with a config file, located by its path in the YAML tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// What kind of calls a model serves (`model_info.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelMode {
    Chat,
    Completion,
    Embedding,
}

impl ModelMode {
    fn parse(s: &str) -> Option<ModelMode> {
        match s {
            "chat" => Some(ModelMode::Chat),
            "completion" => Some(ModelMode::Completion),
            "embedding" => Some(ModelMode::Embedding),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ModelMode::Chat => "chat",
            ModelMode::Completion => "completion",
            ModelMode::Embedding => "embedding",
        }
    }
}

/// One entry of `model_list`: a concrete upstream that serves a public model name.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// `model_info.id`, or a stable hash of the entry when none is given.
    pub id: String,
    /// The public name clients send as `model`.
    pub model_name: String,
    /// `litellm_params.model` as written (`openai/gpt-4o`).
    pub litellm_model: String,
    /// LiteLLM's `custom_llm_provider`: the prefix of `litellm_params.model` (`openai`).
    pub provider: String,
    /// The model name after the provider prefix (`gpt-4o`).
    pub upstream_model: String,
    /// Where the entry came from, for error messages (`model_list[2]`).
    pub source: String,
    /// The provider's own settings (`api_base`, `api_key`, `api_version`, credentials…),
    /// read by its adapter in `bursar-providers`.
    pub params: ProviderParams,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub timeout: Option<Duration>,
    pub stream_timeout: Option<Duration>,
    pub max_retries: Option<u32>,
    pub weight: Option<f64>,
    pub mode: Option<ModelMode>,
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    /// `model_info.cache_read_input_token_cost` / `cache_creation_input_token_cost`.
    pub cache_read_cost_per_token: Option<f64>,
    pub cache_write_cost_per_token: Option<f64>,
    pub max_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    /// `model_info.base_model`: the model whose prices apply when the name is custom.
    pub base_model: Option<String>,
    pub access_groups: Vec<String>,
    /// The user's price file (`general_settings.model_cost_map_path`), consulted before
    /// the shipped table.
    pub price_table: Option<Arc<PriceTable>>,
    /// [`Deployment::price`], worked out on first use: the fields above do not change
    /// once the config is loaded, and the data plane asks on every request.
    price: OnceLock<crate::pricing::Price>,
}

impl Deployment {
    /// Names the model the provider really serves (an adapter's normalised id): prices are
    /// looked up by it from now on.
    pub fn set_upstream_model(&mut self, model: &str) {
        self.upstream_model = model.to_string();
        self.price = OnceLock::new();
    }

    /// What this deployment charges: its own `input_cost_per_token` / `output_cost_per_token`
    /// (and cache prices) where set, else the user's price file, else the shipped price list
    /// (each by `base_model`, the LiteLLM model name, then the upstream name), else free —
    /// LiteLLM also records 0 for a model it cannot price.
    pub fn price(&self) -> crate::pricing::Price {
        *self.price.get_or_init(|| self.listed_price())
    }

    fn listed_price(&self) -> crate::pricing::Price {
        let names = [
            self.base_model.as_deref(),
            Some(self.litellm_model.as_str()),
            Some(self.upstream_model.as_str()),
        ];
        let tables = [self.price_table.as_deref(), Some(PriceTable::builtin())];
        let listed = tables
            .into_iter()
            .flatten()
            .find_map(|t| names.into_iter().flatten().find_map(|n| t.price(n)));
        let base = listed.unwrap_or(crate::pricing::Price::FREE);
        crate::pricing::Price {
            input_per_token: self.input_cost_per_token.unwrap_or(base.input_per_token),
            output_per_token: self.output_cost_per_token.unwrap_or(base.output_per_token),
            cache_read_per_token: self.cache_read_cost_per_token.or(base.cache_read_per_token),
            cache_write_per_token: self
                .cache_write_cost_per_token
                .or(base.cache_write_per_token),
            max_output_tokens: self.max_tokens.or(base.max_output_tokens),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GeneralSettings {
    pub master_key: Option<Secret>,
    pub database_url: Option<String>,
    pub database_connection_pool_limit: Option<u32>,
    pub max_request_bytes: usize,
    /// The body cap of management routes (`general_settings.max_management_request_size_mb`):
    /// smaller than the data plane's, since a management body's lists all reach the store.
    pub max_management_request_bytes: usize,
    /// `use_x_forwarded_for`: a request's client address (in its spend log) is the first
    /// address of `X-Forwarded-For` instead of the connection's peer.
    pub use_x_forwarded_for: bool,
    /// `allow_requests_on_db_unavailable`: while the database is unreachable, a key that is
    /// not cached is let through as an unlimited internal user (LiteLLM's fallback identity)
    /// instead of refused with 503.
    pub allow_requests_on_db_unavailable: bool,
    /// `team_metadata_schema`: the team metadata fields `/team/metadata_schema` declares
    /// (advisory: the UI's form, not a check).
    pub team_metadata_schema: Vec<TeamMetadataField>,
}

/// One declared team metadata field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamMetadataField {
    pub key: String,
    #[serde(default)]
    pub label: Option<String>,
}

/// `general_settings.team_metadata_schema`: a list of `{key, label?}` with distinct, non-empty
/// keys.
fn team_metadata_schema(raw: &serde_json::Value) -> Result<Vec<TeamMetadataField>, String> {
    let fields: Vec<TeamMetadataField> = serde_json::from_value(raw.clone())
        .map_err(|e| format!("must be a list of {{key, label}} entries: {e}"))?;
    if fields.iter().any(|f| f.key.is_empty()) {
        return Err("every entry needs a non-empty key".into());
    }
    let mut keys: Vec<&str> = fields.iter().map(|f| f.key.as_str()).collect();
    keys.sort_unstable();
    let mut duplicates: Vec<&str> = keys
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    duplicates.dedup();
    if !duplicates.is_empty() {
        return Err(format!(
            "contains duplicate keys: {}",
            duplicates.join(", ")
        ));
    }
    Ok(fields)
}

#[derive(Debug, Clone)]
pub struct RouterSettings {
    pub routing_strategy: String,
    /// Extra attempts on other deployments after a retryable failure.
    pub num_retries: u32,
    /// Default upstream timeout.
    pub timeout: Duration,
}

/// Defaults for users created through `/user/new` (LiteLLM's `default_internal_user_params`,
/// `max_internal_user_budget`, `internal_user_budget_duration`).
#[derive(Debug, Clone, Default)]
pub struct InternalUserDefaults {
    pub user_role: Option<crate::roles::UserRole>,
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    pub models: Option<Vec<String>>,
    pub available_teams: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub models: Vec<Deployment>,
    pub general: GeneralSettings,
    pub router: RouterSettings,
    pub drop_params: bool,
    pub json_logs: bool,
    /// `litellm_settings.store_audit_logs`: write an audit row for every management change.
    pub store_audit_logs: bool,
    pub internal_user_defaults: InternalUserDefaults,
    /// Default grace period of `/key/regenerate` (env `LITELLM_KEY_ROTATION_GRACE_PERIOD`).
    pub key_rotation_grace_period: Option<crate::duration::BudgetDuration>,
    pub admission: AdmissionSettings,
    pub ledger: LedgerSettings,
    /// Shared counters and invalidations for several instances (`None`: one instance).
    pub redis: Option<RedisSettings>,
    pub connections: ConnectionSettings,
    /// `environment_variables`: names provider adapters look up before the process
    /// environment (`AZURE_API_KEY`, `AWS_REGION_NAME`…), as LiteLLM copies them into it.
    pub environment: Vec<(String, Secret)>,
}

/// How the listener treats connections: what a slow or idle client may hold, how many may
/// be open, and how long shutdown waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// A connection idle this long without a complete request head is closed: before its
    /// first byte, while trickling headers, and between keep-alive requests.
    pub header_read_timeout: Duration,
    /// A request body must arrive within this (else 408).
    pub body_read_timeout: Duration,
    /// Open connections at most (`None`: derived from the file-descriptor limit).
    pub max_connections: Option<usize>,
    /// Shutdown lets in-flight requests finish for this long; streams still open then end
    /// with an error frame and are charged.
    pub drain_timeout: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            max_connections: None,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// How spend events reach the database (the ledger writer).
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// Flush after this many events (`general_settings.spend_batch_size`).
    pub batch_size: usize,
    /// Flush at least this often (`spend_flush_interval_ms`, or `proxy_batch_write_at` s).
    pub flush_interval: Duration,
    /// Events held in memory while the database is unavailable; beyond this they are
    /// spooled to [`LedgerSettings::spool_path`] (`spend_buffer_events`).
    pub buffer_events: usize,
    /// Where unwritten events are spooled (`spend_spool_path`); `None` puts the spool next
    /// to a SQLite database, or `bursar-spend.spool` in the working directory.
    pub spool_path: Option<std::path::PathBuf>,
    /// `disable_spend_logs`: keep no spend-log rows (entity spend and daily tables still
    /// count).
    pub disable_spend_logs: bool,
    /// `disable_spend_updates`: write spend-log rows only, no entity or daily totals.
    pub disable_spend_updates: bool,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings {
            batch_size: 500,
            flush_interval: Duration::from_millis(500),
            buffer_events: 100_000,
            spool_path: None,
            disable_spend_logs: false,
            disable_spend_updates: false,
        }
    }
}

/// How requests are admitted against budgets and limits.
#[derive(Debug, Clone)]
pub struct AdmissionSettings {
    /// HTTP status of a budget refusal (`litellm_settings.budget_exceeded_status_code`;
    /// LiteLLM's newest default is 422).
    pub budget_exceeded_status: u16,
    /// Output tokens assumed for a request without `max_tokens`
    /// (`general_settings.default_output_tokens_estimate`).
    pub default_output_tokens: u64,
    /// How a budget admits a request (`general_settings.budget_admission`).
    pub budget_admission: BudgetAdmission,
    /// The budget of an end user that has no budget row of its own
    /// (`litellm_settings.max_end_user_budget`).
    pub max_end_user_budget: Option<crate::money::NanoUsd>,
    /// The budget row given to end users first seen on a request
    /// (`litellm_settings.max_end_user_budget_id`).
    pub max_end_user_budget_id: Option<String>,
    /// How often stored spend is reset for budgets whose period ended
    /// (`general_settings.proxy_budget_rescheduler_min_time`, seconds).
    pub reset_interval: std::time::Duration,
}

/// How a budget admits a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BudgetAdmission {
    /// LiteLLM's rule: admitted while any budget remains, holding at most what remains (so
    /// concurrent requests cannot all pass); refused once spend reaches the budget. The
    /// request that crosses the line may overspend by its own cost.
    #[default]
    Litellm,
    /// Bursar's guarantee: admitted only when its worst case fits, counted with a prompt
    /// bound no tokenizer exceeds and `max_tokens` (set when absent), so spend never exceeds
    /// the budget.
    Strict,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            budget_exceeded_status: 422,
            default_output_tokens: 256,
            budget_admission: BudgetAdmission::Litellm,
            max_end_user_budget: None,
            max_end_user_budget_id: None,
            reset_interval: std::time::Duration::from_secs(10),
        }
    }
}

/// A loaded config plus the warnings worth printing.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            models: Vec::new(),
            general: GeneralSettings {
                master_key: None,
                database_url: None,
                database_connection_pool_limit: None,
                max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
                max_management_request_bytes: DEFAULT_MAX_MANAGEMENT_REQUEST_BYTES,
                use_x_forwarded_for: false,
                allow_requests_on_db_unavailable: false,
                team_metadata_schema: Vec::new(),
            },
            router: RouterSettings {
                routing_strategy: "simple-shuffle".to_string(),
                num_retries: 0,
                timeout: DEFAULT_REQUEST_TIMEOUT,
            },
            drop_params: false,
            json_logs: false,
            store_audit_logs: false,
            internal_user_defaults: InternalUserDefaults::default(),
            key_rotation_grace_period: None,
            admission: AdmissionSettings::default(),
            ledger: LedgerSettings::default(),
            redis: None,
            connections: ConnectionSettings::default(),
            environment: Vec::new(),
        }
    }
}

/// The name and provider model of the built-in demo model.
pub const DEMO_MODEL_NAME: &str = "demo";
pub const DEMO_LITELLM_MODEL: &str = "bursar/demo";

impl Config {
    /// Adds the built-in demo model unless a model with that public name already exists.
    pub fn add_demo_model(&mut self) {
        if self.models.iter().any(|m| m.model_name == DEMO_MODEL_NAME) {
            return;
        }
        self.models.push(Deployment {
            id: "bursar-demo".to_string(),
            model_name: DEMO_MODEL_NAME.to_string(),
            litellm_model: DEMO_LITELLM_MODEL.to_string(),
            provider: "bursar".to_string(),
            upstream_model: "demo".to_string(),
            source: "demo".to_string(),
            params: ProviderParams::default(),
            rpm: None,
            tpm: None,
            timeout: None,
            stream_timeout: None,
            max_retries: None,
            weight: None,
            mode: Some(ModelMode::Chat),
            input_cost_per_token: Some(0.0),
            output_cost_per_token: Some(0.0),
            cache_read_cost_per_token: None,
            cache_write_cost_per_token: None,
            max_tokens: None,
            max_input_tokens: None,
            base_model: None,
            access_groups: Vec::new(),
            price_table: None,
            price: OnceLock::new(),
        });
    }
}

/// Parses and validates a config file. `lookup` reads environment variables (the process
/// environment in production, a map in tests).
pub fn load(
    yaml: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Vec<ConfigProblem>> {
    let (loaded, problems) = load_all(yaml, lookup);
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(problems)
    }
}

/// Like [`load`], but also returns what could be read despite problems (entries with a
/// problem of their own left out), so later checks can add theirs to the same report.
pub fn load_all(
    yaml: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> (Loaded, Vec<ConfigProblem>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();

    let mut tree: Value = if yaml.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_norway::from_str(yaml) {
            Ok(Value::Null) => Value::Object(Default::default()),
            Ok(v) => v,
            Err(e) => {
                return (
                    Loaded::default(),
                    vec![ConfigProblem {
                        path: String::new(),
                        message: format!("not valid YAML: {e}"),
                    }],
                );
            }
        }
    };
    if !tree.is_object() {
        return (
            Loaded::default(),
            vec![ConfigProblem {
                path: String::new(),
                message:
                    "the config must be a mapping with keys such as model_list and general_settings"
                        .into(),
            }],
        );
    }

    // environment_variables: literal values that take precedence over the process environment.
    let mut config_env: Vec<(String, String)> = Vec::new();
    if let Some(Value::Object(vars)) = tree.get("environment_variables") {
        for (name, value) in vars {
            match value {
                Value::String(s) => config_env.push((name.clone(), s.clone())),
                Value::Number(n) => config_env.push((name.clone(), n.to_string())),
                Value::Bool(b) => config_env.push((name.clone(), b.to_string())),
                _ => problems.push(ConfigProblem {
                    path: format!("environment_variables.{name}"),
                    message: "expected a string value".into(),
                }),
            }
        }
    }
    let combined = |name: &str| -> Option<String> {
        config_env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| lookup(name))
    };
    for missing in resolve_env_refs(&mut tree, &combined) {
        if missing.path.starts_with("environment_variables") {
            continue;
        }
        problems.push(ConfigProblem {
            path: missing.path,
            message: format!("environment variable {} is not set", missing.name),
        });
    }

    let raw: RawConfig = typed(tree, "", &mut problems, &mut warnings).unwrap_or_default();
    let general: RawGeneralSettings = section(
        raw.general_settings,
        "general_settings",
        &mut problems,
        &mut warnings,
    );
    let litellm: RawLitellmSettings = section(
        raw.litellm_settings,
        "litellm_settings",
        &mut problems,
        &mut warnings,
    );
    let router: RawRouterSettings = section(
        raw.router_settings,
        "router_settings",
        &mut problems,
        &mut warnings,
    );

    let mut config = Config {
        environment: config_env
            .iter()
            .map(|(name, value)| (name.clone(), Secret::new(value.clone())))
            .collect(),
        ..Config::default()
    };

    // Master key: config first, then LITELLM_MASTER_KEY.
    let master_key = general
        .master_key
        .clone()
        .or_else(|| lookup("LITELLM_MASTER_KEY"));
    if let Some(key) = master_key {
        if !key.starts_with(KEY_PREFIX) {
            problems.push(ConfigProblem {
                path: "general_settings.master_key".into(),
                message: "the master key must start with 'sk-'".into(),
            });
        } else {
            config.general.master_key = Some(Secret::new(key));
        }
    }
    config.general.database_url = general.database_url.clone();
    config.general.database_connection_pool_limit = general.database_connection_pool_limit;
    config.general.use_x_forwarded_for = general.use_x_forwarded_for.unwrap_or(false);
    config.general.allow_requests_on_db_unavailable =
        general.allow_requests_on_db_unavailable.unwrap_or(false);
    match general
        .team_metadata_schema
        .as_ref()
        .filter(|v| !v.is_null())
    {
        None => {}
        Some(raw) => match team_metadata_schema(raw) {
            Ok(fields) => config.general.team_metadata_schema = fields,
            Err(message) => problems.push(ConfigProblem {
                path: "general_settings.team_metadata_schema".into(),
                message,
            }),
        },
    }
    if let Some(mb) = general.max_request_size_mb {
        if mb <= 0.0 {
            problems.push(ConfigProblem {
                path: "general_settings.max_request_size_mb".into(),
                message: "must be greater than 0".into(),
            });
        } else {
            config.general.max_request_bytes = (mb * 1024.0 * 1024.0) as usize;
        }
    }
    if let Some(mb) = general.max_management_request_size_mb {
        if mb <= 0.0 {
            problems.push(ConfigProblem {
                path: "general_settings.max_management_request_size_mb".into(),
                message: "must be greater than 0".into(),
            });
        } else {
            config.general.max_management_request_bytes = (mb * 1024.0 * 1024.0) as usize;
        }
    }
    // Never above the general cap.
    config.general.max_management_request_bytes = config
        .general
        .max_management_request_bytes
        .min(config.general.max_request_bytes);

    match general.proxy_budget_rescheduler_min_time {
        Some(0) => problems.push(ConfigProblem {
            path: "general_settings.proxy_budget_rescheduler_min_time".into(),
            message: "must be at least 1 second".into(),
        }),
        Some(secs) => config.admission.reset_interval = std::time::Duration::from_secs(secs),
        None => {}
    }
    load_ledger(&general, &mut config.ledger, &mut problems);
    config.redis = redis::load(&general, &litellm, &router, &combined, &mut problems);
    let price_table = general.model_cost_map_path.as_deref().and_then(|path| {
        let problem = |message: String| ConfigProblem {
            path: "general_settings.model_cost_map_path".into(),
            message,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => match PriceTable::from_litellm_json(&text) {
                Ok(table) => Some(Arc::new(table)),
                Err(e) => {
                    problems.push(problem(format!("{path}: {e}")));
                    None
                }
            },
            Err(e) => {
                problems.push(problem(format!("cannot read {path}: {e}")));
                None
            }
        }
    });
    if let Some(tokens) = general.default_output_tokens_estimate {
        config.admission.default_output_tokens = tokens;
    }
    let positive_seconds =
        |path: &str, value: Option<f64>, env: Option<&str>, problems: &mut Vec<ConfigProblem>| {
            let value = value.or_else(|| env.and_then(|name| lookup(name)?.trim().parse().ok()))?;
            if value.is_finite() && value > 0.0 && value < 1e9 {
                Some(Duration::from_secs_f64(value))
            } else {
                problems.push(ConfigProblem {
                    path: format!("general_settings.{path}"),
                    message: "must be a positive number of seconds".into(),
                });
                None
            }
        };
    let c = &mut config.connections;
    if let Some(d) = positive_seconds(
        "request_header_timeout",
        general.request_header_timeout,
        None,
        &mut problems,
    ) {
        c.header_read_timeout = d;
    }
    if let Some(d) = positive_seconds(
        "request_body_timeout",
        general.request_body_timeout,
        None,
        &mut problems,
    ) {
        c.body_read_timeout = d;
    }
    if let Some(d) = positive_seconds(
        "keepalive_timeout",
        general.keepalive_timeout,
        Some("KEEPALIVE_TIMEOUT"),
        &mut problems,
    ) {
        // One idle limit serves both (see ConnectionSettings::header_read_timeout).
        c.header_read_timeout = c.header_read_timeout.min(d);
    }
    if let Some(d) = positive_seconds(
        "graceful_shutdown_timeout",
        general.graceful_shutdown_timeout,
        Some("GRACEFUL_SHUTDOWN_TIMEOUT"),
        &mut problems,
    ) {
        c.drain_timeout = d;
    }
    match general.max_connections {
        Some(0) => problems.push(ConfigProblem {
            path: "general_settings.max_connections".into(),
            message: "must be at least 1".into(),
        }),
        Some(n) => c.max_connections = Some(usize::try_from(n).unwrap_or(usize::MAX)),
        None => {}
    }
    match general.budget_admission.as_deref() {
        None | Some("litellm") => {}
        Some("strict") => config.admission.budget_admission = BudgetAdmission::Strict,
        Some(other) => problems.push(ConfigProblem {
            path: "general_settings.budget_admission".into(),
            message: format!("{other:?} is not a budget admission rule: use litellm or strict"),
        }),
    }
    match litellm.budget_exceeded_status_code {
        Some(code @ 400..=599) => config.admission.budget_exceeded_status = code as u16,
        Some(_) => problems.push(ConfigProblem {
            path: "litellm_settings.budget_exceeded_status_code".into(),
            message: "must be an HTTP error status (400-599)".into(),
        }),
        None => {}
    }

    if let Some(usd) = litellm.max_end_user_budget {
        match crate::money::NanoUsd::from_usd(usd).filter(|_| usd >= 0.0) {
            Some(max) => config.admission.max_end_user_budget = Some(max),
            None => problems.push(ConfigProblem {
                path: "litellm_settings.max_end_user_budget".into(),
                message: "must be a non-negative amount of USD".into(),
            }),
        }
    }
    config.admission.max_end_user_budget_id = litellm
        .max_end_user_budget_id
        .filter(|id| !id.trim().is_empty());

    if let Some(strategy) = router.routing_strategy
        && strategy != "simple-shuffle"
    {
        warnings.push(format!(
                "router_settings.routing_strategy: {strategy:?} is not implemented yet; using simple-shuffle"
            ));
    }
    config.router.num_retries = router.num_retries.or(litellm.num_retries).unwrap_or(0);
    match router.timeout.or(litellm.request_timeout).map(seconds) {
        Some(Some(t)) => config.router.timeout = t,
        Some(None) => problems.push(ConfigProblem {
            path: "litellm_settings.request_timeout".into(),
            message: "must be a positive number of seconds".into(),
        }),
        None => {}
    }
    config.drop_params = litellm.drop_params.unwrap_or(false);
    config.json_logs = litellm.json_logs.unwrap_or(false);
    config.store_audit_logs = litellm
        .store_audit_logs
        .or_else(|| {
            lookup("LITELLM_STORE_AUDIT_LOGS")
                .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
        })
        .unwrap_or(false);
    let params = litellm.default_internal_user_params.unwrap_or_default();
    let defaults = &mut config.internal_user_defaults;
    if let Some(role) = params.user_role {
        match role.parse::<crate::roles::UserRole>() {
            Ok(r) => defaults.user_role = Some(r),
            Err(e) => problems.push(ConfigProblem {
                path: "litellm_settings.default_internal_user_params.user_role".into(),
                message: e.to_string(),
            }),
        }
    }
    defaults.max_budget = params.max_budget.or(litellm.max_internal_user_budget);
    if defaults.max_budget.is_some_and(|b| b < 0.0) {
        problems.push(ConfigProblem {
            path: "litellm_settings.max_internal_user_budget".into(),
            message: "a budget cannot be negative".into(),
        });
    }
    defaults.budget_duration = params
        .budget_duration
        .or(litellm.internal_user_budget_duration);
    if let Some(d) = &defaults.budget_duration
        && let Err(e) = crate::duration::BudgetDuration::parse(d)
    {
        problems.push(ConfigProblem {
            path: "litellm_settings.internal_user_budget_duration".into(),
            message: e.to_string(),
        });
    }
    defaults.models = params.models;
    defaults.available_teams = params.available_teams.unwrap_or_default();
    if let Some(grace) =
        lookup("LITELLM_KEY_ROTATION_GRACE_PERIOD").filter(|g| !g.trim().is_empty())
    {
        match crate::duration::BudgetDuration::parse(&grace) {
            Ok(d) => config.key_rotation_grace_period = Some(d),
            Err(e) => problems.push(ConfigProblem {
                path: "LITELLM_KEY_ROTATION_GRACE_PERIOD".into(),
                message: e.to_string(),
            }),
        }
    }
    let _ = litellm.set_verbose;

    let mut seen_ids = HashSet::new();
    for (i, entry) in raw.model_list.unwrap_or_default().into_iter().enumerate() {
        let path = format!("model_list[{i}]");
        let identity = model_identity(&entry);
        let Some(raw_model) = typed::<RawModel>(entry, &path, &mut problems, &mut warnings) else {
            continue;
        };
        let explicit_id = raw_model
            .model_info
            .as_ref()
            .and_then(|i| i.id.as_ref())
            .is_some_and(|id| !id.trim().is_empty());
        if let Some(mut deployment) = build_deployment(raw_model, &path, &identity, &mut problems) {
            // Identical entries without an id are legal (LiteLLM accepts them); number them.
            if !explicit_id && seen_ids.contains(&deployment.id) {
                deployment.id = format!("{identity}-{i}");
            }
            if !seen_ids.insert(deployment.id.clone()) {
                problems.push(ConfigProblem {
                    path: format!("{path}.model_info.id"),
                    message: format!("duplicate model id {:?}", deployment.id),
                });
                continue;
            }
            deployment.price_table = price_table.clone();
            config.models.push(deployment);
        }
    }

    (Loaded { config, warnings }, problems)
}

fn load_ledger(
    general: &RawGeneralSettings,
    ledger: &mut LedgerSettings,
    problems: &mut Vec<ConfigProblem>,
) {
    let mut positive = |field: &str, value: Option<u64>| match value {
        Some(0) => {
            problems.push(ConfigProblem {
                path: format!("general_settings.{field}"),
                message: "must be at least 1".into(),
            });
            None
        }
        other => other.map(|v| usize::try_from(v).unwrap_or(usize::MAX)),
    };
    if let Some(n) = positive("spend_batch_size", general.spend_batch_size) {
        ledger.batch_size = n;
    }
    if let Some(n) = positive("spend_buffer_events", general.spend_buffer_events) {
        ledger.buffer_events = n;
    }
    if let Some(ms) = positive("spend_flush_interval_ms", general.spend_flush_interval_ms) {
        ledger.flush_interval = Duration::from_millis(ms as u64);
    } else if let Some(secs) = general.proxy_batch_write_at {
        match seconds(secs) {
            Some(d) => ledger.flush_interval = d,
            None => problems.push(ConfigProblem {
                path: "general_settings.proxy_batch_write_at".into(),
                message: "must be a positive number of seconds".into(),
            }),
        }
    }
    ledger.spool_path = general
        .spend_spool_path
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(std::path::PathBuf::from);
    ledger.disable_spend_logs = general.disable_spend_logs.unwrap_or(false);
    ledger.disable_spend_updates = general.disable_spend_updates.unwrap_or(false);
}

fn seconds(value: f64) -> Option<Duration> {
    (value > 0.0 && value.is_finite()).then(|| Duration::from_secs_f64(value))
}

/// Deserializes `value` into `T`, recording type errors as problems and unknown keys as warnings.
fn typed<T: DeserializeOwned>(
    value: Value,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
    warnings: &mut Vec<String>,
) -> Option<T> {
    let mut unknown = Vec::new();
    let result = serde_ignored::deserialize(value, |p| unknown.push(p.to_string()));
    match result {
        Ok(v) => {
            for key in unknown {
                let full = join_path(path, &key);
                warnings.push(format!("{full}: unknown or unsupported setting, ignored"));
            }
            Some(v)
        }
        Err(e) => {
            problems.push(ConfigProblem {
                path: path.to_string(),
                message: e.to_string(),
            });
            None
        }
    }
}

fn section<T: DeserializeOwned + Default>(
    value: Option<Value>,
    path: &str,
    problems: &mut Vec<ConfigProblem>,
    warnings: &mut Vec<String>,
) -> T {
    match value {
        None | Some(Value::Null) => T::default(),
        Some(v) => typed(v, path, problems, warnings).unwrap_or_default(),
    }
}

fn join_path(base: &str, rest: &str) -> String {
    match (base.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (_, true) => base.to_string(),
        _ => format!("{base}.{rest}"),
    }
}

/// A stable id for a model entry without `model_info.id`: hash of its public name and params.
/// The (unresolved) secrets are not part of it, so rotating an API key keeps the id.
fn model_identity(entry: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(
        entry
            .get("model_name")
            .map(|v| v.to_string())
            .unwrap_or_default(),
    );
    if let Some(Value::Object(params)) = entry.get("litellm_params") {
        let mut keys: Vec<_> = params.keys().filter(|k| *k != "api_key").collect();
        keys.sort();
        for k in keys {
            hasher.update(k.as_bytes());
            hasher.update(params[k].to_string().as_bytes());
        }
    }
    hex::encode(hasher.finalize())
}

fn build_deployment(
    raw: RawModel,
    path: &str,
    identity: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Deployment> {
    let RawModel {
        model_name,
        litellm_params,
        model_info,
    } = raw;
    let info = model_info.unwrap_or_default();
    let RawLitellmParams {
        model,
        rpm,
        tpm,
        timeout,
        stream_timeout,
        max_retries,
        weight,
        input_cost_per_token,
        output_cost_per_token,
        rest,
    } = litellm_params;
    let before = problems.len();
    let mut problem = |field: &str, message: String| {
        problems.push(ConfigProblem {
            path: format!("{path}.{field}"),
            message,
        })
    };

    if model_name.trim().is_empty() {
        problem("model_name", "must not be empty".into());
    }
    let parsed = parse_model(&model)
        .map_err(|e| problem("litellm_params.model", e.to_string()))
        .ok();
    let mut duration = |field: &str, v: Option<f64>| match v.map(seconds) {
        Some(Some(d)) => Some(d),
        Some(None) => {
            problem(field, "must be a positive number of seconds".into());
            None
        }
        None => None,
    };
    let timeout = duration("litellm_params.timeout", timeout);
    let stream_timeout = duration("litellm_params.stream_timeout", stream_timeout);
    let mode = match info.mode.as_deref() {
        None => None,
        Some(m) => match ModelMode::parse(m) {
            Some(mode) => Some(mode),
            None => {
                problems.push(ConfigProblem {
                    path: format!("{path}.model_info.mode"),
                    message: format!("unknown mode {m:?}; expected chat, completion or embedding"),
                });
                None
            }
        },
    };
    let mut price = |field: &str, v: Option<f64>| match v {
        Some(p) if p < 0.0 => {
            problems.push(ConfigProblem {
                path: format!("{path}.{field}"),
                message: "a price cannot be negative".into(),
            });
            None
        }
        other => other,
    };
    let input_cost_per_token = price("model_info.input_cost_per_token", info.input_cost_per_token)
        .or(price(
            "litellm_params.input_cost_per_token",
            input_cost_per_token,
        ));
    let output_cost_per_token = price(
        "model_info.output_cost_per_token",
        info.output_cost_per_token,
    )
    .or(price(
        "litellm_params.output_cost_per_token",
        output_cost_per_token,
    ));

    let cache_read_cost_per_token = price(
        "model_info.cache_read_input_token_cost",
        info.cache_read_input_token_cost,
    );
    let cache_write_cost_per_token = price(
        "model_info.cache_creation_input_token_cost",
        info.cache_creation_input_token_cost,
    );

    if problems.len() > before {
        return None;
    }
    let (provider, upstream_model) = parsed?;
    Some(Deployment {
        id: info
            .id
            .filter(|id| !id.trim().is_empty())
            .unwrap_or_else(|| identity.to_string()),
        model_name: model_name.trim().to_string(),
        litellm_model: model.trim().to_string(),
        provider,
        upstream_model,
        source: path.to_string(),
        params: ProviderParams::new(rest),
        rpm,
        tpm,
        timeout,
        stream_timeout,
        max_retries,
        weight,
        mode,
        input_cost_per_token,
        output_cost_per_token,
        cache_read_cost_per_token,
        cache_write_cost_per_token,
        max_tokens: info.max_output_tokens.or(info.max_tokens),
        max_input_tokens: info.max_input_tokens,
        base_model: info.base_model,
        access_groups: info.access_groups.unwrap_or_default(),
        price_table: None,
        price: OnceLock::new(),
    })
}

#[cfg(test)]
mod tests;
