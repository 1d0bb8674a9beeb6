//! Queries of the reader connections, and the mapping of rows to the core's row types.

use rusqlite::{params, params_from_iter, types::Value, Connection, OptionalExtension, Row};
use strongroom_core::ids::{ApiKeyId, RecordId, SubjectId, TenantId};
use strongroom_core::store::{
    ApiKeyRow, AuditQuery, CollectionRow, RecordRow, RecordState, RoleRow, StoreError, StoreResult,
    SubjectRow, TenantKeyRow, TenantRow,
};
use strongroom_proto::AuditEntry;

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

pub(crate) fn meta(conn: &Connection, key: &str) -> StoreResult<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(unavailable)
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

pub(crate) fn api_key(conn: &Connection, hash: &[u8; 32]) -> StoreResult<Option<ApiKeyRow>> {
    let row = conn
        .prepare_cached("SELECT id, tenant, name, hash, roles, created_at, expires_at FROM api_keys WHERE hash = ?1")
        .and_then(|mut s| {
            s.query_row([&hash[..]], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .optional()
        })
        .map_err(unavailable)?;
    let Some((id, tenant, name, hash, roles, created_at, expires_at)) = row else {
        return Ok(None);
    };
    Ok(Some(ApiKeyRow {
        id: ApiKeyId::from_stored(id),
        tenant: tenant.map(TenantId::from_stored),
        name,
        hash: hash32(hash)?,
        roles: serde_json::from_str(&roles).map_err(|_| corrupt("api key roles"))?,
        created_at,
        expires_at,
    }))
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
        "SELECT name, def, updated_at FROM roles WHERE tenant = ?1 AND (?2 IS NULL OR name = ?2) ORDER BY name",
        params![tenant.as_str(), name],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)),
    )?;
    raw.into_iter()
        .map(|(name, def, updated_at)| {
            Ok(RoleRow {
                tenant: tenant.clone(),
                name,
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
        "SELECT id, kek_version, wrapped_dek, ref_index, created_at FROM subjects WHERE tenant = ?1 AND id = ?2",
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
        "SELECT id, kek_version, wrapped_dek, ref_index, created_at FROM subjects WHERE tenant = ?1 AND ref_index = ?2",
        params![tenant.as_str(), &ix[..]],
        |r| subject_row(tenant, r),
    )?
    .pop();
    finish_subject(found)
}

const RECORD_COLUMNS: &str =
    "r.id, r.collection, r.subject, r.version, r.state, r.created_at, r.updated_at, r.data";

fn record_row(tenant: &TenantId, r: &Row<'_>) -> rusqlite::Result<RecordRow> {
    Ok(RecordRow {
        tenant: tenant.clone(),
        id: RecordId::from_stored(r.get(0)?),
        collection: r.get(1)?,
        subject: SubjectId::from_stored(r.get(2)?),
        version: r.get::<_, i64>(3)? as u64,
        state: if r.get::<_, i64>(4)? == 0 {
            RecordState::Active
        } else {
            RecordState::Blocked
        },
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        data: r.get(7)?,
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
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?)),
    )
}

pub(crate) fn audit(conn: &Connection, log: &str, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
    let mut sql = String::from("SELECT body FROM audit WHERE log = ?1 AND seq > ?2");
    let mut args: Vec<Value> = vec![
        Value::Text(log.to_owned()),
        Value::Integer(q.after_seq as i64),
    ];
    let mut filter = |column: &str, op: &str, v: Value| {
        args.push(v);
        sql.push_str(&format!(" AND {column} {op} ?{}", args.len()));
    };
    for (column, v) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("outcome", &q.outcome),
        ("subject", &q.subject),
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
