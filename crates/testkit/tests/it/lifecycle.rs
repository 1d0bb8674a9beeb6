//! The data lifecycle on a real server: a deleted record is blocked and restorable through its
//! grace period, then purged with its history, index entries and — with the subject's last
//! record — the subject's key, leaving no byte of either in the database files; a purge killed
//! half-way is finished by the next runner, every record destroyed exactly once.

use std::sync::Arc;

use serde_json::{json, Value};
use strongroom_core::ids::{RecordId, SubjectId, TenantId};
use strongroom_core::jobs::{RunOutcome, Runner, LEASE_MS};
use strongroom_core::store::{JobState, Op, RecordRow, RecordState, SubjectRow, UnitOfWork};
use strongroom_server::ServeOptions;
use strongroom_testkit::{contains, TestVault};

const DAY: i64 = 86_400_000;
const PEOPLE: &str = "/v1/collections/people/records";

/// A tenant with `people`, and a key whose role may create, read, update and delete them.
async fn setup(v: &TestVault) -> (strongroom_testkit::TestTenant, String) {
    let (t, _) = v.scenario("acme").await;
    v.role(
        &t.admin,
        "keeper",
        json!({"collections": {"people": {
            "operations": ["create", "read", "update", "delete", "search"],
            "purposes": ["support"],
            "fields": {"email": "plain", "name": "plain"}}}}),
    )
    .await;
    let key = v.key(&t.admin, &["keeper"]).await;
    (t, key)
}

async fn create(v: &TestVault, key: &str, body: Value) -> (String, String) {
    let r = v.post(PEOPLE, key, Some("support"), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["subject"].as_str().unwrap().to_owned(),
    )
}

