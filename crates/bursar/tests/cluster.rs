//! Several real `bursar` processes on one PostgreSQL and one Redis: limits, budgets, blocks
//! and budget resets hold across instances exactly as on one.
//!
//! Each test migrates a fresh PostgreSQL schema with `bursar migrate` (the one-off job of a
//! deployment), starts three `bursar serve` processes on free ports over it and over its own
//! Redis key namespace, and spreads requests over them. The tests need
//! `BURSAR_TEST_POSTGRES_URL` and `BURSAR_TEST_REDIS_URL` (set by `.ci/run`); without them
//! they are skipped with a notice, except under CI, where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_store::testing::TestDatabase;
use bursar_testkit::{MockBehaviour, MockUpstream};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const MASTER_KEY: &str = "sk-cluster-master-key";

/// One request to `priced`: 10 completion tokens at 0.001 USD (prompts are free), and
/// `max_tokens: 10`, so the reservation is exactly the real cost.
const CALL_COST: f64 = 0.01;

struct Instance {
    url: String,
    child: Child,
}

struct Cluster {
    instances: Vec<Instance>,
    http: reqwest::Client,
    mock: MockUpstream,
    db: Option<TestDatabase>,
    redis: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

fn redis_url() -> Option<String> {
    match std::env::var("BURSAR_TEST_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("BURSAR_TEST_REDIS_URL must be set under CI")
        }
        _ => {
            eprintln!("BURSAR_TEST_REDIS_URL is not set: skipping a multi-instance test");
            None
        }
    }
}

impl Cluster {
    /// `instances` gateways over one PostgreSQL schema, sharing Redis when `redis` is true
    /// (else invalidations travel over PostgreSQL and counters are per instance).
    async fn start(instances: usize, redis: bool, behaviour: MockBehaviour) -> Option<Cluster> {
        let behaviour = MockBehaviour {
            prompt_tokens: 1,
            completion_tokens: 10,
            ..behaviour
        };
        Cluster::start_with(instances, redis, behaviour, 0.0, "").await
    }

