//! The `bursar` binary itself: check-config, migrate, and the zero-config demo with graceful
//! shutdown on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bursar");

fn bursar() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "LITELLM_MASTER_KEY",
        "DATABASE_URL",
        "CONFIG_FILE_PATH",
        "BURSAR_DATA_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn check_config_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      api_key: os.environ/BURSAR_TEST_SURELY_UNSET\n  - model_name: b\n    litellm_params:\n      model: azure/y\ngeneral_settings:\n  master_key: nope\n  something_new: 1\n",
    )
    .unwrap();
    let out = bursar()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("4 problem(s)"), "{stderr}");
    assert!(stderr.contains("BURSAR_TEST_SURELY_UNSET"), "{stderr}");
    assert!(
        stderr.contains("model_list[1].litellm_params.api_base: provider azure needs an api_base"),
        "{stderr}"
    );
    assert!(
        stderr.contains("model_list[1].litellm_params.api_key: provider azure needs a credential"),
        "{stderr}"
    );
    assert!(stderr.contains("master_key"), "{stderr}");
}

/// A LiteLLM config with one deployment of each native provider, credentials left to the
/// environment as LiteLLM users write them.
const MULTI_PROVIDER: &str = r#"
model_list:
  - model_name: gpt-4o
    litellm_params: {model: azure/gpt4o-prod, api_base: os.environ/AZURE_API_BASE, api_key: os.environ/AZURE_API_KEY, api_version: "2024-10-21"}
    model_info: {base_model: azure/gpt-4o}
  - model_name: claude
    litellm_params: {model: anthropic/claude-sonnet-4-5}
  - model_name: bedrock-claude
    litellm_params: {model: bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0, aws_region_name: us-east-1}
  - model_name: gemini
    litellm_params: {model: gemini/gemini-2.5-flash}
  - model_name: vertex-gemini
    litellm_params: {model: vertex_ai/gemini-2.5-pro, vertex_project: my-project, vertex_location: us-central1}
  - model_name: command
    litellm_params: {model: cohere/command-a-03-2025}
  - model_name: llama
    litellm_params: {model: ollama_chat/llama3.2}
litellm_settings:
  drop_params: true
"#;

/// Every provider's environment variable this test sets or clears.
const PROVIDER_VARS: &[&str] = &[
    "AZURE_API_BASE",
    "AZURE_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_API_KEY",
    "AZURE_AD_TOKEN",
    "ANTHROPIC_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "COHERE_API_KEY",
    "CO_API_KEY",
];

#[test]
fn check_config_names_each_missing_provider_credential() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, MULTI_PROVIDER).unwrap();
    let mut cmd = bursar();
    for var in PROVIDER_VARS {
        cmd.env_remove(var);
    }
    let out = cmd
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "model_list[0].litellm_params.api_base: environment variable AZURE_API_BASE is not set",
        "model_list[0].litellm_params.api_key: environment variable AZURE_API_KEY is not set",
        "model_list[1].litellm_params.api_key: provider anthropic needs an API key: set litellm_params.api_key or the environment variable ANTHROPIC_API_KEY",
        "model_list[2].litellm_params.aws_access_key_id: provider bedrock needs credentials",
        "model_list[3].litellm_params.api_key: provider gemini needs an API key",
        "model_list[4].litellm_params.vertex_credentials: provider vertex_ai needs credentials",
        "model_list[5].litellm_params.api_key: provider cohere needs an API key",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    // Ollama runs locally without credentials.
    assert!(!stderr.contains("model_list[6]"), "{stderr}");

    let creds = dir.path().join("sa.json");
    std::fs::write(
        &creds,
        include_str!("../../bursar-providers/tests/fixtures/vertex-service-account.json"),
    )
    .unwrap();
    let out = bursar()
        .env("AZURE_API_BASE", "https://r.openai.azure.com")
        .env("AZURE_API_KEY", "az")
        .env("ANTHROPIC_API_KEY", "sk-ant")
        .env("AWS_ACCESS_KEY_ID", "AKID")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("GEMINI_API_KEY", "g")
        .env("GOOGLE_APPLICATION_CREDENTIALS", &creds)
        .env("COHERE_API_KEY", "co")
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK (7 model deployment(s))"), "{stdout}");
}

#[test]
fn check_config_accepts_a_valid_file_and_warns_about_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "model_list:\n  - model_name: a\n    litellm_params: {model: openai/gpt-4o, api_key: os.environ/BURSAR_TEST_KEY}\nlitellm_settings:\n  success_callback: [langfuse]\n",
    )
    .unwrap();
    let out = bursar()
        .env("BURSAR_TEST_KEY", "sk-x")
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK (1 model deployment(s))"), "{stdout}");
    assert!(
        stdout.contains("warning: litellm_settings.success_callback"),
        "{stdout}"
    );
}

#[test]
fn check_config_reports_a_missing_file() {
    let out = bursar()
        .args(["check-config", "--config", "/nonexistent/bursar.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[test]
fn migrate_creates_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested").join("m.db");
    let out = bursar()
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists());
    // Running it again is a no-op.
    let again = bursar()
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .arg("migrate")
        .output()
        .unwrap();
    assert!(again.status.success());
}

#[test]
fn zero_config_demo_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = bursar()
        .current_dir(dir.path())
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut master_key = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while master_key.is_none() && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(key) =
            line.strip_prefix("master key (generated and stored in the data directory): ")
        {
            master_key = Some(key.trim().to_string());
        }
    }
    let master_key = master_key.expect("serve prints the generated master key");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".bursar/master_key"))
            .unwrap()
            .trim(),
        master_key
    );
    assert!(dir.path().join(".bursar/bursar.db").exists());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let response = http
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .bearer_auth(&master_key)
            .json(&json!({"model": "demo", "messages": [{"role": "user", "content": "hello bursar"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "Hello from the Bursar demo model. You said: hello bursar");
    });

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bursar did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn no_raw_key_reaches_the_log_at_any_level() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let port = free_port();
    let master_key = "sk-master-key-for-the-log-test";
    let mut child = bursar()
        .current_dir(dir.path())
        .env("LITELLM_MASTER_KEY", master_key)
        .env("RUST_LOG", "trace")
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let raw = runtime.block_on(async {
        let http = reqwest::Client::new();
        let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(url("/health/liveliness")).send().await.is_err() {
            assert!(Instant::now() < deadline, "bursar did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let created: Value = http
            .post(url("/key/generate"))
            .bearer_auth(master_key)
            .json(&json!({"key_alias": "logged"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let raw = created["key"].as_str().unwrap().to_string();
        for response in [
            http.get(url(&format!("/key/info?key={raw}")))
                .bearer_auth(master_key)
                .send()
                .await,
            http.get(url(&format!("/key/info?key={raw}")))
                .bearer_auth(&raw)
                .send()
                .await,
            http.post(url(&format!("/key/{raw}/regenerate")))
                .bearer_auth(master_key)
                .json(&json!({}))
                .send()
                .await,
            http.get(url(&format!("/nowhere/{raw}?api_key={raw}")))
                .send()
                .await,
        ] {
            assert!(response.unwrap().status().as_u16() < 500);
        }
        raw
    });
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("/key/info"),
        "the request spans are logged:\n{log}"
    );
    for secret in [raw.as_str(), master_key] {
        assert!(
            !log.contains(&secret[3..]),
            "a raw key reached the log:\n{}",
            log.lines()
                .filter(|l| l.contains(&secret[3..]))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
