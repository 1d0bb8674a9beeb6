//! One collector per catalogue `collector` name. A capability that does not exist yet is judged
//! by [`NotBuilt`], which says so plainly; the issue that builds it replaces that entry here.

use async_trait::async_trait;
use strongroom_core::audit::PLATFORM_LOG;
use strongroom_core::policy::{ROLE_ADMIN, ROLE_OPERATOR};
use strongroom_core::store::{ApiKeyRow, UserRow};

use crate::catalogue::Measure;
use crate::evidence::{Collector, Context, Finding, Scope, Status};

mod registers;
mod subjects;

const DAY_MS: i64 = 86_400_000;

/// The collector named `name`.
pub fn find(name: &str) -> &'static dyn Collector {
    ALL.iter()
        .copied()
        .find(|c| c.name() == name)
        .unwrap_or(&FALLBACK)
}

static FALLBACK: NotBuilt = NotBuilt("", "no collector judges this measure yet");

static ALL: &[&dyn Collector] = &[
    &Identities,
    &Roles,
    &Admins,
    &PasswordPolicy,
    &Lockout,
    &Mfa,
    &SignInLogging,
    &Sessions,
    &ApiKeys,
    &TenantIsolation,
    &Purposes,
    &EncryptionAtRest,
    &Tls,
    &Masking,
    &AuditLog,
    &AuditVerification,
    &InputValidation,
    &History,
    &Purges,
    &Redundancy,
    &Versions,
    &NotBuilt("access_reviews", "access-review campaigns are not built yet"),
    &NotBuilt("access_requests", "requests for extra access are not built yet"),
    &NotBuilt("support_access", "support-access grants are not built yet: operators cannot read tenant data at all"),
    &NotBuilt("key_custody", "the root key is a plain key file; passphrase and Shamir sealing (several people to unseal) are not built yet"),
    &NotBuilt("sso", "single sign-on (OpenID Connect) is not built yet"),
    &NotBuilt("test_data", "pseudonymised exports for test environments are not built yet"),
    &NotBuilt("key_rotation", "key rotation and re-encryption are not built yet"),
    &NotBuilt("anonymisation", "anonymised exports and statistics are not built yet"),
    &subjects::Exports,
    &registers::Transfers,
    &NotBuilt("backups", "backups are not built yet"),
    &NotBuilt("restore_tests", "verified backups and test restores are not built yet"),
    &NotBuilt("backup_retention", "backup retention and erasure replay are not built yet"),
    &registers::ConfigHistory,
    &Trainings,
    &registers::Subprocessors,
    &Incidents,
    &subjects::Dsar,
    &registers::Ropa,
    &registers::TomsReview,
    &Declarations,
    &subjects::Offboarding,
];

/// A capability that does not exist yet: a gap, with the reason.
pub struct NotBuilt(pub &'static str, pub &'static str);

#[async_trait]
impl Collector for NotBuilt {
    fn name(&self) -> &'static str {
        self.0
    }
    async fn collect(&self, _: &Context<'_>, _: &Measure) -> Finding {
        Finding::not_built(self.1)
    }
}

/// A store read that failed: the measure cannot be judged.
fn unreadable(what: &str) -> Finding {
    Finding::new(Status::Gap, "The evidence could not be read.")
        .missing(format!("{what} could not be read from the store"))
}

fn scope_label(ctx: &Context<'_>) -> String {
    match &ctx.scope {
        Scope::Platform => "the platform".into(),
        Scope::Tenant(t) => format!("tenant {t}"),
    }
}

async fn users(ctx: &Context<'_>) -> Option<Vec<UserRow>> {
    ctx.vault.store().find_users(ctx.scope.tenant()).await.ok()
}

async fn keys(ctx: &Context<'_>) -> Option<Vec<ApiKeyRow>> {
    ctx.vault
        .store()
        .find_api_keys(ctx.scope.tenant())
        .await
        .ok()
}

async fn settings(ctx: &Context<'_>) -> Option<strongroom_proto::EffectiveSettings> {
    ctx.vault.effective_settings(ctx.scope.tenant()).await.ok()
}

fn is_admin(u: &UserRow) -> bool {
    u.roles
        .iter()
        .any(|r| r == ROLE_ADMIN || r == ROLE_OPERATOR)
}

