//! Storing, reading, updating, deleting and finding records, with purposes and visibility.

use reqwest::Method;
use serde_json::json;
use strongroom_testkit::TestVault;

const PEOPLE: &str = "/v1/collections/people/records";

fn ada() -> serde_json::Value {
    json!({"email": "ada.lovelace@example.com", "name": "Ada Lovelace", "phone": "+44 20 7946 0958",
           "birth_date": "1815-12-10", "vip": true, "notes": {"likes": ["engines"]}})
}

#[tokio::test]
async fn fields_are_shown_plain_masked_or_not_at_all() {
    let v = TestVault::start().await;
    let (_, app) = v.scenario("acme").await;
    let id = v.store_person(&app, ada()).await;
    let r = v
        .get(&format!("{PEOPLE}/{id}"), &app, Some("support"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let f = &r.body["fields"];
    assert_eq!(f["email"], "ada.lovelace@example.com");
    assert_eq!(f["name"], "Ada Lovelace");
    assert_eq!(f["phone"], "****0958", "masked by its last4 rule");
    assert!(f.get("birth_date").is_none(), "visibility none");
    assert_eq!(f["vip"], true);
    assert_eq!(f["notes"], json!({"likes": ["engines"]}));
    assert_eq!(r.body["version"], 1);
    assert!(r.body["subject"].as_str().unwrap().starts_with("sub_"));
}

#[tokio::test]
async fn every_access_states_an_allowed_purpose() {
    let v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    let id = v.store_person(&app, ada()).await;
    let path = format!("{PEOPLE}/{id}");
    let r = v.get(&path, &app, None).await;
    assert_eq!((r.status, r.code()), (400, "purpose_required"));
    let r = v.get(&path, &app, Some("astrology")).await;
    assert_eq!((r.status, r.code()), (422, "unknown_purpose"));
    let r = v.get(&path, &app, Some("marketing")).await;
    assert_eq!((r.status, r.code()), (403, "purpose_denied"));
    assert!(r.body.get("fields").is_none());
    let r = v
        .call(Method::DELETE, &path, &app, Some("support"), None)
        .await;
    assert_eq!((r.status, r.code()), (403, "operation_denied"));
    let r = v.get(&path, &t.admin, Some("support")).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "operation_denied"),
        "admin alone reads no values"
    );

    // A field restricted to other purposes stays hidden even for a plain grant.
    v.role(
        &t.admin,
        "marketer",
        json!({"collections": {"people": {
        "operations": ["read"], "purposes": ["marketing"],
        "fields": {"email": "plain", "phone": "plain"}}}}),
    )
    .await;
    let marketer = v.key(&t.admin, &["marketer"]).await;
    let r = v.get(&path, &marketer, Some("marketing")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["fields"]["email"], "ada.lovelace@example.com");
    assert!(
        r.body["fields"].get("phone").is_none(),
        "phone allows only support and billing"
    );
}

#[tokio::test]
async fn tenants_cannot_reach_each_other() {
    let v = TestVault::start().await;
    let (_, app_a) = v.scenario("acme").await;
    let (_, app_b) = v.scenario("globex").await;
    let id = v.store_person(&app_a, ada()).await;
    let r = v
        .get(&format!("{PEOPLE}/{id}"), &app_b, Some("support"))
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = v
        .get(
            &format!("{PEOPLE}?email=ada.lovelace@example.com"),
            &app_b,
            Some("support"),
        )
        .await;
    assert_eq!(r.body["records"], json!([]));
    let r = v
        .call(
            Method::PATCH,
            &format!("{PEOPLE}/{id}"),
            &app_b,
            Some("support"),
            Some(&json!({"fields": {"name": "X"}})),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = v
        .get(&format!("{PEOPLE}/{id}"), &app_a, Some("support"))
        .await;
    assert_eq!(
        r.body["fields"]["name"], "Ada Lovelace",
        "unchanged by the other tenant"
    );
}

#[tokio::test]
async fn updates_keep_history_and_reindex() {
    let v = TestVault::start().await;
    let (_, app) = v.scenario("acme").await;
    let id = v.store_person(&app, ada()).await;
    let path = format!("{PEOPLE}/{id}");
    let patch = |body: serde_json::Value| {
        let path = path.clone();
        let app = app.clone();
        let v = &v;
        async move {
            v.call(Method::PATCH, &path, &app, Some("support"), Some(&body))
                .await
        }
    };
    let r = patch(json!({"fields": {"email": "ada@analytical.engine", "phone": null}})).await;
    assert_eq!(
        (r.status, r.body["version"].as_u64()),
        (200, Some(2)),
        "{}",
        r.text
    );
    let r = v.get(&path, &app, Some("support")).await;
    assert_eq!(r.body["fields"]["email"], "ada@analytical.engine");
    assert!(r.body["fields"].get("phone").is_none(), "cleared");
    assert_eq!(
        r.body["fields"]["name"], "Ada Lovelace",
        "untouched fields keep their value"
    );
    assert_eq!(v.count("record_history"), 1);

    let old = v
        .get(
            &format!("{PEOPLE}?email=ada.lovelace@example.com"),
            &app,
            Some("support"),
        )
        .await;
    assert_eq!(
        old.body["records"],
        json!([]),
        "the old value is no longer indexed"
    );
    let new = v
        .get(
            &format!("{PEOPLE}?email=ADA@analytical.engine"),
            &app,
            Some("support"),
        )
        .await;
    assert_eq!(new.body["records"][0]["id"], id.as_str());

    let r = patch(json!({"fields": {"email": null}})).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "validation_failed"),
        "required fields cannot be cleared"
    );
    let r = patch(json!({"fields": {}})).await;
    assert_eq!(r.status, 400);
    let r = patch(json!({"fields": {"shoe_size": 42}})).await;
    assert_eq!((r.status, r.code()), (400, "unknown_field"));
    assert_eq!(
        v.count("record_history"),
        1,
        "rejected updates change nothing"
    );
}

