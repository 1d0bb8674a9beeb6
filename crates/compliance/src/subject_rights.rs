//! Data subjects' requests (OR-04) and what answers them: the request register with its
//! one-month deadlines and extensions (GDPR Art. 12(3)), and the registers' side of an export
//! (TR-01): the processing facts it reports (Art. 15(1)) and the check that the request it
//! answers is open and about that subject.
//!
//! The register is the tenant's, kept by its `privacy_officer` and read by its `admin` and
//! `auditor`. Its entries name the subject by its opaque id only; notes are sealed at rest
//! like every register body.

use async_trait::async_trait;
use strongroom_core::ids::{DsarId, ExportId, SubjectId, TenantId};
use strongroom_core::policy::{ROLE_ADMIN, ROLE_AUDITOR, ROLE_PRIVACY_OFFICER};
use strongroom_core::store::{Op, RegisterEntryRow};
use strongroom_core::vault::{ExportContext, ExportEntry, Precondition, ERASURES, EXPORTS};
use strongroom_core::{Code, Error, RequestCtx, Result, Vault};
use strongroom_proto::{self as proto, DsarInput, DsarKind, DsarStatus};

pub const REGISTER: &str = "dsar";
const DAY_MS: f64 = 86_400_000.0;
/// Clock skew allowed for times said to be in the past.
const SKEW_MS: i64 = 300_000;

/// The processing facts and request checks an export takes from the registers.
pub struct Registers;

#[async_trait]
impl ExportContext for Registers {
    async fn facts(
        &self,
        vault: &Vault,
        tenant: &TenantId,
        collections: &[String],
    ) -> Result<proto::ProcessingFacts> {
        let ropa = crate::ropa::derive(vault, tenant, vault.now()).await?;
        let defs = vault.store().find_collections(tenant).await?;
        let activities = ropa
            .activities
            .into_iter()
            .filter(|a| collections.contains(&a.collection))
            .map(|a| {
                let bases = defs
                    .iter()
                    .find(|c| c.name == a.collection)
                    .map(|c| c.def.bases.clone())
                    .unwrap_or_default();
                proto::ProcessingActivity {
                    purposes: a
                        .purposes
                        .iter()
                        .map(|p| proto::PurposeBasis {
                            purpose: p.clone(),
                            basis: bases.get(p).copied(),
                        })
                        .collect(),
                    categories: a
                        .categories
                        .iter()
                        .map(|c| format!("{} ({})", c.field, c.classification))
                        .collect(),
                    recipients: a.recipients.iter().map(|r| r.role.clone()).collect(),
                    retention: a.retention,
                    collection: a.collection,
                }
            })
            .collect();
        Ok(proto::ProcessingFacts {
            controller: ropa.controller_name,
            activities,
            subprocessors: ropa
                .subprocessors
                .into_iter()
                .map(|s| proto::ProcessingSubprocessor {
                    name: s.name,
                    service: s.service,
                    country: s.country,
                    transfer: s.transfer,
                    safeguard: s.safeguard,
                })
                .collect(),
        })
    }

    async fn check_request(
        &self,
        vault: &Vault,
        tenant: &TenantId,
        subject: &SubjectId,
        request: &str,
    ) -> Result<()> {
        let Some(d) = current(vault, tenant, vault.now())
            .await?
            .into_iter()
            .find(|d| d.id == request)
        else {
            return Err(Error::new(
                Code::ValidationFailed,
                "`request` names no request of the request register",
            ));
        };
        let r = &d.request;
        if r.status != DsarStatus::Open {
            return Err(Error::new(
                Code::ValidationFailed,
                "`request` names a request that is closed",
            ));
        }
        if !matches!(r.kind, DsarKind::Access | DsarKind::Portability) {
            return Err(Error::new(
                Code::ValidationFailed,
                "`request` names a request that is not for access or portability",
            ));
        }
        if r.subject.as_deref().is_some_and(|s| s != subject.as_str()) {
            return Err(Error::new(
                Code::ValidationFailed,
                "`request` names a request about another data subject",
            ));
        }
        Ok(())
    }
}

