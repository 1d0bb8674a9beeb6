//! Bad input gets a clear error with a stable code, changes nothing, and never echoes values.

use reqwest::Method;
use serde_json::json;
use strongroom_server::ServeOptions;
use strongroom_testkit::TestVault;

const PEOPLE: &str = "/v1/collections/people/records";
const SECRET: &str = "ada.secret.value@example.com";

fn state(v: &TestVault) -> [i64; 6] {
    [
        "tenants",
        "api_keys",
        "collections",
        "subjects",
        "records",
        "record_history",
    ]
    .map(|t| v.count(t))
}

#[tokio::test]
async fn rejected_requests_change_nothing_and_echo_nothing() {
    let v = TestVault::start_with(ServeOptions {
        max_body_bytes: 4096,
        ..Default::default()
    })
    .await;
    let (_, app) = v.scenario("acme").await;
    let before = state(&v);
    let raw = |body: String, content_type: &'static str| {
        v.client
            .post(format!("{}{PEOPLE}", v.base))
            .bearer_auth(&app)
            .header("X-Purpose", "support")
            .header("Content-Type", content_type)
            .body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            raw(
                format!("{{\"fields\": {{\"email\": \"{SECRET}\"}}"),
                "application/json",
            ),
            400,
            "invalid_json",
        ),
        (
            raw(
                format!("{{\"fields\": [\"{SECRET}\"]}}"),
                "application/json",
            ),
            400,
            "invalid_request",
        ),
        (
            raw(
                format!("{{\"fields\": {{}}, \"{SECRET}\": 1}}"),
                "application/json",
            ),
            400,
            "unknown_field",
        ),
        (
            raw(
                format!("{{\"fields\": {{\"{SECRET}\": 1}}}}"),
                "application/json",
            ),
            400,
            "unknown_field",
        ),
        (
            raw(
                format!("{{\"fields\": {{\"email\": \"{SECRET}\", \"vip\": \"{SECRET}\"}}}}"),
                "application/json",
            ),
            400,
            "validation_failed",
        ),
        (
            raw(
                format!("{{\"fields\": {{\"email\": 42, \"name\": \"{SECRET}\"}}}}"),
                "application/json",
            ),
            400,
            "validation_failed",
        ),
        (
            raw(
                format!("{{\"fields\": {{\"email\": \"not an email {SECRET}\"}}}}"),
                "application/json",
            ),
            400,
            "validation_failed",
        ),
        (
            raw(
                format!("{{\"fields\": {{\"name\": \"{SECRET}\"}}}}"),
                "application/json",
            ),
            400,
            "validation_failed",
        ),
        (
            raw(
                format!("{{\"subject\": \"{SECRET}\", \"fields\": {{\"email\": \"a@b.co\"}}}}"),
                "application/json",
            ),
            400,
            "invalid_id",
        ),
        (
            raw(
                format!("{{\"fields\": {{\"email\": \"{SECRET}\"}}}}"),
                "text/plain",
            ),
            415,
            "unsupported_media_type",
        ),
        (
            raw(
                format!("{{\"fields\": {{\"notes\": \"{}\"}}}}", "x".repeat(5000)),
                "application/json",
            ),
            413,
            "body_too_large",
        ),
        (
            raw(
                format!("{{\"fields\": {{\"birth_date\": \"{SECRET}\", \"email\": \"a@b.co\"}}}}"),
                "application/json",
            ),
            400,
            "validation_failed",
        ),
    ];
    for (i, (req, status, code)) in cases.into_iter().enumerate() {
        let r = TestVault::finish(req).await;
        assert_eq!((r.status, r.code()), (status, code), "case {i}: {}", r.text);
        assert!(
            !r.text.contains("ada.secret"),
            "case {i} echoes the value: {}",
            r.text
        );
        assert!(
            !r.body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "case {i} explains itself"
        );
    }
    assert_eq!(state(&v), before, "no rejected request changed anything");
    // The rejections that touched data are in the audit trail, without the values.
    let audit = v.sqlite();
    let failed: i64 = audit
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'record.create' AND outcome = 'failed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(failed, 12);
    let leaked: i64 = audit
        .query_row(
            "SELECT count(*) FROM audit WHERE body LIKE '%ada.secret%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leaked, 0);
}

#[tokio::test]
async fn hostile_names_and_ids_are_refused() {
    let v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    for name in [
        "..%2F..%2Fetc",
        "Robert');DROP%20TABLE%20records;--",
        "%E2%80%AEevil",
        &"a".repeat(65),
        "%00",
    ] {
        let r = v
            .get(
                &format!("/v1/collections/{name}/records/rec_00000000000000000000000000000000"),
                &app,
                Some("support"),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_name"),
            "{name}: {}",
            r.text
        );
        let r = v
            .put(
                &format!("/v1/collections/{name}"),
                &t.admin,
                strongroom_testkit::people_schema(),
            )
            .await;
        assert_eq!(r.status, 400, "{name}");
    }
    for id in [
        "1",
        "rec_' OR 1=1 --",
        "rec_ZZZZ0000000000000000000000000000",
        "rec_00000000000000000000000000000000000",
    ] {
        let r = v
            .get(
                &format!("{PEOPLE}/{}", id.replace(' ', "%20")),
                &app,
                Some("support"),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "invalid_id"), "{id}");
    }
    assert_eq!(v.count("collections"), 1);
}

