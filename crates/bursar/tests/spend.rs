//! Black-box tests of spend tracking: every request's cost is recorded once and rolls up to
//! key, user, team, membership, organization, end user and the daily tables, exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_core::NanoUsd;
use bursar_store::{DailyEntity, DailyQuery, SpendLogQuery, SpendLogRow, Store};
use bursar_testkit::{Backend, MockBehaviour, MockUpstream, TestGateway, both_backends};
use futures_util::StreamExt;
use futures_util::stream;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    a_thousand_mixed_requests_add_up_everywhere,
    a_restarted_gateway_enforces_the_recorded_spend,
    the_forwarded_client_address_is_logged_when_trusted,
    each_response_carries_its_cost_and_one_spend_log,
    shutdown_writes_every_event,
    no_spend_is_lost_while_the_database_is_away,
    daily_activity_routes_answer_from_the_daily_tables,
    spend_log_routes_filter_summarize_and_page,
    global_spend_reports_for_admins,
    aggregated_activity_exports_and_team_spend_by_user,
);

/// Per token: 1e-7 input, 1e-6 output. The mock reports 8 prompt and 10 completion tokens.
const CALL_NANO: i64 = 8 * 100 + 10 * 1_000;

const FAST_FLUSH: &str = "  spend_flush_interval_ms: 50\n  spend_batch_size: 100\n";

struct Upstreams {
    ok: MockUpstream,
    _failing: MockUpstream,
    _slow: MockUpstream,
}

/// `flush` is the ledger's `general_settings` (interval, batch size).
async fn start(backend: Backend, flush: &str) -> Option<(TestGateway, Upstreams)> {
    start_on(backend, flush, false).await
}

async fn start_on(
    backend: Backend,
    flush: &str,
    switchable: bool,
) -> Option<(TestGateway, Upstreams)> {
    let tokens = |b: MockBehaviour| MockBehaviour {
        prompt_tokens: 8,
        completion_tokens: 10,
        ..b
    };
    let ok = MockUpstream::with(tokens(MockBehaviour::default())).await;
    let failing = MockUpstream::with(tokens(MockBehaviour {
        error_status: Some(500),
        ..Default::default()
    }))
    .await;
    let slow = MockUpstream::with(tokens(MockBehaviour {
        chunk_delay: Duration::from_millis(40),
        stream_chunks: 6,
        ..Default::default()
    }))
    .await;
    let model = |name: &str, base: String, mode: &str| {
        format!(
            "  - model_name: {name}\n    litellm_params:\n      model: openai/{name}-model\n      api_base: {base}\n      input_cost_per_token: 0.0000001\n      output_cost_per_token: 0.000001\n    model_info:\n      mode: {mode}\n"
        )
    };
    let config = format!(
        "model_list:\n{}{}{}{}general_settings:\n{flush}",
        model("priced", ok.base_url(), "chat"),
        model("embed", ok.base_url(), "embedding"),
        model("flaky", failing.base_url(), "chat"),
        model("slow", slow.base_url(), "chat"),
    );
    let gw = if switchable {
        TestGateway::start_switchable(backend, &config).await?
    } else {
        TestGateway::start(backend, &config).await?
    };
    Some((
        gw,
        Upstreams {
            ok,
            _failing: failing,
            _slow: slow,
        },
    ))
}

async fn post(gw: &TestGateway, path: &str, body: Value) -> Value {
    let (status, out) = gw.send(Method::POST, path, Some(&body)).await;
    assert_eq!(status, 200, "{path} {body} → {out}");
    out
}

/// Org `o`, team `t` in it with member `u`, and a key of `u` in `t`.
async fn owned_key(gw: &TestGateway) -> (String, String) {
    post(
        gw,
        "/organization/new",
        json!({"organization_id": "o", "organization_alias": "org"}),
    )
    .await;
    post(
        gw,
        "/team/new",
        json!({"team_id": "t", "organization_id": "o", "members_with_roles": [{"role": "user", "user_id": "u"}]}),
    )
    .await;
    let key = post(
        gw,
        "/key/generate",
        json!({"user_id": "u", "team_id": "t", "max_budget": 100.0}),
    )
    .await;
    (
        key["key"].as_str().unwrap().to_string(),
        key["token"].as_str().unwrap().to_string(),
    )
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10,
           "stream": stream, "user": "eu-1", "metadata": {"tags": ["load"]}})
}

