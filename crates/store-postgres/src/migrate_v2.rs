//! The code half of schema v2: fills the derived audit tables (subjects named among objects,
//! stored tree nodes) from the existing bodies, and opens a log for every tenant that has none
//! yet, so that `audit verify` can require one per tenant. Runs once, inside the migration's
//! transaction.

use strongroom_core::audit::{AuditEvent, EntryV1};
use strongroom_core::ids::{RequestId, TenantId};
use strongroom_core::store::{append_stored, AuditHead, StoreError, StoreResult};
use strongroom_core::OsRng;
use strongroom_crypto::merkle::CompactRange;
use tokio_postgres::Transaction;

use crate::read::hash32;
use crate::{unavailable, writer};

const PAGE: i64 = 5000;

pub(crate) async fn backfill(tx: &Transaction<'_>) -> StoreResult<()> {
    let logs: Vec<String> = tx
        .query("SELECT DISTINCT log FROM audit", &[])
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| r.try_get(0).map_err(unavailable))
        .collect::<StoreResult<_>>()?;
    for log in &logs {
        backfill_log(tx, log).await?;
    }
    let orphans = tx
        .query(
            "SELECT id, created_at FROM tenants t
             WHERE NOT EXISTS (SELECT 1 FROM audit a WHERE a.log = t.id)",
            &[],
        )
        .await
        .map_err(unavailable)?;
    for row in orphans {
        let id: String = row.try_get(0).map_err(unavailable)?;
        let created_at: i64 = row.try_get(1).map_err(unavailable)?;
        let tenant = TenantId::parse(&id).ok_or_else(|| StoreError::Corrupt("tenant id".into()))?;
        let event = AuditEvent::log_genesis(
            tenant.clone(),
            created_at,
            RequestId::generate(&OsRng),
            "system:migration".into(),
        );
        let mut head = AuditHead::genesis();
        let sealed = head.seal(&event);
        writer::insert_sealed(tx, tenant.as_str(), &sealed).await?;
        tx.execute(
            "INSERT INTO audit_heads (log, size, hash, compact) VALUES ($1, $2, $3, $4)
             ON CONFLICT (log) DO UPDATE SET size = excluded.size, hash = excluded.hash, compact = excluded.compact",
            &[&tenant.as_str(), &(head.size as i64), &head.last_hash.as_slice(), &head.compact.encode()],
        )
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}

async fn backfill_log(tx: &Transaction<'_>, log: &str) -> StoreResult<()> {
    let mut compact = CompactRange::default();
    let mut after = 0i64;
    loop {
        let page = tx
            .query(
                "SELECT seq, body, hash FROM audit WHERE log = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&log, &after, &PAGE],
            )
            .await
            .map_err(unavailable)?;
        if page.is_empty() {
            return Ok(());
        }
        for row in &page {
            let seq: i64 = row.try_get(0).map_err(unavailable)?;
            let body: String = row.try_get(1).map_err(unavailable)?;
            let hash = hash32(row.try_get(2).map_err(unavailable)?)?;
            if let Some(entry) = EntryV1::parse(&body) {
                for subject in entry.other_subjects() {
                    tx.execute(
                        "INSERT INTO audit_subjects (log, subject, seq) VALUES ($1, $2, $3)",
                        &[&log, &subject, &seq],
                    )
                    .await
                    .map_err(unavailable)?;
                }
            }
            let nodes = append_stored(&mut compact, hash);
            for (level, index, h) in nodes {
                tx.execute(
                    "INSERT INTO audit_nodes (log, level, idx, hash) VALUES ($1, $2, $3, $4)",
                    &[&log, &(level as i32), &(index as i64), &h.as_slice()],
                )
                .await
                .map_err(unavailable)?;
            }
            after = seq;
        }
    }
}
