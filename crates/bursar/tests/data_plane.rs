//! Black-box tests of the OpenAI-compatible data plane against a real server and mock upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, MockBehaviour, MockUpstream, TestGateway, both_backends};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    chat_completion_is_forwarded_with_the_deployment_model,
    response_model_is_rewritten_to_the_requested_name,
    call_id_is_echoed_or_generated,
    stream_is_forwarded_chunk_by_chunk,
    stream_asks_upstream_for_usage_and_hides_it_unless_requested,
    stream_keeps_usage_when_the_client_asks,
    completions_and_embeddings_are_forwarded,
    upstream_error_keeps_status_and_litellm_shape,
    unreachable_upstream_is_a_5xx_and_the_server_keeps_serving,
    slow_upstream_times_out_with_408,
    retryable_failure_moves_to_another_deployment,
    demo_model_answers_without_network,
    a_non_json_success_from_upstream_is_a_502_logged_as_a_failure,
    garbage_in_an_upstream_stream_ends_it_with_an_error_frame,
);

fn config(mock: &MockUpstream) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini-2024-07-18
      api_base: {base}
      api_key: sk-upstream-secret
    model_info:
      id: mini-1
  - model_name: text-embedding-3-small
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: {base}
  - model_name: demo
    litellm_params:
      model: bursar/demo
"#,
        base = mock.base_url()
    )
}

fn chat_body() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]})
}

async fn chat_completion_is_forwarded_with_the_deployment_model(backend: Backend) {
    let mock = MockUpstream::start().await;
    let Some(gw) = TestGateway::start(backend, &config(&mock)).await else {
        return;
    };
    let response = gw.post_json("/v1/chat/completions", &chat_body()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-litellm-model-id"], "mini-1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "mock answer");
    assert_eq!(body["usage"]["total_tokens"], 18);
    let sent = mock.last_body().unwrap();
    assert_eq!(sent["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(sent["messages"][0]["content"], "hello");
    assert_eq!(
        mock.last_header("authorization").as_deref(),
        Some("Bearer sk-upstream-secret")
    );
    // The unversioned route behaves the same.
    let response = gw.post_json("/chat/completions", &chat_body()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(mock.calls(), 2);
    gw.stop().await;
}

async fn response_model_is_rewritten_to_the_requested_name(backend: Backend) {
    let mock = MockUpstream::with(MockBehaviour {
        response_model: Some("gpt-4o-mini-2024-07-18".into()),
        ..Default::default()
    })
    .await;
    let Some(gw) = TestGateway::start(backend, &config(&mock)).await else {
        return;
    };
    let body: Value = gw
        .post_json("/v1/chat/completions", &chat_body())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["model"], "gpt-4o-mini");
    gw.stop().await;
}

async fn call_id_is_echoed_or_generated(backend: Backend) {
    let mock = MockUpstream::start().await;
    let Some(gw) = TestGateway::start(backend, &config(&mock)).await else {
        return;
    };
    let given = gw
        .post("/v1/chat/completions")
        .header("x-litellm-call-id", "my-call-123")
        .json(&chat_body())
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-litellm-call-id"], "my-call-123");
    let generated = gw.post_json("/v1/chat/completions", &chat_body()).await;
    let id = generated.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    gw.stop().await;
}

async fn stream_is_forwarded_chunk_by_chunk(backend: Backend) {
    let mock = MockUpstream::with(MockBehaviour {
        chunk_delay: Duration::from_millis(300),
        stream_chunks: 4,
        ..Default::default()
    })
    .await;
    let Some(gw) = TestGateway::start(backend, &config(&mock)).await else {
        return;
    };
    let mut body = chat_body();
    body["stream"] = json!(true);
    let response = gw.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    // The first event reached us while the upstream was still writing the rest.
    assert_eq!(
        mock.streams_finished(),
        0,
        "the gateway buffered the whole stream"
    );
    let mut all = first.to_vec();
    while let Some(chunk) = stream.next().await {
        all.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(all).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(text.matches("part").count(), 4);
    assert_eq!(mock.streams_finished(), 1);
    gw.stop().await;
}

async fn stream_asks_upstream_for_usage_and_hides_it_unless_requested(backend: Backend) {
    let mock = MockUpstream::start().await;
    let Some(gw) = TestGateway::start(backend, &config(&mock)).await else {
        return;
    };
    let mut body = chat_body();
    body["stream"] = json!(true);
    let text = gw
        .post_json("/v1/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        mock.last_body().unwrap()["stream_options"]["include_usage"],
        true
    );
    assert!(
        !text.contains("\"usage\""),
        "usage chunk leaked to a client that did not ask: {text}"
    );
    assert!(text.contains("\"model\":\"gpt-4o-mini\""), "{text}");
    gw.stop().await;
}

async fn stream_keeps_usage_when_the_client_asks(backend: Backend) {
    let mock = MockUpstream::start().await;
    let Some(gw) = TestGateway::start(backend, &config(&mock)).await else {
        return;
    };
    let mut body = chat_body();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = gw
        .post_json("/v1/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"total_tokens\":18"), "{text}");
    gw.stop().await;
}

async fn completions_and_embeddings_are_forwarded(backend: Backend) {
    let mock = MockUpstream::start().await;
    let Some(gw) = TestGateway::start(backend, &config(&mock)).await else {
        return;
    };
    for path in ["/v1/completions", "/completions"] {
        let response = gw
            .post_json(path, &json!({"model": "gpt-4o-mini", "prompt": "say hi"}))
            .await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["choices"][0]["text"], "mock text");
        assert_eq!(mock.last_body().unwrap()["prompt"], "say hi");
    }
    for path in ["/v1/embeddings", "/embeddings"] {
        let response = gw
            .post_json(
                path,
                &json!({"model": "text-embedding-3-small", "input": ["a", "b"]}),
            )
            .await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["data"][0]["embedding"], json!([0.1, 0.2, 0.3]));
        assert_eq!(body["model"], "text-embedding-3-small");
        assert_eq!(mock.last_body().unwrap()["input"], json!(["a", "b"]));
    }
    gw.stop().await;
}

