//! Token usage as reported by OpenAI-compatible upstreams.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }

    /// Parses a `usage` value; `null` or a malformed object yields `None`.
    pub fn from_raw(raw: &serde_json::value::RawValue) -> Option<Usage> {
        let usage: Option<Usage> = serde_json::from_str(raw.get()).ok()?;
        usage.map(|mut u| {
            if u.total_tokens == 0 {
                u.total_tokens = u.prompt_tokens + u.completion_tokens;
            }
            u
        })
    }
}
