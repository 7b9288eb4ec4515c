//! Black-box tests of admission control: model access, budgets that hold under concurrency,
//! rate limits, parallel limits and budget resets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, MockBehaviour, MockUpstream, TestGateway, both_backends};
use futures_util::StreamExt;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    key_budget_is_never_overspent_by_500_concurrent_requests,
    team_budget_shared_by_five_keys_holds,
    org_budget_shared_by_two_teams_holds,
    rpm_admits_exactly_the_limit,
    max_parallel_requests_caps_upstream_concurrency,
    tpm_counts_estimated_then_real_tokens,
    budget_resets_after_its_duration,
    failed_and_abandoned_requests_give_their_reservation_back,
    streamed_usage_is_settled,
    model_access_follows_key_team_user_and_org_lists,
    blocked_organization_is_refused,
    spend_set_by_an_admin_is_taken_at_once,
);

/// 8 prompt tokens × 1e-7 + 10 completion tokens × 1e-6 (what the mock reports, and what
/// the gateway estimates for `hi` with `max_tokens: 10`).
const CALL_COST: f64 = 1.08e-5;

async fn start(backend: Backend, behaviour: MockBehaviour) -> Option<(TestGateway, MockUpstream)> {
    let mock = MockUpstream::with(MockBehaviour {
        prompt_tokens: 8,
        completion_tokens: 10,
        ..behaviour
    })
    .await;
    let base = mock.base_url();
    let config = format!(
        r#"
model_list:
  - model_name: priced
    litellm_params:
      model: openai/priced-model
      api_base: {base}
      input_cost_per_token: 0.0000001
      output_cost_per_token: 0.000001
    model_info:
      access_groups: ["beta"]
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: {base}
    model_info:
      access_groups: ["beta"]
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {base}
  - model_name: llama
    litellm_params:
      model: hosted_vllm/llama-3
      api_base: {base}
"#
    );
    let gw = TestGateway::start(backend, &config).await?;
    Some((gw, mock))
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10})
}

async fn post(gw: &TestGateway, path: &str, body: Value) -> Value {
    let (status, out) = gw.send(Method::POST, path, Some(&body)).await;
    assert_eq!(status, 200, "{path} {body} → {out}");
    out
}

async fn new_key(gw: &TestGateway, body: Value) -> String {
    post(gw, "/key/generate", body).await["key"]
        .as_str()
        .unwrap()
        .to_string()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(gw: &TestGateway, key: &str, body: &Value) -> Answer {
    let response = gw
        .http
        .post(gw.endpoint("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.json().await.unwrap_or(Value::Null),
    }
}

/// `n` requests at once, spread over `keys`.
async fn burst(gw: &TestGateway, keys: &[String], n: usize, body: &Value) -> Vec<Answer> {
    join_all((0..n).map(|i| call(gw, &keys[i % keys.len()], body))).await
}

/// The figure after `Current cost: ` in a budget error.
fn current_cost(message: &str) -> f64 {
    let rest = message.split("Current cost: ").nth(1).unwrap();
    rest.split(',').next().unwrap().trim().parse().unwrap()
}

/// Runs 500 concurrent requests over `keys` sharing a budget of 50 calls and checks the
/// budget held: at least 45 admitted, spend never above the budget, the rest refused
/// with the budget error naming `entity`.
async fn assert_budget_holds(gw: &TestGateway, keys: &[String], entity: &str) {
    let budget = 50.0 * CALL_COST;
    let answers = burst(gw, keys, 500, &chat("priced")).await;
    let admitted = answers.iter().filter(|a| a.status == 200).count();
    for refused in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert_eq!(refused.body["error"]["type"], "budget_exceeded");
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(entity), "{message}");
    }
    assert!((45..=50).contains(&admitted), "admitted {admitted}");
    let spent = admitted as f64 * CALL_COST;
    assert!(spent <= budget + 1e-12, "spent {spent} > {budget}");
    // Once everything settled, the budget error reports exactly what was spent.
    let after = call(gw, &keys[0], &chat("priced")).await;
    assert_eq!(after.status, 422, "{}", after.body);
    let reported = current_cost(after.body["error"]["message"].as_str().unwrap());
    assert!(
        (reported - spent).abs() < 1e-12,
        "reported {reported}, spent {spent}"
    );
}

