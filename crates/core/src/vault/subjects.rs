//! Data subjects' rights: what the vault holds of a subject (the privacy officer's view), and
//! erasure by crypto-shredding with a signed receipt (GDPR Art. 17).
//!
//! An erasure destroys, in one unit of work with its audit entry: every record of the subject
//! in any state, their earlier versions and blind-index entries, and the subject row with its
//! wrapped DEK and reference. The erasure ledger (register `erasures`, one entry per subject,
//! keyed by the subject id) keeps only the opaque id, the time, the destroyed key's id and the
//! counts — never a value — so that a restore of an older backup can replay it.

use serde::{Deserialize, Serialize};
use strongroom_crypto::{hex, hmac_sha256, sha256};
use strongroom_proto as proto;

use crate::error::{Code, Error, Result};
use crate::ids::{SubjectId, TenantId};
use crate::keys::KeyRing;
use crate::policy::{ROLE_ADMIN, ROLE_PRIVACY_OFFICER};
use crate::receipt::{self, ERASURE_ACTION, FORMAT};
use crate::store::{AuditQuery, Op, RecordState, RegisterEntryRow, SUBJECT_RESTRICTED};
use crate::vault::{RequestCtx, Vault};

/// The erasure ledger's register.
pub const ERASURES: &str = "erasures";

/// One ledger entry: nothing that identifies a person.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LedgerBody {
    subject: String,
    erased_at: i64,
    destroyed: proto::ErasureDestroyed,
}

/// A destroyed key's id: `prefix` (`dek`, `kek`) and 16 bytes of the SHA-256 of the wrapped key
/// (it reveals nothing of the key).
pub(super) fn key_id(prefix: &str, wrapped: &[u8]) -> String {
    format!("{prefix}_{}", hex(&sha256(wrapped)[..16]))
}

pub(super) fn unknown_subject() -> Error {
    Error::new(Code::UnknownSubject, "no such data subject")
}

pub(super) fn parse_subject(id: &str) -> Result<SubjectId> {
    SubjectId::parse(id).ok_or_else(|| Error::new(Code::InvalidId, "not a subject id"))
}

impl Vault {
    /// The tenant of a caller who may act on data subjects' requests: the tenant's
    /// `privacy_officer`, or for the view (`admin_too`) also its `admin`.
    pub(super) fn privacy_officer(&self, ctx: &RequestCtx, admin_too: bool) -> Result<TenantId> {
        let tenant = self.tenant_of(ctx)?;
        let p = &ctx.principal;
        if p.has_role(ROLE_PRIVACY_OFFICER) || (admin_too && p.has_role(ROLE_ADMIN)) {
            Ok(tenant)
        } else if admin_too {
            Err(Error::forbidden(
                "this needs the tenant's `privacy_officer` or `admin` role",
            ))
        } else {
            Err(Error::forbidden(
                "this needs the tenant's `privacy_officer` role",
            ))
        }
    }

