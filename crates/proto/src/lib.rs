//! Strongroom's wire types: every request and response body of the HTTP API, with their
//! OpenAPI schemas. Request bodies reject unknown fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `Debug` for types that carry secrets or personal data: only the listed fields are shown; the
/// others — and any field added later — print as `..`, so a value can never reach a log line
/// through `{:?}`.
macro_rules! debug_showing {
    ($t:ident $(, $f:ident)*) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($f), &self.$f))*
                    .finish_non_exhaustive()
            }
        }
    };
}

/// A purpose's name: 1–64 characters of `a-z`, `0-9`, `_` and `-`, starting with a letter.
#[derive(ToSchema)]
#[schema(pattern = "^[a-z][a-z0-9_-]{0,63}$")]
pub struct PurposeName(pub String);

/// A role's name: 1–64 characters of `a-z`, `0-9`, `_` and `-`, starting with a letter.
#[derive(ToSchema)]
#[schema(pattern = "^[a-z][a-z0-9_-]{0,63}$")]
pub struct RoleName(pub String);

/// A record's id: `rec_` and 32 hex digits.
#[derive(ToSchema)]
#[schema(pattern = "^rec_[0-9a-f]{32}$")]
pub struct RecordIdText(pub String);

/// A collection's name: 1–64 characters of `a-z`, `0-9`, `_` and `-`, starting with a letter.
#[derive(ToSchema)]
#[schema(pattern = "^[a-z][a-z0-9_-]{0,63}$")]
pub struct CollectionName(pub String);

/// A password as received: wiped from memory when dropped, never printed (`Debug` shows
/// `Password(..)`), and serialised only by tools that send one (clients, tests).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(zeroize::Zeroizing<String>);

impl Password {
    pub fn new(s: impl Into<String>) -> Self {
        Self(zeroize::Zeroizing::new(s.into()))
    }
    /// The password's text, for checking and hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A copy of its bytes in a buffer that is wiped when dropped.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(self.0.as_bytes().to_vec())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

/// Deserialises a JSON object refusing a key that appears twice (serde_json keeps the last one
/// silently, so `{"email": "a", "email": "b"}` would store a value the caller did not mean).
fn unique_keys<'de, D>(d: D) -> Result<serde_json::Map<String, serde_json::Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = serde_json::Map<String, serde_json::Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut a: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = serde_json::Map::new();
            while let Some((k, v)) = a.next_entry::<String, serde_json::Value>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format_args!(
                        "duplicate key `{k}`"
                    )));
                }
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visitor)
}

debug_showing!(CreatedApiKey, id, tenant, roles, expires_at);
debug_showing!(CreateRecord, subject);
debug_showing!(UpdateRecord);
debug_showing!(Record, id, collection, subject, version, created_at, updated_at);
debug_showing!(RecordList);
debug_showing!(BatchCreate);
debug_showing!(BatchReadResult, missing);
debug_showing!(SearchRequest);
debug_showing!(InitOutput);
debug_showing!(CreateUser, roles, tenant);
debug_showing!(Login, tenant);
debug_showing!(Session, expires_at, restricted_to);
debug_showing!(ChangePassword);
debug_showing!(TotpEnrollment);
debug_showing!(TotpCode);
debug_showing!(RecoveryCodes);

/// Every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A stable machine-readable code and a message for people. Messages never echo values.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Unique name: 1–64 characters of `a-z`, `0-9`, `-` and `_`, starting with a letter.
    #[schema(pattern = "^[a-z][a-z0-9_-]{0,63}$")]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A label for people (1–64 printable characters).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub name: String,
    /// Role names; for an operator key leave empty.
    #[serde(default)]
    #[schema(inline, value_type = Vec<RoleName>)]
    pub roles: Vec<String>,
    /// Days until the key expires: 1 to 730. Mandatory: keys never live forever.
    #[schema(minimum = 1, maximum = 730)]
    pub expires_in_days: u32,
    /// Operators only: the tenant the key belongs to (its id or name). Without it, an
    /// operator key is created.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub tenant: Option<String>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    /// The secret, shown this once. Only its hash is stored.
    pub key: String,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub expires_at: i64,
}

/// The type of a collection field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Email,
    Phone,
    Date,
    Number,
    Bool,
    Json,
}

/// How sensitive a field is (GDPR): drives defaults, reports and evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    Identifier,
    Personal,
    /// Special categories of Art. 9 (health, religion, ...).
    Special,
    NonPersonal,
}

/// How a field is shown to a role with `masked` visibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaskRule {
    /// Everything hidden: `****`.
    #[default]
    Full,
    /// First character of the local part and the domain: `a***@example.com`.
    Email,
    /// Only the last four characters: `****1234`.
    Last4,
    /// Only the first character: `A***`.
    First1,
    /// Dates only: the year, `1815-**-**`.
    Year,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// 1–64 characters of `a-z`, `0-9`, `_` and `-`, starting with a letter.
    #[schema(pattern = "^[a-z][a-z0-9_-]{0,63}$")]
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub classification: Classification,
    #[serde(default)]
    pub mask: MaskRule,
    /// Equality search through a blind index (HMAC of the normalised value).
    #[serde(default)]
    pub searchable: bool,
    #[serde(default)]
    pub required: bool,
    /// Purposes for which this field may be processed; empty means all of the collection's.
    #[serde(default)]
    #[schema(inline, value_type = Vec<PurposeName>)]
    pub purposes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionDef {
    /// The purposes declared for this collection (1 to 64, each once); every data request
    /// names one of them.
    #[schema(inline, value_type = Vec<PurposeName>, min_items = 1, max_items = 64)]
    pub purposes: Vec<String>,
    /// 1 to 256 fields, each name once.
    #[schema(min_items = 1, max_items = 256)]
    pub fields: Vec<FieldDef>,
    /// Days a deleted record of this collection stays restorable before it is purged (0 to
    /// 3650; default: the tenant's setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 3650)]
    pub purge_grace_days: Option<u32>,
    /// How long records are kept (storage limitation), and what happens at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Earlier versions kept per record (0 to 1000; default: every one). Older ones are
    /// destroyed at the next update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1000)]
    pub history_depth: Option<u32>,
    /// The lawful basis (GDPR Art. 6) of each declared purpose. A purpose based on `consent` is
    /// processed only for subjects whose consent to it is live (`consent_required` otherwise);
    /// one based on `legitimate_interest` not for subjects who objected to it
    /// (`subject_objected`). A purpose without a basis is reported as a gap (SE-02).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bases: BTreeMap<String, LawfulBasis>,
}

