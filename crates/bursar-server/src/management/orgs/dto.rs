//! What the organization routes answer: LiteLLM's response models, every declared field
//! written (null when unset).

use crate::management::budgets::dto::BudgetTable;
use crate::management::teams::dto::TeamObject;
use crate::management::users::dto::UserTable;
use bursar_core::time::format_ms;
use bursar_store::{BudgetRow, OrgMemberRow, OrgRow};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A member of an organization: LiteLLM's `LiteLLM_OrganizationMembershipTable`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LiteLLM_OrganizationMembershipTable)]
pub struct OrgMembership {
    pub user_id: String,
    pub organization_id: String,
    pub user_role: Option<String>,
    pub spend: f64,
    pub budget_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub user: Option<Value>,
    pub litellm_budget_table: Option<BudgetTable>,
    pub user_email: Option<String>,
}

impl OrgMembership {
    pub fn new(m: &OrgMemberRow, budget: Option<&BudgetRow>) -> OrgMembership {
        OrgMembership {
            user_id: m.user_id.clone(),
            organization_id: m.organization_id.clone(),
            user_role: m.user_role.clone(),
            spend: m.spend.as_usd(),
            budget_id: m.budget_id.clone(),
            created_at: format_ms(m.created_at),
            updated_at: format_ms(m.updated_at),
            user: None,
            litellm_budget_table: budget.map(BudgetTable::new),
            user_email: m.user_email.clone(),
        }
    }
}

/// An organization with its budget, members, users and teams: LiteLLM's
/// `LiteLLM_OrganizationTableWithMembers`, plus `blocked`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LiteLLM_OrganizationTableWithMembers)]
pub struct OrganizationObject {
    pub organization_id: Option<String>,
    pub organization_alias: Option<String>,
    pub budget_id: Option<String>,
    pub spend: f64,
    pub metadata: Option<Value>,
    pub models: Vec<String>,
    pub model_spend: Option<Value>,
    pub created_by: String,
    pub updated_by: String,
    pub users: Option<Vec<UserTable>>,
    pub litellm_budget_table: Option<BudgetTable>,
    pub object_permission: Option<Value>,
    pub object_permission_id: Option<String>,
    pub members: Vec<OrgMembership>,
    pub teams: Vec<TeamObject>,
    pub created_at: String,
    pub updated_at: String,
    pub blocked: bool,
}

/// What an [`OrganizationObject`] is built from.
pub struct OrgParts<'a> {
    pub org: &'a OrgRow,
    pub budget: Option<&'a BudgetRow>,
    pub members: Vec<OrgMembership>,
    pub users: Vec<UserTable>,
    pub teams: Vec<TeamObject>,
}

impl OrganizationObject {
    pub fn new(parts: OrgParts<'_>) -> OrganizationObject {
        let org = parts.org;
        OrganizationObject {
            organization_id: Some(org.organization_id.clone()),
            organization_alias: Some(org.organization_alias.clone()),
            budget_id: org.budget_id.clone(),
            spend: org.spend.as_usd(),
            metadata: Some(org.metadata.clone()),
            models: org.models.clone(),
            model_spend: Some(org.model_spend.clone()),
            created_by: org.created_by.clone(),
            updated_by: org.updated_by.clone(),
            users: Some(parts.users),
            litellm_budget_table: parts.budget.map(BudgetTable::new),
            object_permission: org.object_permission.clone(),
            object_permission_id: None,
            members: parts.members,
            teams: parts.teams,
            created_at: format_ms(org.created_at),
            updated_at: format_ms(org.updated_at),
            blocked: org.blocked,
        }
    }
}

/// `POST /organization/member_add`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationAddMemberResponse {
    pub organization_id: String,
    pub updated_users: Vec<UserTable>,
    pub updated_organization_memberships: Vec<OrgMembership>,
}