struct Identities;
#[async_trait]
impl Collector for Identities {
    fn name(&self) -> &'static str {
        "identities"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let (Some(users), Some(keys)) = (users(ctx).await, keys(ctx).await) else {
            return unreadable("users and keys");
        };
        let active_users = users.iter().filter(|u| !u.disabled).count();
        let live_keys = keys
            .iter()
            .filter(|k| k.expires_at > ctx.now && k.rotated_to.is_none())
            .count();
        Finding::new(
            Status::Met,
            "Every user signs in with an account of their own and every service with an API key of \
             its own; usernames are unique per tenant after normalisation, and every audit entry \
             names the account or key that acted.",
        )
        .with("active user accounts", active_users, &format!("users of {}", scope_label(ctx)), ctx.now)
        .with("live API keys", live_keys, &format!("API keys of {}", scope_label(ctx)), ctx.now)
        .with("audit entries without an actor", "none possible: the actor is part of every entry", "audit entry format v1", ctx.now)
    }
}

struct Roles;
#[async_trait]
impl Collector for Roles {
    fn name(&self) -> &'static str {
        "roles"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let how = "Access is denied unless a role grants it: per collection, the operations, each \
                   field's visibility (plain, masked or none) and the purposes that may be stated.";
        let Some(tenant) = ctx.scope.tenant() else {
            let tenants = ctx.vault.store().find_tenant_ids().await.map(|t| t.len());
            let f = Finding::new(Status::Met, how)
                .with(
                    "tenants whose roles are enforced",
                    tenants.map_or("?".into(), |n| n.to_string()),
                    "tenants table",
                    ctx.now,
                )
                .with(
                    "operator access to tenant data",
                    "none: operator roles grant no collection",
                    "built-in roles",
                    ctx.now,
                );
            return with_counts(f, ctx, "requests refused (recorded)", |c| c.denied).await;
        };
        let Ok(roles) = ctx.vault.store().find_roles(tenant).await else {
            return unreadable("roles");
        };
        let grants: usize = roles.iter().map(|r| r.def.collections.len()).sum();
        let limited_fields: usize = roles
            .iter()
            .flat_map(|r| r.def.collections.values())
            .map(|g| g.fields.len())
            .sum();
        let f = Finding::new(Status::Met, how)
            .with(
                "roles defined",
                roles.len(),
                "roles of this tenant",
                ctx.now,
            )
            .with("collection grants", grants, "roles of this tenant", ctx.now)
            .with(
                "field visibility rules",
                limited_fields,
                "roles of this tenant",
                ctx.now,
            );
        with_counts(f, ctx, "requests refused (recorded)", |c| c.denied).await
    }
}

struct Admins;
#[async_trait]
impl Collector for Admins {
    fn name(&self) -> &'static str {
        "admins"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let Some(users) = users(ctx).await else {
            return unreadable("users");
        };
        let admins: Vec<&UserRow> = users
            .iter()
            .filter(|u| is_admin(u) && !u.disabled)
            .collect();
        let without_mfa = admins.iter().filter(|u| u.totp_secret.is_none()).count();
        let mut f = Finding::new(
            Status::Met,
            "Administrator and operator roles must use a second factor (the security settings \
             always require it for them), and every administrative action is written to the \
             audit log in the same transaction.",
        )
        .with(
            "administrators",
            admins.len(),
            &format!("users of {}", scope_label(ctx)),
            ctx.now,
        )
        .with(
            "administrators with MFA",
            format!("{} of {}", admins.len() - without_mfa, admins.len()),
            &format!("users of {}", scope_label(ctx)),
            ctx.now,
        );
        if without_mfa > 0 {
            f = f.missing(format!(
                "{without_mfa} of {} administrators without MFA",
                admins.len()
            ));
        }
        if admins.len() > 5 {
            f = f.missing(format!(
                "{} administrators: keep the role to a few people",
                admins.len()
            ));
        }
        f.settle()
    }
}

struct PasswordPolicy;
#[async_trait]
impl Collector for PasswordPolicy {
    fn name(&self) -> &'static str {
        "password_policy"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let Some(s) = settings(ctx).await else {
            return unreadable("security settings");
        };
        let source = format!("security settings of {}", scope_label(ctx));
        Finding::new(
            Status::Met,
            "Passwords are checked against the active profile at every set and change: minimum \
             length, a bundled list of common passwords, the account's own names, and reuse.",
        )
        .with(
            "profile",
            format!("{:?}", s.profile).to_lowercase(),
            &source,
            ctx.now,
        )
        .with(
            "minimum length (without MFA / with MFA)",
            format!("{} / {}", s.min_length, s.min_length_with_mfa),
            &source,
            ctx.now,
        )
        .with(
            "common passwords refused",
            s.blocklist_entries,
            "this build",
            ctx.now,
        )
        .with(
            "character classes required",
            s.require_classes,
            &source,
            ctx.now,
        )
        .with(
            "forced change after (days, 0 = never)",
            s.max_age_days,
            &source,
            ctx.now,
        )
    }
}

