//! OpenAI chat completions as adapters that translate read and write it: the request's
//! messages (strings or content parts, tool calls, tool results), its tools, and the answer
//! and stream-chunk shapes they produce. Pass-through providers never parse these.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The parameters of OpenAI's chat completions. An adapter maps those its provider takes;
/// any other of these is refused (or dropped with `drop_params`), as LiteLLM does.
pub const OPENAI_PARAMS: &[&str] = &[
    "messages",
    "model",
    "stream",
    "stream_options",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "presence_penalty",
    "response_format",
    "seed",
    "stop",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "functions",
    "function_call",
    "modalities",
    "audio",
    "prediction",
    "reasoning_effort",
    "service_tier",
    "store",
    "web_search_options",
    "verbosity",
    "prompt_cache_key",
    "safety_identifier",
    // legacy completions and embeddings
    "prompt",
    "echo",
    "best_of",
    "suffix",
    "input",
    "dimensions",
    "encoding_format",
];

/// Fields the gateway reads itself (LiteLLM's request options): never sent to a provider
/// that translates.
pub const GATEWAY_PARAMS: &[&str] = &[
    "metadata",
    "tags",
    "drop_params",
    "additional_drop_params",
    "num_retries",
    "fallbacks",
    "context_window_fallback_dict",
    "caching",
    "cache",
    "guardrails",
    "timeout",
    "mock_response",
    "extra_headers",
    "extra_body",
    "api_key",
    "api_base",
    "base_url",
    "api_version",
];

/// The tool a JSON-schema `response_format` is asked through on providers without a native
/// schema mode (Anthropic, Bedrock), as LiteLLM does; its input is the answer's content.
pub const JSON_TOOL: &str = "json_tool_call";

/// Whether a body field belongs to the gateway rather than any provider.
pub fn is_gateway_param(name: &str) -> bool {
    GATEWAY_PARAMS.contains(&name) || name.starts_with("litellm_")
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// LiteLLM's field for a previous answer's reasoning, sent back in a multi-turn call.
    #[serde(default)]
    pub thinking_blocks: Option<Vec<Value>>,
    /// Prompt caching on the whole message (LiteLLM's extension).
    #[serde(default)]
    pub cache_control: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub image_url: Option<ImageUrl>,
    #[serde(default)]
    pub cache_control: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ImageUrl {
    Url(String),
    Object {
        url: String,
        #[serde(default)]
        detail: Option<String>,
        #[serde(default)]
        format: Option<String>,
    },
}

impl ImageUrl {
    pub fn url(&self) -> &str {
        match self {
            ImageUrl::Url(u) | ImageUrl::Object { url: u, .. } => u,
        }
    }
}

/// An image given inline (`data:image/png;base64,…`) or by URL.
pub enum Image<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url(&'a str),
}

/// Reads an `image_url`: a base64 data URL, or an http(s) link.
pub fn image(url: &str) -> Result<Image<'_>, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let Some((meta, data)) = rest.split_once(',') else {
            return Err("an image data URL has no ',' before its data".into());
        };
        let Some(media_type) = meta.strip_suffix(";base64") else {
            return Err("an image data URL must be base64 (data:<type>;base64,…)".into());
        };
        return Ok(Image::Base64 { media_type, data });
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Image::Url(url));
    }
    Err(format!(
        "image_url must be an http(s) URL or a base64 data URL, got {:?}",
        url.chars().take(40).collect::<String>()
    ))
}

#[derive(Debug, Clone, Deserialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: Option<String>,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    #[serde(default)]
    pub arguments: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub function: Function,
    #[serde(default)]
    pub cache_control: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Function {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `tool_choice`: a mode or one named function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Function(String),
}

pub fn tool_choice(value: &Value) -> Result<ToolChoice, String> {
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" | "any" => Ok(ToolChoice::Required),
            other => Err(format!("unknown tool_choice {other:?}")),
        },
        Value::Object(map) => map
            .get("function")
            .and_then(|f| f.get("name"))
            .or_else(|| map.get("name"))
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Function(n.to_string()))
            .ok_or_else(|| "tool_choice must name a function".to_string()),
        _ => Err("tool_choice must be a string or an object".into()),
    }
}

/// `response_format`'s JSON schema, when it asks for one (`json_schema`, or `json_object`
/// with a schema); `None` for plain text or JSON without a schema.
pub fn response_schema(value: &Value) -> Option<Value> {
    match value.get("type").and_then(Value::as_str) {
        Some("json_schema") => value
            .get("json_schema")
            .and_then(|s| s.get("schema"))
            .cloned(),
        Some("json_object") => value
            .get("response_schema")
            .or_else(|| value.get("schema"))
            .cloned(),
        _ => None,
    }
}

/// `stop` as a list.
pub fn stop_sequences(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "stop must be a string or a list of strings".to_string())
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err("stop must be a string or a list of strings".into()),
    }
}

