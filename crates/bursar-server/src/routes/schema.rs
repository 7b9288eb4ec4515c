//! OpenAI request and response shapes, as the data-plane routes document them. The handlers
//! forward the body as a JSON object and check only what routing and limits need (`model`,
//! `stream`, `user`, …), so every other OpenAI field is accepted and passed on.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

/// The data-plane routes' answer: OpenAI's JSON, or with `stream: true` Server-Sent Events.
pub struct OpenAiAnswer;

impl IntoResponses for OpenAiAnswer {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let answer = ResponseBuilder::new()
            .description("OpenAI's response; with `stream: true`, Server-Sent Events")
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(Value::schema())).build(),
            )
            .content(
                "text/event-stream",
                ContentBuilder::new().schema(Some(String::schema())).build(),
            )
            .build();
        BTreeMap::from([("200".to_string(), answer.into())])
    }
}

/// One chat message (`role` `system`, `user`, `assistant`, `tool`, …).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChatCompletionMessage {
    role: String,
    /// A string, or a list of content parts.
    content: Option<Value>,
    name: Option<String>,
}

/// `POST /v1/chat/completions` (OpenAI's request; other OpenAI fields pass through).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChatCompletionRequest {
    /// A model name served by the gateway (or an alias the key or team defines).
    model: String,
    #[schema(min_items = 1)]
    messages: Vec<ChatCompletionMessage>,
    /// Answer as Server-Sent Events (`text/event-stream`), ending with `data: [DONE]`.
    stream: Option<bool>,
    stream_options: Option<Map<String, Value>>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    n: Option<i64>,
    stop: Option<Value>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    response_format: Option<Map<String, Value>>,
    /// The end user (customer) the request is for; their budget applies.
    user: Option<String>,
    metadata: Option<Map<String, Value>>,
}

/// `POST /v1/completions` (OpenAI's legacy text completion).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CompletionRequest {
    model: String,
    /// A string or a list of strings.
    prompt: Value,
    stream: Option<bool>,
    max_tokens: Option<i64>,
    temperature: Option<f64>,
    user: Option<String>,
}

/// `POST /v1/embeddings`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EmbeddingRequest {
    model: String,
    /// A string, a list of strings, or token ids.
    input: Value,
    encoding_format: Option<String>,
    dimensions: Option<i64>,
    user: Option<String>,
}

/// One entry of `GET /v1/models`.
#[derive(serde::Serialize, ToSchema)]
pub struct Model {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}

/// `GET /v1/models`.
#[derive(serde::Serialize, ToSchema)]
pub struct ModelList {
    pub data: Vec<Model>,
    pub object: &'static str,
}
