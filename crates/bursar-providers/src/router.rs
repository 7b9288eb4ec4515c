//! The router: public model names → deployments, deployment choice (weighted shuffle),
//! retries on other deployments, timeouts, and the response handling shared by every provider
//! (usage extraction, `model` rewrite, stream tapping).

use crate::demo::{self, DemoAnswer};
use crate::endpoint::Endpoint;
use crate::error::ProviderError;
use crate::json::JsonObject;
use crate::openai::{self, UpstreamBody};
use crate::sse::{self, ByteStream, FinishHook, TapOptions};
use crate::usage::Usage;
use bursar_core::config::{Config, Deployment, ProviderKind};
use bytes::Bytes;
use rand::RngExt;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// One proxied call, as the data plane hands it over.
pub struct Call {
    pub endpoint: Endpoint,
    /// The public model name the client asked for.
    pub model: String,
    /// The client's body; `model` is replaced per deployment.
    pub body: JsonObject,
    pub stream: bool,
    /// Runs when a streamed answer ends or is abandoned.
    pub on_stream_finish: Option<FinishHook>,
    /// Cancelled when the gateway stops waiting for open streams (the drain deadline): a
    /// stream still open then ends with an error frame.
    pub abort: Option<tokio_util::sync::CancellationToken>,
}

pub enum Answer {
    Complete {
        body: Bytes,
        usage: Option<Usage>,
        /// The answer's `id` (`chatcmpl-…`), when it has a usable one.
        response_id: Option<String>,
    },
    Stream(ByteStream),
}

pub struct Routed {
    pub deployment: Arc<Deployment>,
    pub answer: Answer,
    /// Attempts made, 1 when the first try succeeded.
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(
        "Invalid model name passed in model={0}. Call `/v1/models` to view available models for your key."
    )]
    UnknownModel(String),
    #[error(transparent)]
    Provider(ProviderError),
}

pub struct Router {
    http: reqwest::Client,
    groups: HashMap<String, Vec<Arc<Deployment>>>,
    /// Public names in config order, for `/v1/models`.
    names: Vec<String>,
    num_retries: u32,
    default_timeout: Duration,
}

