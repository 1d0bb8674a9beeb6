//! The registers that hold what the vault cannot observe itself. Every change is a new
//! version written only if that version is still free, and every change is audited; nothing is
//! deleted (a withdrawal is a version too).
//!
//! Who keeps them: the platform's by operators and platform `compliance` keys; a tenant's by
//! its `admin` and `compliance` roles. A tenant reads its own and the platform's.

use strongroom_core::ids::{RegisterEntryId, TenantId};
use strongroom_core::policy::{ROLE_ADMIN, ROLE_AUDITOR, ROLE_COMPLIANCE};
use strongroom_core::store::{DeclarationRow, Op};
use strongroom_core::vault::Precondition;
use strongroom_core::{Code, Error, RequestCtx, Result, Vault};
use strongroom_proto as proto;

use crate::catalogue::Catalogue;

/// Longest a declaration may go without review.
const MAX_REVIEW_MS: i64 = 3 * 365 * 86_400_000;

/// The scope `ctx` keeps (writes): the platform (`None`) or its tenant.
pub fn keeper_scope(ctx: &RequestCtx) -> Result<Option<TenantId>> {
    let p = &ctx.principal;
    if p.restricted_to.is_some() {
        return Err(Error::forbidden(
            "this session must first complete its pending step",
        ));
    }
    match &p.tenant {
        None if p.is_operator() || p.has_role(ROLE_COMPLIANCE) => Ok(None),
        Some(t) if p.has_role(ROLE_ADMIN) || p.has_role(ROLE_COMPLIANCE) => Ok(Some(t.clone())),
        _ => Err(Error::forbidden(
            "keeping a register needs an operator, or the `admin` or `compliance` role",
        )),
    }
}

/// The scopes `ctx` may read: its own, and for a tenant also the platform's.
pub fn reader_scopes(ctx: &RequestCtx) -> Result<Vec<Option<TenantId>>> {
    let p = &ctx.principal;
    match &p.tenant {
        None if p.is_operator() || p.has_role(ROLE_COMPLIANCE) => Ok(vec![None]),
        Some(t)
            if [ROLE_ADMIN, ROLE_AUDITOR, ROLE_COMPLIANCE]
                .iter()
                .any(|r| p.has_role(r)) =>
        {
            Ok(vec![Some(t.clone()), None])
        }
        _ => Err(Error::forbidden(
            "reading the registers needs an operator, or the `admin`, `auditor` or `compliance` role",
        )),
    }
}

pub fn view(d: &DeclarationRow) -> proto::Declaration {
    proto::Declaration {
        id: d.id.clone(),
        version: d.version,
        scope: d
            .tenant
            .as_ref()
            .map_or_else(|| "platform".to_owned(), ToString::to_string),
        measure: d.measure.clone(),
        statement: d.statement.clone(),
        owner: d.owner.clone(),
        evidence_name: d.evidence_name.clone(),
        evidence_sha256: d.evidence_sha256.map(|h| strongroom_crypto::hex(&h)),
        declared_at: d.declared_at,
        review_by: d.review_by,
        withdrawn: d.withdrawn,
        recorded_by: d.recorded_by.clone(),
        recorded_at: d.recorded_at,
    }
}

/// The latest version of each entry, from versions sorted by id then version.
fn latest<T>(rows: Vec<T>, id: impl Fn(&T) -> &str) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for r in rows {
        match out.last_mut() {
            Some(last) if id(last) == id(&r) => *last = r,
            _ => out.push(r),
        }
    }
    out
}

/// Prepares the next version of an entry of a JSON register: finds the entry `id` names (or
/// makes a new id), checks `pre` against its current version, and names it in `ev`. The caller
/// checks and encodes the body.
pub async fn next_entry(
    vault: &Vault,
    ev: &mut strongroom_core::audit::AuditEvent,
    (register, scope): (&str, Option<&TenantId>),
    id: Option<&str>,
    pre: Precondition,
    valid_id: impl Fn(&str) -> bool,
    new_id: impl FnOnce() -> String,
) -> Result<(String, u32)> {
    let previous = match id {
        None => None,
        Some(id) => {
            if !valid_id(id) {
                return Err(Error::new(Code::InvalidId, "not an id of this register"));
            }
            ev.objects.push(id.to_owned());
            let latest = latest_entries(vault.register_entries(register, scope).await?)
                .into_iter()
                .find(|r| r.id == id)
                .ok_or_else(|| Error::not_found("entry"))?;
            Some(latest)
        }
    };
    pre.check_version(register, previous.as_ref().map(|p| u64::from(p.version)))?;
    let (id, version) = match previous {
        Some(p) => (p.id, p.version + 1),
        None => {
            let id = new_id();
            ev.objects.push(id.clone());
            (id, 1)
        }
    };
    ev.objects.push(format!("version:{version}"));
    Ok((id, version))
}

