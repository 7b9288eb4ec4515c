//! The spend ledger's tables: one spend-log row per request, running `spend` totals on every
//! entity a request belongs to, and pre-aggregated daily activity per entity.
//!
//! [`SpendStore::record`] applies a batch of [`SpendEvent`]s in one transaction and is
//! idempotent by request id: a request already logged adds nothing, so a batch may be
//! retried, or replayed from the spool after a crash, without counting twice.

use crate::sql::SqlBuilder;
use crate::sqlite_ledger::SqliteLedger;
use crate::{Backend, StoreError, now_ms};
use bursar_core::NanoUsd;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The attribution used for requests made with the master key.
pub const MASTER_KEY_ATTRIBUTION: &str = "litellm_proxy_master_key";

/// One settled request, as the data plane reports it to the ledger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpendEvent {
    pub request_id: String,
    /// `acompletion`, `atext_completion`, `aembedding`.
    pub call_type: String,
    /// The route called (`/chat/completions`, …).
    pub endpoint: String,
    /// Key hash, or [`MASTER_KEY_ATTRIBUTION`].
    pub api_key: String,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
    pub end_user: Option<String>,
    /// The public model name asked for.
    pub model_group: String,
    /// The provider model called (`litellm_params.model`).
    pub model: String,
    pub model_id: String,
    pub provider: String,
    pub api_base: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    /// What the request cost, in nano-USD (exact, unlike the USD float at the API).
    pub spend_nano: i64,
    pub start_time: i64,
    pub end_time: i64,
    pub completion_start_time: Option<i64>,
    pub success: bool,
    pub tags: Vec<String>,
    pub requester_ip: Option<String>,
    /// Small JSON object: error information, the client's `spend_logs_metadata`, …
    pub metadata: Value,
    /// The id of the answer the client received (`chatcmpl-…`), when the upstream gave one.
    /// Not unique: `request_id` is the event's identity.
    #[serde(default)]
    pub response_id: Option<String>,
}

impl SpendEvent {
    pub fn spend(&self) -> NanoUsd {
        NanoUsd(self.spend_nano)
    }

    /// Refuses an event the backends could not store alike: NUL in any text (PostgreSQL
    /// rejects it in `text` and `jsonb`; SQLite would keep it). Checked before every write,
    /// so one such event fails its batch on both backends and the ledger isolates it.
    pub fn check_text(&self) -> Result<(), StoreError> {
        let texts = [
            Some(&self.request_id),
            Some(&self.call_type),
            Some(&self.endpoint),
            Some(&self.api_key),
            self.key_alias.as_ref(),
            self.user_id.as_ref(),
            self.team_id.as_ref(),
            self.organization_id.as_ref(),
            self.end_user.as_ref(),
            Some(&self.model_group),
            Some(&self.model),
            Some(&self.model_id),
            Some(&self.provider),
            Some(&self.api_base),
            self.requester_ip.as_ref(),
            self.response_id.as_ref(),
        ];
        let nul = texts.into_iter().flatten().any(|t| t.contains('\0'))
            || self.tags.iter().any(|t| t.contains('\0'))
            || json_has_nul(&self.metadata);
        if nul {
            return Err(StoreError::InvalidData(format!(
                "spend event {} holds a NUL character",
                self.request_id.escape_default()
            )));
        }
        Ok(())
    }

    /// The UTC day the request started, `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        bursar_core::time::format_date(self.start_time)
    }

    /// Days since the epoch (UTC) of the start: the key [`Self::date`] is formatted from.
    fn day(&self) -> i64 {
        self.start_time.div_euclid(86_400_000)
    }
}

/// Which parts of the ledger a batch writes (`disable_spend_logs`, `disable_spend_updates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordOptions {
    pub spend_logs: bool,
    pub totals: bool,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            spend_logs: true,
            totals: true,
        }
    }
}

/// What a batch changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordReport {
    /// Events counted now.
    pub applied: usize,
    /// Events already recorded (same request id), skipped.
    pub duplicates: usize,
}

/// The kinds of daily activity kept, and LiteLLM's name for each table's entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DailyEntity {
    User,
    Team,
    Organization,
    EndUser,
    Tag,
    /// Per key (entity id = key hash); over all keys, the proxy's total.
    Key,
}

impl DailyEntity {
    pub fn as_str(self) -> &'static str {
        match self {
            DailyEntity::User => "user",
            DailyEntity::Team => "team",
            DailyEntity::Organization => "organization",
            DailyEntity::EndUser => "end_user",
            DailyEntity::Tag => "tag",
            DailyEntity::Key => "key",
        }
    }
}

/// Daily totals for one entity, day, key, model and provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DailyRow {
    pub entity_id: String,
    pub date: String,
    pub api_key: String,
    pub model: String,
    pub model_group: String,
    pub provider: String,
    pub endpoint: String,
    pub metrics: DailyMetrics,
}

/// The counters of a daily row (or a sum of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DailyMetrics {
    pub spend: NanoUsd,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub api_requests: i64,
    pub successful_requests: i64,
    pub failed_requests: i64,
    pub total_response_time_ms: i64,
}

impl DailyMetrics {
    fn of(event: &SpendEvent) -> DailyMetrics {
        let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        DailyMetrics {
            spend: event.spend(),
            prompt_tokens: tokens(event.prompt_tokens),
            completion_tokens: tokens(event.completion_tokens),
            cache_read_input_tokens: tokens(event.cache_read_input_tokens),
            cache_creation_input_tokens: tokens(event.cache_creation_input_tokens),
            api_requests: 1,
            successful_requests: i64::from(event.success),
            failed_requests: i64::from(!event.success),
            total_response_time_ms: (event.end_time - event.start_time).max(0),
        }
    }

    pub fn add(&mut self, o: &DailyMetrics) {
        self.spend = self.spend.saturating_add(o.spend);
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cache_read_input_tokens += o.cache_read_input_tokens;
        self.cache_creation_input_tokens += o.cache_creation_input_tokens;
        self.api_requests += o.api_requests;
        self.successful_requests += o.successful_requests;
        self.failed_requests += o.failed_requests;
        self.total_response_time_ms += o.total_response_time_ms;
    }

