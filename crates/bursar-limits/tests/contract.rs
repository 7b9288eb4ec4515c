//! The rules every admission backend keeps, run against the in-memory limiter and against
//! Redis (`BURSAR_TEST_REDIS_URL`; each test in its own key namespace). Without that variable
//! the Redis half is skipped with a notice, except under CI, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_core::duration::BudgetDuration;
use bursar_core::money::NanoUsd;
use bursar_limits::{
    Admission, BoxFuture, Budget, DEFAULT_RESERVATION_TTL_MS, DEFAULT_WINDOW_MS, Demand, Limiter,
    LimiterError, Limits, MemoryLimiter, Period, RateKind, RedisLimiter, RedisOptions, Refusal,
    Reservation, Scope, ScopeId, ScopeKind,
};
use std::sync::Arc;

mod common;

use common::{CENT, RedisNamespace, T0, budget, cost, key, refusal, reserve, scope};

/// Which backend a contract test runs on.
enum Backend {
    Memory,
    Redis(RedisNamespace),
}

impl Backend {
    fn redis() -> Option<Backend> {
        RedisNamespace::new().map(Backend::Redis)
    }

    fn limiter(&self, window_ms: i64, reservation_ttl_ms: i64) -> Subject {
        match self {
            Backend::Memory => {
                let memory = Arc::new(MemoryLimiter::new(window_ms, reservation_ttl_ms));
                Subject {
                    limiter: memory.clone(),
                    probe: Probe::Memory(memory),
                }
            }
            Backend::Redis(ns) => {
                let redis = Arc::new(
                    RedisLimiter::new(&RedisOptions {
                        window_ms,
                        reservation_ttl_ms,
                        ..ns.options(&ns.url)
                    })
                    .unwrap(),
                );
                Subject {
                    limiter: redis.clone(),
                    probe: Probe::Redis(redis),
                }
            }
        }
    }

    async fn cleanup(&self) {
        if let Backend::Redis(ns) = self {
            ns.cleanup().await;
        }
    }
}

enum Probe {
    Memory(Arc<MemoryLimiter>),
    Redis(Arc<RedisLimiter>),
}

/// A limiter plus a way to look at its counters.
struct Subject {
    limiter: Arc<dyn Limiter>,
    probe: Probe,
}

impl Limiter for Subject {
    fn reserve<'a>(
        &'a self,
        scopes: &'a [Scope],
        demand: Demand,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Admission, LimiterError>> {
        self.limiter.reserve(scopes, demand, now_ms)
    }

    fn settle<'a>(
        &'a self,
        reservation: &'a Reservation,
        actual: Demand,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), LimiterError>> {
        self.limiter.settle(reservation, actual, now_ms)
    }

    fn reseed<'a>(&'a self, scope: &'a ScopeId) -> BoxFuture<'a, Result<(), LimiterError>> {
        self.limiter.reseed(scope)
    }
}

impl Subject {
    async fn field(&self, redis: &RedisLimiter, scope: &ScopeId, field: &str) -> Option<i64> {
        let mut conn = redis.connection();
        let value: Option<i64> = ::redis::cmd("HGET")
            .arg(redis.layout().scope(scope))
            .arg(field)
            .query_async(&mut conn)
            .await
            .unwrap();
        value
    }

    /// Settled spend in the current period and cost held by open reservations.
    async fn spend_of(&self, scope: &ScopeId) -> Option<(NanoUsd, NanoUsd)> {
        match &self.probe {
            Probe::Memory(m) => m.spend_of(scope),
            Probe::Redis(r) => {
                let spent = self.field(r, scope, "spent").await?;
                let reserved = self.field(r, scope, "resv").await.unwrap_or(0);
                Some((NanoUsd(spent), NanoUsd(reserved)))
            }
        }
    }

    async fn in_flight(&self, scope: &ScopeId) -> u64 {
        match &self.probe {
            Probe::Memory(m) => m.in_flight(scope),
            Probe::Redis(r) => self.field(r, scope, "infl").await.unwrap_or(0) as u64,
        }
    }

    async fn open_reservations(&self) -> usize {
        match &self.probe {
            Probe::Memory(m) => m.open_reservations(),
            Probe::Redis(r) => {
                let mut conn = r.connection();
                let open: usize = ::redis::cmd("ZCARD")
                    .arg(r.layout().open())
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                open
            }
        }
    }
}

macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&super::Backend::Memory).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(backend) = super::Backend::redis() else { return };
                    super::$name(&backend).await;
                    backend.cleanup().await;
                }
            )*
        }
    };
}

