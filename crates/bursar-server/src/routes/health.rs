//! Health probes: liveness and readiness are public (for orchestrators); `/health` calls every
//! deployment and is for admins.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Extension;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use bursar_core::config::{Deployment, ModelMode};
use bursar_providers::{Answer, Call, Endpoint, JsonObject};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub async fn liveliness() -> Json<&'static str> {
    Json("I'm alive!")
}

pub async fn readiness(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let db = match tokio::time::timeout(Duration::from_secs(2), state.store().ping()).await {
        Ok(Ok(())) => "connected",
        _ => "disconnected",
    };
    let body = json!({
        "status": "healthy",
        "db": db,
        "cache": null,
        "litellm_version": env!("CARGO_PKG_VERSION"),
        "success_callbacks": [],
        "use_aiohttp_transport": false,
        "log_level": "INFO",
        "is_detailed_debug": false,
    });
    (StatusCode::OK, Json(body))
}

#[derive(Debug, Deserialize)]
pub struct HealthQuery {
    model: Option<String>,
    model_id: Option<String>,
}

/// Calls every selected deployment with a one-token request and sorts them by outcome.
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
    let selected: Vec<Arc<Deployment>> = state
        .router()
        .all_deployments()
        .filter(|d| {
            query
                .model
                .as_ref()
                .is_none_or(|m| *m == d.model_name || *m == d.litellm_model)
        })
        .filter(|d| query.model_id.as_ref().is_none_or(|id| *id == d.id))
        .cloned()
        .collect();
    if let Some(id) = &query.model_id
        && selected.is_empty()
    {
        return Err(ApiError::not_found(format!("Model with ID {id} not found")));
    }
    let results: Vec<(Arc<Deployment>, Result<(), String>)> = futures_util::stream::iter(selected)
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
    for (d, outcome) in results {
        let mut entry = json!({
            "model": d.litellm_model,
            "model_name": d.model_name,
            "model_id": d.id,
            "api_base": d.effective_api_base(),
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

async fn probe(state: &AppState, d: &Arc<Deployment>) -> Result<(), String> {
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
    };
    match state.router().send_to(d, call).await {
        Ok(Answer::Complete { .. } | Answer::Stream(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
