//! The OpenAI-compatible data plane: chat completions, text completions and embeddings,
//! streamed or not. Handlers parse and validate the body, hand it to the router, and render
//! the answer with LiteLLM's response headers.

use crate::admission::{self, Admitted};
use crate::auth::{KeySnapshot, Principal};
use crate::charge::{Charge, Origin, Outcome};
use crate::end_users::{self, EndUserSnapshot};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bursar_core::config::BudgetAdmission;
use bursar_core::money::NanoUsd;
use bursar_core::pricing::Price;
use bursar_limits::{Admission, Demand, Scope};
use bursar_providers::prompt::{self, PromptKind};
use bursar_providers::{Answer, Call, Endpoint, JsonObject, StreamSummary};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// OpenAI's chat completions, routed to a deployment of the requested model.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    operation_id = "chat_completion",
    tag = crate::openapi::CHAT,
    request_body = super::schema::ChatCompletionRequest,
    responses(super::schema::OpenAiAnswer),
)]
pub async fn chat_completions(
    state: State<AppState>,
    principal: Extension<Principal>,
    request: Request,
) -> Result<Response, ApiError> {
    proxy(state, principal, Endpoint::ChatCompletions, request).await
}

/// OpenAI's legacy text completions.
#[utoipa::path(
    post,
    path = "/v1/completions",
    operation_id = "completion",
    tag = crate::openapi::COMPLETIONS,
    request_body = super::schema::CompletionRequest,
    responses(super::schema::OpenAiAnswer),
)]
pub async fn completions(
    state: State<AppState>,
    principal: Extension<Principal>,
    request: Request,
) -> Result<Response, ApiError> {
    proxy(state, principal, Endpoint::Completions, request).await
}

/// OpenAI's embeddings.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    operation_id = "embeddings",
    tag = crate::openapi::EMBEDDINGS,
    request_body = super::schema::EmbeddingRequest,
    responses(super::schema::OpenAiAnswer),
)]
pub async fn embeddings(
    state: State<AppState>,
    principal: Extension<Principal>,
    request: Request,
) -> Result<Response, ApiError> {
    proxy(state, principal, Endpoint::Embeddings, request).await
}

