//! Queries of the reader connections and the mapping of rows to the core's row types.

use strongroom_core::checkpoint::CheckpointRow;
use strongroom_core::ids::{ApiKeyId, RecordId, SessionId, SubjectId, TenantId, UserId};
use strongroom_core::store::{
    ApiKeyRow, AuditHead, AuditQuery, CollectionRow, RecordRow, RecordState, RoleRow, SessionRow,
    StoreError, StoreResult, SubjectRow, TenantKeyRow, TenantRow, UserRow,
};
use strongroom_crypto::merkle::CompactRange;
use strongroom_proto::{AuditEntry, SecuritySettings};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, Row};

use crate::unavailable;

type Param<'a> = &'a (dyn ToSql + Sync);

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// Reading a column without panicking: a value of the wrong type, a NULL where none belongs or
/// a negative count is a [`StoreError::Corrupt`] naming the column, never a panic.
pub(crate) trait Col {
    fn col<'a, T: FromSql<'a>>(&'a self, i: usize) -> StoreResult<T>;
    /// A non-negative `BIGINT`.
    fn count(&self, i: usize) -> StoreResult<u64> {
        u64::try_from(self.col::<i64>(i)?).map_err(|_| corrupt("a negative count"))
    }
    /// A `BIGINT` that fits 32 bits.
    fn small(&self, i: usize) -> StoreResult<u32> {
        u32::try_from(self.col::<i64>(i)?).map_err(|_| corrupt("a number out of range"))
    }
}

impl Col for Row {
    fn col<'a, T: FromSql<'a>>(&'a self, i: usize) -> StoreResult<T> {
        self.try_get(i).map_err(|e| {
            let name = self.columns().get(i).map_or("?", |c| c.name());
            StoreError::Corrupt(format!("column {name}: {e}"))
        })
    }
}

pub(crate) fn hash32(v: Vec<u8>) -> StoreResult<[u8; 32]> {
    v.try_into().map_err(|_| corrupt("hash length"))
}

async fn rows(c: &Client, sql: &str, p: &[Param<'_>]) -> StoreResult<Vec<Row>> {
    c.query(sql, p).await.map_err(unavailable)
}

fn json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|_| corrupt(what))
}

pub(crate) async fn declarations(
    c: &Client,
    tenant: Option<&TenantId>,
) -> StoreResult<Vec<strongroom_core::store::DeclarationRow>> {
    let t = tenant.map(|t| t.as_str());
    rows(
        c,
        "SELECT id, version, measure, statement, owner, evidence_name, evidence_sha256, declared_at,
                review_by, withdrawn, recorded_by, recorded_at
         FROM declarations WHERE tenant IS NOT DISTINCT FROM $1 ORDER BY id, version",
        &[&t],
    )
    .await?
    .into_iter()
    .map(|r| {
        Ok(strongroom_core::store::DeclarationRow {
            id: r.col(0)?,
            version: r.small(1)?,
            tenant: tenant.cloned(),
            measure: r.col(2)?,
            statement: r.col(3)?,
            owner: r.col(4)?,
            evidence_name: r.col(5)?,
            evidence_sha256: r.col::<Option<Vec<u8>>>(6)?.map(hash32).transpose()?,
            declared_at: r.col(7)?,
            review_by: r.col(8)?,
            withdrawn: r.col(9)?,
            recorded_by: r.col(10)?,
            recorded_at: r.col(11)?,
        })
    })
    .collect()
}

pub(crate) async fn register_entries(
    c: &Client,
    register: &str,
    tenant: Option<&TenantId>,
) -> StoreResult<Vec<strongroom_core::store::RegisterEntryRow>> {
    let t = tenant.map(|t| t.as_str());
    rows(
        c,
        "SELECT id, version, body, recorded_by, recorded_at FROM register_entries
         WHERE register = $1 AND tenant IS NOT DISTINCT FROM $2 ORDER BY id, version",
        &[&register, &t],
    )
    .await?
    .into_iter()
    .map(|r| {
        Ok(strongroom_core::store::RegisterEntryRow {
            register: register.to_owned(),
            id: r.col(0)?,
            version: r.small(1)?,
            tenant: tenant.cloned(),
            body: r.col(2)?,
            recorded_by: r.col(3)?,
            recorded_at: r.col(4)?,
        })
    })
    .collect()
}

pub(crate) async fn meta(c: &Client, key: &str) -> StoreResult<Option<String>> {
    rows(c, "SELECT value FROM meta WHERE key = $1", &[&key])
        .await?
        .pop()
        .map(|r| r.col(0))
        .transpose()
}

pub(crate) async fn tenant(
    c: &Client,
    column: &str,
    value: &str,
) -> StoreResult<Option<TenantRow>> {
    let sql = if column == "id" {
        "SELECT id, name, created_at FROM tenants WHERE id = $1"
    } else {
        "SELECT id, name, created_at FROM tenants WHERE name = $1"
    };
    rows(c, sql, &[&value])
        .await?
        .pop()
        .map(|r| {
            Ok(TenantRow {
                id: TenantId::from_stored(r.col(0)?),
                name: r.col(1)?,
                created_at: r.col(2)?,
            })
        })
        .transpose()
}

