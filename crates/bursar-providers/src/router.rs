//! The router: public model names → deployments, deployment choice (weighted shuffle),
//! retries on other deployments, timeouts, and the response handling shared by every provider
//! (usage extraction, `model` rewrite, stream tapping).

use crate::demo::{self, DemoAnswer};
use crate::endpoint::Endpoint;
use crate::error::ProviderError;
use crate::json::JsonObject;
use crate::params::Env;
use crate::provider::{self, Adapter, Outbound, Provider, dispatch};
use crate::sse::{self, ByteStream, FinishHook, TapOptions};
use crate::transport::{self, UpstreamBody};
use crate::usage::Usage;
use bursar_core::config::{Config, ConfigProblem, Deployment};
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

/// A deployment with the adapter that reaches it.
pub struct Target {
    pub deployment: Deployment,
    adapter: Adapter,
    /// `litellm_params.drop_params`.
    drop_params: bool,
}

impl Target {
    /// Builds the deployment's adapter; every problem with its settings otherwise.
    pub fn new(mut deployment: Deployment, env: &Env<'_>) -> Result<Target, Vec<ConfigProblem>> {
        let (adapter, drop_params) = provider::build(&deployment, env)?.value;
        // Prices are looked up (lazily) by the name the provider really serves.
        if let Some(model) = adapter.upstream_model() {
            deployment.set_upstream_model(model);
        }
        Ok(Target {
            deployment,
            adapter,
            drop_params,
        })
    }

    /// The provider's LiteLLM name (`custom_llm_provider`).
    pub fn provider(&self) -> &'static str {
        self.adapter.name()
    }

    /// The URL prefix calls go to, without a query string.
    pub fn api_base(&self) -> Option<&str> {
        self.adapter
            .api_base()
            .map(|b| b.split('?').next().unwrap_or(b))
    }
}

pub struct Routed {
    pub target: Arc<Target>,
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
    groups: HashMap<String, Vec<Arc<Target>>>,
    /// Public names in config order, for `/v1/models`.
    names: Vec<String>,
    num_retries: u32,
    default_timeout: Duration,
    /// `litellm_settings.drop_params`.
    drop_params: bool,
}

