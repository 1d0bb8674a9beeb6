//! Queries of the reader connections, and the mapping of rows to the core's row types.

use rusqlite::{params, params_from_iter, types::Value, Connection, OptionalExtension, Row};
use strongroom_core::checkpoint::CheckpointRow;
use strongroom_core::ids::{ApiKeyId, RecordId, SessionId, SubjectId, TenantId, UserId};
use strongroom_core::store::AuditHead;
use strongroom_core::store::{
    ApiKeyRow, AuditQuery, CollectionRow, RecordRow, RecordState, RoleRow, SessionRow, StoreError,
    StoreResult, SubjectRow, TenantKeyRow, TenantRow, UserRow,
};
use strongroom_crypto::merkle::CompactRange;
use strongroom_proto::{AuditEntry, SecuritySettings};

use crate::unavailable;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn hash32(v: Vec<u8>) -> StoreResult<[u8; 32]> {
    v.try_into().map_err(|_| corrupt("hash length"))
}

fn query<T>(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let rows = stmt.query_map(p, map).map_err(unavailable)?;
    rows.collect::<rusqlite::Result<Vec<T>>>()
        .map_err(unavailable)
}

pub(crate) fn declarations(
    conn: &Connection,
    tenant: Option<&TenantId>,
) -> StoreResult<Vec<strongroom_core::store::DeclarationRow>> {
    let raw = query(
        conn,
        "SELECT id, version, measure, statement, owner, evidence_name, evidence_sha256, declared_at,
                review_by, withdrawn, recorded_by, recorded_at
         FROM declarations WHERE tenant IS ?1 ORDER BY id, version",
        [tenant.map(|t| t.as_str())],
        |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, String>(2)?),
                (r.get::<_, String>(3)?, r.get::<_, String>(4)?, r.get::<_, Option<String>>(5)?),
                (r.get::<_, Option<Vec<u8>>>(6)?, r.get::<_, i64>(7)?, r.get::<_, i64>(8)?),
                (r.get::<_, bool>(9)?, r.get::<_, String>(10)?, r.get::<_, i64>(11)?),
            ))
        },
    )?;
    raw.into_iter()
        .map(
            |(
                (id, version, measure),
                (statement, owner, evidence_name),
                (sha, declared_at, review_by),
                (withdrawn, recorded_by, recorded_at),
            )| {
                Ok(strongroom_core::store::DeclarationRow {
                    id,
                    version,
                    tenant: tenant.cloned(),
                    measure,
                    statement,
                    owner,
                    evidence_name,
                    evidence_sha256: sha.map(hash32).transpose()?,
                    declared_at,
                    review_by,
                    withdrawn,
                    recorded_by,
                    recorded_at,
                })
            },
        )
        .collect()
}

pub(crate) fn register_entries(
    conn: &Connection,
    register: &str,
    tenant: Option<&TenantId>,
) -> StoreResult<Vec<strongroom_core::store::RegisterEntryRow>> {
    query(
        conn,
        "SELECT id, version, body, recorded_by, recorded_at FROM register_entries
         WHERE register = ?1 AND tenant IS ?2 ORDER BY id, version",
        params![register, tenant.map(|t| t.as_str())],
        |r| {
            Ok(strongroom_core::store::RegisterEntryRow {
                register: register.to_owned(),
                id: r.get(0)?,
                version: r.get(1)?,
                tenant: tenant.cloned(),
                body: r.get(2)?,
                recorded_by: r.get(3)?,
                recorded_at: r.get(4)?,
            })
        },
    )
}

pub(crate) fn meta(conn: &Connection, key: &str) -> StoreResult<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(unavailable)
}

pub(crate) fn tenant_ids(conn: &Connection) -> StoreResult<Vec<TenantId>> {
    let raw: Vec<String> = query(conn, "SELECT id FROM tenants ORDER BY id", [], |r| r.get(0))?;
    raw.iter()
        .map(|id| TenantId::parse(id).ok_or_else(|| corrupt("tenant id")))
        .collect()
}

pub(crate) fn tenant(
    conn: &Connection,
    column: &str,
    value: &str,
) -> StoreResult<Option<TenantRow>> {
    let sql = match column {
        "id" => "SELECT id, name, created_at FROM tenants WHERE id = ?1",
        _ => "SELECT id, name, created_at FROM tenants WHERE name = ?1",
    };
    Ok(query(conn, sql, [value], |r| {
        Ok(TenantRow {
            id: TenantId::from_stored(r.get(0)?),
            name: r.get(1)?,
            created_at: r.get(2)?,
        })
    })?
    .pop())
}

pub(crate) fn tenant_keys(conn: &Connection, tenant: &TenantId) -> StoreResult<Vec<TenantKeyRow>> {
    query(
        conn,
        "SELECT version, wrapped, created_at FROM tenant_keys WHERE tenant = ?1 ORDER BY version",
        [tenant.as_str()],
        |r| {
            Ok(TenantKeyRow {
                tenant: tenant.clone(),
                version: r.get(0)?,
                wrapped: r.get(1)?,
                created_at: r.get(2)?,
            })
        },
    )
}

const API_KEY_COLUMNS: &str =
    "id, tenant, name, hash, roles, created_at, expires_at, last_used_at, rotated_to";

