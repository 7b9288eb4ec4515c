//! Golden translation tests: each case under `tests/golden/<provider>/` is a JSON file with
//! the client's request, the upstream request Bursar must send, the upstream's answer (a
//! JSON body, an event stream, or an error) and the answer the client must get. Run with
//! `BURSAR_BLESS=1` to write the computed outputs into the files (then read the diff).

use crate::endpoint::Endpoint;
use crate::error::ProviderError;
use crate::framing::Translator;
use crate::json::JsonObject;
use crate::provider::Outbound;
use crate::usage::Usage;
use serde_json::{Value, json};
use std::path::PathBuf;

pub struct Case {
    pub name: String,
    path: PathBuf,
    pub data: Value,
}

/// Every case of a provider, sorted by file name.
pub fn cases(provider: &str) -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(provider);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no golden cases in {}", dir.display());
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let data =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Case {
                name: path.file_stem().unwrap().to_string_lossy().to_string(),
                path,
                data,
            }
        })
        .collect()
}

impl Case {
    pub fn get(&self, key: &str) -> &Value {
        &self.data[key]
    }

    /// Compares `actual` with the case's `key`; collects a readable mismatch.
    pub fn expect(&mut self, key: &str, actual: Value, failures: &mut Vec<String>) {
        if blessing() {
            self.data[key] = actual;
            return;
        }
        if self.data[key] != actual {
            failures.push(format!(
                "{}: {key} differs\n--- expected\n{}\n--- actual\n{}",
                self.name,
                serde_json::to_string_pretty(&self.data[key]).unwrap(),
                serde_json::to_string_pretty(&actual).unwrap()
            ));
        }
    }

    /// Writes blessed outputs back.
    pub fn save(&self) {
        if blessing() {
            let text = serde_json::to_string_pretty(&self.data).unwrap() + "\n";
            std::fs::write(&self.path, text).unwrap();
        }
    }
}

/// The JSON payloads of an OpenAI event stream, `"[DONE]"` as a string.
pub fn sse_payloads(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| {
            if data == "[DONE]" {
                Value::String(data.into())
            } else {
                serde_json::from_str(data).unwrap_or_else(|e| panic!("{data}: {e}"))
            }
        })
        .collect()
}

/// What a provider's golden cases exercise.
pub trait Subject {
    fn request(&self, case: &Case, call: &Outbound<'_>) -> Result<Value, ProviderError>;
    fn complete(
        &self,
        case: &Case,
        call: &Outbound<'_>,
        body: &[u8],
    ) -> Result<(Value, Usage), ProviderError>;
    fn translator(&self, case: &Case, call: &Outbound<'_>) -> Box<dyn Translator>;
    fn error(&self, status: u16, body: &[u8]) -> ProviderError;
}

/// Answers are made at this time, so they compare byte for byte.
pub const CREATED: u64 = 1_700_000_000;
/// The public name the client asked for, and the provider's model name.
pub const REQUESTED: &str = "my-model";

fn error_json(e: &ProviderError) -> Value {
    json!({"status": e.status(), "exception": e.exception_name(), "message": e.to_string()})
}

/// Ids a provider does not give are random (`chatcmpl-…`): compared by prefix only.
fn stable_ids(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(id)) = map.get_mut("id")
                    && let Some((prefix, rest)) = id.split_once('-')
                    && rest.len() == 32
                    && rest.chars().all(|c| c.is_ascii_hexdigit())
                {
                    *id = format!("{prefix}-<random>");
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// Runs every case of `provider` against `subject`; all mismatches are reported at once.
pub fn run(provider: &str, subject: &dyn Subject) {
    let mut failures = Vec::new();
    for mut case in cases(provider) {
        if let Some(errors) = case.get("upstream_errors").as_array().cloned() {
            let actual = errors
                .iter()
                .map(|e| {
                    let body = match &e["body"] {
                        Value::String(s) => s.clone().into_bytes(),
                        other => serde_json::to_vec(other).unwrap(),
                    };
                    let status = e["status"].as_u64().unwrap() as u16;
                    error_json(&subject.error(status, &body))
                })
                .collect();
            case.expect("errors", actual, &mut failures);
            case.save();
            continue;
        }
        let raw = serde_json::to_vec(case.get("request")).unwrap();
        let body = JsonObject::parse(&raw).unwrap();
        let endpoint = match case.get("endpoint").as_str() {
            None | Some("chat") => Endpoint::ChatCompletions,
            Some("completions") => Endpoint::Completions,
            Some("embeddings") => Endpoint::Embeddings,
            Some(other) => panic!("{}: unknown endpoint {other}", case.name),
        };
        let upstream_model = case
            .get("upstream_model")
            .as_str()
            .unwrap_or("upstream-model")
            .to_string();
        let call = Outbound {
            endpoint,
            body: &body,
            stream: case.get("request")["stream"] == true,
            requested: REQUESTED,
            upstream_model: &upstream_model,
            drop_params: case.get("drop_params") == &Value::Bool(true),
        };
        match subject.request(&case, &call) {
            Ok(upstream) => case.expect("upstream_request", upstream, &mut failures),
            Err(e) => case.expect("error", error_json(&e), &mut failures),
        }
        if !case.get("upstream_answer").is_null() {
            let bytes = serde_json::to_vec(case.get("upstream_answer")).unwrap();
            match subject.complete(&case, &call, &bytes) {
                Ok((answer, usage)) => {
                    case.expect("answer", stable_ids(answer), &mut failures);
                    case.expect("usage", serde_json::to_value(usage).unwrap(), &mut failures);
                }
                Err(e) => case.expect("answer_error", error_json(&e), &mut failures),
            }
        }
        // Text streams as they are; binary ones (AWS event streams) as base64.
        let stream = match (
            case.get("upstream_stream").as_str(),
            case.get("upstream_stream_base64").as_str(),
        ) {
            (Some(text), _) => Some(text.as_bytes().to_vec()),
            (None, Some(b64)) => {
                use base64::Engine;
                Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap(),
                )
            }
            _ => None,
        };
        if let Some(events) = stream {
            let mut t = subject.translator(&case, &call);
            let mut out = Vec::new();
            // Network chunks split events anywhere.
            let mut failed = None;
            for piece in events.chunks(7) {
                if let Err(e) = t.feed(piece, &mut out) {
                    failed = Some(e);
                    break;
                }
            }
            let end = match failed {
                Some(e) => Some(error_json(&e)),
                None => t.end(&mut out).err().map(|e| error_json(&e)),
            };
            let mut chunks = sse_payloads(&out);
            if let Some(e) = end {
                chunks.push(json!({"stream_error": e}));
            }
            case.expect("chunks", stable_ids(Value::Array(chunks)), &mut failures);
        }
        case.save();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `BURSAR_BLESS` set to anything but empty.
fn blessing() -> bool {
    std::env::var("BURSAR_BLESS").is_ok_and(|v| !v.is_empty())
}
