//! The spend ledger's write path on a SQLite file, over its own connection (rusqlite).
//!
//! Every request adds one spend-log row, so on the embedded backend this write shares the
//! data plane's core. Through sqlx's `Any` driver a batch cost as much CPU outside SQLite as
//! inside it: each value is copied into the driver's argument types twice, bound as a fresh
//! allocation, and every statement travels to the connection's worker thread and back. Here
//! one blocking call runs the whole transaction with prepared statements that are reused for
//! every row, binding borrowed values. The SQL and the aggregation are the ones the sqlx path
//! uses for PostgreSQL (and for in-memory SQLite, which a second connection cannot reach), so
//! both paths write the same rows; the ledger tests run against each.

use crate::spend::{
    BatchTotals, DAILY_CONFLICT, DAILY_INSERT, END_USER_CONFLICT, END_USER_INSERT, EntityDeltas,
    LOG_COLUMNS, LogRow, count, unique_requests,
};
use crate::{RecordOptions, RecordReport, SpendEvent, StoreError, now_ms};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// The ledger's connection to a SQLite file, opened on first use and again after an error.
pub(crate) struct SqliteLedger {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for SqliteLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLedger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteLedger {
    pub fn new(path: PathBuf) -> SqliteLedger {
        SqliteLedger {
            path,
            conn: Mutex::new(None),
        }
    }

    /// Applies a batch in one transaction; see [`crate::SpendStore::record`]. Blocking.
    /// Once `cancelled` is set (the caller gave up waiting) it stops waiting for the write
    /// lock and rolls back instead of committing, so an abandoned attempt does not count behind
    /// the back of the retry that follows it (unless it was already committing; the retry then
    /// finds its rows and skips them as duplicates, which keeps every total right).
    pub fn record(
        &self,
        events: &[SpendEvent],
        options: RecordOptions,
        cancelled: &AtomicBool,
    ) -> Result<RecordReport, StoreError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let conn = match guard.as_mut() {
            Some(conn) => conn,
            None => guard.insert(self.open()?),
        };
        let result = apply(conn, events, options, cancelled);
        if result.is_err() {
            // A connection in an unknown state is not reused: the retry opens a new one.
            *guard = None;
        }
        result.map_err(StoreError::from)
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path)?;
        // Short waits for the write lock, retried until the caller gives up (see `begin`).
        conn.busy_timeout(LOCK_WAIT)?;
        // Otherwise the same settings as the pool's connections (see `Store::connect`).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -8192)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        Ok(conn)
    }
}

/// How long one attempt to take SQLite's write lock waits (the pool's connections hold it for
/// single writes of a few milliseconds).
const LOCK_WAIT: Duration = Duration::from_millis(100);

/// The outcome of a batch that was rolled back because its caller stopped waiting.
fn abandoned() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
        Some("spend ledger write abandoned by its caller".into()),
    )
}

/// Takes the write lock (`BEGIN IMMEDIATE`), waiting while it is busy unless cancelled.
fn begin<'c>(conn: &'c Connection, cancelled: &AtomicBool) -> rusqlite::Result<Transaction<'c>> {
    loop {
        match Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && !cancelled.load(Ordering::Relaxed) => {}
            other => return other,
        }
    }
}

fn apply(
    conn: &Connection,
    events: &[SpendEvent],
    options: RecordOptions,
    cancelled: &AtomicBool,
) -> Result<RecordReport, rusqlite::Error> {
    let unique = unique_requests(events);
    // Rolled back on every early return (and if the commit itself fails).
    let tx = begin(conn, cancelled)?;
    let fresh: Vec<&SpendEvent> = if options.spend_logs {
        let mut insert = tx.prepare_cached(&INSERT_LOG)?;
        let mut fresh = Vec::with_capacity(unique.len());
        let mut previous: Option<LogRow<'_>> = None;
        for e in unique {
            let row = LogRow::of(e);
            if insert_log(&mut insert, &row, previous.as_ref())? == 1 {
                fresh.push(e);
            }
            previous = Some(row);
        }
        fresh
    } else {
        unique
    };
    if options.totals {
        let totals = BatchTotals::of(&fresh);
        add_entity_spend(&tx, &totals)?;
        add_daily(&tx, &totals)?;
    }
    if cancelled.load(Ordering::Relaxed) {
        return Err(abandoned());
    }
    tx.commit()?;
    Ok(RecordReport {
        applied: fresh.len(),
        duplicates: events.len() - fresh.len(),
    })
}

/// The spend-log insert: parameters `?1`… in [`LOG_COLUMNS`] order, except for the two
/// columns the gateway never sets (`cache_hit`, `session_id`), written as constants. Built
/// once: its text is also the prepared-statement cache's key for every batch.
static INSERT_LOG: LazyLock<String> = LazyLock::new(insert_log_sql);

