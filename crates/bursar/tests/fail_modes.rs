//! What a gateway configured for Redis does while Redis is unreachable: `fail_closed` refuses
//! governed requests with 503 and reports itself not ready; `fail_open` serves them on the
//! instance's own counters and counts the fallbacks. Recovery once Redis returns is covered
//! by the limiter's own tests (`bursar-limits/tests/redis.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, MockUpstream, TestGateway, unreachable_base_url};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A Redis URL where nothing listens.
fn unreachable_redis() -> String {
    unreachable_base_url()
        .replace("http://", "redis://")
        .trim_end_matches("/v1")
        .to_string()
}

async fn start(mode: &str) -> (TestGateway, MockUpstream) {
    let mock = MockUpstream::start().await;
    let config = format!(
        r#"
model_list:
  - model_name: m
    litellm_params:
      model: openai/m
      api_base: {base}
general_settings:
  redis_url: {redis}
  redis_fail_mode: {mode}
  redis_timeout_ms: 200
"#,
        base = mock.base_url(),
        redis = unreachable_redis(),
    );
    let gw = TestGateway::start(Backend::Sqlite, &config).await.unwrap();
    (gw, mock)
}

async fn chat(gw: &TestGateway, key: &str) -> (StatusCode, Value) {
    let response = gw
        .http
        .post(gw.endpoint("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn new_key(gw: &TestGateway, rpm: u64) -> String {
    let response = gw
        .post_json("/key/generate", &json!({"rpm_limit": rpm}))
        .await;
    assert!(response.status().is_success());
    let body: Value = response.json().await.unwrap();
    body["key"].as_str().unwrap().to_string()
}

async fn metric(gw: &TestGateway, name: &str) -> u64 {
    let text = gw
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    bursar_testkit::metric_value(&text, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_governed_requests_with_503_and_is_not_ready() {
    let (gw, mock) = start("fail_closed").await;
    let governed = new_key(&gw, 100).await;
    let (status, body) = chat(&gw, &governed).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Admission control is unavailable"),
        "{message}"
    );
    assert_eq!(
        mock.calls(),
        0,
        "a refused request never reaches the provider"
    );

    // Nothing limits the master key: it does not need Redis.
    let (status, _) = chat(&gw, &gw.master_key).await;
    assert_eq!(status, StatusCode::OK);

    let ready = gw.get("/health/readiness").send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["cache"], "redis (unreachable)");
    assert_eq!(metric(&gw, "bursar_redis_admission").await, 1);
    assert_eq!(metric(&gw, "bursar_redis_up").await, 0);
    assert!(metric(&gw, "bursar_redis_failures_total").await >= 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_serves_on_local_limits_and_counts_fallbacks() {
    let (gw, mock) = start("fail_open").await;
    let governed = new_key(&gw, 2).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(chat(&gw, &governed).await.0);
    }
    // The local counters still enforce the limit on this instance.
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(mock.calls(), 2);
    assert_eq!(metric(&gw, "bursar_admission_fallback_total").await, 3);
    let ready = gw.get("/health/readiness").send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK, "fail_open keeps serving");
    gw.stop().await;
}
