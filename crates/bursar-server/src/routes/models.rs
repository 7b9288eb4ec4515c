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

/// The public model names this principal may call: every served model its key, team,
/// membership, owner and organization allow, plus its key's and team's aliases of those.
fn visible_models(state: &AppState, principal: &Principal) -> Vec<String> {
    let catalog = state.catalog();
    let Principal::VirtualKey(snapshot) = principal else {
        return catalog.names().to_vec();
    };
    let grants = snapshot.grants();
    let mut visible: Vec<String> = catalog
        .names()
        .iter()
        .filter(|n| grants.check(catalog, &[n.as_str()]).is_ok())
        .cloned()
        .collect();
    let aliases = [
        Some(&snapshot.key.aliases),
        snapshot.team.as_ref().map(|t| &t.model_aliases),
    ];
    for map in aliases.into_iter().flatten().filter_map(Value::as_object) {
        for (alias, target) in map {
            let Some(target) = target.as_str() else {
                continue;
            };
            if catalog.names().iter().any(|n| n == target)
                && !visible.contains(alias)
                && grants.check(catalog, &[alias, target]).is_ok()
            {
                visible.push(alias.clone());
            }
        }
    }
    visible
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Json<Value> {
    let data: Vec<Value> = visible_models(&state, &principal)
        .iter()
        .map(|m| model_object(m))
        .collect();
    Json(json!({"data": data, "object": "list"}))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if visible_models(&state, &principal).contains(&model) {
        Ok(Json(model_object(&model)))
    } else {
        Err(ApiError::not_found(format!("The model '{model}' does not exist")).with_param("model"))
    }
}
