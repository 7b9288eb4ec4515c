//! Spend analytics: `*/daily/activity` (LiteLLM's `SpendAnalyticsPaginatedResponse`, read
//! from the pre-aggregated daily tables, never from spend logs), `/spend/logs` and the
//! admin-only `/global/spend/*` reports.

pub mod activity;
pub mod dto;

use super::scope::{self, member_id};
use super::{Page, bad_field};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use bursar_core::NanoUsd;
use bursar_core::roles::UserRole;
use bursar_store::{DailyEntity, DailyMetrics, DailyPage, DailyQuery, DailyRow, KeyRow};
use dto::{
    BreakdownMetrics, DailySpendData, DailySpendMetadata, GlobalKeySpend, GlobalModelSpend,
    GlobalTeamSpend, GroupDay, GroupDetail, GroupSpend, KeyCostReport, KeyMetadata,
    KeyMetricWithMetadata, MetricWithMetadata, ModelCost, SpendAnalyticsPaginatedResponse,
    SpendLog, SpendLogsDay, SpendLogsEntry, SpendLogsPage, SpendMetrics, SpendReportEntry,
    TeamTotalSpend,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use utoipa::IntoParams;

/// Query parameters of every `*/daily/activity` route (each reads its own entity filter).
/// How the daily activity routes document the parameters they share; [`DailyParams`] parses
/// them (as text, to name a bad value in LiteLLM's words) with each route's own.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct DailyRange {
    /// Start date, YYYY-MM-DD (required).
    start_date: Option<String>,
    /// End date, YYYY-MM-DD (required).
    end_date: Option<String>,
    /// Filter by model.
    model: Option<String>,
    /// Filter by key hash.
    api_key: Option<String>,
    /// Page number.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Days per page.
    #[param(minimum = 1, maximum = 1000)]
    page_size: Option<u32>,
}

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
    api_key_limit: Option<String>,
    offset: Option<String>,
    limit: Option<String>,
    search: Option<String>,
    model_group: Option<String>,
    by_model_group: Option<String>,
    export_type: Option<String>,
    format: Option<String>,
    exclude_organization_ids: Option<String>,
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
            start_date: Some(start),
            end_date: Some(end),
            model: self.model.clone().filter(|m| !m.is_empty()),
            api_key: self
                .api_key
                .as_deref()
                .filter(|k| !k.is_empty())
                .map(key_hash),
            page: u64::from(page.page),
            page_size: u64::from(page.size),
            ..DailyQuery::new(entity)
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

