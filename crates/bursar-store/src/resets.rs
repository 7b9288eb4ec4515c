//! Budget periods that ended: stored spend goes back to zero and the next reset time moves
//! forward, exactly once however many gateways run the job at the same moment.
//!
//! Each reset is one conditional write, `… WHERE id = ? AND budget_reset_at = <the time read>`.
//! Of several instances that read the same due row only one sees its write take effect; the
//! others find the row already moved on and skip it.

use crate::StoreError;
use bursar_core::duration::BudgetDuration;
use sqlx::{AnyPool, Row};

/// What one pass of the reset job changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetReport {
    pub keys: Vec<String>,
    pub users: Vec<String>,
    pub teams: Vec<String>,
    /// Budget rows whose period rolled over: the organizations, memberships, end users and
    /// keys that use them had their spend reset.
    pub budgets: Vec<String>,
}

impl ResetReport {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.users.is_empty()
            && self.teams.is_empty()
            && self.budgets.is_empty()
    }
}

pub struct ResetStore<'a> {
    pool: &'a AnyPool,
}

/// Tables whose rows carry their own period: (table, id column).
const OWN_PERIOD: [(&str, &str); 3] = [
    ("keys", "token"),
    ("users", "user_id"),
    ("teams", "team_id"),
];

/// Rows that follow a budget row's period: their spend resets with it.
const FOLLOWERS: [&str; 5] = [
    "UPDATE organizations SET spend_nano = 0 WHERE budget_id = $1",
    "UPDATE org_members SET spend_nano = 0 WHERE budget_id = $1",
    "UPDATE team_members SET spend_nano = 0 WHERE budget_id = $1",
    "UPDATE end_users SET spend_nano = 0 WHERE budget_id = $1",
    "UPDATE keys SET spend_nano = 0 WHERE budget_id = $1 AND budget_duration IS NULL",
];

impl<'a> ResetStore<'a> {
    pub(crate) fn new(pool: &'a AnyPool) -> Self {
        ResetStore { pool }
    }

    /// Takes or renews the lease on job `name` for `holder` until `now + ttl_ms`. True when
    /// `holder` holds it: it was free, expired, or already `holder`'s. One statement, so two
    /// instances asking at once cannot both get it.
    pub async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "INSERT INTO job_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(ttl_ms))
        .bind(now)
        .execute(self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Resets every budget whose period ended at or before `now`.
    pub async fn reset_due(&self, now: i64) -> Result<ResetReport, StoreError> {
        let mut report = ResetReport::default();
        for (table, id_column) in OWN_PERIOD {
            let done = self.reset_own(table, id_column, now).await?;
            match table {
                "keys" => report.keys = done,
                "users" => report.users = done,
                _ => report.teams = done,
            }
        }
        report.budgets = self.reset_budget_rows(now).await?;
        Ok(report)
    }

    async fn reset_own(
        &self,
        table: &'static str,
        id_column: &'static str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        // `table` and `id_column` come from OWN_PERIOD, never from input.
        let select = format!(
            "SELECT {id_column} AS id, budget_duration, budget_reset_at FROM {table} \
             WHERE budget_reset_at IS NOT NULL AND budget_reset_at <= $1 \
             AND budget_duration IS NOT NULL"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(select))
            .bind(now)
            .fetch_all(self.pool)
            .await?;
        let update = format!(
            "UPDATE {table} SET spend_nano = 0, budget_reset_at = $1 \
             WHERE {id_column} = $2 AND budget_reset_at = $3"
        );
        let mut done = Vec::new();
        for row in &rows {
            let id: String = row.try_get("id")?;
            let old: i64 = row.try_get("budget_reset_at")?;
            let Some(duration) = duration_of(row)? else {
                continue;
            };
            let changed = sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                .bind(duration.next_reset(old, now))
                .bind(&id)
                .bind(old)
                .execute(self.pool)
                .await?
                .rows_affected();
            if changed == 1 {
                done.push(id);
            }
        }
        Ok(done)
    }

    async fn reset_budget_rows(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT budget_id AS id, budget_duration, budget_reset_at FROM budgets \
             WHERE budget_reset_at IS NOT NULL AND budget_reset_at <= $1 \
             AND budget_duration IS NOT NULL",
        )
        .bind(now)
        .fetch_all(self.pool)
        .await?;
        let mut done = Vec::new();
        for row in &rows {
            let id: String = row.try_get("id")?;
            let old: i64 = row.try_get("budget_reset_at")?;
            let Some(duration) = duration_of(row)? else {
                continue;
            };
            let mut tx = self.pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE budgets SET budget_reset_at = $1 WHERE budget_id = $2 AND budget_reset_at = $3",
            )
            .bind(duration.next_reset(old, now))
            .bind(&id)
            .bind(old)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed != 1 {
                continue; // another instance got there first; the transaction rolls back
            }
            for sql in FOLLOWERS {
                sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            done.push(id);
        }
        Ok(done)
    }
}

/// A row's parsed `budget_duration`; an unparseable one is skipped (it never resets rather
/// than resetting on a guess).
fn duration_of(row: &sqlx::any::AnyRow) -> Result<Option<BudgetDuration>, StoreError> {
    let text: String = row.try_get("budget_duration")?;
    Ok(BudgetDuration::parse(&text).ok())
}
