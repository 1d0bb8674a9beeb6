//! The `strongroom` binary, run as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod crash;
mod schemathesis;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

fn strongroom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(args)
        .env("STRONGROOM_LOG", "warn")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

type ServeOutput = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Starts `strongroom serve` with `args` and reads its output until it serves. Returns the
/// process, the bootstrap token if it printed one, the rest of its output, and the address.
fn start_serve(args: &[&str]) -> (std::process::Child, Option<String>, ServeOutput, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .arg("serve")
        .args(args)
        .env("STRONGROOM_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut token = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(t) = line.split_whitespace().find(|w| w.starts_with("srk_")) {
            token = Some(t.to_owned());
        }
        if let Some(rest) = line.strip_prefix("Serving https://") {
            let addr = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            return (child, token, lines, addr);
        }
    }
    panic!(
        "strongroom serve stopped before serving: {:?}",
        child.wait()
    );
}

/// [`start_serve`] without the address.
fn serve(args: &[&str]) -> (std::process::Child, Option<String>, ServeOutput) {
    let (child, token, lines, _) = start_serve(args);
    (child, token, lines)
}

/// Starts `strongroom serve` on an ephemeral loopback port (chosen by the server itself, so
/// parallel tests cannot race for one) and returns the process, its bootstrap token if it
/// printed one, and the address it serves.
fn serve_anywhere(args: &[&str]) -> (std::process::Child, Option<String>, String) {
    let mut args = args.to_vec();
    args.extend(["--listen", "127.0.0.1:0"]);
    let (child, token, lines, addr) = start_serve(&args);
    // Keep reading (and dropping) its output so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, token, addr)
}

#[test]
fn init_prints_the_bootstrap_token_as_json_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let dir = dir.to_str().unwrap();
    let out = strongroom(&["init", "--data-dir", dir, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = json["bootstrap_token"].as_str().unwrap();
    assert!(token.starts_with("srk_") && token.len() == 68);
    assert_eq!(json.as_object().unwrap().len(), 1);
    let mode = std::fs::metadata(tmp.path().join("d/root.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let again = strongroom(&["init", "--data-dir", dir, "--json"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already initialised"),
        "{}",
        text(&again.stderr)
    );
    assert!(again.stdout.is_empty(), "no second token");

    let fresh = strongroom(&["admin", "bootstrap-token", "--data-dir", dir, "--json"]);
    assert!(fresh.status.success(), "{}", text(&fresh.stderr));
    let json: serde_json::Value = serde_json::from_slice(&fresh.stdout).unwrap();
    assert_ne!(json["bootstrap_token"].as_str().unwrap(), token);
}

#[test]
fn serve_refuses_unsafe_set_ups_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let dir = dir.to_str().unwrap();
    let out = strongroom(&[
        "serve",
        "--data-dir",
        dir,
        "--insecure-http",
        "--listen",
        "0.0.0.0:0",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("loopback"),
        "{}",
        text(&out.stderr)
    );

    assert!(strongroom(&["init", "--data-dir", dir]).status.success());
    let key = tmp.path().join("d/root.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = strongroom(&["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("chmod 600"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn serve_initialises_serves_https_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let (mut child, token, lines) =
        serve(&["--data-dir", dir.to_str().unwrap(), "--listen", &listen]);
    let token = token.expect("the first start prints the bootstrap token");
    let cert = dir.join("tls/cert.pem");
    let curl = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            cert.to_str().unwrap(),
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
        ])
        .args([
            "-H",
            &format!("Authorization: Bearer {token}"),
            "--data",
            r#"{"name":"acme"}"#,
        ])
        .arg(format!("https://{listen}/v1/tenants"))
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&curl.stdout).unwrap();
    assert_eq!(body["name"], "acme", "{body}");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean stop on SIGTERM");
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(rest.iter().any(|l| l == "Stopping."), "{rest:?}");
}

