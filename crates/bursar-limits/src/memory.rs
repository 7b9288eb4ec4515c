//! The in-process backend: every counter behind one mutex, so a reservation over many
//! scopes is a single critical section with no await inside.

use crate::types::{
    Admission, Budget, Demand, Headroom, Limits, Period, RateKind, Refusal, Reservation, Scope,
    ScopeId, Taken,
};
use crate::{BoxFuture, Limiter, LimiterError};
use bursar_core::money::NanoUsd;
use foldhash::quality::RandomState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// LiteLLM's default rate-limit window.
pub const DEFAULT_WINDOW_MS: i64 = 60_000;
/// How long a reservation may stay open before it is released on the request's behalf.
pub const DEFAULT_RESERVATION_TTL_MS: i64 = 15 * 60_000;
/// How often expired reservations are looked for.
const SWEEP_EVERY_MS: i64 = 1_000;

/// Counters for one process. Correct for any number of concurrent requests in this process;
/// several processes need a shared backend.
pub struct MemoryLimiter {
    window_ms: i64,
    reservation_ttl_ms: i64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    // foldhash: seeded per process like std's SipHash, several times faster on these
    // short keys (end-user ids are client-chosen, so the hasher must stay seeded).
    scopes: HashMap<ScopeId, Counters, RandomState>,
    open: HashMap<u64, Open, RandomState>,
    next_id: u64,
    next_sweep: i64,
    next_eviction: i64,
}

struct Open {
    expires_at: i64,
    held: Arc<[(ScopeId, Taken)]>,
}

#[derive(Default)]
struct Counters {
    spent: NanoUsd,
    reserved: NanoUsd,
    /// The budget period `spent` belongs to.
    period: Option<Period>,
    /// Take the store's spend figure as-is next time.
    reseed: bool,
    seeded: bool,
    window_start: i64,
    requests: u64,
    tokens: u64,
    tokens_reserved: u64,
    in_flight: u64,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        MemoryLimiter::new(DEFAULT_WINDOW_MS, DEFAULT_RESERVATION_TTL_MS)
    }
}

