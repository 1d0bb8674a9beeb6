//! Administration: tenants, API keys, collection schemas, roles, and reading the audit trail.

use std::collections::BTreeMap;

use strongroom_proto as proto;

use super::{RequestCtx, Vault};
use crate::audit::AuditEvent;
use crate::clock::DAY_MS;
use crate::error::{quote_name, Code, Error, Result};
use crate::ids::TenantId;
use crate::policy::{
    is_builtin, validate_role, ROLE_ADMIN, ROLE_AUDITOR, ROLE_COMPLIANCE, ROLE_OPERATOR,
};
use crate::schema::{check_compatible, check_name, validate_collection};
use crate::store::{AuditQuery, CollectionRow, Op, RoleRow, TenantKeyRow, TenantRow};

/// Longest life of an API key.
pub const MAX_KEY_DAYS: u32 = 730;
/// Most entries in one page of the audit trail.
pub const MAX_AUDIT_PAGE: u32 = 1000;

fn check_label(name: &str) -> Result<()> {
    let ok = !name.trim().is_empty()
        && name.chars().count() <= 64
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            Code::InvalidName,
            "a key name is 1-64 printable characters",
        ))
    }
}

/// A condition on the version of a definition a change replaces (HTTP `If-Match` and
/// `If-None-Match`), so that two administrators cannot silently overwrite each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    /// None: the change replaces whatever is there.
    #[default]
    Any,
    /// Only if the current version is this one (`If-Match: "3"`).
    Version(u64),
    /// Only if it exists (`If-Match: *`).
    Exists,
    /// Only if it does not exist yet (`If-None-Match: *`).
    Absent,
    /// A condition that names no version this server gives out: never holds.
    Unmatchable,
}

impl Precondition {
    /// Refuses the change unless the condition holds for `current` (the version there now,
    /// `None` if nothing is there yet).
    pub fn check_version(self, what: &str, current: Option<u64>) -> Result<()> {
        self.check(what, current)
    }

    fn check(self, what: &str, current: Option<u64>) -> Result<()> {
        let holds = match (self, current) {
            (Precondition::Any, _) => true,
            (Precondition::Version(v), Some(c)) => v == c,
            (Precondition::Exists, Some(_)) | (Precondition::Absent, None) => true,
            _ => false,
        };
        if holds {
            return Ok(());
        }
        Err(Error::new(
            Code::PreconditionFailed,
            match current {
                Some(c) => format!(
                    "the {what} is at version {c} (ETag \"{c}\"), not the one this change was \
                     made against; read it again, merge, and retry"
                ),
                None => format!("the {what} does not exist"),
            },
        ))
    }
}

pub(super) fn role_view(row: &RoleRow) -> proto::Role {
    proto::Role {
        name: row.name.clone(),
        version: row.version,
        builtin: false,
        collections: row.def.collections.clone(),
        updated_at: row.updated_at,
    }
}

pub(super) fn collection_view(row: &CollectionRow) -> proto::Collection {
    proto::Collection {
        name: row.name.clone(),
        version: row.version,
        purposes: row.def.purposes.clone(),
        fields: row.def.fields.clone(),
        purge_grace_days: row.def.purge_grace_days,
        retention: row.def.retention.clone(),
        history_depth: row.def.history_depth,
        bases: row.def.bases.clone(),
        updated_at: row.updated_at,
    }
}

impl Vault {
    /// Operators create tenants, each with its own key-encryption key.
    pub async fn create_tenant(
        &self,
        ctx: &RequestCtx,
        req: proto::CreateTenant,
    ) -> Result<proto::Tenant> {
        let mut ev = self.event(ctx, "tenant.create");
        let res = self.create_tenant_inner(ctx, &mut ev, req).await;
        // The tenant's log opens in the same unit as the platform log records the creation,
        // so `audit verify` can require a log for every tenant the platform log names.
        let genesis = match &res {
            Ok((t, _)) => TenantId::parse(&t.id)
                .map(|id| {
                    AuditEvent::log_genesis(id, ev.time, ev.request_id.clone(), ev.actor.clone())
                })
                .into_iter()
                .collect(),
            Err(_) => Vec::new(),
        };
        self.conclude_with(ev, genesis, res).await
    }

