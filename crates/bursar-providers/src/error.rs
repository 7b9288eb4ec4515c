//! Errors from reaching a deployment, in terms the server can render as LiteLLM does.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The upstream answered with a non-success status.
    #[error("{provider} returned {status}: {message}")]
    Upstream {
        provider: String,
        status: u16,
        message: String,
        /// The upstream's `error.type`, when it sent one.
        kind: Option<String>,
        param: Option<String>,
        /// A category the status alone does not tell (a too-long prompt is a 400 too).
        class: Option<ErrorClass>,
    },
    /// No answer (or no next chunk) within the deployment's timeout.
    #[error("request to {provider} timed out after {}s", .after.as_secs_f64())]
    Timeout { provider: String, after: Duration },
    /// Connection refused, DNS failure, reset before a response.
    #[error("cannot reach {provider} at {api_base}: {detail}")]
    Connect {
        provider: String,
        api_base: String,
        detail: String,
    },
    /// The upstream's answer is not what the protocol promises.
    #[error("{provider} sent an invalid response: {detail}")]
    InvalidResponse { provider: String, detail: String },
    /// The stream broke after it started.
    #[error("stream from {provider} failed: {detail}")]
    Stream { provider: String, detail: String },
    /// The request cannot be sent as given (bad body for this endpoint).
    #[error("{0}")]
    BadRequest(String),
    /// OpenAI parameters the provider cannot take, without `drop_params`.
    #[error(
        "{provider} does not support parameters: [{}], for model={model}. To drop these, set `litellm.drop_params=True` or for proxy:\n\n`litellm_settings:\n drop_params: true`\n",
        python_list(.params)
    )]
    UnsupportedParams {
        provider: String,
        model: String,
        params: Vec<String>,
    },
}

impl ProviderError {
    /// Worth another attempt (possibly on another deployment) when nothing was sent to the client.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Upstream { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
            ProviderError::Timeout { .. } | ProviderError::Connect { .. } => true,
            ProviderError::InvalidResponse { .. }
            | ProviderError::Stream { .. }
            | ProviderError::BadRequest(_)
            | ProviderError::UnsupportedParams { .. } => false,
        }
    }

    /// The HTTP status LiteLLM uses for this failure.
    pub fn status(&self) -> u16 {
        match self {
            ProviderError::Upstream { status, .. } => *status,
            ProviderError::Timeout { .. } => 408,
            // The upstream answered, but not in its protocol: a bad gateway.
            ProviderError::InvalidResponse { .. } => 502,
            ProviderError::Connect { .. } | ProviderError::Stream { .. } => 500,
            ProviderError::BadRequest(_) | ProviderError::UnsupportedParams { .. } => 400,
        }
    }

    /// LiteLLM's exception class name for the status, used in messages and `type`.
    pub fn exception_name(&self) -> &'static str {
        match self {
            ProviderError::Timeout { .. } => "Timeout",
            ProviderError::Connect { .. } => "APIConnectionError",
            ProviderError::InvalidResponse { .. } | ProviderError::Stream { .. } => "APIError",
            ProviderError::BadRequest(_) => "BadRequestError",
            ProviderError::UnsupportedParams { .. } => "UnsupportedParamsError",
            ProviderError::Upstream {
                class: Some(class), ..
            } => class.exception_name(),
            ProviderError::Upstream { status, .. } => match status {
                400 | 413 => "BadRequestError",
                401 => "AuthenticationError",
                403 => "PermissionDeniedError",
                404 => "NotFoundError",
                408 => "Timeout",
                422 => "UnprocessableEntityError",
                429 => "RateLimitError",
                502 => "BadGatewayError",
                503 => "ServiceUnavailableError",
                500..=599 => "InternalServerError",
                _ => "APIError",
            },
        }
    }
}

/// Failures LiteLLM gives their own exception although they share a status with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The prompt (with the requested completion) does not fit the model's context.
    ContextWindowExceeded,
    /// The provider's safety system refused the input or the output.
    ContentPolicyViolation,
}

impl ErrorClass {
    pub fn exception_name(self) -> &'static str {
        match self {
            ErrorClass::ContextWindowExceeded => "ContextWindowExceededError",
            ErrorClass::ContentPolicyViolation => "ContentPolicyViolationError",
        }
    }

    /// Recognises the category from what providers say (their codes and messages), as
    /// LiteLLM's exception mapping does.
    pub fn detect(status: u16, code: Option<&str>, message: &str) -> Option<ErrorClass> {
        if status != 400 && status != 413 && status != 422 {
            return None;
        }
        let m = message.to_ascii_lowercase();
        const CONTEXT: &[&str] = &[
            "context_length_exceeded",
            "context length",
            "context window",
            "prompt is too long",
            "input is too long",
            "too many tokens",
            "maximum number of tokens",
            "prompt: length",
        ];
        const POLICY: &[&str] = &[
            "content_policy_violation",
            "content management policy",
            "content_filter",
            "content filtering policy",
            "safety system",
            "responsibleaipolicyviolation",
        ];
        let code = code.unwrap_or_default().to_ascii_lowercase();
        if CONTEXT.iter().any(|n| m.contains(n) || code.contains(n)) {
            Some(ErrorClass::ContextWindowExceeded)
        } else if POLICY.iter().any(|n| m.contains(n) || code.contains(n)) {
            Some(ErrorClass::ContentPolicyViolation)
        } else {
            None
        }
    }
}

/// `['a', 'b']`, as LiteLLM prints lists in its messages.
fn python_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
