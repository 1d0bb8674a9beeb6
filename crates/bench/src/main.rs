//! Strongroom's benchmarks. Figures go to a JSON file and a Markdown table next to it; they are
//! measured here, never asserted in tests.
//!
//! - HTTP workloads against the release `strongroom` server on a fresh data directory:
//!   `read` (audited read by id), `write` (create with 5 fields, 2 searchable), `search`
//!   (blind-index equality), `mixed` (90 % read, 10 % write), `batch` (100 records a call).
//! - The same workloads against the do-it-yourself baseline (PostgreSQL + pgcrypto + an audit
//!   table, driven by pgbench), one after the other at the same concurrency, and their ratio.
//! - A scaling run: read and search latency and the server's memory at 10k, 1M and 10M stored
//!   records.
//! - Audit-log verification speed.

mod baseline;
mod erasure;
mod load;
mod purge;
mod purge_load;
mod server;
mod verify;
mod workloads;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{json, Map, Value};

use crate::load::Plan;
use crate::workloads::{round2, Stored};

/// `read_consent` reads the same records as `read` for a purpose based on consent (each read
/// looks up the subject's consent): its ratio to `read` is the consent check's cost.
const WORKLOADS: [&str; 6] = ["read", "read_consent", "write", "search", "mixed", "batch"];

#[derive(Parser)]
#[command(
    about = "Strongroom benchmarks: HTTP workloads, the PostgreSQL + pgcrypto baseline, \
                   a scaling run and audit verification"
)]
struct Args {
    /// Where to write the JSON results (the Markdown table goes next to it, as .md).
    #[arg(long, default_value = "bench-results.json")]
    out: PathBuf,
    /// A short run of the same workloads and baseline (a few minutes in all).
    #[arg(long)]
    quick: bool,
    /// Concurrent connections (and pgbench clients).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds per workload (default 30, or 8 with --quick).
    #[arg(long)]
    duration: Option<u64>,
    /// Unmeasured warm-up seconds before each workload (default 5, or 2 with --quick).
    #[arg(long)]
    warmup: Option<u64>,
    /// Records stored before the workloads run (default 100,000, or 10,000 with --quick).
    #[arg(long)]
    records: Option<u64>,
    /// Stored-record counts of the scaling run (default 10000,1000000,10000000, or
    /// 10000,100000 with --quick).
    #[arg(long, value_delimiter = ',')]
    scale: Option<Vec<u64>>,
    /// Skip the scaling run.
    #[arg(long)]
    no_scaling: bool,
    /// Only these workloads (default: all six).
    #[arg(long, value_delimiter = ',')]
    workloads: Option<Vec<String>>,
    /// Skip the HTTP workloads (and with them the baseline).
    #[arg(long)]
    no_http: bool,
    /// Skip the PostgreSQL + pgcrypto baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Skip the audit-verification workload.
    #[arg(long)]
    no_verify: bool,
    /// Entries in the audit-verification (and proof) log (default 1,000,000, or 200,000 with
    /// --quick); 10,000,000 measures proofs on a long log.
    #[arg(long)]
    audit_entries: Option<u64>,
    /// Deleted records destroyed by the purge-throughput run (default 100,000, or 20,000 with
    /// --quick; 0 skips it).
    #[arg(long)]
    purge_records: Option<u64>,
    /// Deleted records purged by the server while the `mixed` workload is measured, compared
    /// with the same workload with the purge idle (default 1,000,000, or 200,000 with --quick;
    /// 0 skips it).
    #[arg(long)]
    purge_load: Option<u64>,
    /// Records per data subject in the erasure run: subjects stored through the API and erased
    /// by the privacy officer, request to signed receipt (default 1,000; 0 skips it).
    #[arg(long)]
    erasure_records: Option<u64>,
    /// Where the servers' temporary data directories go (default: the system's temp dir).
    #[arg(long)]
    data_parent: Option<PathBuf>,
    /// Run the audit-verification workload against this PostgreSQL database (an empty one)
    /// instead of a temporary SQLite file.
    #[arg(long)]
    postgres: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let quick = args.quick;
    let plan = Plan {
        connections: args.connections,
        warmup: Duration::from_secs(args.warmup.unwrap_or(if quick { 2 } else { 5 })),
        duration: Duration::from_secs(args.duration.unwrap_or(if quick { 8 } else { 30 })),
    };
    let records = args.records.unwrap_or(if quick { 10_000 } else { 100_000 });
    let scale = args.scale.clone().unwrap_or_else(|| {
        if args.no_scaling {
            vec![]
        } else if quick {
            vec![10_000, 100_000]
        } else {
            vec![10_000, 1_000_000, 10_000_000]
        }
    });
    let chosen: Vec<String> = args
        .workloads
        .clone()
        .unwrap_or_else(|| WORKLOADS.iter().map(|w| w.to_string()).collect());
    for w in &chosen {
        anyhow::ensure!(WORKLOADS.contains(&w.as_str()), "no workload named {w}");
    }

