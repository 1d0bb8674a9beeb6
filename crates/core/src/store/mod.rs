//! The storage contract. A [`Store`] applies a [`UnitOfWork`] — data changes plus the audit
//! events that describe them — atomically and durably, and answers tenant-scoped queries.
//! Every backend passes the same conformance suite (`strongroom-testkit`).

use std::sync::Arc;

use async_trait::async_trait;
use strongroom_proto::{CollectionDef, RoleDef, SecuritySettings};

use crate::audit::AuditEvent;

mod audit;
mod exports;
mod jobs;
mod lifecycle;
mod registers;
mod subjects;
use crate::error::{Code, Error};
use crate::ids::{ApiKeyId, RecordId, SessionId, SubjectId, TenantId, UserId};
pub use audit::{append_stored, AuditHead, AuditQuery, AuditStore, Sealed, NODE_LEVEL_STEP};
pub use exports::{ExportRow, ExportStore, TenantArchiveRow, TenantCounts};
pub use jobs::{JobRow, JobState, JobStore};
pub use lifecycle::{BlockedRecord, LifecycleStore};
pub use registers::{DeclarationRow, RegisterEntryRow, RegisterStore};
pub use subjects::{ConsentRow, ConsentState, SubjectRecords, SubjectStore};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    pub id: TenantId,
    pub name: String,
    pub created_at: i64,
}

/// One version of a tenant's key-encryption key, wrapped by the root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKeyRow {
    pub tenant: TenantId,
    pub version: u32,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: ApiKeyId,
    /// `None` for operator keys.
    pub tenant: Option<TenantId>,
    pub name: String,
    /// SHA-256 of the secret; the secret itself is never stored.
    pub hash: [u8; 32],
    pub roles: Vec<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Last authentication with this key (coarse: updated at most once a minute).
    pub last_used_at: Option<i64>,
    /// The key that replaced this one on rotation.
    pub rotated_to: Option<ApiKeyId>,
}

/// A person who signs in: a tenant's user, or an operator (`tenant` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: UserId,
    pub tenant: Option<TenantId>,
    /// As entered (NFKC).
    pub username: String,
    /// NFKC + case folding: unique per tenant.
    pub username_key: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub password_changed_at: i64,
    /// Earlier password hashes, newest first, for the no-reuse rule.
    pub password_history: Vec<String>,
    pub roles: Vec<String>,
    pub disabled: bool,
    /// Consecutive failures since the last success or lock.
    pub failed_count: u32,
    /// How many locks in a row (each doubles the delay); reset by a success.
    pub lock_level: u32,
    pub locked_until: Option<i64>,
    /// The TOTP secret, sealed under the root key; `None` without MFA.
    pub totp_secret: Option<Vec<u8>>,
    /// A secret being enrolled, not yet confirmed.
    pub totp_pending: Option<Vec<u8>>,
    /// The last TOTP step accepted: a code is accepted once.
    pub totp_last_step: i64,
    /// SHA-256 of each unused recovery code.
    pub recovery_codes: Vec<[u8; 32]>,
    pub created_at: i64,
    /// Bumped by every [`Op::UpdateUser`]; guards concurrent changes.
    pub version: u64,
}

/// A signed-in session. Only the token's hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: SessionId,
    pub token_hash: [u8; 32],
    pub tenant: Option<TenantId>,
    pub user: UserId,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// Absolute end of the session.
    pub expires_at: i64,
    pub idle_timeout_ms: i64,
    pub revoked_at: Option<i64>,
    /// `mfa_enrollment` or `password_change` for a session that may do only that.
    pub restricted_to: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CollectionRow {
    pub tenant: TenantId,
    pub name: String,
    pub version: u64,
    pub def: CollectionDef,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct RoleRow {
    pub tenant: TenantId,
    pub name: String,
    /// 1 when created, one more at each change.
    pub version: u64,
    pub def: RoleDef,
    pub updated_at: i64,
}

/// A data subject and its data-encryption key, wrapped by a tenant KEK version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRow {
    pub tenant: TenantId,
    pub id: SubjectId,
    pub kek_version: u32,
    pub wrapped_dek: Vec<u8>,
    /// Blind index of the application's own reference, if one was given.
    pub ref_index: Option<[u8; 32]>,
    pub created_at: i64,
    /// [`SUBJECT_RESTRICTED`] and other flags (stored with the subject, 0 when inserted).
    pub flags: u32,
}

