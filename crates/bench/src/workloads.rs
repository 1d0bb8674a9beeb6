//! The HTTP workloads against a real server: `read`, `write`, `search`, `mixed`, `batch`, and
//! the preloading of records they read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

use crate::load::{self, request, Dice, MakeRequest, Measured, Plan};
use crate::server::{person, Server, Tenant};

const RECORDS: &str = "/v1/collections/people/records";

/// The ids of the stored records (16 bytes each, without the `rec_` prefix) and the person
/// number each was made from, so that searches can ask for a value that exists.
#[derive(Default)]
pub struct Stored {
    ids: Vec<[u8; 16]>,
}

impl Stored {
    pub fn len(&self) -> u64 {
        self.ids.len() as u64
    }

    fn id(&self, i: u64) -> String {
        format!("rec_{}", strongroom_crypto::hex(&self.ids[i as usize]))
    }

    fn push(&mut self, id: &str) -> Result<()> {
        let hex = id.strip_prefix("rec_").context("a record id")?;
        let bytes = strongroom_crypto::unhex(hex).context("a record id")?;
        self.ids
            .push(bytes.try_into().ok().context("a 16-byte record id")?);
        Ok(())
    }
}

fn batch_body(first: u64, n: u64) -> Result<Vec<u8>> {
    let records: Vec<Value> = (first..first + n)
        .map(|k| json!({"fields": person(k)}))
        .collect();
    Ok(serde_json::to_vec(&json!({ "records": records }))?)
}

/// The text the preloaded subjects consented to (its SHA-256 is what the register keeps).
const CONSENT_TEXT_SHA256: &str =
    "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

/// A preload batch: each record stored for `newsletter` with its subject's consent to it, so
/// that `read_consent` reads subjects whose consent is live.
fn preload_body(first: u64, n: u64) -> Result<Vec<u8>> {
    let records: Vec<Value> = (first..first + n)
        .map(|k| {
            json!({"fields": person(k),
                   "consent": {"source": "bench signup", "text_sha256": CONSENT_TEXT_SHA256}})
        })
        .collect();
    Ok(serde_json::to_vec(&json!({ "records": records }))?)
}

/// The ids a batch call returned, with its first person number.
type Batch = (u64, Vec<String>);

