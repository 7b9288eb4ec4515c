//! `litellm_params.model` split into LiteLLM's provider name (`custom_llm_provider`) and the
//! model name sent upstream, plus the provider-specific `litellm_params` a deployment carries.
//!
//! Which providers exist, and what their settings mean, is `bursar-providers`' business: core
//! only keeps what every deployment has.

use serde_json::{Map, Value};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelNameError {
    #[error("model name is empty")]
    Empty,
}

/// Splits `litellm_params.model` at its first `/`: `openai/gpt-4o` → (`openai`, `gpt-4o`).
/// A name without a prefix (`gpt-4o`) is an OpenAI model, as in LiteLLM.
pub fn parse_model(model: &str) -> Result<(String, String), ModelNameError> {
    let model = model.trim();
    if model.is_empty() {
        return Err(ModelNameError::Empty);
    }
    match model.split_once('/') {
        None => Ok(("openai".to_string(), model.to_string())),
        Some((_, "")) | Some(("", _)) => Err(ModelNameError::Empty),
        Some((prefix, rest)) => Ok((prefix.to_string(), rest.to_string())),
    }
}

/// The `litellm_params` of a deployment that core does not read itself (`api_base`,
/// `api_key`, `api_version`, `aws_region_name`, `vertex_project`…), with `os.environ/`
/// references already resolved. The provider adapter reads and validates them.
#[derive(Clone, Default, PartialEq)]
pub struct ProviderParams(Map<String, Value>);

impl ProviderParams {
    pub fn new(map: Map<String, Value>) -> ProviderParams {
        ProviderParams(map)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn insert(&mut self, key: &str, value: Value) {
        self.0.insert(key.to_string(), value);
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// Names only: the values hold credentials.
impl fmt::Debug for ProviderParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_slash() {
        let split = |m: &str| parse_model(m).unwrap();
        assert_eq!(split("openai/gpt-4o"), ("openai".into(), "gpt-4o".into()));
        assert_eq!(
            split("hosted_vllm/meta-llama/Llama-3.1-8B"),
            ("hosted_vllm".into(), "meta-llama/Llama-3.1-8B".into())
        );
        assert_eq!(
            split("bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0"),
            (
                "bedrock".into(),
                "us.anthropic.claude-3-5-sonnet-20241022-v2:0".into()
            )
        );
    }

    #[test]
    fn bare_names_are_openai() {
        assert_eq!(
            parse_model(" gpt-4o-mini ").unwrap(),
            ("openai".into(), "gpt-4o-mini".into())
        );
    }

    #[test]
    fn empty_parts_are_errors() {
        for m in ["", "  ", "openai/", "/gpt-4o"] {
            assert_eq!(parse_model(m), Err(ModelNameError::Empty), "{m:?}");
        }
    }

    #[test]
    fn debug_hides_values() {
        let mut p = ProviderParams::default();
        p.insert("api_key", Value::String("sk-secret".into()));
        let text = format!("{p:?}");
        assert!(
            text.contains("api_key") && !text.contains("sk-secret"),
            "{text}"
        );
    }
}
