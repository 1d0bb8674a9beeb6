//! First run, safe set-up, TLS, and the service endpoints.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use serde_json::json;
use strongroom_core::{ManualClock, OsRng};
use strongroom_server::{DataDir, ServeOptions, SetupError};
use strongroom_store_sqlite::{SqliteOptions, SqliteStore};
use strongroom_testkit::{contains, TestVault, START_MS};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn first_start_creates_a_safe_data_directory() {
    let v = TestVault::start().await;
    let d = v.data_path();
    assert_eq!(mode(d), 0o700);
    assert_eq!(mode(&d.join("root.key")), 0o600);
    assert_eq!(mode(&d.join("tls/key.pem")), 0o600);
    assert!(d.join("tls/cert.pem").exists());
    assert!(d.join("strongroom.db").exists());
    for file in ["strongroom.db", "strongroom.db-wal", "strongroom.db-shm"] {
        assert_eq!(mode(&d.join(file)), 0o600, "{file} is owner-only");
    }
    let db = v.sqlite();
    let journal: String = db
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");

    assert_eq!(v.get("/healthz", "", None).await.status, 200);
    // The bootstrap token works, and only its hash is on disk.
    let t = v
        .post("/v1/tenants", &v.operator, None, json!({"name": "acme"}))
        .await;
    assert_eq!(t.status, 201, "{}", t.text);
    for (path, bytes) in v.scan_files() {
        assert!(
            !contains(&bytes, v.operator.as_bytes()),
            "bootstrap token in {}",
            path.display()
        );
    }
}

#[tokio::test]
async fn bootstrap_token_expires_after_24_hours() {
    let v = TestVault::start().await;
    v.clock.advance_ms(24 * 3600 * 1000 - 1);
    assert_eq!(
        v.post("/v1/tenants", &v.operator, None, json!({"name": "a"}))
            .await
            .status,
        201
    );
    v.clock.advance_ms(1);
    let r = v
        .post("/v1/tenants", &v.operator, None, json!({"name": "b"}))
        .await;
    assert_eq!((r.status, r.code()), (401, "key_expired"));
}

async fn restart(path: &std::path::Path) -> Result<strongroom_server::Running, SetupError> {
    let dir = DataDir::open(path)?;
    let store = Arc::new(SqliteStore::open(&dir.db_path(), SqliteOptions::default()).unwrap());
    let opts = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    strongroom_server::start(
        &dir,
        store,
        Arc::new(ManualClock::new(START_MS)),
        Arc::new(OsRng),
        opts,
    )
    .await
}

