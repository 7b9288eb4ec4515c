//! Black-box tests of `/organization/*` management.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, TestGateway, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(
    new_org_round_trips_with_its_budget,
    update_merges_metadata_and_changes_the_budget,
    members_are_added_updated_and_removed,
    delete_cascades_all_or_nothing,
    org_admins_manage_only_their_organization,
    new_user_joins_organizations,
);

const CONFIG: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n";

async fn send(gw: &TestGateway, method: Method, path: &str, body: Value) -> (u16, Value) {
    gw.send(method, path, Some(&body)).await
}

async fn user_key(gw: &TestGateway, user_id: &str) -> String {
    let (status, body) = send(
        gw,
        Method::POST,
        "/user/new",
        json!({"user_id": user_id, "user_role": "internal_user"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["key"].as_str().unwrap().to_string()
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

async fn new_org_round_trips_with_its_budget(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let (status, org) = send(
        &gw,
        Method::POST,
        "/organization/new",
        json!({
            "organization_id": "acme", "organization_alias": "Acme", "models": ["demo"],
            "max_budget": 500, "soft_budget": 400, "tpm_limit": 10000, "rpm_limit": 600,
            "max_parallel_requests": 8, "budget_duration": "1mo", "model_max_budget": {"demo": {"max_budget": 50}},
            "metadata": {"region": "eu"}, "tags": ["prod"], "blocked": false,
            "object_permission": {"mcp_servers": ["s1"]}, "model_rpm_limit": {"demo": 100}
        }),
    )
    .await;
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["organization_id"], "acme");
    assert_eq!(org["organization_alias"], "Acme");
    assert_eq!(org["models"], json!(["demo"]));
    assert_eq!(org["metadata"]["region"], "eu");
    assert_eq!(org["metadata"]["tags"], json!(["prod"]));
    assert_eq!(org["metadata"]["model_rpm_limit"]["demo"], 100);
    assert_eq!(org["object_permission"]["mcp_servers"], json!(["s1"]));
    assert_eq!(org["created_by"], "default_user_id");
    let budget = &org["litellm_budget_table"];
    assert_eq!(budget["budget_id"], org["budget_id"]);
    assert_eq!(budget["max_budget"], 500.0);
    assert_eq!(budget["soft_budget"], 400.0);
    assert_eq!(budget["tpm_limit"], 10000);
    assert_eq!(budget["rpm_limit"], 600);
    assert_eq!(budget["max_parallel_requests"], 8);
    assert_eq!(budget["budget_duration"], "1mo");
    assert!(budget["budget_reset_at"].is_string());
    assert_eq!(budget["model_max_budget"]["demo"]["max_budget"], 50);
    assert_eq!(org["members"], json!([]));
    assert_eq!(org["teams"], json!([]));

    let (status, info) = gw
        .send(Method::GET, "/organization/info?organization_id=acme", None)
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info, org);
    let (status, many) = send(
        &gw,
        Method::POST,
        "/organization/info",
        json!({"organizations": ["acme"]}),
    )
    .await;
    assert_eq!(status, 200, "{many}");
    assert_eq!(many[0]["organization_id"], "acme");

    // An existing budget row can be shared instead of an inline budget.
    let (status, shared) = send(
        &gw,
        Method::POST,
        "/organization/new",
        json!({"organization_alias": "Shared", "budget_id": org["budget_id"]}),
    )
    .await;
    assert_eq!(status, 200, "{shared}");
    assert_eq!(shared["budget_id"], org["budget_id"]);

    let cases = [
        (
            json!({"organization_id": "acme", "organization_alias": "x"}),
            400,
            "already exists",
        ),
        (json!({"models": []}), 422, "organization_alias"),
        (
            json!({"organization_alias": "x", "max_budget": -1}),
            400,
            "max_budget",
        ),
        (
            json!({"organization_alias": "x", "max_budget": 5, "soft_budget": 6}),
            400,
            "soft_budget",
        ),
        (
            json!({"organization_alias": "x", "budget_duration": "later"}),
            400,
            "budget_duration",
        ),
        (
            json!({"organization_alias": "x", "budget_id": "nope"}),
            404,
            "nope",
        ),
        (
            json!({"organization_alias": "x", "rpm_limit": "fast"}),
            422,
            "rpm_limit",
        ),
    ];
    for (body, expected, needle) in cases {
        let (status, response) = send(&gw, Method::POST, "/organization/new", body.clone()).await;
        assert_eq!(status, expected, "{body}: {response}");
        assert!(message(&response).contains(needle), "{body}: {response}");
    }
    let (_, all) = gw.send(Method::GET, "/organization/list", None).await;
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");

    let key = user_key(&gw, "u1").await;
    let (status, body) = gw
        .send_as(
            &key,
            Method::POST,
            "/organization/new",
            Some(&json!({"organization_alias": "Mine"})),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("Only admins can create orgs"));
    gw.stop().await;
}

async fn update_merges_metadata_and_changes_the_budget(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    send(
        &gw,
        Method::POST,
        "/organization/new",
        json!({"organization_id": "o", "organization_alias": "O", "max_budget": 10, "metadata": {"a": 1}}),
    )
    .await;
    let (status, org) = send(
        &gw,
        Method::PATCH,
        "/organization/update",
        json!({"organization_id": "o", "organization_alias": "O2", "metadata": {"b": 2},
               "max_budget": 20, "tpm_limit": 99, "models": ["demo"]}),
    )
    .await;
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["organization_alias"], "O2");
    assert_eq!(org["metadata"], json!({"a": 1, "b": 2}));
    assert_eq!(org["models"], json!(["demo"]));
    assert_eq!(org["litellm_budget_table"]["max_budget"], 20.0);
    assert_eq!(org["litellm_budget_table"]["tpm_limit"], 99);
    // The UI sends the budget nested.
    let (status, org) = send(
        &gw,
        Method::PATCH,
        "/organization/update",
        json!({"organization_id": "o", "litellm_budget_table": {"rpm_limit": 7}}),
    )
    .await;
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["litellm_budget_table"]["rpm_limit"], 7);
    assert_eq!(org["litellm_budget_table"]["max_budget"], 20.0);

    let (status, _) = send(
        &gw,
        Method::PATCH,
        "/organization/update",
        json!({"organization_id": "missing"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &gw,
        Method::PATCH,
        "/organization/update",
        json!({"organization_alias": "x"}),
    )
    .await;
    assert_eq!(status, 422);
    let (status, body) = send(
        &gw,
        Method::PATCH,
        "/organization/update",
        json!({"organization_id": "o", "soft_budget": 30}),
    )
    .await;
    assert_eq!(status, 400, "soft budget above the stored max: {body}");
    gw.stop().await;
}

async fn members_are_added_updated_and_removed(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    send(
        &gw,
        Method::POST,
        "/organization/new",
        json!({"organization_id": "o", "organization_alias": "O"}),
    )
    .await;
    user_key(&gw, "u1").await;
    let (status, body) = send(
        &gw,
        Method::POST,
        "/organization/member_add",
        json!({"organization_id": "o", "max_budget_in_organization": 4,
               "member": [{"user_id": "u1", "role": "org_admin"}, {"user_email": "new@x.com", "role": "internal_user_viewer"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["organization_id"], "o");
    assert_eq!(body["updated_users"].as_array().unwrap().len(), 2);
    assert_eq!(body["updated_users"][1]["user_email"], "new@x.com");
    let memberships = body["updated_organization_memberships"].as_array().unwrap();
    assert_eq!(memberships[0]["user_role"], "org_admin");
    assert_eq!(memberships[1]["user_role"], "internal_user_viewer");
    assert_eq!(memberships[0]["litellm_budget_table"]["max_budget"], 4.0);

    let (_, org) = gw
        .send(Method::GET, "/organization/info?organization_id=o", None)
        .await;
    assert_eq!(org["members"].as_array().unwrap().len(), 2);

    for (member, expected, needle) in [
        (
            json!({"user_id": "u1", "role": "internal_user"}),
            400,
            "already",
        ),
        (json!({"user_id": "u9", "role": "owner"}), 400, "role"),
        (
            json!({"role": "internal_user"}),
            400,
            "user_id or user_email",
        ),
    ] {
        let (status, body) = send(
            &gw,
            Method::POST,
            "/organization/member_add",
            json!({"organization_id": "o", "member": member}),
        )
        .await;
        assert_eq!(status, expected, "{body}");
        assert!(message(&body).contains(needle), "{body}");
    }
    let (status, _) = send(
        &gw,
        Method::POST,
        "/organization/member_add",
        json!({"organization_id": "missing", "member": {"user_id": "u1"}}),
    )
    .await;
    assert_eq!(status, 404);

    let (status, body) = send(
        &gw,
        Method::PATCH,
        "/organization/member_update",
        json!({"organization_id": "o", "user_email": "new@x.com", "role": "internal_user", "max_budget_in_organization": 8}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_role"], "internal_user");
    assert_eq!(body["litellm_budget_table"]["max_budget"], 8.0);

    let (status, body) = send(
        &gw,
        Method::DELETE,
        "/organization/member_delete",
        json!({"organization_id": "o", "user_id": "u1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "u1");
    let (status, _) = send(
        &gw,
        Method::DELETE,
        "/organization/member_delete",
        json!({"organization_id": "o", "user_id": "u1"}),
    )
    .await;
    assert_eq!(status, 404);
    let (_, org) = gw
        .send(Method::GET, "/organization/info?organization_id=o", None)
        .await;
    assert_eq!(org["members"].as_array().unwrap().len(), 1);
    gw.stop().await;
}

async fn delete_cascades_all_or_nothing(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    send(
        &gw,
        Method::POST,
        "/organization/new",
        json!({"organization_id": "o", "organization_alias": "O"}),
    )
    .await;
    send(
        &gw,
        Method::POST,
        "/team/new",
        json!({"team_id": "t", "organization_id": "o", "members_with_roles": [{"role": "user", "user_id": "u1"}]}),
    )
    .await;
    send(
        &gw,
        Method::POST,
        "/organization/member_add",
        json!({"organization_id": "o", "member": {"user_id": "u1", "role": "internal_user"}}),
    )
    .await;
    let (status, team_key) = send(
        &gw,
        Method::POST,
        "/key/generate",
        json!({"team_id": "t", "user_id": "u1"}),
    )
    .await;
    assert_eq!(status, 200, "{team_key}");
    assert_eq!(
        team_key["organization_id"], "o",
        "team keys belong to the team's org"
    );
    let (_, org_key) = send(
        &gw,
        Method::POST,
        "/key/generate",
        json!({"organization_id": "o"}),
    )
    .await;
    let chat = json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]});
    let team_key = team_key["key"].as_str().unwrap().to_string();
    let org_key = org_key["key"].as_str().unwrap().to_string();

    let (status, body) = send(
        &gw,
        Method::DELETE,
        "/organization/delete",
        json!({"organization_ids": ["o", "missing"]}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        gw.send_as(&team_key, Method::POST, "/v1/chat/completions", Some(&chat))
            .await
            .0,
        200,
        "nothing was deleted"
    );

    let member = user_key(&gw, "u2").await;
    let (status, _) = gw
        .send_as(
            &member,
            Method::DELETE,
            "/organization/delete",
            Some(&json!({"organization_ids": ["o"]})),
        )
        .await;
    assert_eq!(status, 401);

    let (status, body) = send(
        &gw,
        Method::DELETE,
        "/organization/delete",
        json!({"organization_ids": ["o"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["organization_id"], "o");
    for key in [&team_key, &org_key] {
        let (status, _) = gw
            .send_as(key, Method::POST, "/v1/chat/completions", Some(&chat))
            .await;
        assert_eq!(status, 401);
    }
    assert_eq!(
        gw.send(Method::GET, "/team/info?team_id=t", None).await.0,
        404
    );
    assert_eq!(
        gw.send(Method::GET, "/organization/info?organization_id=o", None)
            .await
            .0,
        404
    );
    let (_, deleted) = gw
        .send(Method::GET, "/v2/team/list?status=deleted", None)
        .await;
    assert_eq!(deleted["teams"][0]["team_id"], "t");
    let (_, user) = gw.send(Method::GET, "/user/info?user_id=u1", None).await;
    assert_eq!(user["user_info"]["teams"], json!([]));
    gw.stop().await;
}

async fn org_admins_manage_only_their_organization(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    for id in ["o", "other"] {
        send(
            &gw,
            Method::POST,
            "/organization/new",
            json!({"organization_id": id, "organization_alias": id}),
        )
        .await;
    }
    let admin = user_key(&gw, "boss").await;
    let plain = user_key(&gw, "worker").await;
    let loner = user_key(&gw, "loner").await;
    send(
        &gw,
        Method::POST,
        "/organization/member_add",
        json!({"organization_id": "o", "member": [{"user_id": "boss", "role": "org_admin"}, {"user_id": "worker", "role": "internal_user"}]}),
    )
    .await;
    let info = "/organization/info?organization_id=o";
    assert_eq!(gw.send_as(&admin, Method::GET, info, None).await.0, 200);
    let (status, body) = gw.send_as(&plain, Method::GET, info, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        message(&body).contains("Your role is internal_user"),
        "{body}"
    );
    let (status, body) = gw.send_as(&loner, Method::GET, info, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("not a member of any organization"));
    let (status, body) = gw
        .send_as(
            &admin,
            Method::GET,
            "/organization/info?organization_id=other",
            None,
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("do not have a role"));

    let (status, body) = gw
        .send_as(
            &admin,
            Method::PATCH,
            "/organization/update",
            Some(&json!({"organization_id": "o", "organization_alias": "Renamed"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = gw
        .send_as(
            &admin,
            Method::POST,
            "/organization/member_add",
            Some(&json!({"organization_id": "o", "member": {"user_email": "hire@x.com", "role": "internal_user"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = gw
        .send_as(
            &plain,
            Method::POST,
            "/organization/member_add",
            Some(&json!({"organization_id": "o", "member": {"user_email": "x@x.com"}})),
        )
        .await;
    assert_eq!(status, 401);

    let (status, mine) = gw
        .send_as(&plain, Method::GET, "/organization/list", None)
        .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["organization_id"], "o");
    let (_, none) = gw
        .send_as(&loner, Method::GET, "/organization/list", None)
        .await;
    assert_eq!(none, json!([]));
    gw.stop().await;
}

async fn new_user_joins_organizations(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    send(
        &gw,
        Method::POST,
        "/organization/new",
        json!({"organization_id": "o", "organization_alias": "O"}),
    )
    .await;
    send(&gw, Method::POST, "/team/new", json!({"team_id": "t"})).await;
    let (status, body) = send(
        &gw,
        Method::POST,
        "/user/new",
        json!({"user_id": "u", "organizations": ["o"], "teams": [{"team_id": "t", "user_role": "admin", "max_budget_in_team": 2}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, org) = gw
        .send(Method::GET, "/organization/info?organization_id=o", None)
        .await;
    assert_eq!(org["members"][0]["user_id"], "u");
    assert_eq!(org["members"][0]["user_role"], "internal_user");
    let (_, team) = gw.send(Method::GET, "/team/info?team_id=t", None).await;
    assert_eq!(team["team_memberships"][0]["role"], "admin");
    assert_eq!(
        team["team_memberships"][0]["litellm_budget_table"]["max_budget"],
        2.0
    );
    gw.stop().await;
}