/// A lawful basis of processing (GDPR Art. 6(1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LawfulBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterest,
    PublicTask,
    LegitimateInterest,
}

/// A change of a subject's consent to a purpose, or an objection to one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentChange {
    /// A purpose some collection of the tenant bases on `consent` (to give or withdraw) or on
    /// `legitimate_interest` (to object).
    #[schema(inline, value_type = PurposeName)]
    pub purpose: String,
    pub state: ConsentStateName,
    /// Where it was given or withdrawn: a form, a version, a channel (1 to 128 characters; no
    /// personal data).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub source: String,
    /// SHA-256 of the text the subject agreed to, in lowercase hex (for `given`).
    #[serde(default)]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub text_sha256: Option<String>,
}

/// The state a consent change records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStateName {
    Given,
    Withdrawn,
    /// An objection (Art. 21) to a purpose based on legitimate interest.
    Objected,
}

/// One recorded change, as the consent register keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsentEntry {
    pub purpose: String,
    pub seq: u64,
    pub state: ConsentStateName,
    pub at: i64,
    pub source: String,
    pub text_sha256: Option<String>,
    pub recorded_by: String,
}

/// A subject's consent register: every change, oldest first per purpose.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubjectConsents {
    pub subject: String,
    pub entries: Vec<ConsentEntry>,
}

/// A collection's retention: after `period` (from creation or the last update) the daily
/// retention job destroys the record, or keeps only its fields classified `non_personal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// An ISO 8601 duration of at least one day and at most 100 years: `P2Y`, `P18M`, `P90D`.
    #[schema(min_length = 2, max_length = 64)]
    pub period: String,
    #[serde(default)]
    pub from: RetentionFrom,
    #[serde(default)]
    pub action: RetentionAction,
}

/// Where a retention period is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetentionFrom {
    #[default]
    Created,
    Updated,
}

/// What retention does at the end of the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetentionAction {
    /// Destroy the record (and the subject's key with its last record).
    #[default]
    Purge,
    /// Keep only the fields classified `non_personal`; the rest and every earlier version go.
    KeepNonPersonal,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Collection {
    pub name: String,
    pub version: u64,
    pub purposes: Vec<String>,
    pub fields: Vec<FieldDef>,
    /// This collection's own grace period before purge, if it sets one.
    pub purge_grace_days: Option<u32>,
    pub retention: Option<Retention>,
    pub history_depth: Option<u32>,
    /// The lawful basis of each purpose that declares one.
    pub bases: BTreeMap<String, LawfulBasis>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectionList {
    pub collections: Vec<Collection>,
}

/// An operation a role may perform on a collection's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Create,
    Read,
    Update,
    Delete,
    Search,
    /// Read a record's earlier versions (field visibility applies to them too).
    History,
}

