//! Native provider adapters end to end: an OpenAI-shaped client calls Bursar, Bursar speaks
//! the provider's own wire format to the mock upstream (Anthropic Messages, Azure OpenAI's
//! deployment paths), and the answer, the stream, the errors and the recorded spend come
//! back in LiteLLM's shapes at the provider's price.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, MockBehaviour, MockUpstream, TestGateway, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(
    anthropic_chat_is_translated_both_ways_and_priced,
    anthropic_streams_tool_calls_and_settles_their_usage,
    anthropic_errors_keep_litellm_exception_names,
    unsupported_params_are_refused_unless_dropped,
    azure_calls_reach_the_deployment_path_with_its_key,
    ollama_calls_reach_the_native_api_in_both_flavours,
    cohere_chat_and_embed_use_v2_at_the_list_price,
    gemini_calls_generate_content_with_the_key_in_a_header,
    bedrock_converse_is_signed_translated_and_priced_by_its_model_id,
    vertex_serves_gemini_and_claude_with_one_cached_oauth_token,
    drop_params_applies_globally_per_deployment_and_per_request,
);

/// claude-haiku-4-5 in the shipped price list: input 1e-6, output 5e-6, cache read 1e-7,
/// cache write 1.25e-6 per token. The mock reports 11 uncached input, 100 cache-read,
/// 20 cache-written and 7 output tokens.
const CLAUDE_COST_USD: f64 = 11.0 * 1e-6 + 100.0 * 1e-7 + 20.0 * 1.25e-6 + 7.0 * 5e-6;
/// azure/gpt-4o (base_model): 11 prompt tokens at 2.5e-6, 7 completion tokens at 1e-5.
const AZURE_COST_USD: f64 = 11.0 * 2.5e-6 + 7.0 * 1e-5;