/// The row of a JSON register entry's version, written by `ctx` now.
pub fn entry_row<T: serde::Serialize>(
    register: &str,
    (id, version): (String, u32),
    scope: Option<TenantId>,
    body: &T,
    ctx: &RequestCtx,
    now: i64,
) -> Result<strongroom_core::store::RegisterEntryRow> {
    Ok(strongroom_core::store::RegisterEntryRow {
        register: register.into(),
        id,
        version,
        tenant: scope,
        body: serde_json::to_string(body).map_err(|_| Error::internal())?,
        recorded_by: ctx.principal.actor(),
        recorded_at: now,
    })
}

/// The latest version of each entry of a JSON register, in id order.
pub fn latest_entries(
    rows: Vec<strongroom_core::store::RegisterEntryRow>,
) -> Vec<strongroom_core::store::RegisterEntryRow> {
    latest(rows, |r| r.id.as_str())
}

/// The latest version of each declaration (withdrawn ones included), in id order.
pub fn current(rows: Vec<DeclarationRow>) -> Vec<DeclarationRow> {
    latest(rows, |r| r.id.as_str())
}

/// What is overdue in the registers the caller's scope sees: incident clocks past their
/// deadline, declarations past their review date.
pub async fn alerts(
    vault: &Vault,
    tenant: Option<&TenantId>,
    now: i64,
) -> Result<Vec<proto::ComplianceAlert>> {
    let mut out = Vec::new();
    for i in crate::incidents::current(vault, tenant, now).await? {
        for c in i.clocks.iter().filter(|c| c.overdue) {
            out.push(proto::ComplianceAlert {
                kind: "incident_overdue".into(),
                scope: "platform".into(),
                entry: i.id.clone(),
                what: format!("notification of the {} is overdue", c.duty),
                due: c.deadline,
            });
        }
    }
    let mut decls = current(vault.declarations(None).await?);
    if let Some(t) = tenant {
        decls.extend(current(vault.declarations(Some(t)).await?));
    }
    let scopes: Vec<Option<TenantId>> = match tenant {
        Some(t) => vec![Some(t.clone()), None],
        None => vec![None],
    };
    for t in crate::trainings::current(vault, &scopes, now).await? {
        if t.overdue {
            out.push(proto::ComplianceAlert {
                kind: "training_overdue".into(),
                scope: t.scope.clone(),
                entry: t.id.clone(),
                what: format!("the training `{}` is due again", t.training.course),
                due: crate::trainings::valid_until(&t.training),
            });
        }
    }
    out.extend(crate::subprocessors::alerts(vault, tenant, now).await?);
    if let Some(t) = tenant {
        out.extend(crate::subject_rights::alerts(vault, t, now).await?);
    }
    for d in decls.iter().filter(|d| !d.withdrawn && d.review_by < now) {
        out.push(proto::ComplianceAlert {
            kind: "review_overdue".into(),
            scope: d
                .tenant
                .as_ref()
                .map_or_else(|| "platform".to_owned(), ToString::to_string),
            entry: d.id.clone(),
            what: format!("the declaration of {} is due for review", d.measure),
            due: d.review_by,
        });
    }
    Ok(out)
}

/// The alerts the caller may read (see [`alerts`]); audited.
pub async fn list_alerts(vault: &Vault, ctx: &RequestCtx) -> Result<proto::ComplianceAlerts> {
    let ev = vault.begin(ctx, "compliance.alerts");
    let res = async {
        let scopes = reader_scopes(ctx)?;
        let tenant = scopes.into_iter().flatten().next();
        let alerts = alerts(vault, tenant.as_ref(), vault.now()).await?;
        Ok((proto::ComplianceAlerts { alerts }, vec![]))
    }
    .await;
    vault.finish(ev, res).await
}

fn check(input: &proto::DeclarationInput, now: i64) -> Result<()> {
    let bad = |m: String| Error::new(Code::InvalidRequest, m);
    if Catalogue::get().measure(&input.measure).is_none() {
        return Err(bad(
            "`measure` is not an id of the catalogue (AC-01 … OR-09)".into(),
        ));
    }
    let text = |name: &str, v: &str, max: usize| {
        let n = v.chars().count();
        if n == 0 || n > max {
            Err(bad(format!("`{name}` is 1 to {max} characters")))
        } else if v.trim().is_empty() {
            Err(Error::invalid(format!("`{name}` is blank")))
        } else if v.chars().any(|c| c.is_control() && c != '\n') {
            Err(Error::invalid(format!("`{name}` holds control characters")))
        } else {
            Ok(())
        }
    };
    text("statement", &input.statement, 4000)?;
    text("owner", &input.owner, 200)?;
    if let Some(n) = &input.evidence_name {
        text("evidence_name", n, 200)?;
    }
    if let Some(h) = &input.evidence_sha256 {
        if h.len() != 64
            || !h
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("`evidence_sha256` is 64 lower-case hex digits".into()));
        }
    }
    let declared_at = input.declared_at.unwrap_or(now);
    if declared_at < 0 || input.review_by < 0 {
        return Err(bad("times are milliseconds since 1970".into()));
    }
    if input.review_by <= declared_at {
        return Err(Error::invalid("`review_by` must come after `declared_at`"));
    }
    if input.review_by - declared_at > MAX_REVIEW_MS {
        return Err(Error::invalid(
            "a declaration is reviewed within three years",
        ));
    }
    if declared_at > now {
        return Err(Error::invalid("`declared_at` lies in the future"));
    }
    Ok(())
}

