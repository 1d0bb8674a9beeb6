//! The HTTP API: routes, the OpenAPI document, and the request middleware (request ids and
//! access logs that never contain query strings, bodies or tokens).

mod audit;
pub mod compliance;
mod error;
mod extract;
mod handlers;
mod identity;
pub mod jobs;
mod openapi;
mod subjects;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use strongroom_core::{Code, Error, Vault};
use strongroom_proto as proto;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use error::ApiError;
pub use extract::json_error;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub max_body_bytes: usize,
    pub login_limiter: Arc<crate::ratelimit::LoginLimiter>,
    /// Failed bearer authentications per client: past the budget, requests are refused
    /// before any lookup.
    pub bearer_limiter: Arc<crate::ratelimit::LoginLimiter>,
    pub readiness: Arc<handlers::Readiness>,
    /// Proxies whose `X-Forwarded-For` names the client (sign-in rate limits).
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// Longest a request may run.
    pub request_timeout: std::time::Duration,
    /// Facts about this installation for the TOMs report.
    pub installation: Arc<strongroom_compliance::evidence::Installation>,
}

/// The client's address, set per connection by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

#[derive(OpenApi)]
#[openapi(
    info(title = "Strongroom", description = "Personal-data vault with GDPR measures built in. Every data request states its purpose in `X-Purpose`; every operation is audited."),
    paths(
        handlers::get_healthz,
        handlers::get_readyz,
        handlers::post_tenant,
        handlers::post_api_key,
        handlers::put_collection,
        handlers::get_collections,
        handlers::get_collection,
        handlers::put_role,
        handlers::get_role,
        handlers::get_roles,
        handlers::post_record,
        handlers::post_records_batch,
        handlers::post_records_lookup,
        handlers::get_records,
        handlers::post_records_search,
        handlers::get_record,
        handlers::patch_record,
        handlers::delete_record,
        handlers::restore_record,
        handlers::post_bulk_delete,
        handlers::post_bulk_restore,
        handlers::get_record_history,
        handlers::pending_purges,
        handlers::post_hold,
        handlers::get_holds,
        handlers::lift_hold,
        handlers::get_audit_entries,
        identity::post_login,
        identity::post_logout,
        identity::post_password,
        identity::post_totp,
        identity::post_totp_confirm,
        identity::get_security_settings,
        identity::put_security_settings,
        identity::post_user,
        identity::get_users,
        identity::put_user_roles,
        identity::post_user_action,
        identity::get_api_keys,
        identity::post_api_key_rotate,
        identity::get_identity_report,
        audit::get_public_key,
        audit::get_latest_checkpoint,
        audit::get_inclusion_proof,
        audit::get_consistency_proof,
        audit::get_subject_accesses,
        audit::get_audit_tile,
        compliance::get_toms,
        compliance::post_declaration,
        compliance::put_declaration,
        compliance::withdraw_declaration,
        compliance::get_declarations,
        compliance::get_declaration_history,
        compliance::post_incident,
        compliance::put_incident,
        compliance::get_incidents,
        compliance::get_alerts,
        compliance::post_training,
        compliance::put_training,
        compliance::get_trainings,
        compliance::post_subprocessor,
        compliance::put_subprocessor,
        compliance::get_subprocessors,
        compliance::post_objection,
        compliance::get_objections,
        compliance::get_versions,
        compliance::get_ropa,
        compliance::get_ropa_fields,
        compliance::put_ropa_fields,
        compliance::get_config_history,
        jobs::list,
        subjects::view,
        subjects::by_ref,
        subjects::erase,
        subjects::restrict,
        subjects::lift_restriction,
        subjects::record_consent,
        subjects::consents,
        subjects::export,
        subjects::download,
        subjects::post_dsar,
        subjects::put_dsar,
        subjects::get_dsars,
        subjects::get_dsar,
        subjects::request_own_offboarding,
        subjects::request_offboarding,
        subjects::execute_own_offboarding,
        subjects::execute_offboarding,
        subjects::download_archive,
        jobs::get,
        jobs::run,
    ),
    components(schemas(proto::ErrorBody, proto::ErrorDetail, proto::AuditEntry)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document of every endpoint.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    // `/openapi.json` serves the document itself; list it too so the document is complete.
    let item = utoipa::openapi::path::PathItem::new(
        utoipa::openapi::HttpMethod::Get,
        utoipa::openapi::path::OperationBuilder::new()
            .tag("service")
            .summary(Some("This OpenAPI document"))
            .response(
                "200",
                utoipa::openapi::Response::new("the OpenAPI 3 document"),
            ),
    );
    doc.paths.paths.insert("/openapi.json".into(), item);
    openapi::tell_the_truth(&mut doc);
    doc
}

