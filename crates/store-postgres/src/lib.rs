//! The PostgreSQL store: several stateless Strongroom nodes over one database.
//!
//! Each node runs one writer task that group-commits units of work: it takes every unit waiting
//! (up to a batch limit), locks the heads of the audit logs they touch with `SELECT … FOR UPDATE`
//! (in log order, so nodes never deadlock), applies each unit in its own savepoint, seals its
//! audit events onto the heads, and commits once. The database's row locks make the heads the
//! single sequencer of each log across nodes: a node that dies mid-batch simply rolls back and
//! releases its locks, and nothing it acknowledged is lost. Reads use a small connection pool.

mod conn;
mod migrate_v2;
mod read;
mod writer;

use async_trait::async_trait;
use std::sync::Arc;

use deadpool_postgres::Pool;
use strongroom_core::checkpoint::CheckpointRow;
use strongroom_core::ids::{ApiKeyId, RecordId, SubjectId, TenantId, UserId};
use strongroom_core::store::{
    ApiKeyRow, AuditHead, AuditQuery, AuditStore, BlockedRecord, CollectionRow, DeclarationRow,
    Faults, JobRow, JobStore, LifecycleStore, Receipt, RecordRow, RegisterEntryRow, RegisterStore,
    RoleRow, SessionRow, Store, StoreError, StoreResult, SubjectRecords, SubjectRow, SubjectStore,
    TenantKeyRow, TenantRow, UnitOfWork, UserRow,
};
use strongroom_proto::{AuditEntry, SecuritySettings};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;

pub use conn::{Target, TlsMode};

/// Migrations in order; `strongroom_schema` records how many have run.
const MIGRATIONS: [&str; 11] = [
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
];
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
/// Arbitrary key of the advisory lock that serialises migrations across nodes.
const MIGRATION_LOCK: i64 = 0x5354_524f_4e47;

/// Tunables of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub max_batch: usize,
    pub queue_depth: usize,
    pub readers: usize,
    /// Faults injected into the writer (tests only).
    pub faults: Faults,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_batch: 512,
            queue_depth: 8192,
            readers: 8,
            faults: Faults::default(),
        }
    }
}

pub(crate) struct Job {
    unit: UnitOfWork,
    reply: oneshot::Sender<StoreResult<Receipt>>,
}

pub(crate) fn unavailable(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(describe(&e))
}

/// A driver error in words: the server's own message and code when it sent one (never its
/// `detail`, which may quote values), else the error and its causes.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The PostgreSQL implementation of [`Store`].
pub struct PgStore {
    jobs: mpsc::Sender<Job>,
    pool: Pool,
    /// The connection's `sslmode`, for evidence.
    tls: &'static str,
}

impl PgStore {
    /// Connects, migrates the schema if needed, and starts this node's writer task.
    /// Must be called inside a Tokio runtime.
    pub async fn open(url: &str, options: PgOptions) -> StoreResult<Self> {
        let target = Target::parse(url)?;
        let tls = match target.mode() {
            TlsMode::Disable => "disable",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        };
        let mut client = target.connect().await?;
        migrate(&mut client).await?;
        let pool = target.pool(options.readers)?;
        let (tx, rx) = mpsc::channel(options.queue_depth.max(1));
        let writer = writer::Writer {
            target,
            jobs: Arc::new(tokio::sync::Mutex::new(rx)),
            max_batch: options.max_batch.max(1),
            faults: options.faults,
        };
        tokio::spawn(writer.supervise(client));
        Ok(Self {
            jobs: tx,
            pool,
            tls,
        })
    }

    async fn reader(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("no database connection came free: {e}")))
    }
}

/// Runs the migrations this database has not had yet, in one transaction, under an advisory
/// lock so that nodes starting together migrate once. A database newer than this build is refused.
async fn migrate(client: &mut Client) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(unavailable)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(unavailable)?;
    // A backfill may take longer than the statement limit of ordinary work.
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .await
        .map_err(unavailable)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS strongroom_schema (version BIGINT NOT NULL)")
        .await
        .map_err(unavailable)?;
    let version: i64 = tx
        .query_opt("SELECT max(version) FROM strongroom_schema", &[])
        .await
        .map_err(unavailable)?
        .and_then(|r| r.try_get::<_, Option<i64>>(0).ok().flatten())
        .unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "database schema version {version} is newer than this build understands ({SCHEMA_VERSION})"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let next = i as i64 + 1;
        tx.batch_execute(sql).await.map_err(|e| {
            StoreError::Unavailable(format!("migration to schema version {next} failed: {e}"))
        })?;
        if next == 2 {
            migrate_v2::backfill(&tx).await?;
        }
        tx.execute(
            "INSERT INTO strongroom_schema (version) VALUES ($1)",
            &[&next],
        )
        .await
        .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)
}

