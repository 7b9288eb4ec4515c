//! Cohere (`cohere/<model>`, `cohere_chat/<model>`): chat completions to the v2 Chat API
//! (`POST {api_base}/v2/chat`), embeddings to v2 Embed (`/v2/embed`), with a bearer key.
//! Chat v2 messages are close to OpenAI's; the answer's content blocks, tool calls,
//! finish reasons, usage and the typed event stream (`message-start`, `content-delta`,
//! `tool-call-delta`, `message-end`…) are translated back.

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
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};

pub const DEFAULT_API_BASE: &str = "https://api.cohere.com";

pub struct Cohere {
    api_base: String,
    headers: HeaderMap,
}

impl Cohere {
    pub fn configure(params: &mut Params<'_>) -> Option<Cohere> {
        let api_base = params.url("api_base", &["COHERE_API_BASE"], Some(DEFAULT_API_BASE));
        let key =
            params.required_secret("api_key", &["COHERE_API_KEY", "CO_API_KEY"], "an API key");
        let mut headers = params.headers("extra_headers");
        // LiteLLM's COHERE_API_BASE may carry the operation's path; the base is what precedes it.
        let api_base = api_base?
            .trim_end_matches("/v2/chat")
            .trim_end_matches("/v1/chat")
            .trim_end_matches("/v2")
            .to_string();
        let key = key?;
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", key.expose())) {
            headers.insert(header::AUTHORIZATION, sensitive(v));
        }
        Some(Cohere { api_base, headers })
    }
}

impl Provider for Cohere {
    fn name(&self) -> &'static str {
        "cohere"
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
        let (path, body) = match call.endpoint {
            Endpoint::Embeddings => ("/v2/embed", translate::embed_request(call)?),
            _ => ("/v2/chat", translate::chat_request(call)?),
        };
        let mut headers = self.headers.clone();
        if call.stream {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        let body =
            serde_json::to_vec(&body).map_err(|e| ProviderError::BadRequest(e.to_string()))?;
        Ok(UpstreamRequest {
            url: format!("{}{path}", self.api_base),
            headers,
            body: Bytes::from(body),
        })
    }

    fn complete(&self, call: &Outbound<'_>, body: Bytes) -> Result<Answer, ProviderError> {
        let (answer, usage, id) = match call.endpoint {
            Endpoint::Embeddings => {
                let base64 = call.wants_base64();
                translate::embed_answer(&body, call.requested, base64)?
            }
            _ => translate::chat_answer(&body, call.requested, now())?,
        };
        crate::provider::translated("cohere", &answer, usage, id.as_deref())
    }

    fn stream(&self, call: &Outbound<'_>, source: ByteStream) -> ByteStream {
        framing::translate(
            source,
            translate::StreamTranslator::new(call.requested, now()),
        )
    }

    fn error(&self, status: u16, _: &HeaderMap, body: &[u8]) -> ProviderError {
        crate::openai::upstream_error("cohere", status, body)
    }
}

#[cfg(test)]
mod tests;
