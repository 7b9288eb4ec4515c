//! Black-box tests of `/user/*` management.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_store::NewUser;
use bursar_testkit::{Backend, TestGateway, both_backends};
use serde_json::{Value, json};

both_backends!(
    new_user_gets_a_working_key,
    new_user_validates_its_input,
    user_info_is_own_or_admin,
    update_changes_fields_and_only_admins_change_roles,
    update_by_unknown_email_creates_the_user,
    delete_removes_users_and_their_keys_atomically,
    list_filters_and_sorts,
    list_pages_are_stable_over_a_thousand_users,
    available_roles_lists_the_four_roles,
);

const CONFIG: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n";

fn chat() -> Value {
    json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]})
}

async fn call(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn new_user_gets_a_working_key(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let (status, body) = call(
        gw.post_json(
            "/user/new",
            &json!({"user_id": "alice", "user_email": "alice@example.com", "user_role": "internal_user_viewer",
                     "max_budget": 10.0, "models": ["demo"], "key_alias": "alice-key", "metadata": {"dept": "r&d"}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["user_role"], "internal_user_viewer");
    assert_eq!(body["max_budget"], 10.0);
    assert_eq!(body["key_alias"], "alice-key");
    let key = body["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-"));
    assert_eq!(
        gw.post_json_as(&key, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    // The key acts with the user's role: a viewer may not create keys.
    let (status, _) = call(gw.post_json_as(&key, "/key/generate", &json!({})).await).await;
    assert_eq!(status, 401);
    // Without auto_create_key there is no key, and the id is generated.
    let (status, body) = call(
        gw.post_json("/user/new", &json!({"auto_create_key": false}))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    // LiteLLM's NewUserResponse makes `key` a string: "" when no key was made.
    assert_eq!(body["key"], "");
    assert_eq!(body["user_id"].as_str().unwrap().len(), 36);
    assert_eq!(body["user_role"], "internal_user");
    gw.stop().await;
}

async fn new_user_validates_its_input(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    call(
        gw.post_json(
            "/user/new",
            &json!({"user_id": "dup", "user_email": "Dup@Example.com"}),
        )
        .await,
    )
    .await;
    let cases = [
        (json!({"user_id": "dup"}), 409, "already exists"),
        (
            json!({"user_email": "dup@example.com"}),
            409,
            "already exists",
        ),
        (json!({"user_role": "superuser"}), 400, "user_role"),
        (json!({"max_budget": -3}), 400, "max_budget"),
        (json!({"budget_duration": "soon"}), 400, "budget_duration"),
        (json!({"duration": "eventually"}), 400, "duration"),
        (
            json!({"send_invite_email": true}),
            400,
            "Email alerting is not configured",
        ),
        (json!({"teams": ["no-such-team"]}), 404, "no-such-team"),
        (
            json!({"organizations": ["no-such-org"]}),
            404,
            "no-such-org",
        ),
        (
            json!({"teams": [{"team_id": "t", "max_budget_in_team": -1}]}),
            400,
            "max_budget_in_team",
        ),
        (json!({"password": "short"}), 400, "password"),
        (json!({"tpm_limit": "many"}), 422, "tpm_limit"),
    ];
    for (body, expected, needle) in cases {
        let (status, response) = call(gw.post_json("/user/new", &body).await).await;
        assert_eq!(status, expected, "{body}: {response}");
        assert!(
            response["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{body}: {response}"
        );
    }
    gw.stop().await;
}

async fn user_with_key(gw: &TestGateway, user_id: &str, role: &str) -> String {
    let (status, body) = call(
        gw.post_json("/user/new", &json!({"user_id": user_id, "user_role": role}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["key"].as_str().unwrap().to_string()
}

async fn user_info_is_own_or_admin(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let bob = user_with_key(&gw, "bob", "internal_user").await;
    user_with_key(&gw, "carol", "internal_user").await;
    let (status, body) = call(gw.get("/user/info?user_id=bob").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["user_info"]["user_id"], "bob");
    assert_eq!(body["keys"].as_array().unwrap().len(), 1);
    assert!(
        !body["keys"][0].to_string().contains(&bob[3..]),
        "no raw key in user info"
    );
    let (status, own) = call(
        gw.http
            .get(gw.endpoint("/user/info"))
            .bearer_auth(&bob)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, own["user_id"].as_str()), (200, Some("bob")));
    let (status, _) = call(
        gw.http
            .get(gw.endpoint("/user/info?user_id=carol"))
            .bearer_auth(&bob)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(gw.get("/user/info?user_id=nobody").send().await.unwrap()).await;
    assert_eq!(status, 404);
    gw.stop().await;
}

async fn update_changes_fields_and_only_admins_change_roles(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let dave = user_with_key(&gw, "dave", "internal_user").await;
    let (status, body) = call(
        gw.post_json(
            "/user/update",
            &json!({"user_id": "dave", "max_budget": 4.0, "user_alias": "D", "tpm_limit": 9}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "dave");
    assert_eq!(body["data"]["max_budget"], 4.0);
    assert_eq!(body["data"]["user_alias"], "D");
    assert_eq!(body["data"]["tpm_limit"], 9);
    // A non-admin cannot reach /user/update at all.
    let (status, _) = call(
        gw.post_json_as(
            &dave,
            "/user/update",
            &json!({"user_id": "dave", "user_role": "proxy_admin"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
    // The admin makes dave a viewer: his key loses key creation on the next request.
    assert_eq!(
        call(gw.post_json_as(&dave, "/key/generate", &json!({})).await)
            .await
            .0,
        200
    );
    let (status, _) = call(
        gw.post_json(
            "/user/update",
            &json!({"user_id": "dave", "user_role": "internal_user_viewer"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        call(gw.post_json_as(&dave, "/key/generate", &json!({})).await)
            .await
            .0,
        401
    );
    let (status, _) = call(
        gw.post_json(
            "/user/update",
            &json!({"user_id": "dave", "user_role": "wizard"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        gw.post_json(
            "/user/update",
            &json!({"user_id": "ghost", "max_budget": 1}),
        )
        .await,
    )
    .await;
    // A proxy admin's update of an unknown user_id creates it, as LiteLLM's upsert does.
    assert_eq!(status, 200);
    let (status, _) = call(
        gw.post_json("/user/update", &json!({"max_budget": 1}))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    gw.stop().await;
}

async fn update_by_unknown_email_creates_the_user(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let (status, body) = call(
        gw.post_json(
            "/user/update",
            &json!({"user_email": "new@example.com", "max_budget": 2.0}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["user_id"].as_str().unwrap().to_string();
    assert_eq!(body["data"]["max_budget"], 2.0);
    let (status, again) = call(
        gw.post_json(
            "/user/update",
            &json!({"user_email": "NEW@example.com", "rpm_limit": 3}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        again["user_id"],
        id.as_str(),
        "the same user, found by email ignoring case"
    );
    assert_eq!(again["data"]["rpm_limit"], 3);
    gw.stop().await;
}

async fn delete_removes_users_and_their_keys_atomically(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let erin = user_with_key(&gw, "erin", "internal_user").await;
    let frank = user_with_key(&gw, "frank", "internal_user").await;
    assert_eq!(
        gw.post_json_as(&erin, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    // One unknown id: nothing is deleted.
    let (status, body) = call(
        gw.post_json("/user/delete", &json!({"user_ids": ["erin", "nobody"]}))
            .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nobody")
    );
    assert_eq!(
        gw.post_json_as(&erin, "/v1/chat/completions", &chat())
            .await
            .status(),
        200
    );
    let (status, body) = call(
        gw.post_json("/user/delete", &json!({"user_ids": ["erin", "frank"]}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!(2));
    for key in [&erin, &frank] {
        assert_eq!(
            gw.post_json_as(key, "/v1/chat/completions", &chat())
                .await
                .status(),
            401,
            "a deleted user's key must stop at once"
        );
    }
    let (status, _) = call(gw.get("/user/info?user_id=erin").send().await.unwrap()).await;
    assert_eq!(status, 404);
    gw.stop().await;
}

async fn list_filters_and_sorts(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    for (id, email, role) in [
        ("u1", "Ann@corp.com", "internal_user"),
        ("u2", "ben@corp.com", "proxy_admin_viewer"),
        ("u3", "cat@other.org", "internal_user"),
    ] {
        let (status, _) = call(
            gw.post_json(
                "/user/new",
                &json!({"user_id": id, "user_email": email, "user_role": role}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
    }
    let ids = |body: &Value| -> Vec<String> {
        body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["user_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, body) = call(
        gw.get("/user/list?role=internal_user")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ids(&body), vec!["u1", "u3"]);
    assert_eq!(body["users"][0]["key_count"], 1);
    let (_, body) = call(gw.get("/user/list?user_email=CORP").send().await.unwrap()).await;
    assert_eq!(ids(&body), vec!["u1", "u2"]);
    let (_, body) = call(
        gw.get("/user/list?user_ids=u3,u1&sort_by=user_email&sort_order=desc")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ids(&body), vec!["u3", "u1"]);
    let viewer = call(
        gw.post_json("/key/generate", &json!({"user_id": "u2"}))
            .await,
    )
    .await
    .1["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = call(
        gw.http
            .get(gw.endpoint("/user/list"))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "viewers may list users");
    let plain = call(
        gw.post_json("/key/generate", &json!({"user_id": "u1"}))
            .await,
    )
    .await
    .1["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = call(
        gw.http
            .get(gw.endpoint("/user/list"))
            .bearer_auth(&plain)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    for bad in [
        "page=0",
        "page_size=0",
        "page_size=101",
        "sort_by=height",
        "sort_order=sideways",
        "role=king",
        "page=9",
    ] {
        let (status, body) = call(gw.get(&format!("/user/list?{bad}")).send().await.unwrap()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    gw.stop().await;
}

async fn list_pages_are_stable_over_a_thousand_users(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    for i in 0..1_050 {
        gw.store
            .users()
            .insert(&NewUser {
                user_id: format!("bulk-{:04}", 1_049 - i),
                user_role: "internal_user".into(),
                user_email: Some(format!("u{i}@bulk.test")),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    for sort in ["user_id", "created_at", "user_email"] {
        let mut seen = std::collections::HashSet::new();
        let mut order = Vec::new();
        for page in 1..=11 {
            let (status, body) = call(
                gw.get(&format!(
                    "/user/list?page={page}&page_size=100&sort_by={sort}"
                ))
                .send()
                .await
                .unwrap(),
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(body["total"], 1_050);
            assert_eq!(body["total_pages"], 11);
            for u in body["users"].as_array().unwrap() {
                let id = u["user_id"].as_str().unwrap().to_string();
                assert!(seen.insert(id.clone()), "{sort}: {id} on two pages");
                order.push(u[sort].clone());
            }
        }
        assert_eq!(seen.len(), 1_050, "{sort}: every user exactly once");
        if sort == "user_id" {
            let mut sorted = order
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect::<Vec<_>>();
            let original = sorted.clone();
            sorted.sort();
            assert_eq!(original, sorted);
        }
    }
    gw.stop().await;
}

async fn available_roles_lists_the_four_roles(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let (status, body) = call(gw.get("/user/available_roles").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["proxy_admin"]["ui_label"], "Admin (All Permissions)");
    assert_eq!(
        body["internal_user_viewer"]["ui_label"],
        "Internal User (View Only)"
    );
    assert_eq!(body.as_object().unwrap().len(), 4);
    gw.stop().await;
}
