//! The embedded SQLite store: WAL, `synchronous=FULL`, one writer thread that group-commits
//! units of work, and a pool of reader connections.
//!
//! Group commit: the writer takes every unit of work waiting in its queue (up to a batch limit),
//! applies each inside its own savepoint, commits the transaction once — one fsync for the whole
//! batch — and only then acknowledges each unit. A unit that fails rolls back to its savepoint
//! alone; the others still commit. Because every read writes an audit entry, this is what keeps
//! audited reads fast.

mod migrate_v5;
mod read;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use strongroom_core::checkpoint::CheckpointRow;
use strongroom_core::ids::{ApiKeyId, RecordId, SubjectId, TenantId, UserId};
use strongroom_core::store::{
    ApiKeyRow, AuditHead, AuditQuery, AuditStore, BlockedRecord, CollectionRow, ConsentRow,
    DeclarationRow, ExportRow, ExportStore, Faults, JobRow, JobStore, LifecycleStore, Receipt,
    RecordRow, RegisterEntryRow, RegisterStore, RoleRow, SessionRow, Store, StoreError,
    StoreResult, SubjectRecords, SubjectRow, SubjectStore, TenantArchiveRow, TenantCounts,
    TenantKeyRow, TenantRow, UnitOfWork, UserRow,
};
use strongroom_proto::{AuditEntry, SecuritySettings};
use tokio::sync::{mpsc, oneshot};

/// Migrations in order; the database's `user_version` is how many have run.
const MIGRATIONS: [&str; 14] = [
    include_str!("schema.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
    include_str!("schema_v5.sql"),
    include_str!("schema_v6.sql"),
    include_str!("schema_v7.sql"),
    include_str!("schema_v8.sql"),
    include_str!("schema_v9.sql"),
    include_str!("schema_v10.sql"),
    include_str!("schema_v11.sql"),
    include_str!("schema_v12.sql"),
    include_str!("schema_v13.sql"),
    include_str!("schema_v14.sql"),
];
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
/// Reader connections: at most this many reads run at once, each on a connection that stays
/// open (with its prepared statements) for the life of the store.
const READERS: usize = 8;

/// Tunables of the SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Most units of work in one group commit.
    pub max_batch: usize,
    /// Depth of the writer's queue; callers wait when it is full.
    pub queue_depth: usize,
    /// Faults injected into the writer (tests only).
    pub faults: Faults,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            max_batch: 512,
            queue_depth: 8192,
            faults: Faults::default(),
        }
    }
}

pub(crate) struct Job {
    unit: UnitOfWork,
    reply: oneshot::Sender<StoreResult<Receipt>>,
}

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<ReaderPool>,
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Makes the database file owner-only (0600), creating it empty if it does not exist yet.
/// SQLite gives the `-wal` and `-shm` files it creates the mode of the database file, so they
/// follow; existing ones (from an older build) are tightened too. Ciphertext, blind indexes and
/// the audit log are then unreadable to other local users even if the directory's mode is
/// loosened.
fn owner_only(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // The mode applies only if the file is created here; an existing one is left as it is.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        if let Ok(meta) = std::fs::metadata(&file) {
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(
                    |e| unavailable(format!("cannot make {} owner-only: {e}", file.display())),
                )?;
            }
        }
    }
    Ok(())
}

pub(crate) fn configure(conn: &Connection) -> StoreResult<()> {
    conn.busy_timeout(std::time::Duration::from_secs(BUSY_TIMEOUT_S))
        .map_err(unavailable)?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;",
    )
    .map_err(unavailable)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    /// Must be called inside a Tokio runtime. Refuses a database that is not in WAL mode with
    /// `synchronous=FULL`, since acknowledged writes could then be lost.
    pub fn open(path: &Path, options: SqliteOptions) -> StoreResult<Self> {
        owner_only(path)?;
        let conn = Connection::open(path).map_err(unavailable)?;
        configure(&conn)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(unavailable)?;
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(unavailable)?;
        if !mode.eq_ignore_ascii_case("wal") || sync != 2 {
            return Err(StoreError::Unavailable(format!(
                "SQLite must run with journal_mode=WAL and synchronous=FULL (got {mode} and {sync})"
            )));
        }
        migrate(&conn)?;
        let (tx, rx) = mpsc::channel(options.queue_depth.max(1));
        let writer = writer::Writer {
            path: path.to_owned(),
            jobs: Arc::new(Mutex::new(rx)),
            max_batch: options.max_batch.max(1),
            faults: options.faults,
        };
        std::thread::Builder::new()
            .name("strongroom-sqlite-supervisor".into())
            .spawn(move || writer.supervise(conn))
            .map_err(unavailable)?;
        Ok(Self {
            jobs: tx,
            readers: Arc::new(ReaderPool {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(tokio::sync::Semaphore::new(READERS)),
            }),
        })
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        let permit = pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(unavailable)?;
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let out = f(&conn);
            pool.put(conn);
            drop(permit);
            out
        })
        .await
        .map_err(unavailable)?
    }
}