pub(crate) async fn tenant_keys(c: &Client, tenant: &TenantId) -> StoreResult<Vec<TenantKeyRow>> {
    rows(
        c,
        "SELECT version, wrapped, created_at FROM tenant_keys WHERE tenant = $1 ORDER BY version",
        &[&tenant.as_str()],
    )
    .await?
    .into_iter()
    .map(|r| {
        Ok(TenantKeyRow {
            tenant: tenant.clone(),
            version: u32::try_from(r.col::<i64>(0)?).map_err(|_| corrupt("key version"))?,
            wrapped: r.col(1)?,
            created_at: r.col(2)?,
        })
    })
    .collect()
}

pub(crate) async fn api_keys(
    c: &Client,
    clause: &str,
    p: Param<'_>,
) -> StoreResult<Vec<ApiKeyRow>> {
    let sql = format!(
        "SELECT id, tenant, name, hash, roles, created_at, expires_at, last_used_at, rotated_to FROM api_keys WHERE {clause} ORDER BY ord"
    );
    rows(c, &sql, &[p])
        .await?
        .into_iter()
        .map(|r| {
            Ok(ApiKeyRow {
                id: ApiKeyId::from_stored(r.col(0)?),
                tenant: r.col::<Option<String>>(1)?.map(TenantId::from_stored),
                name: r.col(2)?,
                hash: hash32(r.col(3)?)?,
                roles: json(r.col(4)?, "api key roles")?,
                created_at: r.col(5)?,
                expires_at: r.col(6)?,
                last_used_at: r.col(7)?,
                rotated_to: r.col::<Option<String>>(8)?.map(ApiKeyId::from_stored),
            })
        })
        .collect()
}

pub(crate) async fn collections(
    c: &Client,
    tenant: &TenantId,
    name: Option<&str>,
) -> StoreResult<Vec<CollectionRow>> {
    rows(
        c,
        "SELECT name, version, def, updated_at FROM collections WHERE tenant = $1 AND ($2::TEXT IS NULL OR name = $2) ORDER BY name",
        &[&tenant.as_str(), &name],
    )
    .await?
    .into_iter()
    .map(|r| {
        Ok(CollectionRow {
            tenant: tenant.clone(),
            name: r.col(0)?,
            version: r.count(1)?,
            def: json(r.col(2)?, "collection definition")?,
            updated_at: r.col(3)?,
        })
    })
    .collect()
}

pub(crate) async fn roles(
    c: &Client,
    tenant: &TenantId,
    name: Option<&str>,
) -> StoreResult<Vec<RoleRow>> {
    rows(
        c,
        "SELECT name, def, updated_at, version FROM roles WHERE tenant = $1 AND ($2::TEXT IS NULL OR name = $2) ORDER BY name",
        &[&tenant.as_str(), &name],
    )
    .await?
    .into_iter()
    .map(|r| Ok(RoleRow { tenant: tenant.clone(), name: r.col(0)?, version: r.count(3)?, def: json(r.col(1)?, "role definition")?, updated_at: r.col(2)? }))
    .collect()
}

/// A subject row read as `id, kek_version, wrapped_dek, ref_index, created_at, flags`.
fn subject_from_row(tenant: &TenantId, r: &Row) -> StoreResult<SubjectRow> {
    Ok(SubjectRow {
        tenant: tenant.clone(),
        id: SubjectId::from_stored(r.col(0)?),
        kek_version: u32::try_from(r.col::<i64>(1)?).map_err(|_| corrupt("key version"))?,
        wrapped_dek: r.col(2)?,
        ref_index: r.col::<Option<Vec<u8>>>(3)?.map(hash32).transpose()?,
        created_at: r.col(4)?,
        flags: flags(r.col(5)?)?,
    })
}

pub(crate) async fn subject(
    c: &Client,
    tenant: &TenantId,
    clause: &str,
    p: Param<'_>,
) -> StoreResult<Option<SubjectRow>> {
    let sql = format!("SELECT id, kek_version, wrapped_dek, ref_index, created_at, flags FROM subjects WHERE tenant = $1 AND {clause}");
    rows(c, &sql, &[&tenant.as_str(), p])
        .await?
        .pop()
        .map(|r| subject_from_row(tenant, &r))
        .transpose()
}

/// A record's columns and its subject's flags (a primary-key lookup in the same statement).
const RECORD_COLUMNS: &str =
    "r.id, r.collection, r.subject, r.version, r.state, r.created_at, r.updated_at, r.data,
     COALESCE((SELECT s.flags FROM subjects s WHERE s.tenant = r.tenant AND s.id = r.subject), 0)";

fn flags(n: i32) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| corrupt("subject flags"))
}

fn record_state(n: i64) -> StoreResult<RecordState> {
    match n {
        0 => Ok(RecordState::Active),
        1 => Ok(RecordState::Blocked),
        _ => Err(corrupt("record state")),
    }
}

