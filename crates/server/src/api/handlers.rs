//! HTTP handlers: each translates a request into one call of the vault and its answer back.
//! No SQL, no crypto, no policy here.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use strongroom_core::store::AuditQuery;
use strongroom_core::{Code, Error, Term};
use strongroom_proto as proto;

use super::error::ApiResult;
use super::extract::{Body, Caller, Conditions, PathParams, QueryPairs};
use super::AppState;

/// Unwraps a parsed body, auditing the rejection under `action` when it did not parse.
pub(super) async fn body<T>(
    state: &AppState,
    caller: &Caller,
    action: &'static str,
    body: Body<T>,
) -> ApiResult<T> {
    match body.0 {
        Ok(v) => Ok(v),
        Err(e) => Err(state.vault.reject(&caller.0, action, e).await.into()),
    }
}

fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, body = proto::Health)))]
pub async fn get_healthz() -> Json<proto::Health> {
    Json(proto::Health {
        status: "ok".into(),
    })
}

/// The last readiness probe: at most one probe runs per second, whatever the number of callers.
#[derive(Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<(i64, Result<(), String>)>>,
}

#[utoipa::path(get, path = "/readyz", tag = "service",
    responses((status = 200, body = proto::Health, description = "the node can commit and serves"),
        (status = 503, body = proto::ErrorBody, description = "`not_ready`: take the node out of service")))]
pub async fn get_readyz(State(s): State<AppState>) -> ApiResult<Json<proto::Health>> {
    let mut last = s.readiness.last.lock().await;
    let now = s.vault.now();
    let fresh = last
        .as_ref()
        .filter(|(at, _)| now.saturating_sub(*at) < 1000);
    let result = match fresh {
        Some((_, r)) => r.clone(),
        None => {
            let r = match tokio::time::timeout(
                std::time::Duration::from_secs(2),
                s.vault.probe_store(),
            )
            .await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.message.into_owned()),
                Err(_) => {
                    Err("the store did not commit within 2 seconds: this node cannot serve".into())
                }
            };
            *last = Some((now, r.clone()));
            r
        }
    };
    match result {
        Ok(()) => Ok(Json(proto::Health {
            status: "ready".into(),
        })),
        Err(message) => Err(Error::new(Code::NotReady, message).into()),
    }
}

