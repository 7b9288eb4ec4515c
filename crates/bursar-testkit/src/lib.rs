//! Test support for black-box tests: an OpenAI-compatible [`MockUpstream`] and a
//! [`TestGateway`] that runs the real server (same startup code as `bursar serve`) on a free
//! port against a fresh SQLite file or PostgreSQL schema.
//!
//! Test support fails loudly: a harness that cannot start is a failed test, so panics and
//! `expect` are allowed here and nowhere else outside tests.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod gateway;
mod mock;

pub use bursar_store::Backend;
pub use gateway::TestGateway;
pub use mock::{MockBehaviour, MockUpstream};

/// An `http://127.0.0.1:PORT/v1` base URL where nothing listens (an unreachable upstream).
pub fn unreachable_base_url() -> String {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    format!("http://{addr}/v1")
}

/// One sample's value from a Prometheus text page (`GET /metrics`); panics when missing.
pub fn metric_value(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{page}"))
}

/// Generates `mod sqlite` and `mod postgres` test variants of async test functions taking a
/// [`Backend`]. PostgreSQL variants skip (with a notice) when `BURSAR_TEST_POSTGRES_URL` is
/// unset outside CI.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await;
                }
            )*
        }
    };
}
