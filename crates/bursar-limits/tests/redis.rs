//! What only the Redis backend does: its key layout, sharing counters between limiters that
//! stand for separate instances, exact money beyond a double's precision, and the fail
//! modes while Redis is unreachable (through a proxy the test can cut).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_core::money::NanoUsd;
use bursar_limits::{
    Admission, Budget, Demand, FailMode, Failover, Limiter, Limits, MemoryLimiter, RedisLimiter,
    RedisOptions, Scope, ScopeId, ScopeKind,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

mod common;

use common::{RedisNamespace as Namespace, T0};

fn key_scope(limits: Limits) -> Scope {
    Scope {
        id: ScopeId::new(ScopeKind::ApiKey, "hash-1"),
        limits,
    }
}

fn rpm(n: u64) -> Limits {
    Limits {
        rpm: Some(n),
        ..Limits::default()
    }
}

#[tokio::test]
async fn counters_live_under_the_versioned_layout_and_expire() {
    let Some(ns) = Namespace::new() else { return };
    let limiter = ns.limiter();
    let scope = key_scope(rpm(10));
    let Admission::Granted(r) = limiter
        .reserve(std::slice::from_ref(&scope), Demand::default(), T0)
        .await
        .unwrap()
    else {
        panic!("refused")
    };
    let name = format!("{{{}}}:v1:scope:api_key:hash-1", ns.name);
    assert_eq!(limiter.layout().scope(&scope.id), name);
    let mut conn = ns.conn().await;
    let (req, infl): (i64, i64) = redis::cmd("HMGET")
        .arg(&name)
        .arg("req")
        .arg("infl")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((req, infl), (1, 1));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl > 23 * 3_600_000 && ttl <= 24 * 3_600_000,
        "idle scopes expire after a day: {ttl}"
    );
    let open: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{{{}}}:v1:open", ns.name))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    // The member names the reservation and what it holds, so expiry can give it back.
    assert_eq!(open, vec![format!("{} {}:{name}=0/0;", r.id, name.len())]);
    limiter.settle(&r, Demand::default(), T0).await.unwrap();
    let infl: i64 = redis::cmd("HGET")
        .arg(&name)
        .arg("infl")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(infl, 0);
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limiters_on_one_redis_share_every_counter() {
    let Some(ns) = Namespace::new() else { return };
    // Three limiters with their own connections stand for three instances.
    let instances: Vec<Arc<RedisLimiter>> = (0..3).map(|_| Arc::new(ns.limiter())).collect();
    let scope = Arc::new([key_scope(rpm(100))]);
    let mut tasks = Vec::new();
    for i in 0..300 {
        let limiter = instances[i % 3].clone();
        let scope = scope.clone();
        tasks.push(tokio::spawn(async move {
            match limiter.reserve(&scope[..], Demand::default(), T0).await {
                Ok(Admission::Granted(r)) => {
                    limiter.settle(&r, Demand::default(), T0).await.unwrap();
                    true
                }
                Ok(Admission::Refused(_)) => false,
                Err(e) => panic!("{e}"),
            }
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 100);

    // Parallel slots: requests that hold theirs for a while never exceed 5 in flight.
    let scope = Arc::new([Scope {
        id: ScopeId::new(ScopeKind::Team, "t"),
        limits: Limits {
            max_parallel: Some(5),
            ..Limits::default()
        },
    }]);
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (limiter, scope) = (instances[i % 3].clone(), scope.clone());
        let (in_flight, peak) = (in_flight.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                if let Ok(Admission::Granted(r)) =
                    limiter.reserve(&scope[..], Demand::default(), T0).await
                {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    limiter.settle(&r, Demand::default(), T0).await.unwrap();
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            false
        }));
    }
    let mut served = 0;
    for t in tasks {
        served += usize::from(t.await.unwrap());
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        5,
        "never more than 5 in flight"
    );
    assert!(served >= 5, "slots were reused: {served}");
    ns.cleanup().await;
}

#[tokio::test]
async fn money_beyond_double_precision_stays_exact() {
    let Some(ns) = Namespace::new() else { return };
    let limiter = ns.limiter();
    // 2^53 nano-USD is about 9 million USD; this spend is far beyond it.
    let spent = NanoUsd(123_456_789_012_345_678);
    let scope = key_scope(Limits {
        budget: Some(Budget {
            max: NanoUsd(i64::MAX / 2),
            spent,
            period: None,
        }),
        ..Limits::default()
    });
    let one = Demand {
        cost: NanoUsd(1),
        tokens: 0,
        ..Demand::default()
    };
    let Admission::Granted(r) = limiter
        .reserve(std::slice::from_ref(&scope), one, T0)
        .await
        .unwrap()
    else {
        panic!("refused")
    };
    limiter
        .settle(
            &r,
            Demand {
                cost: NanoUsd(3),
                tokens: 0,
                ..Demand::default()
            },
            T0,
        )
        .await
        .unwrap();
    let mut conn = ns.conn().await;
    let stored: String = redis::cmd("HGET")
        .arg(limiter.layout().scope(&scope.id))
        .arg("spent")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, "123456789012345681");
    ns.cleanup().await;
}

/// A TCP proxy in front of Redis that the test can cut (every connection dropped, new ones
/// refused) and restore.
struct Proxy {
    url: String,
    up: Arc<AtomicBool>,
    cut: std::sync::Mutex<CancellationToken>,
}

impl Proxy {
    async fn start(target_url: &str) -> Arc<Proxy> {
        let target = target_url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap()
            .rsplit('@')
            .next()
            .unwrap()
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Arc::new(Proxy {
            url: format!("redis://127.0.0.1:{port}"),
            up: Arc::new(AtomicBool::new(true)),
            cut: std::sync::Mutex::new(CancellationToken::new()),
        });
        let p = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !p.up.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let cut = p.cut.lock().unwrap().clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = cut.cancelled() => {}
                    }
                });
            }
        });
        proxy
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn reserve(limiter: &dyn Limiter, scope: &Scope) -> Result<Admission, String> {
    limiter
        .reserve(std::slice::from_ref(scope), Demand::default(), T0)
        .await
        .map_err(|e| e.to_string())
}