#[test]
fn audit_verify_passes_after_the_quickstart_and_names_an_edited_entry() {
    for tool in ["sqlite3", "curl", "jq"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "this test needs {tool}: apt-get install -y {tool}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://127.0.0.1:{port}");
    let (mut child, token, _lines) = serve(&[
        "--data-dir",
        dir.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    let quickstart = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/quickstart.sh"
        ))
        .env("STRONGROOM_URL", &url)
        .env("STRONGROOM_TOKEN", token.unwrap())
        .env("STRONGROOM_CACERT", dir.join("tls/cert.pem"))
        .output()
        .unwrap();
    assert!(quickstart.status.success(), "{}", text(&quickstart.stderr));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());

    let d = dir.to_str().unwrap();
    let ok = strongroom(&["audit", "verify", "--data-dir", d]);
    assert!(
        ok.status.success(),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    assert!(
        text(&ok.stdout).contains("0 not yet checkpointed: intact"),
        "{}",
        text(&ok.stdout)
    );

    // A trusted key given explicitly works too, and a wrong one fails.
    let key = text(&strongroom(&["audit", "public-key", "--data-dir", d]).stdout)
        .trim()
        .to_owned();
    assert!(
        strongroom(&["audit", "verify", "--data-dir", d, "--public-key", &key])
            .status
            .success()
    );
    let wrong = "11".repeat(32);
    assert_eq!(
        strongroom(&["audit", "verify", "--data-dir", d, "--public-key", &wrong])
            .status
            .code(),
        Some(1)
    );

    // Export a bundle, then edit one audit row with the sqlite3 shell.
    let bundle = tmp.path().join("bundle");
    assert!(strongroom(&[
        "audit",
        "export",
        "--data-dir",
        d,
        "--out",
        bundle.to_str().unwrap()
    ])
    .status
    .success());
    let edit = Command::new("sqlite3")
        .arg(dir.join("strongroom.db"))
        .arg("UPDATE audit SET body = replace(body, '\"outcome\":\"denied\"', '\"outcome\":\"ok\"') WHERE (log, seq) = (SELECT log, seq FROM audit WHERE outcome = 'denied' AND log != 'platform' ORDER BY time, seq LIMIT 1);")
        .output()
        .unwrap();
    assert!(edit.status.success(), "{}", text(&edit.stderr));
    let bad = strongroom(&["audit", "verify", "--data-dir", d]);
    assert_eq!(bad.status.code(), Some(1));
    let err = text(&bad.stderr);
    assert!(
        err.contains("TAMPERED") && err.contains(": entry "),
        "{err}"
    );
    // The bundle taken before the edit still verifies with nothing but itself.
    let b = strongroom(&[
        "audit",
        "verify",
        "--bundle",
        bundle.to_str().unwrap(),
        "--public-key",
        &key,
    ]);
    assert!(b.status.success(), "{}", text(&b.stderr));
}

