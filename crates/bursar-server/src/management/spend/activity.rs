//! The daily-activity routes beside the per-day listing, for users, teams and organizations
//! (LiteLLM's `…/daily/activity/aggregated[/keys|/search|/model_top_keys|/users|
//! /cache_leakage_keys]` and `…/daily/activity/export`), and `/team/spend/by_user`. Each reads
//! the daily tables through the caller's scope ([`super::scoped`]); exports stream a page of
//! rows at a time.

use super::dto::{
    CacheLeakageKeysResponse, DailyActivityKeyPageResponse, DailyActivityKeySearchResponse,
    DailyActivityUserPageResponse, ExportRow, KeyActivityRow, KeyMetadata, KeySpendActivityRow,
    KeySpendMetrics, ModelTopKeysResponse, SpendAnalyticsPaginatedResponse, SpendMetrics,
    TeamUserSpendResponse, TeamUserSpendRow, UserActivityRow,
};
use super::{DailyParams, analytics, keys_by_hash, scoped};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Query;
use crate::management::bad_field;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bursar_store::{DailyEntity, DailyMetrics, DailyPage, DailyQuery, DailyRow, KeyRow};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use utoipa::IntoParams;

/// Daily rows one aggregation reads at most (a wider range is refused, not truncated).
const MAX_ACTIVITY_ROWS: u64 = 100_000;
/// Longest date range of every route but the user's aggregated view (LiteLLM's limit).
const MAX_RANGE_DAYS: i64 = 400;
/// Daily rows an export reads per page.
const EXPORT_PAGE: u64 = 1_000;

/// `limit`-style parameter `field` within `min..=max`, `default` when absent.
fn bounded(
    value: Option<&str>,
    field: &str,
    min: usize,
    max: usize,
    default: usize,
) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                bad_field(
                    field,
                    format!("{field} must be an integer between {min} and {max}"),
                )
            }),
    }
}

