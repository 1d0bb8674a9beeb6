//! The incident and breach register (OR-03), kept by the platform (operators and platform
//! `compliance` keys). Each incident carries the clocks that start when the processor becomes
//! aware of a personal-data breach: inform each affected controller without undue delay (by
//! default within 24 hours), the controller's notification of the authority within 72 hours
//! (Art. 33) where there is a risk, and of the people concerned (Art. 34, counted here against
//! the same 72 hours) where the risk is high. Affected tenants read the incidents that concern
//! them in their own register.

use strongroom_core::ids::{IncidentId, TenantId};
use strongroom_core::policy::{ROLE_ADMIN, ROLE_AUDITOR, ROLE_COMPLIANCE};
use strongroom_core::store::{Op, RegisterEntryRow};
use strongroom_core::vault::Precondition;
use strongroom_core::{Code, Error, RequestCtx, Result, Vault};
use strongroom_proto::{self as proto, BreachRisk, IncidentClock, IncidentInput};

pub const REGISTER: &str = "incidents";
const HOUR: i64 = 3_600_000;

/// The clocks of an incident as of `now`.
pub fn clocks(i: &IncidentInput, now: i64) -> Vec<IncidentClock> {
    if !i.personal_data_breach {
        return Vec::new();
    }
    let clock = |duty: &str, hours: i64, done: Option<i64>| {
        let deadline = i.aware_at + hours * HOUR;
        IncidentClock {
            duty: duty.to_owned(),
            deadline,
            done_at: done,
            overdue: done.is_none() && now > deadline,
            late: done.is_some_and(|d| d > deadline),
        }
    };
    let mut out = vec![clock(
        "controllers",
        i64::from(i.controller_deadline_hours.unwrap_or(24)),
        i.controllers_notified_at,
    )];
    if i.risk != BreachRisk::None {
        out.push(clock("authority", 72, i.authority_notified_at));
    }
    if i.risk == BreachRisk::High {
        out.push(clock("subjects", 72, i.subjects_notified_at));
    }
    out
}

fn view(row: &RegisterEntryRow, now: i64) -> Result<proto::Incident> {
    let incident: IncidentInput =
        serde_json::from_str(&row.body).map_err(|_| Error::integrity())?;
    Ok(proto::Incident {
        id: row.id.clone(),
        version: row.version,
        clocks: clocks(&incident, now),
        incident,
        recorded_by: row.recorded_by.clone(),
        recorded_at: row.recorded_at,
    })
}

/// The latest version of every incident, as of `now`; for a tenant, those that concern it.
pub async fn current(
    vault: &Vault,
    tenant: Option<&TenantId>,
    now: i64,
) -> Result<Vec<proto::Incident>> {
    let rows = crate::registers::latest_entries(vault.register_entries(REGISTER, None).await?);
    let mut out = Vec::new();
    for r in rows {
        let v = view(&r, now)?;
        if tenant.is_none_or(|t| v.incident.affected_tenants.iter().any(|a| a == t.as_str())) {
            out.push(v);
        }
    }
    Ok(out)
}

