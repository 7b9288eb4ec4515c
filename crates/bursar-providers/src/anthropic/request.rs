//! OpenAI chat completions → Anthropic Messages (`POST /v1/messages`).
//!
//! System and developer messages become `system` blocks; tool results become `tool_result`
//! blocks of a user turn; consecutive turns of one role are merged (Anthropic requires user
//! and assistant to alternate); images become `image` blocks (base64 or URL); `cache_control`
//! passes through on parts, messages and tools. `response_format` with a JSON schema becomes
//! a forced tool (`json_tool_call`) whose input the answer turns back into text, as LiteLLM
//! does; `reasoning_effort` becomes a `thinking` budget.

use crate::error::ProviderError;
use crate::formats::chat::{self, Content, Image, Message, Tool, ToolChoice};
use crate::provider::Outbound;
use serde_json::{Map, Value, json};

pub use crate::formats::chat::JSON_TOOL;

/// OpenAI parameters the Messages API takes (mapped below).
const SUPPORTED: &[&str] = &[
    "messages",
    "model",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "response_format",
    "stop",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "reasoning_effort",
];

/// Thinking budgets for `reasoning_effort` (LiteLLM's defaults; Anthropic's minimum is 1024).
fn thinking_budget(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(2048),
        "high" => Some(4096),
        "xhigh" => Some(8192),
        "max" => Some(16384),
        _ => None,
    }
}

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::BadRequest(message.into())
}

/// Builds the Messages request. `default_max_tokens` applies when the client sets none
/// (Anthropic requires one).
pub fn translate(call: &Outbound<'_>, default_max_tokens: u64) -> Result<Value, ProviderError> {
    let messages = chat::messages(call.body)?;
    let fields = chat::supported_fields(call, "anthropic", SUPPORTED)?;

    let mut out = Map::new();
    out.insert(
        "model".into(),
        Value::String(call.upstream_model.to_string()),
    );
    let (system, turns) = convert_messages(&messages)?;
    out.insert("messages".into(), Value::Array(turns));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let max_tokens = ["max_tokens", "max_completion_tokens"]
        .iter()
        .find_map(|k| fields.get(*k).and_then(Value::as_f64))
        .map_or(default_max_tokens, |v| v.round().max(1.0) as u64);
    out.insert("max_tokens".into(), json!(max_tokens));
    if call.stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = fields.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = fields.get("stop") {
        let stops = chat::stop_sequences(stop).map_err(bad)?;
        if !stops.is_empty() {
            out.insert("stop_sequences".into(), json!(stops));
        }
    }
    if let Some(n) = fields.get("n").and_then(Value::as_u64)
        && n > 1
        && !call.drop_params
    {
        return Err(ProviderError::UnsupportedParams {
            provider: "anthropic".into(),
            model: call.upstream_model.to_string(),
            params: vec!["n".into()],
        });
    }
    if let Some(user) = fields.get("user").and_then(Value::as_str)
        && !user.is_empty()
        && !user.contains('@')
    {
        // Anthropic refuses e-mail addresses as user ids; LiteLLM leaves those out too.
        out.insert("metadata".into(), json!({ "user_id": user }));
    }

    let mut tools = Vec::new();
    if let Some(list) = fields.get("tools").filter(|v| !v.is_null()) {
        let list: Vec<Tool> =
            serde_json::from_value(list.clone()).map_err(|e| bad(format!("Invalid tools: {e}")))?;
        for t in list {
            let mut tool = Map::new();
            tool.insert("name".into(), Value::String(t.function.name));
            if let Some(d) = t.function.description {
                tool.insert("description".into(), Value::String(d));
            }
            tool.insert(
                "input_schema".into(),
                t.function
                    .parameters
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            );
            if let Some(c) = t.cache_control {
                tool.insert("cache_control".into(), c);
            }
            tools.push(Value::Object(tool));
        }
    }
    let mut choice = match fields.get("tool_choice").filter(|v| !v.is_null()) {
        Some(v) => Some(match chat::tool_choice(v).map_err(bad)? {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Function(name) => json!({"type": "tool", "name": name}),
        }),
        None => None,
    };
    if let Some(schema) = fields
        .get("response_format")
        .and_then(chat::response_schema)
    {
        tools.push(json!({
            "name": JSON_TOOL,
            "description": "Respond with a JSON object.",
            "input_schema": schema,
        }));
        choice = Some(json!({"type": "tool", "name": JSON_TOOL}));
    }
    if fields.get("parallel_tool_calls") == Some(&Value::Bool(false)) && !tools.is_empty() {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }

    if let Some(thinking) = fields.get("thinking").filter(|v| v.is_object()) {
        out.insert("thinking".into(), thinking.clone());
    } else if let Some(effort) = fields.get("reasoning_effort") {
        let effort = effort
            .as_str()
            .or_else(|| effort.get("effort").and_then(Value::as_str))
            .unwrap_or_default();
        if let Some(budget) = thinking_budget(effort) {
            // The budget must stay below max_tokens.
            let budget = budget.min(max_tokens.saturating_sub(1)).max(1024);
            out.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        } else if effort != "none" {
            return Err(bad(format!(
                "reasoning_effort must be none, minimal, low, medium, high, xhigh or max; got {effort:?}"
            )));
        }
    }

    // The provider's own parameters (`top_k`, `container`…) pass through, as in LiteLLM.
    chat::pass_provider_params(fields, &mut out);
    Ok(Value::Object(out))
}

