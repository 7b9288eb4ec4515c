//! Spend analytics: `*/daily/activity` (LiteLLM's `SpendAnalyticsPaginatedResponse`, read
//! from the pre-aggregated daily tables, never from spend logs), `/spend/logs` and the
//! admin-only `/global/spend/*` reports.

use super::scope::{self, member_id};
use super::{Page, bad_field};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use bursar_core::roles::UserRole;
use bursar_store::{DailyEntity, DailyMetrics, DailyPage, DailyQuery, DailyRow, KeyRow};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

/// Query parameters of every `*/daily/activity` route (each reads its own entity filter).
#[derive(Debug, Default, Deserialize)]
pub struct DailyParams {
    start_date: Option<String>,
    end_date: Option<String>,
    model: Option<String>,
    api_key: Option<String>,
    page: Option<String>,
    page_size: Option<String>,
    user_id: Option<String>,
    team_ids: Option<String>,
    exclude_team_ids: Option<String>,
    organization_ids: Option<String>,
    tags: Option<String>,
    end_user_ids: Option<String>,
    /// Accepted for compatibility; days are UTC.
    #[allow(dead_code)]
    timezone: Option<String>,
}

/// Admins (and admin viewers) read everything.
fn reads_all(principal: &Principal) -> bool {
    principal.is_proxy_admin() || principal.role() == UserRole::ProxyAdminViewer
}

fn list(value: Option<&str>) -> Option<Vec<String>> {
    let items: Vec<String> = value?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    (!items.is_empty()).then_some(items)
}

fn number(field: &str, value: Option<&str>) -> Result<Option<u32>, ApiError> {
    value
        .map(|v| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| bad_field(field, format!("{field} must be a positive integer")))
        })
        .transpose()
}

/// `YYYY-MM-DD`, checked.
fn date(field: &str, value: &str) -> Result<String, ApiError> {
    let ms = bursar_core::time::parse_ms(value)
        .filter(|_| value.len() == 10)
        .ok_or_else(|| bad_field(field, format!("{field} must use YYYY-MM-DD format")))?;
    Ok(bursar_core::time::format_date(ms))
}

impl DailyParams {
    /// The date range, paging and common filters of a query on `entity`.
    fn query(&self, entity: DailyEntity, default_size: u32) -> Result<DailyQuery, ApiError> {
        let (Some(start), Some(end)) = (self.start_date.as_deref(), self.end_date.as_deref())
        else {
            return Err(ApiError::bad_request(
                "Please provide start_date and end_date",
            ));
        };
        let (start, end) = (date("start_date", start)?, date("end_date", end)?);
        if end < start {
            return Err(bad_field(
                "end_date",
                "end_date must be on or after start_date",
            ));
        }
        let page = Page::parse(
            number("page", self.page.as_deref())?,
            number("page_size", self.page_size.as_deref())?,
            "page_size",
            default_size,
            1_000,
        )?;
        Ok(DailyQuery {
            entity,
            entity_ids: None,
            exclude_entity_ids: Vec::new(),
            start_date: Some(start),
            end_date: Some(end),
            model: self.model.clone().filter(|m| !m.is_empty()),
            api_key: self
                .api_key
                .as_deref()
                .filter(|k| !k.is_empty())
                .map(key_hash),
            api_keys: None,
            page: u64::from(page.page),
            page_size: u64::from(page.size),
        })
    }
}

/// A raw `sk-` key is hashed; a hash is taken as is.
fn key_hash(key: &str) -> String {
    if key.starts_with(bursar_core::keys::KEY_PREFIX) {
        bursar_core::keys::hash_key(key)
    } else {
        key.to_string()
    }
}

/// The caller's own keys: what a non-admin is limited to.
async fn own_keys(state: &AppState, principal: &Principal) -> Result<Vec<String>, ApiError> {
    match member_id(principal) {
        Some(user) => Ok(state.store().keys().tokens_of_user(user).await?),
        None => Ok(Vec::new()),
    }
}

