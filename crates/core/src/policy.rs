//! Access policy: who may do what to which collection, for which purpose, and what of each field
//! they see. Everything not granted is denied.

use std::collections::BTreeSet;

use strongroom_proto::{CollectionDef, CollectionGrant, Operation, RoleDef, Visibility};

use crate::error::{quote_name, Code, Error, Result};
use crate::schema::{check_name, field_allows_purpose};

/// Administers the tenant: schemas, roles, keys, audit trail. No record values on its own.
pub const ROLE_ADMIN: &str = "admin";
/// Reads the tenant's audit trail.
pub const ROLE_AUDITOR: &str = "auditor";
/// The platform operator: creates tenants and their first keys; no tenant data.
pub const ROLE_OPERATOR: &str = "operator";
/// Keeps the compliance registers (of a tenant, or without a tenant of the platform) and reads
/// the TOMs report; no data.
pub const ROLE_COMPLIANCE: &str = "compliance";

/// Answers data subjects' requests: sees what the vault holds of a subject (counts), exports
/// it, erases it. No access to records through the data API on its own.
pub const ROLE_PRIVACY_OFFICER: &str = "privacy_officer";

/// Roles that exist in every tenant and cannot be redefined.
pub fn is_builtin(role: &str) -> bool {
    matches!(
        role,
        ROLE_ADMIN | ROLE_AUDITOR | ROLE_OPERATOR | ROLE_COMPLIANCE | ROLE_PRIVACY_OFFICER
    )
}

/// Validates a role definition against the tenant's collections.
pub fn validate_role<'a>(
    def: &RoleDef,
    collection: impl Fn(&str) -> Option<&'a CollectionDef>,
) -> Result<()> {
    let bad = |m: String| Error::new(Code::InvalidRole, m);
    if def.collections.is_empty() {
        return Err(bad("a role grants rights on at least one collection".into()));
    }
    for (name, grant) in &def.collections {
        check_name("collection", name)?;
        let Some(cdef) = collection(name) else {
            return Err(bad(format!("collection `{name}` does not exist")));
        };
        if grant.operations.is_empty() {
            return Err(bad(format!(
                "collection `{name}`: grant at least one operation"
            )));
        }
        let ops: BTreeSet<_> = grant.operations.iter().collect();
        if ops.len() != grant.operations.len() {
            return Err(bad(format!(
                "collection `{name}`: an operation is listed twice"
            )));
        }
        if grant.purposes.is_empty() {
            return Err(bad(format!(
                "collection `{name}`: name the purposes this role may state"
            )));
        }
        for p in &grant.purposes {
            if !cdef.purposes.iter().any(|d| d == p) {
                return Err(bad(format!(
                    "collection `{name}`: purpose {} is not declared by the collection",
                    quote_name(p)
                )));
            }
        }
        for field in grant.fields.keys() {
            if !cdef.fields.iter().any(|f| &f.name == field) {
                return Err(bad(format!(
                    "collection `{name}`: field {} does not exist",
                    quote_name(field)
                )));
            }
        }
    }
    Ok(())
}

/// What a caller may see of each field of a collection (aligned with `CollectionDef::fields`),
/// for one operation and purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub purpose: String,
    pub fields: Vec<Visibility>,
}

