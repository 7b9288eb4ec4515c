//! The two budget admission rules (`general_settings.budget_admission`): LiteLLM's default,
//! which admits while any budget remains, and `strict`, which admits only what fits even
//! when the provider counts more prompt tokens than Bursar does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, MockBehaviour, MockUpstream, TestGateway, both_backends};
use futures_util::future::join_all;
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    by_default_a_request_is_admitted_while_any_budget_remains,
    concurrent_requests_cannot_all_pass_under_the_default_rule,
    strict_refuses_what_may_not_fit,
    strict_holds_when_the_provider_counts_more_prompt_tokens,
);

/// Bursar counts `hi` as 8 prompt tokens; the mock reports `prompt_tokens` of them. The
/// price is mostly the prompt's, so a provider counting more prompt tokens matters.
const IN: f64 = 0.000_001;
const OUT: f64 = 0.000_000_01;

async fn start(
    backend: Backend,
    prompt_tokens: u64,
    rule: Option<&str>,
) -> Option<(TestGateway, MockUpstream)> {
    let mock = MockUpstream::with(MockBehaviour {
        prompt_tokens,
        completion_tokens: 10,
        ..MockBehaviour::default()
    })
    .await;
    let base = mock.base_url();
    let general = rule.map_or_else(String::new, |r| {
        format!("general_settings:\n  budget_admission: {r}\n")
    });
    let config = format!(
        "model_list:\n  - model_name: priced\n    litellm_params:\n      model: openai/priced-model\n      api_base: {base}\n      input_cost_per_token: {IN}\n      output_cost_per_token: {OUT}\n{general}"
    );
    let gw = TestGateway::start(backend, &config).await?;
    Some((gw, mock))
}

fn chat(max_tokens: Option<u64>) -> Value {
    let mut body = json!({"model": "priced", "messages": [{"role": "user", "content": "hi"}]});
    if let Some(m) = max_tokens {
        body["max_tokens"] = json!(m);
    }
    body
}

async fn key(gw: &TestGateway, max_budget: f64) -> String {
    let response = gw
        .post_json("/key/generate", &json!({"max_budget": max_budget}))
        .await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn call(gw: &TestGateway, key: &str, body: &Value) -> (u16, Value) {
    gw.send_as(
        key,
        reqwest::Method::POST,
        "/v1/chat/completions",
        Some(body),
    )
    .await
}

/// The key's recorded spend once the ledger holds `expected` of it.
async fn settled_spend(gw: &TestGateway, key: &str, expected: f64) -> f64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let info: Value = gw
            .get(&format!("/key/info?key={key}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let spend = info["info"]["spend"].as_f64().unwrap();
        if (spend - expected).abs() < 1e-12 || std::time::Instant::now() > deadline {
            return spend;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn refused_for_budget((status, body): &(u16, Value)) {
    assert_eq!(*status, 422, "{body}");
    assert_eq!(body["error"]["type"], "budget_exceeded", "{body}");
}

async fn by_default_a_request_is_admitted_while_any_budget_remains(backend: Backend) {
    let Some((gw, _mock)) = start(backend, 8, None).await else {
        return;
    };
    // A budget smaller than one call's estimate (8 × IN + 10 × OUT): LiteLLM's clients with
    // small test budgets get their first call through.
    let cost = 8.0 * IN + 10.0 * OUT;
    let k = key(&gw, cost / 2.0).await;
    let first = call(&gw, &k, &chat(Some(10))).await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert!((settled_spend(&gw, &k, cost).await - cost).abs() < 1e-12);
    // Spend has reached the budget: from now on the key is refused.
    refused_for_budget(&call(&gw, &k, &chat(Some(10))).await);
}

async fn concurrent_requests_cannot_all_pass_under_the_default_rule(backend: Backend) {
    let Some((gw, _mock)) = start(backend, 8, None).await else {
        return;
    };
    let cost = 8.0 * IN + 10.0 * OUT;
    // Room for 3.5 calls: the fourth holds the half that remains, the rest find none.
    let k = key(&gw, 3.5 * cost).await;
    let body = chat(Some(10));
    let answers = join_all((0..40).map(|_| call(&gw, &k, &body))).await;
    let admitted = answers.iter().filter(|a| a.0 == 200).count();
    for refused in answers.iter().filter(|a| a.0 != 200) {
        refused_for_budget(refused);
    }
    assert!((1..=4).contains(&admitted), "admitted {admitted}");
    let spent = settled_spend(&gw, &k, admitted as f64 * cost).await;
    // At most the one crossing request goes past the budget, by less than its own cost.
    assert!(spent < 3.5 * cost + cost, "spent {spent}");
}

async fn strict_refuses_what_may_not_fit(backend: Backend) {
    let Some((gw, mock)) = start(backend, 8, Some("strict")).await else {
        return;
    };
    let cost = 8.0 * IN + 10.0 * OUT;
    let k = key(&gw, cost / 2.0).await;
    refused_for_budget(&call(&gw, &k, &chat(Some(10))).await);
    assert_eq!(mock.calls(), 0);
    // Without max_tokens the worst case is made known: the request is capped at the
    // default output estimate it was admitted for.
    let roomy = key(&gw, 1.0).await;
    let (status, body) = call(&gw, &roomy, &chat(None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mock.last_body().unwrap()["max_tokens"], 256);
}

/// The mock reports 9 prompt tokens for a message Bursar counts as 8. Strict admission must
/// still keep spend within the budget, calling one by one and all at once.
async fn strict_holds_when_the_provider_counts_more_prompt_tokens(backend: Backend) {
    let Some((gw, _mock)) = start(backend, 9, Some("strict")).await else {
        return;
    };
    let actual = 9.0 * IN + 10.0 * OUT;
    let budget = 50.5 * actual;
    let body = chat(Some(10));

    let one_by_one = key(&gw, budget).await;
    let mut admitted = 0;
    for _ in 0..60 {
        match call(&gw, &one_by_one, &body).await {
            (200, _) => admitted += 1,
            refused => {
                refused_for_budget(&refused);
                break;
            }
        }
    }
    let spent = settled_spend(&gw, &one_by_one, admitted as f64 * actual).await;
    assert!(
        spent <= budget + 1e-12,
        "{admitted} admitted, spent {spent} > {budget}"
    );
    assert!(
        admitted >= 35,
        "strict admission is not needlessly tight: {admitted}"
    );

    let at_once = key(&gw, budget).await;
    let answers = join_all((0..120).map(|_| call(&gw, &at_once, &body))).await;
    let admitted = answers.iter().filter(|a| a.0 == 200).count();
    let spent = settled_spend(&gw, &at_once, admitted as f64 * actual).await;
    assert!(
        spent <= budget + 1e-12,
        "{admitted} admitted, spent {spent} > {budget}"
    );
}
