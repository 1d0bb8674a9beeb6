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
use crate::store::{JobRow, Op, RecordState, StoreError};

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
            let tenant = self.admin_or_auditor(ctx, "pending purges")?;
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

    /// The caller's tenant, if it holds the tenant's `admin` or `auditor` role.
    fn admin_or_auditor(&self, ctx: &RequestCtx, what: &str) -> Result<TenantId> {
        let tenant = self.tenant_of(ctx)?;
        if ctx.principal.has_role(crate::policy::ROLE_ADMIN)
            || ctx.principal.has_role(crate::policy::ROLE_AUDITOR)
        {
            Ok(tenant)
        } else {
            Err(Error::forbidden(format!(
                "{what} are seen by the tenant's `admin` or `auditor` role"
            )))
        }
    }

    /// Drops destroyed subjects' keys from memory.
    fn forget_subjects(&self, tenant: &TenantId, subjects: &[SubjectId]) {
        for s in subjects {
            self.keys.forget_dek(tenant, s);
        }
    }
}

/// The subjects among `subjects` (one entry per record being destroyed) left with no record
/// once those go: their keys are destroyed in the same unit.
async fn orphans(
    vault: &Vault,
    tenant: &TenantId,
    subjects: &[&SubjectId],
) -> Result<Vec<SubjectId>> {
    let mut in_batch: BTreeMap<SubjectId, u64> = BTreeMap::new();
    for s in subjects {
        *in_batch.entry((*s).clone()).or_default() += 1;
    }
    let unique: Vec<SubjectId> = in_batch.keys().cloned().collect();
    Ok(vault
        .store()
        .count_subject_records(tenant, &unique)
        .await?
        .into_iter()
        .filter(|(s, n)| in_batch.get(s) == Some(n))
        .map(|(s, _)| s)
        .collect())
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
        if let Some(tries) = scrub_tries(job) {
            return scrubbed(vault, job, tries).await;
        }
        let store = vault.store();
        let now = vault.now();
        for tenant in store.find_tenant_ids().await? {
            // Held data is never purged: whole collections, and the held subjects' records.
            let held = vault.held(&tenant, now).await?;
            for c in store.find_collections(&tenant).await? {
                if held.collections.contains(&c.name) {
                    continue;
                }
                let grace = vault.grace_days(&tenant, &c.def).await?;
                // Grace 0: everything blocked so far.
                let before = now - i64::from(grace) * DAY_MS + i64::from(grace == 0);
                let mut batch = Vec::new();
                let mut after = None;
                loop {
                    let page = store
                        .find_blocked(&tenant, &c.name, before, after.as_ref(), PURGE_BATCH)
                        .await?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.id.clone());
                    let last_page = page.len() < PURGE_BATCH as usize;
                    batch.extend(
                        page.into_iter()
                            .filter(|b| !held.subjects.contains(&b.subject)),
                    );
                    if last_page || batch.len() >= PURGE_BATCH as usize {
                        break;
                    }
                }
                batch.truncate(PURGE_BATCH as usize);
                if batch.is_empty() {
                    continue;
                }
                let subjects: Vec<&SubjectId> = batch.iter().map(|b| &b.subject).collect();
                let destroyed = orphans(vault, &tenant, &subjects).await?;
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
        scrubbed(vault, job, 0).await
    }
}

/// How often a run tries to scrub the store's files before it finishes without.
const SCRUB_TRIES: u32 = 5;

/// The attempts at the scrub a run has made, if it is retrying it (its cursor `scrub:N`).
fn scrub_tries(job: &JobRow) -> Option<u32> {
    job.cursor.as_deref()?.strip_prefix("scrub:")?.parse().ok()
}