/// The range's length in days, refused beyond [`MAX_RANGE_DAYS`] when `limited`.
fn check_range(q: &DailyQuery, limited: bool) -> Result<(), ApiError> {
    let day = |d: &Option<String>| {
        d.as_deref()
            .and_then(bursar_core::time::parse_ms)
            .unwrap_or_default()
    };
    let days = (day(&q.end_date) - day(&q.start_date)) / 86_400_000;
    if limited && days > MAX_RANGE_DAYS {
        return Err(bad_field(
            "end_date",
            format!("Date range must be at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok(())
}

/// Every daily row of the caller's scope, refused when there are too many to sum in one go.
async fn scoped_rows(
    state: &AppState,
    principal: &Principal,
    params: &DailyParams,
    entity: DailyEntity,
    limited: bool,
) -> Result<(DailyQuery, Vec<DailyRow>), ApiError> {
    let q = scoped(state, principal, params, entity).await?;
    check_range(&q, limited)?;
    let rows = state
        .store()
        .spend()
        .daily_rows(&q, MAX_ACTIVITY_ROWS + 1)
        .await?;
    if rows.len() as u64 > MAX_ACTIVITY_ROWS {
        return Err(bad_field(
            "end_date",
            "The date range holds too much activity to aggregate at once; narrow it",
        ));
    }
    Ok((q, rows))
}

/// Metrics summed per key (largest spend first).
fn per_key<'r>(rows: impl Iterator<Item = &'r DailyRow>) -> Vec<(String, DailyMetrics)> {
    let mut keys: HashMap<&str, DailyMetrics> = HashMap::new();
    for row in rows {
        keys.entry(row.api_key.as_str())
            .or_default()
            .add(&row.metrics);
    }
    let mut out: Vec<(String, DailyMetrics)> =
        keys.into_iter().map(|(k, m)| (k.to_string(), m)).collect();
    out.sort_by(|a, b| b.1.spend.cmp(&a.1.spend).then_with(|| a.0.cmp(&b.0)));
    out
}

/// What is known of each key, its owner's email included.
async fn key_metadata(
    state: &AppState,
    hashes: &[String],
) -> Result<HashMap<String, KeyMetadata>, ApiError> {
    let keys = keys_by_hash(state, hashes).await?;
    let emails = user_emails(state, keys.values().filter_map(|k| k.user_id.clone())).await?;
    Ok(hashes
        .iter()
        .map(|hash| {
            let mut meta = KeyMetadata::new(hash, &keys);
            meta.user_email = meta.user_id.as_ref().and_then(|u| emails.get(u).cloned());
            (hash.clone(), meta)
        })
        .collect())
}

/// The emails of these users (one query).
async fn user_emails(
    state: &AppState,
    ids: impl Iterator<Item = String>,
) -> Result<HashMap<String, String>, ApiError> {
    Ok(crate::management::users::find_many(state, ids)
        .await?
        .into_iter()
        .filter_map(|u| Some((u.user_id, u.user_email?)))
        .collect())
}

async fn key_rows(
    state: &AppState,
    keys: Vec<(String, DailyMetrics)>,
) -> Result<Vec<KeySpendActivityRow>, ApiError> {
    let hashes: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
    let meta = key_metadata(state, &hashes).await?;
    Ok(keys
        .into_iter()
        .map(|(api_key, m)| KeySpendActivityRow {
            metadata: meta
                .get(&api_key)
                .cloned()
                .unwrap_or_else(|| KeyMetadata::new(&api_key, &HashMap::new())),
            api_key,
            metrics: KeySpendMetrics::new(&m),
        })
        .collect())
}

/// `…/aggregated`: every day of the range in one answer, its key breakdowns limited to the
/// `api_key_limit` keys that spent most.
pub async fn aggregated(
    state: &AppState,
    principal: &Principal,
    params: &DailyParams,
    entity: DailyEntity,
) -> Result<SpendAnalyticsPaginatedResponse, ApiError> {
    let limit = bounded(
        params.api_key_limit.as_deref(),
        "api_key_limit",
        1,
        1_000,
        100,
    )?;
    let (q, rows) = scoped_rows(
        state,
        principal,
        params,
        entity,
        entity != DailyEntity::User,
    )
    .await?;
    let ranked = per_key(rows.iter());
    let kept: HashSet<String> = ranked.iter().take(limit).map(|(k, _)| k.clone()).collect();
    let mut entity_keys: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut totals = DailyMetrics::default();
    for row in &rows {
        totals.add(&row.metrics);
        entity_keys
            .entry(row.entity_id.clone())
            .or_default()
            .insert(row.api_key.clone());
    }
    let hashes: Vec<String> = kept.iter().cloned().collect();
    let keys: HashMap<String, KeyRow> = keys_by_hash(state, &hashes).await?;
    let page = DailyPage {
        total_rows: rows.len() as u64,
        rows,
        totals,
    };
    let whole = DailyQuery {
        page: 1,
        page_size: page.total_rows.max(1),
        ..q
    };
    let mut out = analytics(&whole, &page, &keys, &HashMap::new());
    for day in &mut out.results {
        let b = &mut day.breakdown;
        b.api_keys.retain(|k, _| kept.contains(k));
        for group in [
            &mut b.models,
            &mut b.model_groups,
            &mut b.providers,
            &mut b.endpoints,
            &mut b.entities,
        ] {
            for entry in group.values_mut() {
                entry.api_key_breakdown.retain(|k, _| kept.contains(k));
            }
        }
    }
    let m = &mut out.metadata;
    m.page = 1;
    m.total_pages = 1;
    m.has_more = false;
    m.api_key_limit = Some(limit as u64);
    m.total_api_keys = Some(ranked.len() as u64);
    m.entity_total_api_keys = Some(
        entity_keys
            .into_iter()
            .map(|(entity, keys)| (entity, keys.len() as u64))
            .collect(),
    );
    Ok(out)
}

/// `…/aggregated/keys`: keys by spend over the range, `offset`/`limit` paged.
pub async fn keys_page(
    state: &AppState,
    principal: &Principal,
    params: &DailyParams,
    entity: DailyEntity,
) -> Result<DailyActivityKeyPageResponse, ApiError> {
    let offset = bounded(params.offset.as_deref(), "offset", 0, usize::MAX, 0)?;
    let limit = bounded(params.limit.as_deref(), "limit", 1, 100, 50)?;
    let (_, rows) = scoped_rows(state, principal, params, entity, true).await?;
    let ranked = per_key(rows.iter());
    let total_api_keys = ranked.len();
    let page = ranked.into_iter().skip(offset).take(limit).collect();
    Ok(DailyActivityKeyPageResponse {
        api_keys: key_rows(state, page).await?,
        total_api_keys,
        offset,
        limit,
    })
}

/// `…/aggregated/search`: the keys whose hash or alias contains `search` (case-insensitive).
pub async fn search(
    state: &AppState,
    principal: &Principal,
    params: &DailyParams,
    entity: DailyEntity,
) -> Result<DailyActivityKeySearchResponse, ApiError> {
    let text = params
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| crate::management::missing("search", "search is required"))?
        .to_lowercase();
    let limit = bounded(params.limit.as_deref(), "limit", 1, 100, 100)?;
    let (_, rows) = scoped_rows(state, principal, params, entity, true).await?;
    let ranked = per_key(rows.iter());
    let hashes: Vec<String> = ranked.iter().map(|(k, _)| k.clone()).collect();
    let meta = key_metadata(state, &hashes).await?;
    let api_keys = ranked
        .into_iter()
        .filter(|(hash, _)| {
            hash.to_lowercase().contains(&text)
                || meta
                    .get(hash)
                    .and_then(|m| m.key_alias.as_deref())
                    .is_some_and(|a| a.to_lowercase().contains(&text))
        })
        .take(limit)
        .map(|(api_key, m)| KeyActivityRow {
            metadata: meta
                .get(&api_key)
                .cloned()
                .unwrap_or_else(|| KeyMetadata::new(&api_key, &HashMap::new())),
            api_key,
            metrics: SpendMetrics::new(&m),
        })
        .collect();
    Ok(DailyActivityKeySearchResponse { api_keys })
}

fn yes(value: Option<&str>, field: &str, default: bool) -> Result<bool, ApiError> {
    match value.map(str::trim) {
        None => Ok(default),
        Some("true" | "True" | "1") => Ok(true),
        Some("false" | "False" | "0") => Ok(false),
        Some(_) => Err(bad_field(field, format!("{field} must be true or false"))),
    }
}

/// `…/aggregated/model_top_keys`: the keys that spent most on one model group (or model).
pub async fn model_top_keys(
    state: &AppState,
    principal: &Principal,
    params: &DailyParams,
    entity: DailyEntity,
) -> Result<ModelTopKeysResponse, ApiError> {
    let model = params
        .model_group
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| crate::management::missing("model_group", "model_group is required"))?;
    let by_model_group = yes(params.by_model_group.as_deref(), "by_model_group", true)?;
    let limit = bounded(params.limit.as_deref(), "limit", 1, 100, 5)?;
    let (_, rows) = scoped_rows(state, principal, params, entity, true).await?;
    let ranked = per_key(rows.iter().filter(|r| {
        if by_model_group {
            r.model_group == model
        } else {
            r.model == model
        }
    }));
    let top = ranked.into_iter().take(limit).collect();
    Ok(ModelTopKeysResponse {
        model,
        by_model_group,
        api_keys: key_rows(state, top).await?,
    })
}

/// `/user/daily/activity/aggregated/cache_leakage_keys`: keys by prompt tokens not read from
/// a prompt cache, most first.
pub async fn cache_leakage_keys(
    state: &AppState,
    principal: &Principal,
    params: &DailyParams,
) -> Result<CacheLeakageKeysResponse, ApiError> {
    let limit = bounded(params.limit.as_deref(), "limit", 1, 100, 20)?;
    let (_, rows) = scoped_rows(state, principal, params, DailyEntity::User, true).await?;
    let uncached = |m: &DailyMetrics| m.prompt_tokens - m.cache_read_input_tokens;
    let mut ranked: Vec<(String, DailyMetrics)> = per_key(rows.iter())
        .into_iter()
        .filter(|(_, m)| uncached(m) > 0)
        .collect();
    ranked.sort_by(|a, b| {
        uncached(&b.1)
            .cmp(&uncached(&a.1))
            .then_with(|| a.0.cmp(&b.0))
    });
    ranked.truncate(limit);
    Ok(CacheLeakageKeysResponse {
        api_keys: key_rows(state, ranked).await?,
    })
}

/// `/user/daily/activity/aggregated/users`: users by spend over the range, paged.
pub async fn users_page(
    state: &AppState,
    principal: &Principal,
    params: &DailyParams,
) -> Result<DailyActivityUserPageResponse, ApiError> {
    let offset = bounded(params.offset.as_deref(), "offset", 0, usize::MAX, 0)?;
    let limit = bounded(params.limit.as_deref(), "limit", 1, 100, 50)?;
    let (_, rows) = scoped_rows(state, principal, params, DailyEntity::User, true).await?;
    let mut users: HashMap<&str, DailyMetrics> = HashMap::new();
    for row in &rows {
        users
            .entry(row.entity_id.as_str())
            .or_default()
            .add(&row.metrics);
    }
    let mut ranked: Vec<(String, DailyMetrics)> =
        users.into_iter().map(|(u, m)| (u.to_string(), m)).collect();
    ranked.sort_by(|a, b| b.1.spend.cmp(&a.1.spend).then_with(|| a.0.cmp(&b.0)));
    let total_users = ranked.len();
    let page: Vec<(String, DailyMetrics)> = ranked.into_iter().skip(offset).take(limit).collect();
    let known: HashMap<String, bursar_store::UserRow> =
        crate::management::users::find_many(state, page.iter().map(|(u, _)| u.clone()))
            .await?
            .into_iter()
            .map(|u| (u.user_id.clone(), u))
            .collect();
    Ok(DailyActivityUserPageResponse {
        users: page
            .into_iter()
            .map(|(user_id, m)| {
                let user = known.get(&user_id);
                UserActivityRow {
                    user_email: user.and_then(|u| u.user_email.clone()),
                    user_alias: user.and_then(|u| u.user_alias.clone()),
                    user_id: Some(user_id),
                    spend: m.spend.as_usd(),
                    prompt_tokens: m.prompt_tokens,
                    completion_tokens: m.completion_tokens,
                    total_tokens: m.total_tokens(),
                    api_requests: m.api_requests,
                    successful_requests: m.successful_requests,
                    failed_requests: m.failed_requests,
                }
            })
            .collect(),
        total_users,
        offset,
        limit,
    })
}

/// `GET /team/spend/by_user`: each member's spend in the teams, from the spend logs.
pub async fn team_spend_by_user(
    state: &AppState,
    principal: &Principal,
    params: &DailyParams,
) -> Result<TeamUserSpendResponse, ApiError> {
    if params
        .team_ids
        .as_deref()
        .is_none_or(|t| t.trim().is_empty())
    {
        return Err(bad_field("team_ids", "Please provide team_ids"));
    }
    let q = scoped(state, principal, params, DailyEntity::Team).await?;
    check_range(&q, true)?;
    let (start, end) = (
        q.start_date.clone().unwrap_or_default(),
        q.end_date.clone().unwrap_or_default(),
    );
    let from = bursar_core::time::parse_ms(&start).unwrap_or_default();
    let to = bursar_core::time::parse_ms(&end).unwrap_or_default() + 86_400_000;
    let teams = q.entity_ids.clone().unwrap_or_default();
    let mut totals = state
        .store()
        .spend()
        .team_user_totals(&teams, from, to)
        .await?;
    if q.api_keys.is_some() {
        // A member without the team's whole view sees their own row only.
        let me = crate::management::scope::member_id(principal).map(str::to_string);
        totals.retain(|t| t.user_id == me);
    }
    let mut aliases: HashMap<String, Option<String>> = HashMap::new();
    for team in &teams {
        let alias = state
            .store()
            .teams()
            .find(team)
            .await?
            .and_then(|t| t.team_alias);
        aliases.insert(team.clone(), alias);
    }
    let users: HashMap<String, bursar_store::UserRow> =
        crate::management::users::find_many(state, totals.iter().filter_map(|t| t.user_id.clone()))
            .await?
            .into_iter()
            .map(|u| (u.user_id.clone(), u))
            .collect();
    let results = totals
        .into_iter()
        .map(|t| {
            let user = t.user_id.as_ref().and_then(|u| users.get(u));
            TeamUserSpendRow {
                team_alias: aliases.get(&t.team_id).cloned().flatten(),
                team_id: t.team_id,
                user_email: user.and_then(|u| u.user_email.clone()),
                user_alias: user.and_then(|u| u.user_alias.clone()),
                user_id: t.user_id.unwrap_or_default(),
                spend: t.spend.as_usd(),
                prompt_tokens: t.prompt_tokens,
                completion_tokens: t.completion_tokens,
                total_tokens: t.total_tokens,
                api_requests: t.api_requests,
                successful_requests: t.successful_requests,
                failed_requests: t.api_requests - t.successful_requests,
            }
        })
        .collect();
    Ok(TeamUserSpendResponse {
        start_date: start,
        end_date: end,
        results,
    })
}

/// What an export's rows are broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExportType {
    Daily,
    WithKeys,
    WithModels,
    WithUsers,
}

