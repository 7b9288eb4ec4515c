//! Bad input gets a 4xx in LiteLLM's error shape naming the problem — never a 500.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, TestGateway, both_backends};
use serde_json::Value;

both_backends!(
    malformed_bodies_are_clear_4xx_errors,
    oversized_body_is_413,
    unknown_routes_and_methods_are_4xx,
    nul_in_text_that_reaches_the_store_is_refused_and_spend_keeps_flowing,
    nul_or_overlong_filters_are_400_on_every_list_route,
    overlong_ids_and_aliases_are_400,
    management_requests_are_bounded_in_size_and_list_lengths,
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

/// Like [`CONFIG`] with a body limit that lets large names through to the checks.
const ROOMY: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n";

async fn nul_in_text_that_reaches_the_store_is_refused_and_spend_keeps_flowing(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, ROOMY).await else {
        return;
    };
    let chat = |extra: &str| {
        format!(r#"{{"model":"demo","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#)
    };
    for (extra, param) in [
        (r#","metadata":{"tags":["x\u0000y"]}"#, "tags"),
        (r#","tags":["\u0000"]"#, "tags"),
        (r#","user":"end\u0000user""#, "user"),
        (r#","metadata":{"spend_logs_metadata":{"k":"\u0000"}}"#, "k"),
    ] {
        let (status, body) = send(&gw, "/v1/chat/completions", &chat(extra)).await;
        assert_eq!(status, 400, "{extra}: {body}");
        assert_eq!(body["error"]["param"], param, "{body}");
    }
    for (path, body, param) in [
        ("/key/generate", r#"{"key_alias":"a\u0000b"}"#, "key_alias"),
        ("/key/generate", r#"{"metadata":{"note":"\u0000"}}"#, "note"),
        ("/user/new", r#"{"user_id":"u\u0000"}"#, "user_id"),
        ("/team/new", r#"{"team_alias":"t\u0000"}"#, "team_alias"),
        (
            "/team/new",
            r#"{"members_with_roles":[{"user_id":"\u0000","role":"user"}]}"#,
            "user_id",
        ),
        (
            "/organization/new",
            r#"{"organization_alias":"\u0000"}"#,
            "organization_alias",
        ),
        ("/customer/new", r#"{"user_id":"c\u0000"}"#, "user_id"),
        ("/budget/new", r#"{"budget_id":"b\u0000"}"#, "budget_id"),
    ] {
        let (status, answer) = send(&gw, path, body).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["param"], param, "{answer}");
    }
    // Nothing bad was queued: a good request is charged and its spend log written.
    let response = gw
        .post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(chat(r#","metadata":{"tags":["fine"]}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let logs = gw.spend_logs(1).await;
    assert_eq!(
        logs.as_array().map(Vec::len),
        Some(1),
        "spend log never written: {logs}"
    );
    assert_eq!(
        logs[0]["request_tags"],
        serde_json::json!(["fine"]),
        "{logs}"
    );
}

async fn nul_or_overlong_filters_are_400_on_every_list_route(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, ROOMY).await else {
        return;
    };
    let long = "x".repeat(300);
    let routes = [
        ("/key/list", "key_alias"),
        ("/user/list", "user_ids"),
        ("/team/list", "user_id"),
        ("/v2/team/list", "team_alias"),
        ("/organization/list", "org_alias"),
        ("/spend/logs", "api_key"),
        ("/spend/logs/v2", "user_id"),
        ("/user/daily/activity", "model"),
        ("/team/daily/activity", "team_ids"),
        ("/organization/daily/activity", "organization_ids"),
        ("/tag/daily/activity", "tags"),
        ("/customer/daily/activity", "end_user_ids"),
        ("/global/spend/report", "team_id"),
        ("/audit", "object_id"),
    ];
    for (route, param) in routes {
        for value in ["a%00b".to_string(), long.clone()] {
            let response = gw
                .get(&format!("{route}?{param}={value}"))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 400, "{route}?{param}: {body}");
            assert_eq!(body["error"]["param"], param, "{body}");
            assert!(
                !body.to_string().contains("invalid byte sequence"),
                "{body}"
            );
        }
    }
}

async fn overlong_ids_and_aliases_are_400(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, ROOMY).await else {
        return;
    };
    let huge = "x".repeat(1 << 20);
    for (path, field) in [
        ("/key/generate", "key_alias"),
        ("/key/generate", "user_id"),
        ("/user/new", "user_id"),
        ("/user/new", "user_email"),
        ("/team/new", "team_id"),
        ("/organization/new", "organization_alias"),
        ("/customer/new", "user_id"),
    ] {
        let (status, body) = send(&gw, path, &format!(r#"{{"{field}":"{huge}"}}"#)).await;
        assert_eq!(
            status,
            400,
            "{path} {field}: {}",
            &body.to_string()[..200.min(body.to_string().len())]
        );
        assert_eq!(body["error"]["param"], field);
    }
    // At the limit it is accepted.
    let fits = "y".repeat(bursar_core::text::MAX_NAME_CHARS);
    let response = gw
        .post_json("/key/generate", &serde_json::json!({"key_alias": fits}))
        .await;
    assert_eq!(response.status(), 200);
}

async fn management_requests_are_bounded_in_size_and_list_lengths(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, ROOMY).await else {
        return;
    };
    // More names than a list may hold.
    let models: Vec<String> = (0..=bursar_core::text::MAX_NAME_LIST)
        .map(|i| format!("m{i}"))
        .collect();
    let body = serde_json::json!({"models": models}).to_string();
    let (status, answer) = send(&gw, "/key/generate", &body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["param"], "models");
    // A body beyond the management cap (2 MB) is refused before it is parsed...
    let big = format!(r#"{{"metadata": {{"note": "{}"}}}}"#, "x".repeat(3 << 20));
    let (status, _) = send(&gw, "/key/generate", &big).await;
    assert_eq!(status, 413);
    // ...while the data plane keeps its own, larger cap.
    let messages: Vec<serde_json::Value> = (0..50_000)
        .map(|_| serde_json::json!({"role": "user", "content": "x"}))
        .collect();
    let chat = serde_json::json!({"model": "demo", "messages": messages}).to_string();
    assert!(chat.len() > 1 << 20);
    let response = gw
        .post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(chat)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    gw.stop().await;
}
