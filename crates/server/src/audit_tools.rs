//! Offline audit tools behind `strongroom audit ...`: verify a store or an exported bundle, and
//! export a bundle. A bundle is a directory holding `entries.jsonl` (every entry's stored body,
//! one per line, by log and sequence), `checkpoints.jsonl` and `public-key.txt`; it can be
//! verified with nothing else.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use strongroom_core::checkpoint::CheckpointRow;
use strongroom_core::verify::{Failure, LogVerifier, Summary, Target};
use strongroom_core::Store;
use strongroom_crypto::{hex, unhex};
use strongroom_proto::{AuditEntry, Checkpoint};

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

/// Verifies every log of a store.
#[allow(clippy::disallowed_methods)] // throughput figure for the operator
pub async fn verify_store(store: &dyn Store, public_key: &[u8; 32]) -> Result<Report, VerifyError> {
    let started = Instant::now();
    let mut logs = Vec::new();
    let mut total = 0u64;
    for log in store.find_audit_logs().await.map_err(unreadable)? {
        let checkpoints = store.find_checkpoints(&log).await.map_err(unreadable)?;
        let mut v = LogVerifier::new(&log, checkpoints, public_key).map_err(VerifyError::Failed)?;
        // The next page is read (on the store's reader) while this one is checked, so that
        // reading and hashing use two cores.
        let mut page = store
            .find_audit_raw(&log, 0, PAGE)
            .await
            .map_err(unreadable)?;
        while let Some(last) = page.last().map(|p| p.0) {
            let check = async {
                for (seq, body, hash) in &page {
                    v.push(*seq, body, Some(hash))?;
                }
                Ok(())
            };
            let (next, checked) = tokio::join!(store.find_audit_raw(&log, last, PAGE), check);
            checked.map_err(VerifyError::Failed)?;
            page = next.map_err(unreadable)?;
        }
        let head = store
            .find_audit_head(&log)
            .await
            .map_err(unreadable)?
            .map(|h| (h.size, h.last_hash));
        let summary = v.finish(head).map_err(VerifyError::Failed)?;
        total += summary.entries;
        logs.push(summary);
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    Ok(Report {
        logs,
        entries_per_second: total as f64 / secs,
    })
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
    std::fs::write(dir.join("public-key.txt"), format!("{}\n", hex(&key))).map_err(unreadable)?;
    let mut entries =
        BufWriter::new(std::fs::File::create(dir.join("entries.jsonl")).map_err(unreadable)?);
    let mut checkpoints =
        BufWriter::new(std::fs::File::create(dir.join("checkpoints.jsonl")).map_err(unreadable)?);
    let mut count = 0;
    for log in store.find_audit_logs().await.map_err(unreadable)? {
        for c in store.find_checkpoints(&log).await.map_err(unreadable)? {
            let line = serde_json::to_string(&c.to_proto()).map_err(unreadable)?;
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
pub fn verify_bundle(dir: &Path, public_key: &[u8; 32]) -> Result<Report, VerifyError> {
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
        let entry: AuditEntry = serde_json::from_str(&line).map_err(|_| {
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
            current =
                Some(LogVerifier::new(&entry.log, cps, public_key).map_err(VerifyError::Failed)?);
        }
        if let Some(v) = current.as_mut() {
            v.push(entry.seq, &line, None)
                .map_err(VerifyError::Failed)?;
        }
    }
    if let Some(v) = current.take() {
        logs.push(v.finish(None).map_err(VerifyError::Failed)?);
    }
    // Checkpoints of logs with no entry at all mean the entries were removed.
    for (log, cps) in checkpoints {
        let v = LogVerifier::new(&log, cps, public_key).map_err(VerifyError::Failed)?;
        logs.push(v.finish(None).map_err(VerifyError::Failed)?);
    }
    let total: u64 = logs.iter().map(|l| l.entries).sum();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    Ok(Report {
        logs,
        entries_per_second: total as f64 / secs,
    })
}
