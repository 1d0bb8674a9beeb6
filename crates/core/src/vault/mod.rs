//! The vault service: every operation of the API as one method, which authorises, validates,
//! encrypts or decrypts, and records its audit event in the same unit of work as its change.
//!
//! Rule of the house: a method first builds its [`AuditEvent`], runs its body, then
//! [`Vault::conclude`]s — committing the changes and the event together on success, or the event
//! alone (with the error code) on failure. Data leaves a read only after its event is durable.

mod abuse;
mod admin;

pub use abuse::{Refusal, WINDOW_MS as REFUSAL_WINDOW_MS};
pub use admin::Precondition;
mod audit_log;
mod auth;
mod bulk;
pub mod config_history;
mod consents;
mod exports;
mod offboarding;
pub use exports::{ExportContext, ExportEntry, ExportExpiry, DSR_PURPOSE, EXPORTS, EXPORT_FORMAT};
pub use offboarding::{ClosedLogs, OffboardingEntry, ARCHIVE_FORMAT, LOG_DELETED, OFFBOARDINGS};
mod lifecycle;
mod records;
mod register_crypto;
mod subjects;
pub use subjects::ERASURES;
mod users;

pub use bulk::BulkOp;
pub use lifecycle::{Purge, Retention, PURGE_BATCH};
pub use records::Term;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use strongroom_crypto::{ct_eq, hex, sha256, Key32};

use crate::audit::AuditEvent;
use crate::cache::TtlCache;
use crate::clock::{Clock, DAY_MS};
use crate::error::{Code, Error, Result};
use crate::ids::{ApiKeyId, RequestId, SessionId, SubjectId, TenantId, UserId};
use crate::keys::KeyRing;
use crate::policy::{ROLE_ADMIN, ROLE_OPERATOR};
use crate::rng::{Rng, RngExt};
use crate::store::{ApiKeyRow, Op, Store, StoreError, UnitOfWork};

const META_ROOT_CHECK: &str = "root_check";
/// Last-use times of keys and sessions are written at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;
const API_KEY_PREFIX: &str = "srk_";
/// How long the bootstrap token lives.
pub const BOOTSTRAP_TTL_MS: i64 = DAY_MS;

/// Tunables of the vault service.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Most unwrapped subject keys kept in memory.
    pub dek_cache_entries: usize,
    /// Most records in one batch call.
    pub max_batch: usize,
    /// Days an offboarded tenant's closed audit log is kept before the `audit.closed_logs`
    /// job deletes it (recording the deletion in the platform log).
    pub closed_log_retention_days: u32,
}

/// Ten years: the longest common retention of business records.
pub const DEFAULT_CLOSED_LOG_RETENTION_DAYS: u32 = 3650;

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            dek_cache_entries: 100_000,
            max_batch: 1_000,
            closed_log_retention_days: DEFAULT_CLOSED_LOG_RETENTION_DAYS,
        }
    }
}

/// Who is calling: an API key, or a user through one of their sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    ApiKey(ApiKeyId),
    User { id: UserId, session: SessionId },
}

/// An authenticated caller: its credential, its tenant (none for operators) and its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub actor: Actor,
    pub tenant: Option<TenantId>,
    pub roles: Vec<String>,
    /// A session that may only enrol MFA (`mfa_enrollment`) or change its password
    /// (`password_change`): it holds no role until it has.
    pub restricted_to: Option<String>,
}

impl Principal {
    /// How the caller is named in audit entries.
    pub fn actor(&self) -> String {
        match &self.actor {
            Actor::ApiKey(k) => format!("key:{k}"),
            Actor::User { id, .. } => format!("user:{id}"),
        }
    }

    pub fn is_operator(&self) -> bool {
        self.tenant.is_none() && self.has_role(ROLE_OPERATOR)
    }

    /// Whether the caller holds `role` (a restricted session holds none).
    pub fn has_role(&self, role: &str) -> bool {
        self.restricted_to.is_none() && self.roles.iter().any(|r| r == role)
    }
}

/// What every operation is told about its request.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub principal: Principal,
    pub request_id: RequestId,
    /// The `X-Purpose` header, as sent.
    pub purpose: Option<String>,
}

