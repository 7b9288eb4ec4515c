//! Vertex AI (`vertex_ai/<model>`): Gemini models through
//! `…/publishers/google/models/{model}:generateContent` (the Gemini translation), Claude
//! models through `…/publishers/anthropic/models/{model}:rawPredict` (the Anthropic
//! translation, with `anthropic_version: vertex-2023-10-16`), embeddings through `:predict`.
//! Calls carry a Google OAuth token from `vertex_credentials` (the JSON or a path to it) or
//! `GOOGLE_APPLICATION_CREDENTIALS`, cached and refreshed (`auth`). The project comes from
//! `vertex_project`, `VERTEXAI_PROJECT` or the credentials; the location from
//! `vertex_location` / `VERTEXAI_LOCATION`, default `us-central1`.

mod auth;

use crate::anthropic;
use crate::endpoint::Endpoint;
use crate::error::ProviderError;
use crate::formats::chat::now;
use crate::framing;
use crate::gemini::translate as google;
use crate::openai::sensitive;
use crate::params::Params;
use crate::provider::{Outbound, Provider, UpstreamRequest};
use crate::router::Answer;
use crate::sse::ByteStream;
use bursar_core::config::Deployment;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};

pub const DEFAULT_LOCATION: &str = "us-central1";
/// The Messages API version Vertex AI's Claude models take.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publisher {
    Google,
    Anthropic,
}

pub struct Vertex {
    publisher: Publisher,
    api_base: String,
    /// `{api_base}/v1/projects/{p}/locations/{l}/publishers/{publisher}/models/{model}`.
    model_url: String,
    /// Boxed: the RSA key makes it large, and the adapters share one enum.
    tokens: Box<auth::TokenSource>,
    headers: HeaderMap,
    default_max_tokens: u64,
}

impl Vertex {
    pub fn configure(d: &Deployment, params: &mut Params<'_>) -> Option<Vertex> {
        let credentials =
            params.string_or_env("vertex_credentials", &["GOOGLE_APPLICATION_CREDENTIALS"]);
        let tokens = match credentials {
            None => {
                params.problem(
                    "vertex_credentials",
                    "provider vertex_ai needs credentials: set litellm_params.vertex_credentials (a service-account key's JSON or its path) or the environment variable GOOGLE_APPLICATION_CREDENTIALS".into(),
                );
                None
            }
            Some(c) => {
                let json = if c.trim_start().starts_with('{') {
                    Ok(c)
                } else {
                    std::fs::read_to_string(&c).map_err(|e| format!("cannot read {c}: {e}"))
                };
                match json.and_then(|j| auth::TokenSource::from_json(&j)) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        params.problem("vertex_credentials", e);
                        None
                    }
                }
            }
        };
        let project = params
            .string_or_env(
                "vertex_project",
                &["VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT"],
            )
            .or_else(|| tokens.as_ref().and_then(|t| t.project_id.clone()));
        if project.is_none() && tokens.is_some() {
            params.problem(
                "vertex_project",
                "provider vertex_ai needs a project: set litellm_params.vertex_project or VERTEXAI_PROJECT".into(),
            );
        }
        let location = params
            .string_or_env("vertex_location", &["VERTEXAI_LOCATION", "VERTEX_LOCATION"])
            .unwrap_or_else(|| DEFAULT_LOCATION.into());
        let default_base = if location == "global" {
            "https://aiplatform.googleapis.com".to_string()
        } else {
            format!("https://{location}-aiplatform.googleapis.com")
        };
        let api_base = params.url("api_base", &[], Some(&default_base));
        let mut headers = params.headers("extra_headers");
        let (tokens, project, api_base) = (tokens?, project?, api_base?);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let model = d.upstream_model.as_str();
        let publisher = if model.starts_with("claude") {
            Publisher::Anthropic
        } else {
            Publisher::Google
        };
        let publisher_name = match publisher {
            Publisher::Google => "google",
            Publisher::Anthropic => "anthropic",
        };
        Some(Vertex {
            publisher,
            model_url: format!(
                "{api_base}/v1/projects/{project}/locations/{location}/publishers/{publisher_name}/models/{model}"
            ),
            api_base,
            tokens: Box::new(tokens),
            headers,
            default_max_tokens: d
                .max_tokens
                .or(d.price().max_output_tokens)
                .unwrap_or(anthropic::DEFAULT_MAX_TOKENS),
        })
    }

    fn body(&self, call: &Outbound<'_>) -> Result<(String, Value), ProviderError> {
        let url = |op: &str| format!("{}:{op}", self.model_url);
        Ok(match (self.publisher, call.endpoint, call.stream) {
            (_, Endpoint::Embeddings, _) => (url("predict"), embed_request(call)?),
            (Publisher::Google, _, true) => (
                url("streamGenerateContent?alt=sse"),
                google::chat_request(call, "vertex_ai")?,
            ),
            (Publisher::Google, _, false) => (
                url("generateContent"),
                google::chat_request(call, "vertex_ai")?,
            ),
            (Publisher::Anthropic, _, stream) => {
                let mut body = anthropic::request::translate(call, self.default_max_tokens)?;
                if let Value::Object(map) = &mut body {
                    map.remove("model");
                    map.insert(
                        "anthropic_version".into(),
                        Value::String(ANTHROPIC_VERSION.into()),
                    );
                }
                (
                    url(if stream {
                        "streamRawPredict"
                    } else {
                        "rawPredict"
                    }),
                    body,
                )
            }
        })
    }
}