fn record_row(tenant: &TenantId, r: &Row) -> StoreResult<RecordRow> {
    Ok(RecordRow {
        tenant: tenant.clone(),
        id: RecordId::from_stored(r.col(0)?),
        collection: r.col(1)?,
        subject: SubjectId::from_stored(r.col(2)?),
        version: r.count(3)?,
        state: record_state(r.col::<i64>(4)?)?,
        created_at: r.col(5)?,
        updated_at: r.col(6)?,
        data: r.col(7)?,
        subject_flags: flags(r.col(8)?)?,
    })
}

pub(crate) async fn record(
    c: &Client,
    tenant: &TenantId,
    collection: &str,
    id: &RecordId,
) -> StoreResult<Option<RecordRow>> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM records r WHERE r.tenant = $1 AND r.id = $2 AND r.collection = $3");
    rows(c, &sql, &[&tenant.as_str(), &id.as_str(), &collection])
        .await?
        .pop()
        .map(|r| record_row(tenant, &r))
        .transpose()
}

pub(crate) async fn records_by_index(
    c: &Client,
    tenant: &TenantId,
    collection: &str,
    field: &str,
    hash: &[u8; 32],
    limit: u32,
) -> StoreResult<Vec<RecordRow>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM blind_index b JOIN records r ON r.tenant = b.tenant AND r.id = b.record
         WHERE b.tenant = $1 AND b.collection = $2 AND b.field = $3 AND b.hash = $4 AND r.collection = $2 AND r.state = 0
         ORDER BY r.ord LIMIT $5"
    );
    let limit = i64::from(limit);
    rows(
        c,
        &sql,
        &[
            &tenant.as_str(),
            &collection,
            &field,
            &hash.as_slice(),
            &limit,
        ],
    )
    .await?
    .iter()
    .map(|r| record_row(tenant, r))
    .collect::<StoreResult<_>>()
}

pub(crate) async fn history(
    c: &Client,
    tenant: &TenantId,
    id: &RecordId,
) -> StoreResult<Vec<(u64, i64, Vec<u8>)>> {
    rows(
        c,
        "SELECT version, updated_at, data FROM record_history WHERE tenant = $1 AND id = $2 ORDER BY version",
        &[&tenant.as_str(), &id.as_str()],
    )
    .await?
    .into_iter()
    .map(|r| Ok((r.count(0)?, r.col(1)?, r.col(2)?)))
    .collect::<StoreResult<_>>()
}

pub(crate) async fn users(
    c: &Client,
    tenant: Option<&TenantId>,
    clause: &str,
    p: &str,
) -> StoreResult<Vec<UserRow>> {
    let sql = format!(
        "SELECT id, tenant, username, username_key, password_hash, password_changed_at, password_history, roles, disabled,
                failed_count, lock_level, locked_until, totp_secret, totp_pending, totp_last_step, recovery_codes, created_at, version
         FROM users WHERE tenant IS NOT DISTINCT FROM $1 AND {clause} ORDER BY ord"
    );
    let t = tenant.map(|t| t.to_string());
    rows(c, &sql, &[&t, &p])
        .await?
        .into_iter()
        .map(|r| {
            let codes: Vec<String> = json(r.col(15)?, "recovery codes")?;
            Ok(UserRow {
                id: UserId::from_stored(r.col(0)?),
                tenant: r.col::<Option<String>>(1)?.map(TenantId::from_stored),
                username: r.col(2)?,
                username_key: r.col(3)?,
                password_hash: r.col(4)?,
                password_changed_at: r.col(5)?,
                password_history: json(r.col(6)?, "password history")?,
                roles: json(r.col(7)?, "user roles")?,
                disabled: r.col(8)?,
                failed_count: r.small(9)?,
                lock_level: r.small(10)?,
                locked_until: r.col(11)?,
                totp_secret: r.col(12)?,
                totp_pending: r.col(13)?,
                totp_last_step: r.col(14)?,
                recovery_codes: codes
                    .iter()
                    .map(|c| {
                        strongroom_crypto::unhex(c)
                            .ok_or_else(|| corrupt("recovery code"))
                            .and_then(hash32)
                    })
                    .collect::<StoreResult<_>>()?,
                created_at: r.col(16)?,
                version: r.count(17)?,
            })
        })
        .collect()
}

pub(crate) async fn session(c: &Client, hash: &[u8; 32]) -> StoreResult<Option<SessionRow>> {
    rows(
        c,
        "SELECT id, tenant, user_id, created_at, last_seen_at, expires_at, idle_timeout_ms, revoked_at, restricted_to
         FROM sessions WHERE token_hash = $1",
        &[&hash.as_slice()],
    )
    .await?
    .pop()
    .map(|r| -> StoreResult<SessionRow> {
        Ok(SessionRow {
        id: SessionId::from_stored(r.col(0)?),
        token_hash: *hash,
        tenant: r.col::<Option<String>>(1)?.map(TenantId::from_stored),
        user: UserId::from_stored(r.col(2)?),
        created_at: r.col(3)?,
        last_seen_at: r.col(4)?,
        expires_at: r.col(5)?,
        idle_timeout_ms: r.col(6)?,
        revoked_at: r.col(7)?,
        restricted_to: r.col(8)?,
        })
    })
    .transpose()
}

