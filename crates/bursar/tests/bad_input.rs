//! Bad input gets a 4xx in LiteLLM's error shape naming the problem — never a 500.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, TestGateway, both_backends};
use serde_json::Value;

both_backends!(
    malformed_bodies_are_clear_4xx_errors,
    oversized_body_is_413,
    unknown_routes_and_methods_are_4xx
);

const CONFIG: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\ngeneral_settings:\n  max_request_size_mb: 0.01\n";

async fn send(gw: &TestGateway, path: &str, body: &str) -> (u16, Value) {
    let response = gw
        .post(path)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], status.to_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    (status, body)
}

async fn malformed_bodies_are_clear_4xx_errors(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let cases = [
        ("/v1/chat/completions", "", "empty"),
        ("/v1/chat/completions", "{\"model\": ", "Invalid JSON"),
        ("/v1/chat/completions", "[1,2,3]", "Invalid JSON"),
        (
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":"x"}]}"#,
            "'model'",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":42,"messages":[{"role":"user","content":"x"}]}"#,
            "'model'",
        ),
        ("/v1/chat/completions", r#"{"model":"demo"}"#, "'messages'"),
        (
            "/v1/chat/completions",
            r#"{"model":"demo","messages":{"role":"user"}}"#,
            "'messages'",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"demo","messages":[{"role":"user","content":"x"}],"stream":1}"#,
            "'stream'",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}"#,
            "Invalid model name",
        ),
        ("/v1/completions", r#"{"model":"demo"}"#, "'prompt'"),
        ("/v1/embeddings", r#"{"model":"demo","input":5}"#, "'input'"),
    ];
    for (path, body, expected) in cases {
        let (status, error) = send(&gw, path, body).await;
        assert_eq!(status, 400, "{path} {body}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{path} {body}: expected {expected:?} in {message:?}"
        );
    }
    // Still serving afterwards.
    let ok = gw
        .post_json(
            "/v1/chat/completions",
            &serde_json::json!({"model": "demo", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    gw.stop().await;
}

async fn oversized_body_is_413(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let big = format!(
        r#"{{"model":"demo","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(20_000)
    );
    let (status, body) = send(&gw, "/v1/chat/completions", &big).await;
    assert_eq!(status, 413);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too large")
    );
    // Without a content-length (chunked), the limit still holds.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(big.clone().into_bytes())];
    let response = gw
        .post("/v1/chat/completions")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    gw.stop().await;
}

async fn unknown_routes_and_methods_are_4xx(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let response = gw.get("/v1/no-such-route").send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "404");
    let response = gw.get("/v1/chat/completions").send().await.unwrap();
    assert_eq!(response.status(), 405);
    gw.stop().await;
}
