//! Counting prompt tokens locally, to estimate a request's cost before it is sent.
//!
//! Counts use OpenAI's `o200k_base` encoding for every model: exact for current OpenAI
//! models and a close estimate for others. Chat messages add OpenAI's per-message overhead
//! (3 tokens per message, 3 for the reply primer).

use serde_json::Value;
use std::sync::OnceLock;
use tiktoken_rs::CoreBPE;

fn encoder() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

/// Builds the encoder now (it takes a moment), so the first request does not pay for it.
pub fn warm_up() {
    let _ = encoder();
}

/// Tokens in a piece of text.
pub fn count_text(text: &str) -> u64 {
    match encoder() {
        Some(bpe) => bpe.encode_ordinary(text).len() as u64,
        // Without the encoder, one token per 3 bytes over-estimates every common text.
        None => (text.len() as u64).div_ceil(3),
    }
}

/// The chat roles, each a single o200k token (a unit test keeps this true).
const ROLES: [&str; 6] = [
    "system",
    "user",
    "assistant",
    "tool",
    "developer",
    "function",
];

/// Tokens of the prompt a chat `messages` array makes.
pub fn count_messages(messages: &Value) -> u64 {
    let Some(list) = messages.as_array() else {
        return 0;
    };
    let mut total = 3;
    for message in list {
        total += 3;
        if let Some(fields) = message.as_object() {
            for (name, value) in fields {
                total += match (name.as_str(), value.as_str()) {
                    // Every standard role is one token; skip the encoder for them.
                    ("role", Some(role)) if ROLES.contains(&role) => 1,
                    _ => count_value(value),
                };
                if name == "name" {
                    total += 1;
                }
            }
        }
    }
    total
}

/// Tokens of a `prompt` / `input`: a string, a list of strings, or token ids.
pub fn count_input(input: &Value) -> u64 {
    match input {
        Value::Array(items) if items.iter().all(Value::is_number) => items.len() as u64,
        other => count_value(other),
    }
}

/// Text anywhere inside a value (content parts, tool calls, …), counted as text; other
/// scalars count by their JSON form.
fn count_value(value: &Value) -> u64 {
    match value {
        Value::Null => 0,
        Value::String(s) => count_text(s),
        Value::Array(items) => items.iter().map(count_value).sum(),
        Value::Object(fields) => fields.values().map(count_value).sum(),
        other => count_text(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_standard_role_is_one_token() {
        for role in ROLES {
            assert_eq!(count_text(role), 1, "{role}");
        }
    }

    #[test]
    fn counts_text_with_o200k() {
        assert_eq!(count_text(""), 0);
        assert_eq!(count_text("hello world"), 2);
    }

    #[test]
    fn chat_messages_add_openai_overhead() {
        // OpenAI reports 8 prompt tokens for this conversation on gpt-4o.
        let m = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(count_messages(&m), 3 + 3 + 1 + 1);
        let parts = json!([{"role": "user", "content": [{"type": "text", "text": "hello world"}]}]);
        assert!(count_messages(&parts) >= 3 + 3 + 2);
    }

    #[test]
    fn input_lists_and_token_ids() {
        assert_eq!(count_input(&json!([1, 2, 3])), 3);
        assert_eq!(count_input(&json!(["hello world", "hello world"])), 4);
    }
}
