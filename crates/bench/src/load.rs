//! The load generator: a fixed number of HTTP/1.1 keep-alive connections over TLS, each sending
//! one request at a time as fast as answers come back (a closed loop, like wrk), with a warm-up
//! that is not measured and a latency histogram per connection, merged at the end.
//!
//! The client is deliberately small — it writes a prepared request and reads one response with
//! a `Content-Length` — so that the generator, which shares the machine's cores with the server,
//! costs as little as it can.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A small, fast pseudo-random generator for choosing ids and values (not for secrets).
#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Where to send requests, and the TLS settings that trust the server's certificate.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    connector: TlsConnector,
}

impl Target {
    /// Trusts exactly the certificate in `cert_pem` (the server's self-signed one).
    pub fn new(addr: SocketAddr, cert_pem: &std::path::Path) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(cert_pem)
            .with_context(|| format!("cannot read {}", cert_pem.display()))?
        {
            roots.add(cert.context("a certificate that does not parse")?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            addr,
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    pub async fn connect(&self) -> Result<Conn> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost")?;
        let stream = self.connector.connect(name, tcp).await?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }
}

/// One keep-alive connection.
pub struct Conn {
    stream: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

/// A response: status and body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Conn {
    /// Sends one complete request (head and body, as bytes) and reads its response.
    pub async fn send(&mut self, request: &[u8]) -> Result<Response> {
        self.stream.write_all(request).await?;
        self.stream.flush().await?;
        self.buf.clear();
        let mut chunk = [0u8; 16 * 1024];
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("a response head")?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .context("a response status line")?;
        let length: usize = head
            .split("\r\n")
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .context("a response without Content-Length")?;
        while self.buf.len() < head_end + length {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("the server closed the connection mid-body");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok(Response {
            status,
            body: self.buf[head_end..head_end + length].to_vec(),
        })
    }
}

fn ok(status: u16) -> bool {
    (200..300).contains(&status)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The bytes of one request.
pub fn request(
    method: &str,
    path: &str,
    token: &str,
    purpose: &str,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nX-Purpose: {purpose}\r\n"
    )
    .into_bytes();
    match body {
        Some(b) => {
            out.extend_from_slice(
                format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(b"\r\n"),
    }
    out
}

/// Makes the next request of a workload for one connection.
pub type MakeRequest = Arc<dyn Fn(&mut Dice) -> Vec<u8> + Send + Sync>;

/// How long and how hard to run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What a run measured (requests in the measured window only).
#[derive(Debug, Clone)]
pub struct Measured {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub histogram: Histogram<u64>,
}

impl Measured {
    pub fn requests_per_s(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// A latency quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.histogram.value_at_quantile(q) as f64 / 1000.0
    }
}

/// A latency histogram in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// Runs `make` on `plan.connections` connections: `plan.warmup` unmeasured, then
/// `plan.duration` measured. A response other than 2xx is an error; the first one is reported
/// with its body so that a broken setup is seen, not averaged.
#[allow(clippy::disallowed_methods)] // a load generator measures wall-clock time
pub async fn run(target: &Target, plan: Plan, make: MakeRequest) -> Result<Measured> {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let stop_at = measure_from + plan.duration;
    let mut tasks = Vec::with_capacity(plan.connections);
    for c in 0..plan.connections {
        let target = target.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = target.connect().await?;
            let mut dice = Dice::new(c as u64 + 1 + start.elapsed().as_nanos() as u64);
            let mut hist = histogram()?;
            let (mut requests, mut errors) = (0u64, 0u64);
            let mut first_error: Option<String> = None;
            loop {
                let req = make(&mut dice);
                let sent = Instant::now();
                if sent >= stop_at {
                    break;
                }
                let resp = conn.send(&req).await?;
                let done = Instant::now();
                if sent >= measure_from && done <= stop_at {
                    if ok(resp.status) {
                        requests += 1;
                        hist.saturating_record(done.duration_since(sent).as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
                if !ok(resp.status) && first_error.is_none() {
                    first_error = Some(format!(
                        "HTTP {}: {}",
                        resp.status,
                        String::from_utf8_lossy(&resp.body)
                    ));
                }
            }
            anyhow::Ok((requests, errors, hist, first_error))
        }));
    }
    let mut total = Measured {
        requests: 0,
        errors: 0,
        seconds: plan.duration.as_secs_f64(),
        histogram: histogram()?,
    };
    let mut first_error = None;
    for t in tasks {
        let (requests, errors, hist, err) = t.await??;
        total.requests += requests;
        total.errors += errors;
        total.histogram.add(&hist)?;
        first_error = first_error.or(err);
    }
    if let Some(e) = first_error {
        eprintln!("  first unexpected response: {e}");
    }
    Ok(total)
}
