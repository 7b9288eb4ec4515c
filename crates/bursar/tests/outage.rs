//! The data plane outlives a database outage: keys already seen keep working from their
//! last snapshot for as long as it lasts, other keys are refused fast with 503
//! `no_db_connection` (or let through with `allow_requests_on_db_unavailable`), and the
//! gateway recovers by itself. PostgreSQL only: an embedded SQLite file cannot become
//! unreachable (its readers are never refused).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, TestGateway};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CONFIG: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo, input_cost_per_token: 0.000001, output_cost_per_token: 0.000001}}\n";

async fn key(gw: &TestGateway) -> String {
    let body: Value = gw
        .post_json(
            "/key/generate",
            &json!({"max_budget": 10, "models": ["demo"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    body["key"].as_str().unwrap().to_string()
}

/// One chat call: its status, error type and how long it took.
async fn chat(gw: &TestGateway, key: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = gw
        .post_json_as(
            key,
            "/v1/chat/completions",
            &json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status == 500 {
        eprintln!("500: {body}");
    }
    (status, body["error"]["type"].clone(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_data_plane_outlives_a_90_second_database_outage() {
    let Some(gw) = TestGateway::start_switchable(Backend::Postgres, CONFIG).await else {
        return;
    };
    let seen = key(&gw).await;
    let unseen = key(&gw).await;
    assert_eq!(chat(&gw, &seen).await.0, 200);

    gw.database_up(false).await;
    let outage = Instant::now();
    // The first lookup of an uncached key finds the database gone (it may wait for the
    // pool's timeout); from then on it is known to be down.
    let (status, kind, _) = chat(&gw, &unseen).await;
    assert_eq!((status, kind), (503, json!("no_db_connection")));
    let mut served = 0;
    while outage.elapsed() < Duration::from_secs(90) {
        let (status, _, took) = chat(&gw, &seen).await;
        assert_eq!(
            status,
            200,
            "a cached key at {:?} of the outage",
            outage.elapsed()
        );
        assert!(
            took < Duration::from_millis(500),
            "a cached key took {took:?}"
        );
        let (status, kind, took) = chat(&gw, &unseen).await;
        assert_eq!((status, kind), (503, json!("no_db_connection")));
        assert!(took < Duration::from_millis(500), "a refusal took {took:?}");
        served += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(served >= 30);

    gw.database_up(true).await;
    let back = Instant::now();
    loop {
        let (status, _, _) = chat(&gw, &unseen).await;
        if status == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "not recovered after {:?}",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What was spent during the outage reaches the database.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: Value = gw
            .get(&format!("/key/info?key={seen}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let spend = info["info"]["spend"].as_f64().unwrap_or(0.0);
        let logged = gw
            .store
            .spend()
            .count_logs(&Default::default())
            .await
            .unwrap();
        if spend > 0.0 && logged >= served + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spend from the outage not written: {info}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uncached_keys_are_let_through_when_the_operator_allows_it() {
    let config = format!("{CONFIG}general_settings:\n  allow_requests_on_db_unavailable: true\n");
    let Some(gw) = TestGateway::start_switchable(Backend::Postgres, &config).await else {
        return;
    };
    let unseen = key(&gw).await;
    gw.database_up(false).await;
    for _ in 0..3 {
        let (status, kind, _) = chat(&gw, &unseen).await;
        assert_eq!(status, 200, "{kind}");
    }
    // An unknown key is let through as well (LiteLLM's fallback identity): the operator
    // chose availability over verification.
    let (status, _, _) = chat(&gw, "sk-never-issued-000000").await;
    assert_eq!(status, 200);
    gw.database_up(true).await;
    let back = Instant::now();
    loop {
        let (status, kind, _) = chat(&gw, "sk-never-issued-000000").await;
        if status == 401 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(10), "{status} {kind}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    gw.stop().await;
}