/// API keys matching `clause` (one parameter, `?1`).
pub(crate) fn api_keys(
    conn: &Connection,
    clause: &str,
    param: impl rusqlite::ToSql,
) -> StoreResult<Vec<ApiKeyRow>> {
    type Raw = (
        String,
        Option<String>,
        String,
        Vec<u8>,
        String,
        i64,
        i64,
        Option<i64>,
        Option<String>,
    );
    let raw: Vec<Raw> = query(
        conn,
        &format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE {clause} ORDER BY rowid"),
        [param],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        },
    )?;
    raw.into_iter()
        .map(
            |(id, tenant, name, hash, roles, created_at, expires_at, last_used_at, rotated_to)| {
                Ok(ApiKeyRow {
                    id: ApiKeyId::from_stored(id),
                    tenant: tenant.map(TenantId::from_stored),
                    name,
                    hash: hash32(hash)?,
                    roles: serde_json::from_str(&roles).map_err(|_| corrupt("api key roles"))?,
                    created_at,
                    expires_at,
                    last_used_at,
                    rotated_to: rotated_to.map(ApiKeyId::from_stored),
                })
            },
        )
        .collect()
}

const USER_COLUMNS: &str = "id, tenant, username, username_key, password_hash, password_changed_at, password_history, \
    roles, disabled, failed_count, lock_level, locked_until, totp_secret, totp_pending, totp_last_step, recovery_codes, \
    created_at, version";

/// Users of a tenant (or operators for `None`) matching `clause` (parameter `?2`).
pub(crate) fn users(
    conn: &Connection,
    tenant: Option<&TenantId>,
    clause: &str,
    param: &str,
) -> StoreResult<Vec<UserRow>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant IS ?1 AND {clause} ORDER BY rowid"
        ))
        .map_err(unavailable)?;
    let mut rows = stmt
        .query(params![tenant.map(|t| t.as_str()), param])
        .map_err(unavailable)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(unavailable)? {
        out.push(user_row(r).map_err(unavailable)??);
    }
    Ok(out)
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<StoreResult<UserRow>> {
    let history: String = r.get(6)?;
    let roles: String = r.get(7)?;
    let codes: String = r.get(15)?;
    let parsed = (|| {
        let history: Vec<String> =
            serde_json::from_str(&history).map_err(|_| corrupt("password history"))?;
        let roles: Vec<String> = serde_json::from_str(&roles).map_err(|_| corrupt("user roles"))?;
        let codes: Vec<String> =
            serde_json::from_str(&codes).map_err(|_| corrupt("recovery codes"))?;
        let codes = codes
            .iter()
            .map(|c| {
                strongroom_crypto::unhex(c)
                    .ok_or_else(|| corrupt("recovery code"))
                    .and_then(hash32)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((history, roles, codes))
    })();
    let (password_history, roles, recovery_codes) = match parsed {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(UserRow {
        id: UserId::from_stored(r.get(0)?),
        tenant: r.get::<_, Option<String>>(1)?.map(TenantId::from_stored),
        username: r.get(2)?,
        username_key: r.get(3)?,
        password_hash: r.get(4)?,
        password_changed_at: r.get(5)?,
        password_history,
        roles,
        disabled: r.get::<_, i64>(8)? != 0,
        failed_count: r.get(9)?,
        lock_level: r.get(10)?,
        locked_until: r.get(11)?,
        totp_secret: r.get(12)?,
        totp_pending: r.get(13)?,
        totp_last_step: r.get(14)?,
        recovery_codes,
        created_at: r.get(16)?,
        version: r.get::<_, u64>(17)?,
    }))
}

pub(crate) fn session(conn: &Connection, hash: &[u8; 32]) -> StoreResult<Option<SessionRow>> {
    type Raw = (
        String,
        Option<String>,
        String,
        i64,
        i64,
        i64,
        i64,
        Option<i64>,
        Option<String>,
    );
    let raw: Option<Raw> = query(
        conn,
        "SELECT id, tenant, user_id, created_at, last_seen_at, expires_at, idle_timeout_ms, revoked_at, restricted_to
         FROM sessions WHERE token_hash = ?1",
        [&hash[..]],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?)),
    )?
    .pop();
    Ok(raw.map(
        |(
            id,
            tenant,
            user,
            created_at,
            last_seen_at,
            expires_at,
            idle_timeout_ms,
            revoked_at,
            restricted_to,
        )| {
            SessionRow {
                id: SessionId::from_stored(id),
                token_hash: *hash,
                tenant: tenant.map(TenantId::from_stored),
                user: UserId::from_stored(user),
                created_at,
                last_seen_at,
                expires_at,
                idle_timeout_ms,
                revoked_at,
                restricted_to,
            }
        },
    ))
}

pub(crate) fn settings(conn: &Connection, scope: &str) -> StoreResult<Option<SecuritySettings>> {
    let body: Option<String> = query(
        conn,
        "SELECT body FROM settings WHERE scope = ?1",
        [scope],
        |r| r.get(0),
    )?
    .pop();
    body.map(|b| serde_json::from_str(&b).map_err(|_| corrupt("security settings")))
        .transpose()
}

