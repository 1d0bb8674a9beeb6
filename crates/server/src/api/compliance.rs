//! The compliance endpoints: the TOMs report.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use strongroom_compliance::evidence::{Context, Scope};
use strongroom_compliance::render;
use strongroom_compliance::report::{self, Layout};
use strongroom_compliance::{incidents, registers, subprocessors, trainings};
use strongroom_core::vault::Precondition;
use strongroom_core::{Code, Error};

use super::error::ApiResult;
use super::extract::{Body, Caller, Conditions, PathParams, QueryPairs};
use super::handlers::body;
use super::AppState;

/// The report's output format.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
    Html,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Format::Json),
            "md" => Ok(Format::Markdown),
            "html" => Ok(Format::Html),
            other => Err(format!("format `{other}` is not one of json, md, html")),
        }
    }
}

/// Generates a report and renders it: signed JSON, Markdown or HTML (the bytes and a media type).
pub async fn produce(
    ctx: &Context<'_>,
    format: Format,
    layout: Layout,
) -> Result<(Vec<u8>, &'static str), String> {
    let report = report::generate(ctx).await?;
    Ok(match format {
        Format::Json => {
            let signed = report::sign(ctx.vault, report).await?;
            let mut bytes = serde_json::to_vec(&signed).map_err(|e| e.to_string())?;
            bytes.push(b'\n');
            (bytes, "application/json")
        }
        Format::Markdown => (
            render::markdown(&report, layout).into_bytes(),
            "text/markdown; charset=utf-8",
        ),
        Format::Html => (
            render::html(&report, layout).into_bytes(),
            "text/html; charset=utf-8",
        ),
    })
}

#[utoipa::path(get, path = "/v1/compliance/toms", tag = "compliance",
    params(("format" = Option<String>, Query, description = "`json` (signed; the default), `md` or `html`"),
           ("layout" = Option<String>, Query, description = "`art32` (the default) or `scc`"),
           ("tenant" = Option<String>, Query, description = "operators: a tenant's id or name (default: the platform)")),
    responses((status = 200, description = "the TOMs report (signed JSON, Markdown or HTML)")),
    security(("bearer" = [])))]
pub async fn get_toms(
    State(s): State<AppState>,
    c: Caller,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    let (mut format, mut layout, mut tenant) = (Format::Json, Layout::Art32, None);
    for (k, v) in &pairs {
        let bad = |e: String| Error::new(Code::InvalidRequest, e);
        match k.as_str() {
            "format" => format = v.parse().map_err(bad)?,
            "layout" => layout = v.parse().map_err(bad)?,
            "tenant" => tenant = Some(v.clone()),
            _ => return Err(Error::new(Code::UnknownField, "unknown query parameter").into()),
        }
    }
    let scope = match s
        .vault
        .authorize_compliance_report(&c.0, "compliance.report", tenant.as_deref())
        .await?
    {
        Some(t) => Scope::Tenant(t),
        None => Scope::Platform,
    };
    let ctx = Context {
        vault: &s.vault,
        scope,
        now: s.vault.now(),
        installation: s.installation.as_ref().clone(),
    };
    let (body, media) = produce(&ctx, format, layout).await.map_err(|e| {
        tracing::error!(error = %e, "the TOMs report could not be made");
        Error::internal()
    })?;
    Ok(([(header::CONTENT_TYPE, media)], body).into_response())
}

fn declaration_etag(d: &strongroom_proto::Declaration) -> [(header::HeaderName, String); 1] {
    [(header::ETAG, format!("\"{}\"", d.version))]
}

#[utoipa::path(post, path = "/v1/compliance/declarations", tag = "compliance",
    request_body = strongroom_proto::DeclarationInput,
    responses((status = 201, body = strongroom_proto::Declaration, headers(("ETag" = String)))),
    security(("bearer" = [])))]