/// What a role sees of a field.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Not shown at all (the default for every field not listed).
    #[default]
    None,
    /// Shown through the field's mask rule.
    Masked,
    /// Shown as stored.
    Plain,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionGrant {
    /// At least one, each once.
    #[schema(min_items = 1)]
    pub operations: Vec<Operation>,
    /// Field name to visibility; fields not listed are not visible.
    #[serde(default)]
    pub fields: BTreeMap<String, Visibility>,
    /// The purposes this role may state for this collection (at least one).
    #[schema(inline, value_type = Vec<PurposeName>, min_items = 1)]
    pub purposes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// Collection name to the rights granted on it (at least one collection).
    pub collections: BTreeMap<String, CollectionGrant>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Role {
    pub name: String,
    /// 1 when created, one more at each change (0 for built-in roles); also the `ETag`.
    pub version: u64,
    pub builtin: bool,
    pub collections: BTreeMap<String, CollectionGrant>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleList {
    pub roles: Vec<Role>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRecord {
    /// An existing data subject of this tenant (as returned earlier); a new one is created when
    /// neither `subject` nor `subject_ref` is given.
    #[serde(default)]
    #[schema(pattern = "^sub_[0-9a-f]{32}$")]
    pub subject: Option<String>,
    /// The application's own reference for the person (stored encrypted, blind-indexed): the
    /// subject with this reference is used, or created. 1 to 256 bytes.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub subject_ref: Option<String>,
    #[schema(value_type = Object)]
    #[serde(deserialize_with = "unique_keys")]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// The subject's consent to the request's purpose, given with this record (a purpose the
    /// collection bases on `consent`): recorded in the consent register in the same unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<GivenConsent>,
}

/// Consent given along with a record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GivenConsent {
    /// Where it was given: a form, a version, a channel (1 to 128 characters; no personal data).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub source: String,
    /// SHA-256 of the text the subject agreed to, in lowercase hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub text_sha256: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRecord {
    /// Fields to set; `null` clears an optional field. Fields not named keep their value.
    #[schema(value_type = Object)]
    #[serde(deserialize_with = "unique_keys")]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedRecord {
    pub id: String,
    pub subject: String,
    pub version: u64,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct Record {
    pub id: String,
    pub collection: String,
    pub subject: String,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Field values as the caller's role may see them for the stated purpose: plain, masked
    /// (always a string) or absent.
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordList {
    pub records: Vec<Record>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCreate {
    /// 1 to 1,000 records, stored all together or not at all.
    #[schema(min_items = 1, max_items = 1000)]
    pub records: Vec<CreateRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchCreated {
    pub records: Vec<CreatedRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRead {
    /// 1 to 1,000 record ids. Ids not found (or not visible) are listed in `missing`.
    #[schema(min_items = 1, max_items = 1000)]
    pub ids: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchReadResult {
    pub records: Vec<Record>,
    pub missing: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Exactly one searchable field and the value it must equal.
    #[schema(value_type = Object)]
    #[serde(deserialize_with = "unique_keys")]
    pub r#where: serde_json::Map<String, serde_json::Value>,
}

/// One audit entry. It names actors, actions and opaque ids, never personal data or secrets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// `platform` or the tenant id.
    pub log: String,
    /// Position in its log, from 1, without gaps.
    pub seq: u64,
    /// Hex SHA-256 leaf hash of the previous entry (64 zeros for the first).
    pub prev: String,
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    pub request_id: String,
    pub actor: String,
    pub action: String,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    /// The stable error code when the outcome is not `ok`.
    pub code: Option<String>,
    pub purpose: Option<String>,
    pub collection: Option<String>,
    pub subject: Option<String>,
    pub records: Vec<String>,
    pub fields: Vec<String>,
    /// Other opaque object ids the action touched (tenant, key, role or collection names).
    pub objects: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next: Option<u64>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct InitOutput {
    pub bootstrap_token: String,
}

/// Which password rules apply: `nist` (NIST SP 800-63B rev. 4, the default) or `strict`
/// (length 10+, four character classes, change every 120 days, no reuse of the last 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PasswordProfile {
    #[default]
    Nist,
    Strict,
}

/// Password rules. Unset values take the profile's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRules {
    #[serde(default)]
    pub profile: PasswordProfile,
    /// Shortest password for accounts without MFA (8 to 64).
    #[schema(minimum = 8, maximum = 64)]
    pub min_length: Option<u32>,
    /// Shortest password for accounts with MFA (8 to 64).
    #[schema(minimum = 8, maximum = 64)]
    pub min_length_with_mfa: Option<u32>,
    /// Require upper case, lower case, digit and special character.
    pub require_classes: Option<bool>,
    /// Days after which a password must be changed; 0 = never (at most 3650).
    #[schema(minimum = 0, maximum = 3650)]
    pub max_age_days: Option<u32>,
    /// How many previous passwords may not be reused (0 to 24).
    #[schema(minimum = 0, maximum = 24)]
    pub history: Option<u32>,
}

/// Security settings of a tenant (or of the platform, for operator accounts).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    #[serde(default)]
    pub password: PasswordRules,
    /// Consecutive failures (password and TOTP together) that lock an account: 1 to 100.
    #[schema(minimum = 1, maximum = 100)]
    pub lockout_threshold: Option<u32>,
    /// First lock duration in seconds (1 to 3600); it doubles with each further lock, up to
    /// 24 hours.
    #[schema(minimum = 1, maximum = 3600)]
    pub lockout_base_seconds: Option<u32>,
    /// Session idle timeout in minutes (1 to 1440).
    #[schema(minimum = 1, maximum = 1440)]
    pub session_idle_minutes: Option<u32>,
    /// Session absolute lifetime in hours (1 to 168).
    #[schema(minimum = 1, maximum = 168)]
    pub session_absolute_hours: Option<u32>,
    /// Roles whose users must use MFA (always includes `admin` and `operator`).
    #[serde(default)]
    #[schema(inline, value_type = Vec<RoleName>)]
    pub mfa_required_roles: Vec<String>,
    /// Days a deleted record stays blocked and restorable before the purge destroys it (0 to
    /// 3650, default 30; 0: at the next purge run). A collection may set its own.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3650)]
    pub purge_grace_days: Option<u32>,
}

/// The settings in force, every value resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EffectiveSettings {
    pub profile: PasswordProfile,
    pub min_length: u32,
    pub min_length_with_mfa: u32,
    pub max_length: u32,
    pub require_classes: bool,
    pub max_age_days: u32,
    pub history: u32,
    pub blocklist_entries: u32,
    pub lockout_threshold: u32,
    pub lockout_base_seconds: u32,
    pub session_idle_minutes: u32,
    pub session_absolute_hours: u32,
    pub mfa_required_roles: Vec<String>,
    pub purge_grace_days: u32,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 1–64 printable characters.
    #[schema(min_length = 1, max_length = 64)]
    pub username: String,
    #[schema(value_type = String)]
    pub password: Password,
    #[serde(default)]
    #[schema(inline, value_type = Vec<RoleName>)]
    pub roles: Vec<String>,
    /// Operators only: the tenant of the user (with the `admin` or `auditor` role).
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub tenant: Option<String>,
    pub username: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub mfa: bool,
    pub locked_until: Option<i64>,
    pub created_at: i64,
    pub password_changed_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoles {
    /// At least one role.
    #[schema(inline, value_type = Vec<RoleName>, min_items = 1)]
    pub roles: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Tenant name or id; omit for operator accounts.
    #[serde(default)]
    pub tenant: Option<String>,
    pub username: String,
    #[schema(value_type = String)]
    pub password: Password,
    /// A current TOTP code, or a recovery code.
    #[serde(default)]
    pub totp: Option<String>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub token: String,
    pub expires_at: i64,
    /// Set when the session may only enrol MFA (`mfa_enrollment`) or change the password
    /// (`password_change`) before anything else.
    pub restricted_to: Option<String>,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(value_type = String)]
    pub current_password: Password,
    #[schema(value_type = String)]
    pub new_password: Password,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct TotpEnrollment {
    /// `otpauth://totp/...` for authenticator apps.
    pub otpauth_uri: String,
    /// The same URI as a QR code (SVG).
    pub qr_svg: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodes {
    /// One-time codes, shown once; each can stand in for a TOTP code once.
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKey {
    /// Minutes the old key keeps working (0 to 1440); 0 stops it at once.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1440)]
    pub overlap_minutes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: Option<i64>,
    pub rotated_to: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub keys: Vec<ApiKeyInfo>,
}

/// MFA coverage of one role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RoleCoverage {
    pub users: u32,
    pub with_mfa: u32,
    pub mfa_required: bool,
}

/// Identity evidence of a tenant: feeds the TOMs report (AC-05, AU-01..AU-06).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IdentityReport {
    pub users: u32,
    pub disabled_users: u32,
    pub admins: u32,
    pub locked_users: u32,
    pub mfa_coverage: BTreeMap<String, RoleCoverage>,
    pub api_keys: u32,
    pub api_keys_expiring_in_30_days: u32,
    pub oldest_api_key_age_days: Option<u32>,
    pub settings: EffectiveSettings,
}

/// A signed tree head of one audit log: the log's first `size` entries have Merkle root `root`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub log: String,
    /// Position among the log's checkpoints, from 1.
    pub seq: u64,
    pub size: u64,
    /// Hex RFC 6962 root hash.
    pub root: String,
    pub time: i64,
    /// Hex SHA-256 of the previous checkpoint's signed text (64 zeros for the first).
    pub prev: String,
    /// Hex Ed25519 signature over the signed text (see docs/audit.md).
    pub signature: String,
    /// 1: the legacy `strongroom-checkpoint v1` text; 2: a C2SP tlog-checkpoint.
    #[serde(default = "legacy_checkpoint_format")]
    pub format: u8,
    /// The C2SP origin line (format 2; empty for format 1).
    #[serde(default)]
    pub origin: String,
    /// The whole C2SP signed note (format 2), checkable by any signed-note verifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn legacy_checkpoint_format() -> u8 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PublicKey {
    /// Hex Ed25519 public key that signs checkpoints.
    pub ed25519: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    pub seq: u64,
    pub tree_size: u64,
    /// Hex leaf hash of the entry.
    pub leaf_hash: String,
    /// Hex hashes of the audit path, leaf to root.
    pub proof: Vec<String>,
    /// Hex root of the tree of `tree_size` entries.
    pub root: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    pub from_size: u64,
    pub to_size: u64,
    pub from_root: String,
    pub to_root: String,
    pub proof: Vec<String>,
}

/// One access to a data subject's records, from the audit trail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubjectAccess {
    pub seq: u64,
    pub time: i64,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub purpose: Option<String>,
    pub collection: Option<String>,
    pub records: Vec<String>,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubjectAccessList {
    pub subject: String,
    pub accesses: Vec<SubjectAccess>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every type that carries a secret or personal data, built with a marker in every such
    /// value: `{:?}` shows none of them.
    #[test]
    fn debug_never_prints_secrets_or_personal_data() {
        const M: &str = "MARKER-7f3a";
        let fields = json!({"email": M, "name": M});
        let record = json!({"id": "rec_1", "collection": "people", "subject": "sub_1", "version": 1,
            "created_at": 1, "updated_at": 1, "fields": fields});
        let printed = [
            format!(
                "{:?}",
                serde_json::from_value::<CreatedApiKey>(
                    json!({"id": "key_1", "key": M, "tenant": null, "roles": [], "expires_at": 1})
                )
                .unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<CreateRecord>(json!({"subject_ref": M, "fields": fields}))
                    .unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<UpdateRecord>(json!({"fields": fields})).unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<Record>(record.clone()).unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<RecordList>(json!({"records": [record.clone()]})).unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<BatchCreate>(
                    json!({"records": [{"subject_ref": M, "fields": fields}]})
                )
                .unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<BatchReadResult>(
                    json!({"records": [record], "missing": []})
                )
                .unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<SearchRequest>(json!({"where": {"email": M}})).unwrap()
            ),
            format!(
                "{:?}",
                InitOutput {
                    bootstrap_token: M.into()
                }
            ),
            format!(
                "{:?}",
                serde_json::from_value::<CreateUser>(json!({"username": M, "password": M}))
                    .unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<Login>(json!({"username": M, "password": M, "totp": M}))
                    .unwrap()
            ),
            format!(
                "{:?}",
                Session {
                    token: M.into(),
                    expires_at: 1,
                    restricted_to: None
                }
            ),
            format!(
                "{:?}",
                ChangePassword {
                    current_password: M.into(),
                    new_password: M.into()
                }
            ),
            format!(
                "{:?}",
                TotpEnrollment {
                    otpauth_uri: M.into(),
                    qr_svg: M.into()
                }
            ),
            format!("{:?}", TotpCode { code: M.into() }),
            format!(
                "{:?}",
                RecoveryCodes {
                    recovery_codes: vec![M.into()]
                }
            ),
        ];
        for p in printed {
            assert!(!p.contains(M), "{p}");
            assert!(p.ends_with(".. }"), "{p}");
        }
    }
}

/// A declaration to make or change (OR-07): an organisational or physical measure the software
/// cannot observe.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclarationInput {
    /// The catalogue id it covers (`OR-07`, `AC-03`…).
    #[schema(pattern = "^[A-Z]{2}-[0-9]{2}$")]
    pub measure: String,
    /// What is in place, in a sentence or a paragraph (1 to 4,000 characters).
    #[schema(min_length = 1, max_length = 4000)]
    pub statement: String,
    /// Who answers for it: a name or a function (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub owner: String,
    /// The document that shows it (1 to 200 characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub evidence_name: Option<String>,
    /// The SHA-256 of that document's file (hex).
    #[serde(default)]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub evidence_sha256: Option<String>,
    /// When it was declared (ms since the epoch; default now).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub declared_at: Option<i64>,
    /// When it must be reviewed again (ms since the epoch), after `declared_at`.
    #[schema(minimum = 0)]
    pub review_by: i64,
}

/// One version of a declaration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Declaration {
    pub id: String,
    pub version: u32,
    /// `platform`, or the tenant's id.
    pub scope: String,
    pub measure: String,
    pub statement: String,
    pub owner: String,
    pub evidence_name: Option<String>,
    pub evidence_sha256: Option<String>,
    pub declared_at: i64,
    pub review_by: i64,
    pub withdrawn: bool,
    pub recorded_by: String,
    pub recorded_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeclarationList {
    pub declarations: Vec<Declaration>,
}

/// How severe a breach is for the people concerned (GDPR Art. 33, 34).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreachRisk {
    /// Unlikely to result in a risk: recorded, no notification of the authority.
    None,
    /// A risk: the authority is notified within 72 hours of awareness.
    Risk,
    /// A high risk: the people concerned are notified too.
    High,
}

/// An incident or personal-data breach to record or update (OR-03).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentInput {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// `confidentiality`, `integrity` or `availability`.
    #[schema(pattern = "^(confidentiality|integrity|availability)$")]
    pub category: String,
    /// When it was detected, and when the processor became aware that it concerns personal
    /// data (ms since the epoch; the clocks start at awareness).
    #[schema(minimum = 0)]
    pub detected_at: i64,
    #[schema(minimum = 0)]
    pub aware_at: i64,
    /// Whether personal data were breached (Art. 4(12)).
    pub personal_data_breach: bool,
    pub risk: BreachRisk,
    /// Tenants (controllers) concerned, by id.
    #[serde(default)]
    #[schema(inline, value_type = Vec<String>)]
    pub affected_tenants: Vec<String>,
    /// Categories of data concerned (`contact data`, `health data`…), each 1 to 100 characters.
    #[serde(default)]
    pub data_categories: Vec<String>,
    /// Approximate numbers of people and records concerned.
    #[serde(default)]
    pub people_approx: u64,
    #[serde(default)]
    pub records_approx: u64,
    /// What was done and decided (up to 8,000 characters).
    #[serde(default)]
    #[schema(max_length = 8000)]
    pub actions: String,
    /// Hours after awareness within which each affected controller is informed (default 24).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 72)]
    pub controller_deadline_hours: Option<u32>,
    /// When the controllers, the authority (Art. 33) and the people concerned (Art. 34) were
    /// notified, and when the incident was closed.
    #[serde(default)]
    pub controllers_notified_at: Option<i64>,
    #[serde(default)]
    pub authority_notified_at: Option<i64>,
    #[serde(default)]
    pub subjects_notified_at: Option<i64>,
    #[serde(default)]
    pub closed_at: Option<i64>,
}

/// One duty that runs from awareness: whom to notify, by when, done when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncidentClock {
    /// `controllers`, `authority` (Art. 33) or `subjects` (Art. 34).
    pub duty: String,
    pub deadline: i64,
    pub done_at: Option<i64>,
    /// Not done and past the deadline.
    pub overdue: bool,
    /// Done, but after the deadline.
    pub late: bool,
}

