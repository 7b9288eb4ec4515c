//! Test support: a fresh, isolated database per test on either backend.
//!
//! SQLite tests get a file in a temporary directory. PostgreSQL tests get their own schema in
//! the database named by `BURSAR_TEST_POSTGRES_URL` (selected through `search_path`), so tests
//! run in parallel without seeing each other's rows. Without that variable PostgreSQL tests are
//! skipped with a printed notice, except under CI (`CI` set), where a missing database is a
//! failure: a green CI must mean both backends ran.

use crate::spend::{daily_select_sql, daily_totals_sql};
use crate::{DailyQuery, Store, StoreError, StoreOptions};
use sqlx::Row;
use std::path::PathBuf;

pub const POSTGRES_URL_VAR: &str = "BURSAR_TEST_POSTGRES_URL";

/// A database URL prepared for one test, plus what is needed to clean it up.
pub struct TestDatabase {
    pub url: String,
    pub backend: crate::Backend,
    _dir: Option<tempfile_dir::Dir>,
    schema: Option<(String, String)>,
}

impl TestDatabase {
    pub fn sqlite() -> Result<TestDatabase, StoreError> {
        let dir = tempfile_dir::Dir::new()?;
        let path: PathBuf = dir.path().join("bursar-test.db");
        Ok(TestDatabase {
            url: format!("sqlite://{}", path.display()),
            backend: crate::Backend::Sqlite,
            _dir: Some(dir),
            schema: None,
        })
    }

    /// `Ok(None)` when PostgreSQL tests should be skipped (variable unset outside CI).
    pub async fn postgres() -> Result<Option<TestDatabase>, StoreError> {
        let Ok(base) = std::env::var(POSTGRES_URL_VAR) else {
            if std::env::var_os("CI").is_some() {
                return Err(StoreError::Misconfigured(format!(
                    "{POSTGRES_URL_VAR} is not set; CI must run the PostgreSQL tests"
                )));
            }
            skip_notice();
            return Ok(None);
        };
        let schema = format!("bursar_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Store::connect(
            &base,
            &StoreOptions {
                max_connections: 1,
                ..Default::default()
            },
        )
        .await?;
        // The schema name is generated above from a UUID, never from input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin.pool)
            .await?;
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        Ok(Some(TestDatabase {
            url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            backend: crate::Backend::Postgres,
            _dir: None,
            schema: Some((base, schema)),
        }))
    }

    /// Connects and migrates.
    pub async fn store(&self) -> Result<Store, StoreError> {
        let store = Store::connect(&self.url, &StoreOptions::default()).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Drops the PostgreSQL schema (SQLite files go with the temporary directory).
    pub async fn cleanup(self) -> Result<(), StoreError> {
        if let Some((base, schema)) = &self.schema {
            let admin = Store::connect(
                base,
                &StoreOptions {
                    max_connections: 1,
                    ..Default::default()
                },
            )
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&admin.pool)
            .await?;
            admin.close().await;
        }
        Ok(())
    }
}

impl Store {
    /// The database's plan for the two statements behind a page of daily activity (the
    /// page of rows, then the count and totals): `EXPLAIN QUERY PLAN` on SQLite,
    /// `EXPLAIN (ANALYZE, BUFFERS)` on PostgreSQL. For benchmarks.
    pub async fn explain_daily(
        &self,
        q: &DailyQuery,
        page_size: u64,
    ) -> Result<Vec<String>, StoreError> {
        let (prefix, column) = match self.backend {
            crate::Backend::Sqlite => ("EXPLAIN QUERY PLAN ", 3),
            crate::Backend::Postgres => ("EXPLAIN (ANALYZE, BUFFERS) ", 0),
        };
        let mut lines = Vec::new();
        for (name, sql) in [
            ("page", daily_select_sql(prefix, q, page_size, 0)),
            ("totals", daily_totals_sql(prefix, q)),
        ] {
            lines.push(format!("-- {name}"));
            for row in sql.build()?.fetch_all(&self.pool).await? {
                lines.push(row.try_get::<String, _>(column)?);
            }
        }
        Ok(lines)
    }
}

