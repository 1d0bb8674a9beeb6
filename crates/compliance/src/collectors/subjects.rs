//! Collectors of the data-subject measures: requests tracked against their deadlines and
//! answered from the vault (OR-04), exports logged, expiring and deleted (TR-01).

use async_trait::async_trait;
use strongroom_core::ids::TenantId;
use strongroom_core::vault::ERASURES;

use super::unreadable;
use crate::catalogue::Measure;
use crate::evidence::{Collector, Context, Finding, Status};
use crate::subject_rights;

/// The tenants the scope covers: one, or every tenant.
async fn tenants(ctx: &Context<'_>) -> Option<Vec<TenantId>> {
    match ctx.scope.tenant() {
        Some(t) => Some(vec![t.clone()]),
        None => ctx.vault.store().find_tenant_ids().await.ok(),
    }
}

/// How many erasures the ledger records in the scope.
async fn erasures(ctx: &Context<'_>, tenants: &[TenantId]) -> Option<usize> {
    let mut n = 0;
    for t in tenants {
        n += ctx
            .vault
            .register_entries(ERASURES, Some(t))
            .await
            .ok()?
            .len();
    }
    Some(n)
}

pub struct Dsar;
#[async_trait]
impl Collector for Dsar {
    fn name(&self) -> &'static str {
        "dsar"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let how = "Data-subject requests are registered with their type, receipt, identity \
                   verification, deadline (one calendar month, extensible by two with a reason) \
                   and what answered them; overdue requests raise alerts. Access and \
                   portability are answered by an export of everything held of the subject \
                   (records, history, accesses, processing facts); erasure destroys the \
                   subject's key, records, history and index entries in one unit with its \
                   audit entry, and a signed receipt proves it offline.";
        let Some(tenants) = tenants(ctx).await else {
            return unreadable("the tenants");
        };
        let Some(erased) = erasures(ctx, &tenants).await else {
            return unreadable("the erasure ledger");
        };
        let mut requests = Vec::new();
        for t in &tenants {
            match subject_rights::current(ctx.vault, t, ctx.now).await {
                Ok(r) => requests.extend(r),
                Err(_) => return unreadable("the request register"),
            }
        }
        let (open, overdue, median) = subject_rights::figures(&requests);
        let mut f = Finding::new(Status::Met, how)
            .with(
                "requests registered",
                requests.len(),
                "request register",
                ctx.now,
            )
            .with("requests open", open, "request register", ctx.now)
            .with("requests overdue", overdue, "request register", ctx.now)
            .with(
                "median days to answer",
                median.map_or_else(|| "none closed yet".to_owned(), |m| format!("{m}")),
                "request register",
                ctx.now,
            )
            .with(
                "erasures with signed receipts",
                erased,
                "erasure ledger",
                ctx.now,
            );
        if overdue > 0 {
            f = f.missing(format!(
                "{overdue} data-subject request(s) are past their deadline"
            ));
        }
        f.settle()
    }
}

pub struct Exports;
#[async_trait]
impl Collector for Exports {
    fn name(&self) -> &'static str {
        "exports"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let how = "Every export of a subject's data is recorded in the export register with its \
                   recipient, purpose, request and expiry, and every download is an audit entry \
                   with its purpose; an export is sealed under the subject's key, downloadable \
                   as often as allowed (once by default) and deleted by the `exports.expire` \
                   job when it expires (7 days by default) — or with the subject's erasure.";
        let Some(tenants) = tenants(ctx).await else {
            return unreadable("the tenants");
        };
        let (mut made, mut late) = (0, 0);
        for t in &tenants {
            match subject_rights::export_figures(ctx.vault, t, ctx.now).await {
                Ok((m, l)) => {
                    made += m;
                    late += l;
                }
                Err(_) => return unreadable("the export register"),
            }
        }
        let mut f = Finding::new(Status::Met, how)
            .with("exports recorded", made, "export register", ctx.now)
            .with(
                "expired exports still stored a day later",
                late,
                "exports",
                ctx.now,
            );
        if late > 0 {
            f = f.missing(format!(
                "{late} expired export(s) were not deleted within a day: is the `exports.expire` job running?"
            ));
        }
        f.settle()
    }
}

pub struct Offboarding;
#[async_trait]
impl Collector for Offboarding {
    fn name(&self) -> &'static str {
        "offboarding"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let how = "At the end of a contract the tenant's admin and an operator — one asks, the \
                   other executes — offboard the tenant: a full archive of its data is written, \
                   sealed under a one-time token only the tenant's admin receives and deleted by \
                   its one download or after 30 days; then every record, key (KEKs and DEKs), \
                   definition and account of the tenant is destroyed in one unit, its audit log \
                   is closed by a final signed checkpoint, and a signed deletion certificate \
                   (verifiable offline) states the counts and the destroyed keys.";
        let Ok(rows) = ctx
            .vault
            .register_entries(strongroom_core::vault::OFFBOARDINGS, None)
            .await
        else {
            return unreadable("the offboarding register");
        };
        let mut done = 0;
        let mut pending = 0;
        for r in crate::registers::latest_entries(rows) {
            let Ok(e) = serde_json::from_str::<strongroom_core::vault::OffboardingEntry>(&r.body)
            else {
                return unreadable("the offboarding register");
            };
            if ctx.scope.tenant().is_some_and(|t| t.as_str() != e.tenant) {
                continue;
            }
            if e.executed_at.is_some() {
                done += 1;
            } else {
                pending += 1;
            }
        }
        Finding::new(Status::Met, how)
            .with(
                "deletion certificates issued",
                done,
                "offboarding register",
                ctx.now,
            )
            .with(
                "terminations awaiting the other party",
                pending,
                "offboarding register",
                ctx.now,
            )
    }
}