#[async_trait]
impl Store for PgStore {
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
        read::meta(&*self.reader().await?, key).await
    }
    async fn find_tenant(&self, id: &TenantId) -> StoreResult<Option<TenantRow>> {
        read::tenant(&*self.reader().await?, "id", id.as_str()).await
    }
    async fn find_tenant_by_name(&self, name: &str) -> StoreResult<Option<TenantRow>> {
        read::tenant(&*self.reader().await?, "name", name).await
    }
    async fn find_tenant_keys(&self, tenant: &TenantId) -> StoreResult<Vec<TenantKeyRow>> {
        read::tenant_keys(&*self.reader().await?, tenant).await
    }
    async fn find_api_key_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<ApiKeyRow>> {
        Ok(
            read::api_keys(&*self.reader().await?, "hash = $1", &hash.as_slice())
                .await?
                .pop(),
        )
    }
    async fn find_collection(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> StoreResult<Option<CollectionRow>> {
        Ok(
            read::collections(&*self.reader().await?, tenant, Some(name))
                .await?
                .pop(),
        )
    }
    async fn find_collections(&self, tenant: &TenantId) -> StoreResult<Vec<CollectionRow>> {
        read::collections(&*self.reader().await?, tenant, None).await
    }
    async fn find_role(&self, tenant: &TenantId, name: &str) -> StoreResult<Option<RoleRow>> {
        Ok(read::roles(&*self.reader().await?, tenant, Some(name))
            .await?
            .pop())
    }
    async fn find_roles(&self, tenant: &TenantId) -> StoreResult<Vec<RoleRow>> {
        read::roles(&*self.reader().await?, tenant, None).await
    }
    async fn find_subject(
        &self,
        tenant: &TenantId,
        id: &SubjectId,
    ) -> StoreResult<Option<SubjectRow>> {
        read::subject(&*self.reader().await?, tenant, "id = $2", &id.as_str()).await
    }
    async fn find_subject_by_ref(
        &self,
        tenant: &TenantId,
        ref_index: &[u8; 32],
    ) -> StoreResult<Option<SubjectRow>> {
        read::subject(
            &*self.reader().await?,
            tenant,
            "ref_index = $2",
            &ref_index.as_slice(),
        )
        .await
    }
    async fn find_record(
        &self,
        tenant: &TenantId,
        collection: &str,
        id: &RecordId,
    ) -> StoreResult<Option<RecordRow>> {
        read::record(&*self.reader().await?, tenant, collection, id).await
    }
    async fn find_records_by_index(
        &self,
        tenant: &TenantId,
        collection: &str,
        field: &str,
        hash: &[u8; 32],
        limit: u32,
    ) -> StoreResult<Vec<RecordRow>> {
        read::records_by_index(
            &*self.reader().await?,
            tenant,
            collection,
            field,
            hash,
            limit,
        )
        .await
    }
    async fn find_record_history(
        &self,
        tenant: &TenantId,
        id: &RecordId,
    ) -> StoreResult<Vec<(u64, i64, Vec<u8>)>> {
        read::history(&*self.reader().await?, tenant, id).await
    }
    async fn find_api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRow>> {
        Ok(
            read::api_keys(&*self.reader().await?, "id = $1", &id.as_str())
                .await?
                .pop(),
        )
    }
    async fn find_api_keys(&self, tenant: Option<&TenantId>) -> StoreResult<Vec<ApiKeyRow>> {
        let t = tenant.map(|t| t.to_string());
        read::api_keys(&*self.reader().await?, "tenant IS NOT DISTINCT FROM $1", &t).await
    }
    async fn find_user(
        &self,
        tenant: Option<&TenantId>,
        id: &UserId,
    ) -> StoreResult<Option<UserRow>> {
        Ok(
            read::users(&*self.reader().await?, tenant, "id = $2", id.as_str())
                .await?
                .pop(),
        )
    }
    async fn find_user_by_name(
        &self,
        tenant: Option<&TenantId>,
        key: &str,
    ) -> StoreResult<Option<UserRow>> {
        Ok(
            read::users(&*self.reader().await?, tenant, "username_key = $2", key)
                .await?
                .pop(),
        )
    }
    async fn find_users(&self, tenant: Option<&TenantId>) -> StoreResult<Vec<UserRow>> {
        read::users(&*self.reader().await?, tenant, "$2 = ''", "").await
    }
    async fn find_session_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<SessionRow>> {
        read::session(&*self.reader().await?, hash).await
    }
    async fn find_settings(&self, scope: &str) -> StoreResult<Option<SecuritySettings>> {
        read::settings(&*self.reader().await?, scope).await
    }
    fn backend(&self) -> (&'static str, Option<String>) {
        ("postgresql", Some(self.tls.to_owned()))
    }
    async fn find_tenant_ids(&self) -> StoreResult<Vec<TenantId>> {
        read::tenant_ids(&*self.reader().await?).await
    }
}

