//! Bulk delete and restore in two steps (IN-04): the first call names the records and answers
//! with their count and a confirmation token valid for five minutes; only a second call with
//! that token, by the same caller, acts — on exactly the records counted, and only once (the
//! token's use is a second version of its register entry, written in the same transaction as
//! the change, so two confirmations cannot both win). A bulk operation above 100 records raises
//! an alert.

use serde::{Deserialize, Serialize};
use strongroom_proto as proto;

use super::{RequestCtx, Term, Vault};
use crate::audit::AuditEvent;
use crate::error::{Code, Error, Result};
use crate::ids::{BulkId, RecordId, TenantId};
use crate::store::{Op, RecordState, RegisterEntryRow};

/// The register pending confirmations are kept in (a tenant's scope, sealed).
pub const BULK: &str = "bulk_confirmations";
/// How long a confirmation token is valid.
pub const BULK_TTL_MS: i64 = 5 * 60_000;
/// Records above which a bulk operation raises an alert.
pub const BULK_ALERT_THRESHOLD: usize = 100;
const BULK_MAX: usize = 10_000;

/// What a bulk call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkOp {
    Delete,
    Restore,
}

impl BulkOp {
    fn action(self, confirmed: bool) -> &'static str {
        match (self, confirmed) {
            (BulkOp::Delete, false) => "record.bulk_delete.prepare",
            (BulkOp::Delete, true) => "record.bulk_delete",
            (BulkOp::Restore, false) => "record.bulk_restore.prepare",
            (BulkOp::Restore, true) => "record.bulk_restore",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Pending {
    op: BulkOp,
    collection: String,
    ids: Vec<String>,
    actor: String,
    expires_at: i64,
    used_at: Option<i64>,
}

impl Vault {
    /// A bulk delete (`op` Delete: roles with the `delete` operation and, for `where`, `search`)
    /// or restore (the tenant's `admin`), first step or confirmation.
    pub async fn bulk(
        &self,
        ctx: &RequestCtx,
        collection: &str,
        op: BulkOp,
        req: proto::BulkRequest,
    ) -> Result<proto::BulkAnswer> {
        // A search by `where` is a read of its own, audited as such, before the bulk event.
        let from_search = match (&req.r#where, &req.confirm, op) {
            (Some(w), None, BulkOp::Delete) if req.ids.is_none() => {
                let terms = w
                    .iter()
                    .map(|(k, v)| (k.clone(), Term::Value(v.clone())))
                    .collect();
                let found = self
                    .search(ctx, collection, terms, Some(super::records::SEARCH_MAX))
                    .await?;
                Some(found.records.into_iter().map(|r| r.id).collect::<Vec<_>>())
            }
            _ => None,
        };
        let mut ev = self.event(ctx, op.action(req.confirm.is_some()));
        let mut alert = None;
        let res = async {
            let tenant = match op {
                BulkOp::Delete => {
                    self.prepare(ctx, &mut ev, collection, proto::Operation::Delete)
                        .await?
                        .tenant
                }
                BulkOp::Restore => {
                    let t = self.require_admin(ctx)?;
                    crate::schema::check_name("collection", collection)?;
                    ev.collection = Some(collection.to_owned());
                    if self.store.find_collection(&t, collection).await?.is_none() {
                        return Err(Error::new(Code::UnknownCollection, "no such collection"));
                    }
                    t
                }
            };
            let now = self.now();
            match req.confirm {
                None => {
                    let ids = match (req.ids, from_search, &req.r#where) {
                        (Some(ids), None, None) => ids,
                        (None, Some(ids), Some(_)) => ids,
                        _ => {
                            return Err(Error::invalid(
                                if op == BulkOp::Delete {
                                    "name the records with `ids` or `where` (one of them), or confirm with `confirm`"
                                } else {
                                    "name the records with `ids`, or confirm with `confirm`"
                                },
                            ))
                        }
                    };
                    let ids = self.check_bulk(&tenant, collection, op, &ids).await?;
                    ev.records = ids.clone();
                    let token = BulkId::generate_at(self.rng(), now).to_string();
                    let pending = Pending {
                        op,
                        collection: collection.to_owned(),
                        ids: ids.iter().map(ToString::to_string).collect(),
                        actor: ctx.principal.actor(),
                        expires_at: now + BULK_TTL_MS,
                        used_at: None,
                    };
                    ev.objects = vec![format!("count:{}", ids.len())];
                    let row = entry(&tenant, &token, 1, &pending, ctx, now)?;
                    Ok((
                        proto::BulkAnswer {
                            status: "confirm".into(),
                            count: ids.len() as u64,
                            token: Some(token),
                            expires_at: Some(pending.expires_at),
                        },
                        vec![Op::PutRegisterEntry(row)],
                    ))
                }
                Some(token) => {
                    if req.ids.is_some() || req.r#where.is_some() {
                        return Err(Error::invalid(
                            "a confirmation carries only `confirm`: it acts on the records counted",
                        ));
                    }
                    if BulkId::parse(&token).is_none() {
                        return Err(Error::new(Code::InvalidId, "`confirm` is not a confirmation token"));
                    }
                    ev.objects.push(token.clone());
                    let stale = |why: &str| {
                        Error::new(Code::PreconditionFailed, format!("{why}: ask again with the records"))
                    };
                    let rows = self.register_entries(BULK, Some(&tenant)).await?;
                    let last = rows
                        .into_iter()
                        .filter(|r| r.id == token)
                        .max_by_key(|r| r.version)
                        .ok_or_else(|| stale("no such confirmation"))?;
                    let mut pending: Pending =
                        serde_json::from_str(&last.body).map_err(|_| Error::integrity())?;
                    if pending.used_at.is_some() {
                        return Err(stale("this confirmation was used already"));
                    }
                    if pending.actor != ctx.principal.actor()
                        || pending.op != op
                        || pending.collection != collection
                    {
                        return Err(stale("this confirmation was issued for another caller or operation"));
                    }
                    if now > pending.expires_at {
                        return Err(stale("this confirmation has expired"));
                    }
                    let ids: Vec<RecordId> = pending
                        .ids
                        .iter()
                        .map(|i| RecordId::parse(i).ok_or_else(Error::integrity))
                        .collect::<Result<_>>()?;
                    let mut ops = Vec::with_capacity(ids.len() + 1);
                    for id in &ids {
                        let row = self
                            .store
                            .find_record(&tenant, collection, id)
                            .await?
                            .filter(|r| {
                                r.state
                                    == match op {
                                        BulkOp::Delete => RecordState::Active,
                                        BulkOp::Restore => RecordState::Blocked,
                                    }
                            })
                            .ok_or_else(|| stale("the records changed since the confirmation was issued"))?;
                        if op == BulkOp::Delete {
                            super::records::unrestricted(row.subject_flags)?;
                        }
                        ops.push(match op {
                            BulkOp::Delete => Op::BlockRecord {
                                tenant: tenant.clone(),
                                id: id.clone(),
                                expected_version: row.version,
                                at: now,
                            },
                            BulkOp::Restore => Op::RestoreRecord {
                                tenant: tenant.clone(),
                                id: id.clone(),
                                expected_version: row.version,
                            },
                        });
                    }
                    pending.used_at = Some(now);
                    ops.push(Op::PutRegisterEntry(entry(&tenant, &token, 2, &pending, ctx, now)?));
                    ev.records = ids.clone();
                    ev.objects.push(format!("count:{}", ids.len()));
                    if ids.len() > BULK_ALERT_THRESHOLD {
                        let mut a = AuditEvent::new(
                            Some(tenant.clone()),
                            now,
                            ev.request_id.clone(),
                            ev.actor.clone(),
                            "alert.bulk_operation",
                        );
                        a.collection = Some(collection.to_owned());
                        a.objects = vec![format!("count:{}", ids.len()), token.clone()];
                        alert = Some(a);
                    }
                    Ok((
                        proto::BulkAnswer {
                            status: "done".into(),
                            count: ids.len() as u64,
                            token: None,
                            expires_at: None,
                        },
                        ops,
                    ))
                }
            }
        }
        .await;
        if let Some(a) = &alert {
            tracing::error!(alert = "bulk_operation", action = ev.action, records = %a.objects[0], "a bulk operation above the threshold");
        }
        self.finish_with(ev, alert.into_iter().collect(), res).await
    }

    /// The records a first step names: each once, in the collection, in the state the
    /// operation acts on (active to delete, blocked to restore) — else an error, nothing kept.
    async fn check_bulk(
        &self,
        tenant: &TenantId,
        collection: &str,
        op: BulkOp,
        ids: &[String],
    ) -> Result<Vec<RecordId>> {
        if ids.is_empty() || ids.len() > BULK_MAX {
            return Err(Error::out_of_range(format!("name 1 to {BULK_MAX} records")));
        }
        let mut out = Vec::with_capacity(ids.len());
        let mut seen = std::collections::BTreeSet::new();
        for id in ids {
            let id = RecordId::parse(id).ok_or_else(|| {
                Error::new(Code::InvalidId, "not a record id (rec_ and 32 hex digits)")
            })?;
            if !seen.insert(id.clone()) {
                return Err(Error::invalid("a record is named twice"));
            }
            out.push(id);
        }
        let want = match op {
            BulkOp::Delete => RecordState::Active,
            BulkOp::Restore => RecordState::Blocked,
        };
        let mut missing = 0;
        for id in &out {
            let ok = self
                .store
                .find_record(tenant, collection, id)
                .await?
                .is_some_and(|r| r.state == want);
            missing += usize::from(!ok);
        }
        if missing > 0 {
            return Err(Error::new(
                Code::NotFound,
                format!(
                    "{missing} of the {} records are not {} records of this collection",
                    out.len(),
                    match op {
                        BulkOp::Delete => "live",
                        BulkOp::Restore => "deleted (restorable)",
                    }
                ),
            ));
        }
        Ok(out)
    }
}

fn entry(
    tenant: &TenantId,
    token: &str,
    version: u32,
    pending: &Pending,
    ctx: &RequestCtx,
    now: i64,
) -> Result<RegisterEntryRow> {
    Ok(RegisterEntryRow {
        register: BULK.into(),
        id: token.to_owned(),
        version,
        tenant: Some(tenant.clone()),
        body: serde_json::to_string(pending).map_err(|_| Error::internal())?,
        recorded_by: ctx.principal.actor(),
        recorded_at: now,
    })
}
