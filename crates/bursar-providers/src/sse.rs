//! Server-sent-event forwarding: upstream bytes in, client bytes out, event by event.
//!
//! The tap never buffers more than one incomplete event. On the way it reads `usage` (so spend
//! can be settled), drops the usage-only chunk when Bursar asked for it on the client's behalf,
//! rewrites `model` to the name the client requested, and turns a mid-stream failure into an
//! SSE error frame. When the stream ends — normally, by error, or because the client went away
//! and the body was dropped — `on_finish` runs exactly once with what was observed.

use crate::error::ProviderError;
use crate::json::JsonObject;
use crate::usage::Usage;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use std::pin::Pin;
use std::time::Duration;

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ProviderError>> + Send>>;

/// What a finished (or abandoned) stream delivered.
#[derive(Debug, Default, Clone)]
pub struct StreamSummary {
    pub usage: Option<Usage>,
    /// The stream's answer id (its first chunk's `id`), when it has a usable one.
    pub response_id: Option<String>,
    /// The upstream ended the stream itself (`[DONE]` or end of body).
    pub completed: bool,
    pub error: Option<ProviderError>,
    /// Bytes sent towards the client.
    pub bytes: u64,
}

pub type FinishHook = Box<dyn FnOnce(StreamSummary) + Send>;

#[derive(Debug, Clone)]
pub struct TapOptions {
    /// Rewrite each chunk's `model` to this name.
    pub model: Option<String>,
    /// Drop the usage-only final chunk (the client did not ask for `include_usage`).
    pub strip_usage_chunk: bool,
    /// Longest wait for the next upstream chunk.
    pub idle_timeout: Duration,
    pub provider: String,
    /// When cancelled, the stream ends at once with an error frame (shutdown's deadline).
    pub abort: Option<tokio_util::sync::CancellationToken>,
}

struct TapState {
    source: ByteStream,
    buf: BytesMut,
    options: TapOptions,
    summary: StreamSummary,
    on_finish: Option<FinishHook>,
    done: bool,
    /// `"model":"<name>"` in both spacings, built once rather than per event.
    model_needles: Option<[Vec<u8>; 2]>,
    /// The first chunk was read for the answer id.
    id_read: bool,
}

impl Drop for TapState {
    fn drop(&mut self) {
        if let Some(hook) = self.on_finish.take() {
            hook(std::mem::take(&mut self.summary));
        }
    }
}

/// Wraps an upstream SSE body.
pub fn tap(source: ByteStream, options: TapOptions, on_finish: Option<FinishHook>) -> ByteStream {
    let model_needles = options.model.as_ref().map(|m| {
        [
            format!("\"model\":\"{m}\"").into_bytes(),
            format!("\"model\": \"{m}\"").into_bytes(),
        ]
    });
    let state = TapState {
        model_needles,
        source,
        buf: BytesMut::new(),
        options,
        summary: StreamSummary::default(),
        on_finish,
        done: false,
        id_read: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let abort = st.options.abort.clone();
            let aborted = async move {
                match abort {
                    Some(token) => token.cancelled_owned().await,
                    None => std::future::pending().await,
                }
            };
            let next = tokio::select! {
                next = tokio::time::timeout(st.options.idle_timeout, st.source.next()) => next,
                () = aborted => {
                    let err = ProviderError::Stream {
                        provider: st.options.provider.clone(),
                        detail: "the gateway is shutting down and stopped waiting for this stream".into(),
                    };
                    return Some((Ok(st.fail(err)), st));
                }
            };
            match next {
                Ok(Some(Ok(chunk))) => {
                    st.buf.extend_from_slice(&chunk);
                    if let Some(out) = st.drain_complete_events() {
                        st.summary.bytes += out.len() as u64;
                        return Some((Ok(out), st));
                    }
                    if st.buf.len() > MAX_EVENT_BYTES {
                        let err = ProviderError::InvalidResponse {
                            provider: st.options.provider.clone(),
                            detail: format!("no event ended within {MAX_EVENT_BYTES} bytes"),
                        };
                        return Some((Ok(st.fail(err)), st));
                    }
                }
                Ok(None) => {
                    st.done = true;
                    st.summary.completed = true;
                    if st.buf.is_empty() {
                        return None;
                    }
                    // A final event without its blank line: forward it, terminated.
                    st.buf.extend_from_slice(b"\n\n");
                    let out = st.drain_complete_events().unwrap_or_default();
                    st.summary.bytes += out.len() as u64;
                    return Some((Ok(out), st));
                }
                Ok(Some(Err(err))) => return Some((Ok(st.fail(err)), st)),
                Err(_) => {
                    let err = ProviderError::Timeout {
                        provider: st.options.provider.clone(),
                        after: st.options.idle_timeout,
                    };
                    return Some((Ok(st.fail(err)), st));
                }
            }
        }
    }))
}

