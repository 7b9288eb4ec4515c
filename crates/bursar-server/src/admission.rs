//! Admission on the data plane: which budget and limit scopes a request is held against,
//! what it is expected to cost, and the reservation it holds until it is settled.

use crate::auth::KeySnapshot;
use crate::error::ApiError;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use bursar_core::duration::BudgetDuration;
use bursar_core::money::NanoUsd;
use bursar_core::pricing::Price;
use bursar_limits::{
    Budget, Demand, Limiter, Limits, Period, Refusal, Reservation, Scope, ScopeId, ScopeKind,
};
use bursar_store::{BudgetRow, EndUserRow, KeyRow, OrgRow, TeamMemberRow, TeamRow, UserRow};
use serde_json::Value;
use std::sync::{Arc, OnceLock};

/// The rows a key's scopes come from.
pub struct Rows<'a> {
    pub key: &'a KeyRow,
    pub key_budget: Option<&'a BudgetRow>,
    pub user: Option<&'a UserRow>,
    pub team: Option<&'a TeamRow>,
    pub member: Option<&'a TeamMemberRow>,
    pub member_budget: Option<&'a BudgetRow>,
    pub org: Option<&'a OrgRow>,
    pub org_budget: Option<&'a BudgetRow>,
    pub now: i64,
}

fn limit(value: Option<i64>) -> Option<u64> {
    value.and_then(|v| u64::try_from(v).ok())
}

/// A budget period from a stored duration and next reset time.
fn period(duration: Option<&str>, reset_at: Option<i64>, now: i64) -> Option<Period> {
    let duration = BudgetDuration::parse(duration?).ok()?;
    let reset_at = reset_at.unwrap_or_else(|| duration.after(now));
    Some(Period { duration, reset_at })
}

fn budget(max: Option<NanoUsd>, spent: NanoUsd, period: Option<Period>) -> Option<Budget> {
    max.map(|max| Budget { max, spent, period })
}

/// The limits a budget row sets, with `max` as the budget (the row's own, or a default the
/// caller chose) against `spent`.
fn row_limits(row: Option<&BudgetRow>, max: Option<NanoUsd>, spent: NanoUsd, now: i64) -> Limits {
    Limits {
        budget: budget(
            max,
            spent,
            row.and_then(|b| period(b.budget_duration.as_deref(), b.budget_reset_at, now)),
        ),
        rpm: limit(row.and_then(|b| b.rpm_limit)),
        tpm: limit(row.and_then(|b| b.tpm_limit)),
        max_parallel: limit(row.and_then(|b| b.max_parallel_requests)),
    }
}

/// The scope of an end user: its budget row, or the configured default budget
/// (`max_end_user_budget`) when the row sets none. `None` when nothing limits it.
pub fn end_user_scope(
    row: &EndUserRow,
    budget: Option<&BudgetRow>,
    default_max: Option<NanoUsd>,
    now: i64,
) -> Option<Scope> {
    let max = budget.and_then(|b| b.max_budget).or(default_max);
    let limits = row_limits(budget, max, row.spend, now);
    (!limits.is_unlimited()).then(|| Scope {
        id: ScopeId::new(ScopeKind::EndUser, &row.user_id),
        limits,
    })
}

fn push(scopes: &mut Vec<Scope>, kind: ScopeKind, value: &str, limits: Limits) {
    if !limits.is_unlimited() {
        scopes.push(Scope {
            id: ScopeId::new(kind, value),
            limits,
        });
    }
}

/// A key's temporary budget increase (`metadata.temp_budget_increase` until
/// `metadata.temp_budget_expiry`).
fn temp_increase(key: &KeyRow, now: i64) -> NanoUsd {
    let amount = key
        .metadata
        .get("temp_budget_increase")
        .and_then(Value::as_f64)
        .and_then(NanoUsd::from_usd);
    let expiry = key
        .metadata
        .get("temp_budget_expiry")
        .and_then(Value::as_str)
        .and_then(bursar_core::time::parse_ms);
    match (amount, expiry) {
        (Some(amount), Some(expiry)) if expiry > now => amount,
        _ => NanoUsd::ZERO,
    }
}

