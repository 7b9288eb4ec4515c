//! OpenAI chat completions ↔ Bedrock's Converse / ConverseStream, and embeddings ↔ the
//! Titan and Cohere embedding models' `invoke` bodies.

use crate::error::{ErrorClass, ProviderError};
use crate::formats::chat::{
    self, AssistantMessage, ChatCompletion, Choice, ChunkWriter, Content, FunctionOut, Image,
    Message, ToolCallOut, ToolChoice, UsageOut,
};
use crate::formats::completions::{EmbeddingList, new_id};
use crate::framing::Translator;
use crate::framing::aws::FrameReader;
use crate::provider::Outbound;
use crate::usage::Usage;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

const CHAT_PARAMS: &[&str] = &[
    "messages",
    "model",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    "reasoning_effort",
];
const EMBED_PARAMS: &[&str] = &["input", "model", "dimensions", "encoding_format"];

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::BadRequest(message.into())
}

/// The Converse body. The model id is in the URL, not the body.
pub fn converse_request(call: &Outbound<'_>) -> Result<Value, ProviderError> {
    let mut fields = chat::supported_fields(call, "bedrock", CHAT_PARAMS)?;
    let messages = chat::messages(call.body)?;
    let (system, turns) = messages_of(&messages)?;
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(turns));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    if let Some(n) = chat::max_tokens(&fields) {
        inference.insert("maxTokens".into(), n.clone());
    }
    chat::copy_renamed(
        &fields,
        &[("temperature", "temperature"), ("top_p", "topP")],
        &mut inference,
    );
    chat::stop_into(&fields, "stopSequences", &mut inference)?;
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    let mut tools = Vec::new();
    if let Some(list) = fields.get("tools").and_then(Value::as_array) {
        for t in list {
            let f = t.get("function").unwrap_or(t);
            let mut spec = Map::new();
            spec.insert(
                "name".into(),
                f.get("name")
                    .cloned()
                    .ok_or_else(|| bad("a tool needs a name"))?,
            );
            if let Some(d) = f.get("description") {
                spec.insert("description".into(), d.clone());
            }
            let schema = f
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            spec.insert("inputSchema".into(), json!({"json": schema}));
            tools.push(json!({"toolSpec": spec}));
        }
    }
    let mut choice = match fields.get("tool_choice").filter(|v| !v.is_null()) {
        Some(v) => match chat::tool_choice(v).map_err(bad)? {
            ToolChoice::Auto => Some(json!({"auto": {}})),
            ToolChoice::Required => Some(json!({"any": {}})),
            ToolChoice::Function(name) => Some(json!({"tool": {"name": name}})),
            // Converse has no "none": the tools are left out instead, as LiteLLM does.
            ToolChoice::None => {
                tools.clear();
                None
            }
        },
        None => None,
    };
    if let Some(schema) = fields
        .get("response_format")
        .and_then(chat::response_schema)
    {
        tools.push(json!({"toolSpec": {"name": super::JSON_TOOL, "description": "Respond with a JSON object.", "inputSchema": {"json": schema}}}));
        choice = Some(json!({"tool": {"name": super::JSON_TOOL}}));
    }
    if !tools.is_empty() {
        let mut config = json!({"tools": tools});
        if let Some(c) = choice {
            config["toolChoice"] = c;
        }
        out.insert("toolConfig".into(), config);
    }
    // Model-specific fields (Anthropic's thinking and top_k…) travel in
    // additionalModelRequestFields.
    let mut extra = Map::new();
    if let Some(effort) = fields.get("reasoning_effort").and_then(Value::as_str) {
        let budget = match effort {
            "none" => None,
            "minimal" | "low" => Some(1024),
            "medium" => Some(2048),
            "high" => Some(4096),
            other => {
                return Err(bad(format!(
                    "reasoning_effort must be none, minimal, low, medium or high; got {other:?}"
                )));
            }
        };
        if let Some(b) = budget {
            extra.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": b}),
            );
        }
    }
    for k in CHAT_PARAMS {
        fields.remove(*k);
    }
    for (k, v) in fields {
        if !chat::is_gateway_param(&k) && !chat::OPENAI_PARAMS.contains(&k.as_str()) {
            match k.as_str() {
                "guardrailConfig"
                | "additionalModelResponseFieldPaths"
                | "performanceConfig"
                | "promptVariables"
                | "requestMetadata" => {
                    out.insert(k, v);
                }
                "additionalModelRequestFields" => {
                    if let Value::Object(m) = v {
                        extra.extend(m);
                    }
                }
                _ => {
                    extra.insert(k, v);
                }
            }
        }
    }
    if !extra.is_empty() {
        out.insert("additionalModelRequestFields".into(), Value::Object(extra));
    }
    Ok(Value::Object(out))
}

