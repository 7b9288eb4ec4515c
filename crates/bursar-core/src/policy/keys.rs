//! Rules for creating and changing virtual keys (`/key/generate`, `/key/update`,
//! `/key/regenerate`).
//!
//! - A caller who is not a proxy admin mints and changes keys within its [`Ceiling`]: every
//!   limit, the models (a subset of what it may call; an empty list means "the caller's
//!   list", never "every model"), permissions, allowed routes, expiry and alias targets. A key
//!   is never broader than the key that created it.
//! - On an existing key, a mere holder (its owner, or a team member the team lets manage
//!   keys) may only tighten: no budget field (spend, budgets, budget period, budget row,
//!   per-model budgets and limits, temporary budget increases), no raised or removed limit,
//!   no wider models, routes or expiry, and no unblocking. Proxy admins, and team and org
//!   admins for the keys they administer, may change those (within their own ceiling).
//! - Placing a key in a team or organization asks the same of the caller whether the key is
//!   created there or moved there.

use super::{Ceiling, LimitChange, LimitSet, ModelBound, PolicyError, model_entry_within, within};
use crate::models::{ALL_PROXY_MODELS, ALL_TEAM_MODELS, Catalog};
use crate::money::NanoUsd;
use serde_json::{Map, Value};

/// Metadata entries that govern spend, throughput or a privilege; changing them is a budget
/// change.
pub const GOVERNING_METADATA: [&str; 5] = [
    "temp_budget_increase",
    "temp_budget_expiry",
    "model_rpm_limit",
    "model_tpm_limit",
    "allow_litellm_changed_by_header",
];

/// The caller's standing towards the key it creates or changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// The master key or a `proxy_admin`: no rule applies.
    ProxyAdmin,
    /// A team admin of the key's team or an org admin of its organization.
    Admin,
    /// The key's owner, or a team member allowed the route by the team.
    Holder,
}

/// Who asks, and what they have.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub authority: Authority,
    pub ceiling: &'a Ceiling,
    pub catalog: &'a Catalog,
}

/// The budget fields of a key, compared as a whole: a holder may not change any of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BudgetFields {
    pub spend: NanoUsd,
    pub max_budget: Option<NanoUsd>,
    pub soft_budget: Option<NanoUsd>,
    pub budget_duration: Option<String>,
    pub budget_id: Option<String>,
    pub model_max_budget: Value,
    /// The [`GOVERNING_METADATA`] entries of the key's metadata.
    pub governing_metadata: Map<String, Value>,
}

impl BudgetFields {
    /// The governing entries of a metadata object.
    pub fn governing(metadata: &Value) -> Map<String, Value> {
        GOVERNING_METADATA
            .iter()
            .filter_map(|name| {
                let v = metadata.get(*name)?;
                (!v.is_null()).then(|| (name.to_string(), v.clone()))
            })
            .collect()
    }

    /// The name of the first field that differs, if any.
    pub(crate) fn first_difference(&self, other: &BudgetFields) -> Option<&'static str> {
        let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(Map::is_empty);
        if self.spend != other.spend {
            Some("spend")
        } else if self.max_budget != other.max_budget {
            Some("max_budget")
        } else if self.soft_budget != other.soft_budget {
            Some("soft_budget")
        } else if self.budget_duration != other.budget_duration {
            Some("budget_duration")
        } else if self.budget_id != other.budget_id {
            Some("budget_id")
        } else if self.model_max_budget != other.model_max_budget
            && !(empty(&self.model_max_budget) && empty(&other.model_max_budget))
        {
            Some("model_max_budget")
        } else {
            GOVERNING_METADATA.into_iter().find(|name| {
                self.governing_metadata.get(*name) != other.governing_metadata.get(*name)
            })
        }
    }
}

/// A key as it stands, for the rules that compare against it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyState {
    pub limits: LimitSet,
    pub models: Vec<String>,
    pub blocked: bool,
    pub expires_at: Option<i64>,
    pub allowed_routes: Vec<String>,
    pub budget: BudgetFields,
}

