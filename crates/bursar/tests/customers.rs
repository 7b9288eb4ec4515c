//! Black-box tests of customers (end users) and budget rows: the `/customer/*` and `/budget/*`
//! routes, end-user admission (budgets under concurrency, blocking, creation on first sight
//! with the default budget) and the job that resets stored spend when a period ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, MockBehaviour, MockUpstream, TestGateway, both_backends};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    customer_routes_follow_litellm,
    budget_routes_follow_litellm,
    end_user_budget_holds_under_500_concurrent_requests,
    blocked_end_user_is_refused_until_unblocked,
    unknown_end_users_are_created_once_with_the_default_budget,
    master_key_requests_are_held_to_end_user_budgets,
    stored_spend_resets_once_its_period_ends,
);

/// 8 prompt tokens × 1e-7 + 10 completion tokens × 1e-6 (see admission.rs).
const CALL_COST: f64 = 1.08e-5;

async fn start(backend: Backend, extra: &str) -> Option<(TestGateway, MockUpstream)> {
    let mock = MockUpstream::with(MockBehaviour {
        prompt_tokens: 8,
        completion_tokens: 10,
        latency: Duration::from_millis(20),
        ..Default::default()
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
  - model_name: free
    litellm_params:
      model: hosted_vllm/free-model
      api_base: {base}
      input_cost_per_token: 0
      output_cost_per_token: 0
{extra}
"#
    );
    let gw = TestGateway::start(backend, &config).await?;
    Some((gw, mock))
}

fn chat_for(model: &str, user: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10, "user": user})
}

async fn post(gw: &TestGateway, path: &str, body: Value) -> Value {
    let (status, out) = gw.send(Method::POST, path, Some(&body)).await;
    assert_eq!(status, 200, "{path} {body} → {out}");
    out
}

async fn get(gw: &TestGateway, path: &str) -> (u16, Value) {
    gw.send(Method::GET, path, None).await
}