    pub fn total_tokens(&self) -> i64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// Filters for [`SpendStore::daily`]. Dates are `YYYY-MM-DD`, both ends included.
#[derive(Debug, Clone)]
pub struct DailyQuery {
    pub entity: DailyEntity,
    /// Only these entities (`None` = all).
    pub entity_ids: Option<Vec<String>>,
    pub exclude_entity_ids: Vec<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<String>,
    /// Only rows of these keys (`None` = any key): a caller limited to their own keys.
    pub api_keys: Option<Vec<String>>,
    pub page: u64,
    pub page_size: u64,
}

impl DailyQuery {
    /// Every row of one entity kind: no filter, the first page of 1,000.
    pub fn new(entity: DailyEntity) -> DailyQuery {
        DailyQuery {
            entity,
            entity_ids: None,
            exclude_entity_ids: Vec::new(),
            start_date: None,
            end_date: None,
            model: None,
            api_key: None,
            api_keys: None,
            page: 1,
            page_size: 1_000,
        }
    }
}

/// A page of daily rows and the totals over every matching row.
#[derive(Debug, Clone, Default)]
pub struct DailyPage {
    pub rows: Vec<DailyRow>,
    pub totals: DailyMetrics,
    pub total_rows: u64,
}

/// One team member's spend-log totals (see [`SpendStore::team_user_totals`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamUserTotal {
    pub team_id: String,
    pub user_id: Option<String>,
    pub spend: NanoUsd,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub api_requests: i64,
    pub successful_requests: i64,
}

/// A stored spend-log row.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendLogRow {
    pub request_id: String,
    pub call_type: String,
    pub api_key: String,
    pub spend: NanoUsd,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub start_time: i64,
    pub end_time: i64,
    pub completion_start_time: Option<i64>,
    pub request_duration_ms: Option<i64>,
    pub model: String,
    pub model_id: String,
    pub model_group: String,
    pub custom_llm_provider: String,
    pub api_base: String,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
    pub end_user: Option<String>,
    pub request_tags: Value,
    pub metadata: Value,
    pub cache_hit: String,
    pub status: String,
    pub session_id: Option<String>,
    pub requester_ip_address: Option<String>,
    pub endpoint: String,
    /// The id of the answer the client received, when the upstream gave one.
    pub response_id: Option<String>,
}

/// Filters for spend-log listings; times are epoch ms, `start` included, `end` excluded.
#[derive(Debug, Clone, Default)]
pub struct SpendLogQuery {
    pub api_key: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub request_id: Option<String>,
    pub end_user: Option<String>,
    pub model: Option<String>,
    pub status: Option<String>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub min_spend: Option<NanoUsd>,
    pub max_spend: Option<NanoUsd>,
    pub limit: u64,
    pub offset: u64,
}

/// Spend summed by one dimension (keys, models, teams, end users) over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendTotal {
    pub id: String,
    pub metrics: DailyMetrics,
}

pub struct SpendStore<'a> {
    pool: &'a AnyPool,
    backend: Backend,
    sqlite_ledger: Option<&'a Arc<SqliteLedger>>,
}

/// At most this many rows per multi-row statement: 29 columns × 400 stays far below SQLite's
/// and PostgreSQL's bound-parameter limits.
const MAX_BULK_ROWS: usize = 400;