struct Lockout;
#[async_trait]
impl Collector for Lockout {
    fn name(&self) -> &'static str {
        "lockout"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let (Some(s), Some(users)) = (settings(ctx).await, users(ctx).await) else {
            return unreadable("security settings and users");
        };
        let source = format!("security settings of {}", scope_label(ctx));
        let locked = users
            .iter()
            .filter(|u| u.locked_until.is_some_and(|t| t > ctx.now))
            .count();
        let mut f = Finding::new(
            Status::Met,
            "Each password check is admitted in the store before it runs, so concurrent guesses \
             cannot exceed the threshold; the lock doubles with each repeat up to 24 hours; every \
             failed sign-in gets the same answer whether or not the account exists.",
        )
        .with("lockout threshold", s.lockout_threshold, &source, ctx.now)
        .with(
            "first lock (seconds)",
            s.lockout_base_seconds,
            &source,
            ctx.now,
        )
        .with(
            "accounts locked now",
            locked,
            &format!("users of {}", scope_label(ctx)),
            ctx.now,
        );
        f = with_counts(f, ctx, "lockouts (recorded)", |c| c.lockouts).await;
        if s.lockout_threshold > 10 {
            f = f.missing(format!(
                "the threshold is {}; the measure asks for 10 at most",
                s.lockout_threshold
            ));
        }
        f.settle()
    }
}

struct Mfa;
#[async_trait]
impl Collector for Mfa {
    fn name(&self) -> &'static str {
        "mfa"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let (Some(s), Some(users)) = (settings(ctx).await, users(ctx).await) else {
            return unreadable("security settings and users");
        };
        let src = format!("users of {}", scope_label(ctx));
        let mut f = Finding::new(
            Status::Met,
            "Users enrol a TOTP authenticator (six digits, 30 s); a code is accepted once; roles \
             listed in the settings cannot work until their users have enrolled.",
        )
        .with(
            "roles that require MFA",
            s.mfa_required_roles.join(", "),
            &format!("security settings of {}", scope_label(ctx)),
            ctx.now,
        );
        for role in &s.mfa_required_roles {
            let holders: Vec<&UserRow> = users
                .iter()
                .filter(|u| !u.disabled && u.roles.contains(role))
                .collect();
            if holders.is_empty() {
                continue;
            }
            let without = holders.iter().filter(|u| u.totp_secret.is_none()).count();
            f = f.with(
                &format!("`{role}` users with MFA"),
                format!("{} of {}", holders.len() - without, holders.len()),
                &src,
                ctx.now,
            );
            if without > 0 {
                f = f.missing(format!(
                    "{without} of {} `{role}` users without MFA",
                    holders.len()
                ));
            }
        }
        let all = users.iter().filter(|u| !u.disabled).count();
        let with = users
            .iter()
            .filter(|u| !u.disabled && u.totp_secret.is_some())
            .count();
        f.with(
            "all users with MFA",
            format!("{with} of {all}"),
            &src,
            ctx.now,
        )
        .settle()
    }
}

struct SignInLogging;
#[async_trait]
impl Collector for SignInLogging {
    fn name(&self) -> &'static str {
        "sign_in_logging"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        Finding::new(
            Status::Met,
            "Every sign-in and every use of a credential writes an audit entry, successful or \
             not; attempts from unknown tokens and throttled clients are counted per client and \
             minute, under a pseudonym, so a scanner cannot flood the log.",
        )
        .with(
            "sign-in outcomes recorded",
            "success, failure, lockout, throttling",
            "this build",
            ctx.now,
        )
    }
}

struct Sessions;
#[async_trait]
impl Collector for Sessions {
    fn name(&self) -> &'static str {
        "sessions"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let Some(s) = settings(ctx).await else {
            return unreadable("security settings");
        };
        let src = format!("security settings of {}", scope_label(ctx));
        Finding::new(
            Status::Met,
            "Sessions end after the idle timeout and after their absolute lifetime; signing out, \
             a password change, disabling the account or resetting its MFA end them at once.",
        )
        .with(
            "idle timeout (minutes)",
            s.session_idle_minutes,
            &src,
            ctx.now,
        )
        .with(
            "absolute lifetime (hours)",
            s.session_absolute_hours,
            &src,
            ctx.now,
        )
    }
}

