//! The subprocessor and transfer register (OR-02, TR-02): who processes data for the
//! processor, for what, in which country, under which transfer safeguard, and when it was and
//! will be evaluated. The platform's register concerns every tenant: each change is announced
//! in every tenant's audit log (`subprocessor.notice`) and alert feed, and a tenant may object
//! to it within the objection window (30 days by default). A tenant keeps its own register too.

use strongroom_core::audit::AuditEvent;
use strongroom_core::ids::{ObjectionId, SubprocessorId, TenantId};
use strongroom_core::store::{Op, RegisterEntryRow};
use strongroom_core::vault::Precondition;
use strongroom_core::{Code, Error, RequestCtx, Result, Vault};
use strongroom_proto::{self as proto, ObjectionInput, SubprocessorInput, TransferSafeguard};

pub const REGISTER: &str = "subprocessors";
pub const OBJECTIONS: &str = "objections";
const DAY: i64 = 86_400_000;
const DEFAULT_OBJECTION_DAYS: u32 = 30;
const MAX_EVALUATION_MS: i64 = 3 * 365 * DAY;

/// ISO 3166-1 alpha-2 codes, officially assigned.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI \
BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ \
GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN \
KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS \
MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT \
PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF \
TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM \
ZW";

/// The European Economic Area: the 27 member states, Iceland, Liechtenstein and Norway.
const EEA: &str = "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IS IT LI LT LU LV MT NL NO PL \
PT RO SE SI SK";

/// The officially assigned ISO 3166-1 alpha-2 codes.
pub fn countries() -> impl Iterator<Item = &'static str> {
    COUNTRIES.split_whitespace()
}

pub fn is_country(code: &str) -> bool {
    code.len() == 2 && countries().any(|c| c == code)
}

/// Data processed in `country` leaves the EEA (a transfer under GDPR Chapter V).
pub fn is_transfer(country: &str) -> bool {
    !EEA.split_whitespace().any(|c| c == country)
}

/// One version of a subprocessor, as read by `reader` (`None`: the platform).
pub struct Entry {
    pub view: proto::Subprocessor,
    /// The tenant reading it has objected to this version.
    pub objected: bool,
}

fn objection_until(row: &RegisterEntryRow, s: &SubprocessorInput) -> Option<i64> {
    row.tenant.is_none().then(|| {
        row.recorded_at + i64::from(s.objection_days.unwrap_or(DEFAULT_OBJECTION_DAYS)) * DAY
    })
}

fn view(
    row: &RegisterEntryRow,
    s: SubprocessorInput,
    now: i64,
    objections: usize,
) -> proto::Subprocessor {
    proto::Subprocessor {
        id: row.id.clone(),
        version: row.version,
        scope: row
            .tenant
            .as_ref()
            .map_or_else(|| "platform".to_owned(), ToString::to_string),
        transfer: is_transfer(&s.country),
        evaluation_overdue: s.ended_at.is_none() && s.next_evaluation_by < now,
        objection_until: objection_until(row, &s),
        objections: u32::try_from(objections).unwrap_or(u32::MAX),
        subprocessor: s,
        recorded_by: row.recorded_by.clone(),
        recorded_at: row.recorded_at,
    }
}

fn parse(row: &RegisterEntryRow) -> Result<SubprocessorInput> {
    serde_json::from_str(&row.body).map_err(|_| Error::integrity())
}