pub async fn user_daily(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<Value>, ApiError> {
    let mut q = params.query(DailyEntity::User, 50)?;
    q.entity_ids = if reads_all(&principal) {
        params
            .user_id
            .clone()
            .filter(|u| !u.is_empty())
            .map(|u| vec![u])
    } else {
        // Everyone else sees their own activity only.
        Some(
            member_id(&principal)
                .map(str::to_string)
                .into_iter()
                .collect(),
        )
    };
    respond(&state, q).await
}

pub async fn team_daily(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<Value>, ApiError> {
    let mut q = params.query(DailyEntity::Team, 10)?;
    q.exclude_entity_ids = list(params.exclude_team_ids.as_deref()).unwrap_or_default();
    let asked = list(params.team_ids.as_deref());
    if reads_all(&principal) {
        q.entity_ids = asked;
        return respond(&state, q).await;
    }
    // Members see their teams; all of a team's keys only as its admin (or an org admin), or
    // when the team grants `/team/daily/activity` to members; else their own keys.
    let user = member_id(&principal).unwrap_or_default().to_string();
    let memberships = state.store().teams().memberships_of(&user).await?;
    let mine: Vec<String> = memberships.iter().map(|(t, _)| t.clone()).collect();
    let selected = match asked {
        Some(asked) => {
            if let Some(foreign) = asked.iter().find(|t| !mine.contains(t)) {
                return Err(ApiError::forbidden(format!(
                    "User={user} is not a member of team={foreign}; only proxy admins can view other teams' activity"
                )));
            }
            asked
        }
        None => mine,
    };
    let mut sees_all_keys = !selected.is_empty();
    for team_id in &selected {
        let Some(team) = state.store().teams().find(team_id).await? else {
            continue;
        };
        let access = scope::TeamAccess::of(&state, &principal, &team).await?;
        let granted = team
            .team_member_permissions
            .iter()
            .any(|p| p == "/team/daily/activity");
        sees_all_keys &= access.manages() || granted;
    }
    q.entity_ids = Some(selected);
    if !sees_all_keys {
        q.api_keys = Some(own_keys(&state, &principal).await?);
    }
    respond(&state, q).await
}

pub async fn org_daily(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<Value>, ApiError> {
    let mut q = params.query(DailyEntity::Organization, 10)?;
    let asked = list(params.organization_ids.as_deref());
    if reads_all(&principal) {
        q.entity_ids = asked;
        return respond(&state, q).await;
    }
    let administered = scope::admin_org_ids(&state, &principal).await?;
    if administered.is_empty() {
        return Err(ApiError::forbidden(
            "Only proxy admins or organization admins can view organization activity",
        ));
    }
    if let Some(foreign) = asked.iter().flatten().find(|o| !administered.contains(o)) {
        return Err(ApiError::forbidden(format!(
            "User is not an admin of organization={foreign}"
        )));
    }
    q.entity_ids = Some(asked.unwrap_or(administered));
    respond(&state, q).await
}

pub async fn tag_daily(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<Value>, ApiError> {
    let mut q = params.query(DailyEntity::Tag, 10)?;
    q.entity_ids = list(params.tags.as_deref());
    if !reads_all(&principal) {
        q.api_keys = Some(own_keys(&state, &principal).await?);
    }
    respond(&state, q).await
}

pub async fn customer_daily(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<Value>, ApiError> {
    let mut q = params.query(DailyEntity::EndUser, 10)?;
    q.entity_ids = list(params.end_user_ids.as_deref());
    if !reads_all(&principal) {
        q.api_keys = Some(own_keys(&state, &principal).await?);
    }
    respond(&state, q).await
}

async fn respond(state: &AppState, q: DailyQuery) -> Result<Json<Value>, ApiError> {
    let page = state.store().spend().daily(&q).await?;
    let mut hashes: Vec<String> = page.rows.iter().map(|r| r.api_key.clone()).collect();
    hashes.sort();
    hashes.dedup();
    let keys: HashMap<String, KeyRow> = state
        .store()
        .keys()
        .find_many(&hashes)
        .await?
        .into_iter()
        .map(|k| (k.token.clone(), k))
        .collect();
    let mut entity_meta: HashMap<String, Value> = HashMap::new();
    if q.entity == DailyEntity::Team {
        for row in &page.rows {
            if !entity_meta.contains_key(&row.entity_id)
                && let Some(team) = state.store().teams().find(&row.entity_id).await?
            {
                entity_meta.insert(
                    row.entity_id.clone(),
                    json!({"team_alias": team.team_alias}),
                );
            }
        }
    }
    Ok(Json(analytics(&q, &page, &keys, &entity_meta)))
}

/// LiteLLM's `SpendMetrics`.
fn metrics_json(m: &DailyMetrics) -> Value {
    json!({
        "spend": m.spend.as_usd(),
        "flat_cost": 0.0,
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.completion_tokens,
        "cache_read_input_tokens": m.cache_read_input_tokens,
        "cache_creation_input_tokens": m.cache_creation_input_tokens,
        "compression_saved_tokens": 0,
        "compression_savings_spend": 0.0,
        "prompt_caching_savings_spend": 0.0,
        "gateway_injected_caching_savings_spend": 0.0,
        "autorouter_savings_spend": 0.0,
        "total_tokens": m.total_tokens(),
        "successful_requests": m.successful_requests,
        "failed_requests": m.failed_requests,
        "api_requests": m.api_requests,
        "total_response_time_ms": m.total_response_time_ms,
        "timed_requests": m.api_requests,
    })
}

fn key_metadata(hash: &str, keys: &HashMap<String, KeyRow>) -> Value {
    match keys.get(hash) {
        Some(k) => json!({
            "key_alias": k.key_alias,
            "team_id": k.team_id,
            "user_id": k.user_id,
            "key_exists": true,
        }),
        None => json!({"key_alias": null, "team_id": null, "user_id": null, "key_exists": false}),
    }
}

/// One breakdown entry: metrics, metadata, and per-key metrics underneath.
#[derive(Default)]
struct Bucket {
    metrics: DailyMetrics,
    keys: BTreeMap<String, DailyMetrics>,
}

impl Bucket {
    fn add(&mut self, row: &DailyRow) {
        self.metrics.add(&row.metrics);
        self.keys
            .entry(row.api_key.clone())
            .or_default()
            .add(&row.metrics);
    }

    fn json(&self, metadata: Value, keys: &HashMap<String, KeyRow>) -> Value {
        let breakdown: Map<String, Value> = self
            .keys
            .iter()
            .map(|(hash, m)| {
                (
                    hash.clone(),
                    json!({"metrics": metrics_json(m), "metadata": key_metadata(hash, keys)}),
                )
            })
            .collect();
        json!({"metrics": metrics_json(&self.metrics), "metadata": metadata, "api_key_breakdown": breakdown})
    }
}

#[derive(Default)]
struct Day {
    metrics: DailyMetrics,
    models: BTreeMap<String, Bucket>,
    model_groups: BTreeMap<String, Bucket>,
    providers: BTreeMap<String, Bucket>,
    endpoints: BTreeMap<String, Bucket>,
    entities: BTreeMap<String, Bucket>,
    api_keys: BTreeMap<String, DailyMetrics>,
}

/// Groups a page of daily rows by date (newest first) into LiteLLM's response.
fn analytics(
    q: &DailyQuery,
    page: &DailyPage,
    keys: &HashMap<String, KeyRow>,
    entity_meta: &HashMap<String, Value>,
) -> Value {
    let mut days: BTreeMap<&str, Day> = BTreeMap::new();
    for row in &page.rows {
        let day = days.entry(row.date.as_str()).or_default();
        day.metrics.add(&row.metrics);
        day.models.entry(row.model.clone()).or_default().add(row);
        day.model_groups
            .entry(row.model_group.clone())
            .or_default()
            .add(row);
        day.providers
            .entry(row.provider.clone())
            .or_default()
            .add(row);
        day.endpoints
            .entry(row.endpoint.clone())
            .or_default()
            .add(row);
        day.entities
            .entry(row.entity_id.clone())
            .or_default()
            .add(row);
        day.api_keys
            .entry(row.api_key.clone())
            .or_default()
            .add(&row.metrics);
    }
    let group = |buckets: &BTreeMap<String, Bucket>, meta: &dyn Fn(&str) -> Value| -> Value {
        Value::Object(
            buckets
                .iter()
                .map(|(name, b)| (name.clone(), b.json(meta(name), keys)))
                .collect(),
        )
    };
    let empty = |_: &str| json!({});
    let entity = |id: &str| entity_meta.get(id).cloned().unwrap_or_else(|| json!({}));
    let results: Vec<Value> = days
        .iter()
        .rev()
        .map(|(date, d)| {
            let api_keys: Map<String, Value> = d
                .api_keys
                .iter()
                .map(|(hash, m)| {
                    (
                        hash.clone(),
                        json!({"metrics": metrics_json(m), "metadata": key_metadata(hash, keys)}),
                    )
                })
                .collect();
            json!({
                "date": date,
                "metrics": metrics_json(&d.metrics),
                "breakdown": {
                    "models": group(&d.models, &empty),
                    "model_groups": group(&d.model_groups, &empty),
                    "mcp_servers": {},
                    "providers": group(&d.providers, &empty),
                    "endpoints": group(&d.endpoints, &empty),
                    "api_keys": api_keys,
                    "entities": group(&d.entities, &entity),
                }
            })
        })
        .collect();
    let t = &page.totals;
    let total_pages = page.total_rows.div_ceil(q.page_size.max(1)).max(1);
    json!({
        "results": results,
        "metadata": {
            "total_spend": t.spend.as_usd(),
            "total_flat_cost": 0.0,
            "total_prompt_tokens": t.prompt_tokens,
            "total_completion_tokens": t.completion_tokens,
            "total_tokens": t.total_tokens(),
            "total_api_requests": t.api_requests,
            "total_successful_requests": t.successful_requests,
            "total_failed_requests": t.failed_requests,
            "total_cache_read_input_tokens": t.cache_read_input_tokens,
            "total_cache_creation_input_tokens": t.cache_creation_input_tokens,
            "total_compression_saved_tokens": 0,
            "total_compression_savings_spend": 0.0,
            "total_prompt_caching_savings_spend": 0.0,
            "total_gateway_injected_caching_savings_spend": 0.0,
            "total_autorouter_savings_spend": 0.0,
            "total_response_time_ms": t.total_response_time_ms,
            "total_timed_requests": t.api_requests,
            "page": q.page,
            "total_pages": total_pages,
            "has_more": q.page.saturating_mul(q.page_size) < page.total_rows,
            "api_key_limit": null,
            "total_api_keys": null,
        }
    })
}
