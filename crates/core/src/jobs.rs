//! The job runner: everything that runs in the background (scheduled audit verification,
//! compliance reminders; later purges, retention, key rotation, backups) is a job — a row in
//! the store with its schedule, progress and lease — run by one node at a time, in batches, on
//! the vault's clock.
//!
//! A run: the node claims the job's lease (a conditional write: one node wins; an expired lease
//! is taken over), then asks the job's [`JobKind`] for one batch at a time. Each batch's effects
//! are committed in one unit with the job's new progress and a renewed lease, on the condition
//! that the node still holds the lease — so a batch is applied at most once, by the lease
//! holder, and a run interrupted anywhere (a `kill -9`, a lost lease) resumes from the last
//! committed cursor. A kind makes its batches idempotent with respect to that cursor.
//!
//! Pacing: a runner may be given a share of the time (`paced`). After each batch it waits, so
//! that its batches — the reading and the commit that holds the store's writer — take at most
//! that share of the time the run lasts. On SQLite every audited request needs the single
//! writer too; an unpaced purge of a large backlog would hold it most of the time. The wait is
//! measured on the vault's clock, so a test clock that does not move makes no wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::audit::AuditEvent;
use crate::error::{Code, Error, Result};
use crate::ids::RequestId;
use crate::store::{JobRow, JobState, Op, StoreError, UnitOfWork};
use crate::Vault;

/// How long a claimed lease lasts without renewal (each batch renews it).
pub const LEASE_MS: i64 = 60_000;
/// A failed run is retried after this long (or at its next schedule, if sooner).
pub const RETRY_MS: i64 = 5 * 60_000;
/// The longest wait between two batches of a paced run (well inside the lease).
pub const MAX_PAUSE_MS: i64 = 10_000;

/// One batch of a run.
pub struct Step {
    /// The batch's effects, committed with the job's progress.
    pub ops: Vec<Op>,
    pub audit: Vec<AuditEvent>,
    /// Progress after this batch.
    pub done: u64,
    pub total: Option<u64>,
    /// Where the next batch starts (`None` at the start).
    pub cursor: Option<String>,
    /// The run is complete.
    pub finished: bool,
}

impl Step {
    /// A run done in one batch with no effects of its own.
    pub fn finished() -> Self {
        Self {
            ops: Vec::new(),
            audit: Vec::new(),
            done: 1,
            total: Some(1),
            cursor: None,
            finished: true,
        }
    }
}

/// What a kind of job does.
#[async_trait]
pub trait JobKind: Send + Sync {
    /// The kind's name (`audit.verify`).
    fn kind(&self) -> &'static str;
    /// The next batch of `job`'s current run, from `job.cursor`.
    async fn step(&self, vault: &Vault, job: &JobRow) -> Result<Step>;
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Complete.
    Finished(JobRow),
    /// Another node holds the lease.
    Busy,
    /// The lease was lost during the run (another node took over); this node stopped.
    LeaseLost,
    /// A batch failed; the error is recorded on the job and it is retried later.
    Failed(JobRow),
}

/// Waits in real time between paced batches: given by the server (its runtime's timer; core
/// has no runtime of its own).
pub type Sleep = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Runs jobs on behalf of one node.
#[derive(Clone)]
pub struct Runner {
    node: String,
    kinds: Vec<Arc<dyn JobKind>>,
    /// Percent of the time a run's batches may take (100: no waiting).
    share: u8,
    sleep: Option<Sleep>,
}

impl Runner {
    /// `node` names this process in leases (unique per process).
    pub fn new(node: String, kinds: Vec<Arc<dyn JobKind>>) -> Self {
        Self {
            node,
            kinds,
            share: 100,
            sleep: None,
        }
    }

    /// Paces runs so their batches take at most `percent` (1–100) of the time, waiting with
    /// `sleep`.
    pub fn paced(mut self, percent: u8, sleep: Sleep) -> Self {
        self.share = percent.clamp(1, 100);
        self.sleep = Some(sleep);
        self
    }

