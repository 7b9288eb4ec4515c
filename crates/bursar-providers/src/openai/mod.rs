//! OpenAI-compatible upstreams: `POST {api_base}/chat/completions` and friends, with the
//! deployment's key as a bearer token.

use crate::endpoint::Endpoint;
use crate::error::ProviderError;
use crate::sse::ByteStream;
use bursar_core::config::Deployment;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use std::time::Duration;

/// Largest upstream error body read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A successful upstream answer, before usage is read.
pub enum UpstreamBody {
    Complete(Bytes),
    Stream(ByteStream),
}

pub async fn send(
    http: &reqwest::Client,
    deployment: &Deployment,
    endpoint: Endpoint,
    body: Vec<u8>,
    stream: bool,
    timeout: Duration,
) -> Result<UpstreamBody, ProviderError> {
    let provider = deployment.provider.name.to_string();
    let api_base = deployment
        .effective_api_base()
        .unwrap_or_default()
        .to_string();
    let url = format!("{api_base}{}", endpoint.path());
    let mut request = http
        .post(&url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(key) = &deployment.api_key {
        request = request.bearer_auth(key.expose());
    }
    if let Some(org) = &deployment.organization {
        request = request.header("OpenAI-Organization", org);
    }
    if stream {
        request = request.header(http::header::ACCEPT, "text/event-stream");
    }

    let timed_out = || ProviderError::Timeout {
        provider: provider.clone(),
        after: timeout,
    };
    let response = match tokio::time::timeout(timeout, request.send()).await {
        Err(_) => return Err(timed_out()),
        Ok(Err(e)) if e.is_timeout() => return Err(timed_out()),
        Ok(Err(e)) => {
            return Err(ProviderError::Connect {
                provider,
                api_base,
                detail: error_chain(&e),
            });
        }
        Ok(Ok(r)) => r,
    };

    let status = response.status();
    if !status.is_success() {
        let bytes =
            match tokio::time::timeout(timeout, read_limited(response, MAX_ERROR_BODY)).await {
                Ok(b) => b,
                Err(_) => Bytes::new(),
            };
        return Err(upstream_error(&provider, status.as_u16(), &bytes));
    }

    if stream {
        let provider_for_stream = provider.clone();
        let body = response.bytes_stream().map(move |chunk| {
            chunk.map_err(|e| ProviderError::Stream {
                provider: provider_for_stream.clone(),
                detail: error_chain(&e),
            })
        });
        return Ok(UpstreamBody::Stream(Box::pin(body)));
    }
    match tokio::time::timeout(timeout, response.bytes()).await {
        Err(_) => Err(timed_out()),
        Ok(Err(e)) => Err(ProviderError::InvalidResponse {
            provider,
            detail: error_chain(&e),
        }),
        Ok(Ok(bytes)) => Ok(UpstreamBody::Complete(bytes)),
    }
}

async fn read_limited(response: reqwest::Response, limit: usize) -> Bytes {
    let mut out = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Bytes::from(out)
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorBody>,
    detail: Option<serde_json::Value>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorBody {
    Object {
        message: Option<serde_json::Value>,
        #[serde(rename = "type")]
        kind: Option<String>,
        param: Option<serde_json::Value>,
    },
    Text(String),
}

/// Reads the message out of whatever error shape the upstream used.
pub fn upstream_error(provider: &str, status: u16, body: &[u8]) -> ProviderError {
    let text = String::from_utf8_lossy(body).trim().to_string();
    let (message, kind, param) = match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(ErrorEnvelope {
            error:
                Some(ErrorBody::Object {
                    message,
                    kind,
                    param,
                }),
            ..
        }) => (
            message.map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string)),
            kind,
            param.and_then(|p| p.as_str().map(str::to_string)),
        ),
        Ok(ErrorEnvelope {
            error: Some(ErrorBody::Text(message)),
            ..
        }) => (Some(message), None, None),
        Ok(ErrorEnvelope {
            detail: Some(d), ..
        }) => (
            Some(d.as_str().map_or_else(|| d.to_string(), str::to_string)),
            None,
            None,
        ),
        Ok(ErrorEnvelope {
            message: Some(m), ..
        }) => (Some(m), None, None),
        _ => (None, None, None),
    };
    let message = message.unwrap_or_else(|| {
        if text.is_empty() {
            format!("upstream returned HTTP {status} with an empty body")
        } else {
            text.chars().take(2_000).collect()
        }
    });
    ProviderError::Upstream {
        provider: provider.to_string(),
        status,
        message,
        kind,
        param,
    }
}

/// The error with its causes, since reqwest's top-level text alone says little.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openai_error_shape() {
        let e = upstream_error(
            "openai",
            401,
            br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        );
        match e {
            ProviderError::Upstream {
                status,
                message,
                kind,
                ..
            } => {
                assert_eq!(status, 401);
                assert_eq!(message, "Incorrect API key provided");
                assert_eq!(kind.as_deref(), Some("invalid_request_error"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_detail_and_plain_text_errors() {
        let e = upstream_error("hosted_vllm", 400, br#"{"detail":"bad prompt"}"#);
        assert!(
            matches!(e, ProviderError::Upstream { ref message, .. } if message == "bad prompt")
        );
        let e = upstream_error("hosted_vllm", 502, b"Bad Gateway");
        assert!(
            matches!(e, ProviderError::Upstream { ref message, .. } if message == "Bad Gateway")
        );
        let e = upstream_error("hosted_vllm", 503, b"");
        assert!(
            matches!(e, ProviderError::Upstream { ref message, .. } if message.contains("empty body"))
        );
    }
}
