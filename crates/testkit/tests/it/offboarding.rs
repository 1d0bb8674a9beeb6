//! Offboarding a tenant (OR-08) on a real server: two parties (neither alone), the final archive
//! fetched once with a token only the tenant's admin saw, every row and key of the tenant gone
//! (no byte of its wrapped keys or ciphertexts in any file), its keys refused, its log closed by
//! a signed certificate that verifies offline and fails after an edit — and the other tenant
//! untouched. Both stores.

use serde_json::{json, Value};
use strongroom_core::certificate;
use strongroom_proto::DeletionCertificate;
use strongroom_testkit::{contains, TestVault};

const PEOPLE: &str = "/v1/collections/people/records";

struct Tenant {
    id: String,
    admin: String,
    app: String,
    records: Vec<String>,
}

/// A tenant with three people (one updated: an earlier version).
async fn tenant(v: &TestVault, name: &str) -> Tenant {
    let (t, app) = v.scenario(name).await;
    let mut records = Vec::new();
    for who in ["ada", "grace", "edsger"] {
        records.push(
            v.store_person(
                &app,
                json!({"email": format!("{who}@{name}.example"), "name": who}),
            )
            .await,
        );
    }
    let r = v
        .call(
            reqwest::Method::PATCH,
            &format!("{PEOPLE}/{}", records[0]),
            &app,
            Some("support"),
            Some(&json!({"fields": {"name": "Ada Lovelace"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    Tenant {
        id: t.id,
        admin: t.admin,
        app,
        records,
    }
}

async fn public_key(v: &TestVault) -> [u8; 32] {
    let pk = v.get("/v1/audit/public-key", "", None).await;
    strongroom_crypto::unhex(pk.body["ed25519"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

async fn archive(v: &TestVault, tenant: &str, token: &str) -> strongroom_testkit::Resp {
    TestVault::finish(
        v.client
            .get(format!("{}/v1/offboarding/{tenant}/archive", v.base))
            .header("X-Archive-Token", token),
    )
    .await
}

/// The certificate verifies, and no longer after an edit of a figure, the tenant, the entry or
/// the signature.
fn check_certificate(body: &Value, pk: &[u8; 32]) -> DeletionCertificate {
    let c: DeletionCertificate = serde_json::from_value(body.clone()).unwrap();
    certificate::verify(&c, pk).expect("the certificate verifies");
    let mut edits = Vec::new();
    let mut e = c.clone();
    e.destroyed.records += 1;
    edits.push(e);
    let mut e = c.clone();
    e.destroyed.kek_ids.clear();
    edits.push(e);
    let mut e = c.clone();
    e.executed_at += 1;
    edits.push(e);
    let mut e = c.clone();
    e.audit.entry = e.audit.entry.replace("records:", "records:1");
    edits.push(e);
    let mut e = c.clone();
    let flip = if e.signature.starts_with('0') {
        "1"
    } else {
        "0"
    };
    e.signature.replace_range(0..1, flip);
    edits.push(e);
    for (i, e) in edits.iter().enumerate() {
        assert!(
            certificate::verify(e, pk).is_err(),
            "edit {i} still verifies"
        );
    }
    c
}

/// The whole flow, the tenant's admin asking and an operator executing; `files` scans the
/// data directory (SQLite) for the destroyed keys and ciphertexts.
async fn offboard_by_request_of_the_tenant(v: &TestVault, sqlite: bool) {
    let acme = tenant(v, "acme").await;
    let globex = tenant(v, "globex").await;
    let kept = |what: &str| format!("{what}@acme.example");
    // What must be gone afterwards: the wrapped KEK, every wrapped DEK, a record's ciphertext.
    let mut probes: Vec<Vec<u8>> = Vec::new();
    if sqlite {
        let db = v.sqlite();
        for sql in [
            "SELECT wrapped FROM tenant_keys WHERE tenant = ?1",
            "SELECT wrapped_dek FROM subjects WHERE tenant = ?1",
            "SELECT data FROM records WHERE tenant = ?1",
        ] {
            let mut st = db.prepare(sql).unwrap();
            let rows = st
                .query_map([&acme.id], |r| r.get::<_, Vec<u8>>(0))
                .unwrap();
            for b in rows {
                probes.push(b.unwrap());
            }
        }
        assert!(probes.len() >= 7);
    }

    // One party alone cannot: the admin asks, and may not execute its own request.
    let r = v
        .post("/v1/offboarding", &acme.app, None, json!({"reason": "x"}))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = v
        .post(
            "/v1/offboarding",
            &acme.admin,
            None,
            json!({"reason": "the contract ended on 31 December"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["requested_by_party"], "tenant");
    let token = r.body["archive_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    let again = v
        .post(
            "/v1/offboarding",
            &acme.admin,
            None,
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    let r = v
        .post("/v1/offboarding/execute", &acme.admin, None, json!({}))
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "two_party_required");
    // Nothing requested for globex: the operator cannot execute it.
    let r = v
        .post(
            &format!("/v1/tenants/{}/offboarding/execute", globex.id),
            &v.operator,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    // Still all there.
    let r = v
        .get(
            &format!("{PEOPLE}/{}", acme.records[0]),
            &acme.app,
            Some("support"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The operator executes.
    let r = v
        .post(
            &format!("/v1/tenants/{}/offboarding/execute", acme.id),
            &v.operator,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body["archive"]["token"].is_null(),
        "the operator never sees the token"
    );
    let pk = public_key(v).await;
    let c = check_certificate(&r.body["certificate"], &pk);
    assert_eq!(
        (
            c.destroyed.records,
            c.destroyed.subjects,
            c.destroyed.versions,
            c.destroyed.deks
        ),
        (3, 3, 1, 3)
    );
    assert_eq!(c.destroyed.kek_ids.len(), 1);
    assert_eq!(c.tenant, acme.id);
    assert!(!r.text.contains(&kept("ada")));
    // A second execution: the tenant is gone.
    let r2 = v
        .post(
            &format!("/v1/tenants/{}/offboarding/execute", acme.id),
            &v.operator,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r2.status, 404, "{}", r2.text);

    // Its keys fail; nothing of it decrypts or remains.
    for key in [&acme.app, &acme.admin] {
        let r = v
            .get(
                &format!("{PEOPLE}/{}", acme.records[1]),
                key,
                Some("support"),
            )
            .await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let store = v.running_vault();
    let t = strongroom_core::ids::TenantId::parse(&acme.id).unwrap();
    assert!(store.store().find_tenant(&t).await.unwrap().is_none());
    assert!(store.store().find_tenant_keys(&t).await.unwrap().is_empty());
    assert_eq!(
        store.store().count_tenant(&t).await.unwrap(),
        strongroom_core::store::TenantCounts::default()
    );
    if sqlite {
        for (file, bytes) in v.scan_files() {
            for (i, p) in probes.iter().enumerate() {
                let probe = &p[p.len() / 2..(p.len() / 2 + 24).min(p.len())];
                assert!(
                    !contains(&bytes, probe),
                    "probe {i} still in {}",
                    file.display()
                );
            }
        }
    }

    // The archive: the wrong token opens nothing; the right one, once.
    let wrong = format!(
        "{}{}",
        &token[..63],
        if token.ends_with('0') { "1" } else { "0" }
    );
    for t in [wrong.as_str(), "", "zz"] {
        let r = archive(v, &acme.id, t).await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let r = archive(v, &acme.id, &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["format"], "strongroom-tenant-archive/1");
    assert_eq!(r.body["records"].as_array().unwrap().len(), 3);
    assert!(r.text.contains(&kept("grace")) && r.text.contains("Ada Lovelace"));
    assert!(!r.text.contains("globex"));
    let r = archive(v, &acme.id, &token).await;
    assert_eq!(r.status, 401, "a second download: {}", r.text);

    // The other tenant is untouched, and the log verifies with acme's closed by its entry.
    for id in &globex.records {
        let r = v
            .get(&format!("{PEOPLE}/{id}"), &globex.app, Some("support"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let report = v.assert_audit_verifies().await;
    let log = report.logs.iter().find(|l| l.log == acme.id).unwrap();
    assert_eq!(
        log.entries, c.audit.seq,
        "the offboarding is the log's last entry"
    );
    assert_eq!(log.not_yet_checkpointed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_returned_destroyed_and_certified_when_both_parties_agree() {
    let v = TestVault::start().await;
    offboard_by_request_of_the_tenant(&v, true).await;
    // The report counts the certificate (OR-08).
    let rep = v
        .get("/v1/compliance/toms?format=json", &v.operator, None)
        .await;
    assert_eq!(rep.status, 200, "{}", rep.text);
    let or08 = rep.body["report"]["measures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "OR-08")
        .unwrap()
        .to_string();
    assert!(or08.contains("deletion certificates issued"), "{or08}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offboarding_on_postgres_leaves_no_row_of_the_tenant() {
    let Some(url) = strongroom_testkit::postgres::fresh_database().await else {
        return;
    };
    let v = TestVault::start_postgres(&url, None, Default::default()).await;
    offboard_by_request_of_the_tenant(&v, false).await;
    let pg = strongroom_testkit::postgres::connect(&url).await;
    for table in [
        "records",
        "subjects",
        "tenant_keys",
        "api_keys",
        "collections",
        "roles",
        "record_history",
        "blind_index",
    ] {
        let n: i64 = pg
            .query_one(
                &format!("SELECT count(*) FROM {table} t WHERE t.tenant IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tenants WHERE id = t.tenant)"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} keeps rows of the offboarded tenant");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_asks_the_tenant_executes_and_a_hold_stops_it() {
    let v = TestVault::start().await;
    let acme = tenant(&v, "acme").await;
    for (id, status) in [
        (format!("ten_{}", "0".repeat(32)), 404),
        ("ten_x".to_owned(), 400),
    ] {
        let r = v
            .post(
                &format!("/v1/tenants/{id}/offboarding"),
                &v.operator,
                None,
                json!({"reason": "x"}),
            )
            .await;
        assert_eq!(r.status, status, "{}", r.text);
    }
    for reason in [json!(""), json!("a\u{7}"), json!(" ")] {
        let r = v
            .post(
                &format!("/v1/tenants/{}/offboarding", acme.id),
                &v.operator,
                None,
                json!({ "reason": reason }),
            )
            .await;
        assert!(r.status == 400 || r.status == 422, "{}", r.text);
    }
    let r = v
        .post(
            &format!("/v1/tenants/{}/offboarding", acme.id),
            &v.operator,
            None,
            json!({"reason": "unpaid since March"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body["archive_token"].is_null());
    let r = v
        .post(
            &format!("/v1/tenants/{}/offboarding/execute", acme.id),
            &v.operator,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    // A legal hold stops it, and nothing is destroyed.
    let hold = v
        .post(
            "/v1/holds",
            &acme.admin,
            None,
            json!({"collection": "people", "reason": "litigation"}),
        )
        .await;
    assert_eq!(hold.status, 201, "{}", hold.text);
    let r = v
        .post("/v1/offboarding/execute", &acme.admin, None, json!({}))
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "legal_hold");
    let r = v
        .get(
            &format!("{PEOPLE}/{}", acme.records[0]),
            &acme.app,
            Some("support"),
        )
        .await;
    assert_eq!(r.status, 200);
    let id = hold.body["id"].as_str().unwrap();
    let r = v
        .post(
            &format!("/v1/holds/{id}/lift"),
            &acme.admin,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The tenant's admin executes and receives the token.
    let r = v
        .post("/v1/offboarding/execute", &acme.admin, None, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["archive"]["token"].as_str().unwrap().to_owned();
    check_certificate(&r.body["certificate"], &public_key(&v).await);
    let r = archive(&v, &acme.id, &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["records"].as_array().unwrap().len(), 3);
    v.assert_audit_verifies().await;
}

/// The closed log is kept for the configured period, then deleted with a record in the platform
/// log — after which verification (and a restart, with a witness holding its checkpoints)
/// accepts its absence. Deleted before its time, without that record, verification fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_log_is_kept_for_its_period_then_deleted_on_record() {
    const DAY: i64 = 86_400_000;
    let tmp = tempfile::tempdir().unwrap();
    let opts = || strongroom_server::ServeOptions {
        witness_dir: Some(tmp.path().join("witness")),
        checkpoint_every_entries: 1,
        checkpoint_every: std::time::Duration::from_millis(50),
        vault: strongroom_core::vault::VaultConfig {
            closed_log_retention_days: 30,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut v = TestVault::start_with(opts()).await;
    let acme = tenant(&v, "acme").await;
    let globex = tenant(&v, "globex").await;
    let op = crate::lifecycle::operator(&v).await;
    let r = v
        .post(
            "/v1/api-keys",
            &globex.admin,
            None,
            json!({"name": "app", "roles": ["support_agent"], "expires_in_days": 365}),
        )
        .await;
    let gapp = r.body["key"].as_str().unwrap().to_owned();
    // The witness holds a checkpoint of the log (published by the background loop).
    let published = tmp
        .path()
        .join("witness")
        .join(format!("{}.checkpoint", acme.id));
    for _ in 0..100 {
        if published.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        published.exists(),
        "no checkpoint of the closed log was published"
    );
    let r = v
        .post(
            "/v1/offboarding",
            &acme.admin,
            None,
            json!({"reason": "ended"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = v
        .post(
            &format!("/v1/tenants/{}/offboarding/execute", acme.id),
            &op,
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = check_certificate(&r.body["certificate"], &public_key(&v).await);
    assert_eq!(c.destroyed.log_kept_until, c.executed_at + 30 * DAY);

    // Someone removes the closed log before its time, without the record: caught.
    let (_dir, copy) = crate::audit_log::open_copy(&v);
    let db = rusqlite::Connection::open(&copy).unwrap();
    for table in [
        "audit_nodes",
        "audit_subjects",
        "audit_checkpoints",
        "audit",
        "audit_heads",
    ] {
        db.execute(&format!("DELETE FROM {table} WHERE log = ?1"), [&acme.id])
            .unwrap();
    }
    drop(db);
    assert!(
        crate::audit_log::verify_db(&copy).await.is_err(),
        "a closed log removed without its record passes verification"
    );

    // Kept until the period ends: the job leaves it one millisecond before.
    let vault = v.running_vault();
    v.clock.advance_ms(30 * DAY - 1);
    crate::lifecycle::run_job(&v, &op, "audit.closed_logs").await;
    assert!(vault
        .store()
        .find_audit_head(&acme.id)
        .await
        .unwrap()
        .is_some());
    v.clock.advance_ms(1);
    let job = crate::lifecycle::run_job(&v, &op, "audit.closed_logs").await;
    assert_eq!(job["done"], 1, "{job}");
    assert!(vault
        .store()
        .find_audit_head(&acme.id)
        .await
        .unwrap()
        .is_none());
    assert!(vault
        .store()
        .find_audit_tail(&acme.id)
        .await
        .unwrap()
        .is_none());
    let log = v
        .get("/v1/audit/entries?action=audit.log_deleted", &op, None)
        .await;
    assert!(
        log.text.contains(&format!("log:{}", acme.id)),
        "{}",
        log.text
    );
    // Once only.
    let job = crate::lifecycle::run_job(&v, &op, "audit.closed_logs").await;
    assert_eq!(job["done"], 0, "{job}");
    let report = v.assert_audit_verifies().await;
    assert!(report.logs.iter().all(|l| l.log != acme.id));
    assert!(report.logs.iter().any(|l| l.log == globex.id));
    // A restart checks the logs against the witness, which still holds acme's checkpoints.
    v.stop().await;
    let v = v.restart_with(opts()).await;
    let r = v
        .get(
            &format!("{PEOPLE}/{}", globex.records[0]),
            &gapp,
            Some("support"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    v.assert_audit_verifies().await;
}