    /// The wait after a batch that took `spent_ms`, so batches take this runner's share.
    pub fn pause_after(&self, spent_ms: i64) -> Duration {
        if self.share >= 100 || spent_ms <= 0 {
            return Duration::ZERO;
        }
        let share = i64::from(self.share);
        let ms = (spent_ms.saturating_mul(100 - share) / share).min(MAX_PAUSE_MS);
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn kind(&self, name: &str) -> Option<&Arc<dyn JobKind>> {
        self.kinds.iter().find(|k| k.kind() == name)
    }

    /// Creates `job` if it does not exist, and sets its schedule (moving its next run earlier
    /// if `job.next_run_at` is).
    pub async fn ensure(&self, vault: &Vault, job: JobRow) -> Result<()> {
        let schedule = Op::ScheduleJob {
            id: job.id.clone(),
            every_ms: job.every_ms,
            next_run_at: job.next_run_at,
        };
        vault
            .store()
            .commit(UnitOfWork {
                ops: vec![Op::EnsureJob(job), schedule],
                audit: vec![],
            })
            .await?;
        Ok(())
    }

    /// Runs every job due at the vault's current time whose kind this runner knows (and
    /// resumes those left running by a node whose lease expired). Returns each run's outcome.
    pub async fn run_due(&self, vault: &Vault) -> Result<Vec<(String, RunOutcome)>> {
        let now = vault.now();
        let mut out = Vec::new();
        for job in vault.store().find_jobs().await? {
            let due = match job.state {
                JobState::Running => !job.leased(now),
                JobState::Idle | JobState::Failed => job.next_run_at <= now,
            };
            if due && self.kind(&job.kind).is_some() {
                let outcome = self.run_claimed(vault, &job.id, false, &mut |_| {}).await?;
                out.push((job.id, outcome));
            }
        }
        Ok(out)
    }

    /// Runs one job now (whatever its schedule), calling `progress` after each batch.
    pub async fn run(
        &self,
        vault: &Vault,
        id: &str,
        progress: &mut (dyn FnMut(&JobRow) + Send),
    ) -> Result<RunOutcome> {
        self.run_claimed(vault, id, true, progress).await
    }

    /// Claims `id` — when `now_anyway` is true, making it due first (in the same unit, so a refused
    /// claim changes nothing) — and runs it.
    async fn run_claimed(
        &self,
        vault: &Vault,
        id: &str,
        now_anyway: bool,
        progress: &mut (dyn FnMut(&JobRow) + Send),
    ) -> Result<RunOutcome> {
        let store = vault.store();
        let now = vault.now();
        let mut ops = Vec::new();
        if now_anyway {
            let job = store
                .find_job(id)
                .await?
                .ok_or_else(|| Error::not_found("job"))?;
            ops.push(Op::ScheduleJob {
                id: id.to_owned(),
                every_ms: job.every_ms,
                next_run_at: now,
            });
        }
        ops.push(Op::ClaimJob {
            id: id.to_owned(),
            holder: self.node.clone(),
            now,
            until: now + LEASE_MS,
        });
        let claim = UnitOfWork { ops, audit: vec![] };
        match store.commit(claim).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return Ok(RunOutcome::Busy),
            Err(e) => return Err(e.into()),
        }
        loop {
            let job = store
                .find_job(id)
                .await?
                .ok_or_else(|| Error::not_found("job"))?;
            if job.lease_holder.as_deref() != Some(self.node.as_str()) {
                return Ok(RunOutcome::LeaseLost);
            }
            let kind = self
                .kind(&job.kind)
                .ok_or_else(|| Error::new(Code::NotFound, "no runner for this kind of job"))?;
            let started = vault.now();
            let step = kind.step(vault, &job).await;
            let now = vault.now();
            let mut next = job.clone();
            let (ops, audit, failed) = match step {
                Ok(step) => {
                    next.done = step.done;
                    next.total = step.total;
                    next.cursor = step.cursor;
                    if step.finished {
                        next.state = JobState::Idle;
                        next.runs += 1;
                        next.last_run_at = Some(now);
                        next.last_ok_at = Some(now);
                        next.last_error = None;
                        next.next_run_at = schedule_after(&job, now);
                        next.lease_holder = None;
                        next.lease_until = 0;
                    } else {
                        next.lease_until = now + LEASE_MS;
                    }
                    (step.ops, step.audit, false)
                }
                Err(e) => {
                    // The error's code and message only: messages carry no personal data.
                    tracing::error!(
                        alert = "job_failed",
                        job = id,
                        code = e.code.as_str(),
                        "{}",
                        e.message
                    );
                    next.state = JobState::Failed;
                    next.last_run_at = Some(now);
                    next.last_error = Some(format!("{}: {}", e.code.as_str(), e.message));
                    next.next_run_at = (now + RETRY_MS).min(schedule_after(&job, now));
                    next.lease_holder = None;
                    next.lease_until = 0;
                    let mut ev = AuditEvent::new(
                        job.tenant.clone(),
                        now,
                        RequestId::generate(vault.rng()),
                        format!("system:jobs:{}", self.node),
                        "job.failed",
                    );
                    ev.objects = vec![format!("job:{id}"), format!("code:{}", e.code.as_str())];
                    (Vec::new(), vec![ev], true)
                }
            };
            let mut ops = ops;
            ops.push(Op::SaveJob {
                holder: self.node.clone(),
                row: next.clone(),
            });
            match store.commit(UnitOfWork { ops, audit }).await {
                Ok(_) => {}
                Err(StoreError::Conflict("lease")) => return Ok(RunOutcome::LeaseLost),
                Err(e) => return Err(e.into()),
            }
            progress(&next);
            if failed {
                return Ok(RunOutcome::Failed(next));
            }
            if next.state == JobState::Idle {
                return Ok(RunOutcome::Finished(next));
            }
            let pause = self.pause_after(vault.now() - started);
            if let (false, Some(sleep)) = (pause.is_zero(), &self.sleep) {
                sleep(pause).await;
            }
        }
    }
}