/// The `system` blocks and the alternating turns.
fn convert_messages(messages: &[Message]) -> Result<(Vec<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let (role, blocks) = match m.role.as_str() {
            "system" | "developer" => {
                let mut blocks = content_blocks(m.content.as_ref(), i)?;
                apply_cache_control(&mut blocks, m.cache_control.as_ref());
                system.extend(blocks.into_iter().filter(|b| b["type"] == "text"));
                continue;
            }
            "user" => {
                let mut blocks = content_blocks(m.content.as_ref(), i)?;
                apply_cache_control(&mut blocks, m.cache_control.as_ref());
                ("user", blocks)
            }
            "assistant" => ("assistant", assistant_blocks(m, i)?),
            "tool" | "function" => {
                let id = m
                    .tool_call_id
                    .clone()
                    .or_else(|| m.name.clone())
                    .ok_or_else(|| {
                        bad(format!("messages[{i}]: a tool message needs tool_call_id"))
                    })?;
                let content = match &m.content {
                    None => Value::String(String::new()),
                    Some(Content::Text(t)) => Value::String(t.clone()),
                    Some(parts) => Value::Array(content_blocks(Some(parts), i)?),
                };
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": id, "content": content});
                if let Some(c) = &m.cache_control {
                    block["cache_control"] = c.clone();
                }
                ("user", vec![block])
            }
            other => {
                return Err(bad(format!(
                    "messages[{i}]: unknown role {other:?}; expected system, developer, user, assistant or tool"
                )));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    if turns.is_empty() {
        return Err(bad(
            "messages must contain at least one user or assistant message with content",
        ));
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, turns))
}

/// A message-level `cache_control` applies to its last block.
fn apply_cache_control(blocks: &mut [Value], cache: Option<&Value>) {
    if let (Some(c), Some(last)) = (cache, blocks.last_mut()) {
        last["cache_control"] = c.clone();
    }
}

fn content_blocks(content: Option<&Content>, i: usize) -> Result<Vec<Value>, ProviderError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Content::Text(t)) if t.is_empty() => return Ok(Vec::new()),
        Some(Content::Text(t)) => return Ok(vec![json!({"type": "text", "text": t})]),
        Some(Content::Parts(parts)) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        let mut block = match p.kind.as_str() {
            "text" => match p.text.as_deref() {
                Some("") | None => continue,
                Some(t) => json!({"type": "text", "text": t}),
            },
            "image_url" => {
                let url = p.image_url.as_ref().ok_or_else(|| {
                    bad(format!("messages[{i}].content[{j}]: image_url is missing"))
                })?;
                match chat::image(url.url())
                    .map_err(|e| bad(format!("messages[{i}].content[{j}]: {e}")))?
                {
                    Image::Base64 { media_type, data } => json!({
                        "type": "image",
                        "source": {"type": "base64", "media_type": media_type, "data": data},
                    }),
                    Image::Url(u) => json!({"type": "image", "source": {"type": "url", "url": u}}),
                }
            }
            other => {
                return Err(bad(format!(
                    "messages[{i}].content[{j}]: content type {other:?} is not supported by anthropic"
                )));
            }
        };
        if let Some(c) = &p.cache_control {
            block["cache_control"] = c.clone();
        }
        out.push(block);
    }
    Ok(out)
}

fn assistant_blocks(m: &Message, i: usize) -> Result<Vec<Value>, ProviderError> {
    // Thinking blocks of an earlier answer go first, as Anthropic requires with tool use.
    let mut blocks: Vec<Value> = m.thinking_blocks.clone().unwrap_or_default();
    blocks.extend(content_blocks(m.content.as_ref(), i)?);
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let input = chat::arguments_value(call, i, j)?;
        let id = call.id.clone().unwrap_or_else(|| format!("toolu_{i}_{j}"));
        blocks.push(
            json!({"type": "tool_use", "id": id, "name": call.function.name, "input": input}),
        );
    }
    apply_cache_control(&mut blocks, m.cache_control.as_ref());
    Ok(blocks)
}