async fn start(backend: Backend) -> Option<(TestGateway, MockUpstream)> {
    let mock = MockUpstream::with(MockBehaviour {
        cache_read_tokens: 100,
        cache_creation_tokens: 20,
        ..MockBehaviour::default()
    })
    .await;
    let root = mock.root_url();
    let config = format!(
        r#"
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-haiku-4-5
      api_base: {root}
      api_key: sk-ant-test
  - model_name: azure-gpt
    litellm_params:
      model: azure/gpt4o-prod
      api_base: {root}
      api_key: az-test-key
      api_version: "2024-10-21"
    model_info:
      base_model: azure/gpt-4o
  - model_name: azure-embed
    litellm_params:
      model: azure/embed-prod
      api_base: {root}
      azure_ad_token: entra-token
    model_info:
      mode: embedding
      base_model: azure/text-embedding-3-small
  - model_name: llama
    litellm_params:
      model: ollama_chat/llama3.2
      api_base: {root}
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: llama-generate
    litellm_params:
      model: ollama/llama3.2
      api_base: {root}
  - model_name: llama-embed
    litellm_params:
      model: ollama/nomic-embed-text
      api_base: {root}
    model_info:
      mode: embedding
  - model_name: bedrock-claude
    litellm_params:
      model: bedrock/converse/us.anthropic.claude-sonnet-4-5-20250929-v1:0
      aws_bedrock_runtime_endpoint: {root}
      aws_region_name: us-east-1
      aws_access_key_id: AKIDTEST
      aws_secret_access_key: test-secret
      aws_session_token: test-token
  - model_name: gemini
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_base: {root}
      api_key: g-test-key
  - model_name: command
    litellm_params:
      model: cohere/command-a-03-2025
      api_base: {root}
      api_key: co-test-key
  - model_name: cohere-embed
    litellm_params:
      model: cohere/embed-v4.0
      api_base: {root}
      api_key: co-test-key
    model_info:
      mode: embedding
general_settings:
  spend_flush_interval_ms: 50
"#
    );
    let gw = TestGateway::start(backend, &config).await?;
    Some((gw, mock))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// The spend-log row of a call id, once written.
async fn log_of(gw: &TestGateway, call_id: &str, at_least: usize) -> Value {
    let logs = gw.spend_logs(at_least).await;
    logs.as_array()
        .unwrap()
        .iter()
        .find(|l| l["metadata"]["litellm_call_id"] == call_id)
        .cloned()
        .unwrap_or_else(|| panic!("no spend log for {call_id}: {logs}"))
}

async fn anthropic_chat_is_translated_both_ways_and_priced(backend: Backend) {
    let Some((gw, mock)) = start(backend).await else {
        return;
    };
    let response = gw
        .post("/v1/chat/completions")
        .json(&json!({
            "model": "claude",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello"}
            ],
            "max_tokens": 64,
            "temperature": 0.1
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let cost: f64 = response.headers()["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let base = response.headers()["x-litellm-model-api-base"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: Value = response.json().await.unwrap();

    // Upstream: Anthropic's Messages format with its credentials.
    assert_eq!(mock.last_uri().as_deref(), Some("/v1/messages"));
    assert_eq!(
        mock.last_header("x-api-key").as_deref(),
        Some("sk-ant-test")
    );
    assert_eq!(
        mock.last_header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert!(mock.last_header("authorization").is_none());
    let sent = mock.last_body().unwrap();
    assert_eq!(sent["model"], "claude-haiku-4-5");
    assert_eq!(
        sent["system"],
        json!([{"type": "text", "text": "Be brief."}])
    );
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Hello"}]}])
    );
    assert_eq!(
        (sent["max_tokens"].clone(), sent["temperature"].clone()),
        (json!(64), json!(0.1))
    );

    // Client: an OpenAI chat completion.
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "claude");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "part0 part1 part2 "
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["prompt_tokens"], 131);
    assert_eq!(answer["usage"]["completion_tokens"], 7);
    assert_eq!(
        answer["usage"]["prompt_tokens_details"]["cached_tokens"],
        100
    );
    assert_eq!(answer["usage"]["cache_creation_input_tokens"], 20);

    // Priced with cache reads and writes at their own rates.
    assert!(close(cost, CLAUDE_COST_USD), "{cost} vs {CLAUDE_COST_USD}");
    assert_eq!(base, mock.root_url());
    let log = log_of(&gw, &call_id, 1).await;
    assert!(
        close(log["spend"].as_f64().unwrap(), CLAUDE_COST_USD),
        "{log}"
    );
    assert_eq!(log["custom_llm_provider"], "anthropic");
    assert_eq!(log["model"], "anthropic/claude-haiku-4-5");
    assert_eq!(log["prompt_tokens"], 131);
    // LiteLLM keys the row by the provider's answer id.
    assert_eq!(log["request_id"], "msg_01MockAnthropicAnswer");
    gw.stop().await;
}

/// A streamed chat completion's whole body.
async fn stream_body(gw: &TestGateway, body: Value) -> String {
    gw.post("/v1/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The content deltas of stream chunks, joined.
fn content_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// The `data:` payloads of an SSE body.
fn payloads(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

async fn anthropic_streams_tool_calls_and_settles_their_usage(backend: Backend) {
    let Some((gw, mock)) = start(backend).await else {
        return;
    };
    let tools = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    ]);
    let response = gw
        .post("/v1/chat/completions")
        .json(&json!({
            "model": "claude", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Weather and time in Paris?"}],
            "tools": tools, "tool_choice": "required"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let call_id = response.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let chunks = payloads(&body);
    assert_eq!(
        mock.last_body().unwrap()["tool_choice"],
        json!({"type": "any"})
    );
    assert_eq!(mock.last_body().unwrap()["stream"], true);

    // Two tool calls, numbered 0 and 1, their arguments reassembled from the pieces.
    let mut calls: Vec<(String, String)> = Vec::new();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "claude");
        for d in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = d["index"].as_u64().unwrap() as usize;
            if let Some(name) = d["function"]["name"].as_str() {
                assert_eq!(i, calls.len());
                calls.push((name.to_string(), String::new()));
            }
            calls[i]
                .1
                .push_str(d["function"]["arguments"].as_str().unwrap());
        }
    }
    assert_eq!(
        calls,
        vec![
            (
                "get_weather".to_string(),
                "{\"city\": \"Paris\"}".to_string()
            ),
            ("get_time".to_string(), "{\"city\": \"Paris\"}".to_string())
        ]
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| {
            c["choices"][0]["finish_reason"]
                .as_str()
                .map(|_| &c["choices"][0]["finish_reason"])
        })
        .collect();
    assert_eq!(finish, vec![&json!("tool_calls")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        (
            usage["prompt_tokens"].clone(),
            usage["completion_tokens"].clone()
        ),
        (json!(131), json!(7))
    );

    let log = log_of(&gw, &call_id, 1).await;
    assert!(
        close(log["spend"].as_f64().unwrap(), CLAUDE_COST_USD),
        "{log}"
    );
    assert_eq!(log["custom_llm_provider"], "anthropic");

    // Without include_usage the usage chunk is not sent, but the call is still charged.
    let response = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    let call_id = response.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.text().await.unwrap();
    let chunks = payloads(&body);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "{body}");
    assert_eq!(content_of(&chunks), "part0 part1 part2 ");
    let log = log_of(&gw, &call_id, 2).await;
    assert!(
        close(log["spend"].as_f64().unwrap(), CLAUDE_COST_USD),
        "{log}"
    );
    gw.stop().await;
}

async fn anthropic_errors_keep_litellm_exception_names(backend: Backend) {
    let Some((gw, mock)) = start(backend).await else {
        return;
    };
    let cases = [
        (
            429,
            "Number of request tokens has exceeded your per-minute rate limit",
            429,
            "litellm.RateLimitError: AnthropicException - Number of request tokens",
        ),
        (
            400,
            "prompt is too long: 250000 tokens > 200000 maximum",
            400,
            "litellm.ContextWindowExceededError: AnthropicException - prompt is too long",
        ),
        (
            401,
            "invalid x-api-key",
            401,
            "litellm.AuthenticationError: AnthropicException - invalid x-api-key",
        ),
        (
            529,
            "Overloaded",
            529,
            "litellm.InternalServerError: AnthropicException - Overloaded",
        ),
    ];
    for (upstream, message, status, starts) in cases {
        mock.update(|b| {
            b.error_status = Some(upstream);
            b.error_message = message.to_string();
        });
        let (got, body) = gw
            .send(
                Method::POST,
                "/v1/chat/completions",
                Some(&json!({"model": "claude", "messages": [{"role": "user", "content": "Hi"}]})),
            )
            .await;
        assert_eq!(got, status, "{body}");
        let text = body["error"]["message"].as_str().unwrap();
        assert!(text.starts_with(starts), "{text}");
        assert_eq!(body["error"]["code"], status.to_string());
    }
    mock.update(|b| b.error_status = None);

    // Anthropic serves chat only: the other OpenAI endpoints are a clear 400.
    let (status, body) = gw
        .send(
            Method::POST,
            "/v1/embeddings",
            Some(&json!({"model": "claude", "input": "x"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic does not support embeddings"),
        "{body}"
    );
    gw.stop().await;
}

async fn unsupported_params_are_refused_unless_dropped(backend: Backend) {
    let Some((gw, mock)) = start(backend).await else {
        return;
    };
    let calls = mock.calls();
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "Hi"}], "logprobs": true});
    let (status, answer) = gw
        .send(Method::POST, "/v1/chat/completions", Some(&body))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["param"], "logprobs");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "litellm.UnsupportedParamsError: anthropic does not support parameters: ['logprobs']"
        ),
        "{message}"
    );
    assert_eq!(mock.calls(), calls, "nothing reached the provider");

    let mut dropped = body.clone();
    dropped["drop_params"] = json!(true);
    let (status, answer) = gw
        .send(Method::POST, "/v1/chat/completions", Some(&dropped))
        .await;
    assert_eq!(status, 200, "{answer}");
    let sent = mock.last_body().unwrap();
    assert!(
        sent.get("logprobs").is_none() && sent.get("drop_params").is_none(),
        "{sent}"
    );
    gw.stop().await;
}

