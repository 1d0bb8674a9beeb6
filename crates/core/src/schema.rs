//! Collection schemas: validating a definition, validating and normalising field values, and
//! masking them for roles with `masked` visibility.

use std::collections::BTreeSet;

use serde_json::Value;
use strongroom_proto::{CollectionDef, FieldDef, FieldType, MaskRule};

use crate::error::{quote_name, Code, Error, Result};

/// Most fields a collection may declare.
pub const MAX_FIELDS: usize = 256;
/// Most purposes a collection may declare.
pub const MAX_PURPOSES: usize = 64;
/// Longest string value, in bytes.
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// Largest `json` value, serialised, in bytes.
pub const MAX_JSON_BYTES: usize = 256 * 1024;

/// `a-z` first, then `a-z`, `0-9`, `_` or `-`, 1–64 characters in all.
pub fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// Checks a name of a tenant, collection, field, role or purpose.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    if is_identifier(name) {
        Ok(())
    } else {
        Err(Error::new(
            Code::InvalidName,
            format!(
                "{kind} names are 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter"
            ),
        ))
    }
}

fn schema_err(msg: String) -> Error {
    Error::new(Code::InvalidSchema, msg)
}

/// Validates a collection definition as a whole.
pub fn validate_collection(def: &CollectionDef) -> Result<()> {
    if def.purge_grace_days.is_some_and(|d| d > 3650) {
        return Err(schema_err("`purge_grace_days` is 0 to 3650".into()));
    }
    if def.history_depth.is_some_and(|d| d > 1000) {
        return Err(schema_err("`history_depth` is 0 to 1000".into()));
    }
    if let Some(r) = &def.retention {
        crate::retention::period(&r.period)?;
    }
    if def.purposes.is_empty() {
        return Err(schema_err(
            "a collection declares at least one purpose".into(),
        ));
    }
    if def.purposes.len() > MAX_PURPOSES {
        return Err(schema_err(format!(
            "at most {MAX_PURPOSES} purposes per collection"
        )));
    }
    let mut purposes = BTreeSet::new();
    for p in &def.purposes {
        check_name("purpose", p)?;
        if !purposes.insert(p.as_str()) {
            return Err(schema_err(format!("purpose `{p}` is declared twice")));
        }
    }
    if let Some(p) = def.bases.keys().find(|p| !purposes.contains(p.as_str())) {
        return Err(schema_err(format!(
            "`bases` names purpose `{p}`, which the collection does not declare"
        )));
    }
    if def.fields.is_empty() || def.fields.len() > MAX_FIELDS {
        return Err(schema_err(format!(
            "a collection has 1 to {MAX_FIELDS} fields"
        )));
    }
    let mut names = BTreeSet::new();
    for f in &def.fields {
        check_name("field", &f.name)?;
        if !names.insert(f.name.as_str()) {
            return Err(schema_err(format!("field `{}` is declared twice", f.name)));
        }
        validate_field(f, &purposes)?;
    }
    Ok(())
}

fn validate_field(f: &FieldDef, purposes: &BTreeSet<&str>) -> Result<()> {
    if f.searchable && matches!(f.field_type, FieldType::Json | FieldType::Bool) {
        return Err(schema_err(format!(
            "field `{}`: {:?} fields cannot be searchable",
            f.name, f.field_type
        )));
    }
    let mask_fits = match f.mask {
        MaskRule::Full => true,
        MaskRule::Email => f.field_type == FieldType::Email,
        MaskRule::Year => f.field_type == FieldType::Date,
        MaskRule::Last4 | MaskRule::First1 => matches!(
            f.field_type,
            FieldType::String | FieldType::Email | FieldType::Phone
        ),
    };
    if !mask_fits {
        return Err(schema_err(format!(
            "field `{}`: mask rule {:?} does not apply to {:?} fields",
            f.name, f.mask, f.field_type
        )));
    }
    let mut seen = BTreeSet::new();
    for p in &f.purposes {
        if !purposes.contains(p.as_str()) {
            return Err(schema_err(format!(
                "field `{}`: purpose {} is not declared by the collection",
                f.name,
                quote_name(p)
            )));
        }
        if !seen.insert(p) {
            return Err(schema_err(format!(
                "field `{}`: purpose `{p}` listed twice",
                f.name
            )));
        }
    }
    Ok(())
}

