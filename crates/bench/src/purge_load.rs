//! Audited reads and writes while the server purges a large number of deleted records: the
//! `mixed` workload (90 % audited reads, 10 % audited creates), first with the purge idle, then while the server's own
//! `purge` job (asked for by the operator, as `strongroom jobs run` does) destroys `n` blocked
//! records of another collection of the same tenant. The blocked records are written straight
//! into the stopped server's SQLite file (writing a million through the API would take longer
//! than the purge), 100 per data subject, blocked "now" in a collection with a grace period of
//! one day — so the purge every server start runs finds nothing due and the first phase really
//! is idle — and the grace is set to 0 days just before the measured purge is asked for.
//! The server paces its jobs (`--background-share`, 20 % by default), so the purge's rate
//! here is the paced one; `--purge-records` measures the unpaced rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use strongroom_core::store::LifecycleStore;
use strongroom_core::{Store, TenantId};
use strongroom_store_sqlite::{SqliteOptions, SqliteStore};

use crate::load::Plan;
use crate::server::Server;
use crate::workloads::{self, round2, Stored};

/// The collection the purge empties, with a grace period of `days`: 1 while the server
/// restarts (the purge it runs at every start finds nothing due), 0 for the measured run.
fn trash(days: u32) -> Value {
    json!({"purposes": ["support"], "purge_grace_days": days, "fields": [
        {"name": "email", "type": "email", "classification": "identifier"}]})
}

/// Runs the comparison; `records` are the records the workloads read.
#[allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
pub async fn reads_and_writes_during_purge(
    bin: &std::path::Path,
    parent: Option<&std::path::Path>,
    plan: Plan,
    records: u64,
    n: u64,
) -> Result<Value> {
    eprintln!("purge under load: fresh server, {records} records, {n} to purge");
    let mut srv = Server::start(bin, parent).await?;
    let tenant = srv.tenant().await?;
    let mut conn = srv.target.connect().await?;
    srv.call(
        &mut conn,
        "PUT",
        "/v1/collections/trash",
        &tenant.admin,
        trash(1),
    )
    .await?;
    let mut stored = Stored::default();
    workloads::preload(&srv, &tenant, &mut stored, records).await?;
    drop(conn);
    // The jobs due at the first start run once (the purge finds nothing yet), so that none is
    // due when the server restarts.
    let op = srv.operator().to_owned();
    let jobs = srv.get(&op, "/v1/jobs").await?;
    let job = jobs["jobs"]
        .as_array()
        .and_then(|a| a.iter().find(|j| j["kind"] == "purge"))
        .and_then(|j| j["id"].as_str())
        .context("the server has no purge job")?
        .to_owned();
    let path = format!("/v1/jobs/{job}");
    let waited = Instant::now();
    while srv.get(&op, &path).await?["runs"].as_u64().unwrap_or(0) == 0 {
        ensure!(
            waited.elapsed() < Duration::from_secs(60),
            "the purge job did not run after the start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    srv.stop()?;
    {
        let store = SqliteStore::open(
            &srv.data_dir.join("strongroom.db"),
            SqliteOptions::default(),
        )
        .context("cannot open the stopped server's store")?;
        let id = TenantId::parse(&tenant.id).context("the tenant id")?;
        // Blocked now, so that the grace of 1 day holds them until the measured run.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        crate::purge::fill_blocked(&store as &dyn Store, &id, "trash", n, now).await?;
        // Fold the write-ahead log into the database, as a server that ran that long would have.
        store.scrub().await?;
    }
    srv.resume().await?;
    // Nothing may be running now: the jobs due at the first start (the purge among them)
    // have run before the stop.
    let jobs = srv.get(&op, "/v1/jobs").await?;
    let busy: Vec<&Value> = jobs["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["state"] == "running")
        .collect();
    ensure!(busy.is_empty(), "jobs running after the restart: {busy:?}");

    let stored = Arc::new(stored);
    eprintln!("  mixed workload, the purge idle");
    let idle = workloads::run("mixed", &srv, &tenant, &stored, plan, 500_000_000).await?;

    let mut conn = srv.target.connect().await?;
    srv.call(
        &mut conn,
        "PUT",
        "/v1/collections/trash",
        &tenant.admin,
        trash(0),
    )
    .await?;
    srv.call(&mut conn, "POST", &format!("{path}/run"), &op, Value::Null)
        .await?;
    let started = Instant::now();
    // Wait for the runner to claim it, so that the measurement starts with the purge running.
    loop {
        let j = srv.get(&op, &path).await?;
        if j["state"] == "running" {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the purge did not start: {j}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("  mixed workload while the purge runs");
    let during = workloads::run("mixed", &srv, &tenant, &stored, plan, 600_000_000).await?;
    let j = srv.get(&op, &path).await?;
    let seconds = started.elapsed().as_secs_f64();
    let done = j["done"].as_u64().unwrap_or(0);
    eprintln!("    purge: {done} of {n} done, {}", j["state"]);
    let overlap = j["state"] == "running";
    ensure!(j["last_error"].is_null(), "the purge failed meanwhile: {j}");
    let mut during_json = during.json();
    during_json["ratio_to_idle"] = json!(round2(during.ops_per_s() / idle.ops_per_s()));
    if !overlap {
        eprintln!(
            "  WARNING: the purge finished before the measurement did; run with more records"
        );
    }
    // The rest of the (paced) purge is not waited for: the server is stopped with it running,
    // and the run would resume at the next start.
    Ok(json!({
        "records_purged": n,
        "purged_while_measured": done,
        "purge_records_per_s": (done as f64 / seconds).round(),
        "purge_ran_throughout": overlap,
        "idle": {"mixed": idle.json()},
        "during_purge": {"mixed": during_json},
    }))
}