contract_tests!(
    concurrent_requests_never_overspend_a_shared_budget,
    in_flight_reservations_count_and_settlement_refunds_the_difference,
    a_refused_request_consumes_nothing_on_any_scope,
    rpm_admits_exactly_the_limit_per_window,
    tpm_holds_the_estimate_and_counts_the_real_tokens,
    parallel_slots_are_freed_by_settle_and_release,
    abandoned_reservations_expire_and_late_settlements_still_charge,
    budgets_reset_at_the_end_of_each_period,
    the_store_figure_is_merged_and_reseed_takes_it_as_is,
    free_requests_skip_budgets_and_duplicate_scopes_count_once,
    up_to_remaining_admits_while_budget_remains_and_holds_only_what_is_left,
);

/// LiteLLM's rule: a request whose estimate exceeds what remains is still admitted while
/// anything remains, holding only the remainder on that scope (and its whole estimate on a
/// roomier one); once holds and spend reach the budget, the next request is refused.
async fn up_to_remaining_admits_while_budget_remains_and_holds_only_what_is_left(b: &Backend) {
    let l = b.limiter(DEFAULT_WINDOW_MS, DEFAULT_RESERVATION_TTL_MS);
    let team = ScopeId::new(ScopeKind::Team, "t");
    let scopes = [
        scope(key(), budget(CENT.times(100))),
        scope(team.clone(), budget(CENT.times(3))),
    ];
    let lenient = |c: NanoUsd| Demand {
        cost: c,
        tokens: 0,
        up_to_remaining: true,
    };
    // The strict rule refuses an estimate that does not fit...
    let r = refusal(&l, &scopes, cost(CENT.times(5)), T0).await;
    assert!(matches!(r, Refusal::Budget { ref scope, .. } if scope == &team));
    // ...the lenient one admits it, holding 3 cents on the team and 5 on the key.
    let first = reserve(&l, &scopes, lenient(CENT.times(5)), T0)
        .await
        .unwrap();
    let held: Vec<NanoUsd> = first.held.iter().map(|(_, t)| t.cost).collect();
    assert_eq!(held, [CENT.times(5), CENT.times(3)]);
    assert_eq!(
        l.spend_of(&team).await,
        Some((NanoUsd::ZERO, CENT.times(3)))
    );
    // Nothing remains while it is in flight: a concurrent request is refused.
    let r = refusal(&l, &scopes, lenient(CENT), T0).await;
    assert!(matches!(r, Refusal::Budget { ref scope, .. } if scope == &team));
    // It cost 2 cents: one remains, and the next request is admitted for it.
    l.settle(&first, cost(CENT.times(2)), T0 + 1).await.unwrap();
    assert_eq!(
        l.spend_of(&team).await,
        Some((CENT.times(2), NanoUsd::ZERO))
    );
    let second = reserve(&l, &scopes, lenient(CENT.times(4)), T0 + 2)
        .await
        .unwrap();
    assert_eq!(second.held[1].1.cost, CENT);
    // Settled above its hold (the crossing request may overspend by its own cost)...
    l.settle(&second, cost(CENT.times(4)), T0 + 3)
        .await
        .unwrap();
    assert_eq!(
        l.spend_of(&team).await,
        Some((CENT.times(6), NanoUsd::ZERO))
    );
    // ...and from then on every request is refused.
    let r = refusal(&l, &scopes, lenient(NanoUsd(1)), T0 + 4).await;
    assert!(matches!(r, Refusal::Budget { ref scope, .. } if scope == &team));
}

async fn concurrent_requests_never_overspend_a_shared_budget(b: &Backend) {
    let limiter = Arc::new(b.limiter(DEFAULT_WINDOW_MS, DEFAULT_RESERVATION_TTL_MS));
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
            let r = reserve(&*limiter, &scopes, cost(CENT), T0).await?;
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
    let (spent, reserved) = limiter.spend_of(&team.id).await.unwrap();
    assert_eq!(spent, CENT.times(50));
    assert_eq!(reserved, NanoUsd::ZERO);
    let refused = refusal(&*limiter, std::slice::from_ref(&team), cost(CENT), T0 + 2).await;
    assert!(
        matches!(refused, Refusal::Budget { spent, max, .. } if spent == CENT.times(50) && max == CENT.times(50))
    );
}

async fn in_flight_reservations_count_and_settlement_refunds_the_difference(b: &Backend) {
    let l = b.limiter(DEFAULT_WINDOW_MS, DEFAULT_RESERVATION_TTL_MS);
    let s = [scope(key(), budget(CENT.times(10)))];
    let a = reserve(&l, &s, cost(CENT.times(6)), T0).await.unwrap();
    // 6 in flight + 6 more would pass 10.
    assert!(reserve(&l, &s, cost(CENT.times(6)), T0).await.is_none());
    let b = reserve(&l, &s, cost(CENT.times(4)), T0).await.unwrap();
    assert_eq!(
        l.spend_of(&key()).await,
        Some((NanoUsd::ZERO, CENT.times(10)))
    );
    // The first cost 1 cent, not 6: 5 come back.
    l.settle(&a, cost(CENT), T0).await.unwrap();
    assert_eq!(l.spend_of(&key()).await, Some((CENT, CENT.times(4))));
    l.release(&b, T0).await.unwrap();
    assert_eq!(l.spend_of(&key()).await, Some((CENT, NanoUsd::ZERO)));
    assert!(reserve(&l, &s, cost(CENT.times(9)), T0).await.is_some());
    assert_eq!(l.open_reservations().await, 1);
}

