//! Managing people and credentials: security settings, users, unlocks, MFA resets, API-key
//! listing and rotation, and the identity evidence report.

use std::collections::BTreeMap;

use strongroom_proto as proto;

use super::{Actor, RequestCtx, Vault};
use crate::audit::{AuditEvent, PLATFORM_LOG};
use crate::clock::DAY_MS;
use crate::error::{quote_name, Code, Error, Result};
use crate::identity::{check_password, default_settings, normalise_username, resolve_settings};
use crate::ids::{ApiKeyId, TenantId, UserId};
use crate::policy::{is_builtin, ROLE_ADMIN, ROLE_AUDITOR, ROLE_COMPLIANCE, ROLE_OPERATOR};
use crate::store::{ApiKeyRow, Op, UserRow};

/// Longest overlap of a rotated key with its successor.
const MAX_OVERLAP_MINUTES: u32 = 1440;

fn user_view(u: &UserRow, now: i64) -> proto::User {
    proto::User {
        id: u.id.to_string(),
        tenant: u.tenant.as_ref().map(ToString::to_string),
        username: u.username.clone(),
        roles: u.roles.clone(),
        disabled: u.disabled,
        mfa: u.totp_secret.is_some(),
        locked_until: u.locked_until.filter(|t| *t > now),
        created_at: u.created_at,
        password_changed_at: u.password_changed_at,
    }
}

fn key_view(k: &ApiKeyRow) -> proto::ApiKeyInfo {
    proto::ApiKeyInfo {
        id: k.id.to_string(),
        name: k.name.clone(),
        tenant: k.tenant.as_ref().map(ToString::to_string),
        roles: k.roles.clone(),
        created_at: k.created_at,
        expires_at: k.expires_at,
        last_used_at: k.last_used_at,
        rotated_to: k.rotated_to.as_ref().map(ToString::to_string),
    }
}

fn scope_name(tenant: Option<&TenantId>) -> String {
    tenant.map_or_else(|| PLATFORM_LOG.to_owned(), ToString::to_string)
}

