//! What the customer (end user) routes answer: LiteLLM's response models.

use crate::management::budgets::dto::BudgetTable;
use bursar_store::{BudgetRow, EndUserRow};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A customer with its budget row: LiteLLM's `CustomerResponse` (`LiteLLM_EndUserTable`), plus
/// its `metadata`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = CustomerResponse)]
pub struct CustomerObject {
    pub user_id: String,
    pub blocked: bool,
    pub alias: Option<String>,
    pub spend: f64,
    pub allowed_model_region: Option<String>,
    pub default_model: Option<String>,
    pub models: Vec<String>,
    pub budget_id: Option<String>,
    pub litellm_budget_table: Option<BudgetTable>,
    pub object_permission_id: Option<String>,
    pub object_permission: Option<Value>,
    pub metadata: Value,
}

impl CustomerObject {
    pub fn new(row: &EndUserRow, budget: Option<&BudgetRow>) -> CustomerObject {
        CustomerObject {
            user_id: row.user_id.clone(),
            blocked: row.blocked,
            alias: row.alias.clone(),
            spend: row.spend.as_usd(),
            allowed_model_region: row.allowed_model_region.clone(),
            default_model: row.default_model.clone(),
            models: Vec::new(),
            budget_id: row.budget_id.clone(),
            litellm_budget_table: budget.map(BudgetTable::new),
            object_permission_id: None,
            object_permission: row.object_permission.clone(),
            metadata: row.metadata.clone(),
        }
    }
}

/// `POST /customer/delete`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteCustomersResponse {
    pub deleted_customers: u64,
    pub message: String,
}

/// `POST /customer/block`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockUsersResponse {
    pub blocked_users: Vec<CustomerObject>,
}

/// `POST /customer/unblock`: LiteLLM's `UnblockUsersResponse` (the ids still blocked), plus the
/// unblocked rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnblockUsersResponse {
    pub blocked_users: Vec<String>,
    pub unblocked_users: Vec<CustomerObject>,
}
