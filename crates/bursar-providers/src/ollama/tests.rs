//! Golden cases (`tests/golden/ollama/`) and the adapter's settings.

use super::*;
use crate::framing::Translator;
use crate::golden;
use crate::params::Env;
use serde_json::Value;

/// Cases name the LiteLLM provider they go through (`"provider": "ollama"`); the default is
/// `ollama_chat`.
fn adapter(case: &golden::Case) -> Ollama {
    let chat_api = case.get("provider").as_str() != Some("ollama");
    Ollama {
        name: if chat_api { "ollama_chat" } else { "ollama" },
        chat_api,
        api_base: DEFAULT_API_BASE.into(),
        headers: HeaderMap::new(),
    }
}

struct Subject;

impl golden::Subject for Subject {
    fn request(&self, case: &golden::Case, call: &Outbound<'_>) -> Result<Value, ProviderError> {
        let a = adapter(case);
        let op = a.operation(call.endpoint);
        let mut body = translate::request(op, call, a.name)?;
        body["__path"] = Value::String(op.path().into());
        Ok(body)
    }

    fn complete(
        &self,
        case: &golden::Case,
        call: &Outbound<'_>,
        body: &[u8],
    ) -> Result<(Value, crate::Usage), ProviderError> {
        let a = adapter(case);
        let base64 = call.wants_base64();
        translate::complete(
            a.operation(call.endpoint),
            base64,
            body,
            call.requested,
            golden::CREATED,
            a.name,
        )
    }

    fn translator(&self, case: &golden::Case, call: &Outbound<'_>) -> Box<dyn Translator> {
        let a = adapter(case);
        Box::new(translate::StreamTranslator::new(
            a.operation(call.endpoint),
            call.requested,
            golden::CREATED,
            a.name,
        ))
    }

    fn error(&self, status: u16, body: &[u8]) -> ProviderError {
        crate::openai::upstream_error("ollama_chat", status, body)
    }
}

#[test]
fn golden_translations() {
    golden::run("ollama", &Subject);
}

#[test]
fn settings_default_to_the_local_server() {
    let yaml = "model_list:\n  - {model_name: l, litellm_params: {model: ollama_chat/llama3.2}}\n  - {model_name: h, litellm_params: {model: ollama/llama3.2, api_base: 'https://ollama.example.com/', api_key: k}}\n";
    let config = bursar_core::config::load(yaml, &|_| None).unwrap().config;
    let env = Env::new(&config, &|_| None);
    let build = |d| {
        let mut p = Params::new(d, &env);
        let built = Ollama::configure(d, &mut p);
        p.finish(built).ok().unwrap().value
    };
    let local = build(&config.models[0]);
    assert_eq!((local.name, local.chat_api), ("ollama_chat", true));
    assert_eq!(local.api_base, DEFAULT_API_BASE);
    assert!(!local.headers.contains_key(header::AUTHORIZATION));
    let hosted = build(&config.models[1]);
    assert_eq!((hosted.name, hosted.chat_api), ("ollama", false));
    assert_eq!(hosted.api_base, "https://ollama.example.com");
    assert_eq!(hosted.headers[header::AUTHORIZATION], "Bearer k");
}
