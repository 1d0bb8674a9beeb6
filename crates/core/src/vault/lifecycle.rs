//! The data lifecycle (AV-04): a deleted record is `blocked` — invisible to every data
//! operation, restorable by the tenant's admin — until its grace period ends (the collection's,
//! else the tenant's, default 30 days); then the purge job destroys it with its history and
//! blind-index entries, and the data subject's wrapped DEK once the subject has no record left.

use std::collections::BTreeMap;

use async_trait::async_trait;
use strongroom_proto as proto;

use super::{RequestCtx, Vault};
use crate::audit::AuditEvent;
use crate::error::{Code, Error, Result};
use crate::ids::{RecordId, RequestId, SubjectId, TenantId};
use crate::jobs::{JobKind, Step};
use crate::store::{JobRow, Op, RecordState};

const DAY_MS: i64 = 86_400_000;
/// Records destroyed per batch (one unit of work, one audit entry).
pub const PURGE_BATCH: u32 = 500;
/// Ids listed per collection by the pending-purge view.
const PENDING_IDS: usize = 1000;

impl Vault {
    /// The grace period of a tenant's collection, in days.
    async fn grace_days(&self, tenant: &TenantId, def: &proto::CollectionDef) -> Result<u32> {
        Ok(match def.purge_grace_days {
            Some(d) => d,
            None => {
                self.effective_settings(Some(tenant))
                    .await?
                    .purge_grace_days
            }
        })
    }