/// A database restored from an old copy (consistent in itself) passes `audit verify` alone,
/// but fails it with the witness, and the server refuses to start on it until the operator
/// accepts it explicitly — which is recorded, and the witnessed checkpoint is kept.
#[test]
fn a_rolled_back_database_is_caught_by_the_witness() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let witness = tmp.path().join("witness");
    let (d, w) = (dir.to_str().unwrap(), witness.to_str().unwrap());
    let stop = |mut child: std::process::Child| {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "a clean stop: {status:?}");
    };
    let (child, token, _) = serve_anywhere(&["--data-dir", d, "--witness-dir", w]);
    let token = token.unwrap();
    stop(child);
    // A copy of the database as a backup holds it: the file with its write-ahead log.
    let old = tmp.path().join("old");
    std::fs::create_dir(&old).unwrap();
    for file in ["strongroom.db", "strongroom.db-wal"] {
        if dir.join(file).exists() {
            std::fs::copy(dir.join(file), old.join(file)).unwrap();
        }
    }

    // More happens; the witness learns of it.
    let (child, _, listen) = serve_anywhere(&["--data-dir", d, "--witness-dir", w]);
    for _ in 0..3 {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(dir.join("tls/cert.pem"))
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("https://{listen}/v1/audit/checkpoints/latest"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    stop(child);
    let key = text(&strongroom(&["audit", "public-key", "--data-dir", d]).stdout)
        .trim()
        .to_owned();
    let now = strongroom(&[
        "audit",
        "verify",
        "--data-dir",
        d,
        "--public-key",
        &key,
        "--witness",
        w,
    ]);
    assert!(
        now.status.success(),
        "{}{}",
        text(&now.stdout),
        text(&now.stderr)
    );

    // The attacker restores the old copy: consistent in itself...
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("strongroom.db{suffix}")));
    }
    for file in ["strongroom.db", "strongroom.db-wal"] {
        if old.join(file).exists() {
            std::fs::copy(old.join(file), dir.join(file)).unwrap();
        }
    }
    let alone = strongroom(&["audit", "verify", "--data-dir", d, "--public-key", &key]);
    assert!(alone.status.success(), "{}", text(&alone.stderr));
    // ...but not with the witness,
    let caught = strongroom(&[
        "audit",
        "verify",
        "--data-dir",
        d,
        "--public-key",
        &key,
        "--witness",
        w,
    ]);
    assert_eq!(caught.status.code(), Some(1), "{}", text(&caught.stdout));
    assert!(
        text(&caught.stderr).contains("TAMPERED: log platform"),
        "{}",
        text(&caught.stderr)
    );
    // and the server refuses to start on it, naming the log and the way out.
    let refused = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args([
            "serve",
            "--data-dir",
            d,
            "--listen",
            "127.0.0.1:0",
            "--witness-dir",
            w,
        ])
        .env("STRONGROOM_LOG", "warn")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert!(
        err.contains("audit log platform") && err.contains("--accept-audit-mismatch"),
        "{err}"
    );
    // Accepting it explicitly starts the server, records the decision, and keeps the
    // witnessed checkpoint that the log no longer matches.
    let stream = tmp.path().join("siem.jsonl");
    let (child, _, _) = serve_anywhere(&[
        "--data-dir",
        d,
        "--witness-dir",
        w,
        "--accept-audit-mismatch",
        "platform",
        "--audit-stream",
        stream.to_str().unwrap(),
    ]);
    stop(child);
    let streamed = std::fs::read_to_string(&stream).unwrap();
    assert!(
        streamed.contains("\"alert\":\"audit_mismatch\"")
            && streamed.contains("audit.mismatch_accepted"),
        "{streamed}"
    );
    let kept: Vec<String> = std::fs::read_dir(&witness)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".forked.checkpoint"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let recorded = Command::new("sqlite3")
        .arg(dir.join("strongroom.db"))
        .arg("SELECT count(*) FROM audit WHERE log = 'platform' AND action = 'audit.mismatch_accepted'")
        .output()
        .unwrap();
    assert_eq!(text(&recorded.stdout).trim(), "1");
    let still = strongroom(&[
        "audit",
        "verify",
        "--data-dir",
        d,
        "--public-key",
        &key,
        "--witness",
        w,
    ]);
    assert_eq!(
        still.status.code(),
        Some(1),
        "the kept checkpoint still tells"
    );
}

