//! Access and portability on a real server: an export holds every field of every record of the
//! subject in three collections, their history, who accessed them and why, and the processing
//! facts — and nothing of another subject or tenant; it is sealed at rest, downloadable as
//! often as allowed (racing downloads included), gone after its expiry (the job deletes it)
//! and with the subject's erasure; only the privacy officer makes and fetches it; every bad
//! input is refused and leaves no export. Then the request register (OR-04): deadlines on the
//! calendar, extensions capped at three months, fulfilment only by what is on record, overdue
//! alerts, the report's figures.

use serde_json::{json, Value};
use strongroom_testkit::{contains, TestVault};

const PEOPLE: &str = "/v1/collections/people/records";
const DAY: i64 = 86_400_000;

struct Setup {
    tenant: String,
    admin: String,
    app: String,
    officer: String,
    auditor: String,
}

async fn setup(v: &TestVault, name: &str) -> Setup {
    let (t, _) = v.scenario(name).await;
    for (c, field) in [("orders", "item"), ("notes", "text")] {
        let r = v
            .put(
                &format!("/v1/collections/{c}"),
                &t.admin,
                json!({"purposes": ["support"], "history_depth": 5, "fields": [
                    {"name": field, "type": "string", "classification": "personal"}]}),
            )
            .await;
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    }
    v.role(
        &t.admin,
        "app",
        json!({"collections": {
            "people": {"operations": ["create", "read", "update"], "purposes": ["support"],
                       "fields": {"email": "plain", "name": "plain"}},
            "orders": {"operations": ["create", "read"], "purposes": ["support"],
                       "fields": {"item": "plain"}},
            "notes": {"operations": ["create", "read", "update"], "purposes": ["support"],
                       "fields": {"text": "plain"}}}}),
    )
    .await;
    Setup {
        app: v.key(&t.admin, &["app"]).await,
        officer: v.key(&t.admin, &["privacy_officer"]).await,
        auditor: v.key(&t.admin, &["auditor"]).await,
        tenant: t.id,
        admin: t.admin,
    }
}

async fn create(v: &TestVault, s: &Setup, collection: &str, body: Value) -> (String, String) {
    let r = v
        .post(
            &format!("/v1/collections/{collection}/records"),
            &s.app,
            Some("support"),
            body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["subject"].as_str().unwrap().to_owned(),
    )
}

