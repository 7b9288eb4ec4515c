//! Golden cases (`tests/golden/anthropic/`) and the adapter's settings.

use super::*;
use crate::framing::Translator;
use crate::golden::{self, sse_payloads};
use crate::params::Env;
use serde_json::{Value, json};

const CREATED: u64 = 1_700_000_000;

fn outbound<'a>(case: &golden::Case, body: &'a JsonObject) -> Outbound<'a> {
    Outbound {
        endpoint: Endpoint::ChatCompletions,
        body,
        stream: case.get("request")["stream"] == true,
        requested: "my-claude",
        upstream_model: "claude-sonnet-4-20250514",
        drop_params: case.get("drop_params") == &Value::Bool(true),
    }
}

fn error_json(e: &ProviderError) -> Value {
    json!({"status": e.status(), "exception": e.exception_name(), "message": e.to_string()})
}

#[test]
fn golden_translations() {
    let adapter = Anthropic {
        api_base: DEFAULT_API_BASE.into(),
        url: format!("{DEFAULT_API_BASE}/v1/messages"),
        headers: HeaderMap::new(),
        default_max_tokens: DEFAULT_MAX_TOKENS,
    };
    let mut failures = Vec::new();
    for mut case in golden::cases("anthropic") {
        if let Some(errors) = case.get("upstream_errors").as_array().cloned() {
            let actual = errors
                .iter()
                .map(|e| {
                    let body = serde_json::to_vec(&e["body"]).unwrap();
                    let status = e["status"].as_u64().unwrap() as u16;
                    error_json(&adapter.error(status, &HeaderMap::new(), &body))
                })
                .collect();
            case.expect("errors", actual, &mut failures);
            case.save();
            continue;
        }
        let raw = serde_json::to_vec(case.get("request")).unwrap();
        let body = JsonObject::parse(&raw).unwrap();
        let call = outbound(&case, &body);
        let json_mode = json_mode(&call);
        match request::translate(&call, DEFAULT_MAX_TOKENS) {
            Ok(upstream) => case.expect("upstream_request", upstream, &mut failures),
            Err(e) => case.expect("error", error_json(&e), &mut failures),
        }
        if !case.get("upstream_answer").is_null() {
            let bytes = serde_json::to_vec(case.get("upstream_answer")).unwrap();
            let (answer, usage) =
                response::translate(&bytes, "my-claude", json_mode, CREATED).unwrap();
            case.expect(
                "answer",
                serde_json::to_value(answer).unwrap(),
                &mut failures,
            );
            case.expect("usage", serde_json::to_value(usage).unwrap(), &mut failures);
        }
        if let Some(events) = case.get("upstream_stream").as_str().map(str::to_string) {
            let mut t = stream::StreamTranslator::new("my-claude", CREATED, json_mode);
            let mut out = Vec::new();
            // Network chunks split events anywhere.
            let mut failed = None;
            for piece in events.as_bytes().chunks(7) {
                if let Err(e) = t.feed(piece, &mut out) {
                    failed = Some(e);
                    break;
                }
            }
            let end = match failed {
                Some(e) => Some(error_json(&e)),
                None => t.end(&mut out).err().map(|e| error_json(&e)),
            };
            let mut chunks = sse_payloads(&out);
            if let Some(e) = end {
                chunks.push(json!({"stream_error": e}));
            }
            case.expect("chunks", Value::Array(chunks), &mut failures);
        }
        case.save();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn configure(params: &str, env: &[(&str, &str)]) -> Result<Anthropic, Vec<String>> {
    let yaml = format!("model_list:\n  - model_name: c\n    litellm_params: {params}\n");
    let config = bursar_core::config::load(&yaml, &|_| None).unwrap().config;
    let vars: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let env = Env::new(&config, &lookup);
    let d = &config.models[0];
    let mut p = Params::new(d, &env);
    let built = Anthropic::configure(d, &mut p);
    p.finish(built)
        .map(|b| b.value)
        .map_err(|p| p.iter().map(ToString::to_string).collect())
}

#[test]
fn settings_come_from_params_or_the_environment() {
    let a = configure(
        "{model: anthropic/claude-haiku-4-5-20251001, api_key: sk-ant-1}",
        &[],
    )
    .unwrap();
    assert_eq!(a.url, "https://api.anthropic.com/v1/messages");
    assert_eq!(a.headers["x-api-key"], "sk-ant-1");
    assert_eq!(a.headers["anthropic-version"], API_VERSION);
    // The price list knows this model's largest completion.
    assert_eq!(a.default_max_tokens, 64_000);
    let b = configure(
        "{model: anthropic/x, extra_headers: {anthropic-beta: prompt-caching-2024-07-31}}",
        &[
            ("ANTHROPIC_API_KEY", "env-key"),
            ("ANTHROPIC_API_BASE", "http://proxy:1/v1"),
        ],
    )
    .unwrap();
    assert_eq!(b.url, "http://proxy:1/v1/messages");
    assert_eq!(b.headers["x-api-key"], "env-key");
    assert_eq!(b.headers["anthropic-beta"], "prompt-caching-2024-07-31");
    assert_eq!(b.default_max_tokens, DEFAULT_MAX_TOKENS);
}

#[test]
fn a_missing_key_is_named() {
    let problems = configure("{model: anthropic/claude-3-5-haiku-20241022}", &[])
        .err()
        .unwrap();
    assert_eq!(
        problems,
        vec![
            "model_list[0].litellm_params.api_key: provider anthropic needs an API key: set litellm_params.api_key or the environment variable ANTHROPIC_API_KEY"
        ]
    );
}

#[test]
fn request_extra_headers_may_add_betas_only() {
    let mut headers = HeaderMap::new();
    headers.insert("anthropic-beta", HeaderValue::from_static("a"));
    headers.insert("x-api-key", HeaderValue::from_static("mine"));
    let body = JsonObject::parse(
        br#"{"extra_headers":{"anthropic-beta":"b","x-api-key":"theirs","Host":"evil"}}"#,
    )
    .unwrap();
    client_headers(&body, &mut headers);
    assert_eq!(headers["anthropic-beta"], "a,b");
    assert_eq!(headers["x-api-key"], "mine");
    assert!(!headers.contains_key("host"));
}
