//! PostgreSQL in production: the link (every connection of the suite is TLS with a verified
//! server, plain TCP is refused, a server that cannot prove it is the one named is refused), and
//! rows someone spoiled in the database.

use serde_json::json;
use strongroom_server::ServeOptions;
use strongroom_store_postgres::{PgOptions, PgStore, Target};
use strongroom_testkit::{postgres, TestVault};

/// The test server's connection string without its TLS settings, and the CA file.
async fn parts() -> Option<(String, String)> {
    let url = postgres::fresh_database().await?;
    let ca = url
        .split_whitespace()
        .find_map(|w| w.strip_prefix("sslrootcert="))
        .expect("the test server is reached with a root certificate")
        .to_owned();
    let plain: Vec<&str> = url
        .split_whitespace()
        .filter(|w| !w.starts_with("sslmode=") && !w.starts_with("sslrootcert="))
        .collect();
    Some((plain.join(" "), ca))
}

async fn connects(conninfo: &str) -> Result<(), String> {
    let target = Target::parse(conninfo).map_err(|e| e.to_string())?;
    let client = target.connect().await.map_err(|e| e.to_string())?;
    client
        .simple_query("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_store_talks_to_postgres_over_verified_tls_only() {
    let Some((plain, ca)) = parts().await else {
        return;
    };
    // The store's own connections are encrypted.
    let url = format!("{plain} sslmode=verify-full sslrootcert={ca}");
    let _store = PgStore::open(&url, PgOptions::default()).await.unwrap();
    let client = postgres::connect(&url).await;
    let row = client
        .query_one(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the connection is not encrypted");
    assert!(row.get::<_, String>(1).starts_with("TLSv1."));

    // Plain TCP is refused by this server, so no test of the suite can have run without TLS.
    let err = connects(&format!("{plain} sslmode=disable"))
        .await
        .unwrap_err();
    assert!(
        err.contains("no encryption") || err.contains("pg_hba"),
        "{err}"
    );

    // A certificate from another CA (someone on the path): refused before any row is sent.
    let other = tempfile::NamedTempFile::new().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(other.path(), params.self_signed(&key).unwrap().pem()).unwrap();
    for mode in ["verify-full", "verify-ca", "require"] {
        let err = connects(&format!(
            "{plain} sslmode={mode} sslrootcert={}",
            other.path().display()
        ))
        .await
        .unwrap_err();
        assert!(err.contains("certificate"), "{mode}: {err}");
    }

    // The right CA but another name: verify-full refuses, verify-ca and require take it.
    let port = plain
        .split_whitespace()
        .find_map(|w| w.strip_prefix("port="))
        .unwrap();
    let misnamed = format!(
        "host=db.example hostaddr=127.0.0.1 port={port} user=strongroom dbname=postgres sslrootcert={ca}"
    );
    let err = connects(&format!("{misnamed} sslmode=verify-full"))
        .await
        .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    connects(&format!("{misnamed} sslmode=verify-ca"))
        .await
        .unwrap();
    connects(&format!("{misnamed} sslmode=require"))
        .await
        .unwrap();
    // Off loopback without any setting: verify-full, which wants the root named.
    let err = connects(&format!(
        "host=db.example hostaddr=127.0.0.1 port={port} user=strongroom"
    ))
    .await
    .unwrap_err();
    assert!(err.contains("sslrootcert"), "{err}");
}

/// Every spoiled row becomes a clear error for the request that reads it, never a panic, and
/// the node keeps answering everything else.
#[tokio::test]
async fn spoiled_rows_are_errors_not_panics() {
    let Some(url) = postgres::fresh_database().await else {
        return;
    };
    let v = TestVault::start_postgres(&url, None, ServeOptions::default()).await;
    let (t, app) = v.scenario("acme").await;
    let db = postgres::connect(&url).await;
    // Constraints go first, as an attacker holding the database would drop them.
    db.batch_execute(
        "ALTER TABLE records ALTER COLUMN created_at DROP NOT NULL;
         ALTER TABLE records ALTER COLUMN data DROP NOT NULL",
    )
    .await
    .unwrap();
    let spoil = [
        "UPDATE records SET version = -5 WHERE id = $1",
        "UPDATE records SET state = 9 WHERE id = $1",
        "UPDATE records SET created_at = NULL WHERE id = $1",
        "UPDATE records SET data = NULL WHERE id = $1",
        // Last: it spoils every record at once (a column of the wrong type).
        "ALTER TABLE records ALTER COLUMN updated_at TYPE TEXT",
    ];
    for (i, sql) in spoil.iter().enumerate() {
        let id = v
            .store_person(
                &app,
                json!({ "email": format!("p{i}@example.com"), "name": "P" }),
            )
            .await;
        if sql.contains("$1") {
            assert_eq!(db.execute(*sql, &[&id]).await.unwrap(), 1, "{sql}");
        } else {
            db.batch_execute(sql).await.unwrap();
        }
        let r = v
            .get(
                &format!("/v1/collections/people/records/{id}"),
                &app,
                Some("support"),
            )
            .await;
        assert_eq!(r.status, 500, "{sql}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "internal", "{sql}: {}", r.text);
        // The node still serves what is intact.
        let ok = v.get("/v1/collections", &t.admin, None).await;
        assert_eq!(ok.status, 200, "{sql}: {}", ok.text);
    }
}

/// A TCP relay to the test server that can lose the link at the worst moment: `Cut::Reply`
/// drops the next bytes the server sends (the answer to COMMIT, once the writer is about to
/// commit) and closes the connection; `Cut::Request` does so with the next bytes the client
/// sends (COMMIT itself never arrives).
mod relay {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    pub const PASS: u8 = 0;
    pub const CUT_REPLY: u8 = 1;
    pub const CUT_REQUEST: u8 = 2;

    pub async fn start(upstream: u16, mode: Arc<AtomicU8>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let (m1, m2) = (mode.clone(), mode.clone());
                tokio::spawn(async move {
                    // Whichever direction stops first closes the whole link.
                    tokio::select! {
                        _ = pump(cr, sw, m1, CUT_REQUEST) => {}
                        _ = pump(sr, cw, m2, CUT_REPLY) => {}
                    }
                });
            }
        });
        port
    }

    async fn pump(
        mut from: impl AsyncRead + Unpin,
        mut to: impl AsyncWrite + Unpin,
        mode: Arc<AtomicU8>,
        cut_on: u8,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if mode
                .compare_exchange(cut_on, PASS, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
}

/// The link fails during COMMIT. If the batch landed, the writer finds out (`txid_status`) and
/// acknowledges it — no failure is reported for a change that happened; if COMMIT never
/// arrived, the units fail and nothing of them is stored. The chain stays whole either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_resolved() {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;
    use strongroom_core::audit::{AuditEvent, PLATFORM_LOG};
    use strongroom_core::ids::{RequestId, TenantId};
    use strongroom_core::store::{FaultPoint, Faults, Op, StoreError, TenantRow, UnitOfWork};
    use strongroom_core::{OsRng, Store};

    let Some(url) = postgres::fresh_database().await else {
        return;
    };
    let port: u16 = url
        .split_whitespace()
        .find_map(|w| w.strip_prefix("port="))
        .unwrap()
        .parse()
        .unwrap();
    let mode = Arc::new(AtomicU8::new(relay::PASS));
    let relay_port = relay::start(port, mode.clone()).await;
    let via_relay = url.replace(&format!("port={port}"), &format!("port={relay_port}"));
    // At the commit point the test's chosen cut is armed.
    let next_cut = Arc::new(AtomicU8::new(relay::PASS));
    let arm = next_cut.clone();
    let armed_mode = mode.clone();
    let options = PgOptions {
        faults: Faults::new(move |p| {
            if p == FaultPoint::BeforeCommit {
                armed_mode.store(arm.swap(relay::PASS, Ordering::SeqCst), Ordering::SeqCst);
            }
        }),
        ..PgOptions::default()
    };
    let store = PgStore::open(&via_relay, options).await.unwrap();
    let unit = |name: &str| {
        let t = TenantRow {
            id: TenantId::generate(&OsRng),
            name: name.into(),
            created_at: 1,
        };
        let ev = AuditEvent::new(
            None,
            1,
            RequestId::generate(&OsRng),
            "key:test".into(),
            "tenant.create",
        );
        (
            t.id.clone(),
            UnitOfWork {
                ops: vec![Op::InsertTenant(t)],
                audit: vec![ev],
            },
        )
    };

    // The answer to COMMIT is lost: the batch landed, and the caller is told so.
    next_cut.store(relay::CUT_REPLY, Ordering::SeqCst);
    let (landed, u) = unit("landed");
    let receipt = store
        .commit(u)
        .await
        .expect("a commit that landed is acknowledged");
    assert_eq!(receipt.audit.len(), 1);
    assert!(store.find_tenant(&landed).await.unwrap().is_some());

    // COMMIT itself is lost: the batch is rolled back, and the caller is told it failed.
    next_cut.store(relay::CUT_REQUEST, Ordering::SeqCst);
    let (lost, u) = unit("lost");
    match store.commit(u).await {
        Err(StoreError::Unavailable(why)) => assert!(why.contains("rolled back"), "{why}"),
        other => panic!("expected a definite failure, got {other:?}"),
    }
    assert!(store.find_tenant(&lost).await.unwrap().is_none());

    // The writer reconnects; the log has exactly the entries of what landed, and verifies.
    let (after, u) = unit("after");
    store.commit(u).await.unwrap();
    assert!(store.find_tenant(&after).await.unwrap().is_some());
    let store: Arc<dyn Store> = Arc::new(store);
    let entries = store
        .find_audit_entries(
            PLATFORM_LOG,
            &strongroom_core::store::AuditQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    strongroom_testkit::conformance::verify_log(&store, PLATFORM_LOG).await;
}

/// The registers on PostgreSQL through a real server: every register takes an entry, the
/// report and the derived views read them, and the text lies sealed in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registers_work_and_stay_sealed_on_postgres() {
    let Some(url) = postgres::fresh_database().await else {
        return;
    };
    let v = TestVault::start_postgres(
        &url,
        None,
        ServeOptions {
            audit_verify_every: None,
            ..ServeOptions::default()
        },
    )
    .await;
    let (a, _) = v.scenario("acme").await;
    let now = strongroom_testkit::START_MS;
    let day = 86_400_000;
    for (path, token, body) in [
        (
            "/v1/compliance/declarations",
            &a.admin,
            json!({"measure": "OR-07", "statement": "PGMARKER locked room", "owner": "PGMARKER owner",
                   "review_by": now + 100 * day}),
        ),
        (
            "/v1/compliance/trainings",
            &a.admin,
            json!({"person": "PGMARKER person", "course": "Basics", "completed_at": now}),
        ),
        (
            "/v1/compliance/subprocessors",
            &v.operator,
            json!({"name": "PGMARKER host", "service": "hosting", "country": "DE",
                   "safeguard": "none", "next_evaluation_by": now + 100 * day}),
        ),
        (
            "/v1/compliance/incidents",
            &v.operator,
            json!({"title": "PGMARKER incident", "category": "availability",
                   "detected_at": now, "aware_at": now, "personal_data_breach": false,
                   "risk": "none", "affected_tenants": [a.id], "data_categories": [],
                   "actions": ""}),
        ),
    ] {
        let r = v.post(path, token, None, body).await;
        assert_eq!(r.status, 201, "{path}: {}", r.text);
    }
    let r = v
        .put(
            "/v1/compliance/ropa/fields",
            &a.admin,
            json!({"fields": {"DPO": "PGMARKER dpo"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for path in [
        "/v1/compliance/declarations",
        "/v1/compliance/trainings",
        "/v1/compliance/subprocessors",
        "/v1/compliance/incidents",
        "/v1/compliance/ropa",
        "/v1/config/history",
        "/v1/compliance/alerts",
        "/v1/compliance/toms?format=json",
    ] {
        let r = v.get(path, &a.admin, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    let ropa = v.get("/v1/compliance/ropa", &a.admin, None).await;
    assert_eq!(ropa.body["fields"]["DPO"], "PGMARKER dpo");
    let client = postgres::connect(&url).await;
    let rows = client
        .query(
            "SELECT body FROM register_entries UNION ALL SELECT statement || owner FROM declarations",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 6, "{}", rows.len());
    for row in rows {
        let text: String = row.get(0);
        assert!(
            !text.contains("PGMARKER"),
            "clear text in the database: {text}"
        );
    }
}