impl ExportType {
    fn parse(value: Option<&str>) -> Result<ExportType, ApiError> {
        match value.unwrap_or("daily") {
            "daily" => Ok(ExportType::Daily),
            "daily_with_keys" => Ok(ExportType::WithKeys),
            "daily_with_models" => Ok(ExportType::WithModels),
            "daily_with_users" => Ok(ExportType::WithUsers),
            other => Err(bad_field(
                "export_type",
                format!(
                    "Invalid export_type {other:?}: expected daily, daily_with_keys, daily_with_models or daily_with_users"
                ),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ExportType::Daily => "daily",
            ExportType::WithKeys => "daily_with_keys",
            ExportType::WithModels => "daily_with_models",
            ExportType::WithUsers => "daily_with_users",
        }
    }
}

const EXPORT_COLUMNS: [&str; 17] = [
    "date",
    "entity_id",
    "entity_alias",
    "api_key",
    "key_alias",
    "user_id",
    "user_email",
    "model",
    "spend",
    "flat_cost",
    "prompt_tokens",
    "completion_tokens",
    "api_requests",
    "successful_requests",
    "failed_requests",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
];

/// A CSV cell: quoted when needed, and a leading `= + - @ TAB CR` defused with `'` (a
/// spreadsheet would run it as a formula).
fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv_line(row: &ExportRow) -> String {
    let opt = |v: &Option<String>| csv_cell(v.as_deref().unwrap_or_default());
    let cells = [
        csv_cell(&row.date),
        csv_cell(&row.entity_id),
        opt(&row.entity_alias),
        opt(&row.api_key),
        opt(&row.key_alias),
        opt(&row.user_id),
        opt(&row.user_email),
        opt(&row.model),
        row.spend.to_string(),
        row.flat_cost.to_string(),
        row.prompt_tokens.to_string(),
        row.completion_tokens.to_string(),
        row.api_requests.to_string(),
        row.successful_requests.to_string(),
        row.failed_requests.to_string(),
        row.cache_read_input_tokens.to_string(),
        row.cache_creation_input_tokens.to_string(),
    ];
    let mut line = cells.join(",");
    line.push_str("\r\n");
    line
}

/// What an export has learnt so far of keys, users and entities (one lookup each).
#[derive(Default)]
struct Names {
    keys: HashMap<String, Option<KeyRow>>,
    emails: HashMap<String, Option<String>>,
    aliases: HashMap<String, Option<String>>,
}

impl Names {
    async fn learn(
        &mut self,
        state: &AppState,
        entity: DailyEntity,
        rows: &[DailyRow],
    ) -> Result<(), ApiError> {
        let new_keys: Vec<String> = rows
            .iter()
            .map(|r| r.api_key.clone())
            .filter(|k| !self.keys.contains_key(k))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !new_keys.is_empty() {
            let found = keys_by_hash(state, &new_keys).await?;
            for k in new_keys {
                let row = found.get(&k).cloned();
                self.keys.insert(k, row);
            }
        }
        let mut users: Vec<String> = self
            .keys
            .values()
            .flatten()
            .filter_map(|k| k.user_id.clone())
            .collect();
        if entity == DailyEntity::User {
            users.extend(rows.iter().map(|r| r.entity_id.clone()));
        }
        users.retain(|u| !self.emails.contains_key(u));
        if !users.is_empty() {
            let found = user_emails(state, users.clone().into_iter()).await?;
            for u in users {
                let email = found.get(&u).cloned();
                self.emails.insert(u, email);
            }
        }
        for row in rows {
            if self.aliases.contains_key(&row.entity_id) {
                continue;
            }
            let alias = match entity {
                DailyEntity::Team => state
                    .store()
                    .teams()
                    .find(&row.entity_id)
                    .await?
                    .and_then(|t| t.team_alias),
                DailyEntity::Organization => state
                    .store()
                    .orgs()
                    .find(&row.entity_id)
                    .await?
                    .map(|o| o.organization_alias),
                _ => None,
            };
            self.aliases.insert(row.entity_id.clone(), alias);
        }
        Ok(())
    }

    fn owner(&self, entity: DailyEntity, row: &DailyRow) -> Option<String> {
        if entity == DailyEntity::User {
            return Some(row.entity_id.clone());
        }
        self.keys.get(&row.api_key)?.as_ref()?.user_id.clone()
    }
}

/// One (date, entity) group's export rows.
fn group_rows(
    entity: DailyEntity,
    kind: ExportType,
    names: &Names,
    group: &[DailyRow],
) -> Vec<ExportRow> {
    let Some(first) = group.first() else {
        return Vec::new();
    };
    let mut parts: BTreeMap<Option<String>, DailyMetrics> = BTreeMap::new();
    for row in group {
        let part = match kind {
            ExportType::Daily => None,
            ExportType::WithKeys => Some(row.api_key.clone()),
            ExportType::WithModels => Some(row.model.clone()),
            ExportType::WithUsers => names.owner(entity, row),
        };
        parts.entry(part).or_default().add(&row.metrics);
    }
    parts
        .into_iter()
        .map(|(part, m)| {
            let mut out = ExportRow {
                date: first.date.clone(),
                entity_id: first.entity_id.clone(),
                entity_alias: names.aliases.get(&first.entity_id).cloned().flatten(),
                api_key: None,
                key_alias: None,
                user_id: None,
                user_email: None,
                model: None,
                spend: m.spend.as_usd(),
                flat_cost: 0.0,
                prompt_tokens: m.prompt_tokens,
                completion_tokens: m.completion_tokens,
                api_requests: m.api_requests,
                successful_requests: m.successful_requests,
                failed_requests: m.failed_requests,
                cache_read_input_tokens: m.cache_read_input_tokens,
                cache_creation_input_tokens: m.cache_creation_input_tokens,
            };
            match kind {
                ExportType::Daily => {}
                ExportType::WithKeys => {
                    let key = part.unwrap_or_default();
                    let row = names.keys.get(&key).cloned().flatten();
                    out.key_alias = row.as_ref().and_then(|k| k.key_alias.clone());
                    out.user_id = row.as_ref().and_then(|k| k.user_id.clone());
                    out.user_email = out
                        .user_id
                        .as_ref()
                        .and_then(|u| names.emails.get(u).cloned().flatten());
                    out.api_key = Some(key);
                }
                ExportType::WithModels => out.model = part,
                ExportType::WithUsers => {
                    out.user_email = part
                        .as_ref()
                        .and_then(|u| names.emails.get(u).cloned().flatten());
                    out.user_id = part;
                }
            }
            out
        })
        .collect()
}

/// Where an export is in its reading.
struct Export {
    state: AppState,
    entity: DailyEntity,
    kind: ExportType,
    json: bool,
    query: DailyQuery,
    offset: u64,
    /// Rows of the (date, entity) group the last page ended in.
    pending: Vec<DailyRow>,
    names: Names,
    started: bool,
    wrote_row: bool,
    finished: bool,
}

impl Export {
    fn encode(&mut self, rows: Vec<ExportRow>) -> String {
        let mut out = String::new();
        for row in rows {
            if self.json {
                out.push_str(if self.wrote_row { "," } else { "" });
                out.push_str(&serde_json::to_string(&row).unwrap_or_default());
            } else {
                out.push_str(&csv_line(&row));
            }
            self.wrote_row = true;
        }
        out
    }

    /// The next piece of the body, `None` at the end.
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.finished {
            return None;
        }
        let mut out = String::new();
        if !self.started {
            self.started = true;
            if self.json {
                out.push('[');
            } else {
                out.push_str(&EXPORT_COLUMNS.join(","));
                out.push_str("\r\n");
            }
        }
        let page = match self
            .state
            .store()
            .spend()
            .daily_rows_page(&self.query, EXPORT_PAGE, self.offset)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                self.finished = true;
                return Some(Err(std::io::Error::other(e.to_string())));
            }
        };
        self.offset += page.len() as u64;
        let last_page = (page.len() as u64) < EXPORT_PAGE;
        let mut rows = std::mem::take(&mut self.pending);
        rows.extend(page);
        if let Err(e) = self.names.learn(&self.state, self.entity, &rows).await {
            self.finished = true;
            return Some(Err(std::io::Error::other(e.message)));
        }
        // Rows come by date, then entity: every group but the last is complete.
        let mut start = 0;
        let mut done_rows = Vec::new();
        for i in 1..=rows.len() {
            let boundary = i == rows.len()
                || rows[i].date != rows[start].date
                || rows[i].entity_id != rows[start].entity_id;
            if boundary {
                if i == rows.len() && !last_page {
                    self.pending = rows[start..].to_vec();
                    break;
                }
                done_rows.extend(group_rows(
                    self.entity,
                    self.kind,
                    &self.names,
                    &rows[start..i],
                ));
                start = i;
            }
        }
        out.push_str(&self.encode(done_rows));
        if last_page {
            self.finished = true;
            if self.json {
                out.push(']');
            }
        }
        Some(Ok(Bytes::from(out)))
    }
}