/// The vault service. Cheap to share behind an `Arc`.
pub struct Vault {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
    keys: KeyRing,
    config: VaultConfig,
    /// Current KEK version per tenant (rotation, a later measure, will update it).
    kek_versions: Mutex<HashMap<TenantId, u32>>,
    hasher: Arc<dyn PasswordHasher>,
    /// The seed of the Ed25519 key that signs audit checkpoints.
    signing_key: std::sync::OnceLock<Key32>,
    /// A hash of a random password, verified for unknown users so that they take as long.
    dummy_hash: std::sync::OnceLock<String>,
    /// Per-request lookups, kept briefly (see `cache`).
    /// Found keys only: lookups of unknown tokens are not cached, so they cannot evict real ones.
    key_cache: TtlCache<[u8; 32], ApiKeyRow>,
    pub(crate) collection_cache: TtlCache<(TenantId, String), Option<crate::store::CollectionRow>>,
    pub(crate) role_cache: TtlCache<(TenantId, String), Option<crate::store::RoleRow>>,
    /// Refused anonymous requests, counted per client and minute (see `abuse`).
    refusals: abuse::Refusals,
}

/// How long a cached lookup may be served before it is read again.
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Argon2id hashing, run off the async runtime behind a concurrency limit (the server's job).
#[async_trait::async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    /// A PHC string for `password` with this salt; `None` if hashing failed.
    async fn hash(&self, password: zeroize::Zeroizing<Vec<u8>>, salt: [u8; 16]) -> Option<String>;
    async fn verify(&self, password: zeroize::Zeroizing<Vec<u8>>, phc: String) -> bool;
}

/// Hashes on the calling thread; for tools and tests without a blocking pool.
pub struct InlineHasher(pub strongroom_crypto::password::Cost);

#[async_trait::async_trait]
impl PasswordHasher for InlineHasher {
    async fn hash(&self, password: zeroize::Zeroizing<Vec<u8>>, salt: [u8; 16]) -> Option<String> {
        strongroom_crypto::password::hash_password(&password, &salt, self.0)
    }

    async fn verify(&self, password: zeroize::Zeroizing<Vec<u8>>, phc: String) -> bool {
        strongroom_crypto::password::verify_password(&password, &phc)
    }
}