/// When a job that ran at `now` is next due: after its period, or never (asked for only).
fn schedule_after(job: &JobRow, now: i64) -> i64 {
    if job.every_ms > 0 {
        now + job.every_ms
    } else {
        i64::MAX
    }
}

/// The view of a job.
pub fn view(job: &JobRow, now: i64) -> strongroom_proto::Job {
    strongroom_proto::Job {
        id: job.id.clone(),
        kind: job.kind.clone(),
        scope: job.tenant.as_ref().map_or_else(
            || crate::audit::PLATFORM_LOG.to_owned(),
            ToString::to_string,
        ),
        state: job.state.as_str().to_owned(),
        every_seconds: job.every_ms / 1000,
        next_run_at: (job.next_run_at != i64::MAX).then_some(job.next_run_at),
        done: job.done,
        total: job.total,
        started_at: job.started_at,
        last_run_at: job.last_run_at,
        last_ok_at: job.last_ok_at,
        last_error: job.last_error.clone(),
        runs: job.runs,
        running_on: job.leased(now).then(|| job.lease_holder.clone()).flatten(),
    }
}

impl Vault {
    /// The jobs `ctx` may see: every job for operators and platform `compliance` principals, a
    /// tenant's own for its `admin` (and `auditor`, `compliance`) roles.
    fn visible_jobs(&self, ctx: &crate::RequestCtx, jobs: Vec<JobRow>) -> Result<Vec<JobRow>> {
        use crate::policy::{ROLE_ADMIN, ROLE_AUDITOR, ROLE_COMPLIANCE};
        let p = &ctx.principal;
        if p.restricted_to.is_some() {
            return Err(Error::forbidden(
                "this session must first complete its pending step",
            ));
        }
        match &p.tenant {
            None if p.is_operator() || p.has_role(ROLE_COMPLIANCE) => Ok(jobs),
            Some(t)
                if [ROLE_ADMIN, ROLE_AUDITOR, ROLE_COMPLIANCE]
                    .iter()
                    .any(|r| p.has_role(r)) =>
            {
                Ok(jobs
                    .into_iter()
                    .filter(|j| j.tenant.as_ref() == Some(t))
                    .collect())
            }
            _ => Err(Error::forbidden(
                "jobs are seen by operators, and a tenant's own by its `admin`, `auditor` or `compliance` role",
            )),
        }
    }

    /// The jobs the caller may see; audited as `job.list`.
    pub async fn list_jobs(&self, ctx: &crate::RequestCtx) -> Result<strongroom_proto::JobList> {
        let ev = self.begin(ctx, "job.list");
        let res = async {
            let now = self.now();
            let jobs = self.visible_jobs(ctx, self.store().find_jobs().await?)?;
            let jobs = jobs.iter().map(|j| view(j, now)).collect();
            Ok((strongroom_proto::JobList { jobs }, vec![]))
        }
        .await;
        self.finish(ev, res).await
    }

    /// One job the caller may see (404 otherwise); audited as `job.get`.
    pub async fn get_job(
        &self,
        ctx: &crate::RequestCtx,
        id: &str,
    ) -> Result<strongroom_proto::Job> {
        let mut ev = self.begin(ctx, "job.get");
        let res = async {
            ev.objects.push(format!("job:{id}"));
            let found = self.store().find_job(id).await?.into_iter().collect();
            let job = self
                .visible_jobs(ctx, found)?
                .pop()
                .ok_or_else(|| Error::not_found("job"))?;
            Ok((view(&job, self.now()), vec![]))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Asks for a run of a job now (an operator, or a tenant's `admin` for its own jobs): the
    /// runner starts it at its next tick. Audited as `job.run_requested`.
    pub async fn request_job_run(
        &self,
        ctx: &crate::RequestCtx,
        id: &str,
    ) -> Result<strongroom_proto::Job> {
        use crate::policy::ROLE_ADMIN;
        let mut ev = self.begin(ctx, "job.run_requested");
        let res = async {
            ev.objects.push(format!("job:{id}"));
            let p = &ctx.principal;
            if !(p.is_operator() || (p.tenant.is_some() && p.has_role(ROLE_ADMIN))) {
                return Err(Error::forbidden(
                    "runs are asked for by operators, or by a tenant's `admin` for its own jobs",
                ));
            }
            let found = self.store().find_job(id).await?.into_iter().collect();
            let mut job = self
                .visible_jobs(ctx, found)?
                .pop()
                .ok_or_else(|| Error::not_found("job"))?;
            let now = self.now();
            job.next_run_at = job.next_run_at.min(now);
            let op = Op::ScheduleJob {
                id: job.id.clone(),
                every_ms: job.every_ms,
                next_run_at: now,
            };
            Ok((view(&job, now), vec![op]))
        }
        .await;
        self.finish(ev, res).await
    }
}