pub async fn post_declaration(
    State(s): State<AppState>,
    c: Caller,
    b: Body<strongroom_proto::DeclarationInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "declaration.create", b).await?;
    let d =
        registers::put_declaration(&s.vault, &c.0, None, Some(input), Precondition::Any).await?;
    Ok((StatusCode::CREATED, declaration_etag(&d), Json(d)))
}

#[utoipa::path(put, path = "/v1/compliance/declarations/{id}", tag = "compliance",
    request_body = strongroom_proto::DeclarationInput,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "the version the change was made against")),
    responses((status = 200, body = strongroom_proto::Declaration, headers(("ETag" = String))),
              (status = 409, body = strongroom_proto::ErrorBody), (status = 412, body = strongroom_proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_declaration(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    pre: Conditions,
    b: Body<strongroom_proto::DeclarationInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "declaration.change", b).await?;
    let d = registers::put_declaration(&s.vault, &c.0, Some(&id), Some(input), pre.0).await?;
    Ok((declaration_etag(&d), Json(d)))
}

#[utoipa::path(post, path = "/v1/compliance/declarations/{id}/withdraw", tag = "compliance",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "the version the withdrawal was decided against")),
    responses((status = 200, body = strongroom_proto::Declaration, description = "the version that withdraws it"),
              (status = 409, body = strongroom_proto::ErrorBody), (status = 412, body = strongroom_proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn withdraw_declaration(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    pre: Conditions,
) -> ApiResult<impl IntoResponse> {
    let d = registers::put_declaration(&s.vault, &c.0, Some(&id), None, pre.0).await?;
    Ok((declaration_etag(&d), Json(d)))
}

#[utoipa::path(get, path = "/v1/compliance/declarations", tag = "compliance",
    responses((status = 200, body = strongroom_proto::DeclarationList, description = "the current version of each declaration the caller may read (a tenant's and the platform's)")),
    security(("bearer" = [])))]
pub async fn get_declarations(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<strongroom_proto::DeclarationList>> {
    Ok(Json(
        registers::list_declarations(&s.vault, &c.0, None).await?,
    ))
}

#[utoipa::path(get, path = "/v1/compliance/declarations/{id}/history", tag = "compliance",
    params(("id" = String, Path)),
    responses((status = 200, body = strongroom_proto::DeclarationList, description = "every version, oldest first")),
    security(("bearer" = [])))]
pub async fn get_declaration_history(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<strongroom_proto::DeclarationList>> {
    Ok(Json(
        registers::list_declarations(&s.vault, &c.0, Some(&id)).await?,
    ))
}

fn incident_etag(i: &strongroom_proto::Incident) -> [(header::HeaderName, String); 1] {
    [(header::ETAG, format!("\"{}\"", i.version))]
}

#[utoipa::path(post, path = "/v1/compliance/incidents", tag = "compliance",
    request_body = strongroom_proto::IncidentInput,
    responses((status = 201, body = strongroom_proto::Incident, headers(("ETag" = String)))),
    security(("bearer" = [])))]
pub async fn post_incident(
    State(s): State<AppState>,
    c: Caller,
    b: Body<strongroom_proto::IncidentInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "incident.create", b).await?;
    let i = incidents::put(&s.vault, &c.0, None, input, Precondition::Any).await?;
    Ok((StatusCode::CREATED, incident_etag(&i), Json(i)))
}

#[utoipa::path(put, path = "/v1/compliance/incidents/{id}", tag = "compliance",
    request_body = strongroom_proto::IncidentInput,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "the version the change was made against")),
    responses((status = 200, body = strongroom_proto::Incident, headers(("ETag" = String))),
              (status = 409, body = strongroom_proto::ErrorBody), (status = 412, body = strongroom_proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_incident(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    pre: Conditions,
    b: Body<strongroom_proto::IncidentInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "incident.change", b).await?;
    let i = incidents::put(&s.vault, &c.0, Some(&id), input, pre.0).await?;
    Ok((incident_etag(&i), Json(i)))
}

#[utoipa::path(get, path = "/v1/compliance/incidents", tag = "compliance",
    responses((status = 200, body = strongroom_proto::IncidentList, description = "the current version of each incident, with its clocks; for a tenant, those that concern it")),
    security(("bearer" = [])))]