/// `…/daily/activity/export`: the range's activity as CSV (default) or JSON, streamed a page
/// of daily rows at a time.
pub async fn export(
    state: &AppState,
    principal: &Principal,
    params: &DailyParams,
    entity: DailyEntity,
) -> Result<Response, ApiError> {
    let kind = ExportType::parse(params.export_type.as_deref())?;
    let json = match params.format.as_deref().unwrap_or("csv") {
        "csv" => false,
        "json" => true,
        other => {
            return Err(bad_field(
                "format",
                format!("Invalid format {other:?}: expected csv or json"),
            ));
        }
    };
    let query = scoped(state, principal, params, entity).await?;
    check_range(&query, true)?;
    let filename = format!(
        "{}-usage-{}-{}-{}.{}",
        match entity {
            DailyEntity::Team => "team",
            DailyEntity::Organization => "organization",
            _ => "user",
        },
        query.start_date.as_deref().unwrap_or_default(),
        query.end_date.as_deref().unwrap_or_default(),
        kind.name(),
        if json { "json" } else { "csv" }
    );
    let export = Export {
        state: state.clone(),
        entity,
        kind,
        json,
        query,
        offset: 0,
        pending: Vec::new(),
        names: Names::default(),
        started: false,
        wrote_row: false,
        finished: false,
    };
    let body = futures_util::stream::unfold(export, |mut export| async move {
        export.next().await.map(|piece| (piece, export))
    });
    let mut response = Body::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if json {
            "application/json"
        } else {
            "text/csv; charset=utf-8"
        }),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_cell("-1,2"), "\"'-1,2\"");
    }
}