async fn upstream_error_keeps_status_and_litellm_shape(backend: Backend) {
    let mock = MockUpstream::with(MockBehaviour {
        error_status: Some(429),
        error_message: "slow down".into(),
        ..Default::default()
    })
    .await;
    let Some(gw) = TestGateway::start(backend, &config(&mock)).await else {
        return;
    };
    let response = gw.post_json("/v1/chat/completions", &chat_body()).await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "429");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("RateLimitError") && message.contains("slow down"),
        "{message}"
    );
    mock.update(|b| b.error_status = Some(400));
    let response = gw.post_json("/v1/chat/completions", &chat_body()).await;
    assert_eq!(response.status(), 400);
    gw.stop().await;
}

async fn unreachable_upstream_is_a_5xx_and_the_server_keeps_serving(backend: Backend) {
    // Bind and drop a listener to get a port nobody listens on.
    let closed = bursar_testkit::unreachable_base_url();
    let yaml = format!(
        "model_list:\n  - model_name: dead\n    litellm_params: {{model: openai/x, api_base: '{closed}'}}\n  - model_name: demo\n    litellm_params: {{model: bursar/demo}}\n"
    );
    let Some(gw) = TestGateway::start(backend, &yaml).await else {
        return;
    };
    let response = gw
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "dead", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert!(response.status().is_server_error(), "{}", response.status());
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("APIConnectionError"),
        "{body}"
    );
    let again = gw
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "demo", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(again.status(), 200);
    gw.stop().await;
}

async fn slow_upstream_times_out_with_408(backend: Backend) {
    let mock = MockUpstream::with(MockBehaviour {
        latency: Duration::from_secs(5),
        ..Default::default()
    })
    .await;
    let yaml = format!(
        "model_list:\n  - model_name: slow\n    litellm_params: {{model: openai/x, api_base: '{}', timeout: 0.3}}\n",
        mock.base_url()
    );
    let Some(gw) = TestGateway::start(backend, &yaml).await else {
        return;
    };
    let response = gw
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "slow", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(response.status(), 408);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "408");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Timeout"),
        "{body}"
    );
    gw.stop().await;
}

async fn retryable_failure_moves_to_another_deployment(backend: Backend) {
    let broken = MockUpstream::with(MockBehaviour {
        error_status: Some(503),
        ..Default::default()
    })
    .await;
    let healthy = MockUpstream::start().await;
    let yaml = format!(
        "model_list:\n  - model_name: m\n    litellm_params: {{model: openai/x, api_base: '{}'}}\n  - model_name: m\n    litellm_params: {{model: openai/x, api_base: '{}'}}\nrouter_settings:\n  num_retries: 1\n",
        broken.base_url(),
        healthy.base_url()
    );
    let Some(gw) = TestGateway::start(backend, &yaml).await else {
        return;
    };
    for _ in 0..6 {
        let response = gw
            .post_json(
                "/v1/chat/completions",
                &json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(healthy.calls(), 6);
    gw.stop().await;
}

async fn demo_model_answers_without_network(backend: Backend) {
    let Some(gw) = TestGateway::start(
        backend,
        "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n",
    )
    .await
    else {
        return;
    };
    let body: Value = gw
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "demo", "messages": [{"role": "user", "content": "one two three"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the Bursar demo model. You said: one two three"
    );
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    gw.stop().await;
}

async fn a_non_json_success_from_upstream_is_a_502_logged_as_a_failure(backend: Backend) {
    let mock = MockUpstream::with(MockBehaviour {
        raw_answer: Some(b"<html><body>Bad gateway</body></html>"),
        ..Default::default()
    })
    .await;
    let Some(gw) = TestGateway::start(backend, &config(&mock)).await else {
        return;
    };
    let response = gw.post_json("/v1/chat/completions", &chat_body()).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "502", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("not a JSON object"), "{message}");
    let logs = gw.spend_logs(1).await;
    assert_eq!(logs[0]["status"], "failure", "{logs}");
    gw.stop().await;
}

async fn garbage_in_an_upstream_stream_ends_it_with_an_error_frame(backend: Backend) {
    let mock = MockUpstream::with(MockBehaviour {
        raw_answer: Some(b"\x00\xffnot sse at all\n\n"),
        garbage_after: 2,
        ..Default::default()
    })
    .await;
    let Some(gw) = TestGateway::start(backend, &config(&mock)).await else {
        return;
    };
    let mut body = chat_body();
    body["stream"] = json!(true);
    let response = gw.post_json("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("part0") && text.contains("part1"), "{text}");
    let last_events: Vec<&str> = text.trim_end().rsplit("\n\n").take(2).collect();
    assert_eq!(last_events[0], "data: [DONE]", "{text}");
    assert!(last_events[1].starts_with("data: {\"error\""), "{text}");
    assert!(
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .all(|e| e.starts_with("data: ")),
        "garbage is not forwarded: {text}"
    );
    let logs = gw.spend_logs(1).await;
    assert_eq!(logs[0]["status"], "failure", "{logs}");
    gw.stop().await;
}
