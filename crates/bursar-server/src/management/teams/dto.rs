//! What the team routes answer: LiteLLM's response models, every declared field written (null
//! when unset). Fields Bursar has no feature for are always null.

use crate::management::budgets::dto::BudgetTable;
use crate::management::keys::dto::KeyObject;
use crate::management::users::dto::UserTable;
use bursar_core::NanoUsd;
use bursar_core::time::format_ms;
use bursar_store::{BudgetRow, TeamMemberRow, TeamRow};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

/// A team member with their role.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Member {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    /// `admin` or `user`.
    pub role: String,
}

/// A team: LiteLLM's `LiteLLM_TeamTable`. `members_with_roles` carries membership; `admins` and
/// `members` are LiteLLM's legacy columns, which no route writes: always empty.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LiteLLM_TeamTable)]
pub struct TeamObject {
    pub team_alias: Option<String>,
    pub team_id: String,
    pub organization_id: Option<String>,
    pub admins: Vec<String>,
    pub members: Vec<String>,
    pub members_with_roles: Vec<Member>,
    pub team_member_permissions: Option<Vec<String>>,
    pub metadata: Option<Value>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpd_limit: Option<i64>,
    pub max_budget: Option<f64>,
    pub soft_budget: Option<f64>,
    pub budget_duration: Option<String>,
    pub budget_limits: Option<Value>,
    pub models: Vec<String>,
    pub blocked: bool,
    pub router_settings: Option<Value>,
    pub access_group_ids: Option<Vec<String>>,
    pub default_team_member_models: Option<Vec<String>>,
    pub spend: Option<f64>,
    pub max_parallel_requests: Option<i64>,
    pub budget_reset_at: Option<String>,
    pub model_id: Option<i64>,
    pub model_spend: Option<Value>,
    pub model_max_budget: Option<Value>,
    pub policies: Option<Vec<String>>,
    pub allow_team_guardrail_config: Option<bool>,
    pub litellm_model_table: Option<Value>,
    pub object_permission: Option<Value>,
    pub object_permission_id: Option<String>,
    pub updated_at: Option<String>,
    pub created_at: Option<String>,
}

impl TeamObject {
    pub fn new(team: &TeamRow, members: &[TeamMemberRow]) -> TeamObject {
        TeamObject {
            team_alias: team.team_alias.clone(),
            team_id: team.team_id.clone(),
            organization_id: team.organization_id.clone(),
            admins: Vec::new(),
            members: Vec::new(),
            members_with_roles: members
                .iter()
                .map(|m| Member {
                    user_id: Some(m.user_id.clone()),
                    user_email: m.user_email.clone(),
                    role: m.role.clone(),
                })
                .collect(),
            team_member_permissions: Some(team.team_member_permissions.clone()),
            // Callback credentials are stored, never shown.
            metadata: Some(super::callbacks::redacted_metadata(&team.metadata)),
            tpm_limit: team.tpm_limit,
            rpm_limit: team.rpm_limit,
            tpd_limit: None,
            max_budget: team.max_budget.map(NanoUsd::as_usd),
            soft_budget: team.soft_budget.map(NanoUsd::as_usd),
            budget_duration: team.budget_duration.clone(),
            budget_limits: None,
            models: team.models.clone(),
            blocked: team.blocked,
            router_settings: Some(team.router_settings.clone()),
            access_group_ids: Some(team.access_group_ids.clone()),
            default_team_member_models: None,
            spend: Some(team.spend.as_usd()),
            max_parallel_requests: team.max_parallel_requests,
            budget_reset_at: team.budget_reset_at.map(format_ms),
            model_id: None,
            model_spend: Some(team.model_spend.clone()),
            model_max_budget: Some(team.model_max_budget.clone()),
            policies: None,
            allow_team_guardrail_config: Some(false),
            litellm_model_table: team
                .model_aliases
                .as_object()
                .filter(|m| !m.is_empty())
                .map(|_| json!({"model_aliases": team.model_aliases})),
            object_permission: team.object_permission.clone(),
            object_permission_id: None,
            updated_at: Some(format_ms(team.updated_at)),
            created_at: Some(format_ms(team.created_at)),
        }
    }

    /// The team as the audit log records it.
    pub fn audit(team: &TeamRow, members: &[TeamMemberRow]) -> Value {
        serde_json::to_value(TeamObject::new(team, members)).unwrap_or(Value::Null)
    }
}

/// A membership row with its budget: LiteLLM's `LiteLLM_TeamMembership`, plus the member's
/// email and role.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LiteLLM_TeamMembership)]
pub struct TeamMembership {
    pub user_id: String,
    pub team_id: String,
    pub budget_id: Option<String>,
    pub spend: Option<f64>,
    pub total_spend: Option<f64>,
    pub litellm_budget_table: Option<BudgetTable>,
    pub user_email: Option<String>,
    pub role: String,
}

impl TeamMembership {
    pub fn new(m: &TeamMemberRow, budget: Option<&BudgetRow>) -> TeamMembership {
        TeamMembership {
            user_id: m.user_id.clone(),
            team_id: m.team_id.clone(),
            budget_id: m.budget_id.clone(),
            spend: Some(m.spend.as_usd()),
            total_spend: Some(m.total_spend.as_usd()),
            litellm_budget_table: budget.map(BudgetTable::new),
            user_email: m.user_email.clone(),
            role: m.role.clone(),
        }
    }
}