pub(crate) async fn settings(c: &Client, scope: &str) -> StoreResult<Option<SecuritySettings>> {
    rows(c, "SELECT body FROM settings WHERE scope = $1", &[&scope])
        .await?
        .pop()
        .map(|r| json(r.col(0)?, "security settings"))
        .transpose()
}

pub(crate) async fn audit_logs(c: &Client) -> StoreResult<Vec<String>> {
    rows(
        c,
        "SELECT log FROM audit_heads UNION SELECT log FROM audit_checkpoints UNION SELECT DISTINCT log FROM audit
         UNION SELECT DISTINCT log FROM audit_nodes UNION SELECT DISTINCT log FROM audit_subjects ORDER BY 1",
        &[],
    )
    .await?
    .into_iter()
    .map(|r| r.col(0))
    .collect::<StoreResult<_>>()
}

pub(crate) async fn audit_heads(
    c: &Client,
    log: Option<&str>,
) -> StoreResult<Vec<(String, AuditHead)>> {
    rows(
        c,
        "SELECT log, size, hash, compact FROM audit_heads WHERE ($1::TEXT IS NULL OR log = $1) AND size > 0 ORDER BY log",
        &[&log],
    )
    .await?
    .into_iter()
    .map(|r| {
        let head = AuditHead {
            size: r.count(1)?,
            last_hash: hash32(r.col(2)?)?,
            compact: CompactRange::decode(r.col(3)?).ok_or_else(|| corrupt("audit head"))?,
        };
        Ok((r.col(0)?, head))
    })
    .collect()
}

pub(crate) async fn audit_raw(
    c: &Client,
    log: &str,
    after: u64,
    limit: u32,
) -> StoreResult<Vec<(u64, String, [u8; 32])>> {
    rows(
        c,
        "SELECT seq, body, hash FROM audit WHERE log = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        &[&log, &(after as i64), &i64::from(limit)],
    )
    .await?
    .into_iter()
    .map(|r| Ok((r.count(0)?, r.col(1)?, hash32(r.col(2)?)?)))
    .collect()
}

pub(crate) async fn audit_tail(c: &Client, log: &str) -> StoreResult<Option<(u64, [u8; 32])>> {
    rows(
        c,
        "SELECT seq, hash FROM audit WHERE log = $1 ORDER BY seq DESC LIMIT 1",
        &[&log],
    )
    .await?
    .pop()
    .map(|r| Ok((r.count(0)?, hash32(r.col(1)?)?)))
    .transpose()
}

pub(crate) async fn audit_hashes(
    c: &Client,
    log: &str,
    level: u32,
    index: u64,
    count: u64,
) -> StoreResult<Vec<[u8; 32]>> {
    let (lo, hi) = (index as i64, (index + count) as i64);
    let found = if level == 0 {
        // Leaf index i is entry seq i + 1.
        rows(
            c,
            "SELECT hash FROM audit WHERE log = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
            &[&log, &lo, &hi],
        )
        .await?
    } else {
        rows(
            c,
            "SELECT hash FROM audit_nodes WHERE log = $1 AND level = $2 AND idx >= $3 AND idx < $4 ORDER BY idx",
            &[&log, &(level as i32), &lo, &hi],
        )
        .await?
    };
    found.into_iter().map(|r| hash32(r.col(0)?)).collect()
}

pub(crate) async fn audit_nodes(
    c: &Client,
    log: &str,
    after: Option<(u32, u64)>,
    limit: u32,
) -> StoreResult<Vec<(u32, u64, [u8; 32])>> {
    let (level, idx) = after.map_or((-1i32, -1i64), |(l, i)| (l as i32, i as i64));
    rows(
        c,
        "SELECT level, idx, hash FROM audit_nodes WHERE log = $1 AND (level, idx) > ($2, $3)
         ORDER BY level, idx LIMIT $4",
        &[&log, &level, &idx, &i64::from(limit)],
    )
    .await?
    .into_iter()
    .map(|r| {
        Ok((
            u32::try_from(r.col::<i32>(0)?).map_err(|_| corrupt("tree level"))?,
            r.count(1)?,
            hash32(r.col(2)?)?,
        ))
    })
    .collect()
}

pub(crate) async fn audit_subject_rows(
    c: &Client,
    log: &str,
    after: Option<(String, u64)>,
    limit: u32,
) -> StoreResult<Vec<(String, u64)>> {
    let (subject, seq) = after.map_or((String::new(), -1i64), |(s, q)| (s, q as i64));
    rows(
        c,
        "SELECT subject, seq FROM audit_subjects WHERE log = $1 AND (subject, seq) > ($2, $3)
         ORDER BY subject, seq LIMIT $4",
        &[&log, &subject, &seq, &i64::from(limit)],
    )
    .await?
    .into_iter()
    .map(|r| Ok((r.col(0)?, r.count(1)?)))
    .collect::<StoreResult<_>>()
}

