//! The `strongroom` binary: serve the vault, initialise a data directory, administer it offline.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use strongroom_core::{OsRng, Store, SystemClock};
use strongroom_server::{DataDir, ServeOptions};
use strongroom_store_sqlite::{SqliteOptions, SqliteStore};

#[derive(Parser)]
#[command(
    name = "strongroom",
    version,
    about = "A personal-data vault with GDPR measures built in"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the vault over HTTPS (initialising the data directory on first run).
    Serve(ServeArgs),
    /// Initialise a data directory without serving, printing the bootstrap token.
    Init {
        #[arg(long, default_value = "./strongroom-data", env = "STRONGROOM_DATA_DIR")]
        data_dir: PathBuf,
        /// Keep the data in PostgreSQL (`postgres://…` or `host=… dbname=…`) instead of SQLite.
        #[arg(long, env = "STRONGROOM_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// Print `{"bootstrap_token": "..."}` instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Offline administration of a data directory (the server must be stopped).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Verify, export and inspect the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The technical and organisational measures (TOMs) report, from live evidence.
    Toms {
        #[command(subcommand)]
        command: TomsCommand,
    },
    /// Background jobs (verification, reminders; later purges and retention): list them, or
    /// run one now in the foreground with its progress.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// The version report (OR-09): this build, its dependencies, and the advisories that
    /// affect them.
    Versions {
        /// A copy of the RustSec advisory database to check the dependencies against.
        #[arg(long, env = "STRONGROOM_ADVISORY_DB")]
        advisory_db: Option<PathBuf>,
        /// `md` or `json`.
        #[arg(long, default_value = "md")]
        format: String,
        /// Exit 1 when an advisory (not an informational one) affects a dependency.
        #[arg(long)]
        deny: bool,
    },
    /// Erasure receipts and deletion certificates: check one offline.
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
}

