//! The code half of schema v5: fills the derived audit tables (subjects named among objects,
//! stored tree nodes) from the existing bodies, and opens a log for every tenant that has none
//! yet, so that `audit verify` can require one per tenant. Runs once, inside the migration's
//! transaction.

use rusqlite::{params, Connection};
use strongroom_core::audit::{AuditEvent, EntryV1};
use strongroom_core::ids::{RequestId, TenantId};
use strongroom_core::store::{append_stored, AuditHead, StoreError, StoreResult};
use strongroom_core::OsRng;

use crate::{unavailable, writer};

pub(crate) fn backfill(conn: &Connection) -> StoreResult<()> {
    let logs: Vec<String> = conn
        .prepare("SELECT DISTINCT log FROM audit")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(unavailable)?;
    for log in &logs {
        backfill_log(conn, log)?;
    }
    let orphans: Vec<(String, i64)> = conn
        .prepare(
            "SELECT id, created_at FROM tenants t
             WHERE NOT EXISTS (SELECT 1 FROM audit a WHERE a.log = t.id)",
        )
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(unavailable)?;
    for (tenant, created_at) in orphans {
        let tenant =
            TenantId::parse(&tenant).ok_or_else(|| StoreError::Corrupt("tenant id".into()))?;
        let event = AuditEvent::log_genesis(
            tenant.clone(),
            created_at,
            RequestId::generate(&OsRng),
            "system:migration".into(),
        );
        let mut head = AuditHead::genesis();
        let sealed = head.seal(&event);
        writer::insert_sealed(conn, tenant.as_str(), &sealed)?;
        conn.execute(
            "INSERT INTO audit_heads (log, size, hash, compact) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (log) DO UPDATE SET size = excluded.size, hash = excluded.hash, compact = excluded.compact",
            params![tenant.as_str(), head.size as i64, &head.last_hash[..], head.compact.encode()],
        )
        .map_err(unavailable)?;
    }
    Ok(())
}

fn backfill_log(conn: &Connection, log: &str) -> StoreResult<()> {
    let mut read = conn
        .prepare("SELECT seq, body, hash FROM audit WHERE log = ?1 ORDER BY seq")
        .map_err(unavailable)?;
    let mut rows = read.query([log]).map_err(unavailable)?;
    let mut compact = strongroom_crypto::merkle::CompactRange::default();
    let mut insert_node = conn
        .prepare("INSERT INTO audit_nodes (log, level, idx, hash) VALUES (?1, ?2, ?3, ?4)")
        .map_err(unavailable)?;
    let mut insert_subject = conn
        .prepare("INSERT INTO audit_subjects (log, subject, seq) VALUES (?1, ?2, ?3)")
        .map_err(unavailable)?;
    while let Some(row) = rows.next().map_err(unavailable)? {
        let seq: i64 = row.get(0).map_err(unavailable)?;
        let body: String = row.get(1).map_err(unavailable)?;
        let hash: Vec<u8> = row.get(2).map_err(unavailable)?;
        let hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit hash length".into()))?;
        if let Some(entry) = EntryV1::parse(&body) {
            for subject in entry.other_subjects() {
                insert_subject
                    .execute(params![log, subject, seq])
                    .map_err(unavailable)?;
            }
        }
        let nodes = append_stored(&mut compact, hash);
        for (level, index, h) in nodes {
            insert_node
                .execute(params![log, level, index as i64, &h[..]])
                .map_err(unavailable)?;
        }
    }
    Ok(())
}