/// One version of an incident, with its clocks as of now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    pub id: String,
    pub version: u32,
    pub incident: IncidentInput,
    pub clocks: Vec<IncidentClock>,
    pub recorded_by: String,
    pub recorded_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IncidentList {
    pub incidents: Vec<Incident>,
}

/// Something overdue: an incident's clock, a declaration past its review date.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComplianceAlert {
    /// `incident_overdue`, `review_overdue`, `training_overdue`, `evaluation_overdue`, or
    /// `subprocessor_change` (a tenant's notice while its objection window is open).
    pub kind: String,
    /// Whose register the entry is in: `platform`, or the tenant's id.
    pub scope: String,
    /// The register entry (`inc_…`, `dcl_…`).
    pub entry: String,
    pub what: String,
    pub due: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComplianceAlerts {
    pub alerts: Vec<ComplianceAlert>,
}

/// A training to record (OR-01): who took which course, when, and until when it counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingInput {
    /// The person (a name or a staff id), 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub person: String,
    /// The course, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub course: String,
    /// When it was completed (ms since the epoch), not in the future.
    #[schema(minimum = 0)]
    pub completed_at: i64,
    /// Until when it counts (default a year after completion), after `completed_at`.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub valid_until: Option<i64>,
}

/// One version of a training record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Training {
    pub id: String,
    pub version: u32,
    /// `platform`, or the tenant's id.
    pub scope: String,
    pub training: TrainingInput,
    /// Its validity has ended: the person is due for the course again.
    pub overdue: bool,
    pub recorded_by: String,
    pub recorded_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrainingList {
    pub trainings: Vec<Training>,
}

