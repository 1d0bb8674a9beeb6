//! The audit area of the storage contract: log heads, entries, the stored tree nodes that make
//! proofs O(log n), the index of subjects named by multi-subject entries, and checkpoints.
//! Every store runs the same audit conformance and tamper suites (`strongroom-testkit`).

use async_trait::async_trait;
use strongroom_crypto::merkle::CompactRange;
use strongroom_proto::AuditEntry;

use super::StoreResult;
use crate::audit::{AuditEvent, EntryV1};
use crate::checkpoint::CheckpointRow;

/// Interior tree nodes are stored at the levels that are multiples of this (8, 16, 24, …): one
/// node per 256 entries, so that any node of the tree is the fold of at most 128 stored hashes
/// (leaf hashes are level 0 and live with the entries). These are the hashes of the C2SP
/// `tlog-tiles` layout with tiles of height 8.
pub const NODE_LEVEL_STEP: u32 = 8;

/// Appends a leaf to a compact range and returns the interior nodes it completes at the
/// stored levels: the one rule for which nodes a store keeps, shared by the writers, the
/// migrations that back-fill them and the verifier that checks them.
pub fn append_stored(compact: &mut CompactRange, leaf: [u8; 32]) -> Vec<(u32, u64, [u8; 32])> {
    let mut nodes = Vec::new();
    compact.append_visit(leaf, |level, index, h| {
        if level % NODE_LEVEL_STEP == 0 {
            nodes.push((level, index, *h));
        }
    });
    nodes
}

/// The head of an audit log: its size, last leaf hash and the compact range of its Merkle tree.
/// A store's sequencer advances it with [`AuditHead::seal`], the one place where entries get
/// their place in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub size: u64,
    pub last_hash: [u8; 32],
    pub compact: CompactRange,
}

/// An event sealed into its log: what a store writes, in the same transaction as the head.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub entry: EntryV1,
    /// The canonical JSON, stored as it is.
    pub body: String,
    /// The leaf hash.
    pub hash: [u8; 32],
    /// Interior nodes completed by this entry at stored levels: `(level, index, hash)`.
    pub nodes: Vec<(u32, u64, [u8; 32])>,
}

impl AuditHead {
    /// The head of an empty log.
    pub fn genesis() -> Self {
        Self {
            size: 0,
            last_hash: crate::audit::GENESIS,
            compact: Default::default(),
        }
    }

    /// Seals `event` as the log's next entry and advances the head.
    pub fn seal(&mut self, event: &AuditEvent) -> Sealed {
        let seq = self.size + 1;
        let (entry, body, hash) = crate::audit::seal_entry(event, seq, &self.last_hash);
        self.size = seq;
        self.last_hash = hash;
        let nodes = append_stored(&mut self.compact, hash);
        Sealed {
            entry,
            body,
            hash,
            nodes,
        }
    }
}

/// Filters for reading a log. All set filters must match.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub after_seq: u64,
    pub limit: u32,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    /// The entry's subject, or a subject among its objects.
    pub subject: Option<String>,
    pub collection: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// What a store keeps of the audit logs. The columns that queries filter on are derived from
/// the hashed bodies by the database itself (generated columns); the subject index and the
/// stored tree nodes are derived tables that `audit verify` checks against the bodies.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Every log that has entries, checkpoints, a head, nodes or subject rows (complete, for
    /// verification; may scan).
    async fn find_audit_logs(&self) -> StoreResult<Vec<String>>;
    /// The heads of all logs the writer keeps (cheap; for checkpointing and streaming).
    async fn find_audit_heads(&self) -> StoreResult<Vec<(String, AuditHead)>>;
    /// The head of a log as committed: size, last leaf hash and Merkle compact range.
    async fn find_audit_head(&self, log: &str) -> StoreResult<Option<AuditHead>>;
    /// Entries as stored, `(seq, body, stored leaf hash)`, after `after_seq`, in order.
    async fn find_audit_raw(
        &self,
        log: &str,
        after_seq: u64,
        limit: u32,
    ) -> StoreResult<Vec<(u64, String, [u8; 32])>>;
    /// The last entry as stored, `(seq, leaf hash)`: cheap, for the start-up check.
    async fn find_audit_tail(&self, log: &str) -> StoreResult<Option<(u64, [u8; 32])>>;
    /// `count` stored hashes of one level of a log's tree from `index` on, in order: level 0
    /// are the entries' leaf hashes, levels [`NODE_LEVEL_STEP`] × k the stored nodes. Fewer
    /// are returned where the store has fewer.
    async fn find_audit_hashes(
        &self,
        log: &str,
        level: u32,
        index: u64,
        count: u64,
    ) -> StoreResult<Vec<[u8; 32]>>;
    /// A page of a log's stored interior nodes `(level, index, hash)` in key order, after `after`.
    async fn find_audit_nodes(
        &self,
        log: &str,
        after: Option<(u32, u64)>,
        limit: u32,
    ) -> StoreResult<Vec<(u32, u64, [u8; 32])>>;
    /// A page of a log's subject index `(subject, seq)` in key order, after `after`.
    async fn find_audit_subject_rows(
        &self,
        log: &str,
        after: Option<(String, u64)>,
        limit: u32,
    ) -> StoreResult<Vec<(String, u64)>>;
    /// A log's checkpoints in order.
    async fn find_checkpoints(&self, log: &str) -> StoreResult<Vec<CheckpointRow>>;
    async fn find_latest_checkpoint(&self, log: &str) -> StoreResult<Option<CheckpointRow>>;
    /// Entries of one log (`platform` or a tenant id) in sequence order.
    async fn find_audit_entries(&self, log: &str, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;
    /// What is wrong with the definition of the audit tables (a filter column no longer
    /// derived from the body, a table or index changed); empty when they are as created.
    async fn check_audit_schema(&self) -> StoreResult<Vec<String>>;
}
