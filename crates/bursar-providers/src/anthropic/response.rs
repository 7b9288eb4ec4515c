//! Anthropic Messages answers → OpenAI chat completions: text blocks join into `content`,
//! `tool_use` blocks become `tool_calls` (or, for the JSON-schema tool, the content),
//! thinking blocks become `reasoning_content` and `thinking_blocks`, and usage counts cache
//! reads and writes as part of the prompt (LiteLLM's accounting).

use super::request::JSON_TOOL;
use crate::error::ProviderError;
use crate::formats::chat::{
    AssistantMessage, ChatCompletion, Choice, FunctionOut, ToolCallOut, UsageOut,
};
use crate::usage::Usage;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct MessageAnswer {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub content: Vec<Block>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: AnthropicUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Later usage (a stream's `message_delta`) completes earlier (`message_start`).
    pub fn merge(&mut self, later: &AnthropicUsage) {
        if later.input_tokens > 0 {
            self.input_tokens = later.input_tokens;
        }
        self.output_tokens = later.output_tokens.max(self.output_tokens);
        if later.cache_creation_input_tokens.is_some() {
            self.cache_creation_input_tokens = later.cache_creation_input_tokens;
        }
        if later.cache_read_input_tokens.is_some() {
            self.cache_read_input_tokens = later.cache_read_input_tokens;
        }
    }

    fn cache(&self) -> (u64, u64) {
        (
            self.cache_read_input_tokens.unwrap_or(0),
            self.cache_creation_input_tokens.unwrap_or(0),
        )
    }

    pub fn openai(&self) -> UsageOut {
        let (read, write) = self.cache();
        UsageOut::new(
            self.input_tokens + read + write,
            self.output_tokens,
            read,
            write,
            0,
        )
    }

    pub fn usage(&self) -> Usage {
        let (read, write) = self.cache();
        let prompt = self.input_tokens + read + write;
        Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output_tokens,
            total_tokens: prompt + self.output_tokens,
            cache_read_input_tokens: read,
            cache_creation_input_tokens: write,
        }
    }
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
pub fn finish_reason(stop: Option<&str>) -> Option<&'static str> {
    stop.map(|s| match s {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    })
}

pub fn translate(
    bytes: &[u8],
    requested: &str,
    json_mode: bool,
    created: u64,
) -> Result<(ChatCompletion, Usage), ProviderError> {
    let answer: MessageAnswer =
        serde_json::from_slice(bytes).map_err(|e| ProviderError::InvalidResponse {
            provider: "anthropic".into(),
            detail: format!("not a Messages answer: {e}"),
        })?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    let mut finish = finish_reason(answer.stop_reason.as_deref());
    for block in answer.content {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::ToolUse { name, input, .. } if json_mode && name == JSON_TOOL => {
                text.push_str(&input.to_string());
                finish = Some("stop");
            }
            Block::ToolUse { id, name, input } => tool_calls.push(ToolCallOut {
                id,
                kind: "function",
                function: FunctionOut {
                    name,
                    arguments: input.to_string(),
                },
            }),
            Block::Thinking {
                thinking,
                signature,
            } => {
                reasoning.push_str(&thinking);
                thinking_blocks.push(serde_json::json!({
                    "type": "thinking", "thinking": thinking, "signature": signature,
                }));
            }
            Block::RedactedThinking { data } => {
                thinking_blocks
                    .push(serde_json::json!({"type": "redacted_thinking", "data": data}));
            }
            Block::Other => {}
        }
    }
    let usage = answer.usage.usage();
    let completion = ChatCompletion {
        id: answer.id,
        object: "chat.completion",
        created,
        model: requested.to_string(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: (!text.is_empty() || tool_calls.is_empty()).then_some(text),
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
            },
            finish_reason: finish,
        }],
        usage: answer.usage.openai(),
    };
    Ok((completion, usage))
}
