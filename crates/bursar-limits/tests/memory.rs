//! The in-memory limiter against the rules every backend keeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_core::duration::BudgetDuration;
use bursar_core::money::NanoUsd;
use bursar_limits::{
    Admission, Budget, Demand, Limiter, Limits, MemoryLimiter, Period, RateKind, Refusal,
    Reservation, Scope, ScopeId, ScopeKind,
};
use std::sync::Arc;

const T0: i64 = 1_700_000_000_000;
const CENT: NanoUsd = NanoUsd(10_000_000);

fn key() -> ScopeId {
    ScopeId::new(ScopeKind::ApiKey, "hash")
}

fn budget(max: NanoUsd) -> Limits {
    Limits {
        budget: Some(Budget {
            max,
            spent: NanoUsd::ZERO,
            period: None,
        }),
        ..Limits::default()
    }
}

fn scope(id: ScopeId, limits: Limits) -> Scope {
    Scope { id, limits }
}

fn cost(c: NanoUsd) -> Demand {
    Demand { cost: c, tokens: 0 }
}

async fn reserve(l: &MemoryLimiter, scopes: &[Scope], d: Demand, now: i64) -> Option<Reservation> {
    match l.reserve(scopes, d, now).await.unwrap() {
        Admission::Granted(r) => Some(r),
        Admission::Refused(_) => None,
    }
}

