//! Where and how this node connects: the connection string with its TLS settings, the
//! connector, and the reader pool.
//!
//! `sslmode` takes libpq's values, checked by rustls:
//! - `disable`: plain TCP (refused unless asked for; warned about off loopback);
//! - `require`: TLS; the server is authenticated only when `sslrootcert` is given (as libpq does);
//! - `verify-ca`: TLS, the server's chain must lead to `sslrootcert`;
//! - `verify-full`: as `verify-ca`, and the certificate must name the host.
//!
//! Without `sslmode`, a Unix socket or a loopback host is reached in plain text (nothing is on
//! the path) and any other host gets `verify-full` — plain TCP across a network is never the
//! default. `prefer` and `allow` are refused: they fall back to plain text when an attacker on
//! the path asks them to.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use strongroom_core::store::{StoreError, StoreResult};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long to wait for a connection to be made, or for a pooled one to come free.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The server ends any statement running longer than this (migrations lift it).
const STATEMENT_TIMEOUT_MS: u32 = 30_000;
/// A connection idle inside a transaction this long is ended by the server (locks released).
const IDLE_IN_TRANSACTION_MS: u32 = 60_000;
/// Pooled connections older than this are closed instead of reused.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(30 * 60);

/// The TLS requirement of a connection, from `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A parsed connection string: the driver's settings and the TLS connector they need.
#[derive(Clone)]
pub struct Target {
    config: Config,
    mode: TlsMode,
    tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for Target {
    // Never the password; the host and mode only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("hosts", &self.config.get_hosts())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn bad(why: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("database connection string: {why}"))
}

/// Takes `sslmode` and `sslrootcert` out of a URL (`postgres://…?sslmode=…`) or a key=value
/// string, since the driver knows neither `verify-*` nor `sslrootcert`.
fn take_tls_options(s: &str) -> StoreResult<(String, Option<String>, Option<String>)> {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: String| -> StoreResult<bool> {
        let slot = match key {
            "sslmode" => &mut mode,
            "sslrootcert" => &mut root,
            _ => return Ok(false),
        };
        if slot.replace(value).is_some() {
            return Err(bad(format!("`{key}` is given twice")));
        }
        Ok(true)
    };
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        let Some((base, query)) = s.split_once('?') else {
            return Ok((s.to_owned(), None, None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map_err(|_| bad(format!("`{k}` is not UTF-8")))?
                .into_owned();
            if !take(k, v)? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rest, mode, root))
    } else {
        let mut kept = Vec::new();
        for word in s.split_whitespace() {
            match word.split_once('=') {
                Some((k, v)) if k == "sslmode" || k == "sslrootcert" => {
                    if v.starts_with('\'') {
                        return Err(bad(format!("write `{k}` without quotes")));
                    }
                    take(k, v.to_owned())?;
                }
                _ => kept.push(word),
            }
        }
        Ok((kept.join(" "), mode, root))
    }
}

/// Whether every host of the configuration is this machine (a Unix socket or loopback).
fn is_local(config: &Config) -> bool {
    let hosts_local = config.get_hosts().iter().all(|h| match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || IpAddr::from_str(name.trim_start_matches('[').trim_end_matches(']'))
                    .is_ok_and(|ip| ip.is_loopback())
        }
    });
    hosts_local && config.get_hostaddrs().iter().all(|ip| ip.is_loopback())
}

impl Target {
    /// Parses a connection string. Errors never repeat the string (it may hold a password).
    pub fn parse(s: &str) -> StoreResult<Self> {
        let (rest, mode, root) = take_tls_options(s)?;
        let mut config = Config::from_str(&rest).map_err(bad)?;
        let local = is_local(&config);
        let mode = match mode.as_deref() {
            None if local => TlsMode::Disable,
            None => TlsMode::VerifyFull,
            Some("disable") => TlsMode::Disable,
            Some("require") => TlsMode::Require,
            Some("verify-ca") => TlsMode::VerifyCa,
            Some("verify-full") => TlsMode::VerifyFull,
            Some(m @ ("prefer" | "allow")) => {
                return Err(bad(format!(
                    "sslmode={m} falls back to plain text when someone on the path asks it to; \
                     use verify-full (or require, or disable on a trusted link)"
                )))
            }
            Some(other) => {
                return Err(bad(format!(
                    "sslmode `{other}` is not one of disable, require, verify-ca, verify-full"
                )))
            }
        };
        if mode == TlsMode::Disable && !local {
            tracing::warn!(
                "sslmode=disable: rows travel to the database in plain text and can be changed on the path"
            );
        }
        let roots = match root {
            Some(path) => Some(load_roots(PathBuf::from(path))?),
            None if matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull) => {
                return Err(bad(
                    "TLS with a verified server needs `sslrootcert=FILE` (the CA certificate that \
                     signed the database server's certificate); `sslmode=require` encrypts \
                     without authenticating the server, `sslmode=disable` only suits loopback",
                ))
            }
            None => None,
        };
        let tls = match mode {
            TlsMode::Disable => None,
            _ => Some(MakeRustlsConnect::new(client_config(mode, roots)?)),
        };
        config.ssl_mode(if tls.is_some() {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let limits = format!(
            "-c statement_timeout={STATEMENT_TIMEOUT_MS} \
             -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
        );
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{limits} {o}"),
            _ => limits,
        };
        config.options(options);
        Ok(Self { config, mode, tls })
    }