pub(crate) fn collections(
    conn: &Connection,
    tenant: &TenantId,
    name: Option<&str>,
) -> StoreResult<Vec<CollectionRow>> {
    let raw = query(
        conn,
        "SELECT name, version, def, updated_at FROM collections
         WHERE tenant = ?1 AND (?2 IS NULL OR name = ?2) ORDER BY name",
        params![tenant.as_str(), name],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        },
    )?;
    raw.into_iter()
        .map(|(name, version, def, updated_at)| {
            Ok(CollectionRow {
                tenant: tenant.clone(),
                name,
                version: version as u64,
                def: serde_json::from_str(&def).map_err(|_| corrupt("collection definition"))?,
                updated_at,
            })
        })
        .collect()
}

pub(crate) fn roles(
    conn: &Connection,
    tenant: &TenantId,
    name: Option<&str>,
) -> StoreResult<Vec<RoleRow>> {
    let raw = query(
        conn,
        "SELECT name, def, updated_at, version FROM roles WHERE tenant = ?1 AND (?2 IS NULL OR name = ?2) ORDER BY name",
        params![tenant.as_str(), name],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, u64>(3)?)),
    )?;
    raw.into_iter()
        .map(|(name, def, updated_at, version)| {
            Ok(RoleRow {
                tenant: tenant.clone(),
                name,
                version,
                def: serde_json::from_str(&def).map_err(|_| corrupt("role definition"))?,
                updated_at,
            })
        })
        .collect()
}

fn subject_row(tenant: &TenantId, r: &Row<'_>) -> rusqlite::Result<(SubjectRow, Option<Vec<u8>>)> {
    Ok((
        SubjectRow {
            tenant: tenant.clone(),
            id: SubjectId::from_stored(r.get(0)?),
            kek_version: r.get(1)?,
            wrapped_dek: r.get(2)?,
            ref_index: None,
            created_at: r.get(4)?,
            flags: r.get(5)?,
        },
        r.get(3)?,
    ))
}

fn finish_subject(found: Option<(SubjectRow, Option<Vec<u8>>)>) -> StoreResult<Option<SubjectRow>> {
    found
        .map(|(mut row, ix)| {
            row.ref_index = ix.map(hash32).transpose()?;
            Ok(row)
        })
        .transpose()
}

pub(crate) fn subject_by_id(
    conn: &Connection,
    tenant: &TenantId,
    id: &SubjectId,
) -> StoreResult<Option<SubjectRow>> {
    let found = query(
        conn,
        "SELECT id, kek_version, wrapped_dek, ref_index, created_at, flags FROM subjects WHERE tenant = ?1 AND id = ?2",
        params![tenant.as_str(), id.as_str()],
        |r| subject_row(tenant, r),
    )?
    .pop();
    finish_subject(found)
}

pub(crate) fn subject_by_ref(
    conn: &Connection,
    tenant: &TenantId,
    ix: &[u8; 32],
) -> StoreResult<Option<SubjectRow>> {
    let found = query(
        conn,
        "SELECT id, kek_version, wrapped_dek, ref_index, created_at, flags FROM subjects WHERE tenant = ?1 AND ref_index = ?2",
        params![tenant.as_str(), &ix[..]],
        |r| subject_row(tenant, r),
    )?
    .pop();
    finish_subject(found)
}

/// A record's columns and its subject's flags (a primary-key lookup in the same statement).
const RECORD_COLUMNS: &str =
    "r.id, r.collection, r.subject, r.version, r.state, r.created_at, r.updated_at, r.data,
     COALESCE((SELECT s.flags FROM subjects s WHERE s.tenant = r.tenant AND s.id = r.subject), 0)";

fn record_state(n: i64) -> StoreResult<RecordState> {
    match n {
        0 => Ok(RecordState::Active),
        1 => Ok(RecordState::Blocked),
        _ => Err(corrupt("record state")),
    }
}

fn record_row(tenant: &TenantId, r: &Row<'_>) -> rusqlite::Result<RecordRow> {
    Ok(RecordRow {
        tenant: tenant.clone(),
        id: RecordId::from_stored(r.get(0)?),
        collection: r.get(1)?,
        subject: SubjectId::from_stored(r.get(2)?),
        version: r.get::<_, u64>(3)?,
        state: match r.get::<_, i64>(4)? {
            0 => RecordState::Active,
            1 => RecordState::Blocked,
            _ => return Err(rusqlite::Error::IntegralValueOutOfRange(4, 0)),
        },
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        data: r.get(7)?,
        subject_flags: r.get(8)?,
    })
}

pub(crate) fn record(
    conn: &Connection,
    tenant: &TenantId,
    collection: &str,
    id: &RecordId,
) -> StoreResult<Option<RecordRow>> {
    Ok(query(
        conn,
        &format!("SELECT {RECORD_COLUMNS} FROM records r WHERE r.tenant = ?1 AND r.id = ?2 AND r.collection = ?3"),
        params![tenant.as_str(), id.as_str(), collection],
        |r| record_row(tenant, r),
    )?
    .pop())
}

pub(crate) fn records_by_index(
    conn: &Connection,
    tenant: &TenantId,
    collection: &str,
    field: &str,
    hash: &[u8; 32],
    limit: u32,
) -> StoreResult<Vec<RecordRow>> {
    query(
        conn,
        &format!(
            "SELECT {RECORD_COLUMNS} FROM blind_index b
             JOIN records r ON r.tenant = b.tenant AND r.id = b.record
             WHERE b.tenant = ?1 AND b.collection = ?2 AND b.field = ?3 AND b.hash = ?4
               AND r.collection = ?2 AND r.state = 0
             ORDER BY r.rowid LIMIT ?5"
        ),
        params![tenant.as_str(), collection, field, &hash[..], limit],
        |r| record_row(tenant, r),
    )
}