    /// Makes a deleted (blocked) record active again; the tenant's `admin` only, until it is
    /// purged. Audited as `record.restore`.
    pub async fn restore_record(&self, ctx: &RequestCtx, collection: &str, id: &str) -> Result<()> {
        let mut ev = self.event(ctx, "record.restore");
        let res = async {
            let tenant = self.require_admin(ctx)?;
            crate::schema::check_name("collection", collection)?;
            ev.collection = Some(collection.to_owned());
            let id = RecordId::parse(id).ok_or_else(|| {
                Error::new(Code::InvalidId, "not a record id (rec_ and 32 hex digits)")
            })?;
            ev.records.push(id.clone());
            if self.store.find_collection(&tenant, collection).await?.is_none() {
                return Err(Error::new(Code::UnknownCollection, "no such collection"));
            }
            let row = self
                .store
                .find_record(&tenant, collection, &id)
                .await?
                .ok_or_else(|| {
                    Error::new(
                        Code::NotFound,
                        "no such record: it never existed here, or it was purged (a purged record cannot be restored)",
                    )
                })?;
            ev.subject = Some(row.subject.clone());
            if row.state != RecordState::Blocked {
                return Err(Error::new(
                    Code::AlreadyExists,
                    "this record is not deleted: there is nothing to restore",
                ));
            }
            Ok((
                (),
                vec![Op::RestoreRecord {
                    tenant,
                    id,
                    expected_version: row.version,
                }],
            ))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// What the purge will destroy and when, per collection: counts and record ids, no values.
    /// The tenant's `admin` (and `auditor`) only; audited as `purge.pending`.
    pub async fn pending_purges(&self, ctx: &RequestCtx) -> Result<proto::PendingPurges> {
        let ev = self.event(ctx, "purge.pending");
        let res = async {
            let tenant = self.tenant_of(ctx)?;
            if !(ctx.principal.has_role(crate::policy::ROLE_ADMIN)
                || ctx.principal.has_role(crate::policy::ROLE_AUDITOR))
            {
                return Err(Error::forbidden(
                    "pending purges are seen by the tenant's `admin` or `auditor` role",
                ));
            }
            let mut collections = Vec::new();
            for c in self.store.find_collections(&tenant).await? {
                let grace = self.grace_days(&tenant, &c.def).await?;
                let (mut count, mut ids, mut first, mut after) = (0u64, Vec::new(), None, None);
                loop {
                    let page = self
                        .store
                        .find_blocked(&tenant, &c.name, i64::MAX, after.as_ref(), 1000)
                        .await?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.id.clone());
                    for b in &page {
                        count += 1;
                        first = Some(first.map_or(b.blocked_at, |f: i64| f.min(b.blocked_at)));
                        if ids.len() < PENDING_IDS {
                            ids.push(b.id.to_string());
                        }
                    }
                }
                if count > 0 {
                    collections.push(proto::PendingPurge {
                        collection: c.name.clone(),
                        grace_days: grace,
                        blocked: count,
                        next_purge_after: first.map(|f| f + i64::from(grace) * DAY_MS),
                        ids,
                    });
                }
            }
            Ok((proto::PendingPurges { collections }, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Drops destroyed subjects' keys from memory.
    fn forget_subjects(&self, tenant: &TenantId, subjects: &[SubjectId]) {
        for s in subjects {
            self.keys.forget_dek(tenant, s);
        }
    }
}

/// The purge job (`purge`): every blocked record past its grace period is destroyed, a batch
/// per unit of work with its audit entry in the tenant's log (`record.purge`: the records and
/// the subjects whose keys went with them). A batch only selects records still blocked, so a
/// run interrupted anywhere resumes with what is left and nothing is destroyed twice.
pub struct Purge;

#[async_trait]
impl JobKind for Purge {
    fn kind(&self) -> &'static str {
        "purge"
    }

    async fn step(&self, vault: &Vault, job: &JobRow) -> Result<Step> {
        let store = vault.store();
        let now = vault.now();
        for tenant in store.find_tenant_ids().await? {
            for c in store.find_collections(&tenant).await? {
                let grace = vault.grace_days(&tenant, &c.def).await?;
                // Grace 0: everything blocked so far.
                let before = now - i64::from(grace) * DAY_MS + i64::from(grace == 0);
                let batch = store
                    .find_blocked(&tenant, &c.name, before, None, PURGE_BATCH)
                    .await?;
                if batch.is_empty() {
                    continue;
                }
                let mut in_batch: BTreeMap<SubjectId, u64> = BTreeMap::new();
                for b in &batch {
                    *in_batch.entry(b.subject.clone()).or_default() += 1;
                }
                let subjects: Vec<SubjectId> = in_batch.keys().cloned().collect();
                let destroyed: Vec<SubjectId> = store
                    .count_subject_records(&tenant, &subjects)
                    .await?
                    .into_iter()
                    .filter(|(s, n)| in_batch.get(s) == Some(n))
                    .map(|(s, _)| s)
                    .collect();
                let ids: Vec<RecordId> = batch.iter().map(|b| b.id.clone()).collect();
                let mut ev = AuditEvent::new(
                    Some(tenant.clone()),
                    now,
                    RequestId::generate(vault.rng()),
                    "system:jobs".into(),
                    "record.purge",
                );
                ev.collection = Some(c.name.clone());
                ev.records = ids.clone();
                ev.objects = vec![
                    format!("records:{}", ids.len()),
                    format!("keys_destroyed:{}", destroyed.len()),
                ];
                ev.objects.extend(destroyed.iter().map(ToString::to_string));
                let mut ops = vec![Op::PurgeRecords {
                    tenant: tenant.clone(),
                    ids,
                }];
                ops.extend(destroyed.iter().map(|s| Op::DestroySubject {
                    tenant: tenant.clone(),
                    subject: s.clone(),
                }));
                vault.forget_subjects(&tenant, &destroyed);
                let done = job.done + batch.len() as u64;
                return Ok(Step {
                    ops,
                    audit: vec![ev],
                    done,
                    total: None,
                    cursor: Some(done.to_string()),
                    finished: false,
                });
            }
        }
        store.scrub().await?;
        Ok(Step {
            ops: vec![],
            audit: vec![],
            done: job.done,
            total: Some(job.done),
            cursor: None,
            finished: true,
        })
    }
}
