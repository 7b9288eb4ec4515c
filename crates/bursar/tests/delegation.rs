//! Who may change what (`bursar_core::policy`), seen from outside: a key holder, a team admin
//! and an org admin each try to do more than an admin granted them, and are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_store::{NewUser, OrgPatch};
use bursar_testkit::{Backend, TestGateway, both_backends};
use serde_json::{Value, json};

both_backends!(
    a_key_holder_cannot_lift_what_an_admin_set_on_its_key,
    a_child_key_is_never_broader_than_the_key_that_created_it,
    moving_a_key_reruns_the_membership_and_admin_checks,
    an_org_admin_manages_inside_the_organizations_limits,
    a_custom_key_must_not_be_the_master_key_or_an_existing_key,
    budget_periods_increases_and_privileges_cannot_lift_a_capped_caller,
);

const CONFIG: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n  - {model_name: premium, litellm_params: {model: bursar/demo}}\n";

async fn call(gw: &TestGateway, key: &str, path: &str, body: Value) -> (u16, Value) {
    gw.send_as(key, reqwest::Method::POST, path, Some(&body))
        .await
}

async fn admin(gw: &TestGateway, path: &str, body: Value) -> Value {
    let (status, body) = call(gw, &gw.master_key.clone(), path, body).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn user(gw: &TestGateway, user_id: &str, role: &str) {
    gw.store
        .users()
        .insert(&NewUser {
            user_id: user_id.into(),
            user_role: role.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn raw(body: &Value) -> String {
    body["key"].as_str().unwrap().to_string()
}

async fn info(gw: &TestGateway, key: &str) -> Value {
    let response = gw
        .get(&format!("/key/info?key={key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["info"].clone()
}

fn refused(what: &str, (status, body): (u16, Value), expected: u16, param: &str) {
    assert_eq!(status, expected, "{what}: {body}");
    assert_eq!(
        body["error"]["code"],
        expected.to_string(),
        "{what}: {body}"
    );
    assert_eq!(body["error"]["param"], param, "{what}: {body}");
}

async fn a_key_holder_cannot_lift_what_an_admin_set_on_its_key(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    user(&gw, "holder", "internal_user").await;
    let governed = json!({
        "user_id": "holder", "models": ["demo"], "max_budget": 1.0, "rpm_limit": 5,
        "tpm_limit": 1000, "max_parallel_requests": 2, "duration": "30d",
        "model_rpm_limit": {"demo": 3},
    });
    let own = raw(&admin(&gw, "/key/generate", governed.clone()).await);
    let blocked = raw(&admin(&gw, "/key/generate", governed).await);
    admin(&gw, "/key/block", json!({"key": blocked})).await;
    let before = info(&gw, &own).await;

    let attempts = [
        ("reset spend", json!({"key": own, "spend": 0}), 403, "spend"),
        (
            "raise budget",
            json!({"key": own, "max_budget": 100}),
            403,
            "max_budget",
        ),
        (
            "budget period",
            json!({"key": own, "budget_duration": "1h"}),
            403,
            "budget_duration",
        ),
        (
            "temp increase",
            json!({"key": own, "metadata": {"temp_budget_increase": 50, "temp_budget_expiry": "2999-01-01T00:00:00Z"}}),
            403,
            "temp_budget_increase",
        ),
        (
            "per-model limits",
            json!({"key": own, "model_rpm_limit": {"demo": 300}}),
            403,
            "model_rpm_limit",
        ),
        (
            "more models",
            json!({"key": own, "models": ["demo", "premium"]}),
            403,
            "models",
        ),
        (
            "raise rpm",
            json!({"key": own, "rpm_limit": 50}),
            403,
            "rpm_limit",
        ),
        (
            "raise tpm",
            json!({"key": own, "tpm_limit": 100000}),
            403,
            "tpm_limit",
        ),
        (
            "raise parallel",
            json!({"key": own, "max_parallel_requests": 10}),
            403,
            "max_parallel_requests",
        ),
        (
            "never expire",
            json!({"key": own, "duration": "-1"}),
            403,
            "duration",
        ),
        (
            "unblock",
            json!({"key": blocked, "blocked": false}),
            403,
            "blocked",
        ),
    ];
    for (what, body, status, param) in attempts {
        refused(
            what,
            call(&gw, &own, "/key/update", body).await,
            status,
            param,
        );
    }
    // An empty list means the caller's own list, never "every model".
    let (status, body) = call(&gw, &own, "/key/update", json!({"key": own, "models": []})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["models"], json!(["demo"]), "{body}");
    // Regeneration changes nothing an update could not.
    refused(
        "regenerate with budget",
        call(
            &gw,
            &own,
            "/key/regenerate",
            json!({"key": blocked, "max_budget": 100}),
        )
        .await,
        403,
        "max_budget",
    );
    // Nothing above changed the key.
    let after = info(&gw, &own).await;
    for field in [
        "spend",
        "max_budget",
        "rpm_limit",
        "tpm_limit",
        "max_parallel_requests",
        "models",
        "metadata",
        "expires",
    ] {
        assert_eq!(after[field], before[field], "{field}");
    }
    // Tightening is the holder's to do, and so is sending the same values back.
    let (status, body) = call(
        &gw,
        &own,
        "/key/update",
        json!({"key": own, "rpm_limit": 2, "max_budget": 1.0, "models": ["demo"], "key_alias": "mine"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(info(&gw, &own).await["rpm_limit"], 2);
    // A proxy admin may lift it all.
    admin(
        &gw,
        "/key/update",
        json!({"key": blocked, "blocked": false, "spend": 0, "models": [], "max_budget": 10}),
    )
    .await;
    let lifted = info(&gw, &blocked).await;
    assert_eq!(
        (lifted["blocked"].clone(), lifted["models"].clone()),
        (json!(false), json!([]))
    );
}

async fn a_child_key_is_never_broader_than_the_key_that_created_it(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    // A management key whose user_id has no user row, limited to one model and some limits.
    let parent = gw
        .insert_key(|k| {
            k.user_id = Some("ghost".into());
            k.models = vec!["demo".into()];
            k.rpm_limit = Some(10);
            k.max_budget = Some(bursar_core::NanoUsd::from_usd(2.0).unwrap());
            k.permissions = Some(json!({"get_spend_routes": false}));
        })
        .await;
    let (status, child) = call(&gw, &parent, "/key/generate", json!({})).await;
    assert_eq!(status, 200, "{child}");
    let child_info = info(&gw, &raw(&child)).await;
    assert_eq!(
        child_info["models"],
        json!(["demo"]),
        "empty means the creator's list"
    );
    assert_eq!(child_info["rpm_limit"], 10);
    assert_eq!(child_info["max_budget"], 2.0);
    assert_eq!(child_info["user_id"], "ghost");
    // The child cannot reach the model its creator cannot.
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let denied = gw
        .post_json_as(&raw(&child), "/v1/chat/completions", &chat("premium"))
        .await;
    assert_eq!(denied.status(), 403);
    let denied: Value = denied.json().await.unwrap();
    assert_eq!(
        denied["error"]["type"], "key_model_access_denied",
        "{denied}"
    );
    let allowed = gw
        .post_json_as(&raw(&child), "/v1/chat/completions", &chat("demo"))
        .await;
    assert_eq!(allowed.status(), 200);

    for (what, body, status, param) in [
        ("other model", json!({"models": ["premium"]}), 403, "models"),
        ("every model", json!({"models": ["*"]}), 403, "models"),
        ("higher rpm", json!({"rpm_limit": 11}), 400, "rpm_limit"),
        (
            "higher budget",
            json!({"max_budget": 2.5}),
            400,
            "max_budget",
        ),
        (
            "permission",
            json!({"permissions": {"get_spend_routes": true}}),
            403,
            "permissions",
        ),
        (
            "alias out",
            json!({"aliases": {"demo": "premium"}}),
            403,
            "aliases",
        ),
    ] {
        refused(
            what,
            call(&gw, &parent, "/key/generate", body).await,
            status,
            param,
        );
    }
    // ...and the same limits bound what it changes on its own children.
    refused(
        "update child above",
        call(
            &gw,
            &parent,
            "/key/update",
            json!({"key": raw(&child), "rpm_limit": 50}),
        )
        .await,
        403,
        "rpm_limit",
    );
}

async fn moving_a_key_reruns_the_membership_and_admin_checks(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    for u in ["lead", "member", "outsider"] {
        user(&gw, u, "internal_user").await;
    }
    admin(
        &gw,
        "/organization/new",
        json!({"organization_id": "org-a", "organization_alias": "a"}),
    )
    .await;
    admin(
        &gw,
        "/organization/new",
        json!({"organization_id": "org-b", "organization_alias": "b"}),
    )
    .await;
    admin(
        &gw,
        "/team/new",
        json!({"team_id": "team-a", "organization_id": "org-a", "members_with_roles": [
            {"user_id": "lead", "role": "admin"}, {"user_id": "member", "role": "user"}]}),
    )
    .await;
    admin(&gw, "/team/new", json!({"team_id": "team-b", "members_with_roles": [{"user_id": "outsider", "role": "admin"}]})).await;
    let lead = raw(&admin(&gw, "/key/generate", json!({"user_id": "lead"})).await);
    let member_key = raw(&admin(
        &gw,
        "/key/generate",
        json!({"user_id": "member", "team_id": "team-a"}),
    )
    .await);
    let lead_team_key = raw(&admin(
        &gw,
        "/key/generate",
        json!({"user_id": "lead", "team_id": "team-a"}),
    )
    .await);

    // Into a team the caller does not belong to.
    let (status, body) = call(
        &gw,
        &lead,
        "/key/update",
        json!({"key": lead_team_key, "team_id": "team-b"}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["error"]["type"], "team_member_permission_error",
        "{body}"
    );
    // A team admin moving a member's key out of the team, into another team it administers
    // but the key's owner is not in.
    admin(
        &gw,
        "/team/new",
        json!({"team_id": "team-c", "members_with_roles": [{"user_id": "lead", "role": "admin"}]}),
    )
    .await;
    refused(
        "out of the team",
        call(
            &gw,
            &lead,
            "/key/update",
            json!({"key": member_key, "team_id": "team-c"}),
        )
        .await,
        400,
        "user_id",
    );
    // Into an organization the caller is not in: on update and on generate.
    refused(
        "personal key into an org",
        call(
            &gw,
            &lead,
            "/key/generate",
            json!({"organization_id": "org-b"}),
        )
        .await,
        403,
        "organization_id",
    );
    refused(
        "team key into another org",
        call(
            &gw,
            &lead,
            "/key/update",
            json!({"key": member_key, "organization_id": "org-b"}),
        )
        .await,
        400,
        "organization_id",
    );
    let personal = raw(&call(&gw, &lead, "/key/generate", json!({})).await.1);
    refused(
        "own key into an org",
        call(
            &gw,
            &lead,
            "/key/update",
            json!({"key": personal, "organization_id": "org-b"}),
        )
        .await,
        403,
        "organization_id",
    );
    let unchanged = info(&gw, &member_key).await;
    assert_eq!(
        (
            unchanged["team_id"].clone(),
            unchanged["organization_id"].clone()
        ),
        (json!("team-a"), json!("org-a"))
    );
    // Moving one's own personal key into one's team is what creating it there allows.
    let (status, body) = call(
        &gw,
        &lead,
        "/key/update",
        json!({"key": personal, "team_id": "team-a"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let moved = info(&gw, &personal).await;
    assert_eq!(
        (moved["team_id"].clone(), moved["organization_id"].clone()),
        (json!("team-a"), json!("org-a"))
    );
}

async fn an_org_admin_manages_inside_the_organizations_limits(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    user(&gw, "boss", "internal_user").await;
    admin(
        &gw,
        "/organization/new",
        json!({"organization_id": "org-1", "organization_alias": "one", "max_budget": 10, "rpm_limit": 100, "models": ["demo"]}),
    )
    .await;
    admin(
        &gw,
        "/organization/member_add",
        json!({"organization_id": "org-1", "member": [{"user_id": "boss", "role": "org_admin"}]}),
    )
    .await;
    let boss = raw(&admin(&gw, "/key/generate", json!({"user_id": "boss"})).await);
    let patch = |body: Value| {
        let gw = &gw;
        let boss = boss.clone();
        async move {
            let response = gw
                .http
                .patch(gw.endpoint("/organization/update"))
                .bearer_auth(&boss)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    for (what, body, param) in [
        (
            "raise budget",
            json!({"organization_id": "org-1", "max_budget": 1000}),
            "max_budget",
        ),
        (
            "raise rpm",
            json!({"organization_id": "org-1", "rpm_limit": 1000}),
            "rpm_limit",
        ),
        (
            "nested budget",
            json!({"organization_id": "org-1", "litellm_budget_table": {"max_budget": 1000}}),
            "max_budget",
        ),
        (
            "widen models",
            json!({"organization_id": "org-1", "models": []}),
            "models",
        ),
        (
            "block",
            json!({"organization_id": "org-1", "blocked": true}),
            "blocked",
        ),
    ] {
        refused(what, patch(body).await, 403, param);
    }
    let (status, body) = patch(
        json!({"organization_id": "org-1", "organization_alias": "renamed", "max_budget": 10}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["organization_alias"], "renamed");
    assert_eq!(body["litellm_budget_table"]["max_budget"], 10.0);
    // Teams the org admin creates must fit the organization.
    for (what, body, param) in [
        (
            "team budget",
            json!({"organization_id": "org-1", "max_budget": 20}),
            "max_budget",
        ),
        (
            "team rpm",
            json!({"organization_id": "org-1", "rpm_limit": 200}),
            "rpm_limit",
        ),
        (
            "team models",
            json!({"organization_id": "org-1", "models": ["premium"]}),
            "models",
        ),
    ] {
        refused(what, call(&gw, &boss, "/team/new", body).await, 400, param);
    }
    let (status, body) = call(
        &gw,
        &boss,
        "/team/new",
        json!({"organization_id": "org-1", "max_budget": 5}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A proxy admin still may change the organization's limits.
    let org = gw.store.orgs().find("org-1").await.unwrap().unwrap();
    assert!(!org.blocked);
    let _ = OrgPatch::default();
    let response = gw
        .http
        .patch(gw.endpoint("/organization/update"))
        .bearer_auth(&gw.master_key)
        .json(&json!({"organization_id": "org-1", "max_budget": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn a_custom_key_must_not_be_the_master_key_or_an_existing_key(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let existing = raw(&admin(&gw, "/key/generate", json!({"key_alias": "first"})).await);
    let master = gw.master_key.clone();
    for taken in [master.as_str(), existing.as_str()] {
        refused(
            "generate",
            call(&gw, &master, "/key/generate", json!({"key": taken})).await,
            400,
            "key",
        );
    }
    let other = raw(&admin(&gw, "/key/generate", json!({})).await);
    refused(
        "regenerate",
        call(
            &gw,
            &master,
            "/key/regenerate",
            json!({"key": other, "new_key": existing}),
        )
        .await,
        400,
        "new_key",
    );
    // The existing key is untouched and the master key still is the master key.
    assert_eq!(info(&gw, &existing).await["key_alias"], "first");
    let chat = json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        gw.post_json_as(&existing, "/v1/chat/completions", &chat)
            .await
            .status(),
        200
    );
    let listed = gw
        .get("/key/list")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(listed["total_count"], 2, "{listed}");
}

/// The budget fields that would let a key spend beyond its creator's budget (a period, a
/// temporary increase, a budget row), the audit-impersonation privilege, a spent budget,
/// and team budget fields a team admin may not loosen.
async fn budget_periods_increases_and_privileges_cannot_lift_a_capped_caller(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    user(&gw, "capped", "internal_user").await;
    // A key with 2 USD of which 1.5 are spent.
    let parent = gw
        .insert_key(|k| {
            k.user_id = Some("capped".into());
            k.max_budget = Some(bursar_core::NanoUsd::from_usd(2.0).unwrap());
            k.spend = bursar_core::NanoUsd::from_usd(1.5).unwrap();
        })
        .await;
    for (what, body, param) in [
        (
            "period",
            json!({"budget_duration": "1s"}),
            "budget_duration",
        ),
        (
            "temporary increase",
            json!({"metadata": {"temp_budget_increase": 1000, "temp_budget_expiry": "2999-01-01T00:00:00Z"}}),
            "temp_budget_increase",
        ),
        ("budget row", json!({"budget_id": "anything"}), "budget_id"),
        (
            "audit impersonation",
            json!({"metadata": {"allow_litellm_changed_by_header": true}}),
            "metadata",
        ),
    ] {
        refused(
            what,
            call(&gw, &parent, "/key/generate", body).await,
            403,
            param,
        );
    }
    // What is left, not the maximum, caps a child.
    let (status, child) = call(&gw, &parent, "/key/generate", json!({})).await;
    assert_eq!(status, 200, "{child}");
    assert_eq!(info(&gw, &raw(&child)).await["max_budget"], 0.5);
    refused(
        "above what is left",
        call(&gw, &parent, "/key/generate", json!({"max_budget": 1.0})).await,
        400,
        "max_budget",
    );
    // The privilege cannot be given to one's own key either.
    refused(
        "own key privilege",
        call(
            &gw,
            &parent,
            "/key/update",
            json!({"key": parent, "metadata": {"allow_litellm_changed_by_header": true}}),
        )
        .await,
        403,
        "allow_litellm_changed_by_header",
    );
    // A team admin keeps the team's period and per-model limits as a proxy admin set them.
    user(&gw, "lead", "internal_user").await;
    admin(
        &gw,
        "/team/new",
        json!({"team_id": "budgeted", "max_budget": 100, "budget_duration": "30d",
               "model_rpm_limit": {"demo": 5},
               "members_with_roles": [{"user_id": "lead", "role": "admin"}]}),
    )
    .await;
    let lead = raw(&admin(&gw, "/key/generate", json!({"user_id": "lead"})).await);
    for (what, body, param) in [
        (
            "team period",
            json!({"team_id": "budgeted", "budget_duration": "1s"}),
            "budget_duration",
        ),
        (
            "team per-model limit",
            json!({"team_id": "budgeted", "model_rpm_limit": {"demo": 500}}),
            "model_rpm_limit",
        ),
    ] {
        refused(
            what,
            call(&gw, &lead, "/team/update", body).await,
            403,
            param,
        );
    }
    let (status, body) = call(
        &gw,
        &lead,
        "/team/update",
        json!({"team_id": "budgeted", "team_alias": "renamed"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