pub(crate) fn history(
    conn: &Connection,
    tenant: &TenantId,
    id: &RecordId,
) -> StoreResult<Vec<(u64, i64, Vec<u8>)>> {
    query(
        conn,
        "SELECT version, updated_at, data FROM record_history WHERE tenant = ?1 AND id = ?2 ORDER BY version",
        params![tenant.as_str(), id.as_str()],
        |r| Ok((r.get::<_, u64>(0)?, r.get(1)?, r.get(2)?)),
    )
}

pub(crate) fn audit(conn: &Connection, log: &str, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
    let mut sql = String::from("SELECT body FROM audit WHERE log = ?1 AND seq > ?2");
    let mut args: Vec<Value> = vec![
        Value::Text(log.to_owned()),
        Value::Integer(q.after_seq as i64),
    ];
    if let Some(subject) = &q.subject {
        // The entry's subject, or one of several subjects it names among its objects.
        args.push(Value::Text(subject.clone()));
        let n = args.len();
        sql.push_str(&format!(
            " AND (subject = ?{n} OR seq IN (SELECT seq FROM audit_subjects WHERE log = ?1 AND subject = ?{n}))"
        ));
    }
    let mut filter = |column: &str, op: &str, v: Value| {
        args.push(v);
        sql.push_str(&format!(" AND {column} {op} ?{}", args.len()));
    };
    for (column, v) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("outcome", &q.outcome),
        ("collection", &q.collection),
    ] {
        if let Some(v) = v {
            filter(column, "=", Value::Text(v.clone()));
        }
    }
    if let Some(t) = q.from_ms {
        filter("time", ">=", Value::Integer(t));
    }
    if let Some(t) = q.to_ms {
        filter("time", "<", Value::Integer(t));
    }
    args.push(Value::Integer(i64::from(q.limit)));
    sql.push_str(&format!(" ORDER BY seq LIMIT ?{}", args.len()));
    let bodies = query(conn, &sql, params_from_iter(args), |r| {
        r.get::<_, String>(0)
    })?;
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).map_err(|_| corrupt("audit entry")))
        .collect()
}

pub(crate) fn audit_logs(conn: &Connection) -> StoreResult<Vec<String>> {
    query(
        conn,
        "SELECT log FROM audit_heads UNION SELECT log FROM audit_checkpoints
         UNION SELECT DISTINCT log FROM audit UNION SELECT DISTINCT log FROM audit_nodes
         UNION SELECT DISTINCT log FROM audit_subjects ORDER BY 1",
        [],
        |r| r.get(0),
    )
}

