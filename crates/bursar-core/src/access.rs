//! Route authorisation: which role may call which route (LiteLLM's route groups and decision
//! procedure), and per-key `allowed_routes`. Pure functions over route templates such as
//! `/key/{key}/regenerate`, so the HTTP layer checks once, before any handler runs.

use crate::roles::UserRole;

/// LLM API routes (exact paths); a key of any role may call them, model and budget checks aside.
const LLM_API_ROUTES: &[&str] = &[
    "/chat/completions",
    "/v1/chat/completions",
    "/completions",
    "/v1/completions",
    "/embeddings",
    "/v1/embeddings",
    "/engines/{model}/chat/completions",
    "/openai/deployments/{model}/chat/completions",
    "/engines/{model}/completions",
    "/openai/deployments/{model}/completions",
    "/engines/{model}/embeddings",
    "/openai/deployments/{model}/embeddings",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/responses",
    "/v1/responses",
    "/moderations",
    "/v1/moderations",
    "/images/generations",
    "/v1/images/generations",
    "/audio/speech",
    "/v1/audio/speech",
    "/audio/transcriptions",
    "/v1/audio/transcriptions",
    "/rerank",
    "/v1/rerank",
    "/v2/rerank",
];

const INFO_ROUTES: &[&str] = &[
    "/key/info",
    "/key/health",
    "/team/info",
    "/team/list",
    "/v2/team/list",
    "/organization/list",
    "/team/available",
    "/user/info",
    "/v2/user/info",
    "/model/info",
    "/v1/model/info",
    "/v2/model/info",
    "/v2/key/info",
    "/model_group/info",
    "/health",
    "/health/services",
    "/key/list",
    "/user/filter/ui",
    "/models",
    "/v1/models",
    "/team/metadata_schema",
];

const KEY_MANAGEMENT_ROUTES: &[&str] = &[
    "/key/generate",
    "/key/update",
    "/key/delete",
    "/key/info",
    "/key/regenerate",
    "/key/service-account/generate",
    "/key/{key}/regenerate",
    "/key/list",
    "/key/block",
    "/key/unblock",
    "/key/bulk_update",
    "/team/key/bulk_update",
    "/team/daily/activity",
    "/spend/logs",
    "/spend/logs/v2",
    "/key/{key}/reset_spend",
    "/key/aliases",
];

/// The routes a team may grant its plain members (`team_member_permissions`): LiteLLM's
/// `KeyManagementRoutes` values and two pseudo-permissions.
pub const TEAM_MEMBER_PERMISSIONS: &[&str] = &[
    "/key/generate",
    "/key/update",
    "/key/delete",
    "/key/regenerate",
    "/key/service-account/generate",
    "/key/{key_id}/regenerate",
    "/key/block",
    "/key/unblock",
    "/key/bulk_update",
    "/team/key/bulk_update",
    "/key/{key_id}/reset_spend",
    "/key/info",
    "/key/health",
    "/key/list",
    "/key/aliases",
    "/team/daily/activity",
    "/spend/logs",
    "/spend/logs/v2",
    "/key/access_group_assignment",
    "/auto_router/manage",
];

const SPEND_TRACKING_ROUTES: &[&str] = &[
    "/spend/keys",
    "/spend/users",
    "/spend/tags",
    "/spend/calculate",
    "/spend/logs",
    "/spend/logs/v2",
    "/spend/logs/ui",
    "/spend/logs/session/ui",
    "/cost/estimate",
];

/// Extra routes internal users may call beyond key management and spend tracking.
const INTERNAL_USER_EXTRA_ROUTES: &[&str] = &[
    "/global/activity",
    "/global/activity/model",
    "/global/activity/cache_hits",
    "/tag/daily/activity",
    "/tag/list",
    "/v1/models/{model}",
    "/models/{model}",
    "/user/daily/activity",
];

const INTERNAL_USER_VIEW_ONLY_EXTRA_ROUTES: &[&str] = &["/tag/daily/activity", "/tag/list"];