/// Makes a declaration (`id` `None`) or its next version; `withdraw` makes the version that
/// withdraws it. `pre` is the version the change was made against (`If-Match`).
pub async fn put_declaration(
    vault: &Vault,
    ctx: &RequestCtx,
    id: Option<&str>,
    input: Option<proto::DeclarationInput>,
    pre: Precondition,
) -> Result<proto::Declaration> {
    let mut ev = vault.begin(
        ctx,
        match (id, &input) {
            (None, _) => "declaration.create",
            (Some(_), Some(_)) => "declaration.change",
            (Some(_), None) => "declaration.withdraw",
        },
    );
    let res = async {
        let scope = keeper_scope(ctx)?;
        let now = vault.now();
        // The body is checked before the version it was made against.
        if let Some(input) = &input {
            check(input, now)?;
        }
        let previous = match id {
            None => None,
            Some(id) => {
                let id = RegisterEntryId::parse(id)
                    .ok_or_else(|| Error::new(Code::InvalidId, "not a declaration id"))?;
                ev.objects.push(id.to_string());
                let versions: Vec<DeclarationRow> = vault
                    .declarations(scope.as_ref())
                    .await?
                    .into_iter()
                    .filter(|d| d.id == id.as_str())
                    .collect();
                Some(
                    versions
                        .into_iter()
                        .last()
                        .ok_or_else(|| Error::not_found("declaration"))?,
                )
            }
        };
        let current_version = previous.as_ref().map(|p| u64::from(p.version));
        pre.check_version("declaration", current_version)?;
        if previous.as_ref().is_some_and(|p| p.withdrawn) {
            return Err(Error::new(
                Code::AlreadyExists,
                "this declaration was withdrawn; make a new one",
            ));
        }
        let row = match (previous, input) {
            (prev, Some(input)) => {
                let (id, version) = match &prev {
                    Some(p) => (p.id.clone(), p.version + 1),
                    None => (
                        RegisterEntryId::generate_at(vault.rng(), now).to_string(),
                        1,
                    ),
                };
                let sha = input.evidence_sha256.as_deref().and_then(|h| {
                    strongroom_crypto::unhex(h).and_then(|b| <[u8; 32]>::try_from(b).ok())
                });
                DeclarationRow {
                    id,
                    version,
                    tenant: scope.clone(),
                    measure: input.measure,
                    statement: input.statement,
                    owner: input.owner,
                    evidence_name: input.evidence_name,
                    evidence_sha256: sha,
                    declared_at: input.declared_at.unwrap_or(now),
                    review_by: input.review_by,
                    withdrawn: false,
                    recorded_by: ctx.principal.actor(),
                    recorded_at: now,
                }
            }
            (Some(p), None) => DeclarationRow {
                version: p.version + 1,
                withdrawn: true,
                recorded_by: ctx.principal.actor(),
                recorded_at: now,
                ..p
            },
            (None, None) => return Err(Error::internal()),
        };
        if id.is_none() {
            ev.objects.push(row.id.clone());
        }
        ev.objects.push(format!("measure:{}", row.measure));
        ev.objects.push(format!("version:{}", row.version));
        Ok((view(&row), vec![Op::PutDeclaration(row)]))
    }
    .await;
    vault.finish(ev, res).await
}

/// The current declarations the caller may read (its own scope's, and the platform's for a
/// tenant), or every version of one (`history`).
pub async fn list_declarations(
    vault: &Vault,
    ctx: &RequestCtx,
    history_of: Option<&str>,
) -> Result<proto::DeclarationList> {
    let mut ev = vault.begin(ctx, "declaration.list");
    let res = async {
        let mut out = Vec::new();
        for scope in reader_scopes(ctx)? {
            let rows = vault.declarations(scope.as_ref()).await?;
            match history_of {
                Some(id) => out.extend(rows.into_iter().filter(|d| d.id == id)),
                None => out.extend(current(rows)),
            }
        }
        if let Some(id) = history_of {
            ev.objects.push(id.to_owned());
            if out.is_empty() {
                return Err(Error::not_found("declaration"));
            }
        }
        Ok((
            proto::DeclarationList {
                declarations: out.iter().map(view).collect(),
            },
            vec![],
        ))
    }
    .await;
    vault.finish(ev, res).await
}