/// Splits `rows` into runs for one multi-row statement each: at most [`MAX_BULK_ROWS`] rows
/// and, on PostgreSQL, about 12 KiB of bound values. sqlx 0.9 leaves Nagle's algorithm on
/// (sqlx issue #4335), and a message larger than one 16 KiB TLS record leaves in several
/// writes, the last of which waits for the server's delayed ACK: 40 ms per statement. Over
/// TLS that cut the ledger to 480 events/s; statements that fit in one record avoid it.
fn bulk_chunks<T>(
    rows: &[T],
    backend: Backend,
    size: impl Fn(&T) -> usize,
) -> impl Iterator<Item = &[T]> {
    let budget = match backend {
        Backend::Postgres => 12 * 1024,
        Backend::Sqlite => usize::MAX,
    };
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes: usize = 0;
        let mut n = 0;
        while n < rest.len().min(MAX_BULK_ROWS) {
            bytes = bytes.saturating_add(size(&rest[n]));
            if n > 0 && bytes > budget {
                break;
            }
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// Bytes a bound value takes on the wire, roughly: its length word plus its text.
fn wire(text: &str) -> usize {
    4 + text.len()
}

fn wire_opt(text: &Option<String>) -> usize {
    text.as_deref().map_or(4, wire)
}

pub(crate) const LOG_COLUMNS: &str = "request_id, call_type, api_key, spend_nano, prompt_tokens, completion_tokens, \
     total_tokens, cache_read_input_tokens, cache_creation_input_tokens, start_time, end_time, \
     completion_start_time, request_duration_ms, model, model_id, model_group, custom_llm_provider, \
     api_base, user_id, team_id, organization_id, end_user, request_tags, metadata, cache_hit, \
     status, session_id, requester_ip_address, endpoint, response_id";

/// (entity kind, entity id, date, api key, model, model group, provider, endpoint)
pub(crate) type DailyKey<'e> = (
    DailyEntity,
    &'e str,
    &'e str,
    &'e str,
    &'e str,
    &'e str,
    &'e str,
    &'e str,
);

impl<'a> SpendStore<'a> {
    pub(crate) fn new(
        pool: &'a AnyPool,
        backend: Backend,
        sqlite_ledger: Option<&'a Arc<SqliteLedger>>,
    ) -> Self {
        SpendStore {
            pool,
            backend,
            sqlite_ledger,
        }
    }

    /// Applies a batch in one transaction: spend-log rows for requests not seen before, then
    /// their spend added to key, user, team, team membership, organization and end user, and
    /// their counts to the daily tables. Nothing is written if any statement fails.
    pub async fn record(
        &self,
        events: &[SpendEvent],
        options: RecordOptions,
    ) -> Result<RecordReport, StoreError> {
        match self.sqlite_ledger {
            Some(_) => self.record_shared(events.into(), options).await,
            None => {
                for event in events {
                    event.check_text()?;
                }
                self.record_pooled(events, options).await
            }
        }
    }

    /// [`Self::record`] for a batch the caller already shares, so a SQLite file's blocking
    /// write (on its own thread) needs no copy of it.
    pub async fn record_shared(
        &self,
        events: Arc<[SpendEvent]>,
        options: RecordOptions,
    ) -> Result<RecordReport, StoreError> {
        for event in events.iter() {
            event.check_text()?;
        }
        let Some(ledger) = self.sqlite_ledger.cloned() else {
            return self.record_pooled(&events, options).await;
        };
        // Dropping this future (a timeout) tells the blocking write to roll back.
        struct CancelOnDrop(Arc<AtomicBool>);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let cancelled = cancel.0.clone();
        let write =
            tokio::task::spawn_blocking(move || ledger.record(&events, options, &cancelled));
        let result = write
            .await
            .map_err(|e| StoreError::Misconfigured(format!("spend ledger write stopped: {e}")))?;
        drop(cancel);
        result
    }

    async fn record_pooled(
        &self,
        events: &[SpendEvent],
        options: RecordOptions,
    ) -> Result<RecordReport, StoreError> {
        let unique = unique_requests(events);
        // Optimistic first attempt: every request is new (the normal case), so the rows are
        // inserted without reading anything back. If the database skipped some as already
        // recorded (a retried or replayed batch, or another writer), the transaction is rolled
        // back and the batch retried without the ids now found in the table.
        let mut known: HashSet<String> = HashSet::new();
        let mut attempt = 0;
        let (mut tx, fresh) = loop {
            attempt += 1;
            let fresh: Vec<&SpendEvent> = unique
                .iter()
                .copied()
                .filter(|e| !known.contains(&e.request_id))
                .collect();
            let mut tx = self.pool.begin().await?;
            if !options.spend_logs {
                break (tx, fresh);
            }
            let rows: Vec<LogRow> = fresh.iter().map(|e| LogRow::of(e)).collect();
            let mut inserted = 0u64;
            for chunk in bulk_chunks(&rows, self.backend, LogRow::wire_size) {
                let query = insert_logs(chunk, self.backend).build()?;
                inserted += query.execute(&mut *tx).await?.rows_affected();
            }
            if inserted == fresh.len() as u64 {
                break (tx, fresh);
            }
            tx.rollback().await?;
            if attempt >= 3 {
                return Err(StoreError::Contended("spend_logs"));
            }
            known = self.recorded_ids(&unique).await?;
        };
        if options.totals {
            let totals = BatchTotals::of(&fresh);
            add_entity_spend(&mut tx, &totals, self.backend).await?;
            add_daily(&mut tx, &totals, self.backend).await?;
        }
        tx.commit().await?;
        Ok(RecordReport {
            applied: fresh.len(),
            duplicates: events.len() - fresh.len(),
        })
    }

    /// The request ids among `events` that already have a spend-log row.
    async fn recorded_ids(&self, events: &[&SpendEvent]) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        // 200 ids stay under one TLS record on PostgreSQL (see `bulk_chunks`).
        for chunk in events.chunks(200) {
            let mut b = SqlBuilder::bulk(
                "SELECT request_id FROM spend_logs WHERE request_id IN (",
                self.backend,
            );
            for (i, e) in chunk.iter().enumerate() {
                if i > 0 {
                    b.push(", ");
                }
                b.bind(e.request_id.clone());
            }
            b.push(")");
            for row in b.build()?.fetch_all(self.pool).await? {
                found.insert(row.try_get::<String, _>("request_id")?);
            }
        }
        Ok(found)
    }

    /// Spend-log rows, newest first.
    pub async fn logs(&self, q: &SpendLogQuery) -> Result<Vec<SpendLogRow>, StoreError> {
        let mut b = SqlBuilder::new(&format!("SELECT {LOG_COLUMNS} FROM spend_logs WHERE 1 = 1"));
        log_filters(&mut b, q);
        b.push(" ORDER BY start_time DESC, request_id DESC LIMIT ")
            .bind(i64::try_from(q.limit).unwrap_or(i64::MAX))
            .push(" OFFSET ")
            .bind(i64::try_from(q.offset).unwrap_or(i64::MAX));
        let rows = b.build()?.fetch_all(self.pool).await?;
        rows.iter().map(decode_log).collect()
    }

    /// How many spend-log rows match (limit and offset ignored).
    pub async fn count_logs(&self, q: &SpendLogQuery) -> Result<u64, StoreError> {
        let mut b = SqlBuilder::new("SELECT COUNT(*) AS n FROM spend_logs WHERE 1 = 1");
        log_filters(&mut b, q);
        let row = b.build()?.fetch_one(self.pool).await?;
        Ok(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0))
    }

    /// The sum of every spend-log row's spend (an audit of the running totals).
    pub async fn logged_total(&self) -> Result<NanoUsd, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(spend_nano), 0) AS BIGINT) AS total FROM spend_logs",
        )
        .fetch_one(self.pool)
        .await?;
        Ok(NanoUsd(sum_column(&row, "total")?))
    }

    /// One page of daily rows (newest day first) and the totals over all matching rows.
    pub async fn daily(&self, q: &DailyQuery) -> Result<DailyPage, StoreError> {
        let page_size = q.page_size.max(1);
        let offset = q.page.max(1).saturating_sub(1).saturating_mul(page_size);
        let rows = self.daily_select(q, page_size, offset).await?;
        let row = daily_totals_sql("", q)
            .build()?
            .fetch_one(self.pool)
            .await?;
        Ok(DailyPage {
            rows,
            totals: decode_metrics(&row)?,
            total_rows: u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0),
        })
    }

    /// Every daily row matching `q` (its page and page size ignored), newest day first, at
    /// most `max_rows` of them.
    pub async fn daily_rows(
        &self,
        q: &DailyQuery,
        max_rows: u64,
    ) -> Result<Vec<DailyRow>, StoreError> {
        self.daily_select(q, max_rows, 0).await
    }

    /// One page of the daily rows matching `q`, in [`Self::daily_rows`]' order (newest day
    /// first, then entity, key, model…): what an export reads a page at a time.
    pub async fn daily_rows_page(
        &self,
        q: &DailyQuery,
        limit: u64,
        offset: u64,
    ) -> Result<Vec<DailyRow>, StoreError> {
        self.daily_select(q, limit, offset).await
    }

    /// Spend-log totals per team and user between two times (epoch ms, `start` included),
    /// largest spend first: what `/team/spend/by_user` reports.
    pub async fn team_user_totals(
        &self,
        team_ids: &[String],
        start: i64,
        end: i64,
    ) -> Result<Vec<TeamUserTotal>, StoreError> {
        if team_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut b = SqlBuilder::new(
            "SELECT team_id, user_id, CAST(COALESCE(SUM(spend_nano), 0) AS BIGINT) AS spend_nano, \
             CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
             CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
             CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT) AS total_tokens, \
             CAST(COUNT(*) AS BIGINT) AS api_requests, \
             CAST(COALESCE(SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END), 0) AS BIGINT) AS successful_requests \
             FROM spend_logs WHERE team_id IN (",
        );
        b.bind_list(team_ids.iter().cloned())
            .push(") AND start_time >= ")
            .bind(start)
            .push(" AND start_time < ")
            .bind(end)
            .push(" GROUP BY team_id, user_id ORDER BY SUM(spend_nano) DESC, team_id, user_id");
        let rows = b.build()?.fetch_all(self.pool).await?;
        rows.iter()
            .map(|r| {
                let n = |c: &str| sum_column(r, c);
                Ok(TeamUserTotal {
                    team_id: r.try_get("team_id")?,
                    user_id: r.try_get("user_id")?,
                    spend: NanoUsd(n("spend_nano")?),
                    prompt_tokens: n("prompt_tokens")?,
                    completion_tokens: n("completion_tokens")?,
                    total_tokens: n("total_tokens")?,
                    api_requests: n("api_requests")?,
                    successful_requests: n("successful_requests")?,
                })
            })
            .collect()
    }

    async fn daily_select(
        &self,
        q: &DailyQuery,
        limit: u64,
        offset: u64,
    ) -> Result<Vec<DailyRow>, StoreError> {
        let rows = daily_select_sql("", q, limit, offset)
            .build()?
            .fetch_all(self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DailyRow {
                    entity_id: r.try_get("entity_id")?,
                    date: r.try_get("date")?,
                    api_key: r.try_get("api_key")?,
                    model: r.try_get("model")?,
                    model_group: r.try_get("model_group")?,
                    provider: r.try_get("custom_llm_provider")?,
                    endpoint: r.try_get("endpoint")?,
                    metrics: decode_metrics(r)?,
                })
            })
            .collect()
    }

    /// Daily rows of one kind summed by a dimension (`entity_id`, `api_key` or `model`)
    /// between two dates, largest spend first.
    pub async fn totals_by(
        &self,
        entity: DailyEntity,
        by: TotalsBy,
        start_date: &str,
        end_date: &str,
        limit: u64,
    ) -> Result<Vec<SpendTotal>, StoreError> {
        let column = by.column();
        let mut b = sums_between("SELECT ", column, entity, start_date, end_date);
        b.push(" GROUP BY ")
            .push(column)
            .push(" ORDER BY SUM(spend_nano) DESC, ")
            .push(column)
            .push(" LIMIT ")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = b.build()?.fetch_all(self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(SpendTotal {
                    id: r.try_get("id")?,
                    metrics: decode_metrics(r)?,
                })
            })
            .collect()
    }

    /// Daily rows of one kind summed per (date, dimension) between two dates, by date.
    pub async fn daily_totals_by(
        &self,
        entity: DailyEntity,
        by: TotalsBy,
        start_date: &str,
        end_date: &str,
    ) -> Result<Vec<(String, SpendTotal)>, StoreError> {
        let column = by.column();
        let mut b = sums_between("SELECT date, ", column, entity, start_date, end_date);
        b.push(" GROUP BY date, ")
            .push(column)
            .push(" ORDER BY date, ")
            .push(column);
        let rows = b.build()?.fetch_all(self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("date")?,
                    SpendTotal {
                        id: r.try_get("id")?,
                        metrics: decode_metrics(r)?,
                    },
                ))
            })
            .collect()
    }
}

