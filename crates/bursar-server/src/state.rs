//! Application state, built once at startup and cheap to clone.

use crate::auth::AuthCache;
use crate::end_users::EndUserCache;
use bursar_core::config::Config;
use bursar_core::keys::Secret;
use bursar_core::models::Catalog;
use bursar_limits::{Limiter, MemoryLimiter};
use bursar_providers::Router;
use bursar_store::{Ledger, Store};
use std::sync::Arc;

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
    catalog: Catalog,
    ledger: Option<Ledger>,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        router: Router,
        master_key: Option<Secret>,
        ledger: Option<Ledger>,
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
                limiter: Arc::new(MemoryLimiter::default()),
                config,
                store,
                router,
                auth: AuthCache::default(),
                end_users: EndUserCache::default(),
                master_key,
                ledger,
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

    /// The served models, their access groups and providers, for model access checks.
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