/// The generated columns of the audit table and their expressions as PostgreSQL prints them.
const GENERATED: [(&str, &str); 6] = [
    ("time", "(((body)::jsonb ->> 'time'::text))::bigint"),
    ("actor", "((body)::jsonb ->> 'actor'::text)"),
    ("action", "((body)::jsonb ->> 'action'::text)"),
    ("outcome", "((body)::jsonb ->> 'outcome'::text)"),
    ("subject", "((body)::jsonb ->> 'subject'::text)"),
    ("collection", "((body)::jsonb ->> 'collection'::text)"),
];

pub(crate) async fn check_audit_schema(c: &Client) -> StoreResult<Vec<String>> {
    let mut problems = Vec::new();
    let columns = rows(
        c,
        "SELECT column_name::text, is_generated::text, coalesce(generation_expression::text, '')
         FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'audit'",
        &[],
    )
    .await?;
    for (name, expr) in GENERATED {
        let mut found = None;
        for r in &columns {
            if r.col::<&str>(0)? == name {
                found = Some(r);
            }
        }
        match found {
            None => problems.push(format!("audit.{name} is missing")),
            Some(r) if r.col::<&str>(1)? != "ALWAYS" || r.col::<&str>(2)? != expr => problems.push(
                format!("audit.{name} is no longer generated from the entry body"),
            ),
            Some(_) => {}
        }
    }
    let triggers = rows(
        c,
        "SELECT t.tgname::text, c.relname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE NOT t.tgisinternal AND c.relname LIKE 'audit%'
         UNION ALL SELECT r.rulename::text, r.tablename::text FROM pg_rules r WHERE r.tablename LIKE 'audit%'
         UNION ALL SELECT p.policyname::text, p.tablename::text FROM pg_policies p WHERE p.tablename LIKE 'audit%'",
        &[],
    )
    .await?;
    for r in triggers {
        problems.push(format!(
            "{} on {} is not part of the schema (a trigger, rule or policy could rewrite what is read or written)",
            r.col::<&str>(0)?,
            r.col::<&str>(1)?
        ));
    }
    Ok(problems)
}

pub(crate) async fn tenant_ids(c: &Client) -> StoreResult<Vec<TenantId>> {
    rows(c, "SELECT id FROM tenants ORDER BY id", &[])
        .await?
        .into_iter()
        .map(|r| TenantId::parse(r.col(0)?).ok_or_else(|| corrupt("tenant id")))
        .collect()
}

pub(crate) async fn checkpoints(
    c: &Client,
    log: &str,
    latest_only: bool,
) -> StoreResult<Vec<CheckpointRow>> {
    let sql = if latest_only {
        "SELECT seq, size, root, time, prev, signature, format, origin FROM audit_checkpoints WHERE log = $1 ORDER BY seq DESC LIMIT 1"
    } else {
        "SELECT seq, size, root, time, prev, signature, format, origin FROM audit_checkpoints WHERE log = $1 ORDER BY seq"
    };
    rows(c, sql, &[&log])
        .await?
        .into_iter()
        .map(|r| {
            Ok(CheckpointRow {
                log: log.to_owned(),
                seq: r.count(0)?,
                size: r.count(1)?,
                root: hash32(r.col(2)?)?,
                time: r.col(3)?,
                prev: hash32(r.col(4)?)?,
                signature: r
                    .col::<Vec<u8>>(5)?
                    .try_into()
                    .map_err(|_| corrupt("checkpoint signature"))?,
                // An unknown format fails verification instead of stopping it.
                format: u8::try_from(r.col::<i16>(6)?).unwrap_or(0),
                origin: r.col(7)?,
            })
        })
        .collect()
}

pub(crate) async fn audit(c: &Client, log: &str, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
    let after = q.after_seq as i64;
    let limit = i64::from(q.limit);
    let mut sql = String::from("SELECT body FROM audit WHERE log = $1 AND seq > $2");
    let mut params: Vec<Param<'_>> = vec![&log, &after];
    if let Some(subject) = &q.subject {
        params.push(subject);
        let n = params.len();
        sql.push_str(&format!(
            " AND (subject = ${n} OR seq IN (SELECT seq FROM audit_subjects WHERE log = $1 AND subject = ${n}))"
        ));
    }
    for (column, v) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("outcome", &q.outcome),
        ("collection", &q.collection),
    ] {
        if let Some(v) = v {
            params.push(v);
            sql.push_str(&format!(" AND {column} = ${}", params.len()));
        }
    }
    if let Some(t) = &q.from_ms {
        params.push(t);
        sql.push_str(&format!(" AND time >= ${}", params.len()));
    }
    if let Some(t) = &q.to_ms {
        params.push(t);
        sql.push_str(&format!(" AND time < ${}", params.len()));
    }
    params.push(&limit);
    sql.push_str(&format!(" ORDER BY seq LIMIT ${}", params.len()));
    rows(c, &sql, &params)
        .await?
        .into_iter()
        .map(|r| json(r.col::<&str>(0)?, "audit entry"))
        .collect()
}

