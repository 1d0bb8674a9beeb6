//! Lawful bases, consent and objection on a real server: a purpose based on consent is refused
//! for a subject without live consent (new subjects included), consent given with a record or
//! later, withdrawn and given again takes effect on the next request; an objection stops a
//! legitimate-interest purpose for that subject only; other bases are untouched; bad input
//! changes nothing; racing changes are all kept, numbered in order; the log never holds the
//! consent's source.

use serde_json::{json, Value};
use strongroom_testkit::{Resp, TestVault};

const NEWS: &str = "/v1/collections/news/records";
const LEADS: &str = "/v1/collections/leads/records";
const TEXT: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

struct Setup {
    admin: String,
    app: String,
    officer: String,
    /// A key whose roles use neither purpose.
    stranger: String,
}

async fn setup(v: &TestVault, name: &str) -> Setup {
    let (t, _) = v.scenario(name).await;
    for (path, body) in [
        (
            "/v1/collections/news",
            json!({"purposes": ["newsletter", "support"],
                   "bases": {"newsletter": "consent", "support": "contract"},
                   "fields": [{"name": "email", "type": "email", "classification": "identifier", "searchable": true}]}),
        ),
        (
            "/v1/collections/leads",
            json!({"purposes": ["outreach"], "bases": {"outreach": "legitimate_interest"},
                   "fields": [{"name": "email", "type": "email", "classification": "identifier", "searchable": true}]}),
        ),
    ] {
        let r = v.put(path, &t.admin, body).await;
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    }
    v.role(
        &t.admin,
        "app",
        json!({"collections": {
            "news": {"operations": ["create", "read", "update", "search"], "purposes": ["newsletter", "support"],
                     "fields": {"email": "plain"}},
            "leads": {"operations": ["create", "read"], "purposes": ["outreach"], "fields": {"email": "plain"}}}}),
    )
    .await;
    v.role(
        &t.admin,
        "other",
        json!({"collections": {"people": {"operations": ["read"], "purposes": ["support"], "fields": {"email": "plain"}}}}),
    )
    .await;
    Setup {
        app: v.key(&t.admin, &["app"]).await,
        officer: v.key(&t.admin, &["privacy_officer"]).await,
        stranger: v.key(&t.admin, &["other"]).await,
        admin: t.admin,
    }
}

async fn change(v: &TestVault, key: &str, subject: &str, body: Value) -> Resp {
    v.post(&format!("/v1/subjects/{subject}/consents"), key, None, body)
        .await
}