impl MemoryLimiter {
    pub fn new(window_ms: i64, reservation_ttl_ms: i64) -> MemoryLimiter {
        MemoryLimiter {
            window_ms: window_ms.max(1),
            reservation_ttl_ms: reservation_ttl_ms.max(1),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave counters half-updated in a way later
        // requests could not live with, so a poisoned lock is taken over.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Current spend (settled, in the current period) and in-flight cost of a scope.
    pub fn spend_of(&self, scope: &ScopeId) -> Option<(NanoUsd, NanoUsd)> {
        self.lock().scopes.get(scope).map(|c| (c.spent, c.reserved))
    }

    /// Requests currently holding a parallel slot on a scope.
    pub fn in_flight(&self, scope: &ScopeId) -> u64 {
        self.lock().scopes.get(scope).map_or(0, |c| c.in_flight)
    }

    /// Scopes this limiter currently keeps counters for.
    pub fn tracked_scopes(&self) -> usize {
        self.lock().tracked()
    }

    /// Open reservations (admitted, not yet settled, released or expired).
    pub fn open_reservations(&self) -> usize {
        self.lock().open.len()
    }

    fn reserve_now(&self, scopes: &[Scope], demand: Demand, now: i64) -> Admission {
        let mut guard = self.lock();
        let state = &mut *guard;
        if now >= state.next_sweep {
            state.sweep(now);
            state.next_sweep = now + SWEEP_EVERY_MS;
        }
        if now >= state.next_eviction {
            state.evict_idle(now, self.window_ms);
            state.next_eviction = now + self.window_ms;
        }
        match state.check_all(scopes, demand, now, self.window_ms) {
            // Expired reservations may be what stands in the way: release them and look again.
            Some(_) if state.open.values().any(|o| o.expires_at <= now) => {
                state.sweep(now);
                if let Some(refusal) = state.check_all(scopes, demand, now, self.window_ms) {
                    return Admission::Refused(refusal);
                }
            }
            Some(refusal) => return Admission::Refused(refusal),
            None => {}
        }
        state.grant(scopes, demand, now, self.window_ms, self.reservation_ttl_ms)
    }
}

impl State {
    /// The first scope without room, checking every scope before touching any: a refusal
    /// consumes nothing.
    fn check_all(
        &mut self,
        scopes: &[Scope],
        demand: Demand,
        now: i64,
        window_ms: i64,
    ) -> Option<Refusal> {
        for (i, scope) in scopes.iter().enumerate() {
            if scopes[..i].iter().any(|earlier| earlier.id == scope.id) {
                continue; // a scope named twice counts once
            }
            if !self.scopes.contains_key(&scope.id) {
                self.scopes.insert(scope.id.clone(), Counters::default());
            }
            let Some(counters) = self.scopes.get_mut(&scope.id) else {
                continue;
            };
            counters.refresh(&scope.limits, now, window_ms);
            if let Some(refusal) = counters.check(scope, demand, now, window_ms) {
                return Some(refusal);
            }
        }
        None
    }

    fn grant(
        &mut self,
        scopes: &[Scope],
        demand: Demand,
        now: i64,
        window_ms: i64,
        ttl_ms: i64,
    ) -> Admission {
        let id = self.next_id;
        self.next_id += 1;
        let mut held = Vec::with_capacity(scopes.len());
        let mut headroom = Vec::new();
        for scope in scopes {
            if held.iter().any(|(s, _): &(ScopeId, Taken)| s == &scope.id) {
                continue;
            }
            let Some(counters) = self.scopes.get_mut(&scope.id) else {
                continue;
            };
            let cost = match scope.limits.budget {
                None => NanoUsd::ZERO,
                Some(budget) if demand.up_to_remaining => {
                    let committed = counters.spent.saturating_add(counters.reserved);
                    demand.cost.min(budget.max.saturating_sub(committed))
                }
                Some(_) => demand.cost,
            };
            let taken = Taken {
                cost,
                tokens: demand.tokens,
            };
            counters.reserved = counters.reserved.saturating_add(taken.cost);
            counters.requests += 1;
            counters.tokens_reserved += taken.tokens;
            counters.in_flight += 1;
            if scope.limits.rpm.is_some() || scope.limits.tpm.is_some() {
                let used_tokens = counters.tokens + counters.tokens_reserved;
                headroom.push(Headroom {
                    scope: scope.id.clone(),
                    limit_requests: scope.limits.rpm,
                    remaining_requests: scope
                        .limits
                        .rpm
                        .map(|l| l.saturating_sub(counters.requests)),
                    limit_tokens: scope.limits.tpm,
                    remaining_tokens: scope.limits.tpm.map(|l| l.saturating_sub(used_tokens)),
                    window_resets_at: counters.window_start + window_ms,
                });
            }
            held.push((scope.id.clone(), taken));
        }
        let expires_at = now.saturating_add(ttl_ms);
        let held: Arc<[(ScopeId, Taken)]> = held.into();
        self.open.insert(
            id,
            Open {
                expires_at,
                held: held.clone(),
            },
        );
        Admission::Granted(Reservation {
            id,
            expires_at,
            held,
            headroom,
            local: false,
        })
    }
}

impl MemoryLimiter {
    fn settle_now(&self, reservation: &Reservation, actual: Demand, now: i64) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let still_open = state.open.remove(&reservation.id).is_some();
        for (scope, taken) in reservation.held.iter() {
            let Some(counters) = state.scopes.get_mut(scope) else {
                continue;
            };
            if still_open {
                counters.give_back(taken);
            }
            counters.roll_window(now, self.window_ms);
            counters.roll_period(now);
            counters.spent = counters.spent.saturating_add(actual.cost);
            counters.tokens += actual.tokens;
        }
    }
}

impl State {
    /// Releases every reservation past its deadline.
    fn sweep(&mut self, now: i64) {
        let expired: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, open)| open.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(open) = self.open.remove(&id) {
                for (scope, taken) in open.held.iter() {
                    if let Some(counters) = self.scopes.get_mut(scope) {
                        counters.give_back(taken);
                    }
                }
            }
        }
    }
}

impl State {
    /// Forgets scopes that hold nothing: no spend, no open reservation and no live rate
    /// window. A forgotten scope starts again from the store's figure, which for these is
    /// exactly what was forgotten, so memory stays bounded by the active scopes.
    fn evict_idle(&mut self, now: i64, window_ms: i64) {
        self.scopes.retain(|_, c| {
            c.spent != NanoUsd::ZERO
                || c.reserved != NanoUsd::ZERO
                || c.in_flight > 0
                || c.tokens_reserved > 0
                || now < c.window_start + window_ms
        });
    }

    /// Scopes currently tracked (for tests and metrics).
    fn tracked(&self) -> usize {
        self.scopes.len()
    }
}