    /// [`Cluster::start`] with a price per prompt token and extra `general_settings` lines.
    async fn start_with(
        instances: usize,
        redis: bool,
        behaviour: MockBehaviour,
        input_cost: f64,
        general: &str,
    ) -> Option<Cluster> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let redis = if redis {
            Some((
                redis_url()?,
                format!("bursar-cluster-{}", uuid::Uuid::new_v4().simple()),
            ))
        } else {
            None
        };
        let db = TestDatabase::postgres().await.unwrap()?;
        let mock = MockUpstream::with(behaviour).await;
        let dir = tempfile::tempdir().unwrap();
        let redis_settings = redis.as_ref().map_or_else(String::new, |(url, ns)| {
            format!("  redis_url: {url}\n  redis_namespace: {ns}\n")
        });
        let config = format!(
            r#"
model_list:
  - model_name: priced
    litellm_params:
      model: openai/priced-model
      api_base: {base}
      input_cost_per_token: {input_cost}
      output_cost_per_token: 0.001
general_settings:
  master_key: {MASTER_KEY}
  proxy_budget_rescheduler_min_time: 1
  spend_flush_interval_ms: 100
{general}{redis_settings}"#,
            base = mock.base_url()
        );
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).unwrap();
        let bin = env!("CARGO_BIN_EXE_bursar");

        // Migrations run once, as a job of their own, before any instance starts.
        let migrated = Command::new(bin)
            .arg("migrate")
            .arg("--config")
            .arg(&config_path)
            .env("DATABASE_URL", &db.url)
            .output()
            .await
            .unwrap();
        assert!(
            migrated.status.success(),
            "bursar migrate failed: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );

        let mut started = Vec::new();
        for i in 0..instances {
            let mut child = Command::new(bin)
                .arg("serve")
                .arg("--config")
                .arg(&config_path)
                .arg("--host")
                .arg("127.0.0.1")
                .arg("--port")
                .arg("0")
                .arg("--data-dir")
                .arg(dir.path().join(format!("instance-{i}")))
                .env("DATABASE_URL", &db.url)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let url = tokio::time::timeout(Duration::from_secs(30), async {
                while let Some(line) = lines.next_line().await.unwrap() {
                    if let Some(at) = line.find("listening on ") {
                        return line[at + "listening on ".len()..].trim().to_string();
                    }
                }
                panic!("instance {i} exited before listening")
            })
            .await
            .expect("instance starts within 30 s");
            // Keep draining stdout so the process never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            started.push(Instance { url, child });
        }
        Some(Cluster {
            instances: started,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            mock,
            db: Some(db),
            redis,
            _dir: dir,
        })
    }

    fn url(&self, instance: usize, path: &str) -> String {
        format!(
            "{}{path}",
            self.instances[instance % self.instances.len()].url
        )
    }

    async fn admin(&self, instance: usize, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(self.url(instance, path))
            .bearer_auth(MASTER_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn new_key(&self, fields: Value) -> String {
        let body = self.admin(0, "/key/generate", fields).await;
        body["key"].as_str().unwrap().to_string()
    }

    /// The key's spend as instance `instance` reads it, once it is `expected` (or after 15 s).
    async fn settled_spend(&self, instance: usize, key: &str, expected: f64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let spend = self.key_info(instance, key).await["info"]["spend"]
                .as_f64()
                .unwrap();
            if (spend - expected).abs() < 1e-9 || Instant::now() > deadline {
                return spend;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn key_info(&self, instance: usize, key: &str) -> Value {
        let response = self
            .http
            .get(self.url(instance, &format!("/key/info?key={key}")))
            .bearer_auth(MASTER_KEY)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        response.json().await.unwrap()
    }

    async fn chat(&self, instance: usize, key: &str) -> StatusCode {
        self.http
            .post(self.url(instance, "/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({
                "model": "priced",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 10,
            }))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `requests` chat calls at once, spread round-robin over the instances.
    async fn burst(&self, key: &str, requests: usize) -> Vec<StatusCode> {
        join_all((0..requests).map(|i| self.chat(i, key))).await
    }

    /// One figure from an instance's `/metrics`.
    async fn metric(&self, instance: usize, name: &str) -> u64 {
        let text = self
            .http
            .get(self.url(instance, "/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        bursar_testkit::metric_value(&text, name)
    }

    /// Deletes every key of this cluster's Redis namespace, as a Redis restart without
    /// persistence does.
    async fn wipe_redis(&self) {
        if let Some((url, namespace)) = &self.redis {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{{{namespace}}}:*"))
                .query_async(&mut conn)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: i64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    async fn stop(mut self) {
        for instance in &mut self.instances {
            let _ = instance.child.kill().await;
        }
        self.wipe_redis().await;
        if let Some(db) = self.db.take() {
            db.cleanup().await.unwrap();
        }
    }
}

fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpm_is_global_across_three_instances() {
    let Some(cluster) = Cluster::start(3, true, MockBehaviour::default()).await else {
        return;
    };
    let key = cluster.new_key(json!({"rpm_limit": 100})).await;
    let statuses = cluster.burst(&key, 300).await;
    let admitted = count(&statuses, StatusCode::OK);
    assert!(
        (95..=100).contains(&admitted),
        "admitted {admitted} of 300 with rpm 100 over 3 instances"
    );
    assert_eq!(
        admitted + count(&statuses, StatusCode::TOO_MANY_REQUESTS),
        300,
        "{statuses:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_is_never_overspent_by_500_requests_over_three_instances() {
    let Some(cluster) = Cluster::start(3, true, MockBehaviour::default()).await else {
        return;
    };
    let max_budget = 50.0 * CALL_COST;
    let key = cluster.new_key(json!({"max_budget": max_budget})).await;
    let statuses = cluster.burst(&key, 500).await;
    let admitted = count(&statuses, StatusCode::OK);
    assert!(admitted <= 50, "admitted {admitted}, the budget fits 50");
    assert!(
        admitted >= 45,
        "admitted only {admitted} of the 50 that fit"
    );
    assert_eq!(
        admitted + count(&statuses, StatusCode::UNPROCESSABLE_ENTITY),
        500,
        "refusals are budget errors: {statuses:?}"
    );
    // Every instance's ledger writes its share; the database total stays within budget.
    let expected = admitted as f64 * CALL_COST;
    let spend = cluster.settled_spend(1, &key, expected).await;
    assert!(
        (spend - expected).abs() < 1e-9,
        "spend {spend}, expected {expected}"
    );
    assert!(
        spend <= max_budget + 1e-9,
        "spend {spend} over {max_budget}"
    );
    cluster.stop().await;
}

/// Strict admission over three instances, with a provider that counts 9 prompt tokens for a
/// message Bursar counts as 8 and a price that is mostly the prompt's: spend stays within the
/// budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strict_admission_holds_over_three_instances_when_the_provider_counts_more() {
    let behaviour = MockBehaviour {
        prompt_tokens: 9,
        completion_tokens: 10,
        ..MockBehaviour::default()
    };
    let Some(cluster) =
        Cluster::start_with(3, true, behaviour, 0.01, "  budget_admission: strict\n").await
    else {
        return;
    };
    let actual = 9.0 * 0.01 + 10.0 * 0.001;
    let max_budget = 50.5 * actual;
    let key = cluster.new_key(json!({"max_budget": max_budget})).await;
    let statuses = cluster.burst(&key, 300).await;
    let admitted = count(&statuses, StatusCode::OK);
    assert_eq!(
        admitted + count(&statuses, StatusCode::UNPROCESSABLE_ENTITY),
        300,
        "refusals are budget errors: {statuses:?}"
    );
    let expected = admitted as f64 * actual;
    let spend = cluster.settled_spend(2, &key, expected).await;
    assert!(
        (spend - expected).abs() < 1e-9,
        "spend {spend}, expected {expected}"
    );
    assert!(
        spend <= max_budget + 1e-9,
        "{admitted} admitted: spend {spend} over {max_budget}"
    );
    cluster.stop().await;
}

/// Redis loses its counters (a restart) while the ledgers still hold unwritten spend: the
/// budgets are seeded again from what the store has once the ledgers flushed, not from the
/// lagging figures requests carry, and spend stays within the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restart_mid_run_does_not_let_a_budget_be_overspent() {
    let behaviour = MockBehaviour {
        prompt_tokens: 1,
        completion_tokens: 10,
        ..MockBehaviour::default()
    };
    // The ledgers write every 1.5 s: the database lags what Redis counted.
    let Some(cluster) =
        Cluster::start_with(3, true, behaviour, 0.0, "  spend_flush_interval_ms: 1500\n").await
    else {
        return;
    };
    let max_budget = 50.0 * CALL_COST;
    let key = cluster.new_key(json!({"max_budget": max_budget})).await;
    let mut admitted = 0;
    for i in 0..30 {
        if cluster.chat(i, &key).await == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 30);
    cluster.wipe_redis().await;
    let mut refused = 0;
    for i in 0..60 {
        match cluster.chat(i, &key).await {
            StatusCode::OK => admitted += 1,
            StatusCode::UNPROCESSABLE_ENTITY => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        admitted <= 50,
        "admitted {admitted} calls of a budget that fits 50"
    );
    assert!(refused >= 40, "refused {refused}");
    let expected = admitted as f64 * CALL_COST;
    let spend = cluster.settled_spend(0, &key, expected).await;
    assert!(
        spend <= max_budget + 1e-9,
        "spend {spend} over {max_budget}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_parallel_requests_hold_across_instances() {
    let behaviour = MockBehaviour {
        latency: Duration::from_millis(300),
        ..MockBehaviour::default()
    };
    let Some(cluster) = Cluster::start(3, true, behaviour).await else {
        return;
    };
    let key = cluster.new_key(json!({"max_parallel_requests": 5})).await;
    let statuses = cluster.burst(&key, 60).await;
    assert!(
        cluster.mock.peak_in_flight() <= 5,
        "{} in flight",
        cluster.mock.peak_in_flight()
    );
    assert!(count(&statuses, StatusCode::OK) >= 5, "{statuses:?}");
    assert_eq!(
        count(&statuses, StatusCode::OK) + count(&statuses, StatusCode::TOO_MANY_REQUESTS),
        60
    );
    cluster.stop().await;
}

/// Blocks a key on instance 0 once 1..n have it cached, and measures how long until every
/// other instance refuses it.
async fn block_takes_effect_everywhere_within_a_second(cluster: &Cluster) {
    let key = cluster.new_key(json!({})).await;
    for i in 0..cluster.instances.len() {
        assert_eq!(cluster.chat(i, &key).await, StatusCode::OK, "instance {i}");
    }
    let blocked_at = Instant::now();
    cluster.admin(0, "/key/block", json!({"key": key})).await;
    for i in 1..cluster.instances.len() {
        loop {
            let status = cluster.chat(i, &key).await;
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                break;
            }
            assert_eq!(status, StatusCode::OK);
            assert!(
                blocked_at.elapsed() < Duration::from_secs(1),
                "instance {i} still serves the blocked key after 1 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(blocked_at.elapsed() < Duration::from_secs(1));
    for i in 1..cluster.instances.len() {
        assert!(
            cluster
                .metric(i, "bursar_invalidations_received_total")
                .await
                >= 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blocked_key_is_refused_on_every_instance_within_a_second() {
    let Some(cluster) = Cluster::start(3, true, MockBehaviour::default()).await else {
        return;
    };
    block_takes_effect_everywhere_within_a_second(&cluster).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_invalidations_travel_over_postgres() {
    let Some(cluster) = Cluster::start(2, false, MockBehaviour::default()).await else {
        return;
    };
    block_takes_effect_everywhere_within_a_second(&cluster).await;
    assert_eq!(cluster.metric(0, "bursar_redis_admission").await, 0);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_reset_happens_once_across_instances() {
    let Some(cluster) = Cluster::start(3, true, MockBehaviour::default()).await else {
        return;
    };
    let key = cluster
        .new_key(json!({"max_budget": 1.0, "budget_duration": "1h"}))
        .await;
    // Spend, then move the key's period end into the past, as if an hour went by.
    assert_eq!(cluster.chat(0, &key).await, StatusCode::OK);
    let db = cluster.db.as_ref().unwrap();
    let store = db.store().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.key_info(0, &key).await["info"]["spend"]
        .as_f64()
        .unwrap()
        == 0.0
    {
        assert!(Instant::now() < deadline, "spend was not recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = bursar_core::keys::hash_key(&key);
    let past = bursar_store::now_ms() - 1_000;
    store
        .keys()
        .update(
            &token,
            &bursar_store::KeyPatch {
                budget_reset_at: Some(Some(past)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Every instance ticks each second; only the lease holder runs the job.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = cluster.key_info(2, &key).await;
        if info["info"]["spend"].as_f64() == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no reset: {info}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut resets = 0;
    let mut runners = 0;
    for i in 0..3 {
        resets += cluster.metric(i, "bursar_budgets_reset_total").await;
        runners += usize::from(cluster.metric(i, "bursar_budget_reset_runs_total").await > 0);
    }
    assert_eq!(resets, 1, "the key's budget was reset exactly once");
    assert_eq!(runners, 1, "one instance runs the reset job");
    let row = store.keys().find_by_hash(&token).await.unwrap().unwrap();
    assert!(row.budget_reset_at.unwrap() > bursar_store::now_ms() + 3_500_000);
    store.close().await;
    cluster.stop().await;
}