/// `GET /team/info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamInfoResponse {
    pub team_id: String,
    pub team_info: TeamObject,
    pub keys: Vec<KeyObject>,
    pub team_memberships: Vec<TeamMembership>,
}

/// One team of `GET /team/list`: the team with its keys and memberships.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamWithKeys {
    #[serde(flatten)]
    pub team: TeamObject,
    pub keys: Vec<KeyObject>,
    pub team_memberships: Vec<TeamMembership>,
}

/// A deleted team as archived, with when and by whom.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LiteLLM_DeletedTeamTable)]
pub struct DeletedTeam {
    #[serde(flatten)]
    pub team: Map<String, Value>,
    pub deleted_at: String,
    pub deleted_by: Option<String>,
}

/// An entry of `/v2/team/list`: a team, or with `status=deleted` a deleted one.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TeamListEntry {
    Team(Box<TeamObject>),
    Deleted(DeletedTeam),
}

/// `GET /v2/team/list`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamListResponse {
    pub teams: Vec<TeamListEntry>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    pub total_pages: u64,
}

/// `POST /team/update`: the team after the change.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateTeamResponse {
    pub team_id: String,
    pub data: TeamObject,
}

/// `POST /team/delete`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteTeamResponse {
    pub deleted_teams: Vec<String>,
}

/// `POST /team/member_add`: the team, the added users and their memberships.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamAddMemberResponse {
    #[serde(flatten)]
    pub team: TeamObject,
    pub updated_users: Vec<UserTable>,
    pub updated_team_memberships: Vec<TeamMembership>,
}

/// One member of `/team/bulk_member_add`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMemberAddResult {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub success: bool,
    pub error: Option<String>,
    pub updated_user: Option<Value>,
    pub updated_team_membership: Option<Value>,
}

/// `POST /team/bulk_member_add`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkTeamMemberAddResponse {
    pub team_id: String,
    pub results: Vec<TeamMemberAddResult>,
    pub total_requested: usize,
    pub successful_additions: usize,
    pub failed_additions: usize,
    pub updated_team: Option<TeamObject>,
}

/// `POST /team/member_update`: the member's role, budget and limits in the team.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMemberUpdateResponse {
    pub user_id: String,
    pub user_email: Option<String>,
    pub team_id: String,
    pub role: String,
    pub max_budget_in_team: Option<f64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub budget_duration: Option<String>,
    pub allowed_models: Option<Vec<String>>,
    pub temp_budget_increase: Option<f64>,
    pub temp_budget_expiry: Option<String>,
    pub model_max_budget: Option<Value>,
}

impl TeamMemberUpdateResponse {
    pub fn new(member: &TeamMemberRow, budget: Option<&BudgetRow>) -> Self {
        TeamMemberUpdateResponse {
            user_id: member.user_id.clone(),
            user_email: member.user_email.clone(),
            team_id: member.team_id.clone(),
            role: member.role.clone(),
            max_budget_in_team: budget.and_then(|b| b.max_budget).map(NanoUsd::as_usd),
            tpm_limit: budget.and_then(|b| b.tpm_limit),
            rpm_limit: budget.and_then(|b| b.rpm_limit),
            budget_duration: budget.and_then(|b| b.budget_duration.clone()),
            allowed_models: budget.map(|b| b.allowed_models.clone()),
            temp_budget_increase: None,
            temp_budget_expiry: None,
            model_max_budget: budget.and_then(|b| b.model_max_budget.clone()),
        }
    }
}

/// `GET /team/permissions_list`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetTeamMemberPermissionsResponse {
    pub team_id: String,
    pub team_member_permissions: Option<Vec<String>>,
    pub all_available_permissions: Vec<String>,
}

/// `GET /team/{team_id}/members/me`: the caller's membership (LiteLLM's
/// `TeamMemberInfoResponse`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMemberInfoResponse {
    pub user_id: String,
    pub team_id: String,
    pub budget_id: Option<String>,
    pub spend: Option<f64>,
    pub total_spend: Option<f64>,
    pub litellm_budget_table: Option<BudgetTable>,
    pub role: Option<String>,
    pub user_email: Option<String>,
    pub team_alias: Option<String>,
}

/// `POST /team/{team_id}/member/{user_id}/reset_spend`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMemberSpendResetResponse {
    pub team_id: String,
    pub user_id: String,
    pub spend: f64,
    pub previous_spend: f64,
    pub max_budget: Option<f64>,
}

/// `POST /team/{team_id}/member/{user_id}/reset_budget`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMemberResetBudgetResponse {
    pub team_id: String,
    pub user_id: String,
    pub budget_id: Option<String>,
    pub previous_budget_id: Option<String>,
    /// `team_default` (the team's member budget) or `none`.
    pub budget_source: String,
}

/// One declared team metadata field.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMetadataFieldSchema {
    pub key: String,
    pub label: Option<String>,
}

/// `GET /team/metadata_schema`: `general_settings.team_metadata_schema` (empty when unset).
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMetadataSchemaResponse {
    pub fields: Vec<TeamMetadataFieldSchema>,
}

/// `POST /team/permissions_bulk_update`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkUpdateTeamMemberPermissionsResponse {
    pub message: String,
    /// Teams that gained at least one permission.
    pub teams_updated: usize,
    pub permissions_appended: Option<Vec<String>>,
}