pub(crate) async fn jobs(
    c: &Client,
    id: Option<&str>,
) -> StoreResult<Vec<strongroom_core::store::JobRow>> {
    use strongroom_core::store::{JobRow, JobState};
    rows(
        c,
        "SELECT id, kind, tenant, every_ms, next_run_at, state, done, total, cursor, started_at,
                last_run_at, last_ok_at, last_error, runs, lease_holder, lease_until
         FROM jobs WHERE $1::TEXT IS NULL OR id = $1 ORDER BY id",
        &[&id],
    )
    .await?
    .into_iter()
    .map(|r| {
        let tenant: Option<String> = r.col(2)?;
        let state: String = r.col(5)?;
        let total: Option<i64> = r.col(7)?;
        Ok(JobRow {
            id: r.col(0)?,
            kind: r.col(1)?,
            tenant: tenant
                .map(|t| TenantId::parse(&t).ok_or_else(|| corrupt("job tenant")))
                .transpose()?,
            every_ms: r.col(3)?,
            next_run_at: r.col(4)?,
            state: JobState::parse(&state).ok_or_else(|| corrupt("job state"))?,
            done: r.count(6)?,
            total: total
                .map(|t| u64::try_from(t).map_err(|_| corrupt("a negative count")))
                .transpose()?,
            cursor: r.col(8)?,
            started_at: r.col(9)?,
            last_run_at: r.col(10)?,
            last_ok_at: r.col(11)?,
            last_error: r.col(12)?,
            runs: r.count(13)?,
            lease_holder: r.col(14)?,
            lease_until: r.col(15)?,
        })
    })
    .collect()
}

pub(crate) async fn blocked(
    c: &Client,
    tenant: &TenantId,
    collection: &str,
    before: i64,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<strongroom_core::store::BlockedRecord>> {
    rows(
        c,
        "SELECT id, subject, blocked_at FROM records
         WHERE tenant = $1 AND collection = $2 AND state = 1 AND blocked_at < $3
           AND id > coalesce($4::TEXT, '')
         ORDER BY id LIMIT $5",
        &[
            &tenant.as_str(),
            &collection,
            &before,
            &after,
            &i64::from(limit),
        ],
    )
    .await?
    .into_iter()
    .map(|r| {
        let id: String = r.col(0)?;
        let subject: String = r.col(1)?;
        let at: Option<i64> = r.col(2)?;
        Ok(strongroom_core::store::BlockedRecord {
            id: strongroom_core::ids::RecordId::parse(&id).ok_or_else(|| corrupt("record id"))?,
            collection: collection.to_owned(),
            subject: strongroom_core::ids::SubjectId::parse(&subject)
                .ok_or_else(|| corrupt("subject id"))?,
            blocked_at: at.ok_or_else(|| corrupt("a blocked record without its time"))?,
        })
    })
    .collect()
}

pub(crate) async fn subject_record_counts(
    c: &Client,
    tenant: &TenantId,
    subjects: &[strongroom_core::ids::SubjectId],
) -> StoreResult<Vec<(strongroom_core::ids::SubjectId, u64)>> {
    let mut out = Vec::with_capacity(subjects.len());
    for s in subjects {
        let r = rows(
            c,
            "SELECT count(*) FROM records WHERE tenant = $1 AND subject = $2",
            &[&tenant.as_str(), &s.as_str()],
        )
        .await?;
        let n = r.first().map_or(Ok(0), |r| r.count(0))?;
        out.push((s.clone(), n));
    }
    Ok(out)
}

pub(crate) async fn subject_records(
    c: &Client,
    tenant: &TenantId,
    subject: &strongroom_core::ids::SubjectId,
) -> StoreResult<Vec<strongroom_core::store::SubjectRecords>> {
    rows(
        c,
        "SELECT r.collection, r.state, count(*),
       coalesce(sum((SELECT count(*) FROM record_history h WHERE h.tenant = r.tenant AND h.id = r.id)), 0)::BIGINT,
       coalesce(sum((SELECT count(*) FROM blind_index b WHERE b.tenant = r.tenant AND b.record = r.id)), 0)::BIGINT
FROM records r WHERE r.tenant = $1 AND r.subject = $2
GROUP BY r.collection, r.state ORDER BY r.collection, r.state",
        &[&tenant.as_str(), &subject.as_str()],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(strongroom_core::store::SubjectRecords {
            collection: r.col(0)?,
            state: record_state(r.col::<i64>(1)?)?,
            records: r.count(2)?,
            versions: r.count(3)?,
            index_entries: r.count(4)?,
        })
    })
    .collect()
}

