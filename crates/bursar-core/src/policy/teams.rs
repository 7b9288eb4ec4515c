//! Rules for changing teams. A team admin may keep or lower the team's limits; raising
//! them, widening its models, unblocking it or moving it takes a proxy admin or an org admin
//! of the team's organization.

use super::{LimitChange, LimitSet, PolicyError, tighten_only};
use crate::money::NanoUsd;
use serde_json::Value;

/// Team metadata entries that govern spend, throughput or members' keys.
pub const GOVERNING_TEAM_METADATA: [&str; 3] = [
    "model_rpm_limit",
    "model_tpm_limit",
    "team_member_key_duration",
];

/// A team's budget fields other than its limits, compared as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamBudget {
    pub soft_budget: Option<NanoUsd>,
    pub budget_duration: Option<String>,
    pub model_max_budget: Value,
    /// The [`GOVERNING_TEAM_METADATA`] entries.
    pub governing_metadata: Vec<(&'static str, Option<Value>)>,
}

impl TeamBudget {
    pub fn new(
        soft_budget: Option<NanoUsd>,
        budget_duration: Option<String>,
        model_max_budget: Value,
        metadata: &Value,
    ) -> TeamBudget {
        TeamBudget {
            soft_budget,
            budget_duration,
            model_max_budget,
            governing_metadata: GOVERNING_TEAM_METADATA
                .iter()
                .map(|name| (*name, metadata.get(*name).filter(|v| !v.is_null()).cloned()))
                .collect(),
        }
    }

    fn first_difference(&self, other: &TeamBudget) -> Option<&'static str> {
        let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
        if self.soft_budget != other.soft_budget {
            Some("soft_budget")
        } else if self.budget_duration != other.budget_duration {
            Some("budget_duration")
        } else if self.model_max_budget != other.model_max_budget
            && !(empty(&self.model_max_budget) && empty(&other.model_max_budget))
        {
            Some("model_max_budget")
        } else {
            self.governing_metadata
                .iter()
                .zip(&other.governing_metadata)
                .find(|(a, b)| a != b)
                .map(|((name, _), _)| *name)
        }
    }
}

/// A team as it stands, for the rules that compare against it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamState<'a> {
    pub team_id: &'a str,
    pub limits: LimitSet,
    pub models: &'a [String],
    pub blocked: bool,
    pub organization_id: Option<&'a str>,
    pub budget: TeamBudget,
}

/// What a team change asks for; `None` = unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamChange<'a> {
    pub limits: LimitChange,
    pub models: Option<&'a [String]>,
    pub blocked: Option<bool>,
    pub organization_id: Option<Option<&'a str>>,
    /// The budget fields as they will be after the change.
    pub budget: TeamBudget,
}

/// Checks a change made by a team admin (not a proxy or org admin).
pub fn team_admin_change(team: &TeamState<'_>, change: &TeamChange<'_>) -> Result<(), PolicyError> {
    let object = format!("team {}", team.team_id);
    let denied = |field: &'static str, what: &str| {
        Err(PolicyError::forbidden(
            field,
            format!("Only a proxy admin or an org admin can {what} of {object}"),
        ))
    };
    tighten_only(team.limits, change.limits, "A team admin", &object)?;
    if let Some(field) = team.budget.first_difference(&change.budget) {
        return denied(field, &format!("change the {field}"));
    }
    if let Some(models) = change.models
        && !team.models.is_empty()
        && (models.is_empty() || models.iter().any(|m| !team.models.contains(m)))
    {
        return denied("models", "widen the models");
    }
    if change.blocked == Some(false) && team.blocked {
        return denied("blocked", "unblock the team");
    }
    if change
        .organization_id
        .is_some_and(|o| o != team.organization_id)
    {
        return denied("organization_id", "change the organization");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::NanoUsd;

    #[test]
    fn a_team_admin_may_tighten_the_team_but_not_loosen_or_move_it() {
        let models = vec!["gpt-4".to_string()];
        let team = TeamState {
            team_id: "t",
            limits: LimitSet {
                max_budget: Some(NanoUsd(10)),
                rpm_limit: Some(5),
                ..LimitSet::default()
            },
            models: &models,
            blocked: true,
            organization_id: Some("o"),
            budget: TeamBudget::default(),
        };
        let lower = TeamChange {
            limits: LimitChange {
                max_budget: Some(Some(NanoUsd(5))),
                ..LimitChange::default()
            },
            models: Some(&models),
            blocked: Some(true),
            organization_id: Some(Some("o")),
            budget: TeamBudget::default(),
        };
        team_admin_change(&team, &lower).unwrap();
        let empty: Vec<String> = Vec::new();
        let wider = vec!["gpt-4".to_string(), "claude".to_string()];
        let period = TeamBudget {
            budget_duration: Some("1s".into()),
            ..TeamBudget::default()
        };
        for (change, field) in [
            (
                TeamChange {
                    budget: period,
                    ..TeamChange::default()
                },
                "budget_duration",
            ),
            (
                TeamChange {
                    limits: LimitChange {
                        rpm_limit: Some(None),
                        ..LimitChange::default()
                    },
                    ..TeamChange::default()
                },
                "rpm_limit",
            ),
            (
                TeamChange {
                    models: Some(&empty),
                    ..TeamChange::default()
                },
                "models",
            ),
            (
                TeamChange {
                    models: Some(&wider),
                    ..TeamChange::default()
                },
                "models",
            ),
            (
                TeamChange {
                    blocked: Some(false),
                    ..TeamChange::default()
                },
                "blocked",
            ),
            (
                TeamChange {
                    organization_id: Some(None),
                    ..TeamChange::default()
                },
                "organization_id",
            ),
        ] {
            assert_eq!(team_admin_change(&team, &change).unwrap_err().field, field);
        }
    }
}