    writable(&args.out)?;
    let bin = server::binary()?;
    let mut main = if args.no_http {
        json!({"workloads": {}, "server_peak_rss_mb": 0.0})
    } else {
        http(&args, &bin, plan, records, &chosen).await?
    };

    // The scaling run: one fresh server, filled level by level.
    let mut scaling = Vec::new();
    let mut peak_rss = main["server_peak_rss_mb"].as_f64().unwrap_or(0.0);
    if !scale.is_empty() {
        let srv = server::Server::start(&bin, args.data_parent.as_deref()).await?;
        let tenant = srv.tenant().await?;
        let mut stored = Stored::default();
        let short = Plan {
            duration: Duration::from_secs(if quick { 4 } else { 15 }),
            ..plan
        };
        for &level in &scale {
            eprintln!("scaling: {level} records");
            workloads::preload(&srv, &tenant, &mut stored, level).await?;
            let shared = Arc::new(std::mem::take(&mut stored));
            let read = workloads::run("read", &srv, &tenant, &shared, short, 0).await?;
            let search = workloads::run("search", &srv, &tenant, &shared, short, 0).await?;
            stored = Arc::try_unwrap(shared).ok().context("ids still shared")?;
            let (rss, peak) = srv.rss_mb();
            peak_rss = peak_rss.max(peak);
            eprintln!("  server RSS {rss:.1} MB (peak {peak:.1} MB)");
            scaling.push(json!({
                "records": level,
                "read": read.json(),
                "search": search.json(),
                "rss_mb": round2(rss),
                "peak_rss_mb": round2(peak),
                "disk_mb": round2(srv.disk_bytes() as f64 / 1e6),
            }));
        }
    }

    let verify = if args.no_verify {
        Value::Null
    } else {
        let entries = args
            .audit_entries
            .unwrap_or(if quick { 200_000 } else { 1_000_000 });
        verify::audit_verify(entries, args.postgres.as_deref()).await?
    };

    let purge_n = args
        .purge_records
        .unwrap_or(if quick { 20_000 } else { 100_000 });
    let purge = if purge_n == 0 {
        Value::Null
    } else {
        purge::purge_throughput(purge_n).await?
    };

    let purge_load_n = args
        .purge_load
        .unwrap_or(if quick { 200_000 } else { 1_000_000 });
    let purge_load = if purge_load_n == 0 {
        Value::Null
    } else {
        purge_load::reads_and_writes_during_purge(
            &bin,
            args.data_parent.as_deref(),
            plan,
            records,
            purge_load_n,
        )
        .await?
    };

    let erasure_n = args.erasure_records.unwrap_or(1000);
    let erasure = if erasure_n == 0 {
        Value::Null
    } else {
        erasure::erasure(
            &bin,
            args.data_parent.as_deref(),
            erasure_n,
            if quick { 3 } else { 5 },
        )
        .await?
    };