impl Counters {
    fn give_back(&mut self, taken: &Taken) {
        self.reserved = self.reserved.saturating_sub(taken.cost).max(NanoUsd::ZERO);
        self.tokens_reserved = self.tokens_reserved.saturating_sub(taken.tokens);
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn roll_window(&mut self, now: i64, window_ms: i64) {
        if now >= self.window_start + window_ms {
            self.window_start = now;
            self.requests = 0;
            self.tokens = 0;
        }
    }

    fn roll_period(&mut self, now: i64) {
        if let Some(period) = &mut self.period
            && now >= period.reset_at
        {
            self.spent = NanoUsd::ZERO;
            period.reset_at = period.next_reset_after(now);
        }
    }

    /// Brings the counters up to date: the rate window, the budget period, and the store's
    /// view of spend.
    fn refresh(&mut self, limits: &Limits, now: i64, window_ms: i64) {
        self.roll_window(now, window_ms);
        if let Some(budget) = limits.budget {
            self.adopt(&budget);
        }
        self.roll_period(now);
    }

    /// Merges the store's figure into ours. The store lags behind settlements made here, so
    /// within one period the larger figure wins; a figure from an earlier period is stale.
    fn adopt(&mut self, budget: &Budget) {
        if !self.seeded || self.reseed {
            self.spent = budget.spent;
            self.period = budget.period;
            self.seeded = true;
            self.reseed = false;
            return;
        }
        match (&mut self.period, budget.period) {
            (Some(ours), Some(theirs)) if theirs.reset_at > ours.reset_at => {
                // Reset elsewhere (another instance or the reset job): follow the store.
                self.spent = budget.spent;
                *ours = theirs;
            }
            (Some(ours), Some(theirs)) if theirs.reset_at < ours.reset_at => {
                ours.duration = theirs.duration;
            }
            (ours, theirs) => {
                if ours.is_none() || theirs.is_none() {
                    *ours = theirs;
                }
                self.spent = self.spent.max(budget.spent);
            }
        }
    }

    fn check(&self, scope: &Scope, demand: Demand, now: i64, window_ms: i64) -> Option<Refusal> {
        let limits = &scope.limits;
        if let Some(budget) = limits.budget
            && demand.cost > NanoUsd::ZERO
        {
            let committed = self.spent.saturating_add(self.reserved);
            let refused = if demand.up_to_remaining {
                committed >= budget.max
            } else {
                committed.saturating_add(demand.cost) > budget.max
            };
            if refused {
                return Some(Refusal::Budget {
                    scope: scope.id.clone(),
                    spent: self.spent,
                    reserved: self.reserved,
                    requested: demand.cost,
                    max: budget.max,
                });
            }
        }
        let window_end = self.window_start + window_ms;
        if let Some(rpm) = limits.rpm
            && self.requests + 1 > rpm
        {
            return Some(Refusal::Rate {
                scope: scope.id.clone(),
                kind: RateKind::Requests,
                limit: rpm,
                remaining: rpm.saturating_sub(self.requests),
                retry_at: window_end,
            });
        }
        if let Some(tpm) = limits.tpm {
            let used = self.tokens + self.tokens_reserved;
            if used + demand.tokens > tpm {
                return Some(Refusal::Rate {
                    scope: scope.id.clone(),
                    kind: RateKind::Tokens,
                    limit: tpm,
                    remaining: tpm.saturating_sub(used),
                    retry_at: window_end,
                });
            }
        }
        if let Some(max) = limits.max_parallel
            && self.in_flight + 1 > max
        {
            return Some(Refusal::Rate {
                scope: scope.id.clone(),
                kind: RateKind::Parallel,
                limit: max,
                remaining: 0,
                retry_at: now + 1_000,
            });
        }
        None
    }
}

impl Limiter for MemoryLimiter {
    fn reserve<'a>(
        &'a self,
        scopes: &'a [Scope],
        demand: Demand,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Admission, LimiterError>> {
        let admission = self.reserve_now(scopes, demand, now_ms);
        Box::pin(std::future::ready(Ok(admission)))
    }

    fn settle<'a>(
        &'a self,
        reservation: &'a Reservation,
        actual: Demand,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), LimiterError>> {
        self.settle_now(reservation, actual, now_ms);
        Box::pin(std::future::ready(Ok(())))
    }

    fn reseed<'a>(&'a self, scope: &'a ScopeId) -> BoxFuture<'a, Result<(), LimiterError>> {
        if let Some(counters) = self.lock().scopes.get_mut(scope) {
            counters.reseed = true;
        }
        Box::pin(std::future::ready(Ok(())))
    }
}
