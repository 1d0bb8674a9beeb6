//! Audit events and their sealed form.
//!
//! Every operation, allowed or not, produces an [`AuditEvent`]. The store seals it into its log
//! in the same transaction as the data change: it assigns the next sequence number, links the
//! previous entry's hash and computes this entry's hash, `SHA-256(0x00 ‖ canonical JSON)`, which
//! is also its RFC 6962 Merkle leaf hash. Events hold no personal data and no secrets: only
//! actor ids, action names, declared purposes, opaque object ids, field names and outcomes.

use strongroom_crypto::{hex, sha256_parts};
use strongroom_proto::AuditEntry;

use crate::error::{Code, Error};
use crate::ids::{RecordId, RequestId, SubjectId, TenantId};

/// The log of platform-level events (tenant creation, operator keys, failed authentication).
pub const PLATFORM_LOG: &str = "platform";
/// The `prev` of the first entry of a log.
pub const GENESIS: [u8; 32] = [0; 32];

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused by authentication or policy.
    Denied,
    /// Refused for bad input, a missing object or an internal fault.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One operation, before the store places it in its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// `None` for the platform log.
    pub tenant: Option<TenantId>,
    pub time: i64,
    pub request_id: RequestId,
    pub actor: String,
    pub action: &'static str,
    pub outcome: Outcome,
    pub code: Option<Code>,
    pub purpose: Option<String>,
    pub collection: Option<String>,
    pub subject: Option<SubjectId>,
    pub records: Vec<RecordId>,
    pub fields: Vec<String>,
    pub objects: Vec<String>,
}

impl AuditEvent {
    pub fn new(
        tenant: Option<TenantId>,
        time: i64,
        request_id: RequestId,
        actor: String,
        action: &'static str,
    ) -> Self {
        Self {
            tenant,
            time,
            request_id,
            actor,
            action,
            outcome: Outcome::Ok,
            code: None,
            purpose: None,
            collection: None,
            subject: None,
            records: Vec::new(),
            fields: Vec::new(),
            objects: Vec::new(),
        }
    }

    /// The log this event belongs to.
    pub fn log(&self) -> &str {
        self.tenant.as_ref().map_or(PLATFORM_LOG, TenantId::as_str)
    }

    /// Marks the event as ended by `err`.
    pub fn fail(&mut self, err: &Error) {
        use crate::error::Kind;
        self.outcome = match err.kind() {
            Kind::Unauthenticated | Kind::Forbidden => Outcome::Denied,
            _ => Outcome::Failed,
        };
        self.code = Some(err.code);
    }
}

/// Seals an event as entry `seq` of its log after the entry whose hash is `prev`.
/// Returns the entry, its canonical JSON body, and its leaf hash.
pub fn seal_entry(event: &AuditEvent, seq: u64, prev: &[u8; 32]) -> (AuditEntry, String, [u8; 32]) {
    let entry = AuditEntry {
        log: event.log().to_owned(),
        seq,
        prev: hex(prev),
        time: event.time,
        request_id: event.request_id.to_string(),
        actor: event.actor.clone(),
        action: event.action.to_owned(),
        outcome: event.outcome.as_str().to_owned(),
        code: event.code.map(|c| c.as_str().to_owned()),
        purpose: event.purpose.clone(),
        collection: event.collection.clone(),
        subject: event.subject.as_ref().map(ToString::to_string),
        records: event.records.iter().map(ToString::to_string).collect(),
        fields: event.fields.clone(),
        objects: event.objects.clone(),
    };
    let body = canonical_body(&entry);
    let hash = leaf_hash(&body);
    (entry, body, hash)
}

/// The canonical JSON of an entry: serde's field order, no whitespace.
pub fn canonical_body(entry: &AuditEntry) -> String {
    // Serialising a struct of strings, numbers and vectors cannot fail.
    serde_json::to_string(entry).unwrap_or_default()
}

/// RFC 6962 leaf hash of an entry body.
pub fn leaf_hash(body: &str) -> [u8; 32] {
    sha256_parts(&[&[0x00], body.as_bytes()])
}

/// Where a chain of entries first fails to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: u64,
    pub reason: &'static str,
}

/// Verifies a contiguous run of one log's entries starting at `first_seq` after `prev`.
/// Returns the hash of the last entry.
pub fn verify_chain<'a>(
    entries: impl IntoIterator<Item = &'a AuditEntry>,
    first_seq: u64,
    mut prev: [u8; 32],
) -> Result<[u8; 32], ChainBreak> {
    for (expect, e) in (first_seq..).zip(entries) {
        if e.seq != expect {
            return Err(ChainBreak {
                seq: expect,
                reason: "sequence gap or reordering",
            });
        }
        if e.prev != hex(&prev) {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "previous-hash link does not match",
            });
        }
        prev = leaf_hash(&canonical_body(e));
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    fn event(action: &'static str) -> AuditEvent {
        AuditEvent::new(
            None,
            1,
            RequestId::generate(&SeededRng::new(3)),
            "key:x".into(),
            action,
        )
    }

    #[test]
    fn chain_detects_edits_gaps_and_swaps() {
        let mut entries = Vec::new();
        let mut prev = GENESIS;
        for (i, a) in ["a", "b", "c", "d"].into_iter().enumerate() {
            let (e, _, h) = seal_entry(&event(a), i as u64 + 1, &prev);
            entries.push(e);
            prev = h;
        }
        assert_eq!(verify_chain(&entries, 1, GENESIS), Ok(prev));

        let mut edited = entries.clone();
        edited[1].action = "z".into();
        assert_eq!(verify_chain(&edited, 1, GENESIS).unwrap_err().seq, 3);

        let mut gap = entries.clone();
        gap.remove(1);
        assert_eq!(verify_chain(&gap, 1, GENESIS).unwrap_err().seq, 2);

        let mut swapped = entries.clone();
        swapped.swap(1, 2);
        assert!(verify_chain(&swapped, 1, GENESIS).is_err());
    }
}
