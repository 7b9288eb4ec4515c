//! Black-box tests of `/key/*` management.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_core::keys::hash_key;
use bursar_store::NewUser;
use bursar_testkit::{Backend, TestGateway, both_backends};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    generated_key_is_returned_once_and_works,
    generate_validates_its_input,
    custom_key_and_duration,
    update_changes_fields_and_keeps_aliases_unique,
    deleted_key_is_rejected_on_the_next_request,
    blocked_key_is_rejected_until_unblocked,
    expired_key_is_rejected,
    regenerate_replaces_the_secret,
    regenerate_with_grace_period_keeps_the_old_secret_for_a_while,
    list_pages_filters_and_scopes_to_the_caller,
    key_routes_follow_the_role_matrix,
    key_type_and_allowed_routes_limit_a_key,
);

const CONFIG: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n";

fn chat() -> Value {
    json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]})
}

async fn generate(gw: &TestGateway, body: Value) -> Value {
    let response = gw.post_json("/key/generate", &body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn status_and_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn generated_key_is_returned_once_and_works(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let team = gw
        .post_json("/team/new", &json!({"team_id": "team-1"}))
        .await;
    assert_eq!(team.status(), 200);
    let created = generate(
        &gw,
        json!({
            "key_alias": "app-1", "models": ["demo"], "max_budget": 12.5, "tpm_limit": 1000, "rpm_limit": 10,
            "max_parallel_requests": 3, "metadata": {"env": "prod"}, "tags": ["a"], "model_rpm_limit": {"demo": 5},
            "budget_duration": "30d", "permissions": {"get_spend_routes": true}, "aliases": {"small": "demo"},
            "user_id": "user-1", "team_id": "team-1", "organization_id": "org-1"
        }),
    )
    .await;
    let raw = created["key"].as_str().unwrap().to_string();
    assert!(raw.starts_with("sk-") && raw.len() == 25, "{raw}");
    assert_eq!(created["token"], hash_key(&raw));
    assert_eq!(created["token_id"], hash_key(&raw));
    assert_eq!(
        created["key_name"],
        format!("sk-...{}", &raw[raw.len() - 4..])
    );
    assert_eq!(created["key_alias"], "app-1");
    assert_eq!(created["max_budget"], 12.5);
    assert_eq!(
        created["metadata"],
        json!({"env": "prod", "tags": ["a"], "model_rpm_limit": {"demo": 5}})
    );
    assert_eq!(created["budget_duration"], "30d");
    // LiteLLM's GenerateKeyResponse has no reset time; the key's info has.
    assert!(created.get("budget_reset_at").is_none());
    let (_, info) = gw
        .send(Method::GET, &format!("/key/info?key={raw}"), None)
        .await;
    assert!(info["info"]["budget_reset_at"].is_string(), "{info}");
    assert_eq!(created["expires"], Value::Null);

    let response = gw.post_json_as(&raw, "/v1/chat/completions", &chat()).await;
    assert_eq!(response.status(), 200);

    let info = gw
        .get(&format!("/key/info?key={raw}"))
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200);
    let text = info.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["key"], raw.as_str());
    assert_eq!(body["info"]["key_alias"], "app-1");
    assert_eq!(body["info"]["tpm_limit"], 1000);
    assert_eq!(body["info"]["models"], json!(["demo"]));
    assert_eq!(body["info"]["team_id"], "team-1");
    assert_eq!(
        body["info"]["permissions"],
        json!({"get_spend_routes": true})
    );
    assert!(body["info"].get("token").is_none());
    // By hash too; and the secret never appears in a read.
    let by_hash: Value = gw
        .get(&format!("/key/info?key={}", hash_key(&raw)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_hash["info"]["key_alias"], "app-1");
    assert!(
        !body["info"].to_string().contains(&raw[3..]),
        "raw key leaked in /key/info"
    );
    // A key can read its own info without ?key=.
    let own = gw
        .http
        .get(gw.endpoint("/key/info"))
        .bearer_auth(&raw)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    gw.stop().await;
}

async fn generate_validates_its_input(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    generate(&gw, json!({"key_alias": "taken"})).await;
    let cases = [
        (json!({"key_alias": "taken"}), 400, "already exists"),
        (json!({"max_budget": -1}), 400, "max_budget"),
        (json!({"tpm_limit": -5}), 400, "tpm_limit"),
        (json!({"duration": "forever"}), 400, "duration"),
        (json!({"budget_duration": "1x"}), 400, "budget_duration"),
        (
            json!({"key": "not-sk-prefixed-key"}),
            400,
            "must start with 'sk-'",
        ),
        (json!({"key": "sk-short"}), 400, "at least 16"),
        (json!({"key_type": "superuser"}), 400, "key_type"),
        (json!({"max_budget": "lots"}), 422, "max_budget"),
        (json!({"models": "demo"}), 422, "models"),
    ];
    for (body, status, needle) in cases {
        let (got, response) = status_and_body(gw.post_json("/key/generate", &body).await).await;
        assert_eq!(got, status, "{body}: {response}");
        let message = response["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
        assert_eq!(response["error"]["code"], status.to_string());
    }
    gw.stop().await;
}

async fn custom_key_and_duration(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let created = generate(
        &gw,
        json!({"key": "sk-my-own-custom-key-1", "duration": "1h"}),
    )
    .await;
    assert_eq!(created["key"], "sk-my-own-custom-key-1");
    let expires = created["expires"].as_str().unwrap();
    assert!(expires.ends_with('Z'), "{expires}");
    let response = gw
        .post_json_as("sk-my-own-custom-key-1", "/v1/chat/completions", &chat())
        .await;
    assert_eq!(response.status(), 200);
    let (status, _) = status_and_body(
        gw.post_json("/key/generate", &json!({"key": "sk-my-own-custom-key-1"}))
            .await,
    )
    .await;
    assert_eq!(status, 400, "a duplicate key is refused");
    gw.stop().await;
}

async fn update_changes_fields_and_keeps_aliases_unique(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let a = generate(&gw, json!({"key_alias": "a", "metadata": {"keep": 1}})).await;
    generate(&gw, json!({"key_alias": "b"})).await;
    let key = a["key"].as_str().unwrap();
    let updated = gw
        .post_json(
            "/key/update",
            &json!({"key": key, "max_budget": 3.0, "models": ["demo"], "tags": ["x"]}),
        )
        .await;
    assert_eq!(updated.status(), 200);
    let body: Value = updated.json().await.unwrap();
    assert_eq!(body["max_budget"], 3.0);
    assert_eq!(body["models"], json!(["demo"]));
    assert_eq!(body["metadata"], json!({"keep": 1, "tags": ["x"]}));
    assert_eq!(body["key_alias"], "a", "untouched");
    let (status, err) = status_and_body(
        gw.post_json("/key/update", &json!({"key": key, "key_alias": "b"}))
            .await,
    )
    .await;
    assert_eq!(status, 400, "{err}");
    // By alias alone.
    let by_alias: Value = gw
        .post_json("/key/update", &json!({"key_alias": "b", "rpm_limit": 7}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_alias["rpm_limit"], 7);
    let (status, _) = status_and_body(
        gw.post_json(
            "/key/update",
            &json!({"key": "sk-does-not-exist-123", "rpm_limit": 1}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) =
        status_and_body(gw.post_json("/key/update", &json!({"rpm_limit": 1})).await).await;
    assert_eq!(status, 422);
    gw.stop().await;
}

async fn deleted_key_is_rejected_on_the_next_request(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let a = generate(&gw, json!({})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let b = generate(&gw, json!({"key_alias": "to-delete"})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    for key in [&a, &b] {
        assert_eq!(
            gw.post_json_as(key, "/v1/chat/completions", &chat())
                .await
                .status(),
            200
        );
    }
    let deleted: Value = gw
        .post_json("/key/delete", &json!({"keys": [a]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["deleted_keys"], json!([a]));
    assert_eq!(
        gw.post_json_as(&a, "/v1/chat/completions", &chat())
            .await
            .status(),
        401
    );
    let deleted: Value = gw
        .post_json("/key/delete", &json!({"key_aliases": ["to-delete"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["deleted_keys"], json!(["to-delete"]));
    assert_eq!(
        gw.post_json_as(&b, "/v1/chat/completions", &chat())
            .await
            .status(),
        401
    );
    let (status, _) =
        status_and_body(gw.post_json("/key/delete", &json!({"keys": [a]})).await).await;
    assert_eq!(status, 404);
    let (status, _) = status_and_body(gw.post_json("/key/delete", &json!({})).await).await;
    assert_eq!(status, 422);
    gw.stop().await;
}

async fn blocked_key_is_rejected_until_unblocked(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let key = generate(&gw, json!({})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        gw.post_json_as(&key, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    let blocked: Value = gw
        .post_json("/key/block", &json!({"key": key}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(blocked["blocked"], true);
    assert_eq!(
        gw.post_json_as(&key, "/v1/chat/completions", &chat())
            .await
            .status(),
        401
    );
    let unblocked: Value = gw
        .post_json("/key/unblock", &json!({"key": hash_key(&key)}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unblocked["blocked"], false);
    assert_eq!(
        gw.post_json_as(&key, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    let (status, _) =
        status_and_body(gw.post_json("/key/block", &json!({"key": "garbage"})).await).await;
    assert_eq!(status, 400);
    let (status, _) = status_and_body(
        gw.post_json("/key/block", &json!({"key": "sk-nope-nope-nope"}))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    gw.stop().await;
}

async fn expired_key_is_rejected(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let key = generate(&gw, json!({"duration": "1s"})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        gw.post_json_as(&key, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, body) =
        status_and_body(gw.post_json_as(&key, "/v1/chat/completions", &chat()).await).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "expired_key");
    gw.stop().await;
}

async fn regenerate_replaces_the_secret(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let old = generate(&gw, json!({"key_alias": "rotating"})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        gw.post_json_as(&old, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    let fresh: Value = gw
        .post_json("/key/regenerate", &json!({"key": old, "max_budget": 2.0}))
        .await
        .json()
        .await
        .unwrap();
    let new = fresh["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(fresh["key_alias"], "rotating");
    assert_eq!(fresh["max_budget"], 2.0);
    let (_, info) = gw
        .send(Method::GET, &format!("/key/info?key={new}"), None)
        .await;
    assert_eq!(info["info"]["rotation_count"], 1);
    assert_eq!(
        gw.post_json_as(&old, "/v1/chat/completions", &chat())
            .await
            .status(),
        401
    );
    assert_eq!(
        gw.post_json_as(&new, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    let path_form: Value = gw
        .post_json(
            &format!("/key/{new}/regenerate"),
            &json!({"new_key": "sk-chosen-new-secret-1"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(path_form["key"], "sk-chosen-new-secret-1");
    assert_eq!(
        gw.post_json_as("sk-chosen-new-secret-1", "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    let (status, _) = status_and_body(
        gw.post_json("/key/regenerate", &json!({"key": "sk-missing-key-xyz"}))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    gw.stop().await;
}

async fn user_with_role(gw: &TestGateway, user_id: &str, role: &str) -> String {
    gw.store
        .users()
        .insert(&NewUser {
            user_id: user_id.into(),
            user_role: role.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    generate(gw, json!({"user_id": user_id})).await["key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn list_pages_filters_and_scopes_to_the_caller(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let own = user_with_role(&gw, "lister", "internal_user").await;
    for i in 0..23 {
        generate(&gw, json!({"user_id": if i < 3 { "lister" } else { "someone-else" }, "key_alias": format!("k{i}")})).await;
    }
    let mut seen = std::collections::HashSet::new();
    for page in 1..=3 {
        let body: Value = gw
            .get(&format!("/key/list?page={page}&size=10"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["total_count"], 24);
        assert_eq!(body["total_pages"], 3);
        assert_eq!(body["current_page"], page);
        for k in body["keys"].as_array().unwrap() {
            assert!(
                seen.insert(k.as_str().unwrap().to_string()),
                "duplicate across pages"
            );
        }
    }
    assert_eq!(seen.len(), 24);
    let filtered: Value = gw
        .get("/key/list?key_alias=k5&return_full_object=true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["keys"][0]["key_alias"], "k5");
    // An internal user sees only its own keys, and may not ask for someone else's.
    let mine: Value = gw
        .http
        .get(gw.endpoint("/key/list?size=100"))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["total_count"], 4);
    let other = gw
        .http
        .get(gw.endpoint("/key/list?user_id=someone-else"))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    for bad in [
        "page=0",
        "size=0",
        "size=101",
        "sort_by=color",
        "sort_order=up",
        "page=99",
    ] {
        let response = gw.get(&format!("/key/list?{bad}")).send().await.unwrap();
        assert!(
            response.status().is_client_error(),
            "{bad}: {}",
            response.status()
        );
    }
    gw.stop().await;
}

async fn key_routes_follow_the_role_matrix(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let roles = [
        "proxy_admin",
        "proxy_admin_viewer",
        "internal_user",
        "internal_user_viewer",
        "org_admin",
        "team",
        "customer",
    ];
    // Expected status per role in the order above; bodies act on keys the caller owns.
    for (i, role) in roles.iter().enumerate() {
        let user = format!("matrix-{role}");
        let key = user_with_role(&gw, &user, role).await;
        let victim = generate(&gw, json!({"user_id": user})).await["key"]
            .as_str()
            .unwrap()
            .to_string();
        let second = generate(&gw, json!({"user_id": user})).await["key"]
            .as_str()
            .unwrap()
            .to_string();
        let expect = |statuses: [u16; 7]| statuses[i];
        let calls: Vec<(&str, String, Value, u16)> = vec![
            (
                "POST",
                "/v1/chat/completions".into(),
                chat(),
                expect([200, 403, 200, 200, 200, 200, 200]),
            ),
            (
                "GET",
                "/key/info".into(),
                Value::Null,
                expect([200, 200, 200, 200, 200, 200, 200]),
            ),
            (
                "GET",
                "/key/list".into(),
                Value::Null,
                expect([200, 200, 200, 200, 200, 200, 200]),
            ),
            (
                "POST",
                "/key/health".into(),
                json!({}),
                expect([200, 200, 200, 200, 200, 200, 200]),
            ),
            (
                "POST",
                "/key/generate".into(),
                json!({"user_id": user}),
                expect([200, 401, 200, 401, 200, 401, 401]),
            ),
            (
                "POST",
                "/key/generate".into(),
                json!({"user_id": "somebody-else"}),
                expect([200, 401, 403, 401, 403, 401, 401]),
            ),
            (
                "POST",
                "/key/update".into(),
                json!({"key": victim, "rpm_limit": 5}),
                expect([200, 401, 200, 401, 200, 401, 401]),
            ),
            (
                "POST",
                "/key/block".into(),
                json!({"key": victim}),
                expect([200, 401, 403, 401, 403, 401, 401]),
            ),
            (
                "POST",
                "/key/unblock".into(),
                json!({"key": victim}),
                expect([200, 401, 403, 401, 403, 401, 401]),
            ),
            (
                "POST",
                "/key/regenerate".into(),
                json!({"key": victim}),
                expect([200, 401, 200, 401, 200, 401, 401]),
            ),
            (
                "POST",
                format!("/key/{second}/regenerate"),
                json!({}),
                expect([200, 401, 200, 401, 200, 401, 401]),
            ),
        ];
        for (method, path, body, expected) in calls {
            let request = if method == "GET" {
                gw.http.get(gw.endpoint(&path))
            } else {
                gw.http.post(gw.endpoint(&path)).json(&body)
            };
            let response = request.bearer_auth(&key).send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(status, expected, "{role} {method} {path}: {body}");
            if status >= 400 {
                assert_eq!(body["error"]["code"], status.to_string(), "{role} {path}");
            }
        }
        // Deleting: a fresh victim owned by the caller.
        let victim = generate(&gw, json!({"user_id": user})).await["key"]
            .as_str()
            .unwrap()
            .to_string();
        let response = gw
            .http
            .post(gw.endpoint("/key/delete"))
            .bearer_auth(&key)
            .json(&json!({"keys": [victim]}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            expect([200, 401, 200, 401, 200, 401, 401]),
            "{role} delete"
        );
    }
    // Someone else's key: an internal user may neither read nor delete it.
    let outsider = user_with_role(&gw, "outsider", "internal_user").await;
    let foreign = generate(&gw, json!({"user_id": "owner-x"})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let info = gw
        .http
        .get(gw.endpoint(&format!("/key/info?key={foreign}")))
        .bearer_auth(&outsider)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 403);
    let delete = gw
        .http
        .post(gw.endpoint("/key/delete"))
        .bearer_auth(&outsider)
        .json(&json!({"keys": [foreign]}))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 403);
    gw.stop().await;
}

async fn key_type_and_allowed_routes_limit_a_key(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let llm_only = generate(&gw, json!({"key_type": "llm_api"})).await;
    assert_eq!(llm_only["allowed_routes"], json!(["llm_api_routes"]));
    let llm_only = llm_only["key"].as_str().unwrap().to_string();
    assert_eq!(
        gw.post_json_as(&llm_only, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    let (status, body) = status_and_body(
        gw.http
            .get(gw.endpoint("/key/list"))
            .bearer_auth(&llm_only)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Virtual key is not allowed to call this route")
    );
    let info_only = generate(&gw, json!({"allowed_routes": ["/key/info"]})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        gw.post_json_as(&info_only, "/v1/chat/completions", &chat())
            .await
            .status(),
        403
    );
    assert_eq!(
        gw.http
            .get(gw.endpoint("/key/info"))
            .bearer_auth(&info_only)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    gw.stop().await;
}

async fn regenerate_with_grace_period_keeps_the_old_secret_for_a_while(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let old = generate(&gw, json!({})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        gw.post_json_as(&old, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    let fresh: Value = gw
        .post_json(
            "/key/regenerate",
            &json!({"key": old, "grace_period": "1h"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let new = fresh["key"].as_str().unwrap().to_string();
    assert_eq!(
        gw.post_json_as(&new, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.post_json_as(&old, "/v1/chat/completions", &chat())
            .await
            .status(),
        200,
        "old secret inside its grace period"
    );
    // Blocking the key stops both secrets at once.
    gw.post_json("/key/block", &json!({"key": new})).await;
    assert_eq!(
        gw.post_json_as(&old, "/v1/chat/completions", &chat())
            .await
            .status(),
        401
    );
    assert_eq!(
        gw.post_json_as(&new, "/v1/chat/completions", &chat())
            .await
            .status(),
        401
    );
    gw.post_json("/key/unblock", &json!({"key": new})).await;
    // A short grace period ends.
    let newest: Value = gw
        .post_json(
            "/key/regenerate",
            &json!({"key": new, "grace_period": "1s"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let newest = newest["key"].as_str().unwrap().to_string();
    assert_eq!(
        gw.post_json_as(&new, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        gw.post_json_as(&new, "/v1/chat/completions", &chat())
            .await
            .status(),
        401
    );
    assert_eq!(
        gw.post_json_as(&newest, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    let (status, _) = status_and_body(
        gw.post_json(
            "/key/regenerate",
            &json!({"key": newest, "grace_period": "a while"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    gw.stop().await;
}