fn messages_of(messages: &[Message]) -> Result<(Vec<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let (role, blocks) = match m.role.as_str() {
            "system" | "developer" => {
                let text = chat::text_of(m.content.as_ref());
                if !text.is_empty() {
                    system.push(json!({"text": text}));
                }
                if let Some(c) = &m.cache_control
                    && c.get("type").is_some()
                {
                    system.push(json!({"cachePoint": {"type": "default"}}));
                }
                continue;
            }
            "user" => ("user", blocks_of(m.content.as_ref(), i)?),
            "assistant" => {
                let mut blocks = Vec::new();
                for t in m.thinking_blocks.iter().flatten() {
                    if let (Some(text), signature) = (
                        t.get("thinking").and_then(Value::as_str),
                        t.get("signature"),
                    ) {
                        blocks.push(json!({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}}));
                    }
                }
                let text = chat::text_of(m.content.as_ref());
                if !text.is_empty() {
                    blocks.push(json!({"text": text}));
                }
                for (j, c) in m.tool_calls.iter().flatten().enumerate() {
                    let input = chat::arguments_value(c, i, j)?;
                    let id = c.id.clone().unwrap_or_else(|| format!("tooluse_{i}_{j}"));
                    blocks.push(json!({"toolUse": {"toolUseId": id, "name": c.function.name, "input": input}}));
                }
                ("assistant", blocks)
            }
            "tool" | "function" => {
                let id = m.tool_call_id.clone().ok_or_else(|| {
                    bad(format!("messages[{i}]: a tool message needs tool_call_id"))
                })?;
                let text = chat::text_of(m.content.as_ref());
                (
                    "user",
                    vec![json!({"toolResult": {"toolUseId": id, "content": [{"text": text}]}})],
                )
            }
            other => return Err(bad(format!("messages[{i}]: unknown role {other:?}"))),
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
    Ok((
        system,
        turns
            .into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect(),
    ))
}

fn blocks_of(content: Option<&Content>, i: usize) -> Result<Vec<Value>, ProviderError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Content::Text(t)) if t.is_empty() => return Ok(Vec::new()),
        Some(Content::Text(t)) => return Ok(vec![json!({"text": t})]),
        Some(Content::Parts(p)) => p,
    };
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        match p.kind.as_str() {
            "text" => {
                if let Some(t) = p.text.as_deref().filter(|t| !t.is_empty()) {
                    out.push(json!({"text": t}));
                }
            }
            "image_url" => {
                let url = p.image_url.as_ref().ok_or_else(|| {
                    bad(format!("messages[{i}].content[{j}]: image_url is missing"))
                })?;
                match chat::image(url.url())
                    .map_err(|e| bad(format!("messages[{i}].content[{j}]: {e}")))?
                {
                    Image::Base64 { media_type, data } => {
                        let format = media_type.strip_prefix("image/").unwrap_or(media_type);
                        let format = if format == "jpg" { "jpeg" } else { format };
                        out.push(json!({"image": {"format": format, "source": {"bytes": data}}}));
                    }
                    Image::Url(_) => {
                        return Err(bad(format!(
                            "messages[{i}].content[{j}]: bedrock takes images as base64 data URLs; the gateway does not fetch links"
                        )));
                    }
                }
            }
            other => {
                return Err(bad(format!(
                    "messages[{i}].content[{j}]: content type {other:?} is not supported by bedrock"
                )));
            }
        }
        if p.cache_control.is_some() {
            out.push(json!({"cachePoint": {"type": "default"}}));
        }
    }
    Ok(out)
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct BedrockUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_write_input_tokens: u64,
}