impl Router {
    pub fn new(config: &Config) -> Result<Router, ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ProviderError::BadRequest(format!("cannot build the HTTP client: {e}")))?;
        let mut groups: HashMap<String, Vec<Arc<Deployment>>> = HashMap::new();
        let mut names = Vec::new();
        for d in &config.models {
            if !groups.contains_key(&d.model_name) {
                names.push(d.model_name.clone());
            }
            groups
                .entry(d.model_name.clone())
                .or_default()
                .push(Arc::new(d.clone()));
        }
        Ok(Router {
            http,
            groups,
            names,
            num_retries: config.router.num_retries,
            default_timeout: config.router.timeout,
        })
    }

    pub fn model_names(&self) -> &[String] {
        &self.names
    }

    pub fn deployments(&self, model: &str) -> Option<&[Arc<Deployment>]> {
        self.groups.get(model).map(Vec::as_slice)
    }

    pub fn all_deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.names
            .iter()
            .filter_map(|n| self.groups.get(n))
            .flatten()
    }

    /// Sends the call to a deployment of its model group, retrying retryable failures on the
    /// next deployment (router `num_retries`) and on the same one (`max_retries`).
    pub async fn send(&self, mut call: Call) -> Result<Routed, RouteError> {
        let group = self
            .groups
            .get(&call.model)
            .ok_or_else(|| RouteError::UnknownModel(call.model.clone()))?;
        let order = weighted_order(group);
        let client_wants_usage = wants_usage(&call.body);
        let mut attempts = 0u32;
        let mut last_error = None;
        for round in 0..=self.num_retries {
            let deployment = &group[order[round as usize % order.len()]];
            for _ in 0..=deployment.max_retries.unwrap_or(0) {
                attempts += 1;
                match self
                    .try_deployment(deployment, &mut call, client_wants_usage)
                    .await
                {
                    Ok(answer) => {
                        return Ok(Routed {
                            deployment: deployment.clone(),
                            answer,
                            attempts,
                        });
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::debug!(deployment = %deployment.id, error = %e, "retryable upstream failure");
                        last_error = Some(e);
                    }
                    Err(e) => return Err(RouteError::Provider(e)),
                }
            }
        }
        Err(RouteError::Provider(last_error.unwrap_or_else(|| {
            ProviderError::BadRequest("no deployment answered".into())
        })))
    }

    /// Sends a call to one given deployment, without retries (health checks).
    pub async fn send_to(&self, d: &Deployment, mut call: Call) -> Result<Answer, ProviderError> {
        let wants = wants_usage(&call.body);
        self.try_deployment(d, &mut call, wants).await
    }

    async fn try_deployment(
        &self,
        d: &Deployment,
        call: &mut Call,
        client_wants_usage: bool,
    ) -> Result<Answer, ProviderError> {
        let timeout = if call.stream {
            d.stream_timeout
                .or(d.timeout)
                .unwrap_or(self.default_timeout)
        } else {
            d.timeout.unwrap_or(self.default_timeout)
        };
        let upstream = match d.provider.kind {
            ProviderKind::Demo => match demo::answer(
                call.endpoint,
                &call.body,
                &call.model,
                call.stream,
                call.stream,
            ) {
                DemoAnswer::Json(bytes) => UpstreamBody::Complete(bytes),
                DemoAnswer::Stream(frames) => UpstreamBody::Stream(Box::pin(
                    futures_util::stream::iter(frames.into_iter().map(Ok)),
                )),
            },
            ProviderKind::OpenAiCompatible => {
                let body = upstream_body(d, &call.body, call.stream)?;
                openai::send(&self.http, d, call.endpoint, body, call.stream, timeout).await?
            }
        };
        Ok(match upstream {
            UpstreamBody::Complete(bytes) => finish_complete(bytes, &call.model, d)?,
            UpstreamBody::Stream(source) => Answer::Stream(sse::tap(
                source,
                TapOptions {
                    model: Some(call.model.clone()),
                    strip_usage_chunk: !client_wants_usage,
                    idle_timeout: timeout,
                    provider: d.provider.name.to_string(),
                    abort: call.abort.clone(),
                },
                call.on_stream_finish.take(),
            )),
        })
    }
}

/// The client's body with the deployment's model name, and usage requested for streams.
fn upstream_body(
    d: &Deployment,
    body: &JsonObject,
    stream: bool,
) -> Result<Vec<u8>, ProviderError> {
    let mut body = body.clone();
    let bad = |e: serde_json::Error| ProviderError::BadRequest(e.to_string());
    body.set("model", &d.upstream_model).map_err(bad)?;
    if stream {
        let mut options = match body.get_as::<Value>("stream_options") {
            Some(Ok(Value::Object(map))) => map,
            _ => serde_json::Map::new(),
        };
        options.insert("include_usage".into(), Value::Bool(true));
        body.set("stream_options", &options).map_err(bad)?;
    }
    Ok(body.to_vec())
}

fn wants_usage(body: &JsonObject) -> bool {
    matches!(
        body.get_as::<Value>("stream_options"),
        Some(Ok(Value::Object(map))) if map.get("include_usage") == Some(&Value::Bool(true))
    )
}

/// Reads usage and puts the requested model name back into a complete JSON answer.
/// A successful answer must be a JSON object: anything else (an HTML error page behind a
/// `200`, a truncated body) is the upstream's failure, not a success to pass on.
fn finish_complete(bytes: Bytes, requested: &str, d: &Deployment) -> Result<Answer, ProviderError> {
    let Ok(mut object) = JsonObject::parse(&bytes) else {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
            .escape_default()
            .to_string();
        return Err(ProviderError::InvalidResponse {
            provider: d.provider.name.to_string(),
            detail: format!("the answer is not a JSON object (starts with \"{start}\")"),
        });
    };
    let usage = object.get("usage").and_then(Usage::from_raw);
    let response_id = match object.get_as::<&str>("id") {
        Some(Ok(id)) => crate::sse::usable_id(id),
        _ => None,
    };
    let same_model = matches!(object.get_as::<&str>("model"), Some(Ok(m)) if m == requested);
    if same_model || !object.contains("model") || object.set("model", &requested).is_err() {
        return Ok(Answer::Complete {
            body: bytes,
            usage,
            response_id,
        });
    }
    Ok(Answer::Complete {
        body: Bytes::from(object.to_vec()),
        usage,
        response_id,
    })
}