fn reader(ctx: &RequestCtx) -> Result<TenantId> {
    let p = &ctx.principal;
    match &p.tenant {
        Some(t)
            if [ROLE_PRIVACY_OFFICER, ROLE_ADMIN, ROLE_AUDITOR]
                .iter()
                .any(|r| p.has_role(r)) =>
        {
            Ok(t.clone())
        }
        _ => Err(Error::forbidden(
            "the request register is read by the tenant's `privacy_officer`, `admin` and `auditor`",
        )),
    }
}

fn keeper(ctx: &RequestCtx) -> Result<TenantId> {
    let p = &ctx.principal;
    match &p.tenant {
        Some(t) if p.has_role(ROLE_PRIVACY_OFFICER) => Ok(t.clone()),
        _ => Err(Error::forbidden(
            "the request register is kept by the tenant's `privacy_officer`",
        )),
    }
}

/// When a request was received (every stored version says; `put` fills in the time of its
/// recording when the caller did not).
fn received(r: &DsarInput) -> i64 {
    r.received_at.unwrap_or(0)
}

/// The deadline of a request: received + 1 month + the extension, on the UTC calendar.
pub fn due_at(r: &DsarInput) -> Result<i64> {
    strongroom_core::retention::add_months(received(r), 1 + i64::from(r.extension_months))
}

fn view(row: &RegisterEntryRow, now: i64) -> Result<proto::Dsar> {
    let request: DsarInput = serde_json::from_str(&row.body).map_err(|_| Error::integrity())?;
    let due_at = due_at(&request)?;
    Ok(proto::Dsar {
        id: row.id.clone(),
        version: row.version,
        overdue: request.status == DsarStatus::Open && now > due_at,
        days_to_answer: request
            .closed_at
            .map(|c| ((c - received(&request)) as f64 / DAY_MS * 10.0).round() / 10.0),
        due_at,
        request,
        recorded_by: row.recorded_by.clone(),
        recorded_at: row.recorded_at,
    })
}

/// The latest version of every request of the tenant, as of `now`.
pub async fn current(vault: &Vault, tenant: &TenantId, now: i64) -> Result<Vec<proto::Dsar>> {
    crate::registers::latest_entries(vault.register_entries(REGISTER, Some(tenant)).await?)
        .iter()
        .map(|r| view(r, now))
        .collect()
}

/// The register's figures: open, overdue, median days to answer.
pub fn figures(requests: &[proto::Dsar]) -> (u64, u64, Option<f64>) {
    let open = requests
        .iter()
        .filter(|d| d.request.status == DsarStatus::Open)
        .count() as u64;
    let overdue = requests.iter().filter(|d| d.overdue).count() as u64;
    let mut days: Vec<f64> = requests.iter().filter_map(|d| d.days_to_answer).collect();
    days.sort_by(f64::total_cmp);
    let median = match days.len() {
        0 => None,
        n if n % 2 == 1 => Some(days[n / 2]),
        n => Some(((days[n / 2 - 1] + days[n / 2]) / 2.0 * 10.0).round() / 10.0),
    };
    (open, overdue, median)
}

/// Overdue requests as alerts (the tenant's).
pub async fn alerts(
    vault: &Vault,
    tenant: &TenantId,
    now: i64,
) -> Result<Vec<proto::ComplianceAlert>> {
    Ok(current(vault, tenant, now)
        .await?
        .into_iter()
        .filter(|d| d.overdue)
        .map(|d| proto::ComplianceAlert {
            kind: "dsar_overdue".into(),
            scope: tenant.to_string(),
            entry: d.id.clone(),
            what: format!(
                "the answer to a data-subject request ({}) is overdue",
                kind_name(d.request.kind)
            ),
            due: d.due_at,
        })
        .collect())
}

pub fn kind_name(k: DsarKind) -> &'static str {
    match k {
        DsarKind::Access => "access",
        DsarKind::Rectification => "rectification",
        DsarKind::Erasure => "erasure",
        DsarKind::Restriction => "restriction",
        DsarKind::Portability => "portability",
        DsarKind::Objection => "objection",
    }
}