/// How the daily-activity routes beside the listing document their parameters; each reads
/// the ones it uses from [`DailyParams`] (as text, to name a bad value).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ActivityParams {
    /// Start date, YYYY-MM-DD (required).
    start_date: Option<String>,
    /// End date, YYYY-MM-DD (required; at most 400 days after the start).
    end_date: Option<String>,
    /// Filter by model.
    model: Option<String>,
    /// Filter by key (raw or hash).
    api_key: Option<String>,
    /// Users' routes: one user (admins).
    user_id: Option<String>,
    /// Teams' routes: comma-separated team ids.
    team_ids: Option<String>,
    /// Teams' routes: comma-separated team ids to leave out.
    exclude_team_ids: Option<String>,
    /// Organizations' routes: comma-separated organization ids.
    organization_ids: Option<String>,
    /// `/aggregated`: keys kept in the breakdowns (1–1000, default 100).
    api_key_limit: Option<u32>,
    /// `/aggregated/keys`, `/aggregated/users`: rows skipped.
    offset: Option<u32>,
    /// Rows returned (route-specific bounds).
    limit: Option<u32>,
    /// `/aggregated/search`: text to find in key hashes and aliases (required there).
    search: Option<String>,
    /// `/aggregated/model_top_keys`: the model group (or model) (required there).
    model_group: Option<String>,
    /// `/aggregated/model_top_keys`: match `model_group` (default) or the model.
    by_model_group: Option<bool>,
    /// `/export`: `daily` (default), `daily_with_keys`, `daily_with_models` or `daily_with_users`.
    export_type: Option<String>,
    /// `/export`: `csv` (default) or `json`.
    format: Option<String>,
    /// Accepted for compatibility; days are UTC.
    timezone: Option<i64>,
}

