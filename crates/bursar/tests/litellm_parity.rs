//! LiteLLM behaviour that its clients and scripts rely on: an explicit `null` clears a field
//! on every update route, `/user/update` upserts for proxy admins, `/user/new` joins
//! `team_id`, `/user/list` searches, and `/team/member_delete` of a non-member is LiteLLM's 400.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, TestGateway, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(
    null_clears_key_fields_and_holders_cannot_clear_their_caps,
    null_clears_team_org_budget_customer_and_user_fields,
    user_update_upserts_for_proxy_admins_only,
    user_new_joins_team_id_and_organizations_as_internal_user,
    user_list_searches_ids_and_emails,
    team_membership_is_members_with_roles,
    routes_listing_is_public_and_complete,
    key_aliases_are_listed_for_what_the_caller_may_see,
    v2_user_info_members_me_and_seat_counts,
    patch_routes_merge_and_validate,
    service_accounts_and_spend_resets,
    team_metadata_schema_is_the_configured_one,
    bulk_updates_apply_each_change_on_its_own,
    team_callbacks_are_stored_and_never_shown,
    spend_logs_carry_the_answer_id_and_the_key_fields,
    a_shared_member_budget_is_copied_not_changed_for_all,
    management_v1_bulk_routes,
);

const CONFIG: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n";

async fn ok(gw: &TestGateway, method: Method, path: &str, body: Value) -> Value {
    let body = (method != Method::GET).then_some(body);
    let (status, out) = gw.send(method, path, body.as_ref()).await;
    assert_eq!(status, 200, "{path}: {out}");
    out
}

async fn key_info(gw: &TestGateway, raw: &str) -> Value {
    ok(
        gw,
        Method::GET,
        &format!("/key/info?key={raw}"),
        Value::Null,
    )
    .await["info"]
        .clone()
}

async fn null_clears_key_fields_and_holders_cannot_clear_their_caps(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    ok(
        &gw,
        Method::POST,
        "/user/new",
        json!({"user_id": "holder", "auto_create_key": false}),
    )
    .await;
    let key = ok(
        &gw,
        Method::POST,
        "/key/generate",
        json!({"user_id": "holder", "max_budget": 5.0, "soft_budget": 1.0, "rpm_limit": 10, "tpm_limit": 100,
               "max_parallel_requests": 2, "budget_duration": "1d", "duration": "7d"}),
    )
    .await;
    let raw = key["key"].as_str().unwrap().to_string();
    let before = key_info(&gw, &raw).await;
    assert_eq!(before["max_budget"], 5.0);
    assert!(before["expires"].is_string() && before["budget_reset_at"].is_string());

    // The holder may not lift the caps an admin set: null is a change, and a loosening one.
    for field in ["max_budget", "rpm_limit", "tpm_limit", "budget_duration"] {
        let (status, out) = gw
            .send_as(
                &raw,
                Method::POST,
                "/key/update",
                Some(&json!({"key": raw, field: null})),
            )
            .await;
        assert_eq!(status, 403, "{field}: {out}");
    }
    // Absent fields are left alone.
    ok(
        &gw,
        Method::POST,
        "/key/update",
        json!({"key": raw, "key_alias": "kept"}),
    )
    .await;
    assert_eq!(key_info(&gw, &raw).await["rpm_limit"], 10);

    let updated = ok(
        &gw,
        Method::POST,
        "/key/update",
        json!({"key": raw, "max_budget": null, "soft_budget": null, "rpm_limit": null, "tpm_limit": null,
               "max_parallel_requests": null, "budget_duration": null, "duration": null}),
    )
    .await;
    assert_eq!(updated["key"], raw);
    let after = key_info(&gw, &raw).await;
    for field in [
        "max_budget",
        "rpm_limit",
        "tpm_limit",
        "max_parallel_requests",
        "budget_duration",
        "budget_reset_at",
        "expires",
        "litellm_budget_table",
    ] {
        assert_eq!(after[field], Value::Null, "{field}: {after}");
    }
    assert_eq!(after["key_alias"], "kept");
    gw.stop().await;
}

async fn null_clears_team_org_budget_customer_and_user_fields(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let team = ok(
        &gw,
        Method::POST,
        "/team/new",
        json!({"team_id": "nt", "max_budget": 9.0, "rpm_limit": 9, "tpm_limit": 99, "budget_duration": "1d"}),
    )
    .await;
    assert_eq!(team["max_budget"], 9.0);
    let changed = ok(
        &gw,
        Method::POST,
        "/team/update",
        json!({"team_id": "nt", "max_budget": null, "rpm_limit": null, "budget_duration": null}),
    )
    .await;
    assert_eq!(changed["data"]["max_budget"], Value::Null);
    assert_eq!(changed["data"]["rpm_limit"], Value::Null);
    assert_eq!(changed["data"]["budget_duration"], Value::Null);
    assert_eq!(changed["data"]["budget_reset_at"], Value::Null);
    assert_eq!(changed["data"]["tpm_limit"], 99, "absent fields stay");

    let org = ok(
        &gw,
        Method::POST,
        "/organization/new",
        json!({"organization_alias": "o", "max_budget": 50.0, "tpm_limit": 500}),
    )
    .await;
    let org_id = org["organization_id"].as_str().unwrap().to_string();
    let org = ok(
        &gw,
        Method::PATCH,
        "/organization/update",
        json!({"organization_id": org_id, "max_budget": null}),
    )
    .await;
    assert_eq!(org["litellm_budget_table"]["max_budget"], Value::Null);
    assert_eq!(org["litellm_budget_table"]["tpm_limit"], 500);

    ok(
        &gw,
        Method::POST,
        "/budget/new",
        json!({"budget_id": "b", "max_budget": 3.0, "rpm_limit": 3}),
    )
    .await;
    let budget = ok(
        &gw,
        Method::POST,
        "/budget/update",
        json!({"budget_id": "b", "max_budget": null}),
    )
    .await;
    assert_eq!(budget["max_budget"], Value::Null);
    assert_eq!(budget["rpm_limit"], 3);

    ok(
        &gw,
        Method::POST,
        "/customer/new",
        json!({"user_id": "c", "max_budget": 4.0}),
    )
    .await;
    let customer = ok(
        &gw,
        Method::POST,
        "/customer/update",
        json!({"user_id": "c", "max_budget": null}),
    )
    .await;
    assert_eq!(customer["litellm_budget_table"]["max_budget"], Value::Null);

    ok(
        &gw,
        Method::POST,
        "/user/new",
        json!({"user_id": "u", "max_budget": 7.0, "tpm_limit": 70, "rpm_limit": 7, "auto_create_key": false}),
    )
    .await;
    let user = ok(
        &gw,
        Method::POST,
        "/user/update",
        json!({"user_id": "u", "max_budget": null, "tpm_limit": null}),
    )
    .await;
    assert_eq!(user["data"]["max_budget"], Value::Null);
    assert_eq!(user["data"]["tpm_limit"], Value::Null);
    assert_eq!(user["data"]["rpm_limit"], 7);
    gw.stop().await;
}