struct ApiKeys;
#[async_trait]
impl Collector for ApiKeys {
    fn name(&self) -> &'static str {
        "api_keys"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let Some(keys) = keys(ctx).await else {
            return unreadable("API keys");
        };
        let live: Vec<&ApiKeyRow> = keys
            .iter()
            .filter(|k| k.expires_at > ctx.now && k.rotated_to.is_none())
            .collect();
        let oldest_days = live
            .iter()
            .map(|k| (ctx.now - k.created_at) / DAY_MS)
            .max()
            .unwrap_or(0);
        let expiring_30 = live
            .iter()
            .filter(|k| k.expires_at - ctx.now < 30 * DAY_MS)
            .count();
        let src = format!("API keys of {}", scope_label(ctx));
        let mut f = Finding::new(
            Status::Met,
            "Every key has an expiry of at most 730 days, set when it is issued; rotation issues a \
             successor and ends the old key after an overlap of at most a day.",
        )
        .with("live keys", live.len(), &src, ctx.now)
        .with("age of the oldest live key (days)", oldest_days, &src, ctx.now)
        .with("keys expiring within 30 days", expiring_30, &src, ctx.now);
        if oldest_days > 365 {
            f = f.missing(format!("a live key is {oldest_days} days old: rotate it"));
        }
        f.settle()
    }
}

struct TenantIsolation;
#[async_trait]
impl Collector for TenantIsolation {
    fn name(&self) -> &'static str {
        "tenant_isolation"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let store = ctx.vault.store();
        let f = Finding::new(
            Status::Met,
            "Every store query takes the tenant from the credential; each tenant has its own key \
             encryption key; every ciphertext's associated data names its tenant, collection, \
             record and field, so a moved ciphertext does not decrypt.",
        );
        match ctx.scope.tenant() {
            Some(t) => match store.find_tenant_keys(t).await {
                Ok(keys) => f.with(
                    "key encryption keys of this tenant",
                    keys.len(),
                    "tenant keys",
                    ctx.now,
                ),
                Err(_) => unreadable("tenant keys"),
            },
            None => match store.find_tenant_ids().await {
                Ok(ids) => f.with(
                    "tenants, each with its own keys",
                    ids.len(),
                    "tenants table",
                    ctx.now,
                ),
                Err(_) => unreadable("tenants"),
            },
        }
    }
}

struct Purposes;
#[async_trait]
impl Collector for Purposes {
    fn name(&self) -> &'static str {
        "purposes"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let how = "Every data request states its purpose; a purpose the collection, the field or \
                   the caller's role does not allow is refused and the refusal is audited. Each \
                   purpose states its lawful basis: one based on consent is processed only for \
                   subjects whose consent to it is live (consent_required otherwise), one based \
                   on legitimate interest not for subjects who objected (subject_objected).";
        let Some(t) = ctx.scope.tenant() else {
            return Finding::new(Status::Met, how).with(
                "requests without a purpose",
                "refused (purpose_required)",
                "this build",
                ctx.now,
            );
        };
        let Ok(cols) = ctx.vault.store().find_collections(t).await else {
            return unreadable("collections");
        };
        let mut f = with_counts(
            Finding::new(Status::Met, how),
            ctx,
            "refusals for want of consent or after an objection (recorded)",
            |c| c.consent_refusals,
        )
        .await;
        let mut undeclared = Vec::new();
        for c in &cols {
            let listed: Vec<String> = c
                .def
                .purposes
                .iter()
                .map(|p| match c.def.bases.get(p) {
                    Some(b) => format!("{p} ({})", basis_name(*b)),
                    None => {
                        undeclared.push(format!("{}/{p}", c.name));
                        format!("{p} (no basis stated)")
                    }
                })
                .collect();
            f = f.with(
                &format!("purposes of `{}`", c.name),
                listed.join(", "),
                "collection definitions",
                c.updated_at,
            );
        }
        if !undeclared.is_empty() {
            f = Finding {
                status: Status::Partial,
                ..f
            }
            .missing(format!(
                "purposes without a lawful basis (`bases` in the collection): {}",
                undeclared.join(", ")
            ));
        }
        f
    }
}

/// A lawful basis as the report names it.
fn basis_name(b: strongroom_proto::LawfulBasis) -> &'static str {
    use strongroom_proto::LawfulBasis::*;
    match b {
        Consent => "consent",
        Contract => "contract",
        LegalObligation => "legal obligation",
        VitalInterest => "vital interest",
        PublicTask => "public task",
        LegitimateInterest => "legitimate interest",
    }
}

