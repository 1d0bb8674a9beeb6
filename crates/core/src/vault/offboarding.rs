//! Offboarding a tenant at the end of its contract (OR-08, GDPR Art. 28(3)(g)): its data is
//! returned (a full archive) and destroyed (crypto-shredding of its keys), with a signed
//! deletion certificate.
//!
//! Two parties: the tenant's `admin` asks and an operator executes, or the reverse — never one
//! party alone. The archive is sealed under a key derived from a one-time token that only the
//! tenant's admin ever sees (returned with its request, or with its execution); the vault keeps
//! the token only sealed under the tenant's own KEK until the execution, which destroys that
//! KEK. Execution, in one unit of work with its audit entries: the archive is stored, every
//! record, earlier version, index entry, subject with its DEK, consent, export, KEK,
//! collection, role, key, user, session, setting, job, register entry and declaration of the
//! tenant is deleted, and the tenant row with them. Its audit log (no personal data) stays,
//! closed by the `tenant.offboard` entry and a final signed checkpoint that the certificate
//! cites, and is kept for the configured period (`closed_log_retention_days`); then the
//! `audit.closed_logs` job deletes it, recording `audit.log_deleted` (its size and last hash)
//! in the platform log, which is what lets `audit verify` accept its absence. The request
//! register is the platform's (`offboarding`, keyed by tenant id): the request, its execution
//! with the counts, the log's deletion — the TOMs report's evidence.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use strongroom_crypto::{ct_eq, derive_key, hex, open, seal, sha256, unhex, Aad, Key32};
use strongroom_proto as proto;

use crate::audit::AuditEvent;
use crate::certificate::{self, OFFBOARD_ACTION};
use crate::error::{Code, Error, Result};
use crate::ids::{RecordId, RequestId, SubjectId, TenantId};
use crate::policy::ROLE_ADMIN;
use crate::rng::RngExt;
use crate::store::{AuditQuery, Op, RecordState, RegisterEntryRow, TenantArchiveRow};
use crate::vault::{RequestCtx, Vault};

/// The offboarding register (platform scope, one entry per tenant).
pub const OFFBOARDINGS: &str = "offboarding";
/// The platform log's record of a closed log deleted at the end of its retention.
pub const LOG_DELETED: &str = "audit.log_deleted";
/// The final archive's format.
pub const ARCHIVE_FORMAT: &str = "strongroom-tenant-archive/1";
const DAY_MS: i64 = 86_400_000;
/// How long the final archive waits for its one download.
const ARCHIVE_DAYS: i64 = 30;
const PAGE: u32 = 500;

/// The register's entry: the request, then (version 2) its execution. No personal data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OffboardingEntry {
    pub tenant: String,
    pub requested_by_party: String,
    pub requested_by: String,
    pub requested_at: i64,
    pub reason: String,
    /// The archive token, sealed under the tenant's KEK (hex), when the tenant asked.
    pub token_sealed: Option<String>,
    pub executed_by: Option<String>,
    pub executed_at: Option<i64>,
    pub destroyed: Option<proto::TenantDestroyed>,
    /// When the closed log was deleted, its retention over.
    #[serde(default)]
    pub log_deleted_at: Option<i64>,
}

fn two_party(what: &str) -> Error {
    Error::new(Code::TwoPartyRequired, what.to_owned())
}

fn token_aad(tenant: &TenantId) -> Aad {
    Aad::new("archive-token").str(tenant.as_str())
}

fn archive_aad(tenant: &TenantId) -> Aad {
    Aad::new("tenant-archive").str(tenant.as_str())
}

fn archive_key(token: &[u8; 32]) -> Key32 {
    derive_key(&Key32::from_bytes(*token), b"strongroom tenant archive v1")
}

use super::subjects::key_id;

