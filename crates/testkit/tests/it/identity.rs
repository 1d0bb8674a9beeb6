//! People sign in safely: users, sessions, lockout, TOTP, password rules, key rotation.

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;
use strongroom_testkit::{TestTenant, TestVault};

const PEOPLE: &str = "/v1/collections/people/records";
/// 15+ characters, not common, no username: acceptable under the NIST profile without MFA.
const GOOD: &str = "violet staircase under rain";
const MIN: i64 = 60_000;

async fn with_agent(v: &TestVault) -> (TestTenant, String) {
    let (t, app) = v.scenario("acme").await;
    v.user(&t.admin, "grace", GOOD, &["support_agent"]).await;
    (t, app)
}

#[tokio::test]
async fn users_sign_in_and_use_their_roles() {
    let v = TestVault::start().await;
    let (t, app) = with_agent(&v).await;
    let id = v
        .store_person(&app, json!({"email": "a@example.com"}))
        .await;
    let token = v.session(Some("acme"), "grace", GOOD, None).await;
    assert!(
        token.starts_with("srs_") && token.len() == 68,
        "256-bit session tokens"
    );
    let r = v
        .get(&format!("{PEOPLE}/{id}"), &token, Some("support"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Tenant by id works too; usernames fold case and width.
    v.session(Some(&t.id), "GRACE", GOOD, None).await;
    v.session(Some("acme"), "ｇｒａｃｅ", GOOD, None).await;
    let dup = v
        .post(
            "/v1/users",
            &t.admin,
            None,
            json!({"username": "Grace", "password": GOOD, "roles": ["support_agent"]}),
        )
        .await;
    assert_eq!((dup.status, dup.code()), (409, "already_exists"));
    // Logout ends the session; only hashes of tokens are stored.
    let r = v
        .call(Method::POST, "/v1/auth/logout", &token, None, None)
        .await;
    assert_eq!(r.status, 204);
    let r = v
        .get(&format!("{PEOPLE}/{id}"), &token, Some("support"))
        .await;
    assert_eq!((r.status, r.code()), (401, "session_expired"));
    for (path, bytes) in v.scan_files() {
        assert!(
            !strongroom_testkit::contains(&bytes, token.as_bytes()),
            "token in {}",
            path.display()
        );
        assert!(
            !strongroom_testkit::contains(&bytes, GOOD.as_bytes()),
            "password in {}",
            path.display()
        );
    }
}

#[tokio::test]
async fn password_profiles_accept_and_reject_the_right_passwords() {
    let v = TestVault::start().await;
    let (t, _) = v.scenario("acme").await;
    let create = |name: &str, pw: &str| {
        let body = json!({"username": name, "password": pw, "roles": ["support_agent"]});
        let admin = t.admin.clone();
        let v = &v;
        async move { v.post("/v1/users", &admin, None, body).await }
    };
    for (pw, rule) in [
        ("short but ok?", "at least 15"),
        ("passwordpassword", "common"),
        ("dana-from-acme-support", "tenant name"),
        ("zzzzzzzzzzzzzzzzzzzz", "pattern"),
    ] {
        let r = create("dana", pw).await;
        assert_eq!(
            (r.status, r.code()),
            (422, "weak_password"),
            "{pw}: {}",
            r.text
        );
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(rule), "{pw}: {msg}");
        assert!(!msg.contains(pw), "never echoes the password");
    }
    let long = "ein sehr langes Passwort mit Umlauten äöü und Emoji 🔐 ".repeat(2);
    assert!(long.chars().count() > 64);
    assert_eq!(
        create("dana", &long).await.status,
        201,
        "64+ characters and non-ASCII"
    );
    assert_eq!(create("erin", "nocomposition rules here").await.status, 201);

    let r = v
        .call(
            Method::PUT,
            "/v1/settings/security",
            &t.admin,
            None,
            Some(&json!({"password": {"profile": "strict"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (
            r.body["min_length"].as_u64(),
            r.body["max_age_days"].as_u64(),
            r.body["history"].as_u64()
        ),
        (Some(10), Some(120), Some(5))
    );
    let r = create("fay", "kettle#42bay").await;
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upper-case"),
        "{}",
        r.text
    );
    assert_eq!(create("fay", "Kettle#42bay").await.status, 201);
    let r = v
        .call(
            Method::PUT,
            "/v1/settings/security",
            &t.admin,
            None,
            Some(&json!({"lockout_threshold": 500})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
}

#[tokio::test]
async fn lockout_after_exactly_n_failures_then_growing_delays() {
    let v = TestVault::start().await;
    let (t, _) = with_agent(&v).await;
    let r = v
        .call(
            Method::PUT,
            "/v1/settings/security",
            &t.admin,
            None,
            Some(&json!({"lockout_threshold": 3, "lockout_base_seconds": 60})),
        )
        .await;
    assert_eq!(r.status, 200);
    for _ in 0..2 {
        assert_eq!(
            v.login(Some("acme"), "grace", "wrong password here", None)
                .await
                .code(),
            "invalid_credentials"
        );
    }
    assert_eq!(
        v.login(Some("acme"), "grace", GOOD, None).await.status,
        200,
        "2 < 3 failures, and success resets"
    );
    for _ in 0..3 {
        v.login(Some("acme"), "grace", "wrong password here", None)
            .await;
    }
    let r = v.login(Some("acme"), "grace", GOOD, None).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_credentials"),
        "locked after exactly 3"
    );
    v.clock.advance_ms(59_000);
    assert_eq!(
        v.login(Some("acme"), "grace", GOOD, None).await.status,
        401,
        "still locked"
    );
    v.clock.advance_ms(1_000);
    assert_eq!(
        v.login(Some("acme"), "grace", GOOD, None).await.status,
        200,
        "released after the delay"
    );

    // Without a success in between, the next lock lasts twice as long.
    for _ in 0..3 {
        v.login(Some("acme"), "grace", "wrong password here", None)
            .await;
    }
    v.clock.advance_ms(60_000);
    for _ in 0..3 {
        v.login(Some("acme"), "grace", "wrong password here", None)
            .await;
    }
    v.clock.advance_ms(119_000);
    assert_eq!(
        v.login(Some("acme"), "grace", GOOD, None).await.status,
        401,
        "second lock: 120 s"
    );
    v.clock.advance_ms(1_000);
    assert_eq!(v.login(Some("acme"), "grace", GOOD, None).await.status, 200);
    for _ in 0..3 {
        v.login(Some("acme"), "grace", "wrong password here", None)
            .await;
    }
    v.clock.advance_ms(60_000);
    assert_eq!(
        v.login(Some("acme"), "grace", GOOD, None).await.status,
        200,
        "a success resets the growth"
    );
    for _ in 0..3 {
        v.login(Some("acme"), "grace", "wrong password here", None)
            .await;
    }
    let users = v.get("/v1/users", &t.admin, None).await;
    assert!(
        users.body["users"][0]["locked_until"].is_i64(),
        "{}",
        users.text
    );
    // An administrator can unlock at once; both are audited.
    let uid = users.body["users"][0]["id"].as_str().unwrap().to_owned();
    let r = v
        .post(
            &format!("/v1/users/{uid}/unlock"),
            &t.admin,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(v.login(Some("acme"), "grace", GOOD, None).await.status, 200);
    let audit = v
        .get("/v1/audit/entries?action=auth.lockout", &t.admin, None)
        .await;
    assert_eq!(
        audit.body["entries"].as_array().unwrap().len(),
        5,
        "each lock is audited"
    );
    let audit = v
        .get("/v1/audit/entries?action=user.unlock", &t.admin, None)
        .await;
    assert_eq!(audit.body["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn locked_wrong_unknown_and_disabled_look_identical() {
    let v = TestVault::start().await;
    let (t, _) = with_agent(&v).await;
    let ida = v.user(&t.admin, "ida", GOOD, &["support_agent"]).await;
    v.user(&t.admin, "lena", GOOD, &["support_agent"]).await;
    for _ in 0..10 {
        v.login(Some("acme"), "lena", "wrong password here", None)
            .await;
    }
    let r = v
        .post(
            &format!("/v1/users/{ida}/disable"),
            &t.admin,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    let answers = [
        v.login(Some("acme"), "grace", "wrong password here", None)
            .await,
        v.login(Some("acme"), "nobody", GOOD, None).await,
        v.login(Some("acme"), "lena", GOOD, None).await,
        v.login(Some("acme"), "ida", GOOD, None).await,
        v.login(Some("no-such-tenant"), "grace", GOOD, None).await,
    ];
    for a in &answers {
        assert_eq!(
            (a.status, &a.text),
            (answers[0].status, &answers[0].text),
            "same status and body"
        );
    }
    assert_eq!(answers[0].code(), "invalid_credentials");
    // The audit trail knows the real reasons; the caller does not.
    let audit = v
        .get(
            "/v1/audit/entries?action=auth.login&outcome=denied",
            &t.admin,
            None,
        )
        .await;
    let text = audit.text;
    for reason in [
        "reason:wrong_password",
        "reason:unknown_user",
        "reason:locked",
        "reason:disabled",
    ] {
        assert!(text.contains(reason), "{reason} missing");
    }
    assert!(!text.contains(GOOD) && !text.contains("wrong password here"));
}

#[tokio::test]
async fn totp_codes_are_single_use_and_recovery_codes_work_once() {
    let v = TestVault::start().await;
    with_agent(&v).await;
    let token = v.session(Some("acme"), "grace", GOOD, None).await;
    let (secret, recovery) = v.enrol_totp(&token).await;
    assert_eq!(recovery.len(), 10);
    let r = v.get("/v1/collections", &token, None).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "session_expired"),
        "an MFA change ends every session"
    );

    let r = v.login(Some("acme"), "grace", GOOD, None).await;
    assert_eq!((r.status, r.code()), (401, "mfa_required"));
    v.clock.advance_ms(30_000);
    let code = v.totp(&secret, 0);
    assert_eq!(
        v.login(Some("acme"), "grace", GOOD, Some(&code))
            .await
            .status,
        200
    );
    let replay = v.login(Some("acme"), "grace", GOOD, Some(&code)).await;
    assert_eq!(
        (replay.status, replay.code()),
        (401, "invalid_credentials"),
        "a code is accepted once"
    );
    v.clock.advance_ms(30_000);
    let old = v.totp(&secret, -2);
    assert_eq!(
        v.login(Some("acme"), "grace", GOOD, Some(&old))
            .await
            .status,
        401,
        "two steps ago is too old"
    );
    let previous = v.totp(&secret, -1);
    assert_eq!(
        v.login(Some("acme"), "grace", GOOD, Some(&previous))
            .await
            .status,
        401,
        "older than the last accepted step"
    );
    assert_eq!(
        v.login(Some("acme"), "grace", GOOD, Some(&v.totp(&secret, 0)))
            .await
            .status,
        200,
        "the next step works"
    );
    let wrong_pw = v
        .login(
            Some("acme"),
            "grace",
            "wrong password here",
            Some(&v.totp(&secret, 1)),
        )
        .await;
    assert_eq!(wrong_pw.code(), "invalid_credentials");

    assert_eq!(
        v.login(
            Some("acme"),
            "grace",
            GOOD,
            Some(&recovery[0].to_uppercase())
        )
        .await
        .status,
        200
    );
    assert_eq!(
        v.login(Some("acme"), "grace", GOOD, Some(&recovery[0]))
            .await
            .status,
        401,
        "recovery codes work once"
    );
    assert_eq!(
        v.login(Some("acme"), "grace", GOOD, Some(&recovery[1]))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn password_and_totp_failures_count_together() {
    let v = TestVault::start().await;
    let (t, _) = with_agent(&v).await;
    v.call(
        Method::PUT,
        "/v1/settings/security",
        &t.admin,
        None,
        Some(&json!({"lockout_threshold": 4})),
    )
    .await;
    let token = v.session(Some("acme"), "grace", GOOD, None).await;
    let (secret, _) = v.enrol_totp(&token).await;
    v.clock.advance_ms(30_000);
    v.login(Some("acme"), "grace", "wrong password here", None)
        .await;
    v.login(Some("acme"), "grace", "wrong password here", None)
        .await;
    v.login(Some("acme"), "grace", GOOD, Some("000000")).await;
    v.login(Some("acme"), "grace", GOOD, Some("999999")).await;
    let r = v
        .login(Some("acme"), "grace", GOOD, Some(&v.totp(&secret, 0)))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_credentials"),
        "locked by 2 + 2 failures"
    );
}

#[tokio::test]
async fn mfa_is_mandatory_for_admins() {
    let v = TestVault::start().await;
    let t = v.tenant("acme").await;
    let r = v
        .post("/v1/users", &v.operator, None, json!({"username": "root-of-acme", "password": "short+MFA1", "roles": ["admin"], "tenant": t.id}))
        .await;
    assert_eq!(
        r.status, 201,
        "admins will have MFA, so 8+ characters suffice: {}",
        r.text
    );
    let r = v
        .login(Some("acme"), "root-of-acme", "short+MFA1", None)
        .await;
    assert_eq!(r.body["restricted_to"], "mfa_enrollment");
    let token = r.body["token"].as_str().unwrap().to_owned();
    let r = v
        .put(
            "/v1/collections/people",
            &token,
            strongroom_testkit::people_schema(),
        )
        .await;
    assert_eq!(
        r.status, 403,
        "nothing but enrolment until MFA is on: {}",
        r.text
    );
    let (secret, _) = v.enrol_totp(&token).await;
    v.clock.advance_ms(30_000);
    let r = v
        .login(
            Some("acme"),
            "root-of-acme",
            "short+MFA1",
            Some(&v.totp(&secret, 0)),
        )
        .await;
    assert!(r.body["restricted_to"].is_null(), "{}", r.text);
    let full = r.body["token"].as_str().unwrap();
    assert_eq!(
        v.put(
            "/v1/collections/people",
            full,
            strongroom_testkit::people_schema()
        )
        .await
        .status,
        201
    );
    // A tenant can require MFA for any role.
    let mut settings = json!({"mfa_required_roles": ["auditor"]});
    let r = v
        .call(
            Method::PUT,
            "/v1/settings/security",
            full,
            None,
            Some(&settings),
        )
        .await;
    assert_eq!(
        r.body["mfa_required_roles"],
        json!(["admin", "auditor", "operator"])
    );
    v.user(full, "audrey", GOOD, &["auditor"]).await;
    assert_eq!(
        v.login(Some("acme"), "audrey", GOOD, None).await.body["restricted_to"],
        "mfa_enrollment"
    );
    settings["mfa_required_roles"] = json!([]);
    v.call(
        Method::PUT,
        "/v1/settings/security",
        full,
        None,
        Some(&settings),
    )
    .await;
    assert!(v.login(Some("acme"), "audrey", GOOD, None).await.body["restricted_to"].is_null());
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_their_absolute_lifetime() {
    let v = TestVault::start().await;
    with_agent(&v).await;
    let token = v.session(Some("acme"), "grace", GOOD, None).await;
    v.clock.advance_ms(29 * MIN);
    assert_eq!(v.get("/v1/collections", &token, None).await.status, 200);
    v.clock.advance_ms(29 * MIN);
    assert_eq!(
        v.get("/v1/collections", &token, None).await.status,
        200,
        "activity keeps it alive"
    );
    v.clock.advance_ms(30 * MIN);
    let r = v.get("/v1/collections", &token, None).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "session_expired"),
        "idle for 30 minutes"
    );

    let token = v.session(Some("acme"), "grace", GOOD, None).await;
    for _ in 0..35 {
        v.clock.advance_ms(20 * MIN);
        assert_eq!(v.get("/v1/collections", &token, None).await.status, 200);
    }
    v.clock.advance_ms(20 * MIN);
    let r = v.get("/v1/collections", &token, None).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "session_expired"),
        "12 hours at most"
    );
}

#[tokio::test]
async fn password_change_and_disabling_end_every_session() {
    let v = TestVault::start().await;
    let (t, _) = with_agent(&v).await;
    let a = v.session(Some("acme"), "grace", GOOD, None).await;
    let b = v.session(Some("acme"), "grace", GOOD, None).await;
    let change = |token: String, current: &str, new: &str| {
        let body = json!({"current_password": current, "new_password": new});
        let v = &v;
        async move { v.post("/v1/auth/password", &token, None, body).await }
    };
    let r = change(a.clone(), GOOD, "tiny").await;
    assert_eq!((r.status, r.code()), (422, "weak_password"));
    let r = change(
        a.clone(),
        "not my password at all",
        "an entirely new passphrase",
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "invalid_credentials"));
    let r = change(a.clone(), GOOD, "an entirely new passphrase").await;
    assert_eq!(r.status, 204, "{}", r.text);
    for token in [&a, &b] {
        assert_eq!(
            v.get("/v1/collections", token, None).await.code(),
            "session_expired"
        );
    }
    assert_eq!(v.login(Some("acme"), "grace", GOOD, None).await.status, 401);
    let c = v
        .session(Some("acme"), "grace", "an entirely new passphrase", None)
        .await;

    let users = v.get("/v1/users", &t.admin, None).await;
    let uid = users.body["users"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        v.post(
            &format!("/v1/users/{uid}/disable"),
            &t.admin,
            None,
            json!({})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        v.get("/v1/collections", &c, None).await.code(),
        "session_expired"
    );
    assert_eq!(
        v.login(Some("acme"), "grace", "an entirely new passphrase", None)
            .await
            .code(),
        "invalid_credentials"
    );
    assert_eq!(
        v.post(
            &format!("/v1/users/{uid}/enable"),
            &t.admin,
            None,
            json!({})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        v.login(Some("acme"), "grace", "an entirely new passphrase", None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn strict_profile_forbids_reuse_and_forces_change_after_120_days() {
    let v = TestVault::start().await;
    let (t, _) = v.scenario("acme").await;
    v.call(
        Method::PUT,
        "/v1/settings/security",
        &t.admin,
        None,
        Some(&json!({"password": {"profile": "strict"}})),
    )
    .await;
    v.user(&t.admin, "hal", "Kettle#42bay", &["support_agent"])
        .await;
    let mut current = "Kettle#42bay".to_owned();
    let mut token = v.session(Some("acme"), "hal", &current, None).await;
    for i in 0..5 {
        let next = format!("Kettle#42bay{i}");
        let r = v
            .post(
                "/v1/auth/password",
                &token,
                None,
                json!({"current_password": current, "new_password": next}),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
        current = next;
        token = v.session(Some("acme"), "hal", &current, None).await;
    }
    let r = v
        .post(
            "/v1/auth/password",
            &token,
            None,
            json!({"current_password": current, "new_password": "Kettle#42bay1"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (422, "weak_password"),
        "one of the last 5"
    );
    v.clock.advance_ms(120 * 24 * 60 * MIN);
    let r = v.login(Some("acme"), "hal", &current, None).await;
    assert_eq!(r.body["restricted_to"], "password_change");
    let restricted = r.body["token"].as_str().unwrap();
    assert_eq!(v.get("/v1/collections", restricted, None).await.status, 403);
}

#[tokio::test]
async fn rotated_api_keys_stop_working() {
    let v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    assert_eq!(v.get("/v1/collections", &app, None).await.status, 200);
    let keys = v.get("/v1/api-keys", &t.admin, None).await;
    let entry = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["roles"] == json!(["support_agent"]))
        .unwrap()
        .clone();
    assert!(
        entry["last_used_at"].is_i64(),
        "last use is tracked: {entry}"
    );
    let id = entry["id"].as_str().unwrap();

    // The key rotates itself, at once.
    let r = v
        .post(&format!("/v1/api-keys/{id}/rotate"), &app, None, json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let successor = r.body["key"].as_str().unwrap().to_owned();
    let r = v.get("/v1/collections", &app, None).await;
    assert_eq!((r.status, r.code()), (401, "key_expired"));
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("rotated"));
    assert_eq!(v.get("/v1/collections", &successor, None).await.status, 200);
    let again = v
        .post(
            &format!("/v1/api-keys/{id}/rotate"),
            &t.admin,
            None,
            json!({}),
        )
        .await;
    assert_eq!(again.status, 409);

    // With an overlap, the old key keeps working for that long only.
    let succ_id = v.get("/v1/api-keys", &t.admin, None).await.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["rotated_to"].is_null() && k["roles"] == json!(["support_agent"]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = v
        .post(
            &format!("/v1/api-keys/{succ_id}/rotate"),
            &t.admin,
            None,
            json!({"overlap_minutes": 10}),
        )
        .await;
    assert_eq!(r.status, 201);
    let third = r.body["key"].as_str().unwrap().to_owned();
    assert_eq!(v.get("/v1/collections", &successor, None).await.status, 200);
    v.clock.advance_ms(10 * MIN);
    assert_eq!(v.get("/v1/collections", &successor, None).await.status, 401);
    assert_eq!(v.get("/v1/collections", &third, None).await.status, 200);
    let too_long = v
        .post(
            &format!("/v1/api-keys/{succ_id}/rotate"),
            &t.admin,
            None,
            json!({"overlap_minutes": 1441}),
        )
        .await;
    assert_eq!(too_long.status, 400);
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_address() {
    let v = TestVault::start().await;
    v.tenant("acme").await;
    for i in 0..20 {
        let r = v
            .login(Some("acme"), &format!("nobody{i}"), GOOD, None)
            .await;
        assert_eq!(r.code(), "invalid_credentials");
    }
    let r = v.login(Some("acme"), "nobody", GOOD, None).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"));
    v.clock.advance_ms(3_100);
    assert_eq!(
        v.login(Some("acme"), "nobody", GOOD, None).await.code(),
        "invalid_credentials"
    );
}

/// Behind a trusted proxy each client named by `X-Forwarded-For` has its own budget; without
/// one, the header is ignored, so a client cannot escape the limit by inventing addresses.
#[tokio::test]
async fn sign_in_limits_follow_forwarded_clients_only_behind_trusted_proxies() {
    let login = |v: &TestVault, forwarded: &str| {
        let req = v
            .client
            .post(format!("{}/v1/auth/login", v.base))
            .header("X-Forwarded-For", forwarded.to_owned())
            .json(&json!({"tenant": "acme", "username": "nobody", "password": GOOD}));
        async move { TestVault::finish(req).await.status }
    };
    // Untrusted: 20 attempts with 20 invented addresses exhaust the one real address.
    let v = TestVault::start().await;
    v.tenant("acme").await;
    for i in 0..20 {
        assert_eq!(login(&v, &format!("198.51.100.{i}")).await, 401);
    }
    assert_eq!(
        login(&v, "198.51.100.99").await,
        429,
        "the header is not believed"
    );

    // Trusted loopback proxy: each forwarded client counts on its own.
    let v = TestVault::start_with(strongroom_server::ServeOptions {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..Default::default()
    })
    .await;
    v.tenant("acme").await;
    for _ in 0..20 {
        assert_eq!(login(&v, "203.0.113.7").await, 401);
    }
    assert_eq!(
        login(&v, "203.0.113.7").await,
        429,
        "this client is out of attempts"
    );
    assert_eq!(
        login(&v, "203.0.113.8").await,
        401,
        "another client behind the same proxy is not"
    );
    assert_eq!(
        login(&v, "203.0.113.8, 203.0.113.7").await,
        429,
        "the right-most untrusted address counts, not what the client wrote before it"
    );
}

#[tokio::test]
async fn identity_report_counts_admins_and_mfa_coverage() {
    let v = TestVault::start().await;
    let (t, _) = with_agent(&v).await;
    v.user(&t.admin, "ivy", GOOD, &["support_agent"]).await;
    let token = v.session(Some("acme"), "ivy", GOOD, None).await;
    v.enrol_totp(&token).await;
    let r = v.get("/v1/identity/report", &t.admin, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["users"], 2);
    assert_eq!(
        r.body["mfa_coverage"]["support_agent"],
        json!({"users": 2, "with_mfa": 1, "mfa_required": false})
    );
    assert_eq!(r.body["settings"]["profile"], "nist");
    assert!(r.body["settings"]["blocklist_entries"].as_u64().unwrap() >= 3000);
    assert!(r.body["api_keys"].as_u64().unwrap() >= 2);
    let app_sees = v.get("/v1/identity/report", &token, None).await;
    assert_eq!(app_sees.status, 401, "the enrolment ended that session");
}

/// Counts Argon2 verifications, so the equal-cost rule is checked without timing anything.
struct CountingHasher {
    inner: strongroom_core::vault::InlineHasher,
    verifies: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl strongroom_core::vault::PasswordHasher for CountingHasher {
    async fn hash(&self, password: zeroize::Zeroizing<Vec<u8>>, salt: [u8; 16]) -> Option<String> {
        self.inner.hash(password, salt).await
    }

    async fn verify(&self, password: zeroize::Zeroizing<Vec<u8>>, phc: String) -> bool {
        self.verifies
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.verify(password, phc).await
    }
}

#[tokio::test]
async fn every_failed_sign_in_costs_exactly_one_password_verification() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use strongroom_core::vault::{Actor, Principal};
    use strongroom_core::{ManualClock, OsRng, RequestCtx, Vault};

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        strongroom_store_sqlite::SqliteStore::open(&dir.path().join("v.db"), Default::default())
            .unwrap(),
    );
    let hasher = Arc::new(CountingHasher {
        inner: strongroom_core::vault::InlineHasher(strongroom_crypto::password::Cost {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }),
        verifies: Default::default(),
    });
    let clock = Arc::new(ManualClock::new(strongroom_testkit::START_MS));
    let vault = Vault::new(
        store,
        clock,
        Arc::new(OsRng),
        hasher.clone(),
        strongroom_core::rng::RngExt::key(&OsRng),
        Default::default(),
    );
    vault.ensure_initialized().await.unwrap();
    let operator = RequestCtx {
        principal: Principal {
            actor: Actor::ApiKey(strongroom_core::ApiKeyId::generate(&OsRng)),
            tenant: None,
            roles: vec!["operator".into()],
            restricted_to: None,
        },
        request_id: vault.request_id(),
        purpose: None,
    };
    let user = |name: &str| strongroom_proto::CreateUser {
        username: name.into(),
        password: GOOD.into(),
        roles: vec![],
        tenant: None,
    };
    vault.create_user(&operator, user("olga")).await.unwrap();
    let olga = vault.create_user(&operator, user("oscar")).await.unwrap();
    vault.disable_user(&operator, &olga.id).await.unwrap();
    let login = |name: &str, pw: &str| strongroom_proto::Login {
        tenant: None,
        username: name.into(),
        password: pw.into(),
        totp: None,
    };
    let mut costs = Vec::new();
    for (name, pw) in [
        ("olga", "wrong password here"),
        ("nobody", GOOD),
        ("oscar", GOOD),
        ("olga", GOOD),
    ] {
        let before = hasher.verifies.load(Ordering::SeqCst);
        let result = vault.login(login(name, pw), vault.request_id()).await;
        costs.push((
            name,
            result.is_ok(),
            hasher.verifies.load(Ordering::SeqCst) - before,
        ));
    }
    assert_eq!(
        costs,
        [
            ("olga", false, 1),
            ("nobody", false, 1),
            ("oscar", false, 1),
            ("olga", true, 1)
        ],
        "wrong password, unknown user, disabled user and success each verify once"
    );
    // Locked: still one verification.
    for _ in 0..10 {
        let _ = vault
            .login(login("olga", "wrong password here"), vault.request_id())
            .await;
    }
    let before = hasher.verifies.load(Ordering::SeqCst);
    assert!(vault
        .login(login("olga", GOOD), vault.request_id())
        .await
        .is_err());
    assert_eq!(hasher.verifies.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test]
async fn operator_accounts_need_mfa_and_hashes_use_argon2id() {
    let v = TestVault::start().await;
    let r = v
        .post(
            "/v1/users",
            &v.operator,
            None,
            json!({"username": "ops-olga", "password": "night+shift9"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["roles"], json!(["operator"]));
    let r = v.login(None, "ops-olga", "night+shift9", None).await;
    assert_eq!(
        r.body["restricted_to"], "mfa_enrollment",
        "operators must use MFA"
    );
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        v.post("/v1/tenants", &token, None, json!({"name": "x"}))
            .await
            .status,
        403
    );
    let (secret, _) = v.enrol_totp(&token).await;
    v.clock.advance_ms(30_000);
    let ops = v
        .session(None, "ops-olga", "night+shift9", Some(&v.totp(&secret, 0)))
        .await;
    assert_eq!(
        v.post("/v1/tenants", &ops, None, json!({"name": "acme"}))
            .await
            .status,
        201
    );
    // A tenant's user is not an operator's: same name, other scope.
    assert_eq!(
        v.login(Some("acme"), "ops-olga", "night+shift9", None)
            .await
            .code(),
        "invalid_credentials"
    );

    let hash: String = v
        .sqlite()
        .query_row(
            "SELECT password_hash FROM users WHERE username = 'ops-olga'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

#[tokio::test]
async fn identity_events_are_audited_without_secrets() {
    let v = TestVault::start().await;
    let (t, app) = with_agent(&v).await;
    let token = v.session(Some("acme"), "grace", GOOD, None).await;
    v.login(Some("acme"), "grace", "a wrong password guess", None)
        .await;
    let (secret, recovery) = v.enrol_totp(&token).await;
    v.clock.advance_ms(30_000);
    let code = v.totp(&secret, 0);
    let s2 = v.session(Some("acme"), "grace", GOOD, Some(&code)).await;
    v.post(
        "/v1/auth/password",
        &s2,
        None,
        json!({"current_password": GOOD, "new_password": "a brand new passphrase"}),
    )
    .await;
    let keys = v.get("/v1/api-keys", &t.admin, None).await;
    let key_id = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["roles"] == json!(["support_agent"]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = v
        .post(
            &format!("/v1/api-keys/{key_id}/rotate"),
            &app,
            None,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 201);
    let all = v.get("/v1/audit/entries?limit=1000", &t.admin, None).await;
    let actions: Vec<&str> = all.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "user.create",
        "auth.login",
        "auth.mfa_enroll",
        "auth.mfa_enable",
        "auth.password_change",
        "api_key.rotate",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    let failed = all.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.login" && e["outcome"] == "denied")
        .count();
    assert_eq!(failed, 1);
    let text = all.text;
    let secrets = [
        GOOD,
        "a wrong password guess",
        "a brand new passphrase",
        &code,
        &recovery[0],
        &token,
        &s2,
        &app,
        rotated.body["key"].as_str().unwrap(),
    ];
    for s in secrets {
        assert!(!text.contains(s), "a secret in the audit trail");
    }
}

/// Holds every verification of one password hash at a gate until the test opens it, so that
/// concurrent sign-ins really overlap; counts how many reached the real hash.
struct GatedHasher {
    inner: strongroom_core::vault::InlineHasher,
    gated: std::sync::Mutex<Option<String>>,
    open: tokio::sync::watch::Sender<bool>,
    reached: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl strongroom_core::vault::PasswordHasher for GatedHasher {
    async fn hash(&self, password: zeroize::Zeroizing<Vec<u8>>, salt: [u8; 16]) -> Option<String> {
        self.inner.hash(password, salt).await
    }

    async fn verify(&self, password: zeroize::Zeroizing<Vec<u8>>, phc: String) -> bool {
        let gated = self.gated.lock().unwrap().as_deref() == Some(phc.as_str());
        if gated {
            self.reached
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut open = self.open.subscribe();
            while !*open.borrow_and_update() {
                open.changed().await.unwrap();
            }
        }
        self.inner.verify(password, phc).await
    }
}

/// 50 wrong passwords and the right one, sent at once to one vault or spread over several
/// nodes of one PostgreSQL database: no more than the lockout threshold of them is ever checked
/// against the real hash, and the lockout is recorded once.
async fn concurrent_guesses_stay_within_the_threshold(nodes: Vec<Arc<dyn strongroom_core::Store>>) {
    use std::sync::atomic::Ordering;
    use strongroom_core::vault::{Actor, Principal};
    use strongroom_core::{ManualClock, OsRng, RequestCtx, Vault};

    let hasher = Arc::new(GatedHasher {
        inner: strongroom_core::vault::InlineHasher(strongroom_crypto::password::Cost {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }),
        gated: Default::default(),
        open: tokio::sync::watch::channel(false).0,
        reached: Default::default(),
    });
    let root = strongroom_core::rng::RngExt::key(&OsRng);
    let clock = Arc::new(ManualClock::new(strongroom_testkit::START_MS));
    let vaults: Vec<Arc<Vault>> = nodes
        .into_iter()
        .map(|store| {
            Arc::new(Vault::new(
                store,
                clock.clone(),
                Arc::new(OsRng),
                hasher.clone(),
                root.clone(),
                Default::default(),
            ))
        })
        .collect();
    for v in &vaults {
        v.ensure_initialized().await.unwrap();
    }
    let operator = RequestCtx {
        principal: Principal {
            actor: Actor::ApiKey(strongroom_core::ApiKeyId::generate(&OsRng)),
            tenant: None,
            roles: vec!["operator".into()],
            restricted_to: None,
        },
        request_id: vaults[0].request_id(),
        purpose: None,
    };
    let created = vaults[0]
        .create_user(
            &operator,
            strongroom_proto::CreateUser {
                username: "olga".into(),
                password: GOOD.into(),
                roles: vec![],
                tenant: None,
            },
        )
        .await
        .unwrap();
    let id = strongroom_core::UserId::parse(&created.id).unwrap();
    let row = vaults[0]
        .store()
        .find_user(None, &id)
        .await
        .unwrap()
        .unwrap();
    *hasher.gated.lock().unwrap() = Some(row.password_hash.clone());

    let attempts = 51;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..attempts)
        .map(|i| {
            let vault = vaults[i % vaults.len()].clone();
            let done = done.clone();
            let password = if i == 25 { GOOD } else { "wrong password here" };
            tokio::spawn(async move {
                let r = vault
                    .login(
                        strongroom_proto::Login {
                            tenant: None,
                            username: "olga".into(),
                            password: password.into(),
                            totp: None,
                        },
                        vault.request_id(),
                    )
                    .await;
                done.fetch_add(1, Ordering::SeqCst);
                r.is_ok()
            })
        })
        .collect();
    // Every attempt is either waiting at the gate (admitted) or already answered (refused).
    while hasher.reached.load(Ordering::SeqCst) + done.load(Ordering::SeqCst) < attempts {
        tokio::task::yield_now().await;
    }
    let admitted = hasher.reached.load(Ordering::SeqCst);
    hasher.open.send_replace(true);
    let mut signed_in = 0;
    for t in tasks {
        signed_in += usize::from(t.await.unwrap());
    }
    let threshold = 10;
    assert!(
        (1..=threshold).contains(&admitted),
        "{admitted} checks against the real hash ran at once (threshold {threshold})"
    );
    assert!(signed_in <= 1);
    let store = vaults[0].store();
    let lockouts = store
        .find_audit_entries(
            strongroom_core::audit::PLATFORM_LOG,
            &strongroom_core::store::AuditQuery {
                action: Some("auth.lockout".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let logins = store
        .find_audit_entries(
            strongroom_core::audit::PLATFORM_LOG,
            &strongroom_core::store::AuditQuery {
                action: Some("auth.login".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(logins.len(), attempts, "every attempt is audited");
    let wrong = logins
        .iter()
        .filter(|e| e.objects.iter().any(|o| o == "reason:wrong_password"))
        .count();
    assert_eq!(
        wrong + signed_in,
        admitted,
        "the admitted ones were checked"
    );
    // Checks under way count as failures until they end, so the lock can fall while the right
    // password is still being checked (its success then lifts it): at most one lockout, and
    // exactly one when the wrong ones alone reach the threshold.
    assert!(lockouts.len() <= 1, "{} lockouts recorded", lockouts.len());
    if wrong >= threshold {
        assert_eq!(lockouts.len(), 1, "the lockout is recorded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_stay_within_the_threshold_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        strongroom_store_sqlite::SqliteStore::open(&dir.path().join("v.db"), Default::default())
            .unwrap(),
    );
    concurrent_guesses_stay_within_the_threshold(vec![store]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_stay_within_the_threshold_on_two_postgres_nodes() {
    let Some(url) = strongroom_testkit::postgres::fresh_database().await else {
        return;
    };
    let mut nodes: Vec<Arc<dyn strongroom_core::Store>> = Vec::new();
    for _ in 0..2 {
        nodes.push(Arc::new(
            strongroom_store_postgres::PgStore::open(&url, Default::default())
                .await
                .unwrap(),
        ));
    }
    concurrent_guesses_stay_within_the_threshold(nodes).await;
}