async fn check(vault: &Vault, i: &IncidentInput, now: i64) -> Result<()> {
    let bad = |m: &str| Error::new(Code::InvalidRequest, m.to_owned());
    let text = |name: &str, v: &str, min: usize, max: usize| {
        let n = v.chars().count();
        if n < min || n > max {
            Err(bad(&format!("`{name}` is {min} to {max} characters")))
        } else if v.chars().any(|c| c.is_control() && c != '\n') {
            Err(Error::invalid(format!("`{name}` holds control characters")))
        } else {
            Ok(())
        }
    };
    text("title", &i.title, 1, 200)?;
    text("actions", &i.actions, 0, 8000)?;
    if !matches!(
        i.category.as_str(),
        "confidentiality" | "integrity" | "availability"
    ) {
        return Err(bad(
            "`category` is confidentiality, integrity or availability",
        ));
    }
    for c in &i.data_categories {
        text("data_categories", c, 1, 100)?;
    }
    if i.detected_at < 0 || i.aware_at < 0 {
        return Err(bad("times are milliseconds since 1970"));
    }
    if i.aware_at < i.detected_at {
        return Err(Error::invalid(
            "`aware_at` cannot come before `detected_at`",
        ));
    }
    if i.aware_at > now {
        return Err(Error::invalid("`aware_at` lies in the future"));
    }
    if i.controller_deadline_hours
        .is_some_and(|h| !(1..=72).contains(&h))
    {
        return Err(bad("`controller_deadline_hours` is 1 to 72"));
    }
    for (name, t) in [
        ("controllers_notified_at", i.controllers_notified_at),
        ("authority_notified_at", i.authority_notified_at),
        ("subjects_notified_at", i.subjects_notified_at),
        ("closed_at", i.closed_at),
    ] {
        if let Some(t) = t {
            if t < i.aware_at || t > now {
                return Err(Error::invalid(format!(
                    "`{name}` must lie between `aware_at` and now"
                )));
            }
        }
    }
    for t in &i.affected_tenants {
        let id = TenantId::parse(t)
            .ok_or_else(|| Error::new(Code::InvalidId, "`affected_tenants` holds tenant ids"))?;
        if vault.store().find_tenant(&id).await?.is_none() {
            return Err(Error::invalid("an affected tenant does not exist"));
        }
    }
    Ok(())
}

fn platform_keeper(ctx: &RequestCtx) -> Result<()> {
    let p = &ctx.principal;
    if p.restricted_to.is_none()
        && p.tenant.is_none()
        && (p.is_operator() || p.has_role(ROLE_COMPLIANCE))
    {
        Ok(())
    } else {
        Err(Error::forbidden(
            "the incident register is kept by operators and platform `compliance` keys",
        ))
    }
}

/// Records an incident (`id` `None`) or its next version, against the version read (`pre`).
pub async fn put(
    vault: &Vault,
    ctx: &RequestCtx,
    id: Option<&str>,
    input: IncidentInput,
    pre: Precondition,
) -> Result<proto::Incident> {
    let mut ev = vault.begin(
        ctx,
        if id.is_some() {
            "incident.change"
        } else {
            "incident.create"
        },
    );
    let res = async {
        platform_keeper(ctx)?;
        let now = vault.now();
        // The body is checked before the version it was made against.
        check(vault, &input, now).await?;
        let next = crate::registers::next_entry(
            vault,
            &mut ev,
            (REGISTER, None),
            id,
            pre,
            |id| IncidentId::parse(id).is_some(),
            || IncidentId::generate_at(vault.rng(), now).to_string(),
        )
        .await?;
        // The affected tenants see in their own logs that an incident concerns them.
        ev.objects
            .extend(input.affected_tenants.iter().map(|t| format!("tenant:{t}")));
        let row = crate::registers::entry_row(REGISTER, next, None, &input, ctx, now)?;
        let out = view(&row, now)?;
        Ok((out, vec![Op::PutRegisterEntry(row)]))
    }
    .await;
    vault.finish(ev, res).await
}

/// The incidents the caller may read: all (platform), or those concerning its tenant.
pub async fn list(vault: &Vault, ctx: &RequestCtx) -> Result<proto::IncidentList> {
    let ev = vault.begin(ctx, "incident.list");
    let res = async {
        let p = &ctx.principal;
        let tenant = match &p.tenant {
            None if p.is_operator() || p.has_role(ROLE_COMPLIANCE) => None,
            Some(t) if [ROLE_ADMIN, ROLE_AUDITOR, ROLE_COMPLIANCE].iter().any(|r| p.has_role(r)) => {
                Some(t.clone())
            }
            _ => {
                return Err(Error::forbidden(
                    "reading the incident register needs an operator, or the `admin`, `auditor` or `compliance` role",
                ))
            }
        };
        let incidents = current(vault, tenant.as_ref(), vault.now()).await?;
        Ok((proto::IncidentList { incidents }, vec![]))
    }
    .await;
    vault.finish(ev, res).await
}
