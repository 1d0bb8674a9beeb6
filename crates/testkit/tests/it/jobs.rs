//! The job runner through a real server and its store: what runs in the background is listed
//! and can be asked for; a run killed between batches is resumed by another node once its lease
//! expires, every batch applied exactly once; a node that lost its lease cannot apply a batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use strongroom_core::jobs::{JobKind, RunOutcome, Runner, Step, LEASE_MS};
use strongroom_core::store::{JobRow, JobState, Op, RegisterEntryRow};
use strongroom_core::Vault;
use strongroom_server::ServeOptions;
use strongroom_testkit::TestVault;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_jobs_are_listed_and_run_when_asked() {
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    })
    .await;
    let (t, app) = v.scenario("acme").await;
    let list = v.get("/v1/jobs", &v.operator, None).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let ids: Vec<&str> = list.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "audit.closed_logs",
            "audit.verify",
            "compliance.alerts",
            "exports.expire",
            "purge",
            "retention"
        ]
    );
    assert!(
        list.body["jobs"][1]["next_run_at"].is_null(),
        "verification only when asked"
    );
    // A tenant sees its own jobs only (none yet); an application none at all.
    let mine = v.get("/v1/jobs", &t.admin, None).await;
    assert_eq!(mine.body["jobs"], json!([]), "{}", mine.text);
    assert_eq!(v.get("/v1/jobs", &app, None).await.status, 403);
    assert_eq!(
        v.post("/v1/jobs/audit.verify/run", &t.admin, None, json!({}))
            .await
            .status,
        404,
        "a tenant cannot see, so cannot run, the platform's jobs"
    );
    assert_eq!(
        v.get("/v1/jobs/no.such", &v.operator, None).await.status,
        404
    );
    // Asked for: the verification runs within a second or two, and IN-02 follows.
    let r = v
        .post("/v1/jobs/audit.verify/run", &v.operator, None, json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let mut job = json!(null);
    for _ in 0..50 {
        job = v.get("/v1/jobs/audit.verify", &v.operator, None).await.body;
        if job["runs"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        (job["runs"].as_u64(), job["state"].as_str()),
        (Some(1), Some("idle")),
        "{job}"
    );
    assert!(job["last_ok_at"].is_i64(), "{job}");
    let rep = v
        .get("/v1/compliance/toms?format=json", &v.operator, None)
        .await;
    let in02 = rep.body["report"]["measures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "IN-02")
        .unwrap()
        .clone();
    assert_eq!(in02["status"], "met", "{in02}");
    // Asking is audited.
    let log = v
        .get(
            "/v1/audit/entries?action=job.run_requested",
            &v.operator,
            None,
        )
        .await;
    assert_eq!(
        log.body["entries"].as_array().unwrap().len(),
        1,
        "{}",
        log.text
    );
}

/// A kind that writes one register row per batch (a second write of the same batch would be
/// a conflict) and can be told to hang before a given batch, as a process that was killed.
struct Count {
    total: u64,
    hang_at: Option<u64>,
    steps: AtomicU64,
}

#[async_trait]
impl JobKind for Count {
    fn kind(&self) -> &'static str {
        "test.count"
    }
    async fn step(&self, vault: &Vault, job: &JobRow) -> strongroom_core::Result<Step> {
        let i: u64 = job.cursor.as_deref().map_or(0, |c| c.parse().unwrap());
        if self.hang_at == Some(i) {
            std::future::pending::<()>().await;
        }
        self.steps.fetch_add(1, Ordering::SeqCst);
        let row = RegisterEntryRow {
            register: "test.count".into(),
            id: format!("batch{i:04}"),
            version: 1,
            tenant: None,
            body: "{}".into(),
            recorded_by: "test".into(),
            recorded_at: vault.now(),
        };
        Ok(Step {
            ops: vec![Op::PutRegisterEntry(row)],
            audit: vec![],
            done: i + 1,
            total: Some(self.total),
            cursor: Some((i + 1).to_string()),
            finished: i + 1 == self.total,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_is_resumed_elsewhere_with_every_batch_applied_once() {
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    })
    .await;
    let vault = v.running_vault();
    killed_run_resumes(vault.clone(), vault, &|ms| v.clock.advance_ms(ms)).await;
    v.assert_audit_verifies().await;
}

/// Node A (on `a`) runs seven batches of a twenty-batch job and hangs (killed, as far as the
/// store can tell); node B (on `b`, whose clock `advance_b` moves) cannot take it while A's
/// lease holds, then resumes it at batch 7 and finishes; every batch is applied exactly once
/// and A could no longer apply one.
pub(crate) async fn killed_run_resumes(a: Arc<Vault>, b: Arc<Vault>, advance_b: &dyn Fn(i64)) {
    let first = Arc::new(Count {
        total: 20,
        hang_at: Some(7),
        steps: AtomicU64::new(0),
    });
    let node_a = Runner::new("node_a".into(), vec![first.clone()]);
    node_a
        .ensure(&a, JobRow::new("test.count", None, 0, 0))
        .await
        .unwrap();
    let running = {
        let (node_a, a) = (node_a.clone(), a.clone());
        tokio::spawn(async move { node_a.run(&a, "test.count", &mut |_| {}).await })
    };
    // Seven batches committed (not merely stepped: a step's commit follows it) and the eighth
    // hanging; a loaded machine may take a while.
    for _ in 0..500 {
        let done = b
            .store()
            .find_job("test.count")
            .await
            .unwrap()
            .map(|j| j.done);
        if first.steps.load(Ordering::SeqCst) == 7 && done == Some(7) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    running.abort();
    let job = b.store().find_job("test.count").await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.done, job.lease_holder.as_deref()),
        (JobState::Running, 7, Some("node_a"))
    );
    let second = Arc::new(Count {
        total: 20,
        hang_at: None,
        steps: AtomicU64::new(0),
    });
    let node_b = Runner::new("node_b".into(), vec![second.clone()]);
    assert!(
        node_b.run_due(&b).await.unwrap().is_empty(),
        "the lease is still A's"
    );
    assert_eq!(
        node_b.run(&b, "test.count", &mut |_| {}).await.unwrap(),
        RunOutcome::Busy
    );
    advance_b(LEASE_MS + 60_000);
    let outcomes = node_b.run_due(&b).await.unwrap();
    assert!(
        matches!(outcomes.as_slice(), [(id, RunOutcome::Finished(j))] if id == "test.count" && j.done == 20),
        "{outcomes:?}"
    );
    assert_eq!(
        second.steps.load(Ordering::SeqCst),
        13,
        "B did only what was left"
    );
    let rows = b
        .store()
        .find_register_entries("test.count", None)
        .await
        .unwrap();
    assert_eq!(rows.len(), 20, "every batch exactly once");
    let mut stale = b.store().find_job("test.count").await.unwrap().unwrap();
    stale.done = 99;
    let r = a
        .store()
        .commit(strongroom_core::store::UnitOfWork {
            ops: vec![Op::SaveJob {
                holder: "node_a".into(),
                row: stale,
            }],
            audit: vec![],
        })
        .await;
    assert!(r.is_err(), "A lost its lease: {r:?}");
    let job = b.store().find_job("test.count").await.unwrap().unwrap();
    assert_eq!((job.state, job.runs, job.done), (JobState::Idle, 1, 20));
}

/// A kind whose every batch takes `batch_ms` on the vault's clock, for `total` batches.
struct Timed {
    clock: Arc<strongroom_core::clock::ManualClock>,
    batch_ms: i64,
    total: u64,
}

#[async_trait]
impl JobKind for Timed {
    fn kind(&self) -> &'static str {
        "test.timed"
    }
    async fn step(&self, _: &Vault, job: &JobRow) -> strongroom_core::Result<Step> {
        self.clock.advance_ms(self.batch_ms);
        let done = job.done + 1;
        Ok(Step {
            ops: vec![],
            audit: vec![],
            done,
            total: Some(self.total),
            cursor: Some(done.to_string()),
            finished: done == self.total,
        })
    }
}

/// A paced runner waits after each batch but the last so its batches take its share of the
/// time (a 100 ms batch at 20 % → 400 ms), never longer than the cap; unpaced, never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_run_waits_between_batches_for_its_share() {
    let v = TestVault::start_with(ServeOptions {
        audit_verify_every: None,
        ..ServeOptions::default()
    })
    .await;
    let vault = v.running_vault();
    let waits = Arc::new(std::sync::Mutex::new(Vec::<u128>::new()));
    let sleep: strongroom_core::jobs::Sleep = {
        let waits = waits.clone();
        Arc::new(move |d| {
            waits.lock().unwrap().push(d.as_millis());
            Box::pin(async {})
        })
    };
    let run = |batch_ms: i64, share: Option<u8>| {
        let (vault, sleep, clock) = (vault.clone(), sleep.clone(), v.clock.clone());
        async move {
            let kind = Arc::new(Timed {
                clock,
                batch_ms,
                total: 4,
            });
            let mut runner = Runner::new("node_p".into(), vec![kind]);
            if let Some(share) = share {
                runner = runner.paced(share, sleep);
            }
            runner
                .ensure(&vault, JobRow::new("test.timed", None, 0, i64::MAX))
                .await
                .unwrap();
            let out = runner.run(&vault, "test.timed", &mut |_| {}).await.unwrap();
            assert!(matches!(out, RunOutcome::Finished(_)), "{out:?}");
        }
    };
    let take = || std::mem::take(&mut *waits.lock().unwrap());
    run(100, Some(20)).await;
    assert_eq!(take(), [400, 400, 400], "none after the last batch");
    run(100, Some(50)).await;
    assert_eq!(take(), [100, 100, 100]);
    run(3_600_000, Some(1)).await;
    assert_eq!(
        take(),
        [10_000, 10_000, 10_000],
        "capped well inside the lease"
    );
    run(100, Some(100)).await;
    run(100, None).await;
    assert!(take().is_empty(), "a full share or no pacing never waits");
    run(0, Some(20)).await;
    assert!(take().is_empty(), "a batch that took no time needs no wait");
}
