//! Which upstream API a deployment speaks, decided from the `provider/` prefix of
//! `litellm_params.model`.

use std::fmt;

/// The wire protocol Bursar uses to reach a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any server that speaks OpenAI's `/chat/completions`, `/completions`, `/embeddings`.
    OpenAiCompatible,
    /// The built-in local demo model: answers without network, deterministically.
    Demo,
}

/// A resolved provider: its LiteLLM name (`custom_llm_provider`), protocol and default base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    pub name: &'static str,
    pub kind: ProviderKind,
    /// Base URL used when the deployment sets no `api_base`; `None` means `api_base` is required.
    pub default_api_base: Option<&'static str>,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

const fn compat(name: &'static str, base: Option<&'static str>) -> Provider {
    Provider {
        name,
        kind: ProviderKind::OpenAiCompatible,
        default_api_base: base,
    }
}

/// Providers Bursar forwards to today. All speak the OpenAI wire format.
const PROVIDERS: &[Provider] = &[
    compat("openai", Some("https://api.openai.com/v1")),
    compat("text-completion-openai", Some("https://api.openai.com/v1")),
    compat("custom_openai", None),
    compat("openai_like", None),
    compat("hosted_vllm", None),
    compat("lm_studio", Some("http://localhost:1234/v1")),
    compat("llamafile", Some("http://127.0.0.1:8080/v1")),
    compat("groq", Some("https://api.groq.com/openai/v1")),
    compat("deepseek", Some("https://api.deepseek.com/v1")),
    compat("together_ai", Some("https://api.together.xyz/v1")),
    compat("mistral", Some("https://api.mistral.ai/v1")),
    compat(
        "fireworks_ai",
        Some("https://api.fireworks.ai/inference/v1"),
    ),
    compat("openrouter", Some("https://openrouter.ai/api/v1")),
    compat("xai", Some("https://api.x.ai/v1")),
    compat("deepinfra", Some("https://api.deepinfra.com/v1/openai")),
    compat("perplexity", Some("https://api.perplexity.ai")),
    Provider {
        name: "bursar",
        kind: ProviderKind::Demo,
        default_api_base: None,
    },
];

/// LiteLLM providers that Bursar recognises but does not speak yet.
const NOT_YET_SUPPORTED: &[&str] = &[
    "azure",
    "azure_ai",
    "anthropic",
    "bedrock",
    "vertex_ai",
    "gemini",
    "cohere",
    "ollama",
    "ollama_chat",
    "huggingface",
    "sagemaker",
    "watsonx",
    "replicate",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error(
        "provider {0:?} is not supported yet; use an OpenAI-compatible endpoint (e.g. openai/ or hosted_vllm/ with api_base)"
    )]
    NotYetSupported(String),
    #[error(
        "unknown provider in model {0:?}; prefix the model with its provider, e.g. openai/gpt-4o or hosted_vllm/<name>"
    )]
    Unknown(String),
    #[error("model name is empty")]
    Empty,
}

/// Splits `litellm_params.model` into its provider and the model name sent upstream.
/// A name without a prefix (`gpt-4o`) is an OpenAI model, as in LiteLLM.
pub fn parse_model(model: &str) -> Result<(Provider, String), ProviderError> {
    let model = model.trim();
    if model.is_empty() {
        return Err(ProviderError::Empty);
    }
    let Some((prefix, rest)) = model.split_once('/') else {
        return Ok((PROVIDERS[0], model.to_string()));
    };
    if let Some(p) = PROVIDERS.iter().find(|p| p.name == prefix) {
        if rest.is_empty() {
            return Err(ProviderError::Empty);
        }
        return Ok((*p, rest.to_string()));
    }
    if NOT_YET_SUPPORTED.contains(&prefix) {
        return Err(ProviderError::NotYetSupported(prefix.to_string()));
    }
    Err(ProviderError::Unknown(model.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_known_prefixes() {
        let (p, m) = parse_model("openai/gpt-4o").unwrap();
        assert_eq!((p.name, m.as_str()), ("openai", "gpt-4o"));
        let (p, m) = parse_model("hosted_vllm/meta-llama/Llama-3.1-8B").unwrap();
        assert_eq!(
            (p.name, m.as_str()),
            ("hosted_vllm", "meta-llama/Llama-3.1-8B")
        );
        assert_eq!(p.default_api_base, None);
        let (p, _) = parse_model("bursar/demo").unwrap();
        assert_eq!(p.kind, ProviderKind::Demo);
    }

    #[test]
    fn bare_names_are_openai() {
        let (p, m) = parse_model("gpt-4o-mini").unwrap();
        assert_eq!((p.name, m.as_str()), ("openai", "gpt-4o-mini"));
    }

    #[test]
    fn unsupported_and_unknown_prefixes_are_errors() {
        assert_eq!(
            parse_model("azure/my-deployment"),
            Err(ProviderError::NotYetSupported("azure".into()))
        );
        assert!(matches!(
            parse_model("meta-llama/Llama-3"),
            Err(ProviderError::Unknown(_))
        ));
        assert_eq!(parse_model("  "), Err(ProviderError::Empty));
        assert_eq!(parse_model("openai/"), Err(ProviderError::Empty));
    }
}