async fn new_key(gw: &TestGateway, body: Value) -> String {
    post(gw, "/key/generate", body).await["key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn call(gw: &TestGateway, key: &str, body: &Value) -> (u16, Value) {
    gw.send_as(key, Method::POST, "/v1/chat/completions", Some(body))
        .await
}

async fn key_info(gw: &TestGateway, key: &str) -> Value {
    get(gw, &format!("/key/info?key={key}")).await.1["info"].clone()
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

async fn customer_routes_follow_litellm(backend: Backend) {
    let Some((gw, _mock)) = start(backend, "").await else {
        return;
    };
    let created = post(
        &gw,
        "/customer/new",
        json!({"user_id": "acme", "alias": "Acme", "max_budget": 10.0, "rpm_limit": 5,
               "allowed_model_region": "eu", "default_model": "priced", "metadata": {"tier": 1}}),
    )
    .await;
    assert_eq!(created["user_id"], "acme");
    assert_eq!(created["alias"], "Acme");
    assert_eq!(created["blocked"], false);
    assert_eq!(created["spend"], 0.0);
    assert_eq!(created["allowed_model_region"], "eu");
    assert_eq!(created["litellm_budget_table"]["max_budget"], 10.0);
    assert_eq!(created["litellm_budget_table"]["rpm_limit"], 5);
    assert_eq!(
        created["budget_id"],
        created["litellm_budget_table"]["budget_id"]
    );

    // Refusals, each with LiteLLM's status and message.
    let cases = [
        (
            json!({"user_id": "acme"}),
            400,
            "Customer already exists, passed user_id=acme. Please pass a new user_id.",
        ),
        (
            json!({"user_id": "x", "max_budget": 1.0, "budget_id": "b"}),
            422,
            "Set either 'max_budget' or 'budget_id', not both.",
        ),
        (json!({"alias": "no id"}), 422, "user_id is required"),
        (
            json!({"user_id": "x", "allowed_model_region": "mars"}),
            422,
            "allowed_model_region",
        ),
        (
            json!({"user_id": "x", "default_model": "nope"}),
            422,
            "Default Model not on proxy.",
        ),
        (json!({"user_id": "x", "max_budget": -1}), 400, "max_budget"),
        (
            json!({"user_id": "x", "max_budget": "lots"}),
            422,
            "max_budget",
        ),
        (
            json!({"user_id": "x", "budget_id": "ghost"}),
            404,
            "Budget ghost not found",
        ),
    ];
    for (body, status, text) in cases {
        let (got, out) = gw.send(Method::POST, "/customer/new", Some(&body)).await;
        assert_eq!(got, status, "{body} → {out}");
        assert!(message(&out).contains(text), "{body} → {out}");
    }
    let (status, _) = get(&gw, "/customer/info?end_user_id=x").await;
    assert_eq!(status, 404, "refused creations left nothing behind");

    // The legacy prefix answers too.
    post(&gw, "/end_user/new", json!({"user_id": "globex"})).await;
    let (status, info) = get(&gw, "/customer/info?end_user_id=acme").await;
    assert_eq!(status, 200);
    assert_eq!(info["litellm_budget_table"]["max_budget"], 10.0);
    let (status, missing) = get(&gw, "/end_user/info?end_user_id=nobody").await;
    assert_eq!(status, 404);
    assert_eq!(message(&missing), "End User Id=nobody does not exist in db");

    // Update: `blocked: false` and `max_budget: 0` are honoured (LiteLLM drops them).
    post(&gw, "/customer/block", json!({"user_ids": ["acme"]})).await;
    let updated = post(
        &gw,
        "/customer/update",
        json!({"user_id": "acme", "blocked": false, "max_budget": 0, "alias": "ACME"}),
    )
    .await;
    assert_eq!(updated["blocked"], false);
    assert_eq!(updated["alias"], "ACME");
    assert_eq!(updated["litellm_budget_table"]["max_budget"], 0.0);
    assert_eq!(
        updated["budget_id"], created["budget_id"],
        "same budget row"
    );
    let (status, out) = gw
        .send(
            Method::POST,
            "/customer/update",
            Some(&json!({"user_id": "nobody", "alias": "x"})),
        )
        .await;
    assert_eq!(status, 404, "{out}");

    let (status, list) = get(&gw, "/customer/list").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "globex"]);

    // Only proxy admins manage customers.
    let plain = new_key(&gw, json!({})).await;
    let (status, _) = gw
        .send_as(&plain, Method::GET, "/customer/list", None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = gw
        .send_as(
            &plain,
            Method::POST,
            "/customer/new",
            Some(&json!({"user_id": "sneaky"})),
        )
        .await;
    assert_eq!(status, 401);

    // Delete is all or nothing.
    let (status, out) = gw
        .send(
            Method::POST,
            "/customer/delete",
            Some(&json!({"user_ids": ["acme", "ghost", "phantom"]})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        message(&out),
        "End User Id(s)=ghost, phantom do not exist in db"
    );
    let deleted = post(
        &gw,
        "/customer/delete",
        json!({"user_ids": ["acme", "globex"]}),
    )
    .await;
    assert_eq!(deleted["deleted_customers"], 2);
    assert_eq!(
        deleted["message"],
        "Successfully deleted customers with ids: ['acme', 'globex']"
    );
    let (_, list) = get(&gw, "/customer/list").await;
    assert_eq!(list, json!([]));
    let (status, _) = gw
        .send(
            Method::POST,
            "/customer/block",
            Some(&json!({"user_ids": []})),
        )
        .await;
    assert_eq!(status, 400);
    gw.stop().await;
}

async fn budget_routes_follow_litellm(backend: Backend) {
    let Some((gw, _mock)) = start(backend, "").await else {
        return;
    };
    let created = post(
        &gw,
        "/budget/new",
        json!({"budget_id": "gold", "max_budget": 100.0, "soft_budget": 80.0,
               "rpm_limit": 10, "budget_duration": "30d",
               "model_max_budget": {"priced": {"max_budget": 5.0}}}),
    )
    .await;
    assert_eq!(created["budget_id"], "gold");
    assert_eq!(created["max_budget"], 100.0);
    assert_eq!(created["created_by"], "default_user_id");
    assert!(created["budget_reset_at"].is_string(), "{created}");
    let generated = post(&gw, "/budget/new", json!({"tpm_limit": 1000})).await;
    assert!(!generated["budget_id"].as_str().unwrap().is_empty());

    for (path, body, status, text) in [
        (
            "/budget/new",
            json!({"budget_id": "gold"}),
            400,
            "Budget id = gold already exists.",
        ),
        (
            "/budget/new",
            json!({"max_budget": 1.0, "soft_budget": 2.0}),
            400,
            "soft_budget",
        ),
        (
            "/budget/new",
            json!({"budget_duration": "fortnight"}),
            400,
            "budget_duration",
        ),
        (
            "/budget/update",
            json!({"max_budget": 1.0}),
            400,
            "budget_id is required",
        ),
        (
            "/budget/update",
            json!({"budget_id": "ghost"}),
            404,
            "Budget ghost not found",
        ),
        (
            "/budget/info",
            json!({"budgets": []}),
            400,
            "Specify list of budget id's to query. Passed in=[]",
        ),
        (
            "/budget/delete",
            json!({"id": "ghost"}),
            404,
            "Budget ghost not found",
        ),
    ] {
        let (got, out) = gw.send(Method::POST, path, Some(&body)).await;
        assert_eq!(got, status, "{path} {body} → {out}");
        assert!(message(&out).contains(text), "{path} {body} → {out}");
    }

    let updated = post(
        &gw,
        "/budget/update",
        json!({"budget_id": "gold", "rpm_limit": 20, "max_budget": 150.0}),
    )
    .await;
    assert_eq!(updated["rpm_limit"], 20);
    assert_eq!(updated["max_budget"], 150.0);
    assert_eq!(updated["soft_budget"], 80.0, "untouched");

    let info = post(&gw, "/budget/info", json!({"budgets": ["gold", "ghost"]})).await;
    assert_eq!(info.as_array().unwrap().len(), 1);
    assert_eq!(info[0]["rpm_limit"], 20);

    let (status, settings) = get(&gw, "/budget/settings?budget_id=gold").await;
    assert_eq!(status, 200);
    let fields: Vec<(&str, &Value)> = settings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["field_name"].as_str().unwrap(), &f["field_value"]))
        .collect();
    assert_eq!(
        fields.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [
            "max_budget",
            "soft_budget",
            "max_parallel_requests",
            "tpm_limit",
            "rpm_limit",
            "budget_duration"
        ]
    );
    assert_eq!(fields[0].1, &json!(150.0));
    assert_eq!(fields[5].1, &json!("30d"));

    let (status, list) = get(&gw, "/budget/list").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 2);

    // A customer on the budget keeps working after the budget is deleted, unlinked.
    post(
        &gw,
        "/customer/new",
        json!({"user_id": "c1", "budget_id": "gold"}),
    )
    .await;
    let deleted = post(&gw, "/budget/delete", json!({"id": "gold"})).await;
    assert_eq!(deleted["budget_id"], "gold");
    let (_, c1) = get(&gw, "/customer/info?end_user_id=c1").await;
    assert_eq!(c1["budget_id"], Value::Null);

    let plain = new_key(&gw, json!({})).await;
    let (status, _) = gw.send_as(&plain, Method::GET, "/budget/list", None).await;
    assert_eq!(status, 401);
    gw.stop().await;
}