fn text(name: &str, v: &Option<String>, max: usize) -> Result<()> {
    if let Some(v) = v {
        if v.is_empty() || v.chars().count() > max {
            return Err(Error::new(
                Code::InvalidRequest,
                format!("`{name}` must be 1 to {max} characters"),
            ));
        }
        if v.trim().is_empty() || v.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Error::new(
                Code::ValidationFailed,
                format!("`{name}` must say something, without control characters"),
            ));
        }
    }
    Ok(())
}

/// Checks a request against the schema's limits and the rules across its parts.
async fn check(vault: &Vault, tenant: &TenantId, r: &DsarInput, now: i64) -> Result<()> {
    let rule = |m: &str| Error::new(Code::ValidationFailed, m.to_owned());
    text("identity_verified_by", &r.identity_verified_by, 200)?;
    text("extension_reason", &r.extension_reason, 500)?;
    text("fulfilment", &r.fulfilment, 200)?;
    text("note", &r.note, 2000)?;
    for t in [r.received_at, r.identity_verified_at, r.closed_at]
        .into_iter()
        .flatten()
    {
        if t < 0 {
            return Err(Error::new(Code::InvalidRequest, "times are not negative"));
        }
        if t > now + SKEW_MS {
            return Err(rule("times may not be in the future"));
        }
    }
    if r.extension_months > 2 {
        return Err(rule(
            "the deadline may be extended by two further months at most (Art. 12(3)): three months in all",
        ));
    }
    if r.extension_months > 0 && r.extension_reason.is_none() {
        return Err(rule("an extension needs its reason (`extension_reason`)"));
    }
    if r.identity_verified_by.is_some() != r.identity_verified_at.is_some() {
        return Err(rule(
            "`identity_verified_by` and `identity_verified_at` go together",
        ));
    }
    if r.identity_verified_at.is_some_and(|t| t < received(r))
        || r.closed_at.is_some_and(|t| t < received(r))
    {
        return Err(rule(
            "a request is verified and closed after it was received",
        ));
    }
    let subject = match &r.subject {
        None => None,
        Some(s) => Some(
            SubjectId::parse(s)
                .ok_or_else(|| Error::new(Code::InvalidId, "`subject` is not a subject id"))?,
        ),
    };
    // The subject must be the tenant's: held now, or erased (the ledger keeps its id).
    if let Some(s) = &subject {
        let known = vault.store().find_subject(tenant, s).await?.is_some()
            || erased(vault, tenant, s).await?;
        if !known {
            return Err(Error::new(Code::UnknownSubject, "no such data subject"));
        }
    }
    match r.status {
        DsarStatus::Open => {
            if r.closed_at.is_some() {
                return Err(rule("an open request has no `closed_at`"));
            }
        }
        DsarStatus::Refused => {
            if r.closed_at.is_none() || r.note.is_none() {
                return Err(rule(
                    "a refused request needs `closed_at` and a `note` saying why",
                ));
            }
        }
        DsarStatus::Fulfilled => {
            let Some(s) = &subject else {
                return Err(rule("a fulfilled request names its `subject`"));
            };
            if r.closed_at.is_none() || r.identity_verified_by.is_none() {
                return Err(rule(
                    "a fulfilled request needs `closed_at` and the requester's identity verified",
                ));
            }
            fulfilled_by(vault, tenant, s, r).await?;
        }
    }
    Ok(())
}

async fn erased(vault: &Vault, tenant: &TenantId, s: &SubjectId) -> Result<bool> {
    Ok(vault
        .register_entries(ERASURES, Some(tenant))
        .await?
        .iter()
        .any(|e| e.id == s.as_str()))
}

