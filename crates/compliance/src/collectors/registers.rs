//! Collectors of the measures the registers evidence: subprocessors (OR-02) and transfers
//! (TR-02).

use async_trait::async_trait;
use strongroom_proto::TransferSafeguard;

use super::unreadable;
use crate::catalogue::Measure;
use crate::evidence::{Collector, Context, Finding, Status};
use crate::subprocessors;

/// The subprocessors in use (not ended) that the scope's report covers.
async fn active(ctx: &Context<'_>) -> Option<Vec<strongroom_proto::Subprocessor>> {
    let all = subprocessors::current(ctx.vault, ctx.scope.tenant(), ctx.now)
        .await
        .ok()?;
    Some(
        all.into_iter()
            .map(|e| e.view)
            .filter(|s| s.subprocessor.ended_at.is_none())
            .collect(),
    )
}

pub struct Subprocessors;
#[async_trait]
impl Collector for Subprocessors {
    fn name(&self) -> &'static str {
        "subprocessors"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let Some(active) = active(ctx).await else {
            return unreadable("the subprocessor register");
        };
        let how = "Subprocessors are registered with their service, data categories, country, \
                   transfer safeguard, data processing agreement and evaluation dates; every \
                   change of the platform's register is announced to each tenant, who may \
                   object within the window; an evaluation past due raises an alert.";
        if active.is_empty() {
            return Finding::new(Status::Gap, how).missing(
                "no subprocessor is registered (if there is none, declare that for OR-02)",
            );
        }
        let n = active.len();
        let overdue = active.iter().filter(|s| s.evaluation_overdue).count();
        let never = active
            .iter()
            .filter(|s| s.subprocessor.last_evaluated_at.is_none())
            .count();
        let no_dpa = active
            .iter()
            .filter(|s| s.subprocessor.dpa_signed_at.is_none())
            .count();
        let good = active
            .iter()
            .filter(|s| !s.evaluation_overdue && s.subprocessor.last_evaluated_at.is_some())
            .count();
        let objected: u32 = active.iter().map(|s| s.objections).sum();
        let mut f = Finding::new(Status::Met, how)
            .with("subprocessors in use", n, "subprocessor register", ctx.now)
            .with(
                "evaluated and not yet due again",
                format!("{good} of {n}"),
                "subprocessor register",
                ctx.now,
            )
            .with(
                "objections to the current versions",
                objected,
                "subprocessor register",
                ctx.now,
            );
        for (count, what) in [
            (overdue, "past their evaluation date"),
            (never, "never evaluated"),
            (no_dpa, "without a data processing agreement on record"),
        ] {
            if count > 0 {
                f = f.missing(format!("{count} of {n} subprocessors {what}"));
            }
        }
        f.settle()
    }
}

pub struct Transfers;
#[async_trait]
impl Collector for Transfers {
    fn name(&self) -> &'static str {
        "transfers"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let Some(active) = active(ctx).await else {
            return unreadable("the subprocessor register");
        };
        let how = "Each subprocessor's country is recorded; processing outside the EEA is a \
                   transfer and is listed with its safeguard (adequacy decision, standard \
                   contractual clauses or binding corporate rules).";
        if active.is_empty() {
            return Finding::new(Status::Gap, how)
                .missing("no subprocessor is registered, so no transfer is recorded either");
        }
        let transfers: Vec<_> = active.iter().filter(|s| s.transfer).collect();
        let mut f = Finding::new(Status::Met, how).with(
            "subprocessors outside the EEA",
            format!("{} of {}", transfers.len(), active.len()),
            "subprocessor register",
            ctx.now,
        );
        for s in &transfers {
            f = f.with(
                &format!("transfer to {}", s.subprocessor.country),
                format!(
                    "{} — {}",
                    s.subprocessor.name,
                    subprocessors::safeguard_name(s.subprocessor.safeguard)
                ),
                "subprocessor register",
                s.recorded_at,
            );
        }
        let unsafe_ = transfers
            .iter()
            .filter(|s| s.subprocessor.safeguard == TransferSafeguard::None)
            .count();
        if unsafe_ > 0 {
            f = f.missing(format!(
                "{unsafe_} of {} transfers outside the EEA without a safeguard",
                transfers.len()
            ));
        }
        f.settle()
    }
}

