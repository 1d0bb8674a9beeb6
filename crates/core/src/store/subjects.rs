//! The data subjects' area of the store: what the vault holds of one subject (counts, never
//! values), for the privacy officer's view and for erasure.

use async_trait::async_trait;

use crate::ids::{SubjectId, TenantId};
use crate::store::{RecordState, StoreResult};

/// A subject's records in one collection and state: how many, and how many earlier versions
/// and blind-index entries they have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRecords {
    pub collection: String,
    pub state: RecordState,
    pub records: u64,
    pub versions: u64,
    pub index_entries: u64,
}

#[async_trait]
pub trait SubjectStore: Send + Sync {
    /// The subject's records by collection and state (sorted by collection, active first).
    async fn find_subject_records(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> StoreResult<Vec<SubjectRecords>>;
    /// The tenant's subjects whose processing is restricted (a partial index: few rows).
    async fn find_restricted_subjects(&self, tenant: &TenantId) -> StoreResult<Vec<SubjectId>>;
    /// The latest consent change of a subject for a purpose: the state in force.
    async fn find_consent(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
        purpose: &str,
    ) -> StoreResult<Option<ConsentRow>>;
    /// A record (any state) with its subject's consent state in force for `purpose`, read in
    /// one statement: the request path of a purpose based on consent.
    async fn find_record_consent(
        &self,
        tenant: &TenantId,
        collection: &str,
        id: &crate::ids::RecordId,
        purpose: &str,
    ) -> StoreResult<Option<(crate::store::RecordRow, Option<ConsentState>)>>;
    /// Every consent change of a subject, by purpose then sequence.
    async fn find_consents(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> StoreResult<Vec<ConsentRow>>;
}

/// The state a consent change leaves in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentState {
    Withdrawn = 0,
    Given = 1,
    /// An objection to a purpose based on legitimate interest.
    Objected = 2,
}

impl ConsentState {
    pub fn from_stored(n: i64) -> Option<Self> {
        match n {
            0 => Some(Self::Withdrawn),
            1 => Some(Self::Given),
            2 => Some(Self::Objected),
            _ => None,
        }
    }
}

/// One change in the consent register. Written by `Op::RecordConsent`, which numbers it the
/// next in its (subject, purpose) sequence, for a subject that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    pub tenant: TenantId,
    pub subject: SubjectId,
    pub purpose: String,
    /// 1 for the first change of this subject and purpose, then one more each time.
    pub seq: u64,
    pub state: ConsentState,
    pub at: i64,
    pub source: String,
    pub text_hash: Option<[u8; 32]>,
    pub recorded_by: String,
}
