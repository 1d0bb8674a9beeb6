//! TLS (rustls, TLS 1.2 and 1.3 only) and the accept loop that hands connections to hyper.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::datadir::SetupError;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS acceptor for the certificate chain and key in two PEM files.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, SetupError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| SetupError::Invalid(format!("{what}: {e}"));
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            bad(
                &format!("cannot read the certificate {}", cert.display()),
                &e,
            )
        })?;
    crate::datadir::refuse_if_readable_by_others(key, "the TLS private key")?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(&format!("cannot read the TLS key {}", key.display()), &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| bad("TLS configuration", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("TLS certificate and key do not fit", &e))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Accepts connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
    max_connections: usize,
) {
    // At most `max_connections` open: past it, new clients wait in the kernel's listen queue
    // until one closes, instead of each taking a task, buffers and a TLS session.
    let open = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            p = open.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (app, tls) = (app.clone(), tls.clone());
        tokio::spawn(async move {
            connection(stream, peer, tls, app).await;
            drop(permit);
        });
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
) {
    // Handlers that need the client's address (the sign-in rate limit) find it here.
    let app = app.layer(axum::Extension(crate::api::PeerAddr(peer)));
    let svc = TowerToHyperService::new(app);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that trickles its headers (slowloris) is cut off instead of holding a task.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let result = match tls {
        Some(acc) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acc.accept(stream)).await {
            Ok(Ok(s)) => {
                builder
                    .serve_connection_with_upgrades(TokioIo::new(s), svc)
                    .await
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => return,
        },
        None => {
            builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