#[tokio::test]
async fn deleted_records_are_blocked_not_visible() {
    let v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    v.role(
        &t.admin,
        "cleaner",
        json!({"collections": {"people": {"operations": ["delete"], "purposes": ["support"]}}}),
    )
    .await;
    let cleaner = v.key(&t.admin, &["cleaner"]).await;
    let id = v.store_person(&app, ada()).await;
    let path = format!("{PEOPLE}/{id}");
    let r = v
        .call(Method::DELETE, &path, &cleaner, Some("support"), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(v.get(&path, &app, Some("support")).await.status, 404);
    let s = v
        .get(
            &format!("{PEOPLE}?email=ada.lovelace@example.com"),
            &app,
            Some("support"),
        )
        .await;
    assert_eq!(s.body["records"], json!([]));
    assert_eq!(
        v.call(Method::DELETE, &path, &cleaner, Some("support"), None)
            .await
            .status,
        404
    );
    let state: i64 = v
        .sqlite()
        .query_row("SELECT state FROM records WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(state, 1, "soft-deleted: kept (blocked) until purged");
}

#[tokio::test]
async fn search_uses_normalised_blind_indexes() {
    let v = TestVault::start().await;
    let (_, app) = v.scenario("acme").await;
    let a = v
        .store_person(
            &app,
            json!({"email": "Ada.Lovelace@Example.com", "name": "Ada"}),
        )
        .await;
    let b = v
        .store_person(
            &app,
            json!({"email": "ada.lovelace@example.com", "name": "Also Ada"}),
        )
        .await;
    v.store_person(
        &app,
        json!({"email": "charles@example.com", "name": "Charles"}),
    )
    .await;
    let r = v
        .get(
            &format!("{PEOPLE}?email=ADA.LOVELACE@EXAMPLE.COM"),
            &app,
            Some("support"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ids: Vec<_> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [a.clone(), b]);
    let r = v
        .get(
            &format!("{PEOPLE}?email=ada.lovelace@example.com&limit=1"),
            &app,
            Some("support"),
        )
        .await;
    assert_eq!(r.body["records"].as_array().unwrap().len(), 1);
    let r = v
        .post(
            &format!("{PEOPLE}/search"),
            &app,
            Some("support"),
            json!({"where": {"name": "Charles"}}),
        )
        .await;
    assert_eq!(r.body["records"][0]["fields"]["name"], "Charles");
    let r = v
        .get(&format!("{PEOPLE}?phone=123456"), &app, Some("support"))
        .await;
    assert_eq!((r.status, r.code()), (422, "field_not_searchable"));
    let r = v
        .get(
            &format!("{PEOPLE}?email=a@b.c&name=x"),
            &app,
            Some("support"),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    let r = v
        .get(
            &format!("{PEOPLE}?email=not-an-email"),
            &app,
            Some("support"),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "validation_failed"));
    let r = v
        .get(&format!("{PEOPLE}?email=a@b.c"), &app, Some("marketing"))
        .await;
    assert_eq!(r.status, 403);
    // No plaintext in the index.
    let n: i64 = v
        .sqlite()
        .query_row(
            "SELECT count(*) FROM blind_index WHERE hash LIKE '%example%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn subjects_are_issued_and_reused() {
    let v = TestVault::start().await;
    let (_, app) = v.scenario("acme").await;
    let mk = |body: serde_json::Value| v.post(PEOPLE, &app, Some("support"), body);
    let first = mk(json!({"subject_ref": "crm-42", "fields": {"email": "a@example.com"}})).await;
    let second = mk(json!({"subject_ref": "crm-42", "fields": {"email": "b@example.com"}})).await;
    let third =
        mk(json!({"subject": first.body["subject"], "fields": {"email": "c@example.com"}})).await;
    let fresh = mk(json!({"fields": {"email": "d@example.com"}})).await;
    assert_eq!(first.body["subject"], second.body["subject"]);
    assert_eq!(first.body["subject"], third.body["subject"]);
    assert_ne!(first.body["subject"], fresh.body["subject"]);
    assert_eq!(v.count("subjects"), 2);
    let r = mk(json!({"subject": "sub_00000000000000000000000000000000", "fields": {"email": "e@example.com"}})).await;
    assert_eq!((r.status, r.code()), (404, "unknown_subject"));
    let r = mk(json!({"subject": "bob", "fields": {"email": "e@example.com"}})).await;
    assert_eq!((r.status, r.code()), (400, "invalid_id"));
    let r = mk(json!({"subject": first.body["subject"], "subject_ref": "crm-42", "fields": {"email": "e@example.com"}})).await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
}

#[tokio::test]
async fn batches_are_all_or_nothing() {
    let v = TestVault::start().await;
    let (_, app) = v.scenario("acme").await;
    let records: Vec<_> = (0..50)
        .map(|i| json!({"subject_ref": format!("c{}", i % 10), "fields": {"email": format!("p{i}@example.com")}}))
        .collect();
    let r = v
        .post(
            &format!("{PEOPLE}/batch"),
            &app,
            Some("support"),
            json!({"records": records}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let created = r.body["records"].as_array().unwrap().clone();
    assert_eq!(created.len(), 50);
    assert_eq!(
        v.count("subjects"),
        10,
        "repeated references share a subject within a batch"
    );

    let mut bad = records_with_one_invalid();
    let before = v.count("records");
    let r = v
        .post(
            &format!("{PEOPLE}/batch"),
            &app,
            Some("support"),
            json!({"records": bad.clone()}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "validation_failed"));
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("record 2:"));
    assert_eq!(
        v.count("records"),
        before,
        "nothing of a rejected batch is stored"
    );
    bad.truncate(0);
    let r = v
        .post(
            &format!("{PEOPLE}/batch"),
            &app,
            Some("support"),
            json!({"records": bad}),
        )
        .await;
    assert_eq!(r.status, 400);

    let mut ids: Vec<String> = created
        .iter()
        .take(3)
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    ids.push("rec_00000000000000000000000000000000".into());
    let r = v
        .post(
            &format!("{PEOPLE}/lookup"),
            &app,
            Some("support"),
            json!({"ids": ids}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["records"].as_array().unwrap().len(), 3);
    assert_eq!(
        r.body["missing"],
        json!(["rec_00000000000000000000000000000000"])
    );
    assert_eq!(r.body["records"][0]["fields"]["email"], "p0@example.com");
    let too_many: Vec<String> = (0..1001)
        .map(|_| "rec_00000000000000000000000000000000".to_owned())
        .collect();
    let r = v
        .post(
            &format!("{PEOPLE}/lookup"),
            &app,
            Some("support"),
            json!({"ids": too_many}),
        )
        .await;
    assert_eq!(r.status, 400);
}

fn records_with_one_invalid() -> Vec<serde_json::Value> {
    (0..5)
        .map(|i| {
            let email = if i == 2 {
                "nope".to_owned()
            } else {
                format!("q{i}@example.com")
            };
            json!({"fields": {"email": email}})
        })
        .collect()
}

/// A tampered blind index cannot make a search return a record that does not match: every hit
/// is checked against its decrypted value, the wrong one is left out, and the search's audit
/// entry reports it.
#[tokio::test]
async fn a_tampered_search_index_returns_no_wrong_record() {
    let v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    let ada = v
        .store_person(&app, json!({"email": "ada@example.com", "name": "Ada"}))
        .await;
    let bob = v
        .store_person(&app, json!({"email": "bob@example.com", "name": "Bob"}))
        .await;
    // The attacker points Ada's email index entry at Bob's record too, then only at Bob's.
    let c = v.sqlite();
    c.execute(
        "INSERT INTO blind_index (tenant, collection, field, hash, record)
         SELECT tenant, collection, field, hash, ?2 FROM blind_index WHERE record = ?1 AND field = 'email'",
        [&ada, &bob],
    )
    .unwrap();
    let found = v
        .get(
            &format!("{PEOPLE}?email=ada%40example.com"),
            &app,
            Some("support"),
        )
        .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let ids: Vec<&str> = found.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ada.as_str()], "only the record that really matches");
    c.execute(
        "DELETE FROM blind_index WHERE record = ?1 AND field = 'email'",
        [&ada],
    )
    .unwrap();
    let found = v
        .get(
            &format!("{PEOPLE}?email=ada%40example.com"),
            &app,
            Some("support"),
        )
        .await;
    assert_eq!(found.body["records"], json!([]), "{}", found.text);
    let audit = v
        .get("/v1/audit/entries?action=record.search", &t.admin, None)
        .await;
    let flagged = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["objects"]
                .as_array()
                .unwrap()
                .contains(&json!(format!("index_mismatch:{bob}")))
        })
        .count();
    assert_eq!(flagged, 2, "both searches report the mismatch");
}
