//! The documented shapes of management request bodies that are parsed in two parts, and of the
//! responses that handlers build as JSON. Names are LiteLLM's, so generated clients keep their
//! model classes. Every object allows more properties than listed; the listed ones are typed as
//! served (schemathesis checks served responses against them in CI).

#![allow(dead_code)]

use super::keys::{KeyFields, KeyIdentity};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `POST /key/generate`.
#[derive(ToSchema)]
pub struct GenerateKeyRequest {
    /// A caller-chosen key (`sk-…`, at least 16 characters); generated when absent.
    key: Option<String>,
    #[serde(flatten)]
    fields: KeyFields,
}

/// `POST /key/update`: `key` picks the key; absent fields are unchanged.
#[derive(ToSchema)]
pub struct UpdateKeyRequest {
    /// The key or its hash.
    key: String,
    #[serde(flatten)]
    fields: KeyFields,
}

/// `POST /key/regenerate` and `POST /key/{key}/regenerate`.
#[derive(ToSchema)]
pub struct RegenerateKeyRequest {
    #[serde(flatten)]
    identity: KeyIdentity,
    #[serde(flatten)]
    fields: KeyFields,
}

/// `GET /…/daily/activity`: per-day spend with breakdowns, paged.
#[derive(ToSchema)]
pub struct SpendAnalyticsPaginatedResponse {
    results: Vec<Value>,
    metadata: Map<String, Value>,
}

/// `POST /organization/new`.
#[derive(ToSchema)]
pub struct NewOrganizationRequest {
    /// Generated when absent.
    organization_id: Option<String>,
    #[serde(flatten)]
    fields: super::orgs::OrgFields,
}

/// `PATCH /organization/update`: `organization_id` picks it; absent fields are unchanged.
#[derive(ToSchema)]
pub struct UpdateOrganizationRequest {
    organization_id: String,
    #[serde(flatten)]
    fields: super::orgs::OrgFields,
}

/// `POST /team/new`.
#[derive(ToSchema)]
pub struct NewTeamRequest {
    /// Generated when absent.
    team_id: Option<String>,
    #[serde(flatten)]
    fields: super::teams::TeamFields,
}

/// `POST /team/update`: `team_id` picks it; absent fields are unchanged.
#[derive(ToSchema)]
pub struct UpdateTeamRequest {
    team_id: String,
    #[serde(flatten)]
    fields: super::teams::TeamFields,
}

// LiteLLM gives these bodies their own names; Bursar parses them with a shared type.

/// `POST /team/member_delete`: `user_id` or `user_email`.
#[derive(ToSchema)]
pub struct TeamMemberDeleteRequest(super::teams::MemberRef);

/// `POST /team/model/delete`.
#[derive(ToSchema)]
pub struct TeamModelDeleteRequest(super::teams::TeamModelsRequest);

/// `DELETE /organization/member_delete`: `user_id` or `user_email`.
#[derive(ToSchema)]
pub struct OrganizationMemberDeleteRequest(super::orgs::MemberRef);

/// `POST /customer/update`: `user_id` picks the customer; absent fields are unchanged.
#[derive(ToSchema)]
pub struct UpdateCustomerRequest(super::customers::CustomerFields);

/// `POST /customer/block` and `/customer/unblock`.
#[derive(ToSchema)]
pub struct BlockUsers(super::customers::UserIds);
