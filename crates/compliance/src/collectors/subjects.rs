//! Collectors of the data-subject measures: requests answered from the vault (OR-04). Erasure
//! with a signed receipt is built; the request register with its deadlines is not yet.

use async_trait::async_trait;
use strongroom_core::vault::ERASURES;

use super::unreadable;
use crate::catalogue::Measure;
use crate::evidence::{Collector, Context, Finding, Status};

/// How many erasures the ledger records in the scope (a tenant, or every tenant).
async fn erasures(ctx: &Context<'_>) -> Option<usize> {
    let tenants = match ctx.scope.tenant() {
        Some(t) => vec![t.clone()],
        None => ctx.vault.store().find_tenant_ids().await.ok()?,
    };
    let mut n = 0;
    for t in &tenants {
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
        let how = "Erasure requests are answered from the vault: the subject's records, their \
                   history and index entries and the subject's key are destroyed in one unit \
                   with its audit entry, and a signed receipt proves it offline; the erasure \
                   ledger keeps the opaque subject id, time and destroyed key id for restores.";
        let Some(n) = erasures(ctx).await else {
            return unreadable("the erasure ledger");
        };
        Finding::new(Status::Partial, how)
            .with(
                "erasures with signed receipts",
                n,
                "erasure ledger",
                ctx.now,
            )
            .missing(
                "the data-subject request register (received, identity verified, due in one \
                 month, extensions, status) is not built yet",
            )
            .missing("access and portability exports are not built yet")
    }
}