pub async fn get_incidents(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<strongroom_proto::IncidentList>> {
    Ok(Json(incidents::list(&s.vault, &c.0).await?))
}

#[utoipa::path(get, path = "/v1/compliance/alerts", tag = "compliance",
    responses((status = 200, body = strongroom_proto::ComplianceAlerts, description = "what is overdue: incident notifications, declaration reviews")),
    security(("bearer" = [])))]
pub async fn get_alerts(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<strongroom_proto::ComplianceAlerts>> {
    Ok(Json(registers::list_alerts(&s.vault, &c.0).await?))
}

#[utoipa::path(post, path = "/v1/compliance/trainings", tag = "compliance",
    request_body = strongroom_proto::TrainingInput,
    responses((status = 201, body = strongroom_proto::Training, headers(("ETag" = String)))),
    security(("bearer" = [])))]
pub async fn post_training(
    State(s): State<AppState>,
    c: Caller,
    b: Body<strongroom_proto::TrainingInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "training.create", b).await?;
    let t = trainings::put(&s.vault, &c.0, None, input, Precondition::Any).await?;
    let etag = [(header::ETAG, format!("\"{}\"", t.version))];
    Ok((StatusCode::CREATED, etag, Json(t)))
}

#[utoipa::path(put, path = "/v1/compliance/trainings/{id}", tag = "compliance",
    request_body = strongroom_proto::TrainingInput,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "the version the change was made against")),
    responses((status = 200, body = strongroom_proto::Training, headers(("ETag" = String))),
              (status = 409, body = strongroom_proto::ErrorBody), (status = 412, body = strongroom_proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_training(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    pre: Conditions,
    b: Body<strongroom_proto::TrainingInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "training.change", b).await?;
    let t = trainings::put(&s.vault, &c.0, Some(&id), input, pre.0).await?;
    let etag = [(header::ETAG, format!("\"{}\"", t.version))];
    Ok((etag, Json(t)))
}

#[utoipa::path(get, path = "/v1/compliance/trainings", tag = "compliance",
    responses((status = 200, body = strongroom_proto::TrainingList, description = "the current version of each training record the caller may read")),
    security(("bearer" = [])))]
pub async fn get_trainings(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<strongroom_proto::TrainingList>> {
    Ok(Json(trainings::list(&s.vault, &c.0).await?))
}

#[utoipa::path(post, path = "/v1/compliance/subprocessors", tag = "compliance",
    request_body = strongroom_proto::SubprocessorInput,
    responses((status = 201, body = strongroom_proto::Subprocessor, headers(("ETag" = String)))),
    security(("bearer" = [])))]
pub async fn post_subprocessor(
    State(s): State<AppState>,
    c: Caller,
    b: Body<strongroom_proto::SubprocessorInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "subprocessor.create", b).await?;
    let p = subprocessors::put(&s.vault, &c.0, None, input, Precondition::Any).await?;
    let etag = [(header::ETAG, format!("\"{}\"", p.version))];
    Ok((StatusCode::CREATED, etag, Json(p)))
}

#[utoipa::path(put, path = "/v1/compliance/subprocessors/{id}", tag = "compliance",
    request_body = strongroom_proto::SubprocessorInput,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "the version the change was made against")),
    responses((status = 200, body = strongroom_proto::Subprocessor, headers(("ETag" = String))),
              (status = 409, body = strongroom_proto::ErrorBody), (status = 412, body = strongroom_proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_subprocessor(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    pre: Conditions,
    b: Body<strongroom_proto::SubprocessorInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "subprocessor.change", b).await?;
    let p = subprocessors::put(&s.vault, &c.0, Some(&id), input, pre.0).await?;
    let etag = [(header::ETAG, format!("\"{}\"", p.version))];
    Ok((etag, Json(p)))
}

#[utoipa::path(get, path = "/v1/compliance/subprocessors", tag = "compliance",
    responses((status = 200, body = strongroom_proto::SubprocessorList, description = "the current version of each subprocessor the caller may read: the platform's, and a tenant's own")),
    security(("bearer" = [])))]
