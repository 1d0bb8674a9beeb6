//! The configuration history (AV-06): every unit that changes a collection, a role, security
//! settings or a tenant also writes a snapshot of the new state to the `config` register, in
//! the same unit (so no change can land without its history entry, and no feature can forget
//! to write one); the server records its own configuration at start-up (a redacted copy and
//! its hash) when it differs from the last one. Each entry is a full snapshot: the difference
//! to the previous version of the same object is computed when read.

use serde::{Deserialize, Serialize};

use super::Vault;
use crate::audit::{AuditEvent, PLATFORM_LOG};
use crate::ids::{ConfigChangeId, RequestId, TenantId};
use crate::store::{Op, RegisterEntryRow, UnitOfWork};
use crate::Result;

/// The register the history is kept in.
pub const CONFIG_REGISTER: &str = "config";

/// What a history entry records: which object, its version where it has one, and its state
/// after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSnapshot {
    /// `collection`, `role`, `settings`, `tenant` or `server`.
    pub kind: String,
    pub name: String,
    pub version: Option<u64>,
    pub state: serde_json::Value,
    /// SHA-256 (hex) of the canonical state: identifies a configuration.
    pub sha256: String,
}

impl ConfigSnapshot {
    pub fn new(kind: &str, name: &str, version: Option<u64>, state: serde_json::Value) -> Self {
        // serde_json's maps are sorted (no `preserve_order`): the text is canonical.
        let text = state.to_string();
        Self {
            kind: kind.to_owned(),
            name: name.to_owned(),
            version,
            sha256: strongroom_crypto::hex(&strongroom_crypto::sha256(text.as_bytes())),
            state,
        }
    }
}

fn snapshot_of(op: &Op) -> Option<(Option<TenantId>, ConfigSnapshot)> {
    Some(match op {
        Op::PutCollection { row, .. } => (
            Some(row.tenant.clone()),
            ConfigSnapshot::new("collection", &row.name, Some(row.version), json(&row.def)),
        ),
        Op::PutRole { row, .. } => (
            Some(row.tenant.clone()),
            ConfigSnapshot::new("role", &row.name, Some(row.version), json(&row.def)),
        ),
        Op::PutSettings { scope, settings } => (
            if scope == PLATFORM_LOG {
                None
            } else {
                Some(TenantId::parse(scope)?)
            },
            ConfigSnapshot::new("settings", scope, None, json(settings)),
        ),
        Op::InsertTenant(t) => (
            None,
            ConfigSnapshot::new(
                "tenant",
                t.id.as_str(),
                Some(1),
                serde_json::json!({"name": t.name, "created_at": t.created_at}),
            ),
        ),
        _ => return None,
    })
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn row(
    vault: &Vault,
    tenant: Option<TenantId>,
    snap: &ConfigSnapshot,
    actor: &str,
    now: i64,
) -> Option<RegisterEntryRow> {
    Some(RegisterEntryRow {
        register: CONFIG_REGISTER.into(),
        id: ConfigChangeId::generate_at(vault.rng.as_ref(), now).to_string(),
        version: 1,
        tenant,
        body: serde_json::to_string(snap).ok()?,
        recorded_by: actor.to_owned(),
        recorded_at: now,
    })
}

impl Vault {
    /// The history entries of the configuration changes among `ops`, by `ev`'s actor.
    pub(super) fn config_history(&self, ev: &AuditEvent, ops: &[Op]) -> Vec<Op> {
        ops.iter()
            .filter_map(snapshot_of)
            .filter_map(|(tenant, snap)| row(self, tenant, &snap, &ev.actor, ev.time))
            .map(Op::PutRegisterEntry)
            .collect()
    }

    /// Records the server's own configuration (already redacted: no secret may be in `state`)
    /// when it differs from the last one recorded; audited as `config.server`. Returns whether
    /// it was recorded.
    pub async fn record_server_config(&self, state: serde_json::Value) -> Result<bool> {
        let last = self
            .register_entries(CONFIG_REGISTER, None)
            .await?
            .into_iter()
            .filter_map(|r| {
                serde_json::from_str::<ConfigSnapshot>(&r.body)
                    .ok()
                    .map(|s| (r, s))
            })
            .filter(|(_, s)| s.kind == "server")
            .max_by_key(|(r, s)| (r.recorded_at, s.version));
        // Server configurations are numbered: the first recorded is version 1.
        let version = last.as_ref().and_then(|(_, s)| s.version).unwrap_or(0) + 1;
        let snap = ConfigSnapshot::new("server", "server", Some(version), state);
        if last.is_some_and(|(_, s)| s.sha256 == snap.sha256) {
            return Ok(false);
        }
        let now = self.now();
        let mut ev = AuditEvent::new(
            None,
            now,
            RequestId::generate(self.rng.as_ref()),
            "system".to_owned(),
            "config.server",
        );
        ev.objects = vec![format!("sha256:{}", snap.sha256)];
        let Some(entry) = row(self, None, &snap, "system", now) else {
            return Err(crate::Error::internal());
        };
        let mut ops = vec![Op::PutRegisterEntry(entry)];
        self.seal_registers(&mut ops);
        self.store
            .commit(UnitOfWork {
                ops,
                audit: vec![ev],
            })
            .await?;
        Ok(true)
    }
}
