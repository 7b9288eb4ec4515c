//! The shared backend: counters in Redis, so every instance behind a load balancer admits
//! against the same figures. Each operation is one Lua script (one round trip) that reads,
//! checks and updates every scope of the request atomically.
//!
//! # Key layout (version 1)
//! Every key starts with `{<namespace>}:v1:` (namespace `bursar` by default). The braces are
//! a hash tag, so a script's keys always live in one slot. A later incompatible layout gets
//! a new version, and the old keys simply expire.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `…scope:<kind>:<id>` | hash | one scope's counters: rate window (`ws`, `req`, `tok`), holds (`resv`, `tokr`, `infl`), spend (`spent`, `pend`, `pnext`), `seeded`, `reseed` |
//! | `…open` | sorted set | open reservations scored by deadline; a member is the id and what it holds (`<id> <len>:<scope key>=<cost>/<tokens>;…`) |
//! | `…seq` | string | the last reservation id |
//!
//! `<kind>` is the scope's LiteLLM descriptor (`api_key`, `team`, …) and `<id>` the entity's
//! id (the key hash for keys). A scope's hash expires after a day without traffic (at
//! least two rate windows and two reservation lifetimes); by then the database holds all of
//! its spend, which seeds it again.
//!
//! # Spend figures
//! A budget scope is seeded from the store's figure (PostgreSQL) the first time it is seen.
//! From then on Redis counts settlements as they happen, ahead of the ledger writer that
//! records them in the database. Each request brings the store's current figure along, and
//! within one budget period the larger figure wins, so what the database learned from
//! elsewhere (another ledger batch, a Redis restart) is folded back in.

use crate::types::{
    Admission, Budget, Demand, Headroom, Limits, RateKind, Refusal, Reservation, Scope, ScopeId,
    Taken,
};
use crate::{BoxFuture, Limiter, LimiterError};
use bursar_core::money::NanoUsd;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The version of the key layout (part of every key).
pub const LAYOUT_VERSION: u32 = 1;
const SCOPE_IDLE_TTL_MS: i64 = 24 * 3_600_000;

static RESERVE: &str = include_str!("lua/reserve.lua");
static SETTLE: &str = include_str!("lua/settle.lua");
/// A scope that is not in Redis has nothing to forget: it is seeded from the store anyway.
static RESEED: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then \
    redis.call('HSET', KEYS[1], 'reseed', 1) end return 1";

/// How to reach Redis and how to behave when it does not answer.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS).
    pub url: String,
    /// Keeps several deployments apart on one Redis (the hash tag of every key).
    pub namespace: String,
    /// Rate window (LiteLLM's 60 s).
    pub window_ms: i64,
    /// How long a reservation may stay open.
    pub reservation_ttl_ms: i64,
    /// The longest one operation (connecting included) may take.
    pub timeout: Duration,
    /// After a failure, operations fail at once for this long before Redis is tried again,
    /// so an outage costs each request nothing but the fallback.
    pub retry_after: Duration,
}

