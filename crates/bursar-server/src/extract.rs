//! Request extractors whose rejections use LiteLLM's error envelope instead of axum's plain text.

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// Query parameters parsed as `T`; a value of the wrong type is a 422 naming the parameter,
/// like LiteLLM's request validation (`page=abc`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Parses a query string into `T`, naming the offending parameter on error.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    // What may reach the store: no NUL, names of bounded length (a 400 naming the parameter).
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        bursar_core::text::check_str(&name, &value)?;
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let param = e.path().to_string();
        let message = format!("Invalid query parameter '{param}': {}", e.into_inner());
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            message,
        )
        .with_param(param)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Paging {
        page: Option<u32>,
        name: Option<String>,
    }

    #[test]
    fn parses_known_and_ignores_unknown_parameters() {
        let p: Paging = parse_query("page=3&name=a%20b&other=1").unwrap();
        assert_eq!(p.page, Some(3));
        assert_eq!(p.name.as_deref(), Some("a b"));
    }

    #[test]
    fn nul_or_an_overlong_name_is_a_400_naming_the_parameter() {
        let err = parse_query::<Paging>("name=a%00b").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.param.as_deref(), Some("name"));
        let long = format!("user_id={}", "x".repeat(300));
        let err = parse_query::<Paging>(&long).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("user_id"));
    }

    #[test]
    fn a_value_of_the_wrong_type_is_a_422_naming_the_parameter() {
        let err = parse_query::<Paging>("page=abc").unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.param.as_deref(), Some("page"));
        assert!(err.message.contains("page"), "{}", err.message);
        let err = parse_query::<Paging>("page=-1").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("page"));
    }
}
