//! Audit-log verification: a log of N realistic entries with a checkpoint every 100,000,
//! verified through the same code as `strongroom audit verify` (best of three runs).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use strongroom_core::audit::AuditEvent;
use strongroom_core::checkpoint::CheckpointRow;
use strongroom_core::rng::RngExt;
use strongroom_core::store::{Op, UnitOfWork};
use strongroom_core::{OsRng, RecordId, RequestId, Store, SubjectId, TenantId};
use strongroom_server::audit_tools;
use strongroom_store_sqlite::{SqliteOptions, SqliteStore};

pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Writes `n` realistic audit entries into one tenant log, checkpointing every 100,000.
async fn fill_log(store: &Arc<dyn Store>, n: u64) -> Result<(String, [u8; 32])> {
    let key = OsRng.key();
    let tenant = TenantId::generate(&OsRng);
    let log = tenant.to_string();
    let per_unit = 1000u64;
    let mut written = 0;
    let mut prev_checkpoint: Option<CheckpointRow> = None;
    while written < n {
        let batch = per_unit.min(n - written);
        let events = (0..batch)
            .map(|_| {
                let mut ev = AuditEvent::new(
                    Some(tenant.clone()),
                    1_767_225_600_000,
                    RequestId::generate(&OsRng),
                    "key:key_0123456789abcdef0123456789abcdef".into(),
                    "record.read",
                );
                ev.purpose = Some("support".into());
                ev.collection = Some("people".into());
                ev.subject = Some(SubjectId::generate(&OsRng));
                ev.records = vec![RecordId::generate(&OsRng)];
                ev.fields = vec!["email".into(), "name".into(), "phone".into()];
                ev
            })
            .collect();
        store
            .commit(UnitOfWork {
                ops: vec![],
                audit: events,
            })
            .await?;
        written += batch;
        if written % 100_000 == 0 || written == n {
            let head = store.find_audit_head(&log).await?.context("head")?;
            let (seq, prev) = prev_checkpoint
                .as_ref()
                .map_or((1, [0; 32]), |c| (c.seq + 1, c.hash()));
            let row = CheckpointRow::sign(&log, seq, head.size, head.compact.root(), 0, prev, &key);
            store
                .commit(UnitOfWork {
                    ops: vec![Op::InsertCheckpoint(row.clone())],
                    audit: vec![],
                })
                .await?;
            prev_checkpoint = Some(row);
        }
    }
    Ok((log, strongroom_crypto::sign::public_key(&key)))
}

#[allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
pub async fn audit_verify(entries: u64, postgres: Option<&str>) -> Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = match postgres {
        Some(url) => {
            Arc::new(strongroom_store_postgres::PgStore::open(url, Default::default()).await?)
        }
        None => Arc::new(SqliteStore::open(
            &dir.path().join("bench.db"),
            SqliteOptions::default(),
        )?),
    };
    let started = Instant::now();
    let (log, public_key) = fill_log(&store, entries).await?;
    eprintln!(
        "audit_verify: wrote {entries} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut best = 0f64;
    for run in 1..=3 {
        let report = audit_tools::verify_store(store.as_ref(), &public_key, None)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let verified: u64 = report.logs.iter().map(|l| l.entries).sum();
        anyhow::ensure!(
            verified == entries,
            "verified {verified} of {entries} entries"
        );
        eprintln!(
            "audit_verify: run {run}: {:.0} entries/s",
            report.entries_per_second
        );
        best = best.max(report.entries_per_second);
    }
    let proofs = proof_latency(store.as_ref(), &log, entries).await?;
    Ok(json!({"entries": entries, "entries_per_s": best.round(), "proofs": proofs}))
}

/// Inclusion and consistency proofs (with the roots they are checked against) served from the
/// stored tree of a log of `size` entries, as the API builds them: latency per proof.
#[allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
async fn proof_latency(store: &dyn Store, log: &str, size: u64) -> Result<serde_json::Value> {
    use strongroom_core::proofs::range_hashes;
    use strongroom_crypto::merkle;
    let mut out = serde_json::Map::new();
    for kind in ["inclusion", "consistency"] {
        let mut ms = Vec::new();
        for _ in 0..500 {
            let at = 1 + OsRng
                .array::<8>()
                .iter()
                .fold(0u64, |a, b| a << 8 | u64::from(*b))
                % size;
            let started = Instant::now();
            let mut ranges = if kind == "inclusion" {
                let mut r = merkle::inclusion_ranges(at - 1, size);
                r.push((at - 1, at));
                r
            } else {
                let mut r = merkle::consistency_ranges(at, size);
                r.push((0, at));
                r
            };
            ranges.push((0, size));
            let hashes = range_hashes(store, log, &ranges).await?;
            ms.push(started.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(hashes.len() == ranges.len());
        }
        ms.sort_by(f64::total_cmp);
        let q = |p: f64| (ms[((ms.len() - 1) as f64 * p) as usize] * 1000.0).round() / 1000.0;
        eprintln!(
            "audit_verify: {kind} proofs on {size} entries: p50 {} ms, p99 {} ms, max {} ms",
            q(0.5),
            q(0.99),
            q(1.0)
        );
        out.insert(
            kind.into(),
            json!({"p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": q(1.0)}),
        );
    }
    Ok(out.into())
}