macro_rules! activity_route {
    ($doc:literal, $name:ident, $path:literal, $op:literal, $tag:expr, $entity:expr, $inner:ident, $body:ty) => {
        #[doc = $doc]
        #[utoipa::path(
                                                            get,
                                                            path = $path,
                                                            operation_id = $op,
                                                            tag = $tag,
                                                            params(ActivityParams),
                                                            responses((status = 200, body = $body)),
                                                        )]
        pub async fn $name(
            State(state): State<AppState>,
            Extension(principal): Extension<Principal>,
            Query(params): Query<DailyParams>,
        ) -> Result<Json<$body>, ApiError> {
            Ok(Json($inner(&state, &principal, &params, $entity).await?))
        }
    };
}

macro_rules! export_route {
    ($name:ident, $path:literal, $op:literal, $tag:expr, $entity:expr) => {
        /// The range's activity as CSV (default) or JSON, streamed.
        #[utoipa::path(
            get,
            path = $path,
            operation_id = $op,
            tag = $tag,
            params(ActivityParams),
            responses((status = 200, description = "CSV or a JSON array of rows", body = Vec<ExportRow>)),
        )]
        pub async fn $name(
            State(state): State<AppState>,
            Extension(principal): Extension<Principal>,
            Query(params): Query<DailyParams>,
        ) -> Result<Response, ApiError> {
            export(&state, &principal, &params, $entity).await
        }
    };
}

