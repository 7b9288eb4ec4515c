//! AWS Bedrock (`bedrock/<model id>`, `bedrock/converse/<model id>`): chat completions to
//! Converse (`POST {endpoint}/model/{id}/converse`) and ConverseStream (AWS event-stream
//! framing), embeddings (Titan, Cohere on Bedrock) to `invoke`. Requests are signed with
//! SigV4 by the AWS SDK's signer (`aws-sigv4`) from `aws_access_key_id` /
//! `aws_secret_access_key` / `aws_session_token` / `aws_region_name` or the standard AWS
//! environment variables; a Bedrock API key (`api_key`, `AWS_BEARER_TOKEN_BEDROCK`) is sent
//! as a bearer token instead. Cross-region inference profile ids (`us.…`, `eu.…`,
//! `global.…`) are model ids like any other.

mod translate;

use crate::endpoint::Endpoint;
use crate::error::ProviderError;
use crate::formats::chat::now;
use crate::framing;
use crate::openai::sensitive;
use crate::params::Params;
use crate::provider::{Outbound, Provider, UpstreamRequest};
use crate::router::Answer;
use crate::sse::ByteStream;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bursar_core::config::Deployment;
use bursar_core::keys::Secret;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use std::time::SystemTime;
use translate::EmbedFamily;

pub use crate::formats::chat::JSON_TOOL;

enum Auth {
    SigV4 {
        access_key_id: Secret,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
    Bearer(HeaderValue),
}

pub struct Bedrock {
    region: String,
    /// `https://bedrock-runtime.{region}.amazonaws.com`, or the configured endpoint.
    endpoint: String,
    /// The model id (without `converse/`), percent-encoded for the path.
    model_path: String,
    model_id: String,
    auth: Auth,
    headers: HeaderMap,
}

/// The model id as a path segment: `:` and `/` are encoded, as the AWS SDKs do.
fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Bedrock {
    pub fn configure(d: &Deployment, params: &mut Params<'_>) -> Option<Bedrock> {
        let model_id = d
            .upstream_model
            .strip_prefix("converse/")
            .unwrap_or(&d.upstream_model)
            .to_string();
        if model_id.starts_with("invoke/") {
            params.problem(
                "model",
                "bedrock/invoke/ models are not supported; use bedrock/<model id> or bedrock/converse/<model id> (Converse)".into(),
            );
        }
        let region = params.string_or_env(
            "aws_region_name",
            &["AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"],
        );
        if region.is_none() {
            params.problem(
                "aws_region_name",
                "provider bedrock needs a region: set litellm_params.aws_region_name or the environment variable AWS_REGION_NAME / AWS_REGION / AWS_DEFAULT_REGION".into(),
            );
        }
        let endpoint = params
            .url(
                "aws_bedrock_runtime_endpoint",
                &["AWS_BEDROCK_RUNTIME_ENDPOINT"],
                None,
            )
            .or_else(|| params.url("api_base", &[], None));
        let bearer = params.secret_or_env("api_key", &["AWS_BEARER_TOKEN_BEDROCK"]);
        let auth = match bearer {
            Some(key) => HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .ok()
                .map(|v| Auth::Bearer(sensitive(v))),
            None => {
                let id = params.secret_or_env("aws_access_key_id", &["AWS_ACCESS_KEY_ID"]);
                let secret =
                    params.secret_or_env("aws_secret_access_key", &["AWS_SECRET_ACCESS_KEY"]);
                let token = params.secret_or_env("aws_session_token", &["AWS_SESSION_TOKEN"]);
                match (id, secret) {
                    (Some(access_key_id), Some(secret_access_key)) => Some(Auth::SigV4 {
                        access_key_id,
                        secret_access_key,
                        session_token: token,
                    }),
                    _ => {
                        params.problem(
                            "aws_access_key_id",
                            "provider bedrock needs credentials: set litellm_params.aws_access_key_id and aws_secret_access_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or a Bedrock API key (api_key or AWS_BEARER_TOKEN_BEDROCK)".into(),
                        );
                        None
                    }
                }
            }
        };
        let mut headers = params.headers("extra_headers");
        let region = region?;
        let auth = auth?;
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let endpoint =
            endpoint.unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"));
        Some(Bedrock {
            region,
            endpoint,
            model_path: encode_segment(&model_id),
            model_id,
            auth,
            headers,
        })
    }

    /// The model id the price list knows (`converse/` removed).
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Adds the credentials: SigV4 headers over the final URL, headers and body.
    fn authorize(
        &self,
        url: &str,
        headers: &mut HeaderMap,
        body: &[u8],
        time: SystemTime,
    ) -> Result<(), ProviderError> {
        let (access_key_id, secret_access_key, session_token) = match &self.auth {
            Auth::Bearer(v) => {
                headers.insert(header::AUTHORIZATION, v.clone());
                return Ok(());
            }
            Auth::SigV4 {
                access_key_id,
                secret_access_key,
                session_token,
            } => (access_key_id, secret_access_key, session_token),
        };
        let identity: Identity = Credentials::new(
            access_key_id.expose(),
            secret_access_key.expose(),
            session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "bursar",
        )
        .into();
        let signing_error = |e: &dyn std::fmt::Display| {
            ProviderError::BadRequest(format!("cannot sign the bedrock request: {e}"))
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("bedrock")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing_error(&e))?
            .into();
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
            .collect();
        let signable =
            SignableRequest::new("POST", url, pairs.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| signing_error(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| signing_error(&e))?
            .into_parts();
        for (name, value) in instructions.headers() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(n, sensitive(v));
            }
        }
        Ok(())
    }
}

