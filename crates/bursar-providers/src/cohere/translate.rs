//! OpenAI chat completions and embeddings ↔ Cohere's v2 Chat and Embed.

use crate::error::ProviderError;
use crate::formats::chat::{
    self, AssistantMessage, ChatCompletion, Choice, ChunkWriter, Content, FunctionOut, Message,
    ToolCallOut, UsageOut,
};
use crate::formats::completions::{EmbeddingList, new_id};
use crate::framing::Translator;
use crate::framing::sse::SseReader;
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
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "stop",
    "n",
    "tools",
    "tool_choice",
    "seed",
    "response_format",
];
const EMBED_PARAMS: &[&str] = &["input", "model", "dimensions", "encoding_format"];

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::BadRequest(message.into())
}

pub fn chat_request(call: &Outbound<'_>) -> Result<Value, ProviderError> {
    let mut fields = chat::supported_fields(call, "cohere", CHAT_PARAMS)?;
    if fields
        .get("n")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 1)
        && !call.drop_params
    {
        return Err(ProviderError::UnsupportedParams {
            provider: "cohere".into(),
            model: call.upstream_model.into(),
            params: vec!["n".into()],
        });
    }
    let messages = chat::messages(call.body)?;
    let mut out = Map::new();
    out.insert("model".into(), Value::String(call.upstream_model.into()));
    out.insert("messages".into(), Value::Array(messages_of(&messages)?));
    if call.stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    if let Some(n) = chat::max_tokens(&fields) {
        out.insert("max_tokens".into(), n.clone());
    }
    chat::copy_renamed(
        &fields,
        &[
            ("temperature", "temperature"),
            ("top_p", "p"),
            ("seed", "seed"),
            ("frequency_penalty", "frequency_penalty"),
            ("presence_penalty", "presence_penalty"),
        ],
        &mut out,
    );
    chat::stop_into(&fields, "stop_sequences", &mut out)?;
    if let Some(tools) = fields.get("tools").filter(|v| !v.is_null()) {
        // Chat v2 takes OpenAI's tool definitions as they are.
        out.insert("tools".into(), tools.clone());
    }
    if let Some(choice) = fields.get("tool_choice").filter(|v| !v.is_null()) {
        match chat::tool_choice(choice).map_err(bad)? {
            chat::ToolChoice::Auto => {}
            chat::ToolChoice::Required => {
                out.insert("tool_choice".into(), Value::String("REQUIRED".into()));
            }
            chat::ToolChoice::None => {
                out.insert("tool_choice".into(), Value::String("NONE".into()));
            }
            chat::ToolChoice::Function(_) => {
                return Err(bad(
                    "cohere cannot force one named tool: tool_choice must be auto, required or none",
                ));
            }
        }
    }
    if let Some(format) = fields.get("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("json_object") | Some("json_schema") => {
                let mut f = json!({"type": "json_object"});
                if let Some(schema) = chat::response_schema(format) {
                    f["json_schema"] = schema;
                }
                out.insert("response_format".into(), f);
            }
            _ => {}
        }
    }
    for k in ["tools", "tool_choice", "n"] {
        fields.remove(k);
    }
    chat::pass_provider_params(fields, &mut out);
    Ok(Value::Object(out))
}

fn messages_of(messages: &[Message]) -> Result<Vec<Value>, ProviderError> {
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let msg = match m.role.as_str() {
            "system" | "developer" => {
                json!({"role": "system", "content": chat::text_of(m.content.as_ref())})
            }
            "user" => {
                let content = match &m.content {
                    Some(Content::Parts(parts)) => {
                        let mut list = Vec::new();
                        for (j, p) in parts.iter().enumerate() {
                            match (p.kind.as_str(), &p.text, &p.image_url) {
                                ("text", Some(t), _) => {
                                    list.push(json!({"type": "text", "text": t}))
                                }
                                ("image_url", _, Some(url)) => list.push(
                                    json!({"type": "image_url", "image_url": {"url": url.url()}}),
                                ),
                                (other, _, _) => {
                                    return Err(bad(format!(
                                        "messages[{i}].content[{j}]: content type {other:?} is not supported by cohere"
                                    )));
                                }
                            }
                        }
                        Value::Array(list)
                    }
                    other => Value::String(chat::text_of(other.as_ref())),
                };
                json!({"role": "user", "content": content})
            }
            "assistant" => {
                let mut msg = json!({"role": "assistant"});
                let text = chat::text_of(m.content.as_ref());
                if !text.is_empty() {
                    msg["content"] = Value::String(text);
                }
                if let Some(calls) = &m.tool_calls {
                    let list: Vec<Value> = calls
                        .iter()
                        .enumerate()
                        .map(|(j, c)| {
                            json!({
                                "id": c.id.clone().unwrap_or_else(|| format!("call_{i}_{j}")),
                                "type": "function",
                                "function": {"name": c.function.name, "arguments": c.function.arguments.clone().unwrap_or_else(|| "{}".into())},
                            })
                        })
                        .collect();
                    msg["tool_calls"] = Value::Array(list);
                }
                msg
            }
            "tool" | "function" => {
                let id = m.tool_call_id.clone().ok_or_else(|| {
                    bad(format!("messages[{i}]: a tool message needs tool_call_id"))
                })?;
                json!({"role": "tool", "tool_call_id": id, "content": chat::text_of(m.content.as_ref())})
            }
            other => return Err(bad(format!("messages[{i}]: unknown role {other:?}"))),
        };
        out.push(msg);
    }
    Ok(out)
}

