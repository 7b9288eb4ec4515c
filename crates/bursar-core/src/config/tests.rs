use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

const FULL: &str = r#"
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      rpm: 100
      tpm: "20000"
      timeout: 30
      max_retries: 2
    model_info:
      id: gpt4o-primary
      mode: chat
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
  - model_name: local-llama
    litellm_params:
      model: hosted_vllm/meta-llama/Llama-3.1-8B-Instruct
      api_base: http://localhost:8000/v1/
general_settings:
  master_key: os.environ/MASTER
  database_url: postgres://u@localhost/db
  max_request_size_mb: 2
litellm_settings:
  request_timeout: 45
  num_retries: 3
  drop_params: true
router_settings:
  routing_strategy: simple-shuffle
environment_variables:
  MASTER: sk-from-config-env
"#;

#[test]
fn loads_a_full_litellm_config() {
    let loaded = load(
        FULL,
        &env(&[("OPENAI_API_KEY", "sk-openai"), ("MASTER", "sk-process")]),
    )
    .unwrap();
    let c = &loaded.config;
    assert_eq!(c.models.len(), 2);
    let gpt = &c.models[0];
    assert_eq!(gpt.id, "gpt4o-primary");
    assert_eq!(gpt.model_name, "gpt-4o");
    assert_eq!(gpt.provider, "openai");
    assert_eq!(gpt.upstream_model, "gpt-4o");
    assert_eq!(gpt.source, "model_list[0]");
    // Provider settings stay raw (env references resolved) for the adapter to read.
    assert_eq!(
        gpt.params.get("api_key"),
        Some(&Value::String("sk-openai".into()))
    );
    assert_eq!((gpt.rpm, gpt.tpm), (Some(100), Some(20_000)));
    assert_eq!(gpt.timeout, Some(Duration::from_secs(30)));
    assert_eq!(gpt.mode, Some(ModelMode::Chat));
    assert_eq!(gpt.input_cost_per_token, Some(0.0000025));
    let llama = &c.models[1];
    assert_eq!(llama.upstream_model, "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(
        llama.params.get("api_base"),
        Some(&Value::String("http://localhost:8000/v1/".into()))
    );
    assert_eq!(llama.id.len(), 64, "derived ids are a sha256 hex");
    // environment_variables wins over the process environment.
    assert_eq!(
        c.general.master_key.as_ref().map(Secret::expose),
        Some("sk-from-config-env")
    );
    assert_eq!(
        c.general.database_url.as_deref(),
        Some("postgres://u@localhost/db")
    );
    assert_eq!(c.general.max_request_bytes, 2 * 1024 * 1024);
    assert_eq!(c.router.timeout, Duration::from_secs(45));
    assert_eq!(c.router.num_retries, 3);
    assert!(c.drop_params);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn derived_ids_are_stable_and_ignore_the_api_key() {
    let a = load(FULL, &env(&[("OPENAI_API_KEY", "one"), ("MASTER", "sk-x")])).unwrap();
    let b = load(FULL, &env(&[("OPENAI_API_KEY", "two"), ("MASTER", "sk-x")])).unwrap();
    assert_eq!(a.config.models[1].id, b.config.models[1].id);
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = r#"
model_list:
  - model_name: a
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/MISSING_ONE
  - model_name: b
    litellm_params:
      model: azure/my-deployment
  - model_name: c
    litellm_params:
      model: hosted_vllm/llama
  - model_name: d
    litellm_params:
      model: openai/x
      rpm: lots
  - model_name: e
general_settings:
  master_key: not-sk
"#;
    let problems = load(yaml, &env(&[])).unwrap_err();
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let joined = text.join("\n");
    assert!(
        joined.contains(
            "model_list[0].litellm_params.api_key: environment variable MISSING_ONE is not set"
        ),
        "{joined}"
    );
    assert!(
        joined.contains("model_list[3]") && joined.contains("lots"),
        "{joined}"
    );
    assert!(
        joined.contains("model_list[4]") && joined.contains("litellm_params"),
        "{joined}"
    );
    assert!(
        joined.contains("general_settings.master_key: the master key must start with 'sk-'"),
        "{joined}"
    );
    // Provider settings (api_base, credentials, known providers) are checked by
    // bursar-providers, not here.
    assert_eq!(problems.len(), 4, "{joined}");
}

#[test]
fn unknown_keys_are_warnings_not_errors() {
    let yaml = r#"
model_list:
  - model_name: m
    litellm_params:
      model: openai/gpt-4o-mini
      temperature: 0.2
general_settings:
  alerting: ["slack"]
some_future_section: {}
"#;
    let loaded = load(yaml, &env(&[])).unwrap();
    let joined = loaded.warnings.join("\n");
    // litellm_params beyond core's own are the provider adapter's to judge.
    assert!(!joined.contains("litellm_params"), "{joined}");
    assert_eq!(
        loaded.config.models[0].params.get("temperature"),
        Some(&Value::from(0.2))
    );
    assert!(joined.contains("general_settings.alerting"), "{joined}");
    assert!(joined.contains("some_future_section"), "{joined}");
}

#[test]
fn master_key_falls_back_to_litellm_master_key_env() {
    let loaded = load("model_list: []", &env(&[("LITELLM_MASTER_KEY", "sk-env")])).unwrap();
    assert_eq!(
        loaded
            .config
            .general
            .master_key
            .as_ref()
            .map(Secret::expose),
        Some("sk-env")
    );
}

#[test]
fn empty_and_invalid_documents() {
    assert!(load("", &env(&[])).unwrap().config.models.is_empty());
    let problems = load("model_list: [", &env(&[])).unwrap_err();
    assert!(problems[0].message.starts_with("not valid YAML"));
    let problems = load("- just\n- a list\n", &env(&[])).unwrap_err();
    assert!(problems[0].message.contains("must be a mapping"));
}

#[test]
fn duplicate_ids_are_rejected() {
    let yaml = r#"
model_list:
  - model_name: a
    litellm_params: {model: openai/gpt-4o}
    model_info: {id: same}
  - model_name: b
    litellm_params: {model: openai/gpt-4o-mini}
    model_info: {id: same}
"#;
    let problems = load(yaml, &env(&[])).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "model_list[1].model_info.id");
}

