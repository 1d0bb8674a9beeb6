//! The TOMs report: every measure of the catalogue with its finding, a summary, the audit
//! checkpoint it was made against, and an Ed25519 signature by the audit signing key over its
//! canonical JSON.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use strongroom_core::audit::PLATFORM_LOG;

use crate::catalogue::{Catalogue, Heading, Kind};
use crate::collectors;
use crate::evidence::{Context, Evidence, Finding, Scope, Status};

/// The report format's name and version; part of what is signed.
pub const FORMAT: &str = "strongroom-toms/1";
/// Prefix of the signed bytes (no other Strongroom signature starts with it).
const SIGNING_PREFIX: &[u8] = b"strongroom toms report v1\n";

/// How the measures are grouped when rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Under the GDPR Art. 32(1) headings.
    Art32,
    /// Under the measure types of the SCC Annex II.
    Scc,
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "art32" => Ok(Layout::Art32),
            "scc" => Ok(Layout::Scc),
            other => Err(format!("layout `{other}` is not one of art32, scc")),
        }
    }
}

/// The audit checkpoint a report was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRef {
    pub log: String,
    pub seq: u64,
    pub tree_size: u64,
    /// Hex of the Merkle root.
    pub root: String,
    pub time: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasureReport {
    pub id: String,
    pub title: String,
    pub heading: Heading,
    pub kind: Kind,
    pub statement: String,
    pub iso27001: Vec<String>,
    pub scc: Vec<String>,
    pub status: Status,
    pub how: String,
    pub evidence: Vec<Evidence>,
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Measures per status.
    pub counts: BTreeMap<String, usize>,
    /// `id title` of every measure not `met` or `declared`.
    pub open: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub catalogue_version: u32,
    /// `platform`, or the tenant's id.
    pub scope: String,
    pub tenant_name: Option<String>,
    pub generated_at: i64,
    pub installation: crate::evidence::Installation,
    pub checkpoint: Option<CheckpointRef>,
    pub summary: Summary,
    pub measures: Vec<MeasureReport>,
    /// The registers' figures for this scope, printed at the end.
    pub registers: Vec<crate::summary::RegisterLine>,
}

/// A report with its signature: what `--format json` writes and `toms verify` checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    pub report: Report,
    /// Hex of the Ed25519 public key (the audit signing key's).
    pub public_key: String,
    /// Base64 of the signature over the prefix and the report's canonical JSON.
    pub signature: String,
}

/// Builds the report of `ctx.scope`: every measure of the catalogue, judged by its collector.
pub async fn generate(ctx: &Context<'_>) -> Result<Report, String> {
    let catalogue = Catalogue::get();
    let declared = collectors::declarations_in_force(ctx)
        .await
        .ok_or("the declarations register could not be read")?;
    let mut measures = Vec::with_capacity(catalogue.measures.len());
    for m in &catalogue.measures {
        let finding = collectors::find(&m.collector).collect(ctx, m).await;
        let Finding {
            status,
            how,
            evidence,
            missing,
        } = apply_declarations(finding, m, &declared, ctx.now);
        measures.push(MeasureReport {
            id: m.id.clone(),
            title: m.title.clone(),
            heading: m.heading,
            kind: m.kind,
            statement: m.statement.clone(),
            iso27001: m.iso27001.clone(),
            scc: m.scc.clone(),
            status,
            how,
            evidence,
            missing,
        });
    }
    let mut counts: BTreeMap<String, usize> = Status::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for m in &measures {
        *counts.entry(m.status.as_str().to_owned()).or_insert(0) += 1;
    }
    let open = measures
        .iter()
        .filter(|m| !matches!(m.status, Status::Met | Status::Declared))
        .map(|m| format!("{} {}", m.id, m.title))
        .collect();
    let store = ctx.vault.store();
    let (scope, tenant_name, log) = match &ctx.scope {
        Scope::Platform => ("platform".to_owned(), None, PLATFORM_LOG.to_owned()),
        Scope::Tenant(t) => {
            let name = store
                .find_tenant(t)
                .await
                .map_err(|e| e.to_string())?
                .map(|r| r.name);
            (t.to_string(), name, t.to_string())
        }
    };
    let checkpoint = store
        .find_latest_checkpoint(&log)
        .await
        .map_err(|e| e.to_string())?
        .map(|c| CheckpointRef {
            log: c.log.clone(),
            seq: c.seq,
            tree_size: c.size,
            root: strongroom_crypto::hex(&c.root),
            time: c.time,
        });
    Ok(Report {
        format: FORMAT.to_owned(),
        catalogue_version: catalogue.version,
        scope,
        tenant_name,
        generated_at: ctx.now,
        installation: ctx.installation.clone(),
        checkpoint,
        summary: Summary { counts, open },
        measures,
        registers: crate::summary::registers(ctx).await?,
    })
}

