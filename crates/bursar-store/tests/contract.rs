//! Store contract tests: every test runs against SQLite and against PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use bursar_core::NanoUsd;
use bursar_store::testing::TestDatabase;
use bursar_store::{
    BudgetPatch, EndUserPatch, KeyPatch, KeyQuery, KeySort, NewBudget, NewEndUser, NewKey,
    NewMember, NewOrgMember, NewUser, OrgPatch, Store, StoreError, TeamPatch, TeamQuery,
};
use serde_json::json;

bursar_store::contract_tests!(
    job_leases_have_one_holder_until_they_expire,
    migrations_are_idempotent,
    ping_succeeds_on_a_live_database,
    inserted_key_is_found_by_hash,
    unknown_hash_is_none,
    duplicate_key_is_a_conflict,
    deleted_key_is_gone,
    key_patch_changes_only_given_fields,
    key_alias_is_unique,
    key_rotation_moves_the_row,
    rotation_grace_period_resolves_the_old_secret,
    delete_many_removes_all_listed_keys,
    key_list_pages_are_stable_and_filtered,
    users_round_trip,
    settings_round_trip_and_overwrite,
    team_with_members_is_created_in_one_transaction,
    duplicate_member_rolls_back_the_whole_add,
    team_delete_archives_and_cascades,
    member_update_upserts_the_membership_budget,
    org_delete_removes_teams_keys_memberships_and_budget,
    end_users_round_trip,
    unknown_end_users_are_created_once_under_concurrency,
    budget_delete_unlinks_its_users,
    due_budgets_reset_exactly_once_across_instances,
);

async fn migrations_are_idempotent(store: &Store) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
}

async fn ping_succeeds_on_a_live_database(store: &Store) {
    store.ping().await.unwrap();
}

async fn inserted_key_is_found_by_hash(store: &Store) {
    let token = bursar_core::keys::hash_key("sk-contract-test");
    let new = NewKey {
        token: token.clone(),
        key_name: Some("sk-...test".into()),
        key_alias: Some("ci".into()),
        user_id: Some("user-1".into()),
        models: vec!["gpt-4o".into(), "demo".into()],
        metadata: Some(json!({"env": "test"})),
        expires_at: Some(4_000_000_000_000),
        max_budget: Some(NanoUsd::from_usd(12.5).unwrap()),
        tpm_limit: Some(1_000),
        blocked: true,
        ..Default::default()
    };
    let inserted = store.keys().insert(&new).await.unwrap();
    let found = store.keys().find_by_hash(&token).await.unwrap().unwrap();
    assert_eq!(inserted, found);
    assert_eq!(found.key_alias.as_deref(), Some("ci"));
    assert_eq!(found.models, vec!["gpt-4o".to_string(), "demo".to_string()]);
    assert_eq!(found.metadata, json!({"env": "test"}));
    assert_eq!(found.aliases, json!({}));
    assert!(found.blocked);
    assert_eq!(found.expires_at, Some(4_000_000_000_000));
    assert_eq!(found.max_budget, Some(NanoUsd(12_500_000_000)));
    assert_eq!(found.spend, NanoUsd::ZERO);
    assert_eq!(found.tpm_limit, Some(1_000));
    assert_eq!(found.rpm_limit, None);
    assert!(found.created_at > 0);
}

async fn unknown_hash_is_none(store: &Store) {
    assert!(
        store
            .keys()
            .find_by_hash(&"0".repeat(64))
            .await
            .unwrap()
            .is_none()
    );
}

async fn duplicate_key_is_a_conflict(store: &Store) {
    let new = NewKey {
        token: bursar_core::keys::hash_key("sk-dup"),
        ..Default::default()
    };
    store.keys().insert(&new).await.unwrap();
    let err = store.keys().insert(&new).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { what: "key" }),
        "{err:?}"
    );
}