async fn user_update_upserts_for_proxy_admins_only(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let created = ok(
        &gw,
        Method::POST,
        "/user/update",
        json!({"user_id": "fresh", "user_alias": "Fresh", "max_budget": 2.0}),
    )
    .await;
    assert_eq!(created["user_id"], "fresh");
    assert_eq!(created["data"]["user_alias"], "Fresh");
    assert_eq!(created["data"]["max_budget"], 2.0);
    let info = ok(&gw, Method::GET, "/user/info?user_id=fresh", Value::Null).await;
    assert_eq!(info["user_info"]["user_alias"], "Fresh");
    let (status, _) = gw
        .send(
            Method::POST,
            "/user/update",
            Some(&json!({"user_id": " ", "user_alias": "x"})),
        )
        .await;
    assert_eq!(status, 422, "a blank id is never upserted");

    let plain = ok(
        &gw,
        Method::POST,
        "/user/new",
        json!({"user_id": "plain", "user_role": "internal_user"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, out) = gw
        .send_as(
            &plain,
            Method::POST,
            "/user/update",
            Some(&json!({"user_id": "ghost", "user_alias": "x"})),
        )
        .await;
    assert!([401, 403, 404].contains(&status), "{status} {out}");
    let (status, _) = gw.send(Method::GET, "/user/info?user_id=ghost", None).await;
    assert_eq!(status, 404, "no user was created");
    gw.stop().await;
}

async fn user_new_joins_team_id_and_organizations_as_internal_user(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    ok(&gw, Method::POST, "/team/new", json!({"team_id": "joined"})).await;
    let org = ok(
        &gw,
        Method::POST,
        "/organization/new",
        json!({"organization_alias": "org"}),
    )
    .await;
    let org_id = org["organization_id"].as_str().unwrap().to_string();
    let user = ok(
        &gw,
        Method::POST,
        "/user/new",
        json!({"user_id": "boss", "user_role": "proxy_admin", "team_id": "joined", "organizations": [org_id]}),
    )
    .await;
    assert_eq!(user["teams"], json!(["joined"]));
    let team = ok(&gw, Method::GET, "/team/info?team_id=joined", Value::Null).await;
    let members = &team["team_info"]["members_with_roles"];
    assert_eq!(members[0]["user_id"], "boss");
    assert_eq!(members[0]["role"], "user");
    let org = ok(
        &gw,
        Method::GET,
        &format!("/organization/info?organization_id={org_id}"),
        Value::Null,
    )
    .await;
    assert_eq!(org["members"][0]["user_id"], "boss");
    assert_eq!(
        org["members"][0]["user_role"], "internal_user",
        "the membership role is LiteLLM's, not the global role"
    );
    gw.stop().await;
}

async fn user_list_searches_ids_and_emails(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    for (id, email) in [
        ("Alice-1", "alice@example.com"),
        ("bob-2", "BOB@corp.test"),
        ("carol-3", "carol@example.com"),
    ] {
        ok(
            &gw,
            Method::POST,
            "/user/new",
            json!({"user_id": id, "user_email": email, "auto_create_key": false}),
        )
        .await;
    }
    let ids = |body: &Value| -> Vec<String> {
        body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["user_id"].as_str().unwrap().to_string())
            .collect()
    };
    let list = ok(&gw, Method::GET, "/user/list?search=alice", Value::Null).await;
    assert_eq!(ids(&list), ["Alice-1"]);
    let list = ok(&gw, Method::GET, "/user/list?search=CORP", Value::Null).await;
    assert_eq!(ids(&list), ["bob-2"]);
    let list = ok(&gw, Method::GET, "/user/list?search=example", Value::Null).await;
    assert_eq!(list["total"], 2);
    // One id: a case-insensitive substring; several: exact ids.
    let list = ok(&gw, Method::GET, "/user/list?user_ids=ALICE", Value::Null).await;
    assert_eq!(ids(&list), ["Alice-1"]);
    let list = ok(
        &gw,
        Method::GET,
        "/user/list?user_ids=alice,bob-2",
        Value::Null,
    )
    .await;
    assert_eq!(ids(&list), ["bob-2"]);
    // Search and the other filters combine.
    let list = ok(
        &gw,
        Method::GET,
        "/user/list?search=example&user_email=carol",
        Value::Null,
    )
    .await;
    assert_eq!(ids(&list), ["carol-3"]);
    gw.stop().await;
}

async fn team_membership_is_members_with_roles(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    ok(&gw, Method::POST, "/team/new", json!({"team_id": "tm"})).await;
    let added = ok(
        &gw,
        Method::POST,
        "/team/member_add",
        json!({"team_id": "tm", "member": [{"user_id": "m1", "role": "admin"}, {"user_id": "m2", "role": "user"}]}),
    )
    .await;
    assert_eq!(added["members_with_roles"].as_array().unwrap().len(), 2);
    // The legacy columns are not membership.
    assert_eq!(added["members"], json!([]));
    assert_eq!(added["admins"], json!([]));

    let (status, out) = gw
        .send(
            Method::POST,
            "/team/member_delete",
            Some(&json!({"team_id": "tm", "user_id": "stranger"})),
        )
        .await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["error"]["message"], "User not found in team");
    let after = ok(
        &gw,
        Method::POST,
        "/team/member_delete",
        json!({"team_id": "tm", "user_id": "m2"}),
    )
    .await;
    assert_eq!(after["members_with_roles"][0]["user_id"], "m1");
    assert_eq!(after["members_with_roles"].as_array().unwrap().len(), 1);
    gw.stop().await;
}

async fn routes_listing_is_public_and_complete(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let response = reqwest::get(gw.endpoint("/routes")).await.unwrap();
    assert_eq!(response.status(), 200, "no key needed");
    let body: Value = response.json().await.unwrap();
    let routes = body["routes"].as_array().unwrap();
    let find = |path: &str, method: &str| {
        routes
            .iter()
            .find(|r| {
                r["path"] == path && r["methods"].as_array().unwrap().contains(&json!(method))
            })
            .cloned()
    };
    let generate = find("/key/generate", "POST").expect("/key/generate is listed");
    assert_eq!(generate["name"], "generate_key_fn");
    assert_eq!(generate["endpoint"], "generate_key_fn");
    assert!(find("/v1/chat/completions", "POST").is_some());
    assert!(
        find("/chat/completions", "POST").is_some(),
        "aliases are listed too"
    );
    assert!(find("/organization/update", "PATCH").is_some());
    assert!(find("/routes", "GET").is_some());
    assert!(find("/openapi.json", "GET").is_some());
    gw.stop().await;
}

