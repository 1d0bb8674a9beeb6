//! The training register (OR-01): who took which course, when, and until when it counts (a
//! year by default). Kept by the platform for its staff and by a tenant for its own; a record
//! past its validity is overdue, listed in the alerts and in the report.

use strongroom_core::ids::{TenantId, TrainingId};
use strongroom_core::store::{Op, RegisterEntryRow};
use strongroom_core::vault::Precondition;
use strongroom_core::{Code, Error, RequestCtx, Result, Vault};
use strongroom_proto::{self as proto, TrainingInput};

pub const REGISTER: &str = "trainings";
const YEAR_MS: i64 = 365 * 86_400_000;

/// Until when a training counts.
pub fn valid_until(t: &TrainingInput) -> i64 {
    t.valid_until.unwrap_or(t.completed_at + YEAR_MS)
}

fn view(row: &RegisterEntryRow, now: i64) -> Result<proto::Training> {
    let training: TrainingInput =
        serde_json::from_str(&row.body).map_err(|_| Error::integrity())?;
    Ok(proto::Training {
        id: row.id.clone(),
        version: row.version,
        scope: row
            .tenant
            .as_ref()
            .map_or_else(|| "platform".to_owned(), ToString::to_string),
        overdue: valid_until(&training) < now,
        training,
        recorded_by: row.recorded_by.clone(),
        recorded_at: row.recorded_at,
    })
}

/// The latest version of every training of the scopes given.
pub async fn current(
    vault: &Vault,
    scopes: &[Option<TenantId>],
    now: i64,
) -> Result<Vec<proto::Training>> {
    let mut out = Vec::new();
    for scope in scopes {
        let rows = crate::registers::latest_entries(
            vault.register_entries(REGISTER, scope.as_ref()).await?,
        );
        for r in rows {
            out.push(view(&r, now)?);
        }
    }
    Ok(out)
}

fn check(t: &TrainingInput, now: i64) -> Result<()> {
    for (name, v) in [("person", &t.person), ("course", &t.course)] {
        let n = v.chars().count();
        if n == 0 || n > 200 {
            return Err(Error::new(
                Code::InvalidRequest,
                format!("`{name}` is 1 to 200 characters"),
            ));
        }
        if v.trim().is_empty() || v.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "`{name}` is blank or holds control characters"
            )));
        }
    }
    if t.completed_at < 0 || t.valid_until.is_some_and(|v| v < 0) {
        return Err(Error::new(
            Code::InvalidRequest,
            "times are milliseconds since 1970",
        ));
    }
    if t.completed_at > now {
        return Err(Error::invalid("`completed_at` lies in the future"));
    }
    if valid_until(t) <= t.completed_at {
        return Err(Error::invalid(
            "`valid_until` must come after `completed_at`",
        ));
    }
    Ok(())
}

/// Records a training (`id` `None`) or its next version against `pre`.
pub async fn put(
    vault: &Vault,
    ctx: &RequestCtx,
    id: Option<&str>,
    input: TrainingInput,
    pre: Precondition,
) -> Result<proto::Training> {
    let mut ev = vault.begin(
        ctx,
        if id.is_some() {
            "training.change"
        } else {
            "training.create"
        },
    );
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
            |id| TrainingId::parse(id).is_some(),
            || TrainingId::generate_at(vault.rng(), now).to_string(),
        )
        .await?;
        let row = crate::registers::entry_row(REGISTER, next, scope, &input, ctx, now)?;
        let out = view(&row, now)?;
        Ok((out, vec![Op::PutRegisterEntry(row)]))
    }
    .await;
    vault.finish(ev, res).await
}

/// The trainings the caller may read: its scope's, and for a tenant the platform's.
pub async fn list(vault: &Vault, ctx: &RequestCtx) -> Result<proto::TrainingList> {
    let ev = vault.begin(ctx, "training.list");
    let res = async {
        let scopes = crate::registers::reader_scopes(ctx)?;
        let trainings = current(vault, &scopes, vault.now()).await?;
        Ok((proto::TrainingList { trainings }, vec![]))
    }
    .await;
    vault.finish(ev, res).await
}