async fn register(v: &TestVault, s: &Setup, subject: &str) -> Vec<Value> {
    let r = v
        .get(
            &format!("/v1/subjects/{subject}/consents"),
            &s.officer,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["entries"].as_array().unwrap().clone()
}

fn refused(r: &Resp, code: &str, what: &str) {
    assert_eq!((r.status, r.code()), (403, code), "{what}: {}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_and_objection_decide_each_request() {
    let v = TestVault::start().await;
    let s = setup(&v, "acme").await;

    // No consent, new subject: refused, nothing stored.
    let before = v.count("subjects");
    let r = v
        .post(
            NEWS,
            &s.app,
            Some("newsletter"),
            json!({"fields": {"email": "ada@example.com"}}),
        )
        .await;
    refused(&r, "consent_required", "create without consent");
    assert_eq!(
        (v.count("subjects"), v.count("records")),
        (before, 0),
        "nothing stored"
    );
    // Consent given with the record: stored, registered, readable for that purpose.
    let r = v
        .post(
            NEWS,
            &s.app,
            Some("newsletter"),
            json!({"fields": {"email": "ada@example.com"},
                   "consent": {"source": "signup form v3", "text_sha256": TEXT}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (rec, ada) = (
        format!("{NEWS}/{}", r.body["id"].as_str().unwrap()),
        r.body["subject"].as_str().unwrap().to_owned(),
    );
    let reg = register(&v, &s, &ada).await;
    assert_eq!(reg.len(), 1, "{reg:?}");
    assert_eq!(
        (
            &reg[0]["purpose"],
            &reg[0]["seq"],
            &reg[0]["state"],
            &reg[0]["text_sha256"]
        ),
        (
            &json!("newsletter"),
            &json!(1),
            &json!("given"),
            &json!(TEXT)
        )
    );
    assert!(
        reg[0]["recorded_by"].as_str().unwrap().starts_with("key:"),
        "{reg:?}"
    );
    assert_eq!(v.get(&rec, &s.app, Some("newsletter")).await.status, 200);
    // Withdrawn: every operation for that purpose is refused at once; the contract purpose
    // is untouched.
    let r = change(
        &v,
        &s.app,
        &ada,
        json!({"purpose": "newsletter", "state": "withdrawn", "source": "unsubscribe link"}),
    )
    .await;
    assert_eq!((r.status, &r.body["seq"]), (200, &json!(2)), "{}", r.text);
    refused(
        &v.get(&rec, &s.app, Some("newsletter")).await,
        "consent_required",
        "read",
    );
    refused(
        &v.call(
            reqwest::Method::PATCH,
            &rec,
            &s.app,
            Some("newsletter"),
            Some(&json!({"fields": {"email": "ada2@example.com"}})),
        )
        .await,
        "consent_required",
        "update",
    );
    refused(
        &v.post(
            NEWS,
            &s.app,
            Some("newsletter"),
            json!({"subject": ada, "fields": {"email": "ada3@example.com"}}),
        )
        .await,
        "consent_required",
        "another record for her",
    );
    let found = v
        .get(
            &format!("{NEWS}?email=ada@example.com"),
            &s.app,
            Some("newsletter"),
        )
        .await;
    assert_eq!(
        found.body["records"],
        json!([]),
        "search leaves her out: {}",
        found.text
    );
    let found = v
        .get(
            &format!("{NEWS}?email=ada@example.com"),
            &s.app,
            Some("support"),
        )
        .await;
    assert_eq!(
        found.body["records"].as_array().map(Vec::len),
        Some(1),
        "{}",
        found.text
    );
    assert_eq!(
        v.get(&rec, &s.app, Some("support")).await.status,
        200,
        "contract basis"
    );
    // Given again: readable again.
    let r = change(&v, &s.app, &ada, json!({"purpose": "newsletter", "state": "given", "source": "preferences page", "text_sha256": TEXT})).await;
    assert_eq!((r.status, &r.body["seq"]), (200, &json!(3)), "{}", r.text);
    assert_eq!(v.get(&rec, &s.app, Some("newsletter")).await.status, 200);

    // Bad input changes nothing.
    let other = setup(&v, "other").await;
    let long = "x".repeat(129);
    for (key, subject, body, status) in [
        (
            &s.app,
            ada.as_str(),
            json!({"purpose": "newsletter", "state": "given", "source": "f", "text_sha256": TEXT.to_uppercase()}),
            400,
        ),
        (
            &s.app,
            ada.as_str(),
            json!({"purpose": "newsletter", "state": "given", "source": "f"}),
            422,
        ),
        (
            &s.app,
            ada.as_str(),
            json!({"purpose": "newsletter", "state": "given", "source": "", "text_sha256": TEXT}),
            400,
        ),
        (
            &s.app,
            ada.as_str(),
            json!({"purpose": "newsletter", "state": "given", "source": long, "text_sha256": TEXT}),
            400,
        ),
        (
            &s.app,
            ada.as_str(),
            json!({"purpose": "newsletter", "state": "given", "source": "a\u{7}b", "text_sha256": TEXT}),
            400,
        ),
        (
            &s.app,
            ada.as_str(),
            json!({"purpose": "newsletter", "state": "maybe", "source": "f"}),
            400,
        ),
        (
            &s.app,
            ada.as_str(),
            json!({"purpose": "newsletter", "state": "given", "source": "f", "text_sha256": TEXT, "extra": 1}),
            400,
        ),
        (
            &s.app,
            ada.as_str(),
            json!({"purpose": "support", "state": "given", "source": "f", "text_sha256": TEXT}),
            422,
        ),
        (
            &s.app,
            ada.as_str(),
            json!({"purpose": "newsletter", "state": "objected", "source": "f"}),
            422,
        ),
        (
            &s.app,
            ada.as_str(),
            json!({"purpose": "nope", "state": "withdrawn", "source": "f"}),
            422,
        ),
        (
            &s.stranger,
            ada.as_str(),
            json!({"purpose": "newsletter", "state": "withdrawn", "source": "f"}),
            403,
        ),
        (
            &s.app,
            "sub_00000000000000000000000000000000",
            json!({"purpose": "newsletter", "state": "withdrawn", "source": "f"}),
            404,
        ),
        (
            &other.officer,
            ada.as_str(),
            json!({"purpose": "newsletter", "state": "withdrawn", "source": "f"}),
            404,
        ),
        (
            &s.app,
            "nope",
            json!({"purpose": "newsletter", "state": "withdrawn", "source": "f"}),
            400,
        ),
    ] {
        let r = change(&v, key, subject, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    assert_eq!(
        register(&v, &s, &ada).await.len(),
        3,
        "bad input recorded nothing"
    );
    let r = v
        .post(NEWS, &s.app, Some("support"),
            json!({"fields": {"email": "bob@example.com"}, "consent": {"source": "f", "text_sha256": TEXT}}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (422, "validation_failed"),
        "consent for a contract purpose: {}",
        r.text
    );

    // Objection: Bob's lead is refused for outreach; Carol's is not.
    let lead = |email: &str| {
        let (v, key) = (&v, &s.app);
        let body = json!({"fields": {"email": email}});
        async move {
            let r = v.post(LEADS, key, Some("outreach"), body).await;
            assert_eq!(r.status, 201, "{}", r.text);
            (
                format!("{LEADS}/{}", r.body["id"].as_str().unwrap()),
                r.body["subject"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (bob_rec, bob) = lead("bob@example.com").await;
    let (carol_rec, _) = lead("carol@example.com").await;
    let r = change(
        &v,
        &s.officer,
        &bob,
        json!({"purpose": "outreach", "state": "objected", "source": "email reply"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    refused(
        &v.get(&bob_rec, &s.app, Some("outreach")).await,
        "subject_objected",
        "read after objection",
    );
    assert_eq!(
        v.get(&carol_rec, &s.app, Some("outreach")).await.status,
        200
    );
    let r = change(
        &v,
        &s.officer,
        &bob,
        json!({"purpose": "outreach", "state": "given", "source": "f", "text_sha256": TEXT}),
    )
    .await;
    assert_eq!(
        r.status, 422,
        "consent is not how a legitimate-interest purpose works: {}",
        r.text
    );

    // The view shows the states; the log has the changes but never their source.
    let view = v.get(&format!("/v1/subjects/{ada}"), &s.admin, None).await;
    assert_eq!(
        view.body["consents"],
        json!({"newsletter": "given"}),
        "{}",
        view.text
    );
    let view = v
        .get(&format!("/v1/subjects/{bob}"), &s.officer, None)
        .await;
    assert_eq!(
        view.body["consents"],
        json!({"outreach": "objected"}),
        "{}",
        view.text
    );
    let log = v
        .get(
            "/v1/audit/entries?action=consent.record&limit=1000",
            &s.admin,
            None,
        )
        .await;
    let entries = log.body["entries"].as_array().unwrap();
    assert_eq!(
        entries.iter().filter(|e| e["outcome"] == "ok").count(),
        3,
        "withdrawn, given, objected: {}",
        log.text
    );
    for secret in [
        "unsubscribe link",
        "preferences page",
        "email reply",
        "signup form v3",
    ] {
        assert!(!log.text.contains(secret), "the log holds a consent source");
    }
    let reads = v
        .get(
            &format!("/v1/audit/entries?subject={ada}&limit=1000"),
            &s.admin,
            None,
        )
        .await;
    assert!(
        reads.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["code"] == "consent_required"),
        "refusals audited with the subject"
    );
    // The report counts them (SE-02), as the scheduled verification reads the log.
    let all = v
        .get(
            "/v1/audit/entries?outcome=denied&limit=1000",
            &s.admin,
            None,
        )
        .await;
    let refusals = all.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == "consent_required" || e["code"] == "subject_objected")
        .count();
    assert!(refusals >= 5, "{refusals}");
    let op = crate::lifecycle::operator(&v).await;
    crate::lifecycle::run_job(&v, &op, "audit.verify").await;
    let rep = v
        .get("/v1/compliance/toms?format=json", &s.admin, None)
        .await;
    let se02 = rep.body["report"]["measures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "SE-02")
        .unwrap()
        .clone();
    let counted = se02["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["label"] == "refusals for want of consent or after an objection (recorded)")
        .unwrap_or_else(|| panic!("{se02}"));
    assert_eq!(counted["value"], refusals.to_string(), "{se02}");
    v.assert_audit_verifies().await;
}

/// Sixteen changes of one subject's consent at once: every one kept, numbered 1 to 16 without
/// a gap or a double, and the state in force is the last one numbered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_consent_changes_are_all_kept_in_order() {
    let v = TestVault::start().await;
    let s = setup(&v, "acme").await;
    let r = v
        .post(
            NEWS,
            &s.app,
            Some("support"),
            json!({"fields": {"email": "ada@example.com"}}),
        )
        .await;
    let ada = r.body["subject"].as_str().unwrap().to_owned();
    let rec = format!("{NEWS}/{}", r.body["id"].as_str().unwrap());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (v, key, ada) = (&v, s.app.clone(), ada.clone());
        let body = if i % 2 == 0 {
            json!({"purpose": "newsletter", "state": "given", "source": format!("race {i}"), "text_sha256": TEXT})
        } else {
            json!({"purpose": "newsletter", "state": "withdrawn", "source": format!("race {i}")})
        };
        tasks.push(async move { change(v, &key, &ada, body).await.status });
    }
    let statuses = futures_util::future::join_all(tasks).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let reg = register(&v, &s, &ada).await;
    let seqs: Vec<u64> = reg.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=16).collect::<Vec<_>>());
    let last = &reg[15]["state"];
    let read = v.get(&rec, &s.app, Some("newsletter")).await;
    if last == "given" {
        assert_eq!(read.status, 200, "{}", read.text);
    } else {
        refused(
            &read,
            "consent_required",
            "the last change numbered is in force",
        );
    }
}
