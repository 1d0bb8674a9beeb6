//! Audit events and their sealed form.
//!
//! Every operation, allowed or not, produces an [`AuditEvent`]. The store seals it into its log
//! in the same transaction as the data change: it assigns the next sequence number, links the
//! previous entry's hash and computes this entry's hash, `SHA-256(0x00 ‖ canonical JSON)`, which
//! is also its RFC 6962 Merkle leaf hash. Events hold no personal data and no secrets: only
//! actor ids, action names, declared purposes, opaque object ids, field names and outcomes.

use strongroom_crypto::{hex, sha256_parts};
use strongroom_proto::AuditEntry;

use crate::error::{Code, Error};
use crate::ids::{RecordId, RequestId, SubjectId, TenantId};

/// The log of platform-level events (tenant creation, operator keys, failed authentication).
pub const PLATFORM_LOG: &str = "platform";
/// The `meta` key holding the last audit verification's result (JSON: `at`, `ok`, `entries`,
/// `logs`), evidence for IN-02.
pub const META_LAST_VERIFY: &str = "audit.last_verify";
/// The compliance alerts raised so far (JSON list of keys), so that restarts do not repeat them.
pub const META_ALERTS_RAISED: &str = "compliance.alerts_raised";
/// The action of a tenant log's first entry.
pub const LOG_GENESIS: &str = "log.genesis";
/// The `prev` of the first entry of a log.
pub const GENESIS: [u8; 32] = [0; 32];

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused by authentication or policy.
    Denied,
    /// Refused for bad input, a missing object or an internal fault.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One operation, before the store places it in its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// `None` for the platform log.
    pub tenant: Option<TenantId>,
    pub time: i64,
    pub request_id: RequestId,
    pub actor: String,
    pub action: &'static str,
    pub outcome: Outcome,
    pub code: Option<Code>,
    pub purpose: Option<String>,
    pub collection: Option<String>,
    pub subject: Option<SubjectId>,
    pub records: Vec<RecordId>,
    pub fields: Vec<String>,
    pub objects: Vec<String>,
}

impl AuditEvent {
    pub fn new(
        tenant: Option<TenantId>,
        time: i64,
        request_id: RequestId,
        actor: String,
        action: &'static str,
    ) -> Self {
        Self {
            tenant,
            time,
            request_id,
            actor,
            action,
            outcome: Outcome::Ok,
            code: None,
            purpose: None,
            collection: None,
            subject: None,
            records: Vec::new(),
            fields: Vec::new(),
            objects: Vec::new(),
        }
    }

    /// The first entry of a tenant's log, written in the same unit as the platform log's record
    /// of the tenant's creation (or by the migration that opened logs for older tenants), so
    /// that `audit verify` can require a log for every tenant.
    pub fn log_genesis(tenant: TenantId, time: i64, request_id: RequestId, actor: String) -> Self {
        Self::new(Some(tenant), time, request_id, actor, LOG_GENESIS)
    }

    /// The log this event belongs to.
    pub fn log(&self) -> &str {
        self.tenant.as_ref().map_or(PLATFORM_LOG, TenantId::as_str)
    }

    /// Marks the event as ended by `err`.
    pub fn fail(&mut self, err: &Error) {
        use crate::error::Kind;
        self.outcome = match err.kind() {
            Kind::Unauthenticated | Kind::Forbidden => Outcome::Denied,
            _ => Outcome::Failed,
        };
        self.code = Some(err.code);
    }
}

/// The hashed form of an entry, version 1: what is sealed, hashed and verified. It is its own
/// type, not the API's [`AuditEntry`], so that a change to the API can never change what was
/// hashed; a later version would add a `"v"` field and keep this one readable. The canonical
/// JSON is serde's output of this struct: fields in this order, no whitespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryV1 {
    pub log: String,
    pub seq: u64,
    pub prev: String,
    pub time: i64,
    pub request_id: String,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub code: Option<String>,
    pub purpose: Option<String>,
    pub collection: Option<String>,
    pub subject: Option<String>,
    pub records: Vec<String>,
    pub fields: Vec<String>,
    pub objects: Vec<String>,
}