/// Checks that `new` can replace `old` without stranding stored data: fields may be added and
/// their purposes, masks, classification and `required` changed, but none removed, retyped, or
/// made searchable after the fact (existing records would be missing from the index).
pub fn check_compatible(old: &CollectionDef, new: &CollectionDef) -> Result<()> {
    for of in &old.fields {
        let Some(nf) = new.fields.iter().find(|f| f.name == of.name) else {
            return Err(Error::new(
                Code::SchemaIncompatible,
                format!(
                    "field `{}` cannot be removed: records may hold values for it",
                    of.name
                ),
            ));
        };
        if nf.field_type != of.field_type {
            return Err(Error::new(
                Code::SchemaIncompatible,
                format!("field `{}` cannot change its type", of.name),
            ));
        }
        if nf.searchable != of.searchable {
            return Err(Error::new(
                Code::SchemaIncompatible,
                format!(
                    "field `{}` cannot change `searchable` once defined",
                    of.name
                ),
            ));
        }
    }
    Ok(())
}

/// The purposes a field may be processed for.
pub fn field_allows_purpose(def: &CollectionDef, field: &FieldDef, purpose: &str) -> bool {
    if field.purposes.is_empty() {
        def.purposes.iter().any(|p| p == purpose)
    } else {
        field.purposes.iter().any(|p| p == purpose)
    }
}

fn bad_value(field: &str, what: &str) -> Error {
    Error::invalid(format!("field `{field}`: {what}"))
}

/// Validates a value for a field and returns it in canonical form. Error messages name the
/// field and the rule, never the value.
pub fn validate_value(field: &FieldDef, value: &Value) -> Result<Value> {
    let name = field.name.as_str();
    match field.field_type {
        FieldType::String => {
            let s = as_str(name, value)?;
            if s.len() > MAX_STRING_BYTES {
                return Err(bad_value(name, "longer than 64 KiB"));
            }
            if s.contains('\0') {
                return Err(bad_value(name, "contains a NUL character"));
            }
            Ok(Value::String(s.to_owned()))
        }
        FieldType::Email => {
            let s = as_str(name, value)?.trim();
            if !is_email(s) {
                return Err(bad_value(name, "not a valid email address"));
            }
            Ok(Value::String(s.to_owned()))
        }
        FieldType::Phone => {
            let s = as_str(name, value)?.trim();
            let digits = s.bytes().filter(u8::is_ascii_digit).count();
            let allowed = s.char_indices().all(|(i, c)| {
                c.is_ascii_digit()
                    || matches!(c, ' ' | '-' | '(' | ')' | '.')
                    || (c == '+' && i == 0)
            });
            if !allowed || !(5..=20).contains(&digits) {
                return Err(bad_value(
                    name,
                    "not a valid phone number (digits, spaces, '-', '.', '()', an optional leading '+'; 5 to 20 digits)",
                ));
            }
            Ok(Value::String(s.to_owned()))
        }
        FieldType::Date => {
            let s = as_str(name, value)?;
            if !is_date(s) {
                return Err(bad_value(
                    name,
                    "not a calendar date of the form YYYY-MM-DD",
                ));
            }
            Ok(Value::String(s.to_owned()))
        }
        FieldType::Number => match value {
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(value.clone()),
            _ => Err(bad_value(name, "expected a number")),
        },
        FieldType::Bool => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => Err(bad_value(name, "expected true or false")),
        },
        FieldType::Json => {
            let size = serde_json::to_vec(value)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if size > MAX_JSON_BYTES {
                return Err(bad_value(name, "JSON value larger than 256 KiB"));
            }
            Ok(value.clone())
        }
    }
}

/// Parses a search term given as text (a query string) into a value of the field's type.
pub fn parse_term(field: &FieldDef, text: &str) -> Result<Value> {
    let v = match field.field_type {
        FieldType::Number => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad_value(&field.name, "expected a number"))?,
        _ => Value::String(text.to_owned()),
    };
    validate_value(field, &v)
}