async fn a_refused_request_consumes_nothing_on_any_scope(b: &Backend) {
    let l = b.limiter(DEFAULT_WINDOW_MS, DEFAULT_RESERVATION_TTL_MS);
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
            ..Demand::default()
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
            ..Demand::default()
        },
        T0,
    )
    .await;
    assert!(matches!(r, Refusal::Budget { ref scope, .. } if scope == &team));
    assert_eq!(l.in_flight(&key()).await, 1);
    assert_eq!(l.spend_of(&key()).await, Some((NanoUsd::ZERO, CENT)));
    let headroom = &ok.headroom[0];
    assert_eq!(headroom.remaining_requests, Some(9));
    assert_eq!(headroom.remaining_tokens, Some(900));
    let again = reserve(
        &l,
        &scopes,
        Demand {
            cost: CENT,
            tokens: 100,
            ..Demand::default()
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

async fn rpm_admits_exactly_the_limit_per_window(b: &Backend) {
    let l = Arc::new(b.limiter(DEFAULT_WINDOW_MS, DEFAULT_RESERVATION_TTL_MS));
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
            let r = reserve(&*l, &s[..], Demand::default(), T0 + 5).await?;
            l.settle(&r, Demand::default(), T0 + 6).await.unwrap();
            Some(())
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(admitted, 100);
    let r = refusal(&*l, &s[..], Demand::default(), T0 + 59_999).await;
    assert!(
        matches!(r, Refusal::Rate { kind: RateKind::Requests, limit: 100, remaining: 0, retry_at, .. } if retry_at == T0 + 5 + 60_000)
    );
    // The window opened at the first request and closes 60 s later.
    assert!(
        reserve(&*l, &s[..], Demand::default(), T0 + 60_005)
            .await
            .is_some()
    );
}

async fn tpm_holds_the_estimate_and_counts_the_real_tokens(b: &Backend) {
    let l = b.limiter(DEFAULT_WINDOW_MS, DEFAULT_RESERVATION_TTL_MS);
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
        ..Demand::default()
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

async fn parallel_slots_are_freed_by_settle_and_release(b: &Backend) {
    let l = b.limiter(DEFAULT_WINDOW_MS, DEFAULT_RESERVATION_TTL_MS);
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
    assert_eq!(l.in_flight(&key()).await, 0);
    // Settling twice gives nothing back twice.
    l.release(&c, T0).await.unwrap();
    assert_eq!(l.in_flight(&key()).await, 0);
}

async fn abandoned_reservations_expire_and_late_settlements_still_charge(b: &Backend) {
    let l = b.limiter(60_000, 10_000);
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
    assert_eq!(l.open_reservations().await, 1);
    // The lost request did finish after all: its real cost is charged, its hold is not
    // given back a second time.
    l.settle(&lost, cost(CENT), T0 + 10_002).await.unwrap();
    assert_eq!(l.spend_of(&key()).await, Some((CENT, CENT)));
    assert_eq!(l.in_flight(&key()).await, 1);
    l.settle(&fresh, cost(CENT), T0 + 10_003).await.unwrap();
    assert_eq!(
        l.spend_of(&key()).await,
        Some((CENT.times(2), NanoUsd::ZERO))
    );
}

async fn budgets_reset_at_the_end_of_each_period(b: &Backend) {
    let l = b.limiter(DEFAULT_WINDOW_MS, DEFAULT_RESERVATION_TTL_MS);
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
    assert_eq!(l.spend_of(&key()).await, Some((CENT, NanoUsd::ZERO)));
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

async fn the_store_figure_is_merged_and_reseed_takes_it_as_is(b: &Backend) {
    let l = b.limiter(DEFAULT_WINDOW_MS, DEFAULT_RESERVATION_TTL_MS);
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
    assert_eq!(l.spend_of(&key()).await.unwrap().0, CENT.times(9));
    // An administrator set spend back to 0.
    l.reseed(&key()).await.unwrap();
    assert!(
        reserve(&l, &with_spent(NanoUsd::ZERO), cost(CENT.times(10)), T0)
            .await
            .is_some()
    );
}

async fn free_requests_skip_budgets_and_duplicate_scopes_count_once(b: &Backend) {
    let l = b.limiter(DEFAULT_WINDOW_MS, DEFAULT_RESERVATION_TTL_MS);
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
    assert_eq!(l.in_flight(&key()).await, 1);
    assert!(reserve(&l, &s[..1], cost(CENT), T0).await.is_none());
}