use crate::openapi::{ORGS, SPEND, TEAMS};
use DailyEntity::{Organization as Org, Team, User};

activity_route!(
    "The user's activity over the range in one answer.",
    user_aggregated,
    "/user/daily/activity/aggregated",
    "get_user_daily_activity_aggregated",
    SPEND,
    User,
    aggregated,
    SpendAnalyticsPaginatedResponse
);
activity_route!(
    "The user's keys by spend over the range.",
    user_keys,
    "/user/daily/activity/aggregated/keys",
    "get_user_daily_activity_aggregated_keys",
    SPEND,
    User,
    keys_page,
    DailyActivityKeyPageResponse
);
activity_route!(
    "The user's keys whose hash or alias contains `search`.",
    user_search,
    "/user/daily/activity/aggregated/search",
    "get_user_daily_activity_aggregated_search",
    SPEND,
    User,
    search,
    DailyActivityKeySearchResponse
);
activity_route!(
    "The keys that spent most on one model group.",
    user_model_top_keys,
    "/user/daily/activity/aggregated/model_top_keys",
    "get_user_daily_activity_model_top_keys",
    SPEND,
    User,
    model_top_keys,
    ModelTopKeysResponse
);
export_route!(
    user_export,
    "/user/daily/activity/export",
    "get_user_daily_activity_export",
    SPEND,
    User
);
activity_route!(
    "The team's activity over the range in one answer.",
    team_aggregated,
    "/team/daily/activity/aggregated",
    "get_team_daily_activity_aggregated",
    TEAMS,
    Team,
    aggregated,
    SpendAnalyticsPaginatedResponse
);
activity_route!(
    "The team's keys by spend over the range.",
    team_keys,
    "/team/daily/activity/aggregated/keys",
    "get_team_daily_activity_aggregated_keys",
    TEAMS,
    Team,
    keys_page,
    DailyActivityKeyPageResponse
);
activity_route!(
    "The team's keys whose hash or alias contains `search`.",
    team_search,
    "/team/daily/activity/aggregated/search",
    "get_team_daily_activity_aggregated_search",
    TEAMS,
    Team,
    search,
    DailyActivityKeySearchResponse
);
activity_route!(
    "The team keys that spent most on one model group.",
    team_model_top_keys,
    "/team/daily/activity/aggregated/model_top_keys",
    "get_team_daily_activity_model_top_keys",
    TEAMS,
    Team,
    model_top_keys,
    ModelTopKeysResponse
);
export_route!(
    team_export,
    "/team/daily/activity/export",
    "get_team_daily_activity_export",
    TEAMS,
    Team
);
activity_route!(
    "The organization's activity over the range in one answer.",
    org_aggregated,
    "/organization/daily/activity/aggregated",
    "get_organization_daily_activity_aggregated",
    ORGS,
    Org,
    aggregated,
    SpendAnalyticsPaginatedResponse
);
activity_route!(
    "The organization's keys by spend over the range.",
    org_keys,
    "/organization/daily/activity/aggregated/keys",
    "get_organization_daily_activity_aggregated_keys",
    ORGS,
    Org,
    keys_page,
    DailyActivityKeyPageResponse
);
activity_route!(
    "The organization's keys whose hash or alias contains `search`.",
    org_search,
    "/organization/daily/activity/aggregated/search",
    "get_organization_daily_activity_aggregated_search",
    ORGS,
    Org,
    search,
    DailyActivityKeySearchResponse
);
activity_route!(
    "The organization keys that spent most on one model group.",
    org_model_top_keys,
    "/organization/daily/activity/aggregated/model_top_keys",
    "get_organization_daily_activity_model_top_keys",
    ORGS,
    Org,
    model_top_keys,
    ModelTopKeysResponse
);
export_route!(
    org_export,
    "/organization/daily/activity/export",
    "get_organization_daily_activity_export",
    ORGS,
    Org
);