/// The client's address for the spend log: the first valid address of `X-Forwarded-For`
/// when the gateway is configured to trust it, else the connection's peer.
fn requester_ip(parts: &axum::http::request::Parts, use_forwarded: bool) -> Option<String> {
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

async fn proxy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    endpoint: Endpoint,
    request: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (call_id, request_id) = call_id(&parts.headers);
    let bytes = read_body(
        body,
        &parts.headers,
        state.config().general.max_request_bytes,
        state.config().connections.body_read_timeout,
    )
    .await?;
    let mut parsed = parse_request(endpoint, &bytes)?;
    let stream = parsed.stream;
    let requested = parsed.model.clone();
    let model = match &principal {
        Principal::VirtualKey(snapshot) => resolve_alias(snapshot, &requested),
        Principal::MasterKey => requested.clone(),
    };

    let end_user = match end_users::end_user_id(&parts.headers, &parsed.body)? {
        Some(id) => Some(
            state
                .end_users()
                .resolve(state.store(), &state.config().admission, &id)
                .await
                .map_err(|e| ApiError::from(e.as_ref()))?,
        ),
        None => None,
    };
    if let Some(eu) = &end_user
        && eu.row.blocked
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!(
                "User blocked from making LLM API Calls. User={}",
                eu.row.user_id
            ),
        )
        .with_param("user"));
    }
    let (admitted, price) = admit(
        &state,
        &principal,
        end_user.as_deref(),
        endpoint,
        &mut parsed,
        &requested,
        &model,
    )
    .await?;
    let limit_headers = admitted
        .as_ref()
        .and_then(Admitted::reservation)
        .map(admission::ratelimit_headers)
        .unwrap_or_default();
    let charge = Charge::new(
        Origin {
            request_id,
            call_id: &call_id,
            endpoint,
            principal: &principal,
            end_user: end_user.as_ref().map(|e| e.row.user_id.as_str()),
            model_group: &model,
            body: &parsed.body,
            requester_ip: requester_ip(&parts, state.config().general.use_x_forwarded_for),
        },
        admitted,
        price,
        state.ledger().cloned(),
    );
    let hold = Arc::new(Mutex::new(Some(charge)));

    let finish_call_id = call_id.clone();
    let finish_model = model.clone();
    let finish_hold = hold.clone();
    let on_stream_finish = Box::new(move |summary: StreamSummary| {
        tracing::debug!(
            call_id = %finish_call_id,
            model = %finish_model,
            completed = summary.completed,
            usage = ?summary.usage,
            "stream finished"
        );
        if let Some(mut charge) = take(&finish_hold) {
            charge.answered(summary.response_id.clone());
            let usage = summary.usage.as_ref();
            match (&summary.error, summary.completed) {
                (None, true) => charge.finish_now(Outcome::Success(usage)),
                (Some(e), _) => charge.finish_now(Outcome::Incomplete(usage, &e.to_string())),
                (None, false) => {
                    charge.finish_now(Outcome::Incomplete(usage, "client closed the stream"))
                }
            }
        }
    });
    let routed = match state
        .router()
        .send(Call {
            endpoint,
            model: model.clone(),
            body: parsed.body,
            stream,
            on_stream_finish: Some(on_stream_finish),
            abort: Some(state.drain().clone()),
        })
        .await
    {
        Ok(routed) => routed,
        Err(e) => {
            if let Some(mut charge) = take(&hold) {
                // The router does not say which deployment failed; a group of one does.
                if let Some([only]) = state.router().deployments(&model) {
                    charge.routed(only);
                }
                charge.finish(Outcome::Failed(&e.to_string())).await;
            }
            return Err(with_headers(e.into(), &limit_headers));
        }
    };
    if let Some(charge) = lock(&hold).as_mut() {
        charge.routed(&routed.target);
    }

    let mut response = match routed.answer {
        Answer::Complete {
            body,
            usage,
            response_id,
        } => {
            tracing::debug!(call_id = %call_id, model = %model, usage = ?usage, user = ?principal.user_id(), "call complete");
            let cost = match take(&hold) {
                Some(mut charge) => {
                    charge.answered(response_id);
                    charge.finish(Outcome::Success(usage.as_ref())).await
                }
                None => NanoUsd::ZERO,
            };
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
        Answer::Stream(events) => {
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
    };
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    insert(h, "x-litellm-call-id", &call_id);
    insert(h, "x-litellm-model-id", &routed.target.deployment.id);
    insert(h, "x-litellm-model-group", &model);
    if let Some(base) = routed.target.api_base() {
        insert(h, "x-litellm-model-api-base", base);
    }
    insert(h, "x-litellm-version", env!("CARGO_PKG_VERSION"));
    h.insert(
        HeaderName::from_static("x-litellm-attempted-retries"),
        HeaderValue::from(routed.attempts.saturating_sub(1)),
    );
    h.reserve(limit_headers.len());
    for (name, value) in limit_headers {
        h.insert(name, value);
    }
    Ok(response)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn take(hold: &Mutex<Option<Charge>>) -> Option<Charge> {
    lock(hold).take()
}

/// Keeps the overall rate-limit headers on an error response.
fn with_headers(mut e: ApiError, headers: &[(HeaderName, HeaderValue)]) -> ApiError {
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

/// The model a key's or its team's alias stands for (`aliases`, `model_aliases`).
fn resolve_alias(snapshot: &KeySnapshot, requested: &str) -> String {
    let from = |map: &Value| {
        map.get(requested)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    from(&snapshot.key.aliases)
        .or_else(|| snapshot.team.as_ref().and_then(|t| from(&t.model_aliases)))
        .unwrap_or_else(|| requested.to_string())
}

/// Model access, then one reservation over every scope that applies: the key's (with its
/// user, team, membership and organization), the model's, and the end user's.
async fn admit(
    state: &AppState,
    principal: &Principal,
    end_user: Option<&EndUserSnapshot>,
    endpoint: Endpoint,
    parsed: &mut ParsedRequest,
    requested: &str,
    model: &str,
) -> Result<(Option<Admitted>, Price), ApiError> {
    let names: &[&str] = if requested == model {
        &[requested]
    } else {
        &[requested, model]
    };
    let snapshot = match principal {
        Principal::VirtualKey(snapshot) => Some(snapshot.as_ref()),
        Principal::MasterKey => None,
    };
    if let Some(snapshot) = snapshot
        && let Err(denied) = snapshot.grants().check(state.catalog(), names)
    {
        tracing::info!(reason = %denied.internal_message(), "model access denied");
        return Err(
            ApiError::new(StatusCode::FORBIDDEN, denied.error_type(), denied.message())
                .with_param("model"),
        );
    }
    let per_model = snapshot.map_or_else(Vec::new, |s| admission::model_scopes(s, names));
    let own: &[Scope] = snapshot.map_or(&[], |s| s.scopes.as_slice());
    let end_user_scope = end_user.and_then(|e| e.scope.clone());
    let scopes: Cow<'_, [Scope]> = if per_model.is_empty() && end_user_scope.is_none() {
        Cow::Borrowed(own)
    } else {
        Cow::Owned(
            own.iter()
                .cloned()
                .chain(per_model)
                .chain(end_user_scope)
                .collect(),
        )
    };
    if scopes.is_empty() {
        return Ok((None, Price::FREE));
    }
    // The dearest deployment of the group: the estimate must not fall short.
    let price = state
        .router()
        .deployments(model)
        .unwrap_or_default()
        .iter()
        .map(|t| t.deployment.price())
        .max_by(|a, b| a.weight().total_cmp(&b.weight()))
        .unwrap_or(Price::FREE);
    let budgeted = scopes
        .iter()
        .any(|s| s.limits.budget.is_some() && !price.is_free());
    let needs_tokens = budgeted || scopes.iter().any(|s| s.limits.tpm.is_some());
    let rule = state.config().admission.budget_admission;
    let demand = if needs_tokens {
        let produces_text = endpoint != Endpoint::Embeddings;
        let prompt = match (rule, budgeted) {
            // A bound no tokenizer exceeds: every token is at least one byte of the body,
            // and the body's JSON syntax outweighs any per-message or per-tool framing.
            (BudgetAdmission::Strict, true) => parsed.body_bytes as u64,
            _ => parsed
                .body
                .get(endpoint.prompt_field())
                .map_or(0, |raw| prompt::count(prompt_kind(endpoint), raw.get())),
        };
        let mut max_tokens = ["max_tokens", "max_completion_tokens"]
            .iter()
            .find_map(|f| parsed.body.get_as::<u64>(f).and_then(Result::ok));
        let default_output = state.config().admission.default_output_tokens;
        if rule == BudgetAdmission::Strict && budgeted && produces_text && max_tokens.is_none() {
            // The worst case must be known: the completion is capped at what is reserved.
            let cap = price
                .max_output_tokens
                .map_or(default_output, |m| default_output.min(m));
            parsed
                .body
                .set("max_tokens", &cap)
                .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
            max_tokens = Some(cap);
        }
        let mut demand =
            admission::estimate(&price, prompt, max_tokens, default_output, produces_text);
        demand.up_to_remaining = rule == BudgetAdmission::Litellm;
        demand
    } else {
        Demand::default()
    };
    let now = bursar_store::now_ms();
    match state.limiter().reserve(&scopes, demand, now).await {
        Ok(Admission::Granted(reservation)) => Ok((
            Some(Admitted::new(state.limiter().clone(), reservation, demand)),
            price,
        )),
        Ok(Admission::Refused(refusal)) => Err(admission::refusal_error(
            &refusal,
            snapshot,
            state.config().admission.budget_exceeded_status,
            now,
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_server_error",
            format!("Admission control is unavailable: {e}"),
        )),
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// The call id echoed in `x-litellm-call-id` (the client's when it is a sane token, else a
/// fresh UUID) and the request id the spend ledger records. They are the same unless the
/// client chose the call id: ledger writes are idempotent by request id, so a repeated
/// client id must not make a second request count as a duplicate of the first.
fn call_id(headers: &HeaderMap) -> (String, String) {
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
struct ParsedRequest {
    model: String,
    stream: bool,
    body: JsonObject,
    /// The body's size, the strict budget rule's prompt bound.
    body_bytes: usize,
}

fn parse_request(endpoint: Endpoint, bytes: &[u8]) -> Result<ParsedRequest, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "Request body is empty; expected a JSON object",
        ));
    }
    let body = JsonObject::parse(bytes)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON in request body: {e}")))?;
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

fn prompt_kind(endpoint: Endpoint) -> PromptKind {
    match endpoint {
        Endpoint::ChatCompletions => PromptKind::Messages,
        Endpoint::Completions | Endpoint::Embeddings => PromptKind::Input,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(endpoint: Endpoint, body: &str) -> String {
        match parse_request(endpoint, body.as_bytes()) {
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
        )
        .unwrap();
        assert_eq!(p.model, "m");
        assert!(p.stream);
        let p = parse_request(Endpoint::Embeddings, br#"{"model":"e","input":["a"]}"#).unwrap();
        assert!(!p.stream);
    }
}