// ---- what translating adapters produce ----

#[derive(Debug, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: UsageOut,
}

#[derive(Debug, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Default, Serialize)]
pub struct AssistantMessage {
    pub role: &'static str,
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolCallOut {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionOut,
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionOut {
    pub name: String,
    pub arguments: String,
}

/// OpenAI's usage block with the cache and reasoning details LiteLLM adds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UsageOut {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PromptDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CompletionDetails {
    pub reasoning_tokens: u64,
}

impl UsageOut {
    /// `prompt` counts every prompt token (cache reads and writes included, as LiteLLM
    /// reports them); `reasoning` is part of `completion`.
    pub fn new(
        prompt: u64,
        completion: u64,
        cache_read: u64,
        cache_write: u64,
        reasoning: u64,
    ) -> UsageOut {
        UsageOut {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: (cache_read > 0).then_some(PromptDetails {
                cached_tokens: cache_read,
            }),
            completion_tokens_details: (reasoning > 0).then_some(CompletionDetails {
                reasoning_tokens: reasoning,
            }),
            cache_read_input_tokens: (cache_read > 0).then_some(cache_read),
            cache_creation_input_tokens: (cache_write > 0).then_some(cache_write),
        }
    }
}

/// One `chat.completion.chunk`.
#[derive(Debug, Serialize)]
pub struct Chunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Debug, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Default, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Serialize)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionDelta,
}

#[derive(Debug, Serialize)]
pub struct FunctionDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub arguments: String,
}

/// Appends one SSE event carrying `value` as JSON.
pub fn push_event<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    out.extend_from_slice(b"data: ");
    // Serialising these plain structs cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    out.extend_from_slice(b"\n\n");
}

pub fn push_done(out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: [DONE]\n\n");
}

/// Seconds since the epoch, for `created`.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The body's fields other than `messages`, as JSON values.
pub fn fields(body: &crate::json::JsonObject) -> Result<Map<String, Value>, serde_json::Error> {
    let mut out = Map::new();
    for (k, v) in body.iter() {
        if k != "messages" {
            out.insert(k.to_string(), serde_json::from_str(v.get())?);
        }
    }
    Ok(out)
}

/// The request's messages.
pub fn messages(body: &crate::json::JsonObject) -> Result<Vec<Message>, crate::ProviderError> {
    match body.get("messages") {
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|e| crate::ProviderError::BadRequest(format!("Invalid messages: {e}"))),
        None => Err(crate::ProviderError::BadRequest(
            "messages is required".into(),
        )),
    }
}

/// The body's fields other than `messages`, after refusing the OpenAI parameters outside
/// `supported` (unless the call drops them), as LiteLLM's `UnsupportedParamsError` does.
pub fn supported_fields(
    call: &crate::provider::Outbound<'_>,
    provider: &str,
    supported: &[&str],
) -> Result<Map<String, Value>, crate::ProviderError> {
    let fields = fields(call.body).map_err(|e| crate::ProviderError::BadRequest(e.to_string()))?;
    let unsupported: Vec<String> = fields
        .iter()
        .filter(|(k, v)| {
            !v.is_null() && OPENAI_PARAMS.contains(&k.as_str()) && !supported.contains(&k.as_str())
        })
        .map(|(k, _)| k.clone())
        .collect();
    if !unsupported.is_empty() && !call.drop_params {
        return Err(crate::ProviderError::UnsupportedParams {
            provider: provider.to_string(),
            model: call.upstream_model.to_string(),
            params: unsupported,
        });
    }
    Ok(fields)
}

/// Copies the fields that are neither OpenAI's nor the gateway's (the provider's own, such as
/// `top_k`) into the upstream body, as LiteLLM passes them through.
pub fn pass_provider_params(fields: Map<String, Value>, out: &mut Map<String, Value>) {
    for (k, v) in fields {
        if !OPENAI_PARAMS.contains(&k.as_str()) && !is_gateway_param(&k) && !out.contains_key(&k) {
            out.insert(k, v);
        }
    }
}

/// The text of a message's content (parts joined), ignoring non-text parts.
pub fn text_of(content: Option<&Content>) -> String {
    match content {
        None => String::new(),
        Some(Content::Text(t)) => t.clone(),
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter(|p| p.kind == "text")
            .filter_map(|p| p.text.as_deref())
            .collect::<Vec<_>>()
            .join(""),
    }
}

/// Writes one streamed answer's `chat.completion.chunk` events, all with the answer's id,
/// model and creation time: what every translating stream emits.
pub struct ChunkWriter {
    pub id: String,
    model: String,
    created: u64,
}

impl ChunkWriter {
    pub fn new(id: String, model: &str, created: u64) -> ChunkWriter {
        ChunkWriter {
            id,
            model: model.to_string(),
            created,
        }
    }

