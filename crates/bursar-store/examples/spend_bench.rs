//! Spend-ledger benchmarks (a measuring tool, not a test).
//!
//! ```text
//! cargo run --release -p bursar-store --features testing --example spend_bench -- \
//!     <sqlite|postgres> ledger [EVENTS]     # events/s the ledger writer flushes
//! cargo run --release -p bursar-store --features testing --example spend_bench -- \
//!     <sqlite|postgres> ledger-one [EVENTS] # the same with one key's traffic, in order
//! cargo run --release -p bursar-store --features testing --example spend_bench -- \
//!     <sqlite|postgres> daily [EVENTS]      # daily activity over 90 days of EVENTS logs
//! ```
//!
//! Each run gets a fresh database: a temporary SQLite file, or a schema of its own in the
//! database named by `BURSAR_TEST_POSTGRES_URL` (dropped at the end).
//!
//! The traffic is a deployment of 4 organizations, 20 teams, 100 users with 2 keys each,
//! 1,000 end users, 8 models and 5 tags; 5 % of requests fail and 10 % are embeddings. The
//! ledger run's requests are live (the last ten minutes), the daily run's spread evenly over
//! the last 90 days.
//!
//! `ledger-one` is the traffic of the governed gateway benchmark (`tools/bench/admission.sh`):
//! one key of one user, team and organization, chat requests arriving in order with
//! time-ordered (v7) request ids, no end user and no tags. It prints the CPU time the process
//! spent per event, the figure to compare when changing the write path.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a CLI tool