/// How a transfer of personal data outside the EEA is safeguarded (GDPR Chapter V).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferSafeguard {
    /// An adequacy decision of the Commission for the country (Art. 45).
    Adequacy,
    /// The EU Standard Contractual Clauses (Art. 46(2)(c)).
    Scc,
    /// Binding corporate rules (Art. 47).
    Bcr,
    /// None: right for a processor in the EEA, a gap for one outside it.
    None,
}

/// A subprocessor to register (OR-02, TR-02): who, for what, where, under which safeguard, and
/// when it is evaluated.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubprocessorInput {
    /// The company, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// What it does for the processor (hosting, e-mail delivery…), 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub service: String,
    /// The categories of personal data it receives (at most 50, each 1 to 100 characters).
    #[serde(default)]
    #[schema(max_items = 50)]
    pub data_categories: Vec<String>,
    /// Where the data is processed: an ISO 3166-1 alpha-2 code (`DE`, `US`).
    #[schema(pattern = "^[A-Z]{2}$")]
    pub country: String,
    pub safeguard: TransferSafeguard,
    /// When its data processing agreement was signed (ms since the epoch), not in the future.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub dpa_signed_at: Option<i64>,
    /// When it was last evaluated (ms), not in the future.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub last_evaluated_at: Option<i64>,
    /// When it is evaluated next (ms): after the last evaluation, within three years of now.
    #[schema(minimum = 0)]
    pub next_evaluation_by: i64,
    /// Days the tenants have to object to this change (platform register; 0 to 90, default 30).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 90)]
    pub objection_days: Option<u32>,
    /// It no longer processes data from this time (ms), not in the future.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub ended_at: Option<i64>,
}

