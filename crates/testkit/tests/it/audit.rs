//! Every operation is audited in the same transaction as its change; reads return data only
//! once their entry is durable; the trail is one gapless hash chain per log.

use reqwest::Method;
use serde_json::json;
use strongroom_proto::AuditEntry;
use strongroom_testkit::TestVault;

const PEOPLE: &str = "/v1/collections/people/records";

async fn entries(v: &TestVault, token: &str) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    let mut after = 0;
    loop {
        let r = v
            .get(
                &format!("/v1/audit/entries?after={after}&limit=50"),
                token,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page: strongroom_proto::AuditPage = serde_json::from_value(r.body).unwrap();
        out.extend(page.entries);
        match page.next {
            Some(n) => after = n,
            None => return out,
        }
    }
}

#[tokio::test]
async fn each_operation_leaves_one_entry_with_its_outcome() {
    let v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    let id = v
        .store_person(
            &app,
            json!({"email": "a@example.com", "phone": "+1 555 0100 99"}),
        )
        .await;
    let count = || v.count("audit");
    let n = count();
    let r = v
        .get(&format!("{PEOPLE}/{id}"), &app, Some("support"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(count(), n + 1, "the read was audited before it answered");
    let r = v
        .get(&format!("{PEOPLE}/{id}"), &app, Some("marketing"))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(count(), n + 2, "so was the denial");

    let all = entries(&v, &t.admin).await;
    let reads: Vec<&AuditEntry> = all.iter().filter(|e| e.action == "record.read").collect();
    assert_eq!(reads.len(), 2);
    assert_eq!(
        (reads[0].outcome.as_str(), reads[0].purpose.as_deref()),
        ("ok", Some("support"))
    );
    assert_eq!(reads[0].records, std::slice::from_ref(&id));
    assert_eq!(
        reads[0].fields,
        ["email", "phone"],
        "the fields that were shown"
    );
    assert!(reads[0].actor.starts_with("key:key_"));
    assert!(reads[0].subject.as_deref().unwrap().starts_with("sub_"));
    assert_eq!(
        (reads[1].outcome.as_str(), reads[1].code.as_deref()),
        ("denied", Some("purpose_denied"))
    );
    assert!(reads[1].fields.is_empty());
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        (actions[0], all[0].seq),
        ("log.genesis", 1),
        "a tenant's log opens when the tenant is created"
    );
    for a in [
        "api_key.create",
        "collection.put",
        "role.put",
        "record.create",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    // Entries carry no values.
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains("a@example.com") && !text.contains("+1 555 0100 99"));
    v.assert_audit_verifies().await;

    // Filters.
    let r = v
        .get(
            "/v1/audit/entries?action=record.read&outcome=denied",
            &t.admin,
            None,
        )
        .await;
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 1);
    let r = v.get("/v1/audit/entries?bogus=1", &t.admin, None).await;
    assert_eq!((r.status, r.code()), (400, "unknown_field"));
    // Only admins and auditors read the trail; operators read the platform log.
    assert_eq!(v.get("/v1/audit/entries", &app, None).await.status, 403);
    let platform = v.get("/v1/audit/entries", &v.operator, None).await;
    assert_eq!(platform.status, 200);
    assert!(platform.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["log"] == "platform"));
}

#[tokio::test]
async fn fails_closed_when_the_audit_entry_cannot_be_written() {
    let v = TestVault::start().await;
    let (_, app) = v.scenario("acme").await;
    let id = v
        .store_person(&app, json!({"email": "a@example.com"}))
        .await;
    let db = v.sqlite();
    db.execute_batch("CREATE TRIGGER block_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit disk gone'); END;")
        .unwrap();
    let records = v.count("records");

    let r = v
        .get(&format!("{PEOPLE}/{id}"), &app, Some("support"))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (503, "audit_unavailable"),
        "{}",
        r.text
    );
    assert!(
        !r.text.contains("a@example.com"),
        "no data without its audit entry"
    );
    let r = v
        .post(
            PEOPLE,
            &app,
            Some("support"),
            json!({"fields": {"email": "b@example.com"}}),
        )
        .await;
    assert_eq!((r.status, r.code()), (503, "audit_unavailable"));
    let r = v
        .call(
            Method::PATCH,
            &format!("{PEOPLE}/{id}"),
            &app,
            Some("support"),
            Some(&json!({"fields": {"name": "X"}})),
        )
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(v.count("records"), records, "the write did not happen");
    assert_eq!(v.count("record_history"), 0, "the update did not happen");

    db.execute_batch("DROP TRIGGER block_audit;").unwrap();
    let r = v
        .get(&format!("{PEOPLE}/{id}"), &app, Some("support"))
        .await;
    assert_eq!(r.status, 200, "recovers once the log is writable");
    assert_eq!(r.body["fields"].get("name"), None);
}

#[tokio::test]
async fn concurrent_requests_make_one_gapless_chain() {
    let v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    let id = v
        .store_person(&app, json!({"email": "a@example.com"}))
        .await;
    let path = format!("{PEOPLE}/{id}");
    let mut tasks = Vec::new();
    for i in 0..120 {
        let (client, url, app) = (v.client.clone(), format!("{}{path}", v.base), app.clone());
        tasks.push(tokio::spawn(async move {
            let purpose = if i % 4 == 0 { "marketing" } else { "support" };
            client
                .get(url)
                .bearer_auth(app)
                .header("X-Purpose", purpose)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 90);
    let all = entries(&v, &t.admin).await;
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>());
    v.assert_audit_verifies().await;
    assert_eq!(
        all.iter().filter(|e| e.action == "record.read").count(),
        120
    );
}
