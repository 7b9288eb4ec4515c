//! Ollama's native API: `ollama_chat/<model>` sends chat completions to `/api/chat`;
//! `ollama/<model>` sends them to `/api/generate` as one prompt (LiteLLM's `### User:` /
//! `### Assistant:` template); both send legacy completions to `/api/generate` and embeddings
//! to `/api/embed`. Streams are NDJSON. An `api_key` (hosted Ollama) is a bearer token.

mod translate;

use crate::endpoint::Endpoint;
use crate::error::ProviderError;
use crate::formats::chat::now;
use crate::framing;
use crate::openai::sensitive;
use crate::params::Params;
use crate::provider::{Outbound, Provider, UpstreamRequest};
use crate::router::Answer;
use crate::sse::ByteStream;
use bursar_core::config::Deployment;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};

pub const DEFAULT_API_BASE: &str = "http://localhost:11434";

pub struct Ollama {
    name: &'static str,
    /// `ollama_chat`: chat goes to `/api/chat`; `ollama`: to `/api/generate`.
    chat_api: bool,
    api_base: String,
    headers: HeaderMap,
}

impl Ollama {
    pub fn configure(d: &Deployment, params: &mut Params<'_>) -> Option<Ollama> {
        let api_base = params.url("api_base", &["OLLAMA_API_BASE"], Some(DEFAULT_API_BASE));
        let key = params.secret_or_env("api_key", &["OLLAMA_API_KEY"]);
        let mut headers = params.headers("extra_headers");
        let api_base = api_base?;
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(key) = key
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
        {
            headers.insert(header::AUTHORIZATION, sensitive(v));
        }
        let chat_api = d.provider == "ollama_chat";
        Some(Ollama {
            name: if chat_api { "ollama_chat" } else { "ollama" },
            chat_api,
            api_base,
            headers,
        })
    }

    /// The native operation a call goes to.
    fn operation(&self, endpoint: Endpoint) -> translate::Operation {
        match endpoint {
            Endpoint::ChatCompletions if self.chat_api => translate::Operation::Chat,
            Endpoint::ChatCompletions => translate::Operation::ChatAsPrompt,
            Endpoint::Completions => translate::Operation::Generate,
            Endpoint::Embeddings => translate::Operation::Embed,
        }
    }
}

impl Provider for Ollama {
    fn name(&self) -> &'static str {
        self.name
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.api_base)
    }

    fn supports(&self, _: Endpoint) -> bool {
        true
    }

    async fn request(
        &self,
        call: &Outbound<'_>,
        _: &reqwest::Client,
    ) -> Result<UpstreamRequest, ProviderError> {
        let op = self.operation(call.endpoint);
        let body = translate::request(op, call, self.name)?;
        let body =
            serde_json::to_vec(&body).map_err(|e| ProviderError::BadRequest(e.to_string()))?;
        Ok(UpstreamRequest {
            url: format!("{}{}", self.api_base, op.path()),
            headers: self.headers.clone(),
            body: Bytes::from(body),
        })
    }

    fn complete(&self, call: &Outbound<'_>, body: Bytes) -> Result<Answer, ProviderError> {
        let op = self.operation(call.endpoint);
        let base64 = call.wants_base64();
        let (answer, usage) =
            translate::complete(op, base64, &body, call.requested, now(), self.name)?;
        crate::provider::translated(self.name, &answer, usage, None)
    }

    fn stream(&self, call: &Outbound<'_>, source: ByteStream) -> ByteStream {
        let op = self.operation(call.endpoint);
        framing::translate(
            source,
            translate::StreamTranslator::new(op, call.requested, now(), self.name),
        )
    }

    fn error(&self, status: u16, _: &HeaderMap, body: &[u8]) -> ProviderError {
        crate::openai::upstream_error(self.name, status, body)
    }
}

#[cfg(test)]
mod tests;
