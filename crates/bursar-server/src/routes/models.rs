//! `GET /v1/models` and `GET /v1/models/{model}` (OpenAI's list shape).

use super::schema::{Model, ModelList};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

/// LiteLLM reports this fixed `created` value for every model.
const CREATED: u64 = 1_677_610_602;

fn model_object(name: &str) -> Model {
    Model {
        id: name.to_string(),
        object: "model",
        created: CREATED,
        owned_by: "openai",
    }
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

/// The models this key may call, with the aliases its key and team define.
#[utoipa::path(
    get,
    path = "/v1/models",
    operation_id = "model_list",
    tag = crate::openapi::MODELS,
    responses((status = 200, body = ModelList)),
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Json<ModelList> {
    let data = visible_models(&state, &principal)
        .iter()
        .map(|m| model_object(m))
        .collect();
    Json(ModelList {
        data,
        object: "list",
    })
}

/// One model this key may call; 404 for any other.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}",
    operation_id = "model_info",
    tag = crate::openapi::MODELS,
    params(("model_id" = String, Path, description = "A model name or alias")),
    responses((status = 200, body = Model)),
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(model): Path<String>,
) -> Result<Json<Model>, ApiError> {
    if visible_models(&state, &principal).contains(&model) {
        Ok(Json(model_object(&model)))
    } else {
        Err(ApiError::not_found(format!("The model '{model}' does not exist")).with_param("model"))
    }
}
