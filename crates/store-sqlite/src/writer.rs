//! The single writer: group commit of units of work, and sealing of their audit events into
//! per-log hash chains (it is the sequencer of every log of this database).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use strongroom_core::store::{
    AuditHead as Head, FaultPoint, Faults, Op, Receipt, Sealed, StoreError, StoreResult, UnitOfWork,
};
use strongroom_crypto::merkle::CompactRange;
use tokio::sync::mpsc;

use crate::{unavailable, Job};

/// The writer of a store and what it needs to start again after a fault.
pub(crate) struct Writer {
    pub(crate) path: PathBuf,
    pub(crate) jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    pub(crate) max_batch: usize,
    pub(crate) faults: Faults,
}

impl Writer {
    /// Runs the writer on its own thread, and starts a new one (with a new connection and
    /// heads read afresh) whenever it dies, so that a fault fails the batch it hit and not
    /// every later request. Ends when the store is dropped.
    pub(crate) fn supervise(self, first: Connection) {
        let mut conn = Some(first);
        loop {
            let c = match conn.take() {
                Some(c) => c,
                None => match self.reopen() {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, "the SQLite writer cannot reopen the database; retrying");
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                },
            };
            let (jobs, max_batch, faults) =
                (self.jobs.clone(), self.max_batch, self.faults.clone());
            let ended = std::thread::Builder::new()
                .name("strongroom-sqlite-writer".into())
                .spawn(move || run(c, &jobs, max_batch, &faults))
                .map(|h| h.join());
            match ended {
                Ok(Ok(())) => return,
                Ok(Err(_)) => {
                    tracing::error!(
                        "the SQLite writer stopped on a fault; its batch failed; restarting it"
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the SQLite writer; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    fn reopen(&self) -> StoreResult<Connection> {
        let conn = Connection::open(&self.path).map_err(unavailable)?;
        crate::configure(&conn)?;
        Ok(conn)
    }
}

fn run(mut conn: Connection, jobs: &Mutex<mpsc::Receiver<Job>>, max_batch: usize, faults: &Faults) {
    // A writer that died while holding the queue leaves it intact: take it back.
    let mut jobs = jobs.lock().unwrap_or_else(|p| p.into_inner());
    let mut heads: HashMap<String, Head> = HashMap::new();
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut heads, &mut batch, faults);
    }
}

fn commit_batch(
    conn: &mut Connection,
    heads: &mut HashMap<String, Head>,
    batch: &mut Vec<Job>,
    faults: &Faults,
) {
    let mut results: Vec<StoreResult<Receipt>> = Vec::with_capacity(batch.len());
    let mut moved: HashMap<String, Head> = HashMap::new();
    let outcome = (|| -> rusqlite::Result<()> {
        // The write lock is taken at the start (waiting, with the busy timeout, for a scrub's
        // checkpoint that holds it): a deferred transaction that read first would find its
        // snapshot stale once a checkpoint truncated the log, and fail with no wait at all.
        let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for job in batch.iter() {
            let mut unit_heads = HashMap::new();
            let sp = tx.savepoint()?;
            match apply_unit(&sp, heads, &moved, &mut unit_heads, &job.unit) {
                Ok(receipt) => {
                    sp.commit()?;
                    moved.extend(unit_heads);
                    results.push(Ok(receipt));
                }
                Err(e) => {
                    drop(sp); // rolls back this unit only
                    results.push(Err(e));
                }
            }
        }
        for (log, head) in &moved {
            tx.prepare_cached(
                "INSERT INTO audit_heads (log, size, hash, compact) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (log) DO UPDATE SET size = excluded.size, hash = excluded.hash, compact = excluded.compact",
            )?
            .execute(params![log, head.size as i64, &head.last_hash[..], head.compact.encode()])?;
        }
        faults.hit(FaultPoint::BeforeCommit);
        tx.commit()
    })();
    match outcome {
        Ok(()) => {
            heads.extend(moved);
            // A log deleted whole has no head any more.
            for job in batch.iter() {
                for op in &job.unit.ops {
                    if let Op::DeleteAuditLog { log } = op {
                        heads.remove(log);
                    }
                }
            }
            for (job, result) in batch.drain(..).zip(results) {
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            // Nothing of the batch is known to be durable: fail every unit and forget the
            // cached heads so they are read again from what the database really holds.
            tracing::error!(error = %e, "group commit failed");
            heads.clear();
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(unavailable(&e)));
            }
        }
    }
}

fn head(
    conn: &Connection,
    heads: &HashMap<String, Head>,
    moved: &HashMap<String, Head>,
    unit: &HashMap<String, Head>,
    log: &str,
) -> StoreResult<Head> {
    if let Some(h) = unit
        .get(log)
        .or_else(|| moved.get(log))
        .or_else(|| heads.get(log))
    {
        return Ok(h.clone());
    }
    let stored: Option<(i64, Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT size, hash, compact FROM audit_heads WHERE log = ?1",
            [log],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(unavailable)?;
    if let Some((size, hash, compact)) = stored {
        return Ok(Head {
            size: size as u64,
            last_hash: hash
                .try_into()
                .map_err(|_| StoreError::Corrupt("audit head hash".into()))?,
            compact: CompactRange::decode(&compact)
                .ok_or_else(|| StoreError::Corrupt("audit head".into()))?,
        });
    }
    // A log written before heads were kept: rebuild its head once from its entries.
    let mut head = Head::genesis();
    let mut stmt = conn
        .prepare_cached("SELECT seq, hash FROM audit WHERE log = ?1 ORDER BY seq")
        .map_err(unavailable)?;
    let rows = stmt
        .query_map([log], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .map_err(unavailable)?;
    for row in rows {
        let (seq, hash) = row.map_err(unavailable)?;
        let hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit hash length".into()))?;
        head.size = seq as u64;
        head.last_hash = hash;
        head.compact.append(hash);
    }
    Ok(head)
}

fn apply_unit(
    conn: &Connection,
    heads: &HashMap<String, Head>,
    moved: &HashMap<String, Head>,
    unit_heads: &mut HashMap<String, Head>,
    unit: &UnitOfWork,
) -> StoreResult<Receipt> {
    for op in &unit.ops {
        apply_op(conn, op)?;
    }
    let mut receipt = Receipt::default();
    for ev in &unit.audit {
        let log = ev.log().to_owned();
        let mut h = head(conn, heads, moved, unit_heads, &log)?;
        let sealed = h.seal(ev);
        insert_sealed(conn, &log, &sealed)?;
        let seq = sealed.entry.seq;
        unit_heads.insert(log.clone(), h);
        receipt.audit.push((log, seq));
    }
    Ok(receipt)
}

fn map_err(e: rusqlite::Error, what: &'static str) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(what),
        _ => unavailable(e),
    }
}

fn exec(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    what: &'static str,
) -> StoreResult<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(p))
        .map_err(|e| map_err(e, what))
}

