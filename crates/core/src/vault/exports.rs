//! Access and portability (GDPR Art. 15, 20): an export of everything the vault holds of a
//! data subject — every record in any state with every field decrypted, the records' earlier
//! versions, the consent register, who accessed the data (from the audit log) and the
//! processing facts (given by an [`ExportContext`]: the records of processing are the compliance
//! crate's) — kept as an artefact sealed under the subject's own key.
//!
//! The artefact may be downloaded a few times (1 by default) before its expiry (7 days by
//! default); the last allowed download deletes it, and the `exports.expire` job deletes what
//! expired. An erasure of the subject deletes its exports with its key. Every export is
//! recorded in the export register (TR-01: recipient, purpose, request, expiry); every
//! download is an audit entry naming the subject with the purpose `data_subject_request`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strongroom_crypto::{hex, open, seal, sha256, Aad, Key32};
use strongroom_proto as proto;

use crate::codec;
use crate::error::{Code, Error, Result};
use crate::ids::{ExportId, RecordId, SubjectId, TenantId};
use crate::jobs::{JobKind, Step};
use crate::rng::RngExt;
use crate::store::{
    AuditQuery, ExportRow, JobRow, Op, RecordRow, RecordState, RegisterEntryRow, SUBJECT_RESTRICTED,
};
use crate::vault::{RequestCtx, Vault};

/// The export register (TR-01).
pub const EXPORTS: &str = "exports";
/// The purpose every export and download is recorded with.
pub const DSR_PURPOSE: &str = "data_subject_request";
/// The export document's format.
pub const EXPORT_FORMAT: &str = "strongroom-subject-export/1";
const DAY_MS: i64 = 86_400_000;
const DEFAULT_DAYS: u32 = 7;
const MAX_DAYS: u32 = 30;
const MAX_DOWNLOADS: u32 = 5;
const MAX_RECIPIENT: usize = 200;
const PAGE: u32 = 500;
/// Exports deleted per batch of the expiry job.
const EXPIRE_BATCH: u32 = 200;

/// What an export needs from the registers, which the compliance crate keeps: the processing
/// facts of a tenant's collections (purposes, bases, recipients, retention, subprocessors)
/// and the check that a named data-subject request is open and about this subject.
#[async_trait]
pub trait ExportContext: Send + Sync {
    async fn facts(
        &self,
        vault: &Vault,
        tenant: &TenantId,
        collections: &[String],
    ) -> Result<proto::ProcessingFacts>;
    async fn check_request(
        &self,
        vault: &Vault,
        tenant: &TenantId,
        subject: &SubjectId,
        request: &str,
    ) -> Result<()>;
}

/// The export register's entry: who gets what, why, until when. No value of the subject.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportEntry {
    pub subject: String,
    pub recipient: String,
    pub purpose: String,
    pub request: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub downloads: u32,
    pub records: u64,
    /// SHA-256 of the export document as downloaded (JSON).
    pub sha256: String,
}

fn export_aad(tenant: &TenantId, id: &ExportId, subject: &SubjectId) -> Aad {
    Aad::new("export")
        .str(tenant.as_str())
        .str(id.as_str())
        .str(subject.as_str())
}

/// Decrypts every field of a sealed record body (its name and record bind each value).
pub(super) fn open_fields(
    dek: &Key32,
    tenant: &TenantId,
    collection: &str,
    record: &RecordId,
    data: &[u8],
) -> Result<Map<String, Value>> {
    let mut fields = Map::new();
    for (name, env) in codec::decode(data)? {
        let plain = open(
            dek,
            &super::records::field_aad(tenant, collection, record, &name),
            &env,
        )
        .map_err(|_| Error::integrity())?;
        let value: Value = serde_json::from_slice(&plain).map_err(|_| Error::integrity())?;
        fields.insert(name, value);
    }
    Ok(fields)
}

fn check_input(input: &proto::ExportInput) -> Result<(u32, u32)> {
    let r = &input.recipient;
    if r.is_empty() || r.chars().count() > MAX_RECIPIENT {
        return Err(Error::new(
            Code::InvalidRequest,
            "`recipient` must be 1 to 200 characters",
        ));
    }
    if r.trim().is_empty() || r.chars().any(char::is_control) {
        return Err(Error::new(
            Code::ValidationFailed,
            "`recipient` must name someone, without control characters",
        ));
    }
    if let Some(req) = &input.request {
        if !req.starts_with("dsr_")
            || req.len() != 36
            || !req[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::new(Code::InvalidId, "`request` is not a request id"));
        }
    }
    let days = input.expires_in_days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(Error::new(
            Code::InvalidRequest,
            "`expires_in_days` must be 1 to 30",
        ));
    }
    let downloads = input.downloads.unwrap_or(1);
    if !(1..=MAX_DOWNLOADS).contains(&downloads) {
        return Err(Error::new(
            Code::InvalidRequest,
            "`downloads` must be 1 to 5",
        ));
    }
    Ok((days, downloads))
}

