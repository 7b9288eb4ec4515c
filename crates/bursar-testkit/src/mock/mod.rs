//! A mock upstream on a real loopback port that speaks the providers' wire formats: OpenAI's
//! chat (JSON or SSE), completions, embeddings and models under `/v1`; the same under Azure
//! OpenAI's `/openai/deployments/{deployment}/…`; Anthropic's Messages at `/v1/messages`
//! (`anthropic` module); Bedrock's `/model/{id}/converse`, `/converse-stream`, `/invoke`
//! (`bedrock`); Gemini's `/v1beta/models/…` and Vertex AI's publisher paths
//! (`gemini`); Cohere's `/v2/chat` and `/v2/embed` (`cohere`); Ollama's
//! `/api/chat`, `/api/generate`, `/api/embed` (`ollama`).
//! Its behaviour (latency, error status, usage, model name, delay between stream chunks) can
//! be changed while it runs, and it counts calls and keeps the last request so tests can
//! check what Bursar forwarded.

mod anthropic;
mod bedrock;
mod cohere;
mod gemini;
mod ollama;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct MockBehaviour {
    /// Delay before answering (before the first byte for streams).
    pub latency: Duration,
    /// Delay between SSE chunks.
    pub chunk_delay: Duration,
    /// Answer every call with this status and an OpenAI error body.
    pub error_status: Option<u16>,
    pub error_message: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The `model` the mock reports (`None` = echo the request's model).
    pub response_model: Option<String>,
    /// Number of content chunks in a stream.
    pub stream_chunks: usize,
    /// Answer chat calls with status 200 and exactly these bytes (a broken upstream: an HTML
    /// page, or garbage instead of SSE), after `garbage_after` good stream chunks.
    pub raw_answer: Option<&'static [u8]>,
    pub garbage_after: usize,
    /// Prompt tokens reported as read from / written to a prompt cache (formats that
    /// report them: Anthropic).
    pub cache_read_tokens: u64,
    pub cache_creation_tokens: u64,
}

impl Default for MockBehaviour {
    fn default() -> Self {
        MockBehaviour {
            latency: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            error_status: None,
            error_message: "mock upstream error".into(),
            prompt_tokens: 11,
            completion_tokens: 7,
            response_model: None,
            stream_chunks: 3,
            raw_answer: None,
            garbage_after: 0,
            cache_read_tokens: 0,
            cache_creation_tokens: 0,
        }
    }
}

#[derive(Default)]
struct Shared {
    behaviour: Mutex<MockBehaviour>,
    calls: AtomicUsize,
    last_body: Mutex<Option<Value>>,
    last_headers: Mutex<Option<HeaderMap>>,
    last_uri: Mutex<Option<String>>,
    streams_finished: AtomicUsize,
    tokens_issued: AtomicUsize,
    stream_started: AtomicBool,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

/// Counts a call as in flight from arrival until its handler returns.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct MockUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl MockUpstream {
    pub async fn start() -> MockUpstream {
        MockUpstream::with(MockBehaviour::default()).await
    }

