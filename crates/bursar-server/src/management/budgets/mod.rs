//! `/budget/*`: shared budget rows (LiteLLM's `budget_management_endpoints`). A budget row
//! holds a budget and limits that organizations, memberships, keys and end users point at.
//! Only proxy admins reach these routes (viewers may read).

use super::keys::actor;
pub mod dto;

use super::{BudgetInput, bad_field, json_body};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use bursar_store::{BudgetPatch, BudgetRow, NewBudget, StoreError};
use dto::{BudgetTable, ConfigList};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// `BudgetNewRequest`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = BudgetNewRequest)]
pub struct BudgetFields {
    budget_id: Option<String>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<f64>)]
    max_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<f64>)]
    soft_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    max_parallel_requests: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<i64>)]
    rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::nullable")]
    #[schema(value_type = Option<String>)]
    budget_duration: Option<Option<String>>,
    model_max_budget: Option<Map<String, Value>>,
    budget_reset_at: Option<String>,
}

impl BudgetFields {
    fn validate(
        self,
        current: Option<&BudgetRow>,
    ) -> Result<(Option<String>, BudgetPatch), ApiError> {
        let mut patch = BudgetInput {
            max_budget: self.max_budget,
            soft_budget: self.soft_budget,
            tpm_limit: self.tpm_limit,
            rpm_limit: self.rpm_limit,
            max_parallel_requests: self.max_parallel_requests,
            budget_duration: self.budget_duration,
        }
        .validate(
            current.and_then(|b| b.max_budget),
            current.and_then(|b| b.soft_budget),
        )?;
        if let Some(models) = self.model_max_budget {
            for (model, spec) in &models {
                let ok = spec.is_number()
                    || spec.as_object().is_some_and(|o| {
                        ["max_budget", "budget_limit"].iter().all(|f| {
                            o.get(*f)
                                .is_none_or(|v| v.is_null() || v.as_f64().is_some_and(|x| x >= 0.0))
                        })
                    });
                if !ok {
                    return Err(bad_field(
                        "model_max_budget",
                        format!(
                            "model_max_budget[{model}] must be a number or an object with a non-negative max_budget"
                        ),
                    ));
                }
            }
            patch.model_max_budget = Some(Value::Object(models));
        }
        if let Some(at) = &self.budget_reset_at {
            patch.budget_reset_at = Some(Some(super::date_time("budget_reset_at", at)?));
        }
        Ok((self.budget_id.filter(|b| !b.trim().is_empty()), patch))
    }
}

/// Everything cached from budget rows (principal snapshots, end users) is dropped, so the
/// next request sees the change.
fn forget_all(state: &AppState) {
    state.auth_cache().invalidate_all();
    state.end_users().invalidate_all();
}

/// Creates a reusable budget.
#[utoipa::path(
    post,
    path = "/budget/new",
    operation_id = "new_budget",
    tag = crate::openapi::BUDGETS,
    request_body = BudgetFields,
    responses((status = 200, body = BudgetTable)),
)]
pub async fn new_budget(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BudgetTable>, ApiError> {
    let fields: BudgetFields = json_body(&state, &headers, body).await?;
    let (id, patch) = fields.validate(None)?;
    let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let exists = || bad_field("budget_id", format!("Budget id = {id} already exists."));
    if state.store().budgets().find(&id).await?.is_some() {
        return Err(exists());
    }
    let new: NewBudget = patch.into_new(id.clone(), actor(&principal));
    let row = state
        .store()
        .budgets()
        .create(&new)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => exists(),
            other => other.into(),
        })?;
    Ok(Json(BudgetTable::new(&row)))
}

/// Updates a budget; absent fields are unchanged.
#[utoipa::path(
    post,
    path = "/budget/update",
    operation_id = "update_budget",
    tag = crate::openapi::BUDGETS,
    request_body = BudgetFields,
    responses((status = 200, body = BudgetTable)),
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BudgetTable>, ApiError> {
    let fields: BudgetFields = json_body(&state, &headers, body).await?;
    let id = fields
        .budget_id
        .clone()
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| bad_field("budget_id", "budget_id is required"))?;
    let current = state
        .store()
        .budgets()
        .find(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let (_, patch) = fields.validate(Some(&current))?;
    let row = state
        .store()
        .budgets()
        .update(&id, &patch, &actor(&principal))
        .await?
        .ok_or_else(|| not_found(&id))?;
    forget_all(&state);
    Ok(Json(BudgetTable::new(&row)))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Budget {id} not found")).with_param("budget_id")
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = BudgetRequest)]
pub struct InfoRequest {
    #[serde(default)]
    budgets: Vec<String>,
}

