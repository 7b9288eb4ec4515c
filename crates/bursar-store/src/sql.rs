//! A small dynamic-SQL builder for the `Any` driver that numbers placeholders `$1, $2, …`
//! (sqlx's `QueryBuilder` emits `?` for `Any`, which PostgreSQL rejects). Values are always
//! bound, never formatted into the SQL text.

use crate::Backend;
use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, Type};
use std::fmt::Write;

pub(crate) struct SqlBuilder {
    sql: String,
    args: AnyArguments,
    count: usize,
    /// Anonymous `?` placeholders instead of `$n` (SQLite only).
    anonymous: bool,
    error: Option<sqlx::error::BoxDynError>,
}

impl SqlBuilder {
    pub fn new(sql: &str) -> SqlBuilder {
        SqlBuilder {
            sql: sql.to_string(),
            args: AnyArguments::default(),
            count: 0,
            anonymous: false,
            error: None,
        }
    }

    /// For statements with thousands of parameters (multi-row inserts): on SQLite the
    /// placeholders are anonymous `?`, bound in order of appearance. sqlx maps each numbered
    /// placeholder to its argument through `sqlite3_bind_parameter_name`, which scans the
    /// statement's list of names, so binding `$n` placeholders costs time quadratic in their
    /// number (it was 60 % of the ledger writer's CPU at 11,600 parameters per statement).
    pub fn bulk(sql: &str, backend: Backend) -> SqlBuilder {
        SqlBuilder {
            anonymous: backend == Backend::Sqlite,
            ..SqlBuilder::new(sql)
        }
    }

    /// Appends static SQL text (never user input).
    pub fn push(&mut self, sql: &'static str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder and binds `value` to it.
    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any> + 'static,
    {
        self.count += 1;
        if self.anonymous {
            self.sql.push('?');
        } else {
            let _ = write!(self.sql, "${}", self.count);
        }
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// For `UPDATE … SET`: appends `, column = $n` when `value` is given (`None` = leave the
    /// column alone). `column` is static text, never input.
    pub fn set_if<T>(&mut self, column: &'static str, value: Option<T>) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any> + 'static,
    {
        if let Some(value) = value {
            self.sql.push_str(", ");
            self.sql.push_str(column);
            self.sql.push_str(" = ");
            self.bind(value);
        }
        self
    }

    /// Binds each value, separated by commas (for `IN (…)`).
    pub fn bind_list<T>(&mut self, values: impl IntoIterator<Item = T>) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any> + 'static,
    {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.bind(v);
        }
        self
    }

    pub fn build(self) -> Result<sqlx::query::Query<'static, Any, AnyArguments>, sqlx::Error> {
        if let Some(e) = self.error {
            return Err(sqlx::Error::Encode(e));
        }
        // Every fragment above is static text and every value a bound parameter.
        Ok(sqlx::query_with(sqlx::AssertSqlSafe(self.sql), self.args))
    }
}

/// Ends a transaction: commits when `result` is `Ok`, otherwise rolls back and waits for the
/// rollback, so the connection goes back to the pool clean rather than with a failed
/// transaction still open on it.
pub(crate) async fn finish<T>(
    tx: sqlx::Transaction<'_, sqlx::Any>,
    result: Result<T, crate::StoreError>,
) -> Result<T, crate::StoreError> {
    match result {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(e) => {
            // The error that failed the work is the one to report.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}
