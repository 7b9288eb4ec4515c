//! The store's error type. Callers map it to their own errors; the store never logs.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("cannot connect to database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the spend ledger's own SQLite connection.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a row with this {what} already exists")]
    Conflict { what: &'static str },
    #[error("{0}")]
    Misconfigured(String),
    /// The database could not be reached (known down, or the error of another caller).
    #[error("{0}")]
    Unavailable(String),
    /// Concurrent writers kept changing the rows a write depends on; retrying is safe.
    #[error("{0} changed while being written; retry")]
    Contended(&'static str),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A value the store refuses to keep (NUL in text, say): retrying cannot help.
    #[error("invalid data: {0}")]
    InvalidData(String),
    #[error("stored value in {column} is not valid JSON: {source}")]
    CorruptJson {
        column: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    /// True for failures of the database itself (down, timed out) rather than of the request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Connect { .. } | StoreError::Unavailable(_) => true,
            StoreError::Database(e) => match e {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed
                // A connection cut mid-conversation (or a peer that is not the database).
                | sqlx::Error::Protocol(_) => true,
                // SQLSTATE 08 (connection exception), 53300 (too many connections), 57P01-03
                // (shutting down, cannot connect now).
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    code.starts_with("08") || code == "53300" || code.starts_with("57P0")
                }),
                _ => false,
            },
            _ => false,
        }
    }
}

impl StoreError {
    /// True when the rows written, not the database, are at fault: the same write will
    /// fail again however often it is retried (a value PostgreSQL rejects, a constraint, a
    /// value too large for its column or index).
    pub fn is_data_error(&self) -> bool {
        match self {
            StoreError::InvalidData(_) | StoreError::Conflict { .. } => true,
            StoreError::Database(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
                // SQLSTATE classes 22 (data exception), 23 (integrity constraint violation)
                // and 54 (program limit exceeded, e.g. an index row too large).
                ["22", "23", "54"]
                    .iter()
                    .any(|class| code.starts_with(class))
            }),
            StoreError::Database(sqlx::Error::Encode(_) | sqlx::Error::Decode(_)) => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::ConstraintViolation
                    | rusqlite::ErrorCode::TooBig
                    | rusqlite::ErrorCode::TypeMismatch
            ),
            StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(_)) => true,
            _ => false,
        }
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
pub(crate) fn on_unique(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict { what },
        _ => StoreError::Database(e),
    }
}
