//! OpenAI chat, completions and embeddings ↔ Ollama's `/api/chat`, `/api/generate` and
//! `/api/embed`, complete and streamed (NDJSON).

use crate::error::ProviderError;
use crate::formats::chat::{
    self, AssistantMessage, ChatCompletion, Choice, ChunkWriter, Content, Delta, FunctionOut,
    Image, Message, ToolCallOut, UsageOut, push_done, push_event,
};
use crate::formats::completions::{EmbeddingList, TextChoice, TextCompletion, new_id};
use crate::framing::Translator;
use crate::framing::ndjson::LineReader;
use crate::provider::Outbound;
use crate::usage::Usage;
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Chat completions on `/api/chat` (`ollama_chat`).
    Chat,
    /// Chat completions as one prompt on `/api/generate` (`ollama`).
    ChatAsPrompt,
    /// Legacy completions on `/api/generate`.
    Generate,
    Embed,
}

impl Operation {
    pub fn path(self) -> &'static str {
        match self {
            Operation::Chat => "/api/chat",
            Operation::ChatAsPrompt | Operation::Generate => "/api/generate",
            Operation::Embed => "/api/embed",
        }
    }
}

const CHAT_PARAMS: &[&str] = &[
    "messages",
    "model",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "temperature",
    "seed",
    "frequency_penalty",
    "stop",
    "tools",
    "tool_choice",
    "functions",
    "response_format",
    "reasoning_effort",
];
const PROMPT_PARAMS: &[&str] = &[
    "messages",
    "prompt",
    "model",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "temperature",
    "seed",
    "frequency_penalty",
    "stop",
    "response_format",
    "reasoning_effort",
    "suffix",
];
const EMBED_PARAMS: &[&str] = &["input", "model", "dimensions", "encoding_format"];

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::BadRequest(message.into())
}

pub fn request(op: Operation, call: &Outbound<'_>, name: &str) -> Result<Value, ProviderError> {
    let supported = match op {
        Operation::Chat => CHAT_PARAMS,
        Operation::ChatAsPrompt | Operation::Generate => PROMPT_PARAMS,
        Operation::Embed => EMBED_PARAMS,
    };
    let mut fields = chat::supported_fields(call, name, supported)?;
    let mut out = Map::new();
    out.insert(
        "model".into(),
        Value::String(call.upstream_model.to_string()),
    );
    if op == Operation::Embed {
        // base64 is encoded here, from Ollama's floats.
        let texts = chat::embedding_texts(&mut fields, name)?;
        out.insert("input".into(), Value::Array(texts));
        if let Some(d) = fields.remove("dimensions") {
            out.insert("dimensions".into(), d);
        }
        chat::pass_provider_params(fields, &mut out);
        return Ok(Value::Object(out));
    }

    // Ollama streams unless told not to.
    out.insert("stream".into(), Value::Bool(call.stream));
    let mut options = Map::new();
    if let Some(n) = chat::max_tokens(&fields) {
        options.insert("num_predict".into(), n.clone());
    }
    chat::copy_renamed(
        &fields,
        &[
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("seed", "seed"),
            ("frequency_penalty", "repeat_penalty"),
        ],
        &mut options,
    );
    chat::stop_into(&fields, "stop", &mut options)?;
    if !options.is_empty() {
        out.insert("options".into(), Value::Object(options));
    }
    if let Some(format) = fields.get("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("json_object") => {
                out.insert("format".into(), Value::String("json".into()));
            }
            Some("json_schema") => {
                if let Some(schema) = chat::response_schema(format) {
                    out.insert("format".into(), schema);
                }
            }
            _ => {}
        }
    }
    if let Some(effort) = fields.get("reasoning_effort").and_then(Value::as_str) {
        out.insert("think".into(), Value::Bool(effort != "none"));
    }

    match op {
        Operation::Chat => {
            let messages = chat::messages(call.body)?;
            out.insert("messages".into(), Value::Array(chat_messages(&messages)?));
            if let Some(tools) = fields
                .get("tools")
                .or(fields.get("functions"))
                .filter(|v| !v.is_null())
            {
                out.insert("tools".into(), tools.clone());
            }
        }
        Operation::ChatAsPrompt => {
            let messages = chat::messages(call.body)?;
            let (prompt, images) = prompt_of(&messages)?;
            out.insert("prompt".into(), Value::String(prompt));
            if !images.is_empty() {
                out.insert("images".into(), json!(images));
            }
        }
        Operation::Generate => {
            let prompt = match fields.get("prompt") {
                Some(Value::String(p)) => p.clone(),
                Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
                    items[0].as_str().unwrap_or_default().to_string()
                }
                Some(Value::Array(_)) => {
                    return Err(bad("ollama takes one prompt per request; send a string"));
                }
                _ => return Err(bad("prompt is required")),
            };
            out.insert("prompt".into(), Value::String(prompt));
            if let Some(s) = fields.get("suffix").filter(|v| v.is_string()) {
                out.insert("suffix".into(), s.clone());
            }
        }
        Operation::Embed => {}
    }
    // What Ollama does not know from OpenAI stays out; its own options (`keep_alive`,
    // `raw`…) pass through.
    for k in ["tools", "tool_choice", "functions", "prompt", "suffix"] {
        fields.remove(k);
    }
    chat::pass_provider_params(fields, &mut out);
    Ok(Value::Object(out))
}