    pub fn delta(&self, out: &mut Vec<u8>, delta: Delta, finish: Option<&'static str>) {
        push_event(
            out,
            &Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: vec![ChunkChoice {
                    index: 0,
                    delta,
                    finish_reason: finish,
                }],
                usage: None,
            },
        );
    }

    /// The opening chunk: the assistant role with empty content.
    pub fn role(&self, out: &mut Vec<u8>) {
        let delta = Delta {
            role: Some("assistant"),
            content: Some(String::new()),
            ..Delta::default()
        };
        self.delta(out, delta, None);
    }

    pub fn content(&self, out: &mut Vec<u8>, text: String) {
        let delta = Delta {
            content: Some(text),
            ..Delta::default()
        };
        self.delta(out, delta, None);
    }

    pub fn reasoning(&self, out: &mut Vec<u8>, text: String) {
        let delta = Delta {
            reasoning_content: Some(text),
            ..Delta::default()
        };
        self.delta(out, delta, None);
    }

    /// A tool call's first chunk: its OpenAI index, id, name and first arguments.
    pub fn tool_start(
        &self,
        out: &mut Vec<u8>,
        index: u32,
        id: String,
        name: String,
        arguments: String,
    ) {
        self.tool_delta(out, index, Some(id), Some(name), arguments);
    }

    /// More of a started tool call's arguments.
    pub fn tool_arguments(&self, out: &mut Vec<u8>, index: u32, arguments: String) {
        self.tool_delta(out, index, None, None, arguments);
    }

    fn tool_delta(
        &self,
        out: &mut Vec<u8>,
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    ) {
        let kind = id.is_some().then_some("function");
        let delta = Delta {
            tool_calls: Some(vec![ToolCallDelta {
                index,
                id,
                kind,
                function: FunctionDelta { name, arguments },
            }]),
            ..Delta::default()
        };
        self.delta(out, delta, None);
    }

    pub fn finish(&self, out: &mut Vec<u8>, reason: &'static str) {
        self.delta(out, Delta::default(), Some(reason));
    }

    /// The usage-only chunk (no choices, as OpenAI sends it) and `[DONE]`.
    pub fn usage_and_done(&self, out: &mut Vec<u8>, usage: UsageOut) {
        push_event(
            out,
            &Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: Vec::new(),
                usage: Some(usage),
            },
        );
        push_done(out);
    }
}

/// A tool call's `arguments` as the JSON value providers take (`{}` when empty).
pub fn arguments_value(call: &ToolCall, i: usize, j: usize) -> Result<Value, crate::ProviderError> {
    let args = call.function.arguments.as_deref().unwrap_or("").trim();
    if args.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_str(args).map_err(|e| {
        crate::ProviderError::BadRequest(format!(
            "messages[{i}].tool_calls[{j}].function.arguments is not JSON: {e}"
        ))
    })
}

/// An embeddings request's `input` as a list of strings, and whether `encoding_format` is
/// one the gateway can produce (`float`, or `base64` encoded from floats).
pub fn embedding_texts(
    fields: &mut Map<String, Value>,
    provider: &str,
) -> Result<Vec<Value>, crate::ProviderError> {
    let bad = |m: String| crate::ProviderError::BadRequest(m);
    match fields.remove("encoding_format") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == "float" || f == "base64" => {}
        Some(_) => return Err(bad("encoding_format must be float or base64".into())),
    }
    match fields.remove("input") {
        Some(Value::String(s)) => Ok(vec![Value::String(s)]),
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {
            Ok(items)
        }
        _ => Err(bad(format!(
            "{provider} embeds text: input must be a string or a list of strings"
        ))),
    }
}

/// Copies each present, non-null field `from` as `to` into `out` (parameters the provider
/// takes under another name).
pub fn copy_renamed(
    fields: &Map<String, Value>,
    pairs: &[(&str, &str)],
    out: &mut Map<String, Value>,
) {
    for (from, to) in pairs {
        if let Some(v) = fields.get(*from).filter(|v| !v.is_null()) {
            out.insert((*to).to_string(), v.clone());
        }
    }
}

/// `max_completion_tokens`, else `max_tokens`.
pub fn max_tokens(fields: &Map<String, Value>) -> Option<&Value> {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| fields.get(*k).filter(|v| !v.is_null()))
}

/// `stop` as the provider's list field `to`, when there are stop sequences.
pub fn stop_into(
    fields: &Map<String, Value>,
    to: &str,
    out: &mut Map<String, Value>,
) -> Result<(), crate::ProviderError> {
    if let Some(stop) = fields.get("stop") {
        let stops = stop_sequences(stop).map_err(crate::ProviderError::BadRequest)?;
        if !stops.is_empty() {
            out.insert(to.to_string(), Value::from(stops));
        }
    }
    Ok(())
}
