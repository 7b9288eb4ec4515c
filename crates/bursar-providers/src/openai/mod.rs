//! OpenAI-compatible upstreams (`openai`, `hosted_vllm`, `groq`, …): `POST
//! {api_base}/chat/completions` and friends, with the deployment's key as a bearer token.
//! Pass-through: the client's body goes upstream untouched except `model` and the stream's
//! usage request, and the answer comes back untouched except `model`.

use crate::endpoint::Endpoint;
use crate::error::{ErrorClass, ProviderError};
use crate::json::JsonObject;
use crate::params::Params;
use crate::provider::{Outbound, Provider, UpstreamRequest};
use crate::router::Answer;
use crate::sse::ByteStream;
use crate::usage::Usage;
use bursar_core::keys::Secret;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use serde::Deserialize;
use serde_json::Value;

/// A provider that speaks the OpenAI wire format: its LiteLLM name, default base URL, and
/// the environment variables LiteLLM reads its key and base from.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub default_api_base: Option<&'static str>,
    pub key_env: &'static [&'static str],
    pub base_env: &'static [&'static str],
}

const fn compat(
    name: &'static str,
    default_api_base: Option<&'static str>,
    key_env: &'static [&'static str],
    base_env: &'static [&'static str],
) -> Preset {
    Preset {
        name,
        default_api_base,
        key_env,
        base_env,
    }
}

const OPENAI_KEY: &[&str] = &["OPENAI_API_KEY"];
const OPENAI_BASE: &[&str] = &["OPENAI_BASE_URL", "OPENAI_API_BASE"];

const PRESETS: &[Preset] = &[
    compat(
        "openai",
        Some("https://api.openai.com/v1"),
        OPENAI_KEY,
        OPENAI_BASE,
    ),
    compat(
        "text-completion-openai",
        Some("https://api.openai.com/v1"),
        OPENAI_KEY,
        OPENAI_BASE,
    ),
    compat("custom_openai", None, &[], &[]),
    compat("openai_like", None, &[], &[]),
    compat(
        "hosted_vllm",
        None,
        &["HOSTED_VLLM_API_KEY"],
        &["HOSTED_VLLM_API_BASE"],
    ),
    compat(
        "lm_studio",
        Some("http://localhost:1234/v1"),
        &["LM_STUDIO_API_KEY"],
        &["LM_STUDIO_API_BASE"],
    ),
    compat("llamafile", Some("http://127.0.0.1:8080/v1"), &[], &[]),
    compat(
        "groq",
        Some("https://api.groq.com/openai/v1"),
        &["GROQ_API_KEY"],
        &[],
    ),
    compat(
        "deepseek",
        Some("https://api.deepseek.com/v1"),
        &["DEEPSEEK_API_KEY"],
        &[],
    ),
    compat(
        "together_ai",
        Some("https://api.together.xyz/v1"),
        &["TOGETHERAI_API_KEY", "TOGETHER_AI_API_KEY"],
        &[],
    ),
    compat(
        "mistral",
        Some("https://api.mistral.ai/v1"),
        &["MISTRAL_API_KEY"],
        &[],
    ),
    compat(
        "fireworks_ai",
        Some("https://api.fireworks.ai/inference/v1"),
        &["FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY"],
        &[],
    ),
    compat(
        "openrouter",
        Some("https://openrouter.ai/api/v1"),
        &["OPENROUTER_API_KEY"],
        &[],
    ),
    compat("xai", Some("https://api.x.ai/v1"), &["XAI_API_KEY"], &[]),
    compat(
        "deepinfra",
        Some("https://api.deepinfra.com/v1/openai"),
        &["DEEPINFRA_API_KEY"],
        &[],
    ),
    compat(
        "perplexity",
        Some("https://api.perplexity.ai"),
        &["PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"],
        &[],
    ),
];

/// The OpenAI-compatible provider of this LiteLLM name.
pub fn preset(name: &str) -> Option<Preset> {
    PRESETS.iter().find(|p| p.name == name).copied()
}