struct EncryptionAtRest;
#[async_trait]
impl Collector for EncryptionAtRest {
    fn name(&self) -> &'static str {
        "encryption_at_rest"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        Finding::new(
            Status::Met,
            "Field values are sealed with AES-256-GCM under a key per data subject, wrapped by the \
             tenant's key, wrapped by the root key; search uses HMAC-SHA-256 blind indexes, never \
             plaintext.",
        )
        .with("algorithm", "AES-256-GCM, 96-bit random nonces", "this build", ctx.now)
        .with("key hierarchy", "root key → tenant KEK → data-subject DEK", "this build", ctx.now)
        .with("plaintext at rest", "none (checked by the test suite on every build)", "this build", ctx.now)
    }
}

struct Tls;
#[async_trait]
impl Collector for Tls {
    fn name(&self) -> &'static str {
        "tls"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let i = &ctx.installation;
        let mut f = Finding::new(
            Status::Met,
            "The listener speaks TLS 1.2 and 1.3 with AEAD cipher suites only (rustls); plain HTTP \
             is refused except on loopback behind a TLS proxy. PostgreSQL is reached over TLS \
             with the server verified unless it is on the same machine.",
        );
        match &i.tls {
            Some(v) if v.is_empty() => {
                f = f
                    .with(
                        "listener",
                        "plain HTTP on loopback (TLS ends at a proxy)",
                        "server configuration",
                        ctx.now,
                    )
                    .missing("TLS is terminated by a proxy this report cannot see");
            }
            Some(v) => {
                f = f.with(
                    "listener TLS versions",
                    v.join(", "),
                    "server configuration",
                    ctx.now,
                );
            }
            None => {
                f = f.with(
                    "listener TLS versions",
                    "1.2, 1.3 (the only ones this build offers)",
                    "this build",
                    ctx.now,
                );
            }
        }
        if let Some(db) = &i.database_tls {
            f = f.with("database connection", db, "server configuration", ctx.now);
            if db == "disable" {
                f = f.missing("the PostgreSQL connection is not encrypted (sslmode=disable)");
            }
        }
        f.settle()
    }
}

struct Masking;
#[async_trait]
impl Collector for Masking {
    fn name(&self) -> &'static str {
        "masking"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let mut f = Finding::new(
            Status::Met,
            "Fields can be shown masked (email, first letter, last four, year, full) per role; the \
             data subject is an opaque id and the application's own reference is a keyed hash.",
        )
        .missing("tokenisation (reversible tokens per field) is not built yet");
        if let Some(t) = ctx.scope.tenant() {
            if let Ok(roles) = ctx.vault.store().find_roles(t).await {
                let masked = roles
                    .iter()
                    .flat_map(|r| r.def.collections.values())
                    .flat_map(|g| g.fields.values())
                    .filter(|v| matches!(v, strongroom_proto::Visibility::Masked))
                    .count();
                f = f.with(
                    "masked field grants",
                    masked,
                    "roles of this tenant",
                    ctx.now,
                );
            }
        }
        f.settle()
    }
}

struct AuditLog;
#[async_trait]
impl Collector for AuditLog {
    fn name(&self) -> &'static str {
        "audit_log"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let log = ctx
            .scope
            .tenant()
            .map_or_else(|| PLATFORM_LOG.to_owned(), |t| t.to_string());
        let Ok(head) = ctx.vault.store().find_audit_head(&log).await else {
            return unreadable("the audit log head");
        };
        Finding::new(
            Status::Met,
            "Every operation writes its audit entry in the same transaction as its change, and a \
             read returns data only once its entry is durable: who, what, which records and \
             fields, the purpose, the outcome, never a value.",
        )
        .with(
            "entries in the log",
            head.map_or(0, |h| h.size),
            &format!("audit log `{log}`"),
            ctx.now,
        )
    }
}

/// The last `audit verify` result, as the verifier records it in `meta`.
#[derive(serde::Deserialize)]
struct LastVerify {
    at: i64,
    ok: bool,
    entries: u64,
    logs: u64,
    /// Per log: refused requests and lockouts it records (counted while verifying).
    #[serde(default)]
    counts: std::collections::BTreeMap<String, LogCounts>,
}

#[derive(serde::Deserialize, Clone, Copy)]
struct LogCounts {
    denied: u64,
    lockouts: u64,
    #[serde(default)]
    consent_refusals: u64,
}

/// The refusals and lockouts the scope's log records, as of the last verification (counted
/// while the log is verified, never by a scan of their own).
async fn verified_counts(ctx: &Context<'_>) -> Option<(i64, LogCounts)> {
    let raw = ctx
        .vault
        .store()
        .get_meta(strongroom_core::audit::META_LAST_VERIFY)
        .await
        .ok()??;
    let last: LastVerify = serde_json::from_str(&raw).ok()?;
    let log = ctx.scope.tenant().map_or(PLATFORM_LOG, |t| t.as_str());
    last.counts.get(log).map(|c| (last.at, *c))
}

