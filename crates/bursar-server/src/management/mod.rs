//! LiteLLM-compatible management routes, one module per object kind.

pub mod audit;
pub mod budgets;
pub mod customers;
pub mod keys;
pub mod orgs;
pub mod scope;
pub mod spend;
pub mod teams;
pub mod users;
pub mod v1;

use crate::error::ApiError;
use crate::pipeline::intake::read_body;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use bursar_core::NanoUsd;
use bursar_core::duration::BudgetDuration;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A management body: within the management size limit and read timeout, its text fit for
/// the store and its lists bounded (`bursar_core::text`).
async fn management_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<bytes::Bytes, ApiError> {
    let bytes = read_body(
        body,
        headers,
        state.config().general.max_management_request_bytes,
        state.config().connections.body_read_timeout,
    )
    .await?;
    bursar_core::text::check_management_json(&bytes)?;
    Ok(bytes)
}

/// Reads a management request body and parses it as `T`.
pub async fn json_body<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    parse_body(&management_body(state, headers, body).await?)
}

/// A request body read as two types from the same JSON object (flattening one into the other
/// would lose the field name of a type error). The request type is what the handler reads and
/// what the document describes.
pub trait FromParts: Sized {
    type Identity: DeserializeOwned;
    type Fields: DeserializeOwned;
    fn from_parts(identity: Self::Identity, fields: Self::Fields) -> Self;
}

/// One item of a bulk body (already read and checked as a whole) as a [`FromParts`] request,
/// with the single route's field-named errors.
pub fn parts_of<T: FromParts>(
    item: &serde_json::Map<String, serde_json::Value>,
) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(item).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(T::from_parts(parse_body(&bytes)?, parse_body(&bytes)?))
}

/// Reads a management body (size-capped and checked) as a [`FromParts`] request.
pub async fn json_body_parts<T: FromParts>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let bytes = management_body(state, headers, body).await?;
    Ok(T::from_parts(parse_body(&bytes)?, parse_body(&bytes)?))
}

/// For update bodies: a field sent as `null` is `Some(None)` (clear it), an absent field is
/// `None` (leave it), as LiteLLM's `exclude_unset` updates treat them. Use with
/// `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// [`money`] for an update field: `Some(None)` clears.
pub fn money_change(
    field: &str,
    usd: Option<Option<f64>>,
) -> Result<Option<Option<NanoUsd>>, ApiError> {
    usd.map(|v| money(field, v)).transpose()
}

/// [`limit`] for an update field: `Some(None)` clears.
pub fn limit_change(
    field: &str,
    value: Option<Option<i64>>,
) -> Result<Option<Option<i64>>, ApiError> {
    value.map(|v| limit(field, v)).transpose()
}

/// A non-negative amount of USD for `field`.
pub fn money(field: &str, usd: Option<f64>) -> Result<Option<NanoUsd>, ApiError> {
    match usd {
        None => Ok(None),
        Some(v) if v < 0.0 || !v.is_finite() => Err(bad_field(
            field,
            format!("{field} must be a non-negative finite number. Got {field}={v}"),
        )),
        Some(v) => NanoUsd::from_usd(v)
            .map(Some)
            .ok_or_else(|| bad_field(field, format!("{field} is not a valid amount"))),
    }
}

/// A non-negative count (limits) for `field`.
pub fn limit(field: &str, value: Option<i64>) -> Result<Option<i64>, ApiError> {
    match value {
        Some(v) if v < 0 => Err(bad_field(
            field,
            format!("{field} cannot be negative. Got {field}={v}"),
        )),
        other => Ok(other),
    }
}

/// When a budget with `duration` next resets: now + duration.
pub fn reset_at(field: &str, duration: &str) -> Result<i64, ApiError> {
    let span = BudgetDuration::parse(duration)
        .map_err(|e| bad_field(field, format!("Invalid {field}: {e}")))?;
    Ok(span.after(bursar_store::now_ms()))
}

/// A date or date-time (ISO 8601) given in `field`, as epoch milliseconds.
pub fn date_time(field: &str, text: &str) -> Result<i64, ApiError> {
    bursar_core::time::parse_ms(text).ok_or_else(|| {
        bad_field(
            field,
            format!("Invalid {field} {text:?}: expected an ISO-8601 date or date-time"),
        )
    })
}

/// The budget and limit fields teams and organizations share, as a request gives them.
#[derive(Debug, Default)]
pub struct BudgetInput {
    pub max_budget: Option<Option<f64>>,
    pub soft_budget: Option<Option<f64>>,
    pub tpm_limit: Option<Option<i64>>,
    pub rpm_limit: Option<Option<i64>>,
    pub max_parallel_requests: Option<Option<i64>>,
    pub budget_duration: Option<Option<String>>,
}

