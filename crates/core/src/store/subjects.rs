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
}