pub async fn get_subprocessors(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<strongroom_proto::SubprocessorList>> {
    Ok(Json(subprocessors::list(&s.vault, &c.0).await?))
}

#[utoipa::path(post, path = "/v1/compliance/subprocessors/{id}/objections", tag = "compliance",
    request_body = strongroom_proto::ObjectionInput,
    params(("id" = String, Path)),
    responses((status = 201, body = strongroom_proto::Objection),
              (status = 409, body = strongroom_proto::ErrorBody), (status = 412, body = strongroom_proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_objection(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    b: Body<strongroom_proto::ObjectionInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "subprocessor.objection", b).await?;
    let o = subprocessors::object(&s.vault, &c.0, &id, input).await?;
    Ok((StatusCode::CREATED, Json(o)))
}

#[utoipa::path(get, path = "/v1/compliance/objections", tag = "compliance",
    responses((status = 200, body = strongroom_proto::ObjectionList, description = "objections to platform subprocessors: a tenant's own, or every tenant's for the platform")),
    security(("bearer" = [])))]
pub async fn get_objections(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<strongroom_proto::ObjectionList>> {
    Ok(Json(subprocessors::list_objections(&s.vault, &c.0).await?))
}

#[utoipa::path(get, path = "/v1/compliance/versions", tag = "compliance",
    params(("format" = Option<String>, Query, description = "`json` (the default) or `md`")),
    responses((status = 200, description = "the version report: this build, its dependencies (from Cargo.lock), and the advisories that affect them when the server was given `--advisory-db`")),
    security(("bearer" = [])))]
pub async fn get_versions(
    State(s): State<AppState>,
    c: Caller,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    let mut markdown = false;
    for (k, v) in &pairs {
        match (k.as_str(), v.as_str()) {
            ("format", "json") => markdown = false,
            ("format", "md") => markdown = true,
            ("format", _) => {
                return Err(Error::new(Code::InvalidRequest, "format is one of json, md").into())
            }
            _ => return Err(Error::new(Code::UnknownField, "unknown query parameter").into()),
        }
    }
    let ev = s.vault.begin(&c.0, "compliance.versions");
    let res = async {
        if registers::keeper_scope(&c.0)?.is_some() {
            return Err(Error::forbidden(
                "the version report is for operators and platform `compliance` keys",
            ));
        }
        let report = strongroom_compliance::versions::report(
            &s.installation.version,
            s.installation.advisory_db.as_deref(),
        )
        .map_err(|e| {
            tracing::error!(error = %e, "the advisory database could not be read");
            Error::new(
                Code::Unavailable,
                "the advisory database could not be read; see the server log",
            )
        })?;
        Ok((report, vec![]))
    }
    .await;
    let report = s.vault.finish(ev, res).await?;
    Ok(if markdown {
        (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            strongroom_compliance::versions::markdown(&report),
        )
            .into_response()
    } else {
        Json(report).into_response()
    })
}

#[utoipa::path(get, path = "/v1/compliance/ropa", tag = "compliance",
    params(("format" = Option<String>, Query, description = "`json` (the default), `csv` or `md`"),
           ("tenant" = Option<String>, Query, description = "operators: the tenant (controller) whose records to derive")),
    responses((status = 200, description = "the records of processing activities (GDPR Art. 30(2)) of a tenant, derived from its definitions and the registers")),
    security(("bearer" = [])))]
