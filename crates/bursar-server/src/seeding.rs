//! Exact spend for budgets that Redis has no counters for (a scope's first use, or counters
//! lost with a Redis restart): read from the store at that moment, rather than taken from
//! the figure a request's cached snapshot carries, which lags whatever was written since.

use bursar_core::money::NanoUsd;
use bursar_limits::{BoxFuture, LimiterError, ScopeId, ScopeKind, SpendSource};
use bursar_store::{Store, StoreError};

/// The store as a [`SpendSource`].
pub struct StoreSpend(pub Store);

impl StoreSpend {
    async fn read(&self, scope: &ScopeId) -> Result<Option<NanoUsd>, StoreError> {
        let store = &self.0;
        let id: &str = &scope.value;
        Ok(match scope.kind {
            ScopeKind::ApiKey => store.keys().find_by_hash(id).await?.map(|k| k.spend),
            ScopeKind::User => store.users().find(id).await?.map(|u| u.spend),
            ScopeKind::Team => store.teams().find(id).await?.map(|t| t.spend),
            ScopeKind::TeamMember => match id.split_once(':') {
                Some((team, user)) => store.teams().member(team, user).await?.map(|m| m.spend),
                None => None,
            },
            ScopeKind::Organization => store.orgs().find(id).await?.map(|o| o.spend),
            ScopeKind::EndUser => store.end_users().find(id).await?.map(|e| e.spend),
            // Per-model spend lives in JSON next to the key or team; the request's figure
            // serves.
            ScopeKind::ModelPerKey | ScopeKind::ModelPerTeam => None,
        })
    }
}

impl SpendSource for StoreSpend {
    fn spend<'a>(
        &'a self,
        scope: &'a ScopeId,
    ) -> BoxFuture<'a, Result<Option<NanoUsd>, LimiterError>> {
        Box::pin(async move {
            self.read(scope).await.map_err(|e| {
                LimiterError(format!("cannot read the recorded spend of {scope}: {e}"))
            })
        })
    }
}