/// Decides an operation on a collection for the grants a caller holds on it.
///
/// Order: a purpose must be stated and declared by the collection; some grant must allow the
/// operation; some grant allowing the operation must allow the purpose. Field visibility is the
/// most generous among those grants, cut to `none` where the field does not allow the purpose.
pub fn authorize(
    def: &CollectionDef,
    grants: &[&CollectionGrant],
    op: Operation,
    purpose: Option<&str>,
) -> Result<Access> {
    let Some(purpose) = purpose.filter(|p| !p.is_empty()) else {
        return Err(Error::new(
            Code::PurposeRequired,
            "state the purpose of this access in the X-Purpose header",
        ));
    };
    if !def.purposes.iter().any(|p| p == purpose) {
        return Err(Error::new(
            Code::UnknownPurpose,
            format!(
                "purpose {} is not declared for this collection",
                quote_name(purpose)
            ),
        ));
    }
    let with_op: Vec<&CollectionGrant> = grants
        .iter()
        .copied()
        .filter(|g| g.operations.contains(&op))
        .collect();
    if with_op.is_empty() {
        return Err(Error::new(
            Code::OperationDenied,
            format!("no role of this credential may {op:?} records of this collection")
                .to_lowercase(),
        ));
    }
    let allowed: Vec<&CollectionGrant> = with_op
        .into_iter()
        .filter(|g| g.purposes.iter().any(|p| p == purpose))
        .collect();
    if allowed.is_empty() {
        return Err(Error::new(
            Code::PurposeDenied,
            format!(
                "no role of this credential may access this collection for purpose `{purpose}`"
            ),
        ));
    }
    let fields = def
        .fields
        .iter()
        .map(|f| {
            if !field_allows_purpose(def, f, purpose) {
                return Visibility::None;
            }
            allowed
                .iter()
                .filter_map(|g| g.fields.get(&f.name).copied())
                .max()
                .unwrap_or(Visibility::None)
        })
        .collect();
    Ok(Access {
        purpose: purpose.to_owned(),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use strongroom_proto::{Classification, FieldDef, FieldType, MaskRule};

    fn def() -> CollectionDef {
        let f = |name: &str, purposes: &[&str]| FieldDef {
            name: name.into(),
            field_type: FieldType::String,
            classification: Classification::Personal,
            mask: MaskRule::Full,
            searchable: false,
            required: false,
            purposes: purposes.iter().map(|s| s.to_string()).collect(),
        };
        CollectionDef {
            purge_grace_days: None,
            retention: None,
            history_depth: None,
            bases: Default::default(),
            purposes: vec!["support".into(), "billing".into()],
            fields: vec![f("name", &[]), f("iban", &["billing"])],
        }
    }

    fn grant(
        ops: &[Operation],
        purposes: &[&str],
        fields: &[(&str, Visibility)],
    ) -> CollectionGrant {
        CollectionGrant {
            operations: ops.to_vec(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
            purposes: purposes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn default_deny_and_purpose_binding() {
        let d = def();
        let support = grant(
            &[Operation::Read],
            &["support"],
            &[("name", Visibility::Plain), ("iban", Visibility::Plain)],
        );
        let code = |r: Result<Access>| r.unwrap_err().code;
        assert_eq!(
            code(authorize(&d, &[&support], Operation::Read, None)),
            Code::PurposeRequired
        );
        assert_eq!(
            code(authorize(
                &d,
                &[&support],
                Operation::Read,
                Some("marketing")
            )),
            Code::UnknownPurpose
        );
        assert_eq!(
            code(authorize(
                &d,
                &[&support],
                Operation::Update,
                Some("support")
            )),
            Code::OperationDenied
        );
        assert_eq!(
            code(authorize(&d, &[&support], Operation::Read, Some("billing"))),
            Code::PurposeDenied
        );
        assert_eq!(
            code(authorize(&d, &[], Operation::Read, Some("support"))),
            Code::OperationDenied
        );
        // The iban field only allows billing, so support sees no iban even with `plain`.
        let a = authorize(&d, &[&support], Operation::Read, Some("support")).unwrap();
        assert_eq!(a.fields, vec![Visibility::Plain, Visibility::None]);
    }

    #[test]
    fn grants_do_not_combine_across_operations() {
        let d = def();
        // Read for support, search for billing: read for billing stays denied.
        let r = grant(
            &[Operation::Read],
            &["support"],
            &[("name", Visibility::Masked)],
        );
        let s = grant(
            &[Operation::Search],
            &["billing"],
            &[("name", Visibility::Plain)],
        );
        assert_eq!(
            authorize(&d, &[&r, &s], Operation::Read, Some("billing"))
                .unwrap_err()
                .code,
            Code::PurposeDenied
        );
        let r2 = grant(
            &[Operation::Read],
            &["support"],
            &[("name", Visibility::Plain)],
        );
        let a = authorize(&d, &[&r, &r2], Operation::Read, Some("support")).unwrap();
        assert_eq!(
            a.fields[0],
            Visibility::Plain,
            "most generous of the allowing grants"
        );
    }

    #[test]
    fn role_validation() {
        let d = def();
        let lookup = |n: &str| (n == "people").then_some(&d);
        let mut role = RoleDef {
            collections: BTreeMap::from([(
                "people".to_string(),
                grant(
                    &[Operation::Read],
                    &["support"],
                    &[("name", Visibility::Plain)],
                ),
            )]),
        };
        validate_role(&role, lookup).unwrap();
        role.collections.get_mut("people").unwrap().purposes = vec!["marketing".into()];
        assert_eq!(
            validate_role(&role, lookup).unwrap_err().code,
            Code::InvalidRole
        );
        let missing = RoleDef {
            collections: BTreeMap::from([(
                "orders".to_string(),
                grant(&[Operation::Read], &["support"], &[]),
            )]),
        };
        assert!(validate_role(&missing, lookup).is_err());
        let bad_field = RoleDef {
            collections: BTreeMap::from([(
                "people".to_string(),
                grant(
                    &[Operation::Read],
                    &["support"],
                    &[("ssn", Visibility::Plain)],
                ),
            )]),
        };
        assert!(validate_role(&bad_field, lookup).is_err());
    }
}
