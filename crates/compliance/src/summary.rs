//! The registers' summaries printed at the end of a TOMs report: for each register, the
//! figures that concern the report's scope (a tenant's own and the platform's entries that
//! concern it). Counts and dates only, never the entries' text.

use serde::{Deserialize, Serialize};

use crate::evidence::Context;

/// One figure of one register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterLine {
    pub register: String,
    pub item: String,
    pub value: String,
}

fn line(register: &str, item: &str, value: impl ToString) -> RegisterLine {
    RegisterLine {
        register: register.to_owned(),
        item: item.to_owned(),
        value: value.to_string(),
    }
}

/// The summaries of every register for `ctx.scope`.
pub async fn registers(ctx: &Context<'_>) -> Result<Vec<RegisterLine>, String> {
    let (vault, now, tenant) = (ctx.vault, ctx.now, ctx.scope.tenant());
    let err = |e: strongroom_core::Error| e.message.into_owned();
    let scopes: Vec<Option<strongroom_core::ids::TenantId>> = match tenant {
        Some(t) => vec![None, Some(t.clone())],
        None => vec![None],
    };
    let mut out = Vec::new();

    let declared = crate::collectors::declarations_in_force(ctx)
        .await
        .ok_or("the declarations register could not be read")?;
    let past = declared.iter().filter(|d| d.review_by < now).count();
    out.push(line("declarations", "in force", declared.len()));
    out.push(line("declarations", "past their review date", past));

    let incidents = crate::incidents::current(vault, tenant, now)
        .await
        .map_err(err)?;
    let breaches = incidents
        .iter()
        .filter(|i| i.incident.personal_data_breach)
        .count();
    let open = incidents
        .iter()
        .filter(|i| i.incident.closed_at.is_none())
        .count();
    let overdue = incidents
        .iter()
        .filter(|i| i.clocks.iter().any(|c| c.overdue))
        .count();
    out.push(line("incidents", "recorded", incidents.len()));
    out.push(line("incidents", "personal-data breaches", breaches));
    out.push(line("incidents", "open", open));
    out.push(line("incidents", "with a notification overdue", overdue));

    let trainings = crate::trainings::current(vault, &scopes, now)
        .await
        .map_err(err)?;
    out.push(line("trainings", "records", trainings.len()));
    out.push(line(
        "trainings",
        "run out",
        trainings.iter().filter(|t| t.overdue).count(),
    ));

    let subs: Vec<_> = crate::subprocessors::current(vault, tenant, now)
        .await
        .map_err(err)?
        .into_iter()
        .map(|e| e.view)
        .filter(|s| s.subprocessor.ended_at.is_none())
        .collect();
    out.push(line("subprocessors", "in use", subs.len()));
    out.push(line(
        "subprocessors",
        "outside the EEA (transfers)",
        subs.iter().filter(|s| s.transfer).count(),
    ));
    out.push(line(
        "subprocessors",
        "evaluation overdue",
        subs.iter().filter(|s| s.evaluation_overdue).count(),
    ));
    out.push(line(
        "subprocessors",
        "objections to current versions",
        subs.iter().map(|s| s.objections).sum::<u32>(),
    ));

    let changes = crate::config_history::changes(vault, tenant)
        .await
        .map_err(err)?;
    out.push(line(
        "configuration history",
        "changes recorded",
        changes.len(),
    ));
    if let Some(last) = changes.last() {
        out.push(line(
            "configuration history",
            "latest change",
            crate::render::date(last.recorded_at),
        ));
    }

    if let Some(t) = tenant {
        let ropa = crate::ropa::derive(vault, t, now).await.map_err(err)?;
        out.push(line(
            "records of processing",
            "processing activities",
            ropa.activities.len(),
        ));
        out.push(line(
            "records of processing",
            "with special categories (Art. 9)",
            ropa.activities
                .iter()
                .filter(|a| a.special_categories)
                .count(),
        ));
    }
    Ok(out)
}
