//! API surfaces beyond `/v1/chat/completions`: Azure OpenAI's deployment routes, with the
//! same key checks, model access, budgets and spend as every other data-plane call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, MockUpstream, TestGateway, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(azure_style_routes_serve_azure_clients_with_the_same_governance);

async fn azure_style_routes_serve_azure_clients_with_the_same_governance(backend: Backend) {
    let mock = MockUpstream::start().await;
    let config = format!(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{base}', input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}\n  - model_name: embed\n    litellm_params: {{model: openai/text-embedding-3-small, api_base: '{base}'}}\n    model_info: {{mode: embedding}}\ngeneral_settings:\n  spend_flush_interval_ms: 50\n",
        base = mock.base_url()
    );
    let Some(gw) = TestGateway::start(backend, &config).await else {
        return;
    };
    let (_, key) = gw
        .send(
            Method::POST,
            "/key/generate",
            Some(&json!({"models": ["gpt-4o-mini"], "max_budget": 10.0})),
        )
        .await;
    let key = key["key"].as_str().unwrap().to_string();
    // AzureOpenAI clients send only `api-key`.
    let http = reqwest::Client::new();
    let azure = |path: &str| http.post(gw.endpoint(path)).header("api-key", &key);

    // The deployment in the path names the model; the body need not.
    let response = azure("/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21")
        .json(&json!({"messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-litellm-model-group"], "gpt-4o-mini");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "mock answer");
    assert_eq!(mock.last_body().unwrap()["model"], "gpt-4o-mini");

    // The path wins over the body, and model access applies to it.
    let response = azure("/openai/deployments/embed/embeddings")
        .json(&json!({"model": "gpt-4o-mini", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "{}", response.text().await.unwrap());

    // /engines/{model}/… is the same route; streams too.
    let body = azure("/engines/gpt-4o-mini/chat/completions")
        .json(&json!({"stream": true, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");

    // Charged to the key like any call.
    let logs = gw.spend_logs(2).await;
    let spent: f64 = logs
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["model_group"] == "gpt-4o-mini")
        .map(|l| l["spend"].as_f64().unwrap())
        .sum();
    assert!(spent > 0.0, "{logs}");
    let (_, info) = gw
        .send(Method::GET, &format!("/key/info?key={key}"), None)
        .await;
    assert!(info["info"]["spend"].as_f64().unwrap() > 0.0, "{info}");

    // Without a key: the usual 401.
    let response = http
        .post(gw.endpoint("/openai/deployments/gpt-4o-mini/chat/completions"))
        .json(&json!({"messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    gw.stop().await;
}
