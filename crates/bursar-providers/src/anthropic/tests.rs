//! Golden cases (`tests/golden/anthropic/`) and the adapter's settings.

use super::*;
use crate::framing::Translator;
use crate::golden;
use serde_json::Value;

struct Subject(Anthropic);

impl golden::Subject for Subject {
    fn request(&self, _: &golden::Case, call: &Outbound<'_>) -> Result<Value, ProviderError> {
        request::translate(call, DEFAULT_MAX_TOKENS)
    }

    fn complete(
        &self,
        _: &golden::Case,
        call: &Outbound<'_>,
        body: &[u8],
    ) -> Result<(Value, crate::Usage), ProviderError> {
        let (answer, usage) = response::translate(
            body,
            call.requested,
            call.wants_json_schema(),
            golden::CREATED,
        )?;
        Ok((serde_json::to_value(answer).unwrap(), usage))
    }

    fn translator(&self, _: &golden::Case, call: &Outbound<'_>) -> Box<dyn Translator> {
        Box::new(stream::StreamTranslator::new(
            call.requested,
            golden::CREATED,
            call.wants_json_schema(),
        ))
    }

    fn error(&self, status: u16, body: &[u8]) -> ProviderError {
        self.0.error(status, &HeaderMap::new(), body)
    }
}

#[test]
fn golden_translations() {
    golden::run(
        "anthropic",
        &Subject(Anthropic {
            api_base: DEFAULT_API_BASE.into(),
            url: format!("{DEFAULT_API_BASE}/v1/messages"),
            headers: HeaderMap::new(),
            default_max_tokens: DEFAULT_MAX_TOKENS,
        }),
    );
}

fn configure(params: &str, env: &[(&str, &str)]) -> Result<Anthropic, Vec<String>> {
    crate::params::configure_for_test(params, env, Anthropic::configure)
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