fn migrate(conn: &Connection) -> StoreResult<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(unavailable)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "database schema version {version} is newer than this build understands ({SCHEMA_VERSION})"
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    // A migration may rebuild a table that others refer to, so foreign keys are off while it
    // runs (the pragma has no effect inside a transaction) and checked in full before it
    // commits: a migration that would leave a dangling reference rolls back.
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .map_err(unavailable)?;
    let result = MIGRATIONS
        .iter()
        .enumerate()
        .skip(version as usize)
        .try_for_each(|(i, sql)| run_migration(conn, sql, i + 1));
    conn.execute_batch("PRAGMA foreign_keys = ON")
        .map_err(unavailable)?;
    result
}

fn run_migration(conn: &Connection, sql: &str, next: usize) -> StoreResult<()> {
    let applied = (|| {
        conn.execute_batch(&format!("BEGIN; {sql}"))
            .map_err(unavailable)?;
        if next == 5 {
            migrate_v5::backfill(conn)?;
        }
        let dangling: Option<String> = conn
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .map_err(unavailable)?;
        if let Some(table) = dangling {
            return Err(StoreError::Unavailable(format!(
                "migration to schema version {next} would leave a dangling reference in table {table}"
            )));
        }
        conn.execute_batch(&format!("PRAGMA user_version = {next}; COMMIT;"))
            .map_err(unavailable)
    })();
    if applied.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    applied
}

struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl ReaderPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        match self.idle.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn take(&self) -> StoreResult<Connection> {
        if let Some(c) = self.lock().pop() {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(unavailable)?;
        configure(&conn)?;
        conn.execute_batch("PRAGMA query_only = ON;")
            .map_err(unavailable)?;
        Ok(conn)
    }

    fn put(&self, conn: Connection) {
        self.lock().push(conn);
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn commit(&self, unit: UnitOfWork) -> StoreResult<Receipt> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job { unit, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
    }

    async fn get_meta(&self, key: &str) -> StoreResult<Option<String>> {
        let key = key.to_owned();
        self.read(move |c| read::meta(c, &key)).await
    }

    async fn find_tenant(&self, id: &TenantId) -> StoreResult<Option<TenantRow>> {
        let id = id.clone();
        self.read(move |c| read::tenant(c, "id", id.as_str())).await
    }

    async fn find_tenant_by_name(&self, name: &str) -> StoreResult<Option<TenantRow>> {
        let name = name.to_owned();
        self.read(move |c| read::tenant(c, "name", &name)).await
    }

    async fn find_tenant_keys(&self, tenant: &TenantId) -> StoreResult<Vec<TenantKeyRow>> {
        let tenant = tenant.clone();
        self.read(move |c| read::tenant_keys(c, &tenant)).await
    }

    async fn find_api_key_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<ApiKeyRow>> {
        let hash = *hash;
        self.read(move |c| Ok(read::api_keys(c, "hash = ?1", &hash[..])?.pop()))
            .await
    }

    async fn find_collection(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> StoreResult<Option<CollectionRow>> {
        let (tenant, name) = (tenant.clone(), name.to_owned());
        self.read(move |c| Ok(read::collections(c, &tenant, Some(&name))?.pop()))
            .await
    }

    async fn find_collections(&self, tenant: &TenantId) -> StoreResult<Vec<CollectionRow>> {
        let tenant = tenant.clone();
        self.read(move |c| read::collections(c, &tenant, None))
            .await
    }

    async fn find_role(&self, tenant: &TenantId, name: &str) -> StoreResult<Option<RoleRow>> {
        let (tenant, name) = (tenant.clone(), name.to_owned());
        self.read(move |c| Ok(read::roles(c, &tenant, Some(&name))?.pop()))
            .await
    }

    async fn find_roles(&self, tenant: &TenantId) -> StoreResult<Vec<RoleRow>> {
        let tenant = tenant.clone();
        self.read(move |c| read::roles(c, &tenant, None)).await
    }

    async fn find_subject(
        &self,
        tenant: &TenantId,
        id: &SubjectId,
    ) -> StoreResult<Option<SubjectRow>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |c| read::subject_by_id(c, &tenant, &id))
            .await
    }

    async fn find_subject_by_ref(
        &self,
        tenant: &TenantId,
        ref_index: &[u8; 32],
    ) -> StoreResult<Option<SubjectRow>> {
        let (tenant, ix) = (tenant.clone(), *ref_index);
        self.read(move |c| read::subject_by_ref(c, &tenant, &ix))
            .await
    }

    async fn find_record(
        &self,
        tenant: &TenantId,
        collection: &str,
        id: &RecordId,
    ) -> StoreResult<Option<RecordRow>> {
        let (tenant, collection, id) = (tenant.clone(), collection.to_owned(), id.clone());
        self.read(move |c| read::record(c, &tenant, &collection, &id))
            .await
    }

    async fn find_records_by_index(
        &self,
        tenant: &TenantId,
        collection: &str,
        field: &str,
        hash: &[u8; 32],
        limit: u32,
    ) -> StoreResult<Vec<RecordRow>> {
        let (tenant, collection, field, hash) = (
            tenant.clone(),
            collection.to_owned(),
            field.to_owned(),
            *hash,
        );
        self.read(move |c| read::records_by_index(c, &tenant, &collection, &field, &hash, limit))
            .await
    }

    async fn find_record_history(
        &self,
        tenant: &TenantId,
        id: &RecordId,
    ) -> StoreResult<Vec<(u64, i64, Vec<u8>)>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |c| read::history(c, &tenant, &id)).await
    }

    async fn find_api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRow>> {
        let id = id.clone();
        self.read(move |c| Ok(read::api_keys(c, "id = ?1", id.as_str())?.pop()))
            .await
    }

    async fn find_api_keys(&self, tenant: Option<&TenantId>) -> StoreResult<Vec<ApiKeyRow>> {
        let tenant = tenant.map(|t| t.to_string());
        self.read(move |c| match &tenant {
            Some(t) => read::api_keys(c, "tenant = ?1", t),
            None => read::api_keys(c, "tenant IS NULL AND ?1 = ''", ""),
        })
        .await
    }

    async fn find_user(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
    ) -> StoreResult<Option<UserRow>> {
        let (tenant, id) = (tenant.cloned(), id.clone());
        self.read(move |c| Ok(read::users(c, tenant.as_ref(), "id = ?2", id.as_str())?.pop()))
            .await
    }

    async fn find_user_by_name(
        &self,
        tenant: Option<&TenantId>,
        key: &str,
    ) -> StoreResult<Option<UserRow>> {
        let (tenant, key) = (tenant.cloned(), key.to_owned());
        self.read(move |c| Ok(read::users(c, tenant.as_ref(), "username_key = ?2", &key)?.pop()))
            .await
    }

    async fn find_users(&self, tenant: Option<&TenantId>) -> StoreResult<Vec<UserRow>> {
        let tenant = tenant.cloned();
        self.read(move |c| read::users(c, tenant.as_ref(), "?2 = ''", ""))
            .await
    }

    async fn find_session_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<SessionRow>> {
        let hash = *hash;
        self.read(move |c| read::session(c, &hash)).await
    }

    async fn find_settings(&self, scope: &str) -> StoreResult<Option<SecuritySettings>> {
        let scope = scope.to_owned();
        self.read(move |c| read::settings(c, &scope)).await
    }

    fn backend(&self) -> (&'static str, Option<String>) {
        ("sqlite", None)
    }
    async fn find_tenant_ids(&self) -> StoreResult<Vec<TenantId>> {
        self.read(read::tenant_ids).await
    }
}