pub struct OpenAiCompatible {
    preset: Preset,
    api_base: String,
    /// Everything but the body, built once: content type, bearer token, organization.
    headers: HeaderMap,
    urls: [String; 3],
}

impl OpenAiCompatible {
    pub fn configure(preset: Preset, params: &mut Params<'_>) -> Option<OpenAiCompatible> {
        let api_base = params.url("api_base", preset.base_env, preset.default_api_base);
        if api_base.is_none() && preset.default_api_base.is_none() {
            let name = preset.name;
            params.problem("api_base", format!("provider {name} needs an api_base"));
        }
        let key = params.secret_or_env("api_key", preset.key_env);
        let organization = params.string_or_env("organization", &["OPENAI_ORGANIZATION"]);
        let mut headers = params.headers("extra_headers");
        let api_base = api_base?;
        Some(OpenAiCompatible::new(
            preset,
            api_base,
            key,
            organization,
            &mut headers,
        ))
    }

    fn new(
        preset: Preset,
        api_base: String,
        key: Option<Secret>,
        organization: Option<String>,
        headers: &mut HeaderMap,
    ) -> OpenAiCompatible {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(key) = key
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
        {
            headers.insert(header::AUTHORIZATION, sensitive(v));
        }
        if let Some(org) = organization
            && let Ok(v) = HeaderValue::from_str(&org)
        {
            headers.insert("OpenAI-Organization", v);
        }
        let url = |e: Endpoint| format!("{api_base}{}", e.path());
        OpenAiCompatible {
            preset,
            urls: [
                url(Endpoint::ChatCompletions),
                url(Endpoint::Completions),
                url(Endpoint::Embeddings),
            ],
            api_base,
            headers: std::mem::take(headers),
        }
    }
}

pub(crate) fn sensitive(mut v: HeaderValue) -> HeaderValue {
    v.set_sensitive(true);
    v
}

/// The endpoint's slot in an adapter's per-endpoint URL table.
pub(crate) fn url_index(e: Endpoint) -> usize {
    match e {
        Endpoint::ChatCompletions => 0,
        Endpoint::Completions => 1,
        Endpoint::Embeddings => 2,
    }
}

impl Provider for OpenAiCompatible {
    fn name(&self) -> &'static str {
        self.preset.name
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
        let mut headers = self.headers.clone();
        if call.stream {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        Ok(UpstreamRequest {
            url: self.urls[url_index(call.endpoint)].clone(),
            headers,
            body: Bytes::from(pass_through_body(call)?),
        })
    }

    fn complete(&self, call: &Outbound<'_>, body: Bytes) -> Result<Answer, ProviderError> {
        finish_complete(body, call.requested, self.preset.name)
    }

    fn stream(&self, _: &Outbound<'_>, source: ByteStream) -> ByteStream {
        source
    }

    fn error(&self, status: u16, _: &HeaderMap, body: &[u8]) -> ProviderError {
        upstream_error(self.preset.name, status, body)
    }
}

/// The client's body with the deployment's model name, and usage requested for streams.
pub(crate) fn pass_through_body(call: &Outbound<'_>) -> Result<Vec<u8>, ProviderError> {
    let mut body = call.body.clone();
    let bad = |e: serde_json::Error| ProviderError::BadRequest(e.to_string());
    body.set("model", &call.upstream_model).map_err(bad)?;
    if call.stream {
        let mut options = match body.get_as::<Value>("stream_options") {
            Some(Ok(Value::Object(map))) => map,
            _ => serde_json::Map::new(),
        };
        options.insert("include_usage".into(), Value::Bool(true));
        body.set("stream_options", &options).map_err(bad)?;
    }
    Ok(body.to_vec())
}

