//! The HTTP application: routes, middleware (auth, body limits, panic capture) and the mapping
//! from domain errors to LiteLLM's error envelope. Business rules live in `bursar-core`.

mod admission;
pub mod auth;
pub mod charge;
mod end_users;
pub mod error;
pub mod extract;
pub mod invalidation;
mod management;
pub mod openapi;
mod pipeline;
mod resets;
mod routes;
pub mod seeding;
pub mod state;
mod surfaces;

pub use error::ApiError;
pub use resets::run_budget_resets;
pub use state::{AdmissionStatus, AppState, Cluster, RedisStatus};

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use std::any::Any;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

/// Builds the full application.
pub fn app(state: AppState) -> Router {
    let (protected, protected_doc) = api_routes()
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .split_for_parts();
    let (public, public_doc) = public_routes().split_for_parts();
    let docs = SwaggerUi::new(openapi::DOCS_PATH)
        .url(
            openapi::DOCUMENT_PATH,
            finish_document(protected_doc.merge_from(public_doc)),
        )
        .config(swagger_config());
    Router::new()
        .merge(protected)
        .merge(public)
        .merge(docs)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The request span: method and path, with every raw key in the path or query masked (no
/// key may reach a log line at any level).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    // Redacted only when the span is recorded (the macro evaluates fields lazily).
    tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %RedactedUri(request.uri()),
        version = ?request.version()
    )
}

/// A request URI as logs may show it: see `bursar_core::keys::redact_uri`.
struct RedactedUri<'a>(&'a axum::http::Uri);

impl std::fmt::Display for RedactedUri<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.path_and_query() {
            Some(pq) => f.write_str(&bursar_core::keys::redact_uri(pq.as_str())),
            None => f.write_str(self.0.path()),
        }
    }
}

/// The OpenAPI document `GET /openapi.json` serves, built without a running server.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    finish_document(
        api_routes()
            .into_openapi()
            .merge_from(public_routes().into_openapi()),
    )
}

fn finish_document(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    openapi::finish(doc, &["/end_user/"])
}

/// The probes and metrics, served without a key (`auth::PUBLIC_ROUTES`).
fn public_routes() -> OpenApiRouter<AppState> {
    use routes::health;
    OpenApiRouter::with_openapi(utoipa::openapi::OpenApi::default())
        .routes(openapi::alias(
            routes!(health::liveliness),
            auth::PUBLIC_ROUTES[1],
        ))
        .routes(routes!(health::readiness))
        .routes(routes!(health::metrics))
        .routes(routes!(routes::listing::list))
}

/// Every served route with its methods and handler name, for `GET /routes`.
pub fn route_list() -> Vec<routes::listing::RouteEntry> {
    let doc = api_routes()
        .into_openapi()
        .merge_from(public_routes().into_openapi());
    let entry = |path: &str, method: &str, name: &str| routes::listing::RouteEntry {
        path: path.to_string(),
        methods: vec![method.to_string()],
        name: name.to_string(),
        endpoint: name.to_string(),
    };
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                let name = operation.operation_id.as_deref().unwrap_or_default();
                out.push(entry(path, method, name));
            }
        }
    }
    out.push(entry(openapi::DOCUMENT_PATH, "GET", "openapi"));
    out.push(entry(openapi::DOCS_PATH, "GET", "swagger_ui_html"));
    out
}

/// Swagger UI settings: no call-outs (the validator badge fetches validator.swagger.io).
fn swagger_config() -> utoipa_swagger_ui::Config<'static> {
    utoipa_swagger_ui::Config::from(openapi::DOCUMENT_PATH)
        .validator_url("none")
        .persist_authorization(true)
        .display_operation_id(true)
}

