//! The `strongroom` binary: serve the vault, initialise a data directory, administer it offline.

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
        /// Print `{"bootstrap_token": "..."}` instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Offline administration of a data directory (the server must be stopped).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Issue a new 24-hour bootstrap operator token (when the first one was lost or expired).
    BootstrapToken {
        #[arg(long, default_value = "./strongroom-data", env = "STRONGROOM_DATA_DIR")]
        data_dir: PathBuf,
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
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./strongroom-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            insecure_http: false,
            max_body_bytes: strongroom_server::DEFAULT_MAX_BODY,
            tls_cert: None,
            tls_key: None,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
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
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
            Command::Serve(args) => serve(args).await,
            Command::Init { data_dir, json } => init(&data_dir, json).await,
            Command::Admin {
                command: AdminCommand::BootstrapToken { data_dir, json },
            } => bootstrap_token(&data_dir, json).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn open_store(dir: &DataDir) -> Result<Arc<dyn Store>> {
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
        ..ServeOptions::default()
    };
    strongroom_server::check_listener(&opts)?;
    let dir = DataDir::open(&args.data_dir)?;
    let store = open_store(&dir)?;
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
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("Stopping.");
    running.stop().await;
    Ok(())
}

async fn init(data_dir: &Path, json: bool) -> Result<()> {
    let dir = DataDir::open(data_dir)?;
    if dir.has_database() {
        bail!(
            "{} is already initialised; to get a new bootstrap token run `strongroom admin bootstrap-token --data-dir {}`",
            data_dir.display(),
            data_dir.display()
        );
    }
    dir.ensure_self_signed_cert()?;
    let store = open_store(&dir)?;
    let (_, token) = strongroom_server::open_vault(
        &dir,
        store,
        Arc::new(SystemClock),
        Arc::new(OsRng),
        Default::default(),
        strongroom_crypto::password::Cost::DEFAULT,
    )
    .await?;
    let token = token.context("the store was initialised by someone else meanwhile")?;
    print_token(&token, json);
    Ok(())
}

async fn bootstrap_token(data_dir: &Path, json: bool) -> Result<()> {
    let dir = DataDir::open(data_dir)?;
    if !dir.has_database() {
        bail!(
            "{} is not initialised; run `strongroom init` first",
            data_dir.display()
        );
    }
    let store = open_store(&dir)?;
    let (vault, _) = strongroom_server::open_vault(
        &dir,
        store,
        Arc::new(SystemClock),
        Arc::new(OsRng),
        Default::default(),
        strongroom_crypto::password::Cost::DEFAULT,
    )
    .await?;
    let token = vault
        .issue_bootstrap_token()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    print_token(&token, json);
    Ok(())
}