#[derive(Deserialize, Default)]
struct Tokens {
    #[serde(default)]
    input_tokens: f64,
    #[serde(default)]
    output_tokens: f64,
}

#[derive(Deserialize, Default)]
struct CohereUsage {
    #[serde(default)]
    tokens: Option<Tokens>,
    #[serde(default)]
    billed_units: Option<Tokens>,
}

impl CohereUsage {
    /// Tokens the model processed; the billed units when no counts are given.
    fn counts(&self) -> (u64, u64) {
        let t = self.tokens.as_ref().or(self.billed_units.as_ref());
        t.map_or((0, 0), |t| (t.input_tokens as u64, t.output_tokens as u64))
    }
}

#[derive(Deserialize)]
struct ChatAnswer {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    message: AnswerMessage,
    #[serde(default)]
    usage: CohereUsage,
}

#[derive(Deserialize, Default)]
struct AnswerMessage {
    #[serde(default)]
    content: Vec<ContentBlock>,
    #[serde(default)]
    tool_calls: Vec<CohereToolCall>,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct CohereToolCall {
    #[serde(default)]
    id: Option<String>,
    function: CohereFunction,
}

#[derive(Deserialize)]
struct CohereFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

fn finish_reason(reason: Option<&str>) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some("TOOL_CALL") => "tool_calls",
        Some("ERROR_TOXIC") => "content_filter",
        _ => "stop",
    }
}

fn invalid(detail: String) -> ProviderError {
    ProviderError::InvalidResponse {
        provider: "cohere".into(),
        detail,
    }
}

pub fn chat_answer(
    bytes: &[u8],
    requested: &str,
    created: u64,
) -> Result<(Value, Usage, Option<String>), ProviderError> {
    let a: ChatAnswer = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("not a Cohere chat answer: {e}")))?;
    let text: String = a
        .message
        .content
        .iter()
        .filter_map(|b| b.text.as_deref())
        .collect();
    let calls: Vec<ToolCallOut> = a
        .message
        .tool_calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| ToolCallOut {
            id: c.id.unwrap_or_else(|| format!("call_{i}")),
            kind: "function",
            function: FunctionOut {
                name: c.function.name.unwrap_or_default(),
                arguments: c.function.arguments.unwrap_or_else(|| "{}".into()),
            },
        })
        .collect();
    let (prompt, completion) = a.usage.counts();
    let id = a.id.clone().unwrap_or_else(|| new_id("chatcmpl"));
    let has_tools = !calls.is_empty();
    let answer = ChatCompletion {
        id: id.clone(),
        object: "chat.completion",
        created,
        model: requested.to_string(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: (!text.is_empty() || !has_tools).then_some(text),
                tool_calls: has_tools.then_some(calls),
                reasoning_content: None,
                thinking_blocks: None,
            },
            finish_reason: Some(if has_tools {
                "tool_calls"
            } else {
                finish_reason(a.finish_reason.as_deref())
            }),
        }],
        usage: UsageOut::new(prompt, completion, 0, 0, 0),
    };
    let value = serde_json::to_value(answer).map_err(|e| invalid(e.to_string()))?;
    Ok((value, Usage::new(prompt, completion), a.id))
}

pub fn embed_request(call: &Outbound<'_>) -> Result<Value, ProviderError> {
    let mut fields = chat::supported_fields(call, "cohere", EMBED_PARAMS)?;
    let texts = match fields.remove("input") {
        Some(Value::String(s)) => vec![Value::String(s)],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items,
        _ => {
            return Err(bad(
                "cohere embeds text: input must be a string or a list of strings",
            ));
        }
    };
    match fields.remove("encoding_format") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == "float" || f == "base64" => {}
        Some(_) => return Err(bad("encoding_format must be float or base64")),
    }
    let mut out = Map::new();
    out.insert("model".into(), Value::String(call.upstream_model.into()));
    out.insert("texts".into(), Value::Array(texts));
    // Required by embed v3+ models; LiteLLM's default.
    let input_type = fields
        .remove("input_type")
        .unwrap_or_else(|| Value::String("search_document".into()));
    out.insert("input_type".into(), input_type);
    out.insert("embedding_types".into(), json!(["float"]));
    if let Some(d) = fields.remove("dimensions") {
        out.insert("output_dimension".into(), d);
    }
    chat::pass_provider_params(fields, &mut out);
    Ok(Value::Object(out))
}