    async fn create_tenant_inner(
        &self,
        ctx: &RequestCtx,
        ev: &mut AuditEvent,
        req: proto::CreateTenant,
    ) -> Result<(proto::Tenant, Vec<Op>)> {
        if !ctx.principal.is_operator() {
            return Err(Error::forbidden("only operators create tenants"));
        }
        check_name("tenant", &req.name)?;
        if self.store.find_tenant_by_name(&req.name).await?.is_some() {
            return Err(Error::new(
                Code::AlreadyExists,
                "a tenant with this name already exists",
            ));
        }
        let now = self.now();
        let id = TenantId::generate(self.rng.as_ref());
        let (_, wrapped) = self.keys.new_kek(self.rng.as_ref(), &id, 1);
        ev.objects.push(id.to_string());
        let tenant = TenantRow {
            id: id.clone(),
            name: req.name,
            created_at: now,
        };
        let ops = vec![
            Op::InsertTenant(tenant.clone()),
            Op::InsertTenantKey(TenantKeyRow {
                tenant: id.clone(),
                version: 1,
                wrapped,
                created_at: now,
            }),
        ];
        Ok((
            proto::Tenant {
                id: id.to_string(),
                name: tenant.name,
                created_at: now,
            },
            ops,
        ))
    }

    /// Issues an API key. Operators issue operator keys, or `admin`/`auditor` keys of a tenant;
    /// tenant admins issue keys of their own tenant with any of its roles.
    pub async fn create_api_key(
        &self,
        ctx: &RequestCtx,
        req: proto::CreateApiKey,
    ) -> Result<proto::CreatedApiKey> {
        let mut ev = self.event(ctx, "api_key.create");
        let res = self.create_api_key_inner(ctx, &mut ev, req).await;
        self.conclude(ev, res).await
    }

    async fn create_api_key_inner(
        &self,
        ctx: &RequestCtx,
        ev: &mut AuditEvent,
        req: proto::CreateApiKey,
    ) -> Result<(proto::CreatedApiKey, Vec<Op>)> {
        check_label(&req.name)?;
        if !(1..=MAX_KEY_DAYS).contains(&req.expires_in_days) {
            return Err(Error::out_of_range(format!(
                "expires_in_days must be 1 to {MAX_KEY_DAYS}"
            )));
        }
        let mut roles = req.roles.clone();
        roles.sort();
        roles.dedup();
        let p = &ctx.principal;
        let tenant = if p.is_operator() {
            match &req.tenant {
                None => {
                    // A platform key: the operator's, or the platform's compliance officer's.
                    if roles != [ROLE_COMPLIANCE] {
                        if roles.iter().any(|r| r != ROLE_OPERATOR) {
                            return Err(Error::new(
                                Code::InvalidRole,
                                "platform keys carry the `operator` role or the `compliance` role only",
                            ));
                        }
                        roles = vec![ROLE_OPERATOR.to_owned()];
                    }
                    None
                }
                Some(t) => {
                    let id = TenantId::parse(t).ok_or_else(|| {
                        Error::new(Code::InvalidId, "`tenant` is not a tenant id")
                    })?;
                    if self.store.find_tenant(&id).await?.is_none() {
                        return Err(Error::not_found("tenant"));
                    }
                    if roles.is_empty()
                        || roles
                            .iter()
                            .any(|r| r != ROLE_ADMIN && r != ROLE_AUDITOR && r != ROLE_COMPLIANCE)
                    {
                        return Err(Error::forbidden(
                            "operators issue tenant keys with the `admin`, `auditor` or `compliance` roles only; data roles are granted by the tenant's admin",
                        ));
                    }
                    // The tenant sees in its own log that an operator issued one of its keys.
                    ev.tenant = Some(id.clone());
                    Some(id)
                }
            }
        } else {
            let tenant = self.require_admin(ctx)?;
            if let Some(t) = &req.tenant {
                if t != tenant.as_str() {
                    return Err(Error::forbidden(
                        "a tenant admin issues keys of its own tenant only",
                    ));
                }
            }
            if roles.is_empty() {
                return Err(Error::new(
                    Code::InvalidRole,
                    "name at least one role for the key",
                ));
            }
            for r in &roles {
                if r == ROLE_OPERATOR {
                    return Err(Error::forbidden(
                        "tenant keys cannot carry the `operator` role",
                    ));
                }
                if !is_builtin(r) && self.store.find_role(&tenant, r).await?.is_none() {
                    return Err(Error::new(
                        Code::UnknownRole,
                        format!("role {} is not defined", quote_name(r)),
                    ));
                }
            }
            Some(tenant)
        };
        let ttl = i64::from(req.expires_in_days) * DAY_MS;
        let (token, row) = self.new_api_key(&req.name, tenant.clone(), roles.clone(), ttl);
        ev.objects.push(row.id.to_string());
        let out = proto::CreatedApiKey {
            id: row.id.to_string(),
            key: token,
            tenant: tenant.map(|t| t.to_string()),
            roles,
            expires_at: row.expires_at,
        };
        Ok((out, vec![Op::InsertApiKey(row)]))
    }

