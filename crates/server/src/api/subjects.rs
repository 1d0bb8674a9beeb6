//! The data-subject endpoints: what the vault holds of a subject, its export (access and
//! portability), its erasure with a signed receipt, restriction, consents, and the register of
//! data-subject requests.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use strongroom_compliance::subject_rights;
use strongroom_core::vault::Precondition;

use super::error::ApiResult;
use strongroom_core::error::{Code, Error};

use super::extract::{Body, Caller, Conditions, PathParams, QueryPairs};
use super::handlers::body;
use super::AppState;

#[utoipa::path(get, path = "/v1/subjects/{subject}", tag = "subjects",
    params(("subject" = String, Path)),
    responses((status = 200, body = strongroom_proto::SubjectView, description = "records per collection, holds — counts, never values (`privacy_officer` or `admin`)"),
              (status = 404, body = strongroom_proto::ErrorBody, description = "no such subject in the caller's tenant")),
    security(("bearer" = [])))]
pub async fn view(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<strongroom_proto::SubjectView>> {
    Ok(Json(s.vault.subject_view(&c.0, &id).await?))
}

#[utoipa::path(get, path = "/v1/subjects", tag = "subjects",
    params(("ref" = String, Query, description = "the application's own reference of the subject (`subject_ref` when its records were stored)")),
    responses((status = 200, body = strongroom_proto::SubjectView, description = "as `GET /v1/subjects/{subject}`"),
              (status = 400, body = strongroom_proto::ErrorBody, description = "no `ref`, or more than one"),
              (status = 404, body = strongroom_proto::ErrorBody, description = "no subject with that reference in the caller's tenant")),
    security(("bearer" = [])))]
pub async fn by_ref(
    State(s): State<AppState>,
    c: Caller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<strongroom_proto::SubjectView>> {
    let refs: Vec<&String> = q
        .iter()
        .filter(|(k, _)| k == "ref")
        .map(|(_, v)| v)
        .collect();
    match refs.as_slice() {
        [r] => Ok(Json(s.vault.subject_view_by_ref(&c.0, r).await?)),
        _ => {
            let e = Error::new(Code::InvalidRequest, "give exactly one `ref`");
            Err(s.vault.reject(&c.0, "subject.view", e).await.into())
        }
    }
}

#[utoipa::path(post, path = "/v1/subjects/{subject}/restriction", tag = "subjects",
    params(("subject" = String, Path)),
    responses((status = 200, body = strongroom_proto::SubjectView, description = "restricted: every data operation on the subject but export and erasure is refused (`subject_restricted`) until lifted (`privacy_officer`)"),
              (status = 404, body = strongroom_proto::ErrorBody, description = "no such subject in the caller's tenant")),
    security(("bearer" = [])))]
pub async fn restrict(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<strongroom_proto::SubjectView>> {
    Ok(Json(s.vault.restrict_subject(&c.0, &id, true).await?))
}

#[utoipa::path(post, path = "/v1/subjects/{subject}/restriction/lift", tag = "subjects",
    params(("subject" = String, Path)),
    responses((status = 200, body = strongroom_proto::SubjectView, description = "the restriction lifted (`privacy_officer`; audited)"),
              (status = 404, body = strongroom_proto::ErrorBody, description = "no such subject in the caller's tenant")),
    security(("bearer" = [])))]
pub async fn lift_restriction(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<strongroom_proto::SubjectView>> {
    Ok(Json(s.vault.restrict_subject(&c.0, &id, false).await?))
}

#[utoipa::path(post, path = "/v1/subjects/{subject}/consents", tag = "subjects",
    params(("subject" = String, Path)),
    request_body = strongroom_proto::ConsentChange,
    responses((status = 200, body = strongroom_proto::ConsentEntry, description = "the change as the consent register keeps it (an application whose roles use the purpose, the `privacy_officer` or the `admin`)"),
              (status = 404, body = strongroom_proto::ErrorBody, description = "no such subject in the caller's tenant"),
              (status = 422, body = strongroom_proto::ErrorBody, description = "`unknown_purpose`: no collection bases the purpose on consent (or, to object, on legitimate interest)")),
    security(("bearer" = [])))]
pub async fn record_consent(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    b: Body<strongroom_proto::ConsentChange>,
) -> ApiResult<Json<strongroom_proto::ConsentEntry>> {
    let req = body(&s, &c, "consent.record", b).await?;
    Ok(Json(s.vault.record_consent(&c.0, &id, req).await?))
}

#[utoipa::path(get, path = "/v1/subjects/{subject}/consents", tag = "subjects",
    params(("subject" = String, Path)),
    responses((status = 200, body = strongroom_proto::SubjectConsents, description = "every change of the subject's consents and objections (`privacy_officer` or `admin`)"),
              (status = 404, body = strongroom_proto::ErrorBody, description = "no such subject in the caller's tenant")),
    security(("bearer" = [])))]
