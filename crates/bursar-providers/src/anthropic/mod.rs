//! Anthropic's Messages API (`anthropic/<model>`): chat completions translated to
//! `POST {api_base}/v1/messages` and back, streamed or not, with `x-api-key` and
//! `anthropic-version`. `anthropic-beta` comes from the deployment's `extra_headers` or the
//! request's `extra_headers`.

pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;

use crate::endpoint::Endpoint;
use crate::error::ProviderError;
use crate::formats::chat::now;
use crate::framing;
use crate::json::JsonObject;
use crate::openai::sensitive;
use crate::params::Params;
use crate::provider::{Outbound, Provider, UpstreamRequest};
use crate::router::Answer;
use crate::sse::ByteStream;
use bursar_core::config::Deployment;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};

pub use request::JSON_TOOL;

pub const DEFAULT_API_BASE: &str = "https://api.anthropic.com";
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` when neither the request nor the model's listing gives one. LiteLLM falls
/// back to 128,000, which most Claude models refuse; 4,096 works on all of them.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

pub struct Anthropic {
    api_base: String,
    url: String,
    headers: HeaderMap,
    default_max_tokens: u64,
}

impl Anthropic {
    pub fn configure(d: &Deployment, params: &mut Params<'_>) -> Option<Anthropic> {
        let api_base = params.url(
            "api_base",
            &["ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"],
            Some(DEFAULT_API_BASE),
        );
        let key = params.required_secret("api_key", &["ANTHROPIC_API_KEY"], "an API key");
        let mut headers = params.headers("extra_headers");
        let api_base = api_base?;
        let key = key?;
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(API_VERSION),
        );
        if let Ok(v) = HeaderValue::from_str(key.expose()) {
            headers.insert(HeaderName::from_static("x-api-key"), sensitive(v));
        }
        let url = if api_base.ends_with("/v1/messages") {
            api_base.clone()
        } else if api_base.ends_with("/v1") {
            format!("{api_base}/messages")
        } else {
            format!("{api_base}/v1/messages")
        };
        let default_max_tokens = d
            .max_tokens
            .or(d.price().max_output_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS);
        Some(Anthropic {
            api_base,
            url,
            headers,
            default_max_tokens,
        })
    }
}

/// The `anthropic-beta` (and `anthropic-version`) a client set in the request's
/// `extra_headers`; other headers stay the gateway's to set.
fn client_headers(body: &JsonObject, headers: &mut HeaderMap) {
    let Some(Ok(serde_json::Value::Object(extra))) =
        body.get_as::<serde_json::Value>("extra_headers")
    else {
        return;
    };
    for (name, value) in extra {
        let lower = name.to_ascii_lowercase();
        let Some(value) = value.as_str() else {
            continue;
        };
        match lower.as_str() {
            "anthropic-beta" => {
                let joined = match headers.get("anthropic-beta").and_then(|v| v.to_str().ok()) {
                    Some(existing) => format!("{existing},{value}"),
                    None => value.to_string(),
                };
                if let Ok(v) = HeaderValue::from_str(&joined) {
                    headers.insert(HeaderName::from_static("anthropic-beta"), v);
                }
            }
            "anthropic-version" => {
                if let Ok(v) = HeaderValue::from_str(value) {
                    headers.insert(HeaderName::from_static("anthropic-version"), v);
                }
            }
            _ => {}
        }
    }
}

/// Anthropic's error `type` as its HTTP status (for errors inside a stream).
pub(crate) fn error_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

impl Provider for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.api_base)
    }

    fn supports(&self, endpoint: Endpoint) -> bool {
        endpoint == Endpoint::ChatCompletions
    }

    async fn request(
        &self,
        call: &Outbound<'_>,
        _: &reqwest::Client,
    ) -> Result<UpstreamRequest, ProviderError> {
        let translated = request::translate(call, self.default_max_tokens)?;
        let mut headers = self.headers.clone();
        client_headers(call.body, &mut headers);
        if call.stream {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        let body = serde_json::to_vec(&translated)
            .map_err(|e| ProviderError::BadRequest(e.to_string()))?;
        Ok(UpstreamRequest {
            url: self.url.clone(),
            headers,
            body: Bytes::from(body),
        })
    }

    fn complete(&self, call: &Outbound<'_>, body: Bytes) -> Result<Answer, ProviderError> {
        let (completion, usage) =
            response::translate(&body, call.requested, call.wants_json_schema(), now())?;
        crate::provider::translated("anthropic", &completion, usage, Some(&completion.id))
    }

    fn stream(&self, call: &Outbound<'_>, source: ByteStream) -> ByteStream {
        framing::translate(
            source,
            stream::StreamTranslator::new(call.requested, now(), call.wants_json_schema()),
        )
    }

    fn error(&self, status: u16, _: &HeaderMap, body: &[u8]) -> ProviderError {
        // Anthropic's error envelope is OpenAI's shape; its `type` classifies it there.
        crate::openai::upstream_error("anthropic", status, body)
    }
}

#[cfg(test)]
mod tests;
