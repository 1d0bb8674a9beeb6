//! The TOMs report from a real server: every measure once in every format and layout, signed,
//! statuses that follow the evidence, one tenant's report blind to another, and rights.

use serde_json::{json, Value};
use strongroom_compliance::report;
use strongroom_server::ServeOptions;
use strongroom_testkit::TestVault;

const DAY: i64 = 86_400_000;

/// A server without the background audit verification (which would add entries of its own).
async fn quiet() -> TestVault {
    TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    })
    .await
}

async fn raw(v: &TestVault, token: &str, query: &str) -> (u16, Vec<u8>) {
    let r = v
        .client
        .get(format!("{}/v1/compliance/toms{query}", v.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

async fn signed(v: &TestVault, token: &str, query: &str) -> (Vec<u8>, Value) {
    let (status, body) = raw(v, token, query).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json: Value = serde_json::from_slice(&body).unwrap();
    (body, json)
}

fn measure<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["report"]["measures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} missing"))
}

/// Asserts the status of measure `id` in a signed report, showing the measure otherwise.
fn assert_status(report: &Value, id: &str, status: &str) {
    let m = measure(report, id);
    assert_eq!(m["status"], status, "{m}");
}

/// Rows (versions) of one register, straight from the database.
fn entries(v: &TestVault, register: &str) -> i64 {
    v.sqlite()
        .query_row(
            "SELECT count(*) FROM register_entries WHERE register = ?1",
            [register],
            |r| r.get(0),
        )
        .unwrap()
}

/// A platform `compliance` key (no tenant), valid for a year: keeps the platform's registers.
async fn compliance_key(v: &TestVault) -> String {
    let r = v
        .post(
            "/v1/api-keys",
            &v.operator,
            None,
            json!({"name": "dpo", "roles": ["compliance"], "expires_in_days": 365}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["key"].as_str().unwrap().to_owned()
}

const IDS: [&str; 43] = [
    "AC-01", "AC-02", "AC-03", "AC-04", "AC-05", "AC-06", "AC-07", "AU-01", "AU-02", "AU-03",
    "AU-04", "AU-05", "AU-06", "AU-07", "SE-01", "SE-02", "SE-03", "EN-01", "EN-02", "EN-03",
    "PS-01", "PS-02", "IN-01", "IN-02", "IN-03", "IN-04", "TR-01", "TR-02", "AV-01", "AV-02",
    "AV-03", "AV-04", "AV-05", "AV-06", "OR-01", "OR-02", "OR-03", "OR-04", "OR-05", "OR-06",
    "OR-07", "OR-08", "OR-09",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_measure_appears_once_in_every_format_and_the_json_is_signed() {
    let v = quiet().await;
    let (bytes, json) = signed(&v, &v.operator, "").await;
    let ids: Vec<&str> = json["report"]["measures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, IDS);
    // No `met` without evidence.
    for m in json["report"]["measures"].as_array().unwrap() {
        if m["status"] == "met" {
            assert!(!m["evidence"].as_array().unwrap().is_empty(), "{}", m["id"]);
        }
        if m["status"] == "gap" || m["status"] == "partial" {
            assert!(!m["missing"].as_array().unwrap().is_empty(), "{}", m["id"]);
        }
    }
    let registers: Vec<&str> = json["report"]["registers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["register"].as_str().unwrap())
        .collect();
    for r in [
        "declarations",
        "incidents",
        "trainings",
        "subprocessors",
        "configuration history",
    ] {
        assert!(registers.contains(&r), "{r} summarised: {registers:?}");
    }
    // Signed by the audit key, and refused after any one-byte change.
    let key = strongroom_server::audit_tools::parse_public_key(
        v.get("/v1/audit/public-key", "", None).await.body["ed25519"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    report::verify(&bytes, &key).expect("the report verifies");
    for at in (0..bytes.len() - 1).step_by(bytes.len() / 97 + 1) {
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        assert!(
            report::verify(&bad, &key).is_err(),
            "byte {at} changed, still verifies"
        );
    }
    assert!(report::verify(&bytes, &[7; 32]).is_err(), "another key");
    // Markdown and HTML, both layouts: each id in full exactly once.
    for layout in ["art32", "scc"] {
        let (s, md) = raw(&v, &v.operator, &format!("?format=md&layout={layout}")).await;
        assert_eq!(s, 200);
        let md = String::from_utf8(md).unwrap();
        let (s, html) = raw(&v, &v.operator, &format!("?format=html&layout={layout}")).await;
        assert_eq!(s, 200);
        let html = String::from_utf8(html).unwrap();
        // The registers' summaries close every format.
        assert!(
            md.contains("## Registers\n") && md.contains("| subprocessors | in use | 0 |"),
            "{md}"
        );
        assert!(html.contains("<h2>Registers</h2>"));
        assert!(
            html.starts_with("<!doctype html>")
                && !html.contains("src=")
                && !html.contains("href=")
        );
        for id in IDS {
            assert_eq!(
                md.matches(&format!("### {id} ")).count(),
                1,
                "{layout} md {id}"
            );
            assert_eq!(
                html.matches(&format!("<h3>{id} ")).count(),
                1,
                "{layout} html {id}"
            );
        }
    }
    let (s, _) = raw(&v, &v.operator, "?format=pdf").await;
    assert_eq!(s, 400);
    let (s, _) = raw(&v, &v.operator, "?colour=red").await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_follow_the_evidence() {
    let v = quiet().await;
    let t = v.tenant("acme").await;
    let q = "?tenant=acme";
    // An administrator without MFA: AC-05 partial, naming the count.
    let (_, r) = signed(&v, &v.operator, q).await;
    assert_status(&r, "AC-05", "met");
    v.user(&t.admin, "ada", "correct horse battery staple", &["admin"])
        .await;
    let (_, r) = signed(&v, &v.operator, q).await;
    let ac05 = measure(&r, "AC-05");
    assert_eq!(ac05["status"], "partial", "{ac05}");
    assert!(
        ac05["missing"][0]
            .as_str()
            .unwrap()
            .contains("1 of 1 administrators without MFA"),
        "{ac05}"
    );
    // Never verified: IN-02 is a gap; verified: met; a week and a day later: stale.
    assert_status(&r, "IN-02", "gap");
    strongroom_server::audit_tools::verify_and_record(&v.running_vault())
        .await
        .unwrap();
    let (_, r) = signed(&v, &v.operator, q).await;
    assert_status(&r, "IN-02", "met");
    v.clock.advance_ms(8 * DAY);
    // (The bootstrap token has expired by now; the tenant's admin key lasts 30 days.)
    let (_, r) = signed(&v, &t.admin, "").await;
    let in02 = measure(&r, "IN-02");
    assert_eq!(in02["status"], "stale", "{in02}");
    assert!(
        in02["missing"][0].as_str().unwrap().contains("8 days old"),
        "{in02}"
    );
    // A lockout threshold above ten: AU-02 partial.
    let r = v
        .put(
            "/v1/settings/security",
            &t.admin,
            json!({"lockout_threshold": 50}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, r) = signed(&v, &t.admin, "").await;
    assert_status(&r, "AU-02", "partial");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_its_own_report_only() {
    let v = quiet().await;
    let (a, app) = v.scenario("acme").await;
    let b = v.tenant("globex").await;
    for name in ["u1", "u2", "u3"] {
        v.user(&b.admin, name, "correct horse battery staple", &["admin"])
            .await;
    }
    let (bytes, r) = signed(&v, &a.admin, "").await;
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(r["report"]["scope"], a.id.as_str());
    assert!(
        !text.contains(&b.id) && !text.contains("globex"),
        "another tenant shows"
    );
    assert_eq!(
        measure(&r, "AC-05")["evidence"][0]["value"],
        "0",
        "{}",
        measure(&r, "AC-05")
    );
    // Reading another tenant's report, or without the right, is refused.
    let (s, _) = raw(&v, &a.admin, &format!("?tenant={}", b.id)).await;
    assert_eq!(s, 403);
    let (s, _) = raw(&v, &app, "").await;
    assert_eq!(s, 403);
    let (s, _) = raw(&v, "", "").await;
    assert_eq!(s, 401);
    let (s, _) = raw(&v, &v.operator, "?tenant=nobody").await;
    assert_eq!(s, 404);
    // Every report asked for is in the audit log.
    let n: i64 = v
        .sqlite()
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'compliance.report'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Own report, the two refusals and the unknown tenant; the call without a credential is
    // refused before it reaches the report (and counted with other unknown tokens).
    assert_eq!(n, 4);
}

/// The declarations register: kept by the right roles, versioned, validated, and read by the
/// report — `declared` while in force, `stale` past its review date, a gap once withdrawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarations_are_versioned_and_move_the_report() {
    let v = quiet().await;
    let (a, app) = v.scenario("acme").await;
    let b = v.tenant("globex").await;
    let now = strongroom_testkit::START_MS;
    let post = |token: String, body: Value| {
        let req = v
            .client
            .post(format!("{}/v1/compliance/declarations", v.base))
            .bearer_auth(token)
            .json(&body);
        TestVault::finish(req)
    };
    let physical = json!({
        "measure": "OR-07", "statement": "Server rooms open by badge only; visits are logged.",
        "owner": "Head of facilities", "evidence_name": "access-policy.pdf",
        "evidence_sha256": "aa".repeat(32), "review_by": now + 365 * DAY
    });
    // Only keepers write; an application or an auditor cannot.
    let auditor = v.key(&a.admin, &["auditor"]).await;
    for token in [&app, &auditor] {
        let r = post(token.clone(), physical.clone()).await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    // Bad input changes nothing and says what is wrong.
    for (body, status, code) in [
        (
            json!({"measure": "XX-99", "statement": "s", "owner": "o", "review_by": now + DAY}),
            400,
            "invalid_request",
        ),
        (
            json!({"measure": "OR-07", "statement": "s", "review_by": now + DAY}),
            400,
            "invalid_request",
        ),
        (
            json!({"measure": "OR-07", "statement": "s", "owner": "o", "declared_at": now, "review_by": now - DAY}),
            422,
            "validation_failed",
        ),
        (
            json!({"measure": "OR-07", "statement": "   ", "owner": "o", "review_by": now + DAY}),
            422,
            "validation_failed",
        ),
    ] {
        let r = post(v.operator.clone(), body.clone()).await;
        assert_eq!((r.status, r.code()), (status, code), "{body}: {}", r.text);
    }
    assert_eq!(v.count("declarations"), 0);
    // The platform declares its physical security; acme declares its training.
    let r = post(v.operator.clone(), physical.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let platform_id = r.body["id"].as_str().unwrap().to_owned();
    let training = json!({"measure": "OR-01", "statement": "Yearly course for all staff.",
                          "owner": "HR", "review_by": now + 200 * DAY});
    let r = post(a.admin.clone(), training).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let acme_id = r.body["id"].as_str().unwrap().to_owned();
    // acme reads its own and the platform's; globex the platform's only.
    let list = v.get("/v1/compliance/declarations", &a.admin, None).await;
    assert_eq!(
        list.body["declarations"].as_array().unwrap().len(),
        2,
        "{}",
        list.text
    );
    let list = v.get("/v1/compliance/declarations", &b.admin, None).await;
    assert_eq!(
        list.body["declarations"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
    let (_, r) = signed(&v, &a.admin, "").await;
    assert_status(&r, "OR-07", "declared");
    assert_status(&r, "OR-01", "declared");
    let (_, r) = signed(&v, &b.admin, "").await;
    assert_status(&r, "OR-07", "declared");
    assert_eq!(
        measure(&r, "OR-01")["status"],
        "gap",
        "globex declared no training"
    );
    // A change is a new version against the one read; a stale one is refused.
    let change = |version: &str, token: String, body: Value| {
        let req = v
            .client
            .put(format!("{}/v1/compliance/declarations/{acme_id}", v.base))
            .bearer_auth(token)
            .header("If-Match", version)
            .json(&body);
        TestVault::finish(req)
    };
    let shorter = json!({"measure": "OR-01", "statement": "Yearly course for all staff.",
                         "owner": "HR", "review_by": now + 20 * DAY});
    let r = change("\"1\"", a.admin.clone(), shorter.clone()).await;
    assert_eq!(
        (r.status, r.body["version"].as_u64()),
        (200, Some(2)),
        "{}",
        r.text
    );
    let r = change("\"1\"", a.admin.clone(), shorter.clone()).await;
    assert_eq!((r.status, r.code()), (412, "precondition_failed"));
    // globex cannot touch acme's entry, nor a tenant the platform's.
    let r = change("\"2\"", b.admin.clone(), shorter.clone()).await;
    assert_eq!(r.status, 404, "{}", r.text);
    // Past its review date: stale (the admin key lasts 30 days).
    v.clock.advance_ms(21 * DAY);
    let (_, r) = signed(&v, &a.admin, "").await;
    let or01 = measure(&r, "OR-01");
    assert_eq!(or01["status"], "stale", "{or01}");
    // Withdrawn: a version too; the report no longer counts it.
    let r = TestVault::finish(
        v.client
            .post(format!(
                "{}/v1/compliance/declarations/{acme_id}/withdraw",
                v.base
            ))
            .bearer_auth(&a.admin)
            .header("If-Match", "\"2\""),
    )
    .await;
    assert_eq!(
        (r.status, r.body["withdrawn"].as_bool()),
        (200, Some(true)),
        "{}",
        r.text
    );
    let h = v
        .get(
            &format!("/v1/compliance/declarations/{acme_id}/history"),
            &a.admin,
            None,
        )
        .await;
    assert_eq!(
        h.body["declarations"].as_array().unwrap().len(),
        3,
        "{}",
        h.text
    );
    let (_, r) = signed(&v, &a.admin, "").await;
    assert_status(&r, "OR-01", "gap");
    assert_eq!(v.count("declarations"), 4);
    let _ = platform_id;
    v.assert_audit_verifies().await;
}

/// The incident register: kept by the platform, seen by the tenants it concerns, with clocks
/// that turn overdue, raise alerts and move OR-03.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_clocks_run_from_awareness() {
    let v = TestVault::start().await;
    let a = v.tenant("acme").await;
    let b = v.tenant("globex").await;
    // A platform compliance key (no tenant): keeps the platform's registers.
    let dpo = compliance_key(&v).await;
    let now = strongroom_testkit::START_MS;
    let breach = json!({
        "title": "Lost laptop of a support engineer", "category": "confidentiality",
        "detected_at": now - 3_600_000, "aware_at": now, "personal_data_breach": true,
        "risk": "risk", "affected_tenants": [a.id], "data_categories": ["contact data"],
        "people_approx": 120, "records_approx": 300, "actions": "Disk encrypted; remote wipe sent."
    });
    // Only the platform keeps it; bad input changes nothing.
    let r = v
        .post("/v1/compliance/incidents", &a.admin, None, breach.clone())
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    for (patch, status) in [
        (json!({"aware_at": now - 7_200_000}), 422),
        (
            json!({"affected_tenants": ["ten_00000000000000000000000000000000"]}),
            422,
        ),
        (json!({"category": "mood"}), 400),
        (json!({"title": ""}), 400),
        (json!({"authority_notified_at": now - 10}), 422),
    ] {
        let mut body = breach.clone();
        for (k, val) in patch.as_object().unwrap() {
            body[k] = val.clone();
        }
        let r = v.post("/v1/compliance/incidents", &dpo, None, body).await;
        assert_eq!(r.status, status, "{patch}: {}", r.text);
    }
    assert_eq!(entries(&v, "incidents"), 0);
    let r = v
        .post("/v1/compliance/incidents", &dpo, None, breach.clone())
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let duties: Vec<&str> = r.body["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["duty"].as_str().unwrap())
        .collect();
    assert_eq!(duties, ["controllers", "authority"]);
    // acme sees it; globex does not.
    let seen = v.get("/v1/compliance/incidents", &a.admin, None).await;
    assert_eq!(
        seen.body["incidents"].as_array().unwrap().len(),
        1,
        "{}",
        seen.text
    );
    let seen = v.get("/v1/compliance/incidents", &b.admin, None).await;
    assert_eq!(seen.body["incidents"].as_array().unwrap().len(), 0);
    let (_, r) = signed(&v, &a.admin, "").await;
    assert_status(&r, "OR-03", "met");
    // 25 hours later the controllers should have heard; 73 hours later the authority.
    v.clock.advance_ms(25 * 3_600_000);
    let (_, r) = signed(&v, &a.admin, "").await;
    let or03 = measure(&r, "OR-03");
    assert_eq!(or03["status"], "partial", "{or03}");
    assert!(
        or03["missing"][0]
            .as_str()
            .unwrap()
            .contains("controllers overdue"),
        "{or03}"
    );
    v.clock.advance_ms(48 * 3_600_000);
    let alerts = v.get("/v1/compliance/alerts", &dpo, None).await;
    let kinds: Vec<&str> = alerts.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["what"].as_str().unwrap())
        .collect();
    assert!(
        kinds.iter().any(|k| k.contains("authority")),
        "{}",
        alerts.text
    );
    // The server raises each alert once, into the platform log (and so the SIEM stream).
    let mut raised = 0;
    for _ in 0..50 {
        raised = v
            .sqlite()
            .query_row(
                "SELECT count(*) FROM audit WHERE log = 'platform' AND action = 'compliance.alert'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap();
        if raised >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(raised, 2, "one alert per overdue notification");
    // Notified (late): a new version against the one read; the clocks stop, marked late.
    let mut done = breach.clone();
    done["controllers_notified_at"] = json!(now + 30 * 3_600_000);
    done["authority_notified_at"] = json!(now + 73 * 3_600_000);
    let stale = v
        .client
        .put(format!("{}/v1/compliance/incidents/{id}", v.base))
        .bearer_auth(&dpo)
        .header("If-Match", "\"7\"")
        .json(&done);
    assert_eq!(TestVault::finish(stale).await.status, 412);
    let r = TestVault::finish(
        v.client
            .put(format!("{}/v1/compliance/incidents/{id}", v.base))
            .bearer_auth(&dpo)
            .header("If-Match", "\"1\"")
            .json(&done),
    )
    .await;
    assert_eq!(
        (r.status, r.body["version"].as_u64()),
        (200, Some(2)),
        "{}",
        r.text
    );
    assert!(r.body["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["late"] == true && c["overdue"] == false));
    let (_, r) = signed(&v, &a.admin, "").await;
    assert_status(&r, "OR-03", "met");
    assert_eq!(entries(&v, "incidents"), 2);
}

/// The training register: a tenant's and the platform's records move OR-01; one that has run
/// out is overdue, in the alerts and in the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainings_run_out_after_their_validity() {
    let v = quiet().await;
    let (a, app) = v.scenario("acme").await;
    let now = strongroom_testkit::START_MS;
    let (_, r) = signed(&v, &a.admin, "").await;
    assert_status(&r, "OR-01", "gap");
    let course = |person: &str, valid_days: i64| {
        json!({"person": person, "course": "Data protection basics",
               "completed_at": now - DAY, "valid_until": now + valid_days * DAY})
    };
    let r = v
        .post("/v1/compliance/trainings", &app, None, course("Ada", 20))
        .await;
    assert_eq!(r.status, 403, "an application keeps no register");
    for (body, status) in [
        (
            json!({"person": "", "course": "c", "completed_at": now}),
            400,
        ),
        (
            json!({"person": "Ada", "course": "c", "completed_at": now + DAY}),
            422,
        ),
        (
            json!({"person": "Ada", "course": "c", "completed_at": now, "valid_until": now - 1}),
            422,
        ),
    ] {
        let r = v
            .post("/v1/compliance/trainings", &a.admin, None, body.clone())
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    assert_eq!(entries(&v, "trainings"), 0);
    let r = v
        .post(
            "/v1/compliance/trainings",
            &a.admin,
            None,
            course("Ada", 20),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = v
        .post(
            "/v1/compliance/trainings",
            &a.admin,
            None,
            course("Grace", 5),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (_, r) = signed(&v, &a.admin, "").await;
    assert_status(&r, "OR-01", "met");
    v.clock.advance_ms(6 * DAY);
    let (_, r) = signed(&v, &a.admin, "").await;
    let or01 = measure(&r, "OR-01");
    assert_eq!(or01["status"], "partial", "{or01}");
    assert!(
        or01["missing"][0].as_str().unwrap().contains("1 of 2"),
        "{or01}"
    );
    let alerts = v.get("/v1/compliance/alerts", &a.admin, None).await;
    assert_eq!(
        alerts.body["alerts"][0]["kind"], "training_overdue",
        "{}",
        alerts.text
    );
    let list = v.get("/v1/compliance/trainings", &a.admin, None).await;
    let overdue: Vec<bool> = list.body["trainings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["overdue"].as_bool().unwrap())
        .collect();
    assert_eq!(overdue.iter().filter(|o| **o).count(), 1, "{}", list.text);
}

/// The subprocessor register: validated, announced to every tenant with an objection window,
/// objections once per version and only while the window is open, and OR-02 / TR-02 follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprocessors_are_announced_and_objected_to() {
    let v = quiet().await;
    let (a, app) = v.scenario("acme").await;
    let b = v.tenant("globex").await;
    let dpo = compliance_key(&v).await;
    let now = strongroom_testkit::START_MS;
    let (_, r) = signed(&v, &a.admin, "").await;
    assert_status(&r, "OR-02", "gap");
    assert_status(&r, "TR-02", "gap");
    let mailer = json!({"name": "Mailer Inc.", "service": "e-mail delivery",
        "data_categories": ["e-mail address"], "country": "US", "safeguard": "none",
        "next_evaluation_by": now + 200 * DAY, "objection_days": 14});
    let r = v
        .post("/v1/compliance/subprocessors", &app, None, mailer.clone())
        .await;
    assert_eq!(r.status, 403, "an application keeps no register");
    let bad = |k: &str, val: Value| {
        let mut b = mailer.clone();
        b[k] = val;
        b
    };
    for (body, status) in [
        (bad("country", json!("XX")), 400),
        (bad("country", json!("de")), 400),
        (bad("country", json!("UK")), 400),
        (bad("name", json!("")), 400),
        (bad("safeguard", json!("trust_us")), 400),
        (bad("objection_days", json!(91)), 400),
        (bad("dpa_signed_at", json!(now + DAY)), 422),
        (bad("last_evaluated_at", json!(now + 300 * DAY)), 422),
        (bad("next_evaluation_by", json!(now + 4 * 365 * DAY)), 422),
        (bad("unknown", json!(1)), 400),
    ] {
        let r = v
            .post(
                "/v1/compliance/subprocessors",
                &v.operator,
                None,
                body.clone(),
            )
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    let mut evaluated_later = mailer.clone();
    evaluated_later["last_evaluated_at"] = json!(now);
    evaluated_later["next_evaluation_by"] = json!(now - DAY);
    let r = v
        .post(
            "/v1/compliance/subprocessors",
            &v.operator,
            None,
            evaluated_later,
        )
        .await;
    assert_eq!(r.status, 422, "next evaluation before the last: {}", r.text);
    assert_eq!(entries(&v, "subprocessors"), 0, "bad input changed nothing");

    let r = v
        .post(
            "/v1/compliance/subprocessors",
            &v.operator,
            None,
            mailer.clone(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["transfer"], true);
    assert_eq!(r.body["objection_until"], json!(now + 14 * DAY));
    // Every tenant is told, in its own audit log and in its alert feed.
    for t in [&a.admin, &b.admin] {
        let log = v
            .get("/v1/audit/entries?action=subprocessor.notice", t, None)
            .await;
        assert_eq!(log.status, 200, "{}", log.text);
        let entries = log.body["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{}", log.text);
        assert!(
            entries[0]["objects"].to_string().contains(&id),
            "{}",
            log.text
        );
        let alerts = v.get("/v1/compliance/alerts", t, None).await;
        assert!(
            alerts.body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["kind"] == "subprocessor_change" && x["entry"] == id.as_str()),
            "{}",
            alerts.text
        );
    }
    // TR-02: a transfer to the US without a safeguard; OR-02: never evaluated, no DPA.
    let (_, r) = signed(&v, &a.admin, "").await;
    let tr02 = measure(&r, "TR-02");
    assert_eq!(tr02["status"], "partial", "{tr02}");
    assert!(
        tr02["missing"][0]
            .as_str()
            .unwrap()
            .contains("1 of 1 transfers"),
        "{tr02}"
    );
    let or02 = measure(&r, "OR-02");
    assert_eq!(or02["status"], "partial", "{or02}");
    assert!(or02.to_string().contains("never evaluated"), "{or02}");

    // Objections: the right version, once, by a keeper, inside the window.
    let objection = |version: u32| json!({"version": version, "reason": "no transfers to the US"});
    let path = format!("/v1/compliance/subprocessors/{id}/objections");
    assert_eq!(v.post(&path, &app, None, objection(1)).await.status, 403);
    assert_eq!(
        v.post(&path, &v.operator, None, objection(1)).await.status,
        403
    );
    let r = v.post(&path, &a.admin, None, objection(2)).await;
    assert_eq!(r.status, 412, "{}", r.text);
    let r = v
        .post(&path, &a.admin, None, json!({"version": 1, "reason": "  "}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = v
        .post(
            "/v1/compliance/subprocessors/spr_00000000000000000000000000000000/objections",
            &a.admin,
            None,
            objection(1),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = v.post(&path, &a.admin, None, objection(1)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = v.post(&path, &a.admin, None, objection(1)).await;
    assert_eq!(r.status, 409, "once per version: {}", r.text);
    let list = v.get("/v1/compliance/objections", &v.operator, None).await;
    assert_eq!(
        list.body["objections"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
    let list = v.get("/v1/compliance/objections", &b.admin, None).await;
    assert_eq!(
        list.body["objections"].as_array().unwrap().len(),
        0,
        "a tenant sees only its own objections: {}",
        list.text
    );
    let seen = v
        .get("/v1/compliance/subprocessors", &v.operator, None)
        .await;
    assert_eq!(
        seen.body["subprocessors"][0]["objections"], 1,
        "{}",
        seen.text
    );
    v.clock.advance_ms(15 * DAY);
    let r = v.post(&path, &b.admin, None, objection(1)).await;
    assert_eq!(r.status, 422, "the window has closed: {}", r.text);

    // A change (safeguard added, evaluated) is a new version against If-Match, announced again.
    let mut fixed = mailer.clone();
    fixed["safeguard"] = json!("scc");
    fixed["dpa_signed_at"] = json!(now);
    fixed["last_evaluated_at"] = json!(now + 15 * DAY);
    fixed["next_evaluation_by"] = json!(now + 100 * DAY);
    let put = |version: &str| {
        v.client
            .put(format!("{}/v1/compliance/subprocessors/{id}", v.base))
            .bearer_auth(&dpo)
            .header("If-Match", version.to_owned())
            .json(&fixed)
    };
    assert_eq!(TestVault::finish(put("\"7\"")).await.status, 412);
    let r = TestVault::finish(put("\"1\"")).await;
    assert_eq!(
        (r.status, r.body["version"].as_u64()),
        (200, Some(2)),
        "{}",
        r.text
    );
    let log = v
        .get(
            "/v1/audit/entries?action=subprocessor.notice",
            &b.admin,
            None,
        )
        .await;
    assert_eq!(
        log.body["entries"].as_array().unwrap().len(),
        2,
        "{}",
        log.text
    );
    let (_, r) = signed(&v, &a.admin, "").await;
    assert_status(&r, "TR-02", "met");
    assert_status(&r, "OR-02", "met");
    // A tenant keeps its own register too, and another tenant does not see it.
    let mut own = mailer.clone();
    own["country"] = json!("DE");
    own["name"] = json!("Acme's own host");
    let r = v
        .post("/v1/compliance/subprocessors", &a.admin, None, own)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mine = v.get("/v1/compliance/subprocessors", &a.admin, None).await;
    assert_eq!(
        mine.body["subprocessors"].as_array().unwrap().len(),
        2,
        "{}",
        mine.text
    );
    let theirs = v.get("/v1/compliance/subprocessors", &b.admin, None).await;
    assert_eq!(
        theirs.body["subprocessors"].as_array().unwrap().len(),
        1,
        "{}",
        theirs.text
    );
    assert!(!theirs.text.contains("Acme's own host"));
    // Past its next evaluation date: overdue, in the alerts, OR-02 partial.
    v.clock.advance_ms(90 * DAY);
    let alerts = v.get("/v1/compliance/alerts", &dpo, None).await;
    assert!(
        alerts.text.contains("evaluation_overdue"),
        "{}",
        alerts.text
    );
    let (_, r) = signed(&v, &dpo, "").await;
    assert_status(&r, "OR-02", "partial");
}

/// Writes a RustSec-style advisory database with one advisory per `(id, package, patched)`.
fn advisory_db(dir: &std::path::Path, date: &str, advisories: &[(&str, &str, &str)]) {
    for (id, package, patched) in advisories {
        let p = dir.join("crates").join(package);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(
            p.join(format!("{id}.md")),
            format!(
                "```toml\n[advisory]\nid = \"{id}\"\npackage = \"{package}\"\ndate = \"{date}\"\n\
                 [versions]\npatched = [\"{patched}\"]\n```\n\n# Flaw in {package}\n"
            ),
        )
        .unwrap();
    }
}

/// OR-09: the version report lists the dependencies; given an advisory database, the
/// advisories that affect them turn OR-09 partial by name, and an old copy turns it stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_advisories_move_the_version_measure() {
    let now = strongroom_testkit::START_MS;
    let recent = strongroom_compliance::render::date(now - 10 * DAY);
    // Without a database: the dependencies are listed, the advisories are not checked.
    let v = quiet().await;
    let (_, r) = signed(&v, &v.operator, "").await;
    let or09 = measure(&r, "OR-09");
    assert_eq!(or09["status"], "partial", "{or09}");
    assert!(
        or09["missing"][0]
            .as_str()
            .unwrap()
            .contains("--advisory-db"),
        "{or09}"
    );
    let t = v.tenant("acme").await;
    let r = v.get("/v1/compliance/versions", &t.admin, None).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = v.get("/v1/compliance/versions", &v.operator, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["dependencies"].as_array().unwrap().len() > 100);
    assert!(r.body["advisories"].is_null());
    drop(v);

    let db = tempfile::tempdir().unwrap();
    advisory_db(
        db.path(),
        &recent,
        &[
            ("RUSTSEC-2026-9001", "tokio", ">= 99.0.0"),
            ("RUSTSEC-2026-9002", "serde", ">= 1.0.0"),
        ],
    );
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        advisory_db: Some(db.path().to_owned()),
        ..ServeOptions::default()
    })
    .await;
    let (_, r) = signed(&v, &v.operator, "").await;
    let or09 = measure(&r, "OR-09");
    assert_eq!(or09["status"], "partial", "{or09}");
    assert!(
        or09["missing"][0]
            .as_str()
            .unwrap()
            .contains("RUSTSEC-2026-9001"),
        "{or09}"
    );
    assert!(
        !or09.to_string().contains("RUSTSEC-2026-9002"),
        "patched: {or09}"
    );
    let r = v
        .get("/v1/compliance/versions?format=json", &v.operator, None)
        .await;
    assert_eq!(
        r.body["advisories"]["affecting"][0]["package"], "tokio",
        "{}",
        r.text
    );
    let r = v
        .get("/v1/compliance/versions?format=md", &v.operator, None)
        .await;
    assert!(
        r.text.contains("| RUSTSEC-2026-9001 | tokio |"),
        "{}",
        r.text
    );
    let r = v
        .get("/v1/compliance/versions?format=pdf", &v.operator, None)
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    drop(v);

    // The dependency is patched (the advisory names a fix we already have): met; a month
    // without a newer advisory in the copy: stale.
    let db = tempfile::tempdir().unwrap();
    advisory_db(
        db.path(),
        &recent,
        &[("RUSTSEC-2026-9003", "tokio", ">= 1.0.0")],
    );
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        advisory_db: Some(db.path().to_owned()),
        ..ServeOptions::default()
    })
    .await;
    let (_, r) = signed(&v, &v.operator, "").await;
    assert_status(&r, "OR-09", "met");
    let dpo = compliance_key(&v).await;
    v.clock.advance_ms(25 * DAY);
    let (_, r) = signed(&v, &dpo, "").await;
    assert_status(&r, "OR-09", "stale");
}

/// OR-05: the records of processing are derived per tenant from its definitions and the
/// registers, exported as JSON, CSV and Markdown, show nothing of another tenant, and carry
/// the free-text fields that the vault cannot know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_processing_are_derived_per_tenant() {
    let v = quiet().await;
    let (a, app) = v.scenario("acme").await;
    let b = v.tenant("globex").await;
    let r = v
        .put(
            "/v1/collections/secret_projects",
            &b.admin,
            json!({"purposes": ["research"], "fields": [
                {"name": "codename", "type": "string", "classification": "personal"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let now = strongroom_testkit::START_MS;
    let sub = json!({"name": "=HYPERLINK(\"http://evil\")", "service": "hosting",
        "country": "US", "safeguard": "scc", "next_evaluation_by": now + 100 * DAY});
    let r = v
        .post("/v1/compliance/subprocessors", &v.operator, None, sub)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let ropa = v.get("/v1/compliance/ropa", &a.admin, None).await;
    assert_eq!(ropa.status, 200, "{}", ropa.text);
    let act = &ropa.body["activities"][0];
    assert_eq!(act["collection"], "people", "{}", ropa.text);
    assert_eq!(act["purposes"], json!(["support", "marketing", "billing"]));
    assert_eq!(act["special_categories"], true, "notes is Art. 9");
    assert_eq!(act["recipients"][0]["role"], "support_agent");
    assert_eq!(act["recipients"][0]["api_keys"], 1);
    assert_eq!(ropa.body["subprocessors"][0]["transfer"], true);
    assert!(!ropa.text.contains("secret_projects") && !ropa.text.contains(&b.id));

    let csv = v
        .get("/v1/compliance/ropa?format=csv", &a.admin, None)
        .await;
    let lines: Vec<&str> = csv.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "a header and one activity: {}", csv.text);
    assert!(lines[1].contains("notes"), "{}", csv.text);
    assert!(
        csv.text.contains("\"'=HYPERLINK(") && !csv.text.contains("\"=HYPERLINK"),
        "a formula is defused: {}",
        csv.text
    );
    let md = v.get("/v1/compliance/ropa?format=md", &a.admin, None).await;
    assert!(md.text.contains("special category, Art. 9"), "{}", md.text);

    // Who may read which: an application no; an operator naming a tenant yes, without one no;
    // another tenant's admin not acme's.
    assert_eq!(v.get("/v1/compliance/ropa", &app, None).await.status, 403);
    assert_eq!(
        v.get("/v1/compliance/ropa", &v.operator, None).await.status,
        422
    );
    let r = v
        .get(
            &format!("/v1/compliance/ropa?tenant={}", a.id),
            &v.operator,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = v
        .get(
            &format!("/v1/compliance/ropa?tenant={}", a.id),
            &b.admin,
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        v.get("/v1/compliance/ropa?format=xls", &a.admin, None)
            .await
            .status,
        400
    );

    // OR-05 partial until the names and contacts are set; fields are versioned.
    let (_, rep) = signed(&v, &a.admin, "").await;
    assert_status(&rep, "OR-05", "partial");
    let fields = |f: Value| json!({ "fields": f });
    for bad in [
        fields(json!({"": "x"})),
        fields(json!({"DPO": "a\u{0007}b"})),
        fields(json!({"DPO": "x".repeat(4001)})),
    ] {
        let r = v.put("/v1/compliance/ropa/fields", &a.admin, bad).await;
        assert_eq!(r.status, 422, "{}", r.text);
    }
    assert_eq!(
        v.put(
            "/v1/compliance/ropa/fields",
            &app,
            fields(json!({"DPO": "x"}))
        )
        .await
        .status,
        403
    );
    let r = v
        .put(
            "/v1/compliance/ropa/fields",
            &a.admin,
            fields(json!({"Controller": "Acme GmbH, Berlin", "DPO": "dpo@acme.example"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["version"].as_u64()),
        (200, Some(1)),
        "{}",
        r.text
    );
    let stale = v
        .client
        .put(format!("{}/v1/compliance/ropa/fields", v.base))
        .bearer_auth(&a.admin)
        .header("If-Match", "\"0\"")
        .json(&fields(json!({"DPO": ""})));
    assert_eq!(TestVault::finish(stale).await.status, 412);
    let r = v
        .put(
            "/v1/compliance/ropa/fields",
            &v.operator,
            fields(json!({"Processor": "Strongroom Hosting, Paris"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ropa = v.get("/v1/compliance/ropa", &a.admin, None).await;
    assert_eq!(
        ropa.body["fields"]["Processor"],
        "Strongroom Hosting, Paris"
    );
    assert_eq!(ropa.body["fields"]["DPO"], "dpo@acme.example");
    let theirs = v.get("/v1/compliance/ropa", &b.admin, None).await;
    assert!(
        theirs.body["fields"].get("DPO").is_none(),
        "{}",
        theirs.text
    );
    let (_, rep) = signed(&v, &a.admin, "").await;
    assert_status(&rep, "OR-05", "met");
}

async fn config_history(v: &TestVault, token: &str, query: &str) -> Vec<Value> {
    let r = v
        .get(&format!("/v1/config/history{query}"), token, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["changes"].as_array().unwrap().clone()
}

/// AV-06: every change of a collection, role, settings or tenant is kept as a version with who,
/// when and a diff, in the same unit as the change (a refused change leaves none); the server's
/// configuration is recorded at start-up when it changed; each scope sees only its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_changes_are_versioned_with_a_diff() {
    let mut v = quiet().await;
    let server = config_history(&v, &v.operator, "?kind=server").await;
    assert_eq!(server.len(), 1, "{server:?}");
    assert_eq!(server[0]["recorded_by"], "system");
    assert_eq!(server[0]["state"]["store"], "sqlite");
    let text = serde_json::to_string(&server).unwrap();
    assert!(
        !text.contains(&v.operator),
        "no secret in the recorded configuration"
    );

    let (a, app) = v.scenario("acme").await;
    let b = v.tenant("globex").await;
    let tenants = config_history(&v, &v.operator, "?kind=tenant").await;
    assert_eq!(tenants.len(), 2, "{tenants:?}");
    // Change the collection: a field added, against its version.
    let mut schema = strongroom_testkit::people_schema();
    schema["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "nickname", "type": "string", "classification": "personal"}));
    let r = v
        .put("/v1/collections/people", &a.admin, schema.clone())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Refused changes leave no trace: an incompatible schema, and a stale If-Match.
    let mut incompatible = schema.clone();
    incompatible["fields"][0]["type"] = json!("bool");
    let r = v
        .put("/v1/collections/people", &a.admin, incompatible)
        .await;
    assert!(r.status >= 400, "{}", r.text);
    let stale = v
        .client
        .put(format!("{}/v1/collections/people", v.base))
        .bearer_auth(&a.admin)
        .header("If-Match", "\"1\"")
        .json(&schema);
    assert_eq!(TestVault::finish(stale).await.status, 412);
    let people = config_history(&v, &a.admin, "?kind=collection&name=people").await;
    assert_eq!(people.len(), 2, "{people:?}");
    assert_eq!(people[1]["version"], 2);
    assert_eq!(people[1]["recorded_by"], people[0]["recorded_by"]);
    let diff = &people[1]["diff"];
    assert_eq!(diff.as_array().unwrap().len(), 1, "{diff}");
    assert_eq!(diff[0]["op"], "add", "{diff}");
    assert_eq!(diff[0]["path"], "/fields/6", "{diff}");
    assert_eq!(diff[0]["value"]["name"], "nickname", "{diff}");
    // Roles and settings too.
    let roles = config_history(&v, &a.admin, "?kind=role").await;
    assert_eq!(roles.len(), 1, "{roles:?}");
    let r = v
        .put(
            "/v1/settings/security",
            &a.admin,
            json!({"lockout_threshold": 7}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let settings = config_history(&v, &a.admin, "?kind=settings").await;
    assert_eq!(settings.len(), 1, "{settings:?}");
    assert!(
        settings[0]["diff"].to_string().contains('7'),
        "{settings:?}"
    );

    // Each scope its own: globex sees none of acme's; an app and another tenant's admin are
    // refused acme's; an operator reads it by naming the tenant.
    assert!(config_history(&v, &b.admin, "").await.is_empty());
    assert_eq!(v.get("/v1/config/history", &app, None).await.status, 403);
    let r = v
        .get(
            &format!("/v1/config/history?tenant={}", a.id),
            &b.admin,
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let seen = config_history(&v, &v.operator, &format!("?tenant={}", a.id)).await;
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(
        v.get("/v1/config/history?kind=secrets", &a.admin, None)
            .await
            .status,
        400
    );
    let (_, r) = signed(&v, &a.admin, "").await;
    assert_status(&r, "AV-06", "met");

    // The same configuration at the next start: nothing new; a changed one: a version whose
    // diff names the setting.
    v.stop().await;
    let mut v = v
        .restart_with(ServeOptions {
            audit_verify_every: None,
            ..ServeOptions::default()
        })
        .await;
    assert_eq!(
        config_history(&v, &v.operator, "?kind=server").await.len(),
        1
    );
    v.stop().await;
    let v = v
        .restart_with(ServeOptions {
            audit_verify_every: None,
            max_connections: 77,
            ..ServeOptions::default()
        })
        .await;
    let server = config_history(&v, &v.operator, "?kind=server").await;
    assert_eq!(server.len(), 2, "{server:?}");
    assert_eq!(
        server[1]["diff"],
        json!([{"op": "replace", "path": "/max_connections", "value": 77}])
    );
}

/// Register text is encrypted at rest and bound to its row: no statement, owner or person's
/// name is in the database files, and an edit of any column of a register row — or moving a
/// row to another scope or register — makes it fail to open (an integrity error), never read
/// as something else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_rows_are_sealed_and_bound_to_every_column() {
    let v = quiet().await;
    let a = v.tenant("acme").await;
    let b = v.tenant("globex").await;
    let now = strongroom_testkit::START_MS;
    let r = v
        .post(
            "/v1/compliance/declarations",
            &a.admin,
            None,
            json!({"measure": "OR-07", "statement": "MARKER-STATEMENT locked server room",
                   "owner": "MARKER-OWNER", "evidence_name": "MARKER-EVIDENCE.pdf",
                   "evidence_sha256": "ab".repeat(32), "review_by": now + 100 * DAY}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = v
        .post(
            "/v1/compliance/trainings",
            &a.admin,
            None,
            json!({"person": "MARKER-PERSON", "course": "Security basics", "completed_at": now}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    for (path, bytes) in v.scan_files() {
        for marker in [
            "MARKER-STATEMENT",
            "MARKER-OWNER",
            "MARKER-EVIDENCE",
            "MARKER-PERSON",
        ] {
            assert!(
                !strongroom_testkit::contains(&bytes, marker.as_bytes()),
                "{marker} in {}",
                path.display()
            );
        }
    }
    let ok = |path: &'static str, token: String| {
        let v = &v;
        async move {
            let r = v.get(path, &token, None).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r
        }
    };
    let list = ok("/v1/compliance/trainings", a.admin.clone()).await;
    assert_eq!(
        list.body["trainings"][0]["training"]["person"],
        "MARKER-PERSON"
    );
    let list = ok("/v1/compliance/declarations", a.admin.clone()).await;
    assert_eq!(list.body["declarations"][0]["owner"], "MARKER-OWNER");

    // Each column of the training's row, edited in place: reading fails as an integrity error.
    let db = v.sqlite();
    let edits: [(&str, &str); 7] = [
        ("id", "'trn_00000000000000000000000000000000'"),
        ("version", "version + 1"),
        ("recorded_by", "'api_key:forged'"),
        ("recorded_at", "recorded_at + 1"),
        ("body", "replace(body, 'enc1:A', 'enc1:B')"),
        ("tenant", "NULL"),
        ("register", "'subprocessors'"),
    ];
    for (column, value) in edits {
        let before: String = db
            .query_row(
                &format!("SELECT CAST({column} AS TEXT) FROM register_entries WHERE register = 'trainings' OR (register = 'subprocessors' AND id LIKE 'trn_%')"),
                [],
                |r| r.get::<_, Option<String>>(0),
            )
            .unwrap()
            .unwrap_or_default();
        let n = db
            .execute(
                &format!(
                    "UPDATE register_entries SET {column} = {value} WHERE register = 'trainings'"
                ),
                [],
            )
            .unwrap();
        assert_eq!(n, 1, "{column}");
        // Where the row now lies, it does not open.
        let (path, token) = match column {
            "tenant" => ("/v1/compliance/trainings", v.operator.clone()),
            "register" => ("/v1/compliance/subprocessors", a.admin.clone()),
            _ => ("/v1/compliance/trainings", a.admin.clone()),
        };
        let r = v.get(path, &token, None).await;
        assert_eq!(
            (r.status, r.code()),
            (500, "integrity_error"),
            "{column} edited: {}",
            r.text
        );
        let restore = match column {
            "tenant" => format!("UPDATE register_entries SET tenant = '{}' WHERE id LIKE 'trn_%'", a.id),
            "register" => "UPDATE register_entries SET register = 'trainings' WHERE id LIKE 'trn_%'".to_owned(),
            "version" => "UPDATE register_entries SET version = version - 1 WHERE register = 'trainings'".to_owned(),
            "recorded_at" => "UPDATE register_entries SET recorded_at = recorded_at - 1 WHERE register = 'trainings'".to_owned(),
            _ => format!("UPDATE register_entries SET {column} = '{before}' WHERE id LIKE 'trn_%' OR register = 'trainings'"),
        };
        db.execute(&restore, []).unwrap();
        ok("/v1/compliance/trainings", a.admin.clone()).await;
    }
    // Moved to another tenant: that tenant's list fails rather than show it.
    db.execute(
        &format!(
            "UPDATE register_entries SET tenant = '{}' WHERE register = 'trainings'",
            b.id
        ),
        [],
    )
    .unwrap();
    let r = v.get("/v1/compliance/trainings", &b.admin, None).await;
    assert_eq!(r.code(), "integrity_error", "{}", r.text);
    db.execute(
        &format!(
            "UPDATE register_entries SET tenant = '{}' WHERE register = 'trainings'",
            a.id
        ),
        [],
    )
    .unwrap();

    // Every column of the declaration's row.
    for (column, value, undo) in [
        ("id", "'dcl_00000000000000000000000000000000'", None),
        ("version", "version + 1", Some("version - 1")),
        ("tenant", "NULL", None),
        ("measure", "'OR-01'", None),
        ("statement", "replace(statement, 'enc1:A', 'enc1:B')", None),
        ("owner", "replace(owner, 'enc1:A', 'enc1:B')", None),
        ("evidence_name", "NULL", None),
        ("evidence_sha256", "zeroblob(32)", None),
        ("declared_at", "declared_at + 1", Some("declared_at - 1")),
        (
            "review_by",
            "review_by + 86400000",
            Some("review_by - 86400000"),
        ),
        ("withdrawn", "1", Some("0")),
        ("recorded_by", "'api_key:forged'", None),
        ("recorded_at", "recorded_at + 1", Some("recorded_at - 1")),
    ] {
        let saved: rusqlite::types::Value = db
            .query_row(&format!("SELECT {column} FROM declarations"), [], |r| {
                r.get(0)
            })
            .unwrap();
        db.execute(&format!("UPDATE declarations SET {column} = {value}"), [])
            .unwrap();
        let token = if column == "tenant" {
            v.operator.clone()
        } else {
            a.admin.clone()
        };
        let r = v.get("/v1/compliance/declarations", &token, None).await;
        assert_eq!(
            (r.status, r.code()),
            (500, "integrity_error"),
            "{column} edited: {}",
            r.text
        );
        match undo {
            Some(u) => db.execute(&format!("UPDATE declarations SET {column} = {u}"), []),
            None => db.execute(&format!("UPDATE declarations SET {column} = ?1"), [saved]),
        }
        .unwrap();
        ok("/v1/compliance/declarations", a.admin.clone()).await;
    }
}

/// The `compliance.alert` entries of a log, once there are `expected` (or after 6 s).
async fn alerts_in(v: &TestVault, log: &str, expected: i64) -> i64 {
    let mut n = 0;
    for _ in 0..60 {
        n = v
            .sqlite()
            .query_row(
                "SELECT count(*) FROM audit WHERE log = ?1 AND action = 'compliance.alert'",
                [log],
                |r| r.get::<_, i64>(0),
            )
            .unwrap();
        if n >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    n
}

/// Compliance alerts in the audit log of a tenant's own overdue items, from the background
/// check (on the vault's clock), raised once — also across a restart — and not into the
/// platform's log nor another tenant's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_reach_the_tenant_once_even_across_restarts() {
    let mut v = TestVault::start().await;
    let a = v.tenant("acme").await;
    let b = v.tenant("globex").await;
    let now = strongroom_testkit::START_MS;
    let training = |person: &str, days: i64| {
        json!({"person": person, "course": "Security basics", "completed_at": now - DAY,
               "valid_until": now + days * DAY})
    };
    let r = v
        .post(
            "/v1/compliance/trainings",
            &a.admin,
            None,
            training("Ada", 1),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    v.clock.advance_ms(2 * DAY);
    assert_eq!(alerts_in(&v, &a.id, 1).await, 1, "acme is reminded");
    // Give the check a few more rounds: still one.
    v.clock.advance_ms(120_000);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(alerts_in(&v, &a.id, 0).await, 1, "once");
    assert_eq!(
        alerts_in(&v, "platform", 0).await,
        0,
        "not the platform's item"
    );
    assert_eq!(alerts_in(&v, &b.id, 0).await, 0, "not globex's item");
    let entry: String = v
        .sqlite()
        .query_row(
            "SELECT body FROM audit WHERE log = ?1 AND action = 'compliance.alert'",
            [&a.id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        entry.contains("training_overdue") && !entry.contains("Ada"),
        "{entry}"
    );
    // A restart remembers what was raised.
    v.stop().await;
    let v = v.restart_with(ServeOptions::default()).await;
    // The new process's clock starts again at START_MS: bring it to where the last one was.
    v.clock.advance_ms(2 * DAY + 240_000);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        alerts_in(&v, &a.id, 0).await,
        1,
        "not again after a restart"
    );
    // A new overdue item is raised.
    let key = v.key(&a.admin, &["compliance"]).await;
    let r = v
        .post("/v1/compliance/trainings", &key, None, training("Grace", 0))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    v.clock.advance_ms(120_000);
    assert_eq!(alerts_in(&v, &a.id, 2).await, 2, "the new one");
}

/// A platform compliance officer signs in as a person (not only with a key): keeps the
/// platform's registers and reads its report, and can do nothing an operator does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_compliance_users_keep_the_registers_and_nothing_else() {
    let v = quiet().await;
    let a = v.tenant("acme").await;
    let now = strongroom_testkit::START_MS;
    let pw = "correct horse battery staple 42";
    let r = v
        .post(
            "/v1/users",
            &v.operator,
            None,
            json!({"username": "mixed", "password": pw, "roles": ["compliance", "operator"]}),
        )
        .await;
    assert_eq!(r.status, 422, "one platform role at a time: {}", r.text);
    v.user(&v.operator, "dpo", pw, &["compliance"]).await;
    let session = v.session(None, "dpo", pw, None).await;
    let r = v
        .post(
            "/v1/compliance/declarations",
            &session,
            None,
            json!({"measure": "OR-07", "statement": "Badge access to the office", "owner": "Facilities",
                   "review_by": now + 100 * DAY}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["scope"].as_str()),
        (201, Some("platform")),
        "{}",
        r.text
    );
    let (_, report) = signed(&v, &session, "").await;
    assert_eq!(report["report"]["scope"], "platform");
    assert_eq!(
        v.get("/v1/config/history", &session, None).await.status,
        200
    );
    // Nothing of an operator's: no tenants, users, keys or settings.
    for (status, r) in [
        (
            403,
            v.post("/v1/tenants", &session, None, json!({"name": "evil"}))
                .await,
        ),
        (403, v.get("/v1/users", &session, None).await),
        (
            403,
            v.post(
                "/v1/api-keys",
                &session,
                None,
                json!({"name": "k", "roles": ["operator"], "expires_in_days": 1}),
            )
            .await,
        ),
        (403, v.get("/v1/settings/security", &session, None).await),
        (403, v.get("/v1/collections", &session, None).await),
    ] {
        assert_eq!(r.status, status, "{}", r.text);
    }
    // An operator may also give a tenant's person the `compliance` role.
    let r = v
        .post(
            "/v1/users",
            &v.operator,
            None,
            json!({"username": "acme-dpo", "password": pw, "roles": ["compliance"], "tenant": a.id}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

fn evidence<'a>(report: &'a Value, id: &str, label: &str) -> &'a Value {
    let m = measure(report, id);
    m["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["label"] == label)
        .map(|e| &e["value"])
        .unwrap_or_else(|| panic!("{label} missing: {m}"))
}

/// Lockout and denial counts come from the log itself, counted by the scheduled verification
/// (never a scan of their own), for the report's scope only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockouts_and_refusals_are_counted_from_the_log() {
    let v = quiet().await;
    let (a, app) = v.scenario("acme").await;
    let (b, _) = v.scenario("globex").await;
    let (_, r) = signed(&v, &a.admin, "").await;
    assert!(evidence(&r, "AU-02", "lockouts (recorded)")
        .as_str()
        .unwrap()
        .starts_with("not counted yet"));
    let r = v
        .put(
            "/v1/settings/security",
            &a.admin,
            json!({"lockout_threshold": 3}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    v.user(&a.admin, "ada", "correct horse battery staple", &["admin"])
        .await;
    for _ in 0..4 {
        v.login(Some(&a.id), "ada", "wrong horse battery staple", None)
            .await;
    }
    // Two refusals: a purpose the role does not allow, twice.
    for _ in 0..2 {
        let r = v
            .get(
                "/v1/collections/people/records?limit=1",
                &app,
                Some("marketing"),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    strongroom_server::audit_tools::verify_and_record(&v.running_vault())
        .await
        .unwrap();
    let (_, r) = signed(&v, &a.admin, "").await;
    assert_eq!(evidence(&r, "AU-02", "lockouts (recorded)"), "1");
    let denied: u64 = evidence(&r, "AC-02", "requests refused (recorded)")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(denied >= 2, "{denied}");
    let (_, r) = signed(&v, &b.admin, "").await;
    assert_eq!(
        evidence(&r, "AU-02", "lockouts (recorded)"),
        "0",
        "globex's own log"
    );
    assert_eq!(evidence(&r, "AC-02", "requests refused (recorded)"), "0");
}

/// OR-06: the report is generated; its review is declared by a named owner and goes stale
/// past the next review date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_of_the_measures_is_declared_and_goes_stale() {
    let v = quiet().await;
    let dpo = compliance_key(&v).await;
    let now = strongroom_testkit::START_MS;
    let (_, r) = signed(&v, &dpo, "").await;
    let or06 = measure(&r, "OR-06");
    assert_eq!(or06["status"], "partial", "{or06}");
    assert!(
        or06["missing"][0].as_str().unwrap().contains("no review"),
        "{or06}"
    );
    let r = v
        .post(
            "/v1/compliance/declarations",
            &dpo,
            None,
            json!({"measure": "OR-06", "statement": "TOMs reviewed by the security board",
                   "owner": "CISO", "review_by": now + 200 * DAY}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (_, r) = signed(&v, &dpo, "").await;
    assert_status(&r, "OR-06", "declared");
    v.clock.advance_ms(201 * DAY);
    let (_, r) = signed(&v, &dpo, "").await;
    assert_status(&r, "OR-06", "stale");
}

/// A change with a bad body is refused for its body, whatever version it names (schemathesis
/// found a 412 for an invalid body sent with a stale If-Match).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_body_is_a_bad_body_whatever_the_version() {
    let v = quiet().await;
    let dpo = compliance_key(&v).await;
    let now = strongroom_testkit::START_MS;
    let good = json!({"measure": "OR-07", "statement": "Locked room", "owner": "Facilities",
                      "review_by": now + 100 * DAY});
    let r = v
        .post("/v1/compliance/declarations", &dpo, None, good.clone())
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = v
        .post(
            "/v1/compliance/trainings",
            &dpo,
            None,
            json!({"person": "Ada", "course": "Basics", "completed_at": now}),
        )
        .await;
    let trn = r.body["id"].as_str().unwrap().to_owned();
    for (path, body) in [
        (
            format!("/v1/compliance/declarations/{id}"),
            json!({"measure": "OR-07", "statement": "x", "owner": "y", "review_by": -1}),
        ),
        (
            format!("/v1/compliance/trainings/{trn}"),
            json!({"person": "", "course": "Basics", "completed_at": now}),
        ),
    ] {
        let r = TestVault::finish(
            v.client
                .put(format!("{}{path}", v.base))
                .bearer_auth(&dpo)
                .header("If-Match", "\"7\"")
                .json(&body),
        )
        .await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
    }
}
