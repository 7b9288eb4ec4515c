//! The pipeline's first stage: the request as a surface hands it over — its ids, its body
//! read within the size and time limits, and the fields every surface shares checked.

use crate::error::ApiError;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode, header};
use bursar_providers::prompt::{self, PromptKind};
use bursar_providers::{Endpoint, JsonObject};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};

/// The client's address for the spend log: the first valid address of `X-Forwarded-For`
/// when the gateway is configured to trust it, else the connection's peer.
pub fn requester_ip(parts: &axum::http::request::Parts, use_forwarded: bool) -> Option<String> {
    let forwarded = use_forwarded
        .then(|| parts.headers.get("x-forwarded-for"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| first.trim().parse::<IpAddr>().ok());
    forwarded
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
        .map(|ip| ip.to_string())
}

/// The call id echoed in `x-litellm-call-id` (the client's when it is a sane token, else a
/// fresh UUID) and the request id the spend ledger records. They are the same unless the
/// client chose the call id: ledger writes are idempotent by request id, so a repeated
/// client id must not make a second request count as a duplicate of the first.
pub fn call_id(headers: &HeaderMap) -> (String, String) {
    // Time-ordered (v7): spend-log rows are keyed by this id, so new rows land at the end of
    // the primary-key index instead of on a random page (far fewer pages written per batch).
    let fresh = uuid::Uuid::now_v7().to_string();
    match headers
        .get("x-litellm-call-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
    {
        Some(client) => (client.to_string(), fresh),
        None => (fresh.clone(), fresh),
    }
}

/// Reads the whole body, refusing more than `limit` bytes (by header first, then by count)
/// and a body that has not arrived within `within` (a client stalling mid-body holds its
/// connection no longer than that).
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    within: std::time::Duration,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let Ok(collected) = tokio::time::timeout(within, Limited::new(body, limit).collect()).await
    else {
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout_error",
            format!(
                "The request body did not arrive within {}s",
                within.as_secs_f64()
            ),
        ));
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "Could not read the request body: {e}"
        ))),
    }
}

/// A validated data-plane request.
pub struct ParsedRequest {
    pub model: String,
    pub stream: bool,
    pub body: JsonObject,
    /// The body's size, the strict budget rule's prompt bound.
    pub body_bytes: usize,
}

/// `path_model`: the model a route names (Azure's deployment path); it wins over the body's.
pub fn parse_request(
    endpoint: Endpoint,
    bytes: &[u8],
    path_model: Option<String>,
) -> Result<ParsedRequest, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "Request body is empty; expected a JSON object",
        ));
    }
    let mut body = JsonObject::parse(bytes)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON in request body: {e}")))?;
    if let Some(model) = path_model.filter(|m| !m.trim().is_empty()) {
        bursar_core::text::check_str("model", &model)?;
        body.set("model", &model)
            .map_err(|e| ApiError::bad_request(format!("Invalid model: {e}")))?;
    }
    // The fields that reach the ledger (tags, spend-log metadata, the end user) must be
    // storable; the rest of the body is passed through untouched.
    for field in ["metadata", "litellm_metadata", "tags", "user"] {
        if let Some(raw) = body.get(field) {
            bursar_core::text::check_json_field(field, raw.get().as_bytes())?;
        }
    }
    let model = match body.get_as::<String>("model") {
        None => {
            return Err(
                ApiError::bad_request("Missing required parameter: 'model'").with_param("model")
            );
        }
        Some(Err(_)) => {
            return Err(
                ApiError::bad_request("Invalid type for 'model': expected a string")
                    .with_param("model"),
            );
        }
        Some(Ok(m)) if m.trim().is_empty() => {
            return Err(
                ApiError::bad_request("Invalid value for 'model': must not be empty")
                    .with_param("model"),
            );
        }
        Some(Ok(m)) => m,
    };
    let stream = match body.get_as::<Value>("stream") {
        None | Some(Ok(Value::Null)) => false,
        Some(Ok(Value::Bool(b))) => b,
        Some(_) => {
            return Err(
                ApiError::bad_request("Invalid type for 'stream': expected a boolean")
                    .with_param("stream"),
            );
        }
    };
    if stream && !endpoint.supports_streaming() {
        return Err(
            ApiError::bad_request("Streaming is not supported for embeddings").with_param("stream"),
        );
    }
    let required = endpoint.prompt_field();
    // Checked on its JSON text: a tree of a large prompt would cost many times its size.
    match body.get(required) {
        Some(raw) if raw.get().trim() != "null" => {
            prompt::validate(prompt_kind(endpoint), required, raw.get())
                .map_err(|message| ApiError::bad_request(message).with_param(required))?;
        }
        _ => {
            return Err(
                ApiError::bad_request(format!("Missing required parameter: '{required}'"))
                    .with_param(required),
            );
        }
    }
    if let Some(options) = body.get_as::<Value>("stream_options")
        && !matches!(options, Ok(Value::Object(_) | Value::Null))
    {
        return Err(
            ApiError::bad_request("Invalid type for 'stream_options': expected an object")
                .with_param("stream_options"),
        );
    }
    Ok(ParsedRequest {
        model,
        stream,
        body,
        body_bytes: bytes.len(),
    })
}