#[utoipa::path(post, path = "/v1/tenants", tag = "operator", request_body = proto::CreateTenant,
    responses((status = 201, body = proto::Tenant), (status = 400, body = proto::ErrorBody),
              (status = 403, body = proto::ErrorBody), (status = 409, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_tenant(
    State(s): State<AppState>,
    c: Caller,
    b: Body<proto::CreateTenant>,
) -> ApiResult<impl IntoResponse> {
    let req = body(&s, &c, "tenant.create", b).await?;
    let t = s.vault.create_tenant(&c.0, req).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "admin", request_body = proto::CreateApiKey,
    responses((status = 201, body = proto::CreatedApiKey), (status = 400, body = proto::ErrorBody),
              (status = 403, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_api_key(
    State(s): State<AppState>,
    c: Caller,
    b: Body<proto::CreateApiKey>,
) -> ApiResult<impl IntoResponse> {
    let req = body(&s, &c, "api_key.create", b).await?;
    let k = s.vault.create_api_key(&c.0, req).await?;
    Ok((StatusCode::CREATED, Json(k)))
}

#[utoipa::path(put, path = "/v1/collections/{name}", tag = "admin", request_body = proto::CollectionDef,
    params(("name" = String, Path, description = "collection name"),
           ("If-Match" = Option<String>, Header, description = "the ETag (version) the change was made against, or `*`: refused with 412 otherwise"),
           ("If-None-Match" = Option<String>, Header, description = "`*`: create only, refused with 412 if it exists")),
    responses((status = 201, body = proto::Collection, headers(("ETag" = String))), (status = 200, body = proto::Collection, headers(("ETag" = String))),
              (status = 400, body = proto::ErrorBody), (status = 403, body = proto::ErrorBody),
              (status = 409, body = proto::ErrorBody, description = "`version_conflict`: changed while this request ran"),
              (status = 412, body = proto::ErrorBody, description = "`precondition_failed`")),
    security(("bearer" = [])))]
pub async fn put_collection(
    State(s): State<AppState>,
    c: Caller,
    PathParams(name): PathParams<String>,
    pre: Conditions,
    b: Body<proto::CollectionDef>,
) -> ApiResult<impl IntoResponse> {
    let def = body(&s, &c, "collection.put", b).await?;
    let (col, created) = s.vault.put_collection(&c.0, &name, def, pre.0).await?;
    Ok((created_or_ok(created), etag(col.version), Json(col)))
}

#[utoipa::path(get, path = "/v1/collections", tag = "admin",
    responses((status = 200, body = proto::CollectionList)), security(("bearer" = [])))]
pub async fn get_collections(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<proto::CollectionList>> {
    Ok(Json(s.vault.list_collections(&c.0).await?))
}

#[utoipa::path(get, path = "/v1/collections/{name}", tag = "admin",
    params(("name" = String, Path, description = "collection name")),
    responses((status = 200, body = proto::Collection, headers(("ETag" = String, description = "the collection's version, for `If-Match`"))), (status = 404, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_collection(
    State(s): State<AppState>,
    c: Caller,
    PathParams(name): PathParams<String>,
) -> ApiResult<impl IntoResponse> {
    let col = s.vault.get_collection(&c.0, &name).await?;
    Ok((etag(col.version), Json(col)))
}

#[utoipa::path(put, path = "/v1/roles/{name}", tag = "admin", request_body = proto::RoleDef,
    params(("name" = String, Path, description = "role name"),
           ("If-Match" = Option<String>, Header, description = "the ETag (version) the change was made against, or `*`: refused with 412 otherwise"),
           ("If-None-Match" = Option<String>, Header, description = "`*`: create only, refused with 412 if it exists")),
    responses((status = 201, body = proto::Role, headers(("ETag" = String))), (status = 200, body = proto::Role, headers(("ETag" = String))),
              (status = 400, body = proto::ErrorBody),
              (status = 409, body = proto::ErrorBody, description = "`version_conflict`: changed while this request ran"),
              (status = 412, body = proto::ErrorBody, description = "`precondition_failed`")),
    security(("bearer" = [])))]
pub async fn put_role(
    State(s): State<AppState>,
    c: Caller,
    PathParams(name): PathParams<String>,
    pre: Conditions,
    b: Body<proto::RoleDef>,
) -> ApiResult<impl IntoResponse> {
    let def = body(&s, &c, "role.put", b).await?;
    let (role, created) = s.vault.put_role(&c.0, &name, def, pre.0).await?;
    Ok((created_or_ok(created), etag(role.version), Json(role)))
}

#[utoipa::path(get, path = "/v1/roles/{name}", tag = "admin",
    params(("name" = String, Path, description = "role name")),
    responses((status = 200, body = proto::Role, headers(("ETag" = String, description = "the role's version, for `If-Match`"))),
              (status = 404, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_role(
    State(s): State<AppState>,
    c: Caller,
    PathParams(name): PathParams<String>,
) -> ApiResult<impl IntoResponse> {
    let role = s.vault.get_role(&c.0, &name).await?;
    Ok((etag(role.version), Json(role)))
}

/// `ETag: "<version>"`.
fn etag(version: u64) -> [(axum::http::HeaderName, String); 1] {
    [(axum::http::header::ETAG, format!("\"{version}\""))]
}

#[utoipa::path(get, path = "/v1/roles", tag = "admin",
    responses((status = 200, body = proto::RoleList)), security(("bearer" = [])))]
pub async fn get_roles(State(s): State<AppState>, c: Caller) -> ApiResult<Json<proto::RoleList>> {
    Ok(Json(s.vault.list_roles(&c.0).await?))
}

#[utoipa::path(post, path = "/v1/collections/{collection}/records", tag = "records", request_body = proto::CreateRecord,
    params(("collection" = String, Path), ("X-Purpose" = String, Header, description = "the purpose of this access")),
    responses((status = 201, body = proto::CreatedRecord), (status = 400, body = proto::ErrorBody),
              (status = 403, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_record(
    State(s): State<AppState>,
    c: Caller,
    PathParams(collection): PathParams<String>,
    b: Body<proto::CreateRecord>,
) -> ApiResult<impl IntoResponse> {
    let req = body(&s, &c, "record.create", b).await?;
    let r = s.vault.create_record(&c.0, &collection, req).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

#[utoipa::path(post, path = "/v1/collections/{collection}/records/batch", tag = "records", request_body = proto::BatchCreate,
    params(("collection" = String, Path), ("X-Purpose" = String, Header)),
    responses((status = 201, body = proto::BatchCreated), (status = 400, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_records_batch(
    State(s): State<AppState>,
    c: Caller,
    PathParams(collection): PathParams<String>,
    b: Body<proto::BatchCreate>,
) -> ApiResult<impl IntoResponse> {
    let req = body(&s, &c, "record.batch_create", b).await?;
    let r = s.vault.batch_create(&c.0, &collection, req).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

#[utoipa::path(post, path = "/v1/collections/{collection}/records/lookup", tag = "records", request_body = proto::BatchRead,
    params(("collection" = String, Path), ("X-Purpose" = String, Header)),
    responses((status = 200, body = proto::BatchReadResult), (status = 400, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_records_lookup(
    State(s): State<AppState>,
    c: Caller,
    PathParams(collection): PathParams<String>,
    b: Body<proto::BatchRead>,
) -> ApiResult<Json<proto::BatchReadResult>> {
    let req = body(&s, &c, "record.batch_read", b).await?;
    Ok(Json(s.vault.batch_read(&c.0, &collection, req).await?))
}

#[utoipa::path(get, path = "/v1/collections/{collection}/records", tag = "records",
    params(("collection" = String, Path), ("X-Purpose" = String, Header),
           ("limit" = Option<u32>, Query, description = "1 to 1000, default 100")),
    responses((status = 200, body = proto::RecordList), (status = 400, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_records(
    State(s): State<AppState>,
    c: Caller,
    PathParams(collection): PathParams<String>,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<proto::RecordList>> {
    let mut limit = None;
    let mut terms = Vec::new();
    for (k, v) in pairs {
        if k == "limit" {
            match v.parse() {
                Ok(n) => limit = Some(n),
                Err(_) => {
                    let e = Error::new(Code::InvalidRequest, "limit must be a whole number");
                    return Err(s.vault.reject(&c.0, "record.search", e).await.into());
                }
            }
        } else {
            terms.push((k, Term::Text(v)));
        }
    }
    Ok(Json(s.vault.search(&c.0, &collection, terms, limit).await?))
}

#[utoipa::path(post, path = "/v1/collections/{collection}/records/search", tag = "records", request_body = proto::SearchRequest,
    params(("collection" = String, Path), ("X-Purpose" = String, Header)),
    responses((status = 200, body = proto::RecordList), (status = 400, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_records_search(
    State(s): State<AppState>,
    c: Caller,
    PathParams(collection): PathParams<String>,
    b: Body<proto::SearchRequest>,
) -> ApiResult<Json<proto::RecordList>> {
    let req = body(&s, &c, "record.search", b).await?;
    let terms = req
        .r#where
        .into_iter()
        .map(|(k, v)| (k, Term::Value(v)))
        .collect();
    Ok(Json(s.vault.search(&c.0, &collection, terms, None).await?))
}

#[utoipa::path(get, path = "/v1/collections/{collection}/records/{id}", tag = "records",
    params(("collection" = String, Path), ("id" = String, Path), ("X-Purpose" = String, Header)),
    responses((status = 200, body = proto::Record), (status = 403, body = proto::ErrorBody),
              (status = 404, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_record(
    State(s): State<AppState>,
    c: Caller,
    PathParams((collection, id)): PathParams<(String, String)>,
) -> ApiResult<Json<proto::Record>> {
    Ok(Json(s.vault.get_record(&c.0, &collection, &id).await?))
}

#[utoipa::path(patch, path = "/v1/collections/{collection}/records/{id}", tag = "records", request_body = proto::UpdateRecord,
    params(("collection" = String, Path), ("id" = String, Path), ("X-Purpose" = String, Header)),
    responses((status = 200, body = proto::CreatedRecord), (status = 404, body = proto::ErrorBody),
              (status = 409, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch_record(
    State(s): State<AppState>,
    c: Caller,
    PathParams((collection, id)): PathParams<(String, String)>,
    b: Body<proto::UpdateRecord>,
) -> ApiResult<Json<proto::CreatedRecord>> {
    let req = body(&s, &c, "record.update", b).await?;
    Ok(Json(
        s.vault.update_record(&c.0, &collection, &id, req).await?,
    ))
}

#[utoipa::path(delete, path = "/v1/collections/{collection}/records/{id}", tag = "records",
    params(("collection" = String, Path), ("id" = String, Path), ("X-Purpose" = String, Header)),
    responses((status = 204), (status = 404, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_record(
    State(s): State<AppState>,
    c: Caller,
    PathParams((collection, id)): PathParams<(String, String)>,
) -> ApiResult<StatusCode> {
    s.vault.delete_record(&c.0, &collection, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/collections/{collection}/records/{id}/history", tag = "records",
    params(("collection" = String, Path), ("id" = String, Path), ("X-Purpose" = String, Header)),
    responses((status = 200, body = proto::RecordHistory, description = "earlier versions, oldest first, shown as the role allows"),
              (status = 404, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_record_history(
    State(s): State<AppState>,
    c: Caller,
    PathParams((collection, id)): PathParams<(String, String)>,
) -> ApiResult<Json<proto::RecordHistory>> {
    Ok(Json(s.vault.record_history(&c.0, &collection, &id).await?))
}

#[utoipa::path(post, path = "/v1/collections/{collection}/records/bulk-delete", tag = "records",
    request_body = proto::BulkRequest,
    params(("collection" = String, Path), ("X-Purpose" = String, Header)),
    responses((status = 200, body = proto::BulkAnswer, description = "`confirm`: the count and a token (nothing done yet); `done`: deleted"),
              (status = 404, body = proto::ErrorBody), (status = 412, body = proto::ErrorBody, description = "the confirmation is unknown, used, expired or another caller's")),
    security(("bearer" = [])))]
pub async fn post_bulk_delete(
    State(s): State<AppState>,
    c: Caller,
    PathParams(collection): PathParams<String>,
    b: Body<proto::BulkRequest>,
) -> ApiResult<Json<proto::BulkAnswer>> {
    let req = body(&s, &c, "record.bulk_delete", b).await?;
    Ok(Json(
        s.vault
            .bulk(
                &c.0,
                &collection,
                strongroom_core::vault::BulkOp::Delete,
                req,
            )
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/collections/{collection}/records/bulk-restore", tag = "records",
    request_body = proto::BulkRequest,
    params(("collection" = String, Path)),
    responses((status = 200, body = proto::BulkAnswer, description = "`confirm`: the count and a token (nothing done yet); `done`: restored"),
              (status = 404, body = proto::ErrorBody), (status = 412, body = proto::ErrorBody, description = "the confirmation is unknown, used, expired or another caller's")),
    security(("bearer" = [])))]
pub async fn post_bulk_restore(
    State(s): State<AppState>,
    c: Caller,
    PathParams(collection): PathParams<String>,
    b: Body<proto::BulkRequest>,
) -> ApiResult<Json<proto::BulkAnswer>> {
    let req = body(&s, &c, "record.bulk_restore", b).await?;
    Ok(Json(
        s.vault
            .bulk(
                &c.0,
                &collection,
                strongroom_core::vault::BulkOp::Restore,
                req,
            )
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/collections/{collection}/records/{id}/restore", tag = "records",
    params(("collection" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "the deleted record is active again"),
              (status = 404, body = proto::ErrorBody, description = "no such record, or already purged"),
              (status = 409, body = proto::ErrorBody, description = "the record is not deleted")),
    security(("bearer" = [])))]
pub async fn restore_record(
    State(s): State<AppState>,
    c: Caller,
    PathParams((collection, id)): PathParams<(String, String)>,
) -> ApiResult<StatusCode> {
    s.vault.restore_record(&c.0, &collection, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/purges/pending", tag = "records",
    responses((status = 200, body = proto::PendingPurges, description = "deleted records awaiting their purge, per collection: counts, the next due time, ids; no values")),
    security(("bearer" = [])))]
pub async fn pending_purges(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<proto::PendingPurges>> {
    Ok(Json(s.vault.pending_purges(&c.0).await?))
}

#[utoipa::path(post, path = "/v1/holds", tag = "records", request_body = proto::HoldInput,
    responses((status = 201, body = proto::Hold),
              (status = 404, body = proto::ErrorBody, description = "no such subject or collection")),
    security(("bearer" = [])))]
pub async fn post_hold(
    State(s): State<AppState>,
    c: Caller,
    b: Body<proto::HoldInput>,
) -> ApiResult<impl IntoResponse> {
    let req = body(&s, &c, "hold.place", b).await?;
    Ok((
        StatusCode::CREATED,
        Json(s.vault.place_hold(&c.0, req).await?),
    ))
}

#[utoipa::path(get, path = "/v1/holds", tag = "records",
    responses((status = 200, body = proto::HoldList, description = "the tenant's legal holds, lifted ones included")),
    security(("bearer" = [])))]
pub async fn get_holds(State(s): State<AppState>, c: Caller) -> ApiResult<Json<proto::HoldList>> {
    Ok(Json(s.vault.list_holds(&c.0).await?))
}

#[utoipa::path(post, path = "/v1/holds/{id}/lift", tag = "records",
    params(("id" = String, Path)),
    responses((status = 200, body = proto::Hold, description = "the hold, lifted"),
              (status = 404, body = proto::ErrorBody), (status = 409, body = proto::ErrorBody, description = "lifted already")),
    security(("bearer" = [])))]
pub async fn lift_hold(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<proto::Hold>> {
    Ok(Json(s.vault.lift_hold(&c.0, &id).await?))
}

#[utoipa::path(get, path = "/v1/audit/entries", tag = "audit",
    params(("after" = Option<u64>, Query, description = "sequence number to continue after"),
           ("limit" = Option<u32>, Query, description = "1 to 1000, default 100", minimum = 1, maximum = 1000), ("actor" = Option<String>, Query), ("action" = Option<String>, Query),
           ("outcome" = Option<String>, Query), ("subject" = Option<String>, Query),
           ("collection" = Option<String>, Query), ("from" = Option<i64>, Query), ("to" = Option<i64>, Query)),
    responses((status = 200, body = proto::AuditPage), (status = 400, body = proto::ErrorBody),
        (status = 403, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_audit_entries(
    State(s): State<AppState>,
    c: Caller,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<proto::AuditPage>> {
    let mut q = AuditQuery::default();
    for (k, v) in pairs {
        let num = |v: &str| {
            v.parse::<i64>().map_err(|_| {
                Error::new(
                    Code::InvalidRequest,
                    format!("`{k}` must be a whole number"),
                )
            })
        };
        let parsed: Result<(), Error> = (|| {
            match k.as_str() {
                "after" => {
                    q.after_seq = u64::try_from(num(&v)?).map_err(|_| {
                        Error::new(Code::InvalidRequest, "`after` must be 0 or more")
                    })?
                }
                "limit" => {
                    q.limit = u32::try_from(num(&v)?)
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(|| {
                            Error::new(Code::InvalidRequest, "`limit` must be 1 to 1000")
                        })?
                }
                "from" => q.from_ms = Some(num(&v)?),
                "to" => q.to_ms = Some(num(&v)?),
                "actor" => q.actor = Some(v.clone()),
                "action" => q.action = Some(v.clone()),
                "outcome" => q.outcome = Some(v.clone()),
                "subject" => q.subject = Some(v.clone()),
                "collection" => q.collection = Some(v.clone()),
                _ => return Err(Error::new(Code::UnknownField, "unknown query parameter")),
            }
            Ok(())
        })();
        if let Err(e) = parsed {
            return Err(s.vault.reject(&c.0, "audit.read", e).await.into());
        }
    }
    Ok(Json(s.vault.list_audit(&c.0, q).await?))
}