/// Every scope of a key that limits something: the key (its own fields, else its budget
/// row), its owner (the owner's budget only for keys without a team, as in LiteLLM), its
/// team, its team membership (own budget row or the team's default member budget), and the
/// organization.
pub fn key_scopes(r: &Rows<'_>) -> Vec<Scope> {
    let mut scopes = Vec::new();
    let key = r.key;
    let kb = r.key_budget;
    let key_max = key
        .max_budget
        .or(kb.and_then(|b| b.max_budget))
        .map(|m| m.saturating_add(temp_increase(key, r.now)));
    push(
        &mut scopes,
        ScopeKind::ApiKey,
        &key.token,
        Limits {
            budget: budget(
                key_max,
                key.spend,
                period(
                    key.budget_duration
                        .as_deref()
                        .or(kb.and_then(|b| b.budget_duration.as_deref())),
                    key.budget_reset_at.or(kb.and_then(|b| b.budget_reset_at)),
                    r.now,
                ),
            ),
            rpm: limit(key.rpm_limit.or(kb.and_then(|b| b.rpm_limit))),
            tpm: limit(key.tpm_limit.or(kb.and_then(|b| b.tpm_limit))),
            max_parallel: limit(
                key.max_parallel_requests
                    .or(kb.and_then(|b| b.max_parallel_requests)),
            ),
        },
    );
    if let Some(user) = r.user {
        let personal = key.team_id.is_none();
        push(
            &mut scopes,
            ScopeKind::User,
            &user.user_id,
            Limits {
                budget: if personal {
                    budget(
                        user.max_budget,
                        user.spend,
                        period(user.budget_duration.as_deref(), user.budget_reset_at, r.now),
                    )
                } else {
                    None
                },
                rpm: limit(user.rpm_limit),
                tpm: limit(user.tpm_limit),
                max_parallel: limit(user.max_parallel_requests),
            },
        );
    }
    if let Some(team) = r.team {
        push(
            &mut scopes,
            ScopeKind::Team,
            &team.team_id,
            Limits {
                budget: budget(
                    team.max_budget,
                    team.spend,
                    period(team.budget_duration.as_deref(), team.budget_reset_at, r.now),
                ),
                rpm: limit(team.rpm_limit),
                tpm: limit(team.tpm_limit),
                max_parallel: limit(team.max_parallel_requests),
            },
        );
        if let (Some(member), Some(b)) = (r.member, r.member_budget) {
            push(
                &mut scopes,
                ScopeKind::TeamMember,
                &format!("{}:{}", team.team_id, member.user_id),
                row_limits(Some(b), b.max_budget, member.spend, r.now),
            );
        }
    }
    if let (Some(org), Some(b)) = (r.org, r.org_budget) {
        push(
            &mut scopes,
            ScopeKind::Organization,
            &org.organization_id,
            row_limits(Some(b), b.max_budget, org.spend, r.now),
        );
    }
    scopes
}

/// A model's entry in a `{model: value}` map, by the requested or the resolved name.
fn model_entry<'v>(map: Option<&'v Value>, names: &[&str]) -> Option<&'v Value> {
    let map = map?.as_object()?;
    names.iter().find_map(|n| map.get(*n))
}

/// The per-model scopes of one request: the key's `model_max_budget` (budget, rpm, tpm per
/// model) and `metadata.model_rpm_limit` / `model_tpm_limit`, and the team's
/// `metadata.model_rpm_limit` / `model_tpm_limit`.
pub fn model_scopes(snapshot: &KeySnapshot, names: &[&str]) -> Vec<Scope> {
    let mut scopes = Vec::new();
    let Some(model) = names.first() else {
        return scopes;
    };
    let key = &snapshot.key;
    let spec = model_entry(Some(&key.model_max_budget), names);
    let num = |v: Option<&Value>, field: &str| v.and_then(|v| v.get(field)).and_then(Value::as_f64);
    let max = num(spec, "max_budget")
        .or_else(|| num(spec, "budget_limit"))
        .and_then(NanoUsd::from_usd);
    let duration = spec
        .and_then(|s| s.get("budget_duration").or_else(|| s.get("time_period")))
        .and_then(Value::as_str)
        .and_then(|d| BudgetDuration::parse(d).ok());
    let spent = model_entry(Some(&key.model_spend), names)
        .and_then(Value::as_f64)
        .and_then(NanoUsd::from_usd)
        .unwrap_or_default();
    let count = |v: Option<&Value>| v.and_then(Value::as_u64);
    let key_limits = Limits {
        budget: max.map(|max| Budget {
            max,
            spent,
            // Per-model windows have no stored reset time: they step from the key's creation.
            period: duration.map(|duration| Period {
                duration,
                reset_at: duration.after(key.created_at),
            }),
        }),
        rpm: count(model_entry(key.metadata.get("model_rpm_limit"), names))
            .or_else(|| count(spec.and_then(|s| s.get("rpm_limit")))),
        tpm: count(model_entry(key.metadata.get("model_tpm_limit"), names))
            .or_else(|| count(spec.and_then(|s| s.get("tpm_limit")))),
        max_parallel: None,
    };
    if !key_limits.is_unlimited() {
        push(
            &mut scopes,
            ScopeKind::ModelPerKey,
            &format!("{}:{model}", key.token),
            key_limits,
        );
    }
    if let Some(team) = &snapshot.team {
        let team_limits = Limits {
            rpm: count(model_entry(team.metadata.get("model_rpm_limit"), names)),
            tpm: count(model_entry(team.metadata.get("model_tpm_limit"), names)),
            ..Limits::default()
        };
        if !team_limits.is_unlimited() {
            push(
                &mut scopes,
                ScopeKind::ModelPerTeam,
                &format!("{}:{model}", team.team_id),
                team_limits,
            );
        }
    }
    scopes
}