/// What [`SpendStore::totals_by`] groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalsBy {
    Entity,
    ApiKey,
    Model,
    Provider,
}

impl TotalsBy {
    fn column(self) -> &'static str {
        match self {
            TotalsBy::Entity => "entity_id",
            TotalsBy::ApiKey => "api_key",
            TotalsBy::Model => "model_group",
            TotalsBy::Provider => "custom_llm_provider",
        }
    }
}

macro_rules! metric_sums {
    () => {
        "CAST(COALESCE(SUM(spend_nano), 0) AS BIGINT) AS spend_nano, \
         CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
         CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
         CAST(COALESCE(SUM(cache_read_input_tokens), 0) AS BIGINT) AS cache_read_input_tokens, \
         CAST(COALESCE(SUM(cache_creation_input_tokens), 0) AS BIGINT) AS cache_creation_input_tokens, \
         CAST(COALESCE(SUM(api_requests), 0) AS BIGINT) AS api_requests, \
         CAST(COALESCE(SUM(successful_requests), 0) AS BIGINT) AS successful_requests, \
         CAST(COALESCE(SUM(failed_requests), 0) AS BIGINT) AS failed_requests, \
         CAST(COALESCE(SUM(total_response_time_ms), 0) AS BIGINT) AS total_response_time_ms"
    };
}

/// Sums are cast to BIGINT in SQL: PostgreSQL's `SUM(bigint)` is NUMERIC, which the `Any`
/// driver cannot read.
fn sum_column(row: &AnyRow, column: &str) -> Result<i64, StoreError> {
    Ok(row.try_get::<i64, _>(column)?)
}

/// `<select> <column> AS id, <sums> FROM daily_spend` over one entity kind and a date range;
/// the caller adds its grouping.
fn sums_between(
    select: &str,
    column: &'static str,
    entity: DailyEntity,
    start_date: &str,
    end_date: &str,
) -> SqlBuilder {
    let mut b = SqlBuilder::new(select);
    b.push(column).push(concat!(
        " AS id, ",
        metric_sums!(),
        " FROM daily_spend WHERE entity_type = "
    ));
    b.bind(entity.as_str().to_string())
        .push(" AND date >= ")
        .bind(start_date.to_string())
        .push(" AND date <= ")
        .bind(end_date.to_string());
    b
}

fn decode_metrics(r: &AnyRow) -> Result<DailyMetrics, StoreError> {
    Ok(DailyMetrics {
        spend: NanoUsd(sum_column(r, "spend_nano")?),
        prompt_tokens: sum_column(r, "prompt_tokens")?,
        completion_tokens: sum_column(r, "completion_tokens")?,
        cache_read_input_tokens: sum_column(r, "cache_read_input_tokens")?,
        cache_creation_input_tokens: sum_column(r, "cache_creation_input_tokens")?,
        api_requests: sum_column(r, "api_requests")?,
        successful_requests: sum_column(r, "successful_requests")?,
        failed_requests: sum_column(r, "failed_requests")?,
        total_response_time_ms: sum_column(r, "total_response_time_ms")?,
    })
}

