use super::*;
use crate::policy::PolicyErrorKind;
use serde_json::json;

fn names(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn catalog() -> Catalog {
    let beta = names(&["beta"]);
    let none: Vec<String> = Vec::new();
    Catalog::new([
        ("gpt-4", "openai/gpt-4", none.as_slice()),
        ("gpt-4o", "openai/gpt-4o", beta.as_slice()),
        ("claude", "anthropic/claude", beta.as_slice()),
    ])
}

fn ceiling(models: ModelBound, rpm: Option<i64>, budget: Option<i64>) -> Ceiling {
    Ceiling {
        limits: LimitSet {
            max_budget: budget.map(NanoUsd),
            rpm_limit: rpm,
            ..LimitSet::default()
        },
        models,
        ..Ceiling::unlimited()
    }
}

fn caller<'a>(authority: Authority, ceiling: &'a Ceiling, catalog: &'a Catalog) -> Caller<'a> {
    Caller {
        authority,
        ceiling,
        catalog,
    }
}

fn refused(result: Result<(), PolicyError>) -> (PolicyErrorKind, &'static str) {
    let e = result.expect_err("the rule should refuse");
    (e.kind, e.field)
}

#[test]
fn a_proxy_admin_is_not_bounded() {
    let c = catalog();
    let cap = ceiling(ModelBound::Only(names(&["gpt-4"])), Some(1), Some(1));
    let mut request = KeyRequest {
        limits: LimitChange {
            rpm_limit: Some(Some(1_000)),
            ..LimitChange::default()
        },
        ..KeyRequest::default()
    };
    let before = request.clone();
    new_key(&caller(Authority::ProxyAdmin, &cap, &c), &mut request).unwrap();
    assert_eq!(request, before);
    let current = KeyState {
        blocked: true,
        ..KeyState::default()
    };
    request.blocked = Some(false);
    request.budget.spend = NanoUsd(0);
    change_key(
        &caller(Authority::ProxyAdmin, &cap, &c),
        &current,
        &mut request,
    )
    .unwrap();
}

#[test]
fn a_new_key_inherits_the_callers_limits_and_models_where_it_asks_for_none() {
    let c = catalog();
    let cap = Ceiling {
        expires_at: Some(5_000),
        allowed_routes: names(&["management_routes"]),
        ..ceiling(ModelBound::Only(names(&["gpt-4"])), Some(10), Some(2_000))
    };
    let mut request = KeyRequest::default();
    new_key(&caller(Authority::Holder, &cap, &c), &mut request).unwrap();
    assert_eq!(request.models, Some(names(&["gpt-4"])));
    assert_eq!(request.limits.rpm_limit, Some(Some(10)));
    assert_eq!(request.limits.max_budget, Some(Some(NanoUsd(2_000))));
    assert_eq!(request.limits.tpm_limit, None);
    assert_eq!(request.expires_at, Some(Some(5_000)));
    assert_eq!(request.allowed_routes, Some(names(&["management_routes"])));
}

#[test]
fn a_new_key_may_not_exceed_the_callers_limits() {
    let c = catalog();
    let cap = ceiling(ModelBound::Any, Some(10), Some(2_000));
    for limits in [
        LimitChange {
            rpm_limit: Some(Some(11)),
            ..LimitChange::default()
        },
        LimitChange {
            max_budget: Some(Some(NanoUsd(2_001))),
            ..LimitChange::default()
        },
    ] {
        let mut request = KeyRequest {
            limits,
            ..KeyRequest::default()
        };
        let (kind, _) = refused(new_key(&caller(Authority::Admin, &cap, &c), &mut request));
        assert_eq!(kind, PolicyErrorKind::Invalid);
    }
    let mut fits = KeyRequest {
        limits: LimitChange {
            rpm_limit: Some(Some(10)),
            max_budget: Some(Some(NanoUsd(1))),
            ..LimitChange::default()
        },
        ..KeyRequest::default()
    };
    new_key(&caller(Authority::Holder, &cap, &c), &mut fits).unwrap();
}

#[test]
fn a_new_key_may_only_name_models_the_caller_may_call() {
    let c = catalog();
    let cap = ceiling(ModelBound::Only(names(&["gpt-4o", "claude"])), None, None);
    let who = caller(Authority::Holder, &cap, &c);
    for wider in [&["gpt-4"][..], &["*"], &["all-proxy-models"], &["openai/*"]] {
        let mut request = KeyRequest {
            models: Some(names(wider)),
            ..KeyRequest::default()
        };
        assert_eq!(
            refused(new_key(&who, &mut request)).1,
            "models",
            "{wider:?}"
        );
    }
    // A group whose every member the caller may call is fine.
    let mut group = KeyRequest {
        models: Some(names(&["beta"])),
        ..KeyRequest::default()
    };
    new_key(&who, &mut group).unwrap();
    // A caller that may call nothing cannot mint an open key.
    let nothing = ceiling(ModelBound::Only(Vec::new()), None, None);
    let mut open = KeyRequest::default();
    assert_eq!(
        refused(new_key(&caller(Authority::Holder, &nothing, &c), &mut open)).1,
        "models"
    );
}

#[test]
fn permissions_routes_and_aliases_are_bounded_by_the_caller() {
    let c = catalog();
    let mut cap = ceiling(ModelBound::Only(names(&["gpt-4"])), None, None);
    cap.permissions = json!({"get_spend_routes": true})
        .as_object()
        .unwrap()
        .clone();
    cap.allowed_routes = names(&["management_routes", "info_routes"]);
    let who = caller(Authority::Holder, &cap, &c);
    let held = KeyRequest {
        permissions: json!({"get_spend_routes": true, "other": false})
            .as_object()
            .cloned(),
        allowed_routes: Some(names(&["info_routes"])),
        aliases: json!({"fast": "gpt-4"}).as_object().cloned(),
        ..KeyRequest::default()
    };
    new_key(&who, &mut held.clone()).unwrap();
    let mut not_held = KeyRequest {
        permissions: json!({"allow_pii_controls": true}).as_object().cloned(),
        ..KeyRequest::default()
    };
    assert_eq!(refused(new_key(&who, &mut not_held)).1, "permissions");
    let mut wider_routes = KeyRequest {
        allowed_routes: Some(names(&["llm_api_routes"])),
        ..KeyRequest::default()
    };
    assert_eq!(
        refused(new_key(&who, &mut wider_routes)).1,
        "allowed_routes"
    );
    let mut alias_out = KeyRequest {
        aliases: json!({"gpt-4": "claude"}).as_object().cloned(),
        ..KeyRequest::default()
    };
    assert_eq!(refused(new_key(&who, &mut alias_out)).1, "aliases");
}

fn holder_key() -> KeyState {
    KeyState {
        limits: LimitSet {
            max_budget: Some(NanoUsd(1_000)),
            rpm_limit: Some(5),
            tpm_limit: Some(100),
            max_parallel_requests: Some(1),
        },
        models: names(&["gpt-4"]),
        blocked: true,
        expires_at: Some(10_000),
        allowed_routes: Vec::new(),
        budget: BudgetFields {
            spend: NanoUsd(900),
            max_budget: Some(NanoUsd(1_000)),
            governing_metadata: json!({"model_rpm_limit": {"gpt-4": 1}})
                .as_object()
                .unwrap()
                .clone(),
            ..BudgetFields::default()
        },
    }
}

fn unchanged(current: &KeyState) -> KeyRequest {
    KeyRequest {
        budget: current.budget.clone(),
        ..KeyRequest::default()
    }
}

#[test]
fn a_holder_cannot_change_budget_fields_but_an_admin_can() {
    let c = catalog();
    let cap = Ceiling::unlimited();
    let current = holder_key();
    let mut spend = unchanged(&current);
    spend.budget.spend = NanoUsd(0);
    let mut budget = unchanged(&current);
    budget.budget.max_budget = Some(NanoUsd(5_000));
    let mut period = unchanged(&current);
    period.budget.budget_duration = Some("1d".into());
    let mut per_model = unchanged(&current);
    per_model.budget.governing_metadata = Map::new();
    let mut temp = unchanged(&current);
    temp.budget
        .governing_metadata
        .insert("temp_budget_increase".into(), json!(100));
    for (mut request, field) in [
        (spend, "spend"),
        (budget, "max_budget"),
        (period, "budget_duration"),
        (per_model, "model_rpm_limit"),
        (temp, "temp_budget_increase"),
    ] {
        assert_eq!(
            refused(change_key(
                &caller(Authority::Holder, &cap, &c),
                &current,
                &mut request.clone()
            )),
            (PolicyErrorKind::Forbidden, field)
        );
        change_key(&caller(Authority::Admin, &cap, &c), &current, &mut request).unwrap();
    }
    // Sending the fields back unchanged is no change.
    change_key(
        &caller(Authority::Holder, &cap, &c),
        &current,
        &mut unchanged(&current),
    )
    .unwrap();
}

#[test]
fn a_holder_can_tighten_but_not_loosen_limits_models_expiry_or_blocked() {
    let c = catalog();
    let cap = Ceiling::unlimited();
    let current = holder_key();
    let holder = caller(Authority::Holder, &cap, &c);
    let mut tighter = unchanged(&current);
    tighter.limits.rpm_limit = Some(Some(2));
    tighter.expires_at = Some(Some(9_000));
    tighter.models = Some(names(&["gpt-4"]));
    change_key(&holder, &current, &mut tighter).unwrap();

    let mut cases: Vec<(KeyRequest, &str)> = Vec::new();
    let mut r = unchanged(&current);
    r.limits.rpm_limit = Some(Some(6));
    cases.push((r, "rpm_limit"));
    let mut r = unchanged(&current);
    r.limits.max_parallel_requests = Some(None);
    cases.push((r, "max_parallel_requests"));
    let mut r = unchanged(&current);
    r.models = Some(Vec::new());
    cases.push((r, "models"));
    let mut r = unchanged(&current);
    r.models = Some(names(&["gpt-4", "claude"]));
    cases.push((r, "models"));
    let mut r = unchanged(&current);
    r.blocked = Some(false);
    cases.push((r, "blocked"));
    let mut r = unchanged(&current);
    r.expires_at = Some(None);
    cases.push((r, "duration"));
    for (mut request, field) in cases {
        assert_eq!(
            refused(change_key(&holder, &current, &mut request.clone())).1,
            field
        );
        // An admin of the key may (the ceiling being unlimited here).
        change_key(&caller(Authority::Admin, &cap, &c), &current, &mut request).unwrap();
    }
    // Blocking oneself is always fine.
    let open = KeyState {
        blocked: false,
        ..current.clone()
    };
    let mut block = unchanged(&open);
    block.blocked = Some(true);
    change_key(&holder, &open, &mut block).unwrap();
}

#[test]
fn an_admin_changes_a_key_within_its_own_ceiling() {
    let c = catalog();
    let cap = ceiling(ModelBound::Only(names(&["gpt-4"])), Some(10), None);
    let admin = caller(Authority::Admin, &cap, &c);
    // A key with a limit above the admin's own is left alone when the admin changes
    // something else...
    let current = KeyState {
        limits: LimitSet {
            rpm_limit: Some(100),
            ..LimitSet::default()
        },
        ..KeyState::default()
    };
    let mut other = unchanged(&current);
    other.limits.tpm_limit = Some(Some(5));
    change_key(&admin, &current, &mut other).unwrap();
    // ...but the admin cannot set one above it, nor open the models.
    let mut above = unchanged(&current);
    above.limits.rpm_limit = Some(Some(11));
    assert_eq!(
        refused(change_key(&admin, &current, &mut above)).1,
        "rpm_limit"
    );
    let mut open = unchanged(&current);
    open.models = Some(Vec::new());
    change_key(&admin, &current, &mut open).unwrap();
    assert_eq!(
        open.models,
        Some(names(&["gpt-4"])),
        "empty means the caller's list"
    );
}

#[test]
fn placing_a_key_checks_team_membership_and_organization() {
    let team = |org: Option<&'static str>, member: bool| TeamPlacement {
        team_id: "t1",
        team_org: org,
        owner_is_member: member,
    };
    let org = |member: bool| OrgPlacement {
        organization_id: "o1",
        caller_is_member: member,
    };
    let me = Some("me");
    // Team keys: the owner must be in the team; the org must be the team's.
    place_key(
        Authority::Holder,
        me,
        me,
        Some(team(Some("o1"), true)),
        Some(org(false)),
    )
    .unwrap();
    assert_eq!(
        refused(place_key(
            Authority::Admin,
            me,
            Some("x"),
            Some(team(None, false)),
            None
        ))
        .1,
        "user_id"
    );
    assert_eq!(
        refused(place_key(
            Authority::Admin,
            me,
            me,
            Some(team(Some("o2"), true)),
            Some(org(true))
        )),
        (PolicyErrorKind::Invalid, "organization_id")
    );
    // Personal keys: only for oneself, and only into an organization one belongs to.
    place_key(Authority::Holder, me, me, None, Some(org(true))).unwrap();
    assert_eq!(
        refused(place_key(Authority::Holder, me, me, None, Some(org(false)))).1,
        "organization_id"
    );
    assert_eq!(
        refused(place_key(Authority::Admin, me, Some("other"), None, None)).1,
        "team_id"
    );
    place_key(
        Authority::ProxyAdmin,
        None,
        Some("other"),
        Some(team(None, false)),
        Some(org(false)),
    )
    .unwrap();
}

#[test]
fn a_holder_may_not_send_spend_at_all() {
    let c = catalog();
    let cap = Ceiling::unlimited();
    let current = holder_key();
    let mut same = unchanged(&current);
    same.sets_spend = true;
    assert_eq!(
        refused(change_key(
            &caller(Authority::Holder, &cap, &c),
            &current,
            &mut same
        ))
        .1,
        "spend"
    );
    change_key(&caller(Authority::Admin, &cap, &c), &current, &mut same).unwrap();
}
