//! Newtypes for every identifier, so that a tenant id can never be passed where a record id is
//! expected. Ids are a type prefix and 128 random bits in hex: opaque, unguessable, no personal data.

use std::fmt;

use strongroom_crypto::hex;

use crate::rng::{Rng, RngExt};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id.
            pub fn generate(rng: &dyn Rng) -> Self {
                let bytes: [u8; 16] = rng.array();
                Self(format!("{}{}", $prefix, hex(&bytes)))
            }

            /// A fresh id whose first 48 bits are `now_ms`, so that ids made later sort later
            /// and inserts append to the store's indexes; 80 random bits keep it unguessable.
            pub fn generate_at(rng: &dyn Rng, now_ms: i64) -> Self {
                let mut bytes: [u8; 16] = rng.array();
                bytes[..6].copy_from_slice(&(now_ms.max(0) as u64).to_be_bytes()[2..]);
                Self(format!("{}{}", $prefix, hex(&bytes)))
            }

            /// Parses an id from untrusted input: the prefix and exactly 32 lower-case hex digits.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                let ok = rest.len() == 32
                    && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                ok.then(|| Self(s.to_owned()))
            }

            /// Wraps an id read back from the store, which only ever holds ids this type made.
            pub fn from_stored(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant (a controller whose data the vault holds).
    TenantId,
    "ten_"
);
id_type!(
    /// A data subject: the person the data is about. All records of a subject share its key.
    SubjectId,
    "sub_"
);
id_type!(
    /// One record of a collection.
    RecordId,
    "rec_"
);
id_type!(
    /// An export of a data subject's data (an access or portability request).
    ExportId,
    "exp_"
);
id_type!(
    /// A data-subject request in the request register.
    DsarId,
    "dsr_"
);
id_type!(
    /// An API key (the id is public; the secret is not part of it).
    ApiKeyId,
    "key_"
);
id_type!(
    /// A person who signs in (a tenant's user or an operator).
    UserId,
    "usr_"
);
id_type!(
    /// A signed-in session (the id is public; the token is not part of it).
    SessionId,
    "ses_"
);
id_type!(
    /// An entry of a compliance register (a declaration, say); the same for all its versions.
    RegisterEntryId,
    "dcl_"
);

id_type!(
    /// A security incident or personal-data breach of the incident register.
    IncidentId,
    "inc_"
);

id_type!(
    /// A training record of the training register.
    TrainingId,
    "trn_"
);

id_type!(
    /// A subprocessor of the subprocessor register.
    SubprocessorId,
    "spr_"
);

id_type!(
    /// A tenant's objection to a subprocessor.
    ObjectionId,
    "obj_"
);

id_type!(
    /// One recorded change of the configuration history.
    ConfigChangeId,
    "cfg_"
);

id_type!(
    /// A legal hold on a data subject or a collection.
    HoldId,
    "hld_"
);

id_type!(
    /// A pending bulk operation awaiting its confirmation (the token is this id).
    BulkId,
    "blk_"
);

id_type!(
    /// One HTTP request, echoed in `X-Request-Id` and in its audit entries.
    RequestId,
    "req_"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    #[test]
    fn parse_accepts_only_well_formed_ids() {
        let id = RecordId::generate(&SeededRng::new(1));
        assert_eq!(RecordId::parse(id.as_str()), Some(id.clone()));
        assert!(TenantId::parse(id.as_str()).is_none(), "wrong prefix");
        assert!(RecordId::parse("rec_").is_none());
        assert!(RecordId::parse(&id.as_str().to_uppercase()).is_none());
        assert!(RecordId::parse(&format!("{id}0")).is_none());
        assert!(RecordId::parse("rec_../../../etc/passwd000000000000000000").is_none());
    }

    #[test]
    fn time_ordered_ids_sort_by_time_and_stay_unguessable() {
        let rng = SeededRng::new(2);
        let a = RecordId::generate_at(&rng, 1_767_225_600_000);
        let b = RecordId::generate_at(&rng, 1_767_225_600_001);
        let c = RecordId::generate_at(&rng, 1_767_225_600_001);
        assert!(a < b && a < c, "later ids sort later");
        assert_ne!(b, c, "same millisecond, different ids");
        assert_eq!(
            &a.as_str()[4..16],
            "019b76daa800",
            "48-bit millisecond prefix (2026-01-01T00:00:00Z)"
        );
        assert!(
            RecordId::parse(a.as_str()).is_some(),
            "same format as random ids"
        );
    }
}
