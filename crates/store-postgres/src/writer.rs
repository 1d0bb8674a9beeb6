//! This node's writer: group commit of units of work, with each touched audit log's head locked
//! (`FOR UPDATE`, in log order) for the batch, so the database orders every log's chain across
//! all nodes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use strongroom_core::audit::GENESIS;
use strongroom_core::store::{
    AuditHead as Head, FaultPoint, Faults, Op, Receipt, Sealed, StoreError, StoreResult, UnitOfWork,
};
use strongroom_crypto::merkle::CompactRange;
use tokio::sync::{mpsc, Mutex};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};

use crate::read::{hash32, Col};
use crate::{unavailable, Job, Target};

/// This node's writer and what it needs to start again after a fault.
pub(crate) struct Writer {
    pub(crate) target: Target,
    pub(crate) jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    pub(crate) max_batch: usize,
    pub(crate) faults: Faults,
}

impl Writer {
    /// Runs the writer as its own task and starts a new one (on a new connection) whenever it
    /// dies, so that a fault fails the batch it hit and not every later request. Ends when
    /// the store is dropped.
    pub(crate) async fn supervise(self, first: Client) {
        let mut client = Some(first);
        loop {
            let task = tokio::spawn(run(
                self.target.clone(),
                client.take(),
                self.jobs.clone(),
                self.max_batch,
                self.faults.clone(),
            ));
            match task.await {
                Ok(()) => return,
                Err(e) if e.is_cancelled() => return,
                Err(_) => {
                    tracing::error!(
                        "the PostgreSQL writer stopped on a fault; its batch failed; restarting it"
                    );
                }
            }
        }
    }
}

