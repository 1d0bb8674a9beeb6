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
    let toms = toms_latency(store.clone(), &log).await?;
    Ok(
        json!({"entries": entries, "entries_per_s": best.round(), "proofs": proofs, "toms_report": toms}),
    )
}

/// Generating the TOMs report (the platform's, and the tenant's whose log holds every entry)
/// over this log: the collectors read heads and small tables, never the log itself.
#[allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
async fn toms_latency(store: Arc<dyn Store>, log: &str) -> Result<serde_json::Value> {
    use strongroom_compliance::evidence::{Context, Installation, Scope};
    let vault = strongroom_core::Vault::new(
        store,
        Arc::new(strongroom_core::SystemClock),
        Arc::new(OsRng),
        Arc::new(strongroom_core::vault::InlineHasher(
            strongroom_crypto::password::Cost::DEFAULT,
        )),
        OsRng.key(),
        Default::default(),
    );
    let tenant = TenantId::parse(log).context("the log is a tenant's")?;
    let mut out = serde_json::Map::new();
    for (name, scope) in [
        ("platform", Scope::Platform),
        ("tenant", Scope::Tenant(tenant)),
    ] {
        let mut ms = Vec::new();
        for _ in 0..7 {
            let ctx = Context {
                vault: &vault,
                scope: scope.clone(),
                now: vault.now(),
                installation: Installation {
                    store: "bench".into(),
                    tls: None,
                    database_tls: None,
                    version: env!("CARGO_PKG_VERSION").into(),
                    advisory_db: None,
                },
            };
            let started = Instant::now();
            let report = strongroom_compliance::report::generate(&ctx)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            let signed = strongroom_compliance::report::sign(&vault, report)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            let md = strongroom_compliance::render::markdown(
                &signed.report,
                strongroom_compliance::report::Layout::Art32,
            );
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(md.len() > 1000 && signed.report.measures.len() == 43);
        }
        ms.sort_by(f64::total_cmp);
        eprintln!(
            "toms report ({name}): median {:.1} ms, max {:.1} ms",
            ms[ms.len() / 2],
            ms[ms.len() - 1]
        );
        out.insert(
            name.into(),
            json!({"median_ms": (ms[ms.len() / 2] * 10.0).round() / 10.0, "max_ms": (ms[ms.len() - 1] * 10.0).round() / 10.0}),
        );
    }
    Ok(serde_json::Value::Object(out))
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
