//! Who may change what: pure rules over the caller, the target object and the requested
//! change, returning the change (possibly narrowed) or a [`PolicyError`]. Every management
//! route that writes keys, teams or organizations asks these functions; none decides on its
//! own.
//!
//! The rules share two ideas:
//! - **Ceiling.** A caller who is not a proxy admin can grant at most what it has itself
//!   ([`Ceiling`]): every limit, the models it may call, its permissions, routes and expiry.
//! - **Tighten only.** A caller who merely holds an object (a key's owner, a team's admin
//!   for the team's own limits) may lower its limits but never raise or remove them
//!   ([`tighten_only`]).

pub mod keys;
pub mod orgs;
pub mod teams;

use crate::models::{ALL_PROXY_MODELS, ALL_TEAM_MODELS, Catalog, Grants, NO_DEFAULT_MODELS};
use crate::money::NanoUsd;
use serde_json::{Map, Value};
use std::fmt;

/// Why a change was refused: the HTTP layer renders `Forbidden` as 403 and `Invalid` as 400,
/// with `field` as the error's `param`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    pub kind: PolicyErrorKind,
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyErrorKind {
    /// The caller lacks the authority for this change.
    Forbidden,
    /// The change itself is not acceptable (the target would not fit its container).
    Invalid,
}

impl PolicyError {
    pub fn forbidden(field: &'static str, message: impl Into<String>) -> PolicyError {
        PolicyError {
            kind: PolicyErrorKind::Forbidden,
            field,
            message: message.into(),
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> PolicyError {
        PolicyError {
            kind: PolicyErrorKind::Invalid,
            field,
            message: message.into(),
        }
    }
}

/// The numeric limits an object carries; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitSet {
    pub max_budget: Option<NanoUsd>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_parallel_requests: Option<i64>,
}

/// A limit value that can be compared and printed the way the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Amount {
    Money(NanoUsd),
    Count(i64),
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Money(m) => write!(f, "{}", m.as_usd()),
            Amount::Count(c) => write!(f, "{c}"),
        }
    }
}

fn show(value: Option<Amount>) -> String {
    value.map_or_else(|| "unlimited".to_string(), |v| v.to_string())
}

impl LimitSet {
    /// The smaller of each limit (`None` loses to any value).
    pub fn min(self, other: LimitSet) -> LimitSet {
        fn lower<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        LimitSet {
            max_budget: lower(self.max_budget, other.max_budget),
            rpm_limit: lower(self.rpm_limit, other.rpm_limit),
            tpm_limit: lower(self.tpm_limit, other.tpm_limit),
            max_parallel_requests: lower(self.max_parallel_requests, other.max_parallel_requests),
        }
    }

    fn amounts(self) -> [(&'static str, Option<Amount>); 4] {
        [
            ("max_budget", self.max_budget.map(Amount::Money)),
            ("rpm_limit", self.rpm_limit.map(Amount::Count)),
            ("tpm_limit", self.tpm_limit.map(Amount::Count)),
            (
                "max_parallel_requests",
                self.max_parallel_requests.map(Amount::Count),
            ),
        ]
    }
}

/// A requested change of a [`LimitSet`]: `None` = unchanged, `Some(None)` = remove the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitChange {
    pub max_budget: Option<Option<NanoUsd>>,
    pub rpm_limit: Option<Option<i64>>,
    pub tpm_limit: Option<Option<i64>>,
    pub max_parallel_requests: Option<Option<i64>>,
}