async fn key_aliases_are_listed_for_what_the_caller_may_see(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let owner = ok(
        &gw,
        Method::POST,
        "/user/new",
        json!({"user_id": "owner", "key_alias": "own-b", "user_role": "internal_user"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    for alias in ["svc-a", "svc-c", "Svc-B"] {
        ok(
            &gw,
            Method::POST,
            "/key/generate",
            json!({"key_alias": alias}),
        )
        .await;
    }
    ok(&gw, Method::POST, "/key/generate", json!({})).await;
    let all = ok(&gw, Method::GET, "/key/aliases", Value::Null).await;
    assert_eq!(all["aliases"], json!(["Svc-B", "own-b", "svc-a", "svc-c"]));
    assert_eq!(all["total_count"], 4);
    assert_eq!(all["current_page"], 1);
    assert_eq!(all["size"], 50);
    let page = ok(
        &gw,
        Method::GET,
        "/key/aliases?search=SVC&size=2&page=2",
        Value::Null,
    )
    .await;
    assert_eq!(page["aliases"], json!(["svc-c"]));
    assert_eq!(page["total_count"], 3);
    assert_eq!(page["total_pages"], 2);
    let (status, mine) = gw.send_as(&owner, Method::GET, "/key/aliases", None).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(
        mine["aliases"],
        json!(["own-b"]),
        "a user sees only its own keys' aliases"
    );
    let (status, _) = gw.send(Method::GET, "/key/aliases?size=101", None).await;
    assert_eq!(status, 400);
    gw.stop().await;
}

async fn v2_user_info_members_me_and_seat_counts(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let key_of = |body: Value| body["key"].as_str().unwrap().to_string();
    let lead = key_of(
        ok(
            &gw,
            Method::POST,
            "/user/new",
            json!({"user_id": "lead", "user_role": "internal_user"}),
        )
        .await,
    );
    let dev = key_of(
        ok(
            &gw,
            Method::POST,
            "/user/new",
            json!({"user_id": "dev", "user_role": "internal_user", "max_budget": 4.0}),
        )
        .await,
    );
    let outsider = key_of(
        ok(
            &gw,
            Method::POST,
            "/user/new",
            json!({"user_id": "outsider", "user_role": "internal_user"}),
        )
        .await,
    );
    ok(
        &gw,
        Method::POST,
        "/team/new",
        json!({"team_id": "squad", "team_alias": "Squad", "members_with_roles": [
            {"user_id": "lead", "role": "admin"}, {"user_id": "dev", "role": "user"}]}),
    )
    .await;

    let (status, me) = gw.send_as(&dev, Method::GET, "/v2/user/info", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user_id"], "dev");
    assert_eq!(me["max_budget"], 4.0);
    assert_eq!(me["teams"], json!(["squad"]));
    assert!(me.get("keys").is_none(), "v2 is the user alone");
    let (status, _) = gw
        .send_as(&lead, Method::GET, "/v2/user/info?user_id=dev", None)
        .await;
    assert_eq!(status, 200, "a team admin sees the team's members");
    let (status, out) = gw
        .send_as(&outsider, Method::GET, "/v2/user/info?user_id=dev", None)
        .await;
    assert_eq!(status, 404, "{out}");
    assert_eq!(out["error"]["message"], "User not found: dev");
    let (status, _) = gw
        .send(Method::GET, "/v2/user/info?user_id=nobody", None)
        .await;
    assert_eq!(status, 404);

    let (status, mine) = gw
        .send_as(&dev, Method::GET, "/team/squad/members/me", None)
        .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["role"], "user");
    assert_eq!(mine["team_alias"], "Squad");
    assert_eq!(mine["spend"], 0.0);
    let (status, _) = gw
        .send_as(&outsider, Method::GET, "/team/squad/members/me", None)
        .await;
    assert_eq!(status, 404);
    // The master key acts as LiteLLM's default_user_id, which is no member.
    let (status, _) = gw.send(Method::GET, "/team/squad/members/me", None).await;
    assert_eq!(status, 404);

    let seats = ok(&gw, Method::GET, "/user/available_users", Value::Null).await;
    assert_eq!(seats["total_users_used"], 3);
    assert_eq!(seats["total_teams_used"], 1);
    assert_eq!(seats["total_users"], Value::Null);
    let (status, _) = gw
        .send_as(&dev, Method::GET, "/user/available_users", None)
        .await;
    assert!(status == 401 || status == 403, "{status}");
    gw.stop().await;
}

async fn patch_routes_merge_and_validate(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    ok(
        &gw,
        Method::POST,
        "/team/new",
        json!({"team_id": "pt", "max_budget": 8.0, "metadata": {"a": 1, "b": {"c": 1}}}),
    )
    .await;
    let team = ok(
        &gw,
        Method::PATCH,
        "/team/pt",
        json!({"metadata": {"a": null, "b": {"d": 2}}, "max_budget": null, "team_alias": "Patched"}),
    )
    .await;
    assert_eq!(
        team["team_id"], "pt",
        "the team itself, not {{team_id, data}}"
    );
    assert_eq!(team["metadata"], json!({"b": {"c": 1, "d": 2}}));
    assert_eq!(team["max_budget"], Value::Null);
    assert_eq!(team["team_alias"], "Patched");
    let (status, out) = gw
        .send(
            Method::PATCH,
            "/team/pt",
            Some(&json!({"team_id": "other"})),
        )
        .await;
    assert_eq!(status, 400, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );
    let (status, _) = gw
        .send(
            Method::PATCH,
            "/team/missing",
            Some(&json!({"team_alias": "x"})),
        )
        .await;
    assert_eq!(status, 404);
    let viewer = ok(
        &gw,
        Method::POST,
        "/user/new",
        json!({"user_id": "pv", "user_role": "internal_user_viewer"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = gw
        .send_as(
            &viewer,
            Method::PATCH,
            "/team/pt",
            Some(&json!({"team_alias": "hijack"})),
        )
        .await;
    assert!(status == 401 || status == 403, "{status}");

    let org = ok(
        &gw,
        Method::POST,
        "/organization/new",
        json!({"organization_alias": "po", "max_budget": 20.0, "metadata": {"keep": false, "x": 1}}),
    )
    .await;
    let id = org["organization_id"].as_str().unwrap().to_string();
    let path = format!("/v2/organization/{id}");
    let patched = ok(
        &gw,
        Method::PATCH,
        &path,
        json!({"max_budget": null, "metadata": {"y": 2}, "tpm_limit": 100}),
    )
    .await;
    assert_eq!(patched["organization_id"], id);
    assert_eq!(patched["litellm_budget_table"]["max_budget"], Value::Null);
    assert_eq!(patched["litellm_budget_table"]["tpm_limit"], 100);
    assert_eq!(
        patched["metadata"],
        json!({"y": 2}),
        "the sent metadata is written"
    );
    assert_eq!(patched["organization_alias"], "po", "absent fields stay");
    for (body, field) in [
        (json!({}), "body"),
        (json!({"models": null}), "models"),
        (json!({"organization_alias": null}), "organization_alias"),
        (json!({"budget_id": "b"}), "budget_id"),
    ] {
        let (status, out) = gw.send(Method::PATCH, &path, Some(&body)).await;
        assert_eq!(status, 422, "{body}: {out}");
        assert!(
            out["error"]["param"]
                .as_str()
                .unwrap_or_default()
                .contains(field)
                || out["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {out}"
        );
    }
    let cleared = ok(&gw, Method::PATCH, &path, json!({"metadata": null})).await;
    assert_eq!(cleared["metadata"], json!({}));
    let (status, _) = gw
        .send(
            Method::PATCH,
            "/v2/organization/nope",
            Some(&json!({"tpm_limit": 1})),
        )
        .await;
    assert_eq!(status, 404);
    gw.stop().await;
}

/// Settles `usd` of spend for `key` (its user and team) straight through the ledger.
async fn spend(gw: &TestGateway, token: &str, user: Option<&str>, team: Option<&str>, usd: f64) {
    let event = bursar_store::SpendEvent {
        request_id: uuid::Uuid::new_v4().to_string(),
        call_type: "acompletion".into(),
        api_key: token.into(),
        user_id: user.map(str::to_string),
        team_id: team.map(str::to_string),
        model_group: "demo".into(),
        model: "demo".into(),
        spend_nano: bursar_core::NanoUsd::from_usd(usd).unwrap().0,
        success: true,
        metadata: json!({}),
        ..Default::default()
    };
    gw.store
        .spend()
        .record(&[event], bursar_store::RecordOptions::default())
        .await
        .unwrap();
}

async fn service_accounts_and_spend_resets(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    ok(
        &gw,
        Method::POST,
        "/team/new",
        json!({"team_id": "ops", "members_with_roles": [
        {"user_id": "boss", "role": "admin"}, {"user_id": "worker", "role": "user"}]}),
    )
    .await;
    let boss = ok(
        &gw,
        Method::POST,
        "/key/generate",
        json!({"user_id": "boss"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let worker = ok(
        &gw,
        Method::POST,
        "/key/generate",
        json!({"user_id": "worker"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();

    // Service accounts: a team is required and must exist; the key has no owner.
    let (status, out) = gw
        .send(
            Method::POST,
            "/key/service-account/generate",
            Some(&json!({"key_alias": "bot"})),
        )
        .await;
    assert_eq!(status, 400, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("team_id is required")
    );
    let (status, _) = gw
        .send(
            Method::POST,
            "/key/service-account/generate",
            Some(&json!({"team_id": "nope"})),
        )
        .await;
    assert_eq!(status, 400);
    let bot = ok(
        &gw,
        Method::POST,
        "/key/service-account/generate",
        json!({"team_id": "ops", "key_alias": "bot", "user_id": "someone", "max_budget": 10.0}),
    )
    .await;
    assert_eq!(bot["user_id"], Value::Null);
    assert_eq!(bot["team_id"], "ops");
    assert_eq!(bot["metadata"]["service_account_id"], "bot");
    let bot_key = bot["key"].as_str().unwrap().to_string();
    let bot_hash = bot["token"].as_str().unwrap().to_string();

    // Key spend resets: within the spend and the budget; proxy and team admins only.
    spend(&gw, &bot_hash, None, Some("ops"), 4.0).await;
    let path = format!("/key/{bot_key}/reset_spend");
    for (to, why) in [(json!(-1.0), ">= 0"), (json!(5.0), "current spend")] {
        let (status, out) = gw
            .send(Method::POST, &path, Some(&json!({"reset_to": to})))
            .await;
        assert_eq!(status, 400, "{out}");
        assert!(
            out["error"]["message"].as_str().unwrap().contains(why),
            "{out}"
        );
    }
    let (status, _) = gw
        .send(Method::POST, &path, Some(&json!({"reset_to": true})))
        .await;
    assert_eq!(status, 422);
    let (status, _) = gw
        .send_as(
            &worker,
            Method::POST,
            &path,
            Some(&json!({"reset_to": 0.0})),
        )
        .await;
    assert!(status == 401 || status == 403, "{status}");
    let (status, reset) = gw
        .send_as(&boss, Method::POST, &path, Some(&json!({"reset_to": 1.5})))
        .await;
    assert_eq!(status, 200, "{reset}");
    assert_eq!(reset["key_hash"], bot_hash);
    assert_eq!(reset["previous_spend"], 4.0);
    assert_eq!(reset["spend"], 1.5);
    assert_eq!(reset["max_budget"], 10.0);
    let info = key_info(&gw, &bot_key).await;
    assert_eq!(info["spend"], 1.5);
    let (status, _) = gw
        .send(
            Method::POST,
            "/key/sk-unknown-unknown/reset_spend",
            Some(&json!({"reset_to": 0.0})),
        )
        .await;
    assert_eq!(status, 404);

    // Member spend resets and budget resets.
    let worker_hash = bursar_core::keys::hash_key(&worker);
    spend(&gw, &worker_hash, Some("worker"), Some("ops"), 3.0).await;
    let member_path = "/team/ops/member/worker/reset_spend";
    let (status, out) = gw
        .send_as(
            &worker,
            Method::POST,
            member_path,
            Some(&json!({"reset_to": 0.0})),
        )
        .await;
    assert!(status == 401 || status == 403, "{status} {out}");
    let (status, out) = gw
        .send_as(
            &boss,
            Method::POST,
            "/team/ops/member/boss/reset_spend",
            Some(&json!({"reset_to": 0.0})),
        )
        .await;
    assert_eq!(status, 403, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("your own spend")
    );
    let reset = ok(&gw, Method::POST, member_path, json!({"reset_to": 1.0})).await;
    assert_eq!(reset["previous_spend"], 3.0);
    assert_eq!(reset["spend"], 1.0);
    let team = ok(&gw, Method::GET, "/team/info?team_id=ops", Value::Null).await;
    let row = team["team_memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == "worker")
        .unwrap()
        .clone();
    assert_eq!(row["spend"], 1.0);
    assert_eq!(
        row["total_spend"], 3.0,
        "the lifetime total keeps what was spent"
    );
    let (status, _) = gw
        .send(
            Method::POST,
            "/team/ops/member/stranger/reset_spend",
            Some(&json!({"reset_to": 0.0})),
        )
        .await;
    assert_eq!(status, 404);

    ok(
        &gw,
        Method::POST,
        "/team/member_update",
        json!({"team_id": "ops", "user_id": "worker", "max_budget_in_team": 9.0}),
    )
    .await;
    let budget = ok(
        &gw,
        Method::POST,
        "/team/ops/member/worker/reset_budget",
        Value::Null,
    )
    .await;
    assert_eq!(budget["budget_source"], "none");
    assert!(budget["previous_budget_id"].is_string());
    assert_eq!(budget["budget_id"], Value::Null);
    let team = ok(&gw, Method::GET, "/team/info?team_id=ops", Value::Null).await;
    let row = team["team_memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == "worker")
        .unwrap()
        .clone();
    assert_eq!(row["litellm_budget_table"], Value::Null);
    assert_eq!(row["spend"], 1.0, "spend is kept");
    gw.stop().await;
}

async fn team_metadata_schema_is_the_configured_one(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let empty = ok(&gw, Method::GET, "/team/metadata_schema", Value::Null).await;
    assert_eq!(empty, json!({"fields": []}));
    gw.stop().await;
    let config = format!(
        "{CONFIG}general_settings:\n  team_metadata_schema:\n    - {{key: cost_center, label: Cost center}}\n    - {{key: owner}}\n"
    );
    let Some(gw) = TestGateway::start(backend, &config).await else {
        return;
    };
    let schema = ok(&gw, Method::GET, "/team/metadata_schema", Value::Null).await;
    assert_eq!(
        schema,
        json!({"fields": [{"key": "cost_center", "label": "Cost center"}, {"key": "owner", "label": null}]})
    );
    gw.stop().await;
}

async fn bulk_updates_apply_each_change_on_its_own(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    ok(
        &gw,
        Method::POST,
        "/team/new",
        json!({"team_id": "bt", "members_with_roles": [
        {"user_id": "lead", "role": "admin"}, {"user_id": "dev", "role": "user"}]}),
    )
    .await;
    let a = ok(
        &gw,
        Method::POST,
        "/key/generate",
        json!({"key_alias": "ka", "max_budget": 5.0, "team_id": "bt"}),
    )
    .await;
    let b = ok(
        &gw,
        Method::POST,
        "/key/generate",
        json!({"key_alias": "kb", "team_id": "bt"}),
    )
    .await;
    let c = ok(
        &gw,
        Method::POST,
        "/key/generate",
        json!({"key_alias": "kc"}),
    )
    .await;
    let key = |v: &Value| v["key"].as_str().unwrap().to_string();
    let (ka, kb, kc) = (key(&a), key(&b), key(&c));

    // /key/bulk_update: per-key outcomes; only its fields; proxy admins only.
    let done = ok(
        &gw,
        Method::POST,
        "/key/bulk_update",
        json!({"keys": [
            {"key": ka, "max_budget": null, "tags": ["x"]},
            {"key": kb, "max_budget": 2.0},
            {"key": kc, "rpm_limit": 5},
            {"key": "sk-missing-missing-missing", "max_budget": 1.0},
        ]}),
    )
    .await;
    assert_eq!(done["total_requested"], 4);
    let ok_keys: Vec<&str> = done["successful_updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["key"].as_str().unwrap())
        .collect();
    assert_eq!(ok_keys, [ka.as_str(), kb.as_str()]);
    let failed = done["failed_updates"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    assert!(
        failed[0]["failed_reason"]
            .as_str()
            .unwrap()
            .contains("rpm_limit"),
        "{done}"
    );
    assert_eq!(failed[0]["key_info"]["key_alias"], "kc");
    assert_eq!(failed[1]["key_info"], Value::Null);
    assert_eq!(key_info(&gw, &ka).await["max_budget"], Value::Null);
    assert_eq!(key_info(&gw, &ka).await["metadata"]["tags"], json!(["x"]));
    assert_eq!(key_info(&gw, &kb).await["max_budget"], 2.0);
    assert_eq!(key_info(&gw, &kc).await["rpm_limit"], Value::Null);
    let (status, _) = gw
        .send(Method::POST, "/key/bulk_update", Some(&json!({"keys": []})))
        .await;
    assert_eq!(status, 400);
    let lead = ok(
        &gw,
        Method::POST,
        "/key/generate",
        json!({"user_id": "lead", "team_id": "bt"}),
    )
    .await;
    let lead_key = key(&lead);
    let (status, _) = gw
        .send_as(
            &lead_key,
            Method::POST,
            "/key/bulk_update",
            Some(&json!({"keys": [{"key": kb, "max_budget": 9.0}]})),
        )
        .await;
    assert!(status == 401 || status == 403, "{status}");

    // /team/key/bulk_update: the team's keys only, with KeyUpdateFields.
    let done = ok(
        &gw,
        Method::POST,
        "/team/key/bulk_update",
        json!({"team_id": "bt", "key_ids": [kb, kc], "update_fields": {"tpm_limit": 50}}),
    )
    .await;
    assert_eq!(done["successful_updates"].as_array().unwrap().len(), 1);
    assert!(
        done["failed_updates"][0]["failed_reason"]
            .as_str()
            .unwrap()
            .contains("not in team")
    );
    assert_eq!(key_info(&gw, &kb).await["tpm_limit"], 50);
    let done = ok(
        &gw,
        Method::POST,
        "/team/key/bulk_update",
        json!({"team_id": "bt", "all_keys_in_team": true, "update_fields": {"rpm_limit": 7}}),
    )
    .await;
    assert_eq!(done["total_requested"], 3, "ka, kb and lead's key: {done}");
    assert_eq!(key_info(&gw, &ka).await["rpm_limit"], 7);
    for (body, status) in [
        (
            json!({"team_id": "bt", "update_fields": {"rpm_limit": 1}}),
            422,
        ),
        (
            json!({"team_id": "bt", "all_keys_in_team": true, "update_fields": {}}),
            422,
        ),
        (
            json!({"team_id": "bt", "all_keys_in_team": true, "update_fields": {"user_id": "x"}}),
            422,
        ),
        (
            json!({"team_id": "none", "all_keys_in_team": true, "update_fields": {"rpm_limit": 1}}),
            404,
        ),
    ] {
        let (got, out) = gw
            .send(Method::POST, "/team/key/bulk_update", Some(&body))
            .await;
        assert_eq!(got, status, "{body}: {out}");
    }

    // /team/permissions_bulk_update: merged, deduplicated, counted.
    ok(&gw, Method::POST, "/team/new", json!({"team_id": "bt2"})).await;
    let done = ok(
        &gw,
        Method::POST,
        "/team/permissions_bulk_update",
        json!({"permissions": ["/key/generate", "/key/update"], "team_ids": ["bt", "bt2"]}),
    )
    .await;
    assert_eq!(done["teams_updated"], 2);
    let again = ok(
        &gw,
        Method::POST,
        "/team/permissions_bulk_update",
        json!({"permissions": ["/key/generate"], "apply_to_all_teams": true}),
    )
    .await;
    assert_eq!(again["teams_updated"], 0, "they have it already");
    let perms = ok(
        &gw,
        Method::GET,
        "/team/permissions_list?team_id=bt2",
        Value::Null,
    )
    .await;
    let list = perms["team_member_permissions"].as_array().unwrap();
    assert!(list.contains(&json!("/key/generate")) && list.contains(&json!("/key/update")));
    for (body, status) in [
        (json!({"permissions": ["/key/generate"]}), 400),
        (
            json!({"permissions": ["/key/generate"], "team_ids": ["bt"], "apply_to_all_teams": true}),
            400,
        ),
        (
            json!({"permissions": ["/key/generate"], "team_ids": ["nope"]}),
            404,
        ),
        (
            json!({"permissions": ["/not/a/permission"], "team_ids": ["bt"]}),
            400,
        ),
    ] {
        let (got, out) = gw
            .send(Method::POST, "/team/permissions_bulk_update", Some(&body))
            .await;
        assert_eq!(got, status, "{body}: {out}");
    }
    let empty = ok(
        &gw,
        Method::POST,
        "/team/permissions_bulk_update",
        json!({"permissions": []}),
    )
    .await;
    assert_eq!(empty["message"], "No permissions provided");

    // /user/bulk_update: per-user results; all_users for proxy admins.
    let done = ok(
        &gw,
        Method::POST,
        "/user/bulk_update",
        json!({"users": [
            {"user_id": "dev", "max_budget": 3.0},
            {"user_id": "lead", "tpm_limit": "lots"},
        ]}),
    )
    .await;
    assert_eq!(done["total_requested"], 2);
    assert_eq!(done["successful_updates"], 1);
    assert_eq!(done["failed_updates"], 1);
    assert_eq!(done["results"][0]["updated_user"]["max_budget"], 3.0);
    assert!(
        done["results"][1]["error"]
            .as_str()
            .unwrap()
            .contains("tpm_limit")
    );
    let all = ok(
        &gw,
        Method::POST,
        "/user/bulk_update",
        json!({"all_users": true, "user_updates": {"rpm_limit": 11}}),
    )
    .await;
    assert_eq!(all["failed_updates"], 0);
    let info = ok(&gw, Method::GET, "/user/info?user_id=lead", Value::Null).await;
    assert_eq!(info["user_info"]["rpm_limit"], 11);
    for (body, status) in [
        (json!({}), 422),
        (
            json!({"users": [{"user_id": "dev"}], "all_users": true}),
            422,
        ),
        (
            json!({"all_users": true, "user_updates": {"password": "12345678"}}),
            400,
        ),
    ] {
        let (got, out) = gw
            .send(Method::POST, "/user/bulk_update", Some(&body))
            .await;
        assert_eq!(got, status, "{body}: {out}");
    }
    gw.stop().await;
}

async fn team_callbacks_are_stored_and_never_shown(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    ok(&gw, Method::POST, "/team/new", json!({"team_id": "cb", "metadata": {"owner": "ops"},
        "members_with_roles": [{"user_id": "cb-admin", "role": "admin"}, {"user_id": "cb-dev", "role": "user"}]})).await;
    let key_of = |v: Value| v["key"].as_str().unwrap().to_string();
    let admin = key_of(
        ok(
            &gw,
            Method::POST,
            "/key/generate",
            json!({"user_id": "cb-admin"}),
        )
        .await,
    );
    let dev = key_of(
        ok(
            &gw,
            Method::POST,
            "/key/generate",
            json!({"user_id": "cb-dev"}),
        )
        .await,
    );
    let secret = "sk-lf-very-secret-value";
    let body = json!({"callback_name": "langfuse", "callback_type": "success",
        "callback_vars": {"langfuse_host": "https://lf.example", "langfuse_secret_key": secret, "langfuse_public_key": "pk"}});
    let (status, added) = gw
        .send_as(&admin, Method::POST, "/team/cb/callback", Some(&body))
        .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["status"], "success");
    assert!(!added.to_string().contains(secret), "{added}");
    assert_eq!(added["data"]["metadata"]["owner"], "ops");
    let (status, out) = gw
        .send(Method::POST, "/team/cb/callback", Some(&body))
        .await;
    assert_eq!(status, 400, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
    let (status, _) = gw
        .send_as(
            &dev,
            Method::POST,
            "/team/cb/callback",
            Some(&json!({"callback_name": "x", "callback_vars": {}})),
        )
        .await;
    assert_eq!(status, 403);
    for bad in [
        json!({"callback_name": "x", "callback_vars": {"api_base": "y"}}),
        json!({"callback_name": "x", "callback_type": "never", "callback_vars": {}}),
        json!({"callback_name": "x", "callback_vars": {"langfuse_host": {"a": 1}}}),
        json!({"callback_name": "x", "callback_vars": {"langfuse_secret_key": "os.environ/MASTER"}}),
    ] {
        let (status, out) = gw.send(Method::POST, "/team/cb/callback", Some(&bad)).await;
        assert_eq!(status, 422, "{bad}: {out}");
    }
    let (status, _) = gw
        .send(Method::POST, "/team/none/callback", Some(&body))
        .await;
    assert_eq!(status, 400);

    let got = ok(&gw, Method::GET, "/team/cb/callback", Value::Null).await;
    assert_eq!(got["data"]["success_callbacks"], json!(["langfuse"]));
    assert_eq!(got["data"]["failure_callbacks"], json!([]));
    assert_eq!(
        got["data"]["callback_vars"]["langfuse_host"],
        "https://lf.example"
    );
    assert_eq!(
        got["data"]["callback_vars"]["langfuse_secret_key"],
        "***REDACTED***"
    );
    let info = ok(&gw, Method::GET, "/team/info?team_id=cb", Value::Null).await;
    assert!(!info.to_string().contains(secret), "{info}");
    // A metadata update (as a UI sends back what it read) leaves the callbacks alone.
    ok(
        &gw,
        Method::POST,
        "/team/update",
        json!({"team_id": "cb",
        "metadata": info["team_info"]["metadata"].clone()}),
    )
    .await;
    let row = gw.store.teams().find("cb").await.unwrap().unwrap();
    assert_eq!(
        row.metadata["logging"][0]["callback_vars"]["langfuse_secret_key"], secret,
        "the stored credential survives"
    );

    ok(
        &gw,
        Method::POST,
        "/team/cb/callback",
        json!({"callback_name": "datadog",
        "callback_vars": {"dd_site": "eu"}}),
    )
    .await;
    let got = ok(&gw, Method::GET, "/team/cb/callback", Value::Null).await;
    assert_eq!(got["data"]["failure_callbacks"], json!(["datadog"]));
    let removed = ok(
        &gw,
        Method::DELETE,
        "/team/cb/callback/langfuse",
        Value::Null,
    )
    .await;
    assert_eq!(removed["data"]["success_callbacks"], json!(["datadog"]));
    let (status, _) = gw
        .send(Method::DELETE, "/team/cb/callback/langfuse", None)
        .await;
    assert_eq!(status, 404);
    let off = ok(&gw, Method::POST, "/team/cb/disable_logging", Value::Null).await;
    assert_eq!(off["message"], "Logging disabled for team cb");
    let got = ok(&gw, Method::GET, "/team/cb/callback", Value::Null).await;
    assert_eq!(got["data"]["success_callbacks"], json!([]));
    let (status, _) = gw
        .send(Method::POST, "/team/none/disable_logging", None)
        .await;
    assert_eq!(status, 404);
    gw.stop().await;
}

async fn spend_logs_carry_the_answer_id_and_the_key_fields(backend: Backend) {
    let mock = bursar_testkit::MockUpstream::start().await;
    let config = format!(
        "model_list:\n  - model_name: gpt\n    litellm_params: {{model: openai/gpt-4o-mini, api_base: {}}}\n",
        mock.base_url()
    );
    let Some(gw) = TestGateway::start(backend, &config).await else {
        return;
    };
    ok(
        &gw,
        Method::POST,
        "/team/new",
        json!({"team_id": "lt", "team_alias": "Log Team"}),
    )
    .await;
    ok(
        &gw,
        Method::POST,
        "/user/new",
        json!({"user_id": "lu", "user_email": "lu@example.com", "auto_create_key": false}),
    )
    .await;
    let key = ok(
        &gw,
        Method::POST,
        "/key/generate",
        json!({"user_id": "lu", "team_id": "lt", "key_alias": "logged"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let chat = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]});
    let response = gw.post_json_as(&key, "/v1/chat/completions", &chat).await;
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-litellm-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: Value = response.json().await.unwrap();
    let answer_id = answer["id"].as_str().unwrap().to_string();
    // The same answer id again (upstreams do not promise unique ids): both are kept.
    let mut stream = chat.clone();
    stream["stream"] = json!(true);
    let streamed = gw.post_json_as(&key, "/v1/chat/completions", &stream).await;
    assert_eq!(streamed.status(), 200);
    let _ = streamed.text().await.unwrap();
    let logs = gw.spend_logs(2).await;
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 2, "both requests are logged: {logs:?}");
    for row in logs {
        assert_eq!(
            row["request_id"], answer_id,
            "LiteLLM's request_id is the answer id"
        );
        let m = &row["metadata"];
        assert_eq!(m["user_api_key_alias"], "logged");
        assert_eq!(m["user_api_key_team_id"], "lt");
        assert_eq!(m["user_api_key_team_alias"], "Log Team");
        assert_eq!(m["user_api_key_user_id"], "lu");
        assert_eq!(m["user_api_key_user_email"], "lu@example.com");
        assert_eq!(m["user_api_key"], bursar_core::keys::hash_key(&key));
        assert!(m.get("user_api_key_org_id").is_some() && m["user_api_key_project_id"].is_null());
        assert!(m["litellm_call_id"].is_string());
    }
    let found = ok(
        &gw,
        Method::GET,
        &format!("/spend/logs?request_id={answer_id}&summarize=false"),
        Value::Null,
    )
    .await;
    assert_eq!(found.as_array().unwrap().len(), 2);
    let by_call = ok(
        &gw,
        Method::GET,
        &format!("/spend/logs?request_id={call_id}&summarize=false"),
        Value::Null,
    )
    .await;
    assert_eq!(
        by_call.as_array().unwrap().len(),
        1,
        "the call id finds its row too"
    );
    assert_eq!(by_call[0]["metadata"]["litellm_call_id"], call_id);
    gw.stop().await;
}

async fn a_shared_member_budget_is_copied_not_changed_for_all(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    ok(
        &gw,
        Method::POST,
        "/team/new",
        json!({"team_id": "sb", "team_member_budget": 5.0}),
    )
    .await;
    ok(
        &gw,
        Method::POST,
        "/team/member_add",
        json!({"team_id": "sb", "member": [{"user_id": "a", "role": "user"}, {"user_id": "b", "role": "user"}]}),
    )
    .await;
    let team = gw.store.teams().find("sb").await.unwrap().unwrap();
    let default = team.metadata[bursar_store::MEMBER_BUDGET_KEY]
        .as_str()
        .unwrap()
        .to_string();
    // Even a member linked to the team's default row gets a copy when changed.
    assert!(
        gw.store
            .teams()
            .set_member_budget("sb", "a", Some(&default))
            .await
            .unwrap()
    );
    assert!(
        gw.store
            .teams()
            .set_member_budget("sb", "b", Some(&default))
            .await
            .unwrap()
    );
    let changed = ok(
        &gw,
        Method::POST,
        "/team/member_update",
        json!({"team_id": "sb", "user_id": "a", "max_budget_in_team": 9.0}),
    )
    .await;
    assert_eq!(changed["max_budget_in_team"], 9.0);
    let shared = gw.store.budgets().find(&default).await.unwrap().unwrap();
    assert_eq!(
        shared.max_budget,
        bursar_core::NanoUsd::from_usd(5.0),
        "the default is unchanged"
    );
    let b = gw.store.teams().member("sb", "b").await.unwrap().unwrap();
    assert_eq!(b.budget_id.as_deref(), Some(default.as_str()));
    let a = gw.store.teams().member("sb", "a").await.unwrap().unwrap();
    assert_ne!(a.budget_id.as_deref(), Some(default.as_str()));

    // reset_budget puts the member back on the default by detaching its own row.
    let reset = ok(
        &gw,
        Method::POST,
        "/team/sb/member/a/reset_budget",
        Value::Null,
    )
    .await;
    assert_eq!(reset["budget_source"], "team_default");
    assert_eq!(reset["budget_id"], default);
    assert_eq!(reset["previous_budget_id"], json!(a.budget_id));
    let a = gw.store.teams().member("sb", "a").await.unwrap().unwrap();
    assert_eq!(a.budget_id, None);
    gw.stop().await;
}

async fn management_v1_bulk_routes(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    ok(
        &gw,
        Method::POST,
        "/team/new",
        json!({"team_id": "v1t", "team_member_budget": 4.0}),
    )
    .await;
    ok(
        &gw,
        Method::POST,
        "/user/new",
        json!({"user_id": "exists", "auto_create_key": false}),
    )
    .await;

    // Bulk creation: one result per row, in order.
    let created = ok(
        &gw,
        Method::POST,
        "/management/v1/users/bulk",
        json!({"users": [
            {"user_id": "n1", "user_email": "n1@example.com", "teams": ["v1t"]},
            {"user_id": "n2", "auto_create_key": true},
            {"user_id": "n1"},
            {"user_id": "x", "user_email": "N1@example.com"},
            {"user_id": "exists"},
            {"user_id": "n3", "teams": ["missing-team"]},
        ]}),
    )
    .await;
    let rows = created["data"].as_array().unwrap();
    assert_eq!(
        created["meta"],
        json!({"total_requested": 6, "created": 2, "failed": 4})
    );
    assert_eq!(rows[0]["success"], true);
    assert_eq!(rows[0]["key"], Value::Null, "no key unless asked for");
    assert_eq!(rows[0]["teams"], json!(["v1t"]));
    assert!(rows[1]["key"].as_str().unwrap().starts_with("sk-"));
    assert_eq!(rows[2]["error"], "Duplicate user_id in request: n1");
    assert!(
        rows[3]["error"]
            .as_str()
            .unwrap()
            .starts_with("Duplicate user_email")
    );
    assert!(
        rows[4]["error"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
    assert!(rows[5]["error"].as_str().unwrap().contains("missing-team"));

    // A request that cannot be taken is a problem document.
    for (path, body) in [
        ("/management/v1/users/bulk", json!({"users": []})),
        (
            "/management/v1/users/bulk",
            json!({"users": [{"user_id": "z"}], "extra": 1}),
        ),
        (
            "/management/v1/users/bulk",
            json!({"users": [{"user_id": "z", "send_invite_email": true}]}),
        ),
        ("/management/v1/users/bulk_delete", json!({"user_ids": []})),
    ] {
        let response = gw.post_json(path, &body).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "urn:litellm:error:invalid-request-body");
        assert_eq!(problem["status"], 422);
        assert!(problem["detail"].is_string());
    }

    // Team members: budgets by merge patch, removal in one go.
    ok(
        &gw,
        Method::POST,
        "/team/member_add",
        json!({"team_id": "v1t", "member": {"user_id": "n2", "role": "user"}}),
    )
    .await;
    let updated = ok(
        &gw,
        Method::POST,
        "/management/v1/teams/v1t/members/bulk_update",
        json!({"members": [
            {"user_id": "n1", "max_budget_in_team": 7.0, "rpm_limit": 3},
            {"user_email": "n1@example.com", "rpm_limit": 4},
            {"user_id": "n2", "tpm_limit": 100},
            {"user_id": "nobody", "tpm_limit": 1},
        ]}),
    )
    .await;
    let rows = updated["data"].as_array().unwrap();
    assert_eq!(rows[0]["max_budget"], 7.0);
    assert_eq!(rows[0]["max_budget_source"], "member");
    assert_eq!(rows[0]["rpm_limit"], 3);
    assert_eq!(rows[1]["error"], "Duplicate member in request");
    assert_eq!(rows[2]["tpm_limit"], 100);
    assert_eq!(rows[3]["error"], "User not found in team");
    // Clearing the member's last limit puts it back on the team's default.
    let cleared = ok(
        &gw,
        Method::POST,
        "/management/v1/teams/v1t/members/bulk_update",
        json!({"members": [{"user_id": "n2", "tpm_limit": null}]}),
    )
    .await;
    assert_eq!(cleared["data"][0]["max_budget_source"], "team_default");
    assert_eq!(cleared["data"][0]["max_budget"], 4.0);
    let n2 = gw.store.teams().member("v1t", "n2").await.unwrap().unwrap();
    assert_eq!(n2.budget_id, None);

    let response = gw
        .post_json(
            "/management/v1/teams/nope/members/bulk_delete",
            &json!({"members": [{"user_id": "n1"}]}),
        )
        .await;
    assert_eq!(response.status(), 404);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:litellm:error:team-not-found");
    let removed = ok(
        &gw,
        Method::POST,
        "/management/v1/teams/v1t/members/bulk_delete",
        json!({"members": [{"user_id": "n1"}, {"user_email": "n1@example.com"}, {"user_id": "exists"}, {"user_id": "n2", "user_email": "x"}]}),
    )
    .await;
    let rows = removed["data"].as_array().unwrap();
    assert_eq!(rows[0]["success"], true);
    assert_eq!(rows[1]["error"], "Duplicate member in request");
    assert_eq!(rows[2]["error"], "User not found in team");
    assert!(rows[3]["error"].as_str().unwrap().contains("Exactly one"));
    assert!(
        gw.store
            .teams()
            .member("v1t", "n1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        gw.store
            .teams()
            .member("v1t", "n2")
            .await
            .unwrap()
            .is_some()
    );

    // Bulk deletion: valid rows go together; an internal user may not.
    let deleted = ok(
        &gw,
        Method::POST,
        "/management/v1/users/bulk_delete",
        json!({"user_ids": ["n1", "n2", "n2", "ghost"]}),
    )
    .await;
    let rows = deleted["data"].as_array().unwrap();
    assert_eq!(rows[0]["success"], true);
    assert_eq!(rows[1]["teams_removed"], json!(["v1t"]));
    assert!(rows[2]["error"].as_str().unwrap().starts_with("Duplicate"));
    assert!(rows[3]["error"].as_str().unwrap().contains("not found"));
    assert!(gw.store.users().find("n2").await.unwrap().is_none());
    let plain = ok(
        &gw,
        Method::POST,
        "/user/new",
        json!({"user_id": "plain-v1", "user_role": "internal_user"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = gw
        .send_as(
            &plain,
            Method::POST,
            "/management/v1/users/bulk_delete",
            Some(&json!({"user_ids": ["exists"]})),
        )
        .await;
    assert!(status == 401 || status == 403, "{status}");
    assert!(gw.store.users().find("exists").await.unwrap().is_some());
    gw.stop().await;
}