/// One version of a subprocessor.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Subprocessor {
    pub id: String,
    pub version: u32,
    /// `platform`, or the tenant's id.
    pub scope: String,
    pub subprocessor: SubprocessorInput,
    /// The country lies outside the EEA: data sent there is a transfer under Chapter V.
    pub transfer: bool,
    /// Its next evaluation is past due.
    pub evaluation_overdue: bool,
    /// Until when tenants may object to this version (platform register).
    pub objection_until: Option<i64>,
    /// Objections made to this version: for a tenant, its own (0 or 1); for the platform, all.
    pub objections: u32,
    pub recorded_by: String,
    pub recorded_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubprocessorList {
    pub subprocessors: Vec<Subprocessor>,
}

/// A tenant's objection to a version of a platform subprocessor, within its window.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectionInput {
    /// The version objected to (the one the tenant was notified of).
    #[schema(minimum = 1)]
    pub version: u32,
    /// Why, 1 to 2,000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// An objection as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Objection {
    pub id: String,
    pub tenant: String,
    pub subprocessor: String,
    pub version: u32,
    pub reason: String,
    pub recorded_by: String,
    pub recorded_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ObjectionList {
    pub objections: Vec<Objection>,
}

/// Free-text fields of the records of processing that the vault cannot know (names, contact
/// details, the DPO): at most 30, names 1 to 100 characters, texts up to 4,000; an empty text
/// removes a field.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RopaFieldsInput {
    pub fields: BTreeMap<String, String>,
}

/// The free-text fields of one scope's records of processing, at a version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RopaFields {
    /// `platform`, or the tenant's id.
    pub scope: String,
    /// 0 before any was set.
    pub version: u32,
    pub fields: BTreeMap<String, String>,
}

/// One change of the configuration history (AV-06).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConfigChange {
    pub id: String,
    /// `collection`, `role`, `settings`, `tenant` or `server`.
    pub kind: String,
    pub name: String,
    /// The object's own version, where it has one.
    pub version: Option<u64>,
    /// SHA-256 of the state's canonical JSON.
    pub sha256: String,
    /// Who made it (`system` for the server's configuration at start-up), and when.
    pub recorded_by: String,
    pub recorded_at: i64,
    /// The change from the previous version of the same object, as a JSON Patch (RFC 6902);
    /// from `null` for the first.
    #[schema(value_type = Vec<Object>)]
    pub diff: serde_json::Value,
    /// The state after the change.
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConfigHistory {
    /// `platform`, or the tenant's id.
    pub scope: String,
    /// Oldest first.
    pub changes: Vec<ConfigChange>,
}

/// A background job (purges, verification, reminders…) as the runner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// `kind`, or `kind:tenant` for a tenant's job.
    pub id: String,
    pub kind: String,
    /// `platform`, or the tenant's id.
    pub scope: String,
    /// `idle`, `running` or `failed`.
    pub state: String,
    /// Runs every this many seconds; 0: only when asked.
    pub every_seconds: i64,
    /// When it runs next (ms since the epoch); absent when only asked for.
    pub next_run_at: Option<i64>,
    /// Progress of the current or last run.
    pub done: u64,
    pub total: Option<u64>,
    pub started_at: Option<i64>,
    pub last_run_at: Option<i64>,
    pub last_ok_at: Option<i64>,
    /// The last error's code and message.
    pub last_error: Option<String>,
    pub runs: u64,
    /// The node running it now, if any.
    pub running_on: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<Job>,
}

/// Deleted records of one collection awaiting their purge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PendingPurge {
    pub collection: String,
    /// Days a deleted record stays restorable.
    pub grace_days: u32,
    /// Records deleted (blocked) and not yet purged.
    pub blocked: u64,
    /// When the earliest of them becomes due (ms since the epoch): the first purge run after
    /// it destroys it.
    pub next_purge_after: Option<i64>,
    /// Their ids (the first 1,000), no values.
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PendingPurges {
    pub collections: Vec<PendingPurge>,
}

/// A legal hold to place: on one data subject or on a whole collection, with a reason.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldInput {
    /// The data subject held (`sub_…`); or
    #[serde(default)]
    #[schema(pattern = "^sub_[0-9a-f]{32}$")]
    pub subject: Option<String>,
    /// the collection held (every record in it).
    #[serde(default)]
    #[schema(inline, value_type = Option<CollectionName>)]
    pub collection: Option<String>,
    /// Why (the case, the authority), 1 to 2,000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
    /// When the hold ends by itself (ms since the epoch), if it does; in the future.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub until: Option<i64>,
}

/// A legal hold as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Hold {
    pub id: String,
    pub version: u32,
    pub subject: Option<String>,
    pub collection: Option<String>,
    pub reason: String,
    pub until: Option<i64>,
    pub placed_by: String,
    pub placed_at: i64,
    /// Lifted (by whom, when), if it was.
    pub lifted_by: Option<String>,
    pub lifted_at: Option<i64>,
    /// In force now: not lifted, not past `until`.
    pub active: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HoldList {
    pub holds: Vec<Hold>,
}

/// A record's earlier versions, oldest first, fields shown as the caller's role allows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordHistory {
    pub id: String,
    pub versions: Vec<Record>,
}

/// A bulk delete or restore: first name the records (`ids`, or for a delete `where`, a search
/// by one searchable field), and get a count and a confirmation token; then send only the
/// `confirm` token to act.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// Record ids (1 to 10,000, each once).
    #[serde(default)]
    #[schema(inline, value_type = Option<Vec<RecordIdText>>, min_items = 1, max_items = 10000)]
    pub ids: Option<Vec<String>>,
    /// Delete only: the records whose searchable field equals a value (`{"email": "…"}`).
    #[serde(default, rename = "where")]
    #[schema(value_type = Option<Object>)]
    pub r#where: Option<serde_json::Map<String, serde_json::Value>>,
    /// The token the first call returned: acts on exactly the records it counted.
    #[serde(default)]
    #[schema(pattern = "^blk_[0-9a-f]{32}$")]
    pub confirm: Option<String>,
}