/// Daily spend and usage of the calling user (any user, for admins), with breakdowns.
#[utoipa::path(
    get,
    path = "/user/daily/activity",
    operation_id = "get_user_daily_activity",
    tag = crate::openapi::SPEND,
    tags = [crate::openapi::USERS],
    params(DailyRange,
        ("user_id" = Option<String>, Query, description = "Filter by user (admins)"),
        ("timezone" = Option<i64>, Query, description = "Accepted for compatibility; days are UTC"),),
    responses((status = 200, body = SpendAnalyticsPaginatedResponse)),
)]
pub async fn user_daily(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<SpendAnalyticsPaginatedResponse>, ApiError> {
    let q = scoped(&state, &principal, &params, DailyEntity::User).await?;
    respond(&state, q).await
}

/// Daily spend and usage of teams.
#[utoipa::path(
    get,
    path = "/team/daily/activity",
    operation_id = "get_team_daily_activity",
    tag = crate::openapi::TEAMS,
    params(DailyRange,
        ("team_ids" = Option<String>, Query, description = "Comma-separated team ids"),
        ("exclude_team_ids" = Option<String>, Query, description = "Comma-separated team ids to leave out"),),
    responses((status = 200, body = SpendAnalyticsPaginatedResponse)),
)]
pub async fn team_daily(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<SpendAnalyticsPaginatedResponse>, ApiError> {
    let q = scoped(&state, &principal, &params, DailyEntity::Team).await?;
    respond(&state, q).await
}

/// Daily spend and usage of organizations.
#[utoipa::path(
    get,
    path = "/organization/daily/activity",
    operation_id = "get_organization_daily_activity",
    tag = crate::openapi::ORGS,
    params(DailyRange,
        ("organization_ids" = Option<String>, Query, description = "Comma-separated organization ids"),),
    responses((status = 200, body = SpendAnalyticsPaginatedResponse)),
)]
pub async fn org_daily(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<SpendAnalyticsPaginatedResponse>, ApiError> {
    let q = scoped(&state, &principal, &params, DailyEntity::Organization).await?;
    respond(&state, q).await
}

/// The daily-activity query a caller may run for `entity`: the range and filters of
/// `params`, narrowed to what the caller may see (its own activity, its teams' — all keys
/// only as their admin or when the team grants it — or the organizations it administers).
async fn scoped(
    state: &AppState,
    principal: &Principal,
    params: &DailyParams,
    entity: DailyEntity,
) -> Result<DailyQuery, ApiError> {
    match entity {
        DailyEntity::User => {
            let mut q = params.query(DailyEntity::User, 50)?;
            q.entity_ids = if reads_all(principal) {
                params
                    .user_id
                    .clone()
                    .filter(|u| !u.is_empty())
                    .map(|u| vec![u])
            } else {
                // Everyone else sees their own activity only.
                Some(
                    member_id(principal)
                        .map(str::to_string)
                        .into_iter()
                        .collect(),
                )
            };
            Ok(q)
        }
        DailyEntity::Team => team_scope(state, principal, params).await,
        DailyEntity::Organization => org_scope(state, principal, params).await,
        other => params.query(other, 10),
    }
}

async fn team_scope(
    state: &AppState,
    principal: &Principal,
    params: &DailyParams,
) -> Result<DailyQuery, ApiError> {
    let mut q = params.query(DailyEntity::Team, 10)?;
    q.exclude_entity_ids = list(params.exclude_team_ids.as_deref()).unwrap_or_default();
    let asked = list(params.team_ids.as_deref());
    if reads_all(principal) {
        q.entity_ids = asked;
        return Ok(q);
    }
    // Members see their teams; all of a team's keys only as its admin (or an org admin), or
    // when the team grants `/team/daily/activity` to members; else their own keys.
    let user = member_id(principal).unwrap_or_default().to_string();
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
        let access = scope::TeamAccess::of(state, principal, &team).await?;
        let granted = team
            .team_member_permissions
            .iter()
            .any(|p| p == "/team/daily/activity");
        sees_all_keys &= access.manages() || granted;
    }
    q.entity_ids = Some(selected);
    if !sees_all_keys {
        q.api_keys = Some(own_keys(state, principal).await?);
    }
    Ok(q)
}

async fn org_scope(
    state: &AppState,
    principal: &Principal,
    params: &DailyParams,
) -> Result<DailyQuery, ApiError> {
    let mut q = params.query(DailyEntity::Organization, 10)?;
    q.exclude_entity_ids = list(params.exclude_organization_ids.as_deref()).unwrap_or_default();
    let asked = list(params.organization_ids.as_deref());
    if reads_all(principal) {
        q.entity_ids = asked;
        return Ok(q);
    }
    let administered = scope::admin_org_ids(state, principal).await?;
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
    Ok(q)
}