async fn get_openapi() -> impl IntoResponse {
    Json(openapi())
}

async fn not_found() -> ApiError {
    Error::new(Code::NotFound, "no such endpoint; see /openapi.json").into()
}

async fn method_not_allowed() -> ApiError {
    Error::new(
        Code::MethodNotAllowed,
        "this endpoint does not take that method; see /openapi.json",
    )
    .into()
}

/// Gives each request an id (echoed in `X-Request-Id`) and logs method, route template, status
/// and duration — never the concrete path, query string, headers or body.
async fn request_context(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = state.vault.request_id();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let route = route.as_deref().unwrap_or("(unmatched)");
    req.extensions_mut().insert(id.clone());
    #[allow(clippy::disallowed_methods)] // latency measurement for the access log only
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    // Answers carry personal data, tokens, recovery codes or TOTP secrets: no cache (a proxy's,
    // a browser's) may keep one, unless the handler said otherwise (immutable audit tiles).
    resp.headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    // One line per request costs a formatted write to stderr each time (5 % of the CPU of an
    // audited read), and the audit log already records every operation: the access line is a
    // debug line, except for server errors.
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_millis() as u64;
    if status >= 500 {
        tracing::warn!(request_id = %id, %method, route, status, ms, "request");
    } else {
        tracing::debug!(request_id = %id, %method, route, status, ms, "request");
    }
    resp
}

