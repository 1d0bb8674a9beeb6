//! The Strongroom server: the data directory, TLS, and the HTTP API over the vault service.
//! Handlers only translate; decisions live in `strongroom-core`.

pub mod api;
pub mod audit_check;
pub mod audit_tools;
pub mod datadir;
pub mod hashing;
pub mod jobs;
pub mod limits;
pub mod ratelimit;
pub mod siem;
pub mod tls;
pub mod witness;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strongroom_core::{Clock, Rng, Store, Vault, VaultConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use datadir::{DataDir, SetupError};

/// Default largest request body.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Plain HTTP; accepted only on a loopback address (behind a TLS-terminating proxy).
    pub insecure_http: bool,
    pub max_body_bytes: usize,
    /// A certificate chain and key in PEM; the data directory's self-signed pair by default.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub vault: VaultConfig,
    /// Argon2id cost of password hashes.
    pub password_cost: strongroom_crypto::password::Cost,
    /// Sign a checkpoint of a log once it has this many new entries...
    pub checkpoint_every_entries: u64,
    /// ...or, if it has any, once this long has passed since its last checkpoint.
    pub checkpoint_every: Duration,
    /// Where audit entries and alerts are streamed as JSON lines (none by default).
    pub audit_stream: Option<siem::Target>,
    pub alerts: siem::AlertRules,
    /// Where each log's latest checkpoint is published as a signed note (none by default).
    pub witness_dir: Option<PathBuf>,
    /// Logs whose disagreeing head, table or checkpoints the operator accepts at this start
    /// (audited); without it such a log stops the server from starting.
    pub accept_audit_mismatch: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed for the client's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Longest a request may take (answered `503 request_timeout` then).
    pub request_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Failed bearer authentications a client may make at once (and per minute) before its
    /// requests are refused for a while.
    pub failed_auth_budget: u32,
    /// Verify every audit log this often and record the result (none: never in the background).
    pub audit_verify_every: Option<Duration>,
    /// Percent of the time background jobs' batches may take (1–100; see `core::jobs`).
    pub background_share: u8,
    /// A copy of the RustSec advisory database: the version report and OR-09 check the
    /// dependencies against it.
    pub advisory_db: Option<PathBuf>,
}

/// Background jobs take at most this percent of the time by default: a purge of a large
/// backlog then costs audited requests on SQLite less than a fifth of their throughput.
pub const DEFAULT_BACKGROUND_SHARE: u8 = 20;

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            insecure_http: false,
            max_body_bytes: DEFAULT_MAX_BODY,
            tls_cert: None,
            tls_key: None,
            vault: VaultConfig::default(),
            password_cost: strongroom_crypto::password::Cost::DEFAULT,
            checkpoint_every_entries: 1000,
            checkpoint_every: Duration::from_secs(5),
            audit_stream: None,
            alerts: siem::AlertRules::default(),
            witness_dir: None,
            accept_audit_mismatch: Vec::new(),
            trusted_proxies: Vec::new(),
            request_timeout: limits::DEFAULT_REQUEST_TIMEOUT,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            failed_auth_budget: 20,
            audit_verify_every: Some(Duration::from_secs(24 * 3600)),
            background_share: DEFAULT_BACKGROUND_SHARE,
            advisory_db: None,
        }
    }
}

/// Refuses listener set-ups that would expose data: plain HTTP off loopback.
pub fn check_listener(opts: &ServeOptions) -> Result<(), SetupError> {
    if opts.insecure_http && !opts.listen.ip().is_loopback() {
        return Err(SetupError::Unsafe(format!(
            "--insecure-http serves plain HTTP and is only allowed on a loopback address, not {}; \
             terminate TLS here (the default) or put a TLS proxy in front of 127.0.0.1",
            opts.listen
        )));
    }
    if opts.tls_cert.is_some() != opts.tls_key.is_some() {
        return Err(SetupError::Invalid(
            "give both --tls-cert and --tls-key, or neither".into(),
        ));
    }
    Ok(())
}

/// Builds the vault over an opened store and initialises it if it is new. Returns the vault and,
/// for a new store, the one-time bootstrap token.
pub async fn open_vault(
    dir: &DataDir,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
    config: VaultConfig,
    password_cost: strongroom_crypto::password::Cost,
) -> Result<(Arc<Vault>, Option<String>), SetupError> {
    let (root, created) = dir.root_key(rng.as_ref(), true)?;
    if created {
        tracing::warn!(
            path = %dir.root_key_path().display(),
            "created the root key as a plain file (mode 0600); for production keep it off the data disk \
             and move to passphrase or Shamir sealing"
        );
    }
    let hasher = Arc::new(hashing::OffloadHasher::new(password_cost));
    let vault = Arc::new(Vault::new(store, clock, rng, hasher, root, config));
    let token = vault
        .ensure_initialized()
        .await
        .map_err(|e| SetupError::Invalid(e.message.into_owned()))?;
    Ok((vault, token))
}