/// The objections recorded in the scopes given (each tenant's register).
async fn objections(vault: &Vault, tenants: &[TenantId]) -> Result<Vec<proto::Objection>> {
    let mut out = Vec::new();
    for t in tenants {
        for row in vault.register_entries(OBJECTIONS, Some(t)).await? {
            let body: ObjectionBody =
                serde_json::from_str(&row.body).map_err(|_| Error::integrity())?;
            out.push(proto::Objection {
                id: row.id,
                tenant: t.to_string(),
                subprocessor: body.subprocessor,
                version: body.version,
                reason: body.reason,
                recorded_by: row.recorded_by,
                recorded_at: row.recorded_at,
            });
        }
    }
    Ok(out)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ObjectionBody {
    subprocessor: String,
    version: u32,
    reason: String,
}

/// The latest version of every subprocessor a reader sees: the platform's, and for a tenant
/// also its own, with the objections to each (a tenant sees only its own).
pub async fn current(vault: &Vault, tenant: Option<&TenantId>, now: i64) -> Result<Vec<Entry>> {
    let objecting: Vec<TenantId> = match tenant {
        Some(t) => vec![t.clone()],
        None => vault.store().find_tenant_ids().await?,
    };
    let objections = objections(vault, &objecting).await?;
    let mut out = Vec::new();
    let scopes: Vec<Option<&TenantId>> = match tenant {
        Some(t) => vec![None, Some(t)],
        None => vec![None],
    };
    for scope in scopes {
        let rows = crate::registers::latest_entries(vault.register_entries(REGISTER, scope).await?);
        for row in rows {
            let s = parse(&row)?;
            let against =
                |o: &&proto::Objection| o.subprocessor == row.id && o.version == row.version;
            let n = objections.iter().filter(against).count();
            out.push(Entry {
                objected: tenant.is_some() && n > 0,
                view: view(&row, s, now, n),
            });
        }
    }
    Ok(out)
}

fn check(s: &SubprocessorInput, now: i64) -> Result<()> {
    let bad = |m: String| Error::new(Code::InvalidRequest, m);
    let text = |name: &str, v: &str, max: usize| {
        let n = v.chars().count();
        if n == 0 || n > max {
            Err(bad(format!("`{name}` is 1 to {max} characters")))
        } else if v.trim().is_empty() || v.chars().any(char::is_control) {
            Err(Error::invalid(format!(
                "`{name}` is blank or holds control characters"
            )))
        } else {
            Ok(())
        }
    };
    text("name", &s.name, 200)?;
    text("service", &s.service, 500)?;
    if s.data_categories.len() > 50 {
        return Err(bad("at most 50 `data_categories`".into()));
    }
    for c in &s.data_categories {
        // The schema does not bound the items: a bad one fits it, so 422 rather than 400.
        text("data_categories", c, 100).map_err(|e| Error::invalid(e.message))?;
    }
    if !is_country(&s.country) {
        return Err(bad(
            "`country` is an ISO 3166-1 alpha-2 code in capitals (`DE`, `US`)".into(),
        ));
    }
    if s.objection_days.is_some_and(|d| d > 90) {
        return Err(bad("`objection_days` is 0 to 90".into()));
    }
    let times = [
        ("dpa_signed_at", s.dpa_signed_at),
        ("last_evaluated_at", s.last_evaluated_at),
        ("ended_at", s.ended_at),
    ];
    if s.next_evaluation_by < 0 || times.iter().any(|(_, t)| t.is_some_and(|t| t < 0)) {
        return Err(bad("times are milliseconds since 1970".into()));
    }
    for (name, t) in times {
        if t.is_some_and(|t| t > now) {
            return Err(Error::invalid(format!("`{name}` lies in the future")));
        }
    }
    if s.last_evaluated_at
        .is_some_and(|l| s.next_evaluation_by <= l)
    {
        return Err(Error::invalid(
            "`next_evaluation_by` must come after `last_evaluated_at`",
        ));
    }
    if s.next_evaluation_by > now + MAX_EVALUATION_MS {
        return Err(Error::invalid(
            "a subprocessor is evaluated again within three years",
        ));
    }
    Ok(())
}

/// Registers a subprocessor (`id` `None`) or its next version against `pre`. A platform change
/// is announced in every tenant's log, with the end of its objection window.
pub async fn put(
    vault: &Vault,
    ctx: &RequestCtx,
    id: Option<&str>,
    input: SubprocessorInput,
    pre: Precondition,
) -> Result<proto::Subprocessor> {
    let mut ev = vault.begin(
        ctx,
        if id.is_some() {
            "subprocessor.change"
        } else {
            "subprocessor.create"
        },
    );
    let mut notices = Vec::new();
    let res = async {
        let scope = crate::registers::keeper_scope(ctx)?;
        let now = vault.now();
        // The body is checked before the version it was made against: a bad body is a 400/422
        // whatever the version.
        check(&input, now)?;
        let next = crate::registers::next_entry(
            vault,
            &mut ev,
            (REGISTER, scope.as_ref()),
            id,
            pre,
            |id| SubprocessorId::parse(id).is_some(),
            || SubprocessorId::generate_at(vault.rng(), now).to_string(),
        )
        .await?;
        let row = crate::registers::entry_row(REGISTER, next, scope, &input, ctx, now)?;
        let until = objection_until(&row, &input);
        if let Some(until) = until {
            for t in vault.store().find_tenant_ids().await? {
                let mut n = AuditEvent::new(
                    Some(t),
                    now,
                    ev.request_id.clone(),
                    ev.actor.clone(),
                    "subprocessor.notice",
                );
                n.objects = vec![
                    row.id.clone(),
                    format!("version:{}", row.version),
                    format!("objection_until:{until}"),
                ];
                notices.push(n);
            }
        }
        let out = view(&row, input, now, 0);
        Ok((out, vec![Op::PutRegisterEntry(row)]))
    }
    .await;
    vault.finish_with(ev, notices, res).await
}

/// The subprocessors the caller may read: the platform's, and for a tenant its own.
pub async fn list(vault: &Vault, ctx: &RequestCtx) -> Result<proto::SubprocessorList> {
    let ev = vault.begin(ctx, "subprocessor.list");
    let res = async {
        let scopes = crate::registers::reader_scopes(ctx)?;
        let tenant = scopes.into_iter().flatten().next();
        let subprocessors = current(vault, tenant.as_ref(), vault.now())
            .await?
            .into_iter()
            .map(|e| e.view)
            .collect();
        Ok((proto::SubprocessorList { subprocessors }, vec![]))
    }
    .await;
    vault.finish(ev, res).await
}

/// A tenant objects to the version of a platform subprocessor it was notified of, within the
/// objection window; once per version.
pub async fn object(
    vault: &Vault,
    ctx: &RequestCtx,
    id: &str,
    input: ObjectionInput,
) -> Result<proto::Objection> {
    let mut ev = vault.begin(ctx, "subprocessor.objection");
    let res = async {
        let Some(tenant) = crate::registers::keeper_scope(ctx)? else {
            return Err(Error::forbidden(
                "objections are made by a tenant's `admin` or `compliance` role",
            ));
        };
        if SubprocessorId::parse(id).is_none() {
            return Err(Error::new(Code::InvalidId, "not a subprocessor id"));
        }
        ev.objects.push(id.to_owned());
        ev.objects.push(format!("version:{}", input.version));
        let n = input.reason.chars().count();
        if n == 0 || n > 2000 {
            return Err(Error::new(
                Code::InvalidRequest,
                "`reason` is 1 to 2000 characters",
            ));
        }
        if input.reason.trim().is_empty() {
            return Err(Error::invalid("`reason` is blank"));
        }
        let now = vault.now();
        let entry = current(vault, Some(&tenant), now)
            .await?
            .into_iter()
            .find(|e| e.view.id == id && e.view.scope == "platform")
            .ok_or_else(|| Error::not_found("subprocessor"))?;
        if entry.view.version != input.version {
            return Err(Error::new(
                Code::PreconditionFailed,
                format!(
                    "version {} is not the current one ({}): object to the current version",
                    input.version, entry.view.version
                ),
            ));
        }
        if entry.objected {
            return Err(Error::new(
                Code::AlreadyExists,
                "this tenant has objected to this version already",
            ));
        }
        if entry.view.objection_until.is_none_or(|u| now > u) {
            return Err(Error::invalid("the objection window has closed"));
        }
        let body = ObjectionBody {
            subprocessor: id.to_owned(),
            version: input.version,
            reason: input.reason,
        };
        let oid = ObjectionId::generate_at(vault.rng(), now).to_string();
        ev.objects.push(oid.clone());
        let row = crate::registers::entry_row(
            OBJECTIONS,
            (oid, 1),
            Some(tenant.clone()),
            &body,
            ctx,
            now,
        )?;
        let out = proto::Objection {
            id: row.id.clone(),
            tenant: tenant.to_string(),
            subprocessor: body.subprocessor,
            version: body.version,
            reason: body.reason,
            recorded_by: row.recorded_by.clone(),
            recorded_at: now,
        };
        Ok((out, vec![Op::PutRegisterEntry(row)]))
    }
    .await;
    // The platform sees the objection in its own log too.
    let mut platform = ev.clone();
    platform.tenant = None;
    platform.action = "subprocessor.objection_received";
    if let Some(t) = &ctx.principal.tenant {
        platform.objects.push(format!("tenant:{t}"));
    }
    vault.finish_with(ev, vec![platform], res).await
}

/// The objections the caller may read: a tenant its own, the platform every tenant's.
pub async fn list_objections(vault: &Vault, ctx: &RequestCtx) -> Result<proto::ObjectionList> {
    let ev = vault.begin(ctx, "subprocessor.objections");
    let res = async {
        let scopes = crate::registers::reader_scopes(ctx)?;
        let tenants: Vec<TenantId> = match scopes.into_iter().flatten().next() {
            Some(t) => vec![t],
            None => vault.store().find_tenant_ids().await?,
        };
        let objections = objections(vault, &tenants).await?;
        Ok((proto::ObjectionList { objections }, vec![]))
    }
    .await;
    vault.finish(ev, res).await
}

/// Alerts of this register: evaluations past due, and for a tenant the platform changes whose
/// objection window is open (the tenant's feed of changes).
pub async fn alerts(
    vault: &Vault,
    tenant: Option<&TenantId>,
    now: i64,
) -> Result<Vec<proto::ComplianceAlert>> {
    let mut out = Vec::new();
    for e in current(vault, tenant, now).await? {
        let s = &e.view;
        if s.evaluation_overdue {
            out.push(proto::ComplianceAlert {
                kind: "evaluation_overdue".into(),
                scope: s.scope.clone(),
                entry: s.id.clone(),
                what: format!(
                    "the subprocessor `{}` is due for evaluation",
                    s.subprocessor.name
                ),
                due: s.subprocessor.next_evaluation_by,
            });
        }
        if let (Some(_), Some(until)) = (tenant, s.objection_until) {
            if now <= until && !e.objected {
                out.push(proto::ComplianceAlert {
                    kind: "subprocessor_change".into(),
                    scope: s.scope.clone(),
                    entry: s.id.clone(),
                    what: format!(
                        "the subprocessor `{}` changed (version {}): objections are open",
                        s.subprocessor.name, s.version
                    ),
                    due: until,
                });
            }
        }
    }
    Ok(out)
}

/// The safeguard's name as the report prints it.
pub fn safeguard_name(s: TransferSafeguard) -> &'static str {
    match s {
        TransferSafeguard::Adequacy => "adequacy decision",
        TransferSafeguard::Scc => "standard contractual clauses",
        TransferSafeguard::Bcr => "binding corporate rules",
        TransferSafeguard::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_country_lists_are_whole() {
        assert_eq!(COUNTRIES.split_whitespace().count(), 249);
        assert_eq!(EEA.split_whitespace().count(), 30);
        for c in EEA.split_whitespace() {
            assert!(is_country(c), "{c}");
            assert!(!is_transfer(c), "{c}");
        }
        for c in ["US", "GB", "CH", "IN", "JP"] {
            assert!(is_country(c) && is_transfer(c), "{c}");
        }
        for c in ["", "D", "de", "XX", "UK", "EU", "DEU"] {
            assert!(!is_country(c), "{c}");
        }
        let mut all: Vec<&str> = COUNTRIES.split_whitespace().collect();
        let n = all.len();
        all.dedup();
        assert_eq!(all.len(), n, "sorted without repeats");
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }
}