/// Retries until `f` is true or 5 s pass.
async fn eventually(mut f: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..100 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn fail_closed_refuses_while_redis_is_away_and_recovers_by_itself() {
    let Some(ns) = Namespace::new() else { return };
    let proxy = Proxy::start(&ns.url).await;
    let shared = RedisLimiter::new(&ns.options(&proxy.url)).unwrap();
    let health = shared.health();
    let limiter = Failover::new(shared, FailMode::Closed, MemoryLimiter::default());
    let scope = key_scope(rpm(1_000));
    assert!(matches!(
        reserve(&limiter, &scope).await,
        Ok(Admission::Granted(_))
    ));
    assert!(health.is_up());

    proxy.down();
    let started = std::time::Instant::now();
    let err = reserve(&limiter, &scope).await.unwrap_err();
    assert!(err.contains("Redis"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the timeout"
    );
    assert!(!health.is_up());
    // While marked down, calls fail at once instead of waiting on Redis again.
    let started = std::time::Instant::now();
    assert!(reserve(&limiter, &scope).await.is_err());
    assert!(started.elapsed() < Duration::from_millis(100));

    proxy.up();
    assert!(
        eventually(async || matches!(reserve(&limiter, &scope).await, Ok(Admission::Granted(_))))
            .await,
        "admission recovers once Redis is back"
    );
    assert!(health.is_up());
    assert!(health.failures() >= 1);
    ns.cleanup().await;
}

#[tokio::test]
async fn fail_open_falls_back_to_per_instance_limits_and_settles_where_it_reserved() {
    let Some(ns) = Namespace::new() else { return };
    let proxy = Proxy::start(&ns.url).await;
    let shared = RedisLimiter::new(&ns.options(&proxy.url)).unwrap();
    let limiter = Failover::new(shared, FailMode::Open, MemoryLimiter::default());
    let fallbacks = limiter.fallback_counter();
    let scope = key_scope(Limits {
        max_parallel: Some(1),
        ..Limits::default()
    });
    let Ok(Admission::Granted(remote)) = reserve(&limiter, &scope).await else {
        panic!("Redis is up")
    };
    assert!(!remote.local);

    proxy.down();
    // The Redis hold is out of reach; the instance's own counters admit one more.
    let Ok(Admission::Granted(local)) = reserve(&limiter, &scope).await else {
        panic!("fail_open admits on local counters")
    };
    assert!(local.local);
    assert!(fallbacks.load(Ordering::Relaxed) >= 1);
    // ... and still enforce the limit locally.
    assert!(matches!(
        reserve(&limiter, &scope).await,
        Ok(Admission::Refused(_))
    ));
    limiter.settle(&local, Demand::default(), T0).await.unwrap();
    assert!(matches!(
        reserve(&limiter, &scope).await,
        Ok(Admission::Granted(_))
    ));

    proxy.up();
    // Back on Redis: the first hold is still there until it is settled.
    assert!(
        eventually(async || {
            matches!(limiter.settle(&remote, Demand::default(), T0).await, Ok(()))
        })
        .await
    );
    let Ok(Admission::Granted(again)) = reserve(&limiter, &scope).await else {
        panic!("the shared slot is free again")
    };
    assert!(!again.local);
    ns.cleanup().await;
}

#[tokio::test]
async fn expired_holds_are_given_back_whatever_bytes_the_scope_ids_hold() {
    let Some(ns) = Namespace::new() else { return };
    let limiter = RedisLimiter::new(&RedisOptions {
        reservation_ttl_ms: 1_000,
        ..ns.options(&ns.url)
    })
    .unwrap();
    // End-user ids are chosen by clients: separators of the member encoding included.
    let odd = Scope {
        id: ScopeId::new(ScopeKind::EndUser, "a:b=1/2;\n 3 é"),
        limits: Limits {
            max_parallel: Some(1),
            budget: Some(Budget {
                max: NanoUsd(100),
                spent: NanoUsd::ZERO,
                period: None,
            }),
            ..Limits::default()
        },
    };
    let plain = key_scope(Limits {
        max_parallel: Some(1),
        ..Limits::default()
    });
    let scopes = [odd, plain];
    let demand = Demand {
        cost: NanoUsd(60),
        tokens: 7,
        ..Demand::default()
    };
    let Admission::Granted(_abandoned) = limiter.reserve(&scopes, demand, T0).await.unwrap() else {
        panic!("refused")
    };
    assert!(matches!(
        limiter.reserve(&scopes, demand, T0 + 999).await.unwrap(),
        Admission::Refused(_)
    ));
    // Past the deadline both holds (slot, 60 nano-USD, 7 tokens) come back.
    let Admission::Granted(r) = limiter.reserve(&scopes, demand, T0 + 1_001).await.unwrap() else {
        panic!("the expired hold was not given back")
    };
    limiter.settle(&r, demand, T0 + 1_002).await.unwrap();
    let mut conn = ns.conn().await;
    let (resv, tokr, infl, spent): (i64, i64, i64, i64) = redis::cmd("HMGET")
        .arg(limiter.layout().scope(&scopes[0].id))
        .arg("resv")
        .arg("tokr")
        .arg("infl")
        .arg("spent")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((resv, tokr, infl, spent), (0, 0, 0, 60));
    ns.cleanup().await;
}

/// A spend source that counts its reads and knows one scope's recorded spend.
struct Recorded {
    spend: NanoUsd,
    reads: std::sync::atomic::AtomicUsize,
}

impl bursar_limits::SpendSource for Recorded {
    fn spend<'a>(
        &'a self,
        _: &'a ScopeId,
    ) -> bursar_limits::BoxFuture<'a, Result<Option<NanoUsd>, bursar_limits::LimiterError>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let spend = self.spend;
        Box::pin(async move { Ok(Some(spend)) })
    }
}

