//! Wire shapes: the key sets of real management responses against LiteLLM's own response
//! models (tests/fixtures/litellm_schemas.json, extracted from LiteLLM's OpenAPI document by
//! tools/litellm_schemas.py). LiteLLM (FastAPI/pydantic) writes every declared field, null
//! when unset, so every declared field must be present; a field LiteLLM does not declare must
//! be one of the few Bursar adds on purpose (listed per model below).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, TestGateway, both_backends};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

both_backends!(management_responses_have_litellms_field_sets);

const CONFIG: &str = "model_list:\n  - {model_name: demo, litellm_params: {model: bursar/demo}}\n";

fn schemas() -> Value {
    let text = include_str!("fixtures/litellm_schemas.json");
    serde_json::from_str::<Value>(text).unwrap()["schemas"].clone()
}

/// Fields Bursar sends beyond LiteLLM's model, each with a reason in docs/compat.md.
fn extras(model: &str) -> &'static [&'static str] {
    match model {
        // The column LiteLLM's token rows carry besides the model's `org_id`.
        "LiteLLM_VerificationToken" => &["organization_id"],
        // Bursar's per-user soft budget.
        "LiteLLM_UserTable" | "LiteLLM_UserTableWithKeyCount" => &["soft_budget"],
        // Membership rows carry the member's email and team role.
        "LiteLLM_TeamMembership" => &["user_email", "role"],
        // The budget row's authorship columns.
        "LiteLLM_BudgetTableFull" => &["created_by", "updated_at", "updated_by"],
        // Organizations can be blocked.
        "LiteLLM_OrganizationTableWithMembers" => &["blocked"],
        // The customer's metadata.
        "CustomerResponse" => &["metadata"],
        // The member's team role.
        "TeamMemberUpdateResponse" => &["role"],
        _ => &[],
    }
}

