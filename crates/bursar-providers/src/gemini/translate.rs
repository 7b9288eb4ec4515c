//! OpenAI chat completions and embeddings ↔ Google's `generateContent`,
//! `streamGenerateContent` (SSE) and `batchEmbedContents`, shared by Google AI Studio
//! (`gemini/`) and Vertex AI (`vertex_ai/`).

use crate::error::{ErrorClass, ProviderError};
use crate::formats::chat::{
    self, AssistantMessage, ChatCompletion, Choice, ChunkWriter, Content, FunctionOut, Image,
    Message, ToolCallOut, ToolChoice, UsageOut,
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
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "tools",
    "functions",
    "tool_choice",
    "response_format",
    "n",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "parallel_tool_calls",
    "reasoning_effort",
];
const EMBED_PARAMS: &[&str] = &["input", "model", "dimensions", "encoding_format"];

/// Thinking budgets for `reasoning_effort` (LiteLLM's defaults).
fn thinking_budget(effort: &str) -> Option<i64> {
    match effort {
        "none" => Some(0),
        "minimal" => Some(128),
        "low" => Some(1024),
        "medium" => Some(2048),
        "high" => Some(4096),
        _ => None,
    }
}

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::BadRequest(message.into())
}

pub fn chat_request(call: &Outbound<'_>, name: &str) -> Result<Value, ProviderError> {
    let mut fields = chat::supported_fields(call, name, CHAT_PARAMS)?;
    let messages = chat::messages(call.body)?;
    let (system, contents) = contents_of(&messages, name)?;
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut config = Map::new();
    chat::copy_renamed(
        &fields,
        &[
            ("temperature", "temperature"),
            ("top_p", "topP"),
            ("seed", "seed"),
            ("frequency_penalty", "frequencyPenalty"),
            ("presence_penalty", "presencePenalty"),
            ("n", "candidateCount"),
        ],
        &mut config,
    );
    if let Some(n) = chat::max_tokens(&fields) {
        config.insert("maxOutputTokens".into(), n.clone());
    }
    chat::stop_into(&fields, "stopSequences", &mut config)?;
    if let Some(format) = fields.get("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("json_object") | Some("json_schema") => {
                config.insert("responseMimeType".into(), json!("application/json"));
                if let Some(schema) = chat::response_schema(format) {
                    config.insert("responseJsonSchema".into(), schema);
                }
            }
            _ => {}
        }
    }
    if let Some(effort) = fields.get("reasoning_effort") {
        let effort = effort
            .as_str()
            .or_else(|| effort.get("effort").and_then(Value::as_str))
            .unwrap_or_default();
        let budget = thinking_budget(effort).ok_or_else(|| {
            bad(format!(
                "reasoning_effort must be none, minimal, low, medium or high; got {effort:?}"
            ))
        })?;
        config.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": budget, "includeThoughts": budget > 0}),
        );
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    let tools = fields.get("tools").or(fields.get("functions"));
    if let Some(list) = tools.and_then(Value::as_array) {
        let mut declarations = Vec::with_capacity(list.len());
        for t in list {
            // `tools` wraps each function; legacy `functions` are bare.
            let f = t.get("function").unwrap_or(t);
            let mut d = Map::new();
            d.insert(
                "name".into(),
                f.get("name")
                    .cloned()
                    .ok_or_else(|| bad("a tool needs a name"))?,
            );
            if let Some(desc) = f.get("description") {
                d.insert("description".into(), desc.clone());
            }
            if let Some(p) = f.get("parameters") {
                d.insert("parametersJsonSchema".into(), p.clone());
            }
            declarations.push(Value::Object(d));
        }
        out.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    if let Some(choice) = fields.get("tool_choice").filter(|v| !v.is_null()) {
        let config = match chat::tool_choice(choice).map_err(bad)? {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Function(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        out.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
    }
    for k in [
        "tools",
        "functions",
        "tool_choice",
        "parallel_tool_calls",
        "n",
    ] {
        fields.remove(k);
    }
    // Google's own sampling knobs belong in generationConfig; the rest (safetySettings,
    // cachedContent…) are top-level fields.
    for k in ["top_k", "topK"] {
        if let Some(v) = fields.remove(k) {
            let config = out
                .entry("generationConfig")
                .or_insert_with(|| Value::Object(Map::new()));
            config["topK"] = v;
        }
    }
    if let Some(v) = fields.remove("safety_settings") {
        out.insert("safetySettings".into(), v);
    }
    chat::pass_provider_params(fields, &mut out);
    Ok(Value::Object(out))
}

/// `systemInstruction` parts and the conversation's `contents`; consecutive turns of one
/// role merge, as Gemini requires alternation.
fn contents_of(
    messages: &[Message],
    name: &str,
) -> Result<(Vec<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // Tool results name their function; OpenAI's tool messages only carry the call id.
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        let (role, parts) = match m.role.as_str() {
            "system" | "developer" => {
                let text = chat::text_of(m.content.as_ref());
                if !text.is_empty() {
                    system.push(json!({"text": text}));
                }
                continue;
            }
            "user" => ("user", parts_of(m.content.as_ref(), i, name)?),
            "assistant" => {
                let mut parts = Vec::new();
                let text = chat::text_of(m.content.as_ref());
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                for (j, c) in m.tool_calls.iter().flatten().enumerate() {
                    let args = chat::arguments_value(c, i, j)?;
                    if let Some(id) = &c.id {
                        call_names.insert(id.clone(), c.function.name.clone());
                    }
                    parts.push(json!({"functionCall": {"name": c.function.name, "args": args}}));
                }
                ("model", parts)
            }
            "tool" | "function" => {
                let function = m
                    .tool_call_id
                    .as_ref()
                    .and_then(|id| call_names.get(id).cloned())
                    .or_else(|| m.name.clone())
                    .ok_or_else(|| {
                        bad(format!(
                            "messages[{i}]: a tool result must answer an earlier tool call (tool_call_id) or name its function"
                        ))
                    })?;
                let text = chat::text_of(m.content.as_ref());
                let response: Value = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(o)) => Value::Object(o),
                    _ => json!({"content": text}),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": function, "response": response}})],
                )
            }
            other => return Err(bad(format!("messages[{i}]: unknown role {other:?}"))),
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    if turns.is_empty() {
        return Err(bad(
            "messages must contain at least one user or assistant message with content",
        ));
    }
    let contents = turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok((system, contents))
}

fn parts_of(content: Option<&Content>, i: usize, name: &str) -> Result<Vec<Value>, ProviderError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Content::Text(t)) if t.is_empty() => return Ok(Vec::new()),
        Some(Content::Text(t)) => return Ok(vec![json!({"text": t})]),
        Some(Content::Parts(p)) => p,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        match p.kind.as_str() {
            "text" => {
                if let Some(t) = p.text.as_deref().filter(|t| !t.is_empty()) {
                    out.push(json!({"text": t}));
                }
            }
            "image_url" => {
                let url = p
                    .image_url
                    .as_ref()
                    .ok_or_else(|| {
                        bad(format!("messages[{i}].content[{j}]: image_url is missing"))
                    })?
                    .url();
                if let Some(uri) = url.strip_prefix("gs://") {
                    out.push(json!({"fileData": {"mimeType": mime_of(uri), "fileUri": url}}));
                    continue;
                }
                match chat::image(url)
                    .map_err(|e| bad(format!("messages[{i}].content[{j}]: {e}")))?
                {
                    Image::Base64 { media_type, data } => {
                        out.push(json!({"inlineData": {"mimeType": media_type, "data": data}}));
                    }
                    Image::Url(_) => {
                        return Err(bad(format!(
                            "messages[{i}].content[{j}]: {name} takes images as base64 data URLs or gs:// URIs; the gateway does not fetch links"
                        )));
                    }
                }
            }
            other => {
                return Err(bad(format!(
                    "messages[{i}].content[{j}]: content type {other:?} is not supported by {name}"
                )));
            }
        }
    }
    Ok(out)
}

