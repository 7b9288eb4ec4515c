//! The audit trail of management changes and its read route (`GET /audit`, `/audit/logs`).
//!
//! When `litellm_settings.store_audit_logs` is on, every create, update, delete, block, unblock
//! and rotation of a key or user writes one row with the values before and after. Raw keys never
//! reach the log: key rows carry only their hash. The row is written after the change commits;
//! a failure to write it is logged and does not undo the change (as in LiteLLM).

pub mod dto;

use super::keys::is_admin_reader;
use super::{Page, date_time};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use bursar_store::{AuditQuery, NewAudit};
use dto::{AuditLogResponse, PaginatedAuditLogResponse};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

pub const KEYS_TABLE: &str = "LiteLLM_VerificationToken";
pub const USERS_TABLE: &str = "LiteLLM_UserTable";
pub const TEAMS_TABLE: &str = "LiteLLM_TeamTable";
pub const ORGS_TABLE: &str = "LiteLLM_OrganizationTable";

/// Who is changing things, as the audit log records it.
pub struct Auditor {
    enabled: bool,
    changed_by: String,
    api_key: String,
}

impl Auditor {
    /// `litellm-changed-by` names the actor when the caller is trusted to act on someone's
    /// behalf: the master key, or a key whose metadata has `allow_litellm_changed_by_header`.
    pub fn new(state: &AppState, principal: &Principal, headers: &HeaderMap) -> Auditor {
        let header = headers
            .get("litellm-changed-by")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let trusted = match principal {
            Principal::MasterKey => true,
            Principal::VirtualKey(s) => {
                s.key.metadata.get("allow_litellm_changed_by_header") == Some(&Value::Bool(true))
            }
        };
        let changed_by = match header {
            Some(h) if trusted => h.to_string(),
            _ => principal.user_id().unwrap_or("default_user_id").to_string(),
        };
        Auditor {
            enabled: state.config().store_audit_logs,
            changed_by,
            api_key: principal.api_key_hash().to_string(),
        }
    }

    /// Whether rows are written at all (`store_audit_logs`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub async fn record(
        &self,
        state: &AppState,
        action: &str,
        table: &str,
        object_id: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) {
        if !self.enabled {
            return;
        }
        let entry = NewAudit {
            changed_by: self.changed_by.clone(),
            changed_by_api_key: self.api_key.clone(),
            action: action.to_string(),
            table_name: table.to_string(),
            object_id: object_id.to_string(),
            before_value: before,
            updated_values: after,
        };
        if let Err(e) = state.store().audit().record(&entry).await {
            tracing::error!(error = %e, action, table, object_id, "could not write the audit log");
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditListQuery {
    action: Option<String>,
    table_name: Option<String>,
    object_id: Option<String>,
    changed_by: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    #[param(minimum = 1, default = 1)]
    page: Option<u32>,
    #[param(minimum = 1, maximum = 500, default = 50)]
    page_size: Option<u32>,
}

/// Audit log entries of management changes, newest first, paged.
#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "get_audit_logs",
    tag = crate::openapi::AUDIT,
    params(AuditListQuery),
    responses((status = 200, body = PaginatedAuditLogResponse)),
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<AuditListQuery>,
) -> Result<Json<PaginatedAuditLogResponse>, ApiError> {
    if !is_admin_reader(&principal) {
        return Err(ApiError::forbidden("Only admins can view audit logs."));
    }
    let paging = Page::parse(q.page, q.page_size, "page_size", 50, 500)?;
    let (page, page_size) = (paging.page, paging.size);
    let date = |field: &str, v: Option<String>| -> Result<Option<i64>, ApiError> {
        v.map(|text| date_time(field, &text)).transpose()
    };
    let query = AuditQuery {
        action: q.action,
        table_name: q.table_name,
        object_id: q.object_id,
        changed_by: q.changed_by,
        since: date("start_date", q.start_date)?,
        until: date("end_date", q.end_date)?,
        page,
        page_size,
    };
    let (rows, total) = state.store().audit().list(&query).await?;
    Ok(Json(PaginatedAuditLogResponse {
        audit_logs: rows.iter().map(AuditLogResponse::new).collect(),
        total,
        page,
        page_size,
        total_pages: paging.total_pages(total),
    }))
}
