//! The exports' area of the store: a subject's data prepared for its access or portability
//! request (GDPR Art. 15, 20), kept sealed under the subject's key until it is downloaded the
//! number of times allowed or expires — then deleted. An erasure of the subject deletes them
//! too (and destroys the key that opens them). And a tenant's final archive at offboarding,
//! sealed under a key derived from a one-time token the vault does not keep.

use async_trait::async_trait;

use crate::ids::{ExportId, RecordId, SubjectId, TenantId};
use crate::store::{RecordRow, StoreResult};

/// One export artefact. `data` is the export document sealed under the subject's DEK.
#[derive(Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub tenant: TenantId,
    pub id: ExportId,
    pub subject: SubjectId,
    pub created_at: i64,
    pub expires_at: i64,
    /// Downloads still allowed (at least 1 while the row exists).
    pub downloads_left: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for ExportRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportRow")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("subject", &self.subject)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("downloads_left", &self.downloads_left)
            .field("data", &format_args!("<{} sealed bytes>", self.data.len()))
            .finish()
    }
}

/// A tenant's final archive (offboarding): sealed under a key derived from its one-time token,
/// of which only the SHA-256 is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantArchiveRow {
    pub tenant: TenantId,
    pub token_hash: [u8; 32],
    pub created_at: i64,
    pub expires_at: i64,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for TenantArchiveRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantArchiveRow")
            .field("tenant", &self.tenant)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("data", &format_args!("<{} sealed bytes>", self.data.len()))
            .finish()
    }
}

/// What a tenant holds, counted (for offboarding's certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantCounts {
    pub records: u64,
    pub subjects: u64,
    pub versions: u64,
}

#[async_trait]
pub trait ExportStore: Send + Sync {
    /// An export of the tenant (expired or not: the caller decides).
    async fn find_export(&self, tenant: &TenantId, id: &ExportId)
        -> StoreResult<Option<ExportRow>>;
    /// Exports that expired at or before `now`, `(tenant, id)`, at most `limit`.
    async fn find_expired_exports(
        &self,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<(TenantId, ExportId)>>;
    /// Every record of a subject in any state, by id after `after`, at most `limit`.
    async fn find_subject_record_rows(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
        after: Option<&RecordId>,
        limit: u32,
    ) -> StoreResult<Vec<RecordRow>>;
    /// A tenant's final archive, if it is there.
    async fn find_tenant_archive(&self, tenant: &TenantId)
        -> StoreResult<Option<TenantArchiveRow>>;
    /// Tenants whose final archive expired at or before `now`.
    async fn find_expired_archives(&self, now: i64, limit: u32) -> StoreResult<Vec<TenantId>>;
    /// Every record of a tenant in any state, by id after `after`, at most `limit`.
    async fn find_tenant_record_rows(
        &self,
        tenant: &TenantId,
        after: Option<&RecordId>,
        limit: u32,
    ) -> StoreResult<Vec<RecordRow>>;
    /// Every subject of a tenant (with its wrapped DEK), by id after `after`, at most `limit`.
    async fn find_tenant_subjects(
        &self,
        tenant: &TenantId,
        after: Option<&SubjectId>,
        limit: u32,
    ) -> StoreResult<Vec<crate::store::SubjectRow>>;
    /// Records, subjects and earlier versions a tenant holds.
    async fn count_tenant(&self, tenant: &TenantId) -> StoreResult<TenantCounts>;
}