fn json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn apply_op(conn: &Connection, op: &Op) -> StoreResult<()> {
    match op {
        Op::PutMeta { key, value } => {
            exec(
                conn,
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
                "meta",
            )?;
        }
        Op::PutDeclaration(d) => {
            exec(
                conn,
                "INSERT INTO declarations (id, version, tenant, measure, statement, owner, evidence_name,
                     evidence_sha256, declared_at, review_by, withdrawn, recorded_by, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    d.id,
                    d.version,
                    d.tenant.as_ref().map(|t| t.as_str()),
                    d.measure,
                    d.statement,
                    d.owner,
                    d.evidence_name,
                    d.evidence_sha256.as_ref().map(|h| &h[..]),
                    d.declared_at,
                    d.review_by,
                    d.withdrawn,
                    d.recorded_by,
                    d.recorded_at
                ],
                "version",
            )?;
        }
        Op::EnsureJob(j) => {
            exec(
                conn,
                "INSERT INTO jobs (id, kind, tenant, every_ms, next_run_at, state, done, total, cursor,
                     started_at, last_run_at, last_ok_at, last_error, runs, lease_holder, lease_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (id) DO NOTHING",
                params![
                    j.id,
                    j.kind,
                    j.tenant.as_ref().map(|t| t.as_str()),
                    j.every_ms,
                    j.next_run_at,
                    j.state.as_str(),
                    j.done as i64,
                    j.total.map(|t| t as i64),
                    j.cursor,
                    j.started_at,
                    j.last_run_at,
                    j.last_ok_at,
                    j.last_error,
                    j.runs as i64,
                    j.lease_holder,
                    j.lease_until
                ],
                "job",
            )?;
        }
        Op::ScheduleJob {
            id,
            every_ms,
            next_run_at,
        } => {
            exec(
                conn,
                "UPDATE jobs SET every_ms = ?2, next_run_at = min(next_run_at, ?3) WHERE id = ?1",
                params![id, every_ms, next_run_at],
                "job",
            )?;
        }
        Op::ClaimJob {
            id,
            holder,
            now,
            until,
        } => {
            let n = exec(
                conn,
                "UPDATE jobs SET lease_holder = ?2, lease_until = ?4,
                     done = CASE WHEN state = 'running' THEN done ELSE 0 END,
                     total = CASE WHEN state = 'running' THEN total ELSE NULL END,
                     cursor = CASE WHEN state = 'running' THEN cursor ELSE NULL END,
                     started_at = CASE WHEN state = 'running' THEN started_at ELSE ?3 END,
                     state = 'running'
                 WHERE id = ?1 AND (lease_holder IS NULL OR lease_until <= ?3 OR lease_holder = ?2)
                   AND (state = 'running' OR next_run_at <= ?3)",
                params![id, holder, now, until],
                "job",
            )?;
            if n != 1 {
                return Err(StoreError::Conflict("lease"));
            }
        }
        Op::SaveJob { holder, row: j } => {
            let n = exec(
                conn,
                "UPDATE jobs SET every_ms = ?2, next_run_at = ?3, state = ?4, done = ?5, total = ?6,
                     cursor = ?7, started_at = ?8, last_run_at = ?9, last_ok_at = ?10,
                     last_error = ?11, runs = ?12, lease_holder = ?13, lease_until = ?14
                 WHERE id = ?1 AND lease_holder = ?15",
                params![
                    j.id,
                    j.every_ms,
                    j.next_run_at,
                    j.state.as_str(),
                    j.done as i64,
                    j.total.map(|t| t as i64),
                    j.cursor,
                    j.started_at,
                    j.last_run_at,
                    j.last_ok_at,
                    j.last_error,
                    j.runs as i64,
                    j.lease_holder,
                    j.lease_until,
                    holder
                ],
                "job",
            )?;
            if n != 1 {
                return Err(StoreError::Conflict("lease"));
            }
        }
        Op::PutRegisterEntry(e) => {
            exec(
                conn,
                "INSERT INTO register_entries (register, id, version, tenant, body, recorded_by, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.register,
                    e.id,
                    e.version,
                    e.tenant.as_ref().map(|t| t.as_str()),
                    e.body,
                    e.recorded_by,
                    e.recorded_at
                ],
                "version",
            )?;
        }
        Op::InsertTenant(t) => {
            exec(
                conn,
                "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![t.id.as_str(), t.name, t.created_at],
                "tenant",
            )?;
        }
        Op::InsertTenantKey(k) => {
            exec(
                conn,
                "INSERT INTO tenant_keys (tenant, version, wrapped, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![k.tenant.as_str(), k.version, k.wrapped, k.created_at],
                "tenant key",
            )?;
        }
        Op::InsertApiKey(k) => {
            exec(
                conn,
                "INSERT INTO api_keys (id, tenant, name, hash, roles, created_at, expires_at, last_used_at, rotated_to)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    k.id.as_str(),
                    k.tenant.as_ref().map(|t| t.as_str()),
                    k.name,
                    &k.hash[..],
                    json(&k.roles)?,
                    k.created_at,
                    k.expires_at,
                    k.last_used_at,
                    k.rotated_to.as_ref().map(|r| r.as_str())
                ],
                "api key",
            )?;
        }
        Op::PutCollection {
            row,
            expected_version,
        } => {
            let def = json(&row.def)?;
            if *expected_version == 0 {
                exec(
                    conn,
                    "INSERT INTO collections (tenant, name, version, def, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![row.tenant.as_str(), row.name, row.version as i64, def, row.updated_at],
                    "collection",
                )?;
            } else {
                let n = exec(
                    conn,
                    "UPDATE collections SET version = ?3, def = ?4, updated_at = ?5
                     WHERE tenant = ?1 AND name = ?2 AND version = ?6",
                    params![
                        row.tenant.as_str(),
                        row.name,
                        row.version as i64,
                        def,
                        row.updated_at,
                        *expected_version as i64
                    ],
                    "collection",
                )?;
                if n != 1 {
                    return Err(StoreError::Conflict("version"));
                }
            }
        }
        Op::PutRole {
            row: r,
            expected_version,
        } => {
            let def = json(&r.def)?;
            if *expected_version == 0 {
                exec(
                    conn,
                    "INSERT INTO roles (tenant, name, version, def, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![r.tenant.as_str(), r.name, r.version as i64, def, r.updated_at],
                    "role",
                )?;
            } else {
                let n = exec(
                    conn,
                    "UPDATE roles SET version = ?3, def = ?4, updated_at = ?5
                     WHERE tenant = ?1 AND name = ?2 AND version = ?6",
                    params![
                        r.tenant.as_str(),
                        r.name,
                        r.version as i64,
                        def,
                        r.updated_at,
                        *expected_version as i64
                    ],
                    "role",
                )?;
                if n != 1 {
                    return Err(StoreError::Conflict("version"));
                }
            }
        }
        Op::InsertSubject(s) => {
            exec(
                conn,
                "INSERT INTO subjects (tenant, id, kek_version, wrapped_dek, ref_index, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    s.tenant.as_str(),
                    s.id.as_str(),
                    s.kek_version,
                    s.wrapped_dek,
                    s.ref_index.as_ref().map(|h| &h[..]),
                    s.created_at
                ],
                "data subject",
            )?;
        }
        Op::InsertRecord { row, index } => {
            exec(
                conn,
                "INSERT INTO records (tenant, id, collection, subject, version, state, created_at, updated_at, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8)",
                params![
                    row.tenant.as_str(),
                    row.id.as_str(),
                    row.collection,
                    row.subject.as_str(),
                    row.version as i64,
                    row.created_at,
                    row.updated_at,
                    row.data
                ],
                "record",
            )?;
            for ix in index {
                insert_index(
                    conn,
                    row.tenant.as_str(),
                    &row.collection,
                    &ix.field,
                    &ix.hash,
                    row.id.as_str(),
                )?;
            }
        }
        Op::UpdateRecord { row, reindex } => {
            let prev = row.version as i64 - 1;
            let moved = exec(
                conn,
                "INSERT INTO record_history (tenant, id, version, updated_at, data)
                 SELECT tenant, id, version, updated_at, data FROM records
                 WHERE tenant = ?1 AND id = ?2 AND version = ?3 AND state = 0",
                params![row.tenant.as_str(), row.id.as_str(), prev],
                "record version",
            )?;
            if moved != 1 {
                return Err(StoreError::Conflict("version"));
            }
            exec(
                conn,
                "UPDATE records SET version = ?3, updated_at = ?4, data = ?5 WHERE tenant = ?1 AND id = ?2",
                params![row.tenant.as_str(), row.id.as_str(), row.version as i64, row.updated_at, row.data],
                "record",
            )?;
            for (field, hash) in reindex {
                exec(
                    conn,
                    "DELETE FROM blind_index INDEXED BY blind_index_record WHERE tenant = ?1 AND record = ?4 AND collection = ?2 AND field = ?3",
                    params![row.tenant.as_str(), row.collection, field, row.id.as_str()],
                    "index",
                )?;
                if let Some(h) = hash {
                    insert_index(
                        conn,
                        row.tenant.as_str(),
                        &row.collection,
                        field,
                        h,
                        row.id.as_str(),
                    )?;
                }
            }
        }
        Op::InsertUser(u) => {
            exec(
                conn,
                "INSERT INTO users (id, tenant, username, username_key, password_hash, password_changed_at,
                    password_history, roles, disabled, failed_count, lock_level, locked_until, totp_secret,
                    totp_pending, totp_last_step, recovery_codes, created_at, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                params![
                    u.id.as_str(),
                    u.tenant.as_ref().map(|t| t.as_str()),
                    u.username,
                    u.username_key,
                    u.password_hash,
                    u.password_changed_at,
                    json(&u.password_history)?,
                    json(&u.roles)?,
                    u.disabled,
                    u.failed_count,
                    u.lock_level,
                    u.locked_until,
                    u.totp_secret,
                    u.totp_pending,
                    u.totp_last_step,
                    codes_json(&u.recovery_codes)?,
                    u.created_at,
                    u.version as i64
                ],
                "user",
            )?;
        }
        Op::UpdateUser(u) => {
            // Failure counters, locks and the TOTP step move only through their own atomic ops.
            let n = exec(
                conn,
                "UPDATE users SET username = ?2, username_key = ?3, password_hash = ?4, password_changed_at = ?5,
                    password_history = ?6, roles = ?7, disabled = ?8, totp_secret = ?9, totp_pending = ?10,
                    recovery_codes = ?11, version = ?12
                 WHERE id = ?1 AND version = ?13",
                params![
                    u.id.as_str(),
                    u.username,
                    u.username_key,
                    u.password_hash,
                    u.password_changed_at,
                    json(&u.password_history)?,
                    json(&u.roles)?,
                    u.disabled,
                    u.totp_secret,
                    u.totp_pending,
                    codes_json(&u.recovery_codes)?,
                    u.version as i64,
                    u.version as i64 - 1
                ],
                "user",
            )?;
            if n != 1 {
                return Err(StoreError::Conflict("version"));
            }
        }
        Op::AdmitLoginAttempt {
            user,
            at,
            threshold,
        } => {
            let n = exec(
                conn,
                "UPDATE users SET failed_count = failed_count + 1
                 WHERE id = ?1 AND failed_count < ?3 AND (locked_until IS NULL OR locked_until <= ?2)",
                params![user.as_str(), at, threshold],
                "user",
            )?;
            if n == 0 {
                return Err(StoreError::Conflict("locked"));
            }
        }
        Op::ReleaseLoginAttempt { user } => {
            exec(
                conn,
                "UPDATE users SET failed_count = max(failed_count - 1, 0) WHERE id = ?1",
                params![user.as_str()],
                "user",
            )?;
        }
        Op::LockIfDue {
            user,
            at,
            threshold,
            base_delay_ms,
            max_delay_ms,
        } => {
            let n = exec(
                conn,
                "UPDATE users SET
                    locked_until = ?2 + min(?4 << min(lock_level, 20), ?5),
                    lock_level = lock_level + 1,
                    failed_count = 0
                 WHERE id = ?1 AND failed_count >= ?3",
                params![user.as_str(), at, threshold, base_delay_ms, max_delay_ms],
                "user",
            )?;
            if n == 0 {
                return Err(StoreError::Conflict("not_due"));
            }
        }
        Op::ResetLockout { user } => {
            exec(
                conn,
                "UPDATE users SET failed_count = 0, lock_level = 0, locked_until = NULL WHERE id = ?1",
                params![user.as_str()],
                "user",
            )?;
        }
        Op::UseTotpStep { user, step } => {
            let n = exec(
                conn,
                "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2",
                params![user.as_str(), step],
                "user",
            )?;
            if n != 1 {
                return Err(StoreError::Conflict("totp step"));
            }
        }
        Op::InsertSession(x) => {
            exec(
                conn,
                "INSERT INTO sessions (id, token_hash, tenant, user_id, created_at, last_seen_at, expires_at,
                    idle_timeout_ms, revoked_at, restricted_to)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    x.id.as_str(),
                    &x.token_hash[..],
                    x.tenant.as_ref().map(|t| t.as_str()),
                    x.user.as_str(),
                    x.created_at,
                    x.last_seen_at,
                    x.expires_at,
                    x.idle_timeout_ms,
                    x.revoked_at,
                    x.restricted_to
                ],
                "session",
            )?;
        }
        Op::TouchSession { id, at } => {
            exec(
                conn,
                "UPDATE sessions SET last_seen_at = max(last_seen_at, ?2) WHERE id = ?1",
                params![id.as_str(), at],
                "session",
            )?;
        }
        Op::RevokeSession { id, at } => {
            exec(
                conn,
                "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id.as_str(), at],
                "session",
            )?;
        }
        Op::RevokeUserSessions { user, at } => {
            exec(
                conn,
                "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
                params![user.as_str(), at],
                "session",
            )?;
        }
        Op::PutSettings { scope, settings } => {
            exec(
                conn,
                "INSERT OR REPLACE INTO settings (scope, body) VALUES (?1, ?2)",
                params![scope, json(settings)?],
                "settings",
            )?;
        }
        Op::TouchApiKey { id, at } => {
            exec(
                conn,
                "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
                params![id.as_str(), at],
                "api key",
            )?;
        }
        Op::RotateApiKey {
            id,
            expires_at,
            rotated_to,
        } => {
            let n = exec(
                conn,
                "UPDATE api_keys SET expires_at = min(expires_at, ?2), rotated_to = ?3
                 WHERE id = ?1 AND rotated_to IS NULL",
                params![id.as_str(), expires_at, rotated_to.as_str()],
                "api key",
            )?;
            if n != 1 {
                return Err(StoreError::Conflict("version"));
            }
        }
        Op::InsertCheckpoint(c) => {
            exec(
                conn,
                "INSERT INTO audit_checkpoints (log, seq, size, root, time, prev, signature, format, origin)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    c.log,
                    c.seq as i64,
                    c.size as i64,
                    &c.root[..],
                    c.time,
                    &c.prev[..],
                    &c.signature[..],
                    c.format,
                    c.origin
                ],
                "checkpoint",
            )?;
        }
        Op::RestoreRecord {
            tenant,
            id,
            expected_version,
        } => {
            let n = exec(
                conn,
                "UPDATE records SET state = 0, blocked_at = NULL
                 WHERE tenant = ?1 AND id = ?2 AND version = ?3 AND state = 1",
                params![tenant.as_str(), id.as_str(), *expected_version as i64],
                "record",
            )?;
            if n != 1 {
                return Err(StoreError::Conflict("version"));
            }
        }
        Op::PurgeRecords { tenant, ids } => {
            for id in ids {
                let n = exec(
                    conn,
                    "DELETE FROM records WHERE tenant = ?1 AND id = ?2 AND state = 1",
                    params![tenant.as_str(), id.as_str()],
                    "record",
                )?;
                if n != 1 {
                    return Err(StoreError::Conflict("state"));
                }
                exec(
                    conn,
                    "DELETE FROM record_history WHERE tenant = ?1 AND id = ?2",
                    params![tenant.as_str(), id.as_str()],
                    "record",
                )?;
                exec(
                    conn,
                    "DELETE FROM blind_index INDEXED BY blind_index_record WHERE tenant = ?1 AND record = ?2",
                    params![tenant.as_str(), id.as_str()],
                    "record",
                )?;
            }
        }
        Op::PruneHistory { tenant, id, below } => {
            exec(
                conn,
                "DELETE FROM record_history WHERE tenant = ?1 AND id = ?2 AND version < ?3",
                params![
                    tenant.as_str(),
                    id.as_str(),
                    i64::try_from(*below).unwrap_or(i64::MAX)
                ],
                "record",
            )?;
        }
        Op::DestroySubject { tenant, subject } => {
            let n = exec(
                conn,
                "DELETE FROM subjects WHERE tenant = ?1 AND id = ?2
                 AND NOT EXISTS (SELECT 1 FROM records WHERE tenant = ?1 AND subject = ?2)",
                params![tenant.as_str(), subject.as_str()],
                "subject",
            )?;
            if n != 1 {
                return Err(StoreError::Conflict("subject"));
            }
            for sql in [
                "DELETE FROM consents WHERE tenant = ?1 AND subject = ?2",
                "DELETE FROM exports WHERE tenant = ?1 AND subject = ?2",
            ] {
                exec(
                    conn,
                    sql,
                    params![tenant.as_str(), subject.as_str()],
                    "subject",
                )?;
            }
        }
        Op::PutExport(e) => {
            let n = exec(
                conn,
                "INSERT INTO exports (tenant, id, subject, created_at, expires_at, downloads_left, data)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                 WHERE EXISTS (SELECT 1 FROM subjects WHERE tenant = ?1 AND id = ?3)",
                params![
                    e.tenant.as_str(),
                    e.id.as_str(),
                    e.subject.as_str(),
                    e.created_at,
                    e.expires_at,
                    e.downloads_left,
                    e.data
                ],
                "export",
            )?;
            if n != 1 {
                return Err(StoreError::Conflict("subject"));
            }
        }
        Op::TakeExport { tenant, id, now } => {
            let n = exec(
                conn,
                "DELETE FROM exports WHERE tenant = ?1 AND id = ?2 AND expires_at > ?3
                 AND downloads_left = 1",
                params![tenant.as_str(), id.as_str(), now],
                "export",
            )? + exec(
                conn,
                "UPDATE exports SET downloads_left = downloads_left - 1
                 WHERE tenant = ?1 AND id = ?2 AND expires_at > ?3 AND downloads_left > 1",
                params![tenant.as_str(), id.as_str(), now],
                "export",
            )?;
            if n != 1 {
                return Err(StoreError::Conflict("export"));
            }
        }
        Op::DeleteExport { tenant, id } => {
            exec(
                conn,
                "DELETE FROM exports WHERE tenant = ?1 AND id = ?2",
                params![tenant.as_str(), id.as_str()],
                "export",
            )?;
        }
        Op::PutTenantArchive(a) => {
            exec(
                conn,
                "INSERT INTO tenant_archives (tenant, token_hash, created_at, expires_at, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    a.tenant.as_str(),
                    &a.token_hash[..],
                    a.created_at,
                    a.expires_at,
                    a.data
                ],
                "archive",
            )?;
        }
        Op::TakeTenantArchive {
            tenant,
            token_hash,
            now,
        } => {
            let n = exec(
                conn,
                "DELETE FROM tenant_archives WHERE tenant = ?1 AND token_hash = ?2 AND expires_at > ?3",
                params![tenant.as_str(), &token_hash[..], now],
                "archive",
            )?;
            if n != 1 {
                return Err(StoreError::Conflict("archive"));
            }
        }
        Op::DeleteAuditLog { log } => {
            for sql in [
                "DELETE FROM audit_nodes WHERE log = ?1",
                "DELETE FROM audit_subjects WHERE log = ?1",
                "DELETE FROM audit_checkpoints WHERE log = ?1",
                "DELETE FROM audit WHERE log = ?1",
                "DELETE FROM audit_heads WHERE log = ?1",
            ] {
                exec(conn, sql, params![log], "audit")?;
            }
        }
        Op::DeleteTenantArchive { tenant } => {
            exec(
                conn,
                "DELETE FROM tenant_archives WHERE tenant = ?1",
                params![tenant.as_str()],
                "archive",
            )?;
        }
        Op::ShredTenant { tenant, counts } => {
            let t = tenant.as_str();
            let now = crate::read::count_tenant(conn, tenant)?;
            if now != *counts {
                return Err(StoreError::Conflict("state"));
            }
            // Children before the rows they reference.
            for sql in [
                "DELETE FROM sessions WHERE tenant = ?1",
                "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE tenant = ?1)",
                "DELETE FROM users WHERE tenant = ?1",
                "DELETE FROM api_keys WHERE tenant = ?1",
                "DELETE FROM blind_index WHERE tenant = ?1",
                "DELETE FROM record_history WHERE tenant = ?1",
                "DELETE FROM records WHERE tenant = ?1",
                "DELETE FROM consents WHERE tenant = ?1",
                "DELETE FROM exports WHERE tenant = ?1",
                "DELETE FROM subjects WHERE tenant = ?1",
                "DELETE FROM tenant_keys WHERE tenant = ?1",
                "DELETE FROM collections WHERE tenant = ?1",
                "DELETE FROM roles WHERE tenant = ?1",
                "DELETE FROM settings WHERE scope = ?1",
                "DELETE FROM jobs WHERE tenant = ?1",
                "DELETE FROM register_entries WHERE tenant = ?1",
                "DELETE FROM declarations WHERE tenant = ?1",
            ] {
                exec(conn, sql, params![t], "tenant")?;
            }
            if exec(
                conn,
                "DELETE FROM tenants WHERE id = ?1",
                params![t],
                "tenant",
            )? != 1
            {
                return Err(StoreError::Conflict("tenant"));
            }
        }
        Op::RecordConsent(c) => {
            let (t, sub) = (c.tenant.as_str(), c.subject.as_str());
            // Numbered the next in its sequence (one writer: no race), for a subject that
            // exists: else nothing is written.
            let n = exec(
                conn,
                "INSERT INTO consents (tenant, subject, purpose, seq, state, at, source, text_hash, recorded_by)
                 SELECT ?1, ?2, ?3,
                        (SELECT coalesce(max(seq), 0) + 1 FROM consents
                         WHERE tenant = ?1 AND subject = ?2 AND purpose = ?3),
                        ?4, ?5, ?6, ?7, ?8
                 WHERE EXISTS (SELECT 1 FROM subjects WHERE tenant = ?1 AND id = ?2)",
                params![
                    t,
                    sub,
                    c.purpose,
                    c.state as i64,
                    c.at,
                    c.source,
                    c.text_hash.as_ref().map(|h| &h[..]),
                    c.recorded_by
                ],
                "consent",
            )?;
            if n != 1 {
                return Err(StoreError::Conflict("subject"));
            }
            if c.state == strongroom_core::store::ConsentState::Objected {
                exec(
                    conn,
                    "UPDATE subjects SET flags = flags | ?3 WHERE tenant = ?1 AND id = ?2",
                    params![t, sub, strongroom_core::store::SUBJECT_OBJECTED],
                    "subject",
                )?;
            }
        }
        Op::SetSubjectFlag {
            tenant,
            subject,
            flag,
            on,
        } => {
            let n = exec(
                conn,
                "UPDATE subjects SET flags = CASE WHEN ?3 THEN flags | ?4 ELSE flags & ~?4 END
                 WHERE tenant = ?1 AND id = ?2",
                params![tenant.as_str(), subject.as_str(), on, flag],
                "subject",
            )?;
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
            let n: i64 = conn
                .prepare_cached("SELECT count(*) FROM records WHERE tenant = ?1 AND subject = ?2")
                .and_then(|mut st| st.query_row(params![t, sub], |r| r.get(0)))
                .map_err(|e| map_err(e, "record"))?;
            if u64::try_from(n).ok() != Some(*records) {
                return Err(StoreError::Conflict("state"));
            }
            // Index entries and history first: they are found through the records.
            for sql in [
                "DELETE FROM blind_index INDEXED BY blind_index_record WHERE tenant = ?1
                 AND record IN (SELECT id FROM records WHERE tenant = ?1 AND subject = ?2)",
                "DELETE FROM record_history WHERE tenant = ?1
                 AND id IN (SELECT id FROM records WHERE tenant = ?1 AND subject = ?2)",
                "DELETE FROM records WHERE tenant = ?1 AND subject = ?2",
                "DELETE FROM consents WHERE tenant = ?1 AND subject = ?2",
                "DELETE FROM exports WHERE tenant = ?1 AND subject = ?2",
            ] {
                exec(conn, sql, params![t, sub], "record")?;
            }
            if exec(
                conn,
                "DELETE FROM subjects WHERE tenant = ?1 AND id = ?2",
                params![t, sub],
                "subject",
            )? != 1
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
                conn,
                "UPDATE records SET state = 1, blocked_at = ?4
                 WHERE tenant = ?1 AND id = ?2 AND version = ?3 AND state = 0",
                params![tenant.as_str(), id.as_str(), *expected_version as i64, at],
                "record",
            )?;
            if n != 1 {
                return Err(StoreError::Conflict("version"));
            }
        }
    }
    Ok(())
}

