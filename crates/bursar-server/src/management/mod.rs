//! LiteLLM-compatible management routes, one module per object kind.

pub mod audit;
pub mod keys;
pub mod users;

use crate::error::ApiError;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

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