fn mime_of(path: &str) -> &'static str {
    let lower = path.to_ascii_lowercase();
    match lower.rsplit('.').next() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    response_id: Option<String>,
    #[serde(default)]
    prompt_feedback: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    function_call: Option<FunctionCall>,
}

#[derive(Deserialize)]
struct FunctionCall {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Value,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
}

impl UsageMetadata {
    /// Thinking tokens are billed as output: they count in the completion, as in LiteLLM.
    fn out(&self) -> (UsageOut, Usage) {
        let completion = self.candidates_token_count + self.thoughts_token_count;
        let cached = self.cached_content_token_count;
        let usage = Usage {
            cache_read_input_tokens: cached,
            ..Usage::new(self.prompt_token_count, completion)
        };
        (
            UsageOut::new(
                self.prompt_token_count,
                completion,
                cached,
                0,
                self.thoughts_token_count,
            ),
            usage,
        )
    }
}

fn finish_reason(reason: Option<&str>, tools: bool) -> Option<&'static str> {
    if tools {
        return Some("tool_calls");
    }
    reason.map(|r| match r {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ => "stop",
    })
}

fn invalid(name: &str, detail: String) -> ProviderError {
    ProviderError::InvalidResponse {
        provider: name.into(),
        detail,
    }
}

/// A prompt the provider refused outright (`promptFeedback.blockReason`, no candidates).
fn blocked(name: &str, r: &GenerateResponse) -> Option<ProviderError> {
    let reason = r.prompt_feedback.as_ref()?.get("blockReason")?.as_str()?;
    if !r.candidates.is_empty() {
        return None;
    }
    Some(ProviderError::Upstream {
        provider: name.into(),
        status: 400,
        message: format!("the prompt was blocked ({reason})"),
        kind: Some(reason.to_string()),
        param: None,
        class: Some(ErrorClass::ContentPolicyViolation),
    })
}

