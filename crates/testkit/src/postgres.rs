//! A throwaway PostgreSQL for tests: started once per test process (initdb into a temporary
//! directory, a random port, loopback only), one fresh database per test. The server takes
//! TLS only (its certificate signed by a CA made for the run; plain TCP is refused), and tests
//! connect with `sslmode=verify-full`. Set
//! `STRONGROOM_TEST_DATABASE_URL` to use a server of your own instead. Without either, tests
//! that need PostgreSQL skip with a loud message — except in CI (`CI=true`), where they fail.

use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

struct Server {
    /// `host=… port=… user=… sslmode=verify-full sslrootcert=…` without a database name.
    base: String,
    _dir: Option<tempfile::TempDir>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// Where a PostgreSQL program is: on `PATH`, or in Debian's `/usr/lib/postgresql/*/bin`.
pub fn find_bin(name: &str) -> Option<PathBuf> {
    let on_path = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .ok()?;
    if on_path.status.success() {
        let p = String::from_utf8_lossy(&on_path.stdout).trim().to_owned();
        if !p.is_empty() {
            return Some(PathBuf::from(p));
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|v| v.join("bin").join(name))
        .find(|p| p.exists())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root (PostgreSQL refuses root).
fn pg_command(bin: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn uid_gid_of_postgres() -> Option<(u32, u32)> {
    let out = Command::new("id").args(["-u", "postgres"]).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", "postgres"]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

fn start() -> Result<Server, String> {
    if let Ok(url) = std::env::var("STRONGROOM_TEST_DATABASE_URL") {
        return Ok(Server {
            base: url,
            _dir: None,
        });
    }
    let initdb = find_bin("initdb").ok_or("initdb not found (apt-get install -y postgresql)")?;
    let postgres =
        find_bin("postgres").ok_or("postgres not found (apt-get install -y postgresql)")?;
    let as_postgres = is_root();
    let dir = tempfile::Builder::new()
        .prefix("strongroom-pg")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data).map_err(|e| e.to_string())?;
    if as_postgres {
        let (uid, gid) =
            uid_gid_of_postgres().ok_or("running as root but there is no `postgres` user")?;
        for p in [dir.path(), data.as_path()] {
            chown(p, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
    }
    let out = pg_command(&initdb, as_postgres)
        .args(["-D"])
        .arg(&data)
        .args([
            "-A",
            "trust",
            "-U",
            "strongroom",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // TLS on TCP, and nothing else: no `host` line, so plain TCP is refused.
    let (ca, cert, key) = certificates()?;
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).map_err(|e| e.to_string())?;
    std::fs::write(data.join("server.crt"), cert).map_err(|e| e.to_string())?;
    std::fs::write(data.join("server.key"), key).map_err(|e| e.to_string())?;
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
    )
    .map_err(|e| e.to_string())?;
    {
        use std::os::unix::fs::PermissionsExt;
        let key = data.join("server.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        if as_postgres {
            let (uid, gid) = uid_gid_of_postgres().ok_or("no `postgres` user")?;
            for f in ["server.crt", "server.key", "pg_hba.conf"] {
                chown(data.join(f), Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            }
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    // A watchdog stops the server when this test process ends, however it ends.
    let cmd = format!(
        "{} {} -D '{}' -p {port} -k '{}' -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=on -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key > '{}/log' 2>&1 & \
         PG=$!; while kill -0 {} 2>/dev/null && kill -0 $PG 2>/dev/null; do sleep 1; done; \
         kill -INT \"$(head -n 1 '{}/postmaster.pid' 2>/dev/null)\" 2>/dev/null; wait; rm -rf '{}'",
        if as_postgres { "runuser -u postgres --" } else { "" },
        postgres.display(),
        data.display(),
        dir.path().display(),
        dir.path().display(),
        std::process::id(),
        data.display(),
        dir.path().display()
    );
    // Detached from our output, so that nothing waits on the watchdog's pipes.
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let base = format!(
        "host=127.0.0.1 port={port} user=strongroom sslmode=verify-full sslrootcert={}",
        ca_file.display()
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            std::thread::sleep(Duration::from_millis(200));
            // The watchdog removes the directory once the server has stopped.
            let _ = dir.keep();
            return Ok(Server { base, _dir: None });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "PostgreSQL did not start; see {}/log",
        dir.path().display()
    ))
}

/// A connection string to a fresh, empty database, or `None` (after a loud message) when no
/// PostgreSQL can be had outside CI.
pub async fn fresh_database() -> Option<String> {
    let base = match server_base() {
        Ok(base) => base,
        Err(why) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !ci,
                "PostgreSQL tests must run in CI, but no server could be started: {why}"
            );
            eprintln!("\n*** SKIPPING PostgreSQL tests: {why} ***\n");
            return None;
        }
    };
    Some(create_database(base).await)
}

/// A CA and a certificate it signed for `localhost` and `127.0.0.1` (PEM: CA, certificate, key).
fn certificates() -> Result<(String, String, String), String> {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
    let e = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca = CertificateParams::new(Vec::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL (libpq, pgbench) takes a certificate whose issuer equals its
    // subject for a self-signed one and refuses the chain.
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "Strongroom test CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let key = KeyPair::generate().map_err(e)?;
    let mut server =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(e)?;
    server.distinguished_name = DistinguishedName::new();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = server.signed_by(&key, &ca_cert, &ca_key).map_err(e)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

/// The throwaway server of this process (started on first use): `host=… port=… user=…`
/// without a database name, or why it could not be started.
pub fn server_base() -> Result<&'static str, String> {
    match SERVER.get_or_init(start) {
        Ok(s) => Ok(s.base.as_str()),
        Err(why) => Err(why.clone()),
    }
}

/// A connection to `conninfo` as Strongroom makes it (TLS settings honoured).
pub async fn connect(conninfo: &str) -> tokio_postgres::Client {
    strongroom_store_postgres::Target::parse(conninfo)
        .expect("a valid connection string")
        .connect()
        .await
        .expect("connect to the test server")
}

/// Creates a fresh, empty database on the server `base` and returns its connection string.
pub async fn create_database(base: &str) -> String {
    let name = format!(
        "t_{}",
        strongroom_crypto::hex(&strongroom_core::rng::RngExt::array::<8>(
            &strongroom_core::OsRng
        ))
    );
    let client = connect(&format!("{base} dbname=postgres")).await;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    format!("{base} dbname={name}")
}
