//! Offline audit tools behind `strongroom audit ...`: verify a store or an exported bundle, and
//! export a bundle. A bundle is a directory holding `entries.jsonl` (every entry's stored body,
//! one per line, by log and sequence), `checkpoints.jsonl` and `public-key.txt`; it can be
//! verified with nothing else.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use std::collections::BTreeSet;
use strongroom_core::checkpoint::CheckpointRow;

use strongroom_core::audit::PLATFORM_LOG;
use strongroom_core::rng::RngExt;
use strongroom_core::store::StoreError;
use strongroom_core::verify::{Failure, LogVerifier, SetDigest, Stored, Summary, Target};
use strongroom_core::{OsRng, Store};

use crate::witness::Witnessed;
use strongroom_core::audit::EntryV1;
use strongroom_crypto::{hex, unhex};
use strongroom_proto::Checkpoint;

const PAGE: u32 = 5000;

/// What a verification found.
#[derive(Debug)]
pub struct Report {
    pub logs: Vec<Summary>,
    pub entries_per_second: f64,
}

/// Why verification could not run or did not pass.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Failed(Failure),
    #[error("cannot read: {0}")]
    Unreadable(String),
}

/// Parses a hex Ed25519 public key.
pub fn parse_public_key(s: &str) -> Option<[u8; 32]> {
    unhex(s.trim())?.try_into().ok()
}

/// The public key recorded in the store (verifiers should prefer one they hold independently).
pub async fn stored_public_key(store: &dyn Store) -> Result<[u8; 32], VerifyError> {
    let hex_key = store
        .get_meta("audit_public_key")
        .await
        .map_err(|e| VerifyError::Unreadable(e.to_string()))?
        .ok_or_else(|| VerifyError::Unreadable("the store has no audit public key".into()))?;
    parse_public_key(&hex_key)
        .ok_or_else(|| VerifyError::Unreadable("the stored public key is malformed".into()))
}

fn unreadable(e: impl std::fmt::Display) -> VerifyError {
    VerifyError::Unreadable(e.to_string())
}

fn failed(log: &str, target: Target, reason: impl Into<String>) -> VerifyError {
    VerifyError::Failed(Failure {
        log: log.to_owned(),
        target,
        reason: reason.into(),
    })
}

/// A store error met while verifying: a row that cannot even be decoded was tampered with
/// (the store's own types rule out anything its writer produced), anything else is unreadable.
fn store_error(log: &str, e: StoreError) -> VerifyError {
    match e {
        StoreError::Corrupt(what) => failed(
            log,
            Target::Entry(0),
            format!("modified: a stored row cannot be decoded ({what})"),
        ),
        other => unreadable(other),
    }
}

/// Every log that must exist: the platform log once any tenant exists, and one log for each
/// tenant that the tenants table holds or the platform log says was created.
fn check_logs_exist(
    logs: &[Summary],
    tenants: impl IntoIterator<Item = String>,
) -> Result<(), VerifyError> {
    let present: BTreeSet<&str> = logs
        .iter()
        .filter(|l| l.entries > 0)
        .map(|l| l.log.as_str())
        .collect();
    let mut required: BTreeSet<String> = tenants.into_iter().collect();
    required.extend(logs.iter().flat_map(|l| l.tenants_created.iter().cloned()));
    for l in logs {
        for gone in &l.logs_deleted {
            required.remove(gone);
        }
    }
    if !required.is_empty() && !present.contains(PLATFORM_LOG) {
        return Err(failed(
            PLATFORM_LOG,
            Target::Entry(1),
            "missing: tenants exist but the platform log that records their creation is gone",
        ));
    }
    for log in &required {
        if !present.contains(log.as_str()) {
            return Err(failed(
                log,
                Target::Entry(1),
                "missing: the tenant exists (or its creation is recorded) but its log is gone",
            ));
        }
    }
    Ok(())
}

