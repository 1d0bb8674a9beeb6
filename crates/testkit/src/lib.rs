//! The test harness: boots a real Strongroom server in-process — real TLS, real SQLite in a
//! temporary data directory, a manual clock — and speaks HTTPS to it. Also holds the store
//! conformance suite that every `Store` backend must pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod conformance;
pub mod postgres;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use strongroom_core::{ManualClock, OsRng};
use strongroom_server::{DataDir, Running, ServeOptions};
use strongroom_store_sqlite::{SqliteOptions, SqliteStore};

/// 2026-01-01T00:00:00Z, where every test clock starts.
pub const START_MS: i64 = 1_767_225_600_000;

/// A response: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// The stable error code of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A tenant created through the API, with its admin key.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: String,
    pub name: String,
    pub admin: String,
}

/// A running server and a client that trusts its certificate.
pub struct TestVault {
    pub clock: Arc<ManualClock>,
    pub base: String,
    pub client: reqwest::Client,
    /// The bootstrap operator token.
    pub operator: String,
    running: Option<Running>,
    data: Option<DataDir>,
    data_path: PathBuf,
    _tmp: tempfile::TempDir,
}

impl TestVault {
    pub async fn start() -> Self {
        Self::start_with(ServeOptions::default()).await
    }

    /// Starts with these options; the listen address is always an ephemeral loopback port.
    pub async fn start_with(opts: ServeOptions) -> Self {
        Self::start_in(&std::env::temp_dir(), opts).await
    }

    /// Starts with the data directory inside `parent` (a small file system, say).
    pub async fn start_in(parent: &Path, mut opts: ServeOptions) -> Self {
        let tmp = tempfile::tempdir_in(parent).unwrap();
        let data_path = tmp.path().join("data");
        let data = DataDir::open(&data_path).unwrap();
        let store = Arc::new(SqliteStore::open(&data.db_path(), SqliteOptions::default()).unwrap());
        let clock = Arc::new(ManualClock::new(START_MS));
        opts.listen = "127.0.0.1:0".parse().unwrap();
        let insecure = opts.insecure_http;
        let running = strongroom_server::start(&data, store, clock.clone(), Arc::new(OsRng), opts)
            .await
            .unwrap();
        let operator = running
            .bootstrap_token
            .clone()
            .expect("a new directory yields a bootstrap token");
        let port = running.addr.port();
        let (base, client) = if insecure {
            (format!("http://127.0.0.1:{port}"), reqwest::Client::new())
        } else {
            let pem = std::fs::read(data.cert_path()).unwrap();
            let client = reqwest::Client::builder()
                .use_rustls_tls()
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
                .build()
                .unwrap();
            (format!("https://127.0.0.1:{port}"), client)
        };
        Self {
            clock,
            base,
            client,
            operator,
            running: Some(running),
            data: Some(data),
            data_path,
            _tmp: tmp,
        }
    }

    /// The vault of the running server (for tests that drive it directly).
    pub fn running_vault(&self) -> std::sync::Arc<strongroom_core::Vault> {
        self.running
            .as_ref()
            .expect("the server is running")
            .vault
            .clone()
    }

    /// Runs the production verifier over the running server's store: every log intact.
    pub async fn assert_audit_verifies(&self) -> strongroom_server::audit_tools::Report {
        let vault = self.running_vault();
        let key = vault.public_key().unwrap();
        strongroom_server::audit_tools::verify_store(vault.store().as_ref(), &key, None)
            .await
            .unwrap_or_else(|e| panic!("the audit log does not verify: {e}"))
    }

    /// Starts a node over a PostgreSQL database. The first node initialises it; further nodes
    /// get a copy of the first node's `root.key` (`root_key`) and have no bootstrap token.
    pub async fn start_postgres(url: &str, root_key: Option<&Path>, opts: ServeOptions) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data_path = tmp.path().join("data");
        let data = DataDir::open(&data_path).unwrap();
        if let Some(key) = root_key {
            use std::os::unix::fs::PermissionsExt;
            let dest = data_path.join("root.key");
            std::fs::copy(key, &dest).unwrap();
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let store = Arc::new(
            strongroom_store_postgres::PgStore::open(
                url,
                strongroom_store_postgres::PgOptions::default(),
            )
            .await
            .unwrap(),
        );
        Self::start_over(tmp, data_path, data, store, opts).await
    }