/// The page of daily rows [`SpendStore::daily`] reads, after `prefix` (`EXPLAIN …` in
/// benchmarks, else empty).
pub(crate) fn daily_select_sql(
    prefix: &'static str,
    q: &DailyQuery,
    limit: u64,
    offset: u64,
) -> SqlBuilder {
    let mut b = SqlBuilder::new(prefix);
    b.push(
        "SELECT entity_id, date, api_key, model, model_group, custom_llm_provider, endpoint, \
         spend_nano, prompt_tokens, completion_tokens, cache_read_input_tokens, \
         cache_creation_input_tokens, api_requests, successful_requests, failed_requests, \
         total_response_time_ms FROM daily_spend WHERE entity_type = ",
    )
    .bind(q.entity.as_str().to_string());
    daily_filters(&mut b, q);
    b.push(" ORDER BY date DESC, entity_id, api_key, model, custom_llm_provider, endpoint, model_group LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .push(" OFFSET ")
        .bind(i64::try_from(offset).unwrap_or(i64::MAX));
    b
}

/// The count and sums over every row matching `q`, after `prefix`.
pub(crate) fn daily_totals_sql(prefix: &'static str, q: &DailyQuery) -> SqlBuilder {
    let mut b = SqlBuilder::new(prefix);
    b.push(concat!(
        "SELECT COUNT(*) AS n, ",
        metric_sums!(),
        " FROM daily_spend WHERE entity_type = "
    ))
    .bind(q.entity.as_str().to_string());
    daily_filters(&mut b, q);
    b
}

fn daily_filters(b: &mut SqlBuilder, q: &DailyQuery) {
    if let Some(ids) = &q.entity_ids {
        if ids.is_empty() {
            b.push(" AND 1 = 0");
        } else {
            b.push(" AND entity_id IN (")
                .bind_list(ids.iter().cloned())
                .push(")");
        }
    }
    if !q.exclude_entity_ids.is_empty() {
        b.push(" AND entity_id NOT IN (")
            .bind_list(q.exclude_entity_ids.iter().cloned())
            .push(")");
    }
    if let Some(d) = &q.start_date {
        b.push(" AND date >= ").bind(d.clone());
    }
    if let Some(d) = &q.end_date {
        b.push(" AND date <= ").bind(d.clone());
    }
    if let Some(m) = &q.model {
        b.push(" AND (model = ")
            .bind(m.clone())
            .push(" OR model_group = ")
            .bind(m.clone())
            .push(")");
    }
    if let Some(k) = &q.api_key {
        b.push(" AND api_key = ").bind(k.clone());
    }
    if let Some(keys) = &q.api_keys {
        if keys.is_empty() {
            b.push(" AND 1 = 0");
        } else {
            b.push(" AND api_key IN (")
                .bind_list(keys.iter().cloned())
                .push(")");
        }
    }
}

fn log_filters(b: &mut SqlBuilder, q: &SpendLogQuery) {
    let text = [
        (" AND api_key = ", &q.api_key),
        (" AND user_id = ", &q.user_id),
        (" AND team_id = ", &q.team_id),
        (" AND end_user = ", &q.end_user),
        (" AND model_group = ", &q.model),
        (" AND status = ", &q.status),
    ];
    for (sql, value) in text {
        if let Some(v) = value {
            b.push(sql).bind(v.clone());
        }
    }
    if let Some(id) = &q.request_id {
        // The call id, or the id of the answer the client received (LiteLLM's request_id).
        b.push(" AND (request_id = ")
            .bind(id.clone())
            .push(" OR response_id = ")
            .bind(id.clone())
            .push(")");
    }
    if let Some(t) = q.start {
        b.push(" AND start_time >= ").bind(t);
    }
    if let Some(t) = q.end {
        b.push(" AND start_time < ").bind(t);
    }
    if let Some(s) = q.min_spend {
        b.push(" AND spend_nano >= ").bind(s.0);
    }
    if let Some(s) = q.max_spend {
        b.push(" AND spend_nano <= ").bind(s.0);
    }
}

/// The batch with each request id once: the same request twice in one batch counts once.
pub(crate) fn unique_requests(events: &[SpendEvent]) -> Vec<&SpendEvent> {
    let mut seen: HashSet<&str, foldhash::fast::RandomState> =
        HashSet::with_capacity_and_hasher(events.len(), foldhash::fast::RandomState::default());
    events
        .iter()
        .filter(|e| seen.insert(e.request_id.as_str()))
        .collect()
}

pub(crate) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An event with its JSON columns serialized, ready for [`insert_logs`].
pub(crate) struct LogRow<'e> {
    pub event: &'e SpendEvent,
    pub tags: Cow<'static, str>,
    pub metadata: Cow<'static, str>,
}

impl<'e> LogRow<'e> {
    pub fn of(event: &'e SpendEvent) -> LogRow<'e> {
        LogRow {
            event,
            // Most requests have neither: no JSON to build for them.
            tags: if event.tags.is_empty() {
                Cow::Borrowed("[]")
            } else {
                Cow::Owned(serde_json::to_string(&event.tags).unwrap_or_else(|_| "[]".into()))
            },
            metadata: match &event.metadata {
                Value::Object(m) if !m.is_empty() => Cow::Owned(event.metadata.to_string()),
                _ => Cow::Borrowed("{}"),
            },
        }
    }

    fn wire_size(&self) -> usize {
        let e = self.event;
        // 14 integer and flag columns, then the text.
        14 * 12
            + [
                e.request_id.as_str(),
                &e.call_type,
                &e.api_key,
                &e.model,
                &e.model_id,
                &e.model_group,
                &e.provider,
                &e.api_base,
                &e.endpoint,
                &self.tags,
                &self.metadata,
            ]
            .into_iter()
            .map(wire)
            .sum::<usize>()
            + [
                &e.user_id,
                &e.team_id,
                &e.organization_id,
                &e.end_user,
                &e.requester_ip,
                &e.response_id,
            ]
            .into_iter()
            .map(wire_opt)
            .sum::<usize>()
    }
}

fn insert_logs(rows: &[LogRow], backend: Backend) -> SqlBuilder {
    let mut b = SqlBuilder::bulk(
        &format!("INSERT INTO spend_logs ({LOG_COLUMNS}) VALUES "),
        backend,
    );
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        let e = row.event;
        b.push("(")
            .bind(e.request_id.clone())
            .push(", ")
            .bind(e.call_type.clone())
            .push(", ")
            .bind(e.api_key.clone())
            .push(", ")
            .bind(e.spend_nano)
            .push(", ")
            .bind(count(e.prompt_tokens))
            .push(", ")
            .bind(count(e.completion_tokens))
            .push(", ")
            .bind(count(e.total_tokens))
            .push(", ")
            .bind(count(e.cache_read_input_tokens))
            .push(", ")
            .bind(count(e.cache_creation_input_tokens))
            .push(", ")
            .bind(e.start_time)
            .push(", ")
            .bind(e.end_time)
            .push(", ")
            .bind(e.completion_start_time)
            .push(", ")
            .bind(Some((e.end_time - e.start_time).max(0)))
            .push(", ")
            .bind(e.model.clone())
            .push(", ")
            .bind(e.model_id.clone())
            .push(", ")
            .bind(e.model_group.clone())
            .push(", ")
            .bind(e.provider.clone())
            .push(", ")
            .bind(e.api_base.clone())
            .push(", ")
            .bind(e.user_id.clone())
            .push(", ")
            .bind(e.team_id.clone())
            .push(", ")
            .bind(e.organization_id.clone())
            .push(", ")
            .bind(e.end_user.clone())
            .push(", ")
            .bind(row.tags.to_string())
            .push(", ")
            .bind(row.metadata.to_string())
            .push(", 'False', ")
            .bind(if e.success { "success" } else { "failure" }.to_string())
            .push(", NULL, ")
            .bind(e.requester_ip.clone())
            .push(", ")
            .bind(e.endpoint.clone())
            .push(", ")
            .bind(e.response_id.clone())
            .push(")");
    }
    b.push(" ON CONFLICT (request_id) DO NOTHING");
    b
}