pub fn chat_answer(
    bytes: &[u8],
    requested: &str,
    created: u64,
    name: &str,
) -> Result<(Value, Usage, Option<String>), ProviderError> {
    let r: GenerateResponse = serde_json::from_slice(bytes)
        .map_err(|e| invalid(name, format!("not a generateContent answer: {e}")))?;
    if let Some(e) = blocked(name, &r) {
        return Err(e);
    }
    let (usage_out, usage) = r.usage_metadata.unwrap_or_default().out();
    let id = r.response_id.clone().unwrap_or_else(|| new_id("chatcmpl"));
    let mut choices = Vec::with_capacity(r.candidates.len().max(1));
    for (index, c) in r.candidates.into_iter().enumerate() {
        let mut text = String::new();
        let mut reasoning = String::new();
        let mut calls = Vec::new();
        for p in c.content.map(|c| c.parts).unwrap_or_default() {
            match (p.function_call, p.text) {
                (Some(f), _) => calls.push(ToolCallOut {
                    id: f.id.unwrap_or_else(|| format!("call_{}", calls.len())),
                    kind: "function",
                    function: FunctionOut {
                        name: f.name,
                        arguments: f.args.to_string(),
                    },
                }),
                (None, Some(t)) if p.thought => reasoning.push_str(&t),
                (None, Some(t)) => text.push_str(&t),
                (None, None) => {}
            }
        }
        let has_tools = !calls.is_empty();
        choices.push(Choice {
            index: index as u32,
            message: AssistantMessage {
                role: "assistant",
                content: (!text.is_empty() || !has_tools).then_some(text),
                tool_calls: has_tools.then_some(calls),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                thinking_blocks: None,
            },
            finish_reason: finish_reason(c.finish_reason.as_deref(), has_tools),
        });
    }
    let answer = ChatCompletion {
        id: id.clone(),
        object: "chat.completion",
        created,
        model: requested.to_string(),
        choices,
        usage: usage_out,
    };
    let value = serde_json::to_value(answer).map_err(|e| invalid(name, e.to_string()))?;
    Ok((value, usage, r.response_id))
}

/// `batchEmbedContents` for the inputs; `model_path` is `models/<model>` (AI Studio) or the
/// publisher path (Vertex).
pub fn embed_request(
    call: &Outbound<'_>,
    name: &str,
    model_path: &str,
) -> Result<Value, ProviderError> {
    let mut fields = chat::supported_fields(call, name, EMBED_PARAMS)?;
    let texts = chat::embedding_texts(&mut fields, name)?;
    let dims = fields.remove("dimensions");
    let requests: Vec<Value> = texts
        .into_iter()
        .map(|t| {
            let mut r = json!({"model": model_path, "content": {"parts": [{"text": t}]}});
            if let Some(d) = &dims {
                r["outputDimensionality"] = d.clone();
            }
            r
        })
        .collect();
    Ok(json!({"requests": requests}))
}

#[derive(Deserialize)]
struct EmbedAnswer {
    embeddings: Vec<Values>,
}

