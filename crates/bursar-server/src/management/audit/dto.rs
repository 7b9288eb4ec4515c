//! What the audit route answers: LiteLLM's `PaginatedAuditLogResponse`.

use bursar_core::time::format_ms;
use bursar_store::AuditRow;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// One audit log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogResponse {
    pub id: String,
    pub updated_at: String,
    pub changed_by: String,
    pub changed_by_api_key: String,
    pub action: String,
    pub table_name: String,
    pub object_id: String,
    pub before_value: Option<Value>,
    pub updated_values: Option<Value>,
}

impl AuditLogResponse {
    pub fn new(r: &AuditRow) -> AuditLogResponse {
        AuditLogResponse {
            id: r.id.clone(),
            updated_at: format_ms(r.created_at),
            changed_by: r.changed_by.clone(),
            changed_by_api_key: r.changed_by_api_key.clone(),
            action: r.action.clone(),
            table_name: r.table_name.clone(),
            object_id: r.object_id.clone(),
            before_value: r.before_value.clone(),
            updated_values: r.updated_values.clone(),
        }
    }
}

/// `GET /audit`: entries newest first, paged.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaginatedAuditLogResponse {
    pub audit_logs: Vec<AuditLogResponse>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    pub total_pages: u64,
}