pub fn prompt_kind(endpoint: Endpoint) -> PromptKind {
    match endpoint {
        Endpoint::ChatCompletions => PromptKind::Messages,
        Endpoint::Completions | Endpoint::Embeddings => PromptKind::Input,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(endpoint: Endpoint, body: &str) -> String {
        match parse_request(endpoint, body.as_bytes(), None) {
            Ok(_) => panic!("{body} should be rejected"),
            Err(e) => {
                assert_eq!(e.status, StatusCode::BAD_REQUEST);
                e.message
            }
        }
    }

    #[test]
    fn rejects_bad_bodies_with_named_problems() {
        assert!(err(Endpoint::ChatCompletions, "").contains("empty"));
        assert!(err(Endpoint::ChatCompletions, "{not json").contains("Invalid JSON"));
        assert!(err(Endpoint::ChatCompletions, "[1]").contains("Invalid JSON"));
        assert!(err(Endpoint::ChatCompletions, r#"{"messages":[]}"#).contains("'model'"));
        assert!(err(Endpoint::ChatCompletions, r#"{"model":7,"messages":[]}"#).contains("'model'"));
        assert!(err(Endpoint::ChatCompletions, r#"{"model":"m"}"#).contains("'messages'"));
        assert!(
            err(
                Endpoint::ChatCompletions,
                r#"{"model":"m","messages":"hi"}"#
            )
            .contains("'messages'")
        );
        assert!(
            err(Endpoint::ChatCompletions, r#"{"model":"m","messages":[]}"#)
                .contains("at least one")
        );
        assert!(
            err(
                Endpoint::ChatCompletions,
                r#"{"model":"m","messages":[{"content":"x"}]}"#
            )
            .contains("'role'")
        );
        assert!(
            err(
                Endpoint::ChatCompletions,
                r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#
            )
            .contains("'stream'")
        );
        assert!(err(Endpoint::Completions, r#"{"model":"m"}"#).contains("'prompt'"));
        assert!(err(Endpoint::Embeddings, r#"{"model":"m","input":[]}"#).contains("'input'"));
        assert!(
            err(
                Endpoint::Embeddings,
                r#"{"model":"m","input":"x","stream":true}"#
            )
            .contains("Streaming")
        );
    }

    #[test]
    fn accepts_valid_requests() {
        let p = parse_request(
            Endpoint::ChatCompletions,
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#,
            None,
        )
        .unwrap();
        assert_eq!(p.model, "m");
        assert!(p.stream);
        let p = parse_request(
            Endpoint::Embeddings,
            br#"{"model":"e","input":["a"]}"#,
            None,
        )
        .unwrap();
        assert!(!p.stream);
        // A route's model (Azure's deployment path) wins, and may stand alone.
        let p = parse_request(
            Endpoint::Embeddings,
            br#"{"input":["a"]}"#,
            Some("az".into()),
        )
        .unwrap();
        assert_eq!(p.model, "az");
        assert_eq!(p.body.get_as::<String>("model").unwrap().unwrap(), "az");
    }
}