fn insert_log_sql() -> String {
    let mut n = 0;
    let values: Vec<String> = LOG_COLUMNS
        .split(',')
        .map(|column| match column.trim() {
            "cache_hit" => "'False'".to_string(),
            "session_id" => "NULL".to_string(),
            _ => {
                n += 1;
                format!("?{n}")
            }
        })
        .collect();
    format!(
        "INSERT INTO spend_logs ({LOG_COLUMNS}) VALUES ({}) ON CONFLICT (request_id) DO NOTHING",
        values.join(", ")
    )
}

/// Binds one spend-log row (see [`INSERT_LOG`]) and inserts it; 0 rows changed means
/// already recorded. SQLite keeps a statement's bindings from one run to the next, so a text
/// value equal to the previous row's stays bound: binding text costs SQLite an allocation
/// and a copy per value, and the rows of a batch mostly share their key, owners, model and
/// deployment.
fn insert_log(
    stmt: &mut rusqlite::CachedStatement<'_>,
    row: &LogRow<'_>,
    previous: Option<&LogRow<'_>>,
) -> rusqlite::Result<usize> {
    let e = row.event;
    let numbers = [
        (4, e.spend_nano),
        (5, count(e.prompt_tokens)),
        (6, count(e.completion_tokens)),
        (7, count(e.total_tokens)),
        (8, count(e.cache_read_input_tokens)),
        (9, count(e.cache_creation_input_tokens)),
        (10, e.start_time),
        (11, e.end_time),
        (13, (e.end_time - e.start_time).max(0)),
    ];
    for (index, value) in numbers {
        stmt.raw_bind_parameter(index, value)?;
    }
    stmt.raw_bind_parameter(12, e.completion_start_time)?;
    let now = log_texts(row);
    let before = previous.map(log_texts);
    for (i, (index, value)) in TEXT_PARAMETERS.into_iter().zip(now).enumerate() {
        if before.is_none_or(|b| b[i] != value) {
            stmt.raw_bind_parameter(index, value)?;
        }
    }
    stmt.raw_execute()
}

/// The parameter numbers of [`log_texts`]' values.
const TEXT_PARAMETERS: [usize; 18] = [
    1, 2, 3, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
];

/// A row's text (and NULL) values, bound at [`TEXT_PARAMETERS`].
fn log_texts<'r>(row: &'r LogRow<'_>) -> [Option<&'r str>; 18] {
    let e = row.event;
    [
        Some(&e.request_id),
        Some(&e.call_type),
        Some(&e.api_key),
        Some(&e.model),
        Some(&e.model_id),
        Some(&e.model_group),
        Some(&e.provider),
        Some(&e.api_base),
        e.user_id.as_deref(),
        e.team_id.as_deref(),
        e.organization_id.as_deref(),
        e.end_user.as_deref(),
        Some(&row.tags),
        Some(&row.metadata),
        Some(if e.success { "success" } else { "failure" }),
        e.requester_ip.as_deref(),
        Some(&e.endpoint),
        e.response_id.as_deref(),
    ]
}

/// Adds each entity's share, table by table and in id order (as the sqlx path does).
fn add_entity_spend(tx: &Connection, totals: &BatchTotals<'_>) -> rusqlite::Result<()> {
    let d = EntityDeltas::of(totals);
    let tables = [
        ("keys", "token", &d.keys),
        ("users", "user_id", &d.users),
        ("teams", "team_id", &d.teams),
        ("organizations", "organization_id", &d.orgs),
    ];
    for (table, column, deltas) in tables {
        let mut update = tx.prepare_cached(&format!(
            "UPDATE {table} SET spend_nano = spend_nano + ?1 WHERE {column} = ?2"
        ))?;
        for ([id], delta) in deltas {
            update.execute(params![delta, id])?;
        }
    }
    let mut update = tx.prepare_cached(
        "UPDATE team_members SET spend_nano = spend_nano + ?1, \
         total_spend_nano = total_spend_nano + ?1 WHERE team_id = ?2 AND user_id = ?3",
    )?;
    for ([team, user], delta) in &d.members {
        update.execute(params![delta, team, user])?;
    }
    let now = now_ms();
    let mut upsert = tx.prepare_cached(&format!(
        "{END_USER_INSERT}(?1, ?2, ?3, ?3){END_USER_CONFLICT}"
    ))?;
    for (id, delta) in &d.end_users {
        upsert.execute(params![id, delta, now])?;
    }
    Ok(())
}

fn add_daily(tx: &Connection, totals: &BatchTotals<'_>) -> rusqlite::Result<()> {
    let now = now_ms();
    let mut upsert = tx.prepare_cached(&format!(
        "{DAILY_INSERT}(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
         ?17, ?18, ?18){DAILY_CONFLICT}"
    ))?;
    for ((kind, id, date, key, model, group, provider, endpoint), m) in totals.daily_rows() {
        upsert.execute(params![
            kind.as_str(),
            id,
            date,
            key,
            model,
            group,
            provider,
            endpoint,
            m.prompt_tokens,
            m.completion_tokens,
            m.cache_read_input_tokens,
            m.cache_creation_input_tokens,
            m.spend.0,
            m.api_requests,
            m.successful_requests,
            m.failed_requests,
            m.total_response_time_ms,
            now,
        ])?;
    }
    Ok(())
}
