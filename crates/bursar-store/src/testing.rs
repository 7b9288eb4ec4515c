//! Test support: a fresh, isolated database per test on either backend.
//!
//! SQLite tests get a file in a temporary directory. PostgreSQL tests get their own schema in
//! the database named by `BURSAR_TEST_POSTGRES_URL` (selected through `search_path`), so tests
//! run in parallel without seeing each other's rows. Without that variable PostgreSQL tests are
//! skipped with a printed notice, except under CI (`CI` set), where a missing database is a
//! failure: a green CI must mean both backends ran.

use crate::{Store, StoreError, StoreOptions};
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