/// Verifies every log of the vault's store with its own public key and records the result as
/// evidence (IN-02). Returns the report or why it failed.
pub async fn verify_and_record(vault: &strongroom_core::Vault) -> Result<Report, VerifyError> {
    let key = vault
        .public_key()
        .map_err(|e| VerifyError::Unreadable(e.to_string()))?;
    let result = verify_store(vault.store().as_ref(), &key, None).await;
    let (ok, entries, logs, counts) = match &result {
        Ok(r) => (
            true,
            r.logs.iter().map(|l| l.entries).sum(),
            r.logs.len() as u64,
            r.logs
                .iter()
                .map(|l| (l.log.clone(), (l.denied, l.lockouts, l.consent_refusals)))
                .collect(),
        ),
        Err(VerifyError::Failed(_)) => (false, 0, 0, Default::default()),
        // Not a verdict on the log: nothing is recorded.
        Err(_) => return result,
    };
    if let Err(e) = vault
        .record_audit_verification(ok, entries, logs, &counts)
        .await
    {
        tracing::error!(error = %e, "could not record the audit verification");
    }
    result
}

/// Verifies every log of a store: entries, checkpoints, heads, the derived subject index and
/// tree nodes, the definition of the audit tables, one log per tenant, and (with a witness)
/// that no log is shorter than or forks from a checkpoint the witness holds.
#[allow(clippy::disallowed_methods)] // throughput figure for the operator
pub async fn verify_store(
    store: &dyn Store,
    public_key: &[u8; 32],
    witness: Option<&Witnessed>,
) -> Result<Report, VerifyError> {
    let started = Instant::now();
    if let Some(problem) = store
        .check_audit_schema()
        .await
        .map_err(unreadable)?
        .into_iter()
        .next()
    {
        return Err(failed(
            "*",
            Target::Entry(0),
            format!("the audit tables were altered: {problem}"),
        ));
    }
    let digest_key = *OsRng.key().expose();
    let mut logs = Vec::new();
    let mut total = 0u64;
    let mut names: BTreeSet<String> = store
        .find_audit_logs()
        .await
        .map_err(unreadable)?
        .into_iter()
        .collect();
    if let Some(w) = witness {
        names.extend(w.logs().map(str::to_owned));
    }
    // The platform log first (the set sorts it before tenants' ids): it records which logs were
    // deleted at the end of their retention, whose absence is then expected.
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    for log in names {
        if deleted.contains(&log)
            && store
                .find_audit_head(&log)
                .await
                .map_err(unreadable)?
                .is_none()
            && store
                .find_audit_tail(&log)
                .await
                .map_err(unreadable)?
                .is_none()
        {
            continue;
        }
        let summary = verify_store_log(store, &log, public_key, witness, digest_key).await?;
        total += summary.entries;
        deleted.extend(summary.logs_deleted.iter().cloned());
        logs.push(summary);
    }
    let tenants = store.find_tenant_ids().await.map_err(unreadable)?;
    check_logs_exist(&logs, tenants.iter().map(ToString::to_string))?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    Ok(Report {
        logs,
        entries_per_second: total as f64 / secs,
    })
}

/// Verifies one log of a store as [`verify_store`] does (without the checks across logs).
pub async fn verify_log(
    store: &dyn Store,
    log: &str,
    public_key: &[u8; 32],
) -> Result<Summary, VerifyError> {
    verify_store_log(store, log, public_key, None, *OsRng.key().expose()).await
}

