//! The registers' area of the store (OR-*): rows kept as versions. A version is never changed
//! or deleted; a change, or a withdrawal, is the next version, written only if that version
//! number is still free (so two people changing one entry cannot both win).

use async_trait::async_trait;

use crate::ids::TenantId;
use crate::store::StoreResult;

/// One version of a declaration (OR-07): an organisational or physical measure the software
/// cannot observe, declared by a named owner with a review date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclarationRow {
    /// `dcl_` and 32 hex digits; the same for every version.
    pub id: String,
    /// 1 when made, one more at each change.
    pub version: u32,
    /// `None`: the platform's register.
    pub tenant: Option<TenantId>,
    /// The catalogue id it covers.
    pub measure: String,
    pub statement: String,
    /// Who answers for it (a name or function).
    pub owner: String,
    /// The document that shows it, and the SHA-256 of that file.
    pub evidence_name: Option<String>,
    pub evidence_sha256: Option<[u8; 32]>,
    pub declared_at: i64,
    pub review_by: i64,
    /// This version withdraws the declaration.
    pub withdrawn: bool,
    /// The actor who wrote this version, and when.
    pub recorded_by: String,
    pub recorded_at: i64,
}

/// Queries of the registers.
#[async_trait]
pub trait RegisterStore: Send + Sync {
    /// Every version of every declaration of a scope (`None`: the platform's), by id then
    /// version.
    async fn find_declarations(
        &self,
        tenant: Option<&TenantId>,
    ) -> StoreResult<Vec<DeclarationRow>>;
    /// Every version of every entry of `register` in a scope, by id then version.
    async fn find_register_entries(
        &self,
        register: &str,
        tenant: Option<&TenantId>,
    ) -> StoreResult<Vec<RegisterEntryRow>>;
}

/// One version of an entry of a register kept as a JSON document (incidents now; later
/// subprocessors, trainings…): the compliance crate gives each register's body its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterEntryRow {
    /// The register (`incidents`).
    pub register: String,
    pub id: String,
    pub version: u32,
    /// `None`: the platform's register.
    pub tenant: Option<TenantId>,
    /// The entry as JSON.
    pub body: String,
    pub recorded_by: String,
    pub recorded_at: i64,
}