/// Images as Ollama takes them: base64 without the data-URL prefix. Links are refused:
/// fetching arbitrary URLs from the gateway would let callers reach its network.
fn images_of(content: Option<&Content>, i: usize) -> Result<Vec<String>, ProviderError> {
    let Some(Content::Parts(parts)) = content else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        if p.kind != "image_url" {
            continue;
        }
        let url = p
            .image_url
            .as_ref()
            .ok_or_else(|| bad(format!("messages[{i}].content[{j}]: image_url is missing")))?;
        match chat::image(url.url()).map_err(|e| bad(format!("messages[{i}].content[{j}]: {e}")))? {
            Image::Base64 { data, .. } => out.push(data.to_string()),
            Image::Url(_) => {
                return Err(bad(format!(
                    "messages[{i}].content[{j}]: ollama takes images as base64 data URLs (data:image/png;base64,…), not links"
                )));
            }
        }
    }
    Ok(out)
}

fn chat_messages(messages: &[Message]) -> Result<Vec<Value>, ProviderError> {
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "developer" => "system",
            "function" => "tool",
            r @ ("system" | "user" | "assistant" | "tool") => r,
            other => return Err(bad(format!("messages[{i}]: unknown role {other:?}"))),
        };
        let mut msg = Map::new();
        msg.insert("role".into(), Value::String(role.into()));
        msg.insert(
            "content".into(),
            Value::String(chat::text_of(m.content.as_ref())),
        );
        let images = images_of(m.content.as_ref(), i)?;
        if !images.is_empty() {
            msg.insert("images".into(), json!(images));
        }
        if let Some(calls) = &m.tool_calls {
            let mut list = Vec::with_capacity(calls.len());
            for (j, c) in calls.iter().enumerate() {
                let arguments = chat::arguments_value(c, i, j)?;
                list.push(json!({"function": {"name": c.function.name, "arguments": arguments}}));
            }
            msg.insert("tool_calls".into(), Value::Array(list));
        }
        if role == "tool"
            && let Some(name) = &m.name
        {
            msg.insert("tool_name".into(), Value::String(name.clone()));
        }
        out.push(Value::Object(msg));
    }
    Ok(out)
}

/// LiteLLM's prompt template for `ollama/` chat: `### System:`, `### User:` and
/// `### Assistant:` sections, tool calls as JSON lines.
fn prompt_of(messages: &[Message]) -> Result<(String, Vec<String>), ProviderError> {
    let mut prompt = String::new();
    let mut images = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let header = match m.role.as_str() {
            "system" | "developer" => "System",
            "user" | "tool" | "function" => "User",
            "assistant" => "Assistant",
            other => return Err(bad(format!("messages[{i}]: unknown role {other:?}"))),
        };
        images.extend(images_of(m.content.as_ref(), i)?);
        let mut text = chat::text_of(m.content.as_ref());
        for c in m.tool_calls.iter().flatten() {
            if !text.is_empty() {
                text.push('\n');
            }
            let args: Value = serde_json::from_str(c.function.arguments.as_deref().unwrap_or("{}"))
                .unwrap_or_else(|_| json!({}));
            text.push_str(&json!({"name": c.function.name, "arguments": args}).to_string());
        }
        if !text.is_empty() {
            prompt.push_str(&format!("### {header}:\n{text}\n\n"));
        }
    }
    Ok((prompt, images))
}

