//! The built-in demo model (`bursar/demo`): answers every endpoint locally, deterministically
//! and instantly, so a fresh install works without network or provider keys.
//!
//! Token counts are whitespace-separated words, so tests can predict `usage` exactly.

use crate::endpoint::Endpoint;
use crate::json::JsonObject;
use crate::usage::Usage;
use bytes::Bytes;
use serde_json::{Value, json};

/// Fixed creation time so answers are byte-for-byte reproducible.
const CREATED: u64 = 1_700_000_000;

/// A complete JSON answer, or the SSE frames of a streamed one.
pub enum DemoAnswer {
    Json(Bytes),
    Stream(Vec<Bytes>),
}

pub fn answer(
    endpoint: Endpoint,
    body: &JsonObject,
    model: &str,
    stream: bool,
    include_usage: bool,
) -> DemoAnswer {
    match endpoint {
        Endpoint::Embeddings => DemoAnswer::Json(embeddings(body, model)),
        Endpoint::ChatCompletions | Endpoint::Completions => {
            let prompt = prompt_text(endpoint, body);
            let reply = reply_for(&prompt);
            let usage = Usage::new(words(&prompt), words(&reply));
            if stream {
                DemoAnswer::Stream(stream_frames(
                    endpoint,
                    model,
                    &reply,
                    include_usage.then_some(usage),
                ))
            } else {
                DemoAnswer::Json(complete(endpoint, model, &reply, usage))
            }
        }
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Every piece of text the caller sent: message contents (strings or text parts) or `prompt`.
fn prompt_text(endpoint: Endpoint, body: &JsonObject) -> String {
    let mut parts = Vec::new();
    match endpoint {
        Endpoint::ChatCompletions => {
            // Only each message's content is read: a tree of the whole list would cost many
            // times the body's size for a long conversation.
            #[derive(serde::Deserialize)]
            struct Content {
                #[serde(default)]
                content: Option<Value>,
            }
            if let Some(Ok(messages)) = body.get_as::<Vec<Content>>("messages") {
                for m in &messages {
                    collect_text(m.content.as_ref(), &mut parts);
                }
            }
        }
        _ => collect_text(
            body.get_as::<Value>("prompt").and_then(Result::ok).as_ref(),
            &mut parts,
        ),
    }
    parts.join(" ")
}

fn collect_text(value: Option<&Value>, out: &mut Vec<String>) {
    match value {
        Some(Value::String(s)) => out.push(s.clone()),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    Value::Object(part) => collect_text(part.get("text"), out),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

fn reply_for(prompt: &str) -> String {
    let last: String = prompt
        .split_whitespace()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" ");
    if last.is_empty() {
        "Hello from the Bursar demo model.".to_string()
    } else {
        format!("Hello from the Bursar demo model. You said: {last}")
    }
}

fn complete(endpoint: Endpoint, model: &str, reply: &str, usage: Usage) -> Bytes {
    let body = match endpoint {
        Endpoint::Completions => json!({
            "id": "cmpl-bursar-demo",
            "object": "text_completion",
            "created": CREATED,
            "model": model,
            "choices": [{"index": 0, "text": reply, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage,
        }),
        _ => json!({
            "id": "chatcmpl-bursar-demo",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": usage,
        }),
    };
    Bytes::from(body.to_string())
}

fn stream_frames(endpoint: Endpoint, model: &str, reply: &str, usage: Option<Usage>) -> Vec<Bytes> {
    let chat = endpoint == Endpoint::ChatCompletions;
    let chunk = |choice: Value| {
        let body = if chat {
            json!({"id": "chatcmpl-bursar-demo", "object": "chat.completion.chunk", "created": CREATED, "model": model, "choices": [choice]})
        } else {
            json!({"id": "cmpl-bursar-demo", "object": "text_completion", "created": CREATED, "model": model, "choices": [choice]})
        };
        Bytes::from(format!("data: {body}\n\n"))
    };
    let mut frames = Vec::new();
    if chat {
        frames.push(chunk(json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null})));
    }
    let pieces: Vec<&str> = reply.split(' ').collect();
    for (i, word) in pieces.iter().enumerate() {
        let text = if i + 1 < pieces.len() {
            format!("{word} ")
        } else {
            (*word).to_string()
        };
        frames.push(if chat {
            chunk(json!({"index": 0, "delta": {"content": text}, "finish_reason": null}))
        } else {
            chunk(json!({"index": 0, "text": text, "finish_reason": null}))
        });
    }
    frames.push(if chat {
        chunk(json!({"index": 0, "delta": {}, "finish_reason": "stop"}))
    } else {
        chunk(json!({"index": 0, "text": "", "finish_reason": "stop"}))
    });
    if let Some(usage) = usage {
        let object = if chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        };
        let body = json!({"id": "chatcmpl-bursar-demo", "object": object, "created": CREATED, "model": model, "choices": [], "usage": usage});
        frames.push(Bytes::from(format!("data: {body}\n\n")));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

/// Deterministic unit vectors derived from each input's bytes.
fn embeddings(body: &JsonObject, model: &str) -> Bytes {
    let inputs: Vec<String> = match body.get_as::<Value>("input").and_then(Result::ok) {
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let dims = body
        .get_as::<u64>("dimensions")
        .and_then(Result::ok)
        .filter(|d| (1..=4096).contains(d))
        .unwrap_or(8) as usize;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(
            |(i, text)| json!({"object": "embedding", "index": i, "embedding": vector(text, dims)}),
        )
        .collect();
    let tokens: u64 = inputs.iter().map(|t| words(t)).sum();
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    Bytes::from(body.to_string())
}

fn vector(text: &str, dims: usize) -> Vec<f64> {
    // FNV-1a seeded per dimension: cheap, stable across platforms.
    let raw: Vec<f64> = (0..dims)
        .map(|d| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (d as u64).wrapping_mul(0x100_0000_01b3);
            for b in text.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x100_0000_01b3);
            }
            (h % 20_001) as f64 / 10_000.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        return raw;
    }
    raw.iter().map(|x| (x / norm * 1e6).round() / 1e6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> JsonObject {
        JsonObject::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn chat_answer_is_deterministic_with_word_usage() {
        let b = body(r#"{"model":"demo","messages":[{"role":"user","content":"say hi please"}]}"#);
        let DemoAnswer::Json(a) = answer(Endpoint::ChatCompletions, &b, "demo", false, false)
        else {
            panic!()
        };
        let DemoAnswer::Json(again) = answer(Endpoint::ChatCompletions, &b, "demo", false, false)
        else {
            panic!()
        };
        assert_eq!(a, again);
        let v: Value = serde_json::from_slice(&a).unwrap();
        let text = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(
            text,
            "Hello from the Bursar demo model. You said: say hi please"
        );
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        assert_eq!(v["usage"]["completion_tokens"], words(text));
    }

    #[test]
    fn stream_ends_with_usage_then_done() {
        let b =
            body(r#"{"messages":[{"role":"user","content":[{"type":"text","text":"one two"}]}]}"#);
        let DemoAnswer::Stream(frames) = answer(Endpoint::ChatCompletions, &b, "demo", true, true)
        else {
            panic!()
        };
        assert_eq!(
            frames.last().unwrap(),
            &Bytes::from_static(b"data: [DONE]\n\n")
        );
        let usage_frame = String::from_utf8(frames[frames.len() - 2].to_vec()).unwrap();
        assert!(usage_frame.contains("\"prompt_tokens\":2"), "{usage_frame}");
        let content: String = frames
            .iter()
            .filter_map(|f| {
                let v: Value = serde_json::from_slice(f.strip_prefix(b"data: ")?).ok()?;
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(
            content,
            "Hello from the Bursar demo model. You said: one two"
        );
    }

    #[test]
    fn embeddings_are_stable_unit_vectors() {
        let b = body(r#"{"input":["a","b"],"dimensions":16}"#);
        let DemoAnswer::Json(bytes) = answer(Endpoint::Embeddings, &b, "demo", false, false) else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let first: Vec<f64> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
        assert_eq!(first.len(), 16);
        let norm: f64 = first.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3);
        assert_ne!(v["data"][0]["embedding"], v["data"][1]["embedding"]);
    }
}
