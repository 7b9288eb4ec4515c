//! Golden cases (`tests/golden/gemini/`) and the adapter's settings.

use super::*;
use crate::framing::Translator;
use crate::golden;
use crate::params::Env;
use serde_json::Value;

struct Subject;

impl golden::Subject for Subject {
    fn request(&self, _: &golden::Case, call: &Outbound<'_>) -> Result<Value, ProviderError> {
        match call.endpoint {
            Endpoint::Embeddings => {
                translate::embed_request(call, "gemini", "models/upstream-model")
            }
            _ => translate::chat_request(call, "gemini"),
        }
    }

    fn complete(
        &self,
        _: &golden::Case,
        call: &Outbound<'_>,
        body: &[u8],
    ) -> Result<(Value, crate::Usage), ProviderError> {
        match call.endpoint {
            Endpoint::Embeddings => translate::embed_answer(
                body,
                call.requested,
                call.wants_base64(),
                call.input_tokens(),
                "gemini",
            ),
            _ => translate::chat_answer(body, call.requested, golden::CREATED, "gemini")
                .map(|(a, u, _)| (a, u)),
        }
    }

    fn translator(&self, _: &golden::Case, call: &Outbound<'_>) -> Box<dyn Translator> {
        Box::new(translate::StreamTranslator::new(
            call.requested,
            golden::CREATED,
            "gemini",
        ))
    }

    fn error(&self, status: u16, body: &[u8]) -> ProviderError {
        crate::openai::upstream_error("gemini", status, body)
    }
}

#[test]
fn golden_translations() {
    golden::run("gemini", &Subject);
}

#[test]
fn the_key_goes_in_a_header_and_urls_name_the_model() {
    let yaml =
        "model_list:\n  - {model_name: g, litellm_params: {model: gemini/gemini-2.5-flash}}\n";
    let config = bursar_core::config::load(yaml, &|_| None).unwrap().config;
    let lookup = |n: &str| (n == "GEMINI_API_KEY").then(|| "g-key".to_string());
    let env = Env::new(&config, &lookup);
    let mut p = Params::new(&config.models[0], &env);
    let built = Gemini::configure(&config.models[0], &mut p);
    let g = p.finish(built).ok().unwrap().value;
    assert_eq!(
        g.model_url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
    );
    assert_eq!(g.headers["x-goog-api-key"], "g-key");
    let env = Env::new(&config, &|_| None);
    let mut p = Params::new(&config.models[0], &env);
    let built = Gemini::configure(&config.models[0], &mut p);
    let problems = p.finish(built).err().unwrap();
    assert!(
        problems[0]
            .to_string()
            .contains("GEMINI_API_KEY / GOOGLE_API_KEY"),
        "{problems:?}"
    );
}