impl Router {
    /// Builds every deployment's adapter (`process_env` supplies credentials the config
    /// leaves to the environment); all problems are reported at once.
    pub fn new(
        config: &Config,
        process_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Router, Vec<ConfigProblem>> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| {
                vec![ConfigProblem {
                    path: String::new(),
                    message: format!("cannot build the HTTP client: {e}"),
                }]
            })?;
        let env = Env::new(config, process_env);
        let mut groups: HashMap<String, Vec<Arc<Target>>> = HashMap::new();
        let mut names = Vec::new();
        let mut problems = Vec::new();
        for d in &config.models {
            let target = match Target::new(d.clone(), &env) {
                Ok(t) => t,
                Err(mut p) => {
                    problems.append(&mut p);
                    continue;
                }
            };
            if !groups.contains_key(&d.model_name) {
                names.push(d.model_name.clone());
            }
            groups
                .entry(d.model_name.clone())
                .or_default()
                .push(Arc::new(target));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Router {
            http,
            groups,
            names,
            num_retries: config.router.num_retries,
            default_timeout: config.router.timeout,
            drop_params: config.drop_params,
        })
    }

    /// Every problem with the deployments' provider settings (what `Router::new` refuses),
    /// and the settings no adapter reads, for `bursar check-config`.
    pub fn check(
        config: &Config,
        process_env: &dyn Fn(&str) -> Option<String>,
    ) -> (Vec<ConfigProblem>, Vec<String>) {
        let env = Env::new(config, process_env);
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        for d in &config.models {
            match provider::build(d, &env) {
                Ok(built) => warnings.extend(built.warnings),
                Err(p) => problems.extend(p),
            }
        }
        (problems, warnings)
    }

    pub fn model_names(&self) -> &[String] {
        &self.names
    }

    pub fn deployments(&self, model: &str) -> Option<&[Arc<Target>]> {
        self.groups.get(model).map(Vec::as_slice)
    }

    pub fn all_deployments(&self) -> impl Iterator<Item = &Arc<Target>> {
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
            for _ in 0..=deployment.deployment.max_retries.unwrap_or(0) {
                attempts += 1;
                match self
                    .try_deployment(deployment, &mut call, client_wants_usage)
                    .await
                {
                    Ok(answer) => {
                        return Ok(Routed {
                            target: deployment.clone(),
                            answer,
                            attempts,
                        });
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::debug!(deployment = %deployment.deployment.id, error = %e, "retryable upstream failure");
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
    pub async fn send_to(&self, d: &Target, mut call: Call) -> Result<Answer, ProviderError> {
        let wants = wants_usage(&call.body);
        self.try_deployment(d, &mut call, wants).await
    }

    async fn try_deployment(
        &self,
        target: &Target,
        call: &mut Call,
        client_wants_usage: bool,
    ) -> Result<Answer, ProviderError> {
        let d = &target.deployment;
        let timeout = if call.stream {
            d.stream_timeout
                .or(d.timeout)
                .unwrap_or(self.default_timeout)
        } else {
            d.timeout.unwrap_or(self.default_timeout)
        };
        let adapter = &target.adapter;
        if !adapter.supports(call.endpoint) {
            return Err(ProviderError::BadRequest(format!(
                "{} does not support {} (model={})",
                adapter.name(),
                call.endpoint.path().trim_start_matches('/'),
                d.litellm_model
            )));
        }
        let outbound = Outbound {
            endpoint: call.endpoint,
            body: &call.body,
            stream: call.stream,
            requested: &call.model,
            upstream_model: &d.upstream_model,
            drop_params: self.drop_params
                || target.drop_params
                || matches!(call.body.get_as::<bool>("drop_params"), Some(Ok(true))),
        };
        let answer = dispatch!(adapter, p => {
            let request = p.request(&outbound, &self.http).await?;
            match transport::send(&self.http, p, request, call.stream, timeout).await? {
                UpstreamBody::Complete(bytes) => p.complete(&outbound, bytes)?,
                UpstreamBody::Stream(source) => Answer::Stream(p.stream(&outbound, source)),
            }
        }, demo => match demo::answer(
            call.endpoint,
            &call.body,
            &call.model,
            call.stream,
            call.stream,
        ) {
            DemoAnswer::Json(bytes) => crate::openai::finish_complete(bytes, &call.model, "bursar")?,
            DemoAnswer::Stream(frames) => Answer::Stream(Box::pin(
                futures_util::stream::iter(frames.into_iter().map(Ok)),
            )),
        });
        Ok(match answer {
            Answer::Stream(source) => Answer::Stream(sse::tap(
                source,
                TapOptions {
                    model: Some(call.model.clone()),
                    strip_usage_chunk: !client_wants_usage,
                    idle_timeout: timeout,
                    provider: adapter.name().to_string(),
                    abort: call.abort.clone(),
                },
                call.on_stream_finish.take(),
            )),
            complete => complete,
        })
    }
}

fn wants_usage(body: &JsonObject) -> bool {
    matches!(
        body.get_as::<Value>("stream_options"),
        Some(Ok(Value::Object(map))) if map.get("include_usage") == Some(&Value::Bool(true))
    )
}

/// Deployment indices in a random order weighted by `weight`, else `rpm`, else `tpm`
/// (LiteLLM's simple-shuffle).
fn weighted_order(group: &[Arc<Target>]) -> Vec<usize> {
    let mut remaining: Vec<(usize, f64)> = group
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let d = &t.deployment;
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

    fn group(yaml: &str) -> Vec<Arc<Target>> {
        let config = load(yaml, &|_| None).unwrap().config;
        let env = Env::new(&config, &|_| None);
        config
            .models
            .iter()
            .map(|d| Arc::new(Target::new(d.clone(), &env).unwrap()))
            .collect()
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
    fn targets_name_their_provider_and_base() {
        let g = group(
            "model_list:\n  - {model_name: a, litellm_params: {model: openai/gpt-4o}}\n  - {model_name: b, litellm_params: {model: hosted_vllm/x, api_base: 'http://h:1/v1/?q=1'}}\n",
        );
        assert_eq!(g[0].provider(), "openai");
        assert_eq!(g[0].api_base(), Some("https://api.openai.com/v1"));
        assert_eq!(g[1].provider(), "hosted_vllm");
        assert_eq!(g[1].api_base(), Some("http://h:1/v1/"));
    }
}
