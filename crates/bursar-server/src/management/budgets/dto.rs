//! What the budget routes answer, and the budget row other families embed.

use bursar_core::NanoUsd;
use bursar_core::time::format_ms;
use bursar_store::BudgetRow;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A budget row: LiteLLM's `LiteLLM_BudgetTableFull` with the row's authorship columns.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LiteLLM_BudgetTableFull)]
pub struct BudgetTable {
    pub budget_id: Option<String>,
    pub soft_budget: Option<f64>,
    pub max_budget: Option<f64>,
    pub max_parallel_requests: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpd_limit: Option<i64>,
    pub model_max_budget: Option<Value>,
    pub budget_duration: Option<String>,
    pub allowed_models: Option<Vec<String>>,
    pub temp_budget_increase: Option<f64>,
    pub temp_budget_expiry: Option<String>,
    pub budget_reset_at: Option<String>,
    pub created_at: String,
    pub created_by: Option<String>,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
}

impl BudgetTable {
    pub fn new(b: &BudgetRow) -> BudgetTable {
        BudgetTable {
            budget_id: Some(b.budget_id.clone()),
            soft_budget: b.soft_budget.map(NanoUsd::as_usd),
            max_budget: b.max_budget.map(NanoUsd::as_usd),
            max_parallel_requests: b.max_parallel_requests,
            tpm_limit: b.tpm_limit,
            rpm_limit: b.rpm_limit,
            tpd_limit: None,
            model_max_budget: b.model_max_budget.clone(),
            budget_duration: b.budget_duration.clone(),
            allowed_models: Some(b.allowed_models.clone()),
            temp_budget_increase: None,
            temp_budget_expiry: None,
            budget_reset_at: b.budget_reset_at.map(format_ms),
            created_at: format_ms(b.created_at),
            created_by: Some(b.created_by.clone()),
            updated_at: Some(format_ms(b.updated_at)),
            updated_by: Some(b.updated_by.clone()),
        }
    }

    /// The budget as the audit log records it.
    pub fn audit(b: &BudgetRow) -> Value {
        serde_json::to_value(BudgetTable::new(b)).unwrap_or(Value::Null)
    }
}

/// One settable field of a budget (LiteLLM's `ConfigList`), for `GET /budget/settings`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConfigList)]
pub struct ConfigList {
    pub field_name: String,
    pub field_type: String,
    pub field_description: String,
    pub field_value: Option<Value>,
    pub stored_in_db: Option<bool>,
    pub field_default_value: Option<Value>,
}