#[derive(Deserialize)]
struct Values {
    values: Vec<f64>,
}

/// Google reports no token counts for embeddings: `prompt_tokens` is Bursar's own count of
/// the input (the tokenizer the admission estimate uses).
pub fn embed_answer(
    bytes: &[u8],
    requested: &str,
    base64: bool,
    prompt_tokens: u64,
    name: &str,
) -> Result<(Value, Usage), ProviderError> {
    let a: EmbedAnswer = serde_json::from_slice(bytes)
        .map_err(|e| invalid(name, format!("not a batchEmbedContents answer: {e}")))?;
    let vectors = a.embeddings.into_iter().map(|v| v.values).collect();
    embedding_list(vectors, requested, base64, prompt_tokens, name)
}

/// Embedding vectors as OpenAI's list (Vertex's `predict` answers end here too).
pub fn embedding_list(
    vectors: Vec<Vec<f64>>,
    requested: &str,
    base64: bool,
    prompt_tokens: u64,
    name: &str,
) -> Result<(Value, Usage), ProviderError> {
    let list = EmbeddingList::new(vectors, requested, base64, prompt_tokens);
    let value = serde_json::to_value(list).map_err(|e| invalid(name, e.to_string()))?;
    Ok((value, Usage::new(prompt_tokens, 0)))
}

pub struct StreamTranslator {
    reader: SseReader,
    /// Made at the first chunk, with the response's id when it has one.
    out: Option<ChunkWriter>,
    model: String,
    created: u64,
    name: &'static str,
    tools: u32,
    usage: UsageMetadata,
    finish: Option<&'static str>,
}

impl StreamTranslator {
    pub fn new(model: &str, created: u64, name: &'static str) -> StreamTranslator {
        StreamTranslator {
            reader: SseReader::default(),
            out: None,
            model: model.to_string(),
            created,
            name,
            tools: 0,
            usage: UsageMetadata::default(),
            finish: None,
        }
    }

    fn writer(&mut self, id: Option<String>) -> &ChunkWriter {
        let (model, created) = (&self.model, self.created);
        self.out.get_or_insert_with(|| {
            ChunkWriter::new(id.unwrap_or_else(|| new_id("chatcmpl")), model, created)
        })
    }

    fn event(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), ProviderError> {
        if data.trim().is_empty() {
            return Ok(());
        }
        let r: GenerateResponse = serde_json::from_str(data).map_err(|e| {
            invalid(
                self.name,
                format!("a stream event is not a generateContent chunk ({e})"),
            )
        })?;
        if let Some(e) = blocked(self.name, &r) {
            return Err(e);
        }
        if let Some(u) = r.usage_metadata {
            self.usage = u;
        }
        for c in r.candidates.into_iter().take(1) {
            if self.out.is_none() {
                self.writer(r.response_id.clone()).role(out);
            }
            for p in c.content.map(|c| c.parts).unwrap_or_default() {
                let n = self.tools;
                let w = self.writer(None);
                match (p.function_call, p.text) {
                    (Some(f), _) => {
                        let id = f.id.unwrap_or_else(|| format!("call_{n}"));
                        w.tool_start(out, n, id, f.name, f.args.to_string());
                        self.tools += 1;
                    }
                    (None, Some(t)) if p.thought => w.reasoning(out, t),
                    (None, Some(t)) if !t.is_empty() => w.content(out, t),
                    _ => {}
                }
            }
            if let Some(f) = finish_reason(c.finish_reason.as_deref(), false) {
                self.finish = Some(if self.tools > 0 { "tool_calls" } else { f });
            }
        }
        Ok(())
    }
}

impl Translator for StreamTranslator {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), ProviderError> {
        for event in self.reader.push(bytes, self.name)? {
            self.event(&event.data, out)?;
        }
        Ok(())
    }

    /// Google's stream has no end marker: it ends with the body, after a chunk that
    /// carried the finish reason.
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), ProviderError> {
        if let Some(event) = self.reader.finish() {
            self.event(&event.data, out)?;
        }
        let Some(finish) = self.finish else {
            return Err(ProviderError::Stream {
                provider: self.name.into(),
                detail: "the stream ended without a finish reason".into(),
            });
        };
        let (usage, _) = self.usage.out();
        let w = self.writer(None);
        w.finish(out, finish);
        w.usage_and_done(out, usage);
        Ok(())
    }
}
