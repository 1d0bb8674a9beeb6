//! Handlers for people and credentials: sign-in, sessions, MFA, users, settings, key rotation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use strongroom_core::{Code, Error, RequestId};
use strongroom_proto as proto;

use super::error::ApiResult;
use super::extract::{Body, Caller, PathParams};
use super::handlers::body;
use super::{AppState, PeerAddr};

#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = proto::Login,
    responses((status = 200, body = proto::Session),
              (status = 401, body = proto::ErrorBody, description = "`invalid_credentials` for every failure, or `mfa_required`"),
              (status = 429, body = proto::ErrorBody)))]
pub async fn post_login(
    State(s): State<AppState>,
    peer: Option<Extension<PeerAddr>>,
    request_id: Option<Extension<RequestId>>,
    headers: axum::http::HeaderMap,
    b: Body<proto::Login>,
) -> ApiResult<Json<proto::Session>> {
    let request_id = request_id.map_or_else(|| s.vault.request_id(), |Extension(id)| id);
    if let Some(Extension(PeerAddr(addr))) = peer {
        let client = crate::ratelimit::client_ip(addr, &headers, &s.trusted_proxies);
        if !s.login_limiter.allow(client, s.vault.now()) {
            let client = crate::ratelimit::ClientKey::of(client).to_string();
            return Err(s.vault.login_throttled(&client).await.into());
        }
    }
    let req = b.0?;
    Ok(Json(s.vault.login(req, request_id).await?))
}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", responses((status = 204)), security(("bearer" = [])))]
pub async fn post_logout(State(s): State<AppState>, c: Caller) -> ApiResult<StatusCode> {
    s.vault.logout(&c.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/auth/password", tag = "auth", request_body = proto::ChangePassword,
    responses((status = 204, description = "changed; every session of the user has ended"),
              (status = 400, body = proto::ErrorBody, description = "`weak_password` names the rule")),
    security(("bearer" = [])))]
pub async fn post_password(
    State(s): State<AppState>,
    c: Caller,
    b: Body<proto::ChangePassword>,
) -> ApiResult<StatusCode> {
    let req = body(&s, &c, "auth.password_change", b).await?;
    s.vault.change_password(&c.0, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/auth/mfa/totp", tag = "auth",
    responses((status = 200, body = proto::TotpEnrollment)), security(("bearer" = [])))]
pub async fn post_totp(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<proto::TotpEnrollment>> {
    let uri = s.vault.totp_enroll(&c.0).await?;
    let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|_| Error::internal())?;
    let qr_svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(Json(proto::TotpEnrollment {
        otpauth_uri: uri,
        qr_svg,
    }))
}

#[utoipa::path(post, path = "/v1/auth/mfa/totp/confirm", tag = "auth", request_body = proto::TotpCode,
    responses((status = 200, body = proto::RecoveryCodes, description = "MFA is on; every session of the user has ended")),
    security(("bearer" = [])))]
pub async fn post_totp_confirm(
    State(s): State<AppState>,
    c: Caller,
    b: Body<proto::TotpCode>,
) -> ApiResult<Json<proto::RecoveryCodes>> {
    let req = body(&s, &c, "auth.mfa_enable", b).await?;
    let recovery_codes = s.vault.totp_confirm(&c.0, &req.code).await?;
    Ok(Json(proto::RecoveryCodes { recovery_codes }))
}

#[utoipa::path(get, path = "/v1/settings/security", tag = "admin",
    responses((status = 200, body = proto::EffectiveSettings)), security(("bearer" = [])))]