/// What the TOMs report says of this installation.
fn installation(
    opts: &ServeOptions,
    store: &dyn Store,
) -> strongroom_compliance::evidence::Installation {
    let (kind, database_tls) = store.backend();
    strongroom_compliance::evidence::Installation {
        store: kind.to_owned(),
        tls: Some(if opts.insecure_http {
            Vec::new()
        } else {
            vec!["1.2".into(), "1.3".into()]
        }),
        database_tls,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        advisory_db: opts.advisory_db.clone(),
    }
}

/// The server's own configuration as recorded in the configuration history (AV-06): every
/// setting that shapes its behaviour, and no secret (none of these options carries one: the
/// database URL and the keys stay out, only the store's kind and link security are named).
pub fn config_snapshot(opts: &ServeOptions, store: &dyn Store) -> serde_json::Value {
    let (kind, database_tls) = store.backend();
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "listen": opts.listen.to_string(),
        "insecure_http": opts.insecure_http,
        "tls_cert": path(&opts.tls_cert),
        "tls_key": path(&opts.tls_key),
        "max_body_bytes": opts.max_body_bytes,
        "store": kind,
        "database_tls": database_tls,
        "dek_cache_entries": opts.vault.dek_cache_entries,
        "max_batch": opts.vault.max_batch,
        "password_cost": {
            "memory_kib": opts.password_cost.memory_kib,
            "iterations": opts.password_cost.iterations,
            "parallelism": opts.password_cost.parallelism,
        },
        "checkpoint_every_entries": opts.checkpoint_every_entries,
        "checkpoint_every_seconds": opts.checkpoint_every.as_secs(),
        "audit_stream": opts.audit_stream.as_ref().map(|t| match t {
            siem::Target::Stdout => "stdout".to_owned(),
            siem::Target::Syslog => "syslog".to_owned(),
            siem::Target::File(p) => format!("file:{}", p.display()),
        }),
        "alert_export_records": opts.alerts.export_records,
        "alert_denial_burst": opts.alerts.denial_burst,
        "witness_dir": path(&opts.witness_dir),
        "accept_audit_mismatch": opts.accept_audit_mismatch,
        "trusted_proxies": opts.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "request_timeout_seconds": opts.request_timeout.as_secs(),
        "max_connections": opts.max_connections,
        "failed_auth_budget": opts.failed_auth_budget,
        "audit_verify_every_seconds": opts.audit_verify_every.map(|d| d.as_secs()),
        "background_share_percent": opts.background_share,
        "closed_log_retention_days": opts.vault.closed_log_retention_days,
        "advisory_db": path(&opts.advisory_db),
    })
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub vault: Arc<Vault>,
    /// Set when this start initialised the data directory: print it once, store it nowhere.
    pub bootstrap_token: Option<String>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
    publisher: Arc<tokio::sync::Mutex<Option<witness::Publisher>>>,
}

impl Running {
    /// Stops accepting connections, stops the background tasks, and signs a final checkpoint
    /// of every log so that everything written is covered.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        for t in self.background {
            let _ = t.await;
        }
        self.vault.flush_refusals(true).await;
        match self.vault.checkpoint_due(1, 0).await {
            Ok(made) => publish(&self.vault, &self.publisher, &made).await,
            Err(e) => tracing::error!(error = %e, "could not sign the final checkpoints"),
        }
    }

    /// Waits until the server stops (it runs until [`Running::stop`] or the process ends).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Starts serving the vault of `dir` over `store`.
