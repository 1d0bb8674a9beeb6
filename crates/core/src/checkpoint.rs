//! Signed checkpoints (tree heads) of audit logs, and their text form.
//!
//! The signed text is line-based, so anyone can check it with a few lines of code:
//! ```text
//! strongroom-checkpoint v1
//! log <log>
//! seq <n>
//! size <entries>
//! root <hex root>
//! time <unix ms>
//! prev <hex SHA-256 of the previous checkpoint's text>
//! ```
//! Each checkpoint names the hash of the one before, so checkpoints form a chain of their own
//! (as CloudTrail's digest files do): deleting or reordering one breaks the next.

use strongroom_crypto::{hex, sha256, sign, unhex, Key32};
use strongroom_proto::Checkpoint;

/// A checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub log: String,
    pub seq: u64,
    pub size: u64,
    pub root: [u8; 32],
    pub time: i64,
    pub prev: [u8; 32],
    pub signature: [u8; 64],
}

/// The signed text of a checkpoint.
pub fn signed_text(
    log: &str,
    seq: u64,
    size: u64,
    root: &[u8; 32],
    time: i64,
    prev: &[u8; 32],
) -> String {
    format!(
        "strongroom-checkpoint v1\nlog {log}\nseq {seq}\nsize {size}\nroot {}\ntime {time}\nprev {}\n",
        hex(root),
        hex(prev)
    )
}

impl CheckpointRow {
    /// Makes and signs a checkpoint.
    pub fn sign(
        log: &str,
        seq: u64,
        size: u64,
        root: [u8; 32],
        time: i64,
        prev: [u8; 32],
        key: &Key32,
    ) -> Self {
        let text = signed_text(log, seq, size, &root, time, &prev);
        Self {
            log: log.to_owned(),
            seq,
            size,
            root,
            time,
            prev,
            signature: sign::sign(key, text.as_bytes()),
        }
    }

    pub fn text(&self) -> String {
        signed_text(
            &self.log, self.seq, self.size, &self.root, self.time, &self.prev,
        )
    }

    /// What the next checkpoint names as `prev`.
    pub fn hash(&self) -> [u8; 32] {
        sha256(self.text().as_bytes())
    }

    pub fn verify_signature(&self, public_key: &[u8; 32]) -> bool {
        sign::verify(public_key, self.text().as_bytes(), &self.signature)
    }

    pub fn to_proto(&self) -> Checkpoint {
        Checkpoint {
            log: self.log.clone(),
            seq: self.seq,
            size: self.size,
            root: hex(&self.root),
            time: self.time,
            prev: hex(&self.prev),
            signature: hex(&self.signature),
        }
    }

    /// Parses the wire form; `None` if a hash or the signature is malformed.
    pub fn from_proto(c: &Checkpoint) -> Option<Self> {
        Some(Self {
            log: c.log.clone(),
            seq: c.seq,
            size: c.size,
            root: unhex(&c.root)?.try_into().ok()?,
            time: c.time,
            prev: unhex(&c.prev)?.try_into().ok()?,
            signature: unhex(&c.signature)?.try_into().ok()?,
        })
    }
}
