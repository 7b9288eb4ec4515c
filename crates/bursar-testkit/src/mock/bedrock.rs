//! AWS Bedrock Runtime as the official SDK (boto3 `bedrock-runtime`) parses it:
//! `POST /model/{modelId}/converse` (a Converse answer), `/converse-stream` (AWS
//! event-stream frames: `messageStart`, `contentBlockStart`/`Delta`/`Stop`, `messageStop`,
//! `metadata`), `/invoke` for Titan and Cohere embeddings; errors carry `x-amzn-ErrorType`.
//! Requests must be SigV4-signed (`AWS4-HMAC-SHA256 …`) or carry a Bedrock API key. With
//! tools it calls the first one with `{"city": "Paris"}`.

use super::{MockBehaviour, Shared, observe, sse_response};
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

fn error(status: u16, message: &str) -> Response {
    let kind = match status {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (code, axum::Json(json!({"message": message}))).into_response();
    if let Ok(v) = kind.parse() {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

fn event(kind: &str, payload: Value) -> Bytes {
    let message = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(kind.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ));
    let mut out = Vec::new();
    // Writing a well-formed message into a Vec does not fail.
    let _ = write_message_to(&message, &mut out);
    Bytes::from(out)
}

fn usage(b: &MockBehaviour) -> Value {
    json!({"inputTokens": b.prompt_tokens, "outputTokens": b.completion_tokens,
           "totalTokens": b.prompt_tokens + b.completion_tokens,
           "cacheReadInputTokens": b.cache_read_tokens, "cacheWriteInputTokens": b.cache_creation_tokens})
}

pub async fn model(
    State(shared): State<Arc<Shared>>,
    Path((model_id, operation)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (b, request) = observe(&shared, &uri, &headers, &body).await;
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signed =
        auth.starts_with("AWS4-HMAC-SHA256 Credential=") && headers.contains_key("x-amz-date");
    if !signed && !auth.starts_with("Bearer ") {
        return error(403, "Missing Authentication Token");
    }
    if let Some(status) = b.error_status {
        return error(status, &b.error_message);
    }
    let tool = request["toolConfig"]["tools"][0]["toolSpec"]["name"].as_str();
    let text: String = (0..b.stream_chunks.max(1))
        .map(|i| format!("part{i} "))
        .collect();
    match operation.as_str() {
        "converse" => {
            let content = match tool {
                Some(name) => {
                    json!([{"toolUse": {"toolUseId": "tooluse_mock0", "name": name, "input": {"city": "Paris"}}}])
                }
                None => json!([{"text": text}]),
            };
            let stop = if tool.is_some() {
                "tool_use"
            } else {
                "end_turn"
            };
            axum::Json(json!({
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop, "usage": usage(&b), "metrics": {"latencyMs": 1},
            }))
            .into_response()
        }
        "converse-stream" => {
            let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
            match tool {
                Some(name) => {
                    frames.push(event("contentBlockStart", json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_mock0", "name": name}}})));
                    for piece in ["{\"city\": ", "\"Paris\"}"] {
                        frames.push(event(
                            "contentBlockDelta",
                            json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}}),
                        ));
                    }
                }
                None => {
                    for i in 0..b.stream_chunks.max(1) {
                        frames.push(event(
                            "contentBlockDelta",
                            json!({"contentBlockIndex": 0, "delta": {"text": format!("part{i} ")}}),
                        ));
                    }
                }
            }
            frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
            let stop = if tool.is_some() {
                "tool_use"
            } else {
                "end_turn"
            };
            frames.push(event("messageStop", json!({"stopReason": stop})));
            frames.push(event(
                "metadata",
                json!({"usage": usage(&b), "metrics": {"latencyMs": 1}}),
            ));
            let mut r = sse_response(&shared, frames, b.chunk_delay);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/vnd.amazon.eventstream"),
            );
            r
        }
        "invoke" if model_id.contains("titan-embed") => axum::Json(json!({
            "embedding": [0.1, 0.2, 0.3], "inputTextTokenCount": b.prompt_tokens,
        }))
        .into_response(),
        "invoke" if model_id.contains("cohere.embed") => {
            let n = request["texts"].as_array().map_or(0, Vec::len);
            axum::Json(json!({"embeddings": vec![json!([0.1, 0.2, 0.3]); n], "id": "e", "response_type": "embeddings_floats", "texts": request["texts"]}))
                .into_response()
        }
        _ => error(404, "unknown operation"),
    }
}