/// Checks `body`'s keys against `model`; `absent` are declared fields LiteLLM itself leaves out.
fn check(schemas: &Value, model: &str, body: &Value, absent: &[&str], what: &str) {
    let schema = &schemas[model];
    let declared: BTreeSet<&str> = schema["properties"]
        .as_array()
        .unwrap_or_else(|| panic!("{model} is not in the fixture"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {body}"));
    let sent: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    let missing: Vec<&&str> = declared
        .iter()
        .filter(|f| !sent.contains(**f) && !absent.contains(f))
        .collect();
    assert!(
        missing.is_empty(),
        "{what} ({model}) lacks {missing:?}: {body}"
    );
    let allowed = extras(model);
    let unknown: Vec<&&str> = sent
        .iter()
        .filter(|f| !declared.contains(**f) && !allowed.contains(f))
        .collect();
    assert!(
        unknown.is_empty(),
        "{what} ({model}) sends undeclared {unknown:?}"
    );
    for field in schema["required"].as_array().unwrap() {
        let field = field.as_str().unwrap();
        assert!(
            absent.contains(&field) || !object[field].is_null(),
            "{what} ({model}): required {field} is null"
        );
    }
}

fn each(schemas: &Value, model: &str, list: &Value, what: &str) {
    let items = list
        .as_array()
        .unwrap_or_else(|| panic!("{what}: not a list"));
    assert!(!items.is_empty(), "{what}: empty, nothing checked");
    for item in items {
        check(schemas, model, item, &[], what);
    }
}

async fn ok(gw: &TestGateway, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, out) = gw.send(method, path, body.as_ref()).await;
    assert_eq!(status, 200, "{path}: {out}");
    out
}

async fn management_responses_have_litellms_field_sets(backend: Backend) {
    let Some(gw) = TestGateway::start(backend, CONFIG).await else {
        return;
    };
    let s = schemas();
    let post = Method::POST;
    let get = Method::GET;

    let org = ok(
        &gw,
        post.clone(),
        "/organization/new",
        Some(json!({"organization_alias": "acme", "models": ["demo"], "max_budget": 100.0})),
    )
    .await;
    check(
        &s,
        "LiteLLM_OrganizationTableWithMembers",
        &org,
        &[],
        "/organization/new",
    );
    let org_id = org["organization_id"].as_str().unwrap().to_string();
    let team = ok(
        &gw,
        post.clone(),
        "/team/new",
        Some(json!({"team_alias": "core", "organization_id": org_id, "models": ["demo"]})),
    )
    .await;
    check(&s, "LiteLLM_TeamTable", &team, &[], "/team/new");
    let team_id = team["team_id"].as_str().unwrap().to_string();

    let user = ok(
        &gw,
        post.clone(),
        "/user/new",
        Some(
            json!({"user_id": "shape-alice", "user_email": "alice@shape.test", "models": ["demo"]}),
        ),
    )
    .await;
    check(&s, "NewUserResponse", &user, &[], "/user/new");
    let no_key = ok(
        &gw,
        post.clone(),
        "/user/new",
        Some(json!({"user_id": "shape-bob", "auto_create_key": false})),
    )
    .await;
    check(
        &s,
        "NewUserResponse",
        &no_key,
        &[],
        "/user/new without a key",
    );
    assert_eq!(no_key["key"], "", "LiteLLM sends an empty key");

    let added = ok(
        &gw,
        post.clone(),
        "/team/member_add",
        Some(json!({"team_id": team_id, "member": {"user_id": "shape-alice", "role": "user"}, "max_budget_in_team": 5.0})),
    )
    .await;
    check(&s, "TeamAddMemberResponse", &added, &[], "/team/member_add");
    each(
        &s,
        "Member",
        &added["members_with_roles"],
        "member_add members_with_roles",
    );
    each(
        &s,
        "LiteLLM_UserTable",
        &added["updated_users"],
        "member_add updated_users",
    );
    each(
        &s,
        "LiteLLM_TeamMembership",
        &added["updated_team_memberships"],
        "member_add updated_team_memberships",
    );
    let budget = &added["updated_team_memberships"][0]["litellm_budget_table"];
    check(
        &s,
        "LiteLLM_BudgetTableFull",
        budget,
        &[],
        "membership budget",
    );
    let member = ok(
        &gw,
        post.clone(),
        "/team/member_update",
        Some(json!({"team_id": team_id, "user_id": "shape-alice", "max_budget_in_team": 6.0})),
    )
    .await;
    check(
        &s,
        "TeamMemberUpdateResponse",
        &member,
        &[],
        "/team/member_update",
    );
    let bulk = ok(
        &gw,
        post.clone(),
        "/team/bulk_member_add",
        Some(json!({"team_id": team_id, "members": [{"user_id": "shape-bob", "role": "user"}]})),
    )
    .await;
    check(
        &s,
        "BulkTeamMemberAddResponse",
        &bulk,
        &[],
        "/team/bulk_member_add",
    );
    each(
        &s,
        "TeamMemberAddResult",
        &bulk["results"],
        "bulk_member_add results",
    );
    let permissions = ok(
        &gw,
        get.clone(),
        &format!("/team/permissions_list?team_id={team_id}"),
        None,
    )
    .await;
    check(
        &s,
        "GetTeamMemberPermissionsResponse",
        &permissions,
        &[],
        "/team/permissions_list",
    );

    let key = ok(
        &gw,
        post.clone(),
        "/key/generate",
        Some(json!({"team_id": team_id, "user_id": "shape-alice", "models": ["demo"], "soft_budget": 1.0})),
    )
    .await;
    check(&s, "GenerateKeyResponse", &key, &[], "/key/generate");
    let raw = key["key"].as_str().unwrap().to_string();
    // LiteLLM leaves the hash out of /key/info.
    let info = ok(&gw, get.clone(), &format!("/key/info?key={raw}"), None).await;
    check(
        &s,
        "LiteLLM_VerificationToken",
        &info["info"],
        &["token"],
        "/key/info",
    );
    let list = ok(&gw, get.clone(), "/key/list?return_full_object=true", None).await;
    check(&s, "KeyListResponseObject", &list, &[], "/key/list");
    each(
        &s,
        "LiteLLM_VerificationToken",
        &list["keys"],
        "/key/list keys",
    );
    let rotated = ok(
        &gw,
        post.clone(),
        "/key/regenerate",
        Some(json!({"key": raw})),
    )
    .await;
    check(&s, "GenerateKeyResponse", &rotated, &[], "/key/regenerate");

    let user_info = ok(&gw, get.clone(), "/user/info?user_id=shape-alice", None).await;
    check(&s, "UserInfoResponse", &user_info, &[], "/user/info");
    check(
        &s,
        "LiteLLM_UserTable",
        &user_info["user_info"],
        &[],
        "/user/info user_info",
    );
    each(
        &s,
        "LiteLLM_VerificationToken",
        &user_info["keys"],
        "/user/info keys",
    );
    each(
        &s,
        "LiteLLM_TeamTable",
        &user_info["teams"],
        "/user/info teams",
    );
    let v2 = ok(&gw, get.clone(), "/v2/user/info?user_id=shape-alice", None).await;
    check(&s, "UserInfoV2Response", &v2, &[], "/v2/user/info");
    let alice_key = user["key"].as_str().unwrap();
    let (status, me) = gw
        .send_as(
            alice_key,
            get.clone(),
            &format!("/team/{team_id}/members/me"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{me}");
    check(
        &s,
        "TeamMemberInfoResponse",
        &me,
        &[],
        "/team/{team_id}/members/me",
    );
    let users = ok(&gw, get.clone(), "/user/list", None).await;
    check(&s, "UserListResponse", &users, &[], "/user/list");
    each(
        &s,
        "LiteLLM_UserTableWithKeyCount",
        &users["users"],
        "/user/list users",
    );

    let teams = ok(&gw, get.clone(), "/v2/team/list", None).await;
    check(&s, "TeamListResponse", &teams, &[], "/v2/team/list");
    each(
        &s,
        "LiteLLM_TeamTable",
        &teams["teams"],
        "/v2/team/list teams",
    );

    let org_member = ok(
        &gw,
        post.clone(),
        "/organization/member_add",
        Some(json!({"organization_id": org_id, "member": {"user_id": "shape-bob", "role": "internal_user"}})),
    )
    .await;
    check(
        &s,
        "OrganizationAddMemberResponse",
        &org_member,
        &[],
        "/organization/member_add",
    );
    each(
        &s,
        "LiteLLM_OrganizationMembershipTable",
        &org_member["updated_organization_memberships"],
        "org member_add memberships",
    );
    let org_info = ok(
        &gw,
        get.clone(),
        &format!("/organization/info?organization_id={org_id}"),
        None,
    )
    .await;
    check(
        &s,
        "LiteLLM_OrganizationTableWithMembers",
        &org_info,
        &[],
        "/organization/info",
    );
    each(
        &s,
        "LiteLLM_OrganizationMembershipTable",
        &org_info["members"],
        "org members",
    );
    each(&s, "LiteLLM_TeamTable", &org_info["teams"], "org teams");
    each(&s, "LiteLLM_UserTable", &org_info["users"], "org users");
    check(
        &s,
        "LiteLLM_BudgetTableFull",
        &org_info["litellm_budget_table"],
        &[],
        "org budget",
    );

    let customer = ok(
        &gw,
        post.clone(),
        "/customer/new",
        Some(json!({"user_id": "shape-customer", "max_budget": 3.0})),
    )
    .await;
    check(&s, "CustomerResponse", &customer, &[], "/customer/new");
    let deleted = ok(
        &gw,
        post.clone(),
        "/customer/delete",
        Some(json!({"user_ids": ["shape-customer"]})),
    )
    .await;
    check(
        &s,
        "DeleteCustomersResponse",
        &deleted,
        &[],
        "/customer/delete",
    );
    gw.stop().await;
}
