//! Records of processing activities (OR-05, GDPR Art. 30(2)), derived — not typed — for each
//! tenant (a controller the platform processes for): one activity per collection with its
//! purposes, categories of data (Art. 9 marked) and recipients (roles, with the keys and people
//! holding them), the subprocessors and transfers, the retention, and a reference to the TOMs.
//! What the vault cannot know (names, contacts, the DPO) are free-text fields kept as a
//! versioned register: the platform's for every tenant, and each tenant's own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strongroom_core::ids::TenantId;
use strongroom_core::store::{Op, RegisterEntryRow};
use strongroom_core::vault::Precondition;
use strongroom_core::{Error, RequestCtx, Result, Vault};
use strongroom_proto::{Classification, Operation};

pub const FORMAT: &str = "strongroom-ropa/1";
pub const REGISTER: &str = "ropa_fields";
const MAX_FIELDS: usize = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub field: String,
    /// `identifier`, `personal`, `special` or `non_personal`.
    pub classification: String,
    /// A special category of Art. 9.
    pub special: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub role: String,
    pub operations: Vec<String>,
    pub purposes: Vec<String>,
    /// Live API keys and people holding the role.
    pub api_keys: usize,
    pub users: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// The collection the processing is about.
    pub collection: String,
    pub purposes: Vec<String>,
    pub categories: Vec<Category>,
    /// It holds special categories of Art. 9.
    pub special_categories: bool,
    pub recipients: Vec<Recipient>,
    pub retention: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubprocessorRef {
    pub name: String,
    pub service: String,
    pub country: String,
    /// Outside the EEA.
    pub transfer: bool,
    pub safeguard: String,
    /// `platform` or the tenant's id: whose register it comes from.
    pub engaged_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ropa {
    pub format: String,
    pub generated_at: i64,
    pub controller_id: String,
    pub controller_name: String,
    /// Free-text fields: the platform's, then the tenant's (which win on the same name).
    pub fields: BTreeMap<String, String>,
    pub activities: Vec<Activity>,
    pub subprocessors: Vec<SubprocessorRef>,
    /// Where the technical and organisational measures are described (Art. 30(2)(d), 32(1)).
    pub toms: String,
}

fn classification(c: Classification) -> &'static str {
    match c {
        Classification::Identifier => "identifier",
        Classification::Personal => "personal",
        Classification::Special => "special",
        Classification::NonPersonal => "non_personal",
    }
}

fn operation(o: Operation) -> &'static str {
    match o {
        Operation::Create => "create",
        Operation::Read => "read",
        Operation::Update => "update",
        Operation::Delete => "delete",
        Operation::Search => "search",
        Operation::History => "history",
    }
}

/// The free-text fields of a scope's register (its latest version), if any.
async fn fields_of(vault: &Vault, scope: Option<&TenantId>) -> Result<Option<RegisterEntryRow>> {
    let rows = vault.register_entries(REGISTER, scope).await?;
    Ok(rows.into_iter().last())
}

fn parse_fields(row: &RegisterEntryRow) -> Result<BTreeMap<String, String>> {
    serde_json::from_str(&row.body).map_err(|_| Error::integrity())
}

/// A collection's retention in words.
pub fn retention_text(rule: Option<&strongroom_proto::Retention>) -> String {
    use strongroom_proto::{RetentionAction, RetentionFrom};
    match rule {
        None => {
            "no retention period: kept until deleted, then purged after the grace period".into()
        }
        Some(r) => format!(
            "{} from {}, then {}",
            r.period,
            match r.from {
                RetentionFrom::Created => "creation",
                RetentionFrom::Updated => "the last update",
            },
            match r.action {
                RetentionAction::Purge => "destroyed",
                RetentionAction::KeepNonPersonal => "only the non-personal fields are kept",
            }
        ),
    }
}

