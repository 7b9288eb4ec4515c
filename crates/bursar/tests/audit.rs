//! The audit log of management changes, and config defaults for new users.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, TestGateway, both_backends};
use serde_json::{Value, json};

both_backends!(
    audit_log_records_every_key_and_user_change,
    audit_log_is_off_unless_configured,
    internal_user_defaults_apply_to_new_users,
    management_routes_follow_the_role_matrix,
);

const AUDITED: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\nlitellm_settings:\n  store_audit_logs: true\n";

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post_as_bot(gw: &TestGateway, path: &str, body: Value) -> Value {
    let response = gw
        .post(path)
        .header("litellm-changed-by", "ops-bot")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn audit_log_records_every_key_and_user_change(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, AUDITED).await else {
        return;
    };
    let mut raw_keys = Vec::new();
    let created = post_as_bot(&gw, "/key/generate", json!({"key_alias": "audited"})).await;
    let key = created["key"].as_str().unwrap().to_string();
    raw_keys.push(key.clone());
    post_as_bot(&gw, "/key/update", json!({"key": key, "max_budget": 1.0})).await;
    post_as_bot(&gw, "/key/block", json!({"key": key})).await;
    post_as_bot(&gw, "/key/unblock", json!({"key": key})).await;
    let rotated = post_as_bot(&gw, "/key/regenerate", json!({"key": key})).await;
    let new_key = rotated["key"].as_str().unwrap().to_string();
    raw_keys.push(new_key.clone());
    post_as_bot(&gw, "/key/delete", json!({"keys": [new_key]})).await;
    let user = post_as_bot(&gw, "/user/new", json!({"user_id": "audited-user"})).await;
    raw_keys.push(user["key"].as_str().unwrap().to_string());
    post_as_bot(
        &gw,
        "/user/update",
        json!({"user_id": "audited-user", "max_budget": 3.0}),
    )
    .await;
    post_as_bot(&gw, "/user/delete", json!({"user_ids": ["audited-user"]})).await;

    let (status, log) = json_of(
        gw.get("/audit?table_name=LiteLLM_VerificationToken&page_size=100")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{log}");
    let actions: Vec<&str> = log["audit_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    // Newest first: the user's key (created, then deleted with the user), then the key's history.
    assert_eq!(
        actions,
        vec![
            "deleted",
            "created",
            "deleted",
            "rotated",
            "unblocked",
            "blocked",
            "updated",
            "created"
        ]
    );
    let first = &log["audit_logs"][7];
    assert_eq!(first["changed_by"], "ops-bot");
    assert_eq!(first["changed_by_api_key"], "litellm_proxy_master_key");
    assert_eq!(first["object_id"], bursar_core::keys::hash_key(&key));
    assert_eq!(first["before_value"], Value::Null);
    assert_eq!(first["updated_values"]["key_alias"], "audited");
    let update = &log["audit_logs"][6];
    assert_eq!(update["before_value"]["max_budget"], Value::Null);
    assert_eq!(update["updated_values"]["max_budget"], 1.0);

    let (_, users) = json_of(
        gw.get("/audit/logs?table_name=LiteLLM_UserTable")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let actions: Vec<&str> = users["audit_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["deleted", "updated", "created"]);
    assert_eq!(users["total"], 3);

    let (_, all) = json_of(gw.get("/audit?page_size=500").send().await.unwrap()).await;
    let text = all.to_string();
    for raw in &raw_keys {
        assert!(!text.contains(&raw[3..]), "a raw key reached the audit log");
    }
    let (_, by_object) = json_of(
        gw.get(&format!(
            "/audit?object_id={}",
            bursar_core::keys::hash_key(&key)
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    // created, updated, blocked, unblocked; the rotation is filed under the new hash.
    assert_eq!(by_object["total"], 4);
    let (_, future) = json_of(gw.get("/audit?start_date=2999-01-01").send().await.unwrap()).await;
    assert_eq!(future["total"], 0);
    for bad in ["start_date=yesterday", "page=0", "page_size=501"] {
        let (status, _) = json_of(gw.get(&format!("/audit?{bad}")).send().await.unwrap()).await;
        assert_eq!(status, 400, "{bad}");
    }
    // Someone else's header is ignored for callers that are not trusted with it.
    let (_, plain) = json_of(
        gw.post_json("/user/new", &json!({"user_id": "plain"}))
            .await,
    )
    .await;
    let plain_key = plain["key"].as_str().unwrap();
    let response = gw
        .http
        .post(gw.endpoint("/key/generate"))
        .bearer_auth(plain_key)
        .header("litellm-changed-by", "mallory")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, latest) = json_of(gw.get("/audit?page_size=1").send().await.unwrap()).await;
    assert_eq!(latest["audit_logs"][0]["changed_by"], "plain");
    gw.stop().await;
}

async fn audit_log_is_off_unless_configured(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, "model_list: []\n").await else {
        return;
    };
    let (status, _) = json_of(gw.post_json("/key/generate", &json!({})).await).await;
    assert_eq!(status, 200);
    let (status, log) = json_of(gw.get("/audit").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(log["total"], 0);
    gw.stop().await;
}

async fn internal_user_defaults_apply_to_new_users(backend: Backend) {
    let config = "model_list: []\nlitellm_settings:\n  default_internal_user_params:\n    user_role: internal_user_viewer\n    models: [demo]\n  max_internal_user_budget: 5\n  internal_user_budget_duration: 30d\n";
    let Some(gw) = TestGateway::start(backend, config).await else {
        return;
    };
    let (status, user) = json_of(
        gw.post_json("/user/new", &json!({"user_id": "defaulted"}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["user_role"], "internal_user_viewer");
    assert_eq!(user["max_budget"], 5.0);
    assert_eq!(user["budget_duration"], "30d");
    assert_eq!(user["models"], json!(["demo"]));
    let (_, explicit) = json_of(
        gw.post_json(
            "/user/new",
            &json!({"user_id": "explicit", "user_role": "internal_user", "max_budget": 1.0}),
        )
        .await,
    )
    .await;
    assert_eq!(explicit["user_role"], "internal_user");
    assert_eq!(explicit["max_budget"], 1.0);
    gw.stop().await;
}

async fn management_routes_follow_the_role_matrix(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, AUDITED).await else {
        return;
    };
    let roles = [
        "proxy_admin",
        "proxy_admin_viewer",
        "internal_user",
        "internal_user_viewer",
        "team",
        "customer",
    ];
    for (i, role) in roles.iter().enumerate() {
        let user = format!("m-{role}");
        gw.store
            .users()
            .insert(&bursar_store::NewUser {
                user_id: user.clone(),
                user_role: role.to_string(),
                ..Default::default()
            })
            .await
            .unwrap();
        let key = json_of(
            gw.post_json("/key/generate", &json!({"user_id": user}))
                .await,
        )
        .await
        .1["key"]
            .as_str()
            .unwrap()
            .to_string();
        gw.store
            .users()
            .insert(&bursar_store::NewUser {
                user_id: format!("victim-{i}"),
                user_role: "internal_user".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let pick = |s: [u16; 6]| s[i];
        let calls: Vec<(&str, String, Value, u16)> = vec![
            (
                "POST",
                "/v1/chat/completions".into(),
                json!({"model": "demo", "messages": [{"role": "user", "content": "x"}]}),
                pick([200, 403, 200, 200, 200, 200]),
            ),
            (
                "GET",
                "/user/info".into(),
                Value::Null,
                pick([200, 200, 200, 200, 200, 200]),
            ),
            (
                "GET",
                "/user/available_roles".into(),
                Value::Null,
                pick([200, 200, 200, 200, 200, 200]),
            ),
            (
                "GET",
                "/user/list".into(),
                Value::Null,
                pick([200, 200, 403, 403, 403, 403]),
            ),
            (
                "GET",
                "/audit".into(),
                Value::Null,
                pick([200, 200, 401, 401, 401, 401]),
            ),
            (
                "POST",
                "/user/new".into(),
                json!({"auto_create_key": false}),
                pick([200, 401, 401, 401, 401, 401]),
            ),
            (
                "POST",
                "/user/update".into(),
                json!({"user_id": user, "user_alias": "x"}),
                pick([200, 401, 401, 401, 401, 401]),
            ),
            (
                "POST",
                "/user/delete".into(),
                json!({"user_ids": [format!("victim-{i}")]}),
                pick([200, 401, 401, 401, 401, 401]),
            ),
            (
                "POST",
                "/key/generate".into(),
                json!({}),
                pick([200, 401, 200, 401, 401, 401]),
            ),
            (
                "GET",
                "/key/list".into(),
                Value::Null,
                pick([200, 200, 200, 200, 200, 200]),
            ),
        ];
        for (method, path, body, expected) in calls {
            let request = if method == "GET" {
                gw.http.get(gw.endpoint(&path))
            } else {
                gw.http.post(gw.endpoint(&path)).json(&body)
            };
            let (status, body) = json_of(request.bearer_auth(&key).send().await.unwrap()).await;
            assert_eq!(status, expected, "{role} {method} {path}: {body}");
            if status >= 400 {
                assert_eq!(body["error"]["code"], status.to_string());
                assert!(body["error"]["message"].is_string());
            }
        }
    }
    gw.stop().await;
}
