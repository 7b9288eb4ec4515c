//! `GET /routes`: every route the gateway serves, with its methods and handler (LiteLLM's
//! `get_routes`); public, like LiteLLM's.

use axum::Json;
use serde::Serialize;
use std::sync::OnceLock;
use utoipa::ToSchema;

/// One served route.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RouteEntry {
    pub path: String,
    pub methods: Vec<String>,
    /// The handler's name (LiteLLM's Python function name).
    pub name: String,
    pub endpoint: String,
}

/// `GET /routes`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoutesResponse {
    pub routes: Vec<RouteEntry>,
}

/// Every route with its methods, listed once from the router's own operations.
#[utoipa::path(
    get,
    path = "/routes",
    operation_id = "get_routes",
    tag = crate::openapi::HEALTH,
    responses((status = 200, body = RoutesResponse)),
)]
pub async fn list() -> Json<RoutesResponse> {
    static ROUTES: OnceLock<RoutesResponse> = OnceLock::new();
    Json(
        ROUTES
            .get_or_init(|| RoutesResponse {
                routes: crate::route_list(),
            })
            .clone(),
    )
}