/// What the caller asks for. `None` = not asked (unchanged on update, default on create).
/// The rules may narrow it: an absent limit, expiry, model list or route list under a
/// ceiling is filled in with the ceiling's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyRequest {
    pub limits: LimitChange,
    pub models: Option<Vec<String>>,
    pub blocked: Option<bool>,
    pub expires_at: Option<Option<i64>>,
    pub permissions: Option<Map<String, Value>>,
    pub allowed_routes: Option<Vec<String>>,
    pub aliases: Option<Map<String, Value>>,
    /// Whether the request names a `spend` at all: only admins may send one, even the same
    /// value (as LiteLLM).
    pub sets_spend: bool,
    /// The budget fields as they will be after the change.
    pub budget: BudgetFields,
}

/// Checks a new key and fills in what the caller's ceiling implies.
pub fn new_key(caller: &Caller<'_>, request: &mut KeyRequest) -> Result<(), PolicyError> {
    if caller.authority == Authority::ProxyAdmin {
        return Ok(());
    }
    let ceiling = caller.ceiling;
    // Absent limits inherit the ceiling's; a new key has nothing to keep.
    let asked = request.limits.applied_to(LimitSet::default());
    let inherit = |asked: Option<i64>, cap: Option<i64>| asked.or(cap).map(Some);
    request.limits = LimitChange {
        max_budget: asked.max_budget.or(ceiling.limits.max_budget).map(Some),
        rpm_limit: inherit(asked.rpm_limit, ceiling.limits.rpm_limit),
        tpm_limit: inherit(asked.tpm_limit, ceiling.limits.tpm_limit),
        max_parallel_requests: inherit(
            asked.max_parallel_requests,
            ceiling.limits.max_parallel_requests,
        ),
    };
    within(
        request.limits.applied_to(LimitSet::default()),
        ceiling.limits,
        "the caller's",
    )?;
    // A new key lives at most as long as the key that creates it.
    if let Some(until) = ceiling.expires_at
        && request
            .expires_at
            .flatten()
            .is_none_or(|asked| asked > until)
    {
        request.expires_at = Some(Some(until));
    }
    let models = request.models.take().unwrap_or_default();
    request.models = Some(models_within(caller, models, None)?);
    if request.allowed_routes.as_ref().is_none_or(Vec::is_empty) {
        request.allowed_routes = Some(ceiling.allowed_routes.clone());
    }
    budget_within(ceiling, &BudgetFields::default(), &request.budget)?;
    shared_checks(caller, request, &[])
}