/// Processing of the subject is restricted (Art. 18): every data operation but export and
/// erasure is refused.
pub const SUBJECT_RESTRICTED: u32 = 1;
/// The subject objected to a purpose at some time (its consent register says which): reads
/// for purposes based on legitimate interest look there.
pub const SUBJECT_OBJECTED: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Active,
    /// Soft-deleted: invisible to every read, awaiting purge.
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    pub tenant: TenantId,
    pub collection: String,
    pub id: RecordId,
    pub subject: SubjectId,
    pub version: u64,
    pub state: RecordState,
    pub created_at: i64,
    pub updated_at: i64,
    /// The encrypted field envelopes (see `docs/storage.md`).
    pub data: Vec<u8>,
    /// The subject's flags, read with the record (ignored when writing one).
    pub subject_flags: u32,
}

/// A blind-index entry: HMAC of a field's normalised value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub field: String,
    pub hash: [u8; 32],
}

/// One data change inside a unit of work.
#[derive(Debug, Clone)]
pub enum Op {
    PutMeta {
        key: String,
        value: String,
    },
    /// Writes a new version of a register entry; `Conflict("version")` if it exists.
    PutDeclaration(DeclarationRow),
    /// Writes a new version of a JSON register entry; `Conflict("version")` if it exists.
    PutRegisterEntry(RegisterEntryRow),
    /// Creates a job if no job has its id (an existing one keeps its state).
    EnsureJob(JobRow),
    /// Sets a job's schedule (`every_ms`) and moves its next run to `next_run_at` when that is
    /// earlier, keeping its state and lease.
    ScheduleJob {
        id: String,
        every_ms: i64,
        next_run_at: i64,
    },
    /// Takes a job's lease for `holder` until `until`, if nobody else holds it at `now` and the
    /// job is due (running, or its next run is not after `now`); `Conflict("lease")` otherwise
    /// — so a node that saw a job due just as another finished it does not run it again. A job
    /// that was not running starts a new run (progress reset); one left running by a holder
    /// that died keeps its progress, to resume.
    ClaimJob {
        id: String,
        holder: String,
        now: i64,
        until: i64,
    },
    /// Writes a job's state (progress, schedule, outcome, lease), only while `holder` still
    /// holds its lease: `Conflict("lease")` otherwise, and the whole unit — the batch the
    /// progress belongs to — is not applied.
    SaveJob {
        holder: String,
        row: JobRow,
    },
    InsertTenant(TenantRow),
    InsertTenantKey(TenantKeyRow),
    InsertApiKey(ApiKeyRow),
    /// Inserts or replaces; `expected_version` is the version being replaced (0 for new).
    PutCollection {
        row: CollectionRow,
        expected_version: u64,
    },
    /// Creates the role (`expected_version` 0) or replaces the version expected.
    PutRole {
        row: RoleRow,
        expected_version: u64,
    },
    InsertSubject(SubjectRow),
    InsertRecord {
        row: RecordRow,
        index: Vec<IndexEntry>,
    },
    /// Replaces the record's current version (which is kept in the history) if it is still
    /// `row.version - 1`; for each field in `reindex`, drops its index entries and adds the new one.
    UpdateRecord {
        row: RecordRow,
        reindex: Vec<(String, Option<[u8; 32]>)>,
    },
    InsertUser(UserRow),
    /// Replaces a user if it is still at `row.version - 1`.
    UpdateUser(UserRow),
    /// Admits one password check before it runs, counting it as a failure in advance: it
    /// holds only while the account is not locked at `at` and fewer than `threshold` checks are
    /// counted (else the conflict `locked`). So no more than `threshold` checks are ever
    /// verified per lockout window, whatever the concurrency or the number of nodes.
    AdmitLoginAttempt {
        user: UserId,
        at: i64,
        threshold: u32,
    },
    /// Gives back an admitted check that neither failed nor succeeded (a missing MFA code).
    ReleaseLoginAttempt {
        user: UserId,
    },
    /// After a failed check: if the counted failures reached `threshold`, locks the account
    /// until `at + min(base_delay_ms << lock_level, max_delay_ms)` and clears the count; else
    /// the conflict `not_due`. Of concurrent failures exactly one locks, so a lockout is
    /// recorded once.
    LockIfDue {
        user: UserId,
        at: i64,
        threshold: u32,
        base_delay_ms: i64,
        max_delay_ms: i64,
    },
    /// Clears failure counters and locks (a success, or an administrator's unlock).
    ResetLockout {
        user: UserId,
    },
    /// Accepts TOTP step `step` only if it is later than the last one accepted (else conflict).
    UseTotpStep {
        user: UserId,
        step: i64,
    },
    InsertSession(SessionRow),
    TouchSession {
        id: SessionId,
        at: i64,
    },
    RevokeSession {
        id: SessionId,
        at: i64,
    },
    /// Ends every open session of a user.
    RevokeUserSessions {
        user: UserId,
        at: i64,
    },
    /// Stores the security settings of a scope (a tenant id or `platform`).
    PutSettings {
        scope: String,
        settings: SecuritySettings,
    },
    TouchApiKey {
        id: ApiKeyId,
        at: i64,
    },
    /// Shortens a key's life (never lengthens it) and records its successor.
    RotateApiKey {
        id: ApiKeyId,
        expires_at: i64,
        rotated_to: ApiKeyId,
    },
    /// Stores a signed checkpoint; a conflict if its number is taken.
    InsertCheckpoint(crate::checkpoint::CheckpointRow),
    /// Soft-deletes a record if it is still at `expected_version`.
    BlockRecord {
        tenant: TenantId,
        id: RecordId,
        expected_version: u64,
        at: i64,
    },
    /// Makes a blocked record active again, if it is still blocked at `expected_version`;
    /// `Conflict("version")` otherwise.
    RestoreRecord {
        tenant: TenantId,
        id: RecordId,
        expected_version: u64,
    },
    /// Destroys blocked records with their history and blind-index entries; each must still be
    /// blocked (`Conflict("state")` otherwise: an active record is never purged).
    PurgeRecords {
        tenant: TenantId,
        ids: Vec<RecordId>,
    },
    /// Destroys the earlier versions of a record numbered below `below` (all of them with
    /// `u64::MAX`): retention keeping only non-personal fields, and a collection's history depth.
    PruneHistory {
        tenant: TenantId,
        id: RecordId,
        below: u64,
    },
    /// Destroys a subject and its wrapped DEK (and its exports, which only that key opens);
    /// `Conflict("subject")` if it still has a record.
    DestroySubject {
        tenant: TenantId,
        subject: SubjectId,
    },
    /// Erases a subject: every record of it in any state, their history and blind-index
    /// entries, its consents and exports, and the subject with its wrapped DEK and reference.
    /// `Conflict("state")` if it
    /// does not have exactly `records` records (one was added or removed since they were
    /// counted), `Conflict("subject")` if the subject is gone.
    EraseSubject {
        tenant: TenantId,
        subject: SubjectId,
        records: u64,
    },
    /// Appends a change to the consent register as the next in its (subject, purpose)
    /// sequence (the store numbers it; `seq` is ignored); `Conflict("subject")` if the subject
    /// is gone. An objection also sets the subject's [`SUBJECT_OBJECTED`] flag.
    RecordConsent(ConsentRow),
    /// Sets (`on`) or clears one flag of a subject; `Conflict("subject")` if it is gone.
    SetSubjectFlag {
        tenant: TenantId,
        subject: SubjectId,
        flag: u32,
        on: bool,
    },
    /// Stores an export; `Conflict("subject")` if the subject is gone.
    PutExport(ExportRow),
    /// Counts one download of an export that has not expired at `now` (deleting it with its
    /// last allowed download); `Conflict("export")` if it is gone, used up or expired.
    TakeExport {
        tenant: TenantId,
        id: crate::ids::ExportId,
        now: i64,
    },
    /// Deletes an export if it is there (expiry).
    DeleteExport {
        tenant: TenantId,
        id: crate::ids::ExportId,
    },
    /// Stores a tenant's final archive (replacing none: `Conflict("archive")` if one is there).
    PutTenantArchive(TenantArchiveRow),
    /// Takes a tenant's final archive once: deletes it if its token hash is `token_hash` and it
    /// has not expired at `now`; `Conflict("archive")` otherwise.
    TakeTenantArchive {
        tenant: TenantId,
        token_hash: [u8; 32],
        now: i64,
    },
    /// Deletes an audit log whole — entries, head, checkpoints, subject index, tree nodes —
    /// once its retention ended (an offboarded tenant's closed log; the deletion is recorded
    /// in the platform log in the same unit).
    DeleteAuditLog {
        log: String,
    },
    /// Deletes a tenant's final archive if it is there (expiry).
    DeleteTenantArchive {
        tenant: TenantId,
    },
    /// Destroys everything of a tenant but its audit log (and its final archive): records,
    /// history, index entries, subjects with their DEKs, consents, exports, its KEKs,
    /// collections, roles, API keys, users and sessions, settings, jobs, its register entries
    /// and declarations, and the tenant row. `Conflict("state")` unless it holds exactly
    /// `counts` (something was added or removed since they were counted).
    ShredTenant {
        tenant: TenantId,
        counts: TenantCounts,
    },
}

