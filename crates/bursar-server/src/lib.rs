//! The HTTP application: routes, middleware (auth, body limits, panic capture) and the mapping
//! from domain errors to LiteLLM's error envelope. Business rules live in `bursar-core`.

mod admission;
pub mod auth;
pub mod charge;
mod end_users;
pub mod error;
pub mod invalidation;
mod management;
mod resets;
mod routes;
pub mod state;

pub use error::ApiError;
pub use resets::run_budget_resets;
pub use state::{AdmissionStatus, AppState, Cluster, RedisStatus};

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use std::any::Any;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// Builds the full application.
pub fn app(state: AppState) -> Router {
    let protected = Router::new()
        .route("/v1/chat/completions", post(routes::data::chat_completions))
        .route("/chat/completions", post(routes::data::chat_completions))
        .route("/v1/completions", post(routes::data::completions))
        .route("/completions", post(routes::data::completions))
        .route("/v1/embeddings", post(routes::data::embeddings))
        .route("/embeddings", post(routes::data::embeddings))
        .route("/v1/models", get(routes::models::list))
        .route("/models", get(routes::models::list))
        .route("/v1/models/{model}", get(routes::models::get))
        .route("/models/{model}", get(routes::models::get))
        .route("/health", get(routes::health::check_all))
        .route("/key/generate", post(management::keys::generate))
        .route("/key/info", get(management::keys::info))
        .route("/key/update", post(management::keys::update))
        .route("/key/delete", post(management::keys::delete))
        .route("/key/block", post(management::keys::block))
        .route("/key/unblock", post(management::keys::unblock))
        .route("/key/list", get(management::keys::list))
        .route("/key/regenerate", post(management::keys::regenerate))
        .route(
            "/key/{key}/regenerate",
            post(management::keys::regenerate_path),
        )
        .route("/key/health", post(management::keys::health))
        .route("/audit", get(management::audit::list))
        .route("/audit/logs", get(management::audit::list))
        .route("/user/new", post(management::users::new_user))
        .route("/user/info", get(management::users::info))
        .route("/user/update", post(management::users::update))
        .route("/user/delete", post(management::users::delete))
        .route("/user/list", get(management::users::list))
        .route("/user/get_users", get(management::users::list))
        .route(
            "/user/available_roles",
            get(management::users::available_roles),
        )
        .route("/team/new", post(management::teams::new_team))
        .route("/team/update", post(management::teams::update))
        .route("/team/delete", post(management::teams::delete))
        .route("/team/info", get(management::teams::info))
        .route("/team/list", get(management::teams::list))
        .route("/v2/team/list", get(management::teams::list_v2))
        .route("/team/available", get(management::teams::available))
        .route("/team/filter/ui", get(management::teams::filter_ui))
        .route("/team/member_add", post(management::teams::member_add))
        .route(
            "/team/bulk_member_add",
            post(management::teams::bulk_member_add),
        )
        .route(
            "/team/member_delete",
            post(management::teams::member_delete),
        )
        .route(
            "/team/member_update",
            post(management::teams::member_update),
        )
        .route("/team/block", post(management::teams::block))
        .route("/team/unblock", post(management::teams::unblock))
        .route("/team/model/add", post(management::teams::model_add))
        .route("/team/model/delete", post(management::teams::model_delete))
        .route(
            "/team/permissions_list",
            get(management::teams::permissions_list),
        )
        .route(
            "/team/permissions_update",
            post(management::teams::permissions_update),
        )
        .route("/organization/new", post(management::orgs::new_org))
        .route("/organization/update", patch(management::orgs::update))
        .route("/organization/delete", delete(management::orgs::delete))
        .route("/organization/list", get(management::orgs::list))
        .route(
            "/organization/info",
            get(management::orgs::info).post(management::orgs::info_many),
        )
        .route(
            "/organization/member_add",
            post(management::orgs::member_add),
        )
        .route(
            "/organization/member_update",
            patch(management::orgs::member_update),
        )
        .route(
            "/organization/member_delete",
            delete(management::orgs::member_delete),
        )
        .route("/budget/new", post(management::budgets::new_budget))
        .route("/budget/update", post(management::budgets::update))
        .route("/budget/info", post(management::budgets::info))
        .route("/budget/settings", get(management::budgets::settings))
        .route("/budget/list", get(management::budgets::list))
        .route("/budget/delete", post(management::budgets::delete))
        .route("/global/spend/keys", get(management::spend::global_keys))
        .route(
            "/global/spend/models",
            get(management::spend::global_models),
        )
        .route("/global/spend/teams", get(management::spend::global_teams))
        .route(
            "/global/spend/report",
            get(management::spend::global_report),
        )
        .route("/spend/logs", get(management::spend::logs))
        .route("/spend/logs/v2", get(management::spend::logs_v2))
        .route("/user/daily/activity", get(management::spend::user_daily))
        .route("/team/daily/activity", get(management::spend::team_daily))
        .route(
            "/organization/daily/activity",
            get(management::spend::org_daily),
        )
        .route("/tag/daily/activity", get(management::spend::tag_daily))
        .route(
            "/customer/daily/activity",
            get(management::spend::customer_daily),
        );
    // Customers answer under `/customer/…` and LiteLLM's legacy `/end_user/…`.
    let protected = ["/customer", "/end_user"]
        .into_iter()
        .fold(protected, |router, prefix| {
            use management::customers as c;
            router
                .route(&format!("{prefix}/new"), post(c::new_customer))
                .route(&format!("{prefix}/info"), get(c::info))
                .route(&format!("{prefix}/update"), post(c::update))
                .route(&format!("{prefix}/delete"), post(c::delete))
                .route(&format!("{prefix}/list"), get(c::list))
                .route(&format!("{prefix}/block"), post(c::block))
                .route(&format!("{prefix}/unblock"), post(c::unblock))
        })
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ));
    let public = Router::new()
        .route(auth::PUBLIC_ROUTES[0], get(routes::health::liveliness))
        .route(auth::PUBLIC_ROUTES[1], get(routes::health::liveliness))
        .route(auth::PUBLIC_ROUTES[2], get(routes::health::readiness))
        .route(auth::PUBLIC_ROUTES[3], get(routes::health::metrics));
    Router::new()
        .merge(protected)
        .merge(public)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