#[derive(Deserialize)]
struct EmbedAnswer {
    #[serde(default)]
    id: Option<String>,
    embeddings: EmbeddingsByType,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingsByType {
    Typed { float: Vec<Vec<f64>> },
    Plain(Vec<Vec<f64>>),
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    billed_units: Option<Tokens>,
}

pub fn embed_answer(
    bytes: &[u8],
    requested: &str,
    base64: bool,
) -> Result<(Value, Usage, Option<String>), ProviderError> {
    let a: EmbedAnswer = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("not a Cohere embed answer: {e}")))?;
    let vectors = match a.embeddings {
        EmbeddingsByType::Typed { float } | EmbeddingsByType::Plain(float) => float,
    };
    let prompt = a
        .meta
        .and_then(|m| m.billed_units)
        .map_or(0, |b| b.input_tokens as u64);
    let list = EmbeddingList::new(vectors, requested, base64, prompt);
    let value = serde_json::to_value(list).map_err(|e| invalid(e.to_string()))?;
    Ok((value, Usage::new(prompt, 0), a.id))
}

pub struct StreamTranslator {
    reader: SseReader,
    out: ChunkWriter,
    /// Cohere's tool-call index → OpenAI's.
    tools: HashMap<u64, u32>,
    ended: bool,
}

#[derive(Deserialize)]
struct StreamEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    delta: Value,
}

impl StreamTranslator {
    pub fn new(model: &str, created: u64) -> StreamTranslator {
        StreamTranslator {
            reader: SseReader::default(),
            out: ChunkWriter::new(new_id("chatcmpl"), model, created),
            tools: HashMap::new(),
            ended: false,
        }
    }

    fn event(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), ProviderError> {
        if self.ended || data.trim().is_empty() {
            return Ok(());
        }
        let e: StreamEvent = serde_json::from_str(data)
            .map_err(|err| invalid(format!("a stream event is not Cohere's ({err})")))?;
        let message = &e.delta["message"];
        match e.kind.as_str() {
            "message-start" => {
                if let Some(id) = e.id {
                    self.out.id = id;
                }
                self.out.role(out);
            }
            "content-delta" => {
                if let Some(text) = message["content"]["text"].as_str() {
                    self.out.content(out, text.to_string());
                }
            }
            "tool-call-start" => {
                let n = self.tools.len() as u32;
                self.tools.insert(e.index.unwrap_or(n as u64), n);
                let call = &message["tool_calls"];
                let id = call["id"]
                    .as_str()
                    .map_or_else(|| format!("call_{n}"), str::to_string);
                let name = call["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let args = call["function"]["arguments"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                self.out.tool_start(out, n, id, name, args);
            }
            "tool-call-delta" => {
                let n = e
                    .index
                    .and_then(|i| self.tools.get(&i).copied())
                    .unwrap_or(self.tools.len().saturating_sub(1) as u32);
                if let Some(args) = message["tool_calls"]["function"]["arguments"].as_str()
                    && !args.is_empty()
                {
                    self.out.tool_arguments(out, n, args.to_string());
                }
            }
            "message-end" => {
                self.ended = true;
                let finish = if self.tools.is_empty() {
                    finish_reason(e.delta["finish_reason"].as_str())
                } else {
                    "tool_calls"
                };
                let usage: CohereUsage =
                    serde_json::from_value(e.delta["usage"].clone()).unwrap_or_default();
                let (prompt, completion) = usage.counts();
                self.out.finish(out, finish);
                self.out
                    .usage_and_done(out, UsageOut::new(prompt, completion, 0, 0, 0));
            }
            _ => {}
        }
        Ok(())
    }
}

impl Translator for StreamTranslator {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), ProviderError> {
        for event in self.reader.push(bytes, "cohere")? {
            self.event(&event.data, out)?;
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), ProviderError> {
        if let Some(event) = self.reader.finish() {
            self.event(&event.data, out)?;
        }
        if self.ended {
            Ok(())
        } else {
            Err(ProviderError::Stream {
                provider: "cohere".into(),
                detail: "the stream ended before message-end".into(),
            })
        }
    }
}