async fn verify_store_log(
    store: &dyn Store,
    log: &str,
    public_key: &[u8; 32],
    witness: Option<&Witnessed>,
    digest_key: [u8; 32],
) -> Result<Summary, VerifyError> {
    let checkpoints = store
        .find_checkpoints(log)
        .await
        .map_err(|e| store_error(log, e))?;
    // The log may grow while it is verified (a serving vault appends all the time, on several
    // nodes): the head read now fixes what this pass checks — the writer commits entries, head,
    // subject rows and nodes in one transaction, so everything up to it is there. What lies
    // beyond is checked at the end against a head read after it.
    let head = store
        .find_audit_head(log)
        .await
        .map_err(|e| store_error(log, e))?;
    let size = head.as_ref().map_or(0, |h| h.size);
    let witnessed = witness.map(|w| w.of(log)).unwrap_or_default();
    let mut v = LogVerifier::new(log, checkpoints, witnessed, public_key, digest_key)
        .map_err(VerifyError::Failed)?;
    // The highest entry sequence number any row beyond `size` names.
    let mut beyond = 0u64;
    // The next page is read (on the store's reader) while this one is checked, so that
    // reading and hashing use two cores.
    let mut page = store
        .find_audit_raw(log, 0, PAGE)
        .await
        .map_err(|e| store_error(log, e))?;
    while let Some(last) = page.last().map(|p| p.0) {
        let check = async {
            for (seq, body, hash) in page.iter().filter(|p| p.0 <= size) {
                v.push(*seq, body, Some(hash))?;
            }
            Ok(())
        };
        beyond = beyond.max(if last > size { last } else { 0 });
        let next = async {
            if last >= size {
                // Rows past the head: only the highest matters.
                Ok(Vec::new())
            } else {
                store.find_audit_raw(log, last, PAGE).await
            }
        };
        let (next, checked) = tokio::join!(next, check);
        checked.map_err(VerifyError::Failed)?;
        page = next.map_err(|e| store_error(log, e))?;
    }
    if let Some((seq, _)) = store
        .find_audit_tail(log)
        .await
        .map_err(|e| store_error(log, e))?
    {
        beyond = beyond.max(if seq > size { seq } else { 0 });
    }
    let mut subjects = SetDigest::new(digest_key);
    let mut after = None;
    loop {
        let rows = store
            .find_audit_subject_rows(log, after.clone(), PAGE)
            .await
            .map_err(|e| store_error(log, e))?;
        let Some(last) = rows.last().cloned() else {
            break;
        };
        for (subject, seq) in &rows {
            if *seq <= size {
                subjects.subject_row(subject, *seq);
            } else {
                beyond = beyond.max(*seq);
            }
        }
        after = Some(last);
    }
    let mut nodes = SetDigest::new(digest_key);
    let mut after = None;
    loop {
        let rows = store
            .find_audit_nodes(log, after, PAGE)
            .await
            .map_err(|e| store_error(log, e))?;
        let Some(&(level, index, _)) = rows.last() else {
            break;
        };
        for (level, index, hash) in &rows {
            // A stored node covers leaves index·2^level + 1 ..= (index+1)·2^level.
            let end = u128::from(*index + 1) << (*level).min(64);
            if end <= u128::from(size) {
                nodes.node_row(*level, *index, hash);
            } else {
                beyond = beyond.max(u64::try_from(end).unwrap_or(u64::MAX));
            }
        }
        after = Some((level, index));
    }
    if beyond > 0 {
        // Rows past the head read first are legitimate only if a later head covers them.
        let now = store
            .find_audit_head(log)
            .await
            .map_err(|e| store_error(log, e))?
            .map_or(0, |h| h.size);
        if beyond > now {
            return Err(failed(
                log,
                Target::Entry(now + 1),
                format!("inserted: rows name entry {beyond} but the vault wrote only {now} entries to this log"),
            ));
        }
    }
    v.finish(Some(Stored {
        head,
        subjects,
        nodes,
    }))
    .map_err(VerifyError::Failed)
}

/// Writes a bundle of every log to `dir` (created; must not hold a bundle already).
pub async fn export(store: &dyn Store, dir: &Path) -> Result<u64, VerifyError> {
    std::fs::create_dir_all(dir).map_err(unreadable)?;
    if dir.join("entries.jsonl").exists() {
        return Err(VerifyError::Unreadable(format!(
            "{} already holds a bundle",
            dir.display()
        )));
    }
    let key = stored_public_key(store).await?;
    let create = |name: &str| {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(name))
            .map_err(unreadable)
    };
    create("public-key.txt")?
        .write_all(format!("{}\n", hex(&key)).as_bytes())
        .map_err(unreadable)?;
    let mut entries = BufWriter::new(create("entries.jsonl")?);
    let mut checkpoints = BufWriter::new(create("checkpoints.jsonl")?);
    let mut count = 0;
    for log in store.find_audit_logs().await.map_err(unreadable)? {
        for c in store.find_checkpoints(&log).await.map_err(unreadable)? {
            let line = serde_json::to_string(&c.to_proto(&key)).map_err(unreadable)?;
            writeln!(checkpoints, "{line}").map_err(unreadable)?;
        }
        let mut after = 0;
        loop {
            let page = store
                .find_audit_raw(&log, after, PAGE)
                .await
                .map_err(unreadable)?;
            let Some(last) = page.last().map(|p| p.0) else {
                break;
            };
            for (_, body, _) in &page {
                writeln!(entries, "{body}").map_err(unreadable)?;
                count += 1;
            }
            after = last;
        }
    }
    entries.flush().map_err(unreadable)?;
    checkpoints.flush().map_err(unreadable)?;
    Ok(count)
}

