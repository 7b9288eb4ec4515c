//! Black-box tests of `/team/*` management and team-scoped key rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_core::NanoUsd;
use bursar_testkit::{Backend, TestGateway, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(
    new_team_round_trips_every_field,
    new_team_rejects_bad_input_and_writes_nothing,
    members_are_one_view_across_teams_and_users,
    bulk_member_add_reports_each_member,
    delete_archives_the_team_and_removes_its_keys,
    lists_page_filter_and_scope_to_the_caller,
    block_models_and_permissions,
    team_roles_decide_who_may_do_what,
    member_permissions_grant_each_key_route,
    parallel_new_teams_create_their_missing_members_once,
);

const CONFIG: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n";

fn chat() -> Value {
    json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]})
}

async fn post(gw: &TestGateway, path: &str, body: Value) -> (u16, Value) {
    gw.send(Method::POST, path, Some(&body)).await
}

async fn post_as(gw: &TestGateway, key: &str, path: &str, body: Value) -> (u16, Value) {
    gw.send_as(key, Method::POST, path, Some(&body)).await
}

async fn get(gw: &TestGateway, path: &str) -> (u16, Value) {
    gw.send(Method::GET, path, None).await
}

async fn get_as(gw: &TestGateway, key: &str, path: &str) -> (u16, Value) {
    gw.send_as(key, Method::GET, path, None).await
}

