//! Application state, built once at startup and cheap to clone.

use crate::auth::AuthCache;
use crate::end_users::EndUserCache;
use crate::invalidation::{Broadcast, Invalidation};
use bursar_core::config::Config;
use bursar_core::keys::Secret;
use bursar_core::models::Catalog;
use bursar_limits::{FailMode, Health, Limiter, MemoryLimiter};
use bursar_providers::Router;
use bursar_store::{Ledger, Store};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Store,
    router: Router,
    auth: AuthCache,
    end_users: EndUserCache,
    master_key: Option<Secret>,
    limiter: Arc<dyn Limiter>,
    admission: AdmissionStatus,
    instance_id: String,
    counters: Counters,
    catalog: Catalog,
    ledger: Option<Ledger>,
    /// Cancelled at shutdown's drain deadline: open streams end with an error frame.
    drain: tokio_util::sync::CancellationToken,
}

/// How this instance shares limits and cache invalidations with the others.
pub struct Cluster {
    pub limiter: Arc<dyn Limiter>,
    pub admission: AdmissionStatus,
    /// Where management writes announce what they changed.
    pub broadcast: Broadcast,
    /// This process's id among the instances (leases, skipping its own broadcasts).
    pub instance_id: String,
}

impl Cluster {
    /// A lone instance: in-process counters, nothing broadcast.
    pub fn single() -> Cluster {
        Cluster {
            limiter: Arc::new(MemoryLimiter::default()),
            admission: AdmissionStatus::default(),
            broadcast: Broadcast::default(),
            instance_id: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

/// What this instance did, for `/metrics`.
#[derive(Default)]
pub struct Counters {
    /// Passes of the budget reset job this instance ran (as the lease holder).
    pub reset_runs: AtomicU64,
    /// Budgets (keys, users, teams, budget rows) this instance reset.
    pub budgets_reset: AtomicU64,
    /// Invalidations received from other instances.
    pub invalidations_received: AtomicU64,
    /// Connections refused because `max_connections` were open.
    pub connections_refused: AtomicU64,
}

/// The admission backend's state, for `/health/readiness` and `/metrics`.
#[derive(Clone, Default)]
pub struct AdmissionStatus {
    /// `None` for the in-process backend.
    pub redis: Option<RedisStatus>,
}

#[derive(Clone)]
pub struct RedisStatus {
    pub health: Health,
    pub fail_mode: FailMode,
    /// Requests admitted on per-instance counters while Redis was unreachable.
    pub fallbacks: Arc<AtomicU64>,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        router: Router,
        master_key: Option<Secret>,
        ledger: Option<Ledger>,
        cluster: Cluster,
    ) -> AppState {
        let catalog = Catalog::new(config.models.iter().map(|d| {
            (
                d.model_name.as_str(),
                d.litellm_model.as_str(),
                d.access_groups.as_slice(),
            )
        }));
        AppState {
            inner: Arc::new(Inner {
                catalog,
                limiter: cluster.limiter,
                admission: cluster.admission,
                instance_id: cluster.instance_id,
                counters: Counters::default(),
                config,
                store,
                router,
                auth: AuthCache::new(cluster.broadcast.clone()),
                end_users: EndUserCache::new(cluster.broadcast),
                master_key,
                ledger,
                drain: tokio_util::sync::CancellationToken::new(),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    pub fn auth_cache(&self) -> &AuthCache {
        &self.inner.auth
    }

    pub fn end_users(&self) -> &EndUserCache {
        &self.inner.end_users
    }

    pub fn limiter(&self) -> &Arc<dyn Limiter> {
        &self.inner.limiter
    }

    pub fn admission_status(&self) -> &AdmissionStatus {
        &self.inner.admission
    }

    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Drops what another instance changed from this instance's caches.
    pub async fn forget(&self, change: &Invalidation) {
        let auth = self.auth_cache();
        match change {
            Invalidation::Key(token) => auth.forget(token).await,
            Invalidation::Team(team) => auth.forget_team(team),
            Invalidation::EndUser(id) => self.end_users().forget(id).await,
            Invalidation::All => {
                auth.forget_all();
                self.end_users().forget_all();
            }
        }
    }

    /// The served models, their access groups and providers, for model access checks.
    /// The token that ends every open stream (cancelled when shutdown stops waiting).
    pub fn drain(&self) -> &tokio_util::sync::CancellationToken {
        &self.inner.drain
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The spend ledger every settled request is recorded in (`None` records nothing).
    pub fn ledger(&self) -> Option<&Ledger> {
        self.inner.ledger.as_ref()
    }

    pub fn master_key(&self) -> Option<&Secret> {
        self.inner.master_key.as_ref()
    }
}