/// Daily spend and usage by request tag.
#[utoipa::path(
    get,
    path = "/tag/daily/activity",
    operation_id = "get_tag_daily_activity",
    tag = crate::openapi::TAGS,
    params(DailyRange,
        ("tags" = Option<String>, Query, description = "Comma-separated tags"),),
    responses((status = 200, body = SpendAnalyticsPaginatedResponse)),
)]
pub async fn tag_daily(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<SpendAnalyticsPaginatedResponse>, ApiError> {
    let mut q = params.query(DailyEntity::Tag, 10)?;
    q.entity_ids = list(params.tags.as_deref());
    if !reads_all(&principal) {
        q.api_keys = Some(own_keys(&state, &principal).await?);
    }
    respond(&state, q).await
}

/// Daily spend and usage of customers.
#[utoipa::path(
    get,
    path = "/customer/daily/activity",
    operation_id = "get_customer_daily_activity",
    tag = crate::openapi::CUSTOMERS,
    params(DailyRange,
        ("end_user_ids" = Option<String>, Query, description = "Comma-separated customer ids"),),
    responses((status = 200, body = SpendAnalyticsPaginatedResponse)),
)]
pub async fn customer_daily(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<SpendAnalyticsPaginatedResponse>, ApiError> {
    let mut q = params.query(DailyEntity::EndUser, 10)?;
    q.entity_ids = list(params.end_user_ids.as_deref());
    if !reads_all(&principal) {
        q.api_keys = Some(own_keys(&state, &principal).await?);
    }
    respond(&state, q).await
}

/// The keys with these hashes, by hash (for key metadata in reports).
async fn keys_by_hash(
    state: &AppState,
    hashes: &[String],
) -> Result<HashMap<String, KeyRow>, ApiError> {
    Ok(state
        .store()
        .keys()
        .find_many(hashes)
        .await?
        .into_iter()
        .map(|k| (k.token.clone(), k))
        .collect())
}

async fn respond(
    state: &AppState,
    q: DailyQuery,
) -> Result<Json<SpendAnalyticsPaginatedResponse>, ApiError> {
    let page = state.store().spend().daily(&q).await?;
    let mut hashes: Vec<String> = page.rows.iter().map(|r| r.api_key.clone()).collect();
    hashes.sort();
    hashes.dedup();
    let keys = keys_by_hash(state, &hashes).await?;
    let mut entity_meta: HashMap<String, Map<String, Value>> = HashMap::new();
    if q.entity == DailyEntity::Team {
        for row in &page.rows {
            if !entity_meta.contains_key(&row.entity_id)
                && let Some(team) = state.store().teams().find(&row.entity_id).await?
            {
                let mut meta = Map::new();
                meta.insert("team_alias".into(), Value::from(team.team_alias));
                entity_meta.insert(row.entity_id.clone(), meta);
            }
        }
    }
    Ok(Json(analytics(&q, &page, &keys, &entity_meta)))
}

fn key_metric(
    hash: &str,
    m: &DailyMetrics,
    keys: &HashMap<String, KeyRow>,
) -> KeyMetricWithMetadata {
    KeyMetricWithMetadata {
        metrics: SpendMetrics::new(m),
        metadata: KeyMetadata::new(hash, keys),
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

    fn show(
        &self,
        metadata: Map<String, Value>,
        keys: &HashMap<String, KeyRow>,
    ) -> MetricWithMetadata {
        MetricWithMetadata {
            metrics: SpendMetrics::new(&self.metrics),
            metadata,
            api_key_breakdown: self
                .keys
                .iter()
                .map(|(hash, m)| (hash.clone(), key_metric(hash, m, keys)))
                .collect(),
        }
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
    entity_meta: &HashMap<String, Map<String, Value>>,
) -> SpendAnalyticsPaginatedResponse {
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
    let group = |buckets: &BTreeMap<String, Bucket>,
                 meta: &dyn Fn(&str) -> Map<String, Value>|
     -> BTreeMap<String, MetricWithMetadata> {
        buckets
            .iter()
            .map(|(name, b)| (name.clone(), b.show(meta(name), keys)))
            .collect()
    };
    let empty = |_: &str| Map::new();
    let entity = |id: &str| entity_meta.get(id).cloned().unwrap_or_default();
    let results = days
        .iter()
        .rev()
        .map(|(date, d)| DailySpendData {
            date: date.to_string(),
            metrics: SpendMetrics::new(&d.metrics),
            breakdown: BreakdownMetrics {
                models: group(&d.models, &empty),
                model_groups: group(&d.model_groups, &empty),
                providers: group(&d.providers, &empty),
                endpoints: group(&d.endpoints, &empty),
                api_keys: d
                    .api_keys
                    .iter()
                    .map(|(hash, m)| (hash.clone(), key_metric(hash, m, keys)))
                    .collect(),
                entities: group(&d.entities, &entity),
                ..BreakdownMetrics::default()
            },
        })
        .collect();
    let total_pages = page.total_rows.div_ceil(q.page_size.max(1)).max(1);
    SpendAnalyticsPaginatedResponse {
        results,
        metadata: DailySpendMetadata::new(
            &page.totals,
            q.page,
            total_pages,
            q.page.saturating_mul(q.page_size) < page.total_rows,
        ),
    }
}

/// Raw spend-log rows returned at most by `/spend/logs` (LiteLLM returns every row, a scan
/// that has taken databases down; Bursar returns the newest ones).
const MAX_RAW_LOGS: u64 = 1_000;

/// How `/spend/logs` and `/spend/logs/v2` document the filters they share; [`LogParams`]
/// parses them.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct LogFilters {
    /// Filter by key (raw or hash).
    api_key: Option<String>,
    /// Filter by user.
    user_id: Option<String>,
    /// One request's log.
    request_id: Option<String>,
    /// Filter by team.
    team_id: Option<String>,
    /// Filter by customer.
    end_user: Option<String>,
    /// Filter by model.
    model: Option<String>,
    /// `success` or `failure`.
    status_filter: Option<String>,
    /// Only logs that spent at least this.
    min_spend: Option<f64>,
    /// Only logs that spent at most this.
    max_spend: Option<f64>,
    /// From this date or date-time.
    start_date: Option<String>,
    /// To this date or date-time.
    end_date: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LogParams {
    api_key: Option<String>,
    user_id: Option<String>,
    request_id: Option<String>,
    team_id: Option<String>,
    end_user: Option<String>,
    model: Option<String>,
    status_filter: Option<String>,
    min_spend: Option<String>,
    max_spend: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    summarize: Option<String>,
    page: Option<String>,
    page_size: Option<String>,
}

fn timestamp(field: &str, value: &str) -> Result<i64, ApiError> {
    bursar_core::time::parse_ms(value).ok_or_else(|| {
        bad_field(
            field,
            format!("{field} must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS"),
        )
    })
}

fn usd_filter(field: &str, value: Option<&str>) -> Result<Option<bursar_core::NanoUsd>, ApiError> {
    value
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .ok()
                .and_then(bursar_core::NanoUsd::from_usd)
                .ok_or_else(|| bad_field(field, format!("{field} must be a number")))
        })
        .transpose()
}

impl LogParams {
    /// Filters for the spend-log table; a date-only end date includes its whole day.
    fn query(&self, principal: &Principal) -> Result<bursar_store::SpendLogQuery, ApiError> {
        let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let start = self
            .start_date
            .as_deref()
            .map(|d| timestamp("start_date", d))
            .transpose()?;
        let end = match self.end_date.as_deref() {
            Some(d) if d.len() == 10 => Some(timestamp("end_date", d)? + 86_400_000),
            Some(d) => Some(timestamp("end_date", d)? + 1),
            None => None,
        };
        let mut q = bursar_store::SpendLogQuery {
            api_key: self
                .api_key
                .as_deref()
                .filter(|k| !k.is_empty())
                .map(key_hash),
            user_id: text(&self.user_id),
            team_id: text(&self.team_id),
            request_id: text(&self.request_id),
            end_user: text(&self.end_user),
            model: text(&self.model),
            status: text(&self.status_filter),
            start,
            end,
            min_spend: usd_filter("min_spend", self.min_spend.as_deref())?,
            max_spend: usd_filter("max_spend", self.max_spend.as_deref())?,
            limit: MAX_RAW_LOGS,
            offset: 0,
        };
        if !reads_all(principal) {
            // Everyone else sees their own requests only.
            q.user_id = Some(member_id(principal).unwrap_or_default().to_string());
        }
        Ok(q)
    }
}

/// `GET /spend/logs`: with dates and `summarize` (the default), spend per day with its
/// users, models and keys (from the daily tables, missing days as 0); otherwise the newest
/// matching rows.
#[utoipa::path(
    get,
    path = "/spend/logs",
    operation_id = "view_spend_logs",
    tag = crate::openapi::SPEND,
    params(LogFilters,
        ("summarize" = Option<bool>, Query, description = "With a date range: one row per day (default true)"),),
    responses((status = 200, body = Vec<SpendLogsEntry>)),
)]
pub async fn logs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<LogParams>,
) -> Result<Json<Vec<SpendLogsEntry>>, ApiError> {
    let summarize = !matches!(params.summarize.as_deref(), Some("false" | "False" | "0"));
    let q = params.query(&principal)?;
    if let (true, Some(start), Some(end)) = (summarize, &params.start_date, &params.end_date) {
        return summary(
            &state,
            &q,
            &date("start_date", start)?,
            &date("end_date", end)?,
        )
        .await;
    }
    let rows = state.store().spend().logs(&q).await?;
    Ok(Json(
        rows.iter()
            .map(|r| SpendLogsEntry::Log(Box::new(SpendLog::new(r))))
            .collect(),
    ))
}

