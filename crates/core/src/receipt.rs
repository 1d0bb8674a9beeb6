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
    let (entry, cp) = check_evidence(&r.audit, &r.tenant, public_key)?;
    let expected_objects = entry_objects(&r.destroyed);
    if entry.action != ERASURE_ACTION
        || entry.subject.as_deref() != Some(r.subject.as_str())
        || entry.time != r.erased_at
        || entry.objects != expected_objects
    {
        return Err("the audit entry does not record this erasure".into());
    }
    Ok(format!(
        "erasure of {} in tenant {} at {} verified: key {} destroyed with {} records; audit entry {} is in checkpoint {} (tree of {})",
        r.subject, r.tenant, r.erased_at, r.destroyed.key_id, r.destroyed.records, r.audit.seq, cp.seq, cp.size
    ))
}

/// Checks the audit evidence of a signed document: the checkpoint is signed by `public_key`
/// and is of `log` at the stated size, the entry is that log's at the stated position with the
/// outcome `ok`, and the proof puts it in the checkpoint's tree. Returns the entry and the
/// checkpoint for the caller's own checks of what the entry says.
pub fn check_evidence(
    e: &strongroom_proto::ReceiptEvidence,
    log: &str,
    public_key: &[u8; 32],
) -> Result<(EntryV1, CheckpointRow), String> {
    let cp = CheckpointRow::from_note(&e.checkpoint, public_key)
        .map_err(|err| format!("the checkpoint: {err}"))?;
    if !cp.verify_signature(public_key) {
        return Err("the checkpoint's signature does not verify".into());
    }
    if cp.log != log || cp.size != e.tree_size {
        return Err("the checkpoint is not of this tenant's log at the stated size".into());
    }
    let entry = EntryV1::parse(&e.entry).ok_or("the audit entry does not parse")?;
    if entry.log != log || entry.seq != e.seq || entry.outcome != "ok" {
        return Err("the audit entry is not this log's at the stated position".into());
    }
    let proof = e
        .proof
        .iter()
        .map(|h| lower_hex(h).and_then(|b| b.try_into().ok()))
        .collect::<Option<Vec<[u8; 32]>>>()
        .ok_or("the inclusion proof is not a list of 32-byte hex hashes")?;
    if e.seq == 0
        || !merkle::verify_inclusion(&leaf_hash(&e.entry), e.seq - 1, cp.size, &proof, &cp.root)
    {
        return Err("the audit entry is not in the checkpoint's tree".into());
    }
    Ok((entry, cp))
}

/// Checks a signature in lowercase hex over `bytes`.
pub fn check_signature(public_key: &[u8; 32], bytes: &[u8], signature: &str) -> Result<(), String> {
    let sig: [u8; 64] = lower_hex(signature)
        .and_then(|s| s.try_into().ok())
        .ok_or("the signature is not 64 bytes of hex")?;
    if !sign::verify(public_key, bytes, &sig) {
        return Err("the signature does not verify".into());
    }
    Ok(())
}