    /// What the vault holds of a subject: records per collection and state, and the holds in
    /// force that keep it. Counts only. Audited as `subject.view`.
    pub async fn subject_view(&self, ctx: &RequestCtx, id: &str) -> Result<proto::SubjectView> {
        let mut ev = self.event(ctx, "subject.view");
        let res = async {
            let subject = parse_subject(id)?;
            ev.subject = Some(subject.clone());
            let tenant = self.privacy_officer(ctx, true)?;
            Ok((self.describe_subject(&tenant, &subject).await?, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// [`Vault::subject_view`] of the subject the application stored with its own reference
    /// (`subject_ref`). The reference is never written anywhere: the log names the subject id.
    pub async fn subject_view_by_ref(
        &self,
        ctx: &RequestCtx,
        subject_ref: &str,
    ) -> Result<proto::SubjectView> {
        let mut ev = self.event(ctx, "subject.view");
        let res = async {
            let tenant = self.privacy_officer(ctx, true)?;
            // Any reference is a well-formed question; one no subject has is unknown.
            if subject_ref.is_empty() || subject_ref.len() > super::records::MAX_SUBJECT_REF {
                return Err(unknown_subject());
            }
            let (_, kek) = self.current_kek(&tenant).await?;
            let index = hmac_sha256(&KeyRing::subject_ref_key(&kek), subject_ref.as_bytes());
            let subject = self
                .store
                .find_subject_by_ref(&tenant, &index)
                .await?
                .ok_or_else(unknown_subject)?
                .id;
            ev.subject = Some(subject.clone());
            Ok((self.describe_subject(&tenant, &subject).await?, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Counts per collection and the holds that keep a subject; `unknown_subject` if the
    /// tenant has no such subject.
    async fn describe_subject(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> Result<proto::SubjectView> {
        let Some(row) = self.store.find_subject(tenant, subject).await? else {
            // One of this tenant's subjects that was erased: say so (the ledger is the
            // tenant's own, so this tells another tenant nothing).
            if let Some(done) = self.ledger_entry(tenant, subject).await? {
                return Err(Error::new(
                    Code::UnknownSubject,
                    format!(
                        "the subject was erased at {} (ms since the epoch); asking for its erasure again answers its receipt",
                        done.erased_at
                    ),
                ));
            }
            return Err(unknown_subject());
        };
        let groups = self.store.find_subject_records(tenant, subject).await?;
        let mut collections: Vec<proto::SubjectCollection> = Vec::new();
        for g in &groups {
            if collections
                .last()
                .is_none_or(|c| c.collection != g.collection)
            {
                collections.push(proto::SubjectCollection {
                    collection: g.collection.clone(),
                    active: 0,
                    blocked: 0,
                    versions: 0,
                });
            }
            if let Some(c) = collections.last_mut() {
                match g.state {
                    RecordState::Active => c.active += g.records,
                    RecordState::Blocked => c.blocked += g.records,
                }
                c.versions += g.versions;
            }
        }
        let holds = self
            .holds_on(tenant, subject, collections.iter().map(|c| &c.collection))
            .await?;
        Ok(proto::SubjectView {
            id: subject.to_string(),
            held: !holds.is_empty(),
            holds,
            collections,
            restricted: row.flags & SUBJECT_RESTRICTED != 0,
            // The latest change per purpose (the register is in purpose, sequence order).
            consents: self
                .store
                .find_consents(tenant, subject)
                .await?
                .iter()
                .map(|c| (c.purpose.clone(), super::consents::entry_view(c).state))
                .collect(),
        })
    }

    /// Restricts (`on`) or lifts the restriction of a subject's processing (Art. 18): the
    /// privacy officer only; audited as `subject.restrict` or `subject.restriction_lift`.
    /// Answers the subject's view. Restricting a restricted subject changes nothing (and is
    /// audited all the same).
    pub async fn restrict_subject(
        &self,
        ctx: &RequestCtx,
        id: &str,
        on: bool,
    ) -> Result<proto::SubjectView> {
        let action = if on {
            "subject.restrict"
        } else {
            "subject.restriction_lift"
        };
        let mut ev = self.event(ctx, action);
        let res = async {
            let subject = parse_subject(id)?;
            ev.subject = Some(subject.clone());
            let tenant = self.privacy_officer(ctx, false)?;
            if self.store.find_subject(&tenant, &subject).await?.is_none() {
                return Err(unknown_subject());
            }
            let op = Op::SetSubjectFlag {
                tenant: tenant.clone(),
                subject: subject.clone(),
                flag: SUBJECT_RESTRICTED,
                on,
            };
            Ok(((tenant, subject), vec![op]))
        }
        .await;
        let (tenant, subject) = self.conclude(ev, res).await?;
        self.describe_subject(&tenant, &subject).await
    }

    /// The ids of the holds in force on a subject or on any of the collections named.
    async fn holds_on<'a>(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
        collections: impl Iterator<Item = &'a String>,
    ) -> Result<Vec<String>> {
        let names: Vec<&String> = collections.collect();
        Ok(self
            .holds(tenant, self.now())
            .await?
            .into_iter()
            .filter(|h| h.active)
            .filter(|h| {
                h.subject.as_deref() == Some(subject.as_str())
                    || h.collection.as_ref().is_some_and(|c| names.contains(&c))
            })
            .map(|h| h.id)
            .collect())
    }

    /// The ledger entry of an erased subject, if it was erased.
    async fn ledger_entry(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> Result<Option<LedgerBody>> {
        let rows = self.register_entries(ERASURES, Some(tenant)).await?;
        rows.iter()
            .find(|r| r.id == subject.as_str())
            .map(|r| serde_json::from_str(&r.body).map_err(|_| Error::integrity()))
            .transpose()
    }

    /// Erases a data subject (the tenant's `privacy_officer`): see the module's text. Refused
    /// with `legal_hold` while a hold is in force on the subject or on a collection it has
    /// records in. A subject erased before gets a new receipt for that erasure with `repeat`
    /// set, and nothing else happens. Audited as `subject.erasure`.
    pub async fn erase_subject(&self, ctx: &RequestCtx, id: &str) -> Result<proto::ErasureReceipt> {
        let mut ev = self.event(ctx, ERASURE_ACTION);
        // The subject first, so that a refusal names it in the log.
        let checked = parse_subject(id).and_then(|s| {
            ev.subject = Some(s.clone());
            Ok((self.privacy_officer(ctx, false)?, s))
        });
        let (tenant, subject) = match checked {
            Ok(ts) => ts,
            Err(e) => {
                ev.fail(&e);
                self.record(ev).await;
                return Err(e);
            }
        };
        let first = ev;
        let mut attempt = 0;
        let ledger = loop {
            // Erased already: a receipt for that erasure; nothing more is done.
            if let Some(done) = self.ledger_entry(&tenant, &subject).await? {
                return self.receipt_for(&tenant, &done, true).await;
            }
            attempt += 1;
            let now = self.now();
            let prepared = async {
                let row = self
                    .store
                    .find_subject(&tenant, &subject)
                    .await?
                    .ok_or_else(unknown_subject)?;
                let groups = self.store.find_subject_records(&tenant, &subject).await?;
                let mut collections: Vec<String> =
                    groups.iter().map(|g| g.collection.clone()).collect();
                collections.dedup();
                let holds = self.holds_on(&tenant, &subject, collections.iter()).await?;
                if !holds.is_empty() {
                    return Err(Error::new(
                        Code::LegalHold,
                        format!(
                            "a legal hold is in force ({}): nothing was erased",
                            holds.join(", ")
                        ),
                    ));
                }
                let destroyed = proto::ErasureDestroyed {
                    key_id: key_id("dek", &row.wrapped_dek),
                    records: groups.iter().map(|g| g.records).sum(),
                    versions: groups.iter().map(|g| g.versions).sum(),
                    index_entries: groups.iter().map(|g| g.index_entries).sum(),
                    collections,
                };
                let ledger = LedgerBody {
                    subject: subject.to_string(),
                    erased_at: now,
                    destroyed: destroyed.clone(),
                };
                let entry = RegisterEntryRow {
                    register: ERASURES.into(),
                    id: subject.to_string(),
                    version: 1,
                    tenant: Some(tenant.clone()),
                    body: serde_json::to_string(&ledger).map_err(|_| Error::internal())?,
                    recorded_by: ctx.principal.actor(),
                    recorded_at: now,
                };
                let ops = vec![
                    Op::EraseSubject {
                        tenant: tenant.clone(),
                        subject: subject.clone(),
                        records: destroyed.records,
                    },
                    Op::PutRegisterEntry(entry),
                ];
                Ok((ledger, ops))
            }
            .await;
            // Gone since the ledger was read: erased meanwhile by a racing request?
            if prepared
                .as_ref()
                .is_err_and(|e| e.code == Code::UnknownSubject)
            {
                if let Some(done) = self.ledger_entry(&tenant, &subject).await? {
                    return self.receipt_for(&tenant, &done, true).await;
                }
            }
            let mut ev = first.clone();
            if let Ok((ledger, _)) = &prepared {
                ev.objects = receipt::entry_objects(&ledger.destroyed);
            }
            ev.time = now;
            match self.conclude_receipt(ev, prepared).await {
                Ok((ledger, _)) => break ledger,
                // Another request erased it first (the ledger says so at the top of the loop), or
                // a record was added or removed since the count: again, with new counts.
                Err(e) if e.code == Code::AlreadyExists && attempt < 3 => {}
                Err(e) => return Err(e),
            }
        };
        self.keys.forget_dek(&tenant, &subject);
        // The old pages are still in SQLite's write-ahead log: fold and truncate it now. If
        // readers hold it, the next purge run (hourly, it scrubs every time) does.
        if let Err(e) = self.store.scrub().await {
            tracing::warn!(error = %e, "after an erasure: the files could not be scrubbed yet; the next purge run will");
        }
        self.receipt_for(&tenant, &ledger, false).await
    }

    /// Builds and signs the receipt of a recorded erasure: its audit entry, a checkpoint of
    /// the tenant's log that includes it (signed now if none does yet), the inclusion proof.
    async fn receipt_for(
        &self,
        tenant: &TenantId,
        done: &LedgerBody,
        repeat: bool,
    ) -> Result<proto::ErasureReceipt> {
        let log = tenant.to_string();
        let query = AuditQuery {
            action: Some(ERASURE_ACTION.into()),
            subject: Some(done.subject.clone()),
            outcome: Some("ok".into()),
            from_ms: Some(done.erased_at),
            to_ms: Some(done.erased_at + 1),
            limit: 10,
            ..AuditQuery::default()
        };
        let seq = self
            .store
            .find_audit_entries(&log, &query)
            .await?
            .into_iter()
            .find(|e| e.time == done.erased_at)
            .map(|e| e.seq)
            .ok_or_else(Error::integrity)?;
        let public_key = self.public_key()?;
        let audit = self.log_evidence(&log, seq).await?;
        let mut r = proto::ErasureReceipt {
            format: FORMAT.into(),
            tenant: log,
            subject: done.subject.clone(),
            erased_at: done.erased_at,
            issued_at: self.now(),
            repeat,
            destroyed: done.destroyed.clone(),
            audit,
            public_key: hex(&public_key),
            signature: String::new(),
        };
        let (_, sig) = self.sign_document(&receipt::signed_bytes(&r)).await?;
        r.signature = hex(&sig);
        Ok(r)
    }
}

impl Vault {
    /// The evidence that entry `seq` is in `log`: its canonical body, a signed checkpoint that
    /// includes it (signed now if none does yet) and the RFC 6962 inclusion proof.
    pub(super) async fn log_evidence(&self, log: &str, seq: u64) -> Result<proto::ReceiptEvidence> {
        self.checkpoint(log).await?;
        let cp = self
            .store
            .find_latest_checkpoint(log)
            .await?
            .filter(|c| c.size >= seq)
            .ok_or_else(Error::internal)?;
        let note = cp.note(&self.public_key()?).ok_or_else(Error::internal)?;
        let (_, body, _) = self
            .store
            .find_audit_raw(log, seq - 1, 1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(Error::integrity)?;
        let ranges = strongroom_crypto::merkle::inclusion_ranges(seq - 1, cp.size);
        let proof = crate::proofs::range_hashes(self.store.as_ref(), log, &ranges).await?;
        Ok(proto::ReceiptEvidence {
            entry: body,
            seq,
            checkpoint: note,
            tree_size: cp.size,
            proof: proof.iter().map(|h| hex(h)).collect(),
        })
    }
}