/// One day of `/spend/logs` summary: its total and its spend per user, model and key.
type Spends = BTreeMap<String, NanoUsd>;
type DaySummary = (NanoUsd, Spends, Spends, Spends);

async fn summary(
    state: &AppState,
    q: &bursar_store::SpendLogQuery,
    start: &str,
    end: &str,
) -> Result<Json<Vec<SpendLogsEntry>>, ApiError> {
    if end < start {
        return Err(bad_field(
            "end_date",
            "end_date must be on or after start_date",
        ));
    }
    let (entity, ids) = match &q.user_id {
        Some(user) => (DailyEntity::User, Some(vec![user.clone()])),
        None => (DailyEntity::Key, None),
    };
    let mut days: BTreeMap<String, DaySummary> = BTreeMap::new();
    let first = bursar_core::time::parse_ms(start).unwrap_or_default();
    let last = bursar_core::time::parse_ms(end).unwrap_or_default();
    if (last - first) / 86_400_000 > 366 {
        return Err(bad_field(
            "end_date",
            "the date range is limited to 366 days",
        ));
    }
    let mut day = first;
    while day <= last {
        days.entry(bursar_core::time::format_date(day)).or_default();
        day += 86_400_000;
    }
    let query = DailyQuery {
        entity_ids: ids,
        start_date: Some(start.to_string()),
        end_date: Some(end.to_string()),
        api_key: q.api_key.clone(),
        ..DailyQuery::new(entity)
    };
    for row in state.store().spend().daily_rows(&query, u64::MAX).await? {
        let (total, users, models, keys) = days.entry(row.date).or_default();
        let spend = row.metrics.spend;
        *total = total.saturating_add(spend);
        let add = |map: &mut Spends, name: String| {
            let sum = map.entry(name).or_default();
            *sum = sum.saturating_add(spend);
        };
        if entity == DailyEntity::User {
            add(users, row.entity_id);
        }
        add(models, row.model_group);
        add(keys, row.api_key);
    }
    let usd = |spends: Spends| -> BTreeMap<String, f64> {
        spends
            .into_iter()
            .map(|(name, n)| (name, n.as_usd()))
            .collect()
    };
    Ok(Json(
        days.into_iter()
            .map(|(date, (total, users, models, keys))| {
                SpendLogsEntry::Day(SpendLogsDay {
                    start_time: date,
                    spend: total.as_usd(),
                    users: usd(users),
                    models: usd(models),
                    api_keys: usd(keys),
                })
            })
            .collect(),
    ))
}

