//! The start-up check of the audit logs: each log's head, the last entry of its table, its
//! latest checkpoint and (with a witness directory) the checkpoints the witness holds must
//! agree, and every tenant must have its log. A server that finds a disagreement refuses to
//! start — it would otherwise sign over a truncated or rolled-back log and launder it — unless
//! the operator accepts that log's state explicitly, which is audited.
//!
//! Every check reads a head, one entry and O(log n) stored tree hashes per log: no scan.

use std::fmt;

use strongroom_core::audit::PLATFORM_LOG;
use strongroom_core::checkpoint::CheckpointRow;
use strongroom_core::store::StoreResult;
use strongroom_core::{proofs, Store};

use crate::witness::Witnessed;

/// One log whose stored parts disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub log: String,
    /// A stable code, recorded when the mismatch is accepted.
    pub code: &'static str,
    pub detail: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit log {}: {} ({})", self.log, self.detail, self.code)
    }
}

/// Checks every log the store or the witness knows of, and every tenant.
pub async fn check(
    store: &dyn Store,
    public_key: &[u8; 32],
    witness: Option<&Witnessed>,
) -> StoreResult<Vec<Mismatch>> {
    let mut logs: std::collections::BTreeSet<String> =
        store.find_audit_logs().await?.into_iter().collect();
    let tenants = store.find_tenant_ids().await?;
    logs.extend(tenants.iter().map(ToString::to_string));
    if !tenants.is_empty() {
        logs.insert(PLATFORM_LOG.to_owned());
    }
    if let Some(w) = witness {
        logs.extend(w.logs().map(str::to_owned));
    }
    // Logs the platform log records as deleted at the end of their retention: a witness may
    // still hold their checkpoints, and their absence is expected.
    let query = strongroom_core::store::AuditQuery {
        action: Some(strongroom_core::vault::LOG_DELETED.into()),
        outcome: Some("ok".into()),
        limit: 10_000,
        ..Default::default()
    };
    let deleted: std::collections::BTreeSet<String> = store
        .find_audit_entries(PLATFORM_LOG, &query)
        .await?
        .into_iter()
        .flat_map(|e| e.objects)
        .filter_map(|o| o.strip_prefix("log:").map(str::to_owned))
        .collect();
    let mut out = Vec::new();
    for log in logs {
        if deleted.contains(&log)
            && store.find_audit_head(&log).await?.is_none()
            && store.find_audit_tail(&log).await?.is_none()
        {
            continue;
        }
        let witnessed = witness.map(|w| w.of(&log)).unwrap_or_default();
        out.extend(check_log(store, &log, public_key, &witnessed).await?);
    }
    Ok(out)
}

async fn check_log(
    store: &dyn Store,
    log: &str,
    public_key: &[u8; 32],
    witnessed: &[CheckpointRow],
) -> StoreResult<Option<Mismatch>> {
    let m = |code, detail: String| {
        Ok(Some(Mismatch {
            log: log.to_owned(),
            code,
            detail,
        }))
    };
    // Read in the order the writers advance them (checkpoint, head, entries), so that a node
    // writing meanwhile can only make a later read look newer, never older: a checkpoint read
    // first covers at most the head read next, and the head's last entry exists when read.
    let latest = store.find_latest_checkpoint(log).await?;
    let head = store.find_audit_head(log).await?;
    let tail = store.find_audit_tail(log).await?;
    let (size, root) = match (&head, tail) {
        (None, None) => {
            if latest.is_some() || !witnessed.is_empty() {
                return m(
                    "log_removed",
                    "checkpoints exist but the log has no entries and no head".into(),
                );
            }
            return m(
                "log_missing",
                "the tenant exists (or tenants exist) but this log has no entries".into(),
            );
        }
        (None, Some((seq, _))) => {
            return m(
                "head_missing",
                format!("the table holds {seq} entries but the log's head is gone"),
            )
        }
        (Some(h), None) => {
            return m(
                "entries_missing",
                format!(
                    "the head records {} entries but the table holds none",
                    h.size
                ),
            )
        }
        (Some(h), Some((seq, _))) => {
            // The head's last entry must be there, with the head's hash. (Entries after it are
            // another node's writes landing meanwhile, or an insertion `audit verify` names.)
            let last = if h.size == 0 {
                Vec::new()
            } else {
                store.find_audit_hashes(log, 0, h.size - 1, 1).await?
            };
            if h.size > seq || last.first() != Some(&h.last_hash) {
                return m(
                    "head_table_mismatch",
                    format!(
                        "the head records {} entries but the table ends at entry {seq}{}",
                        h.size,
                        if h.size <= seq {
                            ", and the head's last entry is missing or another one"
                        } else {
                            ""
                        }
                    ),
                );
            }
            (h.size, h.compact.root())
        }
    };
    let mut signed: Vec<(&str, &CheckpointRow)> =
        witnessed.iter().map(|w| ("witnessed", w)).collect();
    if let Some(c) = &latest {
        signed.push(("latest", c));
    }
    for (whose, c) in signed {
        if !c.verify_signature(public_key) {
            return m(
                "checkpoint_signature",
                format!(
                    "the {whose} checkpoint {} does not verify with the signing key",
                    c.seq
                ),
            );
        }
        if c.size > size {
            return m(
                "truncated",
                format!(
                    "the {whose} checkpoint {} covers {} entries but the log holds {size} (truncated or rolled back)",
                    c.seq, c.size
                ),
            );
        }
        let expected = if c.size == size {
            root
        } else {
            proofs::root(store, log, c.size).await?
        };
        if expected != c.root {
            return m(
                "forked",
                format!(
                    "entries 1 to {} are not the ones the {whose} checkpoint {} signed",
                    c.size, c.seq
                ),
            );
        }
    }
    if let Some(w) = witnessed.iter().max_by_key(|w| w.seq) {
        let same = store
            .find_checkpoints(log)
            .await?
            .into_iter()
            .find(|c| c.seq == w.seq);
        if same.is_none_or(|c| c.text() != w.text()) {
            return m(
                "checkpoint_rolled_back",
                format!(
                    "the witness holds checkpoint {} but the log's checkpoint {} is missing or different",
                    w.seq, w.seq
                ),
            );
        }
    }
    Ok(None)
}
