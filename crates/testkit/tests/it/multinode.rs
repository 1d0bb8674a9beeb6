//! Several stateless nodes over one PostgreSQL database: shared data, sessions and lockout
//! counters, one valid audit chain per log, and no acknowledged write lost when a node dies.

use std::sync::Arc;

use serde_json::json;
use strongroom_server::audit_tools;
use strongroom_server::ServeOptions;
use strongroom_store_postgres::{PgOptions, PgStore};
use strongroom_testkit::{postgres::fresh_database, TestVault};

const PEOPLE: &str = "/v1/collections/people/records";
const GOOD: &str = "violet staircase under rain";

async fn verify(url: &str) -> audit_tools::Report {
    let store = PgStore::open(url, PgOptions::default()).await.unwrap();
    let key = audit_tools::stored_public_key(&store).await.unwrap();
    audit_tools::verify_store(&store, &key, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_data_sessions_and_lockout() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let a = TestVault::start_postgres(&url, None, ServeOptions::default()).await;
    let b = TestVault::start_postgres(
        &url,
        Some(&a.data_path().join("root.key")),
        ServeOptions::default(),
    )
    .await;
    assert!(
        b.operator.is_empty(),
        "the second node does not initialise again"
    );
    let (t, app) = a.scenario("acme").await;
    let id = a
        .store_person(&app, json!({"email": "ada@example.com", "name": "Ada"}))
        .await;
    let r = b
        .get(&format!("{PEOPLE}/{id}"), &app, Some("support"))
        .await;
    assert_eq!(
        (r.status, r.body["fields"]["name"].as_str()),
        (200, Some("Ada")),
        "{}",
        r.text
    );

    // A session opened on one node works on the other, and ends on both.
    a.user(&t.admin, "grace", GOOD, &["support_agent"]).await;
    let token = a.session(Some("acme"), "grace", GOOD, None).await;
    assert_eq!(b.get("/v1/collections", &token, None).await.status, 200);
    assert_eq!(
        b.post("/v1/auth/logout", &token, None, json!({}))
            .await
            .status,
        204
    );
    assert_eq!(
        a.get("/v1/collections", &token, None).await.code(),
        "session_expired"
    );

    // A brute force spread over both nodes still locks the account after N failures.
    let settings = json!({"lockout_threshold": 4});
    assert_eq!(
        a.call(
            reqwest::Method::PUT,
            "/v1/settings/security",
            &t.admin,
            None,
            Some(&settings)
        )
        .await
        .status,
        200
    );
    for node in [&a, &b, &a, &b] {
        assert_eq!(
            node.login(Some("acme"), "grace", "a wrong guess here", None)
                .await
                .code(),
            "invalid_credentials"
        );
    }
    for node in [&a, &b] {
        assert_eq!(
            node.login(Some("acme"), "grace", GOOD, None).await.code(),
            "invalid_credentials",
            "locked everywhere"
        );
    }

    // Writes through both nodes at once: one gapless, verifiable chain.
    let mut tasks = Vec::new();
    for i in 0..80 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (client, url, app) = (
            node.client.clone(),
            format!("{}{PEOPLE}", node.base),
            app.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let body = json!({"fields": {"email": format!("m{i}@example.com")}});
            client
                .post(url)
                .bearer_auth(app)
                .header("X-Purpose", "support")
                .json(&body)
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
    let report = verify(&url).await;
    let log = report.logs.iter().find(|l| l.log == t.id).unwrap();
    assert!(log.entries >= 80, "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dying_mid_load_loses_no_acknowledged_write() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let survivor = TestVault::start_postgres(&url, None, ServeOptions::default()).await;
    let (t, app) = survivor.scenario("acme").await;

    // The doomed node runs on its own runtime, so that it can die abruptly: its tasks, including
    // its writer in the middle of a transaction, are dropped at once.
    let key = survivor.data_path().join("root.key");
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let url2 = url.clone();
    let doomed = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let node = rt.block_on(TestVault::start_postgres(
            &url2,
            Some(&key),
            ServeOptions::default(),
        ));
        tx.send((
            node.base.clone(),
            std::fs::read(node.data_path().join("tls/cert.pem")).unwrap(),
        ))
        .unwrap();
        let _ = stop_rx.recv();
        rt.shutdown_background();
        drop(node);
    });
    let (doomed_base, pem) = rx.recv().unwrap();
    let doomed_client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();

    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (client, base) = if i % 2 == 0 {
            (doomed_client.clone(), doomed_base.clone())
        } else {
            (survivor.client.clone(), survivor.base.clone())
        };
        let (app, acked) = (app.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"fields": {"email": format!("k{i}@example.com")}});
            let resp = client
                .post(format!("{base}{PEOPLE}"))
                .bearer_auth(app)
                .header("X-Purpose", "support")
                .json(&body)
                .send()
                .await;
            if let Ok(r) = resp {
                if r.status() == 201 {
                    let v: serde_json::Value = r.json().await.unwrap();
                    acked
                        .lock()
                        .unwrap()
                        .push(v["id"].as_str().unwrap().to_owned());
                }
            }
        }));
        if i == 100 {
            stop_tx.send(()).unwrap();
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    doomed.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "the survivor kept serving: {}",
        acked.len()
    );
    for id in &acked {
        let r = survivor
            .get(&format!("{PEOPLE}/{id}"), &app, Some("support"))
            .await;
        assert_eq!(r.status, 200, "acknowledged write {id} lost");
    }
    // The survivor keeps checkpointing; the chain is intact with no gap or duplicate.
    survivor
        .get("/v1/audit/checkpoints/latest", &t.admin, None)
        .await;
    let report = verify(&url).await;
    assert!(report
        .logs
        .iter()
        .any(|l| l.log == t.id && l.entries as usize >= acked.len()));
}