#[test]
fn demo_model_is_added_once() {
    let mut c = Config::default();
    c.add_demo_model();
    c.add_demo_model();
    assert_eq!(c.models.len(), 1);
    assert_eq!(c.models[0].model_name, DEMO_MODEL_NAME);
    assert_eq!(c.models[0].provider, "bursar");
}

#[test]
fn identical_entries_without_ids_get_distinct_ids() {
    let yaml = "model_list:\n  - {model_name: a, litellm_params: {model: openai/x}}\n  - {model_name: a, litellm_params: {model: openai/x}}\n";
    let loaded = load(yaml, &env(&[])).unwrap();
    assert_eq!(loaded.config.models.len(), 2);
    assert_ne!(loaded.config.models[0].id, loaded.config.models[1].id);
}

#[test]
fn end_user_budgets_and_reset_interval() {
    let yaml = "litellm_settings:\n  max_end_user_budget: 0.5\n  max_end_user_budget_id: default-eu\ngeneral_settings:\n  proxy_budget_rescheduler_min_time: 3\n";
    let admission = load(yaml, &env(&[])).unwrap().config.admission;
    assert_eq!(
        admission.max_end_user_budget,
        crate::money::NanoUsd::from_usd(0.5)
    );
    assert_eq!(
        admission.max_end_user_budget_id.as_deref(),
        Some("default-eu")
    );
    assert_eq!(admission.reset_interval, std::time::Duration::from_secs(3));
    let defaults = load("model_list: []", &env(&[])).unwrap().config.admission;
    assert_eq!(defaults.max_end_user_budget, None);
    assert_eq!(defaults.reset_interval, std::time::Duration::from_secs(10));
    let problems = load(
        "litellm_settings:\n  max_end_user_budget: -1\ngeneral_settings:\n  proxy_budget_rescheduler_min_time: 0\n",
        &env(&[]),
    )
    .unwrap_err();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert!(
        paths.contains(&"litellm_settings.max_end_user_budget"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"general_settings.proxy_budget_rescheduler_min_time"),
        "{paths:?}"
    );
}