pub(crate) async fn expired(
    c: &Client,
    tenant: &TenantId,
    collection: &str,
    by_updated: bool,
    before: i64,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<strongroom_core::store::RecordRow>> {
    let sql = if by_updated {
        "SELECT id, subject, version, created_at, updated_at, data FROM records
         WHERE tenant = $1 AND collection = $2 AND state = 0 AND updated_at < $3
           AND id > coalesce($4::TEXT, '') ORDER BY id LIMIT $5"
    } else {
        "SELECT id, subject, version, created_at, updated_at, data FROM records
         WHERE tenant = $1 AND collection = $2 AND state = 0 AND created_at < $3
           AND id > coalesce($4::TEXT, '') ORDER BY id LIMIT $5"
    };
    rows(
        c,
        sql,
        &[
            &tenant.as_str(),
            &collection,
            &before,
            &after,
            &i64::from(limit),
        ],
    )
    .await?
    .into_iter()
    .map(|r| {
        let id: String = r.col(0)?;
        let subject: String = r.col(1)?;
        Ok(strongroom_core::store::RecordRow {
            tenant: tenant.clone(),
            collection: collection.to_owned(),
            id: strongroom_core::ids::RecordId::parse(&id).ok_or_else(|| corrupt("record id"))?,
            subject: strongroom_core::ids::SubjectId::parse(&subject)
                .ok_or_else(|| corrupt("subject id"))?,
            version: r.count(2)?,
            state: strongroom_core::store::RecordState::Active,
            created_at: r.col(3)?,
            updated_at: r.col(4)?,
            data: r.col(5)?,
            subject_flags: 0, // due rows are read for the retention job, which skips held subjects
        })
    })
    .collect()
}

pub(crate) async fn restricted_subjects(
    c: &Client,
    tenant: &TenantId,
) -> StoreResult<Vec<SubjectId>> {
    rows(
        c,
        "SELECT id FROM subjects WHERE tenant = $1 AND flags <> 0 AND flags & 1 = 1 ORDER BY id",
        &[&tenant.as_str()],
    )
    .await?
    .iter()
    .map(|r| Ok(SubjectId::from_stored(r.col(0)?)))
    .collect()
}

/// A subject's consent changes by purpose then sequence; with `purpose`, only the latest of
/// that purpose (the state in force).
pub(crate) async fn consents(
    c: &Client,
    tenant: &TenantId,
    subject: &SubjectId,
    purpose: Option<&str>,
) -> StoreResult<Vec<strongroom_core::store::ConsentRow>> {
    let found = match purpose {
        Some(p) => {
            rows(
                c,
                "SELECT purpose, seq, state, at, source, text_hash, recorded_by FROM consents
             WHERE tenant = $1 AND subject = $2 AND purpose = $3 ORDER BY seq DESC LIMIT 1",
                &[&tenant.as_str(), &subject.as_str(), &p],
            )
            .await?
        }
        None => {
            rows(
                c,
                "SELECT purpose, seq, state, at, source, text_hash, recorded_by FROM consents
             WHERE tenant = $1 AND subject = $2 ORDER BY purpose, seq",
                &[&tenant.as_str(), &subject.as_str()],
            )
            .await?
        }
    };
    found
        .iter()
        .map(|r| {
            Ok(strongroom_core::store::ConsentRow {
                tenant: tenant.clone(),
                subject: subject.clone(),
                purpose: r.col(0)?,
                seq: r.count(1)?,
                state: strongroom_core::store::ConsentState::from_stored(i64::from(
                    r.col::<i32>(2)?,
                ))
                .ok_or_else(|| corrupt("consent state"))?,
                at: r.col(3)?,
                source: r.col(4)?,
                text_hash: r.col::<Option<Vec<u8>>>(5)?.map(hash32).transpose()?,
                recorded_by: r.col(6)?,
            })
        })
        .collect()
}

pub(crate) async fn record_consent(
    c: &Client,
    tenant: &TenantId,
    collection: &str,
    id: &RecordId,
    purpose: &str,
) -> StoreResult<Option<(RecordRow, Option<strongroom_core::store::ConsentState>)>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS},
                (SELECT c.state FROM consents c WHERE c.tenant = r.tenant AND c.subject = r.subject
                 AND c.purpose = $4 ORDER BY c.seq DESC LIMIT 1)
         FROM records r WHERE r.tenant = $1 AND r.id = $2 AND r.collection = $3"
    );
    rows(
        c,
        &sql,
        &[&tenant.as_str(), &id.as_str(), &collection, &purpose],
    )
    .await?
    .pop()
    .map(|r| {
        let state = r
            .col::<Option<i32>>(9)?
            .map(|n| {
                strongroom_core::store::ConsentState::from_stored(i64::from(n))
                    .ok_or_else(|| corrupt("consent state"))
            })
            .transpose()?;
        Ok((record_row(tenant, &r)?, state))
    })
    .transpose()
}

