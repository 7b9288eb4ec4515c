//! Ollama's native API as the official `ollama` SDK parses it: `/api/chat`, `/api/generate`
//! and `/api/embed`; streams (Ollama's default, unless `"stream": false`) are NDJSON lines
//! ending with a `done: true` line that carries the token counts; errors are
//! `{"error": "…"}`. With tools in a chat request it calls the first one with
//! `{"city": "Paris"}`.

use super::{MockBehaviour, Shared, observe};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

const CREATED_AT: &str = "2026-12-02T10:00:00.000000Z";

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(json!({"error": message}))).into_response()
}

fn done_line(b: &MockBehaviour, model: &str, key: &str, last: Value) -> Value {
    let mut line = json!({
        "model": model, "created_at": CREATED_AT, "done": true, "done_reason": "stop",
        "total_duration": 1_000_000, "load_duration": 1_000, "prompt_eval_count": b.prompt_tokens,
        "prompt_eval_duration": 1_000, "eval_count": b.completion_tokens, "eval_duration": 1_000,
    });
    line[key] = last;
    line
}

fn ndjson(shared: &Arc<Shared>, lines: Vec<Value>) -> Response {
    shared.stream_started.store(true, Ordering::SeqCst);
    shared.streams_finished.fetch_add(1, Ordering::SeqCst);
    let body: Vec<u8> = lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn start(
    shared: &Arc<Shared>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(MockBehaviour, Value, String, bool), Response> {
    let (b, request) = observe(shared, uri, headers, body).await;
    if let Some(status) = b.error_status {
        return Err(error(status, &b.error_message));
    }
    let Some(model) = request["model"].as_str().map(str::to_string) else {
        return Err(error(400, "model is required"));
    };
    let stream = request["stream"] != Value::Bool(false);
    Ok((b, request, model, stream))
}

pub async fn chat(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (b, request, model, stream) = match start(&shared, &uri, &headers, &body).await {
        Ok(ok) => ok,
        Err(e) => return e,
    };
    let tool = request["tools"][0]["function"]["name"].as_str();
    let parts: Vec<String> = (0..b.stream_chunks.max(1))
        .map(|i| format!("part{i} "))
        .collect();
    let message = |content: &str| json!({"role": "assistant", "content": content});
    let final_message = match tool {
        Some(name) => {
            json!({"role": "assistant", "content": "", "tool_calls": [{"function": {"name": name, "arguments": {"city": "Paris"}}}]})
        }
        None => message(""),
    };
    if !stream {
        let full = match tool {
            Some(_) => final_message,
            None => message(&parts.concat()),
        };
        return axum::Json(done_line(&b, &model, "message", full)).into_response();
    }
    let mut lines: Vec<Value> = match tool {
        Some(_) => Vec::new(),
        None => parts
            .iter()
            .map(|p| json!({"model": model, "created_at": CREATED_AT, "message": message(p), "done": false}))
            .collect(),
    };
    if tool.is_some() {
        lines.push(json!({"model": model, "created_at": CREATED_AT, "message": final_message, "done": false}));
    }
    lines.push(done_line(&b, &model, "message", message("")));
    ndjson(&shared, lines)
}

pub async fn generate(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (b, _, model, stream) = match start(&shared, &uri, &headers, &body).await {
        Ok(ok) => ok,
        Err(e) => return e,
    };
    let parts: Vec<String> = (0..b.stream_chunks.max(1))
        .map(|i| format!("part{i} "))
        .collect();
    if !stream {
        let mut line = done_line(&b, &model, "response", Value::String(parts.concat()));
        line["context"] = json!([1, 2, 3]);
        return axum::Json(line).into_response();
    }
    let mut lines: Vec<Value> = parts
        .iter()
        .map(|p| json!({"model": model, "created_at": CREATED_AT, "response": p, "done": false}))
        .collect();
    lines.push(done_line(
        &b,
        &model,
        "response",
        Value::String(String::new()),
    ));
    ndjson(&shared, lines)
}

pub async fn embed(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (b, request) = observe(&shared, &uri, &headers, &body).await;
    if let Some(status) = b.error_status {
        return error(status, &b.error_message);
    }
    let count = match &request["input"] {
        Value::String(_) => 1,
        Value::Array(items) => items.len(),
        _ => return error(400, "input is required"),
    };
    axum::Json(json!({
        "model": request["model"],
        "embeddings": vec![json!([0.1, 0.2, 0.3]); count],
        "total_duration": 1_000_000, "load_duration": 1_000,
        "prompt_eval_count": b.prompt_tokens,
    }))
    .into_response()
}
