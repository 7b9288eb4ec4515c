//! What only the in-memory limiter does: forgetting idle scopes (Redis expires them instead).
//! The rules every backend keeps are in `contract.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_core::money::NanoUsd;
use bursar_limits::{Demand, Limiter, Limits, MemoryLimiter, Refusal, ScopeId, ScopeKind};

mod common;

use common::{CENT, T0, budget, cost, key, refusal, reserve, scope};

#[tokio::test]
async fn idle_scopes_are_forgotten_but_spend_and_open_holds_are_kept() {
    let l = MemoryLimiter::new(60_000, 15 * 60_000);
    let rpm = Limits {
        rpm: Some(10),
        ..Limits::default()
    };
    // 1,000 end users make one request each and finish.
    for i in 0..1_000 {
        let s = scope(ScopeId::new(ScopeKind::EndUser, format!("u{i}")), rpm);
        let r = reserve(&l, &[s], cost(NanoUsd::ZERO), T0).await.unwrap();
        l.settle(&r, Demand::default(), T0).await.unwrap();
    }
    // One key spends money; one end user is still in flight.
    let paid = scope(key(), budget(CENT));
    let r = reserve(&l, std::slice::from_ref(&paid), cost(CENT), T0)
        .await
        .unwrap();
    l.settle(&r, cost(CENT), T0).await.unwrap();
    let busy = scope(ScopeId::new(ScopeKind::EndUser, "busy"), rpm);
    let _held = reserve(&l, std::slice::from_ref(&busy), cost(NanoUsd::ZERO), T0)
        .await
        .unwrap();
    assert_eq!(l.tracked_scopes(), 1_002);

    // A window later, the next request forgets the idle ones only.
    let later = T0 + 60_001;
    let other = scope(ScopeId::new(ScopeKind::EndUser, "new"), rpm);
    reserve(&l, &[other], cost(NanoUsd::ZERO), later)
        .await
        .unwrap();
    assert_eq!(
        l.tracked_scopes(),
        3,
        "the paid key, the busy user, the new one"
    );
    assert_eq!(l.spend_of(&key()), Some((CENT, NanoUsd::ZERO)));
    assert_eq!(l.in_flight(&busy.id), 1);
    // The paid key's budget still holds.
    assert!(matches!(
        refusal(&l, &[paid], cost(NanoUsd(1)), later).await,
        Refusal::Budget { .. }
    ));
}
