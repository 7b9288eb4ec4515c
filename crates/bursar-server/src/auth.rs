//! Authentication: reading the presented key, resolving it to a [`Principal`] from an
//! in-memory cache, and the middleware that puts the principal on every protected request.
//!
//! Steady state costs no database query: snapshots are cached by key hash, a miss is loaded
//! once (concurrent misses for the same key share one query), unknown keys are remembered
//! briefly, and [`AuthCache::invalidate`] is the hook every management write calls.

use crate::error::ApiError;
use crate::invalidation::{Broadcast, Invalidation};
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use bursar_core::access;
use bursar_core::keys::{KEY_PREFIX, Secret, hash_key, mask_key};
use bursar_core::roles::UserRole;
use bursar_store::{KeyRow, OrgRow, Store, StoreError, TeamRow, UserRow};
use std::sync::Arc;
use std::time::Duration;

/// Routes that need no key: liveness and readiness probes.
pub const PUBLIC_ROUTES: &[&str] = &[
    "/health/liveliness",
    "/health/liveness",
    "/health/readiness",
    "/metrics",
    "/routes",
];

/// LiteLLM's user id for the master key.
pub const PROXY_ADMIN_USER_ID: &str = "default_user_id";

/// Who is calling, as resolved from the presented key.
#[derive(Debug, Clone)]
pub enum Principal {
    MasterKey,
    VirtualKey(Arc<KeySnapshot>),
}

/// Everything the request path needs to know about a virtual key, loaded once.
#[derive(Debug, Clone)]
pub struct KeySnapshot {
    pub key: KeyRow,
    pub role: UserRole,
    /// Set when the presented secret is an old one of a rotated key: it works until then.
    pub valid_until: Option<i64>,
    /// Set when the key's team is blocked: the key is refused with this team id.
    pub blocked_team: Option<String>,
    pub user: Option<UserRow>,
    pub team: Option<TeamRow>,
    pub org: Option<OrgRow>,
    /// The team member's own `allowed_models` (membership budget), empty = the team's.
    pub member_models: Vec<String>,
    /// Every budget and limit scope of this key (key, user, team, member, organization),
    /// with the store's spend figures as of loading.
    pub scopes: Vec<bursar_limits::Scope>,
}

impl KeySnapshot {
    /// The model lists that decide what this key may call.
    pub fn grants(&self) -> bursar_core::models::Grants<'_> {
        bursar_core::models::Grants {
            key: &self.key.models,
            team: self.team.as_ref().map(|t| t.models.as_slice()),
            member: &self.member_models,
            user: self.user.as_ref().map(|u| u.models.as_slice()),
            org: self.org.as_ref().map(|o| o.models.as_slice()),
        }
    }
}

impl Principal {
    pub fn role(&self) -> UserRole {
        match self {
            Principal::MasterKey => UserRole::ProxyAdmin,
            Principal::VirtualKey(snapshot) => snapshot.role,
        }
    }

    pub fn is_proxy_admin(&self) -> bool {
        self.role().is_proxy_admin()
    }

    pub fn user_id(&self) -> Option<&str> {
        match self {
            Principal::MasterKey => Some(PROXY_ADMIN_USER_ID),
            Principal::VirtualKey(snapshot) => snapshot.key.user_id.as_deref(),
        }
    }

    /// The key hash used for attribution (`litellm_proxy_master_key` for the master key).
    pub fn api_key_hash(&self) -> &str {
        match self {
            Principal::MasterKey => "litellm_proxy_master_key",
            Principal::VirtualKey(snapshot) => &snapshot.key.token,
        }
    }
}

/// Cache of principal snapshots keyed by key hash. The `invalidate*` methods drop entries
/// here and broadcast the same to the other instances; `forget*` only drop them here.
///
/// A snapshot is fresh for [`SNAPSHOT_TTL`]; after that the next request reloads it (others
/// keep using it meanwhile). While the database is unreachable, snapshots are served as
/// they were last loaded, for up to [`STALE_LIMIT`], and loads fail at once (no pool wait)
/// until a background probe finds the database again.
pub struct AuthCache {
    found: moka::future::Cache<String, Arc<Cached>>,
    missing: moka::future::Cache<String, ()>,
    broadcast: Broadcast,
    database: Arc<DatabaseState>,
    /// Bumped by every `forget*`: a background refresh that started before a write does
    /// not put its (possibly older) result back.
    generations: Arc<std::sync::atomic::AtomicU64>,
}