fn codes_json(codes: &[[u8; 32]]) -> StoreResult<String> {
    json(
        &codes
            .iter()
            .map(|c| strongroom_crypto::hex(c))
            .collect::<Vec<_>>(),
    )
}

fn insert_index(
    conn: &Connection,
    tenant: &str,
    collection: &str,
    field: &str,
    hash: &[u8; 32],
    record: &str,
) -> StoreResult<()> {
    exec(
        conn,
        "INSERT INTO blind_index (tenant, collection, field, hash, record) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![tenant, collection, field, &hash[..], record],
        "index entry",
    )?;
    Ok(())
}

/// Writes a sealed entry with the rows derived from it: the subjects it names among its
/// objects, and the tree nodes it completes at stored levels.
pub(crate) fn insert_sealed(conn: &Connection, log: &str, sealed: &Sealed) -> StoreResult<()> {
    let failed =
        |e: rusqlite::Error| StoreError::Unavailable(format!("audit entry not written: {e}"));
    let seq = sealed.entry.seq as i64;
    conn.prepare_cached("INSERT INTO audit (log, seq, body, hash) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut s| s.execute(params![log, seq, sealed.body, &sealed.hash[..]]))
        .map_err(failed)?;
    for subject in sealed.entry.other_subjects() {
        conn.prepare_cached("INSERT INTO audit_subjects (log, subject, seq) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![log, subject, seq]))
            .map_err(failed)?;
    }
    for (level, index, hash) in &sealed.nodes {
        conn.prepare_cached(
            "INSERT INTO audit_nodes (log, level, idx, hash) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![log, level, *index as i64, &hash[..]]))
        .map_err(failed)?;
    }
    Ok(())
}
