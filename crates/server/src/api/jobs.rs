//! The job endpoints: what runs in the background, and asking for a run now.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::error::ApiResult;
use super::extract::{Caller, PathParams};
use super::AppState;

#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    responses((status = 200, body = strongroom_proto::JobList, description = "the jobs the caller may see: all for operators, a tenant's own for its admin")),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<strongroom_proto::JobList>> {
    Ok(Json(s.vault.list_jobs(&c.0).await?))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "`kind`, or `kind:tenant`")),
    responses((status = 200, body = strongroom_proto::Job), (status = 404, body = strongroom_proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<strongroom_proto::Job>> {
    Ok(Json(s.vault.get_job(&c.0, &id).await?))
}

#[utoipa::path(post, path = "/v1/jobs/{id}/run", tag = "jobs",
    params(("id" = String, Path, description = "`kind`, or `kind:tenant`")),
    responses((status = 202, body = strongroom_proto::Job, description = "the run is due now: a node starts it within a second"),
              (status = 404, body = strongroom_proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn run(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<(StatusCode, Json<strongroom_proto::Job>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.vault.request_job_run(&c.0, &id).await?),
    ))
}