#[derive(Subcommand)]
enum ReceiptCommand {
    /// Check an erasure receipt or a deletion certificate (offboarding) offline: its signature,
    /// the signed checkpoint it cites, and the proof that the audit entry recording the erasure
    /// or the offboarding is in that checkpoint's tree. Exit 1 when any of it fails.
    Verify {
        /// The receipt or certificate (JSON, as the erasure or offboarding call answered it).
        file: PathBuf,
        /// The audit signing key's public half (hex, from `GET /v1/audit/public-key`), obtained
        /// independently of the receipt.
        #[arg(long)]
        public_key: String,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// List the jobs with their state, schedule and last run.
    List {
        #[arg(long, default_value = "./strongroom-data", env = "STRONGROOM_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long, env = "STRONGROOM_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a job now, in this process (a server running beside it will not run it at the same
    /// time: the job's lease decides). Exit 1 when it fails or another node holds it.
    Run {
        /// The job's id (`audit.verify`, `compliance.alerts`, `kind:tenant`).
        id: String,
        #[arg(long, default_value = "./strongroom-data", env = "STRONGROOM_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long, env = "STRONGROOM_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
    },
}

#[derive(Subcommand)]
enum TomsCommand {
    /// Write the TOMs report of the platform or of one tenant (offline: the server may run).
    Report {
        #[arg(long, default_value = "./strongroom-data", env = "STRONGROOM_DATA_DIR")]
        data_dir: PathBuf,
        /// Read from this PostgreSQL database instead of the data directory's.
        #[arg(long, env = "STRONGROOM_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// A tenant's id or name: its DPA Annex II. Without it, the platform's report.
        #[arg(long)]
        tenant: Option<String>,
        /// `json` (signed), `md` or `html`.
        #[arg(long, default_value = "md")]
        format: String,
        /// `art32` (GDPR Art. 32 headings) or `scc` (SCC Annex II measure types).
        #[arg(long, default_value = "art32")]
        layout: String,
        /// Write here instead of to standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A copy of the RustSec advisory database, for OR-09.
        #[arg(long, env = "STRONGROOM_ADVISORY_DB")]
        advisory_db: Option<PathBuf>,
    },
    /// Check a signed JSON report offline. Exit 0 when the signature holds.
    Verify {
        file: PathBuf,
        /// The audit signing key (hex), from a copy kept apart from the server.
        #[arg(long)]
        public_key: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chains, Merkle roots and signed checkpoints of every log. Exit 0 when
    /// intact; otherwise 1, naming the first entry or checkpoint that fails.
    Verify {
        /// Verify the database of this data directory...
        #[arg(long, conflicts_with = "bundle")]
        data_dir: Option<PathBuf>,
        /// ...or an exported bundle...
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// ...or a PostgreSQL database.
        #[arg(long, conflicts_with_all = ["bundle", "data_dir"], env = "STRONGROOM_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// The Ed25519 public key to trust (hex), from a copy kept apart from the server.
        #[arg(long, conflicts_with = "pin")]
        public_key: Option<String>,
        /// Trust the key stored beside the log only if its fingerprint is this one (the 16 hex
        /// digits of `strongroom audit public-key`'s key name, kept apart from the server).
        #[arg(long)]
        pin: Option<String>,
        /// A witness directory (`serve --witness-dir`, or copies an operator kept): the log
        /// must contain every checkpoint held there, so a cut or rolled-back log fails.
        #[arg(long)]
        witness: Option<PathBuf>,
        /// Count only witnessed checkpoints cosigned by this external witness (a C2SP
        /// tlog-cosignature verifier key `<name>+<key id>+<base64 key>`). Repeatable.
        #[arg(long, requires = "witness", value_name = "VKEY")]
        cosigner: Vec<String>,
    },
    /// Write a portable bundle: entries.jsonl, checkpoints.jsonl, public-key.txt.
    Export {
        #[arg(long, default_value = "./strongroom-data", env = "STRONGROOM_DATA_DIR")]
        data_dir: PathBuf,
        /// Read the log from this PostgreSQL database instead of the data directory.
        #[arg(long, env = "STRONGROOM_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the Ed25519 public key that signs checkpoints (keep a copy apart from the server).
    PublicKey {
        #[arg(long, default_value = "./strongroom-data", env = "STRONGROOM_DATA_DIR")]
        data_dir: PathBuf,
        /// Read it from this PostgreSQL database instead of the data directory.
        #[arg(long, env = "STRONGROOM_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Issue a new 24-hour bootstrap operator token (when the first one was lost or expired).
    BootstrapToken {
        #[arg(long, default_value = "./strongroom-data", env = "STRONGROOM_DATA_DIR")]
        data_dir: PathBuf,
        /// The PostgreSQL database the data directory's root key belongs to.
        #[arg(long, env = "STRONGROOM_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    #[arg(long, default_value = "./strongroom-data", env = "STRONGROOM_DATA_DIR")]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8443", env = "STRONGROOM_LISTEN")]
    listen: SocketAddr,
    /// Keep the data in PostgreSQL (`postgres://…` or `host=… dbname=…`) instead of the
    /// embedded SQLite database; several nodes may serve one database. Every node needs the same
    /// root key file in its data directory.
    #[arg(long, env = "STRONGROOM_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// Serve plain HTTP (loopback addresses only, behind a TLS-terminating proxy).
    #[arg(long)]
    insecure_http: bool,
    /// Largest accepted request body in bytes.
    #[arg(long, default_value_t = strongroom_server::DEFAULT_MAX_BODY)]
    max_body_bytes: usize,
    /// PEM certificate chain to serve instead of the self-signed one.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Stream audit entries and alerts as JSON lines: `stdout`, `syslog` or a file path.
    #[arg(long, env = "STRONGROOM_AUDIT_STREAM")]
    audit_stream: Option<strongroom_server::siem::Target>,
    /// Sign a checkpoint of a log after this many new entries...
    #[arg(long, default_value_t = 1000)]
    checkpoint_every_entries: u64,
    /// ...or after this many seconds, whichever comes first.
    #[arg(long, default_value_t = 5)]
    checkpoint_every_seconds: u64,
    /// Alert when one request returns at least this many records.
    #[arg(long, default_value_t = 500)]
    alert_export_records: usize,
    /// Alert when one actor is denied this many times within a minute.
    #[arg(long, default_value_t = 20)]
    alert_denial_burst: usize,
    /// Publish each log's latest signed checkpoint here (a C2SP signed note per log), on a
    /// disk or share the database's writers cannot rewrite; `audit verify --witness` checks
    /// the log against it, and the server refuses to start on a log shorter than it.
    #[arg(long, env = "STRONGROOM_WITNESS_DIR")]
    witness_dir: Option<PathBuf>,
    /// Start although this log's head, entries, checkpoints or witness disagree (recorded in
    /// the platform log). Repeat for several logs.
    #[arg(long, value_name = "LOG")]
    accept_audit_mismatch: Vec<String>,
    /// A reverse proxy (address or CIDR) whose `X-Forwarded-For` header names the client for
    /// sign-in rate limits. Repeatable. Without it the header is ignored.
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    trusted_proxy: Vec<ipnet::IpNet>,
    /// Longest a request may run, in seconds (body upload included); it is then answered
    /// `503 request_timeout`.
    #[arg(long, env = "STRONGROOM_REQUEST_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout_seconds: u64,
    /// Most connections open at once; further clients wait until one closes.
    #[arg(long, env = "STRONGROOM_MAX_CONNECTIONS", default_value_t = strongroom_server::limits::DEFAULT_MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_connections: usize,
    /// Failed bearer authentications one client (address or IPv6 /64) may make at once, and
    /// per minute, before its requests get 429 for a while.
    #[arg(long, env = "STRONGROOM_FAILED_AUTH_BUDGET", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    failed_auth_budget: u32,
    /// Percent of the time background jobs (purge, retention, verification) may take: after
    /// each batch a job waits so its batches take at most this share. 100 runs them flat out
    /// (faster purges, slower requests meanwhile).
    #[arg(long, env = "STRONGROOM_BACKGROUND_SHARE", value_name = "PERCENT", default_value_t = strongroom_server::DEFAULT_BACKGROUND_SHARE, value_parser = clap::value_parser!(u8).range(1..=100))]
    background_share: u8,
    /// Days an offboarded tenant's closed audit log (no personal data) is kept before it is
    /// deleted, the deletion recorded in the platform log.
    #[arg(long, env = "STRONGROOM_CLOSED_LOG_RETENTION_DAYS", value_name = "DAYS", default_value_t = strongroom_core::vault::DEFAULT_CLOSED_LOG_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    closed_log_retention_days: u32,
    /// A copy of the RustSec advisory database (a clone of github.com/rustsec/advisory-db):
    /// the version report and the TOMs report (OR-09) check the dependencies against it.
    #[arg(long, env = "STRONGROOM_ADVISORY_DB")]
    advisory_db: Option<PathBuf>,
}

/// An address (a /32 or /128) or a network in CIDR notation.
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{s}` is neither an address nor a network in CIDR notation"))
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./strongroom-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            database: None,
            insecure_http: false,
            max_body_bytes: strongroom_server::DEFAULT_MAX_BODY,
            tls_cert: None,
            tls_key: None,
            audit_stream: None,
            checkpoint_every_entries: 1000,
            checkpoint_every_seconds: 5,
            alert_export_records: 500,
            alert_denial_burst: 20,
            witness_dir: None,
            accept_audit_mismatch: Vec::new(),
            trusted_proxy: Vec::new(),
            request_timeout_seconds: 30,
            max_connections: strongroom_server::limits::DEFAULT_MAX_CONNECTIONS,
            failed_auth_budget: 20,
            background_share: strongroom_server::DEFAULT_BACKGROUND_SHARE,
            closed_log_retention_days: strongroom_core::vault::DEFAULT_CLOSED_LOG_RETENTION_DAYS,
            advisory_db: None,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRONGROOM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<ExitCode> = runtime.block_on(async {
        let done = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
            Command::Serve(args) => serve(args).await,
            Command::Init {
                data_dir,
                database,
                json,
            } => init(&data_dir, database.as_deref(), json).await,
            Command::Admin {
                command:
                    AdminCommand::BootstrapToken {
                        data_dir,
                        database,
                        json,
                    },
            } => bootstrap_token(&data_dir, database.as_deref(), json).await,
            Command::Audit { command } => return audit(command).await,
            Command::Toms { command } => toms(command).await,
            Command::Jobs { command } => jobs(command).await,
            Command::Versions {
                advisory_db,
                format,
                deny,
            } => versions(advisory_db.as_deref(), &format, deny),
            Command::Receipt {
                command: ReceiptCommand::Verify { file, public_key },
            } => verify_receipt(&file, &public_key),
        };
        done.map(|()| ExitCode::SUCCESS)
    });
    let result = match result {
        Ok(code) => return code,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn open_postgres(url: &str) -> Result<Arc<dyn Store>> {
    let store = strongroom_store_postgres::PgStore::open(
        url,
        strongroom_store_postgres::PgOptions::default(),
    )
    .await
    .context("cannot open the PostgreSQL database")?;
    Ok(Arc::new(store))
}

async fn open_store(dir: &DataDir, database: Option<&str>) -> Result<Arc<dyn Store>> {
    if let Some(url) = database {
        return open_postgres(url).await;
    }
    let store = SqliteStore::open(&dir.db_path(), SqliteOptions::default())
        .with_context(|| format!("cannot open the database {}", dir.db_path().display()))?;
    Ok(Arc::new(store))
}

fn print_token(token: &str, json: bool) {
    if json {
        let out = strongroom_proto::InitOutput {
            bootstrap_token: token.to_owned(),
        };
        println!("{}", serde_json::to_string(&out).unwrap_or_default());
    } else {
        println!(
            "Bootstrap operator token (shown once, valid for 24 hours; only its hash is stored):"
        );
        println!();
        println!("    {token}");
        println!();
        println!("Use it to create tenants and the first real operator keys, then let it expire.");
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let opts = ServeOptions {
        listen: args.listen,
        insecure_http: args.insecure_http,
        max_body_bytes: args.max_body_bytes,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        audit_stream: args.audit_stream,
        checkpoint_every_entries: args.checkpoint_every_entries.max(1),
        checkpoint_every: std::time::Duration::from_secs(args.checkpoint_every_seconds.max(1)),
        alerts: strongroom_server::siem::AlertRules {
            export_records: args.alert_export_records.max(1),
            denial_burst: args.alert_denial_burst.max(1),
        },
        witness_dir: args.witness_dir,
        accept_audit_mismatch: args.accept_audit_mismatch,
        trusted_proxies: args.trusted_proxy,
        request_timeout: std::time::Duration::from_secs(args.request_timeout_seconds),
        max_connections: args.max_connections,
        failed_auth_budget: args.failed_auth_budget,
        background_share: args.background_share,
        advisory_db: args.advisory_db,
        vault: strongroom_core::vault::VaultConfig {
            closed_log_retention_days: args.closed_log_retention_days,
            ..Default::default()
        },
        ..ServeOptions::default()
    };
    strongroom_server::check_listener(&opts)?;
    let dir = DataDir::open(&args.data_dir)?;
    let store = open_store(&dir, args.database.as_deref()).await?;
    let running = strongroom_server::start(
        &dir,
        store,
        Arc::new(SystemClock),
        Arc::new(OsRng),
        opts.clone(),
    )
    .await?;
    if let Some(token) = &running.bootstrap_token {
        println!(
            "Initialised a new data directory at {}.",
            dir.path().display()
        );
        print_token(token, false);
    }
    // The handlers are in place before the server says it serves: a supervisor that stops it
    // right after must get a clean stop (final checkpoints), not the default kill.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    if opts.insecure_http {
        println!("Serving http://{} (plain HTTP on loopback)", running.addr);
    } else if opts.tls_cert.is_none() {
        println!(
            "Serving https://{} (self-signed certificate: {})",
            running.addr,
            dir.cert_path().display()
        );
    } else {
        println!("Serving https://{}", running.addr);
    }
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    // Nobody may be reading stdout any more; a closed pipe must not turn a clean stop into a panic.
    let _ = writeln!(std::io::stdout(), "Stopping.");
    running.stop().await;
    Ok(())
}

async fn init(data_dir: &Path, database: Option<&str>, json: bool) -> Result<()> {
    let dir = DataDir::open(data_dir)?;
    if database.is_none() && dir.has_database() {
        bail!(
            "{} is already initialised; to get a new bootstrap token run `strongroom admin bootstrap-token --data-dir {}`",
            data_dir.display(),
            data_dir.display()
        );
    }
    dir.ensure_self_signed_cert()?;
    let store = open_store(&dir, database).await?;
    let (_, token) = strongroom_server::open_vault(
        &dir,
        store,
        Arc::new(SystemClock),
        Arc::new(OsRng),
        Default::default(),
        strongroom_crypto::password::Cost::DEFAULT,
    )
    .await?;
    let token = token.context(
        "this database is initialised already; to get a new bootstrap token run `strongroom admin bootstrap-token`",
    )?;
    print_token(&token, json);
    Ok(())
}

/// The vault of an initialised data directory (or database), for offline commands.
async fn offline_vault(
    data_dir: &Path,
    database: Option<&str>,
) -> Result<Arc<strongroom_core::Vault>> {
    let dir = DataDir::open(data_dir)?;
    if database.is_none() && !dir.has_database() {
        bail!(
            "{} is not initialised; run `strongroom init` first",
            data_dir.display()
        );
    }
    let store = open_store(&dir, database).await?;
    let (vault, _) = strongroom_server::open_vault(
        &dir,
        store,
        Arc::new(SystemClock),
        Arc::new(OsRng),
        Default::default(),
        strongroom_crypto::password::Cost::DEFAULT,
    )
    .await?;
    Ok(vault)
}

fn verify_receipt(file: &std::path::Path, public_key: &str) -> Result<()> {
    let key: [u8; 32] = strongroom_crypto::unhex(public_key.trim())
        .and_then(|k| k.try_into().ok())
        .context("--public-key is not 32 bytes of hex")?;
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let doc: serde_json::Value = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} is not an erasure receipt or a deletion certificate (not JSON)",
            file.display()
        )
    })?;
    let verdict = if doc["format"] == strongroom_core::certificate::FORMAT {
        let c: strongroom_proto::DeletionCertificate = serde_json::from_value(doc)
            .with_context(|| format!("{} is not a deletion certificate", file.display()))?;
        strongroom_core::certificate::verify(&c, &key)
    } else {
        let receipt: strongroom_proto::ErasureReceipt = serde_json::from_value(doc)
            .with_context(|| format!("{} is not an erasure receipt", file.display()))?;
        strongroom_core::receipt::verify(&receipt, &key)
    };
    match verdict {
        Ok(summary) => {
            println!("{summary}");
            Ok(())
        }
        Err(why) => anyhow::bail!("the receipt does not verify: {why}"),
    }
}

fn versions(advisory_db: Option<&std::path::Path>, format: &str, deny: bool) -> Result<()> {
    let report = strongroom_compliance::versions::report(env!("CARGO_PKG_VERSION"), advisory_db)
        .map_err(|e| anyhow::anyhow!(e))?;
    let text = match format {
        "md" => strongroom_compliance::versions::markdown(&report),
        "json" => serde_json::to_string_pretty(&report)? + "\n",
        other => anyhow::bail!("format `{other}` is not one of md, json"),
    };
    print!("{text}");
    let affected = report
        .advisories
        .as_ref()
        .map_or(0, |s| s.vulnerabilities().count());
    if deny && affected > 0 {
        anyhow::bail!("{affected} advisories affect dependencies of this build");
    }
    Ok(())
}

async fn jobs(command: JobsCommand) -> Result<()> {
    use strongroom_core::jobs::{RunOutcome, Runner};
    use strongroom_core::rng::RngExt;
    match command {
        JobsCommand::List {
            data_dir,
            database,
            json,
        } => {
            let vault = offline_vault(&data_dir, database.as_deref()).await?;
            let now = vault.now();
            let jobs: Vec<_> = vault
                .store()
                .find_jobs()
                .await?
                .iter()
                .map(|j| strongroom_core::jobs::view(j, now))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
                return Ok(());
            }
            println!(
                "{:<48} {:<8} {:>10} {:>6} {:<20} last error",
                "job", "state", "progress", "runs", "next run"
            );
            for j in jobs {
                let progress = match j.total {
                    Some(t) => format!("{}/{t}", j.done),
                    None => j.done.to_string(),
                };
                let next = j.next_run_at.map_or("when asked".to_owned(), |t| {
                    strongroom_compliance::render::date(t)
                });
                println!(
                    "{:<48} {:<8} {:>10} {:>6} {:<20} {}",
                    j.id,
                    j.state,
                    progress,
                    j.runs,
                    next,
                    j.last_error.unwrap_or_default()
                );
            }
            Ok(())
        }
        JobsCommand::Run {
            id,
            data_dir,
            database,
        } => {
            let vault = offline_vault(&data_dir, database.as_deref()).await?;
            if vault.store().find_job(&id).await?.is_none() {
                anyhow::bail!("no job `{id}` (see `strongroom jobs list`)");
            }
            let node = format!("cli_{}", strongroom_crypto::hex(&vault.rng().array::<8>()));
            let runner = Runner::new(node, strongroom_server::jobs::kinds());
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {eta}")
                    .map_err(|e| anyhow::anyhow!(e.to_string()))?,
            );
            bar.set_message(id.clone());
            let mut progress = |j: &strongroom_core::store::JobRow| {
                if let Some(t) = j.total {
                    bar.set_length(t);
                }
                bar.set_position(j.done);
            };
            let outcome = runner.run(&vault, &id, &mut progress).await?;
            bar.finish_and_clear();
            match outcome {
                RunOutcome::Finished(j) => {
                    println!("{id}: done ({} of {})", j.done, j.total.unwrap_or(j.done));
                    Ok(())
                }
                RunOutcome::Busy => {
                    anyhow::bail!("{id} is being run by another node; try again when it is done")
                }
                RunOutcome::LeaseLost => {
                    anyhow::bail!("{id}: another node took the job over; it continues there")
                }
                RunOutcome::Failed(j) => anyhow::bail!(
                    "{id} failed: {}",
                    j.last_error.unwrap_or_else(|| "unknown".into())
                ),
            }
        }
    }
}

async fn toms(command: TomsCommand) -> Result<()> {
    use strongroom_compliance::evidence::{Context, Installation, Scope};
    match command {
        TomsCommand::Report {
            data_dir,
            database,
            tenant,
            format,
            layout,
            out,
            advisory_db,
        } => {
            let format: strongroom_server::api::compliance::Format =
                format.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let layout: strongroom_compliance::report::Layout =
                layout.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let vault = offline_vault(&data_dir, database.as_deref()).await?;
            let scope = match &tenant {
                None => Scope::Platform,
                Some(t) => {
                    let store = vault.store();
                    let found = match strongroom_core::ids::TenantId::parse(t) {
                        Some(id) => store.find_tenant(&id).await?,
                        None => store.find_tenant_by_name(t).await?,
                    };
                    Scope::Tenant(found.ok_or_else(|| anyhow::anyhow!("no tenant `{t}`"))?.id)
                }
            };
            let (kind, database_tls) = vault.store().backend();
            let ctx = Context {
                vault: &vault,
                scope,
                now: vault.now(),
                installation: Installation {
                    store: kind.to_owned(),
                    tls: None,
                    database_tls,
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    advisory_db: advisory_db.clone(),
                },
            };
            let (bytes, _) = strongroom_server::api::compliance::produce(&ctx, format, layout)
                .await
                .map_err(|e| anyhow::anyhow!("the report could not be made: {e}"))?;
            match out {
                Some(path) => std::fs::write(&path, bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes)?;
                }
            }
            Ok(())
        }
        TomsCommand::Verify { file, public_key } => {
            let key = strongroom_server::audit_tools::parse_public_key(&public_key)
                .ok_or_else(|| anyhow::anyhow!("--public-key is not 32 bytes of hex"))?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let report = strongroom_compliance::report::verify(&bytes, &key)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!(
                "{}: signature valid; {} measures, made {} for {}",
                file.display(),
                report.measures.len(),
                report.generated_at,
                report.tenant_name.as_deref().unwrap_or(&report.scope)
            );
            Ok(())
        }
    }
}

async fn bootstrap_token(data_dir: &Path, database: Option<&str>, json: bool) -> Result<()> {
    let vault = offline_vault(data_dir, database).await?;
    let token = vault
        .issue_bootstrap_token()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    print_token(&token, json);
    Ok(())
}

/// The store of an existing installation: PostgreSQL with `database`, else the data
/// directory's SQLite file.
async fn open_existing_store(data_dir: &Path, database: Option<&str>) -> Result<Arc<dyn Store>> {
    if let Some(url) = database {
        return open_postgres(url).await;
    }
    let db = data_dir.join("strongroom.db");
    if !db.exists() {
        bail!("{} holds no Strongroom database", data_dir.display());
    }
    let store = SqliteStore::open(&db, SqliteOptions::default())
        .with_context(|| format!("cannot open {}", db.display()))?;
    Ok(Arc::new(store))
}

async fn audit(command: AuditCommand) -> Result<ExitCode> {
    use strongroom_server::audit_tools::{self, VerifyError};
    match command {
        AuditCommand::PublicKey { data_dir, database } => {
            let store = open_existing_store(&data_dir, database.as_deref()).await?;
            let key = audit_tools::stored_public_key(store.as_ref()).await?;
            println!("{}", strongroom_crypto::hex(&key));
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export {
            data_dir,
            database,
            out,
        } => {
            let store = open_existing_store(&data_dir, database.as_deref()).await?;
            let n = audit_tools::export(store.as_ref(), &out).await?;
            println!("exported {n} entries to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            data_dir,
            bundle,
            database,
            public_key,
            pin,
            witness,
            cosigner,
        } => {
            let trusted = match public_key {
                Some(k) => Some(
                    audit_tools::parse_public_key(&k)
                        .context("--public-key is not a hex Ed25519 key")?,
                ),
                None => None,
            };
            let (store, beside) = match (&data_dir, &bundle) {
                (_, Some(b)) => (None, audit_tools::bundle_public_key(b)?),
                (dir, None) => {
                    let dir = dir
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("./strongroom-data"));
                    let store = open_existing_store(&dir, database.as_deref()).await?;
                    let key = audit_tools::stored_public_key(store.as_ref()).await?;
                    (Some(store), key)
                }
            };
            let key = match (trusted, pin) {
                (Some(k), _) => k,
                (None, Some(pin)) => {
                    let name = strongroom_core::checkpoint::key_name(&beside);
                    let pin = pin
                        .trim()
                        .trim_start_matches("strongroom/")
                        .to_ascii_lowercase();
                    if name != format!("strongroom/{pin}") {
                        eprintln!("TAMPERED: the public key beside the log ({name}) is not the pinned one (strongroom/{pin})");
                        return Ok(ExitCode::from(1));
                    }
                    beside
                }
                (None, None) => {
                    eprintln!("WARNING: no --public-key or --pin given: trusting the public key stored beside the log.");
                    eprintln!("WARNING: whoever can rewrite the log can also replace that key and re-sign; this run proves");
                    eprintln!("WARNING: consistency only. Keep `strongroom audit public-key` output apart and pass it.");
                    beside
                }
            };
            let witnessed = match &witness {
                Some(w) => {
                    let cosigners = cosigner
                        .iter()
                        .map(|v| strongroom_core::checkpoint::Cosigner::from_vkey(v))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| anyhow::anyhow!("--cosigner: {e}"))?;
                    let held = strongroom_server::witness::Witnessed::load(w, &key, &cosigners)
                        .map_err(anyhow::Error::msg)?;
                    println!(
                        "witness {}: {} checkpoints{}",
                        w.display(),
                        held.len(),
                        if cosigners.is_empty() {
                            ""
                        } else {
                            " cosigned"
                        }
                    );
                    Some(held)
                }
                None => None,
            };
            let report = match (store, &bundle) {
                (_, Some(b)) => audit_tools::verify_bundle(b, &key, witnessed.as_ref()),
                (Some(store), None) => {
                    audit_tools::verify_store(store.as_ref(), &key, witnessed.as_ref()).await
                }
                (None, None) => bail!("nothing to verify"),
            };
            match report {
                Ok(r) => {
                    let mut total = 0;
                    for l in &r.logs {
                        total += l.entries;
                        println!(
                            "log {}: {} entries, {} covered by {} checkpoints, {} not yet checkpointed: intact",
                            l.log,
                            l.entries,
                            l.checkpointed,
                            l.checkpoints,
                            l.not_yet_checkpointed()
                        );
                    }
                    println!(
                        "verified {total} entries in {} logs ({:.0} entries/s): intact",
                        r.logs.len(),
                        r.entries_per_second
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(VerifyError::Failed(f)) => {
                    eprintln!("TAMPERED: {f}");
                    Ok(ExitCode::from(1))
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}