#[tokio::test]
async fn refuses_a_root_key_others_can_read() {
    let mut v = TestVault::start().await;
    v.stop().await;
    let key = v.data_path().join("root.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = restart(v.data_path()).await.err().expect("must refuse");
    assert!(matches!(err, SetupError::Unsafe(_)), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ok = restart(v.data_path())
        .await
        .expect("starts again once fixed");
    assert!(
        ok.bootstrap_token.is_none(),
        "an initialised directory prints no new token"
    );
    ok.stop().await;
}

#[tokio::test]
async fn refuses_a_foreign_root_key() {
    let mut v = TestVault::start().await;
    v.stop().await;
    let key = v.data_path().join("root.key");
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    let err = restart(v.data_path()).await.err().expect("must refuse");
    assert!(err.to_string().contains("does not belong"), "{err}");
}

#[tokio::test]
async fn one_process_per_data_directory() {
    let v = TestVault::start().await;
    let err = DataDir::open(v.data_path()).expect_err("second opener must be refused");
    assert!(matches!(err, SetupError::Unsafe(_)), "{err}");
}

#[tokio::test]
async fn plain_http_only_on_loopback() {
    let opts = ServeOptions {
        insecure_http: true,
        listen: "0.0.0.0:0".parse().unwrap(),
        ..Default::default()
    };
    let err = strongroom_server::check_listener(&opts).unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");

    let v = TestVault::start_with(ServeOptions {
        insecure_http: true,
        ..Default::default()
    })
    .await;
    assert!(v.base.starts_with("http://127.0.0.1"));
    assert_eq!(v.get("/healthz", "", None).await.status, 200);
}

#[tokio::test]
async fn serves_tls_1_2_and_1_3() {
    let v = TestVault::start().await;
    let pem = std::fs::read(v.data_path().join("tls/cert.pem")).unwrap();
    for version in [
        reqwest::tls::Version::TLS_1_2,
        reqwest::tls::Version::TLS_1_3,
    ] {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .min_tls_version(version)
            .max_tls_version(version)
            .build()
            .unwrap();
        let r = client
            .get(format!("{}/healthz", v.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{version:?}");
    }
    // A client that does not trust the certificate is refused.
    let untrusting = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    assert!(untrusting
        .get(format!("{}/healthz", v.base))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn openapi_documents_every_endpoint() {
    let v = TestVault::start().await;
    let r = v.get("/openapi.json", "", None).await;
    assert_eq!(r.status, 200);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = r.body["paths"].as_object().unwrap();
    let expected = [
        ("/healthz", "get"),
        ("/openapi.json", "get"),
        ("/v1/tenants", "post"),
        ("/v1/api-keys", "post"),
        ("/v1/collections", "get"),
        ("/v1/collections/{name}", "put"),
        ("/v1/collections/{name}", "get"),
        ("/v1/roles", "get"),
        ("/v1/roles/{name}", "put"),
        ("/v1/collections/{collection}/records", "post"),
        ("/v1/collections/{collection}/records", "get"),
        ("/v1/collections/{collection}/records/batch", "post"),
        ("/v1/collections/{collection}/records/lookup", "post"),
        ("/v1/collections/{collection}/records/search", "post"),
        ("/v1/collections/{collection}/records/{id}", "get"),
        ("/v1/collections/{collection}/records/{id}", "patch"),
        ("/v1/collections/{collection}/records/{id}", "delete"),
        ("/v1/audit/entries", "get"),
        ("/v1/api-keys", "get"),
        ("/v1/api-keys/{id}/rotate", "post"),
        ("/v1/auth/login", "post"),
        ("/v1/auth/logout", "post"),
        ("/v1/auth/password", "post"),
        ("/v1/auth/mfa/totp", "post"),
        ("/v1/auth/mfa/totp/confirm", "post"),
        ("/v1/settings/security", "get"),
        ("/v1/settings/security", "put"),
        ("/v1/users", "post"),
        ("/v1/users", "get"),
        ("/v1/users/{id}/roles", "put"),
        ("/v1/users/{id}/{action}", "post"),
        ("/v1/identity/report", "get"),
        ("/v1/audit/public-key", "get"),
        ("/v1/audit/checkpoints/latest", "get"),
        ("/v1/audit/proofs/inclusion", "get"),
        ("/v1/audit/proofs/consistency", "get"),
        ("/v1/audit/subjects/{subject}/accesses", "get"),
        ("/v1/audit/tile/{path}", "get"),
        ("/v1/roles/{name}", "get"),
        ("/v1/compliance/toms", "get"),
        ("/v1/compliance/declarations", "post"),
        ("/v1/compliance/declarations", "get"),
        ("/v1/compliance/declarations/{id}", "put"),
        ("/v1/compliance/declarations/{id}/withdraw", "post"),
        ("/v1/compliance/declarations/{id}/history", "get"),
        ("/v1/compliance/incidents", "post"),
        ("/v1/compliance/incidents", "get"),
        ("/v1/compliance/incidents/{id}", "put"),
        ("/v1/compliance/alerts", "get"),
        ("/v1/compliance/trainings", "post"),
        ("/v1/compliance/trainings", "get"),
        ("/v1/compliance/trainings/{id}", "put"),
        ("/v1/compliance/subprocessors", "post"),
        ("/v1/compliance/subprocessors", "get"),
        ("/v1/compliance/subprocessors/{id}", "put"),
        ("/v1/compliance/subprocessors/{id}/objections", "post"),
        ("/v1/compliance/objections", "get"),
        ("/v1/compliance/versions", "get"),
        ("/v1/compliance/ropa", "get"),
        ("/v1/compliance/ropa/fields", "get"),
        ("/v1/compliance/ropa/fields", "put"),
        ("/v1/config/history", "get"),
        ("/v1/jobs", "get"),
        ("/v1/collections/{collection}/records/{id}/restore", "post"),
        ("/v1/collections/{collection}/records/bulk-delete", "post"),
        ("/v1/collections/{collection}/records/bulk-restore", "post"),
        ("/v1/collections/{collection}/records/{id}/history", "get"),
        ("/v1/purges/pending", "get"),
        ("/v1/holds", "post"),
        ("/v1/holds", "get"),
        ("/v1/holds/{id}/lift", "post"),
        ("/v1/subjects", "get"),
        ("/v1/subjects/{subject}", "get"),
        ("/v1/subjects/{subject}/erasure", "post"),
        ("/v1/subjects/{subject}/restriction", "post"),
        ("/v1/subjects/{subject}/restriction/lift", "post"),
        ("/v1/subjects/{subject}/consents", "get"),
        ("/v1/subjects/{subject}/consents", "post"),
        ("/v1/subjects/{subject}/export", "post"),
        ("/v1/exports/{id}", "get"),
        ("/v1/dsars", "get"),
        ("/v1/dsars", "post"),
        ("/v1/dsars/{id}", "get"),
        ("/v1/dsars/{id}", "put"),
        ("/v1/offboarding", "post"),
        ("/v1/offboarding/execute", "post"),
        ("/v1/offboarding/{id}/archive", "get"),
        ("/v1/tenants/{id}/offboarding", "post"),
        ("/v1/tenants/{id}/offboarding/execute", "post"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/jobs/{id}/run", "post"),
        ("/readyz", "get"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    assert_eq!(
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>(),
        expected.len(),
        "undocumented extras"
    );
    assert!(r.body["components"]["schemas"]["CreateRecord"].is_object());
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let v = TestVault::start().await;
    let r = v.get("/v2/nothing", "", None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = v
        .call(
            reqwest::Method::DELETE,
            "/v1/tenants",
            &v.operator,
            None,
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (405, "method_not_allowed"));
}

/// Answers carry tokens, keys and personal data: no cache may keep them.
#[tokio::test]
async fn answers_are_never_cached() {
    let v = TestVault::start().await;
    let (t, _) = v.scenario("acme").await;
    let send = |req: reqwest::RequestBuilder| async move {
        let r = req.send().await.unwrap();
        r.headers()
            .get("cache-control")
            .map(|h| h.to_str().unwrap().to_owned())
    };
    let key = send(
        v.client
            .post(format!("{}/v1/api-keys", v.base))
            .bearer_auth(&t.admin)
            .json(&serde_json::json!({"name": "k", "roles": ["auditor"], "expires_in_days": 1})),
    )
    .await;
    assert_eq!(key.as_deref(), Some("no-store"), "a new key");
    for path in ["/healthz", "/v1/collections", "/v1/nowhere"] {
        let got = send(
            v.client
                .get(format!("{}{path}", v.base))
                .bearer_auth(&t.admin),
        )
        .await;
        assert_eq!(got.as_deref(), Some("no-store"), "{path}");
    }
}