async fn end_user_budget_holds_under_500_concurrent_requests(backend: Backend) {
    let Some((gw, mock)) = start(backend, "").await else {
        return;
    };
    post(
        &gw,
        "/customer/new",
        json!({"user_id": "cust", "max_budget": 50.0 * CALL_COST}),
    )
    .await;
    // Two unlimited keys: the end user's budget is what holds.
    let keys = [new_key(&gw, json!({})).await, new_key(&gw, json!({})).await];
    let body = chat_for("priced", "cust");
    let answers = join_all((0..500).map(|i| call(&gw, &keys[i % 2], &body))).await;
    let admitted = answers.iter().filter(|(s, _)| *s == 200).count();
    for (status, out) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 422, "{out}");
        assert_eq!(out["error"]["type"], "budget_exceeded");
        assert!(message(out).contains("End User=cust"), "{out}");
    }
    assert!((45..=50).contains(&admitted), "admitted {admitted}");
    assert_eq!(
        mock.calls(),
        admitted,
        "refused requests never reach upstream"
    );
    // Another end user on the same keys is not affected.
    let (status, out) = call(&gw, &keys[0], &chat_for("priced", "other")).await;
    assert_eq!(status, 200, "{out}");
    gw.stop().await;
}

async fn blocked_end_user_is_refused_until_unblocked(backend: Backend) {
    let Some((gw, _mock)) = start(backend, "").await else {
        return;
    };
    let key = new_key(&gw, json!({})).await;
    let blocked = post(&gw, "/customer/block", json!({"user_ids": ["troll"]})).await;
    assert_eq!(blocked["blocked_users"][0]["user_id"], "troll");
    assert_eq!(blocked["blocked_users"][0]["blocked"], true);

    let refused = |out: &Value| {
        assert_eq!(out["error"]["type"], "invalid_request_error", "{out}");
        assert_eq!(
            message(out),
            "User blocked from making LLM API Calls. User=troll"
        );
    };
    // Every way a request names its end user.
    let (status, out) = call(&gw, &key, &chat_for("free", "troll")).await;
    assert_eq!(status, 400);
    refused(&out);
    let body = json!({"model": "free", "messages": [{"role": "user", "content": "hi"}],
                      "litellm_metadata": {"user": "troll"}});
    let (status, out) = call(&gw, &key, &body).await;
    assert_eq!(status, 400);
    refused(&out);
    let response = gw
        .http
        .post(gw.endpoint("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("x-litellm-customer-id", "troll")
        .json(&json!({"model": "free", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(call(&gw, &key, &chat_for("free", "nice")).await.0, 200);

    // Unblock is persisted and takes effect at once.
    let unblocked = post(&gw, "/customer/unblock", json!({"user_ids": ["troll"]})).await;
    assert_eq!(unblocked["blocked_users"], json!([]));
    assert_eq!(unblocked["unblocked_users"][0]["blocked"], false);
    assert_eq!(call(&gw, &key, &chat_for("free", "troll")).await.0, 200);
    let (_, info) = get(&gw, "/customer/info?end_user_id=troll").await;
    assert_eq!(info["blocked"], false);

    // And through /customer/update, both ways.
    post(
        &gw,
        "/customer/update",
        json!({"user_id": "troll", "blocked": true}),
    )
    .await;
    assert_eq!(call(&gw, &key, &chat_for("free", "troll")).await.0, 400);
    post(
        &gw,
        "/customer/update",
        json!({"user_id": "troll", "blocked": false}),
    )
    .await;
    assert_eq!(call(&gw, &key, &chat_for("free", "troll")).await.0, 200);

    // A `user` that is not a string is a clear 400.
    let body = json!({"model": "free", "messages": [{"role": "user", "content": "hi"}], "user": 7});
    let (status, out) = call(&gw, &key, &body).await;
    assert_eq!(status, 400);
    assert_eq!(out["error"]["param"], "user");
    gw.stop().await;
}

async fn unknown_end_users_are_created_once_with_the_default_budget(backend: Backend) {
    let extra = format!(
        "litellm_settings:\n  max_end_user_budget: {}\n  max_end_user_budget_id: eu-default\n",
        2.0 * CALL_COST
    );
    let Some((gw, _mock)) = start(backend, &extra).await else {
        return;
    };
    post(
        &gw,
        "/budget/new",
        json!({"budget_id": "eu-default", "rpm_limit": 3}),
    )
    .await;
    let key = new_key(&gw, json!({})).await;

    // 20 concurrent first requests of a new end user: one row, on the default budget row,
    // whose rpm admits exactly 3 (the model is free, so no money is at stake).
    let body = chat_for("free", "newcomer");
    let answers = join_all((0..20).map(|_| call(&gw, &key, &body))).await;
    let admitted = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(admitted, 3);
    for (status, out) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 429, "{out}");
    }
    let (status, info) = get(&gw, "/customer/info?end_user_id=newcomer").await;
    assert_eq!(status, 200);
    assert_eq!(info["budget_id"], "eu-default");
    let (_, list) = get(&gw, "/customer/list").await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // A customer without a budget row is held to `max_end_user_budget`: two priced calls.
    post(&gw, "/customer/new", json!({"user_id": "solo"})).await;
    let body = chat_for("priced", "solo");
    assert_eq!(call(&gw, &key, &body).await.0, 200);
    assert_eq!(call(&gw, &key, &body).await.0, 200);
    let (status, out) = call(&gw, &key, &body).await;
    assert_eq!(status, 422, "{out}");
    assert!(message(&out).contains("End User=solo"), "{out}");

    // Changing the newcomer's budget gives it a row of its own; the default row is unchanged.
    let updated = post(
        &gw,
        "/customer/update",
        json!({"user_id": "newcomer", "max_budget": 5.0}),
    )
    .await;
    assert_ne!(updated["budget_id"], "eu-default");
    let info = post(&gw, "/budget/info", json!({"budgets": ["eu-default"]})).await;
    assert_eq!(info[0]["max_budget"], Value::Null);
    gw.stop().await;
}

async fn master_key_requests_are_held_to_end_user_budgets(backend: Backend) {
    let Some((gw, _mock)) = start(backend, "").await else {
        return;
    };
    post(
        &gw,
        "/customer/new",
        json!({"user_id": "metered", "max_budget": CALL_COST}),
    )
    .await;
    let body = chat_for("priced", "metered");
    let (status, _) = gw
        .send(Method::POST, "/v1/chat/completions", Some(&body))
        .await;
    assert_eq!(status, 200);
    let (status, out) = gw
        .send(Method::POST, "/v1/chat/completions", Some(&body))
        .await;
    assert_eq!(status, 422, "{out}");
    assert!(message(&out).contains("End User=metered"), "{out}");
    gw.stop().await;
}

async fn stored_spend_resets_once_its_period_ends(backend: Backend) {
    let extra = "general_settings:\n  proxy_budget_rescheduler_min_time: 1\n";
    let Some((gw, _mock)) = start(backend, extra).await else {
        return;
    };
    let created = post(
        &gw,
        "/key/generate",
        json!({"max_budget": 10.0, "spend": 4.0, "budget_duration": "2s"}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    let first_reset = key_info(&gw, &key).await["budget_reset_at"]
        .as_str()
        .unwrap()
        .to_string();
    let customer = post(
        &gw,
        "/customer/new",
        json!({"user_id": "periodic", "spend": 3.0, "max_budget": 10.0, "budget_duration": "2s"}),
    )
    .await;
    assert_eq!(customer["spend"], 3.0);
    assert_eq!(key_info(&gw, &key).await["spend"], 4.0);

    // The period ends after 2 s and the job runs every second.
    let mut reset = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let info = key_info(&gw, &key).await;
        let (_, c) = get(&gw, "/customer/info?end_user_id=periodic").await;
        if info["spend"] == 0.0 && c["spend"] == 0.0 {
            assert_ne!(info["budget_reset_at"].as_str().unwrap(), first_reset);
            reset = true;
            break;
        }
    }
    assert!(reset, "stored spend was reset within 10 s");
    gw.stop().await;
}
