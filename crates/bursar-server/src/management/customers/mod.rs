//! `/customer/*` (legacy `/end_user/*`): end users, the `user` named in LLM requests (LiteLLM's
//! `customer_endpoints`).
//!
//! Unlike LiteLLM, `blocked` is persisted and enforced in both directions: `/customer/unblock`
//! and `/customer/update` with `blocked: false` clear it, and `max_budget: 0` is a budget of
//! zero rather than "no change".

use super::keys::actor;
pub mod dto;

use super::{BudgetInput, bad_field, invalid, json_body, missing, money};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use bursar_limits::{ScopeId, ScopeKind};
use bursar_store::{BudgetPatch, BudgetRow, EndUserPatch, EndUserRow, NewEndUser, StoreError};
use dto::{BlockUsersResponse, CustomerObject, DeleteCustomersResponse, UnblockUsersResponse};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// The fields of `/customer/new` and `/customer/update`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = NewCustomerRequest)]
pub struct CustomerFields {
    user_id: Option<String>,
    alias: Option<String>,
    blocked: Option<bool>,
    budget_id: Option<String>,
    spend: Option<f64>,
    allowed_model_region: Option<String>,
    default_model: Option<String>,
    metadata: Option<Map<String, Value>>,
    object_permission: Option<Map<String, Value>>,
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

/// A validated request: the end-user columns and the budget-row fields.
struct CustomerChanges {
    user_id: String,
    patch: EndUserPatch,
    budget: BudgetPatch,
}

impl CustomerFields {
    async fn validate(
        self,
        state: &AppState,
        current_budget: Option<&BudgetRow>,
    ) -> Result<CustomerChanges, ApiError> {
        let user_id = super::required("user_id", self.user_id)?;
        if user_id.len() > crate::end_users::MAX_END_USER_ID_LEN {
            return Err(bad_field(
                "user_id",
                format!(
                    "user_id must be at most {} characters",
                    crate::end_users::MAX_END_USER_ID_LEN
                ),
            ));
        }
        if self.max_budget.is_some() && self.budget_id.is_some() {
            return Err(invalid(
                "max_budget",
                "Set either 'max_budget' or 'budget_id', not both.",
            ));
        }
        if let Some(region) = &self.allowed_model_region
            && region != "eu"
            && region != "us"
        {
            return Err(invalid(
                "allowed_model_region",
                format!(
                    "Invalid value for 'allowed_model_region': expected 'eu' or 'us', got {region:?}"
                ),
            ));
        }
        if let Some(model) = &self.default_model
            && state.router().deployments(model).is_none()
        {
            return Err(invalid(
                "default_model",
                format!(
                    "Default Model not on proxy. Configure via `/model/new` or config.yaml. Default_model={model}, proxy_model_names={:?}",
                    state.catalog().names()
                ),
            ));
        }
        if let Some(id) = &self.budget_id
            && state.store().budgets().find(id).await?.is_none()
        {
            return Err(
                ApiError::not_found(format!("Budget {id} not found")).with_param("budget_id")
            );
        }
        let mut budget = BudgetInput {
            max_budget: self.max_budget,
            soft_budget: self.soft_budget,
            tpm_limit: self.tpm_limit,
            rpm_limit: self.rpm_limit,
            max_parallel_requests: self.max_parallel_requests,
            budget_duration: self.budget_duration,
        }
        .validate(
            current_budget.and_then(|b| b.max_budget),
            current_budget.and_then(|b| b.soft_budget),
        )?;
        budget.model_max_budget = self.model_max_budget.map(Value::Object);
        if let Some(at) = &self.budget_reset_at {
            budget.budget_reset_at = Some(Some(super::date_time("budget_reset_at", at)?));
        }
        Ok(CustomerChanges {
            user_id,
            patch: EndUserPatch {
                alias: self.alias.map(Some),
                allowed_model_region: self.allowed_model_region.map(Some),
                default_model: self.default_model.map(Some),
                budget_id: self.budget_id.map(Some),
                blocked: self.blocked,
                object_permission: self.object_permission.map(|o| Some(Value::Object(o))),
                metadata: self.metadata.map(Value::Object),
                spend: money("spend", self.spend)?,
            },
            budget,
        })
    }
}

async fn customer_with_budget(
    state: &AppState,
    row: &EndUserRow,
) -> Result<CustomerObject, ApiError> {
    let budget = match &row.budget_id {
        Some(id) => state.store().budgets().find(id).await?,
        None => None,
    };
    Ok(CustomerObject::new(row, budget.as_ref()))
}

async fn customers(state: &AppState, rows: &[EndUserRow]) -> Result<Vec<CustomerObject>, ApiError> {
    super::teams::with_budgets(state, rows, |r| r.budget_id.as_ref(), CustomerObject::new).await
}

fn not_found(id: &str, param: &str) -> ApiError {
    ApiError::not_found(format!("End User Id={id} does not exist in db")).with_param(param)
}

/// Makes admission see a changed end user: a fresh row on the next request and, when the
/// spend or the period changed, the stored spend as-is.
async fn forget(state: &AppState, user_id: &str, reseed: bool) {
    state.end_users().invalidate(user_id).await;
    if reseed
        && let Err(e) = state
            .limiter()
            .reseed(&ScopeId::new(ScopeKind::EndUser, user_id))
            .await
    {
        tracing::warn!(error = %e, "could not reseed the end user's spend");
    }
}

/// Creates a customer (end user), with its own budget when budget fields are given.
#[utoipa::path(
    post,
    path = "/customer/new",
    operation_id = "new_end_user",
    tag = crate::openapi::CUSTOMERS,
    request_body = CustomerFields,
    responses((status = 200, body = CustomerObject)),
)]
pub async fn new_customer(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CustomerObject>, ApiError> {
    let fields: CustomerFields = json_body(&state, &headers, body).await?;
    let changes = fields.validate(&state, None).await?;
    let duplicate = |id: &str| {
        bad_field(
            "user_id",
            format!("Customer already exists, passed user_id={id}. Please pass a new user_id."),
        )
    };
    if state
        .store()
        .end_users()
        .find(&changes.user_id)
        .await?
        .is_some()
    {
        return Err(duplicate(&changes.user_id));
    }
    // Any budget field makes a budget row of the customer's own.
    let new_budget = (!changes.budget.is_empty() && changes.patch.budget_id.is_none()).then(|| {
        changes
            .budget
            .clone()
            .into_new(uuid::Uuid::new_v4().to_string(), actor(&principal))
    });
    let p = changes.patch;
    let new = NewEndUser {
        user_id: changes.user_id.clone(),
        alias: p.alias.flatten(),
        spend: p.spend.unwrap_or_default(),
        allowed_model_region: p.allowed_model_region.flatten(),
        default_model: p.default_model.flatten(),
        budget_id: p.budget_id.flatten(),
        blocked: p.blocked.unwrap_or(false),
        object_permission: p.object_permission.flatten(),
        metadata: p.metadata,
    };
    let row = state
        .store()
        .end_users()
        .create(&new, new_budget.as_ref())
        .await
        .map_err(|e| match e {
            StoreError::Conflict { what: "end user" } => duplicate(&changes.user_id),
            other => other.into(),
        })?;
    // A request may have created (and cached) this id a moment ago.
    forget(&state, &row.user_id, true).await;
    Ok(Json(customer_with_budget(&state, &row).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InfoQuery {
    end_user_id: Option<String>,
}

/// A customer with its budget.
#[utoipa::path(
    get,
    path = "/customer/info",
    operation_id = "end_user_info",
    tag = crate::openapi::CUSTOMERS,
    params(InfoQuery),
    responses((status = 200, body = CustomerObject)),
)]
pub async fn info(
    State(state): State<AppState>,
    Query(q): Query<InfoQuery>,
) -> Result<Json<CustomerObject>, ApiError> {
    let id = q
        .end_user_id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| missing("end_user_id", "end_user_id is required"))?;
    let row = state
        .store()
        .end_users()
        .find(&id)
        .await?
        .ok_or_else(|| not_found(&id, "end_user_id"))?;
    Ok(Json(customer_with_budget(&state, &row).await?))
}

/// Updates a customer; absent fields are unchanged.
#[utoipa::path(
    post,
    path = "/customer/update",
    operation_id = "update_end_user",
    tag = crate::openapi::CUSTOMERS,
    request_body = UpdateCustomerRequest,
    responses((status = 200, body = CustomerObject)),
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CustomerObject>, ApiError> {
    let UpdateCustomerRequest(fields) = json_body(&state, &headers, body).await?;
    let id = super::required("user_id", fields.user_id.clone())?;
    let existing = state
        .store()
        .end_users()
        .find(&id)
        .await?
        .ok_or_else(|| not_found(&id, "user_id"))?;
    let current_budget = match &existing.budget_id {
        Some(b) => state.store().budgets().find(b).await?,
        None => None,
    };
    let changes = fields.validate(&state, current_budget.as_ref()).await?;
    // The default end-user budget row is shared: a customer's own change gets its own row.
    let shared = existing.budget_id.is_some()
        && existing.budget_id == state.config().admission.max_end_user_budget_id
        && changes.patch.budget_id.is_none();
    let reseed = changes.patch.spend.is_some() || changes.budget.budget_duration.is_some();
    let row = state
        .store()
        .end_users()
        .update(
            &id,
            &changes.patch,
            &changes.budget,
            shared,
            &actor(&principal),
        )
        .await?
        .ok_or_else(|| not_found(&id, "user_id"))?;
    forget(&state, &id, reseed).await;
    Ok(Json(customer_with_budget(&state, &row).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = DeleteCustomerRequest)]
pub struct UserIds {
    user_ids: Vec<String>,
}

/// `POST /customer/update`: `user_id` picks the customer; absent fields are unchanged.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct UpdateCustomerRequest(CustomerFields);

/// `POST /customer/block` and `/customer/unblock`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct BlockUsers(UserIds);

fn require_ids(ids: &[String]) -> Result<(), ApiError> {
    if ids.is_empty() || ids.iter().any(|i| i.trim().is_empty()) {
        return Err(bad_field(
            "user_ids",
            "user_ids must be a non-empty list of end user ids",
        ));
    }
    Ok(())
}

/// A list as Python prints it (`['a', 'b']`), as LiteLLM's messages show ids.
fn py_list(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Deletes customers; all or nothing.
#[utoipa::path(
    post,
    path = "/customer/delete",
    operation_id = "delete_end_user",
    tag = crate::openapi::CUSTOMERS,
    request_body = UserIds,
    responses((status = 200, body = DeleteCustomersResponse)),
)]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DeleteCustomersResponse>, ApiError> {
    let r: UserIds = json_body(&state, &headers, body).await?;
    require_ids(&r.user_ids)?;
    match state.store().end_users().delete_all(&r.user_ids).await? {
        Err(missing_ids) => Err(ApiError::not_found(format!(
            "End User Id(s)={} do not exist in db",
            missing_ids.join(", ")
        ))
        .with_param("user_ids")),
        Ok(deleted) => {
            for id in &r.user_ids {
                forget(&state, id, true).await;
            }
            Ok(Json(DeleteCustomersResponse {
                deleted_customers: deleted,
                message: format!(
                    "Successfully deleted customers with ids: {}",
                    py_list(&r.user_ids)
                ),
            }))
        }
    }
}

/// Every customer.
#[utoipa::path(
    get,
    path = "/customer/list",
    operation_id = "list_end_user",
    tag = crate::openapi::CUSTOMERS,
    responses((status = 200, body = Vec<CustomerObject>)),
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<CustomerObject>>, ApiError> {
    let rows = state.store().end_users().list().await?;
    Ok(Json(customers(&state, &rows).await?))
}

/// Sets `blocked` on the listed end users (creating unknown ones) and drops cached copies.
async fn set_blocked(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    blocked: bool,
) -> Result<Vec<EndUserRow>, ApiError> {
    let BlockUsers(r) = json_body(state, headers, body).await?;
    require_ids(&r.user_ids)?;
    let rows = state
        .store()
        .end_users()
        .set_blocked(&r.user_ids, blocked)
        .await?;
    for id in &r.user_ids {
        forget(state, id, false).await;
    }
    Ok(rows)
}

/// Blocks customers: requests on their behalf are refused.
#[utoipa::path(
    post,
    path = "/customer/block",
    operation_id = "block_user",
    tag = crate::openapi::CUSTOMERS,
    request_body = BlockUsers,
    responses((status = 200, body = BlockUsersResponse)),
)]
pub async fn block(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BlockUsersResponse>, ApiError> {
    let rows = set_blocked(&state, &headers, body, true).await?;
    Ok(Json(BlockUsersResponse {
        blocked_users: customers(&state, &rows).await?,
    }))
}

/// Clears `blocked` in the database (LiteLLM only edits an in-memory list). Answers with the
/// unblocked rows and, as LiteLLM's field, the ids still blocked.
#[utoipa::path(
    post,
    path = "/customer/unblock",
    operation_id = "unblock_user",
    tag = crate::openapi::CUSTOMERS,
    request_body = BlockUsers,
    responses((status = 200, body = UnblockUsersResponse)),
)]
pub async fn unblock(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UnblockUsersResponse>, ApiError> {
    let rows = set_blocked(&state, &headers, body, false).await?;
    let still_blocked = state.store().end_users().blocked_ids().await?;
    Ok(Json(UnblockUsersResponse {
        blocked_users: still_blocked,
        unblocked_users: customers(&state, &rows).await?,
    }))
}