/// Adds the verified count of `what` to `f`, or says it is not counted yet.
async fn with_counts(
    f: Finding,
    ctx: &Context<'_>,
    label: &str,
    pick: fn(LogCounts) -> u64,
) -> Finding {
    match verified_counts(ctx).await {
        Some((at, c)) => f.with(
            label,
            pick(c),
            "audit log, counted by the last verification",
            at,
        ),
        None => f.with(
            label,
            "not counted yet (counted by the next audit verification)",
            "audit log",
            ctx.now,
        ),
    }
}

struct AuditVerification;
#[async_trait]
impl Collector for AuditVerification {
    fn name(&self) -> &'static str {
        "audit_verification"
    }
    async fn collect(&self, ctx: &Context<'_>, m: &Measure) -> Finding {
        let how = "Entries form a hash chain and an RFC 6962 Merkle tree with Ed25519-signed, \
                   chained checkpoints; `strongroom audit verify` checks every byte offline with \
                   the public key, and its result is recorded here.";
        let last = match ctx
            .vault
            .store()
            .get_meta(strongroom_core::audit::META_LAST_VERIFY)
            .await
        {
            Ok(v) => v.and_then(|s| serde_json::from_str::<LastVerify>(&s).ok()),
            Err(_) => return unreadable("the last verification"),
        };
        let Some(last) = last else {
            return Finding::new(Status::Gap, how).missing("the audit log has never been verified");
        };
        let f = Finding::new(Status::Met, how).with(
            "last verification",
            if last.ok {
                format!("intact: {} entries in {} logs", last.entries, last.logs)
            } else {
                "FAILED".to_owned()
            },
            "strongroom audit verify",
            last.at,
        );
        if !last.ok {
            return Finding {
                status: Status::Gap,
                ..f.missing("the last verification failed: see `strongroom audit verify`")
            };
        }
        let age_days = (ctx.now - last.at) / DAY_MS;
        if age_days >= i64::from(m.freshness_days) {
            return Finding {
                status: Status::Stale,
                ..f.missing(format!(
                    "the last verification is {age_days} days old (limit {} days)",
                    m.freshness_days
                ))
            };
        }
        f
    }
}

struct InputValidation;
#[async_trait]
impl Collector for InputValidation {
    fn name(&self) -> &'static str {
        "input_validation"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        Finding::new(
            Status::Met,
            "Bodies are size-limited JSON with unknown and duplicate keys refused; every value is \
             checked against its field's type; a refused request changes nothing and its error \
             quotes no value. The OpenAPI document states every constraint.",
        )
        .with(
            "schema conformance",
            "checked by schemathesis on every build",
            "CI",
            ctx.now,
        )
        .with(
            "parsers of stored and received bytes",
            "property-tested on every build",
            "CI",
            ctx.now,
        )
    }
}

struct History;
#[async_trait]
impl Collector for History {
    fn name(&self) -> &'static str {
        "history"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        Finding::new(
            Status::Met,
            "Every update keeps the previous version of the record, readable by roles granted \
             the `history` operation (with their field visibility); deletion blocks a record, \
             restorable by the tenant's admin through its grace period, before anything is \
             destroyed.",
        )
        .with(
            "earlier versions kept",
            "every version",
            "this build",
            ctx.now,
        )
        .with(
            "deleted records restorable",
            "through the grace period",
            "this build",
            ctx.now,
        )
        .with(
            "bulk delete and restore",
            "two steps: a count and a five-minute single-use token, then the act; above 100 records an alert",
            "this build",
            ctx.now,
        )
        .settle()
    }
}