/// Users by spend over the range (admins: every user; others: themselves).
#[utoipa::path(
    get,
    path = "/user/daily/activity/aggregated/users",
    operation_id = "get_user_daily_activity_aggregated_users",
    tag = SPEND,
    params(ActivityParams),
    responses((status = 200, body = DailyActivityUserPageResponse)),
)]
pub async fn user_users(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<DailyActivityUserPageResponse>, ApiError> {
    Ok(Json(users_page(&state, &principal, &params).await?))
}

/// Keys by prompt tokens that missed the prompt cache.
#[utoipa::path(
    get,
    path = "/user/daily/activity/aggregated/cache_leakage_keys",
    operation_id = "get_user_daily_activity_cache_leakage_keys",
    tag = SPEND,
    params(ActivityParams),
    responses((status = 200, body = CacheLeakageKeysResponse)),
)]
pub async fn user_cache_leakage(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<CacheLeakageKeysResponse>, ApiError> {
    Ok(Json(cache_leakage_keys(&state, &principal, &params).await?))
}

/// Each member's spend in the teams over the range (members without the team's whole view:
/// their own).
#[utoipa::path(
    get,
    path = "/team/spend/by_user",
    operation_id = "get_team_spend_by_user",
    tag = TEAMS,
    params(ActivityParams),
    responses((status = 200, body = TeamUserSpendResponse)),
)]
pub async fn team_by_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<DailyParams>,
) -> Result<Json<TeamUserSpendResponse>, ApiError> {
    Ok(Json(team_spend_by_user(&state, &principal, &params).await?))
}