async fn azure_calls_reach_the_deployment_path_with_its_key(backend: Backend) {
    let Some((gw, mock)) = start(backend).await else {
        return;
    };
    let response = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "azure-gpt", "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["model"], "azure-gpt");
    assert_eq!(answer["choices"][0]["message"]["content"], "mock answer");
    assert_eq!(
        mock.last_uri().as_deref(),
        Some("/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21")
    );
    assert_eq!(mock.last_header("api-key").as_deref(), Some("az-test-key"));
    assert!(mock.last_header("authorization").is_none());
    let log = log_of(&gw, &call_id, 1).await;
    assert!(
        close(log["spend"].as_f64().unwrap(), AZURE_COST_USD),
        "{log}"
    );
    assert_eq!(log["custom_llm_provider"], "azure");

    // Streams pass through; an Entra token is a bearer token.
    let response = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "azure-gpt", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    let body = response.text().await.unwrap();
    assert!(
        body.contains("part2") && body.ends_with("data: [DONE]\n\n"),
        "{body}"
    );
    let (status, embedded) = gw
        .send(
            Method::POST,
            "/v1/embeddings",
            Some(&json!({"model": "azure-embed", "input": ["a"]})),
        )
        .await;
    assert_eq!(status, 200, "{embedded}");
    assert_eq!(embedded["data"][0]["embedding"], json!([0.1, 0.2, 0.3]));
    assert!(
        mock.last_uri()
            .unwrap()
            .starts_with("/openai/deployments/embed-prod/embeddings?api-version="),
    );
    assert_eq!(
        mock.last_header("authorization").as_deref(),
        Some("Bearer entra-token")
    );
    gw.stop().await;
}

