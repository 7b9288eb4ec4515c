//! The one error type of the HTTP layer, rendered in LiteLLM's envelope:
//! `{"error": {"message", "type", "param", "code"}}` with `code` = the HTTP status as a string.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bursar_providers::{ProviderError, RouteError};
use bursar_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// LiteLLM's error envelope, as every failed request answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub message: String,
    /// `auth_error`, `bad_request_error`, `budget_exceeded`, `validation_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field the error is about, if any.
    pub param: Option<String>,
    /// The HTTP status, as a string.
    pub code: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// LiteLLM's `type` (`auth_error`, `bad_request_error`, …).
    pub kind: &'static str,
    pub param: Option<String>,
    /// Extra response headers (`retry-after` on rate limits).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> ApiError {
        self.headers.push((name, value));
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request_error", message)
    }

    pub fn unauthorized(kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, kind, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "auth_error", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_request_error",
            format!(
                "Request body is too large: the limit is {limit} bytes (general_settings.max_request_size_mb)"
            ),
        )
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            message,
        )
    }
}

impl From<bursar_core::policy::PolicyError> for ApiError {
    fn from(e: bursar_core::policy::PolicyError) -> ApiError {
        use bursar_core::policy::PolicyErrorKind;
        let error = match e.kind {
            PolicyErrorKind::Forbidden => ApiError::forbidden(e.message),
            PolicyErrorKind::Invalid => ApiError::bad_request(e.message),
        };
        error.with_param(e.field)
    }
}

impl From<bursar_core::text::TextProblem> for ApiError {
    fn from(problem: bursar_core::text::TextProblem) -> ApiError {
        let field = problem.field().to_string();
        ApiError::bad_request(problem.to_string()).with_param(field)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::from(&e)
    }
}

impl From<&StoreError> for ApiError {
    fn from(e: &StoreError) -> ApiError {
        if let StoreError::Conflict { what } = e {
            // Handlers map the conflicts they expect; any other one is a concurrent change.
            return ApiError::new(
                StatusCode::CONFLICT,
                "bad_request_error",
                format!("A concurrent change conflicted ({what}); nothing was changed, retry"),
            );
        }
        if e.is_unavailable() {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_db_connection",
                format!("Database unavailable: {e}"),
            )
        } else {
            ApiError::internal(e.to_string())
        }
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> ApiError {
        match e {
            RouteError::UnknownModel(_) => {
                ApiError::bad_request(format!("litellm.BadRequestError: {e}")).with_param("model")
            }
            RouteError::Provider(p) => p.into(),
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> ApiError {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let (message, param) = match &e {
            ProviderError::Upstream {
                provider,
                message,
                param,
                ..
            } => (
                format!(
                    "litellm.{}: {}Exception - {message}",
                    e.exception_name(),
                    provider_label(provider)
                ),
                param.clone(),
            ),
            ProviderError::UnsupportedParams { params, .. } => (
                format!("litellm.{}: {e}", e.exception_name()),
                params.first().cloned(),
            ),
            other => (format!("litellm.{}: {other}", other.exception_name()), None),
        };
        ApiError {
            status,
            message,
            kind: upstream_kind(&e),
            param,
            headers: Vec::new(),
        }
    }
}

/// LiteLLM names provider exceptions after the provider (`OpenAIException`,
/// `AnthropicException`, else the provider name capitalised: `Hosted_vllmException`).
fn provider_label(provider: &str) -> std::borrow::Cow<'_, str> {
    match provider {
        "openai" | "text-completion-openai" | "custom_openai" | "openai_like" => "OpenAI".into(),
        "azure" => "Azure".into(),
        other => {
            let mut chars = other.chars();
            match chars.next() {
                Some(first) => format!("{}{}", first.to_uppercase(), chars.as_str()).into(),
                None => "".into(),
            }
        }
    }
}

/// OpenAI-style `type` for upstream failures.
fn upstream_kind(e: &ProviderError) -> &'static str {
    match e.status() {
        400 | 404 | 422 => "invalid_request_error",
        401 | 403 => "authentication_error",
        408 => "timeout",
        429 => "rate_limit_error",
        _ => match e {
            ProviderError::Connect { .. } => "api_connection_error",
            _ => "api_error",
        },
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), kind = self.kind, message = %self.message, "request failed");
        }
        let body = ErrorResponse {
            error: ErrorBody {
                message: self.message,
                kind: self.kind.to_string(),
                param: self.param,
                code: self.status.as_u16().to_string(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}