impl Vault {
    /// Which party is asking for `tenant`: `"operator"`, or `"tenant"` for its own admin.
    fn offboarding_party(
        &self,
        ctx: &RequestCtx,
        tenant: Option<&str>,
    ) -> Result<(TenantId, &'static str)> {
        let p = &ctx.principal;
        match (&p.tenant, tenant) {
            (None, Some(t)) if p.is_operator() => Ok((
                TenantId::parse(t).ok_or_else(|| Error::new(Code::InvalidId, "not a tenant id"))?,
                "operator",
            )),
            (Some(own), None) if p.has_role(ROLE_ADMIN) => Ok((own.clone(), "tenant")),
            _ => Err(Error::forbidden(
                "offboarding is asked for and executed by the tenant's `admin` (its own tenant) and an operator",
            )),
        }
    }

    async fn offboarding_entry(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<(u32, OffboardingEntry)>> {
        let rows = self.register_entries(OFFBOARDINGS, None).await?;
        rows.iter()
            .filter(|r| r.id == tenant.as_str())
            .max_by_key(|r| r.version)
            .map(|r| {
                serde_json::from_str(&r.body)
                    .map(|e| (r.version, e))
                    .map_err(|_| Error::integrity())
            })
            .transpose()
    }

    fn offboarding_row(
        &self,
        ctx: &RequestCtx,
        version: u32,
        e: &OffboardingEntry,
    ) -> Result<RegisterEntryRow> {
        Ok(RegisterEntryRow {
            register: OFFBOARDINGS.into(),
            id: e.tenant.clone(),
            version,
            tenant: None,
            body: serde_json::to_string(e).map_err(|_| Error::internal())?,
            recorded_by: ctx.principal.actor(),
            recorded_at: self.now(),
        })
    }

    /// Asks for the termination of a tenant: its `admin` for its own tenant (`tenant` `None`),
    /// or an operator for `tenant`. The other party executes it. Audited as
    /// `tenant.offboarding_request`.
    pub async fn request_offboarding(
        &self,
        ctx: &RequestCtx,
        tenant: Option<&str>,
        input: &proto::OffboardingInput,
    ) -> Result<proto::OffboardingRequest> {
        let mut ev = self.event(ctx, "tenant.offboarding_request");
        let res = async {
            let (tenant, party) = self.offboarding_party(ctx, tenant)?;
            ev.objects.push(format!("tenant:{tenant}"));
            if input.reason.is_empty() || input.reason.chars().count() > 500 {
                return Err(Error::new(Code::InvalidRequest, "`reason` must be 1 to 500 characters"));
            }
            if input.reason.trim().is_empty() || input.reason.chars().any(char::is_control) {
                return Err(Error::new(
                    Code::ValidationFailed,
                    "`reason` must say something, without control characters",
                ));
            }
            if self.store.find_tenant(&tenant).await?.is_none() {
                return Err(Error::not_found("tenant"));
            }
            if self.offboarding_entry(&tenant).await?.is_some() {
                return Err(Error::new(
                    Code::AlreadyExists,
                    "the termination of this tenant is already requested",
                ));
            }
            let now = self.now();
            // The tenant's admin gets the archive token now; the vault keeps it only under the
            // tenant's KEK, which the execution destroys.
            let (token, token_sealed) = if party == "tenant" {
                let token: [u8; 32] = self.rng.array();
                let (version, kek) = self.current_kek(&tenant).await?;
                let sealed = seal(&kek, version, self.rng.nonce(), &token_aad(&tenant), &token);
                (Some(hex(&token)), Some(hex(&sealed)))
            } else {
                (None, None)
            };
            let entry = OffboardingEntry {
                tenant: tenant.to_string(),
                requested_by_party: party.into(),
                requested_by: ctx.principal.actor(),
                requested_at: now,
                reason: input.reason.clone(),
                token_sealed,
                executed_by: None,
                executed_at: None,
                destroyed: None,
                log_deleted_at: None,
            };
            let out = proto::OffboardingRequest {
                tenant: tenant.to_string(),
                requested_by_party: party.into(),
                requested_by: entry.requested_by.clone(),
                requested_at: now,
                reason: entry.reason.clone(),
                archive_token: token,
                next: if party == "tenant" {
                    format!("an operator executes it: POST /v1/tenants/{tenant}/offboarding/execute. Keep `archive_token`: it is shown once and opens the tenant's final archive")
                } else {
                    "the tenant's admin executes it: POST /v1/offboarding/execute (and receives the archive token)".into()
                },
            };
            Ok((out, vec![Op::PutRegisterEntry(self.offboarding_row(ctx, 1, &entry)?)]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Executes a requested termination (the other party): writes the archive, destroys the
    /// tenant, closes its log and answers the signed certificate. Refused under a legal hold.
    /// Audited as `tenant.offboard` in the tenant's log (its last entry) and in the platform's.
    pub async fn execute_offboarding(
        &self,
        ctx: &RequestCtx,
        tenant: Option<&str>,
    ) -> Result<proto::OffboardingDone> {
        let mut ev = self.event(ctx, "tenant.offboarding_execute");
        let checked = async {
            let (tenant, party) = self.offboarding_party(ctx, tenant)?;
            ev.objects.push(format!("tenant:{tenant}"));
            let Some((version, entry)) = self.offboarding_entry(&tenant).await? else {
                return Err(two_party(
                    "no termination of this tenant was requested: one party asks, the other executes",
                ));
            };
            if entry.executed_at.is_some() || self.store.find_tenant(&tenant).await?.is_none() {
                return Err(Error::not_found("tenant"));
            }
            if entry.requested_by_party == party {
                return Err(two_party(
                    "the party that asked for the termination cannot execute it: the other party does",
                ));
            }
            let now = self.now();
            if let Some(h) = self.holds(&tenant, now).await?.into_iter().find(|h| h.active) {
                return Err(Error::new(
                    Code::LegalHold,
                    format!("a legal hold is in force ({}): nothing was destroyed", h.id),
                ));
            }
            Ok((tenant, party, version, entry))
        }
        .await;
        let (tenant, party, version, entry) = match checked {
            Ok(v) => v,
            Err(e) => {
                ev.fail(&e);
                self.record(ev).await;
                return Err(e);
            }
        };
        let prepared = self
            .prepare_offboarding(ctx, &tenant, party, version, entry)
            .await;
        let (done, token, archive_sha, expires_at, keys) = match prepared {
            Ok((ops, final_ev, done, token, sha, expires_at, keys)) => {
                let unit = Ok(((done.clone(), token, sha, expires_at, keys), ops));
                match self.conclude_with(ev, vec![final_ev], unit).await {
                    Ok(v) => v,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => {
                ev.fail(&e);
                self.record(ev).await;
                return Err(e);
            }
        };
        // Nothing of the tenant may stay in memory either.
        let (kek_versions, subjects) = keys;
        self.keys.forget_tenant(&tenant, &kek_versions, &subjects);
        self.lock_versions().remove(&tenant);
        self.key_cache.clear();
        self.collection_cache.clear();
        self.role_cache.clear();
        if let Err(e) = self.store.scrub().await {
            tracing::warn!(error = %e, "after an offboarding: the files could not be scrubbed yet; the next purge run will");
        }
        let certificate = self.deletion_certificate(&tenant, &done).await?;
        Ok(proto::OffboardingDone {
            certificate,
            archive: proto::ArchiveLink {
                download: format!("/v1/offboarding/{tenant}/archive"),
                expires_at,
                token,
                sha256: archive_sha,
            },
        })
    }

    /// Everything of the execution but its commit: the archive, the counts, the ops and the
    /// tenant log's final entry.
    #[allow(clippy::type_complexity)]
    async fn prepare_offboarding(
        &self,
        ctx: &RequestCtx,
        tenant: &TenantId,
        party: &str,
        version: u32,
        mut entry: OffboardingEntry,
    ) -> Result<(
        Vec<Op>,
        AuditEvent,
        (i64, proto::TenantDestroyed),
        Option<String>,
        String,
        i64,
        (Vec<u32>, Vec<SubjectId>),
    )> {
        let now = self.now();
        // The archive token: the tenant's (sealed under its KEK at its request), or a new one
        // for the tenant's admin executing now.
        let (token, shown) = match &entry.token_sealed {
            Some(sealed) => {
                let bytes = unhex(sealed).ok_or_else(Error::integrity)?;
                let (_, kek) = self.current_kek(tenant).await?;
                let plain =
                    open(&kek, &token_aad(tenant), &bytes).map_err(|_| Error::integrity())?;
                let token: [u8; 32] = plain[..].try_into().map_err(|_| Error::integrity())?;
                (token, None)
            }
            None => {
                let token: [u8; 32] = self.rng.array();
                (token, (party == "tenant").then(|| hex(&token)))
            }
        };
        let counts = self.store.count_tenant(tenant).await?;
        // The subjects once: their key ids for the certificate, their ids for the archive.
        let keks = self.store.find_tenant_keys(tenant).await?;
        let mut dek_ids = Vec::new();
        let mut subjects = Vec::new();
        let mut after: Option<SubjectId> = None;
        loop {
            let page = self
                .store
                .find_tenant_subjects(tenant, after.as_ref(), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for s in &page {
                dek_ids.push(key_id("dek", &s.wrapped_dek));
                subjects.push(s.id.clone());
            }
        }
        let archive = self.tenant_archive(tenant, &subjects, now).await?;
        let json = serde_json::to_vec(&archive).map_err(|_| Error::internal())?;
        let archive_sha = hex(&sha256(&json));
        let sealed = seal(
            &archive_key(&token),
            1,
            self.rng.nonce(),
            &archive_aad(tenant),
            &json,
        );
        dek_ids.sort();
        let destroyed = proto::TenantDestroyed {
            records: counts.records,
            subjects: counts.subjects,
            versions: counts.versions,
            kek_ids: keks.iter().map(|k| key_id("kek", &k.wrapped)).collect(),
            deks: dek_ids.len() as u64,
            dek_ids_sha256: hex(&sha256(dek_ids.join("\n").as_bytes())),
            log_kept_until: now + i64::from(self.config.closed_log_retention_days) * DAY_MS,
        };
        let mut last = AuditEvent::new(
            Some(tenant.clone()),
            now,
            RequestId::generate(self.rng.as_ref()),
            ctx.principal.actor(),
            OFFBOARD_ACTION,
        );
        last.objects = certificate::entry_objects(&destroyed);
        entry.executed_by = Some(ctx.principal.actor());
        entry.executed_at = Some(now);
        entry.destroyed = Some(destroyed.clone());
        entry.token_sealed = None;
        let expires_at = now + ARCHIVE_DAYS * DAY_MS;
        let ops = vec![
            Op::PutTenantArchive(TenantArchiveRow {
                tenant: tenant.clone(),
                token_hash: sha256(&token),
                created_at: now,
                expires_at,
                data: sealed,
            }),
            Op::ShredTenant {
                tenant: tenant.clone(),
                counts,
            },
            Op::PutRegisterEntry(self.offboarding_row(ctx, version + 1, &entry)?),
        ];
        let kek_versions = keks.iter().map(|k| k.version).collect();
        Ok((
            ops,
            last,
            (now, destroyed),
            shown,
            archive_sha,
            expires_at,
            (kek_versions, subjects),
        ))
    }

    /// The tenant's final archive: its definitions, every record decrypted with its history,
    /// and each subject's consents.
    async fn tenant_archive(
        &self,
        tenant: &TenantId,
        subjects: &[SubjectId],
        now: i64,
    ) -> Result<Value> {
        let row = self
            .store
            .find_tenant(tenant)
            .await?
            .ok_or_else(|| Error::not_found("tenant"))?;
        let mut records = Vec::new();
        let mut after: Option<RecordId> = None;
        loop {
            let page = self
                .store
                .find_tenant_record_rows(tenant, after.as_ref(), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for r in &page {
                let dek = self.subject_dek(tenant, &r.subject).await?;
                let mut history = Vec::new();
                for (version, updated_at, data) in
                    self.store.find_record_history(tenant, &r.id).await?
                {
                    history.push(json!({
                        "version": version, "updated_at": updated_at,
                        "fields": super::exports::open_fields(&dek, tenant, &r.collection, &r.id, &data)?,
                    }));
                }
                records.push(json!({
                    "collection": r.collection, "id": r.id.as_str(), "subject": r.subject.as_str(),
                    "state": match r.state { RecordState::Active => "active", RecordState::Blocked => "blocked" },
                    "version": r.version, "created_at": r.created_at, "updated_at": r.updated_at,
                    "fields": super::exports::open_fields(&dek, tenant, &r.collection, &r.id, &r.data)?,
                    "history": history,
                }));
            }
        }
        let mut consents = Map::new();
        for s in subjects {
            let list: Vec<proto::ConsentEntry> = self
                .store
                .find_consents(tenant, s)
                .await?
                .iter()
                .map(super::consents::entry_view)
                .collect();
            if !list.is_empty() {
                consents.insert(
                    s.to_string(),
                    serde_json::to_value(list).map_err(|_| Error::internal())?,
                );
            }
        }
        let collections: Vec<Value> = self
            .store
            .find_collections(tenant)
            .await?
            .into_iter()
            .map(|c| json!({"name": c.name, "definition": c.def}))
            .collect();
        let roles: Vec<Value> = self
            .store
            .find_roles(tenant)
            .await?
            .into_iter()
            .map(|r| json!({"name": r.name, "definition": r.def}))
            .collect();
        Ok(json!({
            "format": ARCHIVE_FORMAT, "tenant": tenant.as_str(), "name": row.name,
            "generated_at": now, "collections": collections, "roles": roles,
            "records": records, "consents": consents,
        }))
    }

    /// Builds and signs the certificate of an executed offboarding from the tenant's log: the
    /// `tenant.offboard` entry, the final checkpoint (signed now), the inclusion proof.
    async fn deletion_certificate(
        &self,
        tenant: &TenantId,
        (executed_at, destroyed): &(i64, proto::TenantDestroyed),
    ) -> Result<proto::DeletionCertificate> {
        let log = tenant.to_string();
        let query = AuditQuery {
            action: Some(OFFBOARD_ACTION.into()),
            from_ms: Some(*executed_at),
            to_ms: Some(executed_at + 1),
            limit: 10,
            ..AuditQuery::default()
        };
        let seq = self
            .store
            .find_audit_entries(&log, &query)
            .await?
            .into_iter()
            .find(|e| e.time == *executed_at && e.outcome == "ok")
            .map(|e| e.seq)
            .ok_or_else(Error::integrity)?;
        let public_key = self.public_key()?;
        let audit = self.log_evidence(&log, seq).await?;
        let mut c = proto::DeletionCertificate {
            format: certificate::FORMAT.into(),
            tenant: log,
            executed_at: *executed_at,
            issued_at: self.now(),
            destroyed: destroyed.clone(),
            audit,
            public_key: hex(&public_key),
            signature: String::new(),
        };
        let (_, sig) = self.sign_document(&certificate::signed_bytes(&c)).await?;
        c.signature = hex(&sig);
        Ok(c)
    }

    /// Downloads a tenant's final archive with its one-time token (no API key: the tenant's
    /// are gone). The download deletes it. Audited in the platform log as
    /// `tenant.archive_download`.
    pub async fn download_archive(
        &self,
        request_id: RequestId,
        tenant: &str,
        token: &str,
    ) -> Result<Value> {
        let mut ev = AuditEvent::new(
            None,
            self.now(),
            request_id,
            "archive-token".into(),
            "tenant.archive_download",
        );
        let res = async {
            let tenant = TenantId::parse(tenant)
                .ok_or_else(|| Error::new(Code::InvalidId, "not a tenant id"))?;
            ev.objects.push(format!("tenant:{tenant}"));
            let wrong = || Error::new(Code::Unauthenticated, "no archive opens with this token");
            let token: [u8; 32] = strongroom_crypto::unhex(token)
                .filter(|_| {
                    token
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                })
                .and_then(|t| t.try_into().ok())
                .ok_or_else(wrong)?;
            let row = self
                .store
                .find_tenant_archive(&tenant)
                .await?
                .ok_or_else(wrong)?;
            if !ct_eq(&sha256(&token), &row.token_hash) {
                return Err(wrong());
            }
            let now = self.now();
            if row.expires_at <= now {
                return Err(Error::new(
                    Code::ExportGone,
                    "the archive expired and is deleted",
                ));
            }
            let json = open(&archive_key(&token), &archive_aad(&tenant), &row.data)
                .map_err(|_| Error::integrity())?;
            let doc: Value = serde_json::from_slice(&json).map_err(|_| Error::integrity())?;
            let op = Op::TakeTenantArchive {
                tenant,
                token_hash: row.token_hash,
                now,
            };
            Ok((doc, vec![op]))
        }
        .await;
        self.conclude(ev, res).await
    }
}

/// Deletes offboarded tenants' closed audit logs whose retention is over, one log per batch,
/// each deletion recorded in the platform log (`audit.log_deleted`, with the log's size and
/// last leaf hash) and in the offboarding register, in the same unit.
pub struct ClosedLogs;

#[async_trait::async_trait]
impl crate::jobs::JobKind for ClosedLogs {
    fn kind(&self) -> &'static str {
        "audit.closed_logs"
    }

    async fn step(&self, vault: &Vault, job: &crate::store::JobRow) -> Result<crate::jobs::Step> {
        let now = vault.now();
        let mut latest: std::collections::BTreeMap<String, RegisterEntryRow> = Default::default();
        for r in vault.register_entries(OFFBOARDINGS, None).await? {
            if latest.get(&r.id).is_none_or(|l| l.version < r.version) {
                latest.insert(r.id.clone(), r);
            }
        }
        for r in latest.into_values() {
            let mut e: OffboardingEntry =
                serde_json::from_str(&r.body).map_err(|_| Error::integrity())?;
            let due = e
                .destroyed
                .as_ref()
                .is_some_and(|d| d.log_kept_until <= now);
            if !due || e.log_deleted_at.is_some() {
                continue;
            }
            let head = vault.store().find_audit_head(&e.tenant).await?;
            let mut ev = AuditEvent::new(
                None,
                now,
                RequestId::generate(vault.rng()),
                "system:jobs".into(),
                LOG_DELETED,
            );
            ev.objects = vec![
                format!("log:{}", e.tenant),
                format!("entries:{}", head.as_ref().map_or(0, |h| h.size)),
                format!(
                    "head:{}",
                    head.as_ref()
                        .map_or_else(String::new, |h| hex(&h.last_hash))
                ),
            ];
            e.log_deleted_at = Some(now);
            let entry = RegisterEntryRow {
                register: OFFBOARDINGS.into(),
                id: e.tenant.clone(),
                version: r.version + 1,
                tenant: None,
                body: serde_json::to_string(&e).map_err(|_| Error::internal())?,
                recorded_by: "system:jobs".into(),
                recorded_at: now,
            };
            let mut ops = vec![
                Op::DeleteAuditLog {
                    log: e.tenant.clone(),
                },
                Op::PutRegisterEntry(entry),
            ];
            vault.seal_registers(&mut ops);
            return Ok(crate::jobs::Step {
                ops,
                audit: vec![ev],
                done: job.done + 1,
                total: None,
                cursor: None,
                finished: false,
            });
        }
        Ok(crate::jobs::Step {
            ops: Vec::new(),
            audit: Vec::new(),
            done: job.done,
            total: Some(job.done),
            cursor: None,
            finished: true,
        })
    }
}