impl Vault {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Rng>,
        hasher: Arc<dyn PasswordHasher>,
        root: Key32,
        config: VaultConfig,
    ) -> Self {
        let keys = KeyRing::new(root, config.dek_cache_entries);
        let refusals = abuse::Refusals::new(keys.client_pseudonym_key());
        Self {
            refusals,
            store,
            clock,
            rng,
            keys,
            config,
            kek_versions: Mutex::new(HashMap::new()),
            hasher,
            signing_key: std::sync::OnceLock::new(),
            dummy_hash: std::sync::OnceLock::new(),
            key_cache: TtlCache::new(CACHE_TTL),
            collection_cache: TtlCache::new(CACHE_TTL),
            role_cache: TtlCache::new(CACHE_TTL),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The injected randomness (for ids made by other crates' operations).
    pub fn rng(&self) -> &dyn Rng {
        self.rng.as_ref()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A fresh request id.
    pub fn request_id(&self) -> RequestId {
        RequestId::generate(self.rng.as_ref())
    }

    /// Prepares an empty store, or checks that this root key is the one the store was made with.
    /// On a fresh store, returns the one-time bootstrap token for the first operator.
    pub async fn ensure_initialized(&self) -> Result<Option<String>> {
        if let Some(check) = self.store.get_meta(META_ROOT_CHECK).await? {
            if !self.keys.verify_root_check(&check) {
                return Err(Error::new(
                    Code::IntegrityError,
                    "the root key does not belong to this data store; refusing to start \
                     (an additional node needs a copy of the root.key of the nodes already serving it)",
                ));
            }
            self.ensure_signing_key().await?;
            return Ok(None);
        }
        let root_check = Op::PutMeta {
            key: META_ROOT_CHECK.into(),
            value: self.keys.root_check(self.rng.as_ref()),
        };
        let token = self.bootstrap("vault.init", vec![root_check]).await?;
        self.ensure_signing_key().await?;
        Ok(Some(token))
    }

    /// Issues a new 24-hour bootstrap operator token (for an operator who lost theirs; run
    /// offline by someone holding the data directory).
    pub async fn issue_bootstrap_token(&self) -> Result<String> {
        self.bootstrap("api_key.bootstrap", vec![]).await
    }

    /// Stores a new 24-hour operator key (with `ops`), audited in the platform log as `action`.
    async fn bootstrap(&self, action: &'static str, mut ops: Vec<Op>) -> Result<String> {
        let (token, key_row) = self.new_api_key(
            "bootstrap",
            None,
            vec![ROLE_OPERATOR.into()],
            BOOTSTRAP_TTL_MS,
        );
        let mut ev = AuditEvent::new(None, self.now(), self.request_id(), "system".into(), action);
        ev.objects.push(key_row.id.to_string());
        ops.push(Op::InsertApiKey(key_row));
        self.store
            .commit(UnitOfWork {
                ops,
                audit: vec![ev],
            })
            .await?;
        Ok(token)
    }

    /// Commits a bookkeeping change that is not an operation of its own (a last-use time).
    pub(super) async fn bookkeeping(&self, op: Op) -> Result<()> {
        self.store
            .commit(UnitOfWork {
                ops: vec![op],
                audit: vec![],
            })
            .await?;
        Ok(())
    }

    fn new_api_key(
        &self,
        name: &str,
        tenant: Option<TenantId>,
        roles: Vec<String>,
        ttl_ms: i64,
    ) -> (String, ApiKeyRow) {
        let secret: [u8; 32] = self.rng.array();
        let token = format!("{API_KEY_PREFIX}{}", hex(&secret));
        let now = self.now();
        let row = ApiKeyRow {
            id: ApiKeyId::generate(self.rng.as_ref()),
            tenant,
            name: name.to_owned(),
            hash: sha256(token.as_bytes()),
            roles,
            created_at: now,
            expires_at: now + ttl_ms,
            last_used_at: None,
            rotated_to: None,
        };
        (token, row)
    }

    /// Resolves a bearer token to its principal. Failures say nothing about which part was
    /// wrong. They are audited: one entry each when the credential is known (expired, ended);
    /// counted per client and minute (see [`Vault::note_refusal`]) when it is not.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        request_id: &RequestId,
        client: &str,
    ) -> Result<Principal> {
        let mut ev = AuditEvent::new(
            None,
            self.now(),
            request_id.clone(),
            "anonymous".into(),
            "auth.api_key",
        );
        let result = self.authenticate_inner(token, &mut ev).await;
        match result {
            Ok(p) => Ok(p),
            Err(err) if err.code == Code::Unauthenticated && ev.actor == "anonymous" => {
                self.note_refusal(client, Refusal::UnknownToken).await;
                Err(err)
            }
            Err(err) => {
                ev.fail(&err);
                self.record(ev).await;
                Err(err)
            }
        }
    }

    async fn authenticate_inner(
        &self,
        token: Option<&str>,
        ev: &mut AuditEvent,
    ) -> Result<Principal> {
        let unauthenticated = || {
            Error::new(
                Code::Unauthenticated,
                "send a valid API key or session token as `Authorization: Bearer <token>`",
            )
        };
        let token = token.ok_or_else(unauthenticated)?;
        if token.starts_with(auth::SESSION_PREFIX) {
            return self.authenticate_session(token, ev).await;
        }
        let well_formed = token
            .strip_prefix(API_KEY_PREFIX)
            .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
        if !well_formed {
            return Err(unauthenticated());
        }
        let hash = sha256(token.as_bytes());
        let row = self
            .key_cache
            .get_or_load_found(hash, self.store.find_api_key_by_hash(&hash))
            .await?;
        let row = row
            .filter(|r| ct_eq(&r.hash, &hash))
            .ok_or_else(unauthenticated)?;
        let now = self.now();
        if now >= row.expires_at {
            ev.tenant = row.tenant.clone();
            ev.actor = format!("key:{}", row.id);
            let msg = if row.rotated_to.is_some() {
                "this API key was rotated and no longer works; use its successor"
            } else {
                "this API key has expired; ask an administrator for a new one"
            };
            return Err(Error::new(Code::KeyExpired, msg));
        }
        if row.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY_MS) {
            self.bookkeeping(Op::TouchApiKey {
                id: row.id.clone(),
                at: now,
            })
            .await?;
            self.key_cache.insert(
                hash,
                ApiKeyRow {
                    last_used_at: Some(now),
                    ..row.clone()
                },
            );
        }
        Ok(Principal {
            actor: Actor::ApiKey(row.id),
            tenant: row.tenant,
            roles: row.roles,
            restricted_to: None,
        })
    }

    /// Starts the audit event of an operation in the caller's log.
    fn event(&self, ctx: &RequestCtx, action: &'static str) -> AuditEvent {
        AuditEvent::new(
            ctx.principal.tenant.clone(),
            self.now(),
            ctx.request_id.clone(),
            ctx.principal.actor(),
            action,
        )
    }

    /// Whether this node can serve: the store commits a small durable write (so a full disk,
    /// a lost database connection or a stopped writer shows). For `/readyz`.
    pub async fn probe_store(&self) -> Result<()> {
        self.store
            .commit(UnitOfWork {
                ops: vec![Op::PutMeta {
                    key: "readiness_probe".into(),
                    value: self.now().to_string(),
                }],
                audit: vec![],
            })
            .await
            .map(|_| ())
            .map_err(|_| {
                Error::new(
                    Code::NotReady,
                    "the store cannot commit: this node cannot serve",
                )
            })
    }

    /// Starts the audit event of an operation another crate carries out (the compliance
    /// registers): fill in its objects, then hand it to [`Vault::finish`] with the outcome.
    pub fn begin(&self, ctx: &RequestCtx, action: &'static str) -> AuditEvent {
        self.event(ctx, action)
    }

    /// Commits an operation's changes with its audit event, or records its failure: the one
    /// way any operation ends.
    pub async fn finish<T>(&self, ev: AuditEvent, result: Result<(T, Vec<Op>)>) -> Result<T> {
        self.conclude(ev, result).await
    }

    /// [`Vault::finish`], with further audit events committed in the same unit on success
    /// (notices in the logs of the tenants a platform change concerns, say).
    pub async fn finish_with<T>(
        &self,
        ev: AuditEvent,
        extra: Vec<AuditEvent>,
        result: Result<(T, Vec<Op>)>,
    ) -> Result<T> {
        self.conclude_with(ev, extra, result).await
    }

    /// Commits an operation's changes with its audit event, or records its failure.
    async fn conclude<T>(&self, ev: AuditEvent, result: Result<(T, Vec<Op>)>) -> Result<T> {
        self.conclude_with(ev, Vec::new(), result).await
    }

    /// [`Vault::conclude`], with further events committed in the same unit on success (the
    /// genesis entry of a new tenant's log, say).
    async fn conclude_with<T>(
        &self,
        ev: AuditEvent,
        extra: Vec<AuditEvent>,
        result: Result<(T, Vec<Op>)>,
    ) -> Result<T> {
        self.conclude_full(ev, extra, result).await.map(|(v, _)| v)
    }

    /// [`Vault::conclude`], also handing back where the store put the audit events (the
    /// operation's own first): what a receipt proves inclusion of.
    async fn conclude_receipt<T>(
        &self,
        ev: AuditEvent,
        result: Result<(T, Vec<Op>)>,
    ) -> Result<(T, crate::store::Receipt)> {
        self.conclude_full(ev, Vec::new(), result).await
    }

    async fn conclude_full<T>(
        &self,
        mut ev: AuditEvent,
        extra: Vec<AuditEvent>,
        result: Result<(T, Vec<Op>)>,
    ) -> Result<(T, crate::store::Receipt)> {
        match result {
            Ok((value, mut ops)) => {
                self.invalidate(&ops);
                let history = self.config_history(&ev, &ops);
                ops.extend(history);
                self.seal_registers(&mut ops);
                let mut audit = vec![ev.clone()];
                audit.extend(extra);
                let unit = UnitOfWork { ops, audit };
                match self.store.commit(unit).await {
                    Ok(receipt) => Ok((value, receipt)),
                    Err(StoreError::Indeterminate(why)) => {
                        // It may have landed with its audit event: recording a failure could
                        // contradict the log. The caller is told to read before retrying.
                        tracing::error!(action = ev.action, error = %why, "commit outcome unknown");
                        Err(StoreError::Indeterminate(why).into())
                    }
                    Err(e) => {
                        // Every unit carries its audit event: if the store cannot take the unit,
                        // the event is not durable and the operation must not take effect.
                        let err = match e {
                            StoreError::Unavailable(_) => Error::audit_unavailable(),
                            other => Error::from(other),
                        };
                        ev.fail(&err);
                        self.record(ev).await;
                        Err(err)
                    }
                }
            }
            Err(err) => {
                ev.fail(&err);
                self.record(ev).await;
                Err(err)
            }
        }
    }

    /// Drops cached lookups that `ops` change (before the commit, so whatever its outcome).
    fn invalidate(&self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::PutCollection { row, .. } => self
                    .collection_cache
                    .remove(&(row.tenant.clone(), row.name.clone())),
                Op::PutRole { row: r, .. } => {
                    self.role_cache.remove(&(r.tenant.clone(), r.name.clone()))
                }
                Op::RotateApiKey { .. } | Op::InsertApiKey(_) => self.key_cache.clear(),
                Op::ShredTenant { .. } => {
                    self.key_cache.clear();
                    self.collection_cache.clear();
                    self.role_cache.clear();
                }
                _ => {}
            }
        }
    }

    /// Records a request refused before it reached an operation (a body that did not parse, say)
    /// and hands the error back.
    pub async fn reject(&self, ctx: &RequestCtx, action: &'static str, err: Error) -> Error {
        let mut ev = self.event(ctx, action);
        ev.fail(&err);
        self.record(ev).await;
        err
    }

    /// Records an event on its own (a failure or denial). If even that cannot be written the
    /// operation has already failed and changed nothing; the fault is logged without details.
    async fn record(&self, ev: AuditEvent) {
        let action = ev.action;
        if let Err(e) = self
            .store
            .commit(UnitOfWork {
                ops: vec![],
                audit: vec![ev],
            })
            .await
        {
            tracing::error!(action, error = %e, "could not record an audit event of a failed operation");
        }
    }

    /// The tenant a principal acts in; operators have none and so no tenant data.
    fn tenant_of(&self, ctx: &RequestCtx) -> Result<TenantId> {
        if let Some(r) = &ctx.principal.restricted_to {
            return Err(Error::forbidden(format!(
                "this session must first complete `{r}` (see /v1/auth)"
            )));
        }
        ctx.principal.tenant.clone().ok_or_else(|| {
            Error::new(
                Code::Forbidden,
                "operator credentials have no access to tenant data; use a key of the tenant",
            )
        })
    }

    fn require_admin(&self, ctx: &RequestCtx) -> Result<TenantId> {
        let tenant = self.tenant_of(ctx)?;
        if ctx.principal.has_role(ROLE_ADMIN) {
            Ok(tenant)
        } else {
            Err(Error::forbidden("this needs the tenant's `admin` role"))
        }
    }

    /// The current KEK of a tenant and its version.
    async fn current_kek(&self, tenant: &TenantId) -> Result<(u32, Arc<Key32>)> {
        let cached = self.lock_versions().get(tenant).copied();
        if let Some(v) = cached {
            if let Some(k) = self.keys.cached_kek(tenant, v) {
                return Ok((v, k));
            }
        }
        let rows = self.store.find_tenant_keys(tenant).await?;
        let row = rows
            .iter()
            .max_by_key(|r| r.version)
            .ok_or_else(Error::integrity)?;
        let kek = self.keys.kek(row)?;
        self.lock_versions().insert(tenant.clone(), row.version);
        Ok((row.version, kek))
    }

    async fn kek_version(&self, tenant: &TenantId, version: u32) -> Result<Arc<Key32>> {
        if let Some(k) = self.keys.cached_kek(tenant, version) {
            return Ok(k);
        }
        let rows = self.store.find_tenant_keys(tenant).await?;
        let row = rows
            .iter()
            .find(|r| r.version == version)
            .ok_or_else(Error::integrity)?;
        self.keys.kek(row)
    }

    /// The DEK of an existing subject.
    async fn subject_dek(&self, tenant: &TenantId, subject: &SubjectId) -> Result<Arc<Key32>> {
        if let Some(k) = self.keys.cached_dek(tenant, subject) {
            return Ok(k);
        }
        let row = self
            .store
            .find_subject(tenant, subject)
            .await?
            .ok_or_else(Error::integrity)?;
        let kek = self.kek_version(tenant, row.kek_version).await?;
        self.keys.dek(&row, &kek)
    }

    fn lock_versions(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, u32>> {
        match self.kek_versions.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}