/// Vertex's text embeddings (`:predict` with `instances`).
fn embed_request(call: &Outbound<'_>) -> Result<Value, ProviderError> {
    let fields = crate::formats::chat::supported_fields(
        call,
        "vertex_ai",
        &["input", "model", "dimensions", "encoding_format"],
    )?;
    let texts: Vec<Value> = match fields.get("input") {
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items.clone(),
        _ => {
            return Err(ProviderError::BadRequest(
                "vertex_ai embeds text: input must be a string or a list of strings".into(),
            ));
        }
    };
    let mut body =
        json!({"instances": texts.into_iter().map(|t| json!({"content": t})).collect::<Vec<_>>()});
    if let Some(d) = fields.get("dimensions").filter(|d| !d.is_null()) {
        body["parameters"] = json!({"outputDimensionality": d});
    }
    Ok(body)
}

fn embed_answer(call: &Outbound<'_>, bytes: &[u8]) -> Result<(Value, crate::Usage), ProviderError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        predictions: Vec<Prediction>,
    }
    #[derive(serde::Deserialize)]
    struct Prediction {
        embeddings: Embeddings,
    }
    #[derive(serde::Deserialize)]
    struct Embeddings {
        values: Vec<f64>,
        #[serde(default)]
        statistics: Option<Stats>,
    }
    #[derive(serde::Deserialize)]
    struct Stats {
        #[serde(default)]
        token_count: f64,
    }
    let a: Answer = serde_json::from_slice(bytes).map_err(|e| ProviderError::InvalidResponse {
        provider: "vertex_ai".into(),
        detail: format!("not a predict answer: {e}"),
    })?;
    let tokens: u64 = a
        .predictions
        .iter()
        .map(|p| {
            p.embeddings
                .statistics
                .as_ref()
                .map_or(0.0, |s| s.token_count) as u64
        })
        .sum();
    let vectors = a
        .predictions
        .into_iter()
        .map(|p| p.embeddings.values)
        .collect();
    google::embedding_list(
        vectors,
        call.requested,
        call.wants_base64(),
        tokens,
        "vertex_ai",
    )
}

impl Provider for Vertex {
    fn name(&self) -> &'static str {
        "vertex_ai"
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.api_base)
    }

    fn supports(&self, endpoint: Endpoint) -> bool {
        match endpoint {
            Endpoint::ChatCompletions => true,
            Endpoint::Embeddings => self.publisher == Publisher::Google,
            Endpoint::Completions => false,
        }
    }

    async fn request(
        &self,
        call: &Outbound<'_>,
        http: &reqwest::Client,
    ) -> Result<UpstreamRequest, ProviderError> {
        let (url, body) = self.body(call)?;
        let token = self.tokens.token(http).await?;
        let mut headers = self.headers.clone();
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
            headers.insert(header::AUTHORIZATION, sensitive(v));
        }
        if call.stream {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        let body =
            serde_json::to_vec(&body).map_err(|e| ProviderError::BadRequest(e.to_string()))?;
        Ok(UpstreamRequest {
            url,
            headers,
            body: Bytes::from(body),
        })
    }

    fn complete(&self, call: &Outbound<'_>, body: Bytes) -> Result<Answer, ProviderError> {
        let (answer, usage, id) = match (self.publisher, call.endpoint) {
            (_, Endpoint::Embeddings) => {
                let (a, u) = embed_answer(call, &body)?;
                (a, u, None)
            }
            (Publisher::Google, _) => {
                google::chat_answer(&body, call.requested, now(), "vertex_ai")?
            }
            (Publisher::Anthropic, _) => {
                let (completion, usage) = anthropic::response::translate(
                    &body,
                    call.requested,
                    call.wants_json_schema(),
                    now(),
                )?;
                let id = Some(completion.id.clone());
                let value = serde_json::to_value(completion).map_err(|e| {
                    ProviderError::InvalidResponse {
                        provider: "vertex_ai".into(),
                        detail: e.to_string(),
                    }
                })?;
                (value, usage, id)
            }
        };
        crate::provider::translated("vertex_ai", &answer, usage, id.as_deref())
    }

    fn stream(&self, call: &Outbound<'_>, source: ByteStream) -> ByteStream {
        match self.publisher {
            Publisher::Google => framing::translate(
                source,
                google::StreamTranslator::new(call.requested, now(), "vertex_ai"),
            ),
            Publisher::Anthropic => framing::translate(
                source,
                anthropic::stream::StreamTranslator::new(
                    call.requested,
                    now(),
                    call.wants_json_schema(),
                ),
            ),
        }
    }

    fn error(&self, status: u16, _: &HeaderMap, body: &[u8]) -> ProviderError {
        crate::openai::upstream_error("vertex_ai", status, body)
    }
}

#[cfg(test)]
mod tests;
