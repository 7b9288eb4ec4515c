//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! request and response types, in LiteLLM's naming so that clients generated from LiteLLM's
//! document keep their method and model names:
//!
//! - each annotation's `operation_id` is LiteLLM's Python function name; [`finish`] turns it into
//!   FastAPI's unique id, `{function}{path}` with every non-word character replaced by `_`, then
//!   `_{method}` (`new_user` on `POST /user/new` → `new_user_user_new_post`);
//! - tags and schema names are LiteLLM's;
//! - every protected operation requires the `APIKeyHeader` scheme (LiteLLM's name), and every
//!   operation documents the error envelope as its `default` response.

use crate::auth::PUBLIC_ROUTES;
use crate::error::ErrorResponse;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{OpenApi as _, PartialSchema, ToSchema};
use utoipa_axum::router::UtoipaMethodRouter;

/// LiteLLM's name for its security scheme; generated clients refer to it.
pub const API_KEY_SCHEME: &str = "APIKeyHeader";

/// Where the document and the interactive page are served (public, like LiteLLM's).
pub const DOCUMENT_PATH: &str = "/openapi.json";
pub const DOCS_PATH: &str = "/docs";

// LiteLLM's tags.
pub const CHAT: &str = "chat/completions";
pub const COMPLETIONS: &str = "completions";
pub const EMBEDDINGS: &str = "embeddings";
pub const MODELS: &str = "model management";
pub const HEALTH: &str = "health";
pub const KEYS: &str = "key management";
pub const AUDIT: &str = "Audit Logging";
pub const USERS: &str = "Internal User management";
pub const TEAMS: &str = "team management";
pub const ORGS: &str = "organization management";
pub const BUDGETS: &str = "budget management";
pub const SPEND: &str = "Budget & Spend Tracking";
pub const TAGS: &str = "tag management";
pub const CUSTOMERS: &str = "Customer Management";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Bursar",
        description = "A fast, multi-tenant LLM gateway, wire-compatible with the LiteLLM proxy: \
            OpenAI-style chat, completion and embedding routes, and LiteLLM's management API for \
            keys, users, teams, organizations, customers, budgets and spend.\n\n\
            Authenticate with `Authorization: Bearer <key>` or `x-litellm-api-key: <key>`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = CHAT, description = "OpenAI-compatible chat completions"),
        (name = COMPLETIONS, description = "OpenAI-compatible text completions"),
        (name = EMBEDDINGS, description = "OpenAI-compatible embeddings"),
        (name = MODELS, description = "The models a key may call"),
        (name = HEALTH, description = "Liveness, readiness and deployment health"),
        (name = KEYS, description = "Virtual keys"),
        (name = AUDIT, description = "Audit log of management changes"),
        (name = USERS, description = "Internal users"),
        (name = TEAMS, description = "Teams and their members"),
        (name = ORGS, description = "Organizations and their members"),
        (name = BUDGETS, description = "Reusable budgets"),
        (name = SPEND, description = "Spend logs, reports and daily activity"),
        (name = TAGS, description = "Spend by request tag"),
        (name = CUSTOMERS, description = "Customers (end users)"),
    ),
    components(schemas(ErrorResponse)),
)]
struct ApiDoc;

/// The document's starting point: info, tags and shared components, before any route.
pub fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// Registers `routes` under one more path (LiteLLM's `/v1` and legacy aliases). The alias gets a
/// copy of the operations, and [`finish`] gives it its own operation id.
pub fn alias<S>(
    (schemas, mut paths, router): UtoipaMethodRouter<S>,
    alias: &str,
) -> UtoipaMethodRouter<S> {
    if let Some(item) = paths.paths.values().next().cloned() {
        paths.paths.insert(alias.to_string(), item);
    }
    (schemas, paths, router)
}

/// Applies the document-wide rules (operation ids, security, error responses, deprecation of
/// `deprecated_prefixes`) once every route is registered.
pub fn finish(mut doc: OpenApi, deprecated_prefixes: &[&str]) -> OpenApi {
    for (path, item) in doc.paths.paths.iter_mut() {
        let public = PUBLIC_ROUTES.contains(&path.as_str());
        let deprecated = deprecated_prefixes.iter().any(|p| path.starts_with(p));
        for (method, operation) in operations(item) {
            let function = operation.operation_id.clone().unwrap_or_default();
            operation.operation_id = Some(operation_id(&function, path, method));
            if !public {
                operation.security = Some(vec![SecurityRequirement::new(
                    API_KEY_SCHEME,
                    Vec::<String>::new(),
                )]);
            }
            if deprecated {
                operation.deprecated = Some(utoipa::openapi::Deprecated::True);
            }
            operation
                .responses
                .responses
                .entry("default".to_string())
                .or_insert_with(error_response);
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = "Successful Response".to_string();
                }
            }
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        API_KEY_SCHEME,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "x-litellm-api-key",
            "A virtual key or the master key. `Authorization: Bearer <key>` is accepted too.",
        ))),
    );
    components
        .schemas
        .entry(ErrorResponse::name().into_owned())
        .or_insert_with(ErrorResponse::schema);
    doc
}

fn error_response() -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description("An error in LiteLLM's envelope; `error.code` is the HTTP status")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorResponse::name())))
                .build(),
        )
        .build()
        .into()
}

fn operations(item: &mut PathItem) -> Vec<(HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
        (HttpMethod::Options, item.options.as_mut()),
        (HttpMethod::Head, item.head.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
        (HttpMethod::Trace, item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
    .collect()
}

/// FastAPI's `generate_unique_id`: `re.sub(r"\W", "_", name + path) + "_" + method`.
pub fn operation_id(function: &str, path: &str, method: HttpMethod) -> String {
    let method = match method {
        HttpMethod::Get => "get",
        HttpMethod::Put => "put",
        HttpMethod::Post => "post",
        HttpMethod::Delete => "delete",
        HttpMethod::Options => "options",
        HttpMethod::Head => "head",
        HttpMethod::Patch => "patch",
        HttpMethod::Trace => "trace",
    };
    let mut id: String = format!("{function}{path}")
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    id.push('_');
    id.push_str(method);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_follow_fastapis_rule() {
        assert_eq!(
            operation_id("new_user", "/user/new", HttpMethod::Post),
            "new_user_user_new_post"
        );
        assert_eq!(
            operation_id(
                "regenerate_key_fn",
                "/key/{key}/regenerate",
                HttpMethod::Post
            ),
            "regenerate_key_fn_key__key__regenerate_post"
        );
        assert_eq!(
            operation_id("list_team_v2", "/v2/team/list", HttpMethod::Get),
            "list_team_v2_v2_team_list_get"
        );
        assert_eq!(
            operation_id(
                "delete_organization",
                "/organization/delete",
                HttpMethod::Delete
            ),
            "delete_organization_organization_delete_delete"
        );
    }
}