impl RedisOptions {
    pub fn new(url: impl Into<String>) -> RedisOptions {
        RedisOptions {
            url: url.into(),
            namespace: "bursar".to_string(),
            window_ms: crate::memory::DEFAULT_WINDOW_MS,
            reservation_ttl_ms: crate::memory::DEFAULT_RESERVATION_TTL_MS,
            timeout: Duration::from_millis(500),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// The names of the layout's keys for one namespace.
#[derive(Debug, Clone)]
pub struct KeyLayout {
    prefix: String,
    /// The fixed keys, named once rather than on every call.
    open: String,
    seq: String,
    epoch: String,
}

impl KeyLayout {
    pub fn new(namespace: &str) -> KeyLayout {
        let prefix = format!("{{{namespace}}}:v{LAYOUT_VERSION}:");
        KeyLayout {
            open: format!("{prefix}open"),
            seq: format!("{prefix}seq"),
            epoch: format!("{prefix}epoch"),
            prefix,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn scope(&self, id: &ScopeId) -> String {
        format!("{}scope:{}:{}", self.prefix, id.kind.descriptor(), id.value)
    }

    pub fn open(&self) -> &str {
        &self.open
    }

    pub fn seq(&self) -> &str {
        &self.seq
    }

    /// When this layout's keys were first written; gone with them when Redis loses them.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }
}

/// Where exact spend figures come from when Redis has no counters for a budget (first
/// use of a scope, or counters lost with a Redis restart): the system of record, read now.
pub trait SpendSource: Send + Sync {
    /// The scope's recorded spend in its current period; `None` when the source does not
    /// know the scope (the request's own figure is used then).
    fn spend<'a>(
        &'a self,
        scope: &'a ScopeId,
    ) -> BoxFuture<'a, Result<Option<NanoUsd>, LimiterError>>;
}

/// Admission control shared by every instance through one Redis.
pub struct RedisLimiter {
    conn: ConnectionManager,
    layout: KeyLayout,
    reserve: Script,
    settle: Script,
    reseed: Script,
    window_ms: i64,
    reservation_ttl_ms: i64,
    scope_ttl_ms: i64,
    timeout: Duration,
    health: Health,
    /// Exact figures for scopes Redis has no counters for (see [`SpendSource`]).
    spend_source: Option<Arc<dyn SpendSource>>,
    /// After counters were lost, how long to let every instance's ledger flush before the
    /// exact figure is read (so spend admitted elsewhere but not yet written is in it).
    settle_delay: Duration,
    /// How long after the epoch counters count as just lost.
    loss_window_ms: i64,
    /// Held while exact figures are read, so a burst reads each scope once.
    seeding: tokio::sync::Mutex<()>,
}

/// Whether Redis answered lately, shared with whoever reports it (metrics, readiness).
#[derive(Clone)]
pub struct Health {
    inner: Arc<HealthInner>,
}

struct HealthInner {
    /// For probes (readiness) outside admission calls.
    conn: ConnectionManager,
    timeout: Duration,
    started: Instant,
    retry_after_ms: i64,
    /// Milliseconds since `started` before which calls fail at once (0 = healthy).
    down_until: AtomicI64,
    failures: AtomicU64,
}

impl Health {
    fn new(conn: ConnectionManager, timeout: Duration, retry_after: Duration) -> Health {
        Health {
            inner: Arc::new(HealthInner {
                conn,
                timeout,
                started: Instant::now(),
                retry_after_ms: i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX),
                down_until: AtomicI64::new(0),
                failures: AtomicU64::new(0),
            }),
        }
    }

    fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// False from a failed call until a call succeeds again.
    pub fn is_up(&self) -> bool {
        self.inner.down_until.load(Ordering::Relaxed) == 0
    }

    /// Asks Redis now (`PING`, under the call timeout) and records the answer.
    pub async fn probe(&self) -> bool {
        let mut conn = self.inner.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(self.inner.timeout, ping).await {
            Ok(Ok(_)) => {
                self.succeeded();
                true
            }
            _ => {
                self.failed();
                false
            }
        }
    }

    /// Calls that failed since start.
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    fn check(&self) -> Result<(), LimiterError> {
        let until = self.inner.down_until.load(Ordering::Relaxed);
        if until != 0 && self.elapsed_ms() < until {
            return Err(LimiterError(
                "Redis is unreachable; retrying shortly".to_string(),
            ));
        }
        Ok(())
    }

    fn failed(&self) {
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        let until = self
            .elapsed_ms()
            .saturating_add(self.inner.retry_after_ms)
            .max(1);
        if self.inner.down_until.swap(until, Ordering::Relaxed) == 0 {
            tracing::error!(
                retry_after_ms = self.inner.retry_after_ms,
                "Redis admission backend is unreachable"
            );
        }
    }

    fn succeeded(&self) {
        if self.inner.down_until.swap(0, Ordering::Relaxed) != 0 {
            tracing::warn!("Redis admission backend is reachable again");
        }
    }
}

impl RedisLimiter {
    /// A limiter over `options.url`. Connects lazily: Redis need not be up yet, and the
    /// connection is re-established by itself after an outage.
    pub fn new(options: &RedisOptions) -> Result<RedisLimiter, LimiterError> {
        let client = client(&options.url).map_err(LimiterError)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            .set_number_of_retries(1)
            .set_max_delay(options.retry_after);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| LimiterError(format!("cannot set up the Redis connection: {e}")))?;
        let window_ms = options.window_ms.max(1);
        let reservation_ttl_ms = options.reservation_ttl_ms.max(1);
        Ok(RedisLimiter {
            health: Health::new(conn.clone(), options.timeout, options.retry_after),
            conn,
            layout: KeyLayout::new(&options.namespace),
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
            reseed: Script::new(RESEED),
            window_ms,
            reservation_ttl_ms,
            scope_ttl_ms: SCOPE_IDLE_TTL_MS
                .max(window_ms.saturating_mul(2))
                .max(reservation_ttl_ms.saturating_mul(2)),
            timeout: options.timeout,
            spend_source: None,
            settle_delay: Duration::ZERO,
            loss_window_ms: 0,
            seeding: tokio::sync::Mutex::new(()),
        })
    }

    /// Seeds budgets Redis has no counters for from `source` (read when needed) rather than
    /// from the figure a request carries, which may lag the store. After a counter loss
    /// (within `loss_window` of the epoch) the read waits `settle_delay` first, for the
    /// instances' ledgers to write what they admitted meanwhile.
    pub fn with_spend_source(
        mut self,
        source: Arc<dyn SpendSource>,
        settle_delay: Duration,
        loss_window: Duration,
    ) -> RedisLimiter {
        self.spend_source = Some(source);
        self.settle_delay = settle_delay;
        self.loss_window_ms = i64::try_from(loss_window.as_millis()).unwrap_or(i64::MAX);
        self
    }

    pub fn layout(&self) -> &KeyLayout {
        &self.layout
    }

    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// A connection to the same Redis (multiplexed; cheap to clone).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Runs one Redis operation under the timeout, keeping the health figures.
    async fn call<T>(
        &self,
        op: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, LimiterError> {
        self.health.check()?;
        let outcome = match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(LimiterError(format!("Redis: {e}"))),
            Err(_) => Err(LimiterError(format!(
                "Redis did not answer within {} ms",
                self.timeout.as_millis()
            ))),
        };
        match &outcome {
            Ok(_) => self.health.succeeded(),
            Err(_) => self.health.failed(),
        }
        outcome
    }

    /// One call of the reserve script; `exact` holds the figures read from the store for
    /// scopes that had no counters (see `lua/reserve.lua`).
    async fn invoke_reserve(
        &self,
        unique: &[&Scope],
        demand: Demand,
        now: i64,
        exact: &[Option<NanoUsd>],
    ) -> Result<Vec<Value>, LimiterError> {
        // Without a spend source every figure a request carries counts as exact.
        let trust_request = self.spend_source.is_none();
        let mut call = self.reserve.prepare_invoke();
        call.key(self.layout.open())
            .key(self.layout.seq())
            .key(self.layout.epoch());
        for scope in unique {
            call.key(self.layout.scope(&scope.id));
        }
        call.arg(now)
            .arg(self.window_ms)
            .arg(self.reservation_ttl_ms)
            .arg(demand.cost.0)
            .arg(demand.tokens)
            .arg(self.scope_ttl_ms)
            .arg(u8::from(demand.up_to_remaining))
            .arg(self.loss_window_ms);
        for (scope, figure) in unique.iter().zip(exact) {
            let mut limits = scope.limits;
            if let (Some(budget), Some(figure)) = (limits.budget.as_mut(), figure) {
                budget.spent = *figure;
            }
            push_limits(&mut call, &limits, now);
            call.arg(u8::from(trust_request || figure.is_some()));
        }
        let mut conn = self.conn.clone();
        self.call(call.invoke_async(&mut conn)).await
    }

    async fn reserve_shared(
        &self,
        scopes: &[Scope],
        demand: Demand,
        now: i64,
    ) -> Result<Admission, LimiterError> {
        let mut unique: Vec<&Scope> = Vec::with_capacity(scopes.len());
        for scope in scopes {
            if !unique.iter().any(|s| s.id == scope.id) {
                unique.push(scope);
            }
        }
        if unique.is_empty() {
            return Ok(Admission::Granted(Reservation {
                id: 0,
                expires_at: now.saturating_add(self.reservation_ttl_ms),
                held: Arc::from(Vec::new()),
                headroom: Vec::new(),
                local: false,
            }));
        }
        let mut exact: Vec<Option<NanoUsd>> = vec![None; unique.len()];
        let mut reply = self.invoke_reserve(&unique, demand, now, &exact).await?;
        if is_seed_request(&reply) {
            // Budgets without counters: one caller at a time reads their exact spend (the
            // others, once it is done, find them seeded).
            let _seeding = self.seeding.lock().await;
            reply = self.invoke_reserve(&unique, demand, now, &exact).await?;
            if is_seed_request(&reply) {
                if reply.get(1).and_then(int) == Some(1) {
                    tokio::time::sleep(self.settle_delay).await;
                }
                for index in reply.iter().skip(2).filter_map(int) {
                    let Some(i) = usize::try_from(index).ok().and_then(|i| i.checked_sub(1)) else {
                        continue;
                    };
                    let Some(scope) = unique.get(i) else { continue };
                    let carried = scope.limits.budget.map_or(NanoUsd::ZERO, |b| b.spent);
                    let figure = match &self.spend_source {
                        Some(source) => source.spend(&scope.id).await?,
                        None => None,
                    };
                    exact[i] = Some(figure.unwrap_or(carried).max(carried));
                }
                reply = self.invoke_reserve(&unique, demand, now, &exact).await?;
            }
        }
        parse_reserve(&reply, &unique, demand, now, self.window_ms).ok_or_else(|| {
            LimiterError(format!(
                "unexpected reply from the reserve script: {reply:?}"
            ))
        })
    }

    async fn settle_shared(
        &self,
        reservation: &Reservation,
        actual: Demand,
        now: i64,
    ) -> Result<(), LimiterError> {
        if reservation.held.is_empty() {
            return Ok(());
        }
        let mut call = self.settle.prepare_invoke();
        call.key(self.layout.open());
        for (scope, _) in reservation.held.iter() {
            call.key(self.layout.scope(scope));
        }
        call.arg(now)
            .arg(self.window_ms)
            .arg(reservation.id)
            .arg(actual.cost.0)
            .arg(actual.tokens)
            .arg(self.scope_ttl_ms);
        for (_, taken) in reservation.held.iter() {
            call.arg(taken.cost.0).arg(taken.tokens);
        }
        let mut conn = self.conn.clone();
        let _: i64 = self.call(call.invoke_async(&mut conn)).await?;
        Ok(())
    }

    async fn reseed_shared(&self, scope: &ScopeId) -> Result<(), LimiterError> {
        let mut call = self.reseed.prepare_invoke();
        call.key(self.layout.scope(scope));
        let mut conn = self.conn.clone();
        let _: i64 = self.call(call.invoke_async(&mut conn)).await?;
        Ok(())
    }
}

/// One scope's limits as the reserve script reads them (see `lua/reserve.lua`).
fn push_limits(call: &mut redis::ScriptInvocation<'_>, limits: &Limits, now: i64) {
    let count = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
    call.arg(count(limits.rpm))
        .arg(count(limits.tpm))
        .arg(count(limits.max_parallel));
    match limits.budget {
        Some(Budget { max, spent, period }) => {
            let (reset_at, end_now, after) = match period {
                Some(p) => {
                    let end_now = p.duration.next_reset(p.reset_at, now);
                    (p.reset_at, end_now, p.duration.next_reset(end_now, end_now))
                }
                None => (0, 0, 0),
            };
            call.arg(1)
                .arg(max.0)
                .arg(spent.0)
                .arg(reset_at)
                .arg(end_now)
                .arg(after);
        }
        None => {
            call.arg(0).arg(0).arg(0).arg(0).arg(0).arg(0);
        }
    }
}

/// A client for `url` with Nagle's algorithm off. Calls are small, pipelined writes on one
/// connection: with Nagle on, a write waits for the previous one's ACK, which the server
/// delays, and the governed benchmark's latency grew to milliseconds.
pub fn client(url: &str) -> Result<redis::Client, String> {
    use redis::IntoConnectionInfo;
    let info = url
        .into_connection_info()
        .map_err(|e| format!("invalid Redis URL: {e}"))?;
    let nodelay = redis::io::tcp::TcpSettings::default().set_nodelay(true);
    redis::Client::open(info.set_tcp_settings(nodelay))
        .map_err(|e| format!("invalid Redis URL: {e}"))
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn count(value: &Value) -> Option<u64> {
    int(value).map(|v| u64::try_from(v).unwrap_or(0))
}

/// Whether the reserve script asks for exact figures (`{2, lost, indices…}`).
fn is_seed_request(reply: &[Value]) -> bool {
    reply.first().and_then(int) == Some(2)
}

/// Turns the reserve script's reply into an admission: `{1, id, deadline, (requests,
/// tokens used, window start, cost held) per scope}` or `{0, scope index, reason, a, b}`.
fn parse_reserve(
    reply: &[Value],
    scopes: &[&Scope],
    demand: Demand,
    now: i64,
    window_ms: i64,
) -> Option<Admission> {
    match int(reply.first()?)? {
        1 => {
            let id = count(reply.get(1)?)?;
            let expires_at = int(reply.get(2)?)?;
            let mut held = Vec::with_capacity(scopes.len());
            let mut headroom = Vec::new();
            for (i, scope) in scopes.iter().enumerate() {
                let at = 3 + i * 4;
                let requests = count(reply.get(at)?)?;
                let tokens = count(reply.get(at + 1)?)?;
                let window_start = int(reply.get(at + 2)?)?;
                // What the script held on this scope (less than the demand when it held
                // only what remained of the budget).
                let cost = NanoUsd(int(reply.get(at + 3)?)?);
                let limits = &scope.limits;
                held.push((
                    scope.id.clone(),
                    Taken {
                        cost,
                        tokens: demand.tokens,
                    },
                ));
                if limits.rpm.is_some() || limits.tpm.is_some() {
                    headroom.push(Headroom {
                        scope: scope.id.clone(),
                        limit_requests: limits.rpm,
                        remaining_requests: limits.rpm.map(|l| l.saturating_sub(requests)),
                        limit_tokens: limits.tpm,
                        remaining_tokens: limits.tpm.map(|l| l.saturating_sub(tokens)),
                        window_resets_at: window_start + window_ms,
                    });
                }
            }
            Some(Admission::Granted(Reservation {
                id,
                expires_at,
                held: held.into(),
                headroom,
                local: false,
            }))
        }
        0 => {
            let index = usize::try_from(int(reply.get(1)?)?).ok()?.checked_sub(1)?;
            let scope = scopes.get(index)?;
            let (a, b) = (int(reply.get(3)?)?, int(reply.get(4)?)?);
            let limits = &scope.limits;
            let rate = |kind: RateKind, limit: Option<u64>, used: i64, retry_at: i64| {
                let limit = limit?;
                Some(Refusal::Rate {
                    scope: scope.id.clone(),
                    kind,
                    limit,
                    remaining: if kind == RateKind::Parallel {
                        0
                    } else {
                        limit.saturating_sub(u64::try_from(used).unwrap_or(0))
                    },
                    retry_at,
                })
            };
            let refusal = match int(reply.get(2)?)? {
                1 => Refusal::Budget {
                    scope: scope.id.clone(),
                    spent: NanoUsd(a),
                    reserved: NanoUsd(b),
                    requested: demand.cost,
                    max: limits.budget?.max,
                },
                2 => rate(RateKind::Requests, limits.rpm, a, b + window_ms)?,
                3 => rate(RateKind::Tokens, limits.tpm, a, b + window_ms)?,
                4 => rate(RateKind::Parallel, limits.max_parallel, a, now + 1_000)?,
                _ => return None,
            };
            Some(Admission::Refused(refusal))
        }
        _ => None,
    }
}

impl Limiter for RedisLimiter {
    fn reserve<'a>(
        &'a self,
        scopes: &'a [Scope],
        demand: Demand,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Admission, LimiterError>> {
        Box::pin(self.reserve_shared(scopes, demand, now_ms))
    }

    fn settle<'a>(
        &'a self,
        reservation: &'a Reservation,
        actual: Demand,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), LimiterError>> {
        Box::pin(self.settle_shared(reservation, actual, now_ms))
    }

    fn reseed<'a>(&'a self, scope: &'a ScopeId) -> BoxFuture<'a, Result<(), LimiterError>> {
        Box::pin(self.reseed_shared(scope))
    }
}
