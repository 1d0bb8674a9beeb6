//! Limits on what one request or one client may take: the body size (with a 413 the client
//! actually receives), the time a request may run, and the number of open connections.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use strongroom_core::{Code, Error};

use crate::api::{ApiError, AppState};

/// After a body passes the limit, at most this much more is read and thrown away so that the
/// client, still sending, receives its 413 (an answer sent mid-upload is lost by many clients
/// when the connection or HTTP/2 stream is then reset). Beyond it the connection is dropped.
const DRAIN_MAX: usize = 64 << 20;
/// ...and for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Default time a request may take, from its headers to its answer (body upload included).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default most connections open at once; further clients wait in the listen queue.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Reads a request's body ahead of the handler: one within the limit is handed on whole; one
/// beyond it is drained (bounded) and handed on cut just past the limit, so the handler still
/// answers — and audits — `413 body_too_large`. Reading it first also means that an answer
/// given before the handler would have read the body (a 401, say) never leaves the client
/// uploading into a connection the server closes.
pub async fn bounded_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bodiless = declared == Some(0)
        || (matches!(req.method(), &Method::GET | &Method::HEAD | &Method::DELETE)
            && declared.is_none());
    if bodiless {
        return next.run(req).await;
    }
    let (parts, mut body) = req.into_parts();
    let mut kept = Vec::new();
    let mut drained = 0usize;
    let read = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if kept.len() <= limit {
                kept.extend_from_slice(&data);
            } else {
                drained += data.len();
                if drained > DRAIN_MAX {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
    next.run(Request::from_parts(parts, Body::from(kept))).await
}

/// Ends a request that runs longer than the configured limit with `503 request_timeout`.
/// Work already handed to the store may still complete: the answer says to read before
/// retrying.
pub async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::from(Error::new(
            Code::RequestTimeout,
            "the request took too long and was stopped; it may have taken effect: read before retrying",
        ))
        .into_response(),
    }
}
