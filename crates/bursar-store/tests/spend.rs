//! Spend-ledger store tests, on SQLite and on PostgreSQL: idempotency by request id, running
//! totals that always equal the spend logs, and daily activity pages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_core::NanoUsd;
use bursar_store::testing::TestDatabase;
use bursar_store::{
    DailyEntity, DailyQuery, Ledger, LedgerOptions, NewEndUser, NewKey, NewMember, NewUser,
    OrgPatch, RecordOptions, SpendEvent, SpendLogQuery, Store, StoreOptions, TeamPatch, TotalsBy,
};
use serde_json::json;
use std::time::Duration;

bursar_store::contract_tests!(
    the_same_request_counts_once,
    every_log_row_keeps_its_own_values,
    totals_equal_the_spend_logs_on_every_entity,
    daily_activity_pages_and_filters,
    switches_leave_out_logs_or_totals,
);

/// A SQLite file's batches go through the ledger's own connection; an in-memory database has
/// no file to open again, so its batches take the pool's path (PostgreSQL's). Both must count
/// the same.
mod sqlite_in_memory {
    async fn store() -> bursar_store::Store {
        // One connection: each of sqlx's in-memory connections is a database of its own.
        let options = bursar_store::StoreOptions {
            max_connections: 1,
            ..Default::default()
        };
        let store = bursar_store::Store::connect("sqlite::memory:", &options)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// Each named contract test, run on an in-memory database.
    macro_rules! in_memory {
        ($($name:ident),+ $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                super::$name(&store().await).await;
            }
        )+};
    }

    in_memory!(
        the_same_request_counts_once,
        every_log_row_keeps_its_own_values,
        totals_equal_the_spend_logs_on_every_entity,
        switches_leave_out_logs_or_totals,
    );
}

const DAY: i64 = 86_400_000;
/// 2026-11-20T00:00:00Z.
const T0: i64 = 1_795_132_800_000;