/// What fulfilled a request must be on record: an export of that subject for access and
/// portability, its erasure in the ledger for erasure.
async fn fulfilled_by(
    vault: &Vault,
    tenant: &TenantId,
    subject: &SubjectId,
    r: &DsarInput,
) -> Result<()> {
    let rule = |m: &str| Error::new(Code::ValidationFailed, m.to_owned());
    match r.kind {
        DsarKind::Access | DsarKind::Portability => {
            let id = r
                .fulfilment
                .as_deref()
                .and_then(ExportId::parse)
                .ok_or_else(|| rule("an access or portability request is fulfilled by an export: `fulfilment` names it (`exp_…`)"))?;
            let entry = vault
                .register_entries(EXPORTS, Some(tenant))
                .await?
                .into_iter()
                .find(|e| e.id == id.as_str())
                .ok_or_else(|| rule("`fulfilment` names no export of the export register"))?;
            let entry: ExportEntry =
                serde_json::from_str(&entry.body).map_err(|_| Error::integrity())?;
            if entry.subject != subject.as_str() {
                return Err(rule("`fulfilment` names an export of another data subject"));
            }
        }
        DsarKind::Erasure => {
            if !erased(vault, tenant, subject).await? {
                return Err(rule(
                    "an erasure request is fulfilled once the subject is erased: the erasure ledger has no entry for it",
                ));
            }
        }
        DsarKind::Rectification | DsarKind::Restriction | DsarKind::Objection => {}
    }
    Ok(())
}

/// Records a request (`id` `None`) or its next version, against the version read (`pre`).
pub async fn put(
    vault: &Vault,
    ctx: &RequestCtx,
    id: Option<&str>,
    mut input: DsarInput,
    pre: Precondition,
) -> Result<proto::Dsar> {
    let mut ev = vault.begin(
        ctx,
        if id.is_some() {
            "dsar.change"
        } else {
            "dsar.create"
        },
    );
    let res = async {
        let tenant = keeper(ctx)?;
        let now = vault.now();
        input.received_at.get_or_insert(now);
        if let Some(s) = input.subject.as_deref().and_then(SubjectId::parse) {
            ev.subject = Some(s);
        }
        check(vault, &tenant, &input, now).await?;
        let next = crate::registers::next_entry(
            vault,
            &mut ev,
            (REGISTER, Some(&tenant)),
            id,
            pre,
            |id| DsarId::parse(id).is_some(),
            || DsarId::generate_at(vault.rng(), now).to_string(),
        )
        .await?;
        ev.objects
            .push(format!("status:{:?}", input.status).to_lowercase());
        let row = crate::registers::entry_row(REGISTER, next, Some(tenant), &input, ctx, now)?;
        let out = view(&row, now)?;
        Ok((out, vec![Op::PutRegisterEntry(row)]))
    }
    .await;
    vault.finish(ev, res).await
}

/// The tenant's requests with the register's figures; audited.
pub async fn list(vault: &Vault, ctx: &RequestCtx) -> Result<proto::DsarList> {
    let ev = vault.begin(ctx, "dsar.list");
    let res = async {
        let tenant = reader(ctx)?;
        let requests = current(vault, &tenant, vault.now()).await?;
        let (open, overdue, median_days_to_answer) = figures(&requests);
        Ok((
            proto::DsarList {
                requests,
                open,
                overdue,
                median_days_to_answer,
            },
            vec![],
        ))
    }
    .await;
    vault.finish(ev, res).await
}

/// One request of the tenant; audited.
pub async fn get(vault: &Vault, ctx: &RequestCtx, id: &str) -> Result<proto::Dsar> {
    let mut ev = vault.begin(ctx, "dsar.get");
    let res = async {
        let tenant = reader(ctx)?;
        if DsarId::parse(id).is_none() {
            return Err(Error::new(Code::InvalidId, "not a request id"));
        }
        ev.objects.push(id.to_owned());
        let d = current(vault, &tenant, vault.now())
            .await?
            .into_iter()
            .find(|d| d.id == id)
            .ok_or_else(|| Error::not_found("request"))?;
        Ok((d, vec![]))
    }
    .await;
    vault.finish(ev, res).await
}

/// How many exports the tenant's export register records, and how many of them are expired
/// (`now`) but still stored — the expiry job is late.
pub async fn export_figures(vault: &Vault, tenant: &TenantId, now: i64) -> Result<(u64, u64)> {
    let made = vault.register_entries(EXPORTS, Some(tenant)).await?.len() as u64;
    let late = vault
        .store()
        .find_expired_exports(now - 86_400_000, 1000)
        .await?
        .iter()
        .filter(|(t, _)| t == tenant)
        .count() as u64;
    Ok((made, late))
}

