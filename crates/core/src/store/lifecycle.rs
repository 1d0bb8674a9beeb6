//! The data lifecycle's area of the store: blocked (deleted) records awaiting purge, and the
//! purge itself — records, their history and blind-index entries destroyed, then the subject
//! (and with it its wrapped DEK) once it has no record left.

use async_trait::async_trait;

use crate::ids::{RecordId, SubjectId, TenantId};
use crate::store::StoreResult;

/// A blocked record: enough to decide its purge, nothing of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedRecord {
    pub id: RecordId,
    pub collection: String,
    pub subject: SubjectId,
    pub blocked_at: i64,
}

#[async_trait]
pub trait LifecycleStore: Send + Sync {
    /// Blocked records of a tenant's collection blocked before `before`, by id after
    /// `after` (keyset paging), at most `limit`.
    async fn find_blocked(
        &self,
        tenant: &TenantId,
        collection: &str,
        before: i64,
        after: Option<&RecordId>,
        limit: u32,
    ) -> StoreResult<Vec<BlockedRecord>>;
    /// Active records of a tenant's collection created (or, with `by_updated`, last updated)
    /// before `before`, by id after `after`, at most `limit`: what retention reads.
    async fn find_expired(
        &self,
        tenant: &TenantId,
        collection: &str,
        by_updated: bool,
        before: i64,
        after: Option<&RecordId>,
        limit: u32,
    ) -> StoreResult<Vec<crate::store::RecordRow>>;
    /// How many records (in any state) each of these subjects has.
    async fn count_subject_records(
        &self,
        tenant: &TenantId,
        subjects: &[SubjectId],
    ) -> StoreResult<Vec<(SubjectId, u64)>>;
    /// Makes destroyed data unrecoverable from the files too, where the backend can: SQLite
    /// folds the write-ahead log into the database and truncates it (deleted pages are already
    /// zeroed by `secure_delete`); PostgreSQL has nothing to do here (see docs/lifecycle.md).
    async fn scrub(&self) -> StoreResult<()>;
}