/// Every route behind the key check, with its OpenAPI operation.
fn api_routes() -> OpenApiRouter<AppState> {
    use management::{audit, budgets, customers, keys, orgs, spend, teams, users, v1};
    use openapi::alias;
    use routes::{health, models};
    let mut router = OpenApiRouter::with_openapi(openapi::base())
        .routes(alias(
            routes!(surfaces::openai::chat_completions),
            "/chat/completions",
        ))
        .routes(alias(
            routes!(surfaces::openai::completions),
            "/completions",
        ))
        .routes(alias(routes!(surfaces::openai::embeddings), "/embeddings"))
        .routes(alias(
            routes!(surfaces::openai::azure_chat_completions),
            "/engines/{model}/chat/completions",
        ))
        .routes(alias(
            routes!(surfaces::openai::azure_completions),
            "/engines/{model}/completions",
        ))
        .routes(alias(
            routes!(surfaces::openai::azure_embeddings),
            "/engines/{model}/embeddings",
        ))
        .routes(alias(routes!(models::list), "/models"))
        .routes(alias(routes!(models::get), "/models/{model_id}"))
        .routes(routes!(health::check_all))
        .routes(routes!(keys::generate))
        .routes(routes!(keys::info))
        .routes(routes!(keys::update))
        .routes(routes!(keys::delete))
        .routes(routes!(keys::block))
        .routes(routes!(keys::unblock))
        .routes(routes!(keys::list))
        .routes(routes!(keys::regenerate))
        .routes(routes!(keys::regenerate_path))
        .routes(routes!(keys::health))
        .routes(routes!(keys::aliases))
        .routes(routes!(keys::generate_service_account))
        .routes(routes!(keys::reset_spend))
        .routes(routes!(keys::bulk_update))
        .routes(routes!(keys::team_bulk_update))
        .routes(alias(routes!(audit::list), "/audit/logs"))
        .routes(routes!(users::new_user))
        .routes(routes!(users::info))
        .routes(routes!(users::update))
        .routes(routes!(users::delete))
        .routes(alias(routes!(users::list), "/user/get_users"))
        .routes(routes!(users::available_roles))
        .routes(routes!(users::info_v2))
        .routes(routes!(users::available_users))
        .routes(routes!(users::bulk_update))
        .routes(routes!(teams::new_team))
        .routes(routes!(teams::update))
        .routes(routes!(teams::delete))
        .routes(routes!(teams::info))
        .routes(routes!(teams::list))
        .routes(routes!(teams::list_v2))
        .routes(routes!(teams::available))
        .routes(routes!(teams::filter_ui))
        .routes(routes!(teams::member_me))
        .routes(routes!(teams::patch))
        .routes(routes!(teams::metadata_schema))
        .routes(routes!(teams::permissions_bulk_update))
        .routes(routes!(teams::callbacks::add, teams::callbacks::get))
        .routes(routes!(teams::callbacks::delete))
        .routes(routes!(teams::callbacks::disable_logging))
        .routes(routes!(teams::reset_member_spend))
        .routes(routes!(teams::reset_member_budget))
        .routes(routes!(teams::member_add))
        .routes(routes!(teams::bulk_member_add))
        .routes(routes!(teams::member_delete))
        .routes(routes!(teams::member_update))
        .routes(routes!(teams::block))
        .routes(routes!(teams::unblock))
        .routes(routes!(teams::model_add))
        .routes(routes!(teams::model_delete))
        .routes(routes!(teams::permissions_list))
        .routes(routes!(teams::permissions_update))
        .routes(routes!(orgs::new_org))
        .routes(routes!(orgs::update))
        .routes(routes!(orgs::delete))
        .routes(routes!(orgs::list))
        .routes(routes!(orgs::info, orgs::info_many))
        .routes(routes!(orgs::member_add))
        .routes(routes!(orgs::member_update))
        .routes(routes!(orgs::member_delete))
        .routes(routes!(orgs::patch_v2))
        .routes(routes!(budgets::new_budget))
        .routes(routes!(budgets::update))
        .routes(routes!(budgets::info))
        .routes(routes!(budgets::settings))
        .routes(routes!(budgets::list))
        .routes(routes!(budgets::delete))
        .routes(routes!(spend::global_keys))
        .routes(routes!(spend::global_models))
        .routes(routes!(spend::global_teams))
        .routes(routes!(spend::global_report))
        .routes(routes!(spend::logs))
        .routes(routes!(spend::logs_v2))
        .routes(routes!(spend::user_daily))
        .routes(routes!(spend::team_daily))
        .routes(routes!(spend::org_daily))
        .routes(routes!(spend::tag_daily))
        .routes(routes!(spend::customer_daily))
        .routes(routes!(spend::activity::user_aggregated))
        .routes(routes!(spend::activity::user_keys))
        .routes(routes!(spend::activity::user_search))
        .routes(routes!(spend::activity::user_model_top_keys))
        .routes(routes!(spend::activity::user_users))
        .routes(routes!(spend::activity::user_cache_leakage))
        .routes(routes!(spend::activity::user_export))
        .routes(routes!(spend::activity::team_aggregated))
        .routes(routes!(spend::activity::team_keys))
        .routes(routes!(spend::activity::team_search))
        .routes(routes!(spend::activity::team_model_top_keys))
        .routes(routes!(spend::activity::team_export))
        .routes(routes!(spend::activity::team_by_user))
        .routes(routes!(spend::activity::org_aggregated))
        .routes(routes!(spend::activity::org_keys))
        .routes(routes!(spend::activity::org_search))
        .routes(routes!(spend::activity::org_model_top_keys))
        .routes(routes!(spend::activity::org_export))
        .routes(routes!(v1::bulk_create_users))
        .routes(routes!(v1::bulk_delete_users))
        .routes(routes!(v1::bulk_delete_team_members))
        .routes(routes!(v1::bulk_update_team_member_budgets));
    // Customers also answer under LiteLLM's legacy `/end_user/…` (deprecated in the document).
    macro_rules! customer_route {
        ($handler:path, $legacy:literal) => {
            router = router.routes(alias(routes!($handler), $legacy));
        };
    }
    customer_route!(customers::new_customer, "/end_user/new");
    customer_route!(customers::info, "/end_user/info");
    customer_route!(customers::update, "/end_user/update");
    customer_route!(customers::delete, "/end_user/delete");
    customer_route!(customers::list, "/end_user/list");
    customer_route!(customers::block, "/end_user/block");
    customer_route!(customers::unblock, "/end_user/unblock");
    router
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("Route {} not found", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "bad_request_error",
        "Method Not Allowed",
    )
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    ApiError::internal("Internal Server Error").into_response()
}
