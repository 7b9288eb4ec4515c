//! What admission does when the shared backend cannot answer: refuse (fail closed, the
//! default) or admit against this instance's own counters (fail open).

use crate::types::{Admission, Demand, Reservation, Scope, ScopeId};
use crate::{BoxFuture, Limiter, LimiterError, MemoryLimiter};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// `general_settings.redis_fail_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Refuse requests (503) until the backend answers again: limits are never exceeded.
    #[default]
    Closed,
    /// Keep serving with per-instance limits: each instance enforces every limit on its own,
    /// so N instances may together admit up to N times a limit while the backend is away.
    Open,
}

impl FailMode {
    pub fn parse(value: &str) -> Option<FailMode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "fail_closed" | "closed" => Some(FailMode::Closed),
            "fail_open" | "open" => Some(FailMode::Open),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Closed => "fail_closed",
            FailMode::Open => "fail_open",
        }
    }
}

/// A shared limiter with a fail mode. In [`FailMode::Open`], a reservation the shared
/// backend could not make is made on a per-instance [`MemoryLimiter`] instead and marked
/// [`Reservation::local`], so it is settled where it was made.
pub struct Failover<L> {
    shared: L,
    mode: FailMode,
    local: MemoryLimiter,
    fallbacks: Arc<AtomicU64>,
}

impl<L: Limiter> Failover<L> {
    pub fn new(shared: L, mode: FailMode, local: MemoryLimiter) -> Failover<L> {
        Failover {
            shared,
            mode,
            local,
            fallbacks: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn shared(&self) -> &L {
        &self.shared
    }

    pub fn mode(&self) -> FailMode {
        self.mode
    }

    /// Requests admitted on per-instance counters because the backend was unreachable.
    pub fn fallback_counter(&self) -> Arc<AtomicU64> {
        self.fallbacks.clone()
    }

    async fn reserve_with_fallback(
        &self,
        scopes: &[Scope],
        demand: Demand,
        now: i64,
    ) -> Result<Admission, LimiterError> {
        match self.shared.reserve(scopes, demand, now).await {
            Ok(admission) => Ok(admission),
            Err(e) if self.mode == FailMode::Open => {
                if self
                    .fallbacks
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(1_000)
                {
                    tracing::error!(
                        error = %e,
                        "admission backend unreachable: admitting against this instance's own \
                         limits (fail_open); limits are per instance until it returns"
                    );
                }
                Ok(match self.local.reserve(scopes, demand, now).await? {
                    Admission::Granted(mut r) => {
                        r.local = true;
                        Admission::Granted(r)
                    }
                    refused => refused,
                })
            }
            Err(e) => Err(e),
        }
    }
}

impl<L: Limiter> Limiter for Failover<L> {
    fn reserve<'a>(
        &'a self,
        scopes: &'a [Scope],
        demand: Demand,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Admission, LimiterError>> {
        Box::pin(self.reserve_with_fallback(scopes, demand, now_ms))
    }

    fn settle<'a>(
        &'a self,
        reservation: &'a Reservation,
        actual: Demand,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), LimiterError>> {
        if reservation.local {
            self.local.settle(reservation, actual, now_ms)
        } else {
            self.shared.settle(reservation, actual, now_ms)
        }
    }

    fn reseed<'a>(&'a self, scope: &'a ScopeId) -> BoxFuture<'a, Result<(), LimiterError>> {
        Box::pin(async move {
            let _ = self.local.reseed(scope).await;
            self.shared.reseed(scope).await
        })
    }
}
