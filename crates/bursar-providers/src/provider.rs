//! The provider interface: what every upstream adapter does for a call in an OpenAI format
//! (chat completions, completions, embeddings). An adapter owns its configuration (read from
//! the deployment's `litellm_params`), builds the upstream HTTP request (translation and
//! authentication), turns a success back into the OpenAI shape (complete or streamed), and
//! classifies the upstream's errors. Sending, retries, timeouts and the stream tap are shared
//! by all adapters (`transport`, `router`, `sse`).
//!
//! Dispatch is an enum, not a trait object: every adapter is known at compile time and the
//! per-request call costs one `match`.

use crate::anthropic::Anthropic;
use crate::azure::Azure;
use crate::bedrock::Bedrock;
use crate::cohere::Cohere;
use crate::endpoint::Endpoint;
use crate::error::ProviderError;
use crate::gemini::Gemini;
use crate::json::JsonObject;
use crate::ollama::Ollama;
use crate::openai::OpenAiCompatible;
use crate::params::{Built, Env, Params};
use crate::router::Answer;
use crate::sse::ByteStream;
use crate::vertex::Vertex;
use bursar_core::config::{ConfigProblem, Deployment};
use bytes::Bytes;
use http::HeaderMap;
use std::future::Future;

/// One call as an adapter sees it.
pub struct Outbound<'a> {
    pub endpoint: Endpoint,
    /// The client's body (in the endpoint's OpenAI format).
    pub body: &'a JsonObject,
    pub stream: bool,
    /// The public model name the client asked for: answers carry it back as `model`.
    pub requested: &'a str,
    /// The model name after the provider prefix (`claude-3-5-sonnet-20241022`).
    pub upstream_model: &'a str,
    /// Parameters the provider cannot take are dropped instead of refused
    /// (`drop_params` globally, on the deployment, or in the request).
    pub drop_params: bool,
}

impl Outbound<'_> {
    /// The client asked for `encoding_format: base64` embeddings.
    pub fn wants_base64(&self) -> bool {
        matches!(
            self.body.get_as::<&str>("encoding_format"),
            Some(Ok("base64"))
        )
    }

    /// `response_format` asks for a JSON schema (answered through
    /// [`crate::formats::chat::JSON_TOOL`] where the provider has no native schema mode).
    pub fn wants_json_schema(&self) -> bool {
        matches!(
            self.body.get_as::<serde_json::Value>("response_format"),
            Some(Ok(v)) if crate::formats::chat::response_schema(&v).is_some()
        )
    }

    /// Bursar's count of an embeddings request's input, for providers that report none.
    pub fn input_tokens(&self) -> u64 {
        self.body.get("input").map_or(0, |raw| {
            crate::prompt::count(crate::prompt::PromptKind::Input, raw.get())
        })
    }
}

/// A translated answer, serialised, as the router hands it on.
pub(crate) fn translated<T: serde::Serialize>(
    provider: &str,
    answer: &T,
    usage: crate::Usage,
    response_id: Option<&str>,
) -> Result<Answer, ProviderError> {
    let body = serde_json::to_vec(answer).map_err(|e| ProviderError::InvalidResponse {
        provider: provider.to_string(),
        detail: e.to_string(),
    })?;
    Ok(Answer::Complete {
        body: Bytes::from(body),
        usage: Some(usage),
        response_id: response_id.and_then(crate::sse::usable_id),
    })
}

/// An HTTP request ready to send.
pub struct UpstreamRequest {
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What each provider module implements.
pub trait Provider {
    /// LiteLLM's `custom_llm_provider` name.
    fn name(&self) -> &'static str;

    /// The base URL calls go to, for logs and the `x-litellm-model-api-base` header.
    fn api_base(&self) -> Option<&str>;

    /// Whether the provider serves this endpoint at all.
    fn supports(&self, endpoint: Endpoint) -> bool;

    /// The upstream request for a call: URL, headers with credentials, translated body.
    /// `http` is the gateway's client, for adapters whose credentials need a call of their
    /// own (Vertex AI's OAuth tokens).
    fn request(
        &self,
        call: &Outbound<'_>,
        http: &reqwest::Client,
    ) -> impl Future<Output = Result<UpstreamRequest, ProviderError>> + Send;