/// Derives the records of processing of `tenant` as of `now`.
pub async fn derive(vault: &Vault, tenant: &TenantId, now: i64) -> Result<Ropa> {
    let store = vault.store();
    let row = store
        .find_tenant(tenant)
        .await?
        .ok_or_else(|| Error::not_found("tenant"))?;
    let mut fields = BTreeMap::new();
    for scope in [None, Some(tenant)] {
        if let Some(r) = fields_of(vault, scope).await? {
            fields.extend(parse_fields(&r)?);
        }
    }
    let roles = store.find_roles(tenant).await?;
    let keys = store.find_api_keys(Some(tenant)).await?;
    let users = store.find_users(Some(tenant)).await?;
    let mut activities = Vec::new();
    for c in store.find_collections(tenant).await? {
        let categories: Vec<Category> = c
            .def
            .fields
            .iter()
            .map(|f| Category {
                field: f.name.clone(),
                classification: classification(f.classification).into(),
                special: f.classification == Classification::Special,
            })
            .collect();
        let recipients = roles
            .iter()
            .filter_map(|r| {
                let grant = r.def.collections.get(&c.name)?;
                Some(Recipient {
                    role: r.name.clone(),
                    operations: grant
                        .operations
                        .iter()
                        .map(|o| operation(*o).to_owned())
                        .collect(),
                    purposes: grant.purposes.clone(),
                    api_keys: keys
                        .iter()
                        .filter(|k| k.expires_at > now && k.roles.contains(&r.name))
                        .count(),
                    users: users.iter().filter(|u| u.roles.contains(&r.name)).count(),
                })
            })
            .collect();
        activities.push(Activity {
            collection: c.name.clone(),
            purposes: c.def.purposes.clone(),
            special_categories: categories.iter().any(|x| x.special),
            categories,
            recipients,
            retention: retention_text(c.def.retention.as_ref()),
        });
    }
    let subprocessors = crate::subprocessors::current(vault, Some(tenant), now)
        .await?
        .into_iter()
        .map(|e| e.view)
        .filter(|s| s.subprocessor.ended_at.is_none())
        .map(|s| SubprocessorRef {
            name: s.subprocessor.name,
            service: s.subprocessor.service,
            country: s.subprocessor.country,
            transfer: s.transfer,
            safeguard: crate::subprocessors::safeguard_name(s.subprocessor.safeguard).into(),
            engaged_by: s.scope,
        })
        .collect();
    Ok(Ropa {
        format: FORMAT.into(),
        generated_at: now,
        controller_id: tenant.to_string(),
        controller_name: row.name,
        fields,
        activities,
        subprocessors,
        toms: format!(
            "The TOMs report of this controller (`strongroom toms report --tenant {tenant}`, \
             or GET /v1/compliance/toms?tenant={tenant}), generated from live evidence and signed."
        ),
    })
}

/// A CSV cell: quoted, inner quotes doubled, and a leading `=`, `+`, `-`, `@`, tab or carriage
/// return defused with a `'` so that no spreadsheet runs it as a formula.
fn cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// One row per activity.
pub fn csv(r: &Ropa) -> String {
    let mut out = String::from(
        "controller,activity,purposes,categories of data,special categories (Art. 9),recipients,\
         subprocessors,transfers outside the EEA,retention,technical and organisational measures\r\n",
    );
    let subs: Vec<String> = r
        .subprocessors
        .iter()
        .map(|s| format!("{} ({}, {})", s.name, s.service, s.country))
        .collect();
    let transfers: Vec<String> = r
        .subprocessors
        .iter()
        .filter(|s| s.transfer)
        .map(|s| format!("{} to {}: {}", s.name, s.country, s.safeguard))
        .collect();
    for a in &r.activities {
        let cats: Vec<String> = a
            .categories
            .iter()
            .map(|c| format!("{} ({})", c.field, c.classification))
            .collect();
        let special: Vec<&str> = a
            .categories
            .iter()
            .filter(|c| c.special)
            .map(|c| c.field.as_str())
            .collect();
        let recipients: Vec<String> = a
            .recipients
            .iter()
            .map(|x| format!("{} [{}]", x.role, x.operations.join(" ")))
            .collect();
        let row = [
            format!("{} ({})", r.controller_name, r.controller_id),
            a.collection.clone(),
            a.purposes.join("; "),
            cats.join("; "),
            special.join("; "),
            recipients.join("; "),
            subs.join("; "),
            transfers.join("; "),
            a.retention.clone(),
            r.toms.clone(),
        ];
        let cells: Vec<String> = row.iter().map(|v| cell(v)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Markdown text: inline characters that would change the layout are escaped.
pub(crate) fn md(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        if matches!(
            ch,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#'
        ) {
            out.push('\\');
        }
        out.push(if ch.is_control() { ' ' } else { ch });
    }
    out
}

pub fn markdown(r: &Ropa) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Records of processing activities (GDPR Art. 30(2))\n\nController: **{}** ({})  \nGenerated: {}\n",
        md(&r.controller_name),
        r.controller_id,
        crate::render::date(r.generated_at)
    );
    if !r.fields.is_empty() {
        let _ = writeln!(o, "| | |\n|---|---|");
        for (k, v) in &r.fields {
            let _ = writeln!(o, "| {} | {} |", md(k), md(v));
        }
        o.push('\n');
    }
    let _ = writeln!(o, "## Processing carried out for the controller\n");
    if r.activities.is_empty() {
        let _ = writeln!(
            o,
            "No collection is defined: no personal data is processed yet.\n"
        );
    }
    for a in &r.activities {
        let _ = writeln!(o, "### {}\n", md(&a.collection));
        let _ = writeln!(o, "- Purposes: {}", md(&a.purposes.join(", ")));
        let cats: Vec<String> = a
            .categories
            .iter()
            .map(|c| {
                if c.special {
                    format!("{} (special category, Art. 9)", md(&c.field))
                } else {
                    format!("{} ({})", md(&c.field), c.classification)
                }
            })
            .collect();
        let _ = writeln!(o, "- Categories of data: {}", cats.join(", "));
        if a.recipients.is_empty() {
            let _ = writeln!(
                o,
                "- Recipients: none besides the controller's administrators"
            );
        }
        for x in &a.recipients {
            let _ = writeln!(
                o,
                "- Recipient: role {} — {} for {} ({} API keys, {} people)",
                md(&x.role),
                x.operations.join(", "),
                md(&x.purposes.join(", ")),
                x.api_keys,
                x.users
            );
        }
        let _ = writeln!(o, "- Retention: {}\n", md(&a.retention));
    }
    let _ = writeln!(o, "## Subprocessors and transfers\n");
    if r.subprocessors.is_empty() {
        let _ = writeln!(o, "None registered.\n");
    } else {
        let _ = writeln!(
            o,
            "| subprocessor | service | country | transfer | safeguard | engaged by |\n|---|---|---|---|---|---|"
        );
        for s in &r.subprocessors {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                md(&s.name),
                md(&s.service),
                s.country,
                if s.transfer { "outside the EEA" } else { "no" },
                s.safeguard,
                s.engaged_by
            );
        }
        o.push('\n');
    }
    let _ = writeln!(
        o,
        "## Technical and organisational measures\n\n{}",
        md(&r.toms)
    );
    o
}

