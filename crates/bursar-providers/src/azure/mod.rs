//! Azure OpenAI (`azure/<deployment>`) and Azure AI Foundry model inference
//! (`azure_ai/<model>`). Both speak the OpenAI wire format, so bodies and answers pass
//! through as for OpenAI; what differs is the URL and the credentials.
//!
//! - `azure`: `{api_base}/openai/deployments/{deployment}/{operation}?api-version=…`, with
//!   `api-key: …` or, for Entra ID, `Authorization: Bearer {azure_ad_token}`.
//! - `azure_ai`: `{api_base}/chat/completions` (`/models/chat/completions` on
//!   `*.services.ai.azure.com`), with a bearer key and `api-version` when set.

use crate::endpoint::Endpoint;
use crate::error::ProviderError;
use crate::openai::{finish_complete, pass_through_body, sensitive, upstream_error, url_index};
use crate::params::Params;
use crate::provider::{Outbound, Provider, UpstreamRequest};
use crate::router::Answer;
use crate::sse::ByteStream;
use bursar_core::config::Deployment;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};

/// LiteLLM's `AZURE_DEFAULT_API_VERSION` (1.110).
pub const DEFAULT_API_VERSION: &str = "2025-02-01-preview";

pub struct Azure {
    name: &'static str,
    api_base: String,
    headers: HeaderMap,
    /// One full URL per endpoint (chat, completions, embeddings).
    urls: [String; 3],
}

impl Azure {
    pub fn configure(d: &Deployment, params: &mut Params<'_>) -> Option<Azure> {
        if d.provider == "azure_ai" {
            return Azure::foundry(params);
        }
        let api_base = params.url(
            "api_base",
            &["AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"],
            None,
        );
        if api_base.is_none() {
            params.problem(
                "api_base",
                "provider azure needs an api_base (https://<resource>.openai.azure.com): set litellm_params.api_base or the environment variable AZURE_API_BASE".into(),
            );
        }
        let api_version = params
            .string_or_env("api_version", &["AZURE_API_VERSION"])
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
        let key = params.secret_or_env("api_key", &["AZURE_API_KEY", "AZURE_OPENAI_API_KEY"]);
        let token = params.secret_or_env("azure_ad_token", &["AZURE_AD_TOKEN"]);
        let mut headers = params.headers("extra_headers");
        match (key, token) {
            (Some(key), _) => insert_secret(&mut headers, "api-key", key.expose()),
            (None, Some(token)) => insert_secret(
                &mut headers,
                header::AUTHORIZATION.as_str(),
                &format!("Bearer {}", token.expose()),
            ),
            (None, None) => params.problem(
                "api_key",
                "provider azure needs a credential: set litellm_params.api_key (or AZURE_API_KEY), or litellm_params.azure_ad_token (or AZURE_AD_TOKEN)".into(),
            ),
        }
        let api_base = api_base?;
        let deployment = &d.upstream_model;
        let url = |e: Endpoint| {
            format!(
                "{api_base}/openai/deployments/{deployment}{}?api-version={api_version}",
                e.path()
            )
        };
        Some(Azure::new("azure", api_base.clone(), headers, url))
    }

    fn foundry(params: &mut Params<'_>) -> Option<Azure> {
        let api_base = params.url("api_base", &["AZURE_AI_API_BASE"], None);
        if api_base.is_none() {
            params.problem(
                "api_base",
                "provider azure_ai needs an api_base (the Foundry endpoint): set litellm_params.api_base or the environment variable AZURE_AI_API_BASE".into(),
            );
        }
        let key = params.required_secret("api_key", &["AZURE_AI_API_KEY"], "an API key");
        let api_version = params.string("api_version");
        let mut headers = params.headers("extra_headers");
        if let Some(key) = key {
            insert_secret(
                &mut headers,
                header::AUTHORIZATION.as_str(),
                &format!("Bearer {}", key.expose()),
            );
        }
        let api_base = api_base?;
        // A base given with its query (`…?api-version=…`) keeps it; the path is added once.
        let (path_base, query) = match api_base.split_once('?') {
            Some((p, q)) => (p.trim_end_matches('/').to_string(), Some(q.to_string())),
            None => (api_base.clone(), None),
        };
        let prefix =
            if path_base.contains("services.ai.azure.com") && !path_base.ends_with("/models") {
                format!("{path_base}/models")
            } else {
                path_base
            };
        let query = query.or(api_version.map(|v| format!("api-version={v}")));
        let url = |e: Endpoint| match &query {
            Some(q) => format!("{prefix}{}?{q}", e.path()),
            None => format!("{prefix}{}", e.path()),
        };
        Some(Azure::new("azure_ai", api_base.clone(), headers, url))
    }