/// Routes whose handlers do their own authorisation; any authenticated role may reach them.
const SELF_MANAGED_ROUTES: &[&str] = &[
    "/team/update",
    "/team/member_add",
    "/team/member_delete",
    "/team/member_update",
    "/team/permissions_list",
    "/team/permissions_update",
    "/team/daily/activity",
    "/team/{team_id}/members/me",
    "/team/{team_id}/member/{user_id}/reset_spend",
    "/team/{team_id}/member/{user_id}/reset_budget",
    "/team/{team_id}/callback",
    "/team/{team_id}/callback/{callback_name}",
    "/team/{team_id}/disable_logging",
    "/management/v1/teams/{team_id}/members/bulk_delete",
    "/management/v1/teams/{team_id}/members/bulk_update",
    "/team/spend/by_user",
    "/team/daily/activity/aggregated",
    "/team/daily/activity/aggregated/keys",
    "/team/daily/activity/aggregated/search",
    "/team/daily/activity/aggregated/model_top_keys",
    "/team/daily/activity/export",
    "/user/daily/activity/aggregated",
    "/user/daily/activity/aggregated/keys",
    "/user/daily/activity/aggregated/search",
    "/user/daily/activity/aggregated/model_top_keys",
    "/user/daily/activity/aggregated/users",
    "/user/daily/activity/aggregated/cache_leakage_keys",
    "/user/daily/activity/export",
    "/organization/daily/activity",
    "/organization/daily/activity/aggregated",
    "/organization/daily/activity/aggregated/keys",
    "/organization/daily/activity/aggregated/search",
    "/organization/daily/activity/aggregated/model_top_keys",
    "/organization/daily/activity/export",
    "/model/new",
    "/model/update",
    "/model/delete",
    "/model/{model_id}/update",
    "/user/daily/activity",
    "/user/available_roles",
    "/user/list",
    "/health/test_connection",
];

/// Team and organization writes an organization admin (or, where the handler says so, a team
/// admin) may make. The route check lets internal users and org admins through; the handler
/// decides against the named team or organization and otherwise refuses with
/// [`admin_only`]'s message, as LiteLLM's route check would.
const ORG_SCOPED_ROUTES: &[&str] = &[
    "/team/new",
    "/team/delete",
    "/team/block",
    "/team/unblock",
    "/team/model/add",
    "/team/model/delete",
    "/team/bulk_member_add",
    "/organization/new",
    "/organization/update",
    "/organization/info",
    "/organization/delete",
    "/organization/member_add",
    "/organization/member_update",
    "/organization/member_delete",
    "/management/v1/users/bulk",
    "/management/v1/users/bulk_delete",
];

const MANAGEMENT_ROUTES: &[&str] = &[
    "/user/new",
    "/management/v1/users/bulk",
    "/management/v1/users/bulk_delete",
    "/team/metadata_schema",
    "/team/permissions_bulk_update",
    "/team/spend/by_user",
    "/user/update",
    "/user/bulk_update",
    "/user/delete",
    "/user/info",
    "/user/list",
    "/user/daily/activity",
    "/team/new",
    "/team/update",
    "/team/delete",
    "/team/list",
    "/team/info",
    "/team/block",
    "/team/unblock",
    "/team/available",
    "/team/permissions_list",
    "/team/permissions_update",
    "/team/daily/activity",
    "/v2/team/list",
    "/model/new",
    "/model/update",
    "/model/delete",
    "/model/info",
];

/// Writes a read-only admin may not make even though its role sees everything.
const ADMIN_VIEWER_BLOCKED: &[&str] = &[
    "/user/new",
    "/user/delete",
    "/user/bulk_update",
    "/team/new",
    "/team/update",
    "/team/delete",
    "/team/block",
    "/team/unblock",
    "/team/permissions_update",
    "/model/new",
    "/model/update",
    "/model/delete",
    "/key/generate",
    "/key/delete",
    "/key/update",
    "/key/regenerate",
    "/key/service-account/generate",
    "/key/block",
    "/key/unblock",
    "/key/{key}/regenerate",
];

