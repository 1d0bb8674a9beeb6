//! The register of data-subject requests (OR-04) on a real server: deadlines one calendar
//! month after receipt, extensions with a reason and never beyond three months, fulfilment only
//! by what the vault has on record (an export of that subject, its erasure), overdue requests
//! raising alerts and counted in the TOMs report, the register kept by the privacy officer
//! only, and bad input refused with nothing recorded.

use serde_json::{json, Value};
use strongroom_testkit::{TestVault, START_MS};

const DAY: i64 = 86_400_000;
/// 2026-01-31T00:00:00Z: a month later is the end of February.
const JAN_31: i64 = START_MS + 30 * DAY;
const FEB_28: i64 = START_MS + 58 * DAY;

struct Setup {
    admin: String,
    app: String,
    officer: String,
    auditor: String,
}

/// A key valid for a year: the tests move the clock by months.
async fn key(v: &TestVault, admin: &str, role: &str) -> String {
    let r = v
        .post(
            "/v1/api-keys",
            admin,
            None,
            json!({"name": role, "roles": [role], "expires_in_days": 365}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["key"].as_str().unwrap().to_owned()
}

async fn setup(v: &TestVault, name: &str) -> Setup {
    let (t, _) = v.scenario(name).await;
    Setup {
        app: key(v, &t.admin, "support_agent").await,
        officer: key(v, &t.admin, "privacy_officer").await,
        auditor: key(v, &t.admin, "auditor").await,
        admin: key(v, &t.admin, "admin").await,
    }
}

async fn file(v: &TestVault, key: &str, body: Value) -> strongroom_testkit::Resp {
    v.post("/v1/dsars", key, None, body).await
}

async fn change(v: &TestVault, key: &str, id: &str, body: Value) -> strongroom_testkit::Resp {
    v.put(&format!("/v1/dsars/{id}"), key, body).await
}

async fn count(v: &TestVault, key: &str) -> usize {
    let r = v.get("/v1/dsars", key, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["requests"].as_array().unwrap().len()
}

#[tokio::test]
async fn requests_are_tracked_against_their_deadline_and_closed_only_by_what_is_on_record() {
    let v = TestVault::start().await;
    let s = setup(&v, "acme").await;
    let ada_rec = v
        .store_person(&s.app, json!({"email": "ada@example.com", "name": "Ada"}))
        .await;
    let r = v
        .get(
            &format!("/v1/collections/people/records/{ada_rec}"),
            &s.app,
            Some("support"),
        )
        .await;
    let ada = r.body["subject"].as_str().unwrap().to_owned();
    let bob_rec = v
        .store_person(&s.app, json!({"email": "bob@example.com"}))
        .await;
    let bob = v
        .get(
            &format!("/v1/collections/people/records/{bob_rec}"),
            &s.app,
            Some("support"),
        )
        .await
        .body["subject"]
        .as_str()
        .unwrap()
        .to_owned();

    // Received today: due a calendar month later.
    let r = file(
        &v,
        &s.officer,
        json!({"kind": "access", "received_at": START_MS, "subject": ada}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let access = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["due_at"], START_MS + 31 * DAY);
    assert_eq!(r.body["overdue"], false);
    assert_eq!(r.body["version"], 1);
    let op = crate::lifecycle::operator(&v).await;
    v.clock.advance_ms(40 * DAY);
    // Received on 31 January: due on 28 February.
    let r = file(
        &v,
        &s.officer,
        json!({"kind": "erasure", "received_at": JAN_31}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let erasure = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["due_at"], FEB_28);

    // The first is overdue now: listed, counted, alerted (in the tenant's own log).
    let list = v.get("/v1/dsars", &s.auditor, None).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(
        (list.body["open"].as_u64(), list.body["overdue"].as_u64()),
        (Some(2), Some(1))
    );
    let alerts = v.get("/v1/compliance/alerts", &s.admin, None).await;
    assert!(
        alerts.body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "dsar_overdue" && a["entry"] == access.as_str()),
        "{}",
        alerts.text
    );
    crate::lifecycle::run_job(&v, &op, "compliance.alerts").await;
    let log = v
        .get(
            "/v1/audit/entries?action=compliance.alert",
            &s.auditor,
            None,
        )
        .await;
    assert!(log.text.contains(&access), "{}", log.text);
    // The report says so.
    let report = v
        .get("/v1/compliance/toms?format=json", &s.admin, None)
        .await;
    assert_eq!(report.status, 200, "{}", report.text);
    let or04 = report.body["report"]["measures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "OR-04")
        .expect("OR-04 in the report")
        .to_string();
    assert!(or04.contains("requests overdue"), "{or04}");
    assert!(or04.contains("past their deadline"), "{or04}");
    assert!(or04.contains("\"partial\""), "{or04}");

    // An extension: with a reason, up to two more months — never a third.
    let base = json!({"kind": "access", "received_at": START_MS, "subject": ada});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (body, status) in [
        (
            with(json!({"extension_months": 3, "extension_reason": "complex"})),
            422,
        ),
        (with(json!({"extension_months": 2})), 422),
        (with(json!({"extension_months": -1})), 400),
        (
            with(json!({"status": "fulfilled", "closed_at": START_MS + 41 * DAY})),
            422,
        ),
    ] {
        let r = change(&v, &s.officer, &access, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    let r = change(
        &v,
        &s.officer,
        &access,
        with(json!({"extension_months": 2, "extension_reason": "many records in archives"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["due_at"], START_MS + (31 + 28 + 31) * DAY);
    assert_eq!(r.body["overdue"], false);
    assert_eq!(r.body["version"], 2);

    // Fulfilled only by an export of that subject made for it.
    let verified = json!({
        "extension_months": 2, "extension_reason": "many records in archives",
        "identity_verified_by": "DPO desk, passport seen", "identity_verified_at": START_MS + DAY,
        "status": "fulfilled", "closed_at": START_MS + 40 * DAY,
    });
    let r = v
        .post(
            &format!("/v1/subjects/{bob}/export"),
            &s.officer,
            None,
            json!({"recipient": "Bob"}),
        )
        .await;
    let bobs_export = r.body["id"].as_str().unwrap().to_owned();
    // An export for this request must be about its subject, and the request must be open and
    // for access or portability.
    for (subject, request, status) in [(&bob, &access, 422), (&ada, &erasure, 422)] {
        let r = v
            .post(
                &format!("/v1/subjects/{subject}/export"),
                &s.officer,
                None,
                json!({"recipient": "x", "request": request}),
            )
            .await;
        assert_eq!(r.status, status, "{}", r.text);
    }
    let r = v
        .post(
            &format!("/v1/subjects/{ada}/export"),
            &s.officer,
            None,
            json!({"recipient": "Ada", "request": access}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let adas_export = r.body["id"].as_str().unwrap().to_owned();
    for (fulfilment, status) in [
        (json!(null), 422),
        (json!(bobs_export), 422),
        (json!(format!("exp_{}", "0".repeat(32))), 422),
        (json!("a letter"), 422),
    ] {
        let mut b = with(verified.clone());
        b["fulfilment"] = fulfilment.clone();
        let r = change(&v, &s.officer, &access, b).await;
        assert_eq!(r.status, status, "{fulfilment}: {}", r.text);
    }
    // Without the identity verified: refused.
    let mut b = with(verified.clone());
    b["fulfilment"] = json!(adas_export);
    b.as_object_mut().unwrap().remove("identity_verified_by");
    b.as_object_mut().unwrap().remove("identity_verified_at");
    assert_eq!(change(&v, &s.officer, &access, b).await.status, 422);
    let mut b = with(verified.clone());
    b["fulfilment"] = json!(adas_export);
    let r = change(&v, &s.officer, &access, b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["days_to_answer"], 40.0);
    // A closed request no longer takes an export.
    let r = v
        .post(
            &format!("/v1/subjects/{ada}/export"),
            &s.officer,
            None,
            json!({"recipient": "x", "request": access}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);

    // Erasure: fulfilled once the ledger has the subject's erasure, not before.
    let close_erasure = json!({
        "kind": "erasure", "received_at": JAN_31, "subject": bob,
        "identity_verified_by": "DPO desk", "identity_verified_at": JAN_31,
        "status": "fulfilled", "closed_at": JAN_31 + 9 * DAY,
    });
    let r = change(&v, &s.officer, &erasure, close_erasure.clone()).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = v
        .post(
            &format!("/v1/subjects/{bob}/erasure"),
            &s.officer,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = change(&v, &s.officer, &erasure, close_erasure).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list = v.get("/v1/dsars", &s.officer, None).await;
    assert_eq!(
        (list.body["open"].as_u64(), list.body["overdue"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(list.body["median_days_to_answer"], 24.5);
}

#[tokio::test]
async fn only_the_privacy_officer_keeps_the_register_and_bad_input_records_nothing() {
    let v = TestVault::start().await;
    let s = setup(&v, "acme").await;
    let other = setup(&v, "globex").await;
    let ok = json!({"kind": "objection", "received_at": START_MS});
    let r = file(&v, &s.officer, ok.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    // Writers: the privacy officer only. Readers: it, the admin and the auditor.
    for key in [&s.app, &s.admin, &s.auditor, &v.operator] {
        assert_eq!(file(&v, key, ok.clone()).await.status, 403);
        assert_eq!(change(&v, key, &id, ok.clone()).await.status, 403);
    }
    assert_eq!(v.get("/v1/dsars", &s.app, None).await.status, 403);
    for key in [&s.officer, &s.admin, &s.auditor] {
        let r = v.get(&format!("/v1/dsars/{id}"), key, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // Another tenant: nothing of it, never a hint.
    assert_eq!(count(&v, &other.officer).await, 0);
    let r = v
        .get(&format!("/v1/dsars/{id}"), &other.officer, None)
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(
        change(&v, &other.officer, &id, ok.clone()).await.status,
        404
    );
    // Bad input: a clear error and nothing recorded.
    let ghost = format!("sub_{}", "0".repeat(32));
    let with = |k: &str, val: Value| {
        let mut b = ok.clone();
        b[k] = val;
        b
    };
    for (body, status) in [
        (json!({}), 400),
        (with("kind", json!("deletion")), 400),
        (with("received_at", json!("yesterday")), 400),
        (with("received_at", json!(START_MS + DAY)), 422),
        (with("received_at", json!(-5)), 400),
        (with("subject", json!("sub_zz")), 400),
        (with("subject", json!(ghost)), 404),
        (with("status", json!("done")), 400),
        (with("status", json!("refused")), 422),
        (with("closed_at", json!(START_MS)), 422),
        (with("identity_verified_by", json!("desk")), 422),
        (with("identity_verified_by", json!("")), 400),
        (with("note", json!("a\u{1b}[31m")), 422),
        (with("extension_reason", json!("x".repeat(501))), 400),
        (with("colour", json!("red")), 400),
    ] {
        let r = file(&v, &s.officer, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert!(r.body["error"]["code"].is_string(), "{}", r.text);
    }
    // Another tenant's subject is unknown here.
    let their = v
        .store_person(&other.app, json!({"email": "x@example.com"}))
        .await;
    let their_subject = v
        .get(
            &format!("/v1/collections/people/records/{their}"),
            &other.app,
            Some("support"),
        )
        .await
        .body["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        file(&v, &s.officer, with("subject", json!(their_subject)))
            .await
            .status,
        404
    );
    for bad in ["dsr_nope", "rec_x"] {
        let r = v.get(&format!("/v1/dsars/{bad}"), &s.officer, None).await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
    assert_eq!(count(&v, &s.officer).await, 1);
    // A change made against the version read applies once; the same again is refused.
    let put = |version: u32| {
        v.client
            .put(format!("{}/v1/dsars/{id}", v.base))
            .bearer_auth(&s.officer)
            .header("If-Match", format!("\"{version}\""))
            .json(&ok)
            .send()
    };
    assert_eq!(put(1).await.unwrap().status(), 200);
    assert_eq!(put(1).await.unwrap().status(), 412);
}
