//! What a connection may hold: slow and silent clients are disconnected, the number of open
//! connections is capped with a clear refusal, a stalled body is a 408, and shutdown ends the
//! streams still open at its drain deadline with an error frame, charging them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_store::SpendLogQuery;
use bursar_testkit::{Backend, MockBehaviour, MockUpstream, TestGateway, both_backends};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

both_backends!(
    slow_and_silent_clients_are_disconnected_while_others_are_served,
    connections_over_the_cap_get_a_503_and_the_server_recovers,
    a_stalled_body_is_a_408,
    shutdown_ends_streams_open_at_the_drain_deadline_and_charges_them,
);

const DEMO: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n";

fn addr(gw: &TestGateway) -> String {
    gw.url.trim_start_matches("http://").to_string()
}

/// Whether the server closed `stream` within `within` (reads end or fail).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    matches!(
        tokio::time::timeout(within, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await,
        Ok(())
    )
}

async fn chat_ok(gw: &TestGateway) {
    let response = gw
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
}

async fn slow_and_silent_clients_are_disconnected_while_others_are_served(backend: Backend) {
    let config = format!("{DEMO}general_settings:\n  request_header_timeout: 1\n");
    let Some(gw) = TestGateway::start(backend, &config).await else {
        return;
    };
    let started = Instant::now();
    let mut silent = Vec::new();
    let mut trickling = Vec::new();
    for _ in 0..100 {
        silent.push(TcpStream::connect(addr(&gw)).await.unwrap());
        trickling.push(TcpStream::connect(addr(&gw)).await.unwrap());
    }
    // Slowloris: a header byte every 200 ms, never the blank line.
    let trickle = tokio::spawn(async move {
        let mut cut = 0;
        for i in 0..15 {
            for s in &mut trickling {
                let byte: &[u8] = if i == 0 { b"GET / HTTP/1.1\r\n" } else { b"X" };
                if s.write_all(byte).await.is_err() {
                    cut += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (trickling, cut)
    });
    // Others are served meanwhile.
    for _ in 0..5 {
        chat_ok(&gw).await;
    }
    for s in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(3)).await,
            "a silent connection stayed open"
        );
    }
    let (mut trickling, _) = trickle.await.unwrap();
    for s in &mut trickling {
        assert!(
            closed_within(s, Duration::from_millis(500)).await,
            "a slowloris connection stayed open"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    chat_ok(&gw).await;
    gw.stop().await;
}

async fn connections_over_the_cap_get_a_503_and_the_server_recovers(backend: Backend) {
    let config =
        format!("{DEMO}general_settings:\n  max_connections: 20\n  request_header_timeout: 30\n");
    let Some(gw) = TestGateway::start(backend, &config).await else {
        return;
    };
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(addr(&gw)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The next client gets an answer, not a timeout.
    let mut extra = TcpStream::connect(addr(&gw)).await.unwrap();
    extra
        .write_all(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), extra.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "503", "{body}");
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    chat_ok(&gw).await;
    let metrics = gw
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(bursar_testkit::metric_value(&metrics, "bursar_connections_refused_total") >= 1);
    gw.stop().await;
}

async fn a_stalled_body_is_a_408(backend: Backend) {
    let config = format!("{DEMO}general_settings:\n  request_body_timeout: 1\n");
    let Some(gw) = TestGateway::start(backend, &config).await else {
        return;
    };
    let mut s = TcpStream::connect(addr(&gw)).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"model\"",
        gw.master_key
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"408\""), "{answer}");
    gw.stop().await;
}

async fn shutdown_ends_streams_open_at_the_drain_deadline_and_charges_them(backend: Backend) {
    let mock = MockUpstream::with(MockBehaviour {
        chunk_delay: Duration::from_millis(500),
        stream_chunks: 60,
        ..MockBehaviour::default()
    })
    .await;
    let config = format!(
        "model_list:\n  - model_name: slow\n    litellm_params:\n      model: openai/slow\n      api_base: {}\n      input_cost_per_token: 0.000001\n      output_cost_per_token: 0.000001\ngeneral_settings:\n  graceful_shutdown_timeout: 1\n",
        mock.base_url()
    );
    let Some(mut gw) = TestGateway::start(backend, &config).await else {
        return;
    };
    let key: Value = gw
        .post_json("/key/generate", &json!({"max_budget": 10}))
        .await
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    let response = gw
        .post_json_as(
            &key,
            "/v1/chat/completions",
            &json!({"model": "slow", "stream": true, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let reader = tokio::spawn(async move { response.text().await.unwrap_or_default() });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stopping = Instant::now();
    gw.stop_server().await;
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "shutdown waited {took:?} for a 30 s stream"
    );
    let text = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap();
    assert!(text.contains("part0"), "{text}");
    assert!(text.contains("shutting down"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // Logged as a failure and charged what it held: the gateway cannot know what the
    // provider generated after it stopped reading.
    let logs = gw
        .store
        .spend()
        .logs(&SpendLogQuery {
            limit: 10,
            ..SpendLogQuery::default()
        })
        .await
        .unwrap();
    let chat: Vec<_> = logs.iter().filter(|l| l.model_group == "slow").collect();
    assert_eq!(chat.len(), 1, "{logs:?}");
    assert_eq!(chat[0].status, "failure");
    assert!(chat[0].spend > bursar_core::NanoUsd::ZERO, "{logs:?}");
    gw.stop().await;
}