    let workloads = main["workloads"].take();
    let results = json!({
        "quick": quick,
        "connections": plan.connections,
        "duration_s": plan.duration.as_secs(),
        "records": records,
        "machine": machine(),
        "workloads": workloads,
        "scaling": scaling,
        "audit_verify": verify,
        "audit_verify_entries_per_s": verify["entries_per_s"],
        "purge": purge,
        "purge_load": purge_load,
        "erasure": erasure,
        "peak_rss_mb": round2(peak_rss),
        "main_run": main,
        "bench_peak_rss_mb": round2(verify::peak_rss_mb()),
    });
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let table = markdown(&results);
    let md = args.out.with_extension("md");
    std::fs::write(&md, &table).with_context(|| format!("cannot write {}", md.display()))?;
    println!("{table}");
    println!("written to {} and {}", args.out.display(), md.display());
    Ok(())
}

/// The HTTP workloads, each against Strongroom and then against the baseline.
async fn http(
    args: &Args,
    bin: &std::path::Path,
    plan: Plan,
    records: u64,
    chosen: &[String],
) -> Result<Value> {
    let mut baseline = if args.no_baseline {
        None
    } else {
        eprintln!("baseline: starting PostgreSQL + pgcrypto");
        Some(baseline::Baseline::start(0x5eed).await?)
    };

    // The workloads, each against Strongroom and then against the baseline.
    eprintln!("strongroom: fresh server, {records} records");
    let srv = server::Server::start(bin, args.data_parent.as_deref()).await?;
    let tenant = srv.tenant().await?;
    let mut stored = Stored::default();
    workloads::preload(&srv, &tenant, &mut stored, records).await?;
    srv.settle().await?;
    if let Some(b) = baseline.as_mut() {
        b.preload(records).await?;
    }
    let stored = Arc::new(stored);
    let mut results = Map::new();
    for (i, name) in chosen.iter().enumerate() {
        eprintln!("workload {name} ({} connections)", plan.connections);
        let fresh = 100_000_000 * (i as u64 + 1);
        let figures = workloads::run(name, &srv, &tenant, &stored, plan, fresh).await?;
        let mut entry = figures.json();
        if let Some(b) = baseline.as_ref() {
            // The baseline has no consent: its `read` is the work `read_consent` does.
            let run = b.run(
                if name == "read_consent" { "read" } else { name },
                plan.connections,
                plan.warmup.as_secs(),
                plan.duration.as_secs(),
            )?;
            let per_tx = if name == "batch" { 100.0 } else { 1.0 };
            let base_ops = run.tps * per_tx;
            let ratio = figures.ops_per_s() / base_ops;
            eprintln!(
                "  baseline {name}: {base_ops:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms — ratio {ratio:.2}",
                run.histogram.value_at_quantile(0.5) as f64 / 1000.0,
                run.histogram.value_at_quantile(0.99) as f64 / 1000.0,
            );
            entry["baseline_ops_per_s"] = json!(base_ops.round() as u64);
            entry["baseline_p50_ms"] =
                json!(round2(run.histogram.value_at_quantile(0.5) as f64 / 1000.0));
            entry["baseline_p99_ms"] = json!(round2(
                run.histogram.value_at_quantile(0.99) as f64 / 1000.0
            ));
            entry["ratio"] = json!(round2(ratio));
        }
        results.insert(name.clone(), entry);
    }
    let ops = |n: &str| results.get(n).and_then(|w| w["ops_per_s"].as_f64());
    if let (Some(plain), Some(checked)) = (ops("read"), ops("read_consent")) {
        eprintln!(
            "  consent check on the read path: {:.3} of plain reads",
            checked / plain
        );
        if let Some(w) = results.get_mut("read_consent") {
            w["ratio_to_read"] = json!(round2(checked / plain));
        }
    }
    let (_, peak) = srv.rss_mb();
    Ok(json!({
        "workloads": results,
        "records_at_end": stored.len(),
        "server_peak_rss_mb": round2(peak),
        "disk_mb": round2(srv.disk_bytes() as f64 / 1e6),
    }))
}