async fn ollama_calls_reach_the_native_api_in_both_flavours(backend: Backend) {
    let Some((gw, mock)) = start(backend).await else {
        return;
    };
    let response = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "llama", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "part0 part1 part2 "
    );
    assert_eq!(mock.last_uri().as_deref(), Some("/api/chat"));
    let sent = mock.last_body().unwrap();
    assert_eq!(sent["stream"], false, "Ollama streams unless told not to");
    assert_eq!(sent["options"]["num_predict"], 9);
    assert_eq!(sent["model"], "llama3.2");
    let log = log_of(&gw, &call_id, 1).await;
    assert!(
        close(log["spend"].as_f64().unwrap(), 11.0 * 1e-6 + 7.0 * 2e-6),
        "{log}"
    );
    assert_eq!(log["custom_llm_provider"], "ollama_chat");

    // NDJSON streams become SSE chunks.
    let body = stream_body(
        &gw,
        json!({"model": "llama", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    let text = content_of(&payloads(&body));
    assert_eq!(text, "part0 part1 part2 ");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");

    // ollama/ chat is one prompt on /api/generate; completions and embeddings too.
    let (status, answer) = gw
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(&json!({"model": "llama-generate", "messages": [{"role": "user", "content": "Hi"}]})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(mock.last_uri().as_deref(), Some("/api/generate"));
    assert_eq!(mock.last_body().unwrap()["prompt"], "### User:\nHi\n\n");
    let (status, answer) = gw
        .send(
            Method::POST,
            "/v1/completions",
            Some(&json!({"model": "llama-generate", "prompt": "Once"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "text_completion");
    let (status, answer) = gw
        .send(
            Method::POST,
            "/v1/embeddings",
            Some(&json!({"model": "llama-embed", "input": "a"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(mock.last_uri().as_deref(), Some("/api/embed"));
    assert_eq!(answer["data"][0]["embedding"], json!([0.1, 0.2, 0.3]));
    assert_eq!(answer["usage"]["prompt_tokens"], 11);

    // Its errors keep Ollama's message.
    mock.update(|b| {
        b.error_status = Some(404);
        b.error_message = "model 'llama3.2' not found, try pulling it first".into();
    });
    let (status, answer) = gw
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(&json!({"model": "llama", "messages": [{"role": "user", "content": "Hi"}]})),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().starts_with(
            "litellm.NotFoundError: Ollama_chatException - model 'llama3.2' not found"
        ),
        "{answer}"
    );
    gw.stop().await;
}

async fn cohere_chat_and_embed_use_v2_at_the_list_price(backend: Backend) {
    let Some((gw, mock)) = start(backend).await else {
        return;
    };
    let response = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "command", "messages": [{"role": "system", "content": "Brief."}, {"role": "user", "content": "Hi"}], "top_p": 0.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "part0 part1 part2 "
    );
    assert_eq!(mock.last_uri().as_deref(), Some("/v2/chat"));
    assert_eq!(
        mock.last_header("authorization").as_deref(),
        Some("Bearer co-test-key")
    );
    let sent = mock.last_body().unwrap();
    assert_eq!(
        (sent["p"].clone(), sent["model"].clone()),
        (json!(0.5), json!("command-a-03-2025"))
    );
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Brief."})
    );
    // command-a-03-2025: 2.5e-6 per input token, 1e-5 per output token.
    let log = log_of(&gw, &call_id, 1).await;
    assert!(
        close(log["spend"].as_f64().unwrap(), 11.0 * 2.5e-6 + 7.0 * 1e-5),
        "{log}"
    );
    assert_eq!(log["custom_llm_provider"], "cohere");
    assert_eq!(log["request_id"], "c14c80c3-18eb-4519-9460-6c92edd8cfb4");

    let (status, embedded) = gw
        .send(
            Method::POST,
            "/v1/embeddings",
            Some(&json!({"model": "cohere-embed", "input": ["a", "b"]})),
        )
        .await;
    assert_eq!(status, 200, "{embedded}");
    assert_eq!(mock.last_uri().as_deref(), Some("/v2/embed"));
    assert_eq!(mock.last_body().unwrap()["input_type"], "search_document");
    assert_eq!(embedded["data"][1]["embedding"], json!([0.1, 0.2, 0.3]));

    // Legacy completions are not Cohere's.
    let (status, body) = gw
        .send(
            Method::POST,
            "/v1/completions",
            Some(&json!({"model": "command", "prompt": "x"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    gw.stop().await;
}

async fn gemini_calls_generate_content_with_the_key_in_a_header(backend: Backend) {
    let Some((gw, mock)) = start(backend).await else {
        return;
    };
    let response = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "gemini", "messages": [{"role": "system", "content": "Brief."}, {"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "part0 part1 part2 "
    );
    assert_eq!(
        mock.last_uri().as_deref(),
        Some("/v1beta/models/gemini-2.5-flash:generateContent")
    );
    assert_eq!(
        mock.last_header("x-goog-api-key").as_deref(),
        Some("g-test-key")
    );
    assert_eq!(
        mock.last_body().unwrap()["systemInstruction"],
        json!({"parts": [{"text": "Brief."}]})
    );
    // gemini/gemini-2.5-flash: 3e-7 input, 2.5e-6 output, 3e-8 cached input. The mock
    // reports all 11 prompt tokens as cached (its cache count is capped by the prompt).
    let log = log_of(&gw, &call_id, 1).await;
    assert!(
        close(log["spend"].as_f64().unwrap(), 11.0 * 3e-8 + 7.0 * 2.5e-6),
        "{log}"
    );
    assert_eq!(log["custom_llm_provider"], "gemini");
    assert_eq!(log["request_id"], "8Tk8aKqcLsSeqtsPpMTK4QQ");
    assert_eq!(log["prompt_tokens"], 11);

    let body = stream_body(
        &gw,
        json!({"model": "gemini", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(
        mock.last_uri().as_deref(),
        Some("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    );
    let text = content_of(&payloads(&body));
    assert_eq!(text, "part0 part1 part2 ");
    gw.stop().await;
}

async fn bedrock_converse_is_signed_translated_and_priced_by_its_model_id(backend: Backend) {
    let Some((gw, mock)) = start(backend).await else {
        return;
    };
    let response = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "bedrock-claude", "messages": [{"role": "system", "content": "Brief."}, {"role": "user", "content": "Hi"}], "max_tokens": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "part0 part1 part2 "
    );
    assert_eq!(
        mock.last_uri().as_deref(),
        Some("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse")
    );
    let auth = mock.last_header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
            && auth.contains("/us-east-1/bedrock/aws4_request"),
        "{auth}"
    );
    assert_eq!(
        mock.last_header("x-amz-security-token").as_deref(),
        Some("test-token")
    );
    let sent = mock.last_body().unwrap();
    assert_eq!(sent["system"], json!([{"text": "Brief."}]));
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 50);
    // Priced under the model id without `converse/`: 3.3e-6 input, 1.65e-5 output,
    // 3.3e-7 cache read, 4.125e-6 cache write; the mock reports 11 input + 100 read +
    // 20 written, 7 output.
    let log = log_of(&gw, &call_id, 1).await;
    let want = 11.0 * 3.3e-6 + 100.0 * 3.3e-7 + 20.0 * 4.125e-6 + 7.0 * 1.65e-5;
    assert!(
        close(log["spend"].as_f64().unwrap(), want),
        "{log} vs {want}"
    );
    assert_eq!(log["custom_llm_provider"], "bedrock");
    assert_eq!(log["prompt_tokens"], 131);

    // ConverseStream's event-stream frames become SSE chunks, usage included.
    let body = stream_body(&gw, json!({"model": "bedrock-claude", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "Hi"}]})).await;
    assert!(mock.last_uri().unwrap().ends_with("/converse-stream"));
    let chunks = payloads(&body);
    let text: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "part0 part1 part2 ");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 7);

    // Its exceptions keep their category.
    mock.update(|b| {
        b.error_status = Some(429);
        b.error_message = "Too many requests, please wait before trying again.".into();
    });
    let (status, answer) = gw
        .send(Method::POST, "/v1/chat/completions", Some(&json!({"model": "bedrock-claude", "messages": [{"role": "user", "content": "Hi"}]})))
        .await;
    assert_eq!(status, 429, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("litellm.RateLimitError: BedrockException - Too many requests"),
        "{answer}"
    );
    gw.stop().await;
}

/// The test service account, its token endpoint pointed at the mock (`query` sets the
/// tokens' lifetime there).
fn vertex_credentials(mock: &MockUpstream, query: &str) -> tempfile::NamedTempFile {
    let fixture = include_str!("../../bursar-providers/tests/fixtures/vertex-service-account.json");
    let mut creds: Value = serde_json::from_str(fixture).unwrap();
    creds["token_uri"] = json!(format!("{}/token{query}", mock.root_url()));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), creds.to_string()).unwrap();
    file
}

async fn vertex_serves_gemini_and_claude_with_one_cached_oauth_token(backend: Backend) {
    let mock = MockUpstream::start().await;
    let creds = vertex_credentials(&mock, "");
    let short = vertex_credentials(&mock, "?lifetime=30");
    let root = mock.root_url();
    let path = creds.path().display();
    let short_path = short.path().display();
    let config = format!(
        r#"
model_list:
  - model_name: vertex-gemini
    litellm_params:
      model: vertex_ai/gemini-2.5-flash
      vertex_credentials: {path}
      vertex_location: europe-west4
      api_base: {root}
  - model_name: vertex-claude
    litellm_params:
      model: vertex_ai/claude-sonnet-4-5@20250929
      vertex_credentials: {path}
      vertex_project: claude-project
      api_base: {root}
  - model_name: vertex-short-token
    litellm_params:
      model: vertex_ai/gemini-2.5-flash
      vertex_credentials: {short_path}
      api_base: {root}
general_settings:
  spend_flush_interval_ms: 50
"#
    );
    let Some(gw) = TestGateway::start(backend, &config).await else {
        return;
    };
    let (status, answer) = gw
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(
                &json!({"model": "vertex-gemini", "messages": [{"role": "user", "content": "Hi"}]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "part0 part1 part2 "
    );
    assert_eq!(
        mock.last_uri().as_deref(),
        Some(
            "/v1/projects/bursar-test-project/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
        )
    );
    assert_eq!(
        mock.last_header("authorization").as_deref(),
        Some("Bearer ya29.mock-1")
    );

    let (status, answer) = gw
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some(
                &json!({"model": "vertex-claude", "messages": [{"role": "user", "content": "Hi"}]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "part0 part1 part2 "
    );
    assert_eq!(
        mock.last_uri().as_deref(),
        Some(
            "/v1/projects/claude-project/locations/us-central1/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
        )
    );
    let sent = mock.last_body().unwrap();
    assert_eq!(sent["anthropic_version"], "vertex-2023-10-16");

    // Priced under Vertex's names: vertex_ai/claude-sonnet-4-5@20250929 (3e-6 / 1.5e-5) and
    // gemini-2.5-flash (3e-7 / 2.5e-6); the mock reports 11 prompt and 7 output tokens.
    let logs = gw.spend_logs(2).await;
    let spend_of = |model: &str| {
        logs.as_array()
            .unwrap()
            .iter()
            .find(|l| l["model"] == model)
            .and_then(|l| l["spend"].as_f64())
            .unwrap_or_else(|| panic!("no spend log for {model}: {logs}"))
    };
    assert!(close(
        spend_of("vertex_ai/claude-sonnet-4-5@20250929"),
        11.0 * 3e-6 + 7.0 * 1.5e-5
    ));
    assert!(close(
        spend_of("vertex_ai/gemini-2.5-flash"),
        11.0 * 3e-7 + 7.0 * 2.5e-6
    ));

    // Streams through both publishers, on the same deployments' cached tokens.
    for model in ["vertex-gemini", "vertex-claude"] {
        let body = stream_body(&gw, json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "Hi"}]})).await;
        let text = content_of(&payloads(&body));
        assert_eq!(text, "part0 part1 part2 ", "{model}: {body}");
    }
    // One token per deployment (each has its own token source), reused by later calls.
    assert_eq!(mock.tokens_issued(), 2);
    // A token within a minute of expiring is replaced before it is used.
    for _ in 0..2 {
        let (status, answer) = gw
            .send(Method::POST, "/v1/chat/completions", Some(&json!({"model": "vertex-short-token", "messages": [{"role": "user", "content": "Hi"}]})))
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(mock.tokens_issued(), 4);
    assert_eq!(
        mock.last_header("authorization").as_deref(),
        Some("Bearer ya29.mock-4")
    );
    gw.stop().await;
}

async fn drop_params_applies_globally_per_deployment_and_per_request(backend: Backend) {
    let mock = MockUpstream::start().await;
    let root = mock.root_url();
    let deployment = |name: &str, extra: &str| {
        format!(
            "  - model_name: {name}\n    litellm_params:\n      model: anthropic/claude-haiku-4-5\n      api_base: {root}\n      api_key: k\n{extra}"
        )
    };
    let body = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "logprobs": true, "presence_penalty": 1});
    // Per deployment.
    let config = format!(
        "model_list:\n{}{}",
        deployment("strict", ""),
        deployment("lenient", "      drop_params: true\n")
    );
    let Some(gw) = TestGateway::start(backend, &config).await else {
        return;
    };
    let (status, answer) = gw
        .send(Method::POST, "/v1/chat/completions", Some(&body("strict")))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["param"], "logprobs");
    let (status, answer) = gw
        .send(Method::POST, "/v1/chat/completions", Some(&body("lenient")))
        .await;
    assert_eq!(status, 200, "{answer}");
    let sent = mock.last_body().unwrap();
    assert!(
        sent.get("logprobs").is_none() && sent.get("presence_penalty").is_none(),
        "{sent}"
    );
    gw.stop().await;

    // Globally (litellm_settings.drop_params).
    let config = format!(
        "model_list:\n{}litellm_settings:\n  drop_params: true\n",
        deployment("strict", "")
    );
    let Some(gw) = TestGateway::start(backend, &config).await else {
        return;
    };
    let (status, answer) = gw
        .send(Method::POST, "/v1/chat/completions", Some(&body("strict")))
        .await;
    assert_eq!(status, 200, "{answer}");
    gw.stop().await;
}