/// Sends one request of kind `i % 20` and reads its answer (or leaves a slow stream after
/// its first chunk).
async fn one(gw: &TestGateway, key: &str, i: usize) -> u16 {
    let (path, body, leave_early) = match i % 20 {
        0..=7 => ("/v1/chat/completions", chat("priced", false), false),
        8..=12 => ("/v1/chat/completions", chat("priced", true), false),
        13..=15 => (
            "/v1/embeddings",
            json!({"model": "embed", "input": ["a", "b"], "user": "eu-1"}),
            false,
        ),
        16 | 17 => ("/v1/chat/completions", chat("flaky", false), false),
        18 => ("/v1/chat/completions", chat("slow", true), true),
        _ => ("/v1/chat/completions", chat("slow", true), false),
    };
    let response = gw
        .http
        .post(gw.endpoint(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let mut body = response.bytes_stream();
    if leave_early {
        let _ = body.next().await;
        return status;
    }
    while let Some(chunk) = body.next().await {
        if chunk.is_err() {
            break;
        }
    }
    status
}

async fn logged(store: &Store) -> u64 {
    store
        .spend()
        .count_logs(&SpendLogQuery::default())
        .await
        .unwrap()
}

/// The newest ten spend-log rows.
async fn recent_logs(store: &Store) -> Vec<SpendLogRow> {
    store
        .spend()
        .logs(&SpendLogQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn wait_for_logs(store: &Store, n: u64) {
    for _ in 0..600 {
        if logged(store).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("only {} of {n} requests were logged", logged(store).await);
}

async fn a_thousand_mixed_requests_add_up_everywhere(backend: Backend) {
    let Some((gw, _up)) = start(backend, FAST_FLUSH).await else {
        return;
    };
    let (key, token) = owned_key(&gw).await;
    let statuses: Vec<u16> = stream::iter(0..1_000)
        .map(|i| one(&gw, &key, i))
        .buffer_unordered(50)
        .collect()
        .await;
    assert_eq!(statuses.iter().filter(|s| **s == 500).count(), 100);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 900);
    wait_for_logs(&gw.store, 1_000).await;
    // Give late writers a moment, then nothing more may arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(logged(&gw.store).await, 1_000);

    let spend = gw.store.spend();
    let total = spend.logged_total().await.unwrap();
    // Per 20 requests: 14 completed chat calls cost exactly CALL_NANO, 3 embeddings their 8
    // prompt tokens, 2 failures nothing, and a stream left early its usage or its estimate
    // (never more than a call: the estimate is 8 prompt + max_tokens 10).
    let at_least = NanoUsd(50 * 14 * CALL_NANO + 50 * 3 * 800);
    assert!(total >= at_least, "{total:?} < {at_least:?}");
    assert!(total <= NanoUsd(at_least.0 + 50 * CALL_NANO), "{total:?}");

    let key_row = gw.store.keys().find_by_hash(&token).await.unwrap().unwrap();
    let user = gw.store.users().find("u").await.unwrap().unwrap();
    let team = gw.store.teams().find("t").await.unwrap().unwrap();
    let member = gw.store.teams().member("t", "u").await.unwrap().unwrap();
    let org = gw.store.orgs().find("o").await.unwrap().unwrap();
    let end_user = gw.store.end_users().find("eu-1").await.unwrap().unwrap();
    for (what, value) in [
        ("key", key_row.spend),
        ("user", user.spend),
        ("team", team.spend),
        ("team member", member.spend),
        ("organization", org.spend),
        ("end user", end_user.spend),
    ] {
        assert_eq!(value, total, "{what} spend");
    }
    for entity in [
        DailyEntity::Key,
        DailyEntity::User,
        DailyEntity::Team,
        DailyEntity::Organization,
        DailyEntity::EndUser,
        DailyEntity::Tag,
    ] {
        let page = spend.daily(&DailyQuery::new(entity)).await.unwrap();
        // Embedding requests carry no tags.
        let (want, requests) = if entity == DailyEntity::Tag {
            (NanoUsd(total.0 - 150 * 800), 850)
        } else {
            (total, 1_000)
        };
        assert_eq!(page.totals.spend, want, "{entity:?} daily spend");
        assert_eq!(page.totals.api_requests, requests, "{entity:?} requests");
    }
    let key_daily = spend
        .daily(&DailyQuery::new(DailyEntity::Key))
        .await
        .unwrap()
        .totals;
    assert_eq!(key_daily.failed_requests, 100 + 50);
    assert_eq!(key_daily.successful_requests, 850);
    // The key's live figure (what /key/info shows) is the ledger's too.
    let (status, info) = gw
        .send(Method::GET, &format!("/key/info?key={key}"), None)
        .await;
    assert_eq!(status, 200);
    let shown = NanoUsd::from_usd(info["info"]["spend"].as_f64().unwrap()).unwrap();
    assert_eq!(shown, total);
    // So do the other info routes.
    for (path, field) in [
        ("/user/info?user_id=u", "/user_info/spend"),
        ("/team/info?team_id=t", "/team_info/spend"),
        ("/organization/info?organization_id=o", "/spend"),
        ("/customer/info?end_user_id=eu-1", "/spend"),
    ] {
        let (status, info) = gw.send(Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {info}");
        let usd = info.pointer(field).and_then(Value::as_f64);
        let shown = usd.and_then(NanoUsd::from_usd);
        assert_eq!(shown, Some(total), "{path}: {info}");
    }
    gw.stop().await;
}

/// With `use_x_forwarded_for`, the spend log names the first forwarded address; a header
/// that is not an address falls back to the connection's peer.
async fn the_forwarded_client_address_is_logged_when_trusted(backend: Backend) {
    let Some((gw, _up)) = start(
        backend,
        &format!("{FAST_FLUSH}  use_x_forwarded_for: true\n"),
    )
    .await
    else {
        return;
    };
    let (key, _) = owned_key(&gw).await;
    for forwarded in ["203.0.113.7, 10.0.0.1", "2001:db8::1", "not-an-address"] {
        let response = gw
            .http
            .post(gw.endpoint("/v1/chat/completions"))
            .bearer_auth(&key)
            .header("x-forwarded-for", forwarded)
            .json(&chat("priced", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    wait_for_logs(&gw.store, 3).await;
    let logs = recent_logs(&gw.store).await;
    let mut seen: Vec<String> = logs
        .into_iter()
        .filter_map(|l| l.requester_ip_address)
        .collect();
    seen.sort();
    assert_eq!(seen, ["127.0.0.1", "2001:db8::1", "203.0.113.7"]);
    gw.stop().await;
}

/// Admission after a restart starts from the spend the ledger wrote, not from zero.
async fn a_restarted_gateway_enforces_the_recorded_spend(backend: Backend) {
    let Some((mut gw, _up)) = start(backend, FAST_FLUSH).await else {
        return;
    };
    let (key, token) = owned_key(&gw).await;
    for i in 0..5 {
        assert_eq!(one(&gw, &key, i).await, 200);
    }
    wait_for_logs(&gw.store, 5).await;
    let spent = gw
        .store
        .keys()
        .find_by_hash(&token)
        .await
        .unwrap()
        .unwrap()
        .spend;
    assert_eq!(spent, NanoUsd(5 * CALL_NANO));
    gw.restart_server().await;
    // A budget of exactly what was spent: only a gateway that read the spend back refuses.
    post(
        &gw,
        "/key/update",
        json!({"key": key, "max_budget": spent.as_usd()}),
    )
    .await;
    let response = gw
        .post_json_as(&key, "/v1/chat/completions", &chat("priced", false))
        .await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["type"], "budget_exceeded", "{body}");
    // Raising the budget admits again.
    post(&gw, "/key/update", json!({"key": key, "max_budget": 1.0})).await;
    assert_eq!(one(&gw, &key, 0).await, 200);
    gw.stop().await;
}

async fn each_response_carries_its_cost_and_one_spend_log(backend: Backend) {
    let Some((gw, up)) = start(backend, FAST_FLUSH).await else {
        return;
    };
    let (key, token) = owned_key(&gw).await;
    let response = gw
        .http
        .post(gw.endpoint("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("x-litellm-call-id", "client-chosen")
        // Not trusted unless `use_x_forwarded_for` is set.
        .header("x-forwarded-for", "203.0.113.9")
        .json(&chat("priced", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cost: f64 = response.headers()["x-litellm-response-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(NanoUsd::from_usd(cost), Some(NanoUsd(CALL_NANO)));
    assert_eq!(response.headers()["x-litellm-call-id"], "client-chosen");
    // A second request with the same client call id is a second request, not a duplicate.
    let again = gw
        .http
        .post(gw.endpoint("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("x-litellm-call-id", "client-chosen")
        .json(&chat("priced", false))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let failed = gw
        .http
        .post(gw.endpoint("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat("flaky", false))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
    let id = failed.headers().get("x-litellm-call-id").cloned();
    wait_for_logs(&gw.store, 3).await;
    let logs = recent_logs(&gw.store).await;
    assert_eq!(logs.len(), 3);
    let ok = logs.iter().find(|l| l.status == "success").unwrap();
    assert_eq!(ok.spend, NanoUsd(CALL_NANO));
    assert_eq!(ok.api_key, token);
    assert_eq!(ok.call_type, "acompletion");
    assert_eq!(ok.model_group, "priced");
    assert_eq!(ok.model, "openai/priced-model");
    assert_eq!(ok.custom_llm_provider, "openai");
    assert_eq!(ok.api_base, up.ok.base_url());
    assert_eq!((ok.prompt_tokens, ok.completion_tokens), (8, 10));
    assert_eq!(ok.user_id.as_deref(), Some("u"));
    assert_eq!(ok.team_id.as_deref(), Some("t"));
    assert_eq!(ok.organization_id.as_deref(), Some("o"));
    assert_eq!(ok.end_user.as_deref(), Some("eu-1"));
    assert_eq!(ok.request_tags, json!(["load"]));
    assert_ne!(ok.request_id, "client-chosen");
    assert!(
        logs.iter()
            .all(|l| l.requester_ip_address.as_deref() == Some("127.0.0.1"))
    );
    let bad = logs.iter().find(|l| l.status == "failure").unwrap();
    assert_eq!(bad.spend, NanoUsd::ZERO);
    assert!(bad.metadata["error_information"]["error_message"].is_string());
    if let Some(id) = id {
        assert_eq!(bad.request_id, id.to_str().unwrap());
    }
    gw.stop().await;
}

async fn shutdown_writes_every_event(backend: Backend) {
    // Nothing is flushed before shutdown: only the drain can write these.
    let slow_flush = "  spend_flush_interval_ms: 600000\n  spend_batch_size: 100000\n";
    let Some((mut gw, _up)) = start(backend, slow_flush).await else {
        return;
    };
    let (key, _) = owned_key(&gw).await;
    let statuses: Vec<u16> = stream::iter(0..200)
        .map(|i| one(&gw, &key, i % 16))
        .buffer_unordered(20)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200));
    assert_eq!(logged(&gw.store).await, 0);
    // Straight to shutdown: whatever the writer still holds must reach the database.
    gw.stop_server().await;
    assert_eq!(logged(&gw.store).await, 200);
    let team = gw.store.teams().find("t").await.unwrap().unwrap();
    assert_eq!(team.spend, gw.store.spend().logged_total().await.unwrap());
    gw.stop().await;
}

/// The database goes away for 10 s under load (PostgreSQL connections dropped and refused,
/// or the SQLite file locked): requests keep being served, and once it is back every one of
/// them is in the spend logs and the totals.
async fn no_spend_is_lost_while_the_database_is_away(backend: Backend) {
    let buffer = format!("{FAST_FLUSH}  spend_buffer_events: 100\n");
    let Some((gw, _up)) = start_on(backend, &buffer, true).await else {
        return;
    };
    let (key, token) = owned_key(&gw).await;
    // Warm the caches: the key and the end user are then served without the database.
    assert_eq!(one(&gw, &key, 0).await, 200);
    gw.database_up(false).await;
    let started = std::time::Instant::now();
    let mut sent = 1;
    while started.elapsed() < Duration::from_secs(10) {
        let statuses: Vec<u16> = stream::iter(sent..sent + 40)
            .map(|i| one(&gw, &key, i % 16))
            .buffer_unordered(20)
            .collect()
            .await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        sent += 40;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = logged(&gw.store).await;
    gw.database_up(true).await;
    wait_for_logs(&gw.store, sent as u64).await;
    assert!(during < sent as u64, "the outage held nothing back");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(logged(&gw.store).await, sent as u64);
    let total = gw.store.spend().logged_total().await.unwrap();
    let key_row = gw.store.keys().find_by_hash(&token).await.unwrap().unwrap();
    assert_eq!(key_row.spend, total);
    let org = gw.store.orgs().find("o").await.unwrap().unwrap();
    assert_eq!(org.spend, total);
    gw.stop().await;
}

async fn get_as(gw: &TestGateway, key: &str, path: &str) -> (u16, Value) {
    gw.send_as(key, Method::GET, path, None).await
}

async fn daily_activity_routes_answer_from_the_daily_tables(backend: Backend) {
    let Some((gw, _up)) = start(backend, FAST_FLUSH).await else {
        return;
    };
    let (key, token) = owned_key(&gw).await;
    let other = post(&gw, "/key/generate", json!({"user_id": "v"})).await;
    let other_key = other["key"].as_str().unwrap().to_string();
    for i in [0, 1, 2, 16] {
        one(&gw, &key, i).await;
    }
    assert_eq!(one(&gw, &other_key, 0).await, 200);
    wait_for_logs(&gw.store, 5).await;
    let today = bursar_core::time::format_date(bursar_store::now_ms());
    let range = format!("start_date={today}&end_date={today}");
    let admin = gw.master_key.clone();

    // Team activity (admin): one day, the team's three calls and one failure, with every
    // breakdown LiteLLM's UI reads.
    let (status, body) = get_as(&gw, &admin, &format!("/team/daily/activity?{range}")).await;
    assert_eq!(status, 200, "{body}");
    let meta = &body["metadata"];
    let spend = |v: &Value| NanoUsd::from_usd(v.as_f64().unwrap()).unwrap();
    assert_eq!(spend(&meta["total_spend"]), NanoUsd(3 * CALL_NANO));
    assert_eq!(meta["total_api_requests"], 4);
    assert_eq!(meta["total_failed_requests"], 1);
    assert_eq!(meta["total_prompt_tokens"], 24);
    assert_eq!(
        (meta["page"].clone(), meta["has_more"].clone()),
        (json!(1), json!(false))
    );
    let day = &body["results"][0];
    assert_eq!(day["date"], today);
    let b = &day["breakdown"];
    assert_eq!(
        spend(&b["entities"]["t"]["metrics"]["spend"]),
        NanoUsd(3 * CALL_NANO)
    );
    assert_eq!(b["entities"]["t"]["metadata"]["team_alias"], Value::Null);
    assert_eq!(b["api_keys"][&token]["metadata"]["team_id"], "t");
    assert_eq!(b["model_groups"]["priced"]["metrics"]["api_requests"], 3);
    assert_eq!(
        b["models"]["openai/flaky-model"]["metrics"]["failed_requests"],
        1
    );
    assert_eq!(b["providers"]["openai"]["metrics"]["api_requests"], 4);
    assert_eq!(
        b["models"]["openai/priced-model"]["api_key_breakdown"][&token]["metrics"]["api_requests"],
        3
    );

    // User activity: admins see everyone, a user only themselves whatever they ask for.
    let (_, all) = get_as(&gw, &admin, &format!("/user/daily/activity?{range}")).await;
    assert_eq!(all["metadata"]["total_api_requests"], 5);
    let (status, own) = get_as(
        &gw,
        &key,
        &format!("/user/daily/activity?{range}&user_id=v"),
    )
    .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["metadata"]["total_api_requests"], 4);
    let (_, just_v) = get_as(
        &gw,
        &admin,
        &format!("/user/daily/activity?{range}&user_id=v"),
    )
    .await;
    assert_eq!(just_v["metadata"]["total_api_requests"], 1);

    // Team activity for a member: their team only; another team is refused.
    let (status, member) = get_as(&gw, &key, &format!("/team/daily/activity?{range}")).await;
    assert_eq!(status, 200, "{member}");
    assert_eq!(member["metadata"]["total_api_requests"], 4);
    let (status, _) = get_as(
        &gw,
        &key,
        &format!("/team/daily/activity?{range}&team_ids=x"),
    )
    .await;
    assert_eq!(status, 403);
    let (_, excluded) = get_as(
        &gw,
        &admin,
        &format!("/team/daily/activity?{range}&exclude_team_ids=t"),
    )
    .await;
    assert_eq!(excluded["metadata"]["total_api_requests"], 0);

    // Organization: admins and org admins only.
    let (_, org) = get_as(
        &gw,
        &admin,
        &format!("/organization/daily/activity?{range}&organization_ids=o"),
    )
    .await;
    assert_eq!(
        spend(&org["metadata"]["total_spend"]),
        NanoUsd(3 * CALL_NANO)
    );
    // An internal user who administers no organization is refused (LiteLLM 1.110 lets the
    // route through and scopes it to the caller's organizations).
    let (status, _) = get_as(&gw, &key, &format!("/organization/daily/activity?{range}")).await;
    assert_eq!(status, 403);

    // Tags and customers.
    let (_, tags) = get_as(
        &gw,
        &admin,
        &format!("/tag/daily/activity?{range}&tags=load"),
    )
    .await;
    assert_eq!(tags["metadata"]["total_api_requests"], 5);
    let (_, customers) = get_as(
        &gw,
        &admin,
        &format!("/customer/daily/activity?{range}&end_user_ids=eu-1"),
    )
    .await;
    assert_eq!(customers["metadata"]["total_api_requests"], 5);
    assert!(customers["results"][0]["breakdown"]["entities"]["eu-1"].is_object());

    // Paging over daily rows, and bad parameters as 400s.
    let (_, paged) = get_as(
        &gw,
        &admin,
        &format!("/user/daily/activity?{range}&page_size=1"),
    )
    .await;
    assert_eq!(paged["metadata"]["has_more"], true);
    assert_eq!(paged["metadata"]["total_api_requests"], 5);
    for bad in [
        "/team/daily/activity".to_string(),
        format!("/team/daily/activity?start_date={today}"),
        format!("/team/daily/activity?start_date=yesterday&end_date={today}"),
        format!("/team/daily/activity?start_date={today}&end_date=2020-01-01"),
        format!("/user/daily/activity?{range}&page_size=1001"),
        format!("/user/daily/activity?{range}&page=0"),
        format!("/user/daily/activity?{range}&page=x"),
    ] {
        let (status, body) = get_as(&gw, &admin, &bad).await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    gw.stop().await;
}

async fn spend_log_routes_filter_summarize_and_page(backend: Backend) {
    let Some((gw, _up)) = start(backend, FAST_FLUSH).await else {
        return;
    };
    let (key, token) = owned_key(&gw).await;
    let other = post(&gw, "/key/generate", json!({"user_id": "v"})).await;
    let other_key = other["key"].as_str().unwrap().to_string();
    for i in [0, 1, 16] {
        one(&gw, &key, i).await;
    }
    one(&gw, &other_key, 0).await;
    wait_for_logs(&gw.store, 4).await;
    let admin = gw.master_key.clone();
    let today = bursar_core::time::format_date(bursar_store::now_ms());
    let spend = |v: &Value| NanoUsd::from_usd(v.as_f64().unwrap()).unwrap();

    // Raw rows: all, by key (raw or hashed), by request id; newest first.
    let (status, all) = get_as(&gw, &admin, "/spend/logs").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all.as_array().unwrap().len(), 4);
    let (_, by_key) = get_as(&gw, &admin, &format!("/spend/logs?api_key={key}")).await;
    assert_eq!(by_key.as_array().unwrap().len(), 3);
    let row = &by_key[0];
    assert_eq!(row["api_key"], token);
    assert!(row["startTime"].as_str().unwrap().starts_with(&today));
    let id = row["request_id"].as_str().unwrap();
    let (_, one_row) = get_as(&gw, &admin, &format!("/spend/logs?request_id={id}")).await;
    assert_eq!(one_row.as_array().unwrap().len(), 1);
    // A user sees only their own requests.
    let (status, own) = get_as(&gw, &other_key, "/spend/logs?user_id=u").await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own.as_array().unwrap().len(), 1);
    assert_eq!(own[0]["user"], "v");

    // Summaries per day, padded with empty days.
    let yesterday = bursar_core::time::format_date(bursar_store::now_ms() - 86_400_000);
    let (_, days) = get_as(
        &gw,
        &admin,
        &format!("/spend/logs?start_date={yesterday}&end_date={today}"),
    )
    .await;
    let days = days.as_array().unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(days[0]["startTime"], yesterday);
    assert_eq!(days[0]["spend"], 0.0);
    assert_eq!(spend(&days[1]["spend"]), NanoUsd(3 * CALL_NANO));
    assert_eq!(spend(&days[1]["models"]["priced"]), NanoUsd(3 * CALL_NANO));
    assert_eq!(spend(&days[1][&token]), NanoUsd(2 * CALL_NANO));
    let (_, by_user) = get_as(
        &gw,
        &admin,
        &format!("/spend/logs?start_date={today}&end_date={today}&user_id=u"),
    )
    .await;
    assert_eq!(spend(&by_user[0]["users"]["u"]), NanoUsd(2 * CALL_NANO));

    // Pages, with filters on status and spend.
    let (_, page) = get_as(&gw, &admin, "/spend/logs/v2?page_size=3").await;
    assert_eq!(
        (page["total"].clone(), page["total_pages"].clone()),
        (json!(4), json!(2))
    );
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    let (_, second) = get_as(&gw, &admin, "/spend/logs/v2?page_size=3&page=2").await;
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    let (_, failed) = get_as(&gw, &admin, "/spend/logs/v2?status_filter=failure").await;
    assert_eq!(failed["total"], 1);
    let (_, costly) = get_as(&gw, &admin, "/spend/logs/v2?min_spend=0.000001").await;
    assert_eq!(costly["total"], 3);
    for bad in [
        "/spend/logs/v2?page_size=101",
        "/spend/logs/v2?min_spend=lots",
        "/spend/logs?start_date=nope&end_date=2026-01-01",
    ] {
        let (status, body) = get_as(&gw, &admin, bad).await;
        assert_eq!(status, 400, "{bad} → {body}");
    }
    gw.stop().await;
}

async fn global_spend_reports_for_admins(backend: Backend) {
    let Some((gw, _up)) = start(backend, FAST_FLUSH).await else {
        return;
    };
    let (key, token) = owned_key(&gw).await;
    let other = post(
        &gw,
        "/key/generate",
        json!({"user_id": "v", "key_alias": "vee"}),
    )
    .await;
    let other_key = other["key"].as_str().unwrap().to_string();
    for i in [0, 1, 2, 13] {
        one(&gw, &key, i).await;
    }
    one(&gw, &other_key, 0).await;
    wait_for_logs(&gw.store, 5).await;
    let admin = gw.master_key.clone();
    let spend = |v: &Value| NanoUsd::from_usd(v.as_f64().unwrap()).unwrap();
    let today = bursar_core::time::format_date(bursar_store::now_ms());

    let (status, keys) = get_as(&gw, &admin, "/global/spend/keys?limit=5").await;
    assert_eq!(status, 200, "{keys}");
    assert_eq!(keys[0]["api_key"], token);
    assert_eq!(spend(&keys[0]["total_spend"]), NanoUsd(3 * CALL_NANO + 800));
    assert_eq!(keys[1]["key_alias"], "vee");
    let (status, _) = get_as(&gw, &admin, "/global/spend/keys?limit=0").await;
    assert_eq!(status, 422);

    let (_, models) = get_as(&gw, &admin, "/global/spend/models").await;
    assert_eq!(models[0]["model"], "priced");
    assert_eq!(spend(&models[0]["total_spend"]), NanoUsd(4 * CALL_NANO));
    assert_eq!(models[1]["model"], "embed");

    let renamed = gw
        .post_json(
            "/team/update",
            &json!({"team_id": "t", "team_alias": "Team T"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    let (_, teams) = get_as(&gw, &admin, "/global/spend/teams").await;
    assert_eq!(teams["total_spend_per_team"][0]["team_id"], "t");
    assert_eq!(teams["total_spend_per_team"][0]["team_alias"], "Team T");
    assert_eq!(teams["daily_spend"][0]["date"], today);
    assert_eq!(
        spend(&teams["daily_spend"][0]["Team T"]),
        NanoUsd(3 * CALL_NANO + 800)
    );

    let range = format!("start_date={today}&end_date={today}");
    let (_, by_team) = get_as(&gw, &admin, &format!("/global/spend/report?{range}")).await;
    assert_eq!(by_team[0]["group_by_day"], today);
    assert_eq!(by_team[0]["teams"][0]["team_name"], "t");
    assert_eq!(
        by_team[0]["teams"][0]["metadata"].as_array().unwrap().len(),
        2
    );
    let (_, by_customer) = get_as(
        &gw,
        &admin,
        &format!("/global/spend/report?{range}&group_by=customer"),
    )
    .await;
    assert_eq!(by_customer[0]["customers"][0]["customer"], "eu-1");
    let (_, by_key) = get_as(
        &gw,
        &admin,
        &format!("/global/spend/report?{range}&group_by=api_key"),
    )
    .await;
    assert_eq!(by_key.as_array().unwrap().len(), 2);
    let (status, _) = get_as(
        &gw,
        &admin,
        &format!("/global/spend/report?{range}&group_by=x"),
    )
    .await;
    assert_eq!(status, 400);

    // Proxy-wide spend is for admins only.
    for path in [
        "/global/spend/keys",
        "/global/spend/teams",
        "/global/spend/models",
    ] {
        let (status, _) = get_as(&gw, &key, path).await;
        assert_eq!(status, 401, "{path}");
    }
    gw.stop().await;
}

async fn aggregated_activity_exports_and_team_spend_by_user(backend: Backend) {
    let Some((gw, _up)) = start(backend, FAST_FLUSH).await else {
        return;
    };
    let (key, token) = owned_key(&gw).await;
    let other = post(
        &gw,
        "/key/generate",
        json!({"user_id": "v", "key_alias": "vee"}),
    )
    .await;
    let other_key = other["key"].as_str().unwrap().to_string();
    let other_token = other["token"].as_str().unwrap().to_string();
    for i in [0, 1, 2, 16] {
        one(&gw, &key, i).await;
    }
    assert_eq!(one(&gw, &other_key, 0).await, 200);
    wait_for_logs(&gw.store, 5).await;
    let today = bursar_core::time::format_date(bursar_store::now_ms());
    let range = format!("start_date={today}&end_date={today}");
    let admin = gw.master_key.clone();
    let get = |path: String| {
        let (gw, admin) = (&gw, admin.clone());
        async move { get_as(gw, &admin, &path).await }
    };

    // The whole range in one answer, key breakdowns limited.
    let (status, team) = get(format!("/team/daily/activity/aggregated?{range}")).await;
    assert_eq!(status, 200, "{team}");
    let m = &team["metadata"];
    assert_eq!(m["total_api_requests"], 4);
    assert_eq!(
        (
            m["page"].clone(),
            m["total_pages"].clone(),
            m["has_more"].clone()
        ),
        (json!(1), json!(1), json!(false))
    );
    assert_eq!(m["api_key_limit"], 100);
    assert_eq!(m["total_api_keys"], 1);
    assert_eq!(m["entity_total_api_keys"], json!({"t": 1}));
    let (_, users) = get(format!(
        "/user/daily/activity/aggregated?{range}&api_key_limit=1"
    ))
    .await;
    assert_eq!(users["metadata"]["total_api_requests"], 5);
    assert_eq!(users["metadata"]["total_api_keys"], 2);
    let keys = users["results"][0]["breakdown"]["api_keys"]
        .as_object()
        .unwrap();
    assert_eq!(
        keys.keys().collect::<Vec<_>>(),
        [&token],
        "only the top spender is kept"
    );
    let (status, _) = get(format!(
        "/team/daily/activity/aggregated?{range}&api_key_limit=0"
    ))
    .await;
    assert_eq!(status, 400);

    // Keys by spend, paged; search; top keys of a model group; cache misses; users.
    let (_, page) = get(format!(
        "/user/daily/activity/aggregated/keys?{range}&limit=1&offset=1"
    ))
    .await;
    assert_eq!(page["total_api_keys"], 2);
    assert_eq!(page["api_keys"][0]["api_key"], other_token);
    assert_eq!(page["api_keys"][0]["metadata"]["key_alias"], "vee");
    let (_, page) = get(format!("/team/daily/activity/aggregated/keys?{range}")).await;
    assert_eq!(page["api_keys"][0]["api_key"], token);
    assert_eq!(page["api_keys"][0]["metrics"]["api_requests"], 4);
    assert_eq!(page["api_keys"][0]["metadata"]["user_id"], "u");
    let (_, found) = get(format!(
        "/user/daily/activity/aggregated/search?{range}&search=VEE"
    ))
    .await;
    assert_eq!(found["api_keys"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["api_keys"][0]["api_key"], other_token);
    let (status, _) = get(format!("/user/daily/activity/aggregated/search?{range}")).await;
    assert_eq!(status, 422);
    let (_, top) = get(format!(
        "/organization/daily/activity/aggregated/model_top_keys?{range}&model_group=priced"
    ))
    .await;
    assert_eq!(top["model"], "priced");
    assert_eq!(top["by_model_group"], true);
    assert_eq!(top["api_keys"][0]["api_key"], token);
    assert_eq!(top["api_keys"][0]["metrics"]["api_requests"], 3);
    let (_, leaks) = get(format!(
        "/user/daily/activity/aggregated/cache_leakage_keys?{range}&limit=1"
    ))
    .await;
    assert_eq!(leaks["api_keys"].as_array().unwrap().len(), 1);
    let (_, people) = get(format!("/user/daily/activity/aggregated/users?{range}")).await;
    assert_eq!(people["total_users"], 2);
    assert_eq!(people["users"][0]["user_id"], "u");
    assert_eq!(people["users"][0]["api_requests"], 4);
    // A user sees their own keys only.
    let (_, own) = get_as(
        &gw,
        &other_key,
        &format!("/user/daily/activity/aggregated/keys?{range}"),
    )
    .await;
    assert_eq!(own["total_api_keys"], 1);
    assert_eq!(own["api_keys"][0]["api_key"], other_token);

    // Exports stream CSV (default) or JSON.
    let response = gw
        .get(&format!(
            "/team/daily/activity/export?{range}&export_type=daily_with_keys"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(h["cache-control"], "no-store");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("team-usage-{today}-{today}-daily_with_keys.csv"))
    );
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with(
        "date,entity_id,entity_alias,api_key,key_alias,user_id,user_email,model,spend"
    ));
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].starts_with(&format!("{today},t,,{token},,u,")),
        "{csv}"
    );
    let response = gw
        .get(&format!(
            "/user/daily/activity/export?{range}&format=json&export_type=daily"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let rows: Value = response.json().await.unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "one row per user and day: {rows:?}");
    let total: i64 = rows
        .iter()
        .map(|r| r["api_requests"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 5);
    let (status, _) = get(format!("/team/daily/activity/export?{range}&format=xml")).await;
    assert_eq!(status, 400);
    let (status, _) =
        get("/team/daily/activity/export?start_date=2020-01-01&end_date=2026-01-01".into()).await;
    assert_eq!(status, 400, "at most 400 days");

    // Team spend by user, from the spend logs.
    let (status, by_user) = get(format!("/team/spend/by_user?team_ids=t&{range}")).await;
    assert_eq!(status, 200, "{by_user}");
    let row = &by_user["results"][0];
    assert_eq!(row["team_id"], "t");
    assert_eq!(row["user_id"], "u");
    assert_eq!(row["api_requests"], 4);
    assert_eq!(row["failed_requests"], 1);
    assert_eq!(spend_of(&row["spend"]), NanoUsd(3 * CALL_NANO));
    let (status, _) = get(format!("/team/spend/by_user?{range}")).await;
    assert_eq!(status, 400);
    let (status, mine) = get_as(
        &gw,
        &key,
        &format!("/team/spend/by_user?team_ids=t&{range}"),
    )
    .await;
    assert_eq!(status, 200, "{mine}");
    assert!(
        mine["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["user_id"] == "u")
    );
    gw.stop().await;
}

fn spend_of(v: &Value) -> NanoUsd {
    NanoUsd::from_usd(v.as_f64().unwrap()).unwrap()
}