    /// Starts a new server on this stopped vault's SQLite data directory (same keys, same
    /// database), as an operator restarting the process would. Tokens stay valid.
    pub async fn restart_with(mut self, opts: ServeOptions) -> Self {
        assert!(self.running.is_none(), "stop the server first");
        let data = DataDir::open(&self.data_path).unwrap();
        let store = Arc::new(SqliteStore::open(&data.db_path(), SqliteOptions::default()).unwrap());
        let tmp = std::mem::replace(&mut self._tmp, tempfile::tempdir().unwrap());
        let operator = self.operator.clone();
        let mut v = Self::start_over(tmp, self.data_path.clone(), data, store, opts).await;
        v.operator = operator;
        v
    }

    /// Starts a server on a copy of an existing data directory (a fixture written by an older
    /// build, say). It has no bootstrap token.
    pub async fn start_on_copy(fixture: &Path, opts: ServeOptions) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let data_path = tmp.path().join("data");
        std::fs::create_dir(&data_path).unwrap();
        std::fs::set_permissions(&data_path, std::fs::Permissions::from_mode(0o700)).unwrap();
        for file in std::fs::read_dir(fixture).unwrap() {
            let file = file.unwrap().path();
            if file.is_file() && file.extension().is_none_or(|e| e != "md") {
                let to = data_path.join(file.file_name().unwrap());
                std::fs::copy(&file, &to).unwrap();
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
        let data = DataDir::open(&data_path).unwrap();
        let store = Arc::new(SqliteStore::open(&data.db_path(), SqliteOptions::default()).unwrap());
        Self::start_over(tmp, data_path, data, store, opts).await
    }

    async fn start_over(
        tmp: tempfile::TempDir,
        data_path: PathBuf,
        data: DataDir,
        store: Arc<dyn strongroom_core::Store>,
        mut opts: ServeOptions,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(START_MS));
        opts.listen = "127.0.0.1:0".parse().unwrap();
        let running = strongroom_server::start(&data, store, clock.clone(), Arc::new(OsRng), opts)
            .await
            .unwrap();
        let pem = std::fs::read(data.cert_path()).unwrap();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap();
        Self {
            clock,
            base: format!("https://127.0.0.1:{}", running.addr.port()),
            client,
            operator: running.bootstrap_token.clone().unwrap_or_default(),
            running: Some(running),
            data: Some(data),
            data_path,
            _tmp: tmp,
        }
    }