    /// Defines or changes a collection schema. Returns the collection and whether it is new.
    pub async fn put_collection(
        &self,
        ctx: &RequestCtx,
        name: &str,
        def: proto::CollectionDef,
        pre: Precondition,
    ) -> Result<(proto::Collection, bool)> {
        let mut ev = self.event(ctx, "collection.put");
        let res = self
            .put_collection_inner(ctx, &mut ev, name, def, pre)
            .await;
        self.conclude(ev, res).await
    }

    async fn put_collection_inner(
        &self,
        ctx: &RequestCtx,
        ev: &mut AuditEvent,
        name: &str,
        def: proto::CollectionDef,
        pre: Precondition,
    ) -> Result<((proto::Collection, bool), Vec<Op>)> {
        let tenant = self.require_admin(ctx)?;
        check_name("collection", name)?;
        ev.collection = Some(name.to_owned());
        validate_collection(&def)?;
        let old = self.store.find_collection(&tenant, name).await?;
        pre.check("collection", old.as_ref().map(|o| o.version))?;
        if let Some(old) = &old {
            check_compatible(&old.def, &def)?;
        }
        let expected_version = old.as_ref().map_or(0, |o| o.version);
        ev.fields = def.fields.iter().map(|f| f.name.clone()).collect();
        let row = CollectionRow {
            tenant,
            name: name.to_owned(),
            version: expected_version + 1,
            def,
            updated_at: self.now(),
        };
        let view = collection_view(&row);
        Ok((
            (view, old.is_none()),
            vec![Op::PutCollection {
                row,
                expected_version,
            }],
        ))
    }