/// A request's expected cost: its prompt counted locally at the input price, plus
/// `max_tokens` (or the configured default, capped by the model's largest completion) at
/// the output price.
pub fn estimate(
    price: &Price,
    prompt_tokens: u64,
    max_tokens: Option<u64>,
    default_output: u64,
    produces_text: bool,
) -> Demand {
    let output = if produces_text {
        max_tokens.unwrap_or_else(|| {
            price
                .max_output_tokens
                .map_or(default_output, |m| default_output.min(m))
        })
    } else {
        0
    };
    Demand {
        cost: price.cost(prompt_tokens, output),
        tokens: prompt_tokens.saturating_add(output),
        ..Demand::default()
    }
}

/// An admitted request's hold. Settle it with what the request really cost; dropping it
/// unsettled gives the reservation back.
pub struct Admitted {
    limiter: Arc<dyn Limiter>,
    reservation: Option<Reservation>,
    estimate: Demand,
}

impl Admitted {
    pub fn new(limiter: Arc<dyn Limiter>, reservation: Reservation, estimate: Demand) -> Admitted {
        Admitted {
            limiter,
            reservation: Some(reservation),
            estimate,
        }
    }

    pub fn reservation(&self) -> Option<&Reservation> {
        self.reservation.as_ref()
    }

    /// What the request was expected to cost when it was admitted.
    pub fn estimate(&self) -> Demand {
        self.estimate
    }

    /// Gives the reservation back: the request cost nothing.
    pub async fn release(mut self) {
        if let Some(r) = self.reservation.take() {
            settle_or_retry(self.limiter.clone(), r, Demand::default()).await;
        }
    }

    pub async fn settle(mut self, actual: Demand) {
        if let Some(r) = self.reservation.take() {
            settle_or_retry(self.limiter.clone(), r, actual).await;
        }
    }

    /// Settles from a context that cannot wait (a stream's finish hook, a drop).
    pub fn settle_later(mut self, actual: Demand) {
        if let Some(r) = self.reservation.take() {
            spawn_settle(self.limiter.clone(), r, actual);
        }
    }
}

fn spawn_settle(limiter: Arc<dyn Limiter>, r: Reservation, actual: Demand) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return; // no runtime: the reservation expires
    };
    handle.spawn(settle_or_retry(limiter, r, actual));
}

/// Settles now; when the backend cannot answer (Redis away), keeps trying in the background
/// with growing pauses until the reservation's deadline, so its parallel slot and holds come
/// back soon after the backend does instead of at expiry.
async fn settle_or_retry(limiter: Arc<dyn Limiter>, r: Reservation, actual: Demand) {
    let now = bursar_store::now_ms();
    let Err(e) = limiter.settle(&r, actual, now).await else {
        return;
    };
    tracing::warn!(error = %e, "could not settle a reservation; retrying in the background");
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        let mut pause = std::time::Duration::from_millis(250);
        while bursar_store::now_ms() < r.expires_at {
            tokio::time::sleep(pause).await;
            if limiter.settle(&r, actual, now).await.is_ok() {
                return;
            }
            pause = (pause * 2).min(std::time::Duration::from_secs(5));
        }
        tracing::warn!("gave up settling a reservation; the backend released it at expiry");
    });
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(r) = self.reservation.take() {
            spawn_settle(self.limiter.clone(), r, Demand::default());
        }
    }
}

fn key_alias(snapshot: Option<&KeySnapshot>) -> Option<&str> {
    snapshot.and_then(|s| s.key.key_alias.as_deref())
}

