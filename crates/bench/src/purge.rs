//! Purge throughput: N deleted (blocked) records of 100 per data subject, destroyed by the
//! `purge` job through the same runner the server uses — records, history, index entries and
//! the subjects' keys, a batch of 500 per transaction with its audit entry — on SQLite.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use strongroom_core::jobs::{RunOutcome, Runner};
use strongroom_core::rng::RngExt;
use strongroom_core::store::{
    CollectionRow, JobRow, Op, RecordRow, RecordState, SubjectRow, TenantKeyRow, TenantRow,
    UnitOfWork,
};
use strongroom_core::{OsRng, RecordId, Store, SubjectId, TenantId};
use strongroom_store_sqlite::{SqliteOptions, SqliteStore};

/// Fills a fresh store with `n` blocked records and times one purge run.
#[allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
pub async fn purge_throughput(n: u64) -> Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("bench.db"), SqliteOptions::default())
            .context("cannot open the bench store")?,
    );
    let tenant = TenantId::generate(&OsRng);
    let people: strongroom_proto::CollectionDef = serde_json::from_value(json!({
        "purposes": ["support"],
        "fields": [{"name": "email", "type": "email", "classification": "identifier"}],
        "purge_grace_days": 0
    }))?;
    let genesis = strongroom_core::audit::AuditEvent::new(
        Some(tenant.clone()),
        0,
        strongroom_core::RequestId::generate(&OsRng),
        "bench".into(),
        "tenant.genesis",
    );
    store
        .commit(UnitOfWork {
            ops: vec![
                Op::InsertTenant(TenantRow {
                    id: tenant.clone(),
                    name: "bench".into(),
                    created_at: 0,
                }),
                Op::InsertTenantKey(TenantKeyRow {
                    tenant: tenant.clone(),
                    version: 1,
                    wrapped: vec![0; 60],
                    created_at: 0,
                }),
                Op::PutCollection {
                    row: CollectionRow {
                        tenant: tenant.clone(),
                        name: "people".into(),
                        version: 1,
                        def: people,
                        updated_at: 0,
                    },
                    expected_version: 0,
                },
            ],
            audit: vec![genesis],
        })
        .await?;
    fill_blocked(store.as_ref(), &tenant, "people", n, 0).await?;
    let vault = strongroom_core::Vault::new(
        store.clone(),
        Arc::new(strongroom_core::SystemClock),
        Arc::new(OsRng),
        Arc::new(strongroom_core::vault::InlineHasher(
            strongroom_crypto::password::Cost::DEFAULT,
        )),
        OsRng.key(),
        Default::default(),
    );
    let runner = Runner::new(
        "bench".into(),
        vec![Arc::new(strongroom_core::vault::Purge)],
    );
    runner
        .ensure(&vault, JobRow::new("purge", None, 0, 0))
        .await
        .map_err(|e| anyhow::anyhow!(e.message.into_owned()))?;
    let started = Instant::now();
    let outcome = runner
        .run(&vault, "purge", &mut |_| {})
        .await
        .map_err(|e| anyhow::anyhow!(e.message.into_owned()))?;
    let secs = started.elapsed().as_secs_f64();
    let RunOutcome::Finished(job) = outcome else {
        anyhow::bail!("the purge did not finish: {outcome:?}");
    };
    anyhow::ensure!(job.done == n, "purged {} of {n}", job.done);
    Ok(json!({
        "records": n,
        "seconds": (secs * 100.0).round() / 100.0,
        "records_per_s": (n as f64 / secs).round(),
    }))
}

/// Writes `n` blocked (deleted) records into `collection` of `tenant`, 100 per new data
/// subject (whose wrapped key is random bytes: the purge destroys keys, it never opens them),
/// 1,000 records per transaction, blocked at `blocked_at` (ms), with progress on stderr.
pub async fn fill_blocked(
    store: &dyn Store,
    tenant: &TenantId,
    collection: &str,
    n: u64,
    blocked_at: i64,
) -> Result<()> {
    let per_subject = 100;
    let mut written = 0;
    while written < n {
        let mut ops = Vec::new();
        let mut ids = Vec::new();
        while written < n && ids.len() < 1000 {
            let subject = SubjectId::generate(&OsRng);
            let batch = per_subject.min(n - written);
            ops.push(Op::InsertSubject(SubjectRow {
                tenant: tenant.clone(),
                id: subject.clone(),
                kek_version: 1,
                wrapped_dek: OsRng.key().expose().to_vec(),
                ref_index: None,
                created_at: 0,
                flags: 0,
            }));
            for _ in 0..batch {
                let id = RecordId::generate(&OsRng);
                ids.push(id.clone());
                ops.push(Op::InsertRecord {
                    row: RecordRow {
                        tenant: tenant.clone(),
                        collection: collection.into(),
                        id,
                        subject: subject.clone(),
                        version: 1,
                        state: RecordState::Active,
                        created_at: 0,
                        updated_at: 0,
                        data: vec![0x5a; 180],
                        subject_flags: 0,
                    },
                    index: vec![],
                });
            }
            written += batch;
        }
        ops.extend(ids.into_iter().map(|id| Op::BlockRecord {
            tenant: tenant.clone(),
            id,
            expected_version: 1,
            at: blocked_at,
        }));
        store.commit(UnitOfWork { ops, audit: vec![] }).await?;
        if written % 100_000 == 0 {
            eprintln!("  {written} blocked records written");
        }
    }
    Ok(())
}
