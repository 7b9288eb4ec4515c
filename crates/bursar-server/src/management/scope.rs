//! Object-level authorisation for teams and organizations: who the caller is to a team (proxy
//! admin, org admin of its organization, team admin, member) and to an organization. Read from
//! the membership tables on each management call, so a membership change applies at once.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::StatusCode;
use bursar_core::NanoUsd;
use bursar_core::access;
use bursar_core::policy::{self, Ceiling, LimitSet};
use bursar_core::roles::UserRole;
use bursar_limits::ScopeKind;
use bursar_store::TeamRow;

/// Team membership roles.
pub const TEAM_ADMIN: &str = "admin";
pub const TEAM_USER: &str = "user";

/// Organization membership role with admin rights over the organization.
pub const ORG_ADMIN: &str = "org_admin";

/// The caller's standing towards one team.
#[derive(Debug, Clone, Default)]
pub struct TeamAccess {
    pub proxy_admin: bool,
    /// Proxy admin viewer: may read any team.
    pub viewer: bool,
    /// Org admin of the team's organization.
    pub org_admin: bool,
    /// Membership role (`admin` / `user`) when the caller is a member.
    pub role: Option<String>,
    /// The caller is a key of this team.
    pub team_key: bool,
}

impl TeamAccess {
    pub async fn of(
        state: &AppState,
        principal: &Principal,
        team: &TeamRow,
    ) -> Result<TeamAccess, ApiError> {
        let mut access = TeamAccess {
            proxy_admin: principal.is_proxy_admin(),
            viewer: principal.role() == UserRole::ProxyAdminViewer,
            team_key: matches!(principal, Principal::VirtualKey(s) if s.key.team_id.as_deref() == Some(&team.team_id)),
            ..TeamAccess::default()
        };
        if access.proxy_admin {
            return Ok(access);
        }
        if let Some(user_id) = member_id(principal) {
            access.role = state
                .store()
                .teams()
                .member(&team.team_id, user_id)
                .await?
                .map(|m| m.role);
            if let Some(org) = &team.organization_id {
                access.org_admin = is_org_admin(state, principal, org).await?;
            }
        }
        Ok(access)
    }

    /// Proxy admin, org admin of the team's organization, or team admin.
    pub fn manages(&self) -> bool {
        self.proxy_admin || self.org_admin || self.role.as_deref() == Some(TEAM_ADMIN)
    }

    /// Anyone who may see the team: managers, viewers, members and the team's own keys.
    pub fn reads(&self) -> bool {
        self.manages() || self.viewer || self.role.is_some() || self.team_key
    }

    pub fn is_member(&self) -> bool {
        self.role.is_some()
    }
}

/// The user id a principal acts as for membership checks (none for the master key, which is
/// a proxy admin anyway).
pub fn member_id(principal: &Principal) -> Option<&str> {
    match principal {
        Principal::MasterKey => None,
        Principal::VirtualKey(s) => s.key.user_id.as_deref(),
    }
}

/// LiteLLM's refusal for team writes by someone who is neither proxy admin nor team admin.
pub fn not_team_admin(route: &str, team_id: &str) -> ApiError {
    ApiError::forbidden(format!(
        "Call not allowed. User not proxy admin OR team admin. route={route}, team_id={team_id}"
    ))
}

/// The route-level refusal (401) for a caller without admin rights.
pub fn admin_only(principal: &Principal, route: &str) -> ApiError {
    let denied = access::admin_only(principal.role(), route, principal.user_id());
    ApiError::new(
        StatusCode::from_u16(denied.status).unwrap_or(StatusCode::UNAUTHORIZED),
        "auth_error",
        denied.message,
    )
}

/// Whether the caller holds `org_admin` in the organization.
pub async fn is_org_admin(
    state: &AppState,
    principal: &Principal,
    organization_id: &str,
) -> Result<bool, ApiError> {
    let Some(user_id) = member_id(principal) else {
        return Ok(false);
    };
    let member = state
        .store()
        .orgs()
        .member(organization_id, user_id)
        .await?;
    Ok(member.is_some_and(|m| m.user_role.as_deref() == Some(ORG_ADMIN)))
}

/// The organizations the caller administers.
pub async fn admin_org_ids(
    state: &AppState,
    principal: &Principal,
) -> Result<Vec<String>, ApiError> {
    let Some(user_id) = member_id(principal) else {
        return Ok(Vec::new());
    };
    Ok(state
        .store()
        .orgs()
        .memberships_of(user_id)
        .await?
        .into_iter()
        .filter(|m| m.user_role.as_deref() == Some(ORG_ADMIN))
        .map(|m| m.organization_id)
        .collect())
}

/// What the caller has, and so the most it can grant (see `bursar_core::policy`): nothing
/// bounds the master key and proxy admins; a virtual key is bounded by its own settings and
/// by every scope it acts under (its user, team, membership and organization).
pub fn ceiling(state: &AppState, principal: &Principal) -> Ceiling {
    let snapshot = match principal {
        Principal::VirtualKey(s) if !principal.is_proxy_admin() => s,
        _ => return Ceiling::unlimited(),
    };
    let limits = snapshot
        .scopes
        .iter()
        .filter(|s| {
            matches!(
                s.id.kind,
                ScopeKind::ApiKey
                    | ScopeKind::User
                    | ScopeKind::Team
                    | ScopeKind::TeamMember
                    | ScopeKind::Organization
            )
        })
        .map(|s| {
            let count = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
            LimitSet {
                // What is left, not the maximum: a spent key cannot mint a fresh budget.
                max_budget: s
                    .limits
                    .budget
                    .map(|b| b.max.saturating_sub(b.spent).max(NanoUsd::ZERO)),
                rpm_limit: count(s.limits.rpm),
                tpm_limit: count(s.limits.tpm),
                max_parallel_requests: count(s.limits.max_parallel),
            }
        })
        .fold(LimitSet::default(), LimitSet::min);
    let key = &snapshot.key;
    let expires_at = match (key.expires_at, snapshot.valid_until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ceiling {
        limits,
        models: policy::model_bound(state.catalog(), &snapshot.grants()),
        expires_at,
        permissions: key.permissions.as_object().cloned().unwrap_or_default(),
        allowed_routes: key.allowed_routes.clone(),
    }
}