/// The end of a purge or retention run: the store's files are scrubbed (SQLite folds and
/// truncates its write-ahead log, which still holds the destroyed pages). Under sustained
/// load SQLite may find no moment without readers: the run then tries again after a paced
/// pause (`tries` so far), and after [`SCRUB_TRIES`] finishes all the same with a warning —
/// the records are destroyed; the next run (and every erasure) scrubs again. Never a failure:
/// a busy log is not an error of the job.
async fn scrubbed(vault: &Vault, job: &JobRow, tries: u32) -> Result<Step> {
    let result = vault.store().scrub().await;
    let retry = match result {
        Ok(()) => false,
        Err(StoreError::Unavailable(_)) if tries + 1 < SCRUB_TRIES => true,
        Err(StoreError::Unavailable(why)) => {
            tracing::warn!(job = %job.id, "the store's files were not scrubbed after {SCRUB_TRIES} tries ({why}); the next run tries again");
            false
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Step {
        ops: vec![],
        audit: vec![],
        done: job.done,
        total: if retry { None } else { Some(job.done) },
        cursor: retry.then(|| format!("scrub:{}", tries + 1)),
        finished: !retry,
    })
}

/// The register legal holds are kept in (a tenant's scope; text sealed like every register).
pub const HOLDS: &str = "holds";

#[derive(serde::Serialize, serde::Deserialize)]
struct HoldBody {
    subject: Option<String>,
    collection: Option<String>,
    reason: String,
    until: Option<i64>,
    placed_by: String,
    placed_at: i64,
    lifted_by: Option<String>,
    lifted_at: Option<i64>,
}

/// What the holds in force keep: these subjects, and every record of these collections.
#[derive(Debug, Default)]
pub struct Held {
    pub subjects: std::collections::BTreeSet<SubjectId>,
    pub collections: std::collections::BTreeSet<String>,
}

fn hold_view(row: &crate::store::RegisterEntryRow, now: i64) -> Result<proto::Hold> {
    let b: HoldBody = serde_json::from_str(&row.body).map_err(|_| Error::integrity())?;
    Ok(proto::Hold {
        id: row.id.clone(),
        version: row.version,
        active: b.lifted_at.is_none() && b.until.is_none_or(|u| u > now),
        subject: b.subject,
        collection: b.collection,
        reason: b.reason,
        until: b.until,
        placed_by: b.placed_by,
        placed_at: b.placed_at,
        lifted_by: b.lifted_by,
        lifted_at: b.lifted_at,
    })
}

impl Vault {
    /// The latest version of each of a tenant's holds.
    pub(super) async fn holds(&self, tenant: &TenantId, now: i64) -> Result<Vec<proto::Hold>> {
        let mut rows = self.register_entries(HOLDS, Some(tenant)).await?;
        rows.sort_by(|a, b| (&a.id, a.version).cmp(&(&b.id, b.version)));
        let mut latest: Vec<crate::store::RegisterEntryRow> = Vec::new();
        for r in rows {
            match latest.last_mut() {
                Some(l) if l.id == r.id => *l = r,
                _ => latest.push(r),
            }
        }
        latest.iter().map(|r| hold_view(r, now)).collect()
    }

    /// What a tenant's holds in force keep at `now`.
    pub async fn held(&self, tenant: &TenantId, now: i64) -> Result<Held> {
        let mut held = Held::default();
        for h in self
            .holds(tenant, now)
            .await?
            .into_iter()
            .filter(|h| h.active)
        {
            if let Some(s) = h.subject.as_deref().and_then(SubjectId::parse) {
                held.subjects.insert(s);
            }
            if let Some(c) = h.collection {
                held.collections.insert(c);
            }
        }
        // A restricted subject's data is stored, not processed (Art. 18): kept like a hold.
        held.subjects
            .extend(self.store.find_restricted_subjects(tenant).await?);
        Ok(held)
    }

    /// Places a legal hold (the tenant's `admin`): on a subject or a collection, with a reason
    /// and an optional end. Audited as `hold.place`.
    pub async fn place_hold(
        &self,
        ctx: &RequestCtx,
        input: proto::HoldInput,
    ) -> Result<proto::Hold> {
        let mut ev = self.event(ctx, "hold.place");
        let res = async {
            let tenant = self.require_admin(ctx)?;
            let now = self.now();
            match (&input.subject, &input.collection) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(Error::invalid(
                        "a hold is on one `subject` or on one `collection`",
                    ))
                }
                (Some(s), None) => {
                    let id = SubjectId::parse(s).ok_or_else(|| {
                        Error::new(Code::InvalidId, "`subject` is not a subject id")
                    })?;
                    if self.store.find_subject(&tenant, &id).await?.is_none() {
                        return Err(Error::new(Code::UnknownSubject, "no such subject"));
                    }
                    ev.subject = Some(id);
                }
                (None, Some(c)) => {
                    crate::schema::check_name("collection", c)?;
                    if self.store.find_collection(&tenant, c).await?.is_none() {
                        return Err(Error::new(Code::UnknownCollection, "no such collection"));
                    }
                    ev.collection = Some(c.clone());
                }
            }
            let n = input.reason.chars().count();
            if n == 0 || n > 2000 {
                return Err(Error::new(
                    Code::InvalidRequest,
                    "`reason` is 1 to 2000 characters",
                ));
            }
            if input.reason.trim().is_empty() {
                return Err(Error::invalid(
                    "`reason` is blank: say why the data is held",
                ));
            }
            if input.until.is_some_and(|u| u <= now) {
                return Err(Error::invalid("`until` must lie in the future"));
            }
            let id = crate::ids::HoldId::generate_at(self.rng(), now).to_string();
            ev.objects.push(id.clone());
            let body = HoldBody {
                subject: input.subject,
                collection: input.collection,
                reason: input.reason,
                until: input.until,
                placed_by: ctx.principal.actor(),
                placed_at: now,
                lifted_by: None,
                lifted_at: None,
            };
            let row = crate::store::RegisterEntryRow {
                register: HOLDS.into(),
                id,
                version: 1,
                tenant: Some(tenant),
                body: serde_json::to_string(&body).map_err(|_| Error::internal())?,
                recorded_by: ctx.principal.actor(),
                recorded_at: now,
            };
            let view = hold_view(&row, now)?;
            Ok((view, vec![Op::PutRegisterEntry(row)]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// The tenant's holds (its `admin` and `auditor`); audited as `hold.list`.
    pub async fn list_holds(&self, ctx: &RequestCtx) -> Result<proto::HoldList> {
        let ev = self.event(ctx, "hold.list");
        let res = async {
            let tenant = self.admin_or_auditor(ctx, "holds")?;
            let holds = self.holds(&tenant, self.now()).await?;
            Ok((proto::HoldList { holds }, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Lifts a hold (the tenant's `admin`): a new version saying who and when; the next purge
    /// run proceeds with what it kept. Audited as `hold.lift`.
    pub async fn lift_hold(&self, ctx: &RequestCtx, id: &str) -> Result<proto::Hold> {
        let mut ev = self.event(ctx, "hold.lift");
        let res = async {
            let tenant = self.require_admin(ctx)?;
            if crate::ids::HoldId::parse(id).is_none() {
                return Err(Error::new(Code::InvalidId, "not a hold id"));
            }
            ev.objects.push(id.to_owned());
            let now = self.now();
            let mut rows = self.register_entries(HOLDS, Some(&tenant)).await?;
            rows.retain(|r| r.id == id);
            let last = rows
                .into_iter()
                .max_by_key(|r| r.version)
                .ok_or_else(|| Error::not_found("hold"))?;
            let mut body: HoldBody =
                serde_json::from_str(&last.body).map_err(|_| Error::integrity())?;
            if body.lifted_at.is_some() {
                return Err(Error::new(
                    Code::AlreadyExists,
                    "this hold was lifted already",
                ));
            }
            body.lifted_by = Some(ctx.principal.actor());
            body.lifted_at = Some(now);
            let row = crate::store::RegisterEntryRow {
                version: last.version + 1,
                body: serde_json::to_string(&body).map_err(|_| Error::internal())?,
                recorded_by: ctx.principal.actor(),
                recorded_at: now,
                ..last
            };
            let view = hold_view(&row, now)?;
            Ok((view, vec![Op::PutRegisterEntry(row)]))
        }
        .await;
        self.conclude(ev, res).await
    }
}

/// The retention job (`retention`, daily): records past their collection's retention period
/// (counted from creation or the last update, on the UTC calendar) are destroyed, or reduced to
/// their `non_personal` fields with every earlier version destroyed — held data excepted. A
/// batch per unit with a `record.retention` entry in the tenant's log; the cursor (tenant,
/// collection, last record) lets a killed run resume where it stopped.
pub struct Retention;

/// Where a retention run stands: the tenant and collection being read, and the last record.
fn retention_cursor(c: Option<&str>) -> (String, String, Option<RecordId>) {
    let mut parts = c.unwrap_or("").splitn(3, '|');
    let tenant = parts.next().unwrap_or("").to_owned();
    let collection = parts.next().unwrap_or("").to_owned();
    let last = parts.next().and_then(RecordId::parse);
    (tenant, collection, last)
}

#[async_trait]
impl JobKind for Retention {
    fn kind(&self) -> &'static str {
        "retention"
    }

    async fn step(&self, vault: &Vault, job: &JobRow) -> Result<Step> {
        use proto::{Classification, RetentionAction, RetentionFrom};
        if let Some(tries) = scrub_tries(job) {
            return scrubbed(vault, job, tries).await;
        }
        let store = vault.store();
        let now = vault.now();
        let (at_tenant, at_collection, mut after) = retention_cursor(job.cursor.as_deref());
        for tenant in store.find_tenant_ids().await? {
            if tenant.as_str() < at_tenant.as_str() {
                continue;
            }
            let held = vault.held(&tenant, now).await?;
            let mut collections = store.find_collections(&tenant).await?;
            collections.sort_by(|a, b| a.name.cmp(&b.name));
            for c in collections {
                let resumed = tenant.as_str() == at_tenant && c.name == at_collection;
                if tenant.as_str() == at_tenant && c.name.as_str() < at_collection.as_str() {
                    continue;
                }
                if !resumed {
                    after = None;
                }
                let Some(rule) = c.def.retention.clone() else {
                    continue;
                };
                if held.collections.contains(&c.name) {
                    continue;
                }
                let cutoff = crate::retention::cutoff(&rule.period, now)?;
                let by_updated = rule.from == RetentionFrom::Updated;
                loop {
                    let page = store
                        .find_expired(
                            &tenant,
                            &c.name,
                            by_updated,
                            cutoff,
                            after.as_ref(),
                            PURGE_BATCH,
                        )
                        .await?;
                    let Some(last) = page.last() else { break };
                    let last_id = last.id.clone();
                    after = Some(last_id.clone());
                    let rows: Vec<_> = page
                        .into_iter()
                        .filter(|r| !held.subjects.contains(&r.subject))
                        .collect();
                    let mut ops = Vec::new();
                    let mut touched = Vec::new();
                    let mut destroyed = Vec::new();
                    match rule.action {
                        RetentionAction::Purge => {
                            for r in &rows {
                                ops.push(Op::BlockRecord {
                                    tenant: tenant.clone(),
                                    id: r.id.clone(),
                                    expected_version: r.version,
                                    at: now,
                                });
                                touched.push(r.id.clone());
                            }
                            if !touched.is_empty() {
                                ops.push(Op::PurgeRecords {
                                    tenant: tenant.clone(),
                                    ids: touched.clone(),
                                });
                                let subjects: Vec<&SubjectId> =
                                    rows.iter().map(|r| &r.subject).collect();
                                destroyed = orphans(vault, &tenant, &subjects).await?;
                                ops.extend(destroyed.iter().map(|s| Op::DestroySubject {
                                    tenant: tenant.clone(),
                                    subject: s.clone(),
                                }));
                            }
                        }
                        RetentionAction::KeepNonPersonal => {
                            let keep = |name: &str| {
                                c.def.fields.iter().any(|f| {
                                    f.name == name
                                        && f.classification == Classification::NonPersonal
                                })
                            };
                            for r in rows {
                                let sealed = crate::codec::decode(&r.data)?;
                                let history = store.find_record_history(&tenant, &r.id).await?;
                                if sealed.iter().all(|(n, _)| keep(n)) && history.is_empty() {
                                    continue; // reduced already
                                }
                                let reindex = c
                                    .def
                                    .fields
                                    .iter()
                                    .filter(|f| f.searchable && !keep(&f.name))
                                    .map(|f| (f.name.clone(), None))
                                    .collect();
                                let kept: Vec<_> =
                                    sealed.into_iter().filter(|(n, _)| keep(n)).collect();
                                let id = r.id.clone();
                                ops.push(Op::UpdateRecord {
                                    row: crate::store::RecordRow {
                                        version: r.version + 1,
                                        updated_at: now,
                                        data: crate::codec::encode(&kept),
                                        ..r
                                    },
                                    reindex,
                                });
                                ops.push(Op::PruneHistory {
                                    tenant: tenant.clone(),
                                    id: id.clone(),
                                    below: u64::MAX,
                                });
                                touched.push(id);
                            }
                        }
                    }
                    if ops.is_empty() {
                        continue;
                    }
                    let mut ev = AuditEvent::new(
                        Some(tenant.clone()),
                        now,
                        RequestId::generate(vault.rng()),
                        "system:jobs".into(),
                        "record.retention",
                    );
                    ev.collection = Some(c.name.clone());
                    ev.records = touched.clone();
                    ev.objects = vec![
                        format!(
                            "action:{}",
                            match rule.action {
                                RetentionAction::Purge => "purge",
                                RetentionAction::KeepNonPersonal => "keep_non_personal",
                            }
                        ),
                        format!("records:{}", touched.len()),
                        format!("keys_destroyed:{}", destroyed.len()),
                    ];
                    ev.objects.extend(destroyed.iter().map(ToString::to_string));
                    vault.forget_subjects(&tenant, &destroyed);
                    let done = job.done + touched.len() as u64;
                    return Ok(Step {
                        ops,
                        audit: vec![ev],
                        done,
                        total: None,
                        cursor: Some(format!("{tenant}|{}|{last_id}", c.name)),
                        finished: false,
                    });
                }
            }
        }
        scrubbed(vault, job, 0).await
    }
}