impl BudgetInput {
    /// Validates the fields (non-negative, soft below max counting the stored values, a
    /// parseable duration) into a patch; absent fields stay absent, `null` ones are cleared.
    pub fn validate(
        self,
        current_max: Option<NanoUsd>,
        current_soft: Option<NanoUsd>,
    ) -> Result<bursar_store::BudgetPatch, ApiError> {
        let mut budget = bursar_store::BudgetPatch {
            max_budget: money_change("max_budget", self.max_budget)?,
            soft_budget: money_change("soft_budget", self.soft_budget)?,
            ..Default::default()
        };
        let max = budget.max_budget.unwrap_or(current_max);
        let soft = budget.soft_budget.unwrap_or(current_soft);
        if let (Some(soft), Some(max)) = (soft, max)
            && soft >= max
        {
            return Err(bad_field(
                "soft_budget",
                format!(
                    "soft_budget ({}) must be strictly lower than max_budget ({})",
                    soft.as_usd(),
                    max.as_usd()
                ),
            ));
        }
        for (field, value, slot) in [
            ("tpm_limit", self.tpm_limit, &mut budget.tpm_limit),
            ("rpm_limit", self.rpm_limit, &mut budget.rpm_limit),
            (
                "max_parallel_requests",
                self.max_parallel_requests,
                &mut budget.max_parallel_requests,
            ),
        ] {
            *slot = limit_change(field, value)?;
        }
        match self.budget_duration {
            Some(Some(d)) => {
                budget.budget_reset_at = Some(Some(reset_at("budget_duration", &d)?));
                budget.budget_duration = Some(Some(d));
            }
            Some(None) => {
                budget.budget_reset_at = Some(None);
                budget.budget_duration = Some(None);
            }
            None => {}
        }
        Ok(budget)
    }
}

/// A 422 for a missing required field, like LiteLLM's request validation.
pub fn missing(field: &str, message: impl Into<String>) -> ApiError {
    invalid(field, message)
}

/// A required id field's non-blank value, else a 422 `<field> is required`.
pub fn required(field: &str, value: Option<String>) -> Result<String, ApiError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| missing(field, format!("{field} is required")))
}

/// A 422 for a field LiteLLM's request validation rejects.
pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
        message,
    )
    .with_param(field)
}

/// Parses a JSON body into `T`; a wrong type names the field (422, like LiteLLM's validation).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_slice(b"{}").map_err(|e| ApiError::bad_request(e.to_string()));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(format!("Invalid JSON in request body: {inner}"));
        }
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            format!("Invalid value for '{path}': {inner}"),
        )
        .with_param(path)
    })
}

/// An error about one request field, named in `param`.
pub fn bad_field(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message).with_param(field)
}

/// A validated `page` (1-based) and page size of a list route.
pub struct Page {
    pub page: u32,
    pub size: u32,
}

impl Page {
    /// `size_field` is the route's name for the size (`size`, `page_size`).
    pub fn parse(
        page: Option<u32>,
        size: Option<u32>,
        size_field: &str,
        default_size: u32,
        max_size: u32,
    ) -> Result<Page, ApiError> {
        let page = page.unwrap_or(1);
        if page < 1 {
            return Err(bad_field("page", "page must be at least 1"));
        }
        let size = size.unwrap_or(default_size);
        if !(1..=max_size).contains(&size) {
            return Err(bad_field(
                size_field,
                format!("{size_field} must be between 1 and {max_size}"),
            ));
        }
        Ok(Page { page, size })
    }

    pub fn total_pages(&self, total: u64) -> u64 {
        total.div_ceil(u64::from(self.size))
    }

    /// Like [`Page::total_pages`], refusing a page past the end of a non-empty list.
    pub fn total_pages_in_range(&self, total: u64) -> Result<u64, ApiError> {
        let pages = self.total_pages(total);
        if total > 0 && u64::from(self.page) > pages {
            return Err(bad_field(
                "page",
                format!(
                    "page {} is out of range: there are {pages} page(s)",
                    self.page
                ),
            ));
        }
        Ok(pages)
    }
}

/// `sort_order=asc|desc`; `None` takes the route's default.
pub fn descending(sort_order: Option<&str>, default_descending: bool) -> Result<bool, ApiError> {
    match sort_order {
        None => Ok(default_descending),
        Some("desc") => Ok(true),
        Some("asc") => Ok(false),
        Some(other) => Err(bad_field(
            "sort_order",
            format!("Invalid sort_order {other:?}: expected asc or desc"),
        )),
    }
}
