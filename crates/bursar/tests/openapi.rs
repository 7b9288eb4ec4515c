//! `GET /openapi.json` and `GET /docs`: LiteLLM's operation ids, tags, schema names, security
//! scheme and parameter constraints, every documented route served, and a docs page that loads
//! nothing from outside the gateway. (The document is also checked by an OpenAPI validator,
//! a generated client and schemathesis in the Python client tests.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_testkit::{Backend, TestGateway};
use serde_json::Value;
use std::collections::HashSet;

async fn document(gw: &TestGateway) -> Value {
    // Public, like LiteLLM's: no key needed.
    let response = gw
        .http
        .get(gw.endpoint("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    response.json().await.unwrap()
}

fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    op
}

fn parameter<'a>(op: &'a Value, name: &str) -> &'a Value {
    op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name} in {op}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_keeps_litellms_operation_ids_tags_and_schema_names() {
    let gw = TestGateway::start(Backend::Sqlite, "").await.unwrap();
    let doc = document(&gw).await;
    assert_eq!(doc["openapi"], "3.1.0");

    // The Ruby client's InternalUserManagementApi methods, and other LiteLLM clients' ones.
    for (method, path, id, tag) in [
        (
            "post",
            "/user/new",
            "new_user_user_new_post",
            "Internal User management",
        ),
        (
            "get",
            "/user/info",
            "user_info_user_info_get",
            "Internal User management",
        ),
        (
            "get",
            "/user/list",
            "get_users_user_list_get",
            "Internal User management",
        ),
        (
            "post",
            "/user/update",
            "user_update_user_update_post",
            "Internal User management",
        ),
        (
            "post",
            "/user/delete",
            "delete_user_user_delete_post",
            "Internal User management",
        ),
        (
            "get",
            "/user/daily/activity",
            "get_user_daily_activity_user_daily_activity_get",
            "Budget & Spend Tracking",
        ),
        (
            "post",
            "/key/generate",
            "generate_key_fn_key_generate_post",
            "key management",
        ),
        (
            "post",
            "/key/{key}/regenerate",
            "regenerate_key_fn_key__key__regenerate_post",
            "key management",
        ),
        (
            "post",
            "/team/new",
            "new_team_team_new_post",
            "team management",
        ),
        (
            "get",
            "/v2/team/list",
            "list_team_v2_v2_team_list_get",
            "team management",
        ),
        (
            "post",
            "/organization/new",
            "new_organization_organization_new_post",
            "organization management",
        ),
        (
            "patch",
            "/organization/update",
            "update_organization_organization_update_patch",
            "organization management",
        ),
        (
            "post",
            "/customer/new",
            "new_end_user_customer_new_post",
            "Customer Management",
        ),
        (
            "post",
            "/budget/new",
            "new_budget_budget_new_post",
            "budget management",
        ),
        (
            "get",
            "/spend/logs",
            "view_spend_logs_spend_logs_get",
            "Budget & Spend Tracking",
        ),
        (
            "post",
            "/v1/chat/completions",
            "chat_completion_v1_chat_completions_post",
            "chat/completions",
        ),
        (
            "post",
            "/chat/completions",
            "chat_completion_chat_completions_post",
            "chat/completions",
        ),
        (
            "get",
            "/v1/models",
            "model_list_v1_models_get",
            "model management",
        ),
        (
            "get",
            "/health/liveliness",
            "health_liveliness_health_liveliness_get",
            "health",
        ),
    ] {
        let op = operation(&doc, path, method);
        assert_eq!(op["operationId"], id, "{method} {path}");
        assert!(
            op["tags"].as_array().unwrap().iter().any(|t| t == tag),
            "{method} {path} tags {}",
            op["tags"]
        );
    }
    // `/user/daily/activity` carries both of LiteLLM's tags.
    assert_eq!(
        operation(&doc, "/user/daily/activity", "get")["tags"],
        serde_json::json!(["Budget & Spend Tracking", "Internal User management"])
    );

    // Operation ids are unique (generators turn them into method names).
    let mut ids = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(
                ids.insert(id.to_string()),
                "duplicate {id} at {method} {path}"
            );
        }
    }

    // Request and response schemas under LiteLLM's names.
    let schema_ref = |op: &Value, at: &str| -> String {
        op.pointer(at)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let body = "/requestBody/content/application~1json/schema/$ref";
    let ok = "/responses/200/content/application~1json/schema/$ref";
    for (method, path, request, response) in [
        ("post", "/user/new", "NewUserRequest", "NewUserResponse"),
        ("post", "/user/update", "UpdateUserRequest", ""),
        ("post", "/user/delete", "DeleteUserRequest", ""),
        ("get", "/user/list", "", "UserListResponse"),
        ("get", "/user/info", "", "UserInfoResponse"),
        (
            "get",
            "/user/daily/activity",
            "",
            "SpendAnalyticsPaginatedResponse",
        ),
        ("post", "/team/new", "NewTeamRequest", "LiteLLM_TeamTable"),
        ("post", "/team/update", "UpdateTeamRequest", ""),
        ("post", "/organization/new", "NewOrganizationRequest", ""),
        (
            "post",
            "/key/generate",
            "GenerateKeyRequest",
            "GenerateKeyResponse",
        ),
        ("get", "/key/list", "", "KeyListResponseObject"),
        (
            "post",
            "/customer/new",
            "NewCustomerRequest",
            "CustomerResponse",
        ),
        ("post", "/budget/new", "BudgetNewRequest", ""),
    ] {
        let op = operation(&doc, path, method);
        if !request.is_empty() {
            assert_eq!(
                schema_ref(op, body),
                format!("#/components/schemas/{request}"),
                "{method} {path}"
            );
        }
        if !response.is_empty() {
            assert_eq!(
                schema_ref(op, ok),
                format!("#/components/schemas/{response}"),
                "{method} {path}"
            );
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "NewUserRequest",
        "NewUserResponse",
        "UserListResponse",
        "UpdateUserRequest",
        "DeleteUserRequest",
        "SpendAnalyticsPaginatedResponse",
        "NewTeamRequest",
        "ErrorResponse",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    assert_eq!(
        schemas["DeleteUserRequest"]["required"],
        serde_json::json!(["user_ids"])
    );

    // LiteLLM's security scheme; every protected operation requires it, probes don't.
    assert_eq!(
        doc["components"]["securitySchemes"]["APIKeyHeader"]["type"],
        "apiKey"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["APIKeyHeader"]["in"],
        "header"
    );
    assert_eq!(
        operation(&doc, "/user/new", "post")["security"],
        serde_json::json!([{"APIKeyHeader": []}])
    );
    assert!(operation(&doc, "/health/readiness", "get")["security"].is_null());
    // Every operation documents the error envelope.
    assert_eq!(
        schema_ref(
            operation(&doc, "/key/info", "get"),
            "/responses/default/content/application~1json/schema/$ref"
        ),
        "#/components/schemas/ErrorResponse"
    );

    // Query parameter constraints.
    let list = operation(&doc, "/user/list", "get");
    assert_eq!(parameter(list, "page")["schema"]["minimum"], 1);
    assert_eq!(parameter(list, "page_size")["schema"]["minimum"], 1);
    assert_eq!(parameter(list, "page_size")["schema"]["maximum"], 100);
    for name in [
        "role",
        "user_ids",
        "user_email",
        "team",
        "sort_by",
        "sort_order",
    ] {
        assert_eq!(parameter(list, name)["in"], "query");
    }
    let daily = operation(&doc, "/user/daily/activity", "get");
    assert_eq!(parameter(daily, "page_size")["schema"]["maximum"], 1000);
    assert_eq!(parameter(daily, "page")["schema"]["minimum"], 1);
    let keys = operation(&doc, "/key/list", "get");
    assert_eq!(parameter(keys, "size")["schema"]["maximum"], 100);
    assert_eq!(
        parameter(operation(&doc, "/key/{key}/regenerate", "post"), "key")["in"],
        "path"
    );

    // The legacy `/end_user/…` aliases are documented as deprecated.
    assert_eq!(operation(&doc, "/end_user/new", "post")["deprecated"], true);
    assert!(operation(&doc, "/customer/new", "post")["deprecated"].is_null());
    gw.stop().await;
}

/// Every documented operation is served: without a key, protected ones answer 401 (not 404 or
/// 405), public ones 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() {
    let gw = TestGateway::start(Backend::Sqlite, "").await.unwrap();
    let doc = document(&gw).await;
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{key}", "sk-unknown")
            .replace("{model_id}", "demo");
        for (method, op) in item.as_object().unwrap() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = gw
                .http
                .request(method.clone(), gw.endpoint(&concrete))
                .send()
                .await
                .unwrap();
            let expected = if op["security"].is_null() { 200 } else { 401 };
            assert_eq!(response.status(), expected, "{method} {path}");
            count += 1;
        }
    }
    assert!(count >= 90, "only {count} operations documented");
    gw.stop().await;
}