    /// The data directory.
    pub fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// A raw connection to the database file, for tests that inspect or tamper with it.
    pub fn sqlite(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.data_path.join("strongroom.db")).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c
    }

    /// Counts rows of a table (tests compare before and after a rejected request).
    pub fn count(&self, table: &str) -> i64 {
        self.sqlite()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// Stops the server and releases the data directory, keeping its files.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        self.data.take();
    }

    /// Sends a request. An empty `token` sends no `Authorization` header.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        purpose: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(p) = purpose {
            req = req.header("X-Purpose", p);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        Self::finish(req).await
    }

    /// Sends a prepared request and reads its answer.
    pub async fn finish(req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, body, text }
    }

    pub async fn get(&self, path: &str, token: &str, purpose: Option<&str>) -> Resp {
        self.call(Method::GET, path, token, purpose, None).await
    }

    pub async fn post(&self, path: &str, token: &str, purpose: Option<&str>, body: Value) -> Resp {
        self.call(Method::POST, path, token, purpose, Some(&body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, token, None, Some(&body)).await
    }

    /// Creates a tenant and its admin key through the operator.
    pub async fn tenant(&self, name: &str) -> TestTenant {
        let t = self
            .post("/v1/tenants", &self.operator, None, json!({ "name": name }))
            .await;
        assert_eq!(t.status, 201, "{}", t.text);
        let id = t.body["id"].as_str().unwrap().to_owned();
        let k = self
            .post(
                "/v1/api-keys",
                &self.operator,
                None,
                json!({"name": "admin", "roles": ["admin"], "expires_in_days": 30, "tenant": id}),
            )
            .await;
        assert_eq!(k.status, 201, "{}", k.text);
        TestTenant {
            id,
            name: name.to_owned(),
            admin: k.body["key"].as_str().unwrap().to_owned(),
        }
    }

    /// Defines the `people` collection used across tests (as in the quickstart).
    pub async fn people(&self, admin: &str) {
        let r = self
            .put("/v1/collections/people", admin, people_schema())
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }

    /// Defines a role.
    pub async fn role(&self, admin: &str, name: &str, def: Value) {
        let r = self.put(&format!("/v1/roles/{name}"), admin, def).await;
        assert!(r.status == 201 || r.status == 200, "{}", r.text);
    }

    /// Issues a key with these roles, valid for 30 days.
    pub async fn key(&self, admin: &str, roles: &[&str]) -> String {
        let r = self
            .post(
                "/v1/api-keys",
                admin,
                None,
                json!({"name": "test key", "roles": roles, "expires_in_days": 30}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["key"].as_str().unwrap().to_owned()
    }

    /// A tenant with the `people` collection, a `support_agent` role and an app key holding it.
    pub async fn scenario(&self, name: &str) -> (TestTenant, String) {
        let t = self.tenant(name).await;
        self.people(&t.admin).await;
        self.role(&t.admin, "support_agent", support_agent()).await;
        let app = self.key(&t.admin, &["support_agent"]).await;
        (t, app)
    }

    /// Stores a person and returns the record id.
    pub async fn store_person(&self, app: &str, fields: Value) -> String {
        let r = self
            .post(
                "/v1/collections/people/records",
                app,
                Some("support"),
                json!({ "fields": fields }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Creates a user through `admin` (a tenant admin or operator key) and returns its id.
    pub async fn user(
        &self,
        admin: &str,
        username: &str,
        password: &str,
        roles: &[&str],
    ) -> String {
        let r = self
            .post(
                "/v1/users",
                admin,
                None,
                json!({"username": username, "password": password, "roles": roles}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Attempts a sign-in.
    pub async fn login(
        &self,
        tenant: Option<&str>,
        username: &str,
        password: &str,
        totp: Option<&str>,
    ) -> Resp {
        let mut body = json!({"username": username, "password": password});
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        if let Some(c) = totp {
            body["totp"] = json!(c);
        }
        self.post("/v1/auth/login", "", None, body).await
    }

    /// Signs in and returns the session token.
    pub async fn session(
        &self,
        tenant: Option<&str>,
        username: &str,
        password: &str,
        totp: Option<&str>,
    ) -> String {
        let r = self.login(tenant, username, password, totp).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// Enrols TOTP for the session's user and returns (secret, recovery codes). The session
    /// ends, as every MFA change ends all sessions.
    pub async fn enrol_totp(&self, session: &str) -> (Vec<u8>, Vec<String>) {
        let r = self
            .post("/v1/auth/mfa/totp", session, None, json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.body["qr_svg"].as_str().unwrap().starts_with("<?xml"));
        let uri = r.body["otpauth_uri"].as_str().unwrap();
        let secret = uri
            .split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        let secret = strongroom_crypto::otp::base32_decode(secret).unwrap();
        let code = self.totp(&secret, 0);
        let r = self
            .post(
                "/v1/auth/mfa/totp/confirm",
                session,
                None,
                json!({"code": code}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let codes = r.body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        (secret, codes)
    }

    /// The TOTP code for the test clock's current step plus `offset` steps.
    pub fn totp(&self, secret: &[u8], offset: i64) -> String {
        use strongroom_core::Clock;
        let step = strongroom_crypto::otp::step_at(self.clock.now_ms()) + offset;
        strongroom_crypto::otp::totp(secret, step)
    }

    /// Every byte of every file under the data directory, for plaintext scans.
    pub fn scan_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data_path, &mut out);
        out
    }
}

/// The schema of the `people` collection.
pub fn people_schema() -> Value {
    json!({
        "purposes": ["support", "marketing", "billing"],
        "fields": [
            {"name": "email", "type": "email", "classification": "identifier", "searchable": true, "mask": "email", "required": true},
            {"name": "name", "type": "string", "classification": "personal", "mask": "first1", "searchable": true},
            {"name": "phone", "type": "phone", "classification": "personal", "mask": "last4", "purposes": ["support", "billing"]},
            {"name": "birth_date", "type": "date", "classification": "personal", "mask": "year"},
            {"name": "vip", "type": "bool", "classification": "non_personal"},
            {"name": "notes", "type": "json", "classification": "special"}
        ]
    })
}

/// A role that creates, reads, updates and searches people for support, seeing some fields
/// masked and one not at all.
pub fn support_agent() -> Value {
    json!({"collections": {"people": {
        "operations": ["create", "read", "update", "search"],
        "purposes": ["support"],
        "fields": {"email": "plain", "name": "plain", "phone": "masked", "birth_date": "none", "vip": "plain", "notes": "plain"}
    }}})
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