impl LimitChange {
    fn amounts(self) -> [(&'static str, Option<Option<Amount>>); 4] {
        [
            ("max_budget", self.max_budget.map(|v| v.map(Amount::Money))),
            ("rpm_limit", self.rpm_limit.map(|v| v.map(Amount::Count))),
            ("tpm_limit", self.tpm_limit.map(|v| v.map(Amount::Count))),
            (
                "max_parallel_requests",
                self.max_parallel_requests.map(|v| v.map(Amount::Count)),
            ),
        ]
    }

    /// The limits after applying this change to `current`.
    pub fn applied_to(self, current: LimitSet) -> LimitSet {
        LimitSet {
            max_budget: self.max_budget.unwrap_or(current.max_budget),
            rpm_limit: self.rpm_limit.unwrap_or(current.rpm_limit),
            tpm_limit: self.tpm_limit.unwrap_or(current.tpm_limit),
            max_parallel_requests: self
                .max_parallel_requests
                .unwrap_or(current.max_parallel_requests),
        }
    }
}

/// Refuses any change that raises or removes one of `current`'s limits; lowering, keeping
/// and setting a limit where there was none are fine. `who` names the caller in the message.
pub fn tighten_only(
    current: LimitSet,
    change: LimitChange,
    who: &str,
    object: &str,
) -> Result<(), PolicyError> {
    for ((field, now), (_, asked)) in current.amounts().into_iter().zip(change.amounts()) {
        let (Some(now), Some(asked)) = (now, asked) else {
            continue;
        };
        if asked.is_none_or(|a| a > now) {
            return Err(PolicyError::forbidden(
                field,
                format!(
                    "{who} can lower the {field} of {object} but not raise or remove it (now {now}, asked {})",
                    show(asked)
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses any resulting limit above `ceiling` (a limit the ceiling has may not be removed).
fn within(limits: LimitSet, ceiling: LimitSet, who: &str) -> Result<(), PolicyError> {
    for ((field, value), (_, cap)) in limits.amounts().into_iter().zip(ceiling.amounts()) {
        let Some(cap) = cap else { continue };
        if value.is_none_or(|v| v > cap) {
            return Err(PolicyError::invalid(
                field,
                format!(
                    "{field} ({}) cannot exceed {who} own {field} ({cap}).",
                    show(value)
                ),
            ));
        }
    }
    Ok(())
}

/// The models a caller may hand on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelBound {
    /// Every model (a proxy admin, or a caller whose every model list is open).
    Any,
    /// Only these public model names.
    Only(Vec<String>),
}

/// What a caller who is not a proxy admin has, and so the most it can give a key it creates
/// or changes. Built from the calling key and every scope it acts under (key, user, team,
/// membership, organization).
#[derive(Debug, Clone, PartialEq)]
pub struct Ceiling {
    pub limits: LimitSet,
    pub models: ModelBound,
    /// When the calling key expires (ms); `None` = never.
    pub expires_at: Option<i64>,
    /// The calling key's `permissions`; a permission can be passed on only if held.
    pub permissions: Map<String, Value>,
    /// The calling key's `allowed_routes`; empty = unrestricted.
    pub allowed_routes: Vec<String>,
}

impl Ceiling {
    /// No ceiling at all: the master key and proxy admins.
    pub fn unlimited() -> Ceiling {
        Ceiling {
            limits: LimitSet::default(),
            models: ModelBound::Any,
            expires_at: None,
            permissions: Map::new(),
            allowed_routes: Vec::new(),
        }
    }
}

/// The models a caller with `grants` may hand on: every model when each of its lists is
/// open, else the public names its lists allow (patterns and groups expanded against the
/// catalog, so the bound is never wider than what the caller can call).
pub fn model_bound(catalog: &Catalog, grants: &Grants<'_>) -> ModelBound {
    let open =
        |list: &[String]| list.is_empty() || list.iter().any(|m| m == "*" || m == ALL_PROXY_MODELS);
    let key_open = open(grants.key)
        || (grants.team.is_some() && grants.key.iter().any(|m| m == ALL_TEAM_MODELS));
    let owner_open = match grants.team {
        Some(team) => open(team) && open(grants.member),
        None => grants
            .user
            .is_none_or(|u| open(u) && !u.iter().any(|m| m == NO_DEFAULT_MODELS)),
    };
    if key_open && owner_open && grants.org.is_none_or(open) {
        return ModelBound::Any;
    }
    ModelBound::Only(
        catalog
            .names()
            .iter()
            .filter(|name| grants.check(catalog, &[name.as_str()]).is_ok())
            .cloned()
            .collect(),
    )
}

/// Whether `entry` of a requested model list stays within `bound`: a public name inside it,
/// or an access group whose every member is inside it. Open entries and patterns (`*`,
/// `all-proxy-models`, `openai/*`, `all-team-models`) need an unbounded caller.
fn model_entry_within(catalog: &Catalog, bound: &[String], entry: &str) -> bool {
    if bound.iter().any(|m| m == entry) {
        return true;
    }
    match catalog.group_members(entry) {
        Some(members) => members.iter().all(|m| bound.contains(m)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(budget: Option<i64>, rpm: Option<i64>) -> LimitSet {
        LimitSet {
            max_budget: budget.map(NanoUsd),
            rpm_limit: rpm,
            ..LimitSet::default()
        }
    }

    #[test]
    fn min_keeps_the_tighter_limit_and_any_limit_beats_none() {
        let a = limits(Some(10), None);
        let b = limits(Some(5), Some(7));
        assert_eq!(a.min(b), limits(Some(5), Some(7)));
        assert_eq!(b.min(LimitSet::default()), b);
    }

    #[test]
    fn tighten_only_allows_lowering_and_new_limits_but_not_raising_or_removing() {
        let now = limits(Some(10), Some(5));
        let lower = LimitChange {
            max_budget: Some(Some(NanoUsd(9))),
            rpm_limit: Some(Some(5)),
            tpm_limit: Some(Some(100)),
            ..LimitChange::default()
        };
        assert_eq!(tighten_only(now, lower, "a key holder", "the key"), Ok(()));
        let raise = LimitChange {
            rpm_limit: Some(Some(6)),
            ..LimitChange::default()
        };
        let e = tighten_only(now, raise, "a key holder", "the key").unwrap_err();
        assert_eq!((e.kind, e.field), (PolicyErrorKind::Forbidden, "rpm_limit"));
        let remove = LimitChange {
            max_budget: Some(None),
            ..LimitChange::default()
        };
        let e = tighten_only(now, remove, "a key holder", "the key").unwrap_err();
        assert_eq!(e.field, "max_budget");
        assert!(e.message.contains("unlimited"), "{e}");
    }

    fn names(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn catalog() -> Catalog {
        let beta = names(&["beta"]);
        let none: Vec<String> = Vec::new();
        Catalog::new([
            ("gpt-4", "openai/gpt-4", none.as_slice()),
            ("gpt-4o", "openai/gpt-4o", beta.as_slice()),
            ("claude", "anthropic/claude", beta.as_slice()),
        ])
    }

    #[test]
    fn open_lists_bound_nothing_and_restricted_ones_bound_to_what_they_allow() {
        let c = catalog();
        let empty: Vec<String> = Vec::new();
        let open = Grants {
            key: &empty,
            ..Grants::default()
        };
        assert_eq!(model_bound(&c, &open), ModelBound::Any);
        let key = names(&["gpt-4"]);
        let narrow = Grants {
            key: &key,
            ..Grants::default()
        };
        assert_eq!(
            model_bound(&c, &narrow),
            ModelBound::Only(names(&["gpt-4"]))
        );
        // A pattern or group is expanded; the user's list narrows a personal key.
        let pattern = names(&["openai/*"]);
        let user = names(&["gpt-4o", "claude"]);
        let both = Grants {
            key: &pattern,
            user: Some(&user),
            ..Grants::default()
        };
        assert_eq!(model_bound(&c, &both), ModelBound::Only(names(&["gpt-4o"])));
        // A team key deferring to an open team is open; to a restricted one, bounded by it.
        let defer = names(&["all-team-models"]);
        let team = names(&["beta"]);
        let team_key = Grants {
            key: &defer,
            team: Some(&team),
            ..Grants::default()
        };
        assert_eq!(
            model_bound(&c, &team_key),
            ModelBound::Only(names(&["gpt-4o", "claude"]))
        );
        let open_team = Grants {
            key: &defer,
            team: Some(&empty),
            ..Grants::default()
        };
        assert_eq!(model_bound(&c, &open_team), ModelBound::Any);
        // no-default-models on the owner of a personal key: nothing.
        let none = names(&["no-default-models"]);
        let nothing = Grants {
            key: &empty,
            user: Some(&none),
            ..Grants::default()
        };
        assert_eq!(model_bound(&c, &nothing), ModelBound::Only(Vec::new()));
    }

    #[test]
    fn within_refuses_values_above_or_missing_under_a_ceiling() {
        let cap = limits(Some(10), None);
        assert_eq!(within(limits(Some(10), Some(1000)), cap, "your"), Ok(()));
        assert_eq!(
            within(limits(Some(11), None), cap, "your")
                .unwrap_err()
                .field,
            "max_budget"
        );
        assert_eq!(
            within(limits(None, None), cap, "your").unwrap_err().field,
            "max_budget"
        );
    }
}
