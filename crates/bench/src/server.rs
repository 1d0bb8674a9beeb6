//! A real Strongroom server for the HTTP workloads: the release build of `strongroom`, on a
//! fresh data directory (embedded SQLite, `synchronous=FULL`), in its own process.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use crate::load::{request, Conn, Target};

/// The release `strongroom` binary next to this one, built (or brought up to date) first so
/// that the figures are those of the current source.
pub fn binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the bench binary has no directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building the server: cargo build --release -p strongroom");
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "-p",
            "strongroom",
            "--bin",
            "strongroom",
        ])
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    ensure!(status.success(), "building the server failed");
    let bin = dir.join("strongroom");
    ensure!(bin.exists(), "{} is missing after the build", bin.display());
    Ok(bin)
}

/// A running server process and what the workloads need to talk to it.
pub struct Server {
    child: Child,
    pub target: Target,
    pub data_dir: PathBuf,
    /// The operator's bootstrap token.
    operator: String,
    bin: PathBuf,
    addr: SocketAddr,
    _tmp: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The keys and names the workloads use.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The tenant's id.
    pub id: String,
    /// A key with the tenant's `admin` role.
    pub admin: String,
    /// An application key with the `bench_app` role on `people`.
    pub app: String,
}

impl Server {
    /// Initialises a fresh data directory in `parent` and starts `strongroom serve` on a free
    /// loopback port.
    pub async fn start(bin: &Path, parent: Option<&Path>) -> Result<Self> {
        let tmp = match parent {
            Some(p) => tempfile::Builder::new()
                .prefix("strongroom-bench")
                .tempdir_in(p)?,
            None => tempfile::Builder::new()
                .prefix("strongroom-bench")
                .tempdir()?,
        };
        let data_dir = tmp.path().join("data");
        let out = Command::new(bin)
            .args(["init", "--json", "--data-dir"])
            .arg(&data_dir)
            .output()?;
        ensure!(
            out.status.success(),
            "strongroom init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let init: Value = serde_json::from_slice(&out.stdout)?;
        let operator = init["bootstrap_token"]
            .as_str()
            .context("init printed no bootstrap token")?
            .to_owned();
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = spawn(bin, &data_dir, addr, tmp.path())?;
        let target = Target::new(addr, &data_dir.join("tls").join("cert.pem"))?;
        let mut server = Self {
            child,
            target,
            data_dir,
            operator,
            bin: bin.to_owned(),
            addr,
            _tmp: tmp,
        };
        server.ready().await?;
        Ok(server)
    }

    /// Stops the server (SIGKILL: the store is crash-safe) so that its data directory can be
    /// changed; `resume` starts it again on the same address.
    pub fn stop(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Starts the stopped server again on the same data directory and address.
    pub async fn resume(&mut self) -> Result<()> {
        self.child = spawn(&self.bin, &self.data_dir, self.addr, self._tmp.path())?;
        self.ready().await
    }

    /// The operator's bootstrap token.
    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// Waits until the server answers its health check.
    async fn ready(&mut self) -> Result<()> {
        let server = self;
        for _ in 0..200 {
            if let Ok(mut conn) = server.target.connect().await {
                if conn
                    .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    .await
                    .is_ok_and(|r| r.status == 200)
                {
                    return Ok(());
                }
            }
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "the server exited ({status}); its log: {}",
                    std::fs::read_to_string(server._tmp.path().join("server.log"))
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the server did not answer within 10 s")
    }

    /// The server process's memory: (current RSS, peak RSS) in MB.
    pub fn rss_mb(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Bytes of the data directory on disk.
    pub fn disk_bytes(&self) -> u64 {
        std::fs::read_dir(&self.data_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    pub async fn call(
        &self,
        conn: &mut Conn,
        method: &str,
        path: &str,
        token: &str,
        body: Value,
    ) -> Result<Value> {
        let body = (!body.is_null())
            .then(|| serde_json::to_vec(&body))
            .transpose()?;
        let resp = conn
            .send(&request(method, path, token, "", body.as_deref()))
            .await?;
        ensure!(
            (200..=202).contains(&resp.status),
            "{method} {path}: HTTP {}: {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        );
        Ok(serde_json::from_slice(&resp.body)?)
    }

    /// Waits until the jobs due at the server's start (purge, retention, reminders) have each
    /// run once and none is running, so that the first workload is not measured during them.
    #[allow(clippy::disallowed_methods)] // a benchmark waits in wall-clock time
    pub async fn settle(&self) -> Result<()> {
        let started = std::time::Instant::now();
        loop {
            let jobs = self.get(&self.operator, "/v1/jobs").await?;
            let list = jobs["jobs"].as_array().cloned().unwrap_or_default();
            let busy = list.iter().any(|j| {
                j["state"] == "running"
                    || (j["kind"] != "audit.verify" && j["runs"].as_u64().unwrap_or(0) == 0)
            });
            if !busy {
                return Ok(());
            }
            ensure!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "the start-up jobs did not settle: {jobs}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// `GET path` on a new connection (an idle one may have been closed by the server).
    pub async fn get(&self, token: &str, path: &str) -> Result<Value> {
        let mut conn = self.target.connect().await?;
        self.call(&mut conn, "GET", path, token, Value::Null).await
    }

    /// A tenant with the `people` collection (5 fields, 2 searchable; purposes `support` based
    /// on contract and `newsletter` based on consent), a role that may create, read and search
    /// for both, and an application key with that role.
    pub async fn tenant(&self) -> Result<Tenant> {
        let mut conn = self.target.connect().await?;
        let op = self.operator.clone();
        let t = self
            .call(
                &mut conn,
                "POST",
                "/v1/tenants",
                &op,
                json!({"name": "bench"}),
            )
            .await?;
        let tenant = t["id"].as_str().context("tenant id")?;
        let k = self
            .call(
                &mut conn,
                "POST",
                "/v1/api-keys",
                &op,
                json!({"name": "bench admin", "roles": ["admin"], "expires_in_days": 7, "tenant": tenant}),
            )
            .await?;
        let admin = k["key"].as_str().context("admin key")?.to_owned();
        self.call(
            &mut conn,
            "PUT",
            "/v1/collections/people",
            &admin,
            json!({"purposes": ["support", "newsletter"],
                   "bases": {"support": "contract", "newsletter": "consent"}, "fields": [
                {"name": "email", "type": "email", "classification": "identifier", "searchable": true, "required": true},
                {"name": "phone", "type": "phone", "classification": "personal", "searchable": true},
                {"name": "name", "type": "string", "classification": "personal"},
                {"name": "birth_date", "type": "date", "classification": "personal"},
                {"name": "city", "type": "string", "classification": "personal"}
            ]}),
        )
        .await?;
        self.call(
            &mut conn,
            "PUT",
            "/v1/roles/bench_app",
            &admin,
            json!({"collections": {"people": {
                "operations": ["create", "read", "search"],
                "purposes": ["support", "newsletter"],
                "fields": {"email": "plain", "phone": "plain", "name": "plain", "birth_date": "plain", "city": "plain"}}}}),
        )
        .await?;
        let k = self
            .call(
                &mut conn,
                "POST",
                "/v1/api-keys",
                &admin,
                json!({"name": "bench app", "roles": ["bench_app"], "expires_in_days": 7}),
            )
            .await?;
        Ok(Tenant {
            id: tenant.to_owned(),
            admin,
            app: k["key"].as_str().context("app key")?.to_owned(),
        })
    }
}

/// Starts `strongroom serve` on `data_dir`, its output appended to `dir/server.log`.
fn spawn(bin: &Path, data_dir: &Path, addr: SocketAddr, dir: &Path) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))?;
    Ok(Command::new(bin)
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", &addr.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}

/// The fields of person number `k`: the same values the baseline stores for `k`.
pub fn person(k: u64) -> Value {
    json!({
        "email": format!("user{k}@example.com"),
        "phone": format!("+44 20 {:04} {:04}", k / 10_000 % 10_000, k % 10_000),
        "name": format!("Person Number {k}"),
        "birth_date": format!("19{:02}-{:02}-{:02}", k % 100, k % 12 + 1, k % 28 + 1),
        "city": "London",
    })
}