/// A budget Redis has no counters for is seeded from the store's figure read at that
/// moment, not from the (older) figure the request carries; a burst reads it once; and when
/// the counters are lost, the next request reads it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_without_counters_are_seeded_from_the_spend_source() {
    let Some(ns) = Namespace::new() else { return };
    let source = Arc::new(Recorded {
        spend: NanoUsd(40),
        reads: std::sync::atomic::AtomicUsize::new(0),
    });
    let limiter = Arc::new(ns.limiter().with_spend_source(
        source.clone(),
        Duration::from_millis(10),
        Duration::from_secs(30),
    ));
    // The request's snapshot says nothing was spent; the store knows 40 of 50 were.
    let scope = key_scope(Limits {
        budget: Some(Budget {
            max: NanoUsd(50),
            spent: NanoUsd::ZERO,
            period: None,
        }),
        ..Limits::default()
    });
    let demand = Demand {
        cost: NanoUsd(4),
        tokens: 0,
        up_to_remaining: false,
    };
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (limiter, scope) = (limiter.clone(), scope.clone());
            tokio::spawn(async move { limiter.reserve(&[scope], demand, T0).await.unwrap() })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Admission::Granted(_)) {
            granted += 1;
        }
    }
    assert_eq!(granted, 2, "10 of the 50 remained: two holds of 4 fit");
    assert_eq!(
        source.reads.load(Ordering::SeqCst),
        1,
        "one read for the burst"
    );
    ns.cleanup().await;
    // Counters lost: the next request reads the figure again.
    let again = limiter.reserve(&[scope], demand, T0 + 1).await.unwrap();
    assert!(matches!(again, Admission::Granted(_)));
    assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    ns.cleanup().await;
}
