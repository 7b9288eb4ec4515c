//! Google AI Studio (`gemini/<model>`): chat completions to
//! `{api_base}/v1beta/models/{model}:generateContent` (`:streamGenerateContent?alt=sse` for
//! streams), embeddings to `:batchEmbedContents`, with the key in `x-goog-api-key` (not in
//! the URL, where logs would keep it). The translation is shared with Vertex AI.

pub(crate) mod translate;

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
use http::{HeaderMap, HeaderName, HeaderValue, header};

pub const DEFAULT_API_BASE: &str = "https://generativelanguage.googleapis.com";

pub struct Gemini {
    api_base: String,
    /// `{api_base}/v1beta/models/{model}`, the operations' common prefix.
    model_url: String,
    /// `models/{model}`, as embedding requests name it.
    model_path: String,
    headers: HeaderMap,
}

impl Gemini {
    pub fn configure(d: &Deployment, params: &mut Params<'_>) -> Option<Gemini> {
        let api_base = params.url("api_base", &["GEMINI_API_BASE"], Some(DEFAULT_API_BASE));
        let key = params.required_secret(
            "api_key",
            &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
            "an API key",
        );
        let mut headers = params.headers("extra_headers");
        let api_base = api_base?;
        let key = key?;
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(key.expose()) {
            headers.insert(HeaderName::from_static("x-goog-api-key"), sensitive(v));
        }
        let model = d.upstream_model.trim_start_matches("models/");
        let version_base = if api_base.ends_with("/v1beta") || api_base.ends_with("/v1") {
            api_base.clone()
        } else {
            format!("{api_base}/v1beta")
        };
        Some(Gemini {
            model_url: format!("{version_base}/models/{model}"),
            model_path: format!("models/{model}"),
            api_base,
            headers,
        })
    }
}

impl Provider for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.api_base)
    }

    fn supports(&self, endpoint: Endpoint) -> bool {
        endpoint != Endpoint::Completions
    }

    async fn request(
        &self,
        call: &Outbound<'_>,
        _: &reqwest::Client,
    ) -> Result<UpstreamRequest, ProviderError> {
        let (url, body) = match (call.endpoint, call.stream) {
            (Endpoint::Embeddings, _) => (
                format!("{}:batchEmbedContents", self.model_url),
                translate::embed_request(call, "gemini", &self.model_path)?,
            ),
            (_, true) => (
                format!("{}:streamGenerateContent?alt=sse", self.model_url),
                translate::chat_request(call, "gemini")?,
            ),
            (_, false) => (
                format!("{}:generateContent", self.model_url),
                translate::chat_request(call, "gemini")?,
            ),
        };
        let body =
            serde_json::to_vec(&body).map_err(|e| ProviderError::BadRequest(e.to_string()))?;
        Ok(UpstreamRequest {
            url,
            headers: self.headers.clone(),
            body: Bytes::from(body),
        })
    }

    fn complete(&self, call: &Outbound<'_>, body: Bytes) -> Result<Answer, ProviderError> {
        let (answer, usage, id) = match call.endpoint {
            Endpoint::Embeddings => {
                let (a, u) = translate::embed_answer(
                    &body,
                    call.requested,
                    call.wants_base64(),
                    call.input_tokens(),
                    "gemini",
                )?;
                (a, u, None)
            }
            _ => translate::chat_answer(&body, call.requested, now(), "gemini")?,
        };
        crate::provider::translated("gemini", &answer, usage, id.as_deref())
    }

    fn stream(&self, call: &Outbound<'_>, source: ByteStream) -> ByteStream {
        framing::translate(
            source,
            translate::StreamTranslator::new(call.requested, now(), "gemini"),
        )
    }

    fn error(&self, status: u16, _: &HeaderMap, body: &[u8]) -> ProviderError {
        crate::openai::upstream_error("gemini", status, body)
    }
}

#[cfg(test)]
mod tests;