/// The application router.
pub fn router(state: AppState) -> Router {
    use handlers::*;
    use identity::*;
    let records = "/v1/collections/{collection}/records";
    Router::new()
        .route("/healthz", get(get_healthz))
        .route("/readyz", get(handlers::get_readyz))
        .route("/openapi.json", get(get_openapi))
        .route("/v1/tenants", post(post_tenant))
        .route(
            "/v1/tenants/{id}/offboarding",
            post(subjects::request_offboarding),
        )
        .route(
            "/v1/tenants/{id}/offboarding/execute",
            post(subjects::execute_offboarding),
        )
        .route("/v1/offboarding", post(subjects::request_own_offboarding))
        .route(
            "/v1/offboarding/execute",
            post(subjects::execute_own_offboarding),
        )
        .route(
            "/v1/offboarding/{id}/archive",
            get(subjects::download_archive),
        )
        .route("/v1/api-keys", post(post_api_key).get(get_api_keys))
        .route("/v1/api-keys/{id}/rotate", post(post_api_key_rotate))
        .route("/v1/auth/login", post(post_login))
        .route("/v1/auth/logout", post(post_logout))
        .route("/v1/auth/password", post(post_password))
        .route("/v1/auth/mfa/totp", post(post_totp))
        .route("/v1/auth/mfa/totp/confirm", post(post_totp_confirm))
        .route(
            "/v1/settings/security",
            get(get_security_settings).put(put_security_settings),
        )
        .route("/v1/users", post(post_user).get(get_users))
        .route("/v1/users/{id}/roles", put(put_user_roles))
        .route("/v1/users/{id}/{action}", post(post_user_action))
        .route("/v1/identity/report", get(get_identity_report))
        .route("/v1/collections", get(get_collections))
        .route(
            "/v1/collections/{name}",
            put(put_collection).get(get_collection),
        )
        .route("/v1/roles", get(get_roles))
        .route("/v1/roles/{name}", put(put_role).get(get_role))
        .route(records, post(post_record).get(get_records))
        .route(&format!("{records}/batch"), post(post_records_batch))
        .route(&format!("{records}/lookup"), post(post_records_lookup))
        .route(&format!("{records}/search"), post(post_records_search))
        .route(&format!("{records}/bulk-delete"), post(post_bulk_delete))
        .route(&format!("{records}/bulk-restore"), post(post_bulk_restore))
        .route(
            &format!("{records}/{{id}}"),
            get(get_record).patch(patch_record).delete(delete_record),
        )
        .route(&format!("{records}/{{id}}/restore"), post(restore_record))
        .route(
            &format!("{records}/{{id}}/history"),
            get(get_record_history),
        )
        .route("/v1/purges/pending", get(pending_purges))
        .route("/v1/holds", post(post_hold).get(get_holds))
        .route("/v1/holds/{id}/lift", post(lift_hold))
        .route("/v1/audit/entries", get(get_audit_entries))
        .route("/v1/audit/public-key", get(audit::get_public_key))
        .route(
            "/v1/audit/checkpoints/latest",
            get(audit::get_latest_checkpoint),
        )
        .route(
            "/v1/audit/proofs/inclusion",
            get(audit::get_inclusion_proof),
        )
        .route(
            "/v1/audit/proofs/consistency",
            get(audit::get_consistency_proof),
        )
        .route(
            "/v1/audit/subjects/{subject}/accesses",
            get(audit::get_subject_accesses),
        )
        .route("/v1/audit/tile/{*path}", get(audit::get_audit_tile))
        .route("/v1/compliance/toms", get(compliance::get_toms))
        .route(
            "/v1/compliance/declarations",
            post(compliance::post_declaration).get(compliance::get_declarations),
        )
        .route(
            "/v1/compliance/declarations/{id}",
            put(compliance::put_declaration),
        )
        .route(
            "/v1/compliance/declarations/{id}/withdraw",
            post(compliance::withdraw_declaration),
        )
        .route(
            "/v1/compliance/declarations/{id}/history",
            get(compliance::get_declaration_history),
        )
        .route(
            "/v1/compliance/incidents",
            post(compliance::post_incident).get(compliance::get_incidents),
        )
        .route(
            "/v1/compliance/incidents/{id}",
            put(compliance::put_incident),
        )
        .route("/v1/compliance/alerts", get(compliance::get_alerts))
        .route(
            "/v1/compliance/subprocessors",
            post(compliance::post_subprocessor).get(compliance::get_subprocessors),
        )
        .route(
            "/v1/compliance/subprocessors/{id}",
            put(compliance::put_subprocessor),
        )
        .route(
            "/v1/compliance/subprocessors/{id}/objections",
            post(compliance::post_objection),
        )
        .route("/v1/compliance/objections", get(compliance::get_objections))
        .route("/v1/compliance/versions", get(compliance::get_versions))
        .route("/v1/compliance/ropa", get(compliance::get_ropa))
        .route("/v1/config/history", get(compliance::get_config_history))
        .route("/v1/subjects", get(subjects::by_ref))
        .route("/v1/subjects/{subject}", get(subjects::view))
        .route("/v1/subjects/{subject}/erasure", post(subjects::erase))
        .route(
            "/v1/subjects/{subject}/restriction",
            post(subjects::restrict),
        )
        .route(
            "/v1/subjects/{subject}/restriction/lift",
            post(subjects::lift_restriction),
        )
        .route(
            "/v1/subjects/{subject}/consents",
            post(subjects::record_consent).get(subjects::consents),
        )
        .route("/v1/subjects/{subject}/export", post(subjects::export))
        .route("/v1/exports/{id}", get(subjects::download))
        .route(
            "/v1/dsars",
            post(subjects::post_dsar).get(subjects::get_dsars),
        )
        .route(
            "/v1/dsars/{id}",
            put(subjects::put_dsar).get(subjects::get_dsar),
        )
        .route("/v1/jobs", get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/jobs/{id}/run", post(jobs::run))
        .route(
            "/v1/compliance/ropa/fields",
            get(compliance::get_ropa_fields).put(compliance::put_ropa_fields),
        )
        .route(
            "/v1/compliance/trainings",
            post(compliance::post_training).get(compliance::get_trainings),
        )
        .route(
            "/v1/compliance/trainings/{id}",
            put(compliance::put_training),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::limits::bounded_body,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::limits::request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}
