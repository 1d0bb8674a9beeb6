//! Reading the configuration history (AV-06) that the vault writes with every change of a
//! collection, role, settings or tenant and at start-up for the server's own configuration:
//! each entry with the JSON Patch (RFC 6902) from the previous version of the same object.

use std::collections::BTreeMap;

use strongroom_core::ids::TenantId;
use strongroom_core::vault::config_history::{ConfigSnapshot, CONFIG_REGISTER};
use strongroom_core::{Error, RequestCtx, Result, Vault};
use strongroom_proto as proto;

/// Every change of a scope, oldest first, each with its diff.
pub async fn changes(vault: &Vault, scope: Option<&TenantId>) -> Result<Vec<proto::ConfigChange>> {
    let rows = vault.register_entries(CONFIG_REGISTER, scope).await?;
    let mut snaps = Vec::with_capacity(rows.len());
    for r in rows {
        let snap: ConfigSnapshot = serde_json::from_str(&r.body).map_err(|_| Error::integrity())?;
        snaps.push((r, snap));
    }
    // In time order; within one millisecond, an object's own versions in their order.
    snaps.sort_by(|(a, x), (b, y)| {
        (a.recorded_at, x.version, &a.id).cmp(&(b.recorded_at, y.version, &b.id))
    });
    let mut previous: BTreeMap<(String, String), serde_json::Value> = BTreeMap::new();
    let mut out = Vec::with_capacity(snaps.len());
    for (r, snap) in snaps {
        let key = (snap.kind.clone(), snap.name.clone());
        let before = previous
            .get(&key)
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let diff = serde_json::to_value(json_patch::diff(&before, &snap.state))
            .map_err(|_| Error::internal())?;
        previous.insert(key, snap.state.clone());
        out.push(proto::ConfigChange {
            id: r.id,
            kind: snap.kind,
            name: snap.name,
            version: snap.version,
            sha256: snap.sha256,
            recorded_by: r.recorded_by,
            recorded_at: r.recorded_at,
            diff,
            state: snap.state,
        });
    }
    Ok(out)
}

/// The history the caller may read: a tenant's `admin`, `auditor` or `compliance` role its
/// own; operators and platform `compliance` keys the platform's or, naming it, a tenant's.
/// Filtered by `kind` and `name` when given; audited as `config.history`.
pub async fn history(
    vault: &Vault,
    ctx: &RequestCtx,
    tenant: Option<&str>,
    kind: Option<&str>,
    name: Option<&str>,
) -> Result<proto::ConfigHistory> {
    let scope = vault
        .authorize_compliance_report(ctx, "config.history", tenant)
        .await?;
    let changes = changes(vault, scope.as_ref())
        .await?
        .into_iter()
        .filter(|c| kind.is_none_or(|k| c.kind == k) && name.is_none_or(|n| c.name == n))
        .collect();
    Ok(proto::ConfigHistory {
        scope: scope.map_or_else(|| "platform".to_owned(), |t| t.to_string()),
        changes,
    })
}
