//! Anthropic's Messages API (`POST /v1/messages`), as the official SDK parses it: a
//! `message` object, or the event stream `message_start` → `content_block_start` /
//! `content_block_delta` / `content_block_stop` per block → `message_delta` →
//! `message_stop`, with `ping`s; errors as `{"type":"error","error":{…}}`.
//!
//! What it answers: a `thinking` block first when the request enables thinking; then, when
//! the request forces a tool (`tool_choice` `any` or `tool`), a `tool_use` block for it (two
//! for `any` with several tools, unless `disable_parallel_tool_use`); otherwise text in
//! `stream_chunks` pieces. Inputs are `{"city": "Paris"}` so tests can predict them.

use super::{MockBehaviour, Shared, observe, sse_response};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

pub const MESSAGE_ID: &str = "msg_01MockAnthropicAnswer";

fn error(status: u16, message: &str) -> Response {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// The blocks of the answer, complete.
fn blocks(b: &MockBehaviour, request: &Value) -> (Vec<Value>, &'static str) {
    let mut out = Vec::new();
    if request["thinking"]["type"] == "enabled" {
        out.push(
            json!({"type": "thinking", "thinking": "Let me think.", "signature": "c2lnbmF0dXJl"}),
        );
    }
    let tools: Vec<&str> = request["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    let choice = &request["tool_choice"];
    let forced: Vec<&str> = match choice["type"].as_str() {
        Some("tool") => choice["name"].as_str().into_iter().collect(),
        Some("any") if choice["disable_parallel_tool_use"] == true => {
            tools.iter().take(1).copied().collect()
        }
        Some("any") => tools.iter().take(2).copied().collect(),
        _ => Vec::new(),
    };
    if forced.is_empty() {
        let text: String = (0..b.stream_chunks.max(1))
            .map(|i| format!("part{i} "))
            .collect();
        out.push(json!({"type": "text", "text": text}));
        return (out, "end_turn");
    }
    for (i, name) in forced.iter().enumerate() {
        out.push(json!({"type": "tool_use", "id": format!("toolu_mock{i}"), "name": name, "input": {"city": "Paris"}}));
    }
    (out, "tool_use")
}

fn usage(b: &MockBehaviour, output: u64) -> Value {
    json!({
        "input_tokens": b.prompt_tokens,
        "output_tokens": output,
        "cache_creation_input_tokens": b.cache_creation_tokens,
        "cache_read_input_tokens": b.cache_read_tokens,
    })
}

pub async fn messages(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (b, request) = observe(&shared, &uri, &headers, &body).await;
    // The API takes `x-api-key` (what LiteLLM and Bursar send) or a bearer token (what the
    // SDK sends since 2.x).
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    if headers.get("x-api-key").is_none() && !bearer {
        return error(401, "x-api-key header is required");
    }
    if headers.get("anthropic-version").is_none() {
        return error(400, "anthropic-version header is required");
    }
    answer(&shared, &b, &request)
}

/// Vertex AI's Claude: `…/publishers/anthropic/models/{model}:rawPredict` or
/// `:streamRawPredict`, the model in the path, `anthropic_version` in the body.
pub async fn vertex(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (b, mut request) = observe(&shared, &uri, &headers, &body).await;
    if !headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "))
    {
        return error(
            401,
            "Request is missing required authentication credential.",
        );
    }
    // LiteLLM and Bursar send `vertex-2023-10-16`; the SDK sends its API version.
    if !request["anthropic_version"].is_string() || request.get("model").is_some() {
        return error(
            400,
            "anthropic_version is required and model is not allowed in the body",
        );
    }
    let path = uri.path();
    let model = path
        .rsplit_once("/models/")
        .and_then(|(_, m)| m.split_once(':'))
        .map_or("claude", |(m, _)| m);
    request["model"] = Value::String(model.to_string());
    answer(&shared, &b, &request)
}

fn answer(shared: &Arc<Shared>, b: &MockBehaviour, request: &Value) -> Response {
    if let Some(status) = b.error_status {
        return error(status, &b.error_message);
    }
    if request["max_tokens"].as_u64().is_none() {
        return error(400, "max_tokens: Field required");
    }
    let model = b.response_model.clone().unwrap_or_else(|| {
        request["model"]
            .as_str()
            .unwrap_or("claude-mock")
            .to_string()
    });
    let (content, stop_reason) = blocks(b, request);
    if request["stream"] != Value::Bool(true) {
        return axum::Json(json!({
            "id": MESSAGE_ID, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": null,
            "usage": usage(b, b.completion_tokens),
        }))
        .into_response();
    }
    let mut frames = Vec::new();
    let mut event = |name: &str, data: Value| {
        frames.push(Bytes::from(format!("event: {name}\ndata: {data}\n\n")));
    };
    event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": MESSAGE_ID, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage(b, 1),
        }}),
    );
    event("ping", json!({"type": "ping"}));
    for (index, block) in content.iter().enumerate() {
        match block["type"].as_str() {
            Some("text") => {
                event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
                );
                for i in 0..b.stream_chunks.max(1) {
                    event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": format!("part{i} ")}}),
                    );
                }
            }
            Some("thinking") => {
                event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
                );
                event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": block["thinking"]}}),
                );
                event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": block["signature"]}}),
                );
            }
            _ => {
                event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}),
                );
                // The input arrives in pieces, as Anthropic streams it.
                for piece in ["{\"city\"", ": \"Par", "is\"}"] {
                    event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}),
                    );
                }
            }
        }
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
    }
    event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": b.completion_tokens}}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    sse_response(shared, frames, b.chunk_delay)
}
