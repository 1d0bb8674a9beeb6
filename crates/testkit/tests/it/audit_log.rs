//! The tamper-evident log: checkpoints and proofs a client can verify, offline verification of
//! a data directory and of an exported bundle, and hundreds of tampering cases, all caught.

use std::sync::Arc;

use serde_json::json;
use strongroom_core::checkpoint::CheckpointRow;
use strongroom_core::verify::Target;
use strongroom_crypto::merkle::{verify_consistency, verify_inclusion, Hash};
use strongroom_crypto::unhex;
use strongroom_server::audit_tools::{self, VerifyError};
use strongroom_store_sqlite::SqliteStore;
use strongroom_testkit::TestVault;

const PEOPLE: &str = "/v1/collections/people/records";

fn h(s: &str) -> Hash {
    unhex(s).unwrap().try_into().unwrap()
}

/// A vault with some history in its tenant log, stopped (so the final checkpoint is signed).
async fn history() -> (TestVault, String) {
    let mut v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    for i in 0..12 {
        let id = v
            .store_person(&app, json!({"email": format!("p{i}@example.com")}))
            .await;
        v.get(&format!("{PEOPLE}/{id}"), &app, Some("support"))
            .await;
        v.get(&format!("{PEOPLE}/{id}"), &app, Some("marketing"))
            .await;
    }
    v.stop().await;
    (v, t.id)
}

