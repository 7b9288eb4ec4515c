//! The last stage: the HTTP answer — the body as the surface renders it, and LiteLLM's
//! response headers (call id, model id and group, api base, version, retries, cost,
//! duration, rate limits).

use crate::admission;
use crate::error::ApiError;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bursar_core::money::NanoUsd;
use bursar_providers::{ByteStream, Target};
use bytes::Bytes;
use std::time::Instant;

/// A complete JSON answer with its cost and duration.
pub fn complete(body: Bytes, started: Instant, cost: NanoUsd) -> Response {
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        HeaderName::from_static("x-litellm-response-duration-ms"),
        HeaderValue::from(started.elapsed().as_millis() as u64),
    );
    insert(h, "x-litellm-response-cost", &cost.as_usd().to_string());
    r
}

/// A streamed answer (server-sent events), unbuffered by proxies.
pub fn stream(events: ByteStream) -> Response {
    let mut r = Response::new(Body::from_stream(events));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    r
}

/// The headers every answer carries.
pub fn finish(
    mut response: Response,
    call_id: &str,
    target: &Target,
    attempts: u32,
    model: &str,
    limit_headers: Vec<(HeaderName, HeaderValue)>,
) -> Response {
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    insert(h, "x-litellm-call-id", call_id);
    insert(h, "x-litellm-model-id", &target.deployment.id);
    insert(h, "x-litellm-model-group", model);
    if let Some(base) = target.api_base() {
        insert(h, "x-litellm-model-api-base", base);
    }
    insert(h, "x-litellm-version", env!("CARGO_PKG_VERSION"));
    h.insert(
        HeaderName::from_static("x-litellm-attempted-retries"),
        HeaderValue::from(attempts.saturating_sub(1)),
    );
    h.reserve(limit_headers.len());
    for (name, value) in limit_headers {
        h.insert(name, value);
    }
    response
}

/// Keeps the overall rate-limit headers on an error response.
pub fn with_headers(mut e: ApiError, headers: &[(HeaderName, HeaderValue)]) -> ApiError {
    for (name, value) in headers {
        if let Some(known) = admission::OVERALL_HEADERS
            .iter()
            .find(|n| **n == name.as_str())
            && let Ok(value) = value.to_str()
        {
            e = e.with_header(known, value.to_string());
        }
    }
    e
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}