#[derive(Deserialize, Default)]
struct Answer {
    #[serde(default)]
    message: Option<OllamaMessage>,
    #[serde(default)]
    response: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: u64,
    #[serde(default)]
    eval_count: u64,
    #[serde(default)]
    embeddings: Option<Vec<Vec<f64>>>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct OllamaMessage {
    #[serde(default)]
    content: String,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<OllamaToolCall>>,
}

#[derive(Deserialize)]
struct OllamaToolCall {
    #[serde(default)]
    id: Option<String>,
    function: OllamaFunction,
}

#[derive(Deserialize)]
struct OllamaFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

fn invalid(name: &str, detail: String) -> ProviderError {
    ProviderError::InvalidResponse {
        provider: name.into(),
        detail,
    }
}

fn finish(reason: Option<&str>, tools: bool) -> &'static str {
    if tools {
        return "tool_calls";
    }
    match reason {
        Some("length") => "length",
        _ => "stop",
    }
}

fn tool_calls(calls: Vec<OllamaToolCall>) -> Vec<ToolCallOut> {
    calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| ToolCallOut {
            id: c.id.unwrap_or_else(|| format!("call_{i}")),
            kind: "function",
            function: FunctionOut {
                name: c.function.name,
                arguments: c.function.arguments.to_string(),
            },
        })
        .collect()
}

fn usage_of(a: &Answer) -> (UsageOut, Usage) {
    (
        UsageOut::new(a.prompt_eval_count, a.eval_count, 0, 0, 0),
        Usage::new(a.prompt_eval_count, a.eval_count),
    )
}

/// A complete answer in the OpenAI shape of the endpoint.
/// `base64_wanted`: the client asked for `encoding_format: base64` (embeddings).
pub fn complete(
    op: Operation,
    base64_wanted: bool,
    bytes: &[u8],
    requested: &str,
    created: u64,
    name: &str,
) -> Result<(Value, Usage), ProviderError> {
    let a: Answer = serde_json::from_slice(bytes)
        .map_err(|e| invalid(name, format!("not an Ollama answer: {e}")))?;
    let to_value =
        |v: Result<Value, serde_json::Error>| v.map_err(|e| invalid(name, e.to_string()));
    if op == Operation::Embed {
        let base64 = base64_wanted;
        let embeddings = a
            .embeddings
            .ok_or_else(|| invalid(name, "the answer has no embeddings".into()))?;
        let list = EmbeddingList::new(embeddings, requested, base64, a.prompt_eval_count);
        return Ok((
            to_value(serde_json::to_value(list))?,
            Usage::new(a.prompt_eval_count, 0),
        ));
    }
    let (usage_out, usage) = usage_of(&a);
    if op == Operation::Generate {
        let id = new_id("cmpl");
        let text = TextCompletion {
            id: &id,
            object: "text_completion",
            created,
            model: requested,
            choices: vec![TextChoice {
                text: a.response.unwrap_or_default(),
                index: 0,
                logprobs: None,
                finish_reason: Some(finish(a.done_reason.as_deref(), false)),
            }],
            usage: Some(usage_out),
        };
        return Ok((to_value(serde_json::to_value(text))?, usage));
    }
    let (content, reasoning, calls) = match a.message {
        Some(m) => (m.content, m.thinking, m.tool_calls.map(tool_calls)),
        None => (a.response.unwrap_or_default(), a.thinking, None),
    };
    let has_tools = calls.as_ref().is_some_and(|c| !c.is_empty());
    let completion = ChatCompletion {
        id: new_id("chatcmpl"),
        object: "chat.completion",
        created,
        model: requested.to_string(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: (!content.is_empty() || !has_tools).then_some(content),
                tool_calls: calls.filter(|c| !c.is_empty()),
                reasoning_content: reasoning.filter(|r| !r.is_empty()),
                thinking_blocks: None,
            },
            finish_reason: Some(finish(a.done_reason.as_deref(), has_tools)),
        }],
        usage: usage_out,
    };
    Ok((to_value(serde_json::to_value(completion))?, usage))
}