/// The answer to a bulk request: a count to confirm, or what was done.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BulkAnswer {
    /// `confirm` (nothing done yet: send the token) or `done`.
    pub status: String,
    pub count: u64,
    pub token: Option<String>,
    pub expires_at: Option<i64>,
}

/// What the vault holds of one data subject: counts, never values.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubjectView {
    pub id: String,
    /// The subject's records per collection.
    pub collections: Vec<SubjectCollection>,
    /// Legal holds in force on the subject or on a collection it has records in.
    pub holds: Vec<String>,
    /// Erasure is refused while a hold is in force.
    pub held: bool,
    /// Processing is restricted (Art. 18): every data operation but export and erasure is
    /// refused with `subject_restricted`.
    pub restricted: bool,
    /// The current state per purpose of the consents and objections recorded (the register:
    /// `GET /v1/subjects/{subject}/consents`).
    pub consents: BTreeMap<String, ConsentStateName>,
}

/// A subject's records in one collection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubjectCollection {
    pub collection: String,
    /// Records in use.
    pub active: u64,
    /// Deleted records awaiting purge.
    pub blocked: u64,
    /// Earlier versions kept (history).
    pub versions: u64,
}

/// What an erasure destroyed: counts and the destroyed key's id, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErasureDestroyed {
    /// `dek_` and the first 16 bytes (hex) of the SHA-256 of the destroyed wrapped key.
    pub key_id: String,
    pub records: u64,
    pub versions: u64,
    pub index_entries: u64,
    /// The collections the records were in.
    pub collections: Vec<String>,
}

/// The audit entry that records an erasure, and its proof of inclusion in a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceiptEvidence {
    /// The entry's canonical JSON body, as hashed into the log.
    pub entry: String,
    pub seq: u64,
    /// The signed checkpoint (C2SP signed note) whose tree includes the entry.
    pub checkpoint: String,
    pub tree_size: u64,
    /// RFC 6962 inclusion proof of the entry's leaf in that tree (hex hashes).
    pub proof: Vec<String>,
}

/// A signed erasure receipt: the subject's key and data were destroyed, when, and where the
/// audit log says so. `strongroom receipt verify` checks it offline with the public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureReceipt {
    /// `strongroom-erasure-receipt/1`.
    pub format: String,
    pub tenant: String,
    pub subject: String,
    pub erased_at: i64,
    /// When this receipt was issued (a repeated request issues a new one).
    pub issued_at: i64,
    /// True when the subject had been erased before this request: nothing more was done.
    pub repeat: bool,
    pub destroyed: ErasureDestroyed,
    pub audit: ReceiptEvidence,
    /// The audit signing key (Ed25519, hex).
    pub public_key: String,
    /// Ed25519 signature (hex) over `strongroom erasure-receipt v1\n` and this receipt's JSON
    /// without `signature`, in the field order shown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
}

/// Asks for an export of everything the vault holds of a data subject (GDPR Art. 15 access,
/// Art. 20 portability).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportInput {
    /// Who receives it: the data subject, or the controller it is ported to (no control
    /// characters). Recorded in the export register.
    #[schema(min_length = 1, max_length = 200)]
    pub recipient: String,
    /// The data-subject request it answers (an id of the request register).
    #[serde(default)]
    #[schema(pattern = "^dsr_[0-9a-f]{32}$")]
    pub request: Option<String>,
    /// Days until the export expires and is deleted: 1 to 30, 7 when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 30)]
    pub expires_in_days: Option<u32>,
    /// How many times it may be downloaded: 1 to 5, 1 when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 5)]
    pub downloads: Option<u32>,
}

/// An export made: where to download it, until when, how often.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportCreated {
    pub id: String,
    pub subject: String,
    /// `/v1/exports/{id}` (JSON; `?format=text` for the human-readable rendering).
    pub download: String,
    pub expires_at: i64,
    pub downloads: u32,
    /// The number of records in it.
    pub records: u64,
}

/// One record of a subject, every field decrypted, with its earlier versions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportedRecord {
    pub collection: String,
    pub id: String,
    /// `active`, or `blocked` (deleted, awaiting purge).
    pub state: String,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Earlier versions kept by the collection's history, oldest first.
    pub history: Vec<ExportedVersion>,
}

/// An earlier version of a record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportedVersion {
    pub version: u64,
    pub updated_at: i64,
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// One access to the subject's data as the audit log records it: who, when, what, why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportedAccess {
    pub time: i64,
    /// The API key or user that acted (opaque id), or `system:…`.
    pub actor: String,
    pub action: String,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    pub purpose: Option<String>,
    pub collection: Option<String>,
    pub records: Vec<String>,
    pub fields: Vec<String>,
    /// Position in the tenant's audit log (provable with the log's inclusion proofs).
    pub seq: u64,
}

/// A purpose and its lawful basis (none when the collection has not declared one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PurposeBasis {
    pub purpose: String,
    pub basis: Option<LawfulBasis>,
}

/// How one collection holding the subject's data is processed (from the records of
/// processing).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcessingActivity {
    pub collection: String,
    pub purposes: Vec<PurposeBasis>,
    /// The categories of data: field names with their classification.
    pub categories: Vec<String>,
    /// The roles that receive the data (recipients within the controller).
    pub recipients: Vec<String>,
    /// How long it is kept.
    pub retention: String,
}

/// A subprocessor engaged for the processing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcessingSubprocessor {
    pub name: String,
    pub service: String,
    pub country: String,
    /// Outside the EEA.
    pub transfer: bool,
    pub safeguard: String,
}

