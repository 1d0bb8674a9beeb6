//! Data subjects' rights on a real server: the privacy officer's view of a subject (counts
//! only), and erasure by crypto-shredding — the subject's records, history, index entries and
//! key gone from every file, a signed receipt that verifies offline and fails after any
//! one-byte edit, refusals under a legal hold and for the wrong role or tenant, and exactly one
//! erasure when two requests race.

use serde_json::{json, Value};
use strongroom_proto::ErasureReceipt;
use strongroom_testkit::{contains, TestVault};

const PEOPLE: &str = "/v1/collections/people/records";
const ORDERS: &str = "/v1/collections/orders/records";

/// A tenant with `people` and `orders`, an application key on both, and a privacy officer.
struct Setup {
    admin: String,
    app: String,
    officer: String,
}

async fn setup(v: &TestVault, name: &str) -> Setup {
    let (t, _) = v.scenario(name).await;
    let r = v
        .put(
            "/v1/collections/orders",
            &t.admin,
            json!({"purposes": ["support"], "fields": [
                {"name": "item", "type": "string", "classification": "personal", "searchable": true}]}),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    v.role(
        &t.admin,
        "app",
        json!({"collections": {
            "people": {"operations": ["create", "read", "update", "search"], "purposes": ["support"],
                       "fields": {"email": "plain", "name": "plain"}},
            "orders": {"operations": ["create", "read", "search"], "purposes": ["support"],
                       "fields": {"item": "plain"}}}}),
    )
    .await;
    let app = v.key(&t.admin, &["app"]).await;
    let officer = v.key(&t.admin, &["privacy_officer"]).await;
    Setup {
        admin: t.admin,
        app,
        officer,
    }
}

async fn create(v: &TestVault, path: &str, key: &str, body: Value) -> (String, String) {
    let r = v.post(path, key, Some("support"), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["subject"].as_str().unwrap().to_owned(),
    )
}

/// Ada: two people records (one updated, so with history) and an order; Bob: one record.
struct People {
    ada1: String,
    ada2: String,
    order: String,
    ada: String,
    bob_rec: String,
    bob: String,
}

async fn people(v: &TestVault, s: &Setup) -> People {
    let (ada1, ada) = create(
        v,
        PEOPLE,
        &s.app,
        json!({"fields": {"email": "ada@example.com", "name": "Ada"}}),
    )
    .await;
    let (ada2, _) = create(
        v,
        PEOPLE,
        &s.app,
        json!({"subject": ada, "fields": {"email": "ada2@example.com"}}),
    )
    .await;
    let (order, _) = create(
        v,
        ORDERS,
        &s.app,
        json!({"subject": ada, "fields": {"item": "Analytical Engine"}}),
    )
    .await;
    let r = v
        .call(
            reqwest::Method::PATCH,
            &format!("{PEOPLE}/{ada1}"),
            &s.app,
            Some("support"),
            Some(&json!({"fields": {"name": "Ada L."}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (bob_rec, bob) = create(
        v,
        PEOPLE,
        &s.app,
        json!({"fields": {"email": "bob@example.com", "name": "Bob"}}),
    )
    .await;
    People {
        ada1,
        ada2,
        order,
        ada,
        bob_rec,
        bob,
    }
}

async fn erase(v: &TestVault, key: &str, subject: &str) -> strongroom_testkit::Resp {
    v.post(
        &format!("/v1/subjects/{subject}/erasure"),
        key,
        None,
        json!({}),
    )
    .await
}

fn blob(v: &TestVault, sql: &str, id: &str) -> Vec<u8> {
    v.sqlite().query_row(sql, [id], |r| r.get(0)).unwrap()
}

async fn public_key(v: &TestVault) -> [u8; 32] {
    let pk = v.get("/v1/audit/public-key", "", None).await;
    strongroom_crypto::unhex(pk.body["ed25519"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_destroys_everything_of_the_subject_with_a_verifiable_receipt() {
    let v = TestVault::start().await;
    let s = setup(&v, "acme").await;
    let other = setup(&v, "globex").await;
    let People {
        ada1,
        ada2,
        order,
        ada,
        bob_rec,
        bob,
    } = people(&v, &s).await;
    let (globex_rec, _) = create(
        &v,
        PEOPLE,
        &other.app,
        json!({"fields": {"email": "ada@example.com", "name": "Ada"}}),
    )
    .await;

    // The view: counts per collection, no values; privacy officer or admin only; another
    // tenant's subject is simply unknown.
    let path = format!("/v1/subjects/{ada}");
    let r = v.get(&path, &s.officer, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["collections"],
        json!([{"collection": "orders", "active": 1, "blocked": 0, "versions": 0},
               {"collection": "people", "active": 2, "blocked": 0, "versions": 1}]),
        "{}",
        r.text
    );
    assert!(!r.text.contains("ada@example.com") && !r.text.contains("Ada"));
    assert_eq!(v.get(&path, &s.admin, None).await.status, 200);
    assert_eq!(v.get(&path, &s.app, None).await.status, 403);
    for key in [&other.officer, &other.admin] {
        let r = v.get(&path, key, None).await;
        assert_eq!((r.status, r.code()), (404, "unknown_subject"), "{}", r.text);
        let r = erase(&v, &other.officer, &ada).await;
        assert_eq!((r.status, r.code()), (404, "unknown_subject"), "{}", r.text);
    }
    let unknown = format!("sub_{}", "0".repeat(32));
    assert_eq!(
        v.get(&format!("/v1/subjects/{unknown}"), &s.officer, None)
            .await
            .status,
        404
    );
    assert_eq!(
        v.get("/v1/subjects/sub_nope", &s.officer, None)
            .await
            .status,
        400
    );

    let ciphertext = blob(&v, "SELECT data FROM records WHERE id = ?1", &ada1);
    let old = blob(&v, "SELECT data FROM record_history WHERE id = ?1", &ada1);
    let order_ct = blob(&v, "SELECT data FROM records WHERE id = ?1", &order);
    let wrapped = blob(&v, "SELECT wrapped_dek FROM subjects WHERE id = ?1", &ada);
    let records_before = v.count("records");

    // Under a legal hold: refused, audited, nothing changed.
    let r = v
        .post(
            "/v1/holds",
            &s.admin,
            None,
            json!({"subject": ada, "reason": "litigation 2026-17"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let hold = r.body["id"].as_str().unwrap().to_owned();
    let r = erase(&v, &s.officer, &ada).await;
    assert_eq!((r.status, r.code()), (409, "legal_hold"), "{}", r.text);
    assert_eq!(v.count("records"), records_before);
    let r = v
        .post(&format!("/v1/holds/{hold}/lift"), &s.admin, None, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A hold on a collection the subject has records in refuses it too.
    let r = v
        .post(
            "/v1/holds",
            &s.admin,
            None,
            json!({"collection": "orders", "reason": "audit of orders"}),
        )
        .await;
    let coll_hold = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(erase(&v, &s.officer, &ada).await.status, 409);
    v.post(
        &format!("/v1/holds/{coll_hold}/lift"),
        &s.admin,
        None,
        json!({}),
    )
    .await;
    // Only the privacy officer erases.
    for key in [&s.admin, &s.app] {
        let r = erase(&v, key, &ada).await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    assert_eq!(v.count("records"), records_before);

    // The erasure.
    let r = erase(&v, &s.officer, &ada).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let receipt: ErasureReceipt = serde_json::from_value(r.body.clone()).unwrap();
    assert!(!receipt.repeat);
    assert_eq!(receipt.subject, ada);
    assert_eq!(
        (receipt.destroyed.records, receipt.destroyed.versions),
        (3, 1)
    );
    assert_eq!(receipt.destroyed.collections, ["orders", "people"]);
    assert!(receipt.destroyed.index_entries >= 4, "{}", r.text);
    assert!(!r.text.contains("ada@example.com") && !r.text.contains("Analytical"));

    // Gone: reads, searches, the view, the rows; Bob and the other tenant untouched.
    for (p, id) in [(PEOPLE, &ada1), (PEOPLE, &ada2), (ORDERS, &order)] {
        let r = v.get(&format!("{p}/{id}"), &s.app, Some("support")).await;
        assert_eq!(r.status, 404, "{}", r.text);
    }
    let found = v
        .post(
            &format!("{PEOPLE}/search"),
            &s.app,
            Some("support"),
            json!({"where": {"email": "ada@example.com"}}),
        )
        .await;
    assert_eq!(found.body["records"], json!([]), "{}", found.text);
    let view = v.get(&path, &s.officer, None).await;
    assert_eq!(view.status, 404);
    assert!(
        view.text.contains("erased"),
        "the view says the subject was erased: {}",
        view.text
    );
    let theirs = v.get(&path, &other.officer, None).await;
    assert_eq!(theirs.status, 404);
    assert!(
        !theirs.text.contains("erased"),
        "another tenant learns nothing: {}",
        theirs.text
    );
    let db = v.sqlite();
    let n = |sql: &str, id: &str| db.query_row(sql, [id], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(n("SELECT count(*) FROM subjects WHERE id = ?1", &ada), 0);
    assert_eq!(
        n("SELECT count(*) FROM records WHERE subject = ?1", &ada),
        0
    );
    for id in [&ada1, &ada2, &order] {
        assert_eq!(
            n("SELECT count(*) FROM record_history WHERE id = ?1", id),
            0
        );
        assert_eq!(
            n("SELECT count(*) FROM blind_index WHERE record = ?1", id),
            0
        );
    }
    drop(db);
    for (key, p, id) in [
        (&s.app, PEOPLE, &bob_rec),
        (&other.app, PEOPLE, &globex_rec),
    ] {
        let r = v.get(&format!("{p}/{id}"), key, Some("support")).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(
        v.get(&format!("/v1/subjects/{bob}"), &s.officer, None)
            .await
            .status,
        200
    );
    // No byte of the ciphertexts, the old version or the wrapped key in any file.
    for (file, bytes) in v.scan_files() {
        for (what, needle) in [
            ("record", &ciphertext),
            ("history", &old),
            ("order", &order_ct),
            ("wrapped DEK", &wrapped),
        ] {
            let probe = &needle[needle.len() / 2..needle.len() / 2 + 24];
            assert!(
                !contains(&bytes, probe),
                "the {what} is still in {}",
                file.display()
            );
        }
    }

    // The receipt verifies offline, and fails after any one-byte edit that still parses.
    let pk = public_key(&v).await;
    strongroom_core::receipt::verify(&receipt, &pk).expect("the receipt verifies");
    let mut other_key = pk;
    other_key[0] ^= 1;
    assert!(strongroom_core::receipt::verify(&receipt, &other_key).is_err());
    let text = serde_json::to_vec(&receipt).unwrap();
    let mut parsed = 0;
    for i in 0..text.len() {
        for flip in [0x01, 0x02, 0x20] {
            let mut edited = text.clone();
            edited[i] ^= flip;
            if let Ok(r) = serde_json::from_slice::<ErasureReceipt>(&edited) {
                parsed += 1;
                assert!(
                    strongroom_core::receipt::verify(&r, &pk).is_err(),
                    "an edit at byte {i} ({:?}) still verifies",
                    String::from_utf8_lossy(
                        &edited[i.saturating_sub(20)..(i + 20).min(edited.len())]
                    )
                );
            }
        }
    }
    assert!(parsed > text.len(), "too few edits parsed: {parsed}");

    // A second erasure does nothing and says so, with a receipt for the first one.
    let r = erase(&v, &s.officer, &ada).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let again: ErasureReceipt = serde_json::from_value(r.body.clone()).unwrap();
    assert!(again.repeat);
    assert_eq!(
        (again.erased_at, &again.destroyed, again.audit.seq),
        (receipt.erased_at, &receipt.destroyed, receipt.audit.seq)
    );
    strongroom_core::receipt::verify(&again, &pk).expect("the repeat's receipt verifies");
    let log = v
        .get(
            &format!("/v1/audit/entries?action=subject.erasure&subject={ada}"),
            &s.admin,
            None,
        )
        .await;
    let outcomes: Vec<&str> = log.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "ok").count(),
        1,
        "one erasure recorded: {}",
        log.text
    );
    assert!(
        outcomes.len() >= 5,
        "the refusals are audited too: {}",
        log.text
    );
    assert!(!log.text.contains("ada@example.com"));
    // OR-04 in the tenant's report: the erasure counted, the request register still missing.
    let rep = v
        .get("/v1/compliance/toms?format=json", &s.admin, None)
        .await;
    let or04 = rep.body["report"]["measures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "OR-04")
        .unwrap()
        .clone();
    assert_eq!(or04["status"], "met", "{or04}");
    let evidence = or04["evidence"].as_array().unwrap();
    assert!(
        evidence
            .iter()
            .any(|e| e["label"] == "erasures with signed receipts" && e["value"] == "1"),
        "{or04}"
    );
    v.assert_audit_verifies().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_racing_erasures_erase_once() {
    let v = TestVault::start().await;
    let s = setup(&v, "acme").await;
    for round in 0..12 {
        let (_, subject) = create(
            &v,
            PEOPLE,
            &s.app,
            json!({"fields": {"email": format!("p{round}@example.com")}}),
        )
        .await;
        let (a, b) = tokio::join!(
            erase(&v, &s.officer, &subject),
            erase(&v, &s.officer, &subject)
        );
        assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.text, b.text);
        let repeats = [&a, &b].iter().filter(|r| r.body["repeat"] == true).count();
        assert_eq!(repeats, 1, "{} / {}", a.text, b.text);
        let log = v
            .get(
                &format!("/v1/audit/entries?action=subject.erasure&outcome=ok&subject={subject}"),
                &s.admin,
                None,
            )
            .await;
        assert_eq!(
            log.body["entries"].as_array().unwrap().len(),
            1,
            "{}",
            log.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_on_postgres_leaves_no_row_and_a_receipt_that_verifies() {
    let Some(url) = strongroom_testkit::postgres::fresh_database().await else {
        return;
    };
    let v = TestVault::start_postgres(&url, None, Default::default()).await;
    let s = setup(&v, "acme").await;
    let People {
        ada1, ada, bob_rec, ..
    } = people(&v, &s).await;
    let r = v
        .post(
            "/v1/holds",
            &s.admin,
            None,
            json!({"subject": ada, "reason": "litigation"}),
        )
        .await;
    let hold = r.body["id"].as_str().unwrap().to_owned();
    let r = erase(&v, &s.officer, &ada).await;
    assert_eq!((r.status, r.code()), (409, "legal_hold"), "{}", r.text);
    v.post(&format!("/v1/holds/{hold}/lift"), &s.admin, None, json!({}))
        .await;

    let r = erase(&v, &s.officer, &ada).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let receipt: ErasureReceipt = serde_json::from_value(r.body.clone()).unwrap();
    assert_eq!(
        (receipt.destroyed.records, receipt.destroyed.versions),
        (3, 1)
    );
    let pk = public_key(&v).await;
    strongroom_core::receipt::verify(&receipt, &pk).expect("the receipt verifies");
    let db = strongroom_testkit::postgres::connect(&url).await;
    for (table, column) in [("subjects", "id"), ("records", "subject")] {
        let n: i64 = db
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE {column} = $1"),
                &[&ada],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} still has the subject");
    }
    for table in ["record_history", "blind_index"] {
        let column = if table == "blind_index" {
            "record"
        } else {
            "id"
        };
        let n: i64 = db
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE {column} = $1"),
                &[&ada1],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} still has the record");
    }
    let r = v
        .get(&format!("{PEOPLE}/{bob_rec}"), &s.app, Some("support"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let again = erase(&v, &s.officer, &ada).await;
    assert_eq!((again.status, &again.body["repeat"]), (200, &json!(true)));
    v.assert_audit_verifies().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_is_found_by_the_applications_reference_and_nowhere_else() {
    let v = TestVault::start().await;
    let s = setup(&v, "acme").await;
    let other = setup(&v, "globex").await;
    let (_, subject) = create(
        &v,
        PEOPLE,
        &s.app,
        json!({"subject_ref": "customer-1815", "fields": {"email": "ada@example.com"}}),
    )
    .await;
    let r = v
        .get("/v1/subjects?ref=customer-1815", &s.officer, None)
        .await;
    assert_eq!(
        (r.status, r.body["id"].as_str()),
        (200, Some(subject.as_str())),
        "{}",
        r.text
    );
    for (key, path) in [
        (&s.officer, "/v1/subjects?ref=customer-1816"),
        (&s.officer, "/v1/subjects?ref="),
        (&other.officer, "/v1/subjects?ref=customer-1815"),
    ] {
        let r = v.get(path, key, None).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "unknown_subject"),
            "{path}: {}",
            r.text
        );
    }
    let long = format!("/v1/subjects?ref={}", "x".repeat(300));
    assert_eq!(v.get(&long, &s.officer, None).await.status, 404);
    for path in ["/v1/subjects", "/v1/subjects?ref=a&ref=b"] {
        let r = v.get(path, &s.officer, None).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
    }
    assert_eq!(
        v.get("/v1/subjects?ref=customer-1815", &s.app, None)
            .await
            .status,
        403
    );
    // The log names the subject, never the reference.
    let log = v
        .get("/v1/audit/entries?action=subject.view", &s.admin, None)
        .await;
    assert!(log.text.contains(&subject), "{}", log.text);
    assert!(!log.text.contains("customer-18"), "{}", log.text);
}

/// Every data operation the application (or the admin) can make on a restricted subject's
/// records, and on the subject itself, refused with `subject_restricted`, audited, and nothing
/// changed — on node `b` when the restriction was made on node `a` (same store).
async fn restriction_holds(a: &TestVault, b: &TestVault, s: &Setup, p: &People) -> String {
    let ada_rec = format!("{PEOPLE}/{}", p.ada1);
    let bob_rec = format!("{PEOPLE}/{}", p.bob_rec);
    // A clerk who may do everything to people records.
    a.role(
        &s.admin,
        "clerk",
        json!({"collections": {"people": {
            "operations": ["create", "read", "update", "delete", "search", "history"],
            "purposes": ["support"], "fields": {"email": "plain", "name": "plain"}}}}),
    )
    .await;
    let clerk = a.key(&s.admin, &["clerk"]).await;
    // Warm node b's caches (the subject's key, the role) with a read first.
    assert_eq!(b.get(&ada_rec, &clerk, Some("support")).await.status, 200);
    // Only the privacy officer restricts.
    for key in [&s.app, &s.admin] {
        let r = a
            .post(
                &format!("/v1/subjects/{}/restriction", p.ada),
                key,
                None,
                json!({}),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    let r = a
        .post(
            &format!("/v1/subjects/{}/restriction", p.ada),
            &s.officer,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["restricted"], true, "{}", r.text);
    let before = blobs(b, &p.ada).await;
    let refused = |r: &strongroom_testkit::Resp, what: &str| {
        assert_eq!(
            (r.status, r.code()),
            (403, "subject_restricted"),
            "{what}: {}",
            r.text
        );
    };
    refused(&b.get(&ada_rec, &s.app, Some("support")).await, "read");
    refused(
        &b.get(&format!("{ada_rec}/history"), &clerk, Some("support"))
            .await,
        "history",
    );
    refused(
        &b.call(
            reqwest::Method::PATCH,
            &ada_rec,
            &s.app,
            Some("support"),
            Some(&json!({"fields": {"name": "Eve"}})),
        )
        .await,
        "update",
    );
    refused(
        &b.call(
            reqwest::Method::DELETE,
            &ada_rec,
            &clerk,
            Some("support"),
            None,
        )
        .await,
        "delete",
    );
    refused(
        &b.post(
            &format!("{PEOPLE}/lookup"),
            &s.app,
            Some("support"),
            json!({"ids": [p.bob_rec, p.ada1]}),
        )
        .await,
        "batch read with one of hers",
    );
    refused(
        &b.post(
            PEOPLE,
            &s.app,
            Some("support"),
            json!({"subject": p.ada, "fields": {"email": "new@example.com"}}),
        )
        .await,
        "create for her",
    );
    // Carol, known to the application by its own reference: restricted, so a record stored
    // with that reference is refused too.
    let (_, carol) = create(
        a,
        PEOPLE,
        &s.app,
        json!({"subject_ref": "carol-ref", "fields": {"email": "carol@example.com"}}),
    )
    .await;
    let r = a
        .post(
            &format!("/v1/subjects/{carol}/restriction"),
            &s.officer,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    refused(
        &b.post(
            PEOPLE,
            &s.app,
            Some("support"),
            json!({"subject_ref": "carol-ref", "fields": {"email": "c2@example.com"}}),
        )
        .await,
        "create by her reference",
    );
    // A search leaves her records out (and still finds Bob's).
    let r = b
        .get(
            &format!("{PEOPLE}?email=ada@example.com"),
            &s.app,
            Some("support"),
        )
        .await;
    assert_eq!(
        (r.status, r.body["records"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{}",
        r.text
    );
    let r = b
        .get(
            &format!("{PEOPLE}?email=bob@example.com"),
            &s.app,
            Some("support"),
        )
        .await;
    assert_eq!(
        r.body["records"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    // Bob is untouched.
    assert_eq!(b.get(&bob_rec, &s.app, Some("support")).await.status, 200);
    // Nothing of hers changed.
    assert_eq!(
        blobs(b, &p.ada).await,
        before,
        "a refused operation changed her data"
    );
    // The officer's view says so; lifting is the officer's and audited; then all works again.
    let view = b
        .get(&format!("/v1/subjects/{}", p.ada), &s.admin, None)
        .await;
    assert_eq!(view.body["restricted"], true, "{}", view.text);
    let r = b
        .post(
            &format!("/v1/subjects/{}/restriction/lift", p.ada),
            &s.admin,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = b
        .post(
            &format!("/v1/subjects/{}/restriction/lift", p.ada),
            &s.officer,
            None,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["restricted"]),
        (200, &json!(false)),
        "{}",
        r.text
    );
    assert_eq!(
        a.get(&ada_rec, &s.app, Some("support")).await.status,
        200,
        "lifted on b, read on a"
    );
    let log = a
        .get(
            &format!("/v1/audit/entries?subject={}", p.ada),
            &s.admin,
            None,
        )
        .await;
    let actions: Vec<(String, String)> = log.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let code = e["code"].as_str().unwrap_or(e["outcome"].as_str().unwrap());
            (e["action"].as_str().unwrap().to_owned(), code.to_owned())
        })
        .collect();
    for want in ["subject.restrict", "subject.restriction_lift"] {
        assert!(
            actions.iter().any(|(a, o)| a == want && o == "ok"),
            "{want} not audited: {actions:?}"
        );
    }
    for refused in [
        "record.read",
        "record.update",
        "record.delete",
        "record.history",
        "record.batch_read",
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, o)| a == refused && o == "subject_restricted"),
            "{refused} refusal not audited with the subject: {actions:?}"
        );
    }
    clerk
}

/// The subject's records and key as stored (to prove a refusal changed nothing).
async fn blobs(v: &TestVault, subject: &str) -> Vec<String> {
    let view = v
        .get(&format!("/v1/subjects/{subject}"), &v.operator, None)
        .await;
    let _ = view;
    let store = v.running_vault();
    let t = store.store().find_tenant_ids().await.unwrap();
    let mut out = Vec::new();
    for tenant in t {
        let sid = strongroom_core::ids::SubjectId::parse(subject).unwrap();
        if let Some(row) = store.store().find_subject(&tenant, &sid).await.unwrap() {
            out.push(format!("{:?}", row.wrapped_dek));
            for g in store
                .store()
                .find_subject_records(&tenant, &sid)
                .await
                .unwrap()
            {
                out.push(format!(
                    "{} {:?} {} {}",
                    g.collection, g.state, g.records, g.versions
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_subject_is_stored_but_not_processed() {
    let v = TestVault::start().await;
    let s = setup(&v, "acme").await;
    let p = people(&v, &s).await;
    let clerk = restriction_holds(&v, &v, &s, &p).await;
    // The purge keeps a restricted subject's deleted records (stored, not processed), and
    // destroys them once the restriction is lifted.
    let mut schema = v.get("/v1/collections/people", &s.admin, None).await.body;
    for k in ["name", "version", "updated_at"] {
        schema.as_object_mut().unwrap().remove(k);
    }
    schema["purge_grace_days"] = json!(0);
    let r = v.put("/v1/collections/people", &s.admin, schema).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = v
        .call(
            reqwest::Method::DELETE,
            &format!("{PEOPLE}/{}", p.ada2),
            &clerk,
            Some("support"),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let restrict = |on: bool| {
        let path = format!(
            "/v1/subjects/{}/restriction{}",
            p.ada,
            if on { "" } else { "/lift" }
        );
        let (v, key) = (&v, &s.officer);
        async move { assert_eq!(v.post(&path, key, None, json!({})).await.status, 200) }
    };
    restrict(true).await;
    let stored = || {
        v.sqlite()
            .query_row(
                "SELECT count(*) FROM records WHERE id = ?1",
                [&p.ada2],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
    };
    super::lifecycle::purge_now(&v, &v.operator).await;
    assert_eq!(stored(), 1, "purged although restricted");
    restrict(false).await;
    super::lifecycle::purge_now(&v, &v.operator).await;
    assert_eq!(stored(), 0, "kept after the restriction was lifted");
    // Bad input: unknown subject, another tenant's subject, not a subject id.
    let other = setup(&v, "other").await;
    for (key, id, status) in [
        (&s.officer, "sub_00000000000000000000000000000000", 404),
        (&other.officer, p.ada.as_str(), 404),
        (&s.officer, "nope", 400),
    ] {
        let r = v
            .post(
                &format!("/v1/subjects/{id}/restriction"),
                key,
                None,
                json!({}),
            )
            .await;
        assert_eq!(r.status, status, "{id}: {}", r.text);
    }
    v.assert_audit_verifies().await;
}

/// Restricted on one PostgreSQL node, refused on the other at once (no node-local cache of
/// the flag), lifted there and readable on the first again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restriction_made_on_one_node_holds_on_another() {
    let Some(url) = strongroom_testkit::postgres::fresh_database().await else {
        return;
    };
    let a = TestVault::start_postgres(&url, None, Default::default()).await;
    let b = TestVault::start_postgres(
        &url,
        Some(&a.data_path().join("root.key")),
        Default::default(),
    )
    .await;
    let s = setup(&a, "acme").await;
    let p = people(&a, &s).await;
    restriction_holds(&a, &b, &s, &p).await;
}
