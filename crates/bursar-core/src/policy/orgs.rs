//! Rules for changing organizations. An organization's own budget, limits, models and
//! blocked state are set by proxy admins: org admins manage members and teams *inside* those
//! limits, and cannot lift them.

use super::LimitSet;
use super::PolicyError;
use super::keys::BudgetFields;

/// What bounds an organization; only proxy admins change it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgGoverned {
    pub limits: LimitSet,
    /// Budget period, row, soft budget, per-model budgets and governing metadata.
    pub budget: BudgetFields,
    pub models: Vec<String>,
    pub blocked: bool,
}

/// Checks an organization change: a proxy admin may change anything; an org admin anything
/// but the organization's governed fields (sending them back unchanged is fine).
pub fn change_org(
    proxy_admin: bool,
    current: &OrgGoverned,
    after: &OrgGoverned,
) -> Result<(), PolicyError> {
    if proxy_admin {
        return Ok(());
    }
    let refuse = |field: &'static str| {
        Err(PolicyError::forbidden(
            field,
            format!(
                "Only proxy admins can change an organization's {field}; org admins manage members and teams within the organization's limits"
            ),
        ))
    };
    let (now, next) = (current.limits, after.limits);
    if now.max_budget != next.max_budget {
        return refuse("max_budget");
    }
    if now.rpm_limit != next.rpm_limit {
        return refuse("rpm_limit");
    }
    if now.tpm_limit != next.tpm_limit {
        return refuse("tpm_limit");
    }
    if now.max_parallel_requests != next.max_parallel_requests {
        return refuse("max_parallel_requests");
    }
    let budget_now = BudgetFields {
        spend: after.budget.spend,
        max_budget: now.max_budget,
        ..current.budget.clone()
    };
    let budget_next = BudgetFields {
        max_budget: now.max_budget,
        ..after.budget.clone()
    };
    if let Some(field) = budget_now.first_difference(&budget_next) {
        return refuse(field);
    }
    if current.models != after.models {
        return refuse("models");
    }
    if current.blocked != after.blocked {
        return refuse("blocked");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::NanoUsd;
    use crate::policy::PolicyErrorKind;

    fn org() -> OrgGoverned {
        OrgGoverned {
            limits: LimitSet {
                max_budget: Some(NanoUsd(100)),
                rpm_limit: Some(10),
                ..LimitSet::default()
            },
            models: vec!["gpt-4".into()],
            ..OrgGoverned::default()
        }
    }

    #[test]
    fn an_org_admin_cannot_change_the_organizations_limits_models_or_blocked_state() {
        let current = org();
        let mut raised = org();
        raised.limits.max_budget = Some(NanoUsd(1_000));
        let mut lowered = org();
        lowered.limits.rpm_limit = Some(1);
        let mut widened = org();
        widened.models.clear();
        let mut unblocked = org();
        unblocked.blocked = !current.blocked;
        let mut period = org();
        period.budget.budget_duration = Some("1d".into());
        for (after, field) in [
            (raised, "max_budget"),
            (lowered, "rpm_limit"),
            (widened, "models"),
            (unblocked, "blocked"),
            (period, "budget_duration"),
        ] {
            let e = change_org(false, &current, &after).unwrap_err();
            assert_eq!((e.kind, e.field), (PolicyErrorKind::Forbidden, field));
            change_org(true, &current, &after).unwrap();
        }
        change_org(false, &current, &org()).unwrap();
    }
}