async fn refusal(l: &MemoryLimiter, scopes: &[Scope], d: Demand, now: i64) -> Refusal {
    match l.reserve(scopes, d, now).await.unwrap() {
        Admission::Granted(r) => panic!("expected a refusal, got {r:?}"),
        Admission::Refused(r) => r,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_never_overspend_a_shared_budget() {
    let limiter = Arc::new(MemoryLimiter::default());
    // A team budget shared by 5 keys: every request also names its own key scope.
    let team = scope(ScopeId::new(ScopeKind::Team, "t"), budget(CENT.times(50)));
    let mut tasks = Vec::new();
    for i in 0..500 {
        let limiter = limiter.clone();
        let team = team.clone();
        tasks.push(tokio::spawn(async move {
            let scopes = [
                scope(
                    ScopeId::new(ScopeKind::ApiKey, format!("k{}", i % 5)),
                    Limits::default(),
                ),
                team,
            ];
            let r = reserve(&limiter, &scopes, cost(CENT), T0).await?;
            tokio::task::yield_now().await;
            limiter.settle(&r, cost(CENT), T0 + 1).await.unwrap();
            Some(())
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 50);
    let (spent, reserved) = limiter.spend_of(&team.id).unwrap();
    assert_eq!(spent, CENT.times(50));
    assert_eq!(reserved, NanoUsd::ZERO);
    let refused = refusal(&limiter, std::slice::from_ref(&team), cost(CENT), T0 + 2).await;
    assert!(
        matches!(refused, Refusal::Budget { spent, max, .. } if spent == CENT.times(50) && max == CENT.times(50))
    );
}

#[tokio::test]
async fn in_flight_reservations_count_and_settlement_refunds_the_difference() {
    let l = MemoryLimiter::default();
    let s = [scope(key(), budget(CENT.times(10)))];
    let a = reserve(&l, &s, cost(CENT.times(6)), T0).await.unwrap();
    // 6 in flight + 6 more would pass 10.
    assert!(reserve(&l, &s, cost(CENT.times(6)), T0).await.is_none());
    let b = reserve(&l, &s, cost(CENT.times(4)), T0).await.unwrap();
    assert_eq!(l.spend_of(&key()), Some((NanoUsd::ZERO, CENT.times(10))));
    // The first cost 1 cent, not 6: 5 come back.
    l.settle(&a, cost(CENT), T0).await.unwrap();
    assert_eq!(l.spend_of(&key()), Some((CENT, CENT.times(4))));
    l.release(&b, T0).await.unwrap();
    assert_eq!(l.spend_of(&key()), Some((CENT, NanoUsd::ZERO)));
    assert!(reserve(&l, &s, cost(CENT.times(9)), T0).await.is_some());
    assert_eq!(l.open_reservations(), 1);
}

#[tokio::test]
async fn a_refused_request_consumes_nothing_on_any_scope() {
    let l = MemoryLimiter::default();
    let limited = Limits {
        rpm: Some(10),
        tpm: Some(1_000),
        max_parallel: Some(3),
        ..budget(CENT.times(5))
    };
    let team = ScopeId::new(ScopeKind::Team, "t");
    let scopes = [
        scope(key(), limited),
        scope(team.clone(), budget(CENT.times(2))),
    ];
    let ok = reserve(
        &l,
        &scopes,
        Demand {
            cost: CENT,
            tokens: 100,
        },
        T0,
    )
    .await
    .unwrap();
    // The team refuses the second (1 + 2 > 2): the key's counters must not move.
    let r = refusal(
        &l,
        &scopes,
        Demand {
            cost: CENT.times(2),
            tokens: 100,
        },
        T0,
    )
    .await;
    assert!(matches!(r, Refusal::Budget { ref scope, .. } if scope == &team));
    assert_eq!(l.in_flight(&key()), 1);
    assert_eq!(l.spend_of(&key()), Some((NanoUsd::ZERO, CENT)));
    let headroom = &ok.headroom[0];
    assert_eq!(headroom.remaining_requests, Some(9));
    assert_eq!(headroom.remaining_tokens, Some(900));
    let again = reserve(
        &l,
        &scopes,
        Demand {
            cost: CENT,
            tokens: 100,
        },
        T0,
    )
    .await
    .unwrap();
    assert_eq!(
        again.headroom[0].remaining_requests,
        Some(8),
        "the refused one was not counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpm_admits_exactly_the_limit_per_window() {
    let l = Arc::new(MemoryLimiter::default());
    let s = Arc::new([scope(
        key(),
        Limits {
            rpm: Some(100),
            ..Limits::default()
        },
    )]);
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let (l, s) = (l.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            let r = reserve(&l, &s[..], Demand::default(), T0 + 5).await?;
            l.settle(&r, Demand::default(), T0 + 6).await.unwrap();
            Some(())
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(admitted, 100);
    let r = refusal(&l, &s[..], Demand::default(), T0 + 59_999).await;
    assert!(
        matches!(r, Refusal::Rate { kind: RateKind::Requests, limit: 100, remaining: 0, retry_at, .. } if retry_at == T0 + 5 + 60_000)
    );
    // The window opened at the first request and closes 60 s later.
    assert!(
        reserve(&l, &s[..], Demand::default(), T0 + 60_005)
            .await
            .is_some()
    );
}

#[tokio::test]
async fn tpm_holds_the_estimate_and_counts_the_real_tokens() {
    let l = MemoryLimiter::default();
    let s = [scope(
        key(),
        Limits {
            tpm: Some(1_000),
            ..Limits::default()
        },
    )];
    let tokens = |n| Demand {
        cost: NanoUsd::ZERO,
        tokens: n,
    };
    let a = reserve(&l, &s, tokens(600), T0).await.unwrap();
    let r = refusal(&l, &s, tokens(600), T0).await;
    assert!(matches!(
        r,
        Refusal::Rate {
            kind: RateKind::Tokens,
            remaining: 400,
            ..
        }
    ));
    // The first used 100 of its 600: 900 are free again.
    l.settle(&a, tokens(100), T0).await.unwrap();
    let b = reserve(&l, &s, tokens(900), T0).await.unwrap();
    assert_eq!(b.headroom[0].remaining_tokens, Some(0));
    l.settle(&b, tokens(900), T0).await.unwrap();
    assert!(reserve(&l, &s, tokens(1), T0 + 30_000).await.is_none());
    assert!(reserve(&l, &s, tokens(1_000), T0 + 60_000).await.is_some());
}

#[tokio::test]
async fn parallel_slots_are_freed_by_settle_and_release() {
    let l = MemoryLimiter::default();
    let s = [scope(
        key(),
        Limits {
            max_parallel: Some(2),
            ..Limits::default()
        },
    )];
    let a = reserve(&l, &s, Demand::default(), T0).await.unwrap();
    let b = reserve(&l, &s, Demand::default(), T0).await.unwrap();
    let r = refusal(&l, &s, Demand::default(), T0).await;
    assert!(matches!(
        r,
        Refusal::Rate {
            kind: RateKind::Parallel,
            limit: 2,
            ..
        }
    ));
    l.settle(&a, Demand::default(), T0).await.unwrap();
    let c = reserve(&l, &s, Demand::default(), T0).await.unwrap();
    l.release(&b, T0).await.unwrap();
    l.release(&c, T0).await.unwrap();
    assert_eq!(l.in_flight(&key()), 0);
    // Settling twice gives nothing back twice.
    l.release(&c, T0).await.unwrap();
    assert_eq!(l.in_flight(&key()), 0);
}

#[tokio::test]
async fn abandoned_reservations_expire_and_late_settlements_still_charge() {
    let l = MemoryLimiter::new(60_000, 10_000);
    let s = [scope(
        key(),
        Limits {
            max_parallel: Some(1),
            ..budget(CENT.times(3))
        },
    )];
    let lost = reserve(&l, &s, cost(CENT.times(3)), T0).await.unwrap();
    assert!(reserve(&l, &s, cost(CENT), T0 + 9_999).await.is_none());
    // Past the deadline the reservation is released on the crashed request's behalf.
    let fresh = reserve(&l, &s, cost(CENT), T0 + 10_001).await.unwrap();
    assert_eq!(l.open_reservations(), 1);
    // The lost request did finish after all: its real cost is charged, its hold is not
    // given back a second time.
    l.settle(&lost, cost(CENT), T0 + 10_002).await.unwrap();
    assert_eq!(l.spend_of(&key()), Some((CENT, CENT)));
    assert_eq!(l.in_flight(&key()), 1);
    l.settle(&fresh, cost(CENT), T0 + 10_003).await.unwrap();
    assert_eq!(l.spend_of(&key()), Some((CENT.times(2), NanoUsd::ZERO)));
}

#[tokio::test]
async fn budgets_reset_at_the_end_of_each_period() {
    let l = MemoryLimiter::default();
    let period = Period {
        duration: BudgetDuration::Seconds(2),
        reset_at: T0 + 2_000,
    };
    let s = [scope(
        key(),
        Limits {
            budget: Some(Budget {
                max: CENT,
                spent: CENT,
                period: Some(period),
            }),
            ..Limits::default()
        },
    )];
    assert!(reserve(&l, &s, cost(CENT), T0).await.is_none());
    let r = reserve(&l, &s, cost(CENT), T0 + 2_000).await.unwrap();
    l.settle(&r, cost(CENT), T0 + 2_100).await.unwrap();
    // The store still reports the old period's spend: it must not bring the budget back.
    assert!(reserve(&l, &s, cost(CENT), T0 + 3_000).await.is_none());
    assert_eq!(l.spend_of(&key()), Some((CENT, NanoUsd::ZERO)));
    // The next period starts one duration after the previous reset.
    assert!(reserve(&l, &s, cost(CENT), T0 + 3_999).await.is_none());
    assert!(reserve(&l, &s, cost(CENT), T0 + 4_000).await.is_some());
}

#[test]
fn next_reset_skips_whole_missed_periods() {
    let p = Period {
        duration: BudgetDuration::Seconds(10),
        reset_at: T0,
    };
    assert_eq!(p.next_reset_after(T0 - 1), T0);
    assert_eq!(p.next_reset_after(T0), T0 + 10_000);
    assert_eq!(p.next_reset_after(T0 + 35_000), T0 + 40_000);
}

#[tokio::test]
async fn the_store_figure_is_merged_and_reseed_takes_it_as_is() {
    let l = MemoryLimiter::default();
    let with_spent = |spent| {
        [scope(
            key(),
            Limits {
                budget: Some(Budget {
                    max: CENT.times(10),
                    spent,
                    period: None,
                }),
                ..Limits::default()
            },
        )]
    };
    let r = reserve(&l, &with_spent(NanoUsd::ZERO), cost(CENT), T0)
        .await
        .unwrap();
    l.settle(&r, cost(CENT.times(4)), T0).await.unwrap();
    // A lagging store (spend 1) does not erase the 4 settled here; a larger one wins.
    assert!(
        reserve(&l, &with_spent(CENT), cost(CENT.times(7)), T0)
            .await
            .is_none()
    );
    assert!(
        reserve(&l, &with_spent(CENT.times(9)), cost(CENT.times(2)), T0)
            .await
            .is_none()
    );
    assert_eq!(l.spend_of(&key()).unwrap().0, CENT.times(9));
    // An administrator set spend back to 0.
    l.reseed(&key()).await.unwrap();
    assert!(
        reserve(&l, &with_spent(NanoUsd::ZERO), cost(CENT.times(10)), T0)
            .await
            .is_some()
    );
}

#[tokio::test]
async fn free_requests_skip_budgets_and_duplicate_scopes_count_once() {
    let l = MemoryLimiter::default();
    let exhausted = Limits {
        budget: Some(Budget {
            max: CENT,
            spent: CENT.times(2),
            period: None,
        }),
        max_parallel: Some(1),
        ..Limits::default()
    };
    let s = [scope(key(), exhausted), scope(key(), exhausted)];
    let r = reserve(&l, &s, cost(NanoUsd::ZERO), T0).await.unwrap();
    assert_eq!(r.held.len(), 1);
    assert_eq!(l.in_flight(&key()), 1);
    assert!(reserve(&l, &s[..1], cost(CENT), T0).await.is_none());
}

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
