//! End users (customers) on the data plane: who a request is for, their cached row and the
//! budget scope they are held against.
//!
//! An end user first seen on a request is created at once (with the configured default
//! budget row), so its spend, budget and block state have a home from the first call;
//! creation is an insert-if-absent, so racing requests and instances make one row.

use crate::error::ApiError;
use crate::invalidation::{Broadcast, Invalidation};
use bursar_core::config::AdmissionSettings;
use bursar_limits::Scope;
use bursar_providers::json::JsonObject;
use bursar_store::{EndUserRow, Store, StoreError};
use http::HeaderMap;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The longest end-user id accepted; longer ones are refused rather than stored.
pub const MAX_END_USER_ID_LEN: usize = 256;

/// Headers that name the end user, ahead of the body (LiteLLM's order).
const END_USER_HEADERS: [&str; 2] = ["x-litellm-customer-id", "x-litellm-end-user-id"];

/// The end user a request is made for: the `x-litellm-customer-id` / `x-litellm-end-user-id`
/// header, else the body's `user`, `litellm_metadata.user` or `metadata.user_id`. `None` when
/// the request names nobody.
pub fn end_user_id(headers: &HeaderMap, body: &JsonObject) -> Result<Option<String>, ApiError> {
    let from_header = END_USER_HEADERS.iter().find_map(|name| {
        headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    });
    let id = match from_header {
        Some(id) => Some(id),
        None => match body.get_as::<Value>("user") {
            Some(Ok(Value::String(s))) => Some(s),
            Some(Ok(Value::Null)) | None => None,
            Some(_) => {
                return Err(
                    ApiError::bad_request("Invalid type for 'user': expected a string")
                        .with_param("user"),
                );
            }
        }
        .or_else(|| nested(body, "litellm_metadata", "user"))
        .or_else(|| nested(body, "metadata", "user_id")),
    };
    let Some(id) = id.filter(|i| !i.trim().is_empty()) else {
        return Ok(None);
    };
    if id.len() > MAX_END_USER_ID_LEN {
        return Err(ApiError::bad_request(format!(
            "Invalid value for 'user': at most {MAX_END_USER_ID_LEN} characters"
        ))
        .with_param("user"));
    }
    Ok(Some(id))
}

fn nested(body: &JsonObject, object: &str, field: &str) -> Option<String> {
    match body.get_as::<Value>(object)? {
        Ok(Value::Object(map)) => map.get(field)?.as_str().map(str::to_string),
        _ => None,
    }
}

/// An end user as admission needs it.
#[derive(Debug)]
pub struct EndUserSnapshot {
    pub row: EndUserRow,
    /// The end user's budget and limits, when anything limits it.
    pub scope: Option<Scope>,
}

/// End users by id, loaded (or created) once and kept for a minute; every customer and budget
/// write invalidates what it touched.
pub struct EndUserCache {
    cache: moka::future::Cache<String, Arc<EndUserSnapshot>>,
    broadcast: Broadcast,
}

impl EndUserCache {
    pub fn new(broadcast: Broadcast) -> EndUserCache {
        EndUserCache {
            cache: moka::future::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            broadcast,
        }
    }

    /// The end user `id`, created with the default budget row if it is new.
    pub async fn resolve(
        &self,
        store: &Store,
        settings: &AdmissionSettings,
        id: &str,
    ) -> Result<Arc<EndUserSnapshot>, Arc<StoreError>> {
        self.cache
            .try_get_with_by_ref(id, async {
                let row = store
                    .end_users()
                    .ensure(id, settings.max_end_user_budget_id.as_deref())
                    .await?;
                let budget = match &row.budget_id {
                    Some(b) => store.budgets().find(b).await?,
                    None => None,
                };
                let scope = crate::admission::end_user_scope(
                    &row,
                    budget.as_ref(),
                    settings.max_end_user_budget,
                    bursar_store::now_ms(),
                );
                Ok(Arc::new(EndUserSnapshot { row, scope }))
            })
            .await
    }

    /// Forgets an end user on every instance.
    pub async fn invalidate(&self, id: &str) {
        self.forget(id).await;
        self.broadcast.send(Invalidation::EndUser(id.to_string()));
    }

    /// Forgets every end user on every instance.
    pub fn invalidate_all(&self) {
        self.forget_all();
        self.broadcast.send(Invalidation::All);
    }

    /// Forgets an end user on this instance.
    pub async fn forget(&self, id: &str) {
        self.cache.invalidate(id).await;
    }

    pub fn forget_all(&self) {
        self.cache.invalidate_all();
    }
}