/// A value for a person to read: strings as they are, anything else as JSON.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => crate::ropa::md(s),
        other => crate::ropa::md(&other.to_string()),
    }
}

/// The human-readable rendering of an export (Markdown): the same content as the JSON.
pub fn markdown(e: &proto::SubjectExport) -> String {
    use std::fmt::Write;
    let md = crate::ropa::md;
    let when = crate::render::when;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Your personal data held by {}\n\nThis is everything the data vault holds about you (data subject `{}`), \
         made on {} for: {} (export `{}`, available until {}).\n",
        md(&e.processing.controller),
        e.subject,
        when(e.generated_at),
        md(&e.recipient),
        e.export,
        when(e.expires_at),
    );
    if e.restricted {
        o.push_str("Processing of your data is **restricted** (GDPR Art. 18): it is stored but not used.\n\n");
    }
    let _ = writeln!(o, "## Your data ({} records)\n", e.records.len());
    for r in &e.records {
        let _ = writeln!(
            o,
            "### {} `{}`{}\n\nCreated {}, last changed {} (version {}).\n",
            md(&r.collection),
            r.id,
            if r.state == "blocked" {
                " (deleted, awaiting destruction)"
            } else {
                ""
            },
            when(r.created_at),
            when(r.updated_at),
            r.version
        );
        for (k, v) in &r.fields {
            let _ = writeln!(o, "- **{}**: {}", md(k), value_text(v));
        }
        for h in &r.history {
            let _ = writeln!(
                o,
                "\nEarlier version {} (until {}):\n",
                h.version,
                when(h.updated_at)
            );
            for (k, v) in &h.fields {
                let _ = writeln!(o, "- {}: {}", md(k), value_text(v));
            }
        }
        o.push('\n');
    }
    o.push_str("## Why and how it is processed\n\n");
    for a in &e.processing.activities {
        let _ = writeln!(o, "### {}\n", md(&a.collection));
        for p in &a.purposes {
            let basis = p
                .basis
                .map(|b| {
                    serde_json::to_value(b)
                        .ok()
                        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                        .unwrap_or_default()
                })
                .unwrap_or_else(|| "not declared".into());
            let _ = writeln!(
                o,
                "- purpose **{}**, lawful basis: {}",
                md(&p.purpose),
                basis
            );
        }
        let _ = writeln!(o, "- kinds of data: {}", md(&a.categories.join(", ")));
        let _ = writeln!(
            o,
            "- who receives it: {}",
            if a.recipients.is_empty() {
                "nobody beyond the vault".into()
            } else {
                md(&a.recipients.join(", "))
            }
        );
        let _ = writeln!(o, "- how long it is kept: {}\n", md(&a.retention));
    }
    if !e.processing.subprocessors.is_empty() {
        o.push_str("### Service providers (subprocessors)\n\n");
        for s in &e.processing.subprocessors {
            let _ = writeln!(
                o,
                "- {} ({}), {}{}",
                md(&s.name),
                md(&s.service),
                md(&s.country),
                if s.transfer {
                    format!(", outside the EEA under {}", md(&s.safeguard))
                } else {
                    String::new()
                }
            );
        }
        o.push('\n');
    }
    let _ = writeln!(o, "## Your consents ({})\n", e.consents.len());
    for c in &e.consents {
        let state = serde_json::to_value(c.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "- {}: **{}** for {} (via {})",
            when(c.at),
            state,
            md(&c.purpose),
            md(&c.source)
        );
    }
    let _ = writeln!(
        o,
        "\n## Who accessed your data ({} entries of the audit log)\n",
        e.accesses.len()
    );
    o.push_str("| when | who | what | purpose | outcome |\n|---|---|---|---|---|\n");
    for a in &e.accesses {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            when(a.time),
            md(&a.actor),
            md(&a.action),
            md(a.purpose.as_deref().unwrap_or("")),
            md(&a.outcome)
        );
    }
    o
}