impl BedrockUsage {
    /// Converse's `inputTokens` leaves out cache reads and writes; OpenAI's prompt counts
    /// them (LiteLLM's accounting).
    fn out(&self) -> (UsageOut, Usage) {
        let (read, write) = (self.cache_read_input_tokens, self.cache_write_input_tokens);
        let prompt = self.input_tokens + read + write;
        (
            UsageOut::new(prompt, self.output_tokens, read, write, 0),
            Usage {
                prompt_tokens: prompt,
                completion_tokens: self.output_tokens,
                total_tokens: prompt + self.output_tokens,
                cache_read_input_tokens: read,
                cache_creation_input_tokens: write,
            },
        )
    }
}

fn finish_reason(stop: Option<&str>) -> &'static str {
    match stop {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened") | Some("content_filtered") => "content_filter",
        _ => "stop",
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseAnswer {
    output: Output,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: BedrockUsage,
}

#[derive(Deserialize)]
struct Output {
    message: OutputMessage,
}

#[derive(Deserialize)]
struct OutputMessage {
    #[serde(default)]
    content: Vec<Value>,
}

fn invalid(detail: String) -> ProviderError {
    ProviderError::InvalidResponse {
        provider: "bedrock".into(),
        detail,
    }
}

pub fn converse_answer(
    bytes: &[u8],
    requested: &str,
    json_mode: bool,
    created: u64,
) -> Result<(Value, Usage), ProviderError> {
    let a: ConverseAnswer = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("not a Converse answer: {e}")))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking = Vec::new();
    let mut calls = Vec::new();
    let mut finish = finish_reason(a.stop_reason.as_deref());
    for block in a.output.message.content {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(u) = block.get("toolUse") {
            let name = u["name"].as_str().unwrap_or_default().to_string();
            if json_mode && name == super::JSON_TOOL {
                text.push_str(&u["input"].to_string());
                finish = "stop";
                continue;
            }
            calls.push(ToolCallOut {
                id: u["toolUseId"]
                    .as_str()
                    .map_or_else(|| format!("call_{}", calls.len()), str::to_string),
                kind: "function",
                function: FunctionOut {
                    name,
                    arguments: u["input"].to_string(),
                },
            });
        } else if let Some(r) = block
            .get("reasoningContent")
            .and_then(|r| r.get("reasoningText"))
        {
            let t = r["text"].as_str().unwrap_or_default();
            reasoning.push_str(t);
            thinking
                .push(json!({"type": "thinking", "thinking": t, "signature": r.get("signature")}));
        }
    }
    let (usage_out, usage) = a.usage.out();
    let has_tools = !calls.is_empty();
    let answer = ChatCompletion {
        id: new_id("chatcmpl"),
        object: "chat.completion",
        created,
        model: requested.to_string(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: (!text.is_empty() || !has_tools).then_some(text),
                tool_calls: has_tools.then_some(calls),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                thinking_blocks: (!thinking.is_empty()).then_some(thinking),
            },
            finish_reason: Some(finish),
        }],
        usage: usage_out,
    };
    Ok((
        serde_json::to_value(answer).map_err(|e| invalid(e.to_string()))?,
        usage,
    ))
}

/// Which embedding body a Bedrock model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedFamily {
    /// `amazon.titan-embed-*`: one `inputText` per call.
    Titan,
    /// `cohere.embed-*`: `texts` with an `input_type`.
    Cohere,
}