/// The error for a refused request: the budget error (LiteLLM's wording per entity) or a
/// 429 with `retry-after`.
pub fn refusal_error(
    refusal: &Refusal,
    snapshot: Option<&KeySnapshot>,
    budget_status: u16,
    now: i64,
) -> ApiError {
    match refusal {
        Refusal::Budget {
            scope,
            spent,
            reserved,
            requested,
            max,
        } => {
            let (spent_usd, max_usd) = (spent.as_usd(), max.as_usd());
            let mut message = match scope.kind {
                ScopeKind::ApiKey => format!(
                    "Budget has been exceeded! Key={} Current cost: {spent_usd}, Max budget: {max_usd}",
                    key_alias(snapshot).unwrap_or("key")
                ),
                ScopeKind::User => format!(
                    "ExceededBudget: User={} over budget. Spend={spent_usd}, Budget={max_usd}",
                    scope.value
                ),
                ScopeKind::Team => format!(
                    "Budget has been exceeded! Team={} Current cost: {spent_usd}, Max budget: {max_usd}",
                    scope.value
                ),
                ScopeKind::TeamMember => {
                    let (team, user) = scope.value.split_once(':').unwrap_or(("", &scope.value));
                    format!(
                        "Budget has been exceeded! User={user} in Team={team} Current cost: {spent_usd}, Max budget: {max_usd}"
                    )
                }
                ScopeKind::Organization => format!(
                    "Budget has been exceeded! Organization={} Current cost: {spent_usd}, Max budget: {max_usd}",
                    scope.value
                ),
                ScopeKind::EndUser => format!(
                    "ExceededBudget: End User={} over budget. Spend={spent_usd}, Budget={max_usd}",
                    scope.value
                ),
                ScopeKind::ModelPerKey | ScopeKind::ModelPerTeam => {
                    let model = scope.value.rsplit_once(':').map_or("", |(_, m)| m);
                    format!(
                        "Budget has been exceeded! Key={} Model={model} Current cost: {spent_usd}, Max budget: {max_usd}",
                        key_alias(snapshot).unwrap_or("key")
                    )
                }
            };
            if spent < max {
                message.push_str(&format!(
                    ". Requests in flight hold {}; this request may cost up to {}",
                    reserved.as_usd(),
                    requested.as_usd()
                ));
            }
            let status =
                StatusCode::from_u16(budget_status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            ApiError::new(status, "budget_exceeded", message)
        }
        Refusal::Rate {
            scope,
            kind,
            limit,
            remaining,
            retry_at,
        } => {
            let stamp = bursar_core::time::format_ms(*retry_at);
            let reset = stamp.get(..19).unwrap_or(&stamp).replace('T', " ");
            let wait_secs = ((retry_at - now).max(0) as u64).div_ceil(1000).max(1);
            let descriptor = scope.kind.descriptor();
            let value = match scope.kind {
                ScopeKind::ApiKey => {
                    key_alias(snapshot).map_or_else(|| scope.value.to_string(), str::to_string)
                }
                _ => scope.value.to_string(),
            };
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!(
                    "Rate limit exceeded for {descriptor}: {value}. Limit type: {}. Current limit: {limit}, Remaining: {remaining}. Limit resets at: {reset} UTC",
                    kind.as_str()
                ),
            )
            .with_header("retry-after", wait_secs.to_string())
            .with_header("rate_limit_type", kind.as_str().to_string())
            .with_header("reset_at", format!("{reset} UTC"))
        }
    }
}

/// A scope kind's `x-ratelimit-<descriptor>-{limit,remaining}-{requests,tokens}` names,
/// built once.
fn scope_header_names(kind: ScopeKind) -> &'static [HeaderName; 4] {
    static NAMES: OnceLock<Vec<(ScopeKind, [HeaderName; 4])>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        ScopeKind::ALL
            .iter()
            .map(|k| {
                let d = k.descriptor();
                let name = |suffix: &str| {
                    HeaderName::try_from(format!("x-ratelimit-{d}-{suffix}"))
                        .unwrap_or(HeaderName::from_static("x-ratelimit-scope"))
                };
                (
                    *k,
                    [
                        name("limit-requests"),
                        name("remaining-requests"),
                        name("limit-tokens"),
                        name("remaining-tokens"),
                    ],
                )
            })
            .collect()
    });
    let index = ScopeKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    &names[index].1
}