#[test]
fn prices_come_from_model_info_then_the_price_file_then_the_shipped_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prices.json");
    std::fs::write(
        &file,
        r#"{"gpt-4o-mini": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                            "cache_read_input_token_cost": 5e-7},
            "house-model": {"input_cost_per_token": 3e-6}}"#,
    )
    .unwrap();
    let yaml = format!(
        r#"
model_list:
  - model_name: mini
    litellm_params: {{model: openai/gpt-4o-mini}}
  - model_name: house
    litellm_params: {{model: hosted_vllm/house-model, api_base: "http://h:1"}}
  - model_name: own
    litellm_params: {{model: openai/gpt-4o-mini}}
    model_info: {{id: own, output_cost_per_token: 9e-6, cache_creation_input_token_cost: 4e-6}}
  - model_name: listed
    litellm_params: {{model: openai/gpt-4o}}
general_settings:
  model_cost_map_path: {path:?}
"#,
        path = file.display().to_string()
    );
    let config = load(&yaml, &env(&[])).unwrap().config;
    let price = |name: &str| {
        config
            .models
            .iter()
            .find(|m| m.model_name == name)
            .unwrap()
            .price()
    };
    assert_eq!(price("mini").input_per_token, 1e-6);
    assert_eq!(price("mini").cache_read_per_token, Some(5e-7));
    assert_eq!(price("house").input_per_token, 3e-6);
    assert_eq!(price("own").input_per_token, 1e-6);
    assert_eq!(price("own").output_per_token, 9e-6);
    assert_eq!(price("own").cache_write_per_token, Some(4e-6));
    assert_eq!(
        price("listed"),
        crate::pricing::default_price("gpt-4o").unwrap()
    );

    let missing = "general_settings:\n  model_cost_map_path: /no/such/file.json\n";
    let problems = load(missing, &env(&[])).unwrap_err();
    assert!(
        problems[0]
            .to_string()
            .contains("cannot read /no/such/file.json")
    );
    std::fs::write(&file, r#"{"m": {"input_cost_per_token": "cheap"}}"#).unwrap();
    let bad = format!(
        "general_settings:\n  model_cost_map_path: {:?}\n",
        file.display().to_string()
    );
    let problems = load(&bad, &env(&[])).unwrap_err();
    assert!(problems[0].message.contains("m: input_cost_per_token"));
}

#[test]
fn ledger_settings() {
    let config = load("", &env(&[])).unwrap().config;
    assert_eq!(config.ledger.batch_size, 500);
    assert_eq!(config.ledger.flush_interval, Duration::from_millis(500));
    let yaml = "general_settings:\n  proxy_batch_write_at: 2\n  spend_batch_size: 50\n  spend_buffer_events: 10\n  spend_spool_path: /tmp/s.spool\n  disable_spend_logs: true\n";
    let ledger = load(yaml, &env(&[])).unwrap().config.ledger;
    assert_eq!(ledger.flush_interval, Duration::from_secs(2));
    assert_eq!((ledger.batch_size, ledger.buffer_events), (50, 10));
    assert_eq!(ledger.spool_path, Some("/tmp/s.spool".into()));
    assert!(ledger.disable_spend_logs && !ledger.disable_spend_updates);
    let yaml = "general_settings:\n  proxy_batch_write_at: 2\n  spend_flush_interval_ms: 20\n";
    let ledger = load(yaml, &env(&[])).unwrap().config.ledger;
    assert_eq!(ledger.flush_interval, Duration::from_millis(20));
    let problems = load("general_settings:\n  spend_batch_size: 0\n", &env(&[])).unwrap_err();
    assert_eq!(problems[0].path, "general_settings.spend_batch_size");
}

#[test]
fn redis_is_off_unless_configured() {
    let loaded = load("", &env(&[])).unwrap();
    assert!(loaded.config.redis.is_none());
}

