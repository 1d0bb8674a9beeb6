//! `kill -9` during a mixed load, again and again (SQLite and PostgreSQL): every write the
//! server acknowledged is there afterwards with what was written, reads meanwhile never see
//! anything else, the node restarts each time (its start-up audit check passes), and the
//! offline `audit verify` passes at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::api::Api;
use super::{serve_anywhere, strongroom, text};

const CYCLES: usize = 20;
const WORKERS: usize = 4;

fn kill_9(child: &mut std::process::Child) {
    std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
}

async fn crash_loop(database: Option<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let d = dir.to_str().unwrap().to_owned();
    let mut args = vec!["--data-dir".to_owned(), d.clone()];
    let mut token = None;
    if let Some(url) = &database {
        args.extend(["--database".to_owned(), url.clone()]);
        let out = strongroom(&["init", "--data-dir", &d, "--database", url, "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        token = v["bootstrap_token"].as_str().map(str::to_owned);
    }
    let cert = dir.join("tls/cert.pem");

    // Set-up on the first start: a tenant, the people collection, a role, an app key.
    let (mut child, printed, addr) = serve_anywhere(&argv(&args));
    let operator = token.or(printed).expect("a bootstrap token");
    let api = Api::new(&cert, &addr);
    let (_, app) = api.scenario(&operator).await;
    kill_9(&mut child);

    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    for cycle in 0..CYCLES {
        let (mut child, _, addr) = serve_anywhere(&argv(&args));
        let api = Arc::new(Api::new(&cert, &addr));
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for w in 0..WORKERS {
            let (api, app, acked, stop) =
                (api.clone(), app.clone(), acknowledged.clone(), stop.clone());
            workers.push(tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    // Every third step reads back a write acknowledged earlier, perhaps
                    // before an earlier crash.
                    let earlier = {
                        let a = acked.lock().unwrap();
                        (n.is_multiple_of(3) && !a.is_empty())
                            .then(|| a[(n * 7919 + w) % a.len()].clone())
                    };
                    if let Some((id, email)) = earlier {
                        let path = format!("/v1/collections/people/records/{id}");
                        match api.call(reqwest::Method::GET, &path, &app, None).await {
                            Some((200, r)) => assert_eq!(r["fields"]["email"], email.as_str()),
                            Some((s, r)) if s >= 500 || stop.load(Ordering::SeqCst) => {
                                let _ = r;
                            }
                            Some((s, r)) => panic!("an acknowledged record read {s}: {r}"),
                            None => {}
                        }
                        continue;
                    }
                    let email = format!("c{cycle}w{w}n{n}@example.com");
                    let body = json!({"fields": {"email": email, "name": "Crash Test"}});
                    match api
                        .call(
                            reqwest::Method::POST,
                            "/v1/collections/people/records",
                            &app,
                            Some(body),
                        )
                        .await
                    {
                        Some((201, r)) => acked
                            .lock()
                            .unwrap()
                            .push((r["id"].as_str().unwrap().to_owned(), email)),
                        Some(_) => {}
                        None => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                    }
                }
            }));
        }
        let run = 150 + (cycle * 97) % 450;
        tokio::time::sleep(std::time::Duration::from_millis(run as u64)).await;
        kill_9(&mut child);
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.await.unwrap();
        }
    }

    // Every acknowledged write survived every crash, with what was written.
    let (mut child, _, addr) = serve_anywhere(&argv(&args));
    let api = Api::new(&cert, &addr);
    let acked = acknowledged.lock().unwrap().clone();
    assert!(
        acked.len() >= CYCLES,
        "the load was too light to mean anything: {} writes",
        acked.len()
    );
    for (id, email) in &acked {
        let path = format!("/v1/collections/people/records/{id}");
        let (s, r) = api
            .call(reqwest::Method::GET, &path, &app, None)
            .await
            .unwrap();
        assert_eq!(
            s, 200,
            "acknowledged record {id} lost after {CYCLES} kill -9: {r}"
        );
        assert_eq!(r["fields"]["email"], email.as_str());
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let mut verify = vec!["audit", "verify"];
    match &database {
        Some(url) => verify.extend(["--database", url.as_str()]),
        None => verify.extend(["--data-dir", d.as_str()]),
    }
    let out = strongroom(&verify);
    assert!(
        out.status.success() && text(&out.stdout).contains("intact"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    eprintln!(
        "crash loop ({}): {CYCLES} kill -9, {} acknowledged writes all present",
        if database.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_in_a_loop_on_sqlite() {
    crash_loop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_in_a_loop_on_postgres() {
    let Some(url) = strongroom_testkit::postgres::fresh_database().await else {
        return;
    };
    crash_loop(Some(url)).await;
}

fn argv(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}
