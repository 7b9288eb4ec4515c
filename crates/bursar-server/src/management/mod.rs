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
