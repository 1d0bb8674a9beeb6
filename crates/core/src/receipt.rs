//! Signed erasure receipts: how they are signed and how anyone checks one offline, with
//! nothing but the receipt and the audit signing key's public half.
//!
//! A receipt holds the audit entry that records the erasure (its canonical body), a signed
//! checkpoint of the tenant's log, and the RFC 6962 proof that the entry is in that
//! checkpoint's tree. Checking it proves: the vault's key signed the receipt; the same key
//! signed a checkpoint whose tree contains an entry saying this subject was erased at that time
//! with that key destroyed; and the receipt's figures are the entry's. A one-byte change
//! anywhere breaks one of these.

use strongroom_crypto::{hex, merkle, sign, unhex};
use strongroom_proto::ErasureReceipt;

use crate::audit::{leaf_hash, EntryV1};
use crate::checkpoint::CheckpointRow;

/// The receipt format this version writes and reads.
pub const FORMAT: &str = "strongroom-erasure-receipt/1";
/// The audit action of an erasure.
pub const ERASURE_ACTION: &str = "subject.erasure";

/// The bytes a receipt's signature covers: a line naming the document kind (so that no
/// receipt signature passes for a checkpoint's) and the receipt's JSON without `signature`.
pub fn signed_bytes(r: &ErasureReceipt) -> Vec<u8> {
    let mut unsigned = r.clone();
    unsigned.signature.clear();
    let mut out = b"strongroom erasure-receipt v1\n".to_vec();
    // A struct of strings, numbers and vectors always serialises.
    out.extend(serde_json::to_vec(&unsigned).unwrap_or_default());
    out
}

/// The objects an erasure's audit entry names: the destroyed key and the counts.
pub fn entry_objects(d: &strongroom_proto::ErasureDestroyed) -> Vec<String> {
    vec![
        d.key_id.clone(),
        format!("records:{}", d.records),
        format!("versions:{}", d.versions),
        format!("index_entries:{}", d.index_entries),
    ]
}

/// Lowercase hex only: a receipt has one spelling, so that no edit of its text verifies.
fn lower_hex(s: &str) -> Option<Vec<u8>> {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        .then(|| unhex(s))
        .flatten()
}

/// Checks a receipt against the public key the verifier trusts. On success, a one-line
/// summary; otherwise what failed.
pub fn verify(r: &ErasureReceipt, public_key: &[u8; 32]) -> Result<String, String> {
    if r.format != FORMAT {
        return Err(format!("unknown receipt format `{}`", r.format));
    }
    if r.public_key != hex(public_key) {
        return Err("the receipt names another signing key".into());
    }
    let sig: [u8; 64] = lower_hex(&r.signature)
        .and_then(|s| s.try_into().ok())
        .ok_or("the signature is not 64 bytes of hex")?;
    if !sign::verify(public_key, &signed_bytes(r), &sig) {
        return Err("the receipt's signature does not verify".into());
    }
    let cp = CheckpointRow::from_note(&r.audit.checkpoint, public_key)
        .map_err(|e| format!("the checkpoint: {e}"))?;
    if !cp.verify_signature(public_key) {
        return Err("the checkpoint's signature does not verify".into());
    }
    if cp.log != r.tenant || cp.size != r.audit.tree_size {
        return Err("the checkpoint is not of this tenant's log at the stated size".into());
    }
    let entry = EntryV1::parse(&r.audit.entry).ok_or("the audit entry does not parse")?;
    let expected_objects = entry_objects(&r.destroyed);
    if entry.log != r.tenant
        || entry.seq != r.audit.seq
        || entry.action != ERASURE_ACTION
        || entry.outcome != "ok"
        || entry.subject.as_deref() != Some(r.subject.as_str())
        || entry.time != r.erased_at
        || entry.objects != expected_objects
    {
        return Err("the audit entry does not record this erasure".into());
    }
    let proof = r
        .audit
        .proof
        .iter()
        .map(|h| lower_hex(h).and_then(|b| b.try_into().ok()))
        .collect::<Option<Vec<[u8; 32]>>>()
        .ok_or("the inclusion proof is not a list of 32-byte hex hashes")?;
    if r.audit.seq == 0
        || !merkle::verify_inclusion(
            &leaf_hash(&r.audit.entry),
            r.audit.seq - 1,
            cp.size,
            &proof,
            &cp.root,
        )
    {
        return Err("the audit entry is not in the checkpoint's tree".into());
    }
    Ok(format!(
        "erasure of {} in tenant {} at {} verified: key {} destroyed with {} records; audit entry {} is in checkpoint {} (tree of {})",
        r.subject, r.tenant, r.erased_at, r.destroyed.key_id, r.destroyed.records, r.audit.seq, cp.seq, cp.size
    ))
}
