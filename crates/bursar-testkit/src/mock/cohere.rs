//! Cohere's v2 API as the official `cohere` SDK (`ClientV2`) parses it: `POST /v2/chat`
//! (a chat response, or with `"stream": true` the typed event stream `message-start`,
//! `content-start`/`content-delta`/`content-end`, `tool-plan-delta`,
//! `tool-call-start`/`tool-call-delta`/`tool-call-end`, `message-end`) and `POST /v2/embed`;
//! errors are `{"message": "…"}`. With tools it calls the first one with `{"city":"Paris"}`.

use super::{MockBehaviour, Shared, observe, sse_response};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

pub const ANSWER_ID: &str = "c14c80c3-18eb-4519-9460-6c92edd8cfb4";

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(json!({"message": message}))).into_response()
}

fn usage(b: &MockBehaviour) -> Value {
    json!({
        "billed_units": {"input_tokens": b.prompt_tokens, "output_tokens": b.completion_tokens},
        "tokens": {"input_tokens": b.prompt_tokens, "output_tokens": b.completion_tokens},
    })
}

async fn checked(
    shared: &Arc<Shared>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(MockBehaviour, Value), Response> {
    let (b, request) = observe(shared, uri, headers, body).await;
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    if !bearer {
        return Err(error(401, "no api key supplied"));
    }
    if let Some(status) = b.error_status {
        return Err(error(status, &b.error_message));
    }
    Ok((b, request))
}

pub async fn chat(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (b, request) = match checked(&shared, &uri, &headers, &body).await {
        Ok(ok) => ok,
        Err(e) => return e,
    };
    let tool = request["tools"][0]["function"]["name"].as_str();
    let parts: Vec<String> = (0..b.stream_chunks.max(1))
        .map(|i| format!("part{i} "))
        .collect();
    if request["stream"] != Value::Bool(true) {
        let message = match tool {
            Some(name) => json!({"role": "assistant", "tool_plan": "I will call the tool.",
                "tool_calls": [{"id": "call_mock0", "type": "function", "function": {"name": name, "arguments": "{\"city\":\"Paris\"}"}}]}),
            None => {
                json!({"role": "assistant", "content": [{"type": "text", "text": parts.concat()}]})
            }
        };
        let finish = if tool.is_some() {
            "TOOL_CALL"
        } else {
            "COMPLETE"
        };
        return axum::Json(json!({"id": ANSWER_ID, "finish_reason": finish, "message": message, "usage": usage(&b)}))
            .into_response();
    }
    let mut frames = Vec::new();
    let mut event = |data: Value| {
        let kind = data["type"].as_str().unwrap_or_default().to_string();
        frames.push(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")));
    };
    event(
        json!({"type": "message-start", "id": ANSWER_ID, "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
    );
    match tool {
        Some(name) => {
            event(
                json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will call the tool."}}}),
            );
            event(
                json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": "call_mock0", "type": "function", "function": {"name": name, "arguments": ""}}}}}),
            );
            for piece in ["{\"city\":", "\"Paris\"}"] {
                event(
                    json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}}}),
                );
            }
            event(json!({"type": "tool-call-end", "index": 0}));
        }
        None => {
            event(
                json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
            );
            for p in &parts {
                event(
                    json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}}),
                );
            }
            event(json!({"type": "content-end", "index": 0}));
        }
    }
    let finish = if tool.is_some() {
        "TOOL_CALL"
    } else {
        "COMPLETE"
    };
    event(json!({"type": "message-end", "delta": {"finish_reason": finish, "usage": usage(&b)}}));
    sse_response(&shared, frames, b.chunk_delay)
}

pub async fn embed(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (b, request) = match checked(&shared, &uri, &headers, &body).await {
        Ok(ok) => ok,
        Err(e) => return e,
    };
    let Some(texts) = request["texts"].as_array() else {
        return error(400, "invalid request: texts is required");
    };
    if request["input_type"].as_str().is_none() {
        return error(
            400,
            "invalid request: valid input_type must be provided with the provided model",
        );
    }
    axum::Json(json!({
        "id": "embed-mock", "response_type": "embeddings_by_type",
        "embeddings": {"float": vec![json!([0.1, 0.2, 0.3]); texts.len()]},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": b.prompt_tokens}},
    }))
    .into_response()
}