#[async_trait]
impl RegisterStore for PgStore {
    async fn find_declarations(
        &self,
        tenant: Option<&TenantId>,
    ) -> StoreResult<Vec<DeclarationRow>> {
        read::declarations(&*self.reader().await?, tenant).await
    }
    async fn find_register_entries(
        &self,
        register: &str,
        tenant: Option<&TenantId>,
    ) -> StoreResult<Vec<RegisterEntryRow>> {
        read::register_entries(&*self.reader().await?, register, tenant).await
    }
}

#[async_trait]
impl SubjectStore for PgStore {
    async fn find_subject_records(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> StoreResult<Vec<SubjectRecords>> {
        read::subject_records(&*self.reader().await?, tenant, subject).await
    }

    async fn find_restricted_subjects(&self, tenant: &TenantId) -> StoreResult<Vec<SubjectId>> {
        read::restricted_subjects(&*self.reader().await?, tenant).await
    }

    async fn find_consent(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
        purpose: &str,
    ) -> StoreResult<Option<strongroom_core::store::ConsentRow>> {
        Ok(
            read::consents(&*self.reader().await?, tenant, subject, Some(purpose))
                .await?
                .pop(),
        )
    }

    async fn find_record_consent(
        &self,
        tenant: &TenantId,
        collection: &str,
        id: &strongroom_core::ids::RecordId,
        purpose: &str,
    ) -> StoreResult<
        Option<(
            strongroom_core::store::RecordRow,
            Option<strongroom_core::store::ConsentState>,
        )>,
    > {
        read::record_consent(&*self.reader().await?, tenant, collection, id, purpose).await
    }

    async fn find_consents(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
    ) -> StoreResult<Vec<strongroom_core::store::ConsentRow>> {
        read::consents(&*self.reader().await?, tenant, subject, None).await
    }
}

#[async_trait]
impl strongroom_core::store::ExportStore for PgStore {
    async fn find_export(
        &self,
        tenant: &TenantId,
        id: &strongroom_core::ids::ExportId,
    ) -> StoreResult<Option<strongroom_core::store::ExportRow>> {
        read::export(&*self.reader().await?, tenant, id).await
    }

