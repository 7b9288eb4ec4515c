//! Token usage as reported by OpenAI-compatible upstreams.

use bursar_core::pricing::TokenCounts;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    /// Prompt tokens read from the provider's prompt cache (OpenAI's
    /// `prompt_tokens_details.cached_tokens`, or `cache_read_input_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_input_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache (`cache_creation_input_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_creation_input_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The wire shape: OpenAI's fields plus the cache counts LiteLLM and Anthropic-style
/// upstreams add.
#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            ..Usage::default()
        }
    }

    /// Parses a `usage` value; `null` or a malformed object yields `None`.
    pub fn from_raw(raw: &serde_json::value::RawValue) -> Option<Usage> {
        let usage: Option<RawUsage> = serde_json::from_str(raw.get()).ok()?;
        usage.map(|u| Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: if u.total_tokens == 0 {
                u.prompt_tokens + u.completion_tokens
            } else {
                u.total_tokens
            },
            cache_read_input_tokens: u
                .cache_read_input_tokens
                .or(u.prompt_tokens_details.and_then(|d| d.cached_tokens))
                .unwrap_or(0),
            cache_creation_input_tokens: u.cache_creation_input_tokens.unwrap_or(0),
        })
    }

    /// The counts a cost is worked out from.
    pub fn counts(&self) -> TokenCounts {
        TokenCounts {
            prompt: self.prompt_tokens,
            completion: self.completion_tokens,
            cache_read: self.cache_read_input_tokens,
            cache_creation: self.cache_creation_input_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Option<Usage> {
        let raw: Box<serde_json::value::RawValue> = serde_json::from_str(json).unwrap();
        Usage::from_raw(&raw)
    }

    #[test]
    fn reads_openai_and_anthropic_style_cache_counts() {
        let openai = parse(
            r#"{"prompt_tokens":100,"completion_tokens":5,"total_tokens":105,
                "prompt_tokens_details":{"cached_tokens":64}}"#,
        )
        .unwrap();
        assert_eq!(openai.cache_read_input_tokens, 64);
        assert_eq!(openai.cache_creation_input_tokens, 0);
        let anthropic = parse(
            r#"{"prompt_tokens":100,"completion_tokens":5,
                "cache_read_input_tokens":30,"cache_creation_input_tokens":20}"#,
        )
        .unwrap();
        assert_eq!(anthropic.total_tokens, 105);
        assert_eq!(
            anthropic.counts(),
            TokenCounts {
                prompt: 100,
                completion: 5,
                cache_read: 30,
                cache_creation: 20
            }
        );
        assert_eq!(parse("null"), None);
        assert_eq!(parse(r#"{"prompt_tokens":"x"}"#), None);
    }
}