/// Data changes and the audit events describing them: committed together or not at all.
#[derive(Debug, Clone, Default)]
pub struct UnitOfWork {
    pub ops: Vec<Op>,
    pub audit: Vec<AuditEvent>,
}

/// Where the store placed each audit event of a committed unit: `(log, seq)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    pub audit: Vec<(String, u64)>,
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule or an expected version did not hold; nothing was changed.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The backend could not be reached or failed to commit; nothing was acknowledged.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("store corrupt: {0}")]
    Corrupt(String),
    /// The link failed while the unit was being committed and whether it landed could not be
    /// found out: it may have taken effect. Not to be recorded as a failure.
    #[error("commit outcome unknown: {0}")]
    Indeterminate(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict("version") => Error::new(
                Code::VersionConflict,
                "the object changed while this request ran; read it again and retry",
            ),
            StoreError::Conflict("archive") => Error::new(
                Code::ExportGone,
                "the archive was downloaded already, or expired: it is deleted",
            ),
            StoreError::Conflict("export") => Error::new(
                Code::ExportGone,
                "the export expired or was downloaded as often as it allows: it is deleted",
            ),
            StoreError::Conflict(what) => {
                Error::new(Code::AlreadyExists, format!("{what} already exists"))
            }
            StoreError::Unavailable(_) => Error::new(
                Code::Unavailable,
                "storage is unavailable; nothing was changed, retry later",
            ),
            StoreError::Indeterminate(_) => Error::new(
                Code::Unavailable,
                "storage failed while committing; the change may or may not have been made: \
                 read before retrying",
            ),
            StoreError::Corrupt(_) => Error::internal(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A point in a store's writer where a test may inject a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// A batch is applied and about to be committed.
    BeforeCommit,
}

/// Fault injection for tests (a writer that panics, a link that drops): called by a store's
/// writer at each [`FaultPoint`]. Empty, and free, in production.
#[derive(Clone, Default)]
pub struct Faults(Option<Arc<dyn Fn(FaultPoint) + Send + Sync>>);

impl Faults {
    pub fn new(f: impl Fn(FaultPoint) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }
    pub fn hit(&self, point: FaultPoint) {
        if let Some(f) = &self.0 {
            f(point);
        }
    }
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Faults(set)"
        } else {
            "Faults(none)"
        })
    }
}