#[async_trait]
impl RegisterStore for SqliteStore {
    async fn find_declarations(
        &self,
        tenant: Option<&TenantId>,
    ) -> StoreResult<Vec<DeclarationRow>> {
        let tenant = tenant.cloned();
        self.read(move |c| read::declarations(c, tenant.as_ref()))
            .await
    }
    async fn find_register_entries(
        &self,
        register: &str,
        tenant: Option<&TenantId>,
    ) -> StoreResult<Vec<RegisterEntryRow>> {
        let (register, tenant) = (register.to_owned(), tenant.cloned());
        self.read(move |c| read::register_entries(c, &register, tenant.as_ref()))
            .await
    }
}

/// How long a connection waits for a lock before it gives up.
const BUSY_TIMEOUT_S: u64 = 10;
/// How long a scrub's checkpoint waits for readers to leave the write-ahead log.
const SCRUB_WAIT_MS: u64 = 250;

#[async_trait]
impl SubjectStore for SqliteStore {
    async fn find_subject_records(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> StoreResult<Vec<SubjectRecords>> {
        let (tenant, subject) = (tenant.clone(), subject.clone());
        self.read(move |c| read::subject_records(c, &tenant, &subject))
            .await
    }

    async fn find_restricted_subjects(&self, tenant: &TenantId) -> StoreResult<Vec<SubjectId>> {
        let tenant = tenant.clone();
        self.read(move |c| read::restricted_subjects(c, &tenant))
            .await
    }

    async fn find_consent(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
        purpose: &str,
    ) -> StoreResult<Option<ConsentRow>> {
        let (tenant, subject, purpose) = (tenant.clone(), subject.clone(), purpose.to_owned());
        self.read(move |c| read::consent(c, &tenant, &subject, &purpose))
            .await
    }

    async fn find_record_consent(
        &self,
        tenant: &TenantId,
        collection: &str,
        id: &RecordId,
        purpose: &str,
    ) -> StoreResult<Option<(RecordRow, Option<strongroom_core::store::ConsentState>)>> {
        let (tenant, collection, id, purpose) = (
            tenant.clone(),
            collection.to_owned(),
            id.clone(),
            purpose.to_owned(),
        );
        self.read(move |c| read::record_consent(c, &tenant, &collection, &id, &purpose))
            .await
    }

    async fn find_consents(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> StoreResult<Vec<ConsentRow>> {
        let (tenant, subject) = (tenant.clone(), subject.clone());
        self.read(move |c| read::consents(c, &tenant, &subject))
            .await
    }
}

#[async_trait]
impl ExportStore for SqliteStore {
    async fn find_export(
        &self,
        tenant: &TenantId,
        id: &strongroom_core::ids::ExportId,
    ) -> StoreResult<Option<ExportRow>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |c| read::export(c, &tenant, &id)).await
    }