#[test]
fn redis_settings_come_from_litellm_names_then_the_environment() {
    // host/port/password in router_settings (where LiteLLM documents them).
    let yaml = "router_settings:\n  redis_host: cache.internal\n  redis_port: \"6380\"\n  redis_password: \"p@ss/word\"\n";
    let redis = load(yaml, &env(&[])).unwrap().config.redis.unwrap();
    assert_eq!(
        redis.url.expose(),
        "redis://:p%40ss%2Fword@cache.internal:6380"
    );
    assert!(!redis.fail_open);
    assert_eq!(redis.namespace, "bursar");
    assert_eq!(redis.timeout, std::time::Duration::from_millis(500));

    // general_settings wins over litellm_settings; a URL wins over a host.
    let yaml = "general_settings:\n  redis_url: rediss://u:p@a:1/2\n  redis_fail_mode: fail_open\n  redis_namespace: prod\n  redis_timeout_ms: 50\nlitellm_settings:\n  redis_host: b\n";
    let redis = load(yaml, &env(&[])).unwrap().config.redis.unwrap();
    assert_eq!(redis.url.expose(), "rediss://u:p@a:1/2");
    assert!(redis.fail_open);
    assert_eq!(redis.namespace, "prod");
    assert_eq!(redis.timeout, std::time::Duration::from_millis(50));

    // The environment: REDIS_URL, else REDIS_HOST with its companions.
    let url = load("", &env(&[("REDIS_URL", "redis://env:6379")])).unwrap();
    assert_eq!(url.config.redis.unwrap().url.expose(), "redis://env:6379");
    let host = load(
        "",
        &env(&[
            ("REDIS_HOST", "h"),
            ("REDIS_PORT", "7000"),
            ("REDIS_USERNAME", "app"),
            ("REDIS_PASSWORD", "pw"),
            ("REDIS_SSL", "True"),
        ]),
    )
    .unwrap();
    assert_eq!(
        host.config.redis.unwrap().url.expose(),
        "rediss://app:pw@h:7000"
    );
    // A configured host beats REDIS_URL from the environment; its password may come from there.
    let mixed = load(
        "general_settings:\n  redis_host: cfg\n",
        &env(&[("REDIS_URL", "redis://env:1"), ("REDIS_PASSWORD", "pw")]),
    )
    .unwrap();
    assert_eq!(
        mixed.config.redis.unwrap().url.expose(),
        "redis://:pw@cfg:6379"
    );
}

#[test]
fn bad_redis_settings_are_reported() {
    let yaml = "general_settings:\n  redis_url: http://x\n";
    let problems = load(yaml, &env(&[])).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.path == "general_settings.redis_url"),
        "{problems:?}"
    );
    let yaml = "general_settings:\n  redis_host: x\n  redis_fail_mode: sometimes\n  redis_namespace: \"a{b}\"\n  redis_timeout_ms: 0\n";
    let problems = load(yaml, &env(&[])).unwrap_err();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for field in ["redis_fail_mode", "redis_namespace", "redis_timeout_ms"] {
        assert!(
            paths.contains(&format!("general_settings.{field}").as_str()),
            "{paths:?}"
        );
    }
    let yaml = "general_settings:\n  redis_host: x\n  redis_port: 70000\n";
    let problems = load(yaml, &env(&[])).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.path == "general_settings.redis_port"),
        "{problems:?}"
    );
}

#[test]
fn budget_admission_defaults_to_litellms_rule_and_strict_is_opt_in() {
    use super::BudgetAdmission;
    let rule = |yaml: &str| load(yaml, &env(&[])).map(|l| l.config.admission.budget_admission);
    assert_eq!(rule("model_list: []"), Ok(BudgetAdmission::Litellm));
    assert_eq!(
        rule("general_settings:\n  budget_admission: strict\n"),
        Ok(BudgetAdmission::Strict)
    );
    assert_eq!(
        rule("general_settings:\n  budget_admission: litellm\n"),
        Ok(BudgetAdmission::Litellm)
    );
    let problems = rule("general_settings:\n  budget_admission: loose\n").unwrap_err();
    assert_eq!(problems[0].path, "general_settings.budget_admission");
}

#[test]
fn team_metadata_schema_is_a_list_of_distinct_keys() {
    let ok = "general_settings:\n  team_metadata_schema:\n    - {key: cost_center, label: Cost center}\n    - {key: owner}\n";
    let loaded = load(ok, &env(&[])).unwrap();
    assert_eq!(
        loaded.config.general.team_metadata_schema,
        vec![
            TeamMetadataField {
                key: "cost_center".into(),
                label: Some("Cost center".into())
            },
            TeamMetadataField {
                key: "owner".into(),
                label: None
            },
        ]
    );
    assert!(
        load("general_settings: {}\n", &env(&[]))
            .unwrap()
            .config
            .general
            .team_metadata_schema
            .is_empty()
    );
    for bad in [
        "general_settings:\n  team_metadata_schema: [{key: a}, {key: a}]\n",
        "general_settings:\n  team_metadata_schema: [{key: \"\"}]\n",
        "general_settings:\n  team_metadata_schema: [{key: a, kind: text}]\n",
        "general_settings:\n  team_metadata_schema: {key: a}\n",
    ] {
        let problems = load(bad, &env(&[])).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.path == "general_settings.team_metadata_schema"),
            "{bad}: {problems:?}"
        );
    }
}