impl EmbedFamily {
    pub fn of(model: &str) -> Option<EmbedFamily> {
        if model.contains("titan-embed") {
            Some(EmbedFamily::Titan)
        } else if model.contains("cohere.embed") {
            Some(EmbedFamily::Cohere)
        } else {
            None
        }
    }
}

pub fn embed_request(call: &Outbound<'_>, family: EmbedFamily) -> Result<Value, ProviderError> {
    let mut fields = chat::supported_fields(call, "bedrock", EMBED_PARAMS)?;
    let texts: Vec<Value> = match fields.remove("input") {
        Some(Value::String(s)) => vec![Value::String(s)],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items,
        _ => {
            return Err(bad(
                "bedrock embeds text: input must be a string or a list of strings",
            ));
        }
    };
    match fields.remove("encoding_format") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == "float" || f == "base64" => {}
        Some(_) => return Err(bad("encoding_format must be float or base64")),
    }
    let dims = fields.remove("dimensions");
    Ok(match family {
        EmbedFamily::Titan => {
            let [text] = texts.as_slice() else {
                return Err(bad(
                    "Titan embedding models take one input per request; send a string, or one request per text",
                ));
            };
            let mut body = json!({"inputText": text});
            if let Some(d) = dims {
                body["dimensions"] = d;
            }
            body
        }
        EmbedFamily::Cohere => {
            let input_type = fields
                .remove("input_type")
                .unwrap_or_else(|| Value::String("search_document".into()));
            json!({"texts": texts, "input_type": input_type})
        }
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbedAnswer {
    Titan {
        embedding: Vec<f64>,
        #[serde(rename = "inputTextTokenCount", default)]
        tokens: u64,
    },
    CohereTyped {
        embeddings: CohereTyped,
    },
    Cohere {
        embeddings: Vec<Vec<f64>>,
    },
}

#[derive(Deserialize)]
struct CohereTyped {
    float: Vec<Vec<f64>>,
}

/// Titan reports its input tokens; for Cohere on Bedrock `counted` (Bursar's own count of
/// the input) stands in.
pub fn embed_answer(
    bytes: &[u8],
    requested: &str,
    base64: bool,
    counted: u64,
) -> Result<(Value, Usage), ProviderError> {
    let a: EmbedAnswer = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("not an embedding answer: {e}")))?;
    let (vectors, tokens) = match a {
        EmbedAnswer::Titan { embedding, tokens } => (vec![embedding], tokens),
        EmbedAnswer::CohereTyped { embeddings } => (embeddings.float, counted),
        EmbedAnswer::Cohere { embeddings } => (embeddings, counted),
    };
    let list = EmbeddingList::new(vectors, requested, base64, tokens);
    Ok((
        serde_json::to_value(list).map_err(|e| invalid(e.to_string()))?,
        Usage::new(tokens, 0),
    ))
}

/// A Bedrock exception (`x-amzn-ErrorType` or an event-stream exception) with its status.
pub fn exception(kind: &str, status: u16, body: &[u8]) -> ProviderError {
    #[derive(Deserialize)]
    struct Body {
        #[serde(alias = "Message")]
        message: Option<String>,
    }
    // `ThrottlingException` in headers, `throttlingException` in event streams.
    let kind = kind.split(':').next().unwrap_or(kind).trim();
    let mut chars = kind.chars();
    let kind = match chars.next() {
        Some(first) => format!("{}{}", first.to_ascii_uppercase(), chars.as_str()),
        None => String::new(),
    };
    let kind = kind.as_str();
    let message = serde_json::from_slice::<Body>(body)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| {
            String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(2000)
                .collect()
        });
    let status = match kind {
        "ValidationException" => 400,
        "AccessDeniedException" | "UnrecognizedClientException" => 403,
        "ResourceNotFoundException" => 404,
        "ModelTimeoutException" => 408,
        "ThrottlingException" | "ServiceQuotaExceededException" | "ModelNotReadyException" => 429,
        "ModelErrorException" | "ModelStreamErrorException" => 424,
        "ServiceUnavailableException" => 503,
        "InternalServerException" => 500,
        _ => status,
    };
    ProviderError::Upstream {
        provider: "bedrock".into(),
        status,
        class: ErrorClass::detect(status, Some(kind), &message),
        message,
        kind: (!kind.is_empty()).then(|| kind.to_string()),
        param: None,
    }
}