/// `GET /spend/logs/v2`: one page of spend-log rows, newest first.
#[utoipa::path(
    get,
    path = "/spend/logs/v2",
    operation_id = "ui_view_spend_logs",
    tag = crate::openapi::SPEND,
    params(LogFilters,
        ("page" = Option<u32>, Query, minimum = 1, description = "Page number"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Logs per page"),),
    responses((status = 200, body = SpendLogsPage)),
)]
pub async fn logs_v2(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<LogParams>,
) -> Result<Json<SpendLogsPage>, ApiError> {
    let page = Page::parse(
        number("page", params.page.as_deref())?,
        number("page_size", params.page_size.as_deref())?,
        "page_size",
        50,
        100,
    )?;
    let mut q = params.query(&principal)?;
    q.limit = u64::from(page.size);
    q.offset = u64::from(page.page - 1) * u64::from(page.size);
    let spend = state.store().spend();
    let total = spend.count_logs(&q).await?;
    let rows = spend.logs(&q).await?;
    Ok(Json(SpendLogsPage {
        data: rows.iter().map(SpendLog::new).collect(),
        total,
        page: page.page,
        page_size: page.size,
        total_pages: page.total_pages(total),
    }))
}

/// The last 30 days (today included), as `YYYY-MM-DD` bounds.
fn last_30_days() -> (String, String) {
    let now = bursar_store::now_ms();
    (
        bursar_core::time::format_date(now - 29 * 86_400_000),
        bursar_core::time::format_date(now),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct GlobalParams {
    limit: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    group_by: Option<String>,
    api_key: Option<String>,
    team_id: Option<String>,
    customer_id: Option<String>,
}

impl GlobalParams {
    fn limit(&self, default: u64) -> Result<u64, ApiError> {
        match self.limit.as_deref() {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=1_000).contains(n))
                .ok_or_else(|| {
                    super::invalid("limit", "limit must be an integer between 1 and 1000")
                }),
        }
    }
}