/// The budget fields a capped caller may not use to lift a key above its own budget: a
/// budget row (a proxy admin's object), a budget period or a temporary increase (either
/// lets the key spend more than the caller's remaining budget), and the audit-impersonation
/// privilege. Sending them back unchanged is fine.
fn budget_within(
    ceiling: &Ceiling,
    current: &BudgetFields,
    after: &BudgetFields,
) -> Result<(), PolicyError> {
    let changed = |name: &str| {
        current.governing_metadata.get(name) != after.governing_metadata.get(name)
            && after
                .governing_metadata
                .get(name)
                .is_some_and(|v| !matches!(v, Value::Null | Value::Bool(false)))
    };
    if after.budget_id != current.budget_id && after.budget_id.is_some() {
        return Err(PolicyError::forbidden(
            "budget_id",
            "Only proxy admins can attach a budget row to a key",
        ));
    }
    if changed("allow_litellm_changed_by_header") {
        return Err(PolicyError::forbidden(
            "metadata",
            "Only proxy admins can let a key name who made a change (allow_litellm_changed_by_header)",
        ));
    }
    if ceiling.limits.max_budget.is_some() {
        let period =
            after.budget_duration != current.budget_duration && after.budget_duration.is_some();
        for (field, asked) in [
            ("budget_duration", period),
            ("temp_budget_increase", changed("temp_budget_increase")),
        ] {
            if asked {
                return Err(PolicyError::forbidden(
                    field,
                    format!(
                        "You have a budget of your own: {field} would let the key spend beyond it"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks a change of an existing key (update or regeneration).
pub fn change_key(
    caller: &Caller<'_>,
    current: &KeyState,
    request: &mut KeyRequest,
) -> Result<(), PolicyError> {
    if caller.authority == Authority::ProxyAdmin {
        return Ok(());
    }
    let holder = caller.authority == Authority::Holder;
    if holder {
        let changed = if request.sets_spend {
            Some("spend")
        } else {
            current.budget.first_difference(&request.budget)
        };
        if let Some(field) = changed {
            return Err(PolicyError::forbidden(
                field,
                format!(
                    "Only proxy admins, team admins and org admins can change a key's budget fields; you asked to change {field}"
                ),
            ));
        }
        super::tighten_only(current.limits, request.limits, "A key holder", "a key")?;
        if current.blocked && request.blocked == Some(false) {
            return Err(PolicyError::forbidden(
                "blocked",
                "Only proxy admins, team admins and org admins can unblock a key",
            ));
        }
        if let (Some(until), Some(asked)) = (current.expires_at, request.expires_at)
            && asked.is_none_or(|a| a > until)
        {
            return Err(PolicyError::forbidden(
                "duration",
                "A key holder can shorten a key's lifetime but not extend it",
            ));
        }
        if let Some(routes) = &request.allowed_routes
            && !current.allowed_routes.is_empty()
            && (routes.is_empty() || routes.iter().any(|r| !current.allowed_routes.contains(r)))
        {
            return Err(PolicyError::forbidden(
                "allowed_routes",
                format!(
                    "A key holder can narrow a key's allowed_routes but not widen them (now {:?})",
                    current.allowed_routes
                ),
            ));
        }
    }
    budget_within(caller.ceiling, &current.budget, &request.budget)?;
    // Whatever is changed must fit the caller's own ceiling.
    let changed = request.limits.applied_to(LimitSet::default());
    let cap = |asked: Option<Option<i64>>, cap: Option<i64>| asked.and(cap);
    within(
        changed,
        LimitSet {
            max_budget: request
                .limits
                .max_budget
                .and(caller.ceiling.limits.max_budget),
            rpm_limit: cap(request.limits.rpm_limit, caller.ceiling.limits.rpm_limit),
            tpm_limit: cap(request.limits.tpm_limit, caller.ceiling.limits.tpm_limit),
            max_parallel_requests: cap(
                request.limits.max_parallel_requests,
                caller.ceiling.limits.max_parallel_requests,
            ),
        },
        "the caller's",
    )?;
    if let (Some(until), Some(asked)) = (caller.ceiling.expires_at, request.expires_at)
        && asked.is_none_or(|a| a > until)
    {
        return Err(PolicyError::forbidden(
            "duration",
            "A key cannot outlive the key that changes it",
        ));
    }
    if let Some(models) = request.models.take() {
        let keep = holder.then_some(current.models.as_slice());
        request.models = Some(models_within(caller, models, keep)?);
    }
    if let Some(routes) = &mut request.allowed_routes
        && routes.is_empty()
    {
        routes.clone_from(&caller.ceiling.allowed_routes);
    }
    let models = request
        .models
        .as_deref()
        .unwrap_or(&current.models)
        .to_vec();
    shared_checks(caller, request, &models)
}

/// The rules that apply alike to new and changed keys: permissions, routes and aliases.
/// `models` is the key's model list after the change (empty on create: the request's).
fn shared_checks(
    caller: &Caller<'_>,
    request: &KeyRequest,
    models: &[String],
) -> Result<(), PolicyError> {
    let ceiling = caller.ceiling;
    if let Some(permissions) = &request.permissions {
        for (name, value) in permissions {
            let grants = !matches!(value, Value::Null | Value::Bool(false));
            if grants && ceiling.permissions.get(name) != Some(value) {
                return Err(PolicyError::forbidden(
                    "permissions",
                    format!("You cannot grant the permission {name:?}: your key does not hold it"),
                ));
            }
        }
    }
    if let Some(routes) = &request.allowed_routes
        && !ceiling.allowed_routes.is_empty()
        && let Some(r) = routes.iter().find(|r| !ceiling.allowed_routes.contains(r))
    {
        return Err(PolicyError::forbidden(
            "allowed_routes",
            format!(
                "You cannot allow the route {r:?}: your key may only call {:?}",
                ceiling.allowed_routes
            ),
        ));
    }
    if let Some(aliases) = &request.aliases {
        let models = request.models.as_deref().unwrap_or(models);
        for (alias, target) in aliases {
            let Some(target) = target.as_str() else {
                return Err(PolicyError::invalid(
                    "aliases",
                    format!("The alias {alias:?} must name a model"),
                ));
            };
            let bounded = match &ceiling.models {
                ModelBound::Any => true,
                ModelBound::Only(bound) => model_entry_within(caller.catalog, bound, target),
            };
            if !bounded || !caller.catalog.allows(models, target) {
                return Err(PolicyError::forbidden(
                    "aliases",
                    format!(
                        "The alias {alias:?} points at {target:?}, a model this key may not call"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A requested model list checked against the caller's bound (and, for a holder, the key's
/// current list `keep`). An empty list becomes the caller's own list.
fn models_within(
    caller: &Caller<'_>,
    models: Vec<String>,
    keep: Option<&[String]>,
) -> Result<Vec<String>, PolicyError> {
    let open =
        |list: &[String]| list.is_empty() || list.iter().any(|m| m == "*" || m == ALL_PROXY_MODELS);
    let models = match (&caller.ceiling.models, models.is_empty()) {
        (ModelBound::Only(bound), true) => {
            if bound.is_empty() {
                return Err(PolicyError::forbidden(
                    "models",
                    "You may not call any model, so you cannot grant one",
                ));
            }
            bound.clone()
        }
        (ModelBound::Only(bound), false) => {
            if let Some(m) = models
                .iter()
                .find(|m| !model_entry_within(caller.catalog, bound, m))
            {
                return Err(denied_model(m, bound));
            }
            models
        }
        (ModelBound::Any, _) => models,
    };
    if let Some(current) = keep
        && !open(current)
    {
        let defers = |list: &[String]| list.iter().any(|m| m == ALL_TEAM_MODELS);
        let inside = |m: &String| {
            current.contains(m)
                || caller
                    .catalog
                    .group_members(m)
                    .is_some_and(|ms| ms.iter().all(|x| caller.catalog.allows(current, x)))
                || (!m.contains('*') && m != ALL_TEAM_MODELS && caller.catalog.allows(current, m))
        };
        if open(&models) && !(defers(current) && models.is_empty()) {
            return Err(PolicyError::forbidden(
                "models",
                format!(
                    "A key holder can narrow a key's models but not widen them (now {current:?})"
                ),
            ));
        }
        if let Some(m) = models.iter().find(|m| !inside(m)) {
            return Err(PolicyError::forbidden(
                "models",
                format!(
                    "A key holder can narrow a key's models but not widen them: {m:?} is not in {current:?}"
                ),
            ));
        }
    }
    Ok(models)
}

fn denied_model(model: &str, bound: &[String]) -> PolicyError {
    PolicyError::forbidden(
        "models",
        format!("You cannot grant access to model={model}. Models you have access to = {bound:?}"),
    )
}

/// The caller's standing in the team a key is placed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamPlacement<'a> {
    pub team_id: &'a str,
    pub team_org: Option<&'a str>,
    /// The key's owner is a member of the team (a team key's owner must be).
    pub owner_is_member: bool,
}

/// The caller's standing in the organization a key is placed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgPlacement<'a> {
    pub organization_id: &'a str,
    /// The caller is a member (any role) of the organization.
    pub caller_is_member: bool,
}

/// Where a key is created or moved: its team (whose route permission the caller already
/// passed), organization and owner. `caller` is the caller's user id.
pub fn place_key(
    authority: Authority,
    caller: Option<&str>,
    owner: Option<&str>,
    team: Option<TeamPlacement<'_>>,
    org: Option<OrgPlacement<'_>>,
) -> Result<(), PolicyError> {
    if authority == Authority::ProxyAdmin {
        return Ok(());
    }
    if let (Some(team), Some(org)) = (team, org)
        && team.team_org != Some(org.organization_id)
    {
        return Err(PolicyError::invalid(
            "organization_id",
            format!(
                "The key's organization_id ({}) must be its team's organization ({})",
                org.organization_id,
                team.team_org.unwrap_or("none")
            ),
        ));
    }
    match team {
        Some(team) => {
            if owner.is_some() && !team.owner_is_member {
                return Err(PolicyError::invalid(
                    "user_id",
                    format!(
                        "User={} not assigned to team={}",
                        owner.unwrap_or("None"),
                        team.team_id
                    ),
                ));
            }
        }
        None => {
            if owner.is_none() || owner != caller {
                return Err(PolicyError::forbidden(
                    "team_id",
                    "Only proxy admins can place a key outside a team for another user",
                ));
            }
            if let Some(org) = org
                && !org.caller_is_member
            {
                return Err(PolicyError::forbidden(
                    "organization_id",
                    format!(
                        "You are not a member of organization {}, so you cannot place a key in it",
                        org.organization_id
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
