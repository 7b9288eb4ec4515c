//! `GET /v1/models` and `GET /v1/models/{model}` (OpenAI's list shape).

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

/// LiteLLM reports this fixed `created` value for every model.
const CREATED: u64 = 1_677_610_602;

fn model_object(name: &str) -> Value {
    json!({"id": name, "object": "model", "created": CREATED, "owned_by": "openai"})
}

/// The public model names this principal may call.
fn visible_models<'a>(state: &'a AppState, principal: &Principal) -> Vec<&'a str> {
    let names = state.router().model_names().iter().map(String::as_str);
    match principal {
        Principal::VirtualKey(snapshot) if !snapshot.key.models.is_empty() => names
            .filter(|n| snapshot.key.models.iter().any(|m| m == n))
            .collect(),
        _ => names.collect(),
    }
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Json<Value> {
    let data: Vec<Value> = visible_models(&state, &principal)
        .into_iter()
        .map(model_object)
        .collect();
    Json(json!({"data": data, "object": "list"}))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if visible_models(&state, &principal).contains(&model.as_str()) {
        Ok(Json(model_object(&model)))
    } else {
        Err(ApiError::not_found(format!("The model '{model}' does not exist")).with_param("model"))
    }
}