/// Why a route was refused, with LiteLLM's status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDenied {
    pub status: u16,
    pub message: String,
}

fn is_placeholder(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// Routes whose template would, as a list entry, also match static routes beside it
/// (`/team/{team_id}` matches `/team/new`): each is checked exactly, as the route it shares its
/// rules with.
const SAME_RULES_AS: &[(&str, &str)] = &[
    ("/team/{team_id}", "/team/update"),
    ("/v2/organization/{organization_id}", "/organization/update"),
];

fn matches(template: &str, route: &str) -> bool {
    if template == route {
        return true;
    }
    let mut t = template.split('/');
    let mut r = route.split('/');
    loop {
        match (t.next(), r.next()) {
            (None, None) => return true,
            (Some(ts), Some(rs)) if ts == rs || (is_placeholder(ts) && !rs.is_empty()) => {}
            (Some("*"), _) => return true,
            _ => return false,
        }
    }
}

fn in_list(list: &[&str], route: &str) -> bool {
    list.iter().any(|t| matches(t, route))
}

pub fn is_llm_api_route(route: &str) -> bool {
    in_list(LLM_API_ROUTES, route)
}

pub fn is_info_route(route: &str) -> bool {
    in_list(INFO_ROUTES, route)
}

/// Decides whether `role` may call `route` (a template or a concrete path). `read_only` is
/// true for GET/HEAD/OPTIONS. Handlers still apply finer, object-level checks.
pub fn check_route(
    role: UserRole,
    read_only: bool,
    route: &str,
    user_id: Option<&str>,
) -> Result<(), RouteDenied> {
    if role == UserRole::ProxyAdmin {
        return Ok(());
    }
    if let Some((_, same)) = SAME_RULES_AS
        .iter()
        .find(|(template, _)| *template == route)
    {
        return check_route(role, read_only, same, user_id);
    }
    if is_llm_api_route(route) {
        return if role == UserRole::ProxyAdminViewer {
            Err(RouteDenied {
                status: 403,
                message: format!(
                    "user not allowed to access this route, role= {role}. Trying to access: {route}"
                ),
            })
        } else {
            Ok(())
        };
    }
    if in_list(SELF_MANAGED_ROUTES, route) || is_info_route(route) {
        return Ok(());
    }
    let allowed = match role {
        UserRole::ProxyAdmin => true,
        UserRole::ProxyAdminViewer => read_only && !in_list(ADMIN_VIEWER_BLOCKED, route),
        UserRole::InternalUser | UserRole::OrgAdmin => {
            in_list(ORG_SCOPED_ROUTES, route)
                || in_list(KEY_MANAGEMENT_ROUTES, route)
                || in_list(SPEND_TRACKING_ROUTES, route)
                || in_list(INTERNAL_USER_EXTRA_ROUTES, route)
        }
        UserRole::InternalUserViewer => {
            in_list(SPEND_TRACKING_ROUTES, route)
                || in_list(INTERNAL_USER_VIEW_ONLY_EXTRA_ROUTES, route)
        }
        UserRole::Team | UserRole::Customer => false,
    };
    if allowed {
        return Ok(());
    }
    Err(admin_only(role, route, user_id))
}

/// LiteLLM's refusal of a route reserved for proxy admins (401).
pub fn admin_only(role: UserRole, route: &str, user_id: Option<&str>) -> RouteDenied {
    RouteDenied {
        status: 401,
        message: format!(
            "Only proxy admin can be used to generate, delete, update info for new keys/users/teams. Route={route}. Your role={role}. Your user_id={}",
            mask_id(user_id.unwrap_or("None"))
        ),
    }
}

/// The route-group names a key's `allowed_routes` may contain.
fn group_routes(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "llm_api_routes" | "openai_routes" => Some(LLM_API_ROUTES),
        "info_routes" => Some(INFO_ROUTES),
        "management_routes" => Some(MANAGEMENT_ROUTES),
        "key_management_routes" => Some(KEY_MANAGEMENT_ROUTES),
        "spend_tracking_routes" => Some(SPEND_TRACKING_ROUTES),
        _ => None,
    }
}