use bursar_core::NanoUsd;
use bursar_store::testing::TestDatabase;
use bursar_store::{
    DailyEntity, DailyQuery, Ledger, LedgerOptions, NewEndUser, NewKey, NewMember, NewUser,
    OrgPatch, RecordOptions, SpendEvent, SpendLogQuery, Store, TeamPatch,
};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ORGS: usize = 4;
const TEAMS: usize = 20;
const USERS: usize = 100;
const KEYS: usize = 2 * USERS;
const END_USERS: usize = 1_000;
const MODELS: [(&str, &str); 8] = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("o3-mini", "openai"),
    ("claude-sonnet-4", "anthropic"),
    ("claude-haiku-4", "anthropic"),
    ("azure-gpt-4o", "azure"),
    ("llama-3-70b", "hosted_vllm"),
    ("text-embedding-3-small", "openai"),
];
const TAGS: [&str; 5] = ["prod", "staging", "batch", "search", "support"];
const DAY_MS: i64 = 86_400_000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: spend_bench <sqlite|postgres> <ledger|daily> [EVENTS]";
    let (Some(backend), Some(mode)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let events: usize = match args.get(2).map(|n| n.parse()) {
        None => {
            if mode == "daily" {
                1_000_000
            } else {
                200_000
            }
        }
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let db = match backend.as_str() {
        "sqlite" => TestDatabase::sqlite().expect("temporary SQLite database"),
        "postgres" => TestDatabase::postgres()
            .await
            .expect("PostgreSQL schema")
            .expect("set BURSAR_TEST_POSTGRES_URL"),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let store = db.store().await.expect("database");
    seed(&store).await;
    match mode.as_str() {
        "ledger" => ledger(&store, events, Traffic::new(10)).await,
        "ledger-one" => ledger(&store, events, Traffic::one_key()).await,
        "daily" => daily(&store, events).await,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
    store.close().await;
    db.cleanup().await.expect("cleanup");
}

/// The organizations, teams, users (one team each), keys and end users the events name, so
/// every event updates real rows as in production.
async fn seed(store: &Store) {
    for o in 0..ORGS {
        store
            .orgs()
            .create(&format!("org-{o}"), &OrgPatch::default(), None, "bench")
            .await
            .unwrap();
    }
    for t in 0..TEAMS {
        let members: Vec<NewMember> = (0..USERS)
            .filter(|u| u % TEAMS == t)
            .map(|u| NewMember {
                user_id: format!("user-{u}"),
                role: "user".into(),
                budget: None,
                create_user: Some(NewUser {
                    user_id: format!("user-{u}"),
                    user_role: "internal_user".into(),
                    ..Default::default()
                }),
            })
            .collect();
        let patch = TeamPatch {
            organization_id: Some(Some(format!("org-{}", t % ORGS))),
            ..Default::default()
        };
        store
            .teams()
            .create(&format!("team-{t}"), &patch, &members, &[])
            .await
            .unwrap();
    }
    for k in 0..KEYS {
        let (user, team) = owners(k);
        store
            .keys()
            .insert(&NewKey {
                token: format!("key-{k}"),
                user_id: Some(format!("user-{user}")),
                team_id: Some(format!("team-{team}")),
                organization_id: Some(format!("org-{}", team % ORGS)),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    for e in 0..END_USERS {
        store
            .end_users()
            .create(
                &NewEndUser {
                    user_id: format!("customer-{e}"),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
    }
}

/// Key `k`'s user and team.
fn owners(k: usize) -> (usize, usize) {
    let user = k % USERS;
    (user, user % TEAMS)
}

/// A xorshift generator: the same traffic on every run and backend.
struct Traffic {
    state: u64,
    now: i64,
    /// Requests start within this many minutes before `now`.
    spread_minutes: usize,
    /// The governed benchmark's traffic: see the module documentation.
    one_key: bool,
}

impl Traffic {
    fn new(spread_minutes: usize) -> Traffic {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        Traffic {
            state: 0x9e37_79b9_7f4a_7c15,
            now: i64::try_from(now).unwrap(),
            spread_minutes,
            one_key: false,
        }
    }

    fn one_key() -> Traffic {
        Traffic {
            one_key: true,
            ..Traffic::new(1)
        }
    }

    fn next(&mut self, bound: usize) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        usize::try_from(self.state % bound as u64).unwrap()
    }

    fn event(&mut self, i: usize) -> SpendEvent {
        if self.one_key {
            return self.one_key_event(i);
        }
        let k = self.next(KEYS);
        let (user, team) = owners(k);
        let embedding = self.next(10) == 0;
        let (model, provider) = if embedding {
            MODELS[7]
        } else {
            MODELS[self.next(7)]
        };
        let success = self.next(20) != 0;
        let prompt = 50 + self.next(2_000) as u64;
        let completion = if embedding || !success {
            0
        } else {
            self.next(800) as u64
        };
        let start = self.now - i64::try_from(self.next(self.spread_minutes)).unwrap() * 60_000;
        let tag = self.next(TAGS.len() + 1);
        SpendEvent {
            request_id: format!("bench-{i}"),
            call_type: if embedding {
                "aembedding"
            } else {
                "acompletion"
            }
            .into(),
            endpoint: if embedding {
                "/embeddings"
            } else {
                "/chat/completions"
            }
            .into(),
            api_key: format!("key-{k}"),
            user_id: Some(format!("user-{user}")),
            team_id: Some(format!("team-{team}")),
            organization_id: Some(format!("org-{}", team % ORGS)),
            end_user: Some(format!("customer-{}", self.next(END_USERS))),
            model_group: model.into(),
            model: format!("{provider}/{model}"),
            model_id: format!("deployment-{model}"),
            provider: provider.into(),
            api_base: "https://upstream.example".into(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            spend_nano: if success {
                i64::try_from(prompt * 150 + completion * 600).unwrap()
            } else {
                0
            },
            start_time: start,
            end_time: start + 400 + i64::try_from(self.next(3_000)).unwrap(),
            success,
            tags: TAGS
                .get(tag)
                .map(|t| vec![(*t).to_string()])
                .unwrap_or_default(),
            metadata: if success {
                json!({})
            } else {
                json!({"error_information": {"error_code": "500", "error_class": "APIError"}})
            },
            ..Default::default()
        }
    }
}

impl Traffic {
    /// Request `i` of the governed benchmark's traffic (12,000 requests a second).
    fn one_key_event(&mut self, i: usize) -> SpendEvent {
        let start = self.now + i64::try_from(i / 12).unwrap();
        let ms = u64::try_from(start).unwrap();
        let prompt = 20 + self.next(20) as u64;
        let completion = 10 + self.next(40) as u64;
        SpendEvent {
            request_id: uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                ms / 1_000,
                u32::try_from(ms % 1_000).unwrap() * 1_000_000,
            ))
            .to_string(),
            call_type: "acompletion".into(),
            endpoint: "/chat/completions".into(),
            api_key: "key-0".into(),
            user_id: Some("user-0".into()),
            team_id: Some("team-0".into()),
            organization_id: Some("org-0".into()),
            model_group: "gpt-4o-mini".into(),
            model: "openai/gpt-4o-mini".into(),
            model_id: "deployment-gpt-4o-mini".into(),
            provider: "openai".into(),
            api_base: "http://127.0.0.1:18180/v1".into(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            spend_nano: i64::try_from(prompt * 150 + completion * 600).unwrap(),
            start_time: start,
            end_time: start + 1,
            success: true,
            metadata: json!({}),
            requester_ip: Some("127.0.0.1".into()),
            ..Default::default()
        }
    }
}

/// Submits `n` events to a ledger writer at once (production settings: batches of 500 every
/// 500 ms) and reports how fast they are flushed to the database.
async fn ledger(store: &Store, n: usize, mut traffic: Traffic) {
    let events: Vec<SpendEvent> = (0..n).map(|i| traffic.event(i)).collect();
    let expected: i64 = events.iter().map(|e| e.spend_nano).sum();
    let spool = std::env::temp_dir().join(format!("spend-bench-{}.spool", std::process::id()));
    let mut options = LedgerOptions::new(spool);
    // Room for every event in memory: this measures the database, not the spool.
    options.buffer_events = n;
    let (ledger, writer) = Ledger::start(store.clone(), options).await;
    let cpu_before = process_cpu();
    let started = Instant::now();
    for event in events {
        ledger.submit(event);
    }
    let submitted = started.elapsed();
    let target = u64::try_from(n).unwrap();
    while ledger.stats().written < target {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let flushed = started.elapsed();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    writer.shutdown().await;
    let stats = ledger.stats();
    let logged = store.spend().logged_total().await.unwrap();
    let org_spend = org_total(store).await;
    println!(
        "backend={} events={n} submit={:.1}ms flushed_in={:.2}s throughput={:.0} events/s failed_writes={} spooled={}",
        store.backend().name(),
        submitted.as_secs_f64() * 1e3,
        flushed.as_secs_f64(),
        n as f64 / flushed.as_secs_f64(),
        stats.failed_writes,
        stats.spooled,
    );
    if let Some(cpu) = cpu {
        println!(
            "cpu: {:.2}s user+system, {:.1} µs per event",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / n as f64
        );
    }
    println!(
        "consistent: spend logs {} = events {} = organizations {}: {}",
        logged.0,
        expected,
        org_spend.0,
        logged.0 == expected && org_spend.0 == expected
    );
}

/// The CPU time (user and system) this process has used so far, where `/proc` tells.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, in clock ticks (100 a second).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

async fn org_total(store: &Store) -> NanoUsd {
    let mut total = 0;
    for o in 0..ORGS {
        let org = store
            .orgs()
            .find(&format!("org-{o}"))
            .await
            .unwrap()
            .unwrap();
        total += org.spend.0;
    }
    NanoUsd(total)
}

/// Writes `n` events over the last 90 days, then times daily-activity queries over those 90
/// days and prints the database's plans for them.
async fn daily(store: &Store, n: usize) {
    let mut traffic = Traffic::new(90 * 1_440);
    let started = Instant::now();
    let batch = 2_000;
    let mut written = 0;
    while written < n {
        let events: Vec<SpendEvent> = (written..n.min(written + batch))
            .map(|i| traffic.event(i))
            .collect();
        store
            .spend()
            .record(&events, RecordOptions::default())
            .await
            .unwrap();
        written += events.len();
        if written % 100_000 == 0 {
            println!(
                "  {written} events written ({:.0}/s)",
                written as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "backend={} wrote {n} events in batches of {batch} in {:.1}s ({:.0} events/s)",
        store.backend().name(),
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64()
    );
    let end = bursar_core::time::format_date(traffic.now);
    let start = bursar_core::time::format_date(traffic.now - 89 * DAY_MS);
    let ninety = |entity: DailyEntity| DailyQuery {
        start_date: Some(start.clone()),
        end_date: Some(end.clone()),
        page_size: 1_000,
        ..DailyQuery::new(entity)
    };
    for entity in [
        DailyEntity::User,
        DailyEntity::Team,
        DailyEntity::Organization,
        DailyEntity::Tag,
        DailyEntity::EndUser,
        DailyEntity::Key,
    ] {
        let rows = store.spend().daily(&ninety(entity)).await.unwrap();
        println!("daily rows for {entity:?}: {}", rows.total_rows);
    }
    let logs = SpendLogQuery {
        start: Some(traffic.now - 90 * DAY_MS),
        end: Some(traffic.now + 1),
        ..Default::default()
    };
    let cases = [
        ("all users, page of 1000", ninety(DailyEntity::User)),
        (
            "one user",
            DailyQuery {
                entity_ids: Some(vec!["user-7".into()]),
                ..ninety(DailyEntity::User)
            },
        ),
        (
            "one team",
            DailyQuery {
                entity_ids: Some(vec!["team-3".into()]),
                ..ninety(DailyEntity::Team)
            },
        ),
        (
            "one user, own keys only",
            DailyQuery {
                entity_ids: Some(vec!["user-7".into()]),
                api_keys: Some(vec!["key-7".into(), "key-107".into()]),
                ..ninety(DailyEntity::User)
            },
        ),
        (
            "one team, one model",
            DailyQuery {
                entity_ids: Some(vec!["team-3".into()]),
                model: Some("gpt-4o".into()),
                ..ninety(DailyEntity::Team)
            },
        ),
    ];
    println!("| query (90 days) | rows matched | median ms | max ms |");
    println!("|---|---:|---:|---:|");
    for (name, q) in &cases {
        let mut times = Vec::new();
        let mut matched = 0;
        for _ in 0..7 {
            let t = Instant::now();
            let page = store.spend().daily(q).await.unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            matched = page.total_rows;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {name} | {matched} | {:.1} | {:.1} |",
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
    let t = Instant::now();
    let count = store.spend().count_logs(&logs).await.unwrap();
    println!(
        "for scale: counting the {count} spend-log rows of those days takes {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    for (name, q) in [&cases[0], &cases[1]] {
        println!("plan for {name}:");
        for line in store.explain_daily(q, q.page_size).await.unwrap() {
            println!("    {line}");
        }
    }
}