/// Makes sure the results can be written before anything runs: a full run takes the better
/// part of an hour, and losing it to a missing directory at the end is not acceptable. The
/// directory is created if needed; an existing results file is left alone until the end.
fn writable(out: &std::path::Path) -> Result<()> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {} for the results", dir.display()))?;
    tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write the results into {}", dir.display()))?;
    Ok(())
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| round2(kb / 1024.0 / 1024.0));
    json!({
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": cpu,
        "memory_gib": mem_gb,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// The results as Markdown tables.
fn markdown(r: &Value) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} connections, {} s per workload, {} records stored first.\n",
        r["connections"], r["duration_s"], r["records"]
    );
    s.push_str("| workload | ops/s | p50 ms | p99 ms | p999 ms | baseline ops/s | baseline p99 ms | ratio |\n");
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    if let Some(w) = r["workloads"].as_object() {
        for (name, f) in WORKLOADS.iter().filter_map(|n| Some((n, w.get(*n)?))) {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&f["ops_per_s"]),
                cell(&f["p50_ms"]),
                cell(&f["p99_ms"]),
                cell(&f["p999_ms"]),
                cell(&f["baseline_ops_per_s"]),
                cell(&f["baseline_p99_ms"]),
                cell(&f["ratio"]),
            );
        }
    }
    if let Some(levels) = r["scaling"].as_array().filter(|l| !l.is_empty()) {
        s.push_str("\n| records stored | read ops/s | read p99 ms | search ops/s | search p99 ms | server RSS MB | peak RSS MB | disk MB |\n");
        s.push_str("|---|---|---|---|---|---|---|---|\n");
        for l in levels {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&l["records"]),
                cell(&l["read"]["ops_per_s"]),
                cell(&l["read"]["p99_ms"]),
                cell(&l["search"]["ops_per_s"]),
                cell(&l["search"]["p99_ms"]),
                cell(&l["rss_mb"]),
                cell(&l["peak_rss_mb"]),
                cell(&l["disk_mb"]),
            );
        }
    }
    let _ = writeln!(
        s,
        "\n| measure | value |\n|---|---|\n| audit verification | {} entries/s |\n| purge | {} records/s ({} records) |\n| server peak RSS | {} MB |",
        cell(&r["audit_verify_entries_per_s"]),
        cell(&r["purge"]["records_per_s"]),
        cell(&r["purge"]["records"]),
        cell(&r["peak_rss_mb"]),
    );
    if !r["erasure"].is_null() {
        let _ = writeln!(
            s,
            "\nErasure of a subject with {} records (request to signed receipt): median {} ms, slowest {} ms of {}. Export of the same subject (made and downloaded, {} bytes): median {} ms, slowest {} ms.",
            cell(&r["erasure"]["records_per_subject"]),
            cell(&r["erasure"]["median_ms"]),
            cell(&r["erasure"]["max_ms"]),
            cell(&r["erasure"]["subjects"]),
            cell(&r["erasure"]["export_bytes"]),
            cell(&r["erasure"]["export_median_ms"]),
            cell(&r["erasure"]["export_max_ms"]),
        );
    }
    let l = &r["purge_load"];
    if !l.is_null() {
        let _ = writeln!(
            s,
            "\n| mixed workload | ops/s | p99 ms |\n|---|---|---|\n| purge idle | {} | {} |\n| during a purge of {} records | {} | {} |\n| ratio | {} | |\n\nThe paced purge destroyed {} records during the measurement ({} records/s under load){}.",
            cell(&l["idle"]["mixed"]["ops_per_s"]),
            cell(&l["idle"]["mixed"]["p99_ms"]),
            cell(&l["records_purged"]),
            cell(&l["during_purge"]["mixed"]["ops_per_s"]),
            cell(&l["during_purge"]["mixed"]["p99_ms"]),
            cell(&l["during_purge"]["mixed"]["ratio_to_idle"]),
            cell(&l["purged_while_measured"]),
            cell(&l["purge_records_per_s"]),
            if l["purge_ran_throughout"] == true { "" } else { " — it ended before the measurement did" },
        );
    }
    s
}