/// Stores records until there are `target` in all (person numbers `0..target`, in order), 1,000
/// per call on 4 connections, with progress on stderr.
#[allow(clippy::disallowed_methods)] // progress output measures wall-clock time
pub async fn preload(
    server: &Server,
    tenant: &Tenant,
    stored: &mut Stored,
    target: u64,
) -> Result<()> {
    let from = stored.len();
    if from >= target {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let next = Arc::new(AtomicU64::new(from));
    // Results keyed by their first person number, put in order at the end.
    let results: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (target_srv, app) = (server.target.clone(), tenant.app.clone());
        let (next, results) = (next.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = target_srv.connect().await?;
            loop {
                let first = next.fetch_add(1000, Ordering::Relaxed);
                if first >= target {
                    return anyhow::Ok(());
                }
                let n = 1000.min(target - first);
                let body = preload_body(first, n)?;
                let resp = conn
                    .send(&request(
                        "POST",
                        &format!("{RECORDS}/batch"),
                        &app,
                        "newsletter",
                        Some(&body),
                    ))
                    .await?;
                ensure!(
                    resp.status == 201,
                    "preload: HTTP {}: {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                );
                let v: Value = serde_json::from_slice(&resp.body)?;
                let ids = v["records"]
                    .as_array()
                    .context("batch answer")?
                    .iter()
                    .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
                    .collect();
                let mut all = results.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                all.push((first, ids));
                let done = all.len() as u64 * 1000;
                if done.is_multiple_of(100_000) {
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!(
                        "  preload: {} of {target} records ({:.0} records/s)",
                        from + done,
                        done as f64 / secs
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let mut all = std::mem::take(&mut *results.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    all.sort_by_key(|(first, _)| *first);
    for (_, ids) in all {
        for id in ids {
            stored.push(&id)?;
        }
    }
    ensure!(
        stored.len() == target,
        "preload stored {} of {target}",
        stored.len()
    );
    eprintln!(
        "  preload: {target} records ({:.0} records/s)",
        (target - from) as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A workload's figures for the JSON file.
pub struct Figures {
    pub measured: Measured,
    /// Records per request (100 for `batch`).
    pub per_request: u64,
}

impl Figures {
    pub fn ops_per_s(&self) -> f64 {
        self.measured.requests_per_s() * self.per_request as f64
    }

    pub fn json(&self) -> Value {
        let m = &self.measured;
        json!({
            "ops_per_s": self.ops_per_s().round() as u64,
            "requests_per_s": m.requests_per_s().round() as u64,
            "p50_ms": round2(m.ms(0.50)),
            "p99_ms": round2(m.ms(0.99)),
            "p999_ms": round2(m.ms(0.999)),
            "errors": m.errors,
        })
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Reads of stored records for `purpose`: `support` (contract: no consent check) or
/// `newsletter` (consent: the subject's consent is looked up on every read).
fn read_request(stored: &Arc<Stored>, app: &str, purpose: &'static str) -> MakeRequest {
    let (stored, app) = (stored.clone(), app.to_owned());
    Arc::new(move |dice: &mut Dice| {
        let i = dice.below(stored.len());
        request(
            "GET",
            &format!("{RECORDS}/{}", stored.id(i)),
            &app,
            purpose,
            None,
        )
    })
}

fn write_request(app: &str, first: u64) -> MakeRequest {
    let app = app.to_owned();
    let counter = Arc::new(AtomicU64::new(first));
    Arc::new(move |_: &mut Dice| {
        let k = counter.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::to_vec(&json!({ "fields": person(k) })).unwrap_or_default();
        request("POST", RECORDS, &app, "support", Some(&body))
    })
}

fn search_request(stored: &Arc<Stored>, app: &str) -> MakeRequest {
    let (n, app) = (stored.len(), app.to_owned());
    Arc::new(move |dice: &mut Dice| {
        let k = dice.below(n);
        request(
            "GET",
            &format!("{RECORDS}?email=user{k}%40example.com"),
            &app,
            "support",
            None,
        )
    })
}

/// Runs one named workload. Writes take person numbers from `fresh` upwards (a different
/// range for each workload, so that nothing collides with what is stored).
pub async fn run(
    name: &str,
    server: &Server,
    tenant: &Tenant,
    stored: &Arc<Stored>,
    plan: Plan,
    fresh: u64,
) -> Result<Figures> {
    let app = tenant.app.as_str();
    let (make, per_request): (MakeRequest, u64) = match name {
        "read" => (read_request(stored, app, "support"), 1),
        "read_consent" => (read_request(stored, app, "newsletter"), 1),
        "search" => (search_request(stored, app), 1),
        "write" => (write_request(app, fresh), 1),
        "mixed" => {
            // 90 % reads, 10 % creates.
            let (read, write) = (
                read_request(stored, app, "support"),
                write_request(app, fresh),
            );
            let make: MakeRequest = Arc::new(move |dice: &mut Dice| {
                if dice.below(10) == 0 {
                    write(dice)
                } else {
                    read(dice)
                }
            });
            (make, 1)
        }
        "batch" => {
            let app = app.to_owned();
            let counter = Arc::new(AtomicU64::new(fresh));
            let make: MakeRequest = Arc::new(move |_: &mut Dice| {
                let first = counter.fetch_add(100, Ordering::Relaxed);
                let body = batch_body(first, 100).unwrap_or_default();
                request(
                    "POST",
                    &format!("{RECORDS}/batch"),
                    &app,
                    "support",
                    Some(&body),
                )
            });
            (make, 100)
        }
        other => anyhow::bail!("no workload named {other}"),
    };
    let measured = load::run(&server.target, plan, make).await?;
    let figures = Figures {
        measured,
        per_request,
    };
    let m = &figures.measured;
    eprintln!(
        "  {name}: {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms{}",
        figures.ops_per_s(),
        m.ms(0.5),
        m.ms(0.99),
        m.ms(0.999),
        if m.errors > 0 {
            format!(", {} errors", m.errors)
        } else {
            String::new()
        }
    );
    ensure!(
        m.errors * 1000 <= m.requests,
        "{name}: {} of {} requests failed",
        m.errors,
        m.requests + m.errors
    );
    Ok(figures)
}