#[tokio::test]
async fn init_and_serve_work_over_postgresql() {
    let Some(url) = strongroom_testkit::postgres::fresh_database().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node1");
    let d = dir.to_str().unwrap().to_owned();
    let out = strongroom(&["init", "--data-dir", &d, "--database", &url, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        ["bootstrap_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = strongroom(&["init", "--data-dir", &d, "--database", &url, "--json"]);
    assert!(
        !again.status.success(),
        "a second init of the same database is refused"
    );
    // A node without the cluster's root key refuses to serve and says what to do.
    let stranger = tmp.path().join("stranger");
    let out = strongroom(&[
        "serve",
        "--data-dir",
        stranger.to_str().unwrap(),
        "--database",
        &url,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("root.key"),
        "{}",
        text(&out.stderr)
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut child, _, _lines) = serve(&[
        "--data-dir",
        &d,
        "--database",
        &url,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    let curl = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            dir.join("tls/cert.pem").to_str().unwrap(),
            "-X",
            "POST",
        ])
        .args([
            "-H",
            "Content-Type: application/json",
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
        .args(["--data", r#"{"name":"acme"}"#])
        .arg(format!("https://127.0.0.1:{port}/v1/tenants"))
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&curl.stdout).unwrap();
    assert_eq!(body["name"], "acme", "{body}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());

    // The offline tools work on the PostgreSQL database as on a data directory.
    let key = strongroom(&["audit", "public-key", "--database", &url]);
    assert!(key.status.success(), "{}", text(&key.stderr));
    let key = text(&key.stdout).trim().to_owned();
    let verified = strongroom(&["audit", "verify", "--database", &url, "--public-key", &key]);
    assert!(
        verified.status.success() && text(&verified.stdout).contains("intact"),
        "{}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );
    let bundle = tmp.path().join("bundle");
    let exported = strongroom(&[
        "audit",
        "export",
        "--database",
        &url,
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    assert!(strongroom(&[
        "audit",
        "verify",
        "--bundle",
        bundle.to_str().unwrap(),
        "--public-key",
        &key
    ])
    .status
    .success());
    let token = strongroom(&[
        "admin",
        "bootstrap-token",
        "--data-dir",
        &d,
        "--database",
        &url,
        "--json",
    ]);
    assert!(token.status.success(), "{}", text(&token.stderr));
    let token: serde_json::Value = serde_json::from_slice(&token.stdout).unwrap();
    assert!(token["bootstrap_token"]
        .as_str()
        .unwrap()
        .starts_with("srk_"));
}

/// `serve --help` never prints the database URL (and its password) taken from the environment,
/// and a TLS key others can read is refused like the root key.
#[test]
fn help_hides_the_database_url_and_loose_tls_keys_are_refused() {
    let help = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["serve", "--help"])
        .env(
            "STRONGROOM_DATABASE_URL",
            "postgres://vault:Hunter2-secret@db/strongroom",
        )
        .output()
        .unwrap();
    let out = text(&help.stdout);
    assert!(help.status.success() && out.contains("--database"), "{out}");
    assert!(!out.contains("Hunter2-secret"), "{out}");

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let d = dir.to_str().unwrap();
    assert!(strongroom(&["init", "--data-dir", d]).status.success());
    let key = dir.join("tls/key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = strongroom(&["serve", "--data-dir", d, "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("TLS private key") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn toms_report_is_written_offline_and_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    let d = d.to_str().unwrap();
    assert!(strongroom(&["init", "--data-dir", d]).status.success());
    let out = tmp.path().join("toms.json");
    let made = strongroom(&[
        "toms",
        "report",
        "--data-dir",
        d,
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let key = text(&strongroom(&["audit", "public-key", "--data-dir", d]).stdout)
        .trim()
        .to_owned();
    let ok = strongroom(&[
        "toms",
        "verify",
        out.to_str().unwrap(),
        "--public-key",
        &key,
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("signature valid; 43 measures"));
    // One byte changed: refused, exit 1.
    let mut bytes = std::fs::read(&out).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x02;
    std::fs::write(&out, &bytes).unwrap();
    let bad = strongroom(&[
        "toms",
        "verify",
        out.to_str().unwrap(),
        "--public-key",
        &key,
    ]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad.stdout));
    // Markdown in the SCC layout: every measure in full once.
    let md = strongroom(&["toms", "report", "--data-dir", d, "--layout", "scc"]);
    assert!(md.status.success(), "{}", text(&md.stderr));
    assert_eq!(text(&md.stdout).matches("\n### ").count(), 43);
    let wrong = strongroom(&["toms", "report", "--data-dir", d, "--format", "pdf"]);
    assert!(!wrong.status.success());
    assert!(text(&wrong.stderr).contains("not one of json, md, html"));
}

/// `strongroom versions`: the dependency list from the build's Cargo.lock; with `--deny`, exit
/// 1 when an advisory of the given database affects a dependency, 0 when it is patched.
#[test]
fn versions_report_dependencies_and_deny_affected_ones() {
    let out = strongroom(&["versions", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["dependencies"].as_array().unwrap().len() > 100);
    let db = tempfile::tempdir().unwrap();
    let write = |patched: &str| {
        let p = db.path().join("crates/tokio");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(
            p.join("RUSTSEC-2026-9001.md"),
            format!(
                "```toml\n[advisory]\nid = \"RUSTSEC-2026-9001\"\npackage = \"tokio\"\n\
                 date = \"2026-11-30\"\n[versions]\npatched = [\"{patched}\"]\n```\n\n# Flaw\n"
            ),
        )
        .unwrap();
    };
    let dir = db.path().to_str().unwrap();
    write(">= 99.0.0");
    let out = strongroom(&["versions", "--advisory-db", dir, "--deny"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("| RUSTSEC-2026-9001 | tokio |"));
    write(">= 1.0.0");
    let out = strongroom(&["versions", "--advisory-db", dir, "--deny"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = strongroom(&["versions", "--advisory-db", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a RustSec advisory database"));
}

#[tokio::test]
async fn receipt_verify_checks_a_real_receipt_offline_and_refuses_edits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let d = dir.to_str().unwrap().to_owned();
    let (mut child, token, addr) = serve_anywhere(&["--data-dir", &d]);
    let api = api::Api::new(&dir.join("tls/cert.pem"), &addr);
    let (admin, app) = api.scenario(&token.unwrap()).await;
    let post = reqwest::Method::POST;
    let (s, rec) = api
        .call(
            post.clone(),
            "/v1/collections/people/records",
            &app,
            Some(serde_json::json!({"fields": {"email": "ada@example.com"}})),
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{rec}");
    let (s, k) = api
        .call(
            post.clone(),
            "/v1/api-keys",
            &admin,
            Some(serde_json::json!({"name": "dpo", "roles": ["privacy_officer"], "expires_in_days": 30})),
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{k}");
    let subject = rec["subject"].as_str().unwrap();
    let (s, receipt) = api
        .call(
            post,
            &format!("/v1/subjects/{subject}/erasure"),
            k["key"].as_str().unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{receipt}");
    let (_, pk) = api
        .call(reqwest::Method::GET, "/v1/audit/public-key", "", None)
        .await
        .unwrap();
    let pk = pk["ed25519"].as_str().unwrap().to_owned();
    let _ = child.kill();
    let _ = child.wait();

    let file = tmp.path().join("receipt.json");
    let bytes = serde_json::to_vec_pretty(&receipt).unwrap();
    std::fs::write(&file, &bytes).unwrap();
    let f = file.to_str().unwrap();
    let out = strongroom(&["receipt", "verify", f, "--public-key", &pk]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(subject), "{}", text(&out.stdout));
    // Another key, an edited figure, an edited signature: refused, exit 1.
    let mut other = pk.clone().into_bytes();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    let out = strongroom(&["receipt", "verify", f, "--public-key", &text(&other)]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not verify"),
        "{}",
        text(&out.stderr)
    );
    let edited = text(&bytes).replacen("\"records\": 1", "\"records\": 0", 1);
    assert_ne!(edited, text(&bytes));
    std::fs::write(&file, edited).unwrap();
    let out = strongroom(&["receipt", "verify", f, "--public-key", &pk]);
    assert!(!out.status.success(), "an edited receipt verifies");
    std::fs::write(&file, b"{not json").unwrap();
    let out = strongroom(&["receipt", "verify", f, "--public-key", &pk]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not an erasure receipt"),
        "{}",
        text(&out.stderr)
    );
    let out = strongroom(&["receipt", "verify", f, "--public-key", "xyz"]);
    assert!(
        text(&out.stderr).contains("--public-key"),
        "{}",
        text(&out.stderr)
    );
}