impl Vault {
    /// The settings in force for a tenant, or for operators (`None`).
    pub async fn effective_settings(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<proto::EffectiveSettings> {
        match self.store.find_settings(&scope_name(tenant)).await? {
            Some(s) => resolve_settings(&s),
            None => Ok(default_settings()),
        }
    }

    /// The scope a caller administers: its tenant (admins) or the platform (operators).
    fn admin_scope(&self, ctx: &RequestCtx) -> Result<Option<TenantId>> {
        if ctx.principal.is_operator() {
            return Ok(None);
        }
        self.require_admin(ctx).map(Some)
    }

    pub async fn get_settings(&self, ctx: &RequestCtx) -> Result<proto::EffectiveSettings> {
        let ev = self.event(ctx, "settings.get");
        let res = async {
            let scope = self.admin_scope(ctx)?;
            Ok((self.effective_settings(scope.as_ref()).await?, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Replaces the security settings of the caller's scope.
    pub async fn put_settings(
        &self,
        ctx: &RequestCtx,
        s: proto::SecuritySettings,
    ) -> Result<proto::EffectiveSettings> {
        let ev = self.event(ctx, "settings.put");
        let res = async {
            let scope = self.admin_scope(ctx)?;
            let effective = resolve_settings(&s)?;
            Ok((
                effective,
                vec![Op::PutSettings {
                    scope: scope_name(scope.as_ref()),
                    settings: s,
                }],
            ))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Checks roles a caller may give a user or key in `tenant`.
    async fn check_grantable_roles(
        &self,
        ctx: &RequestCtx,
        tenant: Option<&TenantId>,
        roles: &mut Vec<String>,
    ) -> Result<()> {
        roles.sort();
        roles.dedup();
        match tenant {
            // A platform account: an operator, or the platform's compliance officer (who keeps
            // the platform's registers and reads its reports, and nothing else).
            None if roles.as_slice() == [ROLE_COMPLIANCE] => {}
            None => {
                if roles.iter().any(|r| r != ROLE_OPERATOR) {
                    return Err(Error::new(
                        Code::InvalidRole,
                        "platform accounts carry the `operator` role or the `compliance` role only",
                    ));
                }
                *roles = vec![ROLE_OPERATOR.to_owned()];
            }
            Some(_) if ctx.principal.is_operator() => {
                if roles.is_empty()
                    || roles
                        .iter()
                        .any(|r| r != ROLE_ADMIN && r != ROLE_AUDITOR && r != ROLE_COMPLIANCE)
                {
                    return Err(Error::forbidden(
                        "operators grant tenant accounts the `admin`, `auditor` or `compliance` roles only",
                    ));
                }
            }
            Some(t) => {
                if roles.is_empty() {
                    return Err(Error::new(Code::InvalidRole, "name at least one role"));
                }
                for r in roles.iter() {
                    if r == ROLE_OPERATOR {
                        return Err(Error::forbidden(
                            "tenant accounts cannot carry the `operator` role",
                        ));
                    }
                    if !is_builtin(r) && self.store.find_role(t, r).await?.is_none() {
                        return Err(Error::new(
                            Code::UnknownRole,
                            format!("role {} is not defined", quote_name(r)),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates a user. Tenant admins create users of their tenant; operators create operator
    /// accounts, or a tenant's `admin`/`auditor` accounts with `tenant`.
    pub async fn create_user(
        &self,
        ctx: &RequestCtx,
        req: proto::CreateUser,
    ) -> Result<proto::User> {
        let mut ev = self.event(ctx, "user.create");
        let res = async {
            let tenant = if ctx.principal.is_operator() {
                match &req.tenant {
                    None => None,
                    Some(t) => {
                        let id = TenantId::parse(t).ok_or_else(|| {
                            Error::new(Code::InvalidId, "`tenant` is not a tenant id")
                        })?;
                        self.store
                            .find_tenant(&id)
                            .await?
                            .ok_or_else(|| Error::not_found("tenant"))?;
                        ev.tenant = Some(id.clone());
                        Some(id)
                    }
                }
            } else {
                let own = self.require_admin(ctx)?;
                if req.tenant.as_deref().is_some_and(|t| t != own.as_str()) {
                    return Err(Error::forbidden(
                        "a tenant admin creates users of its own tenant only",
                    ));
                }
                Some(own)
            };
            let mut roles = req.roles.clone();
            self.check_grantable_roles(ctx, tenant.as_ref(), &mut roles)
                .await?;
            let (username, username_key) = normalise_username(&req.username)?;
            if self
                .store
                .find_user_by_name(tenant.as_ref(), &username_key)
                .await?
                .is_some()
            {
                return Err(Error::new(
                    Code::AlreadyExists,
                    "a user with this username already exists",
                ));
            }
            let settings = self.effective_settings(tenant.as_ref()).await?;
            let will_have_mfa = roles
                .iter()
                .any(|r| settings.mfa_required_roles.contains(r));
            let mut context = vec![username.clone()];
            if let Some(t) = &tenant {
                if let Some(row) = self.store.find_tenant(t).await? {
                    context.push(row.name);
                }
            }
            let refs: Vec<&str> = context.iter().map(String::as_str).collect();
            check_password(req.password.expose(), &settings, will_have_mfa, &refs)?;
            let now = self.now();
            let row = UserRow {
                id: UserId::generate(self.rng.as_ref()),
                tenant,
                username,
                username_key,
                password_hash: self.hash_password(req.password.expose()).await?,
                password_changed_at: now,
                password_history: vec![],
                roles,
                disabled: false,
                failed_count: 0,
                lock_level: 0,
                locked_until: None,
                totp_secret: None,
                totp_pending: None,
                totp_last_step: 0,
                recovery_codes: vec![],
                created_at: now,
                version: 1,
            };
            ev.objects.push(row.id.to_string());
            Ok((user_view(&row, now), vec![Op::InsertUser(row)]))
        }
        .await;
        self.conclude(ev, res).await
    }

    pub async fn list_users(&self, ctx: &RequestCtx) -> Result<proto::UserList> {
        let ev = self.event(ctx, "user.list");
        let res = async {
            let scope = self.admin_scope(ctx)?;
            let now = self.now();
            let users = self
                .store
                .find_users(scope.as_ref())
                .await?
                .iter()
                .map(|u| user_view(u, now))
                .collect();
            Ok((proto::UserList { users }, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    async fn managed_user(
        &self,
        ctx: &RequestCtx,
        ev: &mut AuditEvent,
        id: &str,
    ) -> Result<UserRow> {
        let scope = self.admin_scope(ctx)?;
        let id = UserId::parse(id)
            .ok_or_else(|| Error::new(Code::InvalidId, "not a user id (usr_ and 32 hex digits)"))?;
        ev.objects.push(id.to_string());
        self.store
            .find_user(scope.as_ref(), &id)
            .await?
            .ok_or_else(|| Error::not_found("user"))
    }

    /// An administrative change of one user: `change` edits the row and may add ops.
    async fn change_user(
        &self,
        ctx: &RequestCtx,
        action: &'static str,
        id: &str,
        change: impl FnOnce(&mut UserRow, i64) -> Result<Vec<Op>>,
    ) -> Result<proto::User> {
        let mut ev = self.event(ctx, action);
        let res = async {
            let user = self.managed_user(ctx, &mut ev, id).await?;
            let now = self.now();
            let mut next = user.clone();
            let mut ops = change(&mut next, now)?;
            if next != user {
                next.version += 1;
                ops.insert(0, Op::UpdateUser(next.clone()));
            }
            Ok((user_view(&next, now), ops))
        }
        .await;
        self.conclude(ev, res).await
    }

    pub async fn set_user_roles(
        &self,
        ctx: &RequestCtx,
        id: &str,
        roles: Vec<String>,
    ) -> Result<proto::User> {
        // Authorisation first: a caller without the right learns nothing from validation.
        let scope = match self.admin_scope(ctx) {
            Ok(scope) => scope,
            Err(e) => return Err(self.reject(ctx, "user.roles", e).await),
        };
        let mut roles = roles;
        if let Err(e) = self
            .check_grantable_roles(ctx, scope.as_ref(), &mut roles)
            .await
        {
            return Err(self.reject(ctx, "user.roles", e).await);
        }
        self.change_user(ctx, "user.roles", id, |u, _| {
            u.roles = roles;
            Ok(vec![])
        })
        .await
    }

    /// Disables a user and ends all their sessions at once.
    pub async fn disable_user(&self, ctx: &RequestCtx, id: &str) -> Result<proto::User> {
        let me = match &ctx.principal.actor {
            Actor::User { id, .. } => Some(id.to_string()),
            Actor::ApiKey(_) => None,
        };
        if me.as_deref() == Some(id) {
            let e = Error::new(Code::InvalidRequest, "you cannot disable your own account");
            return Err(self.reject(ctx, "user.disable", e).await);
        }
        self.change_user(ctx, "user.disable", id, |u, now| {
            u.disabled = true;
            Ok(vec![Op::RevokeUserSessions {
                user: u.id.clone(),
                at: now,
            }])
        })
        .await
    }

    pub async fn enable_user(&self, ctx: &RequestCtx, id: &str) -> Result<proto::User> {
        self.change_user(ctx, "user.enable", id, |u, _| {
            u.disabled = false;
            Ok(vec![])
        })
        .await
    }

    /// Lifts a lockout and clears the failure count.
    pub async fn unlock_user(&self, ctx: &RequestCtx, id: &str) -> Result<proto::User> {
        self.change_user(ctx, "user.unlock", id, |u, _| {
            u.locked_until = None;
            u.failed_count = 0;
            u.lock_level = 0;
            Ok(vec![Op::ResetLockout { user: u.id.clone() }])
        })
        .await
    }

    /// Removes a user's MFA (a lost device); every session of the user ends.
    pub async fn reset_mfa(&self, ctx: &RequestCtx, id: &str) -> Result<proto::User> {
        self.change_user(ctx, "user.reset_mfa", id, |u, now| {
            u.totp_secret = None;
            u.totp_pending = None;
            u.recovery_codes.clear();
            Ok(vec![Op::RevokeUserSessions {
                user: u.id.clone(),
                at: now,
            }])
        })
        .await
    }

    /// The keys of the caller's scope, with their ages and last use.
    pub async fn list_api_keys(&self, ctx: &RequestCtx) -> Result<proto::ApiKeyList> {
        let ev = self.event(ctx, "api_key.list");
        let res = async {
            let scope = self.admin_scope(ctx)?;
            let keys = self
                .store
                .find_api_keys(scope.as_ref())
                .await?
                .iter()
                .map(key_view)
                .collect();
            Ok((proto::ApiKeyList { keys }, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Issues a successor of a key with the same name, roles and lifetime; the old key stops
    /// working at once or after a bounded overlap. Allowed to the key itself and to the
    /// administrators of its scope.
    pub async fn rotate_api_key(
        &self,
        ctx: &RequestCtx,
        id: &str,
        overlap_minutes: u32,
    ) -> Result<proto::CreatedApiKey> {
        let mut ev = self.event(ctx, "api_key.rotate");
        let res = async {
            let id = ApiKeyId::parse(id).ok_or_else(|| {
                Error::new(
                    Code::InvalidId,
                    "not an API key id (key_ and 32 hex digits)",
                )
            })?;
            ev.objects.push(id.to_string());
            if overlap_minutes > MAX_OVERLAP_MINUTES {
                return Err(Error::out_of_range(format!(
                    "overlap_minutes is at most {MAX_OVERLAP_MINUTES}"
                )));
            }
            let old = self
                .store
                .find_api_key(&id)
                .await?
                .ok_or_else(|| Error::not_found("API key"))?;
            let is_self = ctx.principal.actor == Actor::ApiKey(old.id.clone());
            let administers = match &old.tenant {
                None => ctx.principal.is_operator(),
                Some(t) => {
                    ctx.principal.tenant.as_ref() == Some(t) && ctx.principal.has_role(ROLE_ADMIN)
                }
            };
            if !(is_self || administers)
                || (ctx.principal.tenant != old.tenant && !ctx.principal.is_operator())
            {
                return Err(Error::not_found("API key"));
            }
            if old.rotated_to.is_some() {
                return Err(Error::new(
                    Code::VersionConflict,
                    "this key was rotated already; rotate its successor",
                ));
            }
            let now = self.now();
            if now >= old.expires_at {
                return Err(Error::new(
                    Code::KeyExpired,
                    "an expired key cannot be rotated; issue a new one",
                ));
            }
            let lifetime = (old.expires_at - old.created_at).clamp(DAY_MS, 730 * DAY_MS);
            let (token, new) =
                self.new_api_key(&old.name, old.tenant.clone(), old.roles.clone(), lifetime);
            ev.objects.push(new.id.to_string());
            let out = proto::CreatedApiKey {
                id: new.id.to_string(),
                key: token,
                tenant: new.tenant.as_ref().map(ToString::to_string),
                roles: new.roles.clone(),
                expires_at: new.expires_at,
            };
            let ops = vec![
                Op::RotateApiKey {
                    id: old.id.clone(),
                    expires_at: now + i64::from(overlap_minutes) * 60_000,
                    rotated_to: new.id.clone(),
                },
                Op::InsertApiKey(new),
            ];
            Ok((out, ops))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Identity evidence of the caller's tenant: admins, MFA coverage per role, locks, key ages
    /// and the settings in force.
    pub async fn identity_report(&self, ctx: &RequestCtx) -> Result<proto::IdentityReport> {
        let ev = self.event(ctx, "identity.report");
        let res = async {
            let scope = self.admin_scope(ctx)?;
            let settings = self.effective_settings(scope.as_ref()).await?;
            let users = self.store.find_users(scope.as_ref()).await?;
            let keys = self.store.find_api_keys(scope.as_ref()).await?;
            let now = self.now();
            let mut coverage: BTreeMap<String, proto::RoleCoverage> = BTreeMap::new();
            for u in users.iter().filter(|u| !u.disabled) {
                for r in &u.roles {
                    let c = coverage.entry(r.clone()).or_insert(proto::RoleCoverage {
                        users: 0,
                        with_mfa: 0,
                        mfa_required: settings.mfa_required_roles.contains(r),
                    });
                    c.users += 1;
                    c.with_mfa += u32::from(u.totp_secret.is_some());
                }
            }
            let live: Vec<&ApiKeyRow> = keys.iter().filter(|k| k.expires_at > now).collect();
            let report = proto::IdentityReport {
                users: users.len() as u32,
                disabled_users: users.iter().filter(|u| u.disabled).count() as u32,
                admins: users
                    .iter()
                    .filter(|u| {
                        !u.disabled
                            && u.roles
                                .iter()
                                .any(|r| r == ROLE_ADMIN || r == ROLE_OPERATOR)
                    })
                    .count() as u32,
                locked_users: users
                    .iter()
                    .filter(|u| u.locked_until.is_some_and(|t| t > now))
                    .count() as u32,
                mfa_coverage: coverage,
                api_keys: live.len() as u32,
                api_keys_expiring_in_30_days: live
                    .iter()
                    .filter(|k| k.expires_at - now <= 30 * DAY_MS)
                    .count() as u32,
                oldest_api_key_age_days: live
                    .iter()
                    .map(|k| ((now - k.created_at) / DAY_MS) as u32)
                    .max(),
                settings,
            };
            Ok((report, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }
}
