//! A real Bursar server for black-box tests.

use crate::Backend;
use bursar::{Running, Settings};
use bursar_core::config;
use bursar_core::keys::{Secret, abbreviate_key, generate_key, hash_key};
use bursar_store::testing::{Switchable, TestDatabase};
use bursar_store::{NewKey, Store, StoreOptions};
use tokio_util::sync::CancellationToken;

pub const TEST_MASTER_KEY: &str = "sk-test-master-key";

pub struct TestGateway {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub master_key: String,
    pub http: reqwest::Client,
    /// A direct handle on the gateway's database, for fixtures and checks.
    pub store: Store,
    running: Option<Running>,
    /// What the server was started with, for [`TestGateway::restart_server`].
    settings: Settings,
    db: Option<TestDatabase>,
    switch: Option<Switchable>,
}

impl TestGateway {
    /// Starts a gateway with `config_yaml` (LiteLLM format) on a fresh database of `backend`.
    /// Returns `None` when the backend is PostgreSQL and its tests are skipped.
    pub async fn start(backend: Backend, config_yaml: &str) -> Option<TestGateway> {
        TestGateway::launch(backend, config_yaml, false).await
    }

    /// [`TestGateway::start`] on a database the test can take away and give back with
    /// [`TestGateway::database_up`] (the gateway connects through a switch; the test's own
    /// `store` connects directly).
    pub async fn start_switchable(backend: Backend, config_yaml: &str) -> Option<TestGateway> {
        TestGateway::launch(backend, config_yaml, true).await
    }

    /// Makes the gateway's database unavailable (`false`) or available again (`true`).
    pub async fn database_up(&self, up: bool) {
        let switch = self
            .switch
            .as_ref()
            .expect("started with TestGateway::start_switchable");
        let done = if up {
            switch.up().await
        } else {
            switch.down().await
        };
        done.expect("database switch");
    }

    async fn launch(backend: Backend, config_yaml: &str, switchable: bool) -> Option<TestGateway> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = match backend {
            Backend::Sqlite => TestDatabase::sqlite().expect("temporary SQLite database"),
            Backend::Postgres => TestDatabase::postgres()
                .await
                .expect("PostgreSQL test schema")?,
        };
        let loaded = config::load(config_yaml, &|name| std::env::var(name).ok()).unwrap_or_else(
            |problems| {
                let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                panic!("test config is invalid:\n{}", text.join("\n"))
            },
        );
        let mut config = loaded.config;
        // Each test gets its own spool file (the default for PostgreSQL is the working
        // directory, shared by parallel tests).
        let spool = std::env::temp_dir().join(format!(
            "bursar-test-{}.spool",
            uuid::Uuid::new_v4().simple()
        ));
        config.ledger.spool_path.get_or_insert(spool);
        let switch = if switchable {
            Some(db.switchable().await.expect("database switch"))
        } else {
            None
        };
        let settings = Settings {
            config,
            database_url: switch
                .as_ref()
                .map_or_else(|| db.url.clone(), |s| s.url.clone()),
            master_key: Secret::new(TEST_MASTER_KEY),
            host: "127.0.0.1".into(),
            port: 0,
        };
        let running = bursar::start(settings.clone(), CancellationToken::new())
            .await
            .expect("gateway starts");
        let store = Store::connect(
            &db.url,
            &StoreOptions {
                max_connections: 2,
                ..Default::default()
            },
        )
        .await
        .expect("test store connection");
        Some(TestGateway {
            url: format!("http://{}", running.addr),
            master_key: TEST_MASTER_KEY.into(),
            http: reqwest::Client::new(),
            store,
            running: Some(running),
            settings,
            db: Some(db),
            switch,
        })
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A POST with the master key as bearer.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.endpoint(path))
            .bearer_auth(&self.master_key)
    }

    /// A GET with the master key as bearer.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(self.endpoint(path))
            .bearer_auth(&self.master_key)
    }

    /// POSTs a JSON body with the master key and returns the response.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.post_json_as(&self.master_key, path, body).await
    }

    /// POSTs a JSON body with `key` as bearer and returns the response.
    pub async fn post_json_as(
        &self,
        key: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.http
            .post(self.endpoint(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request reaches the gateway")
    }

    /// Sends `method path` with `key` as bearer and an optional JSON body; returns the status
    /// and the JSON body (`null` when the body is not JSON).
    pub async fn send_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .request(method, self.endpoint(path))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request reaches the gateway");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// [`TestGateway::send_as`] with the master key.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.send_as(&self.master_key, method, path, body).await
    }

    /// `/spend/logs` once it lists at least `at_least` rows (or after 10 s, as it is then).
    /// The ledger writes in batches, so a test waits for what it caused.
    pub async fn spend_logs(&self, at_least: usize) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (_, logs) = self.send(reqwest::Method::GET, "/spend/logs", None).await;
            if logs.as_array().is_some_and(|l| l.len() >= at_least)
                || std::time::Instant::now() > deadline
            {
                return logs;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Inserts a virtual key directly in the database and returns the raw key.
    pub async fn insert_key(&self, customise: impl FnOnce(&mut NewKey)) -> String {
        let raw = generate_key();
        let mut key = NewKey {
            token: hash_key(&raw),
            key_name: Some(abbreviate_key(&raw)),
            ..Default::default()
        };
        customise(&mut key);
        self.store
            .keys()
            .insert(&key)
            .await
            .expect("insert test key");
        raw
    }

    /// Graceful shutdown of the server only: the database stays for checks, until
    /// [`TestGateway::stop`].
    pub async fn stop_server(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// Graceful shutdown of the server, then a new server on the same database and
    /// configuration (a new port: `url` changes), as after a deploy. Nothing in memory
    /// survives; what the new server knows it reads from the database.
    pub async fn restart_server(&mut self) {
        self.stop_server().await;
        let running = bursar::start(self.settings.clone(), CancellationToken::new())
            .await
            .expect("gateway restarts");
        self.url = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    /// Graceful shutdown, then removal of the test database.
    pub async fn stop(mut self) {
        self.stop_server().await;
        self.store.close().await;
        if let Some(db) = self.db.take() {
            db.cleanup().await.expect("drop test schema");
        }
    }
}