/// A type error in a query parameter is a 422 in LiteLLM's envelope, naming the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_parameters_of_the_wrong_type_are_422_in_the_error_envelope() {
    let gw = TestGateway::start(Backend::Sqlite, "").await.unwrap();
    for path in [
        "/user/list?page=abc",
        "/key/list?size=-3",
        "/v2/team/list?page=1.5",
    ] {
        let response = gw.get(path).send().await.unwrap();
        assert_eq!(response.status(), 422, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "validation_error", "{path}");
        assert_eq!(body["error"]["code"], "422");
        assert!(body["error"]["param"].is_string(), "{path}: {body}");
    }
    gw.stop().await;
}

/// `/docs` is Swagger UI served from the binary: the page and every asset it loads come from
/// the gateway, and none of them names an outside address to fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_works_offline() {
    let gw = TestGateway::start(Backend::Sqlite, "").await.unwrap();
    let response = gw.http.get(gw.endpoint("/docs/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // `/docs` redirects to the page.
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(gw.endpoint("/docs"))
        .send()
        .await
        .unwrap();
    assert!(bare.status().is_redirection());

    let mut assets: Vec<String> = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            assets.push(part.split('"').next().unwrap().to_string());
        }
    }
    assert!(
        assets.iter().any(|a| a.ends_with(".js")),
        "no scripts in {html}"
    );
    for asset in &assets {
        assert!(
            !asset.starts_with("http:") && !asset.starts_with("https:") && !asset.starts_with("//"),
            "the page loads {asset} from outside the gateway"
        );
        let url = gw.endpoint(&format!("/docs/{}", asset.trim_start_matches("./")));
        let response = gw.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let text = response.text().await.unwrap();
        if asset.contains("initializer") {
            assert!(text.contains("/openapi.json"), "{text}");
            assert!(text.contains("\"validatorUrl\": \"none\"") || text.contains("validatorUrl"));
        }
    }
    gw.stop().await;
}