/// A database that a test can take away and give back: SQLite by holding its write lock
/// from another connection (writers then fail with "database is locked"), PostgreSQL by
/// routing connections through a relay that can drop them all and refuse new ones.
pub struct Switchable {
    /// The URL the code under test should connect with.
    pub url: String,
    relay: Option<TcpRelay>,
    lock: tokio::sync::Mutex<Option<sqlx::AnyConnection>>,
    lock_url: Option<String>,
}

impl TestDatabase {
    pub async fn switchable(&self) -> Result<Switchable, StoreError> {
        match self.backend {
            crate::Backend::Sqlite => Ok(Switchable {
                url: self.url.clone(),
                relay: None,
                lock: tokio::sync::Mutex::new(None),
                lock_url: Some(self.url.clone()),
            }),
            crate::Backend::Postgres => {
                let (authority, target) = postgres_authority(&self.url).ok_or_else(|| {
                    StoreError::Misconfigured("cannot find host:port in the test URL".into())
                })?;
                let relay = TcpRelay::start(&target).await?;
                let url = self
                    .url
                    .replacen(&authority, &format!("127.0.0.1:{}", relay.port), 1);
                Ok(Switchable {
                    url,
                    relay: Some(relay),
                    lock: tokio::sync::Mutex::new(None),
                    lock_url: None,
                })
            }
        }
    }
}

/// `host:port` of a PostgreSQL URL (port 5432 when absent), as written and as an address.
fn postgres_authority(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let target = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    };
    Some((host_port.to_string(), target))
}

impl Switchable {
    /// Makes the database unavailable until [`Switchable::up`].
    pub async fn down(&self) -> Result<(), StoreError> {
        if let Some(relay) = &self.relay {
            relay.set_up(false);
        }
        if let Some(url) = &self.lock_url {
            use sqlx::Connection;
            let mut conn = sqlx::AnyConnection::connect(url).await?;
            sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await?;
            *self.lock.lock().await = Some(conn);
        }
        Ok(())
    }

    pub async fn up(&self) -> Result<(), StoreError> {
        if let Some(relay) = &self.relay {
            relay.set_up(true);
        }
        if let Some(mut conn) = self.lock.lock().await.take() {
            sqlx::query("COMMIT").execute(&mut conn).await?;
        }
        Ok(())
    }
}

/// A TCP relay to one address that can be switched off: off, it closes every relayed
/// connection and accepts new ones only to close them.
struct TcpRelay {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pipes: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpRelay {
    async fn start(target: &str) -> Result<TcpRelay, StoreError> {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let pipes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, pipes2, target) = (up.clone(), pipes.clone(), target.to_string());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut all = pipes2
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                all.retain(|p: &tokio::task::AbortHandle| !p.is_finished());
                all.push(pipe.abort_handle());
            }
        });
        Ok(TcpRelay {
            port,
            up,
            pipes,
            accept,
        })
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            let all = self
                .pipes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for pipe in all.iter() {
                pipe.abort();
            }
        }
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.accept.abort();
        self.set_up(false);
    }
}

/// Prints the skip notice once per test binary, straight to stderr so the test harness's
/// output capture does not swallow it.
fn skip_notice() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "notice: {POSTGRES_URL_VAR} is not set; PostgreSQL tests in this binary are skipped"
        );
    });
}

/// A minimal self-deleting temporary directory (keeps `tempfile` out of the shipped crate).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> std::io::Result<Dir> {
            let path =
                std::env::temp_dir().join(format!("bursar-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&path)?;
            Ok(Dir(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Generates `mod sqlite` and `mod postgres` variants of each named test: each gets a fresh
/// store, calls `super::<name>(&store)`, then drops the database.
#[macro_export]
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = bursar_store::testing::TestDatabase::sqlite().unwrap();
                    let store = db.store().await.unwrap();
                    super::$name(&store).await;
                    store.close().await;
                    db.cleanup().await.unwrap();
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = bursar_store::testing::TestDatabase::postgres().await.unwrap() else {
                        return;
                    };
                    let store = db.store().await.unwrap();
                    super::$name(&store).await;
                    store.close().await;
                    db.cleanup().await.unwrap();
                }
            )*
        }
    };
}