impl Vault {
    /// Exports everything held of a subject (the tenant's `privacy_officer`): see the module's
    /// text. Allowed while the subject is restricted or held. Audited as `subject.export`
    /// with the purpose `data_subject_request`; recorded in the export register.
    pub async fn export_subject(
        &self,
        ctx: &RequestCtx,
        id: &str,
        input: &proto::ExportInput,
        registers: &dyn ExportContext,
    ) -> Result<proto::ExportCreated> {
        let mut ev = self.event(ctx, "subject.export");
        ev.purpose = Some(DSR_PURPOSE.into());
        let res = async {
            let subject = super::subjects::parse_subject(id)?;
            ev.subject = Some(subject.clone());
            let tenant = self.privacy_officer(ctx, false)?;
            let (days, downloads) = check_input(input)?;
            let row = self
                .store
                .find_subject(&tenant, &subject)
                .await?
                .ok_or_else(super::subjects::unknown_subject)?;
            if let Some(request) = &input.request {
                registers
                    .check_request(self, &tenant, &subject, request)
                    .await?;
            }
            let dek = self.subject_dek(&tenant, &subject).await?;
            let now = self.now();
            let export = ExportId::generate_at(self.rng.as_ref(), now);
            ev.objects.push(format!("export:{export}"));
            let records = self.exported_records(&tenant, &subject, &dek).await?;
            let mut collections: Vec<String> =
                records.iter().map(|r| r.collection.clone()).collect();
            collections.sort();
            collections.dedup();
            let doc = proto::SubjectExport {
                format: EXPORT_FORMAT.into(),
                tenant: tenant.to_string(),
                subject: subject.to_string(),
                export: export.to_string(),
                generated_at: now,
                expires_at: now + i64::from(days) * DAY_MS,
                purpose: DSR_PURPOSE.into(),
                request: input.request.clone(),
                recipient: input.recipient.clone(),
                restricted: row.flags & SUBJECT_RESTRICTED != 0,
                consents: self
                    .store
                    .find_consents(&tenant, &subject)
                    .await?
                    .iter()
                    .map(super::consents::entry_view)
                    .collect(),
                accesses: self.accesses(&tenant, &subject).await?,
                processing: registers.facts(self, &tenant, &collections).await?,
                records,
            };
            let json = serde_json::to_vec(&doc).map_err(|_| Error::internal())?;
            let created = proto::ExportCreated {
                id: export.to_string(),
                subject: subject.to_string(),
                download: format!("/v1/exports/{export}"),
                expires_at: doc.expires_at,
                downloads,
                records: doc.records.len() as u64,
            };
            let entry = ExportEntry {
                subject: subject.to_string(),
                recipient: input.recipient.clone(),
                purpose: DSR_PURPOSE.into(),
                request: input.request.clone(),
                created_at: now,
                expires_at: doc.expires_at,
                downloads,
                records: created.records,
                sha256: hex(&sha256(&json)),
            };
            let sealed = seal(
                &dek,
                super::records::DEK_VERSION,
                self.rng.nonce(),
                &export_aad(&tenant, &export, &subject),
                &json,
            );
            let ops = vec![
                Op::PutExport(ExportRow {
                    tenant: tenant.clone(),
                    id: export.clone(),
                    subject: subject.clone(),
                    created_at: now,
                    expires_at: doc.expires_at,
                    downloads_left: downloads,
                    data: sealed,
                }),
                Op::PutRegisterEntry(RegisterEntryRow {
                    register: EXPORTS.into(),
                    id: export.to_string(),
                    version: 1,
                    tenant: Some(tenant.clone()),
                    body: serde_json::to_string(&entry).map_err(|_| Error::internal())?,
                    recorded_by: ctx.principal.actor(),
                    recorded_at: now,
                }),
            ];
            Ok((created, ops))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Every record of the subject, decrypted, with its history, by collection then id.
    async fn exported_records(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
        dek: &Key32,
    ) -> Result<Vec<proto::ExportedRecord>> {
        let mut out = Vec::new();
        let mut after: Option<RecordId> = None;
        loop {
            let page: Vec<RecordRow> = self
                .store
                .find_subject_record_rows(tenant, subject, after.as_ref(), PAGE)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id.clone());
            for row in &page {
                let mut history = Vec::new();
                for (version, updated_at, data) in
                    self.store.find_record_history(tenant, &row.id).await?
                {
                    history.push(proto::ExportedVersion {
                        version,
                        updated_at,
                        fields: open_fields(dek, tenant, &row.collection, &row.id, &data)?,
                    });
                }
                out.push(proto::ExportedRecord {
                    collection: row.collection.clone(),
                    id: row.id.to_string(),
                    state: match row.state {
                        RecordState::Active => "active",
                        RecordState::Blocked => "blocked",
                    }
                    .into(),
                    version: row.version,
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                    fields: open_fields(dek, tenant, &row.collection, &row.id, &row.data)?,
                    history,
                });
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        out.sort_by(|a, b| (&a.collection, &a.id).cmp(&(&b.collection, &b.id)));
        Ok(out)
    }

    /// Every entry of the tenant's log that names the subject, oldest first.
    async fn accesses(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> Result<Vec<proto::ExportedAccess>> {
        let mut out = Vec::new();
        let mut after_seq = 0;
        loop {
            let q = AuditQuery {
                after_seq,
                limit: 1000,
                subject: Some(subject.to_string()),
                ..AuditQuery::default()
            };
            let page = self.store.find_audit_entries(tenant.as_str(), &q).await?;
            let Some(last) = page.last() else {
                break;
            };
            after_seq = last.seq;
            let n = page.len();
            out.extend(page.into_iter().map(|e| proto::ExportedAccess {
                time: e.time,
                actor: e.actor,
                action: e.action,
                outcome: e.outcome,
                purpose: e.purpose,
                collection: e.collection,
                records: e.records,
                fields: e.fields,
                seq: e.seq,
            }));
            if n < 1000 {
                break;
            }
        }
        Ok(out)
    }

    /// Downloads an export (the tenant's `privacy_officer`): counts the download — the last
    /// allowed one deletes the artefact — and answers the document. `export_gone` once it
    /// expired or was used up. Audited as `export.download` with the subject and purpose.
    pub async fn download_export(
        &self,
        ctx: &RequestCtx,
        id: &str,
    ) -> Result<proto::SubjectExport> {
        let mut ev = self.event(ctx, "export.download");
        ev.purpose = Some(DSR_PURPOSE.into());
        let res = async {
            let export = ExportId::parse(id)
                .ok_or_else(|| Error::new(Code::InvalidId, "not an export id"))?;
            ev.objects.push(format!("export:{export}"));
            let tenant = self.privacy_officer(ctx, false)?;
            let now = self.now();
            let gone = || {
                Error::new(
                    Code::ExportGone,
                    "the export expired or was downloaded as often as it allows: it is deleted",
                )
            };
            let Some(row) = self.store.find_export(&tenant, &export).await? else {
                // Made here once (the register says so), or never.
                let known = self
                    .register_entries(EXPORTS, Some(&tenant))
                    .await?
                    .iter()
                    .any(|e| e.id == export.as_str());
                return Err(if known {
                    gone()
                } else {
                    Error::not_found("export")
                });
            };
            ev.subject = Some(row.subject.clone());
            if row.expires_at <= now {
                return Err(gone());
            }
            let dek = self.subject_dek(&tenant, &row.subject).await?;
            let json = open(&dek, &export_aad(&tenant, &export, &row.subject), &row.data)
                .map_err(|_| Error::integrity())?;
            let doc: proto::SubjectExport =
                serde_json::from_slice(&json).map_err(|_| Error::integrity())?;
            let op = Op::TakeExport {
                tenant,
                id: export,
                now,
            };
            Ok((doc, vec![op]))
        }
        .await;
        self.conclude(ev, res).await
    }
}

/// Deletes expired exports (and with them the only copy of what they held), a batch at a
/// time, each deletion an `export.expire` entry in its tenant's log.
pub struct ExportExpiry;

#[async_trait]
impl JobKind for ExportExpiry {
    fn kind(&self) -> &'static str {
        "exports.expire"
    }

    async fn step(&self, vault: &Vault, job: &JobRow) -> Result<Step> {
        let now = vault.now();
        let expired = vault
            .store()
            .find_expired_exports(now, EXPIRE_BATCH)
            .await?;
        let mut ops = Vec::with_capacity(expired.len());
        let mut audit = Vec::with_capacity(expired.len());
        for (tenant, id) in &expired {
            let mut ev = crate::audit::AuditEvent::new(
                Some(tenant.clone()),
                now,
                crate::ids::RequestId::generate(vault.rng()),
                "system:jobs".into(),
                "export.expire",
            );
            ev.objects = vec![format!("export:{id}")];
            audit.push(ev);
            ops.push(Op::DeleteExport {
                tenant: tenant.clone(),
                id: id.clone(),
            });
        }
        // Tenants' final archives past their expiry (offboarding) go the same way.
        let archives = vault
            .store()
            .find_expired_archives(now, EXPIRE_BATCH)
            .await?;
        for tenant in &archives {
            let mut ev = crate::audit::AuditEvent::new(
                None,
                now,
                crate::ids::RequestId::generate(vault.rng()),
                "system:jobs".into(),
                "tenant.archive_expire",
            );
            ev.objects = vec![format!("tenant:{tenant}")];
            audit.push(ev);
            ops.push(Op::DeleteTenantArchive {
                tenant: tenant.clone(),
            });
        }
        let done = job.done + (expired.len() + archives.len()) as u64;
        Ok(Step {
            ops,
            audit,
            done,
            total: None,
            cursor: None,
            finished: expired.len() < EXPIRE_BATCH as usize
                && archives.len() < EXPIRE_BATCH as usize,
        })
    }
}
