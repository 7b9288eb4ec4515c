//! Golden cases (`tests/golden/cohere/`) and the adapter's settings.

use super::*;
use crate::framing::Translator;
use crate::golden;
use crate::params::Env;
use serde_json::Value;

struct Subject;

impl golden::Subject for Subject {
    fn request(&self, _: &golden::Case, call: &Outbound<'_>) -> Result<Value, ProviderError> {
        match call.endpoint {
            Endpoint::Embeddings => translate::embed_request(call),
            _ => translate::chat_request(call),
        }
    }

    fn complete(
        &self,
        _: &golden::Case,
        call: &Outbound<'_>,
        body: &[u8],
    ) -> Result<(Value, crate::Usage), ProviderError> {
        let (answer, usage, _) = match call.endpoint {
            Endpoint::Embeddings => translate::embed_answer(body, call.requested, false)?,
            _ => translate::chat_answer(body, call.requested, golden::CREATED)?,
        };
        Ok((answer, usage))
    }

    fn translator(&self, _: &golden::Case, call: &Outbound<'_>) -> Box<dyn Translator> {
        Box::new(translate::StreamTranslator::new(
            call.requested,
            golden::CREATED,
        ))
    }

    fn error(&self, status: u16, body: &[u8]) -> ProviderError {
        crate::openai::upstream_error("cohere", status, body)
    }
}

#[test]
fn golden_translations() {
    golden::run("cohere", &Subject);
}

#[test]
fn the_key_is_required_and_the_base_loses_operation_paths() {
    let yaml = "model_list:\n  - {model_name: a, litellm_params: {model: cohere/command-a-03-2025}}\n  - {model_name: b, litellm_params: {model: cohere_chat/command-r, api_base: 'https://co.example.com/v2/chat'}}\n";
    let config = bursar_core::config::load(yaml, &|_| None).unwrap().config;
    let env = Env::new(&config, &|_| None);
    let mut p = Params::new(&config.models[0], &env);
    let built = Cohere::configure(&mut p);
    let problems = p.finish(built).err().unwrap();
    assert!(
        problems[0].to_string().contains("provider cohere needs an API key: set litellm_params.api_key or the environment variable COHERE_API_KEY / CO_API_KEY"),
        "{problems:?}"
    );
    let lookup = |n: &str| (n == "CO_API_KEY").then(|| "co-key".to_string());
    let env = Env::new(&config, &lookup);
    let mut p = Params::new(&config.models[1], &env);
    let built = Cohere::configure(&mut p);
    let c = p.finish(built).ok().unwrap().value;
    assert_eq!(c.api_base, "https://co.example.com");
    assert_eq!(c.headers[header::AUTHORIZATION], "Bearer co-key");
}