async fn run(
    target: Target,
    client: Option<Client>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    max_batch: usize,
    faults: Faults,
) {
    // A writer that died while holding the queue released it as it unwound.
    let mut jobs = jobs.lock().await;
    let mut client = match client {
        Some(c) => c,
        None => loop {
            match target.connect().await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::error!(error = %e, "the PostgreSQL writer cannot connect; retrying");
                    // Requests meanwhile wait in the queue; /readyz reports the node not ready.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        },
    };
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = jobs.recv().await {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if client.is_closed() {
            match target.connect().await {
                Ok(c) => client = c,
                Err(e) => {
                    for job in batch.drain(..) {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                    continue;
                }
            }
        }
        commit_batch(&target, &mut client, &mut batch, &faults).await;
    }
}

async fn commit_batch(target: &Target, client: &mut Client, batch: &mut Vec<Job>, faults: &Faults) {
    let mut results: Vec<StoreResult<Receipt>> = Vec::with_capacity(batch.len());
    let outcome: StoreResult<()> = async {
        let mut tx = client.transaction().await.map_err(unavailable)?;
        // The transaction's id, to find out after a lost link whether COMMIT took effect.
        let xid: i64 = tx
            .query_one("SELECT txid_current()", &[])
            .await
            .map_err(unavailable)?
            .col(0)?;
        let mut heads = lock_heads(&tx, batch).await?;
        let mut changed = Vec::new();
        for job in batch.iter() {
            let sp = tx.savepoint("unit").await.map_err(unavailable)?;
            let mut unit_heads = HashMap::new();
            match apply_unit(&sp, &heads, &mut unit_heads, &job.unit).await {
                Ok(receipt) => {
                    sp.commit().await.map_err(unavailable)?;
                    changed.extend(unit_heads.keys().cloned());
                    heads.extend(unit_heads);
                    results.push(Ok(receipt));
                }
                Err(e) => {
                    sp.rollback().await.map_err(unavailable)?;
                    results.push(Err(e));
                }
            }
        }
        changed.sort();
        changed.dedup();
        for log in &changed {
            if let Some(h) = heads.get(log) {
                tx.execute(
                    "UPDATE audit_heads SET size = $2, hash = $3, compact = $4 WHERE log = $1",
                    &[
                        log,
                        &(h.size as i64),
                        &h.last_hash.as_slice(),
                        &h.compact.encode(),
                    ],
                )
                .await
                .map_err(unavailable)?;
            }
        }
        faults.hit(FaultPoint::BeforeCommit);
        match tx.commit().await {
            Ok(()) => Ok(()),
            // The server answered: it did not commit.
            Err(e) if e.as_db_error().is_some() => Err(unavailable(e)),
            // The link failed during COMMIT: it may have landed. Ask.
            Err(e) => resolve(target, xid, &e).await,
        }
    }
    .await;
    match outcome {
        Ok(()) => {
            for (job, result) in batch.drain(..).zip(results) {
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Whether transaction `xid`, whose COMMIT failed with `e` on the link, committed: asked on a
/// new connection with `txid_status`, waiting while it is still in progress.
async fn resolve(target: &Target, xid: i64, e: &tokio_postgres::Error) -> StoreResult<()> {
    let unknown = |why: String| {
        StoreError::Indeterminate(format!("COMMIT failed ({}); {why}", crate::describe(e)))
    };
    let client = target
        .connect()
        .await
        .map_err(|c| unknown(format!("and the database cannot be reached to check: {c}")))?;
    for _ in 0..50 {
        let status: Option<String> = client
            .query_one("SELECT txid_status($1)", &[&xid])
            .await
            .map_err(|c| unknown(format!("and the check failed: {}", crate::describe(&c))))?
            .col(0)?;
        match status.as_deref() {
            Some("committed") => {
                tracing::warn!("the link failed during COMMIT, but the batch had committed");
                return Ok(());
            }
            Some("aborted") => {
                return Err(StoreError::Unavailable(format!(
                    "COMMIT failed ({}); the transaction was rolled back",
                    crate::describe(e)
                )))
            }
            Some("in progress") => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => return Err(unknown("and the transaction is no longer known".into())),
        }
    }
    Err(unknown("and it was still in progress after 5 s".into()))
}

/// Locks (creating if needed) the heads of every log the batch writes to, in log order.
async fn lock_heads(tx: &Transaction<'_>, batch: &[Job]) -> StoreResult<HashMap<String, Head>> {
    let logs: BTreeMap<String, ()> = batch
        .iter()
        .flat_map(|j| j.unit.audit.iter().map(|e| (e.log().to_owned(), ())))
        .collect();
    let mut heads = HashMap::new();
    for log in logs.keys() {
        tx.execute(
            "INSERT INTO audit_heads (log, size, hash, compact) VALUES ($1, 0, $2, $3) ON CONFLICT (log) DO NOTHING",
            &[log, &GENESIS.as_slice(), &CompactRange::default().encode()],
        )
        .await
        .map_err(unavailable)?;
        let row = tx
            .query_one(
                "SELECT size, hash, compact FROM audit_heads WHERE log = $1 FOR UPDATE",
                &[log],
            )
            .await
            .map_err(unavailable)?;
        let head = Head {
            size: row.count(0)?,
            last_hash: hash32(row.col(1)?)?,
            compact: CompactRange::decode(row.col(2)?)
                .ok_or_else(|| StoreError::Corrupt("audit head".into()))?,
        };
        heads.insert(log.clone(), head);
    }
    Ok(heads)
}

async fn apply_unit(
    tx: &Transaction<'_>,
    heads: &HashMap<String, Head>,
    unit_heads: &mut HashMap<String, Head>,
    unit: &UnitOfWork,
) -> StoreResult<Receipt> {
    for op in &unit.ops {
        apply_op(tx, op).await?;
    }
    let mut receipt = Receipt::default();
    for ev in &unit.audit {
        let log = ev.log().to_owned();
        let mut h = unit_heads
            .get(&log)
            .or_else(|| heads.get(&log))
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("an audit log head was not locked".into()))?;
        let sealed = h.seal(ev);
        insert_sealed(tx, &log, &sealed).await?;
        let seq = sealed.entry.seq;
        unit_heads.insert(log.clone(), h);
        receipt.audit.push((log, seq));
    }
    Ok(receipt)
}

/// Writes a sealed entry with the rows derived from it: the subjects it names among its
/// objects, and the tree nodes it completes at stored levels.
pub(crate) async fn insert_sealed(
    tx: &Transaction<'_>,
    log: &str,
    sealed: &Sealed,
) -> StoreResult<()> {
    let failed =
        |e: tokio_postgres::Error| StoreError::Unavailable(format!("audit entry not written: {e}"));
    let seq = sealed.entry.seq as i64;
    tx.execute(
        "INSERT INTO audit (log, seq, body, hash) VALUES ($1, $2, $3, $4)",
        &[&log, &seq, &sealed.body, &sealed.hash.as_slice()],
    )
    .await
    .map_err(failed)?;
    for subject in sealed.entry.other_subjects() {
        tx.execute(
            "INSERT INTO audit_subjects (log, subject, seq) VALUES ($1, $2, $3)",
            &[&log, &subject, &seq],
        )
        .await
        .map_err(failed)?;
    }
    for (level, index, hash) in &sealed.nodes {
        tx.execute(
            "INSERT INTO audit_nodes (log, level, idx, hash) VALUES ($1, $2, $3, $4)",
            &[&log, &(*level as i32), &(*index as i64), &hash.as_slice()],
        )
        .await
        .map_err(failed)?;
    }
    Ok(())
}

fn map_err(e: tokio_postgres::Error, what: &'static str) -> StoreError {
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION || *c == SqlState::FOREIGN_KEY_VIOLATION => {
            StoreError::Conflict(what)
        }
        _ => unavailable(e),
    }
}

async fn exec(
    tx: &Transaction<'_>,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
    what: &'static str,
) -> StoreResult<u64> {
    tx.execute(sql, p).await.map_err(|e| map_err(e, what))
}

fn json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn codes_json(codes: &[[u8; 32]]) -> StoreResult<String> {
    json(
        &codes
            .iter()
            .map(|c| strongroom_crypto::hex(c))
            .collect::<Vec<_>>(),
    )
}

fn conflict_unless_one(n: u64) -> StoreResult<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict("version"))
    }
}

async fn apply_op(tx: &Transaction<'_>, op: &Op) -> StoreResult<()> {
    match op {
        Op::PutMeta { key, value } => {
            exec(tx, "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", &[key, value], "meta").await?;
        }
        Op::PutDeclaration(d) => {
            exec(
                tx,
                "INSERT INTO declarations (id, version, tenant, measure, statement, owner, evidence_name,
                     evidence_sha256, declared_at, review_by, withdrawn, recorded_by, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                &[
                    &d.id,
                    &i64::from(d.version),
                    &d.tenant.as_ref().map(|t| t.as_str()),
                    &d.measure,
                    &d.statement,
                    &d.owner,
                    &d.evidence_name,
                    &d.evidence_sha256.as_ref().map(|h| h.as_slice()),
                    &d.declared_at,
                    &d.review_by,
                    &d.withdrawn,
                    &d.recorded_by,
                    &d.recorded_at,
                ],
                "version",
            )
            .await?;
        }
        Op::EnsureJob(j) => {
            exec(
                tx,
                "INSERT INTO jobs (id, kind, tenant, every_ms, next_run_at, state, done, total, cursor,
                     started_at, last_run_at, last_ok_at, last_error, runs, lease_holder, lease_until)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &j.id,
                    &j.kind,
                    &j.tenant.as_ref().map(|t| t.as_str()),
                    &j.every_ms,
                    &j.next_run_at,
                    &j.state.as_str(),
                    &(j.done as i64),
                    &j.total.map(|t| t as i64),
                    &j.cursor,
                    &j.started_at,
                    &j.last_run_at,
                    &j.last_ok_at,
                    &j.last_error,
                    &(j.runs as i64),
                    &j.lease_holder,
                    &j.lease_until,
                ],
                "job",
            )
            .await?;
        }
        Op::ScheduleJob {
            id,
            every_ms,
            next_run_at,
        } => {
            exec(
                tx,
                "UPDATE jobs SET every_ms = $2, next_run_at = LEAST(next_run_at, $3) WHERE id = $1",
                &[id, every_ms, next_run_at],
                "job",
            )
            .await?;
        }
        Op::ClaimJob {
            id,
            holder,
            now,
            until,
        } => {
            let n = exec(
                tx,
                "UPDATE jobs SET lease_holder = $2, lease_until = $4,
                     done = CASE WHEN state = 'running' THEN done ELSE 0 END,
                     total = CASE WHEN state = 'running' THEN total ELSE NULL END,
                     cursor = CASE WHEN state = 'running' THEN cursor ELSE NULL END,
                     started_at = CASE WHEN state = 'running' THEN started_at ELSE $3 END,
                     state = 'running'
                 WHERE id = $1 AND (lease_holder IS NULL OR lease_until <= $3 OR lease_holder = $2)
                   AND (state = 'running' OR next_run_at <= $3)",
                &[id, holder, now, until],
                "job",
            )
            .await?;
            if n != 1 {
                return Err(StoreError::Conflict("lease"));
            }
        }
        Op::SaveJob { holder, row: j } => {
            let n = exec(
                tx,
                "UPDATE jobs SET every_ms = $2, next_run_at = $3, state = $4, done = $5, total = $6,
                     cursor = $7, started_at = $8, last_run_at = $9, last_ok_at = $10,
                     last_error = $11, runs = $12, lease_holder = $13, lease_until = $14
                 WHERE id = $1 AND lease_holder = $15",
                &[
                    &j.id,
                    &j.every_ms,
                    &j.next_run_at,
                    &j.state.as_str(),
                    &(j.done as i64),
                    &j.total.map(|t| t as i64),
                    &j.cursor,
                    &j.started_at,
                    &j.last_run_at,
                    &j.last_ok_at,
                    &j.last_error,
                    &(j.runs as i64),
                    &j.lease_holder,
                    &j.lease_until,
                    holder,
                ],
                "job",
            )
            .await?;
            if n != 1 {
                return Err(StoreError::Conflict("lease"));
            }
        }
        Op::PutRegisterEntry(e) => {
            exec(
                tx,
                "INSERT INTO register_entries (register, id, version, tenant, body, recorded_by, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &e.register,
                    &e.id,
                    &i64::from(e.version),
                    &e.tenant.as_ref().map(|t| t.as_str()),
                    &e.body,
                    &e.recorded_by,
                    &e.recorded_at,
                ],
                "version",
            )
            .await?;
        }
        Op::InsertTenant(t) => {
            exec(
                tx,
                "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)",
                &[&t.id.as_str(), &t.name, &t.created_at],
                "tenant",
            )
            .await?;
        }
        Op::InsertTenantKey(k) => {
            exec(
                tx,
                "INSERT INTO tenant_keys (tenant, version, wrapped, created_at) VALUES ($1, $2, $3, $4)",
                &[&k.tenant.as_str(), &i64::from(k.version), &k.wrapped, &k.created_at],
                "tenant key",
            )
            .await?;
        }
        Op::InsertApiKey(k) => {
            exec(
                tx,
                "INSERT INTO api_keys (id, tenant, name, hash, roles, created_at, expires_at, last_used_at, rotated_to)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &k.id.as_str(),
                    &k.tenant.as_ref().map(|t| t.as_str()),
                    &k.name,
                    &k.hash.as_slice(),
                    &json(&k.roles)?,
                    &k.created_at,
                    &k.expires_at,
                    &k.last_used_at,
                    &k.rotated_to.as_ref().map(|r| r.as_str()),
                ],
                "api key",
            )
            .await?;
        }
        Op::PutCollection {
            row,
            expected_version,
        } => {
            let def = json(&row.def)?;
            if *expected_version == 0 {
                exec(
                    tx,
                    "INSERT INTO collections (tenant, name, version, def, updated_at) VALUES ($1, $2, $3, $4, $5)",
                    &[&row.tenant.as_str(), &row.name, &(row.version as i64), &def, &row.updated_at],
                    "collection",
                )
                .await?;
            } else {
                let n = exec(
                    tx,
                    "UPDATE collections SET version = $3, def = $4, updated_at = $5 WHERE tenant = $1 AND name = $2 AND version = $6",
                    &[&row.tenant.as_str(), &row.name, &(row.version as i64), &def, &row.updated_at, &(*expected_version as i64)],
                    "collection",
                )
                .await?;
                conflict_unless_one(n)?;
            }
        }
        Op::PutRole {
            row: r,
            expected_version,
        } => {
            let def = json(&r.def)?;
            if *expected_version == 0 {
                exec(
                    tx,
                    "INSERT INTO roles (tenant, name, version, def, updated_at) VALUES ($1, $2, $3, $4, $5)",
                    &[&r.tenant.as_str(), &r.name, &(r.version as i64), &def, &r.updated_at],
                    "role",
                )
                .await?;
            } else {
                let n = exec(
                    tx,
                    "UPDATE roles SET version = $3, def = $4, updated_at = $5 WHERE tenant = $1 AND name = $2 AND version = $6",
                    &[&r.tenant.as_str(), &r.name, &(r.version as i64), &def, &r.updated_at, &(*expected_version as i64)],
                    "role",
                )
                .await?;
                conflict_unless_one(n)?;
            }
        }
        Op::InsertSubject(s) => {
            exec(
                tx,
                "INSERT INTO subjects (tenant, id, kek_version, wrapped_dek, ref_index, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&s.tenant.as_str(), &s.id.as_str(), &i64::from(s.kek_version), &s.wrapped_dek, &s.ref_index.as_ref().map(|h| h.as_slice()), &s.created_at],
                "data subject",
            )
            .await?;
        }
        Op::InsertRecord { row, index } => {
            exec(
                tx,
                "INSERT INTO records (tenant, id, collection, subject, version, state, created_at, updated_at, data)
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8)",
                &[&row.tenant.as_str(), &row.id.as_str(), &row.collection, &row.subject.as_str(), &(row.version as i64), &row.created_at, &row.updated_at, &row.data],
                "record",
            )
            .await?;
            for ix in index {
                insert_index(
                    tx,
                    row.tenant.as_str(),
                    &row.collection,
                    &ix.field,
                    &ix.hash,
                    row.id.as_str(),
                )
                .await?;
            }
        }
        Op::UpdateRecord { row, reindex } => {
            let prev = row.version as i64 - 1;
            let moved = exec(
                tx,
                "INSERT INTO record_history (tenant, id, version, updated_at, data)
                 SELECT tenant, id, version, updated_at, data FROM records WHERE tenant = $1 AND id = $2 AND version = $3 AND state = 0",
                &[&row.tenant.as_str(), &row.id.as_str(), &prev],
                "record version",
            )
            .await?;
            conflict_unless_one(moved)?;
            exec(
                tx,
                "UPDATE records SET version = $3, updated_at = $4, data = $5 WHERE tenant = $1 AND id = $2",
                &[&row.tenant.as_str(), &row.id.as_str(), &(row.version as i64), &row.updated_at, &row.data],
                "record",
            )
            .await?;
            for (field, hash) in reindex {
                exec(
                    tx,
                    "DELETE FROM blind_index WHERE tenant = $1 AND collection = $2 AND field = $3 AND record = $4",
                    &[&row.tenant.as_str(), &row.collection, field, &row.id.as_str()],
                    "index",
                )
                .await?;
                if let Some(h) = hash {
                    insert_index(
                        tx,
                        row.tenant.as_str(),
                        &row.collection,
                        field,
                        h,
                        row.id.as_str(),
                    )
                    .await?;
                }
            }
        }
        Op::RestoreRecord {
            tenant,
            id,
            expected_version,
        } => {
            let n = exec(
                tx,
                "UPDATE records SET state = 0, blocked_at = NULL WHERE tenant = $1 AND id = $2 AND version = $3 AND state = 1",
                &[&tenant.as_str(), &id.as_str(), &(*expected_version as i64)],
                "record",
            )
            .await?;
            conflict_unless_one(n)?;
        }
        Op::PurgeRecords { tenant, ids } => {
            for id in ids {
                let n = exec(
                    tx,
                    "DELETE FROM records WHERE tenant = $1 AND id = $2 AND state = 1",
                    &[&tenant.as_str(), &id.as_str()],
                    "record",
                )
                .await?;
                if n != 1 {
                    return Err(StoreError::Conflict("state"));
                }
                exec(
                    tx,
                    "DELETE FROM record_history WHERE tenant = $1 AND id = $2",
                    &[&tenant.as_str(), &id.as_str()],
                    "record",
                )
                .await?;
                exec(
                    tx,
                    "DELETE FROM blind_index WHERE tenant = $1 AND record = $2",
                    &[&tenant.as_str(), &id.as_str()],
                    "record",
                )
                .await?;
            }
        }
        Op::PruneHistory { tenant, id, below } => {
            exec(
                tx,
                "DELETE FROM record_history WHERE tenant = $1 AND id = $2 AND version < $3",
                &[
                    &tenant.as_str(),
                    &id.as_str(),
                    &i64::try_from(*below).unwrap_or(i64::MAX),
                ],
                "record",
            )
            .await?;
        }
        Op::DestroySubject { tenant, subject } => {
            let n = exec(
                tx,
                "DELETE FROM subjects WHERE tenant = $1 AND id = $2
                 AND NOT EXISTS (SELECT 1 FROM records WHERE tenant = $1 AND subject = $2)",
                &[&tenant.as_str(), &subject.as_str()],
                "subject",
            )
            .await?;
            if n != 1 {
                return Err(StoreError::Conflict("subject"));
            }
            for sql in [
                "DELETE FROM consents WHERE tenant = $1 AND subject = $2",
                "DELETE FROM exports WHERE tenant = $1 AND subject = $2",
            ] {
                exec(tx, sql, &[&tenant.as_str(), &subject.as_str()], "subject").await?;
            }
        }
        Op::PutExport(e) => {
            let left =
                i32::try_from(e.downloads_left).map_err(|_| StoreError::Conflict("export"))?;
            let n = exec(
                tx,
                "INSERT INTO exports (tenant, id, subject, created_at, expires_at, downloads_left, data)
                 SELECT $1, $2, $3, $4, $5, $6, $7
                 WHERE EXISTS (SELECT 1 FROM subjects WHERE tenant = $1 AND id = $3)",
                &[
                    &e.tenant.as_str(),
                    &e.id.as_str(),
                    &e.subject.as_str(),
                    &e.created_at,
                    &e.expires_at,
                    &left,
                    &e.data,
                ],
                "export",
            )
            .await?;
            if n != 1 {
                return Err(StoreError::Conflict("subject"));
            }
        }
        Op::TakeExport { tenant, id, now } => {
            // One statement, the row locked: two downloads racing for the last one cannot
            // both count it.
            let left: Option<i32> = tx
                .query_opt(
                    "SELECT downloads_left FROM exports WHERE tenant = $1 AND id = $2 AND expires_at > $3
                     FOR UPDATE",
                    &[&tenant.as_str(), &id.as_str(), now],
                )
                .await
                .map_err(|e| map_err(e, "export"))?
                .map(|r| r.get(0));
            let sql = match left {
                Some(1) => "DELETE FROM exports WHERE tenant = $1 AND id = $2",
                Some(_) => "UPDATE exports SET downloads_left = downloads_left - 1 WHERE tenant = $1 AND id = $2",
                None => return Err(StoreError::Conflict("export")),
            };
            exec(tx, sql, &[&tenant.as_str(), &id.as_str()], "export").await?;
        }
        Op::DeleteExport { tenant, id } => {
            exec(
                tx,
                "DELETE FROM exports WHERE tenant = $1 AND id = $2",
                &[&tenant.as_str(), &id.as_str()],
                "export",
            )
            .await?;
        }
        Op::PutTenantArchive(a) => {
            exec(
                tx,
                "INSERT INTO tenant_archives (tenant, token_hash, created_at, expires_at, data)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &a.tenant.as_str(),
                    &&a.token_hash[..],
                    &a.created_at,
                    &a.expires_at,
                    &a.data,
                ],
                "archive",
            )
            .await?;
        }
        Op::TakeTenantArchive {
            tenant,
            token_hash,
            now,
        } => {
            let n = exec(
                tx,
                "DELETE FROM tenant_archives WHERE tenant = $1 AND token_hash = $2 AND expires_at > $3",
                &[&tenant.as_str(), &&token_hash[..], now],
                "archive",
            )
            .await?;
            if n != 1 {
                return Err(StoreError::Conflict("archive"));
            }
        }
        Op::DeleteAuditLog { log } => {
            for sql in [
                "DELETE FROM audit_nodes WHERE log = $1",
                "DELETE FROM audit_subjects WHERE log = $1",
                "DELETE FROM audit_checkpoints WHERE log = $1",
                "DELETE FROM audit WHERE log = $1",
                "DELETE FROM audit_heads WHERE log = $1",
            ] {
                exec(tx, sql, &[log], "audit").await?;
            }
        }
        Op::DeleteTenantArchive { tenant } => {
            exec(
                tx,
                "DELETE FROM tenant_archives WHERE tenant = $1",
                &[&tenant.as_str()],
                "archive",
            )
            .await?;
        }
        Op::ShredTenant { tenant, counts } => {
            let t = tenant.as_str();
            // The tenant row is locked first, then what is deleted is counted as it goes: a
            // record written meanwhile on another node makes the counts differ and undoes all.
            exec(
                tx,
                "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE",
                &[&t],
                "tenant",
            )
            .await?;
            let mut deleted = [0u64; 3];
            for (sql, slot) in [
                ("DELETE FROM sessions WHERE tenant = $1", None),
                (
                    "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE tenant = $1)",
                    None,
                ),
                ("DELETE FROM users WHERE tenant = $1", None),
                ("DELETE FROM api_keys WHERE tenant = $1", None),
                ("DELETE FROM blind_index WHERE tenant = $1", None),
                ("DELETE FROM record_history WHERE tenant = $1", Some(2)),
                ("DELETE FROM records WHERE tenant = $1", Some(0)),
                ("DELETE FROM consents WHERE tenant = $1", None),
                ("DELETE FROM exports WHERE tenant = $1", None),
                ("DELETE FROM subjects WHERE tenant = $1", Some(1)),
                ("DELETE FROM tenant_keys WHERE tenant = $1", None),
                ("DELETE FROM collections WHERE tenant = $1", None),
                ("DELETE FROM roles WHERE tenant = $1", None),
                ("DELETE FROM settings WHERE scope = $1", None),
                ("DELETE FROM jobs WHERE tenant = $1", None),
                ("DELETE FROM register_entries WHERE tenant = $1", None),
                ("DELETE FROM declarations WHERE tenant = $1", None),
            ] {
                let n = exec(tx, sql, &[&t], "tenant").await?;
                if let Some(i) = slot {
                    deleted[i] = n;
                }
            }
            if deleted != [counts.records, counts.subjects, counts.versions] {
                return Err(StoreError::Conflict("state"));
            }
            if exec(tx, "DELETE FROM tenants WHERE id = $1", &[&t], "tenant").await? != 1 {
                return Err(StoreError::Conflict("tenant"));
            }
        }
        Op::RecordConsent(c) => {
            let (t, sub) = (c.tenant.as_str(), c.subject.as_str());
            let state = c.state as i32;
            let hash = c.text_hash.as_ref().map(|h| h.as_slice());
            // The subject's row is locked, so two changes of its consents are numbered one
            // after the other (and an erasure waits): the next in its sequence, or nothing.
            let exists = exec(
                tx,
                "SELECT 1 FROM subjects WHERE tenant = $1 AND id = $2 FOR UPDATE",
                &[&t, &sub],
                "subject",
            )
            .await?;
            if exists != 1 {
                return Err(StoreError::Conflict("subject"));
            }
            exec(
                tx,
                "INSERT INTO consents (tenant, subject, purpose, seq, state, at, source, text_hash, recorded_by)
                 SELECT $1, $2, $3,
                        (SELECT coalesce(max(seq), 0) + 1 FROM consents
                         WHERE tenant = $1 AND subject = $2 AND purpose = $3),
                        $4, $5, $6, $7, $8",
                &[&t, &sub, &c.purpose, &state, &c.at, &c.source, &hash, &c.recorded_by],
                "consent",
            )
            .await?;
            if c.state == strongroom_core::store::ConsentState::Objected {
                let flag = strongroom_core::store::SUBJECT_OBJECTED as i32;
                exec(
                    tx,
                    "UPDATE subjects SET flags = flags | $3 WHERE tenant = $1 AND id = $2",
                    &[&t, &sub, &flag],
                    "subject",
                )
                .await?;
            }
        }
        Op::SetSubjectFlag {
            tenant,
            subject,
            flag,
            on,
        } => {
            let flag =
                i32::try_from(*flag).map_err(|_| StoreError::Corrupt("subject flag".into()))?;
            let n = exec(
                tx,
                "UPDATE subjects SET flags = CASE WHEN $3 THEN flags | $4 ELSE flags & ~$4 END
                 WHERE tenant = $1 AND id = $2",
                &[&tenant.as_str(), &subject.as_str(), on, &flag],
                "subject",
            )
            .await?;
            if n != 1 {
                return Err(StoreError::Conflict("subject"));
            }
        }
        Op::EraseSubject {
            tenant,
            subject,
            records,
        } => {
            let (t, sub) = (tenant.as_str(), subject.as_str());
            let n: i64 = tx
                .query_one(
                    "SELECT count(*) FROM records WHERE tenant = $1 AND subject = $2",
                    &[&t, &sub],
                )
                .await
                .map_err(|e| map_err(e, "record"))?
                .get(0);
            if u64::try_from(n).ok() != Some(*records) {
                return Err(StoreError::Conflict("state"));
            }
            // Index entries and history first: they are found through the records.
            for sql in [
                "DELETE FROM blind_index WHERE tenant = $1
                 AND record IN (SELECT id FROM records WHERE tenant = $1 AND subject = $2)",
                "DELETE FROM record_history WHERE tenant = $1
                 AND id IN (SELECT id FROM records WHERE tenant = $1 AND subject = $2)",
                "DELETE FROM records WHERE tenant = $1 AND subject = $2",
                "DELETE FROM consents WHERE tenant = $1 AND subject = $2",
                "DELETE FROM exports WHERE tenant = $1 AND subject = $2",
            ] {
                exec(tx, sql, &[&t, &sub], "record").await?;
            }
            if exec(
                tx,
                "DELETE FROM subjects WHERE tenant = $1 AND id = $2",
                &[&t, &sub],
                "subject",
            )
            .await?
                != 1
            {
                return Err(StoreError::Conflict("subject"));
            }
        }
        Op::BlockRecord {
            tenant,
            id,
            expected_version,
            at,
        } => {
            let n = exec(
                tx,
                "UPDATE records SET state = 1, blocked_at = $4 WHERE tenant = $1 AND id = $2 AND version = $3 AND state = 0",
                &[&tenant.as_str(), &id.as_str(), &(*expected_version as i64), at],
                "record",
            )
            .await?;
            conflict_unless_one(n)?;
        }
        Op::InsertUser(u) => {
            exec(
                tx,
                "INSERT INTO users (id, tenant, username, username_key, password_hash, password_changed_at, password_history,
                    roles, disabled, failed_count, lock_level, locked_until, totp_secret, totp_pending, totp_last_step,
                    recovery_codes, created_at, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                &[
                    &u.id.as_str(),
                    &u.tenant.as_ref().map(|t| t.as_str()),
                    &u.username,
                    &u.username_key,
                    &u.password_hash,
                    &u.password_changed_at,
                    &json(&u.password_history)?,
                    &json(&u.roles)?,
                    &u.disabled,
                    &i64::from(u.failed_count),
                    &i64::from(u.lock_level),
                    &u.locked_until,
                    &u.totp_secret,
                    &u.totp_pending,
                    &u.totp_last_step,
                    &codes_json(&u.recovery_codes)?,
                    &u.created_at,
                    &(u.version as i64),
                ],
                "user",
            )
            .await?;
        }
        Op::UpdateUser(u) => {
            let n = exec(
                tx,
                "UPDATE users SET username = $2, username_key = $3, password_hash = $4, password_changed_at = $5,
                    password_history = $6, roles = $7, disabled = $8, totp_secret = $9, totp_pending = $10,
                    recovery_codes = $11, version = $12
                 WHERE id = $1 AND version = $13",
                &[
                    &u.id.as_str(),
                    &u.username,
                    &u.username_key,
                    &u.password_hash,
                    &u.password_changed_at,
                    &json(&u.password_history)?,
                    &json(&u.roles)?,
                    &u.disabled,
                    &u.totp_secret,
                    &u.totp_pending,
                    &codes_json(&u.recovery_codes)?,
                    &(u.version as i64),
                    &(u.version as i64 - 1),
                ],
                "user",
            )
            .await?;
            conflict_unless_one(n)?;
        }
        Op::AdmitLoginAttempt {
            user,
            at,
            threshold,
        } => {
            let n = exec(
                tx,
                "UPDATE users SET failed_count = failed_count + 1
                 WHERE id = $1 AND failed_count < $3::BIGINT AND (locked_until IS NULL OR locked_until <= $2)",
                &[&user.as_str(), at, &i64::from(*threshold)],
                "user",
            )
            .await?;
            if n == 0 {
                return Err(StoreError::Conflict("locked"));
            }
        }
        Op::ReleaseLoginAttempt { user } => {
            exec(
                tx,
                "UPDATE users SET failed_count = GREATEST(failed_count - 1, 0) WHERE id = $1",
                &[&user.as_str()],
                "user",
            )
            .await?;
        }
        Op::LockIfDue {
            user,
            at,
            threshold,
            base_delay_ms,
            max_delay_ms,
        } => {
            let n = exec(
                tx,
                "UPDATE users SET
                    locked_until = $2::BIGINT + LEAST($4::BIGINT << LEAST(lock_level, 20)::INT, $5::BIGINT),
                    lock_level = lock_level + 1,
                    failed_count = 0
                 WHERE id = $1 AND failed_count >= $3::BIGINT",
                &[&user.as_str(), at, &i64::from(*threshold), base_delay_ms, max_delay_ms],
                "user",
            )
            .await?;
            if n == 0 {
                return Err(StoreError::Conflict("not_due"));
            }
        }
        Op::ResetLockout { user } => {
            exec(tx, "UPDATE users SET failed_count = 0, lock_level = 0, locked_until = NULL WHERE id = $1", &[&user.as_str()], "user").await?;
        }
        Op::UseTotpStep { user, step } => {
            let n = exec(
                tx,
                "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2",
                &[&user.as_str(), step],
                "user",
            )
            .await?;
            if n != 1 {
                return Err(StoreError::Conflict("totp step"));
            }
        }
        Op::InsertSession(x) => {
            exec(
                tx,
                "INSERT INTO sessions (id, token_hash, tenant, user_id, created_at, last_seen_at, expires_at, idle_timeout_ms, revoked_at, restricted_to)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &x.id.as_str(),
                    &x.token_hash.as_slice(),
                    &x.tenant.as_ref().map(|t| t.as_str()),
                    &x.user.as_str(),
                    &x.created_at,
                    &x.last_seen_at,
                    &x.expires_at,
                    &x.idle_timeout_ms,
                    &x.revoked_at,
                    &x.restricted_to,
                ],
                "session",
            )
            .await?;
        }
        Op::TouchSession { id, at } => {
            exec(
                tx,
                "UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $2) WHERE id = $1",
                &[&id.as_str(), at],
                "session",
            )
            .await?;
        }
        Op::RevokeSession { id, at } => {
            exec(
                tx,
                "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id.as_str(), at],
                "session",
            )
            .await?;
        }
        Op::RevokeUserSessions { user, at } => {
            exec(
                tx,
                "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
                &[&user.as_str(), at],
                "session",
            )
            .await?;
        }
        Op::PutSettings { scope, settings } => {
            exec(
                tx,
                "INSERT INTO settings (scope, body) VALUES ($1, $2) ON CONFLICT (scope) DO UPDATE SET body = excluded.body",
                &[scope, &json(settings)?],
                "settings",
            )
            .await?;
        }
        Op::TouchApiKey { id, at } => {
            exec(
                tx,
                "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
                &[&id.as_str(), at],
                "api key",
            )
            .await?;
        }
        Op::RotateApiKey {
            id,
            expires_at,
            rotated_to,
        } => {
            let n = exec(
                tx,
                "UPDATE api_keys SET expires_at = LEAST(expires_at, $2), rotated_to = $3 WHERE id = $1 AND rotated_to IS NULL",
                &[&id.as_str(), expires_at, &rotated_to.as_str()],
                "api key",
            )
            .await?;
            conflict_unless_one(n)?;
        }
        Op::InsertCheckpoint(c) => {
            exec(
                tx,
                "INSERT INTO audit_checkpoints (log, seq, size, root, time, prev, signature, format, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[&c.log, &(c.seq as i64), &(c.size as i64), &c.root.as_slice(), &c.time, &c.prev.as_slice(), &c.signature.as_slice(), &i16::from(c.format), &c.origin],
                "checkpoint",
            )
            .await?;
        }
    }
    Ok(())
}

async fn insert_index(
    tx: &Transaction<'_>,
    tenant: &str,
    collection: &str,
    field: &str,
    hash: &[u8; 32],
    record: &str,
) -> StoreResult<()> {
    exec(
        tx,
        "INSERT INTO blind_index (tenant, collection, field, hash, record) VALUES ($1, $2, $3, $4, $5)",
        &[&tenant, &collection, &field, &hash.as_slice(), &record],
        "index entry",
    )
    .await?;
    Ok(())
}