    /// Lists the tenant's collection schemas (schemas hold no personal data).
    pub async fn list_collections(&self, ctx: &RequestCtx) -> Result<proto::CollectionList> {
        let ev = self.event(ctx, "collection.list");
        let res = async {
            let tenant = self.tenant_of(ctx)?;
            let rows = self.store.find_collections(&tenant).await?;
            let collections = rows.iter().map(collection_view).collect();
            Ok((proto::CollectionList { collections }, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// One collection schema.
    pub async fn get_collection(&self, ctx: &RequestCtx, name: &str) -> Result<proto::Collection> {
        let mut ev = self.event(ctx, "collection.get");
        let res = async {
            let tenant = self.tenant_of(ctx)?;
            let row = self.load_collection(&tenant, name, &mut ev).await?;
            Ok((collection_view(&row), vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Defines or replaces a role. Returns the role and whether it is new.
    pub async fn put_role(
        &self,
        ctx: &RequestCtx,
        name: &str,
        def: proto::RoleDef,
        pre: Precondition,
    ) -> Result<(proto::Role, bool)> {
        let mut ev = self.event(ctx, "role.put");
        let res = async {
            let tenant = self.require_admin(ctx)?;
            check_name("role", name)?;
            if is_builtin(name) {
                return Err(Error::new(
                    Code::ReservedName,
                    format!("`{name}` is a built-in role and cannot be redefined"),
                ));
            }
            ev.objects.push(format!("role:{name}"));
            let collections: BTreeMap<String, CollectionRow> = self
                .store
                .find_collections(&tenant)
                .await?
                .into_iter()
                .map(|c| (c.name.clone(), c))
                .collect();
            validate_role(&def, |n| collections.get(n).map(|c| &c.def))?;
            let current = self
                .store
                .find_role(&tenant, name)
                .await?
                .map(|r| r.version);
            pre.check("role", current)?;
            let expected_version = current.unwrap_or(0);
            let row = RoleRow {
                tenant,
                name: name.to_owned(),
                version: expected_version + 1,
                def,
                updated_at: self.now(),
            };
            let view = role_view(&row);
            Ok((
                (view, current.is_none()),
                vec![Op::PutRole {
                    row,
                    expected_version,
                }],
            ))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Who may read a TOMs report of which scope: a tenant's `admin` or `auditor` their own
    /// tenant's; an operator the platform's or, naming it, any tenant's (the report holds
    /// counts and settings, never data). Records the request as `action`. Returns the tenant
    /// (`None`: the platform).
    pub async fn authorize_compliance_report(
        &self,
        ctx: &RequestCtx,
        action: &'static str,
        tenant: Option<&str>,
    ) -> Result<Option<TenantId>> {
        let mut ev = self.event(ctx, action);
        let res = async {
            if let Some(r) = &ctx.principal.restricted_to {
                return Err(Error::forbidden(format!(
                    "this session must first complete `{r}` (see /v1/auth)"
                )));
            }
            let platform_compliance = ctx.principal.tenant.is_none()
                && ctx.principal.has_role(ROLE_COMPLIANCE);
            let scope = if ctx.principal.is_operator() || platform_compliance {
                match tenant {
                    None => None,
                    Some(t) => Some(
                        self.resolve_tenant(Some(t))
                            .await?
                            .flatten()
                            .ok_or_else(|| Error::new(Code::NotFound, "no such tenant"))?,
                    ),
                }
            } else {
                let own = self.tenant_of(ctx)?;
                if ![ROLE_ADMIN, ROLE_AUDITOR, ROLE_COMPLIANCE]
                    .iter()
                    .any(|r| ctx.principal.has_role(r))
                {
                    return Err(Error::forbidden(
                        "the TOMs report needs the tenant's `admin`, `auditor` or `compliance` role",
                    ));
                }
                if tenant.is_some_and(|t| t != own.as_str()) {
                    return Err(Error::forbidden("a tenant reads its own report only"));
                }
                Some(own)
            };
            ev.objects.push(
                scope
                    .as_ref()
                    .map_or("scope:platform".into(), |t| format!("scope:{t}")),
            );
            Ok((scope, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// One role the tenant defined.
    pub async fn get_role(&self, ctx: &RequestCtx, name: &str) -> Result<proto::Role> {
        let mut ev = self.event(ctx, "role.get");
        let res = async {
            let tenant = self.require_admin(ctx)?;
            check_name("role", name)?;
            ev.objects.push(format!("role:{name}"));
            let row = self
                .store
                .find_role(&tenant, name)
                .await?
                .ok_or_else(|| Error::new(Code::NotFound, "no such role"))?;
            Ok((role_view(&row), vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Lists the tenant's roles, built-in ones first.
    pub async fn list_roles(&self, ctx: &RequestCtx) -> Result<proto::RoleList> {
        let ev = self.event(ctx, "role.list");
        let res = async {
            let tenant = self.require_admin(ctx)?;
            let mut roles: Vec<proto::Role> = [ROLE_ADMIN, ROLE_AUDITOR]
                .into_iter()
                .map(|n| proto::Role {
                    name: n.into(),
                    version: 0,
                    builtin: true,
                    collections: BTreeMap::new(),
                    updated_at: 0,
                })
                .collect();
            for r in self.store.find_roles(&tenant).await? {
                roles.push(role_view(&r));
            }
            Ok((proto::RoleList { roles }, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Reads the caller's audit log: a tenant's for its `admin` and `auditor`, the platform's
    /// for operators. The read itself is audited.
    pub async fn list_audit(
        &self,
        ctx: &RequestCtx,
        mut q: AuditQuery,
    ) -> Result<proto::AuditPage> {
        let ev = self.event(ctx, "audit.read");
        let res = async {
            let p = &ctx.principal;
            let log = match &p.tenant {
                Some(t) if p.has_role(ROLE_ADMIN) || p.has_role(ROLE_AUDITOR) => t.to_string(),
                None if p.is_operator() => crate::audit::PLATFORM_LOG.to_owned(),
                _ => {
                    return Err(Error::forbidden(
                        "reading the audit trail needs the `auditor` or `admin` role",
                    ))
                }
            };
            if q.limit == 0 {
                q.limit = 100;
            }
            if q.limit > MAX_AUDIT_PAGE {
                return Err(Error::out_of_range(format!(
                    "limit is at most {MAX_AUDIT_PAGE}"
                )));
            }
            let entries = self.store.find_audit_entries(&log, &q).await?;
            let next = (entries.len() as u32 == q.limit)
                .then(|| entries.last().map(|e| e.seq))
                .flatten();
            Ok((proto::AuditPage { entries, next }, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// A collection of the tenant, or `unknown_collection`. Notes its name in the event.
    pub(super) async fn load_collection(
        &self,
        tenant: &TenantId,
        name: &str,
        ev: &mut AuditEvent,
    ) -> Result<CollectionRow> {
        check_name("collection", name)?;
        let key = (tenant.clone(), name.to_owned());
        let found = self
            .collection_cache
            .get_or_load(key, self.store.find_collection(tenant, name))
            .await?;
        let row = found.ok_or_else(|| {
            Error::new(
                Code::UnknownCollection,
                format!("collection `{name}` does not exist in this tenant"),
            )
        })?;
        ev.collection = Some(row.name.clone());
        Ok(row)
    }
}
