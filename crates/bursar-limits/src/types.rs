//! The values passed to and returned from a [`crate::Limiter`].

use bursar_core::duration::BudgetDuration;
use bursar_core::money::NanoUsd;
use std::fmt;
use std::sync::Arc;

/// What kind of entity a scope belongs to; its name is LiteLLM's rate-limit descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeKind {
    ApiKey,
    User,
    Team,
    TeamMember,
    Organization,
    EndUser,
    /// A key's limits for one model (`model_max_budget`, `model_rpm_limit`, …).
    ModelPerKey,
    /// A team's limits for one model.
    ModelPerTeam,
}

impl ScopeKind {
    pub const ALL: [ScopeKind; 8] = [
        ScopeKind::ApiKey,
        ScopeKind::User,
        ScopeKind::Team,
        ScopeKind::TeamMember,
        ScopeKind::Organization,
        ScopeKind::EndUser,
        ScopeKind::ModelPerKey,
        ScopeKind::ModelPerTeam,
    ];

    pub fn descriptor(self) -> &'static str {
        match self {
            ScopeKind::ApiKey => "api_key",
            ScopeKind::User => "user",
            ScopeKind::Team => "team",
            ScopeKind::TeamMember => "team_member",
            ScopeKind::Organization => "organization",
            ScopeKind::EndUser => "end_user",
            ScopeKind::ModelPerKey => "model_per_key",
            ScopeKind::ModelPerTeam => "model_per_team",
        }
    }
}

/// One scope's identity: its kind and the entity's id (`{team}:{user}` for team members,
/// `{key}:{model}` for per-model scopes).
/// Cheap to clone: reservations and headers carry copies of it on every request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeId {
    pub kind: ScopeKind,
    pub value: Arc<str>,
}

impl ScopeId {
    pub fn new(kind: ScopeKind, value: impl AsRef<str>) -> ScopeId {
        ScopeId {
            kind,
            value: Arc::from(value.as_ref()),
        }
    }
}

impl fmt::Display for ScopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.descriptor(), self.value)
    }
}

/// A recurring budget period: spend returns to zero at `reset_at`, then every `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub duration: BudgetDuration,
    pub reset_at: i64,
}

impl Period {
    /// The first reset strictly after `now_ms`, stepping from `reset_at`.
    pub fn next_reset_after(&self, now_ms: i64) -> i64 {
        self.duration.next_reset(self.reset_at, now_ms)
    }
}

/// A spending cap. `spent` is the figure the system of record last reported; the limiter
/// adds what it has settled since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max: NanoUsd,
    pub spent: NanoUsd,
    pub period: Option<Period>,
}

/// Everything one scope limits. `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub budget: Option<Budget>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u64>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.budget.is_none()
            && self.rpm.is_none()
            && self.tpm.is_none()
            && self.max_parallel.is_none()
    }
}

/// A scope a request is admitted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub id: ScopeId,
    pub limits: Limits,
}

/// What a request is expected to cost (reserve) or did cost (settle).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    pub cost: NanoUsd,
    pub tokens: u64,
    /// LiteLLM's budget rule: admit while any budget remains on every budget scope, holding
    /// on each at most what remains there (so concurrent requests still cannot all pass),
    /// and refuse once spend and holds reach the budget. `false`: the whole cost must fit.
    pub up_to_remaining: bool,
}

/// What a reservation holds on one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taken {
    pub cost: NanoUsd,
    pub tokens: u64,
}

/// An admitted request's hold on its scopes, settled or released exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: u64,
    pub expires_at: i64,
    /// Shared with the limiter's record of the open reservation.
    pub held: Arc<[(ScopeId, Taken)]>,
    /// Room left after this request, per rate-limited scope, for response headers.
    pub headroom: Vec<Headroom>,
    /// Granted by this instance's own counters while the shared backend was unreachable
    /// (see [`crate::Failover`]); settled there too.
    pub local: bool,
}

/// Room left on one scope's rate limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headroom {
    pub scope: ScopeId,
    pub limit_requests: Option<u64>,
    pub remaining_requests: Option<u64>,
    pub limit_tokens: Option<u64>,
    pub remaining_tokens: Option<u64>,
    /// When the current rate window closes.
    pub window_resets_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKind {
    Requests,
    Tokens,
    Parallel,
}

impl RateKind {
    /// LiteLLM's name for the limit type in its 429 message.
    pub fn as_str(self) -> &'static str {
        match self {
            RateKind::Requests => "requests",
            RateKind::Tokens => "tokens",
            RateKind::Parallel => "max_parallel_requests",
        }
    }
}

/// Why a request was refused; nothing was consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Budget {
        scope: ScopeId,
        spent: NanoUsd,
        reserved: NanoUsd,
        requested: NanoUsd,
        max: NanoUsd,
    },
    Rate {
        scope: ScopeId,
        kind: RateKind,
        limit: u64,
        remaining: u64,
        /// When trying again can succeed.
        retry_at: i64,
    },
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Granted(Reservation),
    Refused(Refusal),
}