/// A storage backend. Every query that reads tenant data takes the tenant id: there is no way
/// to ask for a record without saying whose it is.
#[async_trait]
pub trait Store:
    AuditStore
    + RegisterStore
    + JobStore
    + LifecycleStore
    + SubjectStore
    + ExportStore
    + Send
    + Sync
    + 'static
{
    /// Applies a unit of work atomically and durably, sealing its audit events into their logs.
    /// On error nothing of the unit is visible.
    async fn commit(&self, unit: UnitOfWork) -> StoreResult<Receipt>;

    async fn get_meta(&self, key: &str) -> StoreResult<Option<String>>;
    async fn find_tenant(&self, id: &TenantId) -> StoreResult<Option<TenantRow>>;
    async fn find_tenant_by_name(&self, name: &str) -> StoreResult<Option<TenantRow>>;
    async fn find_tenant_keys(&self, tenant: &TenantId) -> StoreResult<Vec<TenantKeyRow>>;
    async fn find_api_key_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<ApiKeyRow>>;
    async fn find_collection(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> StoreResult<Option<CollectionRow>>;
    async fn find_collections(&self, tenant: &TenantId) -> StoreResult<Vec<CollectionRow>>;
    async fn find_role(&self, tenant: &TenantId, name: &str) -> StoreResult<Option<RoleRow>>;
    async fn find_roles(&self, tenant: &TenantId) -> StoreResult<Vec<RoleRow>>;
    async fn find_subject(
        &self,
        tenant: &TenantId,
        id: &SubjectId,
    ) -> StoreResult<Option<SubjectRow>>;
    async fn find_subject_by_ref(
        &self,
        tenant: &TenantId,
        ref_index: &[u8; 32],
    ) -> StoreResult<Option<SubjectRow>>;
    /// A record of this tenant and collection, in any state.
    async fn find_record(
        &self,
        tenant: &TenantId,
        collection: &str,
        id: &RecordId,
    ) -> StoreResult<Option<RecordRow>>;
    /// Active records whose blind index for `field` equals `hash`, in insertion order.
    async fn find_records_by_index(
        &self,
        tenant: &TenantId,
        collection: &str,
        field: &str,
        hash: &[u8; 32],
        limit: u32,
    ) -> StoreResult<Vec<RecordRow>>;
    /// Earlier versions of a record, oldest first: `(version, updated_at, data)`.
    async fn find_record_history(
        &self,
        tenant: &TenantId,
        id: &RecordId,
    ) -> StoreResult<Vec<(u64, i64, Vec<u8>)>>;
    async fn find_api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRow>>;
    /// The keys of a tenant, or the operator keys for `None`.
    async fn find_api_keys(&self, tenant: Option<&TenantId>) -> StoreResult<Vec<ApiKeyRow>>;
    async fn find_user(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
    ) -> StoreResult<Option<UserRow>>;
    async fn find_user_by_name(
        &self,
        tenant: Option<&TenantId>,
        username_key: &str,
    ) -> StoreResult<Option<UserRow>>;
    async fn find_users(&self, tenant: Option<&TenantId>) -> StoreResult<Vec<UserRow>>;
    async fn find_session_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<SessionRow>>;
    async fn find_settings(&self, scope: &str) -> StoreResult<Option<SecuritySettings>>;
    /// Every tenant's id (for verification: each must have its audit log).
    async fn find_tenant_ids(&self) -> StoreResult<Vec<TenantId>>;

    /// What this store is, for evidence: `("sqlite", None)`, or `("postgresql", Some(tls mode))`.
    fn backend(&self) -> (&'static str, Option<String>);
}