/// Creates a user with a key and returns the raw key.
async fn user_key(gw: &TestGateway, user_id: &str, role: &str) -> String {
    let (status, body) = post(
        gw,
        "/user/new",
        json!({"user_id": user_id, "user_role": role}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["key"].as_str().unwrap().to_string()
}

async fn chat_status(gw: &TestGateway, key: &str) -> u16 {
    post_as(gw, key, "/v1/chat/completions", chat()).await.0
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

async fn new_team_round_trips_every_field(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let (status, team) = post(
        &gw,
        "/team/new",
        json!({
            "team_id": "t1", "team_alias": "Team One", "models": ["demo"], "max_budget": 100.0,
            "soft_budget": 80.0, "budget_duration": "30d", "tpm_limit": 1000, "rpm_limit": 100,
            "max_parallel_requests": 5, "metadata": {"cost_center": "42"}, "tags": ["a", "b"],
            "guardrails": ["g1"], "prompts": ["p1"], "model_rpm_limit": {"demo": 10},
            "model_tpm_limit": {"demo": 500}, "rpm_limit_type": "best_effort_throughput",
            "team_member_permissions": ["/key/info", "/key/generate"], "blocked": false,
            "model_aliases": {"small": "demo"}, "team_member_budget": 5.0, "team_member_rpm_limit": 3,
            "team_member_tpm_limit": 300, "team_member_key_duration": "7d",
            "object_permission": {"vector_stores": ["vs1"]}, "router_settings": {"num_retries": 2},
            "access_group_ids": ["ag1"], "model_max_budget": {"demo": {"max_budget": 3}}
        }),
    )
    .await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(team["team_id"], "t1");
    assert_eq!(team["team_alias"], "Team One");
    assert_eq!(team["models"], json!(["demo"]));
    assert_eq!(team["max_budget"], 100.0);
    assert_eq!(team["soft_budget"], 80.0);
    assert_eq!(team["budget_duration"], "30d");
    assert!(team["budget_reset_at"].is_string());
    assert_eq!(team["tpm_limit"], 1000);
    assert_eq!(team["rpm_limit"], 100);
    assert_eq!(team["max_parallel_requests"], 5);
    let metadata = &team["metadata"];
    assert_eq!(metadata["cost_center"], "42");
    assert_eq!(metadata["tags"], json!(["a", "b"]));
    assert_eq!(metadata["guardrails"], json!(["g1"]));
    assert_eq!(metadata["prompts"], json!(["p1"]));
    assert_eq!(metadata["model_rpm_limit"]["demo"], 10);
    assert_eq!(metadata["model_tpm_limit"]["demo"], 500);
    assert_eq!(metadata["rpm_limit_type"], "best_effort_throughput");
    assert_eq!(metadata["team_member_key_duration"], "7d");
    let budget_id = metadata["team_member_budget_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        budget_id.starts_with("team-Team-One-budget-"),
        "{budget_id}"
    );
    assert_eq!(
        team["team_member_permissions"],
        json!(["/key/info", "/key/generate"])
    );
    assert_eq!(team["blocked"], false);
    assert_eq!(
        team["litellm_model_table"]["model_aliases"]["small"],
        "demo"
    );
    assert_eq!(team["object_permission"]["vector_stores"], json!(["vs1"]));
    assert_eq!(team["router_settings"]["num_retries"], 2);
    assert_eq!(team["access_group_ids"], json!(["ag1"]));
    assert_eq!(team["model_max_budget"]["demo"]["max_budget"], 3);
    // The master key has no user row, so it is not added as a member.
    assert_eq!(team["members_with_roles"], json!([]));

    let budget = gw.store.budgets().find(&budget_id).await.unwrap().unwrap();
    assert_eq!(budget.max_budget, NanoUsd::from_usd(5.0));
    assert_eq!(budget.rpm_limit, Some(3));
    assert_eq!(budget.tpm_limit, Some(300));

    let (status, info) = get(&gw, "/team/info?team_id=t1").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["team_id"], "t1");
    assert_eq!(info["team_info"], team);
    assert_eq!(info["keys"], json!([]));
    assert_eq!(info["team_memberships"], json!([]));

    let (status, body) = post(&gw, "/team/new", json!({"team_id": "t1"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("already exists"), "{body}");

    // Defaults: generated id, LiteLLM's default member permissions.
    let (status, plain) = post(&gw, "/team/new", json!({})).await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["team_id"].as_str().unwrap().len(), 36);
    assert_eq!(
        plain["team_member_permissions"],
        json!(["/key/info", "/key/health"])
    );

    let (status, updated) = post(
        &gw,
        "/team/update",
        json!({"team_id": "t1", "team_alias": "Renamed", "max_budget": 90, "team_member_budget": 7}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["team_id"], "t1");
    let data = &updated["data"];
    assert_eq!(data["team_alias"], "Renamed");
    assert_eq!(data["max_budget"], 90.0);
    assert_eq!(data["metadata"]["cost_center"], "42", "metadata kept");
    assert_eq!(
        data["metadata"]["team_member_budget_id"],
        budget_id.as_str()
    );
    let budget = gw.store.budgets().find(&budget_id).await.unwrap().unwrap();
    assert_eq!(budget.max_budget, NanoUsd::from_usd(7.0));

    let (status, _) = post(&gw, "/team/update", json!({"team_id": "nope"})).await;
    assert_eq!(status, 404);
    let (status, body) = post(&gw, "/team/update", json!({"team_alias": "x"})).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = get(&gw, "/team/info?team_id=nope").await;
    assert_eq!(status, 404);
    let (status, _) = get(&gw, "/team/info").await;
    assert_eq!(status, 422);
    gw.stop().await;
}

async fn new_team_rejects_bad_input_and_writes_nothing(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let (status, body) = post(
        &gw,
        "/organization/new",
        json!({"organization_id": "o1", "organization_alias": "Org", "models": ["demo"],
               "max_budget": 100, "tpm_limit": 1000, "rpm_limit": 100}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let cases = [
        (json!({"max_budget": -1}), 400, "max_budget"),
        (
            json!({"max_budget": 10, "soft_budget": 10}),
            400,
            "soft_budget",
        ),
        (json!({"budget_duration": "soon"}), 400, "budget_duration"),
        (json!({"tpm_limit": -5}), 400, "tpm_limit"),
        (json!({"organization_id": "nope"}), 404, "nope"),
        (
            json!({"members_with_roles": [{"role": "user"}]}),
            400,
            "user_id or user_email",
        ),
        (
            json!({"members_with_roles": [{"role": "owner", "user_id": "x"}]}),
            400,
            "role",
        ),
        (
            json!({"team_member_permissions": ["/user/new"]}),
            400,
            "/user/new",
        ),
        (json!({"rpm_limit_type": "fast"}), 400, "rpm_limit_type"),
        (
            json!({"model_rpm_limit": {"demo": -1}}),
            400,
            "model_rpm_limit",
        ),
        (json!({"team_member_budget": -2}), 400, "team_member_budget"),
        (
            json!({"team_member_key_duration": "forever"}),
            400,
            "team_member_key_duration",
        ),
        (json!({"max_budget": "lots"}), 422, "max_budget"),
        (
            json!({"organization_id": "o1", "models": ["gpt-4"]}),
            400,
            "gpt-4",
        ),
        (
            json!({"organization_id": "o1", "max_budget": 200}),
            400,
            "max_budget",
        ),
        (
            json!({"organization_id": "o1", "rpm_limit": 500}),
            400,
            "rpm_limit",
        ),
    ];
    for (body, expected, needle) in cases {
        let (status, response) = post(&gw, "/team/new", body.clone()).await;
        assert_eq!(status, expected, "{body}: {response}");
        assert!(message(&response).contains(needle), "{body}: {response}");
    }
    // Guaranteed throughput: the org's RPM may not be over-allocated across its teams.
    let guaranteed = |id: &str, rpm: i64| {
        json!({"team_id": id, "organization_id": "o1", "rpm_limit": rpm,
               "rpm_limit_type": "guaranteed_throughput"})
    };
    let (status, body) = post(&gw, "/team/new", guaranteed("g1", 60)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&gw, "/team/new", guaranteed("g2", 50)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        message(&body).contains(
            "Allocated RPM limit=60 + Team RPM limit=50 is greater than organization RPM limit=100"
        ),
        "{body}"
    );
    let (status, body) = post(&gw, "/team/new", guaranteed("g2", 40)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &gw,
        "/team/update",
        json!({"team_id": "g2", "rpm_limit": 45}),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (_, list) = get(&gw, "/v2/team/list").await;
    assert_eq!(list["total"], 2, "only the two valid teams exist: {list}");
    assert!(gw.store.users().find("x").await.unwrap().is_none());
    gw.stop().await;
}

async fn members_are_one_view_across_teams_and_users(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let (status, _) = post(&gw, "/team/new", json!({"team_id": "t1"})).await;
    assert_eq!(status, 200);
    let (status, added) = post(
        &gw,
        "/team/member_add",
        json!({"team_id": "t1", "member": {"role": "user", "user_email": "a@x.com"}}),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["updated_users"][0]["user_email"], "a@x.com");
    let alice = added["updated_users"][0]["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        added["members_with_roles"],
        json!([{"user_id": alice, "user_email": "a@x.com", "role": "user"}])
    );
    assert_eq!(
        added["updated_team_memberships"][0]["user_id"],
        alice.as_str()
    );

    let (_, info) = get(&gw, &format!("/user/info?user_id={alice}")).await;
    assert_eq!(info["user_info"]["teams"], json!(["t1"]));
    assert_eq!(info["teams"][0]["team_id"], "t1");

    let (status, body) = post(
        &gw,
        "/team/member_add",
        json!({"team_id": "t1", "member": {"role": "user", "user_email": "a@x.com"}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "team_member_already_in_team");

    // A list skips members already in the team and adds the rest.
    let (status, body) = post(
        &gw,
        "/team/member_add",
        json!({"team_id": "t1", "max_budget_in_team": 3,
               "member": [{"role": "user", "user_email": "A@x.com"}, {"role": "admin", "user_id": "bob"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["members_with_roles"].as_array().unwrap().len(), 2);
    let (_, info) = get(&gw, "/team/info?team_id=t1").await;
    let bob = info["team_memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == "bob")
        .unwrap()
        .clone();
    assert_eq!(bob["role"], "admin");
    assert_eq!(bob["litellm_budget_table"]["max_budget"], 3.0);

    let (status, body) = post(
        &gw,
        "/team/member_update",
        json!({"team_id": "t1", "user_id": "bob", "role": "user", "max_budget_in_team": 9, "tpm_limit": 10000}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["max_budget_in_team"], 9.0);
    assert_eq!(body["tpm_limit"], 10000);
    assert_eq!(body["role"], "user");

    // Removing a member removes their keys of that team.
    let (status, key) = post(
        &gw,
        "/key/generate",
        json!({"user_id": "bob", "team_id": "t1"}),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let bob_key = key["key"].as_str().unwrap().to_string();
    assert_eq!(chat_status(&gw, &bob_key).await, 200);
    let (status, body) = post(
        &gw,
        "/team/member_delete",
        json!({"team_id": "t1", "user_id": "bob"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["members_with_roles"].as_array().unwrap().len(), 1);
    assert_eq!(chat_status(&gw, &bob_key).await, 401);
    let (_, info) = get(&gw, "/user/info?user_id=bob").await;
    assert_eq!(info["user_info"]["teams"], json!([]));
    let (status, _) = post(
        &gw,
        "/team/member_delete",
        json!({"team_id": "t1", "user_id": "bob"}),
    )
    .await;
    // LiteLLM's answer for a non-member.
    assert_eq!(status, 400);

    let (status, _) = post(
        &gw,
        "/team/member_add",
        json!({"team_id": "nope", "member": {"user_id": "bob"}}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = post(&gw, "/team/member_add", json!({"team_id": "t1"})).await;
    assert_eq!(status, 422);
    let (status, body) = post(
        &gw,
        "/team/member_add",
        json!({"team_id": "t1", "member": {"role": "user"}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    gw.stop().await;
}

async fn bulk_member_add_reports_each_member(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    user_key(&gw, "u1", "internal_user").await;
    user_key(&gw, "u2", "internal_user").await;
    post(&gw, "/team/new", json!({"team_id": "t"})).await;
    let (status, body) = post(
        &gw,
        "/team/bulk_member_add",
        json!({"team_id": "t", "members": [
            {"user_id": "u1", "role": "user"}, {"user_email": "new@x.com"}, {"role": "user"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_requested"], 3);
    assert_eq!(body["successful_additions"], 2);
    assert_eq!(body["failed_additions"], 1);
    assert_eq!(body["results"][0]["success"], true);
    assert_eq!(body["results"][2]["success"], false);
    assert!(body["results"][2]["error"].is_string());
    assert_eq!(
        body["updated_team"]["members_with_roles"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    post(&gw, "/team/new", json!({"team_id": "everyone"})).await;
    let (status, body) = post(
        &gw,
        "/team/bulk_member_add",
        json!({"team_id": "everyone", "all_users": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["successful_additions"], 3, "{body}");
    let (status, _) = post(
        &gw,
        "/team/bulk_member_add",
        json!({"team_id": "everyone", "members": []}),
    )
    .await;
    assert_eq!(status, 400);
    gw.stop().await;
}

async fn delete_archives_the_team_and_removes_its_keys(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    post(
        &gw,
        "/team/new",
        json!({"team_id": "t", "team_alias": "doomed"}),
    )
    .await;
    let (status, _) = post(
        &gw,
        "/user/new",
        json!({"user_id": "u1", "teams": ["t"], "auto_create_key": false}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, key) = post(
        &gw,
        "/key/generate",
        json!({"user_id": "u1", "team_id": "t"}),
    )
    .await;
    let key = key["key"].as_str().unwrap().to_string();
    assert_eq!(chat_status(&gw, &key).await, 200);

    let (status, body) = post(&gw, "/team/delete", json!({"team_ids": ["t", "missing"]})).await;
    assert_eq!(status, 404, "{body}");
    assert!(message(&body).contains("missing"));
    assert_eq!(get(&gw, "/team/info?team_id=t").await.0, 200);
    assert_eq!(chat_status(&gw, &key).await, 200, "nothing was deleted");

    let (status, body) = post(&gw, "/team/delete", json!({"team_ids": ["t"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"deleted_teams": ["t"]}));
    assert_eq!(get(&gw, "/team/info?team_id=t").await.0, 404);
    assert_eq!(chat_status(&gw, &key).await, 401);
    let (_, info) = get(&gw, "/user/info?user_id=u1").await;
    assert_eq!(info["user_info"]["teams"], json!([]));

    let (status, deleted) = get(&gw, "/v2/team/list?status=deleted").await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["total"], 1);
    let archived = &deleted["teams"][0];
    assert_eq!(archived["team_id"], "t");
    assert_eq!(archived["team_alias"], "doomed");
    assert_eq!(archived["members_with_roles"][0]["user_id"], "u1");
    assert!(archived["deleted_at"].is_string());
    let (_, active) = get(&gw, "/v2/team/list").await;
    assert_eq!(active["total"], 0);
    gw.stop().await;
}

async fn lists_page_filter_and_scope_to_the_caller(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    post(
        &gw,
        "/organization/new",
        json!({"organization_id": "o1", "organization_alias": "Org"}),
    )
    .await;
    for i in 0..25 {
        let alias = if i % 2 == 0 { "alpha" } else { "beta" };
        let mut body =
            json!({"team_id": format!("team-{i:02}"), "team_alias": format!("{alias}-{i}")});
        if i == 24 {
            body["organization_id"] = json!("o1");
        }
        let (status, response) = post(&gw, "/team/new", body).await;
        assert_eq!(status, 200, "{response}");
    }
    let mut seen = Vec::new();
    for page in 1..=3 {
        let (status, body) = get(
            &gw,
            &format!("/v2/team/list?page={page}&page_size=10&sort_by=team_id&sort_order=asc"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 25);
        assert_eq!(body["total_pages"], 3);
        for team in body["teams"].as_array().unwrap() {
            seen.push(team["team_id"].as_str().unwrap().to_string());
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("team-{i:02}")).collect();
    assert_eq!(seen, expected, "pages are in order without gaps or repeats");
    let (status, _) = get(&gw, "/v2/team/list?page=4&page_size=10").await;
    assert_eq!(status, 400);
    let (status, _) = get(&gw, "/v2/team/list?sort_by=colour").await;
    assert_eq!(status, 400);
    let (_, alpha) = get(&gw, "/v2/team/list?team_alias=ALP&page_size=100").await;
    assert_eq!(alpha["total"], 13);
    let (_, in_org) = get(&gw, "/v2/team/list?organization_id=o1").await;
    assert_eq!(in_org["total"], 1);
    let (status, no_org) = get(&gw, "/team/list?organization_id=default_organization").await;
    assert_eq!(status, 200, "{no_org}");
    assert_eq!(no_org.as_array().unwrap().len(), 24);

    let u1 = user_key(&gw, "u1", "internal_user").await;
    post(
        &gw,
        "/team/member_add",
        json!({"team_id": "team-01", "member": {"user_id": "u1", "role": "user"}}),
    )
    .await;
    let (status, mine) = get_as(&gw, &u1, "/team/list").await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["team_id"], "team-01");
    let (_, mine) = get_as(&gw, &u1, "/v2/team/list").await;
    assert_eq!(mine["total"], 1);
    let (status, body) = get_as(&gw, &u1, "/team/list?user_id=someone-else").await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = get_as(&gw, &u1, "/team/filter/ui?team_alias=alpha").await;
    assert_eq!(status, 401, "the UI filter is for admins, as in LiteLLM");
    let (status, filtered) = get(&gw, "/team/filter/ui?team_alias=alpha-2").await;
    assert_eq!(status, 200, "{filtered}");
    let ids: Vec<&str> = filtered
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["team_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["team-02", "team-20", "team-22", "team-24"]);
    let (status, _) = get_as(&gw, &u1, "/v2/team/list?status=deleted").await;
    assert_eq!(status, 401);
    gw.stop().await;
}

async fn block_models_and_permissions(backend: Backend) {
    let config = format!(
        "{CONFIG}litellm_settings:\n  default_internal_user_params:\n    available_teams: [open]\n"
    );
    let Some(gw) = TestGateway::start(backend, &config).await else {
        return;
    };
    post(
        &gw,
        "/team/new",
        json!({"team_id": "t", "models": ["demo"]}),
    )
    .await;
    let (_, key) = post(&gw, "/key/generate", json!({"team_id": "t"})).await;
    let key = key["key"].as_str().unwrap().to_string();
    assert_eq!(chat_status(&gw, &key).await, 200);
    let (status, body) = post(&gw, "/team/block", json!({"team_id": "t"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["blocked"], true);
    let (status, body) = post_as(&gw, &key, "/v1/chat/completions", chat()).await;
    assert_eq!(status, 401, "a blocked team's keys stop at once: {body}");
    assert!(message(&body).contains("Team=t is blocked"), "{body}");
    let (_, body) = post(&gw, "/team/unblock", json!({"team_id": "t"})).await;
    assert_eq!(body["blocked"], false);
    assert_eq!(chat_status(&gw, &key).await, 200);
    assert_eq!(
        post(&gw, "/team/block", json!({"team_id": "nope"})).await.0,
        404
    );

    let (status, body) = post(
        &gw,
        "/team/model/add",
        json!({"team_id": "t", "models": ["m2", "demo"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["models"], json!(["demo", "m2"]));
    let (_, body) = post(
        &gw,
        "/team/model/delete",
        json!({"team_id": "t", "models": ["demo"]}),
    )
    .await;
    assert_eq!(body["models"], json!(["m2"]));

    let (status, perms) = get(&gw, "/team/permissions_list?team_id=t").await;
    assert_eq!(status, 200, "{perms}");
    assert_eq!(
        perms["team_member_permissions"],
        json!(["/key/info", "/key/health"])
    );
    assert!(
        perms["all_available_permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("/key/generate"))
    );
    let (status, body) = post(
        &gw,
        "/team/permissions_update",
        json!({"team_id": "t", "team_member_permissions": ["/key/generate", "/key/info"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["team_member_permissions"],
        json!(["/key/generate", "/key/info"])
    );
    let (status, _) = post(
        &gw,
        "/team/permissions_update",
        json!({"team_id": "t", "team_member_permissions": ["/user/delete"]}),
    )
    .await;
    assert_eq!(status, 400);

    // Available teams: listed for everyone, and users may join them themselves.
    post(&gw, "/team/new", json!({"team_id": "open"})).await;
    let u1 = user_key(&gw, "u1", "internal_user").await;
    let (status, available) = get_as(&gw, &u1, "/team/available").await;
    assert_eq!(status, 200, "{available}");
    assert_eq!(available[0]["team_id"], "open");
    let (status, body) = post_as(
        &gw,
        &u1,
        "/team/member_add",
        json!({"team_id": "open", "member": {"user_id": "u1", "role": "user"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = post_as(
        &gw,
        &u1,
        "/team/member_add",
        json!({"team_id": "t", "member": {"user_id": "u1", "role": "user"}}),
    )
    .await;
    assert_eq!(status, 403, "t is not available to join");
    gw.stop().await;
}

async fn team_roles_decide_who_may_do_what(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let admin = user_key(&gw, "admin_u", "internal_user").await;
    let member = user_key(&gw, "member_u", "internal_user").await;
    let outsider = user_key(&gw, "outsider", "internal_user").await;
    let viewer = user_key(&gw, "viewer", "proxy_admin_viewer").await;
    let (status, body) = post(
        &gw,
        "/team/new",
        json!({"team_id": "t", "models": ["demo"], "max_budget": 10,
               "members_with_roles": [{"role": "admin", "user_id": "admin_u"}, {"role": "user", "user_id": "member_u"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    for (key, expected) in [
        (&admin, 200),
        (&member, 200),
        (&outsider, 403),
        (&viewer, 200),
    ] {
        let (status, body) = get_as(&gw, key, "/team/info?team_id=t").await;
        assert_eq!(status, expected, "{body}");
    }
    for (key, expected) in [
        (&admin, 200),
        (&member, 403),
        (&outsider, 403),
        (&viewer, 403),
    ] {
        let (status, body) = post_as(
            &gw,
            key,
            "/team/update",
            json!({"team_id": "t", "team_alias": "x"}),
        )
        .await;
        assert_eq!(status, expected, "{body}");
    }
    let (status, body) = post_as(
        &gw,
        &admin,
        "/team/update",
        json!({"team_id": "t", "max_budget": 20}),
    )
    .await;
    assert_eq!(status, 403, "a team admin may not raise the budget: {body}");
    let (status, body) = post_as(
        &gw,
        &admin,
        "/team/update",
        json!({"team_id": "t", "max_budget": 5}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (key, expected) in [(&admin, 200), (&member, 403), (&outsider, 403)] {
        let (status, body) = post_as(
            &gw,
            key,
            "/team/member_add",
            json!({"team_id": "t", "member": {"user_email": format!("{expected}-{}@x.com", key.len())}}),
        )
        .await;
        assert_eq!(status, expected, "{body}");
    }
    let (status, body) = post_as(
        &gw,
        &admin,
        "/team/member_add",
        json!({"team_id": "t", "member": {"user_id": "ghost"}}),
    )
    .await;
    assert_eq!(status, 403, "only proxy admins invent user ids: {body}");
    for (key, expected) in [(&outsider, 401), (&viewer, 401)] {
        let (status, body) = post_as(&gw, key, "/team/new", json!({})).await;
        assert_eq!(status, expected, "{body}");
    }
    assert_eq!(
        post_as(&gw, &member, "/team/delete", json!({"team_ids": ["t"]}))
            .await
            .0,
        403
    );
    assert_eq!(
        post_as(&gw, &outsider, "/team/delete", json!({"team_ids": ["t"]}))
            .await
            .0,
        401
    );
    assert_eq!(
        post_as(&gw, &admin, "/team/block", json!({"team_id": "t"}))
            .await
            .0,
        401
    );

    // Team keys: members need the team's permission; admins always may.
    let (status, body) = post_as(&gw, &member, "/key/generate", json!({"team_id": "t"})).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "team_member_permission_error");
    let (status, admin_key) = post_as(&gw, &admin, "/key/generate", json!({"team_id": "t"})).await;
    assert_eq!(status, 200, "{admin_key}");
    assert_eq!(admin_key["user_id"], "admin_u");
    let (status, body) = post_as(
        &gw,
        &admin,
        "/key/generate",
        json!({"team_id": "t", "models": ["other"]}),
    )
    .await;
    assert_eq!(status, 400, "key models stay within the team's: {body}");
    let (status, body) = post_as(
        &gw,
        &admin,
        "/team/permissions_update",
        json!({"team_id": "t", "team_member_permissions": ["/key/generate", "/key/info"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    post(
        &gw,
        "/team/update",
        json!({"team_id": "t", "team_member_key_duration": "1h"}),
    )
    .await;
    let (status, member_key) = post_as(
        &gw,
        &member,
        "/key/generate",
        json!({"team_id": "t", "duration": "30d"}),
    )
    .await;
    assert_eq!(status, 200, "{member_key}");
    assert_eq!(member_key["team_id"], "t");
    assert_eq!(member_key["user_id"], "member_u");
    let expires = bursar_core::time::parse_ms(member_key["expires"].as_str().unwrap()).unwrap();
    assert!(
        expires <= bursar_store::now_ms() + 3_600_000 + 60_000,
        "capped by team_member_key_duration"
    );
    let member_token = member_key["token"].as_str().unwrap().to_string();
    let admin_token = admin_key["token"].as_str().unwrap().to_string();

    let (status, _) = get_as(&gw, &member, &format!("/key/info?key={admin_token}")).await;
    assert_eq!(status, 200, "/key/info is a default member permission");
    let (status, body) = get_as(&gw, &outsider, &format!("/key/info?key={admin_token}")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["type"], "team_member_permission_error");
    let (status, body) = post_as(
        &gw,
        &member,
        "/key/delete",
        json!({"keys": [member_token.clone()]}),
    )
    .await;
    assert_eq!(status, 401, "members need /key/delete: {body}");
    let (_, listed) = get_as(&gw, &admin, "/key/list").await;
    let own = listed["total_count"].as_u64().unwrap();
    let (_, listed) = get_as(&gw, &admin, "/key/list?include_team_keys=true").await;
    assert_eq!(listed["total_count"].as_u64().unwrap(), own + 1, "{listed}");
    let (status, _) = post_as(&gw, &admin, "/key/delete", json!({"keys": [member_token]})).await;
    assert_eq!(status, 200);

    // Org admins manage the teams of their organization.
    let org_admin = user_key(&gw, "org_admin_u", "internal_user").await;
    post(
        &gw,
        "/organization/new",
        json!({"organization_id": "o", "organization_alias": "O"}),
    )
    .await;
    post(
        &gw,
        "/organization/new",
        json!({"organization_id": "other", "organization_alias": "Other"}),
    )
    .await;
    let (status, body) = post(
        &gw,
        "/organization/member_add",
        json!({"organization_id": "o", "member": {"user_id": "org_admin_u", "role": "org_admin"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_as(
        &gw,
        &org_admin,
        "/team/new",
        json!({"team_id": "ot", "organization_id": "o"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["members_with_roles"][0]["user_id"], "org_admin_u");
    assert_eq!(body["members_with_roles"][0]["role"], "admin");
    let (status, body) = post_as(&gw, &org_admin, "/team/new", json!({})).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("organization_id"));
    let (status, _) = post_as(
        &gw,
        &org_admin,
        "/team/new",
        json!({"organization_id": "other"}),
    )
    .await;
    assert_eq!(status, 401);
    post(
        &gw,
        "/team/new",
        json!({"team_id": "t2", "organization_id": "o"}),
    )
    .await;
    let (status, body) = post_as(
        &gw,
        &org_admin,
        "/team/update",
        json!({"team_id": "t2", "max_budget": 99}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        post_as(&gw, &org_admin, "/team/block", json!({"team_id": "t2"}))
            .await
            .0,
        200
    );
    assert_eq!(
        post_as(
            &gw,
            &org_admin,
            "/team/update",
            json!({"team_id": "t", "team_alias": "no"})
        )
        .await
        .0,
        403
    );
    gw.stop().await;
}

/// A plain member may call a key route on the team's keys exactly when the team grants it.
async fn member_permissions_grant_each_key_route(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let member = user_key(&gw, "m", "internal_user").await;
    let (status, body) = post(
        &gw,
        "/team/new",
        json!({"team_id": "t", "members_with_roles": [{"role": "user", "user_id": "m"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let routes = [
        "/key/generate",
        "/key/info",
        "/key/update",
        "/key/delete",
        "/key/regenerate",
        "/key/block",
        "/key/unblock",
        "/key/list",
    ];
    for route in routes {
        for granted in [false, true] {
            let perms: Vec<&str> = if granted { vec![route] } else { vec![] };
            let (status, body) = post(
                &gw,
                "/team/permissions_update",
                json!({"team_id": "t", "team_member_permissions": perms}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let (_, key) = post(
                &gw,
                "/key/generate",
                json!({"team_id": "t", "user_id": "m"}),
            )
            .await;
            let token = key["token"].as_str().unwrap().to_string();
            let (status, body) = match route {
                "/key/generate" => post_as(&gw, &member, route, json!({"team_id": "t"})).await,
                "/key/info" => get_as(&gw, &member, &format!("/key/info?key={token}")).await,
                "/key/list" => get_as(&gw, &member, "/key/list?team_id=t").await,
                "/key/update" => {
                    post_as(
                        &gw,
                        &member,
                        route,
                        json!({"key": token, "metadata": {"r": 1}}),
                    )
                    .await
                }
                "/key/delete" => post_as(&gw, &member, route, json!({"keys": [token]})).await,
                _ => post_as(&gw, &member, route, json!({"key": token})).await,
            };
            if granted {
                assert_eq!(status, 200, "{route} granted: {body}");
            } else {
                assert_eq!(status, 401, "{route} not granted: {body}");
                assert_eq!(
                    body["error"]["type"], "team_member_permission_error",
                    "{route}"
                );
            }
        }
    }
    gw.stop().await;
}

/// Many `/team/new` calls at once naming the same users that do not exist yet: every call
/// succeeds, each user is created once, and the database connections stay usable.
async fn parallel_new_teams_create_their_missing_members_once(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let calls = (0..24).map(|i| {
        let body = json!({
            "team_id": format!("par-{i}"),
            "members_with_roles": [
                {"user_id": "shared-a", "role": "user"},
                {"user_id": "shared-b", "role": "admin"},
                {"user_id": format!("own-{i}"), "role": "user"},
            ],
        });
        let gw = &gw;
        async move { post(gw, "/team/new", body).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    let (status, info) = gw
        .send(Method::GET, "/user/info?user_id=shared-a", None)
        .await;
    assert_eq!(status, 200, "{info}");
    let teams = info["teams"].as_array().map_or(0, Vec::len);
    assert_eq!(teams, 24, "{info}");
    let (status, users) = gw.send(Method::GET, "/user/list?page_size=100", None).await;
    assert_eq!(status, 200);
    assert_eq!(users["total"], 2 + 24, "{users}");
    // Every pooled connection still works.
    for _ in 0..20 {
        let (status, _) = post(&gw, "/team/new", json!({})).await;
        assert_eq!(status, 200);
    }
}