pub async fn start(
    dir: &DataDir,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
    opts: ServeOptions,
) -> Result<Running, SetupError> {
    check_listener(&opts)?;
    let tls = if opts.insecure_http {
        None
    } else {
        let (cert, key) = match (&opts.tls_cert, &opts.tls_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => {
                dir.ensure_self_signed_cert()?;
                (dir.cert_path(), dir.tls_key_path())
            }
        };
        Some(tls::acceptor(&cert, &key)?)
    };
    let (vault, bootstrap_token) = open_vault(
        dir,
        store,
        clock,
        rng,
        opts.vault.clone(),
        opts.password_cost,
    )
    .await?;
    let stream_from = match &opts.audit_stream {
        Some(_) => Some(
            siem::cursors(&vault)
                .await
                .map_err(|e| SetupError::Invalid(format!("audit stream: {e}")))?,
        ),
        None => None,
    };
    let publisher = check_audit_logs(&vault, &opts).await?;
    vault
        .record_server_config(config_snapshot(&opts, vault.store().as_ref()))
        .await
        .map_err(|e| SetupError::Invalid(format!("configuration history: {}", e.message)))?;
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|source| SetupError::Io {
            what: "cannot listen",
            path: opts.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SetupError::Io {
        what: "cannot read the listening address",
        path: opts.listen.to_string(),
        source,
    })?;
    let app = api::router(api::AppState {
        vault: vault.clone(),
        max_body_bytes: opts.max_body_bytes,
        login_limiter: Arc::new(ratelimit::LoginLimiter::default()),
        bearer_limiter: Arc::new(ratelimit::LoginLimiter::with_burst(opts.failed_auth_budget)),
        readiness: Default::default(),
        trusted_proxies: Arc::new(opts.trusted_proxies.clone()),
        request_timeout: opts.request_timeout,
        installation: Arc::new(installation(&opts, vault.store().as_ref())),
    });
    let (shutdown, rx) = watch::channel(false);
    let publisher = Arc::new(tokio::sync::Mutex::new(publisher));
    let mut background = vec![tokio::spawn(checkpointer(
        vault.clone(),
        publisher.clone(),
        opts.checkpoint_every_entries,
        opts.checkpoint_every,
        rx.clone(),
    ))];
    let runner = jobs::runner(&vault, opts.audit_verify_every)
        .await
        .map(|r| r.paced(opts.background_share, jobs::sleep()))
        .map_err(|e| SetupError::Invalid(format!("job runner: {}", e.message)))?;
    background.push(tokio::spawn(jobs::run_loop(
        vault.clone(),
        runner,
        rx.clone(),
    )));
    if let Some(target) = &opts.audit_stream {
        let sink = siem::Sink::open(target)
            .map_err(|e| SetupError::Invalid(format!("audit stream: {e}")))?;
        background.push(tokio::spawn(siem::run(
            vault.clone(),
            sink,
            opts.alerts.clone(),
            stream_from.unwrap_or_default(),
            rx.clone(),
        )));
    }
    let task = tokio::spawn(tls::serve(listener, tls, app, rx, opts.max_connections));
    Ok(Running {
        addr,
        vault,
        bootstrap_token,
        shutdown,
        task,
        background,
        publisher,
    })
}

/// Checks every audit log at start-up (see [`audit_check`]) and prepares the witness
/// directory. A log whose parts disagree stops the start, unless the operator accepted it.
async fn check_audit_logs(
    vault: &Vault,
    opts: &ServeOptions,
) -> Result<Option<witness::Publisher>, SetupError> {
    let pk = vault
        .public_key()
        .map_err(|e| SetupError::Invalid(e.message.into_owned()))?;
    let (publisher, witnessed) = match &opts.witness_dir {
        None => (None, None),
        Some(dir) => {
            let publisher = witness::Publisher::new(dir, pk).map_err(SetupError::Invalid)?;
            let held = witness::Witnessed::load(dir, &pk, &[])
                .map_err(|e| SetupError::Invalid(format!("witness directory: {e}")))?;
            (Some(publisher), Some(held))
        }
    };
    let mismatches = audit_check::check(vault.store().as_ref(), &pk, witnessed.as_ref())
        .await
        .map_err(|e| SetupError::Invalid(format!("cannot check the audit logs: {e}")))?;
    let mut refused = Vec::new();
    for m in mismatches {
        tracing::error!(alert = "audit_mismatch", log = %m.log, code = m.code, "{m}");
        if opts.accept_audit_mismatch.contains(&m.log) {
            tracing::warn!(log = %m.log, "continuing on this log's state as the operator asked; recorded in the platform log");
            vault
                .record_audit_mismatch_accepted(&m.log, m.code)
                .await
                .map_err(|e| SetupError::Invalid(e.message.into_owned()))?;
        } else {
            refused.push(m.to_string());
        }
    }
    if !refused.is_empty() {
        return Err(SetupError::Unsafe(format!(
            "the audit logs do not match their heads, checkpoints or witness, so this server would \
             sign over a log that was cut, rolled back or removed:\n  {}\n\
             Investigate with `strongroom audit verify` and restore from a backup; to continue on \
             this state anyway, start with --accept-audit-mismatch LOG (recorded in the platform log)",
            refused.join("\n  ")
        )));
    }
    Ok(publisher)
}

/// Signs checkpoints in the background: a log is checkpointed once it has `every_entries` new
/// entries, or any new entry and no checkpoint for `every`.
async fn checkpointer(
    vault: Arc<Vault>,
    publisher: Arc<tokio::sync::Mutex<Option<witness::Publisher>>>,
    every_entries: u64,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let tick = every
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => return,
        }
        vault.flush_refusals(false).await;
        match vault
            .checkpoint_due(every_entries, every.as_millis() as i64)
            .await
        {
            Ok(made) => publish(&vault, &publisher, &made).await,
            Err(e) => tracing::error!(error = %e, "checkpointing failed"),
        }
    }
}

/// Publishes checkpoints just made to the witness directory, if there is one.
async fn publish(
    vault: &Vault,
    publisher: &tokio::sync::Mutex<Option<witness::Publisher>>,
    made: &[strongroom_core::checkpoint::CheckpointRow],
) {
    if made.is_empty() {
        return;
    }
    if let Some(p) = publisher.lock().await.as_mut() {
        if let Err(e) = p.publish(vault.store().as_ref(), made).await {
            tracing::error!(alert = "witness_unavailable", error = %e, "could not publish checkpoints to the witness directory");
        }
    }
}