pub async fn consents(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<strongroom_proto::SubjectConsents>> {
    Ok(Json(s.vault.subject_consents(&c.0, &id).await?))
}

#[utoipa::path(post, path = "/v1/subjects/{subject}/erasure", tag = "subjects",
    params(("subject" = String, Path)),
    responses((status = 200, body = strongroom_proto::ErasureReceipt, description = "the signed receipt (`repeat`: erased before, nothing more done)"),
              (status = 404, body = strongroom_proto::ErrorBody, description = "no such subject in the caller's tenant"),
              (status = 409, body = strongroom_proto::ErrorBody, description = "`legal_hold`: a hold is in force")),
    security(("bearer" = [])))]
pub async fn erase(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<strongroom_proto::ErasureReceipt>> {
    Ok(Json(s.vault.erase_subject(&c.0, &id).await?))
}

#[utoipa::path(post, path = "/v1/subjects/{subject}/export", tag = "subjects",
    params(("subject" = String, Path)),
    request_body = strongroom_proto::ExportInput,
    responses((status = 201, body = strongroom_proto::ExportCreated, description = "everything held of the subject, sealed under its key until downloaded or expired (`privacy_officer`; purpose `data_subject_request`; allowed while restricted)"),
              (status = 404, body = strongroom_proto::ErrorBody, description = "no such subject in the caller's tenant"),
              (status = 422, body = strongroom_proto::ErrorBody, description = "`request` names no open access or portability request about this subject")),
    security(("bearer" = [])))]
pub async fn export(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    b: Body<strongroom_proto::ExportInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "subject.export", b).await?;
    let out = s
        .vault
        .export_subject(
            &c.0,
            &id,
            &input,
            &strongroom_compliance::subject_rights::Registers,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(get, path = "/v1/exports/{id}", tag = "subjects",
    params(("id" = String, Path),
           ("format" = Option<String>, Query, description = "`json` (the default: the document of `docs/subject-rights.md`) or `text` (a human-readable rendering, Markdown)")),
    responses((status = 200, body = strongroom_proto::SubjectExport, description = "the export; each download counts, the last allowed one deletes it (`privacy_officer`)"),
              (status = 404, body = strongroom_proto::ErrorBody, description = "no such export in the caller's tenant"),
              (status = 410, body = strongroom_proto::ErrorBody, description = "`export_gone`: expired, or downloaded as often as it allows")),
    security(("bearer" = [])))]
pub async fn download(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Response> {
    let mut text = false;
    for (k, v) in &q {
        match (k.as_str(), v.as_str()) {
            ("format", "json") => text = false,
            ("format", "text") => text = true,
            ("format", _) => {
                let e = Error::new(Code::InvalidRequest, "format is one of json, text");
                return Err(s.vault.reject(&c.0, "export.download", e).await.into());
            }
            _ => {
                let e = Error::new(Code::UnknownField, "unknown query parameter");
                return Err(s.vault.reject(&c.0, "export.download", e).await.into());
            }
        }
    }
    let doc = s.vault.download_export(&c.0, &id).await?;
    let headers = [(header::CACHE_CONTROL, "no-store")];
    Ok(if text {
        (
            headers,
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            strongroom_compliance::subject_rights::markdown(&doc),
        )
            .into_response()
    } else {
        (headers, Json(doc)).into_response()
    })
}

fn dsar_etag(d: &strongroom_proto::Dsar) -> [(header::HeaderName, String); 1] {
    [(header::ETAG, format!("\"{}\"", d.version))]
}

#[utoipa::path(post, path = "/v1/dsars", tag = "subjects",
    request_body = strongroom_proto::DsarInput,
    responses((status = 201, body = strongroom_proto::Dsar, headers(("ETag" = String)), description = "the request registered with its deadline (`privacy_officer`)"),
              (status = 422, body = strongroom_proto::ErrorBody, description = "a rule across its parts: an extension beyond three months in all, a fulfilment not on record…")),
    security(("bearer" = [])))]
pub async fn post_dsar(
    State(s): State<AppState>,
    c: Caller,
    b: Body<strongroom_proto::DsarInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "dsar.create", b).await?;
    let d = subject_rights::put(&s.vault, &c.0, None, input, Precondition::Any).await?;
    Ok((StatusCode::CREATED, dsar_etag(&d), Json(d)))
}

#[utoipa::path(put, path = "/v1/dsars/{id}", tag = "subjects",
    request_body = strongroom_proto::DsarInput,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "the version the change was made against")),
    responses((status = 200, body = strongroom_proto::Dsar, headers(("ETag" = String))),
              (status = 404, body = strongroom_proto::ErrorBody), (status = 409, body = strongroom_proto::ErrorBody),
              (status = 412, body = strongroom_proto::ErrorBody), (status = 422, body = strongroom_proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_dsar(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    pre: Conditions,
    b: Body<strongroom_proto::DsarInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "dsar.change", b).await?;
    let d = subject_rights::put(&s.vault, &c.0, Some(&id), input, pre.0).await?;
    Ok((dsar_etag(&d), Json(d)))
}

#[utoipa::path(get, path = "/v1/dsars", tag = "subjects",
    responses((status = 200, body = strongroom_proto::DsarList, description = "the tenant's data-subject requests with their deadlines and the register's figures (`privacy_officer`, `admin`, `auditor`)")),
    security(("bearer" = [])))]
