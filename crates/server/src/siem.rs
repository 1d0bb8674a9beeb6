//! Streaming the audit trail to a SIEM: every new entry as a JSON line (its canonical body) to
//! stdout, a file or syslog, and alert lines for sensitive events — root-key use, lockouts,
//! large exports and bursts of denials. The stream follows the committed logs (it reads what the
//! store holds), so it never shows an entry that was not durably written.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use strongroom_core::Vault;
use strongroom_proto::AuditEntry;
use tokio::sync::watch;

const POLL: Duration = Duration::from_millis(200);
const BURST_WINDOW_MS: i64 = 60_000;

/// Where the stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    /// The local syslog socket (`/dev/log`), facility local0.
    Syslog,
    /// A file, appended to.
    File(PathBuf),
}

impl std::str::FromStr for Target {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "stdout" | "-" => Target::Stdout,
            "syslog" => Target::Syslog,
            path => Target::File(PathBuf::from(path)),
        })
    }
}

/// Thresholds of the alert rules.
#[derive(Debug, Clone)]
pub struct AlertRules {
    /// One read, search or batch returning at least this many records raises `large_export`.
    pub export_records: usize,
    /// This many denials by one actor within a minute raise `denial_burst`.
    pub denial_burst: usize,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            export_records: 500,
            denial_burst: 20,
        }
    }
}

pub enum Sink {
    Stdout,
    Syslog(UnixDatagram),
    File(std::fs::File),
}

impl Sink {
    pub fn open(target: &Target) -> std::io::Result<Self> {
        Ok(match target {
            Target::Stdout => Sink::Stdout,
            Target::Syslog => {
                let sock = UnixDatagram::unbound()?;
                sock.connect("/dev/log")?;
                Sink::Syslog(sock)
            }
            Target::File(p) => {
                use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
                // Audit data: owner-only, also when the file already existed.
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(p)?;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                Sink::File(f)
            }
        })
    }

    fn write(&mut self, line: &str, alert: bool) {
        let result = match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}").and_then(|_| out.flush())
            }
            // local0 (16 * 8) + warning (4) for alerts, info (6) for entries.
            Sink::Syslog(sock) => {
                let pri = if alert { 132 } else { 134 };
                sock.send(format!("<{pri}>strongroom: {line}").as_bytes())
                    .map(|_| ())
            }
            Sink::File(f) => writeln!(f, "{line}").and_then(|_| f.flush()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "could not write to the audit stream");
        }
    }
}

/// Evaluates the alert rules over the entries as they stream by.
struct Alerts {
    rules: AlertRules,
    denials: HashMap<String, VecDeque<i64>>,
}

impl Alerts {
    fn check(&mut self, e: &AuditEntry) -> Option<(&'static str, String)> {
        match e.action.as_str() {
            "vault.init" | "api_key.bootstrap" => {
                return Some((
                    "root_key_use",
                    "the root key was used to issue a bootstrap token".into(),
                ))
            }
            "audit.mismatch_accepted" => {
                return Some((
                    "audit_mismatch",
                    "the server was started on an audit log whose head, entries, checkpoints or witness disagree".into(),
                ))
            }
            "auth.lockout" => {
                return Some((
                    "lockout",
                    "an account was locked after repeated failures".into(),
                ))
            }
            _ => {}
        }
        if e.objects.iter().any(|o| o.starts_with("index_mismatch:")) {
            return Some((
                "integrity",
                "a search index entry did not match the record it points at (tampered or stale index); the record was left out".into(),
            ));
        }
        if e.outcome == "ok"
            && e.action.starts_with("record.")
            && e.records.len() >= self.rules.export_records
        {
            return Some((
                "large_export",
                format!("{} records in one request", e.records.len()),
            ));
        }
        if e.outcome == "denied" {
            let times = self.denials.entry(e.actor.clone()).or_default();
            times.push_back(e.time);
            while times.front().is_some_and(|t| e.time - t >= BURST_WINDOW_MS) {
                times.pop_front();
            }
            if times.len() >= self.rules.denial_burst {
                times.clear();
                return Some((
                    "denial_burst",
                    format!("{} denials within a minute", self.rules.denial_burst),
                ));
            }
        }
        None
    }
}

/// Where each log stands now: the stream starts after these entries.
pub async fn cursors(vault: &Vault) -> Result<HashMap<String, u64>, String> {
    Ok(vault
        .store()
        .find_audit_heads()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(log, h)| (log, h.size))
        .collect())
}

/// Streams entries written after `cursors` (taken when the server started, before its start-up
/// checks, so that what those record is streamed too), until shutdown.
pub async fn run(
    vault: Arc<Vault>,
    mut sink: Sink,
    rules: AlertRules,
    mut cursors: HashMap<String, u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let store = vault.store().clone();
    let mut alerts = Alerts {
        rules,
        denials: HashMap::new(),
    };
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(POLL) => false,
            _ = shutdown.changed() => true,
        };
        let heads = match store.find_audit_heads().await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "the audit stream could not read the logs");
                continue;
            }
        };
        for (log, head) in heads {
            let cursor = cursors.entry(log.clone()).or_insert(0);
            while *cursor < head.size {
                let Ok(batch) = store.find_audit_raw(&log, *cursor, 1000).await else {
                    break;
                };
                let Some(last) = batch.last().map(|b| b.0) else {
                    break;
                };
                for (_, body, _) in &batch {
                    sink.write(body, false);
                    if let Ok(entry) = serde_json::from_str::<AuditEntry>(body) {
                        if let Some((rule, detail)) = alerts.check(&entry) {
                            let line = json!({"alert": rule, "detail": detail, "log": entry.log, "seq": entry.seq,
                                "time": entry.time, "actor": entry.actor, "action": entry.action});
                            sink.write(&line.to_string(), true);
                        }
                    }
                }
                *cursor = last;
            }
        }
        if stopping {
            return;
        }
    }
}