struct Purges;
#[async_trait]
impl Collector for Purges {
    fn name(&self) -> &'static str {
        "purges"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let how = "A deleted record is blocked at once (invisible to every data operation, \
                   restorable by the tenant's admin) and destroyed by the purge job when its \
                   grace period ends: the record, its history and index entries, and the data \
                   subject's key with its last record.";
        let Ok(job) = ctx.vault.store().find_job("purge").await else {
            return unreadable("the purge job");
        };
        let mut f = Finding::new(Status::Met, how);
        if let Some(t) = ctx.scope.tenant() {
            let Some(s) = settings(ctx).await else {
                return unreadable("the tenant's settings");
            };
            f = f.with(
                "grace period before purge",
                format!(
                    "{} days (collections may set their own)",
                    s.purge_grace_days
                ),
                &format!("settings of tenant {t}"),
                ctx.now,
            );
        }
        let Some(job) = job else {
            return f
                .missing(
                    "the purge job has not been set up yet (it is at the server's first start)",
                )
                .settle();
        };
        match job.last_ok_at {
            Some(at) => {
                f = f.with(
                    "last purge run",
                    format!("completed, {} records destroyed", job.done),
                    "job runner",
                    at,
                );
                let age_days = (ctx.now - at) / DAY_MS;
                if age_days >= 2 {
                    f = f.missing(format!("the purge has not completed for {age_days} days"));
                }
            }
            None => f = f.missing("the purge job has not completed a run yet"),
        }
        if let Some(e) = &job.last_error {
            f = f.missing(format!("the last purge run failed: {e}"));
        }
        f.settle()
    }
}

struct Redundancy;
#[async_trait]
impl Collector for Redundancy {
    fn name(&self) -> &'static str {
        "redundancy"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let store = &ctx.installation.store;
        let f = Finding::new(
            Status::Met,
            "Nodes keep no state of their own: several of them serve one PostgreSQL database, each \
             committing through row locks, so that any one may stop without loss.",
        )
        .with("store", store, "server configuration", ctx.now);
        if store == "postgresql" {
            f.missing(
                "whether the PostgreSQL database itself is replicated is not visible to the vault",
            )
            .settle()
        } else {
            Finding {
                status: Status::Gap,
                ..f.missing("this installation runs one node on embedded SQLite")
            }
        }
    }
}

/// The declarations in force for the report's scope: its own and, for a tenant, the
/// platform's (withdrawn ones left out).
pub async fn declarations_in_force(
    ctx: &Context<'_>,
) -> Option<Vec<strongroom_core::store::DeclarationRow>> {
    let mut out = crate::registers::current(ctx.vault.declarations(None).await.ok()?);
    if let Some(t) = ctx.scope.tenant() {
        out.extend(crate::registers::current(
            ctx.vault.declarations(Some(t)).await.ok()?,
        ));
    }
    out.retain(|d| !d.withdrawn);
    Some(out)
}

struct Declarations;
#[async_trait]
impl Collector for Declarations {
    fn name(&self) -> &'static str {
        "declarations"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let Some(decls) = declarations_in_force(ctx).await else {
            return unreadable("the declarations register");
        };
        let how = "Measures the software cannot observe are declared in the register by a named \
                   owner with a review date; the report shows them as declared, never as \
                   verified, and as stale once their review date has passed.";
        if decls.is_empty() {
            return Finding::new(Status::Gap, how)
                .missing("no physical or organisational measure is declared");
        }
        let mut f = Finding::new(Status::Declared, how);
        for d in &decls {
            f = f.with(
                &format!("{} declared by {}", d.measure, d.owner),
                format!("review by {}", crate::render::date(d.review_by)),
                &format!("declaration {} v{}", d.id, d.version),
                d.declared_at,
            );
            if d.review_by < ctx.now {
                f.status = Status::Stale;
                f = f.missing(format!(
                    "the declaration of {} ({}) was due for review on {}",
                    d.measure,
                    d.id,
                    crate::render::date(d.review_by)
                ));
            }
        }
        f
    }
}

struct Incidents;
#[async_trait]
impl Collector for Incidents {
    fn name(&self) -> &'static str {
        "incidents"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let Ok(incidents) = crate::incidents::current(ctx.vault, ctx.scope.tenant(), ctx.now).await
        else {
            return unreadable("the incident register");
        };
        let open = incidents
            .iter()
            .filter(|i| i.incident.closed_at.is_none())
            .count();
        let breaches = incidents
            .iter()
            .filter(|i| i.incident.personal_data_breach)
            .count();
        let mut f = Finding::new(
            Status::Met,
            "Incidents and breaches are registered with the moment of awareness; the register \
             computes each notification deadline (controllers, by default within 24 hours; the \
             authority within 72 hours, Art. 33; the people concerned where the risk is high, \
             Art. 34), flags what is overdue and raises an alert.",
        )
        .with(
            "incidents recorded",
            incidents.len(),
            "incident register",
            ctx.now,
        )
        .with(
            "of them personal-data breaches",
            breaches,
            "incident register",
            ctx.now,
        )
        .with("open", open, "incident register", ctx.now);
        for i in &incidents {
            for c in i.clocks.iter().filter(|c| c.overdue) {
                f = f.missing(format!(
                    "incident {}: notification of the {} overdue since {}",
                    i.id,
                    c.duty,
                    crate::render::date(c.deadline)
                ));
            }
            for c in i.clocks.iter().filter(|c| c.late) {
                f = f.with(
                    &format!("incident {}: {} notified late", i.id, c.duty),
                    crate::render::date(c.done_at.unwrap_or(c.deadline)),
                    "incident register",
                    c.done_at.unwrap_or(c.deadline),
                );
            }
        }
        f.settle()
    }
}