pub async fn get_dsars(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<strongroom_proto::DsarList>> {
    Ok(Json(subject_rights::list(&s.vault, &c.0).await?))
}

#[utoipa::path(get, path = "/v1/dsars/{id}", tag = "subjects",
    params(("id" = String, Path)),
    responses((status = 200, body = strongroom_proto::Dsar, headers(("ETag" = String))),
              (status = 404, body = strongroom_proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_dsar(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<impl IntoResponse> {
    let d = subject_rights::get(&s.vault, &c.0, &id).await?;
    Ok((dsar_etag(&d), Json(d)))
}

#[utoipa::path(post, path = "/v1/offboarding", tag = "offboarding",
    request_body = strongroom_proto::OffboardingInput,
    responses((status = 201, body = strongroom_proto::OffboardingRequest, description = "the tenant's admin asks for the termination of its own tenant; an operator executes it. `archive_token` is shown once"),
              (status = 409, body = strongroom_proto::ErrorBody, description = "already requested")),
    security(("bearer" = [])))]
pub async fn request_own_offboarding(
    State(s): State<AppState>,
    c: Caller,
    b: Body<strongroom_proto::OffboardingInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "tenant.offboarding_request", b).await?;
    let r = s.vault.request_offboarding(&c.0, None, &input).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

#[utoipa::path(post, path = "/v1/tenants/{id}/offboarding", tag = "offboarding",
    params(("id" = String, Path)),
    request_body = strongroom_proto::OffboardingInput,
    responses((status = 201, body = strongroom_proto::OffboardingRequest, description = "an operator asks for the termination of a tenant; its admin executes it"),
              (status = 404, body = strongroom_proto::ErrorBody), (status = 409, body = strongroom_proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn request_offboarding(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    b: Body<strongroom_proto::OffboardingInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "tenant.offboarding_request", b).await?;
    let r = s.vault.request_offboarding(&c.0, Some(&id), &input).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

#[utoipa::path(post, path = "/v1/offboarding/execute", tag = "offboarding",
    responses((status = 200, body = strongroom_proto::OffboardingDone, description = "the tenant's admin executes the termination an operator asked for: archive written (its token in the answer), data and keys destroyed, log closed, signed certificate"),
              (status = 409, body = strongroom_proto::ErrorBody, description = "`two_party_required`: not requested, or requested by the same party; `legal_hold`")),
    security(("bearer" = [])))]
pub async fn execute_own_offboarding(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<strongroom_proto::OffboardingDone>> {
    Ok(Json(s.vault.execute_offboarding(&c.0, None).await?))
}

#[utoipa::path(post, path = "/v1/tenants/{id}/offboarding/execute", tag = "offboarding",
    params(("id" = String, Path)),
    responses((status = 200, body = strongroom_proto::OffboardingDone, description = "an operator executes the termination the tenant's admin asked for (the archive token went to the admin)"),
              (status = 404, body = strongroom_proto::ErrorBody),
              (status = 409, body = strongroom_proto::ErrorBody, description = "`two_party_required`: not requested, or requested by the same party; `legal_hold`")),
    security(("bearer" = [])))]
pub async fn execute_offboarding(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<strongroom_proto::OffboardingDone>> {
    Ok(Json(s.vault.execute_offboarding(&c.0, Some(&id)).await?))
}

#[utoipa::path(get, path = "/v1/offboarding/{id}/archive", tag = "offboarding",
    params(("id" = String, Path), ("X-Archive-Token" = String, Header, description = "the one-time token given to the tenant's admin")),
    responses((status = 200, description = "the tenant's final archive (`strongroom-tenant-archive/1`); deleted by this download"),
              (status = 401, body = strongroom_proto::ErrorBody, description = "no archive opens with this token"),
              (status = 410, body = strongroom_proto::ErrorBody, description = "expired"),
              (status = 429, body = strongroom_proto::ErrorBody, description = "too many attempts from this address (counted with sign-ins)")))]
pub async fn download_archive(
    State(s): State<AppState>,
    peer: Option<axum::Extension<super::PeerAddr>>,
    request_id: Option<axum::Extension<strongroom_core::RequestId>>,
    headers: axum::http::HeaderMap,
    PathParams(id): PathParams<String>,
) -> ApiResult<Response> {
    let request_id = request_id.map_or_else(|| s.vault.request_id(), |axum::Extension(id)| id);
    // Guesses are throttled like sign-ins (the token has 256 bits all the same).
    if let Some(axum::Extension(super::PeerAddr(addr))) = peer {
        let client = crate::ratelimit::client_ip(addr, &headers, &s.trusted_proxies);
        if !s.login_limiter.allow(client, s.vault.now()) {
            let client = crate::ratelimit::ClientKey::of(client).to_string();
            return Err(s.vault.login_throttled(&client).await.into());
        }
    }
    let token = headers
        .get("x-archive-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let doc = s.vault.download_archive(request_id, &id, token).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(doc)).into_response())
}
