//! Admission control: one atomic reserve → settle/release over every scope that applies to a
//! request (key, user, team, team member, organization, end user, per-model budgets; rpm, tpm
//! and parallel-request limits).
//!
//! The [`Limiter`] trait is the whole contract. It takes the caller's clock and hands back a
//! [`Reservation`] that carries everything needed to settle it, so the backend shared by many
//! processes ([`RedisLimiter`]) implements it as well as the in-process [`MemoryLimiter`].
//!
//! Rules every backend keeps:
//! - **All or nothing.** A request is admitted only if every scope has room; a refused
//!   request changes no counter.
//! - **Budgets count what is in flight.** A scope admits a request costing `c` only while
//!   `spent + reserved + c ≤ max_budget`, so concurrent requests cannot overspend together.
//!   Zero-cost requests skip budget checks (as LiteLLM skips them for free models).
//! - **Rates use a fixed window** that opens at the first request and lasts the window
//!   size (LiteLLM's default 60 s). One request counts against `rpm`; the estimated tokens
//!   are held against `tpm` until settled with the real count.
//! - **Reservations expire.** A reservation neither settled nor released by its deadline is
//!   released by the backend, so a crashed request never leaves phantom spend behind.
//! - **Budget periods roll over** at `reset_at`: spend returns to zero and the next reset is
//!   one duration later.

mod failover;
mod memory;
mod shared;
mod types;

pub use failover::{FailMode, Failover};
pub use memory::{DEFAULT_RESERVATION_TTL_MS, DEFAULT_WINDOW_MS, MemoryLimiter};
pub use shared::{
    Health, KeyLayout, LAYOUT_VERSION, RedisLimiter, RedisOptions, SpendSource,
    client as redis_client,
};
pub use types::{
    Admission, Budget, Demand, Headroom, Limits, Period, RateKind, Refusal, Reservation, Scope,
    ScopeId, ScopeKind, Taken,
};

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so the trait can be used as `dyn Limiter`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The backend could not answer (for example a shared store is unreachable).
#[derive(Debug, Clone, thiserror::Error)]
#[error("limiter backend unavailable: {0}")]
pub struct LimiterError(pub String);

/// Admission control over shared counters. Times are milliseconds since the Unix epoch.
pub trait Limiter: Send + Sync + 'static {
    /// Admits a request against every scope at once, or refuses it without consuming
    /// anything. Duplicate scope ids are counted once.
    fn reserve<'a>(
        &'a self,
        scopes: &'a [Scope],
        demand: Demand,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Admission, LimiterError>>;

    /// Replaces a reservation with what the request really cost: the reserved cost and
    /// tokens are returned, `actual` is charged, and the parallel slot is freed. Settling a
    /// reservation that already expired still charges `actual` (the money was spent).
    fn settle<'a>(
        &'a self,
        reservation: &'a Reservation,
        actual: Demand,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), LimiterError>>;

    /// Gives a reservation back unused (the request failed before costing anything). The
    /// request still counts against `rpm`: it was made.
    fn release<'a>(
        &'a self,
        reservation: &'a Reservation,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), LimiterError>> {
        self.settle(reservation, Demand::default(), now_ms)
    }

    /// Forgets what this limiter knows about a scope's spend, so the store's figure is taken
    /// as-is on the next request (an administrator changed or reset it).
    fn reseed<'a>(&'a self, scope: &'a ScopeId) -> BoxFuture<'a, Result<(), LimiterError>>;
}
