//! Property tests of every parser of stored or received bytes in `core`: the record codec, ids,
//! names, usernames, field values and their blind-index normalisation, and checkpoint notes.
//! Thousands of cases each: no input panics, and what is accepted has the documented shape.

use proptest::prelude::*;
use serde_json::{json, Value};
use strongroom_proto::{Classification, FieldDef, FieldType, MaskRule};

use crate::ids::{RecordId, SubjectId, TenantId};
use crate::rng::SeededRng;

fn field(t: FieldType) -> FieldDef {
    FieldDef {
        name: "f".into(),
        field_type: t,
        classification: Classification::Personal,
        mask: MaskRule::default(),
        searchable: true,
        required: false,
        purposes: vec![],
    }
}

const TYPES: [FieldType; 7] = [
    FieldType::String,
    FieldType::Email,
    FieldType::Phone,
    FieldType::Date,
    FieldType::Number,
    FieldType::Bool,
    FieldType::Json,
];

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_record_codec_round_trips_and_refuses_any_damage(
        fields in prop::collection::vec(("[a-z_]{1,64}", prop::collection::vec(any::<u8>(), 0..64)), 0..8),
        pos in any::<usize>(),
        byte in any::<u8>(),
        junk in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let encoded = crate::codec::encode(&fields);
        prop_assert_eq!(crate::codec::decode(&encoded).unwrap(), fields);
        // A changed byte decodes to something else or to an integrity error, never a panic;
        // a cut or extended buffer is always refused.
        let mut changed = encoded.clone();
        let at = pos % changed.len();
        changed[at] = byte;
        let _ = crate::codec::decode(&changed);
        prop_assert!(crate::codec::decode(&encoded[..encoded.len() - 1]).is_err());
        let mut longer = encoded.clone();
        longer.push(byte);
        prop_assert!(crate::codec::decode(&longer).is_err());
        let _ = crate::codec::decode(&junk);
    }

    #[test]
    fn ids_parse_only_their_own_shape(text in ".{0,80}", seed in any::<u64>()) {
        let rng = SeededRng::new(seed);
        let t = TenantId::generate(&rng);
        prop_assert_eq!(TenantId::parse(t.as_str()), Some(t.clone()));
        prop_assert!(RecordId::parse(t.as_str()).is_none(), "a tenant id is not a record id");
        for p in [
            TenantId::parse(&text).map(|i| i.as_str().to_owned()),
            RecordId::parse(&text).map(|i| i.as_str().to_owned()),
            SubjectId::parse(&text).map(|i| i.as_str().to_owned()),
        ]
        .into_iter()
        .flatten()
        {
            prop_assert_eq!(&p, &text);
            let hex = p.split('_').nth(1).unwrap_or("");
            prop_assert!(hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
    }

    #[test]
    fn names_accepted_are_exactly_the_documented_ones(text in ".{0,80}", ok in "[a-z][a-z0-9_-]{0,63}") {
        prop_assert!(crate::schema::check_name("collection", &ok).is_ok());
        let documented = {
            let b = text.as_bytes();
            !b.is_empty() && b.len() <= 64 && b[0].is_ascii_lowercase()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
        };
        prop_assert_eq!(crate::schema::check_name("collection", &text).is_ok(), documented);
    }

    #[test]
    fn usernames_normalise_once_and_for_all(text in "\\PC{0,80}") {
        if let Ok((display, key)) = crate::identity::normalise_username(&text) {
            prop_assert!(!display.is_empty() && display.chars().count() <= 64);
            // Normalising again changes nothing: the key is a fixed point.
            let (d2, k2) = crate::identity::normalise_username(&display).unwrap();
            prop_assert_eq!(&d2, &display);
            prop_assert_eq!(&k2, &key);
            let upper = crate::identity::normalise_username(&display.to_uppercase());
            if let Ok((_, k3)) = upper {
                if display.is_ascii() {
                    prop_assert_eq!(k3, key);
                }
            }
        }
    }

    #[test]
    fn field_values_are_checked_without_panics_and_normalise_stably(v in any_json(), t in 0usize..7) {
        let f = field(TYPES[t]);
        if let Ok(canonical) = crate::schema::validate_value(&f, &v) {
            // What validation keeps validates again to itself, and normalises the same.
            let again = crate::schema::validate_value(&f, &canonical).unwrap();
            prop_assert_eq!(&again, &canonical);
            prop_assert_eq!(crate::schema::normalise(&f, &canonical), crate::schema::normalise(&f, &again));
        }
        let _ = crate::schema::normalise(&f, &v);
        if let Value::String(s) = &v {
            let _ = crate::schema::parse_term(&f, s);
        }
    }

    #[test]
    fn equal_emails_and_phones_index_alike(local in "[a-zA-Z0-9.]{1,20}", domain in "[a-zA-Z]{1,12}\\.[a-z]{2,4}", digits in "[0-9]{6,12}") {
        let email = field(FieldType::Email);
        let a = json!(format!("{local}@{domain}"));
        let b = json!(format!("  {}@{}  ", local.to_uppercase(), domain.to_uppercase()));
        prop_assert_eq!(crate::schema::normalise(&email, &a), crate::schema::normalise(&email, &b));
        let phone = field(FieldType::Phone);
        let spaced: String = digits.chars().flat_map(|c| [c, ' ']).collect();
        prop_assert_eq!(
            crate::schema::normalise(&phone, &json!(format!("+{digits}"))),
            crate::schema::normalise(&phone, &json!(format!("+{spaced}")))
        );
    }

    #[test]
    fn checkpoint_notes_never_panic_and_never_verify_when_changed(
        note in ".{0,300}",
        pos in any::<usize>(),
        byte in 0x20u8..0x7f,
    ) {
        let key = [9u8; 32];
        prop_assert!(crate::checkpoint::CheckpointRow::from_note(&note, &key).is_err());
        let _ = crate::checkpoint::Cosigner::from_vkey(&note);
        let signer = strongroom_crypto::Key32::from_bytes([3; 32]);
        let public = strongroom_crypto::sign::public_key(&signer);
        let row = crate::checkpoint::CheckpointRow::sign("ten_1", 3, 42, [7; 32], 1000, [9; 32], &signer);
        let text = row.note(&public).unwrap();
        prop_assert!(crate::checkpoint::CheckpointRow::from_note(&text, &public).is_ok());
        let mut bytes = text.clone().into_bytes();
        let at = pos % bytes.len();
        if bytes[at] != byte {
            bytes[at] = byte;
            let changed = String::from_utf8_lossy(&bytes);
            if let Ok(parsed) = crate::checkpoint::CheckpointRow::from_note(&changed, &public) {
                // Only a change the signature does not cover (after the signature line's
                // content, e.g. a trailing byte) may parse, and then to the same checkpoint.
                prop_assert_eq!(parsed.root, row.root);
                prop_assert_eq!(parsed.size, row.size);
                prop_assert_eq!(parsed.seq, row.seq);
            }
        }
    }
}
