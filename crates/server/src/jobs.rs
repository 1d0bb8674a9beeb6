//! The kinds of background job this server runs on the core job runner, and the loop that
//! runs what is due: `audit.verify` (every log verified and the result recorded as evidence,
//! daily by default), `compliance.alerts` (overdue register items raised once a minute) and
//! `purge` (deleted records past their grace period destroyed, hourly) and `retention` (records
//! past their collection's retention period destroyed or reduced, daily).
//! Later issues add their kinds here (purge, retention, rotation, backups).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use strongroom_core::ids::TenantId;
use strongroom_core::jobs::{JobKind, Runner, Step};
use strongroom_core::rng::RngExt;
use strongroom_core::store::JobRow;
use strongroom_core::{Code, Error, Vault};
use tokio::sync::watch;

use crate::audit_tools::{self, VerifyError};

/// Verifies every audit log and records the result (IN-02's evidence).
pub struct AuditVerify;

#[async_trait]
impl JobKind for AuditVerify {
    fn kind(&self) -> &'static str {
        "audit.verify"
    }
    async fn step(&self, vault: &Vault, _: &JobRow) -> strongroom_core::Result<Step> {
        match audit_tools::verify_and_record(vault).await {
            Ok(_) => {
                tracing::info!("scheduled audit verification: intact");
                Ok(Step::finished())
            }
            Err(VerifyError::Failed(f)) => {
                tracing::error!(alert = "audit_verification_failed", error = %f, "scheduled audit verification failed");
                Err(Error::new(
                    Code::IntegrityError,
                    "the audit log failed verification: run `strongroom audit verify` for the details",
                ))
            }
            Err(VerifyError::Unreadable(e)) => {
                tracing::error!(error = %e, "scheduled audit verification could not read the log");
                Err(Error::new(
                    Code::Unavailable,
                    "the audit log could not be read",
                ))
            }
        }
    }
}

/// Raises overdue register items as alerts (the reminders of OR-01, OR-02, OR-03, OR-07).
pub struct ComplianceAlerts;

#[async_trait]
impl JobKind for ComplianceAlerts {
    fn kind(&self) -> &'static str {
        "compliance.alerts"
    }
    async fn step(&self, vault: &Vault, _: &JobRow) -> strongroom_core::Result<Step> {
        raise_compliance_alerts(vault, vault.now()).await?;
        Ok(Step::finished())
    }
}

/// Every kind this server runs.
pub fn kinds() -> Vec<Arc<dyn JobKind>> {
    vec![
        Arc::new(AuditVerify),
        Arc::new(ComplianceAlerts),
        Arc::new(strongroom_core::vault::Purge),
        Arc::new(strongroom_core::vault::Retention),
        Arc::new(strongroom_core::vault::ExportExpiry),
        Arc::new(strongroom_core::vault::ClosedLogs),
    ]
}

/// A runner for this process (its own node name) with the server's jobs ensured: the audit
/// verification every `verify_every` (none: only when asked), first due a period after the
/// last one recorded; the reminders every minute.
pub async fn runner(
    vault: &Vault,
    verify_every: Option<Duration>,
) -> strongroom_core::Result<Runner> {
    let node = format!("node_{}", strongroom_crypto::hex(&vault.rng().array::<8>()));
    let runner = Runner::new(node, kinds());
    let now = vault.now();
    let every_ms = verify_every.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let last = vault
        .store()
        .get_meta(strongroom_core::audit::META_LAST_VERIFY)
        .await?
        .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
        .and_then(|v| v["at"].as_i64());
    let first = if every_ms > 0 {
        last.unwrap_or(now).saturating_add(every_ms)
    } else {
        i64::MAX
    };
    runner
        .ensure(vault, JobRow::new("audit.verify", None, every_ms, first))
        .await?;
    runner
        .ensure(vault, JobRow::new("compliance.alerts", None, 60_000, now))
        .await?;
    // Deleted records past their grace period: hourly.
    runner
        .ensure(vault, JobRow::new("purge", None, 3_600_000, now))
        .await?;
    // Exports past their expiry: hourly (a download after expiry is refused in any case).
    runner
        .ensure(vault, JobRow::new("exports.expire", None, 3_600_000, now))
        .await?;
    // Offboarded tenants' closed audit logs past their retention: daily.
    runner
        .ensure(
            vault,
            JobRow::new("audit.closed_logs", None, 86_400_000, now),
        )
        .await?;
    // Records past their collection's retention period: daily.
    runner
        .ensure(vault, JobRow::new("retention", None, 86_400_000, now))
        .await?;
    Ok(runner)
}

/// Real-time waits between paced batches, on tokio's timer.
pub fn sleep() -> strongroom_core::jobs::Sleep {
    Arc::new(|d| Box::pin(tokio::time::sleep(d)))
}

/// Runs what is due, checking every second (real time) against the vault's clock.
pub async fn run_loop(vault: Arc<Vault>, runner: Runner, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = runner.run_due(&vault).await {
            tracing::error!(error = %e, "the job runner could not run");
        }
    }
}

/// Raises each overdue register item once: an `alert` log line for the operator's monitoring
/// and a `compliance.alert` entry in the log of its scope — the platform's for the platform's
/// registers, a tenant's for what concerns it (its own registers, the incidents naming it) —
/// which the SIEM stream carries. What was raised is kept in the store with the entries (one
/// unit), so a restart does not raise it again; an item no longer overdue is forgotten, and a
/// new deadline is a new alert.
async fn raise_compliance_alerts(vault: &Vault, now: i64) -> strongroom_core::Result<()> {
    let known: BTreeSet<String> = vault.raised_alerts().await?.into_iter().collect();
    let mut scopes: Vec<Option<TenantId>> = vec![None];
    scopes.extend(vault.store().find_tenant_ids().await?.into_iter().map(Some));
    let mut current = BTreeSet::new();
    let mut fresh = Vec::new();
    for scope in scopes {
        let alerts = strongroom_compliance::registers::alerts(vault, scope.as_ref(), now).await?;
        let label = scope
            .as_ref()
            .map_or("platform", TenantId::as_str)
            .to_owned();
        // Into a tenant's log: its own registers' items and the incidents that name it (the
        // platform's other items are the platform's). A subprocessor change is a notice,
        // already in the tenant's log, not an alert.
        let concerns = |a: &strongroom_proto::ComplianceAlert| {
            a.kind != "subprocessor_change"
                && (a.scope == label || (scope.is_some() && a.kind == "incident_overdue"))
        };
        for a in alerts.into_iter().filter(concerns) {
            let key = format!("{label}|{}|{}|{}", a.kind, a.entry, a.due);
            if !known.contains(&key) {
                tracing::error!(
                    alert = a.kind.as_str(),
                    scope = label.as_str(),
                    entry = a.entry.as_str(),
                    "{}",
                    a.what
                );
                fresh.push((
                    scope.clone(),
                    vec![a.entry, a.kind, format!("due:{}", a.due)],
                ));
            }
            current.insert(key);
        }
    }
    if fresh.is_empty() && current == known {
        return Ok(());
    }
    let list: Vec<String> = current.into_iter().collect();
    vault.record_alerts(&list, fresh).await
}