impl EntryV1 {
    /// Parses a stored body.
    pub fn parse(body: &str) -> Option<Self> {
        serde_json::from_str(body).ok()
    }

    /// The canonical JSON of the entry.
    pub fn canonical(&self) -> String {
        // Serialising a struct of strings, numbers and vectors cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The data subjects the entry names besides its `subject`: those among its objects (a
    /// batch read or a search touches several). Stores index them for "who accessed".
    pub fn other_subjects(&self) -> Vec<&str> {
        named_subjects(
            self.subject.as_deref(),
            self.objects.iter().map(String::as_str),
        )
    }

    pub fn to_api(self) -> AuditEntry {
        AuditEntry {
            log: self.log,
            seq: self.seq,
            prev: self.prev,
            time: self.time,
            request_id: self.request_id,
            actor: self.actor,
            action: self.action,
            outcome: self.outcome,
            code: self.code,
            purpose: self.purpose,
            collection: self.collection,
            subject: self.subject,
            records: self.records,
            fields: self.fields,
            objects: self.objects,
        }
    }
}

/// The distinct subject ids among `objects` other than `subject`, sorted.
pub fn named_subjects<'a>(
    subject: Option<&str>,
    objects: impl Iterator<Item = &'a str>,
) -> Vec<&'a str> {
    let mut out: Vec<&str> = objects
        .filter(|o| SubjectId::parse(o).is_some() && Some(*o) != subject)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Seals an event as entry `seq` of its log after the entry whose hash is `prev`.
/// Returns the entry, its canonical JSON body, and its leaf hash.
pub fn seal_entry(event: &AuditEvent, seq: u64, prev: &[u8; 32]) -> (EntryV1, String, [u8; 32]) {
    let entry = EntryV1 {
        log: event.log().to_owned(),
        seq,
        prev: hex(prev),
        time: event.time,
        request_id: event.request_id.to_string(),
        actor: event.actor.clone(),
        action: event.action.to_owned(),
        outcome: event.outcome.as_str().to_owned(),
        code: event.code.map(|c| c.as_str().to_owned()),
        purpose: event.purpose.clone(),
        collection: event.collection.clone(),
        subject: event.subject.as_ref().map(ToString::to_string),
        records: event.records.iter().map(ToString::to_string).collect(),
        fields: event.fields.clone(),
        objects: event.objects.clone(),
    };
    let body = entry.canonical();
    let hash = leaf_hash(&body);
    (entry, body, hash)
}

/// RFC 6962 leaf hash of an entry body.
pub fn leaf_hash(body: &str) -> [u8; 32] {
    sha256_parts(&[&[0x00], body.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    #[test]
    fn the_hashed_form_round_trips_and_names_other_subjects() {
        let mut ev = AuditEvent::new(
            None,
            1,
            RequestId::generate(&SeededRng::new(3)),
            "key:x".into(),
            "record.search",
        );
        let a = format!("sub_{}", "a".repeat(32));
        let b = format!("sub_{}", "b".repeat(32));
        ev.objects = vec![b.clone(), "key_1".into(), a.clone(), b.clone()];
        let (entry, body, hash) = seal_entry(&ev, 7, &GENESIS);
        assert_eq!(EntryV1::parse(&body), Some(entry.clone()));
        assert_eq!(leaf_hash(&body), hash);
        assert!(body.starts_with(r#"{"log":"platform","seq":7,"prev":"000"#));
        assert_eq!(entry.other_subjects(), vec![a.as_str(), b.as_str()]);
        assert!(EntryV1::parse(&body.replace("\"seq\"", "\"v\":2,\"seq\"")).is_none());
    }
}