/// `x-ratelimit-*` headers from a reservation: per scope (`x-ratelimit-api_key-remaining-requests`)
/// and overall (`x-ratelimit-remaining-requests`, the tightest scope).
pub fn ratelimit_headers(reservation: &Reservation) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(reservation.headroom.len() * 4 + 4);
    // The tightest scope's values, shared (not re-rendered) by the overall headers.
    let mut tightest_requests: Option<(u64, HeaderValue, HeaderValue)> = None;
    let mut tightest_tokens: Option<(u64, HeaderValue, HeaderValue)> = None;
    for h in &reservation.headroom {
        let [
            limit_requests,
            remaining_requests,
            limit_tokens,
            remaining_tokens,
        ] = scope_header_names(h.scope.kind);
        let pairs = [
            (
                h.limit_requests,
                h.remaining_requests,
                limit_requests,
                remaining_requests,
                &mut tightest_requests,
            ),
            (
                h.limit_tokens,
                h.remaining_tokens,
                limit_tokens,
                remaining_tokens,
                &mut tightest_tokens,
            ),
        ];
        for (limit, left, limit_name, left_name, tightest) in pairs {
            let (Some(limit), Some(left)) = (limit, left) else {
                continue;
            };
            let (limit_value, left_value) = (HeaderValue::from(limit), HeaderValue::from(left));
            if tightest.as_ref().is_none_or(|(l, _, _)| left < *l) {
                *tightest = Some((left, limit_value.clone(), left_value.clone()));
            }
            out.push((limit_name.clone(), limit_value));
            out.push((left_name.clone(), left_value));
        }
    }
    for (tightest, names) in [
        (tightest_requests, &OVERALL_HEADERS[..2]),
        (tightest_tokens, &OVERALL_HEADERS[2..]),
    ] {
        if let Some((_, limit, left)) = tightest {
            out.push((HeaderName::from_static(names[0]), limit));
            out.push((HeaderName::from_static(names[1]), left));
        }
    }
    out
}

/// The overall rate-limit headers: limit and remaining requests, limit and remaining tokens.
pub const OVERALL_HEADERS: [&str; 4] = [
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
];

#[cfg(test)]
mod tests {
    use super::*;
    use bursar_limits::{Admission, BoxFuture, LimiterError};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Refuses to settle the first `failures` times, like Redis during an outage.
    struct Flaky {
        failures: usize,
        settles: AtomicUsize,
    }

    impl Limiter for Flaky {
        fn reserve<'a>(
            &'a self,
            _: &'a [Scope],
            _: Demand,
            _: i64,
        ) -> BoxFuture<'a, Result<Admission, LimiterError>> {
            Box::pin(async { Err(LimiterError("unused".into())) })
        }

        fn settle<'a>(
            &'a self,
            _: &'a Reservation,
            _: Demand,
            _: i64,
        ) -> BoxFuture<'a, Result<(), LimiterError>> {
            let n = self.settles.fetch_add(1, Ordering::SeqCst);
            let outcome = if n < self.failures {
                Err(LimiterError("Redis is unreachable".into()))
            } else {
                Ok(())
            };
            Box::pin(async move { outcome })
        }

        fn reseed<'a>(&'a self, _: &'a ScopeId) -> BoxFuture<'a, Result<(), LimiterError>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn reservation(expires_at: i64) -> Reservation {
        Reservation {
            id: 1,
            expires_at,
            held: Arc::from(Vec::new()),
            headroom: Vec::new(),
            local: false,
        }
    }

    #[tokio::test]
    async fn failed_settlements_are_retried_until_the_backend_answers() {
        let flaky = Arc::new(Flaky {
            failures: 3,
            settles: AtomicUsize::new(0),
        });
        let far = bursar_store::now_ms() + 60_000;
        settle_or_retry(flaky.clone(), reservation(far), Demand::default()).await;
        assert_eq!(flaky.settles.load(Ordering::SeqCst), 1);
        // 250 ms, 500 ms, 1 s later: the fourth attempt succeeds and retrying stops.
        for _ in 0..50 {
            if flaky.settles.load(Ordering::SeqCst) >= 4 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(flaky.settles.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn retrying_stops_at_the_reservation_deadline() {
        let flaky = Arc::new(Flaky {
            failures: usize::MAX,
            settles: AtomicUsize::new(0),
        });
        let expired = bursar_store::now_ms() - 1;
        settle_or_retry(flaky.clone(), reservation(expired), Demand::default()).await;
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert_eq!(flaky.settles.load(Ordering::SeqCst), 1);
    }
}