    async fn find_expired_exports(
        &self,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<(TenantId, strongroom_core::ids::ExportId)>> {
        self.read(move |c| read::expired_exports(c, now, limit))
            .await
    }

    async fn find_tenant_archive(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Option<TenantArchiveRow>> {
        let tenant = tenant.clone();
        self.read(move |c| read::tenant_archive(c, &tenant)).await
    }

    async fn find_expired_archives(&self, now: i64, limit: u32) -> StoreResult<Vec<TenantId>> {
        self.read(move |c| read::expired_archives(c, now, limit))
            .await
    }

    async fn find_tenant_record_rows(
        &self,
        tenant: &TenantId,
        after: Option<&RecordId>,
        limit: u32,
    ) -> StoreResult<Vec<RecordRow>> {
        let tenant = tenant.clone();
        let after = after.map(|a| a.as_str().to_owned());
        self.read(move |c| read::tenant_record_rows(c, &tenant, after.as_deref(), limit))
            .await
    }

    async fn find_tenant_subjects(
        &self,
        tenant: &TenantId,
        after: Option<&SubjectId>,
        limit: u32,
    ) -> StoreResult<Vec<SubjectRow>> {
        let tenant = tenant.clone();
        let after = after.map(|a| a.as_str().to_owned());
        self.read(move |c| read::tenant_subjects(c, &tenant, after.as_deref(), limit))
            .await
    }

    async fn count_tenant(&self, tenant: &TenantId) -> StoreResult<TenantCounts> {
        let tenant = tenant.clone();
        self.read(move |c| read::count_tenant(c, &tenant)).await
    }

    async fn find_subject_record_rows(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
        after: Option<&RecordId>,
        limit: u32,
    ) -> StoreResult<Vec<RecordRow>> {
        let (tenant, subject) = (tenant.clone(), subject.clone());
        let after = after.map(|a| a.as_str().to_owned());
        self.read(move |c| read::subject_record_rows(c, &tenant, &subject, after.as_deref(), limit))
            .await
    }
}

#[async_trait]
impl LifecycleStore for SqliteStore {
    async fn find_blocked(
        &self,
        tenant: &TenantId,
        collection: &str,
        before: i64,
        after: Option<&RecordId>,
        limit: u32,
    ) -> StoreResult<Vec<BlockedRecord>> {
        let (tenant, collection, after) = (
            tenant.clone(),
            collection.to_owned(),
            after.map(|a| a.as_str().to_owned()),
        );
        self.read(move |c| read::blocked(c, &tenant, &collection, before, after.as_deref(), limit))
            .await
    }

    async fn find_expired(
        &self,
        tenant: &TenantId,
        collection: &str,
        by_updated: bool,
        before: i64,
        after: Option<&RecordId>,
        limit: u32,
    ) -> StoreResult<Vec<RecordRow>> {
        let (tenant, collection, after) = (
            tenant.clone(),
            collection.to_owned(),
            after.map(|a| a.as_str().to_owned()),
        );
        self.read(move |c| {
            read::expired(
                c,
                &tenant,
                &collection,
                by_updated,
                before,
                after.as_deref(),
                limit,
            )
        })
        .await
    }

    async fn count_subject_records(
        &self,
        tenant: &TenantId,
        subjects: &[SubjectId],
    ) -> StoreResult<Vec<(SubjectId, u64)>> {
        let (tenant, subjects) = (tenant.clone(), subjects.to_vec());
        self.read(move |c| read::subject_record_counts(c, &tenant, &subjects))
            .await
    }

    async fn scrub(&self) -> StoreResult<()> {
        // Folds the write-ahead log (which still holds the pages as they were before the
        // purge) into the database and truncates it; the database's freed pages were zeroed
        // by `secure_delete`.
        // A checkpoint that waits for readers holds up the writer meanwhile: wait briefly (the
        // caller retries later) rather than the connections' usual ten seconds.
        self.read(|c| {
            c.busy_timeout(std::time::Duration::from_millis(SCRUB_WAIT_MS))
                .map_err(unavailable)?;
            let checkpoint = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            });
            c.busy_timeout(std::time::Duration::from_secs(BUSY_TIMEOUT_S))
                .map_err(unavailable)?;
            let (busy, _, _): (i64, i64, i64) = checkpoint.map_err(unavailable)?;
            if busy != 0 {
                return Err(StoreError::Unavailable(
                    "the write-ahead log could not be truncated (busy): the next purge retries"
                        .into(),
                ));
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn find_jobs(&self) -> StoreResult<Vec<JobRow>> {
        self.read(|c| read::jobs(c, None)).await
    }

    async fn find_job(&self, id: &str) -> StoreResult<Option<JobRow>> {
        let id = id.to_owned();
        self.read(move |c| Ok(read::jobs(c, Some(&id))?.pop()))
            .await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn find_audit_logs(&self) -> StoreResult<Vec<String>> {
        self.read(read::audit_logs).await
    }

    async fn find_audit_heads(&self) -> StoreResult<Vec<(String, AuditHead)>> {
        self.read(read::audit_heads).await
    }

    async fn find_audit_head(&self, log: &str) -> StoreResult<Option<AuditHead>> {
        let log = log.to_owned();
        self.read(move |c| read::audit_head(c, &log)).await
    }

    async fn find_audit_raw(
        &self,
        log: &str,
        after_seq: u64,
        limit: u32,
    ) -> StoreResult<Vec<(u64, String, [u8; 32])>> {
        let log = log.to_owned();
        self.read(move |c| read::audit_raw(c, &log, after_seq, limit))
            .await
    }

    async fn find_audit_tail(&self, log: &str) -> StoreResult<Option<(u64, [u8; 32])>> {
        let log = log.to_owned();
        self.read(move |c| read::audit_tail(c, &log)).await
    }

    async fn find_audit_hashes(
        &self,
        log: &str,
        level: u32,
        index: u64,
        count: u64,
    ) -> StoreResult<Vec<[u8; 32]>> {
        let log = log.to_owned();
        self.read(move |c| read::audit_hashes(c, &log, level, index, count))
            .await
    }

    async fn find_audit_nodes(
        &self,
        log: &str,
        after: Option<(u32, u64)>,
        limit: u32,
    ) -> StoreResult<Vec<(u32, u64, [u8; 32])>> {
        let log = log.to_owned();
        self.read(move |c| read::audit_nodes(c, &log, after, limit))
            .await
    }

    async fn find_audit_subject_rows(
        &self,
        log: &str,
        after: Option<(String, u64)>,
        limit: u32,
    ) -> StoreResult<Vec<(String, u64)>> {
        let log = log.to_owned();
        self.read(move |c| read::audit_subject_rows(c, &log, after, limit))
            .await
    }

    async fn find_checkpoints(&self, log: &str) -> StoreResult<Vec<CheckpointRow>> {
        let log = log.to_owned();
        self.read(move |c| read::checkpoints(c, &log, false)).await
    }

    async fn find_latest_checkpoint(&self, log: &str) -> StoreResult<Option<CheckpointRow>> {
        let log = log.to_owned();
        self.read(move |c| Ok(read::checkpoints(c, &log, true)?.pop()))
            .await
    }

    async fn find_audit_entries(&self, log: &str, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let (log, q) = (log.to_owned(), q.clone());
        self.read(move |c| read::audit(c, &log, &q)).await
    }

    async fn check_audit_schema(&self) -> StoreResult<Vec<String>> {
        self.read(read::check_audit_schema).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A database as a build with schema version 3 left it.
    fn at_version_3(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        for (i, sql) in MIGRATIONS.iter().take(3).enumerate() {
            conn.execute_batch(&format!("{sql} PRAGMA user_version = {};", i + 1))
                .unwrap();
        }
        conn
    }

    #[tokio::test]
    async fn version_4_keeps_every_audit_entry_in_log_order_without_rowids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        {
            let conn = at_version_3(&path);
            // Interleaved logs, inserted out of (log, seq) order.
            for (log, seq) in [("b", 1), ("a", 1), ("b", 2), ("a", 2), ("a", 3)] {
                conn.execute(
                    "INSERT INTO audit (log, seq, time, actor, action, outcome, subject, body, hash)
                     VALUES (?1, ?2, 0, 'x', 'y', 'ok', 'sub_1', ?3, zeroblob(32))",
                    rusqlite::params![log, seq, format!(r#"{{"log":"{log}","seq":{seq},"subject":"sub_1"}}"#)],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let bodies: Vec<String> = conn
            .prepare("SELECT body FROM audit ORDER BY log, seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let order: Vec<String> = bodies
            .iter()
            .map(|b| b[8..9].to_owned() + &b[17..18])
            .collect();
        assert_eq!(order, ["a1", "a2", "a3", "b1", "b2"]);
        assert!(
            conn.prepare("SELECT rowid FROM audit").is_err(),
            "the audit table has no rowid any more"
        );
        let indexed: i64 = conn
            .query_row(
                "SELECT count(*) FROM audit INDEXED BY audit_subject WHERE log = 'a' AND subject = 'sub_1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexed, 3);
    }

    #[tokio::test]
    async fn a_migration_that_would_leave_a_dangling_reference_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        {
            let conn = at_version_3(&path);
            // With foreign keys off, plant a record whose subject does not exist.
            conn.execute_batch(
                "PRAGMA foreign_keys = OFF;
                 INSERT INTO tenants VALUES ('ten_1', 'acme', 0);
                 INSERT INTO records (tenant, id, collection, subject, version, state, created_at, updated_at, data)
                     VALUES ('ten_1', 'rec_1', 'people', 'sub_gone', 1, 0, 1, 1, x'00');",
            )
            .unwrap();
        }
        let err = SqliteStore::open(&path, SqliteOptions::default())
            .err()
            .expect("the migration is refused");
        assert!(
            err.to_string()
                .contains("dangling reference in table records"),
            "{err}"
        );
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 3, "nothing of version 4 was applied");
        assert!(conn.prepare("SELECT rowid FROM audit").is_ok());
    }
}
