//! The audit log: one row per management change, with before and after values.

use crate::sql::SqlBuilder;
use crate::{StoreError, now_ms};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: String,
    pub created_at: i64,
    pub changed_by: String,
    pub changed_by_api_key: String,
    pub action: String,
    pub table_name: String,
    pub object_id: String,
    pub before_value: Option<Value>,
    pub updated_values: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct NewAudit {
    pub changed_by: String,
    pub changed_by_api_key: String,
    pub action: String,
    pub table_name: String,
    pub object_id: String,
    pub before_value: Option<Value>,
    pub updated_values: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub table_name: Option<String>,
    pub object_id: Option<String>,
    pub changed_by: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub page: u32,
    pub page_size: u32,
}

pub struct AuditStore<'a> {
    pool: &'a AnyPool,
}

impl<'a> AuditStore<'a> {
    pub(crate) fn new(pool: &'a AnyPool) -> Self {
        AuditStore { pool }
    }

    pub async fn record(&self, entry: &NewAudit) -> Result<AuditRow, StoreError> {
        // v7 ids sort by creation time (monotonic within a process), so rows written in the
        // same millisecond still list in order.
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO audit_log (id, created_at, changed_by, changed_by_api_key, action, table_name, object_id, \
             before_value, updated_values) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(now)
        .bind(&entry.changed_by)
        .bind(&entry.changed_by_api_key)
        .bind(&entry.action)
        .bind(&entry.table_name)
        .bind(&entry.object_id)
        .bind(entry.before_value.as_ref().map(Value::to_string))
        .bind(entry.updated_values.as_ref().map(Value::to_string))
        .execute(self.pool)
        .await?;
        Ok(AuditRow {
            id,
            created_at: now,
            changed_by: entry.changed_by.clone(),
            changed_by_api_key: entry.changed_by_api_key.clone(),
            action: entry.action.clone(),
            table_name: entry.table_name.clone(),
            object_id: entry.object_id.clone(),
            before_value: entry.before_value.clone(),
            updated_values: entry.updated_values.clone(),
        })
    }

    /// Newest first; returns one page and the total.
    pub async fn list(&self, query: &AuditQuery) -> Result<(Vec<AuditRow>, u64), StoreError> {
        fn filters(q: &mut SqlBuilder, query: &AuditQuery) {
            q.push(" WHERE 1 = 1");
            for (column, value) in [
                (" AND action = ", &query.action),
                (" AND table_name = ", &query.table_name),
                (" AND object_id = ", &query.object_id),
                (" AND changed_by = ", &query.changed_by),
            ] {
                if let Some(v) = value {
                    q.push(column).bind(v.clone());
                }
            }
            if let Some(since) = query.since {
                q.push(" AND created_at >= ").bind(since);
            }
            if let Some(until) = query.until {
                q.push(" AND created_at <= ").bind(until);
            }
        }
        let mut count = SqlBuilder::new("SELECT COUNT(*) AS n FROM audit_log");
        filters(&mut count, query);
        let total: i64 = count.build()?.fetch_one(self.pool).await?.try_get("n")?;
        let mut q = SqlBuilder::new(
            "SELECT id, created_at, changed_by, changed_by_api_key, action, table_name, object_id, before_value, updated_values FROM audit_log",
        );
        filters(&mut q, query);
        let size = query.page_size.max(1);
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .bind(i64::from(size));
        q.push(" OFFSET ")
            .bind(i64::from(query.page.max(1) - 1) * i64::from(size));
        let rows = q.build()?.fetch_all(self.pool).await?;
        let rows = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }
}

fn decode(row: &AnyRow) -> Result<AuditRow, StoreError> {
    let json = |column: &'static str| -> Result<Option<Value>, StoreError> {
        let text: Option<String> = row.try_get(column)?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|source| StoreError::CorruptJson { column, source })
        })
        .transpose()
    };
    Ok(AuditRow {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        changed_by: row.try_get("changed_by")?,
        changed_by_api_key: row.try_get("changed_by_api_key")?,
        action: row.try_get("action")?,
        table_name: row.try_get("table_name")?,
        object_id: row.try_get("object_id")?,
        before_value: json("before_value")?,
        updated_values: json("updated_values")?,
    })
}