/// The processing facts of Art. 15(1): purposes, bases, recipients, retention, subprocessors.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ProcessingFacts {
    pub controller: String,
    pub activities: Vec<ProcessingActivity>,
    pub subprocessors: Vec<ProcessingSubprocessor>,
}

/// Everything the vault holds of a data subject (format `strongroom-subject-export/1`,
/// described in `docs/subject-rights.md`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubjectExport {
    pub format: String,
    pub tenant: String,
    pub subject: String,
    pub export: String,
    pub generated_at: i64,
    pub expires_at: i64,
    /// Always `data_subject_request`.
    pub purpose: String,
    pub request: Option<String>,
    pub recipient: String,
    /// Processing was restricted (Art. 18) when the export was made.
    pub restricted: bool,
    pub records: Vec<ExportedRecord>,
    /// The consent register of the subject.
    pub consents: Vec<ConsentEntry>,
    /// Who accessed the subject's data, oldest first.
    pub accesses: Vec<ExportedAccess>,
    pub processing: ProcessingFacts,
}

/// What a data subject asks for (GDPR Art. 15–21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DsarKind {
    Access,
    Rectification,
    Erasure,
    Restriction,
    Portability,
    Objection,
}

/// Where a data-subject request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DsarStatus {
    /// Received, being worked on.
    #[default]
    Open,
    /// Answered: `fulfilment` names the export or erasure that did it.
    Fulfilled,
    /// Refused (Art. 12(5)) or not possible: `note` says why.
    Refused,
}

/// A data-subject request to record or update (OR-04). The answer is due one calendar month
/// after receipt, extensible by up to two more months with a reason (Art. 12(3)).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DsarInput {
    pub kind: DsarKind,
    /// When the request was received (ms since the epoch; not in the future). Now when absent.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub received_at: Option<i64>,
    /// The data subject, once identified (`sub_…` of this tenant).
    #[serde(default)]
    #[schema(pattern = "^sub_[0-9a-f]{32}$")]
    pub subject: Option<String>,
    /// Who verified the requester's identity, and when: required before it is fulfilled.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub identity_verified_by: Option<String>,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub identity_verified_at: Option<i64>,
    /// Months the deadline is extended by: 0 (the default) to 2, with a reason.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2)]
    pub extension_months: u32,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 500)]
    pub extension_reason: Option<String>,
    #[serde(default)]
    pub status: DsarStatus,
    /// What answered it: the export (`exp_…`) for access and portability; for erasure the
    /// subject's erasure is looked up in the erasure ledger; free reference otherwise.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub fulfilment: Option<String>,
    /// When it was answered or refused.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub closed_at: Option<i64>,
    /// A note: why it was refused, what was rectified.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 2000)]
    pub note: Option<String>,
}

/// A data-subject request as the register keeps it, with its deadline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Dsar {
    pub id: String,
    pub version: u32,
    pub request: DsarInput,
    /// Received + 1 month (+ the extension), on the UTC calendar.
    pub due_at: i64,
    /// Open past its due date.
    pub overdue: bool,
    /// Days from receipt to closing, once closed.
    pub days_to_answer: Option<f64>,
    pub recorded_by: String,
    pub recorded_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DsarList {
    pub requests: Vec<Dsar>,
    /// Open requests, of which overdue; median days to answer the closed ones.
    pub open: u64,
    pub overdue: u64,
    pub median_days_to_answer: Option<f64>,
}

/// Asks for the termination of a tenant's contract (OR-08): one party asks, the other executes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffboardingInput {
    /// Why (the contract's end, say): 1 to 500 characters, no personal data.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// A termination requested, waiting for the other party.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OffboardingRequest {
    pub tenant: String,
    /// `tenant` (its admin asked) or `operator`.
    pub requested_by_party: String,
    pub requested_by: String,
    pub requested_at: i64,
    pub reason: String,
    /// The one-time token that opens the tenant's final archive, shown once and only to the
    /// tenant's admin (it is stored only sealed under the tenant's key, which offboarding
    /// destroys): keep it to download the archive.
    pub archive_token: Option<String>,
    /// What happens next.
    pub next: String,
}

/// What an offboarding destroyed: counts and key ids, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantDestroyed {
    pub records: u64,
    pub subjects: u64,
    pub versions: u64,
    /// The tenant's key-encryption keys destroyed (`kek_` + 16 bytes of the SHA-256 of each
    /// wrapped key).
    pub kek_ids: Vec<String>,
    /// How many subject keys (DEKs) were destroyed, and the SHA-256 of their ids (`dek_…`,
    /// sorted, one per line).
    pub deks: u64,
    pub dek_ids_sha256: String,
    /// The tenant's closed audit log (no personal data) is kept until then, and deleted after
    /// (the deletion recorded in the platform log).
    pub log_kept_until: i64,
}

/// A signed deletion certificate: the tenant's data and keys are destroyed, and its audit log
/// says so in an entry that a signed checkpoint includes. `strongroom certificate verify`
/// checks it offline with the public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletionCertificate {
    /// `strongroom-deletion-certificate/1`.
    pub format: String,
    pub tenant: String,
    pub executed_at: i64,
    pub issued_at: i64,
    pub destroyed: TenantDestroyed,
    /// The entry `tenant.offboard` in the tenant's log, the final checkpoint and the proof.
    pub audit: ReceiptEvidence,
    /// Hex Ed25519 public key (the audit signing key) and signature.
    pub public_key: String,
    pub signature: String,
}

/// The tenant's final archive: where to fetch it once, with the token, until when.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArchiveLink {
    /// `GET` it with the header `X-Archive-Token: <token>`; it is deleted after one download.
    pub download: String,
    pub expires_at: i64,
    /// The token, when the caller is the tenant's admin (shown once); for an operator it is
    /// absent: the tenant's admin received it with the request.
    pub token: Option<String>,
    pub sha256: String,
}

/// An offboarding carried out.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OffboardingDone {
    pub certificate: DeletionCertificate,
    pub archive: ArchiveLink,
}