/// Whether a key restricted to `allowed_routes` may call `route`. Empty means unrestricted.
/// Entries are exact routes, prefix wildcards (`/openai/*`) or group names.
pub fn key_may_call(allowed_routes: &[String], route: &str) -> bool {
    if allowed_routes.is_empty() {
        return true;
    }
    allowed_routes.iter().any(|entry| {
        if let Some(group) = group_routes(entry) {
            return in_list(group, route)
                || (entry == "management_routes" && in_list(KEY_MANAGEMENT_ROUTES, route));
        }
        if let Some(prefix) = entry.strip_suffix('*') {
            return route.starts_with(prefix);
        }
        matches(entry, route)
    })
}

/// The `allowed_routes` a `key_type` seeds.
pub fn routes_for_key_type(key_type: &str) -> Option<Vec<String>> {
    match key_type {
        "llm_api" => Some(vec!["llm_api_routes".into()]),
        "management" => Some(vec!["management_routes".into()]),
        "read_only" => Some(vec!["info_routes".into()]),
        "default" => Some(Vec::new()),
        _ => None,
    }
}

pub fn key_route_denied(allowed_routes: &[String], route: &str) -> RouteDenied {
    RouteDenied {
        status: 403,
        message: format!(
            "Virtual key is not allowed to call this route. Only allowed to call routes: {allowed_routes:?}. Tried to call route: {route}"
        ),
    }
}

fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 6 {
        return id.to_string();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_may_call_everything() {
        for route in [
            "/key/generate",
            "/user/delete",
            "/anything/else",
            "/v1/chat/completions",
        ] {
            assert!(check_route(UserRole::ProxyAdmin, false, route, None).is_ok());
        }
    }

    #[test]
    fn llm_routes_are_open_except_to_the_viewer() {
        assert!(
            check_route(
                UserRole::InternalUserViewer,
                false,
                "/v1/chat/completions",
                None
            )
            .is_ok()
        );
        let denied = check_route(
            UserRole::ProxyAdminViewer,
            false,
            "/v1/chat/completions",
            None,
        )
        .unwrap_err();
        assert_eq!(denied.status, 403);
    }

    #[test]
    fn viewer_reads_but_does_not_write() {
        assert!(check_route(UserRole::ProxyAdminViewer, true, "/key/list", None).is_ok());
        assert!(check_route(UserRole::ProxyAdminViewer, true, "/audit", None).is_ok());
        let denied =
            check_route(UserRole::ProxyAdminViewer, false, "/key/generate", None).unwrap_err();
        assert_eq!(denied.status, 401);
        assert!(
            check_route(
                UserRole::ProxyAdminViewer,
                false,
                "/key/abc/regenerate",
                None
            )
            .is_err()
        );
    }

    #[test]
    fn team_and_org_writes_reach_their_handlers_for_internal_users_only() {
        for route in [
            "/team/new",
            "/team/delete",
            "/team/block",
            "/organization/info",
            "/organization/member_add",
        ] {
            assert!(
                check_route(UserRole::InternalUser, false, route, Some("u1")).is_ok(),
                "{route}"
            );
            assert!(
                check_route(UserRole::OrgAdmin, false, route, Some("u1")).is_ok(),
                "{route}"
            );
            let denied =
                check_route(UserRole::InternalUserViewer, false, route, Some("u1")).unwrap_err();
            assert_eq!(denied.status, 401, "{route}");
            assert!(
                check_route(UserRole::ProxyAdminViewer, false, route, Some("u1")).is_err(),
                "{route}"
            );
        }
        // Self-managed and info routes: handlers decide for every role.
        for route in [
            "/team/update",
            "/team/member_add",
            "/team/info",
            "/v2/team/list",
            "/organization/list",
        ] {
            assert!(
                check_route(UserRole::InternalUserViewer, false, route, None).is_ok(),
                "{route}"
            );
        }
        assert!(TEAM_MEMBER_PERMISSIONS.contains(&"/key/generate"));
        assert!(!TEAM_MEMBER_PERMISSIONS.contains(&"/user/new"));
    }

    #[test]
    fn internal_users_manage_keys_but_not_users() {
        assert!(check_route(UserRole::InternalUser, false, "/key/generate", Some("u1")).is_ok());
        assert!(
            check_route(
                UserRole::InternalUser,
                false,
                "/key/{key}/regenerate",
                Some("u1")
            )
            .is_ok()
        );
        assert!(
            check_route(
                UserRole::InternalUser,
                false,
                "/key/sk-123/regenerate",
                Some("u1")
            )
            .is_ok()
        );
        let denied = check_route(
            UserRole::InternalUser,
            false,
            "/user/new",
            Some("user-123456"),
        )
        .unwrap_err();
        assert_eq!(denied.status, 401);
        assert!(
            denied
                .message
                .contains("Route=/user/new. Your role=internal_user. Your user_id=use****456"),
            "{}",
            denied.message
        );
        assert!(check_route(UserRole::InternalUserViewer, false, "/key/generate", None).is_err());
        assert!(check_route(UserRole::InternalUserViewer, true, "/key/info", None).is_ok());
        assert!(
            check_route(UserRole::Customer, true, "/user/list", None).is_ok(),
            "self-managed routes"
        );
    }

    #[test]
    fn key_allowed_routes_accept_exact_wildcards_and_groups() {
        let llm = vec!["llm_api_routes".to_string()];
        assert!(key_may_call(&llm, "/v1/chat/completions"));
        assert!(!key_may_call(&llm, "/key/generate"));
        let mixed = vec!["/key/info".to_string(), "/openai/*".to_string()];
        assert!(key_may_call(&mixed, "/key/info"));
        assert!(key_may_call(
            &mixed,
            "/openai/deployments/x/chat/completions"
        ));
        assert!(!key_may_call(&mixed, "/key/list"));
        assert!(key_may_call(&[], "/anything"));
        let mgmt = routes_for_key_type("management").unwrap();
        assert!(key_may_call(&mgmt, "/key/generate"));
        assert!(key_may_call(&mgmt, "/user/new"));
        assert!(!key_may_call(&mgmt, "/v1/chat/completions"));
        assert_eq!(routes_for_key_type("bogus"), None);
    }

    #[test]
    fn templates_match_concrete_paths_only_segment_for_segment() {
        assert!(matches("/key/{key}/regenerate", "/key/sk-1/regenerate"));
        assert!(!matches("/key/{key}/regenerate", "/key//regenerate"));
        assert!(!matches("/key/{key}/regenerate", "/key/a/b/regenerate"));
        assert!(!matches("/key/info", "/key/info/x"));
    }

    #[test]
    fn a_team_patch_is_judged_as_a_team_update() {
        for role in [
            UserRole::InternalUser,
            UserRole::OrgAdmin,
            UserRole::InternalUserViewer,
            UserRole::ProxyAdminViewer,
        ] {
            for read_only in [false, true] {
                assert_eq!(
                    check_route(role, read_only, "/team/{team_id}", Some("u1")),
                    check_route(role, read_only, "/team/update", Some("u1")),
                );
                assert_eq!(
                    check_route(
                        role,
                        read_only,
                        "/v2/organization/{organization_id}",
                        Some("u1")
                    ),
                    check_route(role, read_only, "/organization/update", Some("u1")),
                );
            }
        }
        // Neither template is a list entry, so neither admits its static neighbours.
        assert!(!in_list(SELF_MANAGED_ROUTES, "/team/new"));
        assert!(check_route(UserRole::InternalUserViewer, false, "/team/new", None).is_err());
    }
}