pub(crate) fn audit_head(conn: &Connection, log: &str) -> StoreResult<Option<AuditHead>> {
    let raw: Option<(i64, Vec<u8>, Vec<u8>)> = query(
        conn,
        "SELECT size, hash, compact FROM audit_heads WHERE log = ?1",
        [log],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?
    .pop();
    raw.map(|(size, hash, compact)| {
        Ok(AuditHead {
            size: size as u64,
            last_hash: hash32(hash)?,
            compact: CompactRange::decode(&compact).ok_or_else(|| corrupt("audit head"))?,
        })
    })
    .transpose()
}

pub(crate) fn audit_raw(
    conn: &Connection,
    log: &str,
    after: u64,
    limit: u32,
) -> StoreResult<Vec<(u64, String, [u8; 32])>> {
    let raw: Vec<(i64, String, Vec<u8>)> = query(
        conn,
        "SELECT seq, body, hash FROM audit WHERE log = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        params![log, after as i64, limit],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    raw.into_iter()
        .map(|(seq, body, hash)| Ok((seq as u64, body, hash32(hash)?)))
        .collect()
}

pub(crate) fn audit_tail(conn: &Connection, log: &str) -> StoreResult<Option<(u64, [u8; 32])>> {
    let raw: Option<(i64, Vec<u8>)> = query(
        conn,
        "SELECT seq, hash FROM audit WHERE log = ?1 ORDER BY seq DESC LIMIT 1",
        [log],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?
    .pop();
    raw.map(|(seq, hash)| Ok((seq as u64, hash32(hash)?)))
        .transpose()
}

pub(crate) fn audit_hashes(
    conn: &Connection,
    log: &str,
    level: u32,
    index: u64,
    count: u64,
) -> StoreResult<Vec<[u8; 32]>> {
    let raw: Vec<Vec<u8>> = if level == 0 {
        // Leaf index i is entry seq i + 1.
        query(
            conn,
            "SELECT hash FROM audit WHERE log = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq",
            params![log, index as i64, (index + count) as i64],
            |r| r.get(0),
        )?
    } else {
        query(
            conn,
            "SELECT hash FROM audit_nodes WHERE log = ?1 AND level = ?2 AND idx >= ?3 AND idx < ?4 ORDER BY idx",
            params![log, level, index as i64, (index + count) as i64],
            |r| r.get(0),
        )?
    };
    raw.into_iter().map(hash32).collect()
}

pub(crate) fn audit_nodes(
    conn: &Connection,
    log: &str,
    after: Option<(u32, u64)>,
    limit: u32,
) -> StoreResult<Vec<(u32, u64, [u8; 32])>> {
    let (level, idx) = after.map_or((-1i64, -1i64), |(l, i)| (i64::from(l), i as i64));
    let raw: Vec<(i64, i64, Vec<u8>)> = query(
        conn,
        "SELECT level, idx, hash FROM audit_nodes WHERE log = ?1 AND (level, idx) > (?2, ?3)
         ORDER BY level, idx LIMIT ?4",
        params![log, level, idx, limit],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    raw.into_iter()
        .map(|(l, i, h)| Ok((l as u32, i as u64, hash32(h)?)))
        .collect()
}

pub(crate) fn audit_subject_rows(
    conn: &Connection,
    log: &str,
    after: Option<(String, u64)>,
    limit: u32,
) -> StoreResult<Vec<(String, u64)>> {
    let (subject, seq) = after.map_or((String::new(), -1i64), |(s, q)| (s, q as i64));
    let raw: Vec<(String, i64)> = query(
        conn,
        "SELECT subject, seq FROM audit_subjects WHERE log = ?1 AND (subject, seq) > (?2, ?3)
         ORDER BY subject, seq LIMIT ?4",
        params![log, subject, seq, limit],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(raw.into_iter().map(|(s, q)| (s, q as u64)).collect())
}

/// The audit tables and indexes, each with the statement in the migration that made it
/// (`None`: only its presence is checked; its rows are covered by signatures).
const AUDIT_OBJECTS: [(&str, Option<&str>); 6] = [
    ("audit", Some("CREATE TABLE audit_v5 (")),
    ("audit_subject", Some("CREATE INDEX audit_subject ")),
    ("audit_subjects", Some("CREATE TABLE audit_subjects (")),
    ("audit_nodes", Some("CREATE TABLE audit_nodes (")),
    ("audit_heads", None),
    ("audit_checkpoints", None),
];

/// The definition SQLite keeps for an object that schema v5 made with the statement starting
/// `head` (the audit table was made as `audit_v5` and renamed, which SQLite records as
/// `CREATE TABLE "audit"`).
fn expected_sql(head: &str) -> Option<String> {
    const V5: &str = include_str!("schema_v5.sql");
    let start = V5.find(head)?;
    let end = start + V5[start..].find(';')?;
    Some(V5[start..end].replace("CREATE TABLE audit_v5 (", "CREATE TABLE \"audit\" ("))
}

pub(crate) fn check_audit_schema(conn: &Connection) -> StoreResult<Vec<String>> {
    let rows: Vec<(String, String, Option<String>)> = query(
        conn,
        "SELECT name, tbl_name, sql FROM sqlite_schema WHERE tbl_name LIKE 'audit%'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut problems = Vec::new();
    for (name, head) in AUDIT_OBJECTS {
        let expected = head.and_then(expected_sql);
        match rows.iter().find(|(n, _, _)| n == name) {
            None => problems.push(format!("{name} is missing")),
            Some((_, _, sql)) if expected.is_some() && sql.as_deref() != expected.as_deref() => {
                problems.push(format!("the definition of {name} was changed"))
            }
            Some(_) => {}
        }
    }
    for (name, table, _) in &rows {
        let known = AUDIT_OBJECTS.iter().any(|(n, _)| n == name)
            || (name.starts_with("sqlite_autoindex_")
                && AUDIT_OBJECTS.iter().any(|(n, _)| n == table));
        if !known {
            problems.push(format!("{name} on {table} is not part of the schema (a trigger or view could rewrite what is read)"));
        }
    }
    Ok(problems)
}

pub(crate) fn checkpoints(
    conn: &Connection,
    log: &str,
    latest_only: bool,
) -> StoreResult<Vec<CheckpointRow>> {
    let sql = if latest_only {
        "SELECT seq, size, root, time, prev, signature, format, origin FROM audit_checkpoints WHERE log = ?1 ORDER BY seq DESC LIMIT 1"
    } else {
        "SELECT seq, size, root, time, prev, signature, format, origin FROM audit_checkpoints WHERE log = ?1 ORDER BY seq"
    };
    type Raw = (i64, i64, Vec<u8>, i64, Vec<u8>, Vec<u8>, i64, String);
    let raw: Vec<Raw> = query(conn, sql, [log], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        ))
    })?;
    raw.into_iter()
        .map(|(seq, size, root, time, prev, signature, format, origin)| {
            Ok(CheckpointRow {
                log: log.to_owned(),
                seq: seq as u64,
                size: size as u64,
                root: hash32(root)?,
                time,
                prev: hash32(prev)?,
                signature: signature
                    .try_into()
                    .map_err(|_| corrupt("checkpoint signature"))?,
                // An unknown format fails verification instead of stopping it.
                format: u8::try_from(format).unwrap_or(0),
                origin,
            })
        })
        .collect()
}

pub(crate) fn audit_heads(conn: &Connection) -> StoreResult<Vec<(String, AuditHead)>> {
    let raw: Vec<(String, i64, Vec<u8>, Vec<u8>)> = query(
        conn,
        "SELECT log, size, hash, compact FROM audit_heads ORDER BY log",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    raw.into_iter()
        .map(|(log, size, hash, compact)| {
            let head = AuditHead {
                size: size as u64,
                last_hash: hash32(hash)?,
                compact: CompactRange::decode(&compact).ok_or_else(|| corrupt("audit head"))?,
            };
            Ok((log, head))
        })
        .collect()
}

pub(crate) fn jobs(
    conn: &Connection,
    id: Option<&str>,
) -> StoreResult<Vec<strongroom_core::store::JobRow>> {
    use strongroom_core::store::{JobRow, JobState};
    // Read as stored; the checks that can fail as `Corrupt` follow.
    let raw = query(
        conn,
        "SELECT id, kind, tenant, every_ms, next_run_at, state, done, total, cursor, started_at,
                last_run_at, last_ok_at, last_error, runs, lease_holder, lease_until
         FROM jobs WHERE ?1 IS NULL OR id = ?1 ORDER BY id",
        params![id],
        |r| {
            Ok((
                JobRow {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    tenant: None,
                    every_ms: r.get(3)?,
                    next_run_at: r.get(4)?,
                    state: JobState::Idle,
                    done: 0,
                    total: None,
                    cursor: r.get(8)?,
                    started_at: r.get(9)?,
                    last_run_at: r.get(10)?,
                    last_ok_at: r.get(11)?,
                    last_error: r.get(12)?,
                    runs: 0,
                    lease_holder: r.get(14)?,
                    lease_until: r.get(15)?,
                },
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(5)?,
                [r.get::<_, i64>(6)?, r.get::<_, i64>(13)?],
                r.get::<_, Option<i64>>(7)?,
            ))
        },
    )?;
    let count = |n: i64| u64::try_from(n).map_err(|_| corrupt("job count"));
    raw.into_iter()
        .map(|(mut job, tenant, state, [done, runs], total)| {
            job.tenant = tenant
                .map(|t| TenantId::parse(&t).ok_or_else(|| corrupt("job tenant")))
                .transpose()?;
            job.state = JobState::parse(&state).ok_or_else(|| corrupt("job state"))?;
            job.done = count(done)?;
            job.runs = count(runs)?;
            job.total = total.map(count).transpose()?;
            Ok(job)
        })
        .collect()
}

pub(crate) fn blocked(
    conn: &Connection,
    tenant: &TenantId,
    collection: &str,
    before: i64,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<strongroom_core::store::BlockedRecord>> {
    let raw = query(
        conn,
        "SELECT id, subject, blocked_at FROM records INDEXED BY records_blocked
         WHERE tenant = ?1 AND collection = ?2 AND state = 1 AND blocked_at < ?3
           AND id > coalesce(?4, '')
         ORDER BY id LIMIT ?5",
        params![tenant.as_str(), collection, before, after, limit],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        },
    )?;
    raw.into_iter()
        .map(|(id, subject, at)| {
            Ok(strongroom_core::store::BlockedRecord {
                id: RecordId::parse(&id).ok_or_else(|| corrupt("record id"))?,
                collection: collection.to_owned(),
                subject: SubjectId::parse(&subject).ok_or_else(|| corrupt("subject id"))?,
                blocked_at: at.ok_or_else(|| corrupt("a blocked record without its time"))?,
            })
        })
        .collect()
}

pub(crate) fn subject_record_counts(
    conn: &Connection,
    tenant: &TenantId,
    subjects: &[SubjectId],
) -> StoreResult<Vec<(SubjectId, u64)>> {
    subjects
        .iter()
        .map(|s| {
            let n: i64 = conn
                .prepare_cached("SELECT count(*) FROM records WHERE tenant = ?1 AND subject = ?2")
                .and_then(|mut st| st.query_row(params![tenant.as_str(), s.as_str()], |r| r.get(0)))
                .map_err(unavailable)?;
            Ok((s.clone(), u64::try_from(n).map_err(|_| corrupt("count"))?))
        })
        .collect()
}

pub(crate) fn subject_records(
    conn: &Connection,
    tenant: &TenantId,
    subject: &SubjectId,
) -> StoreResult<Vec<strongroom_core::store::SubjectRecords>> {
    let raw = query(
        conn,
        "SELECT r.collection, r.state, count(*),
       coalesce(sum((SELECT count(*) FROM record_history h WHERE h.tenant = r.tenant AND h.id = r.id)), 0),
       coalesce(sum((SELECT count(*) FROM blind_index b INDEXED BY blind_index_record WHERE b.tenant = r.tenant AND b.record = r.id)), 0)
FROM records r WHERE r.tenant = ?1 AND r.subject = ?2
GROUP BY r.collection, r.state ORDER BY r.collection, r.state",
        params![tenant.as_str(), subject.as_str()],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        },
    )?;
    let count = |n: i64| u64::try_from(n).map_err(|_| corrupt("count"));
    raw.into_iter()
        .map(|(collection, state, records, versions, index)| {
            Ok(strongroom_core::store::SubjectRecords {
                collection,
                state: record_state(state)?,
                records: count(records)?,
                versions: count(versions)?,
                index_entries: count(index)?,
            })
        })
        .collect()
}

pub(crate) fn expired(
    conn: &Connection,
    tenant: &TenantId,
    collection: &str,
    by_updated: bool,
    before: i64,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<RecordRow>> {
    let sql = if by_updated {
        "SELECT id, subject, version, state, created_at, updated_at, data FROM records
         WHERE tenant = ?1 AND collection = ?2 AND state = 0 AND updated_at < ?3
           AND id > coalesce(?4, '') ORDER BY id LIMIT ?5"
    } else {
        "SELECT id, subject, version, state, created_at, updated_at, data FROM records
         WHERE tenant = ?1 AND collection = ?2 AND state = 0 AND created_at < ?3
           AND id > coalesce(?4, '') ORDER BY id LIMIT ?5"
    };
    let raw = query(
        conn,
        sql,
        params![tenant.as_str(), collection, before, after, limit],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Vec<u8>>(6)?,
            ))
        },
    )?;
    raw.into_iter()
        .map(|(id, subject, version, created_at, updated_at, data)| {
            Ok(RecordRow {
                tenant: tenant.clone(),
                collection: collection.to_owned(),
                id: RecordId::parse(&id).ok_or_else(|| corrupt("record id"))?,
                subject: SubjectId::parse(&subject).ok_or_else(|| corrupt("subject id"))?,
                version: u64::try_from(version).map_err(|_| corrupt("record version"))?,
                state: strongroom_core::store::RecordState::Active,
                created_at,
                updated_at,
                data,
                subject_flags: 0, // due rows are read for the retention job, which skips held subjects
            })
        })
        .collect()
}

pub(crate) fn restricted_subjects(
    conn: &Connection,
    tenant: &TenantId,
) -> StoreResult<Vec<SubjectId>> {
    query(
        conn,
        "SELECT id FROM subjects INDEXED BY subjects_flagged WHERE tenant = ?1 AND flags != 0 AND flags & 1 = 1 ORDER BY id",
        params![tenant.as_str()],
        |r| Ok(SubjectId::from_stored(r.get(0)?)),
    )
}

fn consent_row(
    tenant: &TenantId,
    subject: &SubjectId,
    r: &Row<'_>,
) -> rusqlite::Result<(ConsentRowRaw, Option<Vec<u8>>)> {
    Ok((
        ConsentRowRaw {
            tenant: tenant.clone(),
            subject: subject.clone(),
            purpose: r.get(0)?,
            seq: r.get::<_, i64>(1)?,
            state: r.get(2)?,
            at: r.get(3)?,
            source: r.get(4)?,
            recorded_by: r.get(6)?,
        },
        r.get(5)?,
    ))
}

/// A consent row before its checks.
pub(crate) struct ConsentRowRaw {
    tenant: TenantId,
    subject: SubjectId,
    purpose: String,
    seq: i64,
    state: i64,
    at: i64,
    source: String,
    recorded_by: String,
}

fn finish_consent(
    (c, hash): (ConsentRowRaw, Option<Vec<u8>>),
) -> StoreResult<strongroom_core::store::ConsentRow> {
    Ok(strongroom_core::store::ConsentRow {
        tenant: c.tenant,
        subject: c.subject,
        purpose: c.purpose,
        seq: u64::try_from(c.seq).map_err(|_| corrupt("consent sequence"))?,
        state: strongroom_core::store::ConsentState::from_stored(c.state)
            .ok_or_else(|| corrupt("consent state"))?,
        at: c.at,
        source: c.source,
        text_hash: hash.map(hash32).transpose()?,
        recorded_by: c.recorded_by,
    })
}

const CONSENT_COLUMNS: &str = "purpose, seq, state, at, source, text_hash, recorded_by";

pub(crate) fn consent(
    conn: &Connection,
    tenant: &TenantId,
    subject: &SubjectId,
    purpose: &str,
) -> StoreResult<Option<strongroom_core::store::ConsentRow>> {
    query(
        conn,
        &format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE tenant = ?1 AND subject = ?2 AND purpose = ?3 ORDER BY seq DESC LIMIT 1"),
        params![tenant.as_str(), subject.as_str(), purpose],
        |r| consent_row(tenant, subject, r),
    )?
    .pop()
    .map(finish_consent)
    .transpose()
}

pub(crate) fn consents(
    conn: &Connection,
    tenant: &TenantId,
    subject: &SubjectId,
) -> StoreResult<Vec<strongroom_core::store::ConsentRow>> {
    query(
        conn,
        &format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE tenant = ?1 AND subject = ?2 ORDER BY purpose, seq"),
        params![tenant.as_str(), subject.as_str()],
        |r| consent_row(tenant, subject, r),
    )?
    .into_iter()
    .map(finish_consent)
    .collect()
}

pub(crate) fn record_consent(
    conn: &Connection,
    tenant: &TenantId,
    collection: &str,
    id: &RecordId,
    purpose: &str,
) -> StoreResult<Option<(RecordRow, Option<strongroom_core::store::ConsentState>)>> {
    let found = query(
        conn,
        &format!(
            "SELECT {RECORD_COLUMNS},
                    (SELECT c.state FROM consents c WHERE c.tenant = r.tenant AND c.subject = r.subject
                     AND c.purpose = ?4 ORDER BY c.seq DESC LIMIT 1)
             FROM records r WHERE r.tenant = ?1 AND r.id = ?2 AND r.collection = ?3"
        ),
        params![tenant.as_str(), id.as_str(), collection, purpose],
        |r| Ok((record_row(tenant, r)?, r.get::<_, Option<i64>>(9)?)),
    )?
    .pop();
    found
        .map(|(row, state)| {
            let state = state
                .map(|n| {
                    strongroom_core::store::ConsentState::from_stored(n)
                        .ok_or_else(|| corrupt("consent state"))
                })
                .transpose()?;
            Ok((row, state))
        })
        .transpose()
}

pub(crate) fn export(
    conn: &Connection,
    tenant: &TenantId,
    id: &strongroom_core::ids::ExportId,
) -> StoreResult<Option<strongroom_core::store::ExportRow>> {
    let raw = query(
        conn,
        "SELECT subject, created_at, expires_at, downloads_left, data FROM exports
         WHERE tenant = ?1 AND id = ?2",
        params![tenant.as_str(), id.as_str()],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        },
    )?;
    raw.into_iter()
        .next()
        .map(|(subject, created_at, expires_at, left, data)| {
            Ok(strongroom_core::store::ExportRow {
                tenant: tenant.clone(),
                id: id.clone(),
                subject: SubjectId::parse(&subject).ok_or_else(|| corrupt("subject id"))?,
                created_at,
                expires_at,
                downloads_left: u32::try_from(left).map_err(|_| corrupt("export downloads"))?,
                data,
            })
        })
        .transpose()
}

