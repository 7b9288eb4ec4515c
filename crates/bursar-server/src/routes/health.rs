//! Health probes: liveness and readiness are public (for orchestrators); `/health` calls every
//! deployment and is for admins.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bursar_core::config::ModelMode;
use bursar_limits::FailMode;
use bursar_providers::{Answer, Call, Endpoint, JsonObject, Target};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/health/liveliness",
    operation_id = "health_liveliness",
    tag = crate::openapi::HEALTH,
    responses((status = 200, content_type = "application/json", body = String, example = json!("I'm alive!"))),
)]
pub async fn liveliness() -> Json<&'static str> {
    Json("I'm alive!")
}

/// Readiness: the database answers (and Redis, under `redis_fail_mode: fail_closed`).
#[utoipa::path(
    get,
    path = "/health/readiness",
    operation_id = "health_readiness",
    tag = crate::openapi::HEALTH,
    responses(
        (status = 200, description = "Ready", body = serde_json::Value),
        (status = 503, description = "Not ready (database or Redis unreachable)", body = serde_json::Value),
    ),
)]
pub async fn readiness(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let db = match tokio::time::timeout(Duration::from_secs(2), state.store().ping()).await {
        Ok(Ok(())) => "connected",
        _ => "disconnected",
    };
    // Under fail_closed an unreachable Redis refuses every admitted request: not ready.
    let redis = match &state.admission_status().redis {
        Some(r) => Some((r.health.probe().await, r.fail_mode)),
        None => None,
    };
    let cache = redis.map(|(up, _)| if up { "redis" } else { "redis (unreachable)" });
    let ready = redis.is_none_or(|(up, mode)| up || mode == FailMode::Open);
    let body = json!({
        "status": if ready { "healthy" } else { "unhealthy" },
        "db": db,
        "cache": cache,
        "litellm_version": env!("CARGO_PKG_VERSION"),
        "success_callbacks": [],
        "use_aiohttp_transport": false,
        "log_level": "INFO",
        "is_detailed_debug": false,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus text exposition of this instance's admission backend and shared-state
/// figures. Public, like LiteLLM's `/metrics` by default.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = crate::openapi::HEALTH,
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)),
)]
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    let counters = state.counters();
    let admission = state.admission_status();
    metric(
        "bursar_redis_admission",
        "gauge",
        "1 when admission counters are shared through Redis, 0 when they are per instance.",
        u64::from(admission.redis.is_some()),
    );
    if let Some(redis) = &admission.redis {
        metric(
            "bursar_redis_up",
            "gauge",
            "1 while Redis answers admission calls, 0 from a failure until it answers again.",
            u64::from(redis.health.is_up()),
        );
        metric(
            "bursar_redis_failures_total",
            "counter",
            "Admission calls to Redis that failed or timed out.",
            redis.health.failures(),
        );
        metric(
            "bursar_admission_fallback_total",
            "counter",
            "Requests admitted on this instance's own counters because Redis was unreachable (fail_open).",
            redis.fallbacks.load(Relaxed),
        );
    }
    metric(
        "bursar_budget_reset_runs_total",
        "counter",
        "Passes of the budget reset job run by this instance (the lease holder).",
        counters.reset_runs.load(Relaxed),
    );
    metric(
        "bursar_budgets_reset_total",
        "counter",
        "Budgets whose spend this instance reset at the end of their period.",
        counters.budgets_reset.load(Relaxed),
    );
    metric(
        "bursar_invalidations_received_total",
        "counter",
        "Cache invalidations received from other instances.",
        counters.invalidations_received.load(Relaxed),
    );
    metric(
        "bursar_connections_refused_total",
        "counter",
        "Connections answered 503 and closed because max_connections were open.",
        counters.connections_refused.load(Relaxed),
    );
    if let Some(ledger) = state.ledger() {
        metric(
            "bursar_ledger_dead_letter_total",
            "counter",
            "Spend events the database refused for their content, moved to the dead-letter file.",
            ledger.stats().dead_lettered,
        );
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HealthQuery {
    /// Check only the deployments of this model name.
    model: Option<String>,
    /// Check only the deployment with this `model_info.id`.
    model_id: Option<String>,
}

/// Calls every selected deployment with a one-token request and sorts them by outcome.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health_endpoint",
    tag = crate::openapi::HEALTH,
    params(HealthQuery),
    responses((status = 200, description = "`healthy_endpoints` and `unhealthy_endpoints`", body = serde_json::Value)),
)]
pub async fn check_all(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<HealthQuery>,
) -> Result<Json<Value>, ApiError> {
    if !principal.is_proxy_admin() {
        return Err(ApiError::forbidden(
            "Only proxy admins can run health checks on deployments.",
        ));
    }
    let selected: Vec<Arc<Target>> = state
        .router()
        .all_deployments()
        .filter(|t| {
            query
                .model
                .as_ref()
                .is_none_or(|m| *m == t.deployment.model_name || *m == t.deployment.litellm_model)
        })
        .filter(|t| {
            query
                .model_id
                .as_ref()
                .is_none_or(|id| *id == t.deployment.id)
        })
        .cloned()
        .collect();
    if let Some(id) = &query.model_id
        && selected.is_empty()
    {
        return Err(ApiError::not_found(format!("Model with ID {id} not found")));
    }
    let results: Vec<(Arc<Target>, Result<(), String>)> = futures_util::stream::iter(selected)
        .map(|d| {
            let state = state.clone();
            async move {
                let outcome = probe(&state, &d).await;
                (d, outcome)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut healthy = Vec::new();
    let mut unhealthy = Vec::new();
    for (t, outcome) in results {
        let d = &t.deployment;
        let mut entry = json!({
            "model": d.litellm_model,
            "model_name": d.model_name,
            "model_id": d.id,
            "api_base": t.api_base(),
        });
        match outcome {
            Ok(()) => healthy.push(entry),
            Err(e) => {
                entry["error"] = Value::String(e);
                unhealthy.push(entry);
            }
        }
    }
    Ok(Json(json!({
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
        "healthy_count": healthy.len(),
        "unhealthy_count": unhealthy.len(),
    })))
}

async fn probe(state: &AppState, t: &Target) -> Result<(), String> {
    let d = &t.deployment;
    let (endpoint, body) = match d.mode {
        Some(ModelMode::Embedding) => (Endpoint::Embeddings, json!({"input": "ping"})),
        Some(ModelMode::Completion) => (
            Endpoint::Completions,
            json!({"prompt": "ping", "max_tokens": 1}),
        ),
        _ => (
            Endpoint::ChatCompletions,
            json!({"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}),
        ),
    };
    let body = JsonObject::parse(body.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let call = Call {
        endpoint,
        model: d.model_name.clone(),
        body,
        stream: false,
        on_stream_finish: None,
        abort: None,
    };
    match state.router().send_to(t, call).await {
        Ok(Answer::Complete { .. } | Answer::Stream(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