/// The public key a bundle carries.
pub fn bundle_public_key(dir: &Path) -> Result<[u8; 32], VerifyError> {
    let text = std::fs::read_to_string(dir.join("public-key.txt")).map_err(unreadable)?;
    parse_public_key(&text)
        .ok_or_else(|| VerifyError::Unreadable("public-key.txt is not a hex Ed25519 key".into()))
}

/// Verifies a bundle with nothing but its files and the public key.
#[allow(clippy::disallowed_methods)] // throughput figure for the operator
pub fn verify_bundle(
    dir: &Path,
    public_key: &[u8; 32],
    witness: Option<&Witnessed>,
) -> Result<Report, VerifyError> {
    let digest_key = *OsRng.key().expose();
    let started = Instant::now();
    let mut checkpoints: BTreeMap<String, Vec<CheckpointRow>> = BTreeMap::new();
    let file = std::fs::File::open(dir.join("checkpoints.jsonl")).map_err(unreadable)?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(unreadable)?;
        let c: Checkpoint = serde_json::from_str(&line).map_err(|_| {
            VerifyError::Unreadable(format!(
                "checkpoints.jsonl line {} is not a checkpoint",
                i + 1
            ))
        })?;
        let row = CheckpointRow::from_proto(&c).ok_or_else(|| {
            VerifyError::Unreadable(format!("checkpoints.jsonl line {} is malformed", i + 1))
        })?;
        checkpoints.entry(row.log.clone()).or_default().push(row);
    }
    let mut logs = Vec::new();
    let mut current: Option<LogVerifier> = None;
    let mut seen = std::collections::BTreeSet::new();
    let file = std::fs::File::open(dir.join("entries.jsonl")).map_err(unreadable)?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(unreadable)?;
        // Only the log and position are read here; the verifier checks the body itself.
        let entry: EntryV1 = serde_json::from_str(&line).map_err(|_| {
            VerifyError::Failed(Failure {
                log: "?".into(),
                target: Target::Entry(0),
                reason: format!(
                    "entries.jsonl line {} is not an audit entry (modified)",
                    i + 1
                ),
            })
        })?;
        let switch = current.as_ref().is_none_or(|v| v.log() != entry.log);
        if switch {
            if let Some(v) = current.take() {
                logs.push(v.finish(None).map_err(VerifyError::Failed)?);
            }
            if !seen.insert(entry.log.clone()) {
                return Err(VerifyError::Failed(Failure {
                    log: entry.log.clone(),
                    target: Target::Entry(entry.seq),
                    reason: "out of place: the log's entries are not contiguous in the bundle"
                        .into(),
                }));
            }
            let cps = checkpoints.remove(&entry.log).unwrap_or_default();
            let witnessed = witness.map(|w| w.of(&entry.log)).unwrap_or_default();
            current = Some(
                LogVerifier::new(&entry.log, cps, witnessed, public_key, digest_key)
                    .map_err(VerifyError::Failed)?,
            );
        }
        if let Some(v) = current.as_mut() {
            v.push(entry.seq, &line, None)
                .map_err(VerifyError::Failed)?;
        }
    }
    if let Some(v) = current.take() {
        logs.push(v.finish(None).map_err(VerifyError::Failed)?);
    }
    // Checkpoints (or witnessed checkpoints) of logs with no entry at all mean the entries
    // were removed.
    let mut rest: BTreeSet<String> = checkpoints.keys().cloned().collect();
    if let Some(w) = witness {
        rest.extend(w.logs().map(str::to_owned));
    }
    for log in rest {
        if seen.contains(&log) {
            continue;
        }
        let cps = checkpoints.remove(&log).unwrap_or_default();
        let witnessed = witness.map(|w| w.of(&log)).unwrap_or_default();
        let v = LogVerifier::new(&log, cps, witnessed, public_key, digest_key)
            .map_err(VerifyError::Failed)?;
        logs.push(v.finish(None).map_err(VerifyError::Failed)?);
    }
    check_logs_exist(&logs, [])?;
    let total: u64 = logs.iter().map(|l| l.entries).sum();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    Ok(Report {
        logs,
        entries_per_second: total as f64 / secs,
    })
}