impl TapState {
    fn fail(&mut self, err: ProviderError) -> Bytes {
        self.done = true;
        let frame = error_frame(&err);
        self.summary.error = Some(err);
        self.summary.bytes += frame.len() as u64;
        frame
    }

    /// Splits off every complete event and returns them, processed; `None` if there is none yet.
    fn drain_complete_events(&mut self) -> Option<Bytes> {
        let end = last_event_end(&self.buf)?;
        let region = self.buf.split_to(end).freeze();
        let mut out: Option<Vec<u8>> = None;
        let mut start = 0;
        while start < region.len() {
            let Some(len) = next_event_len(&region[start..]) else {
                break;
            };
            let event = &region[start..start + len];
            match self.process_event(event) {
                EventAction::Garbage(detail) => {
                    // What came before is forwarded; the stream ends with an error frame.
                    let mut bytes = out.unwrap_or_else(|| region[..start].to_vec());
                    let err = ProviderError::InvalidResponse {
                        provider: self.options.provider.clone(),
                        detail,
                    };
                    bytes.extend_from_slice(&self.fail(err));
                    return Some(Bytes::from(bytes));
                }
                EventAction::Keep => {
                    if let Some(out) = out.as_mut() {
                        out.extend_from_slice(event);
                    }
                }
                EventAction::Drop => {
                    out.get_or_insert_with(|| region[..start].to_vec());
                }
                EventAction::Replace(bytes) => {
                    out.get_or_insert_with(|| region[..start].to_vec())
                        .extend_from_slice(&bytes);
                }
            }
            start += len;
        }
        let out = match out {
            Some(bytes) => Bytes::from(bytes),
            None => region,
        };
        (!out.is_empty()).then_some(out)
    }

    fn process_event(&mut self, event: &[u8]) -> EventAction {
        let Some(payload) = single_data_payload(event) else {
            return match malformed_line(event) {
                Some(line) => EventAction::Garbage(format!(
                    "the stream is not server-sent events: {}",
                    String::from_utf8_lossy(&line[..line.len().min(80)]).escape_default()
                )),
                None => EventAction::Keep,
            };
        };
        if payload == b"[DONE]" {
            self.summary.completed = true;
            return EventAction::Keep;
        }
        // Every OpenAI chunk is a JSON object; anything else is not a chunk.
        if payload.trim_ascii_start().first() != Some(&b'{') {
            return EventAction::Garbage(format!(
                "a stream event is not a JSON object: {}",
                String::from_utf8_lossy(&payload[..payload.len().min(80)]).escape_default()
            ));
        }
        if self.summary.response_id.is_none()
            && !self.id_read
            && let Ok(chunk) = JsonObject::parse(payload)
        {
            // Once per stream: every chunk repeats the answer's id.
            self.id_read = true;
            if let Some(Ok(id)) = chunk.get_as::<&str>("id") {
                self.summary.response_id = usable_id(id);
            }
        }
        let has_usage = contains(payload, b"\"usage\"");
        let needs_model = self
            .model_needles
            .as_ref()
            .is_some_and(|needles| !names_model(payload, needles));
        if !has_usage && !needs_model {
            return EventAction::Keep;
        }
        let Ok(mut chunk) = JsonObject::parse(payload) else {
            return EventAction::Keep;
        };
        if has_usage && let Some(usage) = chunk.get("usage").and_then(Usage::from_raw) {
            self.summary.usage = Some(usage);
            let no_choices = chunk.get("choices").is_none_or(|c| c.get().trim() == "[]");
            if self.options.strip_usage_chunk && no_choices {
                return EventAction::Drop;
            }
        }
        if needs_model
            && chunk.contains("model")
            && let Some(model) = &self.options.model
            && chunk.set("model", model).is_ok()
        {
            let mut bytes = Vec::with_capacity(payload.len() + 16);
            bytes.extend_from_slice(b"data: ");
            bytes.extend_from_slice(&chunk.to_vec());
            bytes.extend_from_slice(b"\n\n");
            return EventAction::Replace(bytes);
        }
        EventAction::Keep
    }
}

