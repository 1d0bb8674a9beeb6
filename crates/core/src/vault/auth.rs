//! Signing in: sessions, login with lockout and TOTP, logout, password change, MFA enrolment.
//!
//! A failed sign-in always answers the same `invalid_credentials` and always costs one Argon2
//! verification (a dummy hash for unknown users), whether the user is unknown, disabled or
//! locked or the password or code is wrong; the audit entry records the real reason.

use strongroom_crypto::otp;
use strongroom_crypto::{hex, sha256};
use strongroom_proto as proto;
use zeroize::Zeroizing;

use super::{Actor, Principal, RequestCtx, Vault, TOUCH_EVERY_MS};
use crate::audit::{AuditEvent, Outcome};
use crate::error::{Code, Error, Result};
use crate::identity::{
    canonical_recovery_code, check_password, lock_delay_ms, normalise_username, recovery_code,
    MAX_LOCK_MS,
};
use crate::ids::{RequestId, SessionId, TenantId, UserId};
use crate::rng::RngExt;
use crate::store::{Op, SessionRow, StoreError, UnitOfWork, UserRow};

/// Session tokens start with this.
pub const SESSION_PREFIX: &str = "srs_";
/// TOTP codes are accepted one step either side of now.
const TOTP_WINDOW: i64 = 1;
const RECOVERY_CODES: usize = 10;
pub(super) const RESTRICT_MFA: &str = "mfa_enrollment";
pub(super) const RESTRICT_PASSWORD: &str = "password_change";

fn invalid_credentials() -> Error {
    Error::new(
        Code::InvalidCredentials,
        "sign-in failed: the tenant, username, password or code is wrong, or the account is locked",
    )
}

fn session_ended() -> Error {
    Error::new(
        Code::SessionExpired,
        "this session has ended; sign in again",
    )
}

impl Vault {
    pub(super) async fn authenticate_session(
        &self,
        token: &str,
        ev: &mut AuditEvent,
    ) -> Result<Principal> {
        let unauthenticated = || {
            Error::new(
                Code::Unauthenticated,
                "send a valid API key or session token as `Authorization: Bearer <token>`",
            )
        };
        let hash = sha256(token.as_bytes());
        let s = self
            .store
            .find_session_by_hash(&hash)
            .await?
            .ok_or_else(unauthenticated)?;
        ev.tenant = s.tenant.clone();
        ev.actor = format!("user:{}", s.user);
        let now = self.now();
        if s.revoked_at.is_some()
            || now >= s.expires_at
            || now - s.last_seen_at >= s.idle_timeout_ms
        {
            return Err(session_ended());
        }
        let user = self
            .store
            .find_user(s.tenant.as_ref(), &s.user)
            .await?
            .ok_or_else(unauthenticated)?;
        if user.disabled {
            return Err(session_ended());
        }
        if now - s.last_seen_at >= TOUCH_EVERY_MS {
            self.bookkeeping(Op::TouchSession {
                id: s.id.clone(),
                at: now,
            })
            .await?;
        }
        Ok(Principal {
            actor: Actor::User {
                id: user.id,
                session: s.id,
            },
            tenant: s.tenant,
            roles: user.roles,
            restricted_to: s.restricted_to,
        })
    }

    async fn dummy_hash(&self) -> String {
        if let Some(h) = self.dummy_hash.get() {
            return h.clone();
        }
        let pw: [u8; 32] = self.rng.array();
        let h = self
            .hasher
            .hash(Zeroizing::new(pw.to_vec()), self.rng.array())
            .await
            .unwrap_or_default();
        let _ = self.dummy_hash.set(h.clone());
        h
    }

    /// Hashes a new password with a fresh salt.
    pub(super) async fn hash_password(&self, password: &str) -> Result<String> {
        self.hasher
            .hash(
                Zeroizing::new(password.as_bytes().to_vec()),
                self.rng.array(),
            )
            .await
            .ok_or_else(Error::internal)
    }

    pub(super) async fn resolve_tenant(
        &self,
        tenant: Option<&str>,
    ) -> Result<Option<Option<TenantId>>> {
        let Some(t) = tenant else {
            return Ok(Some(None));
        };
        if let Some(id) = TenantId::parse(t) {
            return Ok(self.store.find_tenant(&id).await?.map(|r| Some(r.id)));
        }
        Ok(self.store.find_tenant_by_name(t).await?.map(|r| Some(r.id)))
    }

