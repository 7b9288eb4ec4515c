//! Helpers shared by the limiter test files.
#![allow(dead_code)] // each test file uses its own subset

use bursar_core::money::NanoUsd;
use bursar_limits::{
    Admission, Budget, Demand, Limiter, Limits, Refusal, Reservation, Scope, ScopeId, ScopeKind,
};

pub const T0: i64 = 1_700_000_000_000;
pub const CENT: NanoUsd = NanoUsd(10_000_000);

pub fn key() -> ScopeId {
    ScopeId::new(ScopeKind::ApiKey, "hash")
}

pub fn budget(max: NanoUsd) -> Limits {
    Limits {
        budget: Some(Budget {
            max,
            spent: NanoUsd::ZERO,
            period: None,
        }),
        ..Limits::default()
    }
}

pub fn scope(id: ScopeId, limits: Limits) -> Scope {
    Scope { id, limits }
}

pub fn cost(c: NanoUsd) -> Demand {
    Demand { cost: c, tokens: 0 }
}

pub async fn reserve(
    l: &dyn Limiter,
    scopes: &[Scope],
    d: Demand,
    now: i64,
) -> Option<Reservation> {
    match l.reserve(scopes, d, now).await.unwrap() {
        Admission::Granted(r) => Some(r),
        Admission::Refused(_) => None,
    }
}

pub async fn refusal(l: &dyn Limiter, scopes: &[Scope], d: Demand, now: i64) -> Refusal {
    match l.reserve(scopes, d, now).await.unwrap() {
        Admission::Granted(r) => panic!("expected a refusal, got {r:?}"),
        Admission::Refused(r) => r,
    }
}