pub struct StreamTranslator {
    op: Operation,
    lines: LineReader,
    chat: ChunkWriter,
    id: String,
    model: String,
    created: u64,
    name: &'static str,
    started: bool,
    tools: u32,
    done: bool,
}

impl StreamTranslator {
    pub fn new(op: Operation, model: &str, created: u64, name: &'static str) -> StreamTranslator {
        let id = new_id(if op == Operation::Generate {
            "cmpl"
        } else {
            "chatcmpl"
        });
        StreamTranslator {
            op,
            lines: LineReader::default(),
            chat: ChunkWriter::new(id.clone(), model, created),
            id,
            model: model.to_string(),
            created,
            name,
            started: false,
            tools: 0,
            done: false,
        }
    }

    fn text_chunk(
        &self,
        out: &mut Vec<u8>,
        text: String,
        finish: Option<&'static str>,
        usage: Option<UsageOut>,
    ) {
        push_event(
            out,
            &TextCompletion {
                id: &self.id,
                object: "text_completion",
                created: self.created,
                model: &self.model,
                choices: if usage.is_some() {
                    Vec::new()
                } else {
                    vec![TextChoice {
                        text,
                        index: 0,
                        logprobs: None,
                        finish_reason: finish,
                    }]
                },
                usage,
            },
        );
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        let a: Answer = serde_json::from_slice(line)
            .map_err(|e| invalid(self.name, format!("a stream line is not Ollama's ({e})")))?;
        if let Some(message) = a.error {
            return Err(ProviderError::Upstream {
                provider: self.name.into(),
                status: 500,
                class: crate::error::ErrorClass::detect(400, None, &message),
                message,
                kind: None,
                param: None,
            });
        }
        let (content, thinking, calls) = match &a.message {
            Some(m) => (
                m.content.clone(),
                m.thinking.clone(),
                m.tool_calls.as_deref(),
            ),
            None => (
                a.response.clone().unwrap_or_default(),
                a.thinking.clone(),
                None,
            ),
        };
        if self.op == Operation::Generate {
            if !content.is_empty() {
                self.text_chunk(out, content, None, None);
            }
        } else {
            let first = !self.started;
            if first || !content.is_empty() {
                let delta = Delta {
                    role: first.then_some("assistant"),
                    content: Some(content),
                    ..Delta::default()
                };
                self.chat.delta(out, delta, None);
            }
            if let Some(t) = thinking.filter(|t| !t.is_empty()) {
                self.chat.reasoning(out, t);
            }
            for c in calls.into_iter().flatten() {
                let n = self.tools;
                self.tools += 1;
                let id = c.id.clone().unwrap_or_else(|| format!("call_{n}"));
                let args = c.function.arguments.to_string();
                self.chat
                    .tool_start(out, n, id, c.function.name.clone(), args);
            }
        }
        self.started = true;
        if a.done {
            self.done = true;
            let reason = finish(a.done_reason.as_deref(), self.tools > 0);
            let (usage, _) = usage_of(&a);
            if self.op == Operation::Generate {
                self.text_chunk(out, String::new(), Some(reason), None);
                self.text_chunk(out, String::new(), None, Some(usage));
                push_done(out);
            } else {
                self.chat.finish(out, reason);
                self.chat.usage_and_done(out, usage);
            }
        }
        Ok(())
    }
}

impl Translator for StreamTranslator {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), ProviderError> {
        for line in self.lines.push(bytes, self.name)? {
            self.line(&line, out)?;
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), ProviderError> {
        if let Some(line) = self.lines.finish() {
            self.line(&line, out)?;
        }
        if self.done {
            Ok(())
        } else {
            Err(ProviderError::Stream {
                provider: self.name.into(),
                detail: "the stream ended before its final (done) line".into(),
            })
        }
    }
}