    /// A complete success body, in the OpenAI shape, with its usage.
    fn complete(&self, call: &Outbound<'_>, body: Bytes) -> Result<Answer, ProviderError>;

    /// A streamed success as OpenAI chat-completion chunks (`data: {…}` events, `[DONE]`).
    fn stream(&self, call: &Outbound<'_>, source: ByteStream) -> ByteStream;

    /// A non-success answer as a classified error carrying the provider's message.
    fn error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError;

    /// The model name prices are listed under, when it differs from what follows the
    /// provider prefix (Bedrock's `converse/` route prefix).
    fn upstream_model(&self) -> Option<&str> {
        None
    }
}

/// Every adapter Bursar has.
pub enum Adapter {
    OpenAi(OpenAiCompatible),
    Azure(Azure),
    Anthropic(Anthropic),
    Ollama(Ollama),
    Cohere(Cohere),
    Gemini(Gemini),
    Bedrock(Bedrock),
    Vertex(Vertex),
    /// The built-in demo model: answers locally, without HTTP.
    Demo,
}

/// Calls `$body` with `$p` bound to the adapter behind an HTTP-speaking variant; `$demo`
/// for the demo model.
macro_rules! dispatch {
    ($adapter:expr, $p:ident => $body:expr, demo => $demo:expr) => {
        match $adapter {
            Adapter::OpenAi($p) => $body,
            Adapter::Azure($p) => $body,
            Adapter::Anthropic($p) => $body,
            Adapter::Ollama($p) => $body,
            Adapter::Cohere($p) => $body,
            Adapter::Gemini($p) => $body,
            Adapter::Bedrock($p) => $body,
            Adapter::Vertex($p) => $body,
            Adapter::Demo => $demo,
        }
    };
}
pub(crate) use dispatch;

impl Adapter {
    pub fn name(&self) -> &'static str {
        dispatch!(self, p => p.name(), demo => "bursar")
    }

    pub fn api_base(&self) -> Option<&str> {
        dispatch!(self, p => p.api_base(), demo => None)
    }

    pub fn supports(&self, endpoint: Endpoint) -> bool {
        dispatch!(self, p => p.supports(endpoint), demo => true)
    }

    pub fn upstream_model(&self) -> Option<&str> {
        dispatch!(self, p => p.upstream_model(), demo => None)
    }
}

/// LiteLLM providers Bursar recognises but does not speak yet.
const NOT_YET_SUPPORTED: &[&str] = &["huggingface", "sagemaker", "watsonx", "replicate"];

/// Builds a deployment's adapter from its `litellm_params`, or every problem with them
/// (a missing credential, a bad URL, an unknown provider), each named by its config path.
/// Also returns the deployment's own `drop_params`, and warnings for settings it ignores.
pub fn build(d: &Deployment, env: &Env<'_>) -> Result<Built<(Adapter, bool)>, Vec<ConfigProblem>> {
    let mut params = Params::new(d, env);
    let drop_params = params.flag("drop_params").unwrap_or(false);
    let adapter = match d.provider.as_str() {
        "bursar" => Some(Adapter::Demo),
        "azure" | "azure_ai" => Azure::configure(d, &mut params).map(Adapter::Azure),
        "anthropic" => Anthropic::configure(d, &mut params).map(Adapter::Anthropic),
        "ollama" | "ollama_chat" => Ollama::configure(d, &mut params).map(Adapter::Ollama),
        "cohere" | "cohere_chat" => Cohere::configure(&mut params).map(Adapter::Cohere),
        "gemini" => Gemini::configure(d, &mut params).map(Adapter::Gemini),
        "bedrock" => Bedrock::configure(d, &mut params).map(Adapter::Bedrock),
        "vertex_ai" => Vertex::configure(d, &mut params).map(Adapter::Vertex),
        name => match crate::openai::preset(name) {
            Some(preset) => OpenAiCompatible::configure(preset, &mut params).map(Adapter::OpenAi),
            None if NOT_YET_SUPPORTED.contains(&name) => {
                params.problem(
                    "model",
                    format!(
                        "provider {name:?} is not supported yet; use an OpenAI-compatible endpoint (e.g. openai/ or hosted_vllm/ with api_base)"
                    ),
                );
                None
            }
            None => {
                params.problem(
                    "model",
                    format!(
                        "unknown provider in model {:?}; prefix the model with its provider, e.g. openai/gpt-4o or hosted_vllm/<name>",
                        d.litellm_model
                    ),
                );
                None
            }
        },
    };
    params.finish(adapter.map(|a| (a, drop_params)))
}
