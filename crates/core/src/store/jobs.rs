//! The job runner's area of the store: one row per job with its schedule, progress and lease.
//! A node runs a job only while it holds the lease (claimed with a conditional write that
//! succeeds for one node at a time, and taken over once it expires); every batch commits its
//! effects together with the job's progress under the condition that the lease is still the
//! node's — so a node that lost its lease (paused, partitioned, killed) cannot apply a batch,
//! and a restarted job resumes from the last committed cursor.

use async_trait::async_trait;

use crate::ids::TenantId;
use crate::store::StoreResult;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for its next run.
    Idle,
    /// A run started and has not ended: a node holds the lease, or held it and died (the next
    /// claim resumes from `cursor`).
    Running,
    /// The last run ended with an error; it is retried at `next_run_at`.
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Idle => "idle",
            JobState::Running => "running",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "idle" => JobState::Idle,
            "running" => JobState::Running,
            "failed" => JobState::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// `kind` for a platform job, `kind:tenant` for a tenant's.
    pub id: String,
    pub kind: String,
    pub tenant: Option<TenantId>,
    /// Run every this many ms (on the vault's clock); 0: only when asked.
    pub every_ms: i64,
    pub next_run_at: i64,
    pub state: JobState,
    /// Progress of the current (or last) run.
    pub done: u64,
    pub total: Option<u64>,
    /// Where the current run resumes (the kind's own format; never personal data).
    pub cursor: Option<String>,
    pub started_at: Option<i64>,
    pub last_run_at: Option<i64>,
    pub last_ok_at: Option<i64>,
    /// The last error's code and message (never personal data).
    pub last_error: Option<String>,
    /// Runs completed.
    pub runs: u64,
    /// The node holding the lease, and until when it holds it.
    pub lease_holder: Option<String>,
    pub lease_until: i64,
}

impl JobRow {
    /// A new job, first due at `first_run_at`.
    pub fn new(kind: &str, tenant: Option<TenantId>, every_ms: i64, first_run_at: i64) -> Self {
        Self {
            id: match &tenant {
                Some(t) => format!("{kind}:{t}"),
                None => kind.to_owned(),
            },
            kind: kind.to_owned(),
            tenant,
            every_ms,
            next_run_at: first_run_at,
            state: JobState::Idle,
            done: 0,
            total: None,
            cursor: None,
            started_at: None,
            last_run_at: None,
            last_ok_at: None,
            last_error: None,
            runs: 0,
            lease_holder: None,
            lease_until: 0,
        }
    }

    /// A node holds the lease at `now`.
    pub fn leased(&self, now: i64) -> bool {
        self.lease_holder.is_some() && self.lease_until > now
    }
}

/// Queries of the jobs.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Every job, by id.
    async fn find_jobs(&self) -> StoreResult<Vec<JobRow>>;
    async fn find_job(&self, id: &str) -> StoreResult<Option<JobRow>>;
}
