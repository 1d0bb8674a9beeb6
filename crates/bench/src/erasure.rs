//! Export and erasure of a data subject with many records: the subject's records (in `people`,
//! with their blind-index entries) stored through the API; then the tenant's privacy officer
//! exports the subject (`POST /v1/subjects/{id}/export` and the download of the document, timed
//! together: every record decrypted, the access history read, the artefact sealed, stored,
//! fetched and opened) and erases it (`POST /v1/subjects/{id}/erasure`, timed from request to
//! signed receipt: one transaction, a checkpoint and the inclusion proof included).

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

use crate::load::request;
use crate::server::{person, Server};
use crate::workloads::round2;

/// Erases `subjects` subjects of `n` records each, one after the other; the median and the
/// slowest time.
#[allow(clippy::disallowed_methods)] // a benchmark measures wall-clock time
pub async fn erasure(
    bin: &std::path::Path,
    parent: Option<&std::path::Path>,
    n: u64,
    subjects: usize,
) -> Result<Value> {
    eprintln!("erasure: {subjects} subjects of {n} records each");
    let srv = Server::start(bin, parent).await?;
    let tenant = srv.tenant().await?;
    let mut conn = srv.target.connect().await?;
    let k = srv
        .call(
            &mut conn,
            "POST",
            "/v1/api-keys",
            &tenant.admin,
            json!({"name": "dpo", "roles": ["privacy_officer"], "expires_in_days": 7}),
        )
        .await?;
    let officer = k["key"]
        .as_str()
        .context("the privacy officer's key")?
        .to_owned();
    let mut times = Vec::new();
    let mut export_times = Vec::new();
    let mut export_bytes = 0;
    for s in 0..subjects {
        let base = 1_000_000_000 + s as u64 * n;
        let mut subject: Option<String> = None;
        let mut stored = 0;
        while stored < n {
            let batch = 100.min(n - stored);
            let records: Vec<Value> = (base + stored..base + stored + batch)
                .map(|k| match &subject {
                    Some(id) => json!({"subject": id, "fields": person(k)}),
                    None => json!({"fields": person(k)}),
                })
                .collect();
            // The first record makes the subject; the rest join it.
            let records = if subject.is_none() {
                records[..1].to_vec()
            } else {
                records
            };
            let body = serde_json::to_vec(&json!({ "records": records }))?;
            let resp = conn
                .send(&request(
                    "POST",
                    "/v1/collections/people/records/batch",
                    &tenant.app,
                    "support",
                    Some(&body),
                ))
                .await?;
            ensure!(
                resp.status == 201 || resp.status == 200,
                "storing the subject's records: HTTP {}: {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            );
            let v: Value = serde_json::from_slice(&resp.body)?;
            if subject.is_none() {
                subject = v["records"][0]["subject"].as_str().map(str::to_owned);
            }
            stored += records.len() as u64;
        }
        let subject = subject.context("no subject was made")?;
        let started = Instant::now();
        let made = srv
            .call(
                &mut conn,
                "POST",
                &format!("/v1/subjects/{subject}/export"),
                &officer,
                json!({"recipient": "benchmark"}),
            )
            .await?;
        let download = made["download"].as_str().context("the export's download")?;
        let doc = srv
            .call(&mut conn, "GET", download, &officer, Value::Null)
            .await?;
        let export_ms = started.elapsed().as_secs_f64() * 1000.0;
        let exported = doc["records"].as_array().map_or(0, Vec::len) as u64;
        ensure!(
            exported == n,
            "the export holds {exported} records, not {n}"
        );
        export_bytes = doc.to_string().len();
        export_times.push(export_ms);
        let started = Instant::now();
        let receipt = srv
            .call(
                &mut conn,
                "POST",
                &format!("/v1/subjects/{subject}/erasure"),
                &officer,
                Value::Null,
            )
            .await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        ensure!(
            receipt["destroyed"]["records"] == n,
            "the erasure destroyed {} records, not {n}",
            receipt["destroyed"]["records"]
        );
        eprintln!(
            "  subject {}: export {export_ms:.1} ms, erasure {ms:.1} ms",
            s + 1
        );
        times.push(ms);
    }
    times.sort_by(f64::total_cmp);
    export_times.sort_by(f64::total_cmp);
    Ok(json!({
        "records_per_subject": n,
        "subjects": subjects,
        "median_ms": round2(times[times.len() / 2]),
        "max_ms": round2(times[times.len() - 1]),
        "export_median_ms": round2(export_times[export_times.len() / 2]),
        "export_max_ms": round2(export_times[export_times.len() - 1]),
        "export_bytes": export_bytes,
    }))
}