/// Ada in three collections (her person record updated: one earlier version), read once by
/// the application; Bob in one.
async fn ada_and_bob(v: &TestVault, s: &Setup) -> (String, String, String) {
    let (person, ada) = create(
        v,
        s,
        "people",
        json!({"fields": {"email": "ada@example.com", "name": "Ada"}}),
    )
    .await;
    create(
        v,
        s,
        "orders",
        json!({"subject": ada, "fields": {"item": "Analytical Engine"}}),
    )
    .await;
    create(
        v,
        s,
        "notes",
        json!({"subject": ada, "fields": {"text": "prefers letters"}}),
    )
    .await;
    let r = v
        .call(
            reqwest::Method::PATCH,
            &format!("{PEOPLE}/{person}"),
            &s.app,
            Some("support"),
            Some(&json!({"fields": {"name": "Ada Lovelace"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = v
        .get(&format!("{PEOPLE}/{person}"), &s.app, Some("support"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, bob) = create(
        v,
        s,
        "people",
        json!({"fields": {"email": "bob@example.com", "name": "Bob"}}),
    )
    .await;
    (ada, person, bob)
}

/// The export of Ada (see [`ada_and_bob`]) holds every field of her three records, the earlier
/// version, her accesses and the processing facts — and nothing of Bob or of another tenant.
fn check_document(
    doc: &strongroom_testkit::Resp,
    ada: &str,
    person: &str,
    bob: &str,
    recipient: &str,
) {
    let d = &doc.body;
    assert_eq!(d["format"], "strongroom-subject-export/1");
    assert_eq!(d["subject"], ada);
    assert_eq!(d["purpose"], "data_subject_request");
    assert_eq!(d["recipient"], recipient);
    let records = d["records"].as_array().unwrap();
    let collections: Vec<&str> = records
        .iter()
        .map(|r| r["collection"].as_str().unwrap())
        .collect();
    assert_eq!(collections, ["notes", "orders", "people"]);
    let p = records.iter().find(|r| r["id"] == person).unwrap();
    assert_eq!(
        p["fields"],
        json!({"email": "ada@example.com", "name": "Ada Lovelace"})
    );
    assert_eq!(p["version"], 2);
    assert_eq!(p["history"][0]["fields"]["name"], "Ada");
    assert_eq!(records[1]["fields"]["item"], "Analytical Engine");
    assert_eq!(records[0]["fields"]["text"], "prefers letters");
    // Who accessed her data and why: the application's creates, update and read.
    let accesses = d["accesses"].as_array().unwrap();
    let read = accesses
        .iter()
        .find(|a| a["action"] == "record.read")
        .expect("the read is in the access history");
    assert_eq!(read["purpose"], "support");
    assert_eq!(read["records"][0], person);
    assert!(accesses.iter().any(|a| a["action"] == "record.update"));
    assert!(accesses.iter().all(|a| a["outcome"].is_string()));
    // The processing facts of the three collections.
    let acts = d["processing"]["activities"].as_array().unwrap();
    assert_eq!(acts.len(), 3);
    assert!(acts
        .iter()
        .all(|a| a["purposes"][0]["purpose"] == "support" && a["retention"].is_string()));
    assert!(acts.iter().any(|a| a["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "app")));
    assert_eq!(d["processing"]["controller"], "acme");
    // Nothing of Bob or of the other tenant.
    for other in [bob, "bob@example.com", "Other Ada", "globex"] {
        assert!(!doc.text.contains(other), "{other} in the export");
    }
}

async fn export(v: &TestVault, key: &str, subject: &str, body: Value) -> strongroom_testkit::Resp {
    v.post(&format!("/v1/subjects/{subject}/export"), key, None, body)
        .await
}

/// Makes an export (it must succeed) and returns its id.
async fn made(v: &TestVault, key: &str, subject: &str, body: Value) -> String {
    let r = export(v, key, subject, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

/// `n` downloads of an export at once: each one's status and body.
async fn race(v: &TestVault, key: &str, id: &str, n: usize) -> Vec<(u16, String)> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (client, url, key) = (
            v.client.clone(),
            format!("{}/v1/exports/{id}", v.base),
            key.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client.get(url).bearer_auth(key).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// How many exports the tenant's register records (through the vault, as the report reads it).
async fn registered(v: &TestVault, admin_tenant: &str) -> usize {
    let vault = v.running_vault();
    let t = strongroom_core::ids::TenantId::parse(admin_tenant).unwrap();
    vault
        .register_entries(strongroom_core::vault::EXPORTS, Some(&t))
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn an_export_holds_everything_of_the_subject_and_nothing_else() {
    let v = TestVault::start().await;
    let s = setup(&v, "acme").await;
    let (ada, person, bob) = ada_and_bob(&v, &s).await;
    // Another tenant holds a person with the same email.
    let g = setup(&v, "globex").await;
    create(
        &v,
        &g,
        "people",
        json!({"fields": {"email": "ada@example.com", "name": "Other Ada"}}),
    )
    .await;

    let r = export(
        &v,
        &s.officer,
        &ada,
        json!({"recipient": "the data subject"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["download"], format!("/v1/exports/{id}"));
    assert_eq!(
        r.body["expires_at"],
        json!(strongroom_testkit::START_MS + 7 * DAY)
    );
    assert_eq!(r.body["downloads"], 1);
    assert_eq!(r.body["records"], 3);

    // Sealed at rest: no value of hers in any file of the database.
    for (file, bytes) in v.scan_files() {
        for value in ["Analytical Engine", "prefers letters", "Ada Lovelace"] {
            assert!(
                !contains(&bytes, value.as_bytes()),
                "{value} in clear in {}",
                file.display()
            );
        }
    }

    let doc = v.get(&format!("/v1/exports/{id}"), &s.officer, None).await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    check_document(&doc, &ada, &person, &bob, "the data subject");

    // Downloaded once: gone.
    let again = v.get(&format!("/v1/exports/{id}"), &s.officer, None).await;
    assert_eq!(again.status, 410, "{}", again.text);
    assert_eq!(again.body["error"]["code"], "export_gone");

    // The download is audited with the subject and the purpose.
    let log = v
        .get(
            "/v1/audit/entries?action=export.download&outcome=ok",
            &s.auditor,
            None,
        )
        .await;
    let e = &log.body["entries"][0];
    assert_eq!(e["subject"], ada);
    assert_eq!(e["purpose"], "data_subject_request");
    assert!(!log.text.contains("ada@example.com"));

    // The human rendering, from a second export that allows two downloads.
    let id2 = made(
        &v,
        &s.officer,
        &ada,
        json!({"recipient": "Ada, by post", "downloads": 2}),
    )
    .await;
    let text = v
        .get(&format!("/v1/exports/{id2}?format=text"), &s.officer, None)
        .await;
    assert_eq!(text.status, 200, "{}", text.text);
    for part in [
        "ada@example.com",
        "Analytical Engine",
        "Who accessed your data",
        "lawful basis",
        "Earlier version 1",
    ] {
        assert!(text.text.contains(part), "{part} not in:\n{}", text.text);
    }
    let json2 = v.get(&format!("/v1/exports/{id2}"), &s.officer, None).await;
    assert_eq!(json2.status, 200);
    let third = v.get(&format!("/v1/exports/{id2}"), &s.officer, None).await;
    assert_eq!(third.status, 410);

    // Who may: only the tenant's privacy officer, only its own subjects and exports.
    let before = registered(&v, &s.tenant).await;
    assert_eq!(before, 2);
    let id3 = made(
        &v,
        &s.officer,
        &ada,
        json!({"recipient": "x", "downloads": 5}),
    )
    .await;
    for key in [&s.app, &s.admin, &s.auditor] {
        let r = export(&v, key, &ada, json!({"recipient": "x"})).await;
        assert_eq!(r.status, 403, "{}", r.text);
        let r = v.get(&format!("/v1/exports/{id3}"), key, None).await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    let r = export(&v, &g.officer, &ada, json!({"recipient": "x"})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = v.get(&format!("/v1/exports/{id3}"), &g.officer, None).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(!r.text.contains("gone"));

    // Bad input: a clear error and no export.
    let unknown_subject = format!("sub_{}", "0".repeat(32));
    let unknown_request = format!("dsr_{}", "0".repeat(32));
    for (subject, body, status) in [
        (ada.as_str(), json!({"recipient": ""}), 400),
        (ada.as_str(), json!({"recipient": "a\u{7}b"}), 422),
        (ada.as_str(), json!({"recipient": "x".repeat(201)}), 400),
        (ada.as_str(), json!({}), 400),
        (
            ada.as_str(),
            json!({"recipient": "x", "expires_in_days": 31}),
            400,
        ),
        (
            ada.as_str(),
            json!({"recipient": "x", "expires_in_days": 0}),
            400,
        ),
        (ada.as_str(), json!({"recipient": "x", "downloads": 6}), 400),
        (ada.as_str(), json!({"recipient": "x", "downloads": 0}), 400),
        (ada.as_str(), json!({"recipient": "x", "to": "y"}), 400),
        (
            ada.as_str(),
            json!({"recipient": "x", "request": "dsr_zz"}),
            400,
        ),
        (
            ada.as_str(),
            json!({"recipient": "x", "request": unknown_request}),
            422,
        ),
        (unknown_subject.as_str(), json!({"recipient": "x"}), 404),
        ("sub_nope", json!({"recipient": "x"}), 400),
    ] {
        let r = export(&v, &s.officer, subject, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    for id in ["exp_nope", &format!("exp_{}", "0".repeat(32))] {
        let r = v.get(&format!("/v1/exports/{id}"), &s.officer, None).await;
        assert!(r.status == 400 || r.status == 404, "{}", r.text);
    }
    let r = v
        .get(&format!("/v1/exports/{id3}?format=pdf"), &s.officer, None)
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(registered(&v, &s.tenant).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_counted_under_races_and_exports_expire_and_go_with_erasure() {
    let v = TestVault::start().await;
    let s = setup(&v, "acme").await;
    let (ada, person, bob) = ada_and_bob(&v, &s).await;

    // Sixteen racing downloads of a once-only export: exactly one gets it.
    let id = made(&v, &s.officer, &ada, json!({"recipient": "x"})).await;
    let codes: Vec<u16> = race(&v, &s.officer, &id, 16)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 410), "{codes:?}");

    // Expiry: a day's export is refused once the day is over, and the job deletes it.
    let id = made(
        &v,
        &s.officer,
        &ada,
        json!({"recipient": "x", "expires_in_days": 1, "downloads": 3}),
    )
    .await;
    let vault = v.running_vault();
    let op = crate::lifecycle::operator(&v).await;
    let tenant = strongroom_core::ids::TenantId::parse(&s.tenant).unwrap();
    let eid = strongroom_core::ids::ExportId::parse(&id).unwrap();
    v.clock.advance_ms(DAY - 1);
    let r = v.get(&format!("/v1/exports/{id}"), &s.officer, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    v.clock.advance_ms(1);
    let r = v.get(&format!("/v1/exports/{id}"), &s.officer, None).await;
    assert_eq!(r.status, 410, "{}", r.text);
    assert!(vault
        .store()
        .find_export(&tenant, &eid)
        .await
        .unwrap()
        .is_some());
    let job = crate::lifecycle::run_job(&v, &op, "exports.expire").await;
    assert_eq!(job["done"], 1, "{job}");
    let gone = vault
        .store()
        .find_export(&tenant, &eid)
        .await
        .unwrap()
        .is_none();
    assert!(gone, "the expiry job did not delete the export");
    let log = v
        .get("/v1/audit/entries?action=export.expire", &s.auditor, None)
        .await;
    assert!(log.text.contains(&id), "{}", log.text);

    // Restricted: the subject can still be exported (Art. 18 does not stop access).
    let r = v
        .post(
            &format!("/v1/subjects/{ada}/restriction"),
            &s.officer,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = v
        .get(&format!("{PEOPLE}/{person}"), &s.app, Some("support"))
        .await;
    assert_eq!(r.status, 403);
    let id = made(
        &v,
        &s.officer,
        &ada,
        json!({"recipient": "x", "downloads": 2}),
    )
    .await;
    let eid = strongroom_core::ids::ExportId::parse(&id).unwrap();
    let r = v.get(&format!("/v1/exports/{id}"), &s.officer, None).await;
    assert_eq!(r.body["restricted"], true);

    // Erasure takes the export with the key: gone from the store, refused as gone.
    let bob_export = made(&v, &s.officer, &bob, json!({"recipient": "x"})).await;
    let r = v
        .post(
            &format!("/v1/subjects/{ada}/erasure"),
            &s.officer,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(vault
        .store()
        .find_export(&tenant, &eid)
        .await
        .unwrap()
        .is_none());
    let r = v.get(&format!("/v1/exports/{id}"), &s.officer, None).await;
    assert_eq!(r.status, 410, "{}", r.text);
    let r = export(&v, &s.officer, &ada, json!({"recipient": "x"})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    // Bob's export is untouched.
    let r = v
        .get(&format!("/v1/exports/{bob_export}"), &s.officer, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["records"][0]["fields"]["email"], "bob@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_on_postgres_are_complete_sealed_and_taken_once() {
    let Some(url) = strongroom_testkit::postgres::fresh_database().await else {
        return;
    };
    let v = TestVault::start_postgres(&url, None, Default::default()).await;
    let s = setup(&v, "acme").await;
    let (ada, person, bob) = ada_and_bob(&v, &s).await;
    let g = setup(&v, "globex").await;
    create(
        &v,
        &g,
        "people",
        json!({"fields": {"email": "ada@example.com", "name": "Other Ada"}}),
    )
    .await;
    let id = made(
        &v,
        &s.officer,
        &ada,
        json!({"recipient": "x", "downloads": 3}),
    )
    .await;
    // The stored artefact is ciphertext.
    let pg = strongroom_testkit::postgres::connect(&url).await;
    let row = pg
        .query_one("SELECT data FROM exports WHERE id = $1", &[&id])
        .await
        .unwrap();
    let data: Vec<u8> = row.get(0);
    assert!(data.len() > 100);
    assert!(!data.windows(7).any(|w| w == b"example"));
    let doc = v.get(&format!("/v1/exports/{id}"), &s.officer, None).await;
    check_document(&doc, &ada, &person, &bob, "x");
    // Eight racing downloads of the two left: exactly two succeed.
    let mut ok = 0;
    for (code, text) in race(&v, &s.officer, &id, 8).await {
        if code == 200 {
            ok += 1;
            assert!(text.contains(&person) && text.contains("Ada Lovelace"));
        } else {
            assert_eq!(code, 410, "{text}");
        }
    }
    assert_eq!(ok, 2);
    let left: i64 = pg
        .query_one("SELECT count(*) FROM exports", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