/// A node that joins while another is writing passes the start-up audit check: a commit or a
/// checkpoint landing between its reads of a log's head, last entry and checkpoint is not
/// taken for a cut log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_joins_while_another_writes() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let a = Arc::new(
        TestVault::start_postgres(
            &url,
            None,
            ServeOptions {
                checkpoint_every_entries: 5,
                ..Default::default()
            },
        )
        .await,
    );
    let (_, app) = a.scenario("acme").await;
    let id = a
        .store_person(&app, json!({"email": "ada@example.com"}))
        .await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (a, app, id, stop) = (a.clone(), app.clone(), id.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 2000 {
                    a.get(&format!("{PEOPLE}/{id}"), &app, Some("support"))
                        .await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    for _ in 0..3 {
        let b = TestVault::start_postgres(
            &url,
            Some(&a.data_path().join("root.key")),
            ServeOptions::default(),
        )
        .await;
        let r = b
            .get(&format!("{PEOPLE}/{id}"), &app, Some("support"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut reads = 0;
    for w in writers {
        reads += w.await.unwrap();
    }
    assert!(reads > 0);
}

/// The job runner over two PostgreSQL nodes: runs asked for are made once each, by whichever
/// node claims them; a run whose node dies mid-way is taken over by the other once the lease
/// expires, every batch applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_on_one_node_at_a_time_and_move_when_one_dies() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let quiet = || ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    };
    let a = TestVault::start_postgres(&url, None, quiet()).await;
    let b = TestVault::start_postgres(&url, Some(&a.data_path().join("root.key")), quiet()).await;
    // Five runs asked for, on alternate nodes: five runs, five verifications — never two.
    for k in 1..=5u64 {
        let node = if k % 2 == 0 { &a } else { &b };
        let r = node
            .post("/v1/jobs/audit.verify/run", &a.operator, None, json!({}))
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        let mut job = a.get("/v1/jobs/audit.verify", &a.operator, None).await;
        for _ in 0..100 {
            if job.body["runs"].as_u64() == Some(k) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            job = a.get("/v1/jobs/audit.verify", &a.operator, None).await;
        }
        assert_eq!(job.body["runs"].as_u64(), Some(k), "{}", job.text);
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let job = a.get("/v1/jobs/audit.verify", &a.operator, None).await;
    assert_eq!(job.body["runs"], 5, "{}", job.text);
    let log = a
        .get(
            "/v1/audit/entries?action=audit.verify&limit=100",
            &a.operator,
            None,
        )
        .await;
    assert_eq!(
        log.body["entries"].as_array().unwrap().len(),
        5,
        "{}",
        log.text
    );
    // A run killed on A is finished by B after the lease expires.
    crate::jobs::killed_run_resumes(a.running_vault(), b.running_vault(), &|ms| {
        b.clock.advance_ms(ms)
    })
    .await;
    verify(&url).await;
}
