//! The Strongroom domain: tenants, collections, records, access policy, audit events and the
//! key hierarchy. It defines the [`Store`], [`Clock`] and [`Rng`] traits and never touches HTTP,
//! SQL drivers or the system clock itself.

pub mod audit;
pub mod cache;
pub mod certificate;
pub mod checkpoint;
pub mod clock;
mod codec;
pub mod error;
pub mod identity;
pub mod ids;
pub mod jobs;
pub mod keys;
pub mod policy;
pub mod proofs;
#[cfg(test)]
mod proptests;
pub mod receipt;
pub mod retention;
pub mod rng;
pub mod schema;
pub mod store;
pub mod vault;
pub mod verify;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Code, Error, Kind, Result};
pub use ids::{ApiKeyId, RecordId, RequestId, SessionId, SubjectId, TenantId, UserId};
pub use rng::{OsRng, Rng, SeededRng};
pub use store::Store;
pub use vault::{Principal, RequestCtx, Term, Vault, VaultConfig};