impl Provider for Bedrock {
    fn name(&self) -> &'static str {
        "bedrock"
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.endpoint)
    }

    fn supports(&self, endpoint: Endpoint) -> bool {
        match endpoint {
            Endpoint::ChatCompletions => true,
            Endpoint::Embeddings => EmbedFamily::of(&self.model_id).is_some(),
            Endpoint::Completions => false,
        }
    }

    fn upstream_model(&self) -> Option<&str> {
        Some(&self.model_id)
    }

    async fn request(
        &self,
        call: &Outbound<'_>,
        _: &reqwest::Client,
    ) -> Result<UpstreamRequest, ProviderError> {
        let (operation, body) = match call.endpoint {
            Endpoint::Embeddings => {
                let family = EmbedFamily::of(&self.model_id).ok_or_else(|| {
                    ProviderError::BadRequest(format!(
                        "{} is not a Bedrock embedding model",
                        self.model_id
                    ))
                })?;
                ("invoke", translate::embed_request(call, family)?)
            }
            _ if call.stream => ("converse-stream", translate::converse_request(call)?),
            _ => ("converse", translate::converse_request(call)?),
        };
        let url = format!("{}/model/{}/{operation}", self.endpoint, self.model_path);
        let body =
            serde_json::to_vec(&body).map_err(|e| ProviderError::BadRequest(e.to_string()))?;
        let mut headers = self.headers.clone();
        self.authorize(&url, &mut headers, &body, SystemTime::now())?;
        Ok(UpstreamRequest {
            url,
            headers,
            body: Bytes::from(body),
        })
    }

    fn complete(&self, call: &Outbound<'_>, body: Bytes) -> Result<Answer, ProviderError> {
        let (answer, usage) = match call.endpoint {
            Endpoint::Embeddings => {
                let base64 = call.wants_base64();
                translate::embed_answer(&body, call.requested, base64, call.input_tokens())?
            }
            _ => {
                translate::converse_answer(&body, call.requested, call.wants_json_schema(), now())?
            }
        };
        crate::provider::translated("bedrock", &answer, usage, None)
    }

    fn stream(&self, call: &Outbound<'_>, source: ByteStream) -> ByteStream {
        framing::translate(
            source,
            translate::StreamTranslator::new(call.requested, now(), call.wants_json_schema()),
        )
    }

    fn error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        let kind = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        translate::exception(kind, status, body)
    }
}

#[cfg(test)]
mod tests;