struct Trainings;
#[async_trait]
impl Collector for Trainings {
    fn name(&self) -> &'static str {
        "training"
    }
    async fn collect(&self, ctx: &Context<'_>, _: &Measure) -> Finding {
        let scopes: Vec<Option<strongroom_core::ids::TenantId>> = match ctx.scope.tenant() {
            Some(t) => vec![None, Some(t.clone())],
            None => vec![None],
        };
        let Ok(trainings) = crate::trainings::current(ctx.vault, &scopes, ctx.now).await else {
            return unreadable("the training register");
        };
        let how = "Training is recorded per person and course with the date it was completed \
                   and until when it counts (a year by default); what has run out is flagged \
                   and listed in the alerts.";
        if trainings.is_empty() {
            return Finding::new(Status::Gap, how).missing("no training is recorded");
        }
        let overdue = trainings.iter().filter(|t| t.overdue).count();
        let mut f = Finding::new(Status::Met, how)
            .with(
                "training records",
                trainings.len(),
                "training register",
                ctx.now,
            )
            .with(
                "current",
                format!("{} of {}", trainings.len() - overdue, trainings.len()),
                "training register",
                ctx.now,
            );
        if overdue > 0 {
            f = f.missing(format!(
                "{overdue} of {} training records have run out",
                trainings.len()
            ));
        }
        f.settle()
    }
}

struct Versions;
#[async_trait]
impl Collector for Versions {
    fn name(&self) -> &'static str {
        "versions"
    }
    async fn collect(&self, ctx: &Context<'_>, m: &Measure) -> Finding {
        let how = "The service reports its version and build, the dependencies it was built \
                   with (its Cargo.lock, embedded at build time) and, given a copy of the \
                   RustSec advisory database, the advisories that affect them.";
        let db = ctx.installation.advisory_db.as_deref();
        let report = match crate::versions::report(&ctx.installation.version, db) {
            Ok(r) => r,
            Err(e) => {
                return Finding::new(Status::Partial, how)
                    .with("version", &ctx.installation.version, "this build", ctx.now)
                    .missing(format!("the advisory database could not be read: {e}"))
            }
        };
        let mut f = Finding::new(Status::Met, how)
            .with(
                "version",
                format!("{} ({})", report.version, report.build),
                "this build",
                ctx.now,
            )
            .with(
                "dependencies",
                format!(
                    "{} (Cargo.lock SHA-256 {})",
                    report.dependencies.len(),
                    &report.lockfile_sha256[..16]
                ),
                "this build",
                ctx.now,
            );
        let Some(scan) = report.advisories else {
            return f
                .missing(
                    "dependency advisories are not checked: give the server `--advisory-db DIR`, \
                     a copy of the RustSec advisory database",
                )
                .settle();
        };
        f = f.with(
            "advisories read",
            format!(
                "{}, the newest of {}",
                scan.read,
                scan.newest.as_deref().unwrap_or("no date")
            ),
            "RustSec advisory database",
            ctx.now,
        );
        let vulns: Vec<&str> = scan.vulnerabilities().map(|a| a.id.as_str()).collect();
        let informational = scan.affecting.len() - vulns.len();
        f = f.with(
            "advisories affecting this build",
            format!(
                "{} vulnerabilities, {informational} informational",
                vulns.len()
            ),
            "RustSec advisory database",
            ctx.now,
        );
        if !vulns.is_empty() {
            f = f.missing(format!(
                "{} advisories affect dependencies in use: {}",
                vulns.len(),
                vulns.join(", ")
            ));
        }
        if !scan.unreadable.is_empty() {
            f = f.missing(format!(
                "{} advisory files could not be read",
                scan.unreadable.len()
            ));
        }
        let f = f.settle();
        let limit = crate::render::date(ctx.now - i64::from(m.freshness_days) * DAY_MS);
        if f.status == Status::Met && scan.newest.as_deref().is_none_or(|n| n < limit.as_str()) {
            let mut f = f.missing(format!(
                "the advisory database copy is older than {} days (newest advisory {}): update it",
                m.freshness_days,
                scan.newest.as_deref().unwrap_or("none")
            ));
            f.status = Status::Stale;
            return f;
        }
        f
    }
}
