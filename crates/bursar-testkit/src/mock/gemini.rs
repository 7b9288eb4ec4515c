//! Google's Generative Language API as the official `google-genai` SDK parses it:
//! `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` (SSE of
//! partial responses, the last with `finishReason` and full `usageMetadata`) and
//! `:batchEmbedContents`; errors are `{"error": {"code", "message", "status"}}`. The same
//! handlers answer Vertex AI's `/v1/projects/{p}/locations/{l}/publishers/google/models/…`.
//! With function declarations it calls the first with `{"city": "Paris"}`.

use super::{MockBehaviour, Shared, observe, sse_response};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

pub const RESPONSE_ID: &str = "8Tk8aKqcLsSeqtsPpMTK4QQ";

fn error(status: u16, message: &str) -> Response {
    let name = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        axum::Json(json!({"error": {"code": status, "message": message, "status": name}})),
    )
        .into_response()
}

fn usage(b: &MockBehaviour) -> Value {
    json!({
        "promptTokenCount": b.prompt_tokens,
        "candidatesTokenCount": b.completion_tokens,
        "totalTokenCount": b.prompt_tokens + b.completion_tokens,
        // Part of the prompt, never more than it.
        "cachedContentTokenCount": b.cache_read_tokens.min(b.prompt_tokens),
    })
}

/// `…/models/{model}:{operation}` for AI Studio and Vertex alike.
pub async fn models(
    State(shared): State<Arc<Shared>>,
    Path(rest): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (b, request) = observe(&shared, &uri, &headers, &body).await;
    let authorized = headers.contains_key("x-goog-api-key")
        || headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer "));
    if !authorized {
        return error(
            401,
            "Request is missing required authentication credential.",
        );
    }
    if let Some(status) = b.error_status {
        return error(status, &b.error_message);
    }
    let Some((_, operation)) = rest.rsplit_once(':') else {
        return error(404, "unknown method");
    };
    match operation {
        "generateContent" => axum::Json(answer(&b, &request, true)).into_response(),
        "streamGenerateContent" => stream(&shared, &b, &request),
        "batchEmbedContents" => {
            let n = request["requests"].as_array().map_or(0, Vec::len);
            axum::Json(json!({"embeddings": vec![json!({"values": [0.1, 0.2, 0.3]}); n]}))
                .into_response()
        }
        _ => error(404, "unknown method"),
    }
}

fn tool_of(request: &Value) -> Option<&str> {
    request["tools"][0]["functionDeclarations"][0]["name"].as_str()
}

fn answer(b: &MockBehaviour, request: &Value, last: bool) -> Value {
    let parts: Vec<Value> = match tool_of(request) {
        Some(name) => vec![json!({"functionCall": {"name": name, "args": {"city": "Paris"}}})],
        None => vec![
            json!({"text": (0..b.stream_chunks.max(1)).map(|i| format!("part{i} ")).collect::<String>()}),
        ],
    };
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if last {
        candidate["finishReason"] = json!("STOP");
    }
    json!({"candidates": [candidate], "usageMetadata": usage(b), "modelVersion": "gemini-mock", "responseId": RESPONSE_ID})
}

fn stream(shared: &Arc<Shared>, b: &MockBehaviour, request: &Value) -> Response {
    let mut frames = Vec::new();
    if tool_of(request).is_some() {
        frames.push(answer(b, request, true));
    } else {
        let n = b.stream_chunks.max(1);
        for i in 0..n {
            let mut chunk = json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": format!("part{i} ")}]}, "index": 0}],
                "usageMetadata": {"promptTokenCount": b.prompt_tokens, "totalTokenCount": b.prompt_tokens},
                "modelVersion": "gemini-mock", "responseId": RESPONSE_ID,
            });
            if i + 1 == n {
                chunk["candidates"][0]["finishReason"] = json!("STOP");
                chunk["usageMetadata"] = usage(b);
            }
            frames.push(chunk);
        }
    }
    let frames = frames
        .into_iter()
        .map(|f| Bytes::from(format!("data: {f}\r\n\r\n")))
        .collect();
    sse_response(shared, frames, b.chunk_delay)
}

/// Vertex AI's publisher path: the same answers.
pub async fn vertex(
    state: State<Arc<Shared>>,
    Path((_, _, rest)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    models(state, Path(rest), uri, headers, body).await
}
