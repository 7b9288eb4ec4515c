//! Black-box tests of key authentication.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, TestGateway, both_backends};
use serde_json::{Value, json};

both_backends!(
    missing_key_is_401_in_litellm_shape,
    authorization_without_bearer_is_malformed,
    key_without_sk_prefix_is_rejected,
    unknown_virtual_key_is_401_token_not_found,
    master_key_is_accepted_from_every_header,
    virtual_key_is_accepted,
    blocked_key_is_rejected,
    expired_key_is_rejected,
    virtual_key_is_served_from_cache_after_first_use,
);

const CONFIG: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n";

fn chat() -> Value {
    json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]})
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let error = body["error"].clone();
    assert!(
        error["message"].is_string() && error["type"].is_string() && error["code"].is_string(),
        "not LiteLLM's shape: {body}"
    );
    assert!(error.get("param").is_some(), "missing param: {body}");
    assert_eq!(error["code"], status.to_string());
    (status, error)
}

async fn missing_key_is_401_in_litellm_shape(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let response = gw
        .http
        .post(gw.endpoint("/v1/chat/completions"))
        .json(&chat())
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(
        error["message"],
        "Authentication Error, No api key passed in."
    );
    assert_eq!(error["type"], "auth_error");
    let response = gw.http.get(gw.endpoint("/v1/models")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    gw.stop().await;
}

async fn authorization_without_bearer_is_malformed(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let response = gw
        .http
        .post(gw.endpoint("/v1/chat/completions"))
        .header("authorization", gw.master_key.clone())
        .json(&chat())
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(status, 401);
    assert!(error["message"].as_str().unwrap().contains("Bearer"));
    gw.stop().await;
}

async fn key_without_sk_prefix_is_rejected(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let response = gw
        .post_json_as("not-a-key-at-all", "/v1/chat/completions", &chat())
        .await;
    let (status, error) = error_of(response).await;
    assert_eq!(status, 401);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("expected to start with 'sk-'"),
        "{message}"
    );
    assert!(
        !message.contains("not-a-key-at-all"),
        "the presented key must be masked: {message}"
    );
    gw.stop().await;
}

async fn unknown_virtual_key_is_401_token_not_found(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let response = gw
        .post_json_as("sk-unknown-key-123", "/v1/chat/completions", &chat())
        .await;
    let (status, error) = error_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(error["type"], "token_not_found_in_db");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&bursar_core::keys::hash_key("sk-unknown-key-123")),
        "{message}"
    );
    gw.stop().await;
}

async fn master_key_is_accepted_from_every_header(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let key = gw.master_key.clone();
    let variants = [
        ("authorization", format!("Bearer {key}")),
        ("x-litellm-api-key", key.clone()),
        ("x-litellm-api-key", format!("Bearer {key}")),
        ("api-key", key.clone()),
    ];
    for (header, value) in variants {
        let response = gw
            .http
            .post(gw.endpoint("/v1/chat/completions"))
            .header(header, value)
            .json(&chat())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{header}");
    }
    gw.stop().await;
}

async fn virtual_key_is_accepted(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let key = gw.insert_key(|k| k.key_alias = Some("app".into())).await;
    let response = gw.post_json_as(&key, "/v1/chat/completions", &chat()).await;
    assert_eq!(response.status(), 200);
    gw.stop().await;
}

async fn blocked_key_is_rejected(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let key = gw.insert_key(|k| k.blocked = true).await;
    let response = gw.post_json_as(&key, "/v1/chat/completions", &chat()).await;
    let (status, error) = error_of(response).await;
    assert_eq!(status, 401);
    assert!(error["message"].as_str().unwrap().contains("blocked"));
    gw.stop().await;
}

async fn expired_key_is_rejected(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let key = gw
        .insert_key(|k| k.expires_at = Some(bursar_store::now_ms() - 1_000))
        .await;
    let response = gw.post_json_as(&key, "/v1/chat/completions", &chat()).await;
    let (status, error) = error_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(error["type"], "expired_key");
    gw.stop().await;
}

async fn virtual_key_is_served_from_cache_after_first_use(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let key = gw.insert_key(|_| {}).await;
    let first = gw.post_json_as(&key, "/v1/chat/completions", &chat()).await;
    assert_eq!(first.status(), 200);
    // Remove the row behind the gateway's back: a cached snapshot means no query per request.
    sqlx_delete_key(&gw, &key).await;
    for _ in 0..3 {
        let again = gw.post_json_as(&key, "/v1/chat/completions", &chat()).await;
        assert_eq!(again.status(), 200);
    }
    gw.stop().await;
}

async fn sqlx_delete_key(gw: &TestGateway, raw: &str) {
    let token = bursar_core::keys::hash_key(raw);
    gw.store.keys().delete_by_hash(&token).await.unwrap();
    assert!(
        gw.store
            .keys()
            .find_by_hash(&token)
            .await
            .unwrap()
            .is_none()
    );
}