/// An organisational measure the vault has no evidence of (a gap) but that a named owner has
/// declared is `declared` — or `stale` past the declaration's review date. Technical measures
/// are never settled by a declaration.
fn apply_declarations(
    finding: Finding,
    m: &crate::catalogue::Measure,
    declared: &[strongroom_core::store::DeclarationRow],
    now: i64,
) -> Finding {
    if m.kind != Kind::Organisational
        || finding.status != Status::Gap
        || m.collector == "declarations"
    {
        return finding;
    }
    let mine: Vec<_> = declared.iter().filter(|d| d.measure == m.id).collect();
    if mine.is_empty() {
        return finding;
    }
    let mut f = Finding::new(
        Status::Declared,
        "Declared in the register by a named owner (the vault cannot observe it itself).",
    );
    for d in mine {
        f = f.with(
            &format!("declared by {}", d.owner),
            &d.statement,
            &format!("declaration {} v{}", d.id, d.version),
            d.declared_at,
        );
        if d.review_by < now {
            f.status = Status::Stale;
            f = f.missing(format!(
                "the declaration {} was due for review on {}",
                d.id,
                crate::render::date(d.review_by)
            ));
        }
    }
    f.missing.extend(
        finding
            .missing
            .into_iter()
            .map(|m| format!("in the vault: {m}")),
    );
    f
}

fn signed_bytes(report: &Report) -> Result<Vec<u8>, String> {
    let mut out = SIGNING_PREFIX.to_vec();
    out.extend(serde_json::to_vec(report).map_err(|e| e.to_string())?);
    Ok(out)
}

/// Signs `report` with the vault's audit signing key.
pub async fn sign(vault: &strongroom_core::Vault, report: Report) -> Result<Signed, String> {
    let bytes = signed_bytes(&report)?;
    let (public_key, signature) = vault
        .sign_document(&bytes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Signed {
        report,
        public_key: strongroom_crypto::hex(&public_key),
        signature: base64::engine::general_purpose::STANDARD.encode(signature),
    })
}

/// Checks a signed report (the bytes `--format json` wrote) against `public_key`. Says what is
/// wrong otherwise.
pub fn verify(json: &[u8], public_key: &[u8; 32]) -> Result<Report, String> {
    let signed: Signed =
        serde_json::from_slice(json).map_err(|e| format!("not a signed TOMs report: {e}"))?;
    if signed.report.format != FORMAT {
        return Err(format!("unknown report format `{}`", signed.report.format));
    }
    if signed.public_key != strongroom_crypto::hex(public_key) {
        return Err("signed by another key than the one given".into());
    }
    let signature: [u8; 64] = base64::engine::general_purpose::STANDARD
        .decode(&signed.signature)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or("the signature is not 64 bytes of base64")?;
    let bytes = signed_bytes(&signed.report)?;
    // The file must be exactly what was signed (compact canonical JSON): a report re-encoded
    // differently is refused rather than trusted.
    let canonical = serde_json::to_vec(&signed).map_err(|e| e.to_string())?;
    if canonical != json.strip_suffix(b"\n").unwrap_or(json) {
        return Err("the file is not the canonical form that was signed".into());
    }
    if !strongroom_crypto::sign::verify(public_key, &bytes, &signature) {
        return Err("the signature does not match the report".into());
    }
    Ok(signed.report)
}