pub async fn get_ropa(
    State(s): State<AppState>,
    c: Caller,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    let (mut format, mut tenant) = ("json", None);
    for (k, v) in &pairs {
        match (k.as_str(), v.as_str()) {
            ("format", f @ ("json" | "csv" | "md")) => format = f,
            ("format", _) => {
                return Err(
                    Error::new(Code::InvalidRequest, "format is one of json, csv, md").into(),
                )
            }
            ("tenant", t) => tenant = Some(t.to_owned()),
            _ => return Err(Error::new(Code::UnknownField, "unknown query parameter").into()),
        }
    }
    if c.0.principal.tenant.is_none() && tenant.is_none() {
        return Err(Error::invalid(
            "records of processing are kept per controller: name a tenant (`tenant=`)",
        )
        .into());
    }
    let Some(t) = s
        .vault
        .authorize_compliance_report(&c.0, "compliance.ropa", tenant.as_deref())
        .await?
    else {
        return Err(Error::internal().into());
    };
    let ropa = strongroom_compliance::ropa::derive(&s.vault, &t, s.vault.now()).await?;
    Ok(match format {
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            strongroom_compliance::ropa::csv(&ropa),
        )
            .into_response(),
        "md" => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            strongroom_compliance::ropa::markdown(&ropa),
        )
            .into_response(),
        _ => Json(ropa).into_response(),
    })
}

#[utoipa::path(get, path = "/v1/compliance/ropa/fields", tag = "compliance",
    responses((status = 200, body = strongroom_proto::RopaFields, headers(("ETag" = String)), description = "the free-text fields of the caller's scope (the platform's, or its tenant's)")),
    security(("bearer" = [])))]
pub async fn get_ropa_fields(State(s): State<AppState>, c: Caller) -> ApiResult<impl IntoResponse> {
    let f = strongroom_compliance::ropa::get_fields(&s.vault, &c.0).await?;
    let etag = [(header::ETAG, format!("\"{}\"", f.version))];
    Ok((etag, Json(f)))
}

#[utoipa::path(put, path = "/v1/compliance/ropa/fields", tag = "compliance",
    request_body = strongroom_proto::RopaFieldsInput,
    params(("If-Match" = Option<String>, Header, description = "the version the change was made against")),
    responses((status = 200, body = strongroom_proto::RopaFields, headers(("ETag" = String))),
              (status = 412, body = strongroom_proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_ropa_fields(
    State(s): State<AppState>,
    c: Caller,
    pre: Conditions,
    b: Body<strongroom_proto::RopaFieldsInput>,
) -> ApiResult<impl IntoResponse> {
    let input = body(&s, &c, "ropa.fields", b).await?;
    let f = strongroom_compliance::ropa::put_fields(&s.vault, &c.0, input.fields, pre.0).await?;
    let etag = [(header::ETAG, format!("\"{}\"", f.version))];
    Ok((etag, Json(f)))
}

#[utoipa::path(get, path = "/v1/config/history", tag = "compliance",
    params(("kind" = Option<String>, Query, description = "`collection`, `role`, `settings`, `tenant` or `server`"),
           ("name" = Option<String>, Query, description = "one object's name"),
           ("tenant" = Option<String>, Query, description = "operators: a tenant's id or name (default: the platform)")),
    responses((status = 200, body = strongroom_proto::ConfigHistory, description = "every configuration change of the scope, oldest first, each with its JSON Patch from the previous version")),
    security(("bearer" = [])))]
pub async fn get_config_history(
    State(s): State<AppState>,
    c: Caller,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<strongroom_proto::ConfigHistory>> {
    let (mut kind, mut name, mut tenant) = (None, None, None);
    for (k, v) in &pairs {
        match k.as_str() {
            "kind" => {
                if !["collection", "role", "settings", "tenant", "server"].contains(&v.as_str()) {
                    return Err(Error::new(
                        Code::InvalidRequest,
                        "kind is one of collection, role, settings, tenant, server",
                    )
                    .into());
                }
                kind = Some(v.as_str());
            }
            "name" => name = Some(v.as_str()),
            "tenant" => tenant = Some(v.as_str()),
            _ => return Err(Error::new(Code::UnknownField, "unknown query parameter").into()),
        }
    }
    Ok(Json(
        strongroom_compliance::config_history::history(&s.vault, &c.0, tenant, kind, name).await?,
    ))
}
