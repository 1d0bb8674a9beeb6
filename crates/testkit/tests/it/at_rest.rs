//! Nothing readable at rest, and ciphertext bound to its place.

use serde_json::json;
use strongroom_testkit::{contains, TestVault};

const PEOPLE: &str = "/v1/collections/people/records";

#[tokio::test]
async fn no_plaintext_anywhere_in_the_data_directory() {
    let v = TestVault::start().await;
    let (_, app) = v.scenario("acme").await;
    let markers = [
        "zq-marker-email@example.org",
        "Zqmarkername Lovelace",
        "+44 20 7946 7777",
        "1815-12-10",
        "zq-marker-json-value",
        "zq-subject-reference",
    ];
    for i in 0..20 {
        let body = json!({"subject_ref": markers[5], "fields": {
            "email": markers[0], "name": markers[1], "phone": markers[2], "birth_date": markers[3],
            "notes": {"k": markers[4], "i": i}}});
        let r = v.post(PEOPLE, &app, Some("support"), body).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // Reads, searches and updates leave nothing behind either.
    let found = v
        .get(
            &format!("{PEOPLE}?email={}", markers[0]),
            &app,
            Some("support"),
        )
        .await;
    assert_eq!(found.body["records"].as_array().unwrap().len(), 20);
    let files = v.scan_files();
    assert!(
        files.iter().any(|(p, _)| p.ends_with("strongroom.db-wal")),
        "the WAL is scanned too"
    );
    for (path, bytes) in &files {
        for m in markers {
            assert!(
                !contains(bytes, m.as_bytes()),
                "{m} in plaintext in {}",
                path.display()
            );
        }
        assert!(
            !contains(bytes, b"zq-marker"),
            "a fragment in {}",
            path.display()
        );
    }
}

#[tokio::test]
async fn ciphertext_moved_to_another_record_or_tenant_fails() {
    let v = TestVault::start().await;
    let (_, app) = v.scenario("acme").await;
    let (_, other_app) = v.scenario("globex").await;
    let first = v
        .post(
            PEOPLE,
            &app,
            Some("support"),
            json!({"subject_ref": "same-person", "fields": {"email": "one@example.com"}}),
        )
        .await;
    let second = v
        .post(
            PEOPLE,
            &app,
            Some("support"),
            json!({"subject_ref": "same-person", "fields": {"email": "two@example.com"}}),
        )
        .await;
    assert_eq!(
        first.body["subject"], second.body["subject"],
        "same subject, so the same key"
    );
    let foreign = v
        .store_person(&other_app, json!({"email": "three@example.com"}))
        .await;
    let (a, b) = (
        first.body["id"].as_str().unwrap(),
        second.body["id"].as_str().unwrap(),
    );

    let db = v.sqlite();
    let copy = |from: &str, to: &str| {
        db.execute(
            "UPDATE records SET data = (SELECT data FROM records WHERE id = ?1) WHERE id = ?2",
            [from, to],
        )
        .unwrap();
    };
    copy(a, b);
    let r = v.get(&format!("{PEOPLE}/{b}"), &app, Some("support")).await;
    assert_eq!((r.status, r.code()), (500, "integrity_error"), "{}", r.text);
    assert!(!r.text.contains("one@example.com"));
    copy(a, &foreign);
    let r = v
        .get(&format!("{PEOPLE}/{foreign}"), &other_app, Some("support"))
        .await;
    assert_eq!((r.status, r.code()), (500, "integrity_error"));
    // The untouched record still reads, and the failures were audited.
    let r = v.get(&format!("{PEOPLE}/{a}"), &app, Some("support")).await;
    assert_eq!(r.body["fields"]["email"], "one@example.com");
    let n: i64 = db
        .query_row("SELECT count(*) FROM audit WHERE action = 'record.read' AND body LIKE '%integrity_error%'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn a_wrapped_subject_key_moved_to_another_subject_fails() {
    let v = TestVault::start().await;
    let (_, app) = v.scenario("acme").await;
    let a = v
        .store_person(&app, json!({"email": "a@example.com"}))
        .await;
    let b = v
        .store_person(&app, json!({"email": "b@example.com"}))
        .await;
    // Restart-free: the DEK of b may be cached, so read a third, uncached subject's record.
    v.sqlite()
        .execute(
            "UPDATE subjects SET wrapped_dek = (SELECT s.wrapped_dek FROM subjects s JOIN records r ON r.subject = s.id WHERE r.id = ?1)
             WHERE id = (SELECT subject FROM records WHERE id = ?2)",
            [&a, &b],
        )
        .unwrap();
    let mut v = v;
    let data = v.data_path().to_owned();
    v.stop().await;
    let dir = strongroom_server::DataDir::open(&data).unwrap();
    let store = std::sync::Arc::new(
        strongroom_store_sqlite::SqliteStore::open(&dir.db_path(), Default::default()).unwrap(),
    );
    let opts = strongroom_server::ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let clock = std::sync::Arc::new(strongroom_core::ManualClock::new(
        strongroom_testkit::START_MS,
    ));
    let running = strongroom_server::start(
        &dir,
        store,
        clock,
        std::sync::Arc::new(strongroom_core::OsRng),
        opts,
    )
    .await
    .unwrap();
    let pem = std::fs::read(dir.cert_path()).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let get = |id: &str| {
        client
            .get(format!(
                "https://127.0.0.1:{}{PEOPLE}/{id}",
                running.addr.port()
            ))
            .bearer_auth(&app)
            .header("X-Purpose", "support")
    };
    let r = TestVault::finish(get(&b)).await;
    assert_eq!((r.status, r.code()), (500, "integrity_error"), "{}", r.text);
    let r = TestVault::finish(get(&a)).await;
    assert_eq!(r.status, 200);
    running.stop().await;
}
