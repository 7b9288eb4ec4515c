//! Sending one upstream request: the timeout, connection failures, reading a bounded error
//! body for the adapter to classify, and handing back the success as bytes or a stream.

use crate::error::ProviderError;
use crate::provider::{Provider, UpstreamRequest};
use crate::sse::ByteStream;
use bytes::Bytes;
use futures_util::StreamExt;
use std::time::Duration;

/// Largest upstream error body read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A successful upstream answer, before translation.
pub enum UpstreamBody {
    Complete(Bytes),
    Stream(ByteStream),
}

pub async fn send<P: Provider>(
    http: &reqwest::Client,
    provider: &P,
    request: UpstreamRequest,
    stream: bool,
    timeout: Duration,
) -> Result<UpstreamBody, ProviderError> {
    let name = provider.name().to_string();
    let UpstreamRequest { url, headers, body } = request;
    let request = http.post(&url).headers(headers).body(body);
    let timed_out = || ProviderError::Timeout {
        provider: name.clone(),
        after: timeout,
    };
    let response = match tokio::time::timeout(timeout, request.send()).await {
        Err(_) => return Err(timed_out()),
        Ok(Err(e)) if e.is_timeout() => return Err(timed_out()),
        Ok(Err(e)) => {
            return Err(ProviderError::Connect {
                provider: name,
                api_base: provider
                    .api_base()
                    .unwrap_or_else(|| url.split('?').next().unwrap_or_default())
                    .to_string(),
                detail: error_chain(&e),
            });
        }
        Ok(Ok(r)) => r,
    };

    let status = response.status();
    if !status.is_success() {
        let headers = response.headers().clone();
        let bytes =
            match tokio::time::timeout(timeout, read_limited(response, MAX_ERROR_BODY)).await {
                Ok(b) => b,
                Err(_) => Bytes::new(),
            };
        return Err(provider.error(status.as_u16(), &headers, &bytes));
    }

    if stream {
        let body = response.bytes_stream().map(move |chunk| {
            chunk.map_err(|e| ProviderError::Stream {
                provider: name.clone(),
                detail: error_chain(&e),
            })
        });
        return Ok(UpstreamBody::Stream(Box::pin(body)));
    }
    match tokio::time::timeout(timeout, response.bytes()).await {
        Err(_) => Err(timed_out()),
        Ok(Err(e)) => Err(ProviderError::InvalidResponse {
            provider: name,
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