pub(crate) async fn export(
    c: &Client,
    tenant: &TenantId,
    id: &strongroom_core::ids::ExportId,
) -> StoreResult<Option<strongroom_core::store::ExportRow>> {
    rows(
        c,
        "SELECT subject, created_at, expires_at, downloads_left, data FROM exports
         WHERE tenant = $1 AND id = $2",
        &[&tenant.as_str(), &id.as_str()],
    )
    .await?
    .pop()
    .map(|r| {
        let subject: String = r.col(0)?;
        let left: i32 = r.col(3)?;
        Ok(strongroom_core::store::ExportRow {
            tenant: tenant.clone(),
            id: id.clone(),
            subject: SubjectId::parse(&subject).ok_or_else(|| corrupt("subject id"))?,
            created_at: r.col(1)?,
            expires_at: r.col(2)?,
            downloads_left: u32::try_from(left).map_err(|_| corrupt("export downloads"))?,
            data: r.col(4)?,
        })
    })
    .transpose()
}

pub(crate) async fn expired_exports(
    c: &Client,
    now: i64,
    limit: u32,
) -> StoreResult<Vec<(TenantId, strongroom_core::ids::ExportId)>> {
    rows(
        c,
        "SELECT tenant, id FROM exports WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2",
        &[&now, &i64::from(limit)],
    )
    .await?
    .into_iter()
    .map(|r| {
        let (t, id): (String, String) = (r.col(0)?, r.col(1)?);
        Ok((
            TenantId::parse(&t).ok_or_else(|| corrupt("tenant id"))?,
            strongroom_core::ids::ExportId::parse(&id).ok_or_else(|| corrupt("export id"))?,
        ))
    })
    .collect()
}

pub(crate) async fn subject_record_rows(
    c: &Client,
    tenant: &TenantId,
    subject: &SubjectId,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<RecordRow>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records r
         WHERE r.tenant = $1 AND r.subject = $2 AND r.id > coalesce($3::TEXT, '')
         ORDER BY r.id LIMIT $4"
    );
    rows(
        c,
        &sql,
        &[
            &tenant.as_str(),
            &subject.as_str(),
            &after,
            &i64::from(limit),
        ],
    )
    .await?
    .iter()
    .map(|r| record_row(tenant, r))
    .collect()
}

pub(crate) async fn tenant_archive(
    c: &Client,
    tenant: &TenantId,
) -> StoreResult<Option<strongroom_core::store::TenantArchiveRow>> {
    rows(
        c,
        "SELECT token_hash, created_at, expires_at, data FROM tenant_archives WHERE tenant = $1",
        &[&tenant.as_str()],
    )
    .await?
    .pop()
    .map(|r| {
        Ok(strongroom_core::store::TenantArchiveRow {
            tenant: tenant.clone(),
            token_hash: hash32(r.col(0)?)?,
            created_at: r.col(1)?,
            expires_at: r.col(2)?,
            data: r.col(3)?,
        })
    })
    .transpose()
}

pub(crate) async fn expired_archives(
    c: &Client,
    now: i64,
    limit: u32,
) -> StoreResult<Vec<TenantId>> {
    rows(
        c,
        "SELECT tenant FROM tenant_archives WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2",
        &[&now, &i64::from(limit)],
    )
    .await?
    .into_iter()
    .map(|r| {
        let t: String = r.col(0)?;
        TenantId::parse(&t).ok_or_else(|| corrupt("tenant id"))
    })
    .collect()
}

pub(crate) async fn tenant_record_rows(
    c: &Client,
    tenant: &TenantId,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<RecordRow>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records r
         WHERE r.tenant = $1 AND r.id > coalesce($2::TEXT, '') ORDER BY r.id LIMIT $3"
    );
    rows(c, &sql, &[&tenant.as_str(), &after, &i64::from(limit)])
        .await?
        .iter()
        .map(|r| record_row(tenant, r))
        .collect()
}

pub(crate) async fn tenant_subjects(
    c: &Client,
    tenant: &TenantId,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<SubjectRow>> {
    rows(
        c,
        "SELECT id, kek_version, wrapped_dek, ref_index, created_at, flags FROM subjects
         WHERE tenant = $1 AND id > coalesce($2::TEXT, '') ORDER BY id LIMIT $3",
        &[&tenant.as_str(), &after, &i64::from(limit)],
    )
    .await?
    .into_iter()
    .map(|r| subject_from_row(tenant, &r))
    .collect()
}

pub(crate) async fn count_tenant(
    c: &Client,
    tenant: &TenantId,
) -> StoreResult<strongroom_core::store::TenantCounts> {
    let r = rows(
        c,
        "SELECT (SELECT count(*) FROM records WHERE tenant = $1),
                (SELECT count(*) FROM subjects WHERE tenant = $1),
                (SELECT count(*) FROM record_history WHERE tenant = $1)",
        &[&tenant.as_str()],
    )
    .await?
    .pop()
    .ok_or_else(|| corrupt("counts"))?;
    let n = |i: usize| -> StoreResult<u64> {
        u64::try_from(r.col::<i64>(i)?).map_err(|_| corrupt("count"))
    };
    Ok(strongroom_core::store::TenantCounts {
        records: n(0)?,
        subjects: n(1)?,
        versions: n(2)?,
    })
}