    pub async fn with(behaviour: MockBehaviour) -> MockUpstream {
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            ..Default::default()
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(completions))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .route("/v1/messages", post(anthropic::messages))
            .route("/v1beta/models/{*rest}", post(gemini::models))
            .route("/v1/models/{*rest}", post(gemini::models))
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/google/models/{*rest}",
                post(gemini::vertex),
            )
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{*rest}",
                post(anthropic::vertex),
            )
            .route("/token", post(google_token))
            .route("/model/{model_id}/{operation}", post(bedrock::model))
            .route("/v2/chat", post(cohere::chat))
            .route("/v2/embed", post(cohere::embed))
            .route("/api/chat", post(ollama::chat))
            .route("/api/generate", post(ollama::generate))
            .route("/api/embed", post(ollama::embed))
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(chat),
            )
            .route(
                "/openai/deployments/{deployment}/completions",
                post(completions),
            )
            .route(
                "/openai/deployments/{deployment}/embeddings",
                post(embeddings),
            )
            .with_state(shared.clone());
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("mock upstream cannot bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("mock upstream has no address: {e}"),
        };
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
        });
        MockUpstream { addr, shared, stop }
    }

    /// Base URL including `/v1`, as a deployment's `api_base`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    pub fn last_body(&self) -> Option<Value> {
        lock(&self.shared.last_body).clone()
    }

    /// Path and query of the last request.
    pub fn last_uri(&self) -> Option<String> {
        lock(&self.shared.last_uri).clone()
    }

    /// The mock's address as a URL without a path (Azure's and Anthropic's `api_base`).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn last_header(&self, name: &str) -> Option<String> {
        lock(&self.shared.last_headers)
            .as_ref()
            .and_then(|h| h.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// OAuth access tokens handed out by `/token` (Google's token endpoint).
    pub fn tokens_issued(&self) -> usize {
        self.shared.tokens_issued.load(Ordering::SeqCst)
    }

    /// Streams the mock has finished writing completely.
    pub fn streams_finished(&self) -> usize {
        self.shared.streams_finished.load(Ordering::SeqCst)
    }

    /// The most calls the mock was answering at the same time (non-streaming answers
    /// count until sent; streams until their headers are sent).
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    pub fn update(&self, change: impl FnOnce(&mut MockBehaviour)) {
        change(&mut lock(&self.shared.behaviour));
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts and keeps the request, then waits the configured latency.
async fn observe(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> (MockBehaviour, Value) {
    shared.calls.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight::enter(shared);
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    *lock(&shared.last_body) = Some(parsed.clone());
    *lock(&shared.last_headers) = Some(headers.clone());
    *lock(&shared.last_uri) = Some(uri.to_string());
    let mut behaviour = lock(&shared.behaviour).clone();
    // A client (an SDK under test) can ask for one error answer: `x-mock-error: 429`.
    if let Some(status) = headers
        .get("x-mock-error")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    {
        behaviour.error_status = Some(status);
    }
    if !behaviour.latency.is_zero() {
        tokio::time::sleep(behaviour.latency).await;
    }
    (behaviour, parsed)
}

/// [`observe`], then the configured error in OpenAI's shape.
async fn record(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(MockBehaviour, Value), Response> {
    let (behaviour, parsed) = observe(shared, uri, headers, body).await;
    if let Some(status) = behaviour.error_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"error": {"message": behaviour.error_message, "type": "mock_error", "param": null, "code": null}});
        return Err((status, axum::Json(body)).into_response());
    }
    Ok((behaviour, parsed))
}

fn model_of(b: &MockBehaviour, request: &Value) -> String {
    b.response_model
        .clone()
        .unwrap_or_else(|| request["model"].as_str().unwrap_or("mock").to_string())
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (b, request) = match record(&shared, &uri, &headers, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let model = model_of(&b, &request);
    let usage = json!({"prompt_tokens": b.prompt_tokens, "completion_tokens": b.completion_tokens, "total_tokens": b.prompt_tokens + b.completion_tokens});
    if let Some(raw) = b.raw_answer {
        let streaming = request["stream"] == Value::Bool(true);
        let mut body = Vec::new();
        if streaming {
            for i in 0..b.garbage_after {
                let chunk = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [{"index": 0, "delta": {"content": format!("part{i} ")}, "finish_reason": null}]});
                body.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
            }
        }
        body.extend_from_slice(raw);
        let content_type = if streaming {
            "text/event-stream"
        } else {
            "text/html"
        };
        return Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    if request["stream"] != Value::Bool(true) {
        let body = json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "mock answer"}, "finish_reason": "stop"}],
            "usage": usage,
        });
        return axum::Json(body).into_response();
    }
    let include_usage = request["stream_options"]["include_usage"] == Value::Bool(true);
    let chunk = |delta: Value, finish: Value| {
        let body = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        Bytes::from(format!("data: {body}\n\n"))
    };
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for i in 0..b.stream_chunks {
        frames.push(chunk(json!({"content": format!("part{i} ")}), Value::Null));
    }
    frames.push(chunk(json!({}), json!("stop")));
    if include_usage {
        let body = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage});
        frames.push(Bytes::from(format!("data: {body}\n\n")));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    sse_response(&shared, frames, b.chunk_delay)
}

/// Sends `frames` as an event stream, `delay` apart, counting the stream as finished when
/// its last frame is out.
fn sse_response(shared: &Arc<Shared>, frames: Vec<Bytes>, delay: Duration) -> Response {
    shared.stream_started.store(true, Ordering::SeqCst);
    let done = shared.clone();
    let total = frames.len();
    let stream = futures_util::stream::unfold(0usize, move |i| {
        let frame = frames.get(i).cloned();
        let done = done.clone();
        async move {
            let frame = frame?;
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if i + 1 == total {
                done.streams_finished.fetch_add(1, Ordering::SeqCst);
            }
            Some((Ok::<Bytes, std::io::Error>(frame), i + 1))
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn completions(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (b, request) = match record(&shared, &uri, &headers, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let body = json!({
        "id": "cmpl-mock", "object": "text_completion", "created": 1, "model": model_of(&b, &request),
        "choices": [{"index": 0, "text": "mock text", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": b.prompt_tokens, "completion_tokens": b.completion_tokens, "total_tokens": b.prompt_tokens + b.completion_tokens},
    });
    axum::Json(body).into_response()
}

async fn embeddings(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (b, request) = match record(&shared, &uri, &headers, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let body = json!({
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
        "model": model_of(&b, &request),
        "usage": {"prompt_tokens": b.prompt_tokens, "total_tokens": b.prompt_tokens},
    });
    axum::Json(body).into_response()
}

async fn models() -> Response {
    axum::Json(json!({"object": "list", "data": [{"id": "mock-model", "object": "model", "created": 1, "owned_by": "mock"}]})).into_response()
}

/// Google's OAuth token endpoint: a service account's signed JWT (or a refresh token) in,
/// an access token out (`ya29.mock-<n>`), valid an hour or `?lifetime=<seconds>`.
async fn google_token(State(shared): State<Arc<Shared>>, uri: Uri, body: Bytes) -> Response {
    let lifetime: u64 = uri
        .query()
        .and_then(|q| q.strip_prefix("lifetime="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3599);
    let form = String::from_utf8_lossy(&body).to_string();
    let field = |name: &str| {
        form.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let jwt_grant = field("grant_type").as_deref()
        == Some("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer");
    let assertion_ok = field("assertion").is_some_and(|a| a.split('.').count() == 3);
    let refresh =
        field("grant_type").as_deref() == Some("refresh_token") && field("refresh_token").is_some();
    if !(refresh || jwt_grant && assertion_ok) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant", "error_description": "Invalid JWT"})),
        )
            .into_response();
    }
    *lock(&shared.last_body) = Some(Value::String(form));
    let n = shared.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    axum::Json(json!({"access_token": format!("ya29.mock-{n}"), "expires_in": lifetime, "token_type": "Bearer"})).into_response()
}