async fn deleted_key_is_gone(store: &Store) {
    let token = bursar_core::keys::hash_key("sk-to-delete");
    store
        .keys()
        .insert(&NewKey {
            token: token.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(store.keys().delete_by_hash(&token).await.unwrap());
    assert!(store.keys().find_by_hash(&token).await.unwrap().is_none());
    assert!(!store.keys().delete_by_hash(&token).await.unwrap());
}

async fn settings_round_trip_and_overwrite(store: &Store) {
    assert_eq!(store.settings().get("schema_note").await.unwrap(), None);
    store.settings().put("schema_note", "one").await.unwrap();
    store.settings().put("schema_note", "two").await.unwrap();
    assert_eq!(
        store
            .settings()
            .get("schema_note")
            .await
            .unwrap()
            .as_deref(),
        Some("two")
    );
}

#[tokio::test]
async fn postgres_tests_are_skipped_only_outside_ci() {
    // The skip rule itself: without the variable, CI must fail instead of skipping.
    if std::env::var_os(bursar_store::testing::POSTGRES_URL_VAR).is_some() {
        return;
    }
    let result = TestDatabase::postgres().await;
    if std::env::var_os("CI").is_some() {
        assert!(result.is_err());
    } else {
        assert!(matches!(result, Ok(None)));
    }
}

fn new_key(raw: &str) -> NewKey {
    NewKey {
        token: bursar_core::keys::hash_key(raw),
        ..Default::default()
    }
}

async fn key_patch_changes_only_given_fields(store: &Store) {
    let mut key = new_key("sk-patch");
    key.key_alias = Some("before".into());
    key.tpm_limit = Some(10);
    key.metadata = Some(json!({"a": 1}));
    store.keys().insert(&key).await.unwrap();
    let patch = KeyPatch {
        key_alias: Some(Some("after".into())),
        tpm_limit: Some(None),
        max_budget: Some(Some(NanoUsd(5))),
        blocked: Some(true),
        models: Some(vec!["m".into()]),
        ..Default::default()
    };
    let row = store
        .keys()
        .update(&key.token, &patch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.key_alias.as_deref(), Some("after"));
    assert_eq!(row.tpm_limit, None);
    assert_eq!(row.max_budget, Some(NanoUsd(5)));
    assert!(row.blocked);
    assert_eq!(row.models, vec!["m".to_string()]);
    assert_eq!(row.metadata, json!({"a": 1}), "untouched");
    assert!(
        store
            .keys()
            .update(&"f".repeat(64), &patch)
            .await
            .unwrap()
            .is_none()
    );
}

async fn key_alias_is_unique(store: &Store) {
    let mut a = new_key("sk-alias-a");
    a.key_alias = Some("same".into());
    store.keys().insert(&a).await.unwrap();
    let mut b = new_key("sk-alias-b");
    b.key_alias = Some("same".into());
    assert!(matches!(
        store.keys().insert(&b).await,
        Err(StoreError::Conflict { .. })
    ));
    // Many keys without an alias are fine.
    store
        .keys()
        .insert(&new_key("sk-no-alias-1"))
        .await
        .unwrap();
    store
        .keys()
        .insert(&new_key("sk-no-alias-2"))
        .await
        .unwrap();
    assert_eq!(
        store
            .keys()
            .find_by_alias("same")
            .await
            .unwrap()
            .unwrap()
            .token,
        a.token
    );
}

async fn key_rotation_moves_the_row(store: &Store) {
    let mut key = new_key("sk-old");
    key.key_alias = Some("rotating".into());
    store.keys().insert(&key).await.unwrap();
    let new_token = bursar_core::keys::hash_key("sk-new");
    let row = store
        .keys()
        .rotate(
            &key.token,
            &new_token,
            "sk-...new",
            Some("admin"),
            None,
            &KeyPatch {
                key_alias: Some(Some("rotated".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.token, new_token);
    assert_eq!(
        row.key_alias.as_deref(),
        Some("rotated"),
        "the patch applies in the same transaction"
    );
    assert_eq!(row.rotation_count, 1);
    assert!(
        store
            .keys()
            .find_by_hash(&key.token)
            .await
            .unwrap()
            .is_none()
    );
}

async fn delete_many_removes_all_listed_keys(store: &Store) {
    let tokens: Vec<String> = (0..3)
        .map(|i| bursar_core::keys::hash_key(&format!("sk-many-{i}")))
        .collect();
    for t in &tokens {
        store
            .keys()
            .insert(&NewKey {
                token: t.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    assert_eq!(store.keys().delete_many(&tokens[..2]).await.unwrap(), 2);
    assert!(
        store
            .keys()
            .find_by_hash(&tokens[2])
            .await
            .unwrap()
            .is_some()
    );
}

async fn key_list_pages_are_stable_and_filtered(store: &Store) {
    for i in 0..25 {
        let mut key = new_key(&format!("sk-list-{i}"));
        key.user_id = Some(if i % 5 == 0 {
            "u-odd".into()
        } else {
            "u-main".into()
        });
        key.team_id = (i == 7).then(|| "t1".to_string());
        store.keys().insert(&key).await.unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    for page in 1..=3 {
        let (keys, total) = store
            .keys()
            .list(&KeyQuery {
                user_id: Some("u-main".into()),
                page,
                size: 8,
                sort: KeySort::CreatedAt,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(total, 20);
        for k in keys {
            assert!(seen.insert(k.token), "a key appeared on two pages");
        }
    }
    assert_eq!(seen.len(), 20, "no key skipped");
    let (team_keys, total) = store
        .keys()
        .list(&KeyQuery {
            team_id: Some("t1".into()),
            page: 1,
            size: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((team_keys.len(), total), (1, 1));
    let (mixed, total) = store
        .keys()
        .list(&KeyQuery {
            user_id: Some("u-odd".into()),
            or_team_ids: vec!["t1".into()],
            page: 1,
            size: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((mixed.len(), total), (6, 6));
}

async fn users_round_trip(store: &Store) {
    let user = NewUser {
        user_id: "user-1".into(),
        user_email: Some("a@example.com".into()),
        user_role: "internal_user_viewer".into(),
        max_budget: Some(NanoUsd(7)),
        models: vec!["gpt-4o".into()],
        ..Default::default()
    };
    let row = store.users().insert(&user).await.unwrap();
    assert_eq!(row.user_role, "internal_user_viewer");
    assert_eq!(row.max_budget, Some(NanoUsd(7)));
    assert_eq!(store.users().find("user-1").await.unwrap(), Some(row));
    assert!(matches!(
        store.users().insert(&user).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(store.users().find("nobody").await.unwrap().is_none());
}

async fn rotation_grace_period_resolves_the_old_secret(store: &Store) {
    let key = new_key("sk-grace-old");
    store.keys().insert(&key).await.unwrap();
    let mid = bursar_core::keys::hash_key("sk-grace-mid");
    let newest = bursar_core::keys::hash_key("sk-grace-new");
    assert!(
        store
            .keys()
            .rotate(
                &key.token,
                &mid,
                "sk-...mid",
                None,
                Some(5_000),
                &KeyPatch::default()
            )
            .await
            .unwrap()
            .is_some()
    );
    let (active, revoke_at) = store
        .keys()
        .find_by_deprecated_hash(&key.token, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((active.token.as_str(), revoke_at), (mid.as_str(), 5_000));
    assert!(
        store
            .keys()
            .find_by_deprecated_hash(&key.token, 5_000)
            .await
            .unwrap()
            .is_none(),
        "revoked at revoke_at"
    );
    // A second rotation carries the first grace entry along to the newest secret.
    assert!(
        store
            .keys()
            .rotate(&mid, &newest, "sk-...new", None, None, &KeyPatch::default())
            .await
            .unwrap()
            .is_some()
    );
    let (active, _) = store
        .keys()
        .find_by_deprecated_hash(&key.token, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.token, newest);
    assert!(
        store
            .keys()
            .find_by_deprecated_hash(&mid, 1_000)
            .await
            .unwrap()
            .is_none(),
        "no grace asked for mid"
    );
    // Deleting the key ends every grace period.
    store
        .keys()
        .delete_many(std::slice::from_ref(&newest))
        .await
        .unwrap();
    assert!(
        store
            .keys()
            .find_by_deprecated_hash(&key.token, 1_000)
            .await
            .unwrap()
            .is_none()
    );
}

fn member(user_id: &str, role: &str, create: bool) -> NewMember {
    NewMember {
        user_id: user_id.into(),
        role: role.into(),
        budget: None,
        create_user: create.then(|| NewUser {
            user_id: user_id.into(),
            user_role: "internal_user".into(),
            ..Default::default()
        }),
    }
}

async fn team_with_members_is_created_in_one_transaction(store: &Store) {
    let patch = TeamPatch {
        team_alias: Some(Some("a".into())),
        max_budget: Some(NanoUsd::from_usd(3.0)),
        ..Default::default()
    };
    let team = store
        .teams()
        .create("t", &patch, &[member("u1", "admin", true)], &[])
        .await
        .unwrap();
    assert_eq!(team.team_alias.as_deref(), Some("a"));
    assert_eq!(team.max_budget, NanoUsd::from_usd(3.0));
    assert!(store.users().find("u1").await.unwrap().is_some());
    // A second team whose member list repeats a user fails as a whole.
    let err = store
        .teams()
        .create(
            "t2",
            &TeamPatch::default(),
            &[member("u2", "user", true), member("u2", "user", false)],
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert!(store.teams().find("t2").await.unwrap().is_none());
    assert!(store.users().find("u2").await.unwrap().is_none());
}

async fn duplicate_member_rolls_back_the_whole_add(store: &Store) {
    store
        .teams()
        .create(
            "t",
            &TeamPatch::default(),
            &[member("u1", "user", true)],
            &[],
        )
        .await
        .unwrap();
    let err = store
        .teams()
        .add_members(
            "t",
            &[member("u2", "user", true), member("u1", "user", false)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }));
    assert!(store.users().find("u2").await.unwrap().is_none());
    assert_eq!(store.teams().members("t").await.unwrap().len(), 1);
}

async fn team_delete_archives_and_cascades(store: &Store) {
    let template = NewBudget {
        budget_id: "member-template".into(),
        ..Default::default()
    };
    let team = TeamPatch {
        metadata: Some(json!({"team_member_budget_id": "member-template"})),
        ..Default::default()
    };
    store
        .teams()
        .create("t", &team, &[member("u1", "user", true)], &[template])
        .await
        .unwrap();
    assert!(
        store
            .budgets()
            .find("member-template")
            .await
            .unwrap()
            .is_some()
    );
    store
        .keys()
        .insert(&NewKey {
            token: "a".repeat(64),
            team_id: Some("t".into()),
            user_id: Some("u1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let tokens = store
        .teams()
        .delete(&[("t".into(), json!({"team_id": "t"}))], "admin", "hash")
        .await
        .unwrap();
    assert_eq!(tokens, vec!["a".repeat(64)]);
    assert!(store.teams().find("t").await.unwrap().is_none());
    assert!(
        store
            .keys()
            .find_by_hash(&"a".repeat(64))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.teams().memberships_of("u1").await.unwrap().is_empty());
    assert!(
        store
            .budgets()
            .find("member-template")
            .await
            .unwrap()
            .is_none()
    );
    let (archived, total) = store
        .teams()
        .list_deleted(&TeamQuery::default())
        .await
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(archived[0].data, json!({"team_id": "t"}));
    assert_eq!(archived[0].deleted_by.as_deref(), Some("admin"));
    // Deleting a team that is gone fails and archives nothing more.
    assert!(
        store
            .teams()
            .delete(&[("t".into(), json!({}))], "admin", "hash")
            .await
            .is_err()
    );
    assert_eq!(
        store
            .teams()
            .list_deleted(&TeamQuery::default())
            .await
            .unwrap()
            .1,
        1
    );
}

async fn member_update_upserts_the_membership_budget(store: &Store) {
    store
        .teams()
        .create(
            "t",
            &TeamPatch::default(),
            &[member("u1", "user", true)],
            &[],
        )
        .await
        .unwrap();
    let budget = BudgetPatch {
        max_budget: Some(NanoUsd::from_usd(4.0)),
        ..Default::default()
    };
    let row = store
        .teams()
        .update_member("t", "u1", Some("admin"), &budget, "me")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.role, "admin");
    let id = row.budget_id.clone().unwrap();
    let budget = BudgetPatch {
        tpm_limit: Some(Some(7)),
        ..Default::default()
    };
    let row = store
        .teams()
        .update_member("t", "u1", None, &budget, "me")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.budget_id.as_deref(),
        Some(id.as_str()),
        "same row updated"
    );
    let stored = store.budgets().find(&id).await.unwrap().unwrap();
    assert_eq!(stored.max_budget, NanoUsd::from_usd(4.0));
    assert_eq!(stored.tpm_limit, Some(7));
    assert!(
        store
            .teams()
            .update_member("t", "nobody", None, &budget, "me")
            .await
            .unwrap()
            .is_none()
    );
}

async fn org_delete_removes_teams_keys_memberships_and_budget(store: &Store) {
    let budget = NewBudget {
        budget_id: "b".into(),
        max_budget: NanoUsd::from_usd(10.0),
        ..Default::default()
    };
    let patch = OrgPatch {
        organization_alias: Some("O".into()),
        ..Default::default()
    };
    let org = store
        .orgs()
        .create("o", &patch, Some(&budget), "me")
        .await
        .unwrap();
    assert_eq!(org.budget_id.as_deref(), Some("b"));
    let team = TeamPatch {
        organization_id: Some(Some("o".into())),
        ..Default::default()
    };
    store.teams().create("t", &team, &[], &[]).await.unwrap();
    store
        .orgs()
        .add_members(
            "o",
            &[NewOrgMember {
                user_id: "u1".into(),
                role: "org_admin".into(),
                budget: None,
                create_user: Some(NewUser {
                    user_id: "u1".into(),
                    user_role: "internal_user".into(),
                    ..Default::default()
                }),
            }],
        )
        .await
        .unwrap();
    store
        .keys()
        .insert(&NewKey {
            token: "b".repeat(64),
            organization_id: Some("o".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // A team the caller did not list makes the delete refuse rather than orphan it.
    let err = store
        .orgs()
        .delete(&["o".into()], &[], "me", "k")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }));
    assert!(store.orgs().find("o").await.unwrap().is_some());

    let tokens = store
        .orgs()
        .delete(&["o".into()], &[("t".into(), json!({}))], "me", "k")
        .await
        .unwrap();
    assert_eq!(tokens, vec!["b".repeat(64)]);
    assert!(store.orgs().find("o").await.unwrap().is_none());
    assert!(store.teams().find("t").await.unwrap().is_none());
    assert!(store.orgs().memberships_of("u1").await.unwrap().is_empty());
    assert!(store.budgets().find("b").await.unwrap().is_none());
    assert!(
        store.users().find("u1").await.unwrap().is_some(),
        "users stay"
    );
}

async fn end_users_round_trip(store: &Store) {
    let budget = NewBudget {
        budget_id: "b-cust".into(),
        max_budget: Some(NanoUsd(1_000)),
        created_by: "admin".into(),
        ..Default::default()
    };
    let created = store
        .end_users()
        .create(
            &NewEndUser {
                user_id: "cust-1".into(),
                alias: Some("Customer One".into()),
                allowed_model_region: Some("eu".into()),
                metadata: Some(json!({"tier": "gold"})),
                ..Default::default()
            },
            Some(&budget),
        )
        .await
        .unwrap();
    assert_eq!(created.budget_id.as_deref(), Some("b-cust"));
    assert_eq!(created.metadata, json!({"tier": "gold"}));
    assert!(!created.blocked);
    let again = store
        .end_users()
        .create(
            &NewEndUser {
                user_id: "cust-1".into(),
                ..Default::default()
            },
            None,
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict { .. })));

    // A budget change updates the linked row; a fresh budget leaves it alone.
    let patch = BudgetPatch {
        max_budget: Some(Some(NanoUsd(2_000))),
        ..Default::default()
    };
    let updated = store
        .end_users()
        .update(
            "cust-1",
            &EndUserPatch {
                alias: Some(None),
                blocked: Some(true),
                ..Default::default()
            },
            &patch,
            false,
            "admin",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.alias, None);
    assert!(updated.blocked);
    assert_eq!(updated.budget_id.as_deref(), Some("b-cust"));
    let row = store.budgets().find("b-cust").await.unwrap().unwrap();
    assert_eq!(row.max_budget, Some(NanoUsd(2_000)));
    let fresh = store
        .end_users()
        .update("cust-1", &EndUserPatch::default(), &patch, true, "admin")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(fresh.budget_id.as_deref(), Some("b-cust"));
    assert!(
        store
            .end_users()
            .update("nobody", &EndUserPatch::default(), &patch, false, "admin")
            .await
            .unwrap()
            .is_none()
    );

    // Block creates unknown ids; unblock clears the flag.
    let blocked = store
        .end_users()
        .set_blocked(&["cust-2".into(), "cust-1".into()], true)
        .await
        .unwrap();
    assert_eq!(blocked.len(), 2);
    assert!(blocked.iter().all(|r| r.blocked));
    let unblocked = store
        .end_users()
        .set_blocked(&["cust-2".into()], false)
        .await
        .unwrap();
    assert!(!unblocked[0].blocked);
    let all = store.end_users().list().await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.user_id.as_str()).collect::<Vec<_>>(),
        ["cust-1", "cust-2"]
    );

    // Delete is all or nothing.
    let refused = store
        .end_users()
        .delete_all(&["cust-1".into(), "ghost".into()])
        .await
        .unwrap();
    assert_eq!(refused, Err(vec!["ghost".to_string()]));
    assert!(store.end_users().find("cust-1").await.unwrap().is_some());
    let deleted = store
        .end_users()
        .delete_all(&["cust-1".into(), "cust-2".into()])
        .await
        .unwrap();
    assert_eq!(deleted, Ok(2));
    assert!(store.end_users().list().await.unwrap().is_empty());
}

async fn unknown_end_users_are_created_once_under_concurrency(store: &Store) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.end_users().ensure("racer", Some("default-b")).await
        }));
    }
    let mut created_at = Vec::new();
    for t in tasks {
        let row = t.await.unwrap().unwrap();
        assert_eq!(row.budget_id.as_deref(), Some("default-b"));
        created_at.push(row.created_at);
    }
    created_at.dedup();
    assert_eq!(created_at.len(), 1, "every caller sees the one row");
    assert_eq!(store.end_users().list().await.unwrap().len(), 1);
    // An existing end user keeps its own budget.
    let row = store
        .end_users()
        .ensure("racer", Some("other"))
        .await
        .unwrap();
    assert_eq!(row.budget_id.as_deref(), Some("default-b"));
}

async fn budget_delete_unlinks_its_users(store: &Store) {
    let budget = store
        .budgets()
        .create(&NewBudget {
            budget_id: "shared".into(),
            rpm_limit: Some(5),
            created_by: "admin".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(budget.rpm_limit, Some(5));
    assert!(matches!(
        store
            .budgets()
            .create(&NewBudget {
                budget_id: "shared".into(),
                ..Default::default()
            })
            .await,
        Err(StoreError::Conflict { .. })
    ));
    store.end_users().ensure("c", Some("shared")).await.unwrap();
    let updated = store
        .budgets()
        .update(
            "shared",
            &BudgetPatch {
                rpm_limit: Some(None),
                tpm_limit: Some(Some(7)),
                ..Default::default()
            },
            "editor",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((updated.rpm_limit, updated.tpm_limit), (None, Some(7)));
    assert_eq!(updated.updated_by, "editor");
    assert_eq!(store.budgets().list().await.unwrap().len(), 1);
    let deleted = store.budgets().delete("shared").await.unwrap().unwrap();
    assert_eq!(deleted.budget_id, "shared");
    assert!(store.budgets().delete("shared").await.unwrap().is_none());
    let c = store.end_users().find("c").await.unwrap().unwrap();
    assert_eq!(c.budget_id, None);
}

async fn job_leases_have_one_holder_until_they_expire(store: &Store) {
    let resets = store.resets();
    let t = 1_000_000;
    // Many instances ask at once: exactly one gets the lease.
    let mut asks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        asks.spawn(async move {
            let got = store
                .resets()
                .lease("budget_resets", &format!("i{i}"), t, 30_000)
                .await
                .unwrap();
            (i, got)
        });
    }
    let mut granted = [false; 8];
    while let Some(done) = asks.join_next().await {
        let (i, got) = done.unwrap();
        granted[i] = got;
    }
    assert_eq!(granted.iter().filter(|g| **g).count(), 1, "{granted:?}");
    let holder = format!("i{}", granted.iter().position(|g| *g).unwrap());
    let other = if holder == "i0" { "i1" } else { "i0" };
    // The holder renews; the others are refused until it lapses.
    assert!(
        resets
            .lease("budget_resets", &holder, t + 10_000, 30_000)
            .await
            .unwrap()
    );
    assert!(
        !resets
            .lease("budget_resets", other, t + 39_999, 30_000)
            .await
            .unwrap()
    );
    assert!(
        resets
            .lease("budget_resets", other, t + 40_000, 30_000)
            .await
            .unwrap()
    );
    assert!(
        !resets
            .lease("budget_resets", &holder, t + 40_001, 30_000)
            .await
            .unwrap()
    );
    // Leases are per job.
    assert!(
        resets
            .lease("other_job", &holder, t + 40_001, 30_000)
            .await
            .unwrap()
    );
}

async fn due_budgets_reset_exactly_once_across_instances(store: &Store) {
    let now = bursar_store::now_ms();
    let past = now - 5_000;
    // A key with its own period, due; one not due; one with a due budget row.
    let mut due = new_key("sk-due");
    due.spend = NanoUsd(500);
    due.budget_duration = Some("2s".into());
    due.budget_reset_at = Some(past);
    store.keys().insert(&due).await.unwrap();
    let mut later = new_key("sk-later");
    later.spend = NanoUsd(500);
    later.budget_duration = Some("1h".into());
    later.budget_reset_at = Some(now + 3_600_000);
    store.keys().insert(&later).await.unwrap();
    store
        .budgets()
        .create(&NewBudget {
            budget_id: "cust-b".into(),
            max_budget: Some(NanoUsd(1_000)),
            budget_duration: Some("2s".into()),
            budget_reset_at: Some(past),
            ..Default::default()
        })
        .await
        .unwrap();
    store
        .end_users()
        .create(
            &NewEndUser {
                user_id: "spender".into(),
                spend: NanoUsd(900),
                budget_id: Some("cust-b".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();

    // A user and a team with their own periods, and an organization on a due budget row.
    store
        .users()
        .insert(&NewUser {
            user_id: "u-due".into(),
            user_role: "internal_user".into(),
            budget_duration: Some("2s".into()),
            budget_reset_at: Some(past),
            ..Default::default()
        })
        .await
        .unwrap();
    store
        .teams()
        .create(
            "t-due",
            &TeamPatch {
                budget_duration: Some(Some("2s".into())),
                budget_reset_at: Some(Some(past)),
                ..Default::default()
            },
            &[],
            &[],
        )
        .await
        .unwrap();
    let org_budget = NewBudget {
        budget_id: "org-b".into(),
        budget_duration: Some("1s".into()),
        budget_reset_at: Some(past),
        ..Default::default()
    };
    store
        .orgs()
        .create(
            "o-due",
            &OrgPatch {
                organization_alias: Some("due".into()),
                ..Default::default()
            },
            Some(&org_budget),
            "admin",
        )
        .await
        .unwrap();

    // Four "instances" run the job at once: each reset happens exactly once.
    let mut passes = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        passes.push(tokio::spawn(
            async move { store.resets().reset_due(now).await },
        ));
    }
    let mut keys = Vec::new();
    let mut users = Vec::new();
    let mut teams = Vec::new();
    let mut budgets = Vec::new();
    for p in passes {
        let report = p.await.unwrap().unwrap();
        keys.extend(report.keys);
        users.extend(report.users);
        teams.extend(report.teams);
        budgets.extend(report.budgets);
    }
    budgets.sort();
    assert_eq!(keys, vec![due.token.clone()]);
    assert_eq!(users, vec!["u-due".to_string()]);
    assert_eq!(teams, vec!["t-due".to_string()]);
    assert_eq!(budgets, vec!["cust-b".to_string(), "org-b".to_string()]);
    let org_b = store.budgets().find("org-b").await.unwrap().unwrap();
    assert_eq!(org_b.budget_reset_at, Some(past + 6_000));
    let team = store.teams().find("t-due").await.unwrap().unwrap();
    assert_eq!(team.budget_reset_at, Some(past + 6_000));

    let key = store
        .keys()
        .find_by_hash(&due.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.spend, NanoUsd::ZERO);
    assert_eq!(
        key.budget_reset_at,
        Some(past + 6_000),
        "whole periods from the old reset"
    );
    let untouched = store
        .keys()
        .find_by_hash(&later.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.spend, NanoUsd(500));
    let spender = store.end_users().find("spender").await.unwrap().unwrap();
    assert_eq!(spender.spend, NanoUsd::ZERO);
    let b = store.budgets().find("cust-b").await.unwrap().unwrap();
    assert_eq!(b.budget_reset_at, Some(past + 6_000));
    // Nothing is due any more.
    assert!(store.resets().reset_due(now).await.unwrap().is_empty());
}