pub(crate) fn expired_exports(
    conn: &Connection,
    now: i64,
    limit: u32,
) -> StoreResult<Vec<(TenantId, strongroom_core::ids::ExportId)>> {
    let raw = query(
        conn,
        "SELECT tenant, id FROM exports WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
        params![now, limit],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    )?;
    raw.into_iter()
        .map(|(t, id)| {
            Ok((
                TenantId::parse(&t).ok_or_else(|| corrupt("tenant id"))?,
                strongroom_core::ids::ExportId::parse(&id).ok_or_else(|| corrupt("export id"))?,
            ))
        })
        .collect()
}

pub(crate) fn subject_record_rows(
    conn: &Connection,
    tenant: &TenantId,
    subject: &SubjectId,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<RecordRow>> {
    query(
        conn,
        &format!(
            "SELECT {RECORD_COLUMNS} FROM records r INDEXED BY records_subject
             WHERE r.tenant = ?1 AND r.subject = ?2 AND r.id > coalesce(?3, '')
             ORDER BY r.id LIMIT ?4"
        ),
        params![tenant.as_str(), subject.as_str(), after, limit],
        |r| record_row(tenant, r),
    )
}

pub(crate) fn tenant_archive(
    conn: &Connection,
    tenant: &TenantId,
) -> StoreResult<Option<strongroom_core::store::TenantArchiveRow>> {
    let raw = query(
        conn,
        "SELECT token_hash, created_at, expires_at, data FROM tenant_archives WHERE tenant = ?1",
        params![tenant.as_str()],
        |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        },
    )?;
    raw.into_iter()
        .next()
        .map(|(hash, created_at, expires_at, data)| {
            Ok(strongroom_core::store::TenantArchiveRow {
                tenant: tenant.clone(),
                token_hash: hash32(hash)?,
                created_at,
                expires_at,
                data,
            })
        })
        .transpose()
}

