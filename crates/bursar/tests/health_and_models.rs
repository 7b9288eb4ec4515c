//! Health probes and the model list.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, MockUpstream, TestGateway, both_backends};
use serde_json::{Value, json};

both_backends!(
    liveliness_and_readiness_are_public,
    health_reports_each_deployment_and_needs_an_admin,
    health_for_an_unknown_model_id_is_404,
    models_lists_public_names_in_config_order,
    key_with_model_list_sees_only_its_models,
);

async fn liveliness_and_readiness_are_public(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, "").await else {
        return;
    };
    for path in ["/health/liveliness", "/health/liveness"] {
        let response = gw.http.get(gw.endpoint(path)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap(), json!("I'm alive!"));
    }
    let readiness: Value = gw
        .http
        .get(gw.endpoint("/health/readiness"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(readiness["status"], "healthy");
    assert_eq!(readiness["db"], "connected");
    gw.stop().await;
}

async fn health_reports_each_deployment_and_needs_an_admin(backend: Backend) {
    let mock = MockUpstream::start().await;
    let closed = bursar_testkit::unreachable_base_url();
    let yaml = format!(
        "model_list:\n  - {{model_name: good, litellm_params: {{model: openai/g, api_base: '{}', api_key: sk-secret-upstream}}}}\n  - {{model_name: bad, litellm_params: {{model: openai/b, api_base: '{closed}'}}}}\n",
        mock.base_url()
    );
    let Some(gw) = TestGateway::start(backend, &yaml).await else {
        return;
    };
    let response = gw.get("/health").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("sk-secret-upstream"),
        "provider keys must never be echoed: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["healthy_count"], 1);
    assert_eq!(body["unhealthy_count"], 1);
    assert_eq!(body["healthy_endpoints"][0]["model_name"], "good");
    assert_eq!(body["unhealthy_endpoints"][0]["model_name"], "bad");
    assert!(body["unhealthy_endpoints"][0]["error"].is_string());
    let filtered: Value = gw
        .get("/health?model=good")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["healthy_count"], 1);
    assert_eq!(filtered["unhealthy_count"], 0);

    let key = gw.insert_key(|_| {}).await;
    let response = gw
        .http
        .get(gw.endpoint("/health"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    gw.stop().await;
}

async fn health_for_an_unknown_model_id_is_404(backend: Backend) {
    let Some(gw) = TestGateway::start(
        backend,
        "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n",
    )
    .await
    else {
        return;
    };
    let response = gw.get("/health?model_id=nope").send().await.unwrap();
    assert_eq!(response.status(), 404);
    gw.stop().await;
}

const TWO_MODELS: &str = "model_list:\n  - {model_name: zeta, litellm_params: {model: bursar/demo}}\n  - {model_name: alpha, litellm_params: {model: bursar/demo}}\n  - {model_name: zeta, litellm_params: {model: bursar/demo}}\n";

async fn models_lists_public_names_in_config_order(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, TWO_MODELS).await else {
        return;
    };
    for path in ["/v1/models", "/models"] {
        let body: Value = gw.get(path).send().await.unwrap().json().await.unwrap();
        assert_eq!(body["object"], "list");
        let ids: Vec<&str> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec!["zeta", "alpha"]);
        assert_eq!(body["data"][0]["object"], "model");
    }
    let one: Value = gw
        .get("/v1/models/alpha")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "alpha");
    assert_eq!(
        gw.get("/v1/models/missing").send().await.unwrap().status(),
        404
    );
    gw.stop().await;
}

async fn key_with_model_list_sees_only_its_models(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, TWO_MODELS).await else {
        return;
    };
    let key = gw.insert_key(|k| k.models = vec!["alpha".into()]).await;
    let body: Value = gw
        .http
        .get(gw.endpoint("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["alpha"]);
    gw.stop().await;
}