/// A snapshot with when it was loaded and whether a reload is under way.
struct Cached {
    snapshot: Arc<KeySnapshot>,
    loaded: std::time::Instant,
    refreshing: std::sync::atomic::AtomicBool,
}

impl Cached {
    fn new(snapshot: Arc<KeySnapshot>) -> Arc<Cached> {
        Arc::new(Cached {
            snapshot,
            loaded: std::time::Instant::now(),
            refreshing: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// Whether the database is known to be unreachable, and the probe that finds it again.
#[derive(Default)]
pub struct DatabaseState {
    down: std::sync::atomic::AtomicBool,
    probing: std::sync::atomic::AtomicBool,
}

impl DatabaseState {
    pub fn is_down(&self) -> bool {
        self.down.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records a failure to reach the database and starts the probe (once).
    fn failed(self: &Arc<Self>, store: &Store) {
        use std::sync::atomic::Ordering;
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::error!(
                "the database is unreachable: serving cached keys, refusing others with 503 until it answers"
            );
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (state, store) = (self.clone(), store.clone());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let answered = tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await;
                if matches!(answered, Ok(Ok(()))) {
                    state.down.store(false, Ordering::Release);
                    state.probing.store(false, Ordering::Release);
                    tracing::info!("the database answers again");
                    return;
                }
            }
        });
    }
}

/// How long a loaded snapshot is fresh: what bounds staleness when an invalidation is missed.
const SNAPSHOT_TTL: Duration = Duration::from_secs(60);
/// How long a snapshot may still be served while the database is unreachable.
const STALE_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// How long an unknown key is remembered as unknown.
const MISSING_TTL: Duration = Duration::from_secs(5);
/// How often, and how patiently, the probe tries an unreachable database.
const PROBE_EVERY: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl AuthCache {
    pub fn new(broadcast: Broadcast) -> AuthCache {
        AuthCache {
            found: moka::future::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(STALE_LIMIT)
                .support_invalidation_closures()
                .build(),
            missing: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(MISSING_TTL)
                .build(),
            broadcast,
            database: Arc::new(DatabaseState::default()),
            generations: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// Whether the database is known to be unreachable.
    pub fn database(&self) -> &DatabaseState {
        &self.database
    }

    /// The snapshot for a key hash, loading it from the store on a miss (see the type's
    /// docs for stale snapshots and an unreachable database).
    pub async fn resolve(
        &self,
        store: &Store,
        token: &str,
    ) -> Result<Option<Arc<KeySnapshot>>, StoreError> {
        use std::sync::atomic::Ordering;
        if let Some(cached) = self.found.get(token).await {
            let stale = cached.loaded.elapsed() >= SNAPSHOT_TTL;
            if stale && !self.database.is_down() && !cached.refreshing.swap(true, Ordering::AcqRel)
            {
                self.refresh(store, token, cached.clone());
            }
            return Ok(Some(cached.snapshot.clone()));
        }
        if self.missing.contains_key(token) {
            return Ok(None);
        }
        if self.database.is_down() {
            return Err(StoreError::Unavailable(
                "the database is unreachable".into(),
            ));
        }
        let loaded = self
            .found
            .try_get_with_by_ref(token, async {
                load_snapshot(store, token)
                    .await
                    .map(|s| Cached::new(Arc::new(s)))
            })
            .await;
        match loaded {
            Ok(cached) => Ok(Some(cached.snapshot.clone())),
            Err(e) => {
                match Arc::try_unwrap(e).unwrap_or_else(|shared| shared.as_ref().clone_shallow()) {
                    LoadError::NotFound => {
                        self.missing.insert(token.to_string(), ()).await;
                        Ok(None)
                    }
                    LoadError::Store(e) => {
                        if e.is_unavailable() {
                            self.database.failed(store);
                        }
                        Err(e)
                    }
                }
            }
        }
    }

    fn bump(&self) {
        self.generations
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Reloads a stale snapshot in the background; requests keep the old one meanwhile, so
    /// none waits on the database (nor on its timeout when it is unreachable).
    fn refresh(&self, store: &Store, token: &str, cached: Arc<Cached>) {
        use std::sync::atomic::Ordering;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (found, missing, database) = (
            self.found.clone(),
            self.missing.clone(),
            self.database.clone(),
        );
        let (store, token) = (store.clone(), token.to_string());
        let generation = self.generations.load(Ordering::Acquire);
        let generations = self.generations.clone();
        runtime.spawn(async move {
            let loaded = load_snapshot(&store, &token).await;
            // A write invalidated while this load ran: its result may predate the write.
            let current = generations.load(Ordering::Acquire) == generation;
            match loaded {
                Ok(snapshot) if current => {
                    found.insert(token, Cached::new(Arc::new(snapshot))).await;
                }
                Err(LoadError::NotFound) if current => {
                    found.invalidate(&token).await;
                    missing.insert(token, ()).await;
                }
                Err(LoadError::Store(e)) => {
                    cached.refreshing.store(false, Ordering::Release);
                    if e.is_unavailable() {
                        database.failed(&store);
                    } else {
                        tracing::warn!(error = %e, "could not refresh a cached key");
                    }
                }
                _ => cached.refreshing.store(false, Ordering::Release),
            }
        });
    }

    /// Forgets a key on every instance so the next request reloads it (management writes
    /// call this).
    pub async fn invalidate(&self, token: &str) {
        self.forget(token).await;
        self.broadcast.send(Invalidation::Key(token.to_string()));
    }

    /// Forgets every cached key of a team on every instance, so team changes (blocked,
    /// limits, models) apply on the keys' next request.
    pub fn invalidate_team(&self, team_id: &str) {
        self.forget_team(team_id);
        self.broadcast.send(Invalidation::Team(team_id.to_string()));
    }

    /// Forgets everything on every instance.
    pub fn invalidate_all(&self) {
        self.forget_all();
        self.broadcast.send(Invalidation::All);
    }

    /// Forgets a key on this instance.
    pub async fn forget(&self, token: &str) {
        self.bump();
        self.found.invalidate(token).await;
        self.missing.invalidate(token).await;
        // Old secrets of a rotated key are cached under their own hash but stand for this key.
        let active = token.to_string();
        if let Err(e) = self
            .found
            .invalidate_entries_if(move |_, cached| cached.snapshot.key.token == active)
        {
            tracing::warn!(error = %e, "could not invalidate rotated-key aliases; clearing the key cache");
            self.found.invalidate_all();
        }
    }

    /// Forgets every cached key of a team on this instance. One pass over the cache; no
    /// database read.
    pub fn forget_team(&self, team_id: &str) {
        self.bump();
        let team = team_id.to_string();
        if let Err(e) = self.found.invalidate_entries_if(move |_, cached| {
            cached.snapshot.key.team_id.as_deref() == Some(&team)
        }) {
            tracing::warn!(error = %e, "could not invalidate a team's keys; clearing the key cache");
            self.found.invalidate_all();
        }
    }

    pub fn forget_all(&self) {
        self.bump();
        self.found.invalidate_all();
        self.missing.invalidate_all();
    }
}

/// Loads everything the request path needs about one key: the key (or the key an old
/// rotated secret stands for), its owner, team, membership, organization and their budgets.
async fn load_snapshot(store: &Store, token: &str) -> Result<KeySnapshot, LoadError> {
    let now = bursar_store::now_ms();
    let (key, valid_until) = match store.keys().find_by_hash(token).await? {
        Some(key) => (key, None),
        // An old secret of a rotated key, inside its grace period.
        None => match store.keys().find_by_deprecated_hash(token, now).await? {
            Some((key, revoke_at)) => (key, Some(revoke_at)),
            None => return Err(LoadError::NotFound),
        },
    };
    let user = match &key.user_id {
        Some(user_id) => store.users().find(user_id).await?,
        None => None,
    };
    // The key acts with its owner's role; ownerless keys act as internal users.
    let role = user
        .as_ref()
        .and_then(|u| u.user_role.parse().ok())
        .unwrap_or(UserRole::InternalUser);
    let team = match &key.team_id {
        Some(team_id) => store.teams().find(team_id).await?,
        None => None,
    };
    let blocked_team = team
        .as_ref()
        .filter(|t| t.blocked)
        .map(|t| t.team_id.clone());
    let member = match (&team, &key.user_id) {
        (Some(team), Some(user_id)) => store.teams().member(&team.team_id, user_id).await?,
        _ => None,
    };
    // A member's own budget row, else the team's default member budget.
    let member_budget_id = member
        .as_ref()
        .and_then(|m| m.budget_id.clone())
        .or_else(|| {
            team.as_ref()
                .and_then(|t| t.metadata.get(bursar_store::MEMBER_BUDGET_KEY))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        });
    let member_budget = match (&member, member_budget_id) {
        (Some(_), Some(id)) => store.budgets().find(&id).await?,
        _ => None,
    };
    let org_id = team
        .as_ref()
        .and_then(|t| t.organization_id.clone())
        .or_else(|| key.organization_id.clone());
    let org = match &org_id {
        Some(id) => store.orgs().find(id).await?,
        None => None,
    };
    let org_budget = match org.as_ref().and_then(|o| o.budget_id.as_deref()) {
        Some(id) => store.budgets().find(id).await?,
        None => None,
    };
    let key_budget = match key.budget_id.as_deref() {
        Some(id) => store.budgets().find(id).await?,
        None => None,
    };
    let scopes = crate::admission::key_scopes(&crate::admission::Rows {
        key: &key,
        key_budget: key_budget.as_ref(),
        user: user.as_ref(),
        team: team.as_ref(),
        member: member.as_ref(),
        member_budget: member_budget.as_ref(),
        org: org.as_ref(),
        org_budget: org_budget.as_ref(),
        now,
    });
    Ok(KeySnapshot {
        role,
        valid_until,
        blocked_team,
        member_models: member_budget.map(|b| b.allowed_models).unwrap_or_default(),
        user,
        team,
        org,
        scopes,
        key,
    })
}

impl From<StoreError> for LoadError {
    fn from(e: StoreError) -> LoadError {
        LoadError::Store(e)
    }
}

enum LoadError {
    NotFound,
    Store(StoreError),
}

impl LoadError {
    /// Errors shared between concurrent waiters cannot be moved out; keep their text and
    /// whether the database was unreachable (that decides between 503 and 500).
    fn clone_shallow(&self) -> LoadError {
        match self {
            LoadError::NotFound => LoadError::NotFound,
            LoadError::Store(e) if e.is_unavailable() => {
                LoadError::Store(StoreError::Unavailable(e.to_string()))
            }
            LoadError::Store(e) => LoadError::Store(StoreError::Misconfigured(e.to_string())),
        }
    }
}

/// LiteLLM's user id for a key let through unverified while the database is unreachable.
pub const DB_UNAVAILABLE_FALLBACK_USER_ID: &str = "__db_unavailable_fallback__";

/// The principal of a key that could not be looked up (`allow_requests_on_db_unavailable`):
/// an internal user with no limits of its own, attributed to the key's hash. Never cached,
/// so the key is looked up for real once the database answers.
fn unverified_snapshot(token: String) -> KeySnapshot {
    KeySnapshot {
        key: KeyRow {
            token,
            key_name: Some("failed-to-connect-to-db".into()),
            user_id: Some(DB_UNAVAILABLE_FALLBACK_USER_ID.into()),
            ..KeyRow::default()
        },
        role: UserRole::InternalUser,
        valid_until: None,
        blocked_team: None,
        user: None,
        team: None,
        org: None,
        member_models: Vec::new(),
        scopes: Vec::new(),
    }
}

/// The credential presented, in LiteLLM's header precedence.
pub fn presented_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(value) = header("x-litellm-api-key") {
        return Ok(Some(strip_scheme(value).to_string()));
    }
    if let Some(value) = header("authorization") {
        return match ["Bearer ", "bearer ", "Basic ", "basic "]
            .iter()
            .find_map(|p| value.strip_prefix(p))
        {
            Some(key) => Ok(Some(key.trim().to_string())),
            None => Err(ApiError::unauthorized(
                "auth_error",
                "Malformed API Key passed in. Ensure Key has `Bearer ` prefix.",
            )),
        };
    }
    for name in ["api-key", "x-api-key"] {
        if let Some(value) = header(name) {
            return Ok(Some(value.to_string()));
        }
    }
    Ok(None)
}

fn strip_scheme(value: &str) -> &str {
    ["Bearer ", "bearer ", "Basic ", "basic "]
        .iter()
        .find_map(|p| value.strip_prefix(p))
        .unwrap_or(value)
        .trim()
}

/// Resolves a presented key to a principal, applying the checks every route shares.
pub async fn authenticate(
    state: &AppState,
    presented: Option<String>,
) -> Result<Principal, ApiError> {
    let Some(key) = presented else {
        return Err(ApiError::unauthorized(
            "auth_error",
            "Authentication Error, No api key passed in.",
        ));
    };
    if state.master_key().is_some_and(|m: &Secret| m.matches(&key)) {
        return Ok(Principal::MasterKey);
    }
    if !key.starts_with(KEY_PREFIX) {
        return Err(ApiError::unauthorized(
            "auth_error",
            format!(
                "Authentication Error, LiteLLM Virtual Key expected. Received={}, expected to start with 'sk-'.",
                mask_key(&key)
            ),
        ));
    }
    let token = hash_key(&key);
    let resolved = match state.auth_cache().resolve(state.store(), &token).await {
        Err(e) if e.is_unavailable() && state.config().general.allow_requests_on_db_unavailable => {
            tracing::warn!(
                key = %bursar_core::keys::abbreviate_key(&key),
                "database unreachable: letting an uncached key through (allow_requests_on_db_unavailable)"
            );
            return Ok(Principal::VirtualKey(Arc::new(unverified_snapshot(token))));
        }
        Err(e) if e.is_unavailable() => {
            tracing::debug!(error = %e, "key lookup failed: the database is unreachable");
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "no_db_connection",
                "Service Unavailable, the authentication database is temporarily unreachable. Please retry shortly.",
            ));
        }
        Err(e) => return Err(e.into()),
        Ok(resolved) => resolved,
    };
    let Some(snapshot) = resolved else {
        return Err(ApiError::unauthorized(
            "token_not_found_in_db",
            format!(
                "Authentication Error, Invalid proxy server token passed. Received API Key = {}, Key Hash (Token) ={token}. Unable to find token in cache or `LiteLLM_VerificationTokenTable`",
                bursar_core::keys::abbreviate_key(&key)
            ),
        ));
    };
    if snapshot.key.blocked {
        return Err(ApiError::unauthorized(
            "auth_error",
            "Authentication Error, Key is blocked. Update via `/key/unblock` if you're admin.",
        ));
    }
    if let Some(team) = &snapshot.blocked_team {
        return Err(ApiError::unauthorized(
            "auth_error",
            format!(
                "Authentication Error, Team={team} is blocked. Update via `/team/unblock` if you're an admin."
            ),
        ));
    }
    if let Some(org) = snapshot.org.as_ref().filter(|o| o.blocked) {
        return Err(ApiError::unauthorized(
            "auth_error",
            format!(
                "Authentication Error, Organization={} is blocked. Update via `/organization/update` if you're an admin.",
                org.organization_id
            ),
        ));
    }
    if snapshot
        .valid_until
        .is_some_and(|until| until <= bursar_store::now_ms())
    {
        return Err(ApiError::unauthorized(
            "auth_error",
            "Authentication Error, this key was rotated and its grace period has ended.",
        ));
    }
    if let Some(expires) = snapshot.key.expires_at
        && expires <= bursar_store::now_ms()
    {
        return Err(ApiError::unauthorized(
            "expired_key",
            format!(
                "Authentication Error - Expired Key. Key Expiry time {expires} and current time {}",
                bursar_store::now_ms()
            ),
        ));
    }
    Ok(Principal::VirtualKey(snapshot))
}

/// Middleware for every non-public route: authenticates, checks the route against the
/// caller's role and the key's `allowed_routes`, and stores the [`Principal`].
pub async fn require_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = presented_key(request.headers())?;
    let principal = authenticate(&state, presented).await?;
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_string(),
        |m| m.as_str().to_string(),
    );
    let read_only = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    access::check_route(principal.role(), read_only, &route, principal.user_id())
        .map_err(denied)?;
    if let Principal::VirtualKey(snapshot) = &principal
        && !access::key_may_call(&snapshot.key.allowed_routes, &route)
    {
        return Err(denied(access::key_route_denied(
            &snapshot.key.allowed_routes,
            &route,
        )));
    }
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

fn denied(d: access::RouteDenied) -> ApiError {
    let status =
        axum::http::StatusCode::from_u16(d.status).unwrap_or(axum::http::StatusCode::FORBIDDEN);
    ApiError::new(status, "auth_error", d.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn header_precedence_follows_litellm() {
        let h = headers(&[
            ("authorization", "Bearer sk-auth"),
            ("x-litellm-api-key", "sk-litellm"),
            ("api-key", "sk-azure"),
        ]);
        assert_eq!(presented_key(&h).unwrap().as_deref(), Some("sk-litellm"));
        let h = headers(&[("authorization", "Bearer sk-auth"), ("api-key", "sk-azure")]);
        assert_eq!(presented_key(&h).unwrap().as_deref(), Some("sk-auth"));
        let h = headers(&[("api-key", "sk-azure")]);
        assert_eq!(presented_key(&h).unwrap().as_deref(), Some("sk-azure"));
        let h = headers(&[("x-litellm-api-key", "Bearer sk-x")]);
        assert_eq!(presented_key(&h).unwrap().as_deref(), Some("sk-x"));
        assert_eq!(presented_key(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn authorization_without_a_scheme_is_malformed() {
        let err = presented_key(&headers(&[("authorization", "sk-raw")])).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::UNAUTHORIZED);
        assert!(err.message.contains("Bearer"));
    }
}