pub async fn get_security_settings(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<proto::EffectiveSettings>> {
    Ok(Json(s.vault.get_settings(&c.0).await?))
}

#[utoipa::path(put, path = "/v1/settings/security", tag = "admin", request_body = proto::SecuritySettings,
    responses((status = 200, body = proto::EffectiveSettings), (status = 400, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_security_settings(
    State(s): State<AppState>,
    c: Caller,
    b: Body<proto::SecuritySettings>,
) -> ApiResult<Json<proto::EffectiveSettings>> {
    let req = body(&s, &c, "settings.put", b).await?;
    Ok(Json(s.vault.put_settings(&c.0, req).await?))
}

#[utoipa::path(post, path = "/v1/users", tag = "admin", request_body = proto::CreateUser,
    responses((status = 201, body = proto::User), (status = 400, body = proto::ErrorBody), (status = 409, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_user(
    State(s): State<AppState>,
    c: Caller,
    b: Body<proto::CreateUser>,
) -> ApiResult<impl IntoResponse> {
    let req = body(&s, &c, "user.create", b).await?;
    Ok((
        StatusCode::CREATED,
        Json(s.vault.create_user(&c.0, req).await?),
    ))
}

#[utoipa::path(get, path = "/v1/users", tag = "admin", responses((status = 200, body = proto::UserList)), security(("bearer" = [])))]
pub async fn get_users(State(s): State<AppState>, c: Caller) -> ApiResult<Json<proto::UserList>> {
    Ok(Json(s.vault.list_users(&c.0).await?))
}

#[utoipa::path(put, path = "/v1/users/{id}/roles", tag = "admin", request_body = proto::SetRoles,
    params(("id" = String, Path)), responses((status = 200, body = proto::User)), security(("bearer" = [])))]
pub async fn put_user_roles(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    b: Body<proto::SetRoles>,
) -> ApiResult<Json<proto::User>> {
    let req = body(&s, &c, "user.roles", b).await?;
    Ok(Json(s.vault.set_user_roles(&c.0, &id, req.roles).await?))
}

#[utoipa::path(post, path = "/v1/users/{id}/{action}", tag = "admin",
    params(("id" = String, Path), ("action" = String, Path, description = "`disable`, `enable`, `unlock` or `reset-mfa`")),
    responses((status = 200, body = proto::User), (status = 404, body = proto::ErrorBody)), security(("bearer" = [])))]
pub async fn post_user_action(
    State(s): State<AppState>,
    c: Caller,
    PathParams((id, action)): PathParams<(String, String)>,
) -> ApiResult<Json<proto::User>> {
    let v = &s.vault;
    let user = match action.as_str() {
        "disable" => v.disable_user(&c.0, &id).await?,
        "enable" => v.enable_user(&c.0, &id).await?,
        "unlock" => v.unlock_user(&c.0, &id).await?,
        "reset-mfa" => v.reset_mfa(&c.0, &id).await?,
        _ => {
            return Err(Error::new(Code::NotFound, "no such user action; see /openapi.json").into())
        }
    };
    Ok(Json(user))
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "admin", responses((status = 200, body = proto::ApiKeyList)), security(("bearer" = [])))]
pub async fn get_api_keys(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<proto::ApiKeyList>> {
    Ok(Json(s.vault.list_api_keys(&c.0).await?))
}

#[utoipa::path(post, path = "/v1/api-keys/{id}/rotate", tag = "admin", request_body = proto::RotateApiKey,
    params(("id" = String, Path)),
    responses((status = 201, body = proto::CreatedApiKey), (status = 404, body = proto::ErrorBody), (status = 409, body = proto::ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_api_key_rotate(
    State(s): State<AppState>,
    c: Caller,
    PathParams(id): PathParams<String>,
    b: Body<proto::RotateApiKey>,
) -> ApiResult<impl IntoResponse> {
    let req = body(&s, &c, "api_key.rotate", b).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            s.vault
                .rotate_api_key(&c.0, &id, req.overlap_minutes)
                .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/v1/identity/report", tag = "admin", responses((status = 200, body = proto::IdentityReport)), security(("bearer" = [])))]
pub async fn get_identity_report(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<proto::IdentityReport>> {
    Ok(Json(s.vault.identity_report(&c.0).await?))
}