enum EventAction {
    Keep,
    Drop,
    Replace(Vec<u8>),
    /// Not an event of the protocol: the stream fails with this detail.
    Garbage(String),
}

/// The first line of an event that is not an SSE field (`data:`, `event:`, `id:`, `retry:`)
/// or comment (`:`), if any.
fn malformed_line(event: &[u8]) -> Option<&[u8]> {
    event
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
        .find(|line| {
            !(line.starts_with(b":")
                || [&b"data"[..], b"event", b"id", b"retry"]
                    .iter()
                    .any(|field| {
                        line.strip_prefix(*field)
                            .is_some_and(|rest| rest.is_empty() || rest[0] == b':')
                    }))
        })
}

/// An upstream that never ends an event within this many bytes is not sending SSE.
const MAX_EVENT_BYTES: usize = 4 << 20;

/// `data: {"error": {...}}` followed by `[DONE]`, LiteLLM's way to fail a started stream.
pub fn error_frame(err: &ProviderError) -> Bytes {
    let body = serde_json::json!({
        "error": {
            "message": format!("litellm.{}: {err}", err.exception_name()),
            "type": err.exception_name(),
            "param": null,
            "code": err.status().to_string(),
        }
    });
    Bytes::from(format!("data: {body}\n\ndata: [DONE]\n\n"))
}

/// End offset of the last complete event (just past its blank line).
fn last_event_end(buf: &[u8]) -> Option<usize> {
    let mut i = buf.len();
    while i >= 2 {
        if buf[i - 1] == b'\n' && buf[i - 2] == b'\n' {
            return Some(i);
        }
        if i >= 4 && &buf[i - 4..i] == b"\r\n\r\n" {
            return Some(i);
        }
        i -= 1;
    }
    None
}

/// Length of the first event in `buf`, including its terminating blank line.
fn next_event_len(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some(i + 2);
        }
        if i + 3 < buf.len() && &buf[i..i + 4] == b"\r\n\r\n" {
            return Some(i + 4);
        }
        i += 1;
    }
    None
}

/// The payload of an event made of exactly one `data:` line (the OpenAI shape).
fn single_data_payload(event: &[u8]) -> Option<&[u8]> {
    let text = trim_ascii_end(event);
    let rest = text.strip_prefix(b"data:")?;
    if rest.contains(&b'\n') {
        return None;
    }
    Some(trim_ascii_end(rest.strip_prefix(b" ").unwrap_or(rest)))
}

fn trim_ascii_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Cheap check that a chunk already names the wanted model, or has no `model` at all (so no
/// rewrite is needed).
fn names_model(payload: &[u8], needles: &[Vec<u8>; 2]) -> bool {
    needles.iter().any(|n| contains(payload, n)) || !contains(payload, b"\"model\"")
}

#[cfg(test)]
mod tests;

/// Longest answer id kept (spend-log rows stay small; an upstream's id is untrusted text).
const MAX_RESPONSE_ID: usize = 256;

/// An upstream's answer id, when it is one a spend log can keep: non-empty, short, printable.
pub fn usable_id(id: &str) -> Option<String> {
    let ok = !id.is_empty() && id.len() <= MAX_RESPONSE_ID && id.chars().all(|c| !c.is_control());
    ok.then(|| id.to_string())
}