pub struct Ropa;
#[async_trait]
impl Collector for Ropa {
    fn name(&self) -> &'static str {
        "ropa"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let how = "The records of processing (Art. 30(2)) are derived per tenant from what the \
                   vault enforces — collections and their purposes, the categories of data \
                   (Art. 9 marked), the roles and keys that receive them, subprocessors and \
                   transfers — and exported as JSON, CSV and Markdown; names and contact \
                   details are free-text fields.";
        let tenants = match ctx.scope.tenant() {
            Some(t) => vec![t.clone()],
            None => match ctx.vault.store().find_tenant_ids().await {
                Ok(t) => t,
                Err(_) => return unreadable("the tenants"),
            },
        };
        let (mut activities, mut special, mut with_fields) = (0, 0, 0);
        for t in &tenants {
            let Ok(r) = crate::ropa::derive(ctx.vault, t, ctx.now).await else {
                return unreadable("the records of processing");
            };
            activities += r.activities.len();
            special += r.activities.iter().filter(|a| a.special_categories).count();
            with_fields += usize::from(!r.fields.is_empty());
        }
        let n = tenants.len();
        let mut f = Finding::new(Status::Met, how)
            .with(
                "controllers (tenants) with derived records",
                n,
                "collections, roles, registers",
                ctx.now,
            )
            .with(
                "processing activities (collections)",
                activities,
                "collection definitions",
                ctx.now,
            )
            .with(
                "of which with special categories (Art. 9)",
                special,
                "collection definitions",
                ctx.now,
            );
        if n - with_fields > 0 {
            f = f.missing(format!(
                "{} of {n} records lack the names and contact details of Art. 30(2)(a) (set the RoPA fields)",
                n - with_fields
            ));
        }
        f.settle()
    }
}

pub struct ConfigHistory;
#[async_trait]
impl Collector for ConfigHistory {
    fn name(&self) -> &'static str {
        "config_history"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let how = "Every change of a collection, role, security settings or tenant writes a \
                   snapshot to the configuration history in the same transaction as the change \
                   and its audit entry; the server records its own configuration (a redacted \
                   copy and its SHA-256) at start-up when it changed. GET /v1/config/history \
                   shows each version with who, when and the JSON Patch from the one before.";
        let Ok(platform) = crate::config_history::changes(ctx.vault, None).await else {
            return unreadable("the configuration history");
        };
        let own = match ctx.scope.tenant() {
            Some(t) => match crate::config_history::changes(ctx.vault, Some(t)).await {
                Ok(c) => c,
                Err(_) => return unreadable("the configuration history"),
            },
            None => platform.clone(),
        };
        let mut f = Finding::new(Status::Met, how).with(
            "changes recorded",
            own.len(),
            "configuration history",
            ctx.now,
        );
        if let Some(last) = own.last() {
            f = f.with(
                "latest change",
                format!("{} `{}` by {}", last.kind, last.name, last.recorded_by),
                "configuration history",
                last.recorded_at,
            );
        }
        match platform.iter().rev().find(|c| c.kind == "server") {
            Some(s) => {
                f = f.with(
                    "server configuration",
                    format!("SHA-256 {}", &s.sha256[..16]),
                    "configuration history",
                    s.recorded_at,
                )
            }
            None => f = f.missing(
                "the server's configuration has not been recorded yet (it is at its first start)",
            ),
        }
        f.settle()
    }
}

pub struct TomsReview;
#[async_trait]
impl Collector for TomsReview {
    fn name(&self) -> &'static str {
        "toms_review"
    }
    async fn collect(&self, ctx: &Context<'_>, m: &Measure) -> Finding {
        let how = "This document is generated from live evidence each time it is asked for: every \
                   measure with how it is met, its evidence and what is missing. Its review by a \
                   named owner is recorded in the declarations register under OR-06, with the \
                   date of the next one.";
        let Some(declared) = super::declarations_in_force(ctx).await else {
            return unreadable("the declarations register");
        };
        let f = Finding::new(Status::Met, how).with(
            "this report",
            "generated from live evidence",
            "strongroom",
            ctx.now,
        );
        let Some(review) = declared
            .iter()
            .filter(|d| d.measure == m.id)
            .max_by_key(|d| d.declared_at)
        else {
            return f
                .missing(
                    "no review of these measures is recorded: declare it under OR-06 with its owner \
                     and the date of the next review",
                )
                .settle();
        };
        let mut f = f.with(
            &format!("reviewed by {}", review.owner),
            format!("next review by {}", crate::render::date(review.review_by)),
            &format!("declaration {} v{}", review.id, review.version),
            review.declared_at,
        );
        let age_days = (ctx.now - review.declared_at) / 86_400_000;
        if review.review_by < ctx.now || age_days >= i64::from(m.freshness_days) {
            f.status = Status::Stale;
            return f.missing(format!(
                "the last review ({}) is more than a year old or past its next review date",
                crate::render::date(review.declared_at)
            ));
        }
        // The review is an organisational act the vault cannot observe: declared, not met.
        f.status = Status::Declared;
        f
    }
}