#[tokio::test]
async fn missing_bad_or_foreign_credentials() {
    let v = TestVault::start().await;
    let (_, app) = v.scenario("acme").await;
    let id = v
        .store_person(&app, json!({"email": "a@example.com"}))
        .await;
    let path = format!("{PEOPLE}/{id}");
    for token in [
        "",
        "nonsense",
        "srk_0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let r = v.get(&path, token, Some("support")).await;
        assert_eq!((r.status, r.code()), (401, "unauthenticated"), "{token:?}");
        assert!(r.body.get("fields").is_none());
    }
    let wrong_scheme = v
        .client
        .get(format!("{}{path}", v.base))
        .header("Authorization", format!("Basic {app}"));
    assert_eq!(TestVault::finish(wrong_scheme).await.status, 401);
    // Failed authentication is recorded in the platform log.
    let n: i64 = v
        .sqlite()
        .query_row("SELECT count(*) FROM audit WHERE log = 'platform' AND action = 'auth.api_key' AND outcome = 'denied'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
    let r = v
        .call(
            Method::PATCH,
            &path,
            &app,
            Some("support"),
            Some(&json!({"fields": {"email": "b@example.com"}})),
        )
        .await;
    assert_eq!(r.status, 200, "the real key still works: {}", r.text);
}

/// The audit trail's paging parameters are checked like the records' are: a negative `after`,
/// or a `limit` of zero, below zero or above 1000, is a 400 that names the parameter.
#[tokio::test]
async fn audit_paging_parameters_are_validated() {
    let v = TestVault::start().await;
    let (t, _) = v.scenario("acme").await;
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=1001", "limit"),
        ("limit=99999999999", "limit"),
        ("after=-1", "after"),
        ("after=x", "after"),
        ("limit=1&limit=abc", "limit"),
    ] {
        let r = v
            .get(&format!("/v1/audit/entries?{query}"), &t.admin, None)
            .await;
        assert_eq!((r.status, r.code()), (400, "invalid_request"), "{query}");
        assert!(r.text.contains(&format!("`{name}`")), "{query}: {}", r.text);
    }
    for query in ["limit=1", "limit=1000", "after=0&limit=5"] {
        let r = v
            .get(&format!("/v1/audit/entries?{query}"), &t.admin, None)
            .await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
    }
}

/// A key sent twice in one object is refused, not resolved silently to the last value, and
/// nothing is stored; the refused value is not echoed.
#[tokio::test]
async fn duplicate_keys_are_refused() {
    let v = TestVault::start().await;
    let (_, app) = v.scenario("acme").await;
    let before = v.count("records");
    for body in [
        r#"{"fields": {"email": "first@example.com", "email": "second@example.com"}}"#,
        r#"{"fields": {"email": "a@example.com", "name": "x", "name": "y"}}"#,
    ] {
        let r = TestVault::finish(
            v.client
                .post(format!("{}{PEOPLE}", v.base))
                .bearer_auth(&app)
                .header("X-Purpose", "support")
                .header("Content-Type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!((r.status, r.code()), (400, "invalid_request"), "{}", r.text);
        assert!(r.text.contains("appears twice"), "{}", r.text);
        assert!(!r.text.contains("example.com"), "{}", r.text);
    }
    let r = TestVault::finish(
        v.client
            .post(format!("{}{PEOPLE}/search", v.base))
            .bearer_auth(&app)
            .header("X-Purpose", "support")
            .header("Content-Type", "application/json")
            .body(r#"{"where": {"email": "a@example.com", "email": "b@example.com"}}"#),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"), "{}", r.text);
    assert_eq!(v.count("records"), before, "nothing was stored");
}

/// Authorisation comes before validation: a caller without the right to change roles gets 403
/// whatever it sends, never a validation error that tells it what it could have tried.
#[tokio::test]
async fn unauthorised_callers_get_403_before_any_validation() {
    let v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    let user = v
        .user(
            &t.admin,
            "grace",
            "correct horse battery staple",
            &["support_agent"],
        )
        .await;
    for roles in [
        json!(["no-such-role"]),
        json!(["operator"]),
        json!(["admin", "admin"]),
        json!([]),
    ] {
        let r = v
            .call(
                Method::PUT,
                &format!("/v1/users/{user}/roles"),
                &app,
                None,
                Some(&json!({ "roles": roles })),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (403, "forbidden"),
            "{roles}: {}",
            r.text
        );
    }
}