    fn new(
        name: &'static str,
        api_base: String,
        mut headers: HeaderMap,
        url: impl Fn(Endpoint) -> String,
    ) -> Azure {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Azure {
            name,
            api_base,
            headers,
            urls: [
                url(Endpoint::ChatCompletions),
                url(Endpoint::Completions),
                url(Endpoint::Embeddings),
            ],
        }
    }
}

fn insert_secret(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (
        http::HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.insert(n, sensitive(v));
    }
}

impl Provider for Azure {
    fn name(&self) -> &'static str {
        self.name
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.api_base)
    }

    fn supports(&self, _: Endpoint) -> bool {
        true
    }

    async fn request(
        &self,
        call: &Outbound<'_>,
        _: &reqwest::Client,
    ) -> Result<UpstreamRequest, ProviderError> {
        let mut headers = self.headers.clone();
        if call.stream {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        Ok(UpstreamRequest {
            url: self.urls[url_index(call.endpoint)].clone(),
            headers,
            body: Bytes::from(pass_through_body(call)?),
        })
    }

    fn complete(&self, call: &Outbound<'_>, body: Bytes) -> Result<Answer, ProviderError> {
        finish_complete(body, call.requested, self.name)
    }

    fn stream(&self, _: &Outbound<'_>, source: ByteStream) -> ByteStream {
        source
    }

    fn error(&self, status: u16, _: &HeaderMap, body: &[u8]) -> ProviderError {
        upstream_error(self.name, status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn azure(yaml_params: &str, env: &[(&str, &str)]) -> Result<Azure, Vec<String>> {
        crate::params::configure_for_test(yaml_params, env, Azure::configure)
    }

    #[test]
    fn azure_openai_urls_carry_deployment_and_version() {
        let a = azure(
            "{model: azure/gpt4o-prod, api_base: 'https://r.openai.azure.com/', api_key: k, api_version: '2024-10-21'}",
            &[],
        )
        .unwrap();
        assert_eq!(
            a.urls[0],
            "https://r.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            a.urls[2],
            "https://r.openai.azure.com/openai/deployments/gpt4o-prod/embeddings?api-version=2024-10-21"
        );
        assert_eq!(a.headers["api-key"], "k");
        assert!(!a.headers.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn azure_reads_the_environment_and_defaults_the_version() {
        let a = azure(
            "{model: azure/d}",
            &[
                ("AZURE_API_BASE", "https://e.openai.azure.com"),
                ("AZURE_AD_TOKEN", "tok"),
            ],
        )
        .unwrap();
        assert!(a.urls[0].ends_with(&format!("?api-version={DEFAULT_API_VERSION}")));
        assert_eq!(a.headers[header::AUTHORIZATION], "Bearer tok");
    }

    #[test]
    fn azure_names_each_missing_setting() {
        let problems = azure("{model: azure/d}", &[]).err().unwrap();
        let text = problems.join("\n");
        assert!(
            text.contains(
                "model_list[0].litellm_params.api_base: provider azure needs an api_base"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "model_list[0].litellm_params.api_key: provider azure needs a credential"
            ),
            "{text}"
        );
    }

    #[test]
    fn foundry_adds_the_models_path_on_services_hosts() {
        let a = azure(
            "{model: azure_ai/mistral-large, api_base: 'https://x.services.ai.azure.com', api_key: k, api_version: '2024-05-01-preview'}",
            &[],
        )
        .unwrap();
        assert_eq!(
            a.urls[0],
            "https://x.services.ai.azure.com/models/chat/completions?api-version=2024-05-01-preview"
        );
        assert_eq!(a.headers[header::AUTHORIZATION], "Bearer k");
        let b = azure(
            "{model: azure_ai/m, api_base: 'https://m.eastus2.models.ai.azure.com'}",
            &[("AZURE_AI_API_KEY", "env-key")],
        )
        .unwrap();
        assert_eq!(
            b.urls[0],
            "https://m.eastus2.models.ai.azure.com/chat/completions"
        );
    }
}
