//! Helpers shared by the limiter test files.
#![allow(dead_code)] // each test file uses its own subset

use bursar_core::money::NanoUsd;
use bursar_limits::{
    Admission, Budget, Demand, Limiter, Limits, RedisLimiter, RedisOptions, Refusal, Reservation,
    Scope, ScopeId, ScopeKind,
};
use std::time::Duration;

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
    Demand {
        cost: c,
        tokens: 0,
        ..Demand::default()
    }
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

/// A Redis key namespace of its own for one test, on `BURSAR_TEST_REDIS_URL`.
pub struct RedisNamespace {
    pub url: String,
    pub name: String,
}

impl RedisNamespace {
    /// `None` (with a notice) when the variable is unset, except under CI, where it fails.
    pub fn new() -> Option<RedisNamespace> {
        let url = match std::env::var("BURSAR_TEST_REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ if std::env::var_os("CI").is_some() => {
                panic!("BURSAR_TEST_REDIS_URL must be set under CI")
            }
            _ => {
                eprintln!("BURSAR_TEST_REDIS_URL is not set: skipping a Redis test");
                return None;
            }
        };
        Some(RedisNamespace {
            url,
            name: format!("bursar-test-{}", uuid::Uuid::new_v4()),
        })
    }

    /// Options for a limiter in this namespace reaching Redis at `url` (a proxy, or `self.url`).
    pub fn options(&self, url: &str) -> RedisOptions {
        RedisOptions {
            namespace: self.name.clone(),
            timeout: Duration::from_millis(300),
            retry_after: Duration::from_millis(200),
            ..RedisOptions::new(url)
        }
    }

    pub fn limiter(&self) -> RedisLimiter {
        RedisLimiter::new(&self.options(&self.url)).unwrap()
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Deletes every key the test wrote.
    pub async fn cleanup(&self) {
        let mut conn = self.conn().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{}}}:*", self.name))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}
