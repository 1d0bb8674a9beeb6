//! The data-subject endpoints: what the vault holds of a subject, and its erasure with a signed
//! receipt.

use axum::extract::State;
use axum::Json;

use super::error::ApiResult;
use strongroom_core::error::{Code, Error};

use super::extract::{Body, Caller, PathParams, QueryPairs};
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