async fn key_budget_is_never_overspent_by_500_concurrent_requests(backend: Backend) {
    let Some((gw, _mock)) = start(
        backend,
        MockBehaviour {
            latency: Duration::from_millis(20),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let key = new_key(
        &gw,
        json!({"key_alias": "shared", "max_budget": 50.0 * CALL_COST}),
    )
    .await;
    assert_budget_holds(&gw, &[key], "Key=shared").await;
}

async fn team_budget_shared_by_five_keys_holds(backend: Backend) {
    let Some((gw, _mock)) = start(
        backend,
        MockBehaviour {
            latency: Duration::from_millis(20),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    post(
        &gw,
        "/team/new",
        json!({"team_id": "tb", "max_budget": 50.0 * CALL_COST}),
    )
    .await;
    let mut keys = Vec::new();
    for _ in 0..5 {
        keys.push(new_key(&gw, json!({"team_id": "tb"})).await);
    }
    assert_budget_holds(&gw, &keys, "Team=tb").await;
}

async fn org_budget_shared_by_two_teams_holds(backend: Backend) {
    let Some((gw, _mock)) = start(
        backend,
        MockBehaviour {
            latency: Duration::from_millis(20),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let org = post(
        &gw,
        "/organization/new",
        json!({"organization_alias": "acme", "max_budget": 50.0 * CALL_COST}),
    )
    .await;
    let org_id = org["organization_id"].as_str().unwrap().to_string();
    let mut keys = Vec::new();
    for team in ["ta", "tb"] {
        post(
            &gw,
            "/team/new",
            json!({"team_id": team, "organization_id": org_id}),
        )
        .await;
        keys.push(new_key(&gw, json!({"team_id": team})).await);
    }
    assert_budget_holds(&gw, &keys, &format!("Organization={org_id}")).await;
}

async fn rpm_admits_exactly_the_limit(backend: Backend) {
    let Some((gw, _mock)) = start(backend, MockBehaviour::default()).await else {
        return;
    };
    let key = new_key(&gw, json!({"key_alias": "rpm", "rpm_limit": 100})).await;
    let answers = burst(&gw, &[key], 300, &chat("gpt-4o-mini")).await;
    let ok: Vec<&Answer> = answers.iter().filter(|a| a.status == 200).collect();
    assert_eq!(ok.len(), 100);
    for a in &ok {
        assert_eq!(a.headers["x-ratelimit-limit-requests"], "100");
        assert_eq!(a.headers["x-ratelimit-api_key-limit-requests"], "100");
        assert!(a.headers.contains_key("x-ratelimit-remaining-requests"));
    }
    let remaining: std::collections::BTreeSet<u64> = ok
        .iter()
        .map(|a| {
            a.headers["x-ratelimit-remaining-requests"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(
        remaining.len(),
        100,
        "each admitted request saw its own count"
    );
    for a in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(a.status, 429, "{}", a.body);
        assert_eq!(a.body["error"]["type"], "rate_limit_error");
        let message = a.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("Rate limit exceeded for api_key: rpm. Limit type: requests. Current limit: 100, Remaining: 0."), "{message}");
        let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry));
    }
}

async fn max_parallel_requests_caps_upstream_concurrency(backend: Backend) {
    let Some((gw, mock)) = start(
        backend,
        MockBehaviour {
            latency: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let key = new_key(&gw, json!({"max_parallel_requests": 5})).await;
    let answers = burst(&gw, std::slice::from_ref(&key), 40, &chat("gpt-4o-mini")).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert!(ok >= 5, "admitted {ok}");
    assert!(mock.peak_in_flight() <= 5, "peak {}", mock.peak_in_flight());
    assert_eq!(mock.peak_in_flight(), 5.min(ok));
    for a in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(a.status, 429);
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Limit type: max_parallel_requests")
        );
    }
    // Every slot came back.
    let again = burst(&gw, &[key], 5, &chat("gpt-4o-mini")).await;
    assert!(again.iter().all(|a| a.status == 200));
}

async fn tpm_counts_estimated_then_real_tokens(backend: Backend) {
    let Some((gw, _mock)) = start(backend, MockBehaviour::default()).await else {
        return;
    };
    // 8 prompt + 10 max_tokens = 18 per request.
    let key = new_key(&gw, json!({"tpm_limit": 30})).await;
    let first = call(&gw, &key, &chat("gpt-4o-mini")).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.headers["x-ratelimit-remaining-tokens"], "12");
    let second = call(&gw, &key, &chat("gpt-4o-mini")).await;
    assert_eq!(second.status, 429, "{}", second.body);
    assert!(
        second.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Limit type: tokens")
    );
}

async fn budget_resets_after_its_duration(backend: Backend) {
    let Some((gw, _mock)) = start(backend, MockBehaviour::default()).await else {
        return;
    };
    let spends = new_key(
        &gw,
        json!({"max_budget": CALL_COST, "budget_duration": "2s"}),
    )
    .await;
    let over = new_key(
        &gw,
        json!({"max_budget": 1.0, "spend": 1.0, "budget_duration": "2s"}),
    )
    .await;
    assert_eq!(call(&gw, &spends, &chat("priced")).await.status, 200);
    assert_eq!(call(&gw, &spends, &chat("priced")).await.status, 422);
    assert_eq!(call(&gw, &over, &chat("priced")).await.status, 422);
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    assert_eq!(call(&gw, &spends, &chat("priced")).await.status, 200);
    assert_eq!(call(&gw, &over, &chat("priced")).await.status, 200);
    assert_eq!(call(&gw, &spends, &chat("priced")).await.status, 422);
}

async fn failed_and_abandoned_requests_give_their_reservation_back(backend: Backend) {
    let Some((gw, mock)) = start(
        backend,
        MockBehaviour {
            error_status: Some(500),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    // Room for two calls: the failed one must not use any of it.
    let key = new_key(
        &gw,
        json!({"max_budget": 2.0 * CALL_COST, "max_parallel_requests": 1}),
    )
    .await;
    assert_eq!(call(&gw, &key, &chat("priced")).await.status, 500);
    mock.update(|b| {
        b.error_status = None;
        b.chunk_delay = Duration::from_millis(300);
        b.stream_chunks = 5;
    });
    // A client that leaves mid-stream: its slot and budget hold come back.
    let mut body = chat("priced");
    body["stream"] = json!(true);
    let response = gw
        .http
        .post(gw.endpoint("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let _ = stream.next().await;
    assert_eq!(
        call(&gw, &key, &chat("priced")).await.status,
        429,
        "the stream holds the slot"
    );
    drop(stream);
    let mut admitted = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let a = call(&gw, &key, &chat("priced")).await;
        if a.status == 200 {
            admitted = true;
            break;
        }
    }
    assert!(admitted, "the abandoned stream's slot was never freed");
    // The abandoned stream reported no usage: it was charged its reservation (the worst
    // case), so the budget of two calls is now used up.
    let a = call(&gw, &key, &chat("priced")).await;
    assert_eq!(a.status, 422, "{}", a.body);
    let reported = current_cost(a.body["error"]["message"].as_str().unwrap());
    assert!((reported - 2.0 * CALL_COST).abs() < 1e-12, "{reported}");
}

async fn streamed_usage_is_settled(backend: Backend) {
    let Some((gw, _mock)) = start(backend, MockBehaviour::default()).await else {
        return;
    };
    let key = new_key(&gw, json!({"max_budget": 2.0 * CALL_COST})).await;
    let mut body = chat("priced");
    body["stream"] = json!(true);
    for _ in 0..2 {
        let response = gw
            .http
            .post(gw.endpoint("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
    }
    let mut refused = None;
    for _ in 0..20 {
        let a = call(&gw, &key, &chat("priced")).await;
        if a.status == 422 && current_cost(a.body["error"]["message"].as_str().unwrap()) > 0.0 {
            refused = Some(a);
            break;
        }
        assert_ne!(a.status, 200, "a third call fitted a budget of two");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = refused.expect("settled spend shows in the budget error");
    let reported = current_cost(a.body["error"]["message"].as_str().unwrap());
    assert!((reported - 2.0 * CALL_COST).abs() < 1e-12, "{reported}");
}

async fn status_of(gw: &TestGateway, key: &str, model: &str) -> (u16, Value) {
    let a = call(gw, key, &chat(model)).await;
    (a.status, a.body)
}

async fn expect_denied(gw: &TestGateway, key: &str, model: &str, kind: &str) {
    let (status, body) = status_of(gw, key, model).await;
    assert_eq!(status, 403, "{model}: {body}");
    assert_eq!(body["error"]["type"], kind, "{model}: {body}");
    assert_eq!(body["error"]["param"], "model");
    assert_eq!(
        body["error"]["message"],
        format!(
            "The requested model '{model}' is not available for this API key, or the model name is invalid. Check the models available to you and try again."
        )
    );
}

async fn listed(gw: &TestGateway, key: &str) -> Vec<String> {
    let (status, body) = gw.send_as(key, Method::GET, "/v1/models", None).await;
    assert_eq!(status, 200);
    let mut names: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn model_access_follows_key_team_user_and_org_lists(backend: Backend) {
    let Some((gw, mock)) = start(backend, MockBehaviour::default()).await else {
        return;
    };
    let ok = |s: (u16, Value)| assert_eq!(s.0, 200, "{}", s.1);
    // Explicit list.
    let k = new_key(&gw, json!({"models": ["gpt-4o"]})).await;
    ok(status_of(&gw, &k, "gpt-4o").await);
    expect_denied(&gw, &k, "llama", "key_model_access_denied").await;
    assert_eq!(listed(&gw, &k).await, ["gpt-4o"]);
    // Empty list: everything; all-proxy-models and * likewise.
    for models in [json!([]), json!(["all-proxy-models"]), json!(["*"])] {
        let k = new_key(&gw, json!({"models": models})).await;
        ok(status_of(&gw, &k, "llama").await);
        assert_eq!(
            listed(&gw, &k).await,
            ["gpt-4o", "gpt-4o-mini", "llama", "priced"]
        );
    }
    // Access group.
    let k = new_key(&gw, json!({"models": ["beta"]})).await;
    ok(status_of(&gw, &k, "priced").await);
    ok(status_of(&gw, &k, "gpt-4o").await);
    expect_denied(&gw, &k, "gpt-4o-mini", "key_model_access_denied").await;
    assert_eq!(listed(&gw, &k).await, ["gpt-4o", "priced"]);
    // Wildcards: on the public name, and on the deployment's provider-prefixed model.
    let k = new_key(&gw, json!({"models": ["gpt-4o*"]})).await;
    ok(status_of(&gw, &k, "gpt-4o-mini").await);
    expect_denied(&gw, &k, "llama", "key_model_access_denied").await;
    let k = new_key(&gw, json!({"models": ["hosted_vllm/*"]})).await;
    ok(status_of(&gw, &k, "llama").await);
    expect_denied(&gw, &k, "gpt-4o", "key_model_access_denied").await;
    assert_eq!(listed(&gw, &k).await, ["llama"]);
    // Key alias: the alias is callable and listed, the upstream sees the real model.
    let k = new_key(
        &gw,
        json!({"models": ["gpt-4o-mini"], "aliases": {"fast": "gpt-4o-mini"}}),
    )
    .await;
    ok(status_of(&gw, &k, "fast").await);
    assert_eq!(mock.last_body().unwrap()["model"], "gpt-4o-mini");
    assert_eq!(listed(&gw, &k).await, ["fast", "gpt-4o-mini"]);

    // Team lists: an empty key list and all-team-models both defer to the team.
    post(&gw, "/team/new", json!({"team_id": "t", "models": ["gpt-4o-mini"], "model_aliases": {"cheap": "gpt-4o-mini"}})).await;
    for models in [json!([]), json!(["all-team-models"])] {
        let k = new_key(&gw, json!({"team_id": "t", "models": models})).await;
        ok(status_of(&gw, &k, "gpt-4o-mini").await);
        ok(status_of(&gw, &k, "cheap").await);
        expect_denied(&gw, &k, "gpt-4o", "team_model_access_denied").await;
        assert_eq!(listed(&gw, &k).await, ["cheap", "gpt-4o-mini"]);
    }

    // User lists decide for personal keys only.
    post(
        &gw,
        "/user/new",
        json!({"user_id": "u1", "models": ["llama"]}),
    )
    .await;
    let k = new_key(&gw, json!({"user_id": "u1"})).await;
    ok(status_of(&gw, &k, "llama").await);
    expect_denied(&gw, &k, "gpt-4o", "user_model_access_denied").await;
    post(
        &gw,
        "/user/new",
        json!({"user_id": "u2", "models": ["no-default-models"]}),
    )
    .await;
    let k = new_key(&gw, json!({"user_id": "u2"})).await;
    expect_denied(&gw, &k, "gpt-4o", "key_model_access_denied").await;
    assert!(listed(&gw, &k).await.is_empty());
    post(
        &gw,
        "/team/member_add",
        json!({"team_id": "t", "member": {"role": "user", "user_id": "u2"}}),
    )
    .await;
    let k = new_key(&gw, json!({"user_id": "u2", "team_id": "t"})).await;
    ok(status_of(&gw, &k, "gpt-4o-mini").await);

    // Organization list.
    let org = post(
        &gw,
        "/organization/new",
        json!({"organization_alias": "o", "models": ["gpt-4o-mini", "llama"]}),
    )
    .await;
    let org_id = org["organization_id"].as_str().unwrap();
    post(
        &gw,
        "/team/new",
        json!({"team_id": "ot", "organization_id": org_id}),
    )
    .await;
    let k = new_key(&gw, json!({"team_id": "ot"})).await;
    ok(status_of(&gw, &k, "llama").await);
    expect_denied(&gw, &k, "gpt-4o", "org_model_access_denied").await;
    assert_eq!(listed(&gw, &k).await, ["gpt-4o-mini", "llama"]);
}

async fn blocked_organization_is_refused(backend: Backend) {
    let Some((gw, _mock)) = start(backend, MockBehaviour::default()).await else {
        return;
    };
    let org = post(&gw, "/organization/new", json!({"organization_alias": "o"})).await;
    let org_id = org["organization_id"].as_str().unwrap().to_string();
    post(
        &gw,
        "/team/new",
        json!({"team_id": "t", "organization_id": org_id}),
    )
    .await;
    let k = new_key(&gw, json!({"team_id": "t"})).await;
    assert_eq!(call(&gw, &k, &chat("llama")).await.status, 200);
    let (status, body) = gw
        .send(
            Method::PATCH,
            "/organization/update",
            Some(&json!({"organization_id": org_id, "blocked": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let refused = call(&gw, &k, &chat("llama")).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is blocked")
    );
}

async fn spend_set_by_an_admin_is_taken_at_once(backend: Backend) {
    let Some((gw, _mock)) = start(backend, MockBehaviour::default()).await else {
        return;
    };
    let (status, body) = gw
        .send(
            Method::POST,
            "/key/generate",
            Some(&json!({"max_budget": CALL_COST})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let key = body["key"].as_str().unwrap().to_string();
    assert_eq!(call(&gw, &key, &chat("priced")).await.status, 200);
    assert_eq!(call(&gw, &key, &chat("priced")).await.status, 422);
    // An unrelated change keeps what was spent.
    post(
        &gw,
        "/key/update",
        json!({"key": key, "metadata": {"x": 1}}),
    )
    .await;
    assert_eq!(call(&gw, &key, &chat("priced")).await.status, 422);
    post(&gw, "/key/update", json!({"key": key, "spend": 0})).await;
    assert_eq!(call(&gw, &key, &chat("priced")).await.status, 200);
}