fn admins_only(principal: &Principal, route: &str) -> Result<(), ApiError> {
    if reads_all(principal) {
        Ok(())
    } else {
        Err(scope::admin_only(principal, route))
    }
}

/// `GET /global/spend/keys`: the keys that spent most in the last 30 days.
#[utoipa::path(
    get,
    path = "/global/spend/keys",
    operation_id = "global_spend_keys",
    tag = crate::openapi::SPEND,
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "How many keys")),
    responses((status = 200, body = Vec<GlobalKeySpend>)),
)]
pub async fn global_keys(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<GlobalParams>,
) -> Result<Json<Vec<GlobalKeySpend>>, ApiError> {
    admins_only(&principal, "/global/spend/keys")?;
    let limit = params.limit(1_000)?;
    let (start, end) = last_30_days();
    let totals = state
        .store()
        .spend()
        .totals_by(
            DailyEntity::Key,
            bursar_store::TotalsBy::ApiKey,
            &start,
            &end,
            limit,
        )
        .await?;
    let hashes: Vec<String> = totals.iter().map(|t| t.id.clone()).collect();
    let keys = keys_by_hash(&state, &hashes).await?;
    Ok(Json(
        totals
            .iter()
            .map(|t| {
                let key = keys.get(&t.id);
                GlobalKeySpend {
                    api_key: t.id.clone(),
                    key_alias: key.and_then(|k| k.key_alias.clone()),
                    key_name: key.and_then(|k| k.key_name.clone()),
                    total_spend: t.metrics.spend.as_usd(),
                }
            })
            .collect(),
    ))
}