/// An operator key that outlives the clock moves of these tests.
pub(crate) async fn operator(v: &TestVault) -> String {
    let r = v
        .post(
            "/v1/api-keys",
            &v.operator,
            None,
            json!({"name": "ops", "roles": ["operator"], "expires_in_days": 365}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["key"].as_str().unwrap().to_owned()
}

/// Asks for a purge run and waits until it has run once more.
pub(crate) async fn purge_now(v: &TestVault, op: &str) -> Value {
    let runs = |b: &Value| b["runs"].as_u64().unwrap();
    let before = runs(&v.get("/v1/jobs/purge", op, None).await.body);
    let r = v.post("/v1/jobs/purge/run", op, None, json!({})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    for _ in 0..100 {
        let job = v.get("/v1/jobs/purge", op, None).await.body;
        if runs(&job) > before {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the purge did not run");
}

/// Deletes (blocks) a person.
async fn delete(v: &TestVault, key: &str, id: &str) -> strongroom_testkit::Resp {
    v.call(
        reqwest::Method::DELETE,
        &format!("{PEOPLE}/{id}"),
        key,
        Some("support"),
        None,
    )
    .await
}

fn blob(v: &TestVault, sql: &str, id: &str) -> Vec<u8> {
    v.sqlite().query_row(sql, [id], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_records_are_restorable_then_purged_with_their_keys() {
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    })
    .await;
    let (t, key) = setup(&v).await;
    let op = operator(&v).await;
    // The tenant's admin, with a key that outlives the clock moves.
    let r = v
        .post(
            "/v1/api-keys",
            &v.operator,
            None,
            json!({"name": "admin", "roles": ["admin"], "tenant": t.id, "expires_in_days": 365}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let admin = r.body["key"].as_str().unwrap().to_owned();
    let (alone, s1) = create(
        &v,
        &key,
        json!({"fields": {"email": "ada@example.com", "name": "Ada"}}),
    )
    .await;
    let (r2, s2) = create(
        &v,
        &key,
        json!({"fields": {"email": "bob@example.com", "name": "Bob"}}),
    )
    .await;
    let (r3, _) = create(
        &v,
        &key,
        json!({"subject": s2, "fields": {"email": "bob2@example.com"}}),
    )
    .await;
    // An update, so that the record has history to destroy too.
    let r = v
        .call(
            reqwest::Method::PATCH,
            &format!("{PEOPLE}/{alone}"),
            &key,
            Some("support"),
            Some(&json!({"fields": {"name": "Ada L."}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ciphertext = blob(&v, "SELECT data FROM records WHERE id = ?1", &alone);
    let old = blob(&v, "SELECT data FROM record_history WHERE id = ?1", &alone);
    let wrapped = blob(&v, "SELECT wrapped_dek FROM subjects WHERE id = ?1", &s1);

    for id in [&alone, &r2] {
        let r = delete(&v, &key, id).await;
        assert_eq!(r.status, 204, "{}", r.text);
        let r = v
            .get(&format!("{PEOPLE}/{id}"), &key, Some("support"))
            .await;
        assert_eq!(r.status, 404, "a blocked record is invisible: {}", r.text);
    }
    let found = v
        .post(
            &format!("{PEOPLE}/search"),
            &key,
            Some("support"),
            json!({"where": {"email": "ada@example.com"}}),
        )
        .await;
    assert_eq!(found.body["records"], json!([]), "{}", found.text);
    let pending = v.get("/v1/purges/pending", &admin, None).await;
    assert_eq!(pending.status, 200, "{}", pending.text);
    assert_eq!(
        pending.body["collections"][0]["blocked"], 2,
        "{}",
        pending.text
    );
    assert_eq!(pending.body["collections"][0]["grace_days"], 30);
    assert!(!pending.text.contains("ada@example.com"));
    assert_eq!(v.get("/v1/purges/pending", &key, None).await.status, 403);

    // 29 days on: nothing purged; still restorable (by the admin only).
    v.clock.advance_ms(29 * DAY);
    purge_now(&v, &op).await;
    assert_eq!(v.count("records"), 3);
    let restore = |id: &str| format!("{PEOPLE}/{id}/restore");
    assert_eq!(
        v.post(&restore(&r2), &key, None, json!({})).await.status,
        403
    );
    let r = v.post(&restore(&r2), &admin, None, json!({})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        v.get(&format!("{PEOPLE}/{r2}"), &key, Some("support"))
            .await
            .status,
        200
    );
    let r = v.post(&restore(&r3), &admin, None, json!({})).await;
    assert_eq!((r.status, r.code()), (409, "already_exists"), "{}", r.text);
    let r = v.post(&restore("rec_nope"), &admin, None, json!({})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Deleted again now: its grace starts again.
    let r = delete(&v, &key, &r2).await;
    assert_eq!(r.status, 204);

    // 31 days after the first deletion: that record is purged, the other is not yet.
    v.clock.advance_ms(2 * DAY);
    let job = purge_now(&v, &op).await;
    assert_eq!(job["state"], "idle", "{job}");
    let r = v.post(&restore(&alone), &admin, None, json!({})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.text.contains("purged"), "{}", r.text);
    let db = v.sqlite();
    let n = |sql: &str, id: &str| db.query_row(sql, [id], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(n("SELECT count(*) FROM records WHERE id = ?1", &alone), 0);
    assert_eq!(
        n("SELECT count(*) FROM record_history WHERE id = ?1", &alone),
        0
    );
    assert_eq!(
        n("SELECT count(*) FROM blind_index WHERE record = ?1", &alone),
        0
    );
    assert_eq!(
        n("SELECT count(*) FROM subjects WHERE id = ?1", &s1),
        0,
        "the last record's key is destroyed"
    );
    assert_eq!(
        n("SELECT count(*) FROM subjects WHERE id = ?1", &s2),
        1,
        "a subject with records keeps its key"
    );
    assert_eq!(
        n("SELECT count(*) FROM records WHERE id = ?1", &r2),
        1,
        "within its grace"
    );
    drop(db);
    // No byte of the ciphertext, the old version or the wrapped key in any file (the WAL and
    // free pages included).
    for (path, bytes) in v.scan_files() {
        for (what, needle) in [
            ("record", &ciphertext),
            ("history", &old),
            ("wrapped DEK", &wrapped),
        ] {
            let probe = &needle[needle.len() / 2..needle.len() / 2 + 24];
            assert!(
                !contains(&bytes, probe),
                "the {what} is still in {}",
                path.display()
            );
        }
    }
    // AV-04 in the tenant's report: the grace period and the last run.
    let rep = v.get("/v1/compliance/toms?format=json", &admin, None).await;
    let av04 = rep.body["report"]["measures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "AV-04")
        .unwrap()
        .clone();
    assert_eq!(av04["status"], "met", "{av04}");
    assert!(av04.to_string().contains("30 days"), "{av04}");
    // The purge is in the tenant's log, naming the record and the destroyed key.
    let log = v
        .get("/v1/audit/entries?action=record.purge", &admin, None)
        .await;
    let entries = log.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{}", log.text);
    assert!(entries[0].to_string().contains(&alone) && entries[0].to_string().contains(&s1));
    v.assert_audit_verifies().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_with_no_grace_is_purged_at_the_next_run_and_bad_grace_is_refused() {
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    })
    .await;
    let (t, key) = setup(&v).await;
    let op = operator(&v).await;
    let mut schema = strongroom_testkit::people_schema();
    for bad in [json!(-1), json!(3651), json!("P30D")] {
        schema["purge_grace_days"] = bad.clone();
        let r = v
            .put("/v1/collections/people", &t.admin, schema.clone())
            .await;
        assert!(r.status == 400 || r.status == 422, "{bad}: {}", r.text);
    }
    let r = v
        .put(
            "/v1/settings/security",
            &t.admin,
            json!({"purge_grace_days": 5000}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    schema["purge_grace_days"] = json!(0);
    let r = v.put("/v1/collections/people", &t.admin, schema).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (id, _) = create(&v, &key, json!({"fields": {"email": "eve@example.com"}})).await;
    let r = delete(&v, &key, &id).await;
    assert_eq!(r.status, 204);
    purge_now(&v, &op).await;
    assert_eq!(v.count("records"), 0);
}

fn record(tenant: &TenantId, subject: &SubjectId, i: usize) -> RecordRow {
    RecordRow {
        tenant: tenant.clone(),
        collection: "people".into(),
        id: RecordId::generate(&strongroom_core::OsRng),
        subject: subject.clone(),
        version: 1,
        state: RecordState::Active,
        created_at: 0,
        updated_at: 0,
        data: format!("not really a ciphertext {i}").into_bytes(),
        subject_flags: 0,
    }
}

/// 100,000 deleted records; the purge is killed after a fifth of them; the next runner (the
/// server's own, once the lease has expired) finishes: every record destroyed exactly once,
/// every key with them, and the audit log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_killed_half_way_is_finished_exactly_once() {
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    })
    .await;
    let (t, _) = setup(&v).await;
    let tenant = TenantId::parse(&t.id).unwrap();
    let vault = v.running_vault();
    const N: usize = 100_000;
    const PER_SUBJECT: usize = 100;
    for s in 0..N / PER_SUBJECT {
        let subject = SubjectId::generate(&strongroom_core::OsRng);
        let mut ops = vec![Op::InsertSubject(SubjectRow {
            tenant: tenant.clone(),
            id: subject.clone(),
            kek_version: 1,
            wrapped_dek: vec![7; 60],
            ref_index: None,
            created_at: 0,
            flags: 0,
        })];
        ops.extend((0..PER_SUBJECT).map(|i| Op::InsertRecord {
            row: record(&tenant, &subject, s * PER_SUBJECT + i),
            index: vec![],
        }));
        vault
            .store()
            .commit(UnitOfWork { ops, audit: vec![] })
            .await
            .unwrap();
    }
    let blocked = v
        .sqlite()
        .execute("UPDATE records SET state = 1, blocked_at = 0", [])
        .unwrap();
    assert_eq!(blocked, N);
    v.clock.advance_ms(31 * DAY);

    let killed = Runner::new(
        "doomed".into(),
        vec![Arc::new(strongroom_core::vault::Purge)],
    );
    let running = {
        let (killed, vault) = (killed.clone(), vault.clone());
        tokio::spawn(async move { killed.run(&vault, "purge", &mut |_| {}).await })
    };
    loop {
        let job = vault.store().find_job("purge").await.unwrap().unwrap();
        if job.lease_holder.as_deref() == Some("doomed") && job.done >= 20_000 {
            break;
        }
        assert!(!running.is_finished(), "finished before it could be killed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    running.abort();
    let _ = running.await;
    let job = vault.store().find_job("purge").await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Running);
    assert!(job.done < N as u64, "{}", job.done);
    // The lease expires; the server's own runner resumes it within a second or two.
    v.clock.advance_ms(LEASE_MS + 1);
    let mut job = job;
    for _ in 0..600 {
        job = vault.store().find_job("purge").await.unwrap().unwrap();
        if job.state == JobState::Idle {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!((job.state, job.done), (JobState::Idle, N as u64), "{job:?}");
    assert_ne!(job.lease_holder.as_deref(), Some("doomed"));
    assert_eq!(v.count("records"), 0);
    assert_eq!(
        v.count("subjects"),
        0,
        "every key went with its last record"
    );
    // Each record in exactly one purge entry.
    let db = v.sqlite();
    let mut stmt = db
        .prepare("SELECT body FROM audit WHERE log = ?1 AND body LIKE '%\"record.purge\"%'")
        .unwrap();
    let mut ids = std::collections::BTreeSet::new();
    let mut total = 0;
    for body in stmt.query_map([&t.id], |r| r.get::<_, String>(0)).unwrap() {
        let e: Value = serde_json::from_str(&body.unwrap()).unwrap();
        for r in e["records"].as_array().unwrap() {
            total += 1;
            ids.insert(r.as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        (total, ids.len()),
        (N, N),
        "every record purged once, and recorded once"
    );
    drop(stmt);
    drop(db);
    // Run again: nothing left to do.
    let again = killed.run(&vault, "purge", &mut |_| {}).await.unwrap();
    assert!(
        matches!(&again, RunOutcome::Finished(j) if j.done == 0),
        "{again:?}"
    );
    v.assert_audit_verifies().await;
}

/// A legal hold keeps deleted data from the purge — on a subject or a whole collection — until
/// it is lifted; bad holds are refused and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_keeps_data_from_the_purge_until_lifted() {
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    })
    .await;
    let (t, key) = setup(&v).await;
    let op = operator(&v).await;
    let (held_rec, held_subject) =
        create(&v, &key, json!({"fields": {"email": "held@example.com"}})).await;
    let (free_rec, _) = create(&v, &key, json!({"fields": {"email": "free@example.com"}})).await;
    for bad in [
        json!({"reason": "no target"}),
        json!({"subject": held_subject, "collection": "people", "reason": "both"}),
        json!({"subject": held_subject, "reason": "   "}),
        json!({"subject": held_subject, "reason": "past", "until": 1}),
        json!({"subject": "sub_00000000000000000000000000000000", "reason": "unknown"}),
        json!({"collection": "nope", "reason": "unknown collection"}),
        json!({"subject": held_subject}),
    ] {
        let r = v.post("/v1/holds", &t.admin, None, bad.clone()).await;
        assert!(
            r.status == 400 || r.status == 404 || r.status == 422,
            "{bad}: {}",
            r.text
        );
    }
    assert_eq!(
        v.post(
            "/v1/holds",
            &key,
            None,
            json!({"subject": held_subject, "reason": "x"})
        )
        .await
        .status,
        403
    );
    assert_eq!(
        v.get("/v1/holds", &t.admin, None).await.body["holds"],
        json!([])
    );
    let r = v
        .post(
            "/v1/holds",
            &t.admin,
            None,
            json!({"subject": held_subject, "reason": "Litigation 2026-17: keep everything of this customer"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let hold = r.body["id"].as_str().unwrap().to_owned();
    let mut schema = strongroom_testkit::people_schema();
    schema["purge_grace_days"] = json!(0);
    assert_eq!(
        v.put("/v1/collections/people", &t.admin, schema)
            .await
            .status,
        200
    );
    for id in [&held_rec, &free_rec] {
        let r = delete(&v, &key, id).await;
        assert_eq!(r.status, 204);
    }
    purge_now(&v, &op).await;
    let db = v.sqlite();
    let n = |id: &str| {
        db.query_row("SELECT count(*) FROM records WHERE id = ?1", [id], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    };
    assert_eq!(
        (n(&held_rec), n(&free_rec)),
        (1, 0),
        "the held record stays, the other goes"
    );
    drop(db);
    // A hold on the whole collection keeps a new deletion too.
    let (other, _) = create(&v, &key, json!({"fields": {"email": "other@example.com"}})).await;
    let r = v
        .post(
            "/v1/holds",
            &t.admin,
            None,
            json!({"collection": "people", "reason": "Audit by the authority"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let coll_hold = r.body["id"].as_str().unwrap().to_owned();
    let r = delete(&v, &key, &other).await;
    assert_eq!(r.status, 204);
    purge_now(&v, &op).await;
    assert_eq!(v.count("records"), 2);
    // Lifted: the next run proceeds. A hold is lifted once.
    for id in [&hold, &coll_hold] {
        let r = v
            .call(
                reqwest::Method::POST,
                &format!("/v1/holds/{id}/lift"),
                &t.admin,
                None,
                None,
            )
            .await;
        assert_eq!(
            (r.status, r.body["active"].as_bool()),
            (200, Some(false)),
            "{}",
            r.text
        );
    }
    let r = v
        .call(
            reqwest::Method::POST,
            &format!("/v1/holds/{hold}/lift"),
            &t.admin,
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    purge_now(&v, &op).await;
    assert_eq!(v.count("records"), 0);
    let holds = v.get("/v1/holds", &t.admin, None).await;
    assert_eq!(
        holds.body["holds"].as_array().unwrap().len(),
        2,
        "{}",
        holds.text
    );
    for (path, bytes) in v.scan_files() {
        assert!(
            !contains(&bytes, b"Litigation"),
            "a hold's reason in clear in {}",
            path.display()
        );
    }
    v.assert_audit_verifies().await;
}

/// Asks for a run of `job` and waits until it has run once more.
pub(crate) async fn run_job(v: &TestVault, op: &str, job: &str) -> Value {
    let path = format!("/v1/jobs/{job}");
    let runs = |b: &Value| b["runs"].as_u64().unwrap_or_else(|| panic!("{b}"));
    let before = runs(&v.get(&path, op, None).await.body);
    let r = v.post(&format!("{path}/run"), op, None, json!({})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    for _ in 0..100 {
        let j = v.get(&path, op, None).await.body;
        if runs(&j) > before {
            return j;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{job} did not run");
}

/// Storage limitation: records past their retention period are destroyed (with the subject's
/// key) or reduced to their non-personal fields (every earlier version destroyed, the personal
/// fields' index entries too); held subjects are kept; a bad period is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_destroys_or_reduces_what_is_past_its_period() {
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    })
    .await;
    let (t, _) = setup(&v).await;
    let op = operator(&v).await;
    let r = v
        .post(
            "/v1/api-keys",
            &v.operator,
            None,
            json!({"name": "admin", "roles": ["admin"], "tenant": t.id, "expires_in_days": 365}),
        )
        .await;
    let admin = r.body["key"].as_str().unwrap().to_owned();
    let mut people = strongroom_testkit::people_schema();
    for bad in [
        json!({"period": "P0D"}),
        json!({"period": "2Y"}),
        json!({"period": "PT1H"}),
        json!({"period": "P101Y"}),
        json!({"period": "forever"}),
        json!({"period": "P1Y", "from": "deleted"}),
        json!({"period": "P1Y", "action": "archive"}),
    ] {
        people["retention"] = bad.clone();
        let r = v
            .put("/v1/collections/people", &admin, people.clone())
            .await;
        assert!(r.status == 400 || r.status == 422, "{bad}: {}", r.text);
    }
    let before = v.get("/v1/collections/people", &admin, None).await;
    assert!(before.body["retention"].is_null(), "{}", before.text);
    people["retention"] = json!({"period": "P1Y"});
    let r = v.put("/v1/collections/people", &admin, people).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = json!({"purposes": ["support"], "fields": [
        {"name": "email", "type": "email", "classification": "personal", "searchable": true},
        {"name": "kind", "type": "string", "classification": "non_personal"}],
        "retention": {"period": "P30D", "from": "updated", "action": "keep_non_personal"}});
    assert_eq!(
        v.put("/v1/collections/events", &admin, events).await.status,
        201
    );
    v.role(
        &admin,
        "keeper",
        json!({"collections": {
            "people": {"operations": ["create", "read", "update", "delete", "search"], "purposes": ["support"],
                       "fields": {"email": "plain", "name": "plain"}},
            "events": {"operations": ["create", "read", "update", "search"], "purposes": ["support"],
                       "fields": {"email": "plain", "kind": "plain"}}}}),
    )
    .await;

    let r = v
        .post(
            "/v1/api-keys",
            &admin,
            None,
            json!({"name": "app", "roles": ["keeper"], "expires_in_days": 365}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let (old, old_subject) =
        create(&v, &key, json!({"fields": {"email": "old@example.com"}})).await;
    let (kept, kept_subject) =
        create(&v, &key, json!({"fields": {"email": "kept@example.com"}})).await;
    let r = v
        .post(
            "/v1/holds",
            &admin,
            None,
            json!({"subject": kept_subject, "reason": "Pending claim"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let ev = v
        .post(
            "/v1/collections/events/records",
            &key,
            Some("support"),
            json!({"fields": {"email": "ev@example.com", "kind": "login"}}),
        )
        .await;
    assert_eq!(ev.status, 201, "{}", ev.text);
    let ev = ev.body["id"].as_str().unwrap().to_owned();
    let r = v
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/collections/events/records/{ev}"),
            &key,
            Some("support"),
            Some(&json!({"fields": {"email": "ev2@example.com"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    v.clock.advance_ms(200 * DAY);
    // Keys last a year at most: the ones used after the period are issued now.
    let issue = |by: String, body: Value| {
        let v = &v;
        async move {
            let r = v.post("/v1/api-keys", &by, None, body).await;
            assert_eq!(r.status, 201, "{}", r.text);
            r.body["key"].as_str().unwrap().to_owned()
        }
    };
    let op = issue(
        op.clone(),
        json!({"name": "ops", "roles": ["operator"], "expires_in_days": 365}),
    )
    .await;
    let admin = issue(
        op.clone(),
        json!({"name": "admin", "roles": ["admin"], "tenant": t.id, "expires_in_days": 365}),
    )
    .await;
    let key = issue(
        admin.clone(),
        json!({"name": "app", "roles": ["keeper"], "expires_in_days": 365}),
    )
    .await;
    let (young, _) = create(&v, &key, json!({"fields": {"email": "young@example.com"}})).await;
    // 2026-01-01 plus one year is 2027-01-01: 365 days; one day more and the first records
    // are past it; the event (30 days from its update) too.
    v.clock.advance_ms(166 * DAY);
    let job = run_job(&v, &op, "retention").await;
    assert_eq!(job["state"], "idle", "{job}");
    let db = v.sqlite();
    let n = |sql: &str, id: &str| db.query_row(sql, [id], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(
        n("SELECT count(*) FROM records WHERE id = ?1", &old),
        0,
        "past its period"
    );
    assert_eq!(
        n("SELECT count(*) FROM subjects WHERE id = ?1", &old_subject),
        0,
        "and its key"
    );
    assert_eq!(
        n("SELECT count(*) FROM records WHERE id = ?1", &kept),
        1,
        "held"
    );
    assert_eq!(
        n("SELECT count(*) FROM records WHERE id = ?1", &young),
        1,
        "within its period"
    );
    assert_eq!(
        n("SELECT count(*) FROM records WHERE id = ?1", &ev),
        1,
        "reduced, not destroyed"
    );
    assert_eq!(
        n("SELECT count(*) FROM record_history WHERE id = ?1", &ev),
        0,
        "no earlier version"
    );
    assert_eq!(
        n("SELECT count(*) FROM blind_index WHERE record = ?1", &ev),
        0,
        "no personal index entry"
    );
    drop(db);
    let r = v
        .get(
            &format!("/v1/collections/events/records/{ev}"),
            &key,
            Some("support"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["fields"], json!({"kind": "login"}), "{}", r.text);
    let log = v
        .get("/v1/audit/entries?action=record.retention", &admin, None)
        .await;
    let entries = log.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "one entry per batch: {}", log.text);
    // Nothing more to do on the next run.
    let done = |j: &Value| j["done"].as_u64().unwrap();
    assert_eq!(done(&run_job(&v, &op, "retention").await), 0);
    assert_eq!(
        v.get("/v1/audit/entries?action=record.retention", &admin, None)
            .await
            .body["entries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    v.assert_audit_verifies().await;
}

/// IN-04: every update keeps the previous version; a role with the `history` operation reads
/// them, with its field visibility applied to old versions too; others are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earlier_versions_are_kept_and_shown_as_the_role_allows() {
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    })
    .await;
    let (t, key) = setup(&v).await;
    v.role(
        &t.admin,
        "historian",
        json!({"collections": {"people": {
            "operations": ["read", "history"], "purposes": ["support"],
            "fields": {"email": "plain", "name": "masked"}}}}),
    )
    .await;
    let historian = v.key(&t.admin, &["historian"]).await;
    let (id, _) = create(
        &v,
        &key,
        json!({"fields": {"email": "ada@example.com", "name": "Ada", "phone": "+44 20 7946 0000"}}),
    )
    .await;
    for name in ["Ada Lovelace", "Augusta Ada King"] {
        let r = v
            .call(
                reqwest::Method::PATCH,
                &format!("{PEOPLE}/{id}"),
                &key,
                Some("support"),
                Some(&json!({"fields": {"name": name}})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let path = format!("{PEOPLE}/{id}/history");
    let r = v.get(&path, &historian, Some("support")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let versions = r.body["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{}", r.text);
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[0]["fields"]["email"], "ada@example.com");
    assert_eq!(
        versions[0]["fields"]["name"], "A***",
        "masked in old versions too: {}",
        r.text
    );
    assert!(
        versions[0]["fields"].get("phone").is_none(),
        "hidden in old versions too"
    );
    assert!(
        !r.text.contains("Lovelace") && !r.text.contains("+44"),
        "{}",
        r.text
    );
    // Without the operation, or for a purpose the role does not hold: refused.
    let r = v.get(&path, &key, Some("support")).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = v.get(&path, &historian, Some("marketing")).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let log = v
        .get("/v1/audit/entries?action=record.history", &t.admin, None)
        .await;
    assert_eq!(
        log.body["entries"].as_array().unwrap().len(),
        3,
        "{}",
        log.text
    );
    // A history depth of one: at the next update only the newest earlier version is kept.
    let mut schema = strongroom_testkit::people_schema();
    schema["history_depth"] = json!(1001);
    let r = v
        .put("/v1/collections/people", &t.admin, schema.clone())
        .await;
    assert!(r.status == 400 || r.status == 422, "{}", r.text);
    schema["history_depth"] = json!(1);
    let r = v.put("/v1/collections/people", &t.admin, schema).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = v
        .call(
            reqwest::Method::PATCH,
            &format!("{PEOPLE}/{id}"),
            &key,
            Some("support"),
            Some(&json!({"fields": {"name": "A. A. King"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = v.get(&path, &historian, Some("support")).await;
    let versions: Vec<u64> = r.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [3], "{}", r.text);
    assert_eq!(
        v.count("record_history"),
        1,
        "older versions destroyed, not hidden"
    );
}

/// Bulk delete and restore are two-step: the first call only counts and gives a token; the
/// token acts once, for its caller, within five minutes, on exactly the records counted; above
/// a hundred records the operation raises an alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_operations_need_a_fresh_single_use_confirmation() {
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    })
    .await;
    let (t, key) = setup(&v).await;
    let other = v.key(&t.admin, &["keeper"]).await;
    let records: Vec<Value> = (0..105)
        .map(|i| json!({"fields": {"email": format!("p{i}@example.com"), "name": "Same Name"}}))
        .collect();
    let r = v
        .post(
            &format!("{PEOPLE}/batch"),
            &key,
            Some("support"),
            json!({"records": records}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let ids: Vec<String> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let bulk = |token: &str, body: Value| {
        let (v, token) = (&v, token.to_owned());
        async move {
            v.post(
                &format!("{PEOPLE}/bulk-delete"),
                &token,
                Some("support"),
                body,
            )
            .await
        }
    };
    let live = |v: &TestVault| {
        v.sqlite()
            .query_row("SELECT count(*) FROM records WHERE state = 0", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
    };
    // Bad first steps change nothing.
    for bad in [
        json!({}),
        json!({"ids": []}),
        json!({"ids": [ids[0], ids[0]]}),
        json!({"ids": [ids[0], "rec_00000000000000000000000000000000"]}),
        json!({"ids": [ids[0]], "where": {"email": "p1@example.com"}}),
        json!({"ids": ["nope"]}),
    ] {
        let r = bulk(&key, bad.clone()).await;
        assert!(r.status >= 400 && r.status < 500, "{bad}: {}", r.text);
    }
    assert_eq!(live(&v), 105);
    // Three by id: counted, nothing done yet.
    let r = bulk(&key, json!({"ids": &ids[..3]})).await;
    assert_eq!(
        (
            r.status,
            r.body["status"].as_str(),
            r.body["count"].as_u64()
        ),
        (200, Some("confirm"), Some(3)),
        "{}",
        r.text
    );
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(live(&v), 105);
    // Another caller cannot use it; a stale one neither.
    let r = bulk(&other, json!({"confirm": token})).await;
    assert_eq!(r.status, 412, "{}", r.text);
    let r = bulk(&key, json!({"confirm": token, "ids": [ids[4]]})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = bulk(&key, json!({"confirm": token})).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("done")),
        "{}",
        r.text
    );
    assert_eq!(live(&v), 102);
    let r = bulk(&key, json!({"confirm": token})).await;
    assert_eq!(r.status, 412, "single use: {}", r.text);
    assert!(r.text.contains("used already"), "{}", r.text);
    let r = bulk(&key, json!({"ids": &ids[3..5]})).await;
    let late = r.body["token"].as_str().unwrap().to_owned();
    v.clock.advance_ms(5 * 60_000 + 1);
    let r = bulk(&key, json!({"confirm": late})).await;
    assert_eq!(r.status, 412, "{}", r.text);
    assert!(r.text.contains("expired"), "{}", r.text);
    assert_eq!(live(&v), 102);
    // By a search: every record with that e-mail (one), then the rest (above the threshold).
    let r = bulk(&key, json!({"where": {"email": "p7@example.com"}})).await;
    assert_eq!(r.body["count"], 1, "{}", r.text);
    let rest: Vec<&String> = ids[3..].iter().collect();
    let r = bulk(&key, json!({"ids": rest})).await;
    assert_eq!(r.body["count"], 102, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_owned();
    let r = bulk(&key, json!({"confirm": token})).await;
    assert_eq!(r.body["status"], "done", "{}", r.text);
    assert_eq!(live(&v), 0);
    let alerts = v
        .get(
            "/v1/audit/entries?action=alert.bulk_operation",
            &t.admin,
            None,
        )
        .await;
    assert_eq!(
        alerts.body["entries"].as_array().unwrap().len(),
        1,
        "{}",
        alerts.text
    );
    // Restoring many: the admin, two steps too.
    let restore = |body: Value| {
        let v = &v;
        let admin = t.admin.clone();
        async move {
            v.post(&format!("{PEOPLE}/bulk-restore"), &admin, None, body)
                .await
        }
    };
    assert_eq!(
        v.post(
            &format!("{PEOPLE}/bulk-restore"),
            &key,
            None,
            json!({"ids": &ids[..2]})
        )
        .await
        .status,
        403
    );
    let r = restore(json!({"ids": &ids[..2]})).await;
    let token = r.body["token"].as_str().unwrap().to_owned();
    // Two confirmations at once: exactly one acts.
    let (r1, r2) = tokio::join!(
        restore(json!({"confirm": token})),
        restore(json!({"confirm": token}))
    );
    let done: Vec<_> = [&r1, &r2]
        .iter()
        .filter(|r| r.body["status"] == "done")
        .map(|r| r.body["count"].as_u64())
        .collect();
    assert_eq!(done, [Some(2)], "{} / {}", r1.text, r2.text);
    assert_eq!(live(&v), 2);
    v.assert_audit_verifies().await;
}

/// A reader that keeps the write-ahead log busy (as steady traffic does) does not make the
/// purge fail: the records are destroyed, the run retries the scrub a few times, then ends
/// without an error (it used to fail with `unavailable` and raise `job_failed`); once the
/// reader is gone the next run truncates the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_log_does_not_fail_the_purge() {
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    })
    .await;
    let (t, key) = setup(&v).await;
    let op = operator(&v).await;
    let mut schema = strongroom_testkit::people_schema();
    schema["purge_grace_days"] = json!(0);
    assert_eq!(
        v.put("/v1/collections/people", &t.admin, schema)
            .await
            .status,
        200
    );
    let (id, _) = create(&v, &key, json!({"fields": {"email": "busy@example.com"}})).await;
    let data: Vec<u8> = v
        .sqlite()
        .query_row("SELECT data FROM records WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(delete(&v, &key, &id).await.status, 204);
    let files = || {
        ["strongroom.db", "strongroom.db-wal"]
            .iter()
            .filter_map(|f| std::fs::read(v.data_path().join(f)).ok())
            .any(|bytes| strongroom_testkit::contains(&bytes, &data))
    };
    let reader = v.sqlite();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM records;")
        .unwrap();
    let job = purge_now(&v, &op).await;
    assert_eq!(
        (job["state"].as_str(), &job["last_error"]),
        (Some("idle"), &Value::Null),
        "{job}"
    );
    let n: i64 = v
        .sqlite()
        .query_row("SELECT count(*) FROM records WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 0, "the record is destroyed all the same");
    assert!(
        files(),
        "the reader kept the log, with the old pages, from being truncated (else this test proves nothing)"
    );
    reader.execute_batch("COMMIT;").unwrap();
    drop(reader);
    let job = purge_now(&v, &op).await;
    assert_eq!(job["last_error"], Value::Null, "{job}");
    assert!(
        !files(),
        "the next run truncated the log: the ciphertext is gone from the files"
    );
}