    /// The TLS requirement in force.
    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    /// Opens one connection; its I/O runs as its own task.
    pub async fn connect(&self) -> StoreResult<Client> {
        let failed = |e: tokio_postgres::Error| {
            StoreError::Unavailable(format!(
                "cannot connect to the database: {}",
                crate::describe(&e)
            ))
        };
        match &self.tls {
            None => {
                let (client, conn) = self.config.connect(NoTls).await.map_err(failed)?;
                spawn_connection(conn);
                Ok(client)
            }
            Some(tls) => {
                let (client, conn) = self.config.connect(tls.clone()).await.map_err(failed)?;
                spawn_connection(conn);
                Ok(client)
            }
        }
    }

    /// A pool of `size` connections with timeouts, recycling and an age limit.
    pub(crate) fn pool(&self, size: usize) -> StoreResult<Pool> {
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &self.tls {
            None => Manager::from_config(self.config.clone(), NoTls, manager_config),
            Some(tls) => Manager::from_config(self.config.clone(), tls.clone(), manager_config),
        };
        Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(CONNECT_TIMEOUT),
                create: Some(CONNECT_TIMEOUT),
                recycle: Some(Duration::from_secs(5)),
            })
            .pre_recycle(deadpool_postgres::Hook::sync_fn(|_, metrics| {
                if metrics.age() > MAX_CONNECTION_AGE {
                    Err(deadpool_postgres::HookError::message("connection too old"))
                } else {
                    Ok(())
                }
            }))
            .build()
            .map_err(bad)
    }
}

fn spawn_connection<F>(conn: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "a PostgreSQL connection ended");
        }
    });
}

fn load_roots(path: PathBuf) -> StoreResult<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(bad(format!(
            "sslrootcert {} holds no certificate",
            path.display()
        )));
    }
    Ok(roots)
}

fn client_config(mode: TlsMode, roots: Option<RootCertStore>) -> StoreResult<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(bad)?;
    let chain = match roots {
        Some(roots) => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(bad)?,
        ),
        None => None,
    };
    let verifier = Verifier {
        chain,
        check_name: mode == TlsMode::VerifyFull,
        provider,
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The server check of each mode: `verify-full` is the usual WebPKI check against the given
/// roots; `verify-ca` (and `require` with roots, as libpq does) skips only the name; `require`
/// without roots takes any certificate (encrypted, not authenticated). The handshake's
/// signatures are checked against the presented certificate in every mode.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_come_out_of_urls_and_key_value_strings() {
        let (rest, mode, root) = take_tls_options(
            "postgres://u:p@db.example:5432/v?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db.example:5432/v?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        let (rest, mode, root) =
            take_tls_options("host=db port=5 sslmode=require user=u sslrootcert=/ca").unwrap();
        assert_eq!(rest, "host=db port=5 user=u");
        assert_eq!(mode.as_deref(), Some("require"));
        assert_eq!(root.as_deref(), Some("/ca"));
        assert!(take_tls_options("host=db sslmode=require sslmode=disable").is_err());
    }

    #[test]
    fn plain_tcp_is_the_default_only_on_loopback() {
        for local in [
            "host=127.0.0.1 user=u",
            "host=localhost user=u",
            "host=/run/postgresql user=u",
            "postgres://u@[::1]/v",
        ] {
            assert_eq!(
                Target::parse(local).unwrap().mode(),
                TlsMode::Disable,
                "{local}"
            );
        }
        // Off loopback the default is verify-full, which needs a root: refused without one.
        let err = Target::parse("postgres://u:secret@db.example/v")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sslrootcert"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert_eq!(
            Target::parse("host=db.example sslmode=require")
                .unwrap()
                .mode(),
            TlsMode::Require
        );
        for refused in ["prefer", "allow", "verify", ""] {
            let s = format!("host=db.example user=u password=hunter2 sslmode={refused}");
            let err = Target::parse(&s).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