fn check_fields(fields: &BTreeMap<String, String>) -> Result<()> {
    if fields.len() > MAX_FIELDS {
        return Err(Error::invalid("at most 30 fields"));
    }
    for (k, v) in fields {
        let n = k.chars().count();
        if n == 0 || n > 100 || k.chars().any(char::is_control) || k.trim().is_empty() {
            return Err(Error::invalid(
                "a field's name is 1 to 100 characters without control characters",
            ));
        }
        if v.chars().count() > 4000 || v.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Error::invalid(
                "a field's text is at most 4000 characters without control characters",
            ));
        }
    }
    Ok(())
}

/// Sets the free-text fields of the caller's scope (the platform's, or its tenant's) as a new
/// version against `pre`; an empty value removes a field.
pub async fn put_fields(
    vault: &Vault,
    ctx: &RequestCtx,
    fields: BTreeMap<String, String>,
    pre: Precondition,
) -> Result<strongroom_proto::RopaFields> {
    let mut ev = vault.begin(ctx, "ropa.fields");
    let res = async {
        let scope = crate::registers::keeper_scope(ctx)?;
        check_fields(&fields)?;
        let previous = fields_of(vault, scope.as_ref()).await?;
        pre.check_version(
            "ropa fields",
            previous.as_ref().map(|p| u64::from(p.version)),
        )?;
        let version = previous.map_or(1, |p| p.version + 1);
        ev.objects.push(format!("version:{version}"));
        let kept: BTreeMap<String, String> =
            fields.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let now = vault.now();
        let label = scope
            .as_ref()
            .map_or_else(|| "platform".to_owned(), ToString::to_string);
        // One entry per scope (ids are unique across scopes within a register).
        let entry = format!("rpf_{label}");
        let row = crate::registers::entry_row(REGISTER, (entry, version), scope, &kept, ctx, now)?;
        let out = strongroom_proto::RopaFields {
            scope: label,
            version,
            fields: kept,
        };
        Ok((out, vec![Op::PutRegisterEntry(row)]))
    }
    .await;
    vault.finish(ev, res).await
}

/// The free-text fields of the caller's scope, with their version (0: none yet).
pub async fn get_fields(vault: &Vault, ctx: &RequestCtx) -> Result<strongroom_proto::RopaFields> {
    let ev = vault.begin(ctx, "ropa.fields.read");
    let res = async {
        let scope = crate::registers::keeper_scope(ctx)?;
        let row = fields_of(vault, scope.as_ref()).await?;
        let fields = match &row {
            Some(r) => parse_fields(r)?,
            None => BTreeMap::new(),
        };
        Ok((
            strongroom_proto::RopaFields {
                scope: scope.map_or_else(|| "platform".to_owned(), |t| t.to_string()),
                version: row.map_or(0, |r| r.version),
                fields,
            },
            vec![],
        ))
    }
    .await;
    vault.finish(ev, res).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(cell("plain"), "\"plain\"");
        assert_eq!(cell("say \"hi\", then"), "\"say \"\"hi\"\", then\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for lead in ["+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(cell(lead).starts_with("\"'"), "{lead}");
        }
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn markdown_text_cannot_change_the_layout() {
        assert_eq!(md("a|b"), "a\\|b");
        assert_eq!(md("# x\n<script>"), "\\# x \\<script\\>");
    }
}
