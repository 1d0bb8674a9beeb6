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
            422,
            "validation_failed",
        ),
        (
            raw(
                format!("{{\"fields\": {{\"email\": 42, \"name\": \"{SECRET}\"}}}}"),
                "application/json",
            ),
            422,
            "validation_failed",
        ),
        (
            raw(
                format!("{{\"fields\": {{\"email\": \"not an email {SECRET}\"}}}}"),
                "application/json",
            ),
            422,
            "validation_failed",
        ),
        (
            raw(
                format!("{{\"fields\": {{\"name\": \"{SECRET}\"}}}}"),
                "application/json",
            ),
            422,
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
            422,
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
    // Failed authentication is recorded in the platform log: counted per client and minute.
    assert_eq!(
        refusal_counts(&v).await,
        vec![("unauthenticated".to_owned(), 4)]
    );
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

/// Closes the current counting minute and returns the counts recorded for it, by error code.
async fn refusal_counts(v: &TestVault) -> Vec<(String, u64)> {
    v.clock
        .advance_ms(strongroom_core::vault::REFUSAL_WINDOW_MS);
    v.running_vault().flush_refusals(false).await;
    let db = v.sqlite();
    let mut stmt = db
        .prepare("SELECT body FROM audit WHERE log = 'platform' AND action IN ('auth.api_key', 'auth.login') AND outcome <> 'ok' ORDER BY seq")
        .unwrap();
    let bodies: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    bodies
        .iter()
        .map(|b| {
            assert!(
                !b.contains("127.0.0") && !b.contains("203.0.113"),
                "an address in the log: {b}"
            );
            let e: serde_json::Value = serde_json::from_str(b).unwrap();
            let objects: Vec<&str> = e["objects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap())
                .collect();
            assert!(objects[0].starts_with("client:"), "{b}");
            let n = objects
                .iter()
                .find_map(|o| o.strip_prefix("count:"))
                .unwrap()
                .parse()
                .unwrap();
            (e["code"].as_str().unwrap().to_owned(), n)
        })
        .collect()
}

/// A scanner sending random tokens: after its budget of failures it is refused before any
/// lookup; its attempts take a handful of audit entries, not one each; a client elsewhere is
/// not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_scanner_is_limited_and_counted_not_logged_one_by_one() {
    let v = TestVault::start_with(ServeOptions {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..ServeOptions::default()
    })
    .await;
    let (_, app) = v.scenario("acme").await;
    let before = v.count("audit");
    let mut tasks = Vec::new();
    for i in 0..300u32 {
        let req = v
            .client
            .get(format!("{}{PEOPLE}?email=a@example.com", v.base))
            .header("Authorization", format!("Bearer srk_{:064x}", i))
            .header("X-Forwarded-For", "203.0.113.9")
            .header("X-Purpose", "support");
        tasks.push(tokio::spawn(TestVault::finish(req)));
    }
    let mut by_status = std::collections::BTreeMap::new();
    for t in tasks {
        *by_status.entry(t.await.unwrap().status).or_insert(0) += 1;
    }
    let unauthenticated = by_status.get(&401).copied().unwrap_or(0);
    let limited = by_status.get(&429).copied().unwrap_or(0);
    assert_eq!(unauthenticated + limited, 300, "{by_status:?}");
    assert!(
        (20..=40).contains(&unauthenticated),
        "the budget is 20 failures (a few more may race in): {by_status:?}"
    );
    // Another client is unaffected, and the scanner's own address stays refused.
    let ok = v
        .client
        .get(format!("{}{PEOPLE}?email=a@example.com", v.base))
        .header("Authorization", format!("Bearer {app}"))
        .header("X-Forwarded-For", "198.51.100.4")
        .header("X-Purpose", "support");
    let ok = TestVault::finish(ok).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let still = v
        .client
        .get(format!("{}{PEOPLE}?email=a@example.com", v.base))
        .header("Authorization", "Bearer nonsense")
        .header("X-Forwarded-For", "203.0.113.9");
    assert_eq!(TestVault::finish(still).await.status, 429);
    // Nothing was written per attempt; once the minute closes, one entry per client and kind.
    assert!(
        v.count("audit") - before <= 2,
        "entries written per attempt"
    );
    let counts = refusal_counts(&v).await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 301, "{counts:?}");
    assert!(counts.contains(&("unauthenticated".to_owned(), unauthenticated as u64)));
    v.assert_audit_verifies().await;
}

/// A body far above the limit gets its 413 over TLS, over HTTP/1.1 and HTTP/2, with its
/// length declared or streamed in chunks: the client (curl here, which loses an answer sent
/// while it is still uploading) is not simply cut off mid-upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_bodies_get_413_over_tls() {
    let v = TestVault::start().await;
    let (_, app) = v.scenario("acme").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, vec![b' '; 20 << 20]).unwrap();
    for version in ["--http1.1", "--http2"] {
        for chunked in [false, true] {
            let mut cmd = tokio::process::Command::new("curl");
            cmd.args([
                "-sk",
                version,
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "-X",
                "POST",
            ])
            .arg(format!("{}{PEOPLE}", v.base))
            .args(["-H", &format!("Authorization: Bearer {app}")])
            .args([
                "-H",
                "X-Purpose: support",
                "-H",
                "Content-Type: application/json",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", file.display()));
            if chunked {
                cmd.args(["-H", "Transfer-Encoding: chunked"]);
            }
            let out = cmd.output().await.expect("curl runs");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.ends_with("\n413") && text.contains("body_too_large"),
                "{version} chunked={chunked}: curl {:?}: {text}",
                out.status
            );
        }
    }
    assert_eq!(v.count("records"), 0);
}

/// A request that runs past the limit is answered `503 request_timeout` (here: a sign-in whose
/// password hashing is made far too slow).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out() {
    let v = TestVault::start_with(ServeOptions {
        request_timeout: std::time::Duration::from_millis(300),
        password_cost: strongroom_crypto::password::Cost {
            memory_kib: 64 * 1024,
            iterations: 40,
            parallelism: 1,
        },
        ..ServeOptions::default()
    })
    .await;
    let r = v
        .post(
            "/v1/auth/login",
            "",
            None,
            json!({"username": "nobody", "password": "a long enough password"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (503, "request_timeout"), "{}", r.text);
    let ok = v.get("/healthz", "", None).await;
    assert_eq!(ok.status, 200);
}

/// Past the connection cap, a new client waits until a connection closes; idle connections
/// that never finish their TLS handshake are closed after the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped() {
    let v = TestVault::start_with(ServeOptions {
        max_connections: 2,
        ..ServeOptions::default()
    })
    .await;
    let addr = v.base.trim_start_matches("https://").to_owned();
    let held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // Let the server accept both.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let fresh = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(std::time::Duration::from_millis(1500))
        .build()
        .unwrap();
    let waited = fresh.get(format!("{}/healthz", v.base)).send().await;
    assert!(waited.is_err(), "a third connection was served: {waited:?}");
    drop(held);
    let served = fresh
        .get(format!("{}/healthz", v.base))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
}