    /// Signs a user in and opens a session.
    pub async fn login(&self, req: proto::Login, request_id: RequestId) -> Result<proto::Session> {
        let mut ev = AuditEvent::new(
            None,
            self.now(),
            request_id,
            "anonymous".into(),
            "auth.login",
        );
        let password = req.password.to_bytes();
        let tenant = self.resolve_tenant(req.tenant.as_deref()).await?;
        let user = match (&tenant, normalise_username(&req.username)) {
            (Some(t), Ok((_, key))) => {
                ev.tenant = t.clone();
                self.store.find_user_by_name(t.as_ref(), &key).await?
            }
            _ => None,
        };
        let Some(user) = user else {
            // Same cost as a real check, same answer.
            let _ = self.hasher.verify(password, self.dummy_hash().await).await;
            return self.login_refused(ev, "unknown_user", vec![]).await;
        };
        ev.actor = format!("user:{}", user.id);
        ev.objects.push(user.id.to_string());
        let settings = self.effective_settings(user.tenant.as_ref()).await?;
        let now = self.now();
        // The check is admitted (and counted as a failure) before it runs: a lock, or the
        // threshold of checks already under way, refuses it at the same cost and with the same
        // answer as a wrong password.
        if !self.admit_password_check(&user.id, now, &settings).await? {
            let _ = self.hasher.verify(password, self.dummy_hash().await).await;
            return self.login_refused(ev, "locked", vec![]).await;
        }
        let password_ok = self
            .hasher
            .verify(password, user.password_hash.clone())
            .await;
        if user.disabled {
            self.release_password_check(&user.id).await?;
            return self.login_refused(ev, "disabled", vec![]).await;
        }
        let failure = |reason: &'static str, ev: AuditEvent| {
            let (lock, op) = self.lockout_if_due(&ev, &user.id, now, user.lock_level, &settings);
            (reason, ev, vec![lock], op)
        };
        if !password_ok {
            let (reason, ev, events, op) = failure("wrong_password", ev);
            return self.login_failed(ev, reason, events, op).await;
        }
        let mut ops = Vec::new();
        let mut used_user = None;
        if let Some(sealed) = &user.totp_secret {
            let Some(code) = req.totp.as_deref().map(str::trim).filter(|c| !c.is_empty()) else {
                ev.objects.push("reason:mfa_code_missing".into());
                ev.fail(&Error::new(Code::MfaRequired, ""));
                self.release_password_check(&user.id).await?;
                self.record(ev).await;
                return Err(Error::new(Code::MfaRequired, "this account uses MFA: send the current code from your authenticator app as `totp`"));
            };
            let secret = self.keys.open_user_secret(&user.id, sealed)?;
            match otp::matching_step(&secret, code, otp::step_at(now), TOTP_WINDOW) {
                Some(step) => ops.push(Op::UseTotpStep {
                    user: user.id.clone(),
                    step,
                }),
                None => {
                    let hashed = sha256(canonical_recovery_code(code).as_bytes());
                    if !strongroom_crypto::ct_contains(&user.recovery_codes, &hashed) {
                        let (reason, ev, events, op) = failure("wrong_mfa_code", ev);
                        return self.login_failed(ev, reason, events, op).await;
                    }
                    let mut next = user.clone();
                    next.recovery_codes.retain(|c| c != &hashed);
                    next.version += 1;
                    ev.objects.push("recovery_code_used".into());
                    used_user = Some(next);
                }
            }
        }
        if let Some(u) = used_user {
            ops.push(Op::UpdateUser(u));
        }
        let needs_mfa = user
            .roles
            .iter()
            .any(|r| settings.mfa_required_roles.contains(r));
        let restricted_to = if needs_mfa && user.totp_secret.is_none() {
            Some(RESTRICT_MFA.to_owned())
        } else if settings.max_age_days > 0
            && now - user.password_changed_at
                >= i64::from(settings.max_age_days) * crate::clock::DAY_MS
        {
            Some(RESTRICT_PASSWORD.to_owned())
        } else {
            None
        };
        let (token, session) = self.new_session(&user, &settings, restricted_to.clone());
        ops.push(Op::ResetLockout {
            user: user.id.clone(),
        });
        ops.push(Op::InsertSession(session.clone()));
        ev.objects.push(session.id.to_string());
        match self
            .store
            .commit(UnitOfWork {
                ops,
                audit: vec![ev.clone()],
            })
            .await
        {
            Ok(_) => Ok(proto::Session {
                token,
                expires_at: session.expires_at,
                restricted_to,
            }),
            Err(StoreError::Conflict(_)) => {
                // The TOTP step was used already (a replayed code) or the recovery code was
                // spent concurrently: a failure like any other.
                ev.objects.retain(|o| o != session.id.as_str());
                let (reason, ev, events, op) = failure("replayed_mfa_code", ev);
                self.login_failed(ev, reason, events, op).await
            }
            Err(e) => Err(Error::from(e)),
        }
    }

    /// Records a sign-in attempt refused by the per-address rate limit, and returns its error.
    /// A sign-in refused by the per-client limit: counted (one audit entry per client and
    /// minute), not recorded one by one.
    pub async fn login_throttled(&self, client: &str) -> Error {
        self.note_refusal(client, super::Refusal::LoginThrottled)
            .await;
        Error::new(
            Code::RateLimited,
            "too many sign-in attempts from this address; wait a minute",
        )
    }

    async fn login_refused(
        &self,
        mut ev: AuditEvent,
        reason: &str,
        extra: Vec<AuditEvent>,
    ) -> Result<proto::Session> {
        let err = invalid_credentials();
        ev.objects.push(format!("reason:{reason}"));
        ev.fail(&err);
        let mut audit = vec![ev];
        audit.extend(extra);
        self.store
            .commit(UnitOfWork { ops: vec![], audit })
            .await
            .map_err(|_| Error::audit_unavailable())?;
        Err(err)
    }

    /// Records a failed check; if it reached the threshold, locks the account and records the
    /// lockout with it (once: of concurrent failures exactly one locks).
    async fn login_failed(
        &self,
        mut ev: AuditEvent,
        reason: &str,
        lockout: Vec<AuditEvent>,
        lock: Op,
    ) -> Result<proto::Session> {
        let err = invalid_credentials();
        ev.objects.push(format!("reason:{reason}"));
        ev.fail(&err);
        self.record_failed_check(ev, lockout, lock).await?;
        Err(err)
    }

    async fn record_failed_check(
        &self,
        ev: AuditEvent,
        lockout: Vec<AuditEvent>,
        lock: Op,
    ) -> Result<()> {
        let mut audit = vec![ev.clone()];
        audit.extend(lockout);
        match self
            .store
            .commit(UnitOfWork {
                ops: vec![lock],
                audit,
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict("not_due")) => self
                .store
                .commit(UnitOfWork {
                    ops: vec![],
                    audit: vec![ev],
                })
                .await
                .map(|_| ())
                .map_err(|_| Error::audit_unavailable()),
            Err(_) => Err(Error::audit_unavailable()),
        }
    }

    /// Admits one password check of `user` (see [`Op::AdmitLoginAttempt`]); `false` when the
    /// account is locked or its checks are used up.
    async fn admit_password_check(
        &self,
        user: &UserId,
        now: i64,
        settings: &proto::EffectiveSettings,
    ) -> Result<bool> {
        let op = Op::AdmitLoginAttempt {
            user: user.clone(),
            at: now,
            threshold: settings.lockout_threshold,
        };
        match self
            .store
            .commit(UnitOfWork {
                ops: vec![op],
                audit: vec![],
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict("locked")) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn release_password_check(&self, user: &UserId) -> Result<()> {
        self.store
            .commit(UnitOfWork {
                ops: vec![Op::ReleaseLoginAttempt { user: user.clone() }],
                audit: vec![],
            })
            .await?;
        Ok(())
    }

    /// The lockout event and the conditional lock for a failed check by `ev`'s actor.
    fn lockout_if_due(
        &self,
        ev: &AuditEvent,
        user: &UserId,
        now: i64,
        lock_level: u32,
        settings: &proto::EffectiveSettings,
    ) -> (AuditEvent, Op) {
        let mut lock = AuditEvent::new(
            ev.tenant.clone(),
            now,
            ev.request_id.clone(),
            ev.actor.clone(),
            "auth.lockout",
        );
        lock.outcome = Outcome::Denied;
        lock.objects.push(user.to_string());
        lock.objects.push(format!(
            "locked_for_s:{}",
            lock_delay_ms(settings.lockout_base_seconds, lock_level) / 1000
        ));
        let op = Op::LockIfDue {
            user: user.clone(),
            at: now,
            threshold: settings.lockout_threshold,
            base_delay_ms: i64::from(settings.lockout_base_seconds) * 1000,
            max_delay_ms: MAX_LOCK_MS,
        };
        (lock, op)
    }

    fn new_session(
        &self,
        user: &UserRow,
        s: &proto::EffectiveSettings,
        restricted_to: Option<String>,
    ) -> (String, SessionRow) {
        let secret: [u8; 32] = self.rng.array();
        let token = format!("{SESSION_PREFIX}{}", hex(&secret));
        let now = self.now();
        let row = SessionRow {
            id: SessionId::generate(self.rng.as_ref()),
            token_hash: sha256(token.as_bytes()),
            tenant: user.tenant.clone(),
            user: user.id.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + i64::from(s.session_absolute_hours) * 3600 * 1000,
            idle_timeout_ms: i64::from(s.session_idle_minutes) * 60 * 1000,
            revoked_at: None,
            restricted_to,
        };
        (token, row)
    }

    /// The signed-in user of a session credential.
    async fn session_user(&self, ctx: &RequestCtx) -> Result<(UserRow, SessionId)> {
        let Actor::User { id, session } = &ctx.principal.actor else {
            return Err(Error::forbidden(
                "this needs a signed-in user's session, not an API key",
            ));
        };
        let user = self
            .store
            .find_user(ctx.principal.tenant.as_ref(), id)
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        Ok((user, session.clone()))
    }

    /// Ends the caller's session.
    pub async fn logout(&self, ctx: &RequestCtx) -> Result<()> {
        let ev = self.event(ctx, "auth.logout");
        let res = async {
            let (_, session) = self.session_user(ctx).await?;
            Ok((
                (),
                vec![Op::RevokeSession {
                    id: session,
                    at: self.now(),
                }],
            ))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Changes the caller's password; every session of the user ends.
    pub async fn change_password(
        &self,
        ctx: &RequestCtx,
        req: proto::ChangePassword,
    ) -> Result<()> {
        let mut ev = self.event(ctx, "auth.password_change");
        let res = async {
            let (user, _) = self.session_user(ctx).await?;
            ev.objects.push(user.id.to_string());
            let settings = self.effective_settings(user.tenant.as_ref()).await?;
            let current = req.current_password.to_bytes();
            let now = self.now();
            let wrong = || Error::new(Code::InvalidCredentials, "the current password is wrong");
            if !self.admit_password_check(&user.id, now, &settings).await? {
                let _ = self.hasher.verify(current, self.dummy_hash().await).await;
                return Err(wrong());
            }
            if !self
                .hasher
                .verify(current, user.password_hash.clone())
                .await
            {
                // The failure itself is recorded when the operation concludes; a lockout it
                // causes is recorded here, once.
                let (lockout, lock) =
                    self.lockout_if_due(&ev, &user.id, now, user.lock_level, &settings);
                match self
                    .store
                    .commit(UnitOfWork {
                        ops: vec![lock],
                        audit: vec![lockout],
                    })
                    .await
                {
                    Ok(_) | Err(StoreError::Conflict("not_due")) => {}
                    Err(e) => return Err(e.into()),
                }
                return Err(wrong());
            }
            // The check passed: it no longer counts as a failure.
            self.release_password_check(&user.id).await?;
            let context = self.context_words(&user).await?;
            let refs: Vec<&str> = context.iter().map(String::as_str).collect();
            check_password(
                req.new_password.expose(),
                &settings,
                user.totp_secret.is_some(),
                &refs,
            )?;
            let reused_current = req.new_password == req.current_password;
            let mut reused = reused_current && settings.history > 0;
            for old in user.password_history.iter().take(settings.history as usize) {
                if reused {
                    break;
                }
                reused = self
                    .hasher
                    .verify(req.new_password.to_bytes(), old.clone())
                    .await;
            }
            if reused {
                return Err(Error::new(
                    Code::WeakPassword,
                    format!(
                        "reused: choose a password different from the last {}",
                        settings.history
                    ),
                ));
            }
            let mut next = user.clone();
            next.password_hash = self.hash_password(req.new_password.expose()).await?;
            next.password_changed_at = self.now();
            next.password_history.insert(0, user.password_hash.clone());
            next.password_history.truncate(settings.history as usize);
            next.version += 1;
            let ops = vec![
                Op::UpdateUser(next),
                Op::RevokeUserSessions {
                    user: user.id.clone(),
                    at: self.now(),
                },
            ];
            Ok(((), ops))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Words a password may not contain: the username and the tenant's name.
    pub(super) async fn context_words(&self, user: &UserRow) -> Result<Vec<String>> {
        let mut words = vec![user.username.clone()];
        if let Some(t) = &user.tenant {
            if let Some(row) = self.store.find_tenant(t).await? {
                words.push(row.name);
            }
        }
        Ok(words)
    }

    /// Starts TOTP enrolment: a new secret, pending until confirmed with a code.
    /// Returns the `otpauth://` URI.
    pub async fn totp_enroll(&self, ctx: &RequestCtx) -> Result<String> {
        let mut ev = self.event(ctx, "auth.mfa_enroll");
        let res = async {
            let (user, _) = self.session_user(ctx).await?;
            ev.objects.push(user.id.to_string());
            let secret = Zeroizing::new(self.rng.array::<20>());
            let mut next = user.clone();
            next.totp_pending = Some(self.keys.seal_user_secret(
                self.rng.as_ref(),
                &user.id,
                &*secret,
            ));
            next.version += 1;
            let issuer = match &user.tenant {
                Some(t) => self.store.find_tenant(t).await?.map_or_else(
                    || "Strongroom".to_owned(),
                    |r| format!("Strongroom {}", r.name),
                ),
                None => "Strongroom operators".to_owned(),
            };
            let uri = format!(
                "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
                percent(&issuer),
                percent(&user.username),
                otp::base32(&*secret),
                percent(&issuer)
            );
            Ok((uri, vec![Op::UpdateUser(next)]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Confirms TOTP enrolment with a current code. MFA is then on, recovery codes are issued
    /// (shown once), and every session of the user ends.
    pub async fn totp_confirm(&self, ctx: &RequestCtx, code: &str) -> Result<Vec<String>> {
        let mut ev = self.event(ctx, "auth.mfa_enable");
        let res = async {
            let (user, _) = self.session_user(ctx).await?;
            ev.objects.push(user.id.to_string());
            let pending = user.totp_pending.clone().ok_or_else(|| {
                Error::new(
                    Code::InvalidRequest,
                    "start enrolment first: POST /v1/auth/mfa/totp",
                )
            })?;
            let secret = self.keys.open_user_secret(&user.id, &pending)?;
            let step =
                otp::matching_step(&secret, code.trim(), otp::step_at(self.now()), TOTP_WINDOW)
                    .ok_or_else(|| {
                        Error::new(
                    Code::InvalidCredentials,
                    "the code does not match; check the device's clock and try the next code",
                )
                    })?;
            let codes: Vec<String> = (0..RECOVERY_CODES)
                .map(|_| recovery_code(&self.rng.array()))
                .collect();
            let mut next = user.clone();
            next.totp_secret = Some(pending);
            next.totp_pending = None;
            next.recovery_codes = codes
                .iter()
                .map(|c| sha256(canonical_recovery_code(c).as_bytes()))
                .collect();
            next.version += 1;
            let now = self.now();
            let ops = vec![
                Op::UpdateUser(next),
                Op::UseTotpStep {
                    user: user.id.clone(),
                    step,
                },
                Op::RevokeUserSessions {
                    user: user.id.clone(),
                    at: now,
                },
            ];
            Ok((codes, ops))
        }
        .await;
        self.conclude(ev, res).await
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for otpauth labels.
fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