/// `GET /global/spend/models`: the models that cost most in the last 30 days.
#[utoipa::path(
    get,
    path = "/global/spend/models",
    operation_id = "global_spend_models",
    tag = crate::openapi::SPEND,
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "How many models")),
    responses((status = 200, body = Vec<GlobalModelSpend>)),
)]
pub async fn global_models(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<GlobalParams>,
) -> Result<Json<Vec<GlobalModelSpend>>, ApiError> {
    admins_only(&principal, "/global/spend/models")?;
    let limit = params.limit(10)?;
    let (start, end) = last_30_days();
    let totals = state
        .store()
        .spend()
        .totals_by(
            DailyEntity::Key,
            bursar_store::TotalsBy::Model,
            &start,
            &end,
            limit,
        )
        .await?;
    Ok(Json(
        totals
            .iter()
            .filter(|t| !t.id.is_empty())
            .map(|t| GlobalModelSpend {
                model: t.id.clone(),
                total_spend: t.metrics.spend.as_usd(),
                total_tokens: t.metrics.total_tokens(),
            })
            .collect(),
    ))
}

/// `GET /global/spend/teams`: spend per team and day over the last 30 days, and the ten
/// teams that spent most.
#[utoipa::path(
    get,
    path = "/global/spend/teams",
    operation_id = "global_spend_per_team",
    tag = crate::openapi::SPEND,
    responses((status = 200, body = GlobalTeamSpend)),
)]
pub async fn global_teams(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<GlobalTeamSpend>, ApiError> {
    admins_only(&principal, "/global/spend/teams")?;
    let (start, end) = last_30_days();
    let spend = state.store().spend();
    let by_day = spend
        .daily_totals_by(
            DailyEntity::Team,
            bursar_store::TotalsBy::Entity,
            &start,
            &end,
        )
        .await?;
    let top = spend
        .totals_by(
            DailyEntity::Team,
            bursar_store::TotalsBy::Entity,
            &start,
            &end,
            10,
        )
        .await?;
    let mut names: HashMap<String, String> = HashMap::new();
    for t in by_day.iter().map(|(_, t)| t).chain(top.iter()) {
        if !names.contains_key(&t.id) {
            let alias = state
                .store()
                .teams()
                .find(&t.id)
                .await?
                .and_then(|team| team.team_alias)
                .unwrap_or_else(|| t.id.clone());
            names.insert(t.id.clone(), alias);
        }
    }
    let mut days: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for (date, t) in &by_day {
        let day = days.entry(date.clone()).or_default();
        day.insert("date".into(), Value::from(date.clone()));
        day.insert(names[&t.id].clone(), Value::from(t.metrics.spend.as_usd()));
    }
    let mut teams: Vec<String> = names.values().cloned().collect();
    teams.sort();
    teams.dedup();
    Ok(Json(GlobalTeamSpend {
        daily_spend: days.into_values().collect(),
        teams,
        total_spend_per_team: top
            .iter()
            .map(|t| TeamTotalSpend {
                team_id: t.id.clone(),
                team_alias: names[&t.id].clone(),
                total_spend: t.metrics.spend.as_usd(),
            })
            .collect(),
    }))
}

/// Daily rows a `/global/spend/report` reads at most.
const MAX_REPORT_ROWS: u64 = 100_000;

/// `GET /global/spend/report`: spend per day grouped by team or customer (with per-model
/// details), or per key, between two dates.
#[utoipa::path(
    get,
    path = "/global/spend/report",
    operation_id = "get_global_spend_report",
    tag = crate::openapi::SPEND,
    params(("start_date" = Option<String>, Query, description = "From this date"),
        ("end_date" = Option<String>, Query, description = "To this date"),
        ("group_by" = Option<String>, Query, description = "`team`, `customer` or `api_key`"),
        ("api_key" = Option<String>, Query, description = "Only this key"),
        ("team_id" = Option<String>, Query, description = "Only this team"),
        ("customer_id" = Option<String>, Query, description = "Only this customer"),),
    responses((status = 200, body = Vec<SpendReportEntry>)),
)]
pub async fn global_report(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<GlobalParams>,
) -> Result<Json<Vec<SpendReportEntry>>, ApiError> {
    admins_only(&principal, "/global/spend/report")?;
    let (Some(start), Some(end)) = (params.start_date.as_deref(), params.end_date.as_deref())
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
    let (entity, ids) = match params.group_by.as_deref().unwrap_or("team") {
        "team" => (DailyEntity::Team, params.team_id.clone()),
        "customer" => (DailyEntity::EndUser, params.customer_id.clone()),
        "api_key" => (DailyEntity::Key, None),
        other => {
            return Err(bad_field(
                "group_by",
                format!("Invalid group_by {other:?}: expected team, customer or api_key"),
            ));
        }
    };
    let q = DailyQuery {
        entity_ids: ids.map(|id| vec![id]),
        start_date: Some(start),
        end_date: Some(end),
        api_key: params.api_key.as_deref().map(key_hash),
        ..DailyQuery::new(entity)
    };
    let rows = state
        .store()
        .spend()
        .daily_rows(&q, MAX_REPORT_ROWS)
        .await?;
    if entity == DailyEntity::Key {
        let mut keys: BTreeMap<&str, (DailyMetrics, BTreeMap<&str, DailyMetrics>)> =
            BTreeMap::new();
        for r in &rows {
            let (total, models) = keys.entry(r.api_key.as_str()).or_default();
            total.add(&r.metrics);
            models.entry(r.model.as_str()).or_default().add(&r.metrics);
        }
        let out = keys
            .iter()
            .map(|(key, (t, models))| {
                SpendReportEntry::Key(KeyCostReport {
                    api_key: key.to_string(),
                    total_cost: t.spend.as_usd(),
                    total_input_tokens: t.prompt_tokens,
                    total_output_tokens: t.completion_tokens,
                    model_details: models
                        .iter()
                        .map(|(m, d)| ModelCost {
                            model: m.to_string(),
                            total_cost: d.spend.as_usd(),
                            prompt_tokens: d.prompt_tokens,
                            completion_tokens: d.completion_tokens,
                        })
                        .collect(),
                })
            })
            .collect();
        return Ok(Json(out));
    }
    type Groups<'a> = BTreeMap<&'a str, (DailyMetrics, BTreeMap<(&'a str, &'a str), DailyMetrics>)>;
    let mut days: BTreeMap<&str, Groups<'_>> = BTreeMap::new();
    for r in &rows {
        let (total, details) = days
            .entry(r.date.as_str())
            .or_default()
            .entry(r.entity_id.as_str())
            .or_default();
        total.add(&r.metrics);
        details
            .entry((r.model.as_str(), r.api_key.as_str()))
            .or_default()
            .add(&r.metrics);
    }
    let by_team = entity == DailyEntity::Team;
    let out = days
        .iter()
        .map(|(day, groups)| {
            let groups: Vec<GroupSpend> = groups
                .iter()
                .map(|(id, (t, details))| GroupSpend {
                    team_name: by_team.then(|| id.to_string()),
                    customer: (!by_team).then(|| id.to_string()),
                    total_spend: t.spend.as_usd(),
                    metadata: details
                        .iter()
                        .map(|((model, key), d)| GroupDetail {
                            model: model.to_string(),
                            api_key: key.to_string(),
                            spend: d.spend.as_usd(),
                            total_tokens: d.total_tokens(),
                        })
                        .collect(),
                })
                .collect();
            SpendReportEntry::Day(GroupDay {
                group_by_day: day.to_string(),
                teams: by_team.then(|| groups.clone()),
                customers: (!by_team).then_some(groups),
            })
        })
        .collect();
    Ok(Json(out))
}