    async fn find_expired_exports(
        &self,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<(TenantId, strongroom_core::ids::ExportId)>> {
        read::expired_exports(&*self.reader().await?, now, limit).await
    }

    async fn find_tenant_archive(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Option<strongroom_core::store::TenantArchiveRow>> {
        read::tenant_archive(&*self.reader().await?, tenant).await
    }

    async fn find_expired_archives(&self, now: i64, limit: u32) -> StoreResult<Vec<TenantId>> {
        read::expired_archives(&*self.reader().await?, now, limit).await
    }

    async fn find_tenant_record_rows(
        &self,
        tenant: &TenantId,
        after: Option<&RecordId>,
        limit: u32,
    ) -> StoreResult<Vec<RecordRow>> {
        let after = after.map(RecordId::as_str);
        read::tenant_record_rows(&*self.reader().await?, tenant, after, limit).await
    }

    async fn find_tenant_subjects(
        &self,
        tenant: &TenantId,
        after: Option<&SubjectId>,
        limit: u32,
    ) -> StoreResult<Vec<SubjectRow>> {
        let after = after.map(SubjectId::as_str);
        read::tenant_subjects(&*self.reader().await?, tenant, after, limit).await
    }

    async fn count_tenant(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<strongroom_core::store::TenantCounts> {
        read::count_tenant(&*self.reader().await?, tenant).await
    }

    async fn find_subject_record_rows(
        &self,
        tenant: &TenantId,
        subject: &SubjectId,
        after: Option<&RecordId>,
        limit: u32,
    ) -> StoreResult<Vec<RecordRow>> {
        let after = after.map(RecordId::as_str);
        read::subject_record_rows(&*self.reader().await?, tenant, subject, after, limit).await
    }
}

#[async_trait]
impl LifecycleStore for PgStore {
    async fn find_blocked(
        &self,
        tenant: &TenantId,
        collection: &str,
        before: i64,
        after: Option<&RecordId>,
        limit: u32,
    ) -> StoreResult<Vec<BlockedRecord>> {
        read::blocked(
            &*self.reader().await?,
            tenant,
            collection,
            before,
            after.map(|a| a.as_str()),
            limit,
        )
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
        read::expired(
            &*self.reader().await?,
            tenant,
            collection,
            by_updated,
            before,
            after.map(|a| a.as_str()),
            limit,
        )
        .await
    }
    async fn count_subject_records(
        &self,
        tenant: &TenantId,
        subjects: &[SubjectId],
    ) -> StoreResult<Vec<(SubjectId, u64)>> {
        read::subject_record_counts(&*self.reader().await?, tenant, subjects).await
    }
    async fn scrub(&self) -> StoreResult<()> {
        // Deleted tuples stay in their pages until VACUUM reuses the space, and the WAL keeps
        // them until it is recycled: see docs/lifecycle.md. Nothing can be forced from here.
        Ok(())
    }
}

#[async_trait]
impl JobStore for PgStore {
    async fn find_jobs(&self) -> StoreResult<Vec<JobRow>> {
        read::jobs(&*self.reader().await?, None).await
    }
    async fn find_job(&self, id: &str) -> StoreResult<Option<JobRow>> {
        Ok(read::jobs(&*self.reader().await?, Some(id)).await?.pop())
    }
}

#[async_trait]
impl AuditStore for PgStore {
    async fn find_audit_logs(&self) -> StoreResult<Vec<String>> {
        read::audit_logs(&*self.reader().await?).await
    }
    async fn find_audit_heads(&self) -> StoreResult<Vec<(String, AuditHead)>> {
        read::audit_heads(&*self.reader().await?, None).await
    }
    async fn find_audit_head(&self, log: &str) -> StoreResult<Option<AuditHead>> {
        Ok(read::audit_heads(&*self.reader().await?, Some(log))
            .await?
            .pop()
            .map(|(_, h)| h))
    }
    async fn find_audit_raw(
        &self,
        log: &str,
        after_seq: u64,
        limit: u32,
    ) -> StoreResult<Vec<(u64, String, [u8; 32])>> {
        read::audit_raw(&*self.reader().await?, log, after_seq, limit).await
    }
    async fn find_audit_tail(&self, log: &str) -> StoreResult<Option<(u64, [u8; 32])>> {
        read::audit_tail(&*self.reader().await?, log).await
    }
    async fn find_audit_hashes(
        &self,
        log: &str,
        level: u32,
        index: u64,
        count: u64,
    ) -> StoreResult<Vec<[u8; 32]>> {
        read::audit_hashes(&*self.reader().await?, log, level, index, count).await
    }
    async fn find_audit_nodes(
        &self,
        log: &str,
        after: Option<(u32, u64)>,
        limit: u32,
    ) -> StoreResult<Vec<(u32, u64, [u8; 32])>> {
        read::audit_nodes(&*self.reader().await?, log, after, limit).await
    }
    async fn find_audit_subject_rows(
        &self,
        log: &str,
        after: Option<(String, u64)>,
        limit: u32,
    ) -> StoreResult<Vec<(String, u64)>> {
        read::audit_subject_rows(&*self.reader().await?, log, after, limit).await
    }
    async fn find_checkpoints(&self, log: &str) -> StoreResult<Vec<CheckpointRow>> {
        read::checkpoints(&*self.reader().await?, log, false).await
    }
    async fn find_latest_checkpoint(&self, log: &str) -> StoreResult<Option<CheckpointRow>> {
        Ok(read::checkpoints(&*self.reader().await?, log, true)
            .await?
            .pop())
    }
    async fn find_audit_entries(&self, log: &str, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        read::audit(&*self.reader().await?, log, q).await
    }
    async fn check_audit_schema(&self) -> StoreResult<Vec<String>> {
        read::check_audit_schema(&*self.reader().await?).await
    }
}