/// The normalised form of a canonical value that the blind index hashes: equal in meaning means
/// equal bytes (emails case-insensitive, phones by digits, numbers by value).
pub fn normalise(field: &FieldDef, value: &Value) -> Vec<u8> {
    match (field.field_type, value) {
        (FieldType::Email, Value::String(s)) => s.trim().to_lowercase().into_bytes(),
        (FieldType::Phone, Value::String(s)) => s
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect::<String>()
            .into_bytes(),
        (FieldType::String, Value::String(s)) => s.trim().as_bytes().to_vec(),
        (FieldType::Number, Value::Number(n)) => match n.as_f64() {
            Some(f) => format!("{f:e}").into_bytes(),
            None => n.to_string().into_bytes(),
        },
        (_, Value::String(s)) => s.as_bytes().to_vec(),
        (_, other) => other.to_string().into_bytes(),
    }
}

/// The masked form of a value: always a string, revealing at most what the rule allows.
pub fn mask(rule: MaskRule, value: &Value) -> Value {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let chars: Vec<char> = text.chars().collect();
    let out = match rule {
        MaskRule::Full => "****".to_owned(),
        MaskRule::Email => match text.rsplit_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "****".to_owned(),
        },
        MaskRule::Last4 => {
            if chars.len() <= 4 {
                "****".to_owned()
            } else {
                let tail: String = chars[chars.len() - 4..].iter().collect();
                format!("****{tail}")
            }
        }
        MaskRule::First1 => match chars.first() {
            Some(c) if chars.len() > 1 => format!("{c}***"),
            _ => "****".to_owned(),
        },
        MaskRule::Year => match text.get(0..4) {
            Some(y) if text.len() == 10 => format!("{y}-**-**"),
            _ => "****".to_owned(),
        },
    };
    Value::String(out)
}

fn as_str<'a>(field: &str, value: &'a Value) -> Result<&'a str> {
    value
        .as_str()
        .ok_or_else(|| bad_value(field, "expected a string"))
}