pub(crate) fn open_copy(v: &TestVault) -> (tempfile::TempDir, std::path::PathBuf) {
    let db = v.data_path().join("strongroom.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    drop(c);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    (dir, copy)
}

pub(crate) async fn verify_db(path: &std::path::Path) -> Result<audit_tools::Report, VerifyError> {
    let store = SqliteStore::open(path, Default::default()).unwrap();
    let key = audit_tools::stored_public_key(&store).await.unwrap();
    audit_tools::verify_store(&store, &key, None).await
}

#[tokio::test]
async fn clients_verify_checkpoints_and_proofs_themselves() {
    let v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    for i in 0..5 {
        v.store_person(&app, json!({"email": format!("p{i}@example.com")}))
            .await;
    }
    let pk = v.get("/v1/audit/public-key", "", None).await;
    let pk: [u8; 32] = unhex(pk.body["ed25519"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let first = v.get("/v1/audit/checkpoints/latest", &t.admin, None).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let first: strongroom_proto::Checkpoint = serde_json::from_value(first.body).unwrap();
    let first_row = CheckpointRow::from_proto(&first).unwrap();
    assert!(
        first_row.verify_signature(&pk),
        "the checkpoint is signed by the published key"
    );
    for i in 5..9 {
        v.store_person(&app, json!({"email": format!("p{i}@example.com")}))
            .await;
    }
    let second: strongroom_proto::Checkpoint = serde_json::from_value(
        v.get("/v1/audit/checkpoints/latest", &t.admin, None)
            .await
            .body,
    )
    .unwrap();
    let second_row = CheckpointRow::from_proto(&second).unwrap();
    assert!(second.size > first.size && second.seq == first.seq + 1);
    assert_eq!(second_row.prev, first_row.hash(), "checkpoints are chained");

    for seq in [1, first.size / 2, first.size, second.size] {
        let p = v
            .get(
                &format!("/v1/audit/proofs/inclusion?seq={seq}&size={}", second.size),
                &t.admin,
                None,
            )
            .await;
        assert_eq!(p.status, 200, "{}", p.text);
        let proof: Vec<Hash> = p.body["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| h(x.as_str().unwrap()))
            .collect();
        assert!(verify_inclusion(
            &h(p.body["leaf_hash"].as_str().unwrap()),
            seq - 1,
            second.size,
            &proof,
            &second_row.root
        ));
    }
    let c = v
        .get(
            &format!(
                "/v1/audit/proofs/consistency?from={}&to={}",
                first.size, second.size
            ),
            &t.admin,
            None,
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.text);
    let proof: Vec<Hash> = c.body["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| h(x.as_str().unwrap()))
        .collect();
    assert!(verify_consistency(
        first.size,
        second.size,
        &first_row.root,
        &second_row.root,
        &proof
    ));
    let bad = v
        .get("/v1/audit/proofs/inclusion?seq=0", &t.admin, None)
        .await;
    assert_eq!(bad.status, 400);
    let bad = v
        .get("/v1/audit/proofs/inclusion?seq=1&evil=1", &t.admin, None)
        .await;
    assert_eq!((bad.status, bad.code()), (400, "unknown_field"));
    assert_eq!(
        v.get("/v1/audit/checkpoints/latest", &app, None)
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn who_accessed_this_person() {
    let v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    let r = v
        .post(
            PEOPLE,
            &app,
            Some("support"),
            json!({"subject_ref": "crm-7", "fields": {"email": "a@example.com"}}),
        )
        .await;
    let (id, subject) = (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["subject"].as_str().unwrap().to_owned(),
    );
    let other = v
        .store_person(&app, json!({"email": "b@example.com"}))
        .await;
    v.get(&format!("{PEOPLE}/{id}"), &app, Some("support"))
        .await;
    v.get(&format!("{PEOPLE}/{id}"), &app, Some("marketing"))
        .await;
    v.post(
        &format!("{PEOPLE}/lookup"),
        &app,
        Some("support"),
        json!({"ids": [id, other]}),
    )
    .await;
    v.get(&format!("{PEOPLE}/{other}"), &app, Some("support"))
        .await;
    let r = v
        .get(
            &format!("/v1/audit/subjects/{subject}/accesses"),
            &t.admin,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let acts: Vec<(String, String, Option<String>)> = r.body["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().into(),
                a["outcome"].as_str().unwrap().into(),
                a["purpose"].as_str().map(Into::into),
            )
        })
        .collect();
    assert_eq!(
        acts,
        [
            ("record.create".into(), "ok".into(), Some("support".into())),
            ("record.read".into(), "ok".into(), Some("support".into())),
            (
                "record.batch_read".into(),
                "ok".into(),
                Some("support".into())
            ),
        ]
    );
    assert_eq!(r.body["accesses"][1]["fields"], json!(["email"]));
    // The denied attempt is in the trail with the record it aimed at, not among the accesses.
    let denied = v
        .get(
            "/v1/audit/entries?action=record.read&outcome=denied",
            &t.admin,
            None,
        )
        .await;
    assert_eq!(denied.body["entries"][0]["records"], json!([id]));
    assert_eq!(
        v.get("/v1/audit/subjects/nobody/accesses", &t.admin, None)
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn a_fresh_history_verifies_offline_and_as_a_bundle() {
    let (v, tenant) = history().await;
    let report = verify_db(&v.data_path().join("strongroom.db"))
        .await
        .unwrap();
    let log = report.logs.iter().find(|l| l.log == tenant).unwrap();
    assert!(log.entries >= 36, "{log:?}");
    assert_eq!(
        log.not_yet_checkpointed(),
        0,
        "stopping signs a final checkpoint"
    );
    assert!(report.entries_per_second > 0.0);

    let store =
        SqliteStore::open(&v.data_path().join("strongroom.db"), Default::default()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("bundle");
    let n = audit_tools::export(&store, &bundle).await.unwrap();
    assert_eq!(n, report.logs.iter().map(|l| l.entries).sum::<u64>());
    let key = audit_tools::bundle_public_key(&bundle).unwrap();
    let r = audit_tools::verify_bundle(&bundle, &key, None).unwrap();
    assert_eq!(r.logs.len(), report.logs.len());
    assert!(
        audit_tools::export(&store, &bundle).await.is_err(),
        "never overwrites a bundle"
    );
    for file in ["entries.jsonl", "checkpoints.jsonl", "public-key.txt"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(bundle.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} is owner-only");
    }

    // Edit one line of the bundle: named.
    let path = bundle.join("entries.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let victim = lines
        .iter()
        .position(|l| l.contains("\"outcome\":\"denied\""))
        .unwrap();
    let seq: u64 = serde_json::from_str::<serde_json::Value>(&lines[victim]).unwrap()["seq"]
        .as_u64()
        .unwrap();
    lines[victim] = lines[victim].replace("\"outcome\":\"denied\"", "\"outcome\":\"ok\"");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    match audit_tools::verify_bundle(&bundle, &key, None) {
        Err(VerifyError::Failed(f)) => assert_eq!(f.target, Target::Entry(seq + 1), "{f}"),
        other => panic!("edit not caught: {other:?}"),
    }
    // A different key does not verify the bundle.
    let other = strongroom_crypto::sign::public_key(&strongroom_core::rng::RngExt::key(
        &strongroom_core::OsRng,
    ));
    std::fs::write(&path, text).unwrap();
    assert!(audit_tools::verify_bundle(&bundle, &other, None).is_err());
}

/// One kind of tampering, applied through SQL to a copy of the database.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    EditBody,
    EditBodyAndHash,
    Delete,
    Swap,
    Truncate,
    AppendCopy,
    EditCheckpoint,
    DeleteCheckpoint,
}

fn leaf_hex(body: &str) -> Vec<u8> {
    strongroom_crypto::merkle::leaf_hash(body.as_bytes()).to_vec()
}

fn apply(db: &std::path::Path, log: &str, kind: Tamper, seq: i64, size: i64) {
    let c = rusqlite::Connection::open(db).unwrap();
    let body = |s: i64| -> String {
        c.query_row(
            "SELECT body FROM audit WHERE log = ?1 AND seq = ?2",
            rusqlite::params![log, s],
            |r| r.get(0),
        )
        .unwrap()
    };
    match kind {
        Tamper::EditBody | Tamper::EditBodyAndHash => {
            let b = body(seq);
            let edited = if b.contains("\"outcome\":\"ok\"") {
                b.replace("\"outcome\":\"ok\"", "\"outcome\":\"denied\"")
            } else {
                b.replace("\"outcome\":\"", "\"outcome\":\"x")
            };
            assert_ne!(b, edited);
            c.execute(
                "UPDATE audit SET body = ?3 WHERE log = ?1 AND seq = ?2",
                rusqlite::params![log, seq, edited],
            )
            .unwrap();
            if matches!(kind, Tamper::EditBodyAndHash) {
                c.execute(
                    "UPDATE audit SET hash = ?3 WHERE log = ?1 AND seq = ?2",
                    rusqlite::params![log, seq, leaf_hex(&edited)],
                )
                .unwrap();
            }
        }
        Tamper::Delete => {
            c.execute(
                "DELETE FROM audit WHERE log = ?1 AND seq = ?2",
                rusqlite::params![log, seq],
            )
            .unwrap();
        }
        Tamper::Swap => {
            let other = if seq < size { seq + 1 } else { seq - 1 };
            let (a, b) = (body(seq), body(other));
            for (s, bd) in [(seq, &b), (other, &a)] {
                c.execute(
                    "UPDATE audit SET body = ?3, hash = ?4 WHERE log = ?1 AND seq = ?2",
                    rusqlite::params![log, s, bd, leaf_hex(bd)],
                )
                .unwrap();
            }
        }
        Tamper::Truncate => {
            c.execute(
                "DELETE FROM audit WHERE log = ?1 AND seq >= ?2",
                rusqlite::params![log, seq],
            )
            .unwrap();
        }
        Tamper::AppendCopy => {
            c.execute(
                "INSERT INTO audit (log, seq, body, hash)
                 SELECT log, ?3, body, hash FROM audit WHERE log = ?1 AND seq = ?2",
                rusqlite::params![log, seq, size + 1],
            )
            .unwrap();
        }
        Tamper::EditCheckpoint => {
            let n: i64 = c
                .query_row(
                    "SELECT count(*) FROM audit_checkpoints WHERE log = ?1",
                    [log],
                    |r| r.get(0),
                )
                .unwrap();
            let which = 1 + seq % n;
            let column = [
                "size = size - 1",
                "time = time + 1",
                "root = randomblob(32)",
                "prev = randomblob(32)",
            ][(seq % 4) as usize];
            c.execute(
                &format!("UPDATE audit_checkpoints SET {column} WHERE log = ?1 AND seq = ?2"),
                rusqlite::params![log, which],
            )
            .unwrap();
        }
        Tamper::DeleteCheckpoint => {
            let n: i64 = c
                .query_row(
                    "SELECT count(*) FROM audit_checkpoints WHERE log = ?1",
                    [log],
                    |r| r.get(0),
                )
                .unwrap();
            if n < 2 {
                c.execute("DELETE FROM audit_checkpoints WHERE log = ?1", [log])
                    .unwrap();
                // With no checkpoint left, only the head remains as a witness: remove an entry too.
                c.execute(
                    "DELETE FROM audit WHERE log = ?1 AND seq = ?2",
                    rusqlite::params![log, seq],
                )
                .unwrap();
            } else {
                c.execute(
                    "DELETE FROM audit_checkpoints WHERE log = ?1 AND seq = ?2",
                    rusqlite::params![log, 1 + seq % (n - 1)],
                )
                .unwrap();
            }
        }
    }
}

#[tokio::test]
async fn hundreds_of_tampering_cases_are_all_caught() {
    let mut v = TestVault::start_with(strongroom_server::ServeOptions {
        checkpoint_every_entries: 7,
        ..Default::default()
    })
    .await;
    let (t, app) = v.scenario("acme").await;
    for i in 0..15 {
        let id = v
            .store_person(&app, json!({"email": format!("p{i}@example.com")}))
            .await;
        v.get(&format!("{PEOPLE}/{id}"), &app, Some("support"))
            .await;
        v.get(&format!("{PEOPLE}/{id}"), &app, Some("marketing"))
            .await;
        if i % 4 == 0 {
            // Several checkpoints along the way.
            v.running_vault().checkpoint(&t.id).await.unwrap();
        }
    }
    v.stop().await;
    let (_keep, pristine) = open_copy(&v);
    let intact = verify_db(&pristine).await.unwrap();
    let size = intact.logs.iter().find(|l| l.log == t.id).unwrap().entries as i64;
    assert!(size >= 45, "{size}");

    let kinds = [
        Tamper::EditBody,
        Tamper::EditBodyAndHash,
        Tamper::Delete,
        Tamper::Swap,
        Tamper::Truncate,
        Tamper::AppendCopy,
        Tamper::EditCheckpoint,
        Tamper::DeleteCheckpoint,
    ];
    let mut cases = 0;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for kind in kinds {
        for _ in 0..32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let seq = 1 + (rng % size as u64) as i64;
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("t.db");
            std::fs::copy(&pristine, &db).unwrap();
            apply(&db, &t.id, kind, seq, size);
            match verify_db(&db).await {
                Err(VerifyError::Failed(f)) => {
                    assert_eq!(f.log, t.id, "{kind:?} at {seq}: {f}");
                    if let (Tamper::EditBody | Tamper::Delete, Target::Entry(named)) =
                        (kind, &f.target)
                    {
                        assert_eq!(
                            *named as i64, seq,
                            "{kind:?}: the tampered entry itself is named ({f})"
                        );
                    }
                }
                other => panic!("{kind:?} at seq {seq} was not caught: {other:?}"),
            }
            cases += 1;
        }
    }
    assert_eq!(cases, 256);
    let _ = Arc::new(());
}

#[tokio::test]
async fn many_concurrent_writers_leave_one_verifiable_log() {
    let mut v = TestVault::start_with(strongroom_server::ServeOptions {
        checkpoint_every_entries: 25,
        checkpoint_every: std::time::Duration::from_millis(50),
        ..Default::default()
    })
    .await;
    let (t, app) = v.scenario("acme").await;
    let mut tasks = Vec::new();
    for i in 0..150 {
        let (client, url, app) = (v.client.clone(), format!("{}{PEOPLE}", v.base), app.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(app)
                .header("X-Purpose", "support")
                .json(&json!({"fields": {"email": format!("c{i}@example.com")}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 201);
    }
    v.stop().await;
    let report = verify_db(&v.data_path().join("strongroom.db"))
        .await
        .unwrap();
    let log = report.logs.iter().find(|l| l.log == t.id).unwrap();
    assert!(log.entries >= 150 && log.checkpoints >= 2, "{log:?}");
    assert_eq!(log.not_yet_checkpointed(), 0);
}

/// Verification of a serving vault: the log grows while it is read (entries, head, subject
/// rows and tree nodes are separate reads), and no pass may mistake that for tampering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifying_a_log_that_grows_meanwhile_never_fails() {
    let v = TestVault::start_with(strongroom_server::ServeOptions {
        audit_verify_every: None,
        checkpoint_every_entries: 16,
        checkpoint_every: std::time::Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let (_, app) = v.scenario("acme").await;
    let id = v
        .store_person(&app, json!({"email": "p@example.com"}))
        .await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (client, url, app, stop) = (
            v.client.clone(),
            format!("{}{PEOPLE}/{id}", v.base),
            app.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Each read appends an entry naming the subject (a subject row) to the log.
                let r = client
                    .get(&url)
                    .bearer_auth(&app)
                    .header("X-Purpose", "support")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                n += 1;
            }
            n
        }));
    }
    let vault = v.running_vault();
    let key = vault.public_key().unwrap();
    let mut passes = 0;
    let mut grew = 0;
    while passes < 40 {
        let before = vault.store().find_audit_heads().await.unwrap();
        let r = audit_tools::verify_store(vault.store().as_ref(), &key, None).await;
        let after = vault.store().find_audit_heads().await.unwrap();
        if let Err(e) = r {
            panic!("pass {passes} failed on a growing log: {e}");
        }
        passes += 1;
        grew += usize::from(before != after);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = 0;
    for w in writers {
        reads += w.await.unwrap();
    }
    // The race was run: the log grew during most passes.
    assert!(
        grew >= 20 && reads > 40,
        "grew during {grew} passes, {reads} reads"
    );
}

#[tokio::test]
async fn audit_entries_and_alerts_stream_to_a_siem_file() {
    let dir = tempfile::tempdir().unwrap();
    let stream = dir.path().join("siem.jsonl");
    let v = TestVault::start_with(strongroom_server::ServeOptions {
        audit_stream: Some(strongroom_server::siem::Target::File(stream.clone())),
        alerts: strongroom_server::siem::AlertRules {
            export_records: 3,
            denial_burst: 4,
        },
        ..Default::default()
    })
    .await;
    let (_, app) = v.scenario("acme").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            v.store_person(&app, json!({"email": format!("s{i}@example.com")}))
                .await,
        );
    }
    v.post(
        &format!("{PEOPLE}/lookup"),
        &app,
        Some("support"),
        json!({"ids": ids}),
    )
    .await;
    for _ in 0..4 {
        v.get(&format!("{PEOPLE}/{}", ids[0]), &app, Some("marketing"))
            .await;
    }
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(&stream).unwrap_or_default();
        if text.contains("large_export") && text.contains("denial_burst") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(text.contains("\"alert\":\"large_export\""), "{text}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&stream).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the audit stream file is owner-only");
    }
    assert!(text.contains("\"alert\":\"denial_burst\""), "{text}");
    let entries = text
        .lines()
        .filter(|l| l.contains("\"action\":\"record.create\"") && !l.contains("\"alert\""))
        .count();
    assert_eq!(entries, 3, "every entry streams once");
    assert!(
        !text.contains("s0@example.com"),
        "no personal data in the stream"
    );
}

/// Checkpoints, inclusion proofs and consistency proofs check with independent implementations
/// of C2SP signed-note, tlog-checkpoint and RFC 6962 (the `signed_note` and `tlog_tiles`
/// crates), using nothing but the published key — as a transparency witness would.
#[tokio::test]
async fn checkpoints_and_proofs_check_with_independent_implementations() {
    use signed_note::{Note, VerifierList};
    let v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    for i in 0..300 {
        v.store_person(&app, json!({"email": format!("p{i}@example.com")}))
            .await;
    }
    let pk: [u8; 32] = unhex(
        v.get("/v1/audit/public-key", "", None).await.body["ed25519"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let name = strongroom_core::checkpoint::key_name(&pk);
    let vkey = signed_note::new_ed25519_verifier_key(
        &name,
        &ed25519_dalek::VerifyingKey::from_bytes(&pk).unwrap(),
    );
    let verifiers = || {
        VerifierList::new(vec![Box::new(
            signed_note::StandardVerifier::new(&vkey).unwrap(),
        )])
    };
    let first = latest_checkpoint(&v, &t.admin).await;
    for i in 300..310 {
        v.store_person(&app, json!({"email": format!("p{i}@example.com")}))
            .await;
    }
    let second = latest_checkpoint(&v, &t.admin).await;
    let mut checkpoints = Vec::new();
    for c in [&first, &second] {
        let text = c.note.as_ref().expect("a C2SP signed note");
        let note = Note::from_bytes(text.as_bytes()).unwrap();
        note.verify(&verifiers()).expect("the note verifies");
        let cp = tlog_tiles::Checkpoint::from_bytes(note.text()).unwrap();
        assert_eq!(cp.origin(), format!("{name}/{}", t.id));
        assert_eq!(cp.size(), c.size);
        assert_eq!(strongroom_crypto::hex(&cp.hash().0), c.root);
        // Any changed byte of the note fails with the independent verifier.
        for i in (0..text.len()).step_by(7) {
            let mut bytes = text.clone().into_bytes();
            bytes[i] ^= 0x01;
            let ok = Note::from_bytes(&bytes)
                .ok()
                .and_then(|n| n.verify(&verifiers()).ok().map(|_| n))
                .and_then(|n| tlog_tiles::Checkpoint::from_bytes(n.text()).ok())
                .is_some_and(|cp| cp.size() == c.size && cp.hash().0 == h(&c.root));
            assert!(!ok, "byte {i} changed and the note still checks");
        }
        checkpoints.push(cp);
    }
    let (old, new) = (&checkpoints[0], &checkpoints[1]);
    assert!(
        new.size() > old.size() && old.size() > 256,
        "nodes are stored by then"
    );
    let hashes = |v: &serde_json::Value| -> Vec<tlog_tiles::Hash> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| tlog_tiles::Hash(h(x.as_str().unwrap())))
            .collect()
    };
    for seq in [1, 2, 255, 256, 257, old.size(), new.size()] {
        let p = v
            .get(
                &format!("/v1/audit/proofs/inclusion?seq={seq}&size={}", new.size()),
                &t.admin,
                None,
            )
            .await;
        assert_eq!(p.status, 200, "{}", p.text);
        let leaf = tlog_tiles::Hash(h(p.body["leaf_hash"].as_str().unwrap()));
        tlog_tiles::check_record(
            &hashes(&p.body["proof"]),
            new.size(),
            *new.hash(),
            seq - 1,
            leaf,
        )
        .unwrap_or_else(|e| panic!("inclusion of {seq}: {e:?}"));
    }
    for from in [1, 256, old.size()] {
        let p = v
            .get(
                &format!("/v1/audit/proofs/consistency?from={from}&to={}", new.size()),
                &t.admin,
                None,
            )
            .await;
        assert_eq!(p.status, 200, "{}", p.text);
        let from_root = tlog_tiles::Hash(h(p.body["from_root"].as_str().unwrap()));
        tlog_tiles::check_tree(
            &hashes(&p.body["proof"]),
            new.size(),
            *new.hash(),
            from,
            from_root,
        )
        .unwrap_or_else(|e| panic!("consistency from {from}: {e:?}"));
        if from == old.size() {
            assert_eq!(from_root, *old.hash(), "the old checkpoint's root");
        }
    }
}

async fn latest_checkpoint(v: &TestVault, admin: &str) -> strongroom_proto::Checkpoint {
    let r = v.get("/v1/audit/checkpoints/latest", admin, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    serde_json::from_value(r.body).unwrap()
}

/// An external witness that cosigns the published checkpoints (C2SP tlog-cosignature): only
/// cosigned checkpoints count when its key is given, a forged cosignature is refused, and a log
/// cut below a cosigned checkpoint fails verification.
#[tokio::test]
async fn checkpoints_cosigned_by_an_external_witness_are_checked() {
    use strongroom_core::checkpoint::Cosigner;
    use strongroom_core::rng::RngExt;
    use strongroom_server::witness::Witnessed;
    let tmp = tempfile::tempdir().unwrap();
    let published = tmp.path().join("published");
    let mut v = TestVault::start_with(strongroom_server::ServeOptions {
        witness_dir: Some(published.clone()),
        ..Default::default()
    })
    .await;
    let (t, app) = v.scenario("acme").await;
    for i in 0..5 {
        v.store_person(&app, json!({"email": format!("p{i}@example.com")}))
            .await;
    }
    let pk = v.running_vault().public_key().unwrap();
    v.stop().await;

    // The witness, elsewhere, cosigns what the server published.
    let witness_key = strongroom_core::OsRng.key();
    let w = Cosigner {
        name: "witness.example/w1".into(),
        public_key: strongroom_crypto::sign::public_key(&witness_key),
    };
    let kept = tmp.path().join("kept");
    std::fs::create_dir(&kept).unwrap();
    let note = std::fs::read_to_string(published.join(format!("{}.checkpoint", t.id))).unwrap();
    let row = CheckpointRow::from_note(&note, &pk).unwrap();
    let cosigned = format!(
        "{note}{}",
        w.sign_line(&witness_key, &row.text(), 1_767_225_600)
    );
    std::fs::write(kept.join("acme.checkpoint"), &cosigned).unwrap();

    let held = Witnessed::load(&kept, &pk, std::slice::from_ref(&w)).unwrap();
    assert_eq!(held.len(), 1);
    let (_keep, db) = open_copy(&v);
    let store = SqliteStore::open(&db, Default::default()).unwrap();
    audit_tools::verify_store(&store, &pk, Some(&held))
        .await
        .unwrap();

    // Checkpoints without its cosignature do not count for it...
    let err = Witnessed::load(&published, &pk, std::slice::from_ref(&w)).unwrap_err();
    assert!(
        err.contains("no checkpoint cosigned by witness.example/w1"),
        "{err}"
    );
    // ...and a cosignature made with another key is refused.
    let forged = format!(
        "{note}{}",
        w.sign_line(&strongroom_core::OsRng.key(), &row.text(), 1_767_225_600)
    );
    std::fs::write(kept.join("acme.checkpoint"), &forged).unwrap();
    assert!(Witnessed::load(&kept, &pk, std::slice::from_ref(&w)).is_err());

    // A log cut below the cosigned checkpoint fails against it.
    std::fs::write(kept.join("acme.checkpoint"), &cosigned).unwrap();
    drop(store);
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute(
        "DELETE FROM audit WHERE log = ?1 AND seq = (SELECT max(seq) FROM audit WHERE log = ?1)",
        [&t.id],
    )
    .unwrap();
    drop(c);
    let store = SqliteStore::open(&db, Default::default()).unwrap();
    let held = Witnessed::load(&kept, &pk, std::slice::from_ref(&w)).unwrap();
    assert!(matches!(
        audit_tools::verify_store(&store, &pk, Some(&held)).await,
        Err(VerifyError::Failed(_))
    ));
}

/// Hash tiles in the C2SP tlog-tiles layout (height 8).
struct Tiles(std::collections::HashMap<String, Vec<u8>>);

impl tlog_tiles::TileReader for Tiles {
    fn height(&self) -> u8 {
        8
    }
    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                self.0
                    .get(&t.path())
                    .cloned()
                    .ok_or(tlog_tiles::Error::InvalidTile)
            })
            .collect()
    }
    fn save_tiles(&self, _: &[tlog_tiles::Tile], _: &[Vec<u8>]) {}
}

/// An independent verifier (the `tlog_tiles` crate) downloads the tree's hash tiles, checks them
/// against a signed checkpoint and builds inclusion and consistency proofs itself; they equal
/// the server's. A tile with one changed byte is rejected by it.
#[tokio::test]
async fn hash_tiles_let_an_independent_verifier_build_proofs() {
    let v = TestVault::start().await;
    let (t, app) = v.scenario("acme").await;
    for i in 0..600 {
        v.store_person(&app, json!({"email": format!("p{i}@example.com")}))
            .await;
    }
    let cp = latest_checkpoint(&v, &t.admin).await;
    let (size, root) = (cp.size, tlog_tiles::Hash(h(&cp.root)));
    assert!(size > 512);
    let fetch = |path: String| {
        let req = v
            .client
            .get(format!("{}/v1/audit/{path}", v.base))
            .bearer_auth(&t.admin);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        }
    };
    let mut tiles = std::collections::HashMap::new();
    for level in 0u8.. {
        let count = size >> (8 * u32::from(level));
        if count == 0 {
            break;
        }
        for n in 0..=(count - 1) / 256 {
            let w = (count - n * 256).min(256) as u32;
            let tile = tlog_tiles::Tile::new(8, level, n, w, false);
            let (status, bytes) = fetch(tile.path()).await;
            assert_eq!(status, 200, "{}", tile.path());
            assert_eq!(bytes.len(), 32 * w as usize);
            tiles.insert(tile.path(), bytes);
        }
    }
    assert!(tiles.len() >= 4, "{:?}", tiles.keys());
    let reader = Tiles(tiles);
    let hashes = tlog_tiles::TileHashReader::new(size, root, &reader);
    assert_eq!(tlog_tiles::tree_hash(size, &hashes).unwrap(), root);
    let ours = |v: &serde_json::Value| -> Vec<tlog_tiles::Hash> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| tlog_tiles::Hash(h(x.as_str().unwrap())))
            .collect()
    };
    for n in [0, 1, 255, 256, 511, size - 1] {
        let theirs = tlog_tiles::prove_record(size, n, &hashes).unwrap();
        let p = v
            .get(
                &format!("/v1/audit/proofs/inclusion?seq={}&size={size}", n + 1),
                &t.admin,
                None,
            )
            .await;
        assert_eq!(ours(&p.body["proof"]), theirs, "inclusion of {n}");
    }
    for old in [1, 256, 300, size - 1] {
        let theirs = tlog_tiles::prove_tree(size, old, &hashes).unwrap();
        let p = v
            .get(
                &format!("/v1/audit/proofs/consistency?from={old}&to={size}"),
                &t.admin,
                None,
            )
            .await;
        assert_eq!(ours(&p.body["proof"]), theirs, "consistency from {old}");
    }
    // A changed byte in any tile is caught by the independent verifier: a tile it reads is
    // checked against its parent, and a proof built from a spoiled tile does not check against
    // the signed root. (Its tile check alone skips some tiles when several subtrees of the
    // tree head share a tile, so the proofs are checked too, as a client would.)
    let leaf = |n: u64| {
        tlog_tiles::HashReader::read_hashes(&hashes, &[tlog_tiles::stored_hash_index(0, n)])
            .unwrap()[0]
    };
    let sample: Vec<u64> = (0..size).step_by(7).collect();
    for path in reader.0.keys() {
        let mut spoiled = reader.0.clone();
        spoiled.get_mut(path).unwrap()[5] ^= 1;
        let spoiled = Tiles(spoiled);
        let bad = tlog_tiles::TileHashReader::new(size, root, &spoiled);
        let all_ok = tlog_tiles::tree_hash(size, &bad).is_ok()
            && sample.iter().all(|&n| {
                tlog_tiles::prove_record(size, n, &bad)
                    .is_ok_and(|p| tlog_tiles::check_record(&p, size, root, n, leaf(n)).is_ok())
            });
        assert!(!all_ok, "a spoiled {path} was accepted");
    }
    // Tiles beyond the tree, other heights and data tiles are not found.
    for bad in [
        "tile/8/0/999",
        "tile/8/3/000",
        "tile/4/0/000",
        "tile/8/data/000",
        "tile/8/0/000.p/0",
    ] {
        assert_eq!(fetch(bad.to_owned()).await.0, 404, "{bad}");
    }
    // Only the log's auditors read its tiles.
    let r = v.get("/v1/audit/tile/8/0/000", &app, None).await;
    assert_eq!(r.status, 403, "{}", r.text);
}