/// Deployment indices in a random order weighted by `weight`, else `rpm`, else `tpm`
/// (LiteLLM's simple-shuffle).
fn weighted_order(group: &[Arc<Deployment>]) -> Vec<usize> {
    let mut remaining: Vec<(usize, f64)> = group
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let w = d
                .weight
                .or(d.rpm.map(|r| r as f64))
                .or(d.tpm.map(|t| t as f64))
                .unwrap_or(1.0);
            (i, if w > 0.0 { w } else { 0.0 })
        })
        .collect();
    let mut order = Vec::with_capacity(group.len());
    let mut rng = rand::rng();
    while !remaining.is_empty() {
        let total: f64 = remaining.iter().map(|(_, w)| w).sum();
        let pick = if total > 0.0 {
            let mut target = rng.random::<f64>() * total;
            remaining
                .iter()
                .position(|(_, w)| {
                    target -= w;
                    target < 0.0
                })
                .unwrap_or(remaining.len() - 1)
        } else {
            rng.random_range(0..remaining.len())
        };
        order.push(remaining.remove(pick).0);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use bursar_core::config::load;

    fn group(yaml: &str) -> Vec<Arc<Deployment>> {
        let config = load(yaml, &|_| None).unwrap().config;
        config.models.into_iter().map(Arc::new).collect()
    }

    #[test]
    fn weighted_order_is_a_permutation_favouring_heavy_deployments() {
        let g = group(
            "model_list:\n  - {model_name: m, litellm_params: {model: openai/a, weight: 9}}\n  - {model_name: m, litellm_params: {model: openai/b, weight: 1}}\n",
        );
        let mut first_heavy = 0;
        for _ in 0..2_000 {
            let order = weighted_order(&g);
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1]);
            if order[0] == 0 {
                first_heavy += 1;
            }
        }
        // Expected 1,800 of 2,000; allow generous noise.
        assert!((1_650..=1_950).contains(&first_heavy), "{first_heavy}");
    }

    #[test]
    fn upstream_body_uses_deployment_model_and_asks_for_usage() {
        let g = group(
            "model_list:\n  - {model_name: public, litellm_params: {model: hosted_vllm/org/llama, api_base: 'http://x/v1'}}\n",
        );
        let body =
            JsonObject::parse(br#"{"model":"public","stream":true,"stream_options":{"foo":1}}"#)
                .unwrap();
        let out: Value =
            serde_json::from_slice(&upstream_body(&g[0], &body, true).unwrap()).unwrap();
        assert_eq!(out["model"], "org/llama");
        assert_eq!(out["stream_options"]["include_usage"], true);
        assert_eq!(out["stream_options"]["foo"], 1);
        assert!(!wants_usage(&body));
    }

    #[test]
    fn complete_answers_get_the_requested_model_and_usage() {
        let g = group(
            "model_list:\n  - {model_name: public, litellm_params: {model: openai/gpt-4o}}\n",
        );
        let upstream = Bytes::from_static(br#"{"id":"x","model":"gpt-4o-2024-08-06","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#);
        let Ok(Answer::Complete { body, usage, .. }) = finish_complete(upstream, "public", &g[0])
        else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["model"], "public");
        assert_eq!(usage, Some(Usage::new(3, 4)));
    }

    #[test]
    fn a_success_that_is_not_a_json_object_is_an_invalid_response() {
        let g = group(
            "model_list:\n  - {model_name: public, litellm_params: {model: openai/gpt-4o}}\n",
        );
        for body in [&b"<html>oops</html>"[..], b"[1,2]", b"", b"{\"truncated\":"] {
            let e = finish_complete(Bytes::from_static(body), "public", &g[0]).err();
            assert!(
                matches!(e, Some(ProviderError::InvalidResponse { .. })),
                "{body:?}: {e:?}"
            );
            assert_eq!(e.map(|e| e.status()), Some(502));
        }
    }
}