fn is_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1 && (1..=days).contains(&d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use strongroom_proto::Classification;

    fn field(t: FieldType) -> FieldDef {
        FieldDef {
            name: "f".into(),
            field_type: t,
            classification: Classification::Personal,
            mask: MaskRule::Full,
            searchable: false,
            required: false,
            purposes: vec![],
        }
    }

    #[test]
    fn bases_name_declared_purposes_only() {
        let mut d = def(vec![field(FieldType::String)]);
        d.bases
            .insert("support".into(), strongroom_proto::LawfulBasis::Consent);
        assert!(validate_collection(&d).is_ok());
        d.bases
            .insert("marketing".into(), strongroom_proto::LawfulBasis::Consent);
        let e = validate_collection(&d).unwrap_err();
        assert_eq!(e.code, Code::InvalidSchema, "{e}");
        assert!(e.message.contains("marketing"), "{e}");
    }

    fn def(fields: Vec<FieldDef>) -> CollectionDef {
        CollectionDef {
            purge_grace_days: None,
            retention: None,
            history_depth: None,
            bases: Default::default(),
            purposes: vec!["support".into()],
            fields,
        }
    }

    #[test]
    fn rejects_bad_schemas() {
        let mut dup = def(vec![field(FieldType::String), field(FieldType::Email)]);
        assert_eq!(
            validate_collection(&dup).unwrap_err().code,
            Code::InvalidSchema
        );
        dup.fields[1].name = "g".into();
        validate_collection(&dup).unwrap();

        let mut f = field(FieldType::Json);
        f.searchable = true;
        assert!(validate_collection(&def(vec![f])).is_err());

        let mut f = field(FieldType::Number);
        f.mask = MaskRule::Email;
        assert!(validate_collection(&def(vec![f])).is_err());

        let mut f = field(FieldType::String);
        f.purposes = vec!["marketing".into()];
        assert!(validate_collection(&def(vec![f])).is_err());

        let mut f = field(FieldType::String);
        f.name = "Bad Name".into();
        assert_eq!(
            validate_collection(&def(vec![f])).unwrap_err().code,
            Code::InvalidName
        );
        assert!(validate_collection(&CollectionDef {
            purge_grace_days: None,
            retention: None,
            history_depth: None,
            bases: Default::default(),
            purposes: vec![],
            fields: vec![field(FieldType::String)]
        })
        .is_err());
    }

    #[test]
    fn validates_values_without_echoing_them() {
        let email = field(FieldType::Email);
        assert_eq!(
            validate_value(&email, &json!(" Ada@Example.com ")).unwrap(),
            json!("Ada@Example.com")
        );
        for bad in [
            json!("ada"),
            json!("a@b"),
            json!("a b@c.d"),
            json!(5),
            json!("a@.com"),
        ] {
            let e = validate_value(&email, &bad).unwrap_err();
            assert!(!e.message.contains("ada"), "{}", e.message);
        }
        let date = field(FieldType::Date);
        assert!(validate_value(&date, &json!("1815-12-10")).is_ok());
        assert!(validate_value(&date, &json!("2023-02-29")).is_err());
        assert!(validate_value(&date, &json!("2024-02-29")).is_ok());
        assert!(validate_value(&date, &json!("2024-13-01")).is_err());
        assert!(validate_value(&date, &json!("+024-01-01")).is_err());
        let phone = field(FieldType::Phone);
        assert!(validate_value(&phone, &json!("+44 20 7946 0958")).is_ok());
        assert!(validate_value(&phone, &json!("44+20")).is_err());
        assert!(validate_value(&phone, &json!("call me")).is_err());
        assert!(validate_value(&field(FieldType::Number), &json!("1")).is_err());
        assert!(validate_value(&field(FieldType::Bool), &json!(1)).is_err());
        assert!(validate_value(&field(FieldType::String), &json!("a\u{0}b")).is_err());
        assert!(validate_value(&field(FieldType::String), &json!("Ωmega ✓")).is_ok());
    }

    #[test]
    fn normalisation_makes_equal_meanings_equal() {
        let email = field(FieldType::Email);
        assert_eq!(
            normalise(&email, &json!("Ada@Example.COM")),
            normalise(&email, &json!("ada@example.com"))
        );
        let phone = field(FieldType::Phone);
        assert_eq!(
            normalise(&phone, &json!("+44 (20) 7946-0958")),
            normalise(&phone, &json!("+442079460958"))
        );
        let num = field(FieldType::Number);
        assert_eq!(normalise(&num, &json!(1.0)), normalise(&num, &json!(1)));
        assert_ne!(normalise(&num, &json!(1)), normalise(&num, &json!(2)));
    }

    #[test]
    fn masks_reveal_only_what_the_rule_allows() {
        assert_eq!(
            mask(MaskRule::Email, &json!("ada.lovelace@example.com")),
            json!("a***@example.com")
        );
        assert_eq!(
            mask(MaskRule::Last4, &json!("+442079460958")),
            json!("****0958")
        );
        assert_eq!(mask(MaskRule::Last4, &json!("123")), json!("****"));
        assert_eq!(mask(MaskRule::First1, &json!("Lovelace")), json!("L***"));
        assert_eq!(
            mask(MaskRule::Year, &json!("1815-12-10")),
            json!("1815-**-**")
        );
        assert_eq!(mask(MaskRule::Full, &json!(42)), json!("****"));
    }

    #[test]
    fn compatibility_rules() {
        let old = def(vec![field(FieldType::String)]);
        let mut added = old.clone();
        let mut g = field(FieldType::Email);
        g.name = "g".into();
        added.fields.push(g);
        check_compatible(&old, &added).unwrap();
        let removed = def(vec![{
            let mut g = field(FieldType::Email);
            g.name = "g".into();
            g
        }]);
        assert_eq!(
            check_compatible(&old, &removed).unwrap_err().code,
            Code::SchemaIncompatible
        );
        let retyped = def(vec![field(FieldType::Number)]);
        assert!(check_compatible(&old, &retyped).is_err());
    }
}
