//! Signed deletion certificates (offboarding, OR-08): how they are signed and checked offline,
//! like erasure receipts (`crate::receipt`), with nothing but the certificate and the audit
//! signing key's public half. The certificate cites the `tenant.offboard` entry of the tenant's
//! log — the last one it will ever have — and the final signed checkpoint that includes it.

use strongroom_crypto::hex;
use strongroom_proto::{DeletionCertificate, TenantDestroyed};

use crate::receipt::{check_evidence, check_signature};

/// The certificate format this version writes and reads.
pub const FORMAT: &str = "strongroom-deletion-certificate/1";
/// The audit action of an offboarding, in the tenant's log.
pub const OFFBOARD_ACTION: &str = "tenant.offboard";

/// The bytes a certificate's signature covers: a line naming the document kind and the
/// certificate's JSON without `signature`.
pub fn signed_bytes(c: &DeletionCertificate) -> Vec<u8> {
    let mut unsigned = c.clone();
    unsigned.signature.clear();
    let mut out = b"strongroom deletion-certificate v1\n".to_vec();
    out.extend(serde_json::to_vec(&unsigned).unwrap_or_default());
    out
}

/// The objects the offboarding's audit entry names: the counts and the destroyed keys.
pub fn entry_objects(d: &TenantDestroyed) -> Vec<String> {
    let mut out = vec![
        format!("records:{}", d.records),
        format!("subjects:{}", d.subjects),
        format!("versions:{}", d.versions),
        format!("deks:{}", d.deks),
        format!("dek_ids_sha256:{}", d.dek_ids_sha256),
        format!("log_kept_until:{}", d.log_kept_until),
    ];
    out.extend(d.kek_ids.iter().cloned());
    out
}

/// Checks a certificate against the public key the verifier trusts. On success, a one-line
/// summary; otherwise what failed.
pub fn verify(c: &DeletionCertificate, public_key: &[u8; 32]) -> Result<String, String> {
    if c.format != FORMAT {
        return Err(format!("unknown certificate format `{}`", c.format));
    }
    if c.public_key != hex(public_key) {
        return Err("the certificate names another signing key".into());
    }
    check_signature(public_key, &signed_bytes(c), &c.signature)
        .map_err(|e| format!("the certificate: {e}"))?;
    let (entry, cp) = check_evidence(&c.audit, &c.tenant, public_key)?;
    if entry.action != OFFBOARD_ACTION
        || entry.time != c.executed_at
        || entry.objects != entry_objects(&c.destroyed)
    {
        return Err("the audit entry does not record this offboarding".into());
    }
    Ok(format!(
        "offboarding of tenant {} at {} verified: {} records of {} subjects, {} earlier versions, {} subject keys and {} tenant keys destroyed; audit entry {} is in checkpoint {} (tree of {})",
        c.tenant, c.executed_at, c.destroyed.records, c.destroyed.subjects, c.destroyed.versions,
        c.destroyed.deks, c.destroyed.kek_ids.len(), c.audit.seq, cp.seq, cp.size
    ))
}