pub(crate) fn expired_archives(
    conn: &Connection,
    now: i64,
    limit: u32,
) -> StoreResult<Vec<TenantId>> {
    query(
        conn,
        "SELECT tenant FROM tenant_archives WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
        params![now, limit],
        |r| r.get::<_, String>(0),
    )?
    .into_iter()
    .map(|t| TenantId::parse(&t).ok_or_else(|| corrupt("tenant id")))
    .collect()
}

pub(crate) fn tenant_record_rows(
    conn: &Connection,
    tenant: &TenantId,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<RecordRow>> {
    query(
        conn,
        &format!(
            "SELECT {RECORD_COLUMNS} FROM records r
             WHERE r.tenant = ?1 AND r.id > coalesce(?2, '') ORDER BY r.id LIMIT ?3"
        ),
        params![tenant.as_str(), after, limit],
        |r| record_row(tenant, r),
    )
}

pub(crate) fn tenant_subjects(
    conn: &Connection,
    tenant: &TenantId,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<SubjectRow>> {
    query(
        conn,
        "SELECT id, kek_version, wrapped_dek, ref_index, created_at, flags FROM subjects
         WHERE tenant = ?1 AND id > coalesce(?2, '') ORDER BY id LIMIT ?3",
        params![tenant.as_str(), after, limit],
        |r| subject_row(tenant, r),
    )?
    .into_iter()
    .filter_map(|found| finish_subject(Some(found)).transpose())
    .collect()
}

pub(crate) fn count_tenant(
    conn: &Connection,
    tenant: &TenantId,
) -> StoreResult<strongroom_core::store::TenantCounts> {
    let n = |sql: &str| -> StoreResult<u64> {
        let v: i64 = query(conn, sql, params![tenant.as_str()], |r| r.get(0))?
            .pop()
            .unwrap_or(0);
        u64::try_from(v).map_err(|_| corrupt("count"))
    };
    Ok(strongroom_core::store::TenantCounts {
        records: n("SELECT count(*) FROM records WHERE tenant = ?1")?,
        subjects: n("SELECT count(*) FROM subjects WHERE tenant = ?1")?,
        versions: n("SELECT count(*) FROM record_history WHERE tenant = ?1")?,
    })
}