/// Reads usage and puts the requested model name back into a complete JSON answer.
/// A successful answer must be a JSON object: anything else (an HTML error page behind a
/// `200`, a truncated body) is the upstream's failure, not a success to pass on.
pub(crate) fn finish_complete(
    bytes: Bytes,
    requested: &str,
    provider: &str,
) -> Result<Answer, ProviderError> {
    let Ok(mut object) = JsonObject::parse(&bytes) else {
        return Err(not_json(provider, &bytes));
    };
    let usage = object.get("usage").and_then(Usage::from_raw);
    let response_id = match object.get_as::<&str>("id") {
        Some(Ok(id)) => crate::sse::usable_id(id),
        _ => None,
    };
    let same_model = matches!(object.get_as::<&str>("model"), Some(Ok(m)) if m == requested);
    if same_model || !object.contains("model") || object.set("model", &requested).is_err() {
        return Ok(Answer::Complete {
            body: bytes,
            usage,
            response_id,
        });
    }
    Ok(Answer::Complete {
        body: Bytes::from(object.to_vec()),
        usage,
        response_id,
    })
}

/// A success that is not the JSON object the protocol promises.
pub(crate) fn not_json(provider: &str, bytes: &[u8]) -> ProviderError {
    let start = String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        .escape_default()
        .to_string();
    ProviderError::InvalidResponse {
        provider: provider.to_string(),
        detail: format!("the answer is not a JSON object (starts with \"{start}\")"),
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorBody>,
    detail: Option<serde_json::Value>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorBody {
    Object {
        message: Option<serde_json::Value>,
        #[serde(rename = "type")]
        kind: Option<String>,
        param: Option<serde_json::Value>,
        code: Option<serde_json::Value>,
    },
    Text(String),
}

/// Reads the message out of whatever error shape the upstream used.
pub fn upstream_error(provider: &str, status: u16, body: &[u8]) -> ProviderError {
    // A body that is a bare JSON string is its message.
    let text = match serde_json::from_slice::<String>(body) {
        Ok(s) => s,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    let mut code = None;
    let (message, kind, param) = match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(ErrorEnvelope {
            error:
                Some(ErrorBody::Object {
                    message,
                    kind,
                    param,
                    code: c,
                }),
            ..
        }) => {
            code = c.and_then(|c| c.as_str().map(str::to_string));
            (
                message.map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string)),
                kind,
                param.and_then(|p| p.as_str().map(str::to_string)),
            )
        }
        Ok(ErrorEnvelope {
            error: Some(ErrorBody::Text(message)),
            ..
        }) => (Some(message), None, None),
        Ok(ErrorEnvelope {
            detail: Some(d), ..
        }) => (
            Some(d.as_str().map_or_else(|| d.to_string(), str::to_string)),
            None,
            None,
        ),
        Ok(ErrorEnvelope {
            message: Some(m), ..
        }) => (Some(m), None, None),
        _ => (None, None, None),
    };
    let message = message.unwrap_or_else(|| {
        if text.is_empty() {
            format!("upstream returned HTTP {status} with an empty body")
        } else {
            text.chars().take(2_000).collect()
        }
    });
    let class = ErrorClass::detect(status, code.as_deref().or(kind.as_deref()), &message);
    ProviderError::Upstream {
        provider: provider.to_string(),
        status,
        message,
        kind,
        param,
        class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openai_error_shape() {
        let e = upstream_error(
            "openai",
            401,
            br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        );
        match e {
            ProviderError::Upstream {
                status,
                message,
                kind,
                ..
            } => {
                assert_eq!(status, 401);
                assert_eq!(message, "Incorrect API key provided");
                assert_eq!(kind.as_deref(), Some("invalid_request_error"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_detail_and_plain_text_errors() {
        let e = upstream_error("hosted_vllm", 400, br#"{"detail":"bad prompt"}"#);
        assert!(
            matches!(e, ProviderError::Upstream { ref message, .. } if message == "bad prompt")
        );
        let e = upstream_error("hosted_vllm", 502, b"Bad Gateway");
        assert!(
            matches!(e, ProviderError::Upstream { ref message, .. } if message == "Bad Gateway")
        );
        let e = upstream_error("hosted_vllm", 503, b"");
        assert!(
            matches!(e, ProviderError::Upstream { ref message, .. } if message.contains("empty body"))
        );
    }
}