/// The named budgets.
#[utoipa::path(
    post,
    path = "/budget/info",
    operation_id = "info_budget",
    tag = crate::openapi::BUDGETS,
    request_body = InfoRequest,
    responses((status = 200, body = Vec<BudgetTable>)),
)]
pub async fn info(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Vec<BudgetTable>>, ApiError> {
    let r: InfoRequest = json_body(&state, &headers, body).await?;
    if r.budgets.is_empty() {
        return Err(bad_field(
            "budgets",
            "Specify list of budget id's to query. Passed in=[]",
        ));
    }
    let rows = state.store().budgets().find_many(&r.budgets).await?;
    Ok(Json(rows.iter().map(BudgetTable::new).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SettingsQuery {
    budget_id: Option<String>,
}

/// The settable fields of a budget row with their current values (LiteLLM's `ConfigList`).
#[utoipa::path(
    get,
    path = "/budget/settings",
    operation_id = "budget_settings",
    tag = crate::openapi::BUDGETS,
    params(SettingsQuery),
    responses((status = 200, body = Vec<ConfigList>)),
)]
pub async fn settings(
    State(state): State<AppState>,
    Query(q): Query<SettingsQuery>,
) -> Result<Json<Vec<ConfigList>>, ApiError> {
    let id = q
        .budget_id
        .filter(|b| !b.is_empty())
        .ok_or_else(|| super::missing("budget_id", "budget_id is required"))?;
    let row = state.store().budgets().find(&id).await?;
    let shown = row.as_ref().map(BudgetTable::audit).unwrap_or_default();
    let fields = [
        (
            "max_budget",
            "Float",
            "Maximum spend in USD before requests are refused",
        ),
        (
            "soft_budget",
            "Float",
            "Spend in USD at which alerts are sent",
        ),
        (
            "max_parallel_requests",
            "Integer",
            "Requests allowed in flight at once",
        ),
        ("tpm_limit", "Integer", "Tokens allowed per minute"),
        ("rpm_limit", "Integer", "Requests allowed per minute"),
        (
            "budget_duration",
            "String",
            "How often spend resets, e.g. 30s, 1h, 1d, 1mo",
        ),
    ];
    Ok(Json(
        fields
            .iter()
            .map(|(name, kind, description)| ConfigList {
                field_name: name.to_string(),
                field_type: kind.to_string(),
                field_description: description.to_string(),
                field_value: shown.get(*name).cloned(),
                stored_in_db: Some(true),
                field_default_value: None,
            })
            .collect(),
    ))
}

/// Every budget.
#[utoipa::path(
    get,
    path = "/budget/list",
    operation_id = "list_budget",
    tag = crate::openapi::BUDGETS,
    responses((status = 200, body = Vec<BudgetTable>)),
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<BudgetTable>>, ApiError> {
    let rows = state.store().budgets().list().await?;
    Ok(Json(rows.iter().map(BudgetTable::new).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = BudgetDeleteRequest)]
pub struct DeleteRequest {
    id: Option<String>,
}

/// Deletes a budget no key, team, member or customer uses.
#[utoipa::path(
    post,
    path = "/budget/delete",
    operation_id = "delete_budget",
    tag = crate::openapi::BUDGETS,
    request_body = DeleteRequest,
    responses((status = 200, body = BudgetTable)),
)]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BudgetTable>, ApiError> {
    let r: DeleteRequest = json_body(&state, &headers, body).await?;
    let id = super::required("id", r.id)?;
    let row = state
        .store()
        .budgets()
        .delete(&id)
        .await?
        .ok_or_else(|| not_found(&id).with_param("id"))?;
    forget_all(&state);
    Ok(Json(BudgetTable::new(&row)))
}