/// Each entity's share of a batch's spend, keyed (and so written) in id order.
pub(crate) struct EntityDeltas<'e> {
    pub keys: BTreeMap<[&'e str; 1], i64>,
    pub users: BTreeMap<[&'e str; 1], i64>,
    pub teams: BTreeMap<[&'e str; 1], i64>,
    pub members: BTreeMap<[&'e str; 2], i64>,
    pub orgs: BTreeMap<[&'e str; 1], i64>,
    pub end_users: BTreeMap<&'e str, i64>,
}

impl<'e> EntityDeltas<'e> {
    pub fn of(totals: &BatchTotals<'e>) -> EntityDeltas<'e> {
        let mut d = EntityDeltas {
            keys: BTreeMap::new(),
            users: BTreeMap::new(),
            teams: BTreeMap::new(),
            members: BTreeMap::new(),
            orgs: BTreeMap::new(),
            end_users: BTreeMap::new(),
        };
        for (g, m) in totals.groups.iter().filter(|(_, m)| m.spend.0 != 0) {
            let spend = m.spend.0;
            *d.keys.entry([g.api_key]).or_default() += spend;
            if let Some(u) = g.user_id {
                *d.users.entry([u]).or_default() += spend;
            }
            if let Some(t) = g.team_id {
                *d.teams.entry([t]).or_default() += spend;
                if let Some(u) = g.user_id {
                    *d.members.entry([t, u]).or_default() += spend;
                }
            }
            if let Some(o) = g.organization_id {
                *d.orgs.entry([o]).or_default() += spend;
            }
            if let Some(eu) = g.end_user {
                *d.end_users.entry(eu).or_default() += spend;
            }
        }
        d
    }
}

/// LiteLLM upserts end users here; Bursar creates them on first sight, so the insert only
/// matters for an end user deleted while its request was in flight.
pub(crate) const END_USER_INSERT: &str =
    "INSERT INTO end_users (user_id, spend_nano, created_at, updated_at) VALUES ";
pub(crate) const END_USER_CONFLICT: &str =
    " ON CONFLICT (user_id) DO UPDATE SET spend_nano = end_users.spend_nano + excluded.spend_nano";

/// What an event's totals depend on. Events alike in all of these add to the same entity
/// totals and daily rows, and a batch is mostly made of such runs (the same key calling the
/// same model), so it is summed per group first, one hash-map step per event, and only the
/// groups are spread over entities and days. (Summing every event straight into the ordered
/// daily map took five ordered-map steps per event, each comparing tuples of strings: a fifth
/// of the ledger's CPU time.)
#[derive(PartialEq, Eq, Hash)]
struct Group<'e> {
    day: i64,
    api_key: &'e str,
    user_id: Option<&'e str>,
    team_id: Option<&'e str>,
    organization_id: Option<&'e str>,
    end_user: Option<&'e str>,
    model: &'e str,
    model_group: &'e str,
    provider: &'e str,
    endpoint: &'e str,
    tags: &'e [String],
}

/// A batch's events summed per [`Group`], with the date of every day they started on.
pub(crate) struct BatchTotals<'e> {
    groups: HashMap<Group<'e>, DailyMetrics, foldhash::fast::RandomState>,
    /// `YYYY-MM-DD` (UTC) by day number.
    dates: HashMap<i64, String>,
}

impl<'e> BatchTotals<'e> {
    pub fn of(events: &[&'e SpendEvent]) -> BatchTotals<'e> {
        let mut totals = BatchTotals {
            groups: HashMap::default(),
            dates: HashMap::new(),
        };
        for e in events {
            let group = Group {
                day: e.day(),
                api_key: &e.api_key,
                user_id: e.user_id.as_deref(),
                team_id: e.team_id.as_deref(),
                organization_id: e.organization_id.as_deref(),
                end_user: e.end_user.as_deref(),
                model: &e.model,
                model_group: &e.model_group,
                provider: &e.provider,
                endpoint: &e.endpoint,
                tags: &e.tags,
            };
            totals.dates.entry(group.day).or_insert_with(|| e.date());
            totals
                .groups
                .entry(group)
                .or_default()
                .add(&DailyMetrics::of(e));
        }
        totals
    }

    /// The batch summed per daily row: (entity, day, key, model, provider, endpoint), in key
    /// order.
    pub fn daily_rows(&self) -> BTreeMap<DailyKey<'_>, DailyMetrics> {
        let mut daily: BTreeMap<DailyKey<'_>, DailyMetrics> = BTreeMap::new();
        for (g, metrics) in &self.groups {
            let Some(date) = self.dates.get(&g.day) else {
                continue;
            };
            let entities = [
                (DailyEntity::Key, Some(g.api_key)),
                (DailyEntity::User, g.user_id),
                (DailyEntity::Team, g.team_id),
                (DailyEntity::Organization, g.organization_id),
                (DailyEntity::EndUser, g.end_user),
            ];
            let tags = g.tags.iter().map(|t| (DailyEntity::Tag, Some(t.as_str())));
            for (kind, id) in entities.into_iter().chain(tags) {
                let Some(id) = id else { continue };
                let key = (
                    kind,
                    id,
                    date.as_str(),
                    g.api_key,
                    g.model,
                    g.model_group,
                    g.provider,
                    g.endpoint,
                );
                daily.entry(key).or_default().add(metrics);
            }
        }
        daily
    }
}

pub(crate) const DAILY_INSERT: &str = "INSERT INTO daily_spend (entity_type, entity_id, date, \
     api_key, model, model_group, custom_llm_provider, endpoint, prompt_tokens, \
     completion_tokens, cache_read_input_tokens, cache_creation_input_tokens, spend_nano, \
     api_requests, successful_requests, failed_requests, total_response_time_ms, created_at, \
     updated_at) VALUES ";
pub(crate) const DAILY_CONFLICT: &str = " ON CONFLICT (entity_type, entity_id, date, api_key, \
     model, model_group, custom_llm_provider, endpoint) DO UPDATE SET \
     prompt_tokens = daily_spend.prompt_tokens + excluded.prompt_tokens, \
     completion_tokens = daily_spend.completion_tokens + excluded.completion_tokens, \
     cache_read_input_tokens = daily_spend.cache_read_input_tokens + excluded.cache_read_input_tokens, \
     cache_creation_input_tokens = daily_spend.cache_creation_input_tokens + excluded.cache_creation_input_tokens, \
     spend_nano = daily_spend.spend_nano + excluded.spend_nano, \
     api_requests = daily_spend.api_requests + excluded.api_requests, \
     successful_requests = daily_spend.successful_requests + excluded.successful_requests, \
     failed_requests = daily_spend.failed_requests + excluded.failed_requests, \
     total_response_time_ms = daily_spend.total_response_time_ms + excluded.total_response_time_ms, \
     updated_at = excluded.updated_at";

/// Adds the batch's spend to each entity's running total. Statements run in a fixed order
/// (table, then id) so concurrent writers on several instances cannot deadlock.
async fn add_entity_spend(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    totals: &BatchTotals<'_>,
    backend: Backend,
) -> Result<(), StoreError> {
    let d = EntityDeltas::of(totals);
    let spend = "spend_nano = spend_nano + v.column2";
    add_spend(tx, backend, "keys", ["token"], spend, &d.keys).await?;
    add_spend(tx, backend, "users", ["user_id"], spend, &d.users).await?;
    add_spend(tx, backend, "teams", ["team_id"], spend, &d.teams).await?;
    add_spend(
        tx,
        backend,
        "organizations",
        ["organization_id"],
        spend,
        &d.orgs,
    )
    .await?;
    add_spend(
        tx,
        backend,
        "team_members",
        ["team_id", "user_id"],
        "spend_nano = spend_nano + v.column3, total_spend_nano = total_spend_nano + v.column3",
        &d.members,
    )
    .await?;
    // End users in id order, like every other lock the ledger takes.
    let now = now_ms();
    let entries: Vec<_> = d.end_users.into_iter().collect();
    for chunk in bulk_chunks(&entries, backend, |(id, _)| 36 + wire(id)) {
        let mut b = SqlBuilder::bulk(END_USER_INSERT, backend);
        for (i, (id, delta)) in chunk.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.push("(")
                .bind((*id).to_string())
                .push(", ")
                .bind(*delta)
                .push(", ")
                .bind(now)
                .push(", ")
                .bind(now)
                .push(")");
        }
        b.push(END_USER_CONFLICT);
        b.build()?.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Adds each delta to the spend of the row of `table` whose `columns` equal its key, a few
/// hundred rows per statement (`UPDATE … FROM (VALUES …)`; the values' columns are
/// `column1, column2, …` on both databases). On PostgreSQL the rows are first locked in key
/// order, so ledger writers on several instances never deadlock; SQLite has one writer.
async fn add_spend<const N: usize>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    table: &'static str,
    columns: [&'static str; N],
    set: &'static str,
    deltas: &BTreeMap<[&str; N], i64>,
) -> Result<(), StoreError> {
    let entries: Vec<_> = deltas.iter().collect();
    let size = |(key, _): &(&[&str; N], &i64)| 12 + key.iter().map(|k| wire(k)).sum::<usize>();
    for chunk in bulk_chunks(&entries, backend, size) {
        if backend == Backend::Postgres {
            let mut lock = SqlBuilder::new("SELECT 1 FROM ");
            lock.push(table).push(" WHERE (");
            push_list(&mut lock, &columns);
            lock.push(") IN (");
            for (i, (key, _)) in chunk.iter().enumerate() {
                lock.push(if i > 0 { ", (" } else { "(" });
                bind_key(&mut lock, key.as_slice());
                lock.push(")");
            }
            lock.push(") ORDER BY ");
            push_list(&mut lock, &columns);
            lock.push(" FOR UPDATE");
            lock.build()?.execute(&mut **tx).await?;
        }
        let mut update = SqlBuilder::bulk("UPDATE ", backend);
        update
            .push(table)
            .push(" SET ")
            .push(set)
            .push(" FROM (VALUES ");
        for (i, (key, delta)) in chunk.iter().enumerate() {
            update.push(if i > 0 { ", (" } else { "(" });
            bind_key(&mut update, key.as_slice());
            update.push(", ").bind(**delta).push(")");
        }
        update.push(") AS v WHERE ");
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                update.push(" AND ");
            }
            update
                .push(table)
                .push(".")
                .push(column)
                .push(" = v.")
                .push(VALUES_COLUMNS[i]);
        }
        update.build()?.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The names PostgreSQL and SQLite give the columns of a `VALUES` list.
const VALUES_COLUMNS: [&str; 3] = ["column1", "column2", "column3"];

fn push_list(b: &mut SqlBuilder, columns: &[&'static str]) {
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.push(column);
    }
}

fn bind_key(b: &mut SqlBuilder, key: &[&str]) {
    for (i, part) in key.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind((*part).to_string());
    }
}

/// Adds the batch to the daily tables: one upsert per (entity, day, key, model, provider,
/// endpoint), in key order.
async fn add_daily(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    totals: &BatchTotals<'_>,
    backend: Backend,
) -> Result<(), StoreError> {
    let daily = totals.daily_rows();
    let now = now_ms();
    let entries: Vec<_> = daily.into_iter().collect();
    let size = |((_, id, date, key, model, group, provider, endpoint), _): &(DailyKey<'_>, _)| {
        11 * 12
            + [id, date, key, model, group, provider, endpoint]
                .into_iter()
                .map(|t| wire(t))
                .sum::<usize>()
    };
    for chunk in bulk_chunks(&entries, backend, size) {
        let mut b = SqlBuilder::bulk(DAILY_INSERT, backend);
        for (i, ((kind, id, date, key, model, group, provider, endpoint), m)) in
            chunk.iter().enumerate()
        {
            if i > 0 {
                b.push(", ");
            }
            b.push("(")
                .bind(kind.as_str().to_string())
                .push(", ")
                .bind(id.to_string())
                .push(", ")
                .bind(date.to_string())
                .push(", ")
                .bind(key.to_string())
                .push(", ")
                .bind(model.to_string())
                .push(", ")
                .bind(group.to_string())
                .push(", ")
                .bind(provider.to_string())
                .push(", ")
                .bind(endpoint.to_string())
                .push(", ")
                .bind(m.prompt_tokens)
                .push(", ")
                .bind(m.completion_tokens)
                .push(", ")
                .bind(m.cache_read_input_tokens)
                .push(", ")
                .bind(m.cache_creation_input_tokens)
                .push(", ")
                .bind(m.spend.0)
                .push(", ")
                .bind(m.api_requests)
                .push(", ")
                .bind(m.successful_requests)
                .push(", ")
                .bind(m.failed_requests)
                .push(", ")
                .bind(m.total_response_time_ms)
                .push(", ")
                .bind(now)
                .push(", ")
                .bind(now)
                .push(")");
        }
        b.push(DAILY_CONFLICT);
        b.build()?.execute(&mut **tx).await?;
    }
    Ok(())
}

fn decode_log(row: &AnyRow) -> Result<SpendLogRow, StoreError> {
    let json = |column: &'static str| -> Result<Value, StoreError> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|source| StoreError::CorruptJson { column, source })
    };
    Ok(SpendLogRow {
        request_id: row.try_get("request_id")?,
        call_type: row.try_get("call_type")?,
        api_key: row.try_get("api_key")?,
        spend: NanoUsd(row.try_get("spend_nano")?),
        prompt_tokens: row.try_get("prompt_tokens")?,
        completion_tokens: row.try_get("completion_tokens")?,
        total_tokens: row.try_get("total_tokens")?,
        cache_read_input_tokens: row.try_get("cache_read_input_tokens")?,
        cache_creation_input_tokens: row.try_get("cache_creation_input_tokens")?,
        start_time: row.try_get("start_time")?,
        end_time: row.try_get("end_time")?,
        completion_start_time: row.try_get("completion_start_time")?,
        request_duration_ms: row.try_get("request_duration_ms")?,
        model: row.try_get("model")?,
        model_id: row.try_get("model_id")?,
        model_group: row.try_get("model_group")?,
        custom_llm_provider: row.try_get("custom_llm_provider")?,
        api_base: row.try_get("api_base")?,
        user_id: row.try_get("user_id")?,
        team_id: row.try_get("team_id")?,
        organization_id: row.try_get("organization_id")?,
        end_user: row.try_get("end_user")?,
        request_tags: json("request_tags")?,
        metadata: json("metadata")?,
        cache_hit: row.try_get("cache_hit")?,
        status: row.try_get("status")?,
        session_id: row.try_get("session_id")?,
        requester_ip_address: row.try_get("requester_ip_address")?,
        endpoint: row.try_get("endpoint")?,
        response_id: row.try_get("response_id")?,
    })
}

/// Whether any string or key in `value` holds a NUL character.
fn json_has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(json_has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events of two days, three keys (with and without owners), tags and end users, in an
    /// interleaved order.
    fn mixed_events() -> Vec<SpendEvent> {
        (0..60_i64)
            .map(|i| {
                let owned = i % 3 != 2;
                SpendEvent {
                    request_id: format!("r{i}"),
                    api_key: format!("key-{}", i % 3),
                    user_id: owned.then(|| format!("user-{}", i % 2)),
                    team_id: owned.then(|| "team".to_string()),
                    organization_id: (i % 3 == 0).then(|| "org".to_string()),
                    end_user: (i % 4 == 0).then(|| "customer".to_string()),
                    model_group: if i % 5 == 0 { "a" } else { "b" }.into(),
                    model: "m".into(),
                    provider: "p".into(),
                    endpoint: "/chat/completions".into(),
                    tags: (0..i % 3).map(|t| format!("tag-{t}")).collect(),
                    spend_nano: if i % 7 == 0 { 0 } else { 1_000 + i },
                    prompt_tokens: u64::try_from(i).unwrap_or_default(),
                    start_time: 1_795_132_800_000 + (i % 2) * 86_400_000 + i,
                    end_time: 1_795_132_800_000 + (i % 2) * 86_400_000 + 2 * i,
                    success: i % 6 != 0,
                    ..Default::default()
                }
            })
            .collect()
    }

    #[test]
    fn batch_totals_match_summing_every_event() {
        let events = mixed_events();
        let refs: Vec<&SpendEvent> = events.iter().collect();
        let totals = BatchTotals::of(&refs);
        // The same sums, worked out one event at a time.
        let mut daily: BTreeMap<(DailyEntity, String, String, String, String), DailyMetrics> =
            BTreeMap::new();
        let mut spend: BTreeMap<(&str, String), i64> = BTreeMap::new();
        for e in &events {
            let m = DailyMetrics::of(e);
            let mut ids = vec![(DailyEntity::Key, Some(e.api_key.clone()))];
            ids.push((DailyEntity::User, e.user_id.clone()));
            ids.push((DailyEntity::Team, e.team_id.clone()));
            ids.push((DailyEntity::Organization, e.organization_id.clone()));
            ids.push((DailyEntity::EndUser, e.end_user.clone()));
            ids.extend(e.tags.iter().map(|t| (DailyEntity::Tag, Some(t.clone()))));
            for (kind, id) in ids {
                let Some(id) = id else { continue };
                let key = (kind, id, e.date(), e.api_key.clone(), e.model_group.clone());
                daily.entry(key).or_default().add(&m);
            }
            if e.spend_nano == 0 {
                continue;
            }
            let mut owners = vec![("key", e.api_key.clone())];
            owners.extend(e.user_id.clone().map(|u| ("user", u)));
            owners.extend(e.team_id.clone().map(|t| ("team", t)));
            if let (Some(t), Some(u)) = (&e.team_id, &e.user_id) {
                owners.push(("member", format!("{t}/{u}")));
            }
            owners.extend(e.organization_id.clone().map(|o| ("org", o)));
            owners.extend(e.end_user.clone().map(|c| ("end_user", c)));
            for owner in owners {
                *spend.entry(owner).or_default() += e.spend_nano;
            }
        }
        let rows: BTreeMap<_, _> = totals
            .daily_rows()
            .into_iter()
            .map(|((kind, id, date, key, _, group, _, _), m)| {
                (
                    (
                        kind,
                        id.to_string(),
                        date.to_string(),
                        key.to_string(),
                        group.to_string(),
                    ),
                    m,
                )
            })
            .collect();
        assert_eq!(rows, daily);
        let d = EntityDeltas::of(&totals);
        let mut deltas: BTreeMap<(&str, String), i64> = BTreeMap::new();
        for (kind, map) in [
            ("key", &d.keys),
            ("user", &d.users),
            ("team", &d.teams),
            ("org", &d.orgs),
        ] {
            deltas.extend(map.iter().map(|([id], n)| ((kind, id.to_string()), *n)));
        }
        deltas.extend(
            d.members
                .iter()
                .map(|([t, u], n)| (("member", format!("{t}/{u}")), *n)),
        );
        deltas.extend(
            d.end_users
                .iter()
                .map(|(c, n)| (("end_user", c.to_string()), *n)),
        );
        assert_eq!(deltas, spend);
        assert!(deltas.values().all(|n| *n != 0));
    }

    fn split(sizes: &[usize], backend: Backend) -> Vec<Vec<usize>> {
        bulk_chunks(sizes, backend, |s| *s)
            .map(<[usize]>::to_vec)
            .collect()
    }

    #[test]
    fn postgres_statements_stay_within_one_tls_record() {
        let sizes = vec![1_000; 50];
        let chunks = split(&sizes, Backend::Postgres);
        assert_eq!(chunks.len(), 5);
        assert!(chunks.iter().all(|c| c.iter().sum::<usize>() <= 12 * 1024));
        assert_eq!(chunks.concat(), sizes, "every row once, in order");
    }

    #[test]
    fn an_oversized_row_still_gets_a_statement_of_its_own() {
        let chunks = split(&[100, 20_000, 100], Backend::Postgres);
        assert_eq!(chunks, vec![vec![100], vec![20_000], vec![100]]);
    }

    #[test]
    fn sqlite_statements_are_bounded_by_rows_only() {
        let chunks = split(&vec![1_000; MAX_BULK_ROWS + 1], Backend::Sqlite);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![MAX_BULK_ROWS, 1]
        );
        assert!(split(&[], Backend::Sqlite).is_empty());
    }
}