/// Key `k` (user `u`, team `t`, org `o`) and key `solo` without any owner.
async fn seed(store: &Store) {
    store
        .orgs()
        .create("o", &OrgPatch::default(), None, "test")
        .await
        .unwrap();
    let member = NewMember {
        user_id: "u".into(),
        role: "user".into(),
        budget: None,
        create_user: Some(NewUser {
            user_id: "u".into(),
            user_role: "internal_user".into(),
            ..Default::default()
        }),
    };
    let team = TeamPatch {
        organization_id: Some(Some("o".into())),
        ..Default::default()
    };
    store
        .teams()
        .create("t", &team, &[member], &[])
        .await
        .unwrap();
    for (token, user, team, org) in [
        ("k", Some("u"), Some("t"), Some("o")),
        ("solo", None, None, None),
    ] {
        store
            .keys()
            .insert(&NewKey {
                token: token.into(),
                user_id: user.map(Into::into),
                team_id: team.map(Into::into),
                organization_id: org.map(Into::into),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    store
        .end_users()
        .create(
            &NewEndUser {
                user_id: "eu".into(),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
}

fn event(id: &str, key: &str, spend: i64, start: i64) -> SpendEvent {
    let owned = key == "k";
    SpendEvent {
        request_id: id.into(),
        call_type: "acompletion".into(),
        endpoint: "/chat/completions".into(),
        api_key: key.into(),
        user_id: owned.then(|| "u".into()),
        team_id: owned.then(|| "t".into()),
        organization_id: owned.then(|| "o".into()),
        end_user: owned.then(|| "eu".into()),
        model_group: "gpt".into(),
        model: "openai/gpt-4o-mini".into(),
        model_id: "d1".into(),
        provider: "openai".into(),
        prompt_tokens: 10,
        completion_tokens: 5,
        total_tokens: 15,
        spend_nano: spend,
        start_time: start,
        end_time: start + 40,
        success: spend > 0,
        tags: if owned { vec!["prod".into()] } else { vec![] },
        metadata: json!({}),
        ..Default::default()
    }
}

async fn spends(store: &Store) -> [NanoUsd; 6] {
    let key = store.keys().find_by_hash("k").await.unwrap().unwrap().spend;
    let user = store.users().find("u").await.unwrap().unwrap().spend;
    let team = store.teams().find("t").await.unwrap().unwrap().spend;
    let member = store.teams().member("t", "u").await.unwrap().unwrap().spend;
    let org = store.orgs().find("o").await.unwrap().unwrap().spend;
    let end_user = store.end_users().find("eu").await.unwrap().unwrap().spend;
    [key, user, team, member, org, end_user]
}

async fn the_same_request_counts_once(store: &Store) {
    seed(store).await;
    let batch = [event("r1", "k", 700, T0), event("r2", "k", 300, T0)];
    let report = store
        .spend()
        .record(&batch, RecordOptions::default())
        .await
        .unwrap();
    assert_eq!((report.applied, report.duplicates), (2, 0));
    // Written again (a retried batch, a replayed spool) and twice inside one batch.
    let again = [
        event("r1", "k", 700, T0),
        event("r3", "k", 5, T0),
        event("r3", "k", 5, T0),
    ];
    let report = store
        .spend()
        .record(&again, RecordOptions::default())
        .await
        .unwrap();
    assert_eq!((report.applied, report.duplicates), (1, 2));
    assert_eq!(spends(store).await, [NanoUsd(1_005); 6]);
    assert_eq!(store.spend().logged_total().await.unwrap(), NanoUsd(1_005));
    let page = store
        .spend()
        .daily(&DailyQuery::new(DailyEntity::Team))
        .await
        .unwrap();
    assert_eq!(page.totals.spend, NanoUsd(1_005));
    assert_eq!(page.totals.api_requests, 3);
}

/// Rows of one batch that differ from their neighbours in every column, in runs and one by
/// one, from a value to another, to NULL and back: each is stored as its own event says (the
/// SQLite path leaves a value bound when the next row repeats it).
async fn every_log_row_keeps_its_own_values(store: &Store) {
    seed(store).await;
    let pick = |i: usize, values: &[&str]| values[(i / 2 + i % 3) % values.len()].to_string();
    let optional = |i: usize, values: &[&str]| Some(pick(i, values)).filter(|v| !v.is_empty());
    let events: Vec<SpendEvent> = (0..40)
        .map(|i| {
            let n = i as i64;
            let mut e = event(
                &format!("v{i:02}"),
                if i % 4 < 2 { "k" } else { "solo" },
                10 + n,
                T0 + n,
            );
            e.call_type = pick(i, &["acompletion", "aembedding"]);
            e.endpoint = pick(i, &["/chat/completions", "/embeddings"]);
            e.user_id = optional(i, &["u", "", "u2"]);
            e.team_id = optional(i, &["", "t"]);
            e.organization_id = optional(i, &["o", "", "", "o2"]);
            e.end_user = optional(i, &["", "eu", "eu2"]);
            e.model_group = pick(i, &["gpt", "claude", "gpt"]);
            e.model = pick(i, &["openai/gpt-4o-mini", "anthropic/claude"]);
            e.model_id = pick(i, &["d1", "d2", "d3"]);
            e.provider = pick(i, &["openai", "anthropic"]);
            e.api_base = pick(i, &["", "http://a", "http://b"]);
            e.requester_ip = optional(i, &["10.0.0.1", "", "10.0.0.2"]);
            e.success = i % 5 != 0;
            e.tags = match i % 3 {
                0 => vec![],
                1 => vec!["prod".into()],
                _ => vec!["prod".into(), "batch".into()],
            };
            e.metadata = if i % 4 == 0 {
                json!({"note": i})
            } else {
                json!({})
            };
            e.completion_start_time = (i % 2 == 0).then(|| T0 + n + 5);
            e.prompt_tokens = 3 * i as u64;
            e.cache_read_input_tokens = i as u64;
            e
        })
        .collect();
    let report = store
        .spend()
        .record(&events, RecordOptions::default())
        .await
        .unwrap();
    assert_eq!(report.applied, events.len());
    let query = SpendLogQuery {
        limit: 1_000,
        ..Default::default()
    };
    let mut rows = store.spend().logs(&query).await.unwrap();
    rows.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    assert_eq!(rows.len(), events.len());
    for (row, e) in rows.iter().zip(&events) {
        let id = &e.request_id;
        assert_eq!(row.request_id, *id);
        assert_eq!(row.call_type, e.call_type, "{id}");
        assert_eq!(row.endpoint, e.endpoint, "{id}");
        assert_eq!(row.api_key, e.api_key, "{id}");
        assert_eq!(row.user_id, e.user_id, "{id}");
        assert_eq!(row.team_id, e.team_id, "{id}");
        assert_eq!(row.organization_id, e.organization_id, "{id}");
        assert_eq!(row.end_user, e.end_user, "{id}");
        assert_eq!(row.model_group, e.model_group, "{id}");
        assert_eq!(row.model, e.model, "{id}");
        assert_eq!(row.model_id, e.model_id, "{id}");
        assert_eq!(row.custom_llm_provider, e.provider, "{id}");
        assert_eq!(row.api_base, e.api_base, "{id}");
        assert_eq!(row.requester_ip_address, e.requester_ip, "{id}");
        assert_eq!(
            row.status,
            if e.success { "success" } else { "failure" },
            "{id}"
        );
        assert_eq!(row.request_tags, json!(e.tags), "{id}");
        assert_eq!(row.metadata, e.metadata, "{id}");
        assert_eq!(row.spend, e.spend(), "{id}");
        assert_eq!(row.prompt_tokens, e.prompt_tokens as i64, "{id}");
        assert_eq!(
            row.cache_read_input_tokens, e.cache_read_input_tokens as i64,
            "{id}"
        );
        assert_eq!(row.start_time, e.start_time, "{id}");
        assert_eq!(row.end_time, e.end_time, "{id}");
        assert_eq!(row.completion_start_time, e.completion_start_time, "{id}");
        assert_eq!(row.cache_hit, "False", "{id}");
        assert_eq!(row.session_id, None, "{id}");
    }
}

async fn totals_equal_the_spend_logs_on_every_entity(store: &Store) {
    seed(store).await;
    // 600 events over 3 days and two keys, in batches of varied size, some replayed.
    let events: Vec<SpendEvent> = (0..600)
        .map(|i| {
            let key = if i % 3 == 0 { "solo" } else { "k" };
            event(
                &format!("r{i}"),
                key,
                (i * 7919) % 100_000,
                T0 + (i % 3) * DAY + i,
            )
        })
        .collect();
    let mut at = 0;
    for size in [1, 7, 450, 142] {
        let batch = &events[at..at + size];
        store
            .spend()
            .record(batch, RecordOptions::default())
            .await
            .unwrap();
        store
            .spend()
            .record(&batch[..size / 2], RecordOptions::default())
            .await
            .unwrap();
        at += size;
    }
    let sum = |key: Option<&str>| {
        NanoUsd(
            events
                .iter()
                .filter(|e| key.is_none_or(|k| e.api_key == k))
                .map(|e| e.spend_nano)
                .sum(),
        )
    };
    let owned = sum(Some("k"));
    assert_eq!(spends(store).await, [owned; 6]);
    let solo = store.keys().find_by_hash("solo").await.unwrap().unwrap();
    assert_eq!(solo.spend, sum(Some("solo")));
    assert_eq!(store.spend().logged_total().await.unwrap(), sum(None));
    for (entity, want) in [
        (DailyEntity::Key, sum(None)),
        (DailyEntity::User, owned),
        (DailyEntity::Team, owned),
        (DailyEntity::Organization, owned),
        (DailyEntity::EndUser, owned),
        (DailyEntity::Tag, owned),
    ] {
        let page = store.spend().daily(&DailyQuery::new(entity)).await.unwrap();
        assert_eq!(page.totals.spend, want, "{entity:?}");
        let rows: NanoUsd = page
            .rows
            .iter()
            .fold(NanoUsd::ZERO, |a, r| a.saturating_add(r.metrics.spend));
        assert_eq!(rows, want, "{entity:?} rows");
    }
    let logged = store
        .spend()
        .count_logs(&SpendLogQuery::default())
        .await
        .unwrap();
    assert_eq!(logged, 600);
}

async fn daily_activity_pages_and_filters(store: &Store) {
    seed(store).await;
    let mut events = Vec::new();
    for day in 0..5 {
        for (n, key) in ["k", "solo"].iter().enumerate() {
            let mut e = event(
                &format!("d{day}-{n}"),
                key,
                1_000 * (day + 1),
                T0 + day * DAY,
            );
            if n == 1 {
                e.model_group = "embed".into();
                e.success = false;
            }
            events.push(e);
        }
    }
    store
        .spend()
        .record(&events, RecordOptions::default())
        .await
        .unwrap();
    let spend = store.spend();
    // Newest day first, two rows per page, totals over every page.
    let mut q = DailyQuery::new(DailyEntity::Key);
    q.page_size = 2;
    let first = spend.daily(&q).await.unwrap();
    assert_eq!(first.total_rows, 10);
    assert_eq!(first.rows.len(), 2);
    assert_eq!(first.rows[0].date, "2026-11-24");
    assert_eq!(first.totals.spend, NanoUsd(2 * 15_000));
    assert_eq!(first.totals.failed_requests, 5);
    q.page = 5;
    let last = spend.daily(&q).await.unwrap();
    assert_eq!(last.rows[0].date, "2026-11-20");
    q.page = 6;
    assert!(spend.daily(&q).await.unwrap().rows.is_empty());
    // Every row at once, whatever the page, up to a bound.
    let all = spend.daily_rows(&q, u64::MAX).await.unwrap();
    assert_eq!(all.len(), 10);
    assert_eq!(all[0].date, "2026-11-24");
    assert_eq!(spend.daily_rows(&q, 3).await.unwrap().len(), 3);
    // Dates (inclusive), model, key, include and exclude lists.
    let mut q = DailyQuery::new(DailyEntity::Key);
    q.start_date = Some("2026-11-21".into());
    q.end_date = Some("2026-11-22".into());
    q.model = Some("embed".into());
    let page = spend.daily(&q).await.unwrap();
    assert_eq!(page.totals.spend, NanoUsd(2_000 + 3_000));
    assert!(page.rows.iter().all(|r| r.api_key == "solo"));
    let mut q = DailyQuery::new(DailyEntity::Key);
    q.exclude_entity_ids = vec!["solo".into()];
    assert_eq!(spend.daily(&q).await.unwrap().totals.api_requests, 5);
    q.api_keys = Some(Vec::new());
    assert_eq!(spend.daily(&q).await.unwrap().total_rows, 0);
    let mut q = DailyQuery::new(DailyEntity::Team);
    q.entity_ids = Some(vec!["t".into(), "other".into()]);
    q.api_key = Some("k".into());
    assert_eq!(spend.daily(&q).await.unwrap().totals.spend, NanoUsd(15_000));
    // Sums by dimension, largest first.
    let by_key = spend
        .totals_by(
            DailyEntity::Key,
            TotalsBy::ApiKey,
            "2026-11-01",
            "2026-11-30",
            10,
        )
        .await
        .unwrap();
    assert_eq!(by_key.len(), 2);
    assert_eq!(by_key[0].metrics.spend, NanoUsd(15_000));
    let by_day = spend
        .daily_totals_by(
            DailyEntity::Team,
            TotalsBy::Entity,
            "2026-11-20",
            "2026-11-21",
        )
        .await
        .unwrap();
    assert_eq!(by_day.len(), 2);
    assert_eq!(by_day[1].0, "2026-11-21");
    assert_eq!(by_day[1].1.metrics.spend, NanoUsd(2_000));
    // Spend logs: filters and newest first.
    let logs = spend
        .logs(&SpendLogQuery {
            api_key: Some("solo".into()),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0].request_id, "d4-1");
    assert_eq!(logs[0].status, "failure");
    assert_eq!(logs[0].model_group, "embed");
    let one = spend
        .logs(&SpendLogQuery {
            request_id: Some("d0-0".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].request_tags, json!(["prod"]));
    assert_eq!(one[0].spend, NanoUsd(1_000));
}

async fn switches_leave_out_logs_or_totals(store: &Store) {
    seed(store).await;
    let no_logs = RecordOptions {
        spend_logs: false,
        totals: true,
    };
    store
        .spend()
        .record(&[event("a", "k", 10, T0)], no_logs)
        .await
        .unwrap();
    let no_totals = RecordOptions {
        spend_logs: true,
        totals: false,
    };
    store
        .spend()
        .record(&[event("b", "k", 20, T0)], no_totals)
        .await
        .unwrap();
    assert_eq!(spends(store).await, [NanoUsd(10); 6]);
    assert_eq!(store.spend().logged_total().await.unwrap(), NanoUsd(20));
}

/// A test over a [`TestDatabase`] (its own, switchable), on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($module:ident, $test:ident) => {
        mod $module {
            #[tokio::test]
            async fn sqlite() {
                let db = bursar_store::testing::TestDatabase::sqlite().unwrap();
                super::$test(&db).await;
                db.cleanup().await.unwrap();
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = bursar_store::testing::TestDatabase::postgres()
                    .await
                    .unwrap()
                else {
                    return;
                };
                super::$test(&db).await;
                db.cleanup().await.unwrap();
            }
        }
    };
}

on_both_backends!(outage, no_event_is_lost_while_the_database_is_away);

on_both_backends!(
    dead_letters,
    a_bad_event_is_dead_lettered_and_every_other_one_written
);

/// Events with NUL in their text (which PostgreSQL refuses) among good ones: each batch
/// holding one is split until the bad event is found; it goes to the dead-letter file and
/// every other event is written, then and later. A spool holding a bad event is replayed the
/// same way at the next start.
async fn a_bad_event_is_dead_lettered_and_every_other_one_written(db: &TestDatabase) {
    let store = db.store().await.unwrap();
    seed(&store).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spend.spool");
    let dead = dir.path().join("spend.spool.dead");
    let options = LedgerOptions {
        batch_size: 16,
        flush_interval: Duration::from_millis(20),
        ..LedgerOptions::new(spool.clone())
    };
    let bad = |i: i64| {
        let mut e = event(&format!("bad{i}"), "k", 1_000_000, T0 + i);
        if i % 2 == 0 {
            e.tags = vec!["x\0y".into()];
        } else {
            e.metadata = json!({"spend_logs_metadata": {"k": "\0"}});
        }
        e
    };
    let (ledger, writer) = Ledger::start(store.clone(), options.clone()).await;
    let mut good = 0;
    for i in 0..50 {
        if i == 17 || i == 33 {
            ledger.submit(bad(i));
        } else {
            ledger.submit(event(&format!("good{i}"), "k", 10, T0 + i));
            good += 10;
        }
    }
    wait_for("every good event and both bad ones dead-lettered", || {
        let s = ledger.stats();
        s.written == 48 && s.dead_lettered == 2
    })
    .await;
    // Later events are not held up either.
    ledger.submit(event("after", "k", 5, T0 + 60));
    wait_for("the next event", || ledger.stats().written == 49).await;
    writer.shutdown().await;
    assert_eq!(ledger.stats().pending, 0);
    assert_eq!(
        store.spend().logged_total().await.unwrap(),
        NanoUsd(good + 5)
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["event"]["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bad17", "bad33"]);
    assert!(
        lines[0]["error"].as_str().unwrap().contains("NUL"),
        "{lines:?}"
    );

    // A spool with a bad event in it, replayed at start.
    let mut text = String::new();
    for e in [
        event("s1", "k", 7, T0 + 70),
        bad(71),
        event("s2", "k", 7, T0 + 72),
    ] {
        text.push_str(&serde_json::to_string(&e).unwrap());
        text.push('\n');
    }
    std::fs::write(&spool, text).unwrap();
    let (again, writer) = Ledger::start(store.clone(), options).await;
    assert_eq!(again.stats().dead_lettered, 1);
    assert!(!spool.exists(), "the replayed spool is done with");
    writer.shutdown().await;
    assert_eq!(
        store.spend().logged_total().await.unwrap(),
        NanoUsd(good + 5 + 14)
    );
    assert_eq!(std::fs::read_to_string(&dead).unwrap().lines().count(), 3);
    store.close().await;
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Events keep arriving while the database refuses writes (PostgreSQL connections dropped
/// and refused, or the SQLite file locked): they wait in memory, overflow to the spool, and
/// are all written once it is back. Shutdown during an outage spools the rest, and the next
/// start writes them before it returns.
async fn no_event_is_lost_while_the_database_is_away(db: &TestDatabase) {
    let admin = db.store().await.unwrap();
    seed(&admin).await;
    let switch = db.switchable().await.unwrap();
    let options = StoreOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_millis(500),
    };
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spend.spool");
    let ledger_options = LedgerOptions {
        batch_size: 20,
        flush_interval: Duration::from_millis(20),
        buffer_events: 50,
        write_timeout: Duration::from_secs(1),
        drain_timeout: Duration::from_millis(500),
        ..LedgerOptions::new(spool.clone())
    };
    let store = Store::connect(&switch.url, &options).await.unwrap();
    let (ledger, writer) = Ledger::start(store.clone(), ledger_options.clone()).await;
    let mut events = Vec::new();
    let mut submit = |ledger: &Ledger, n: usize| {
        for _ in 0..n {
            let i = events.len() as i64;
            let e = event(&format!("o{i}"), "k", 1 + i * 13, T0 + i);
            ledger.submit(e.clone());
            events.push(e);
        }
    };
    submit(&ledger, 100);
    wait_for("the first 100 events", || ledger.stats().written == 100).await;

    switch.down().await.unwrap();
    submit(&ledger, 300);
    wait_for("failed writes and spooling", || {
        let s = ledger.stats();
        s.failed_writes > 0 && s.spooled > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(ledger.stats().written < 400, "{:?}", ledger.stats());
    switch.up().await.unwrap();
    wait_for("every event after the outage", || {
        ledger.stats().written == 400
    })
    .await;
    assert!(!spool.exists());

    // Shutdown while the database is away: the rest is spooled, then written at next start.
    switch.down().await.unwrap();
    submit(&ledger, 30);
    writer.shutdown().await;
    assert_eq!(ledger.stats().written, 400);
    assert!(spool.exists());
    // Submitted after shutdown (a stream finishing late): spooled too.
    submit(&ledger, 1);
    switch.up().await.unwrap();
    store.close().await;

    let store = Store::connect(&switch.url, &options).await.unwrap();
    let (again, writer) = Ledger::start(store.clone(), ledger_options).await;
    assert_eq!(again.stats().replayed, 31);
    assert!(!spool.exists());
    writer.shutdown().await;
    store.close().await;

    let total = bursar_core::NanoUsd(events.iter().map(|e| e.spend_nano).sum());
    assert_eq!(admin.spend().logged_total().await.unwrap(), total);
    assert_eq!(spends(&admin).await, [total; 6]);
    let logged = admin
        .spend()
        .count_logs(&SpendLogQuery::default())
        .await
        .unwrap();
    assert_eq!(logged, 431);
    admin.close().await;
}

/// The writer wakes for a full batch at once, and for a partial one only at its flush
/// interval (or at shutdown, which drains everything).
#[tokio::test]
async fn full_batches_are_written_at_once_and_the_rest_at_the_interval() {
    let db = TestDatabase::sqlite().unwrap();
    let store = db.store().await.unwrap();
    seed(&store).await;
    let dir = tempfile::tempdir().unwrap();
    let options = LedgerOptions {
        batch_size: 10,
        flush_interval: Duration::from_secs(3_600),
        ..LedgerOptions::new(dir.path().join("spend.spool"))
    };
    let (ledger, writer) = Ledger::start(store.clone(), options).await;
    let submit = |range: std::ops::Range<i64>| {
        for i in range {
            ledger.submit(event(&format!("b{i}"), "k", 10, T0 + i));
        }
    };
    submit(0..5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ledger.stats().written,
        0,
        "a partial batch waits for its interval"
    );
    submit(5..25);
    wait_for("two full batches", || ledger.stats().written >= 20).await;
    writer.shutdown().await;
    assert_eq!(ledger.stats().written, 25);
    assert_eq!(store.spend().logged_total().await.unwrap(), NanoUsd(250));
    store.close().await;
}