enum Block {
    Tool(u32),
    JsonTool,
    Other,
}

pub struct StreamTranslator {
    frames: FrameReader,
    out: ChunkWriter,
    json_mode: bool,
    blocks: HashMap<u64, Block>,
    tools: u32,
    done: bool,
}

impl StreamTranslator {
    pub fn new(model: &str, created: u64, json_mode: bool) -> StreamTranslator {
        StreamTranslator {
            frames: FrameReader::default(),
            out: ChunkWriter::new(new_id("chatcmpl"), model, created),
            json_mode,
            blocks: HashMap::new(),
            tools: 0,
            done: false,
        }
    }

    fn event(&mut self, kind: &str, payload: &Value, out: &mut Vec<u8>) {
        let index = payload["contentBlockIndex"].as_u64().unwrap_or(0);
        match kind {
            "messageStart" => self.out.role(out),
            "contentBlockStart" => {
                let Some(tool) = payload["start"].get("toolUse") else {
                    return;
                };
                let name = tool["name"].as_str().unwrap_or_default().to_string();
                if self.json_mode && name == super::JSON_TOOL {
                    self.blocks.insert(index, Block::JsonTool);
                    return;
                }
                let n = self.tools;
                self.tools += 1;
                self.blocks.insert(index, Block::Tool(n));
                let id = tool["toolUseId"]
                    .as_str()
                    .map_or_else(|| format!("call_{n}"), str::to_string);
                self.out.tool_start(out, n, id, name, String::new());
            }
            "contentBlockDelta" => {
                let d = &payload["delta"];
                if let Some(t) = d.get("text").and_then(Value::as_str) {
                    self.out.content(out, t.to_string());
                } else if let Some(input) = d["toolUse"].get("input").and_then(Value::as_str) {
                    match self.blocks.get(&index) {
                        Some(Block::JsonTool) if !input.is_empty() => {
                            self.out.content(out, input.to_string())
                        }
                        Some(Block::Tool(n)) if !input.is_empty() => {
                            self.out.tool_arguments(out, *n, input.to_string())
                        }
                        _ => {}
                    }
                } else if let Some(t) = d["reasoningContent"].get("text").and_then(Value::as_str) {
                    self.out.reasoning(out, t.to_string());
                }
                self.blocks.entry(index).or_insert(Block::Other);
            }
            "messageStop" => {
                let stop = payload["stopReason"].as_str();
                let finish = if self.json_mode && stop == Some("tool_use") {
                    "stop"
                } else {
                    finish_reason(stop)
                };
                self.out.finish(out, finish);
            }
            "metadata" => {
                let usage: BedrockUsage =
                    serde_json::from_value(payload["usage"].clone()).unwrap_or_default();
                self.out.usage_and_done(out, usage.out().0);
                self.done = true;
            }
            _ => {}
        }
    }
}

impl Translator for StreamTranslator {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), ProviderError> {
        for frame in self.frames.push(bytes, "bedrock")? {
            if frame.message_type != "event" {
                return Err(exception(&frame.kind, 500, &frame.payload));
            }
            if self.done {
                continue;
            }
            let payload: Value = serde_json::from_slice(&frame.payload)
                .map_err(|e| invalid(format!("an event's payload is not JSON: {e}")))?;
            self.event(&frame.kind, &payload, out);
        }
        Ok(())
    }

    fn end(&mut self, _: &mut Vec<u8>) -> Result<(), ProviderError> {
        if self.done && !self.frames.has_partial() {
            Ok(())
        } else {
            Err(ProviderError::Stream {
                provider: "bedrock".into(),
                detail: "the stream ended before its metadata event".into(),
            })
        }
    }
}
