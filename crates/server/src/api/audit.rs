//! Handlers for the verifiable audit log: checkpoints, proofs, the public key, and the access
//! history of a data subject.

use axum::extract::State;
use axum::Json;
use strongroom_core::{Code, Error};
use strongroom_crypto::hex;
use strongroom_proto as proto;

use super::error::ApiResult;
use super::extract::{Caller, PathParams, QueryPairs};
use super::AppState;

/// Reads whole-number query parameters; any other parameter is an error.
fn numbers(pairs: Vec<(String, String)>, allowed: &[&str]) -> Result<Vec<(String, u64)>, Error> {
    pairs
        .into_iter()
        .map(|(k, v)| {
            if !allowed.contains(&k.as_str()) {
                return Err(Error::new(Code::UnknownField, "unknown query parameter"));
            }
            let n = v.parse().map_err(|_| {
                Error::new(
                    Code::InvalidRequest,
                    format!("`{k}` must be a whole number"),
                )
            })?;
            Ok((k, n))
        })
        .collect()
}

fn get(params: &[(String, u64)], name: &str) -> Option<u64> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

#[utoipa::path(get, path = "/v1/audit/public-key", tag = "audit",
    responses((status = 200, body = proto::PublicKey, description = "the Ed25519 key that signs checkpoints")))]
pub async fn get_public_key(State(s): State<AppState>) -> ApiResult<Json<proto::PublicKey>> {
    Ok(Json(proto::PublicKey {
        ed25519: hex(&s.vault.public_key()?),
    }))
}

#[utoipa::path(get, path = "/v1/audit/checkpoints/latest", tag = "audit",
    responses((status = 200, body = proto::Checkpoint), (status = 404, body = proto::ErrorBody)), security(("bearer" = [])))]
pub async fn get_latest_checkpoint(
    State(s): State<AppState>,
    c: Caller,
) -> ApiResult<Json<proto::Checkpoint>> {
    Ok(Json(s.vault.latest_checkpoint(&c.0).await?))
}

#[utoipa::path(get, path = "/v1/audit/proofs/inclusion", tag = "audit",
    params(("seq" = u64, Query), ("size" = Option<u64>, Query, description = "tree size; default: the latest checkpoint")),
    responses((status = 200, body = proto::InclusionProof)), security(("bearer" = [])))]
pub async fn get_inclusion_proof(
    State(s): State<AppState>,
    c: Caller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<proto::InclusionProof>> {
    let params = match numbers(q, &["seq", "size"]) {
        Ok(p) => p,
        Err(e) => return Err(s.vault.reject(&c.0, "audit.proof", e).await.into()),
    };
    let Some(seq) = get(&params, "seq") else {
        let e = Error::new(Code::InvalidRequest, "name the entry: ?seq=N");
        return Err(s.vault.reject(&c.0, "audit.proof", e).await.into());
    };
    Ok(Json(
        s.vault
            .inclusion_proof(&c.0, seq, get(&params, "size"))
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/audit/proofs/consistency", tag = "audit",
    params(("from" = u64, Query), ("to" = Option<u64>, Query, description = "default: the latest checkpoint")),
    responses((status = 200, body = proto::ConsistencyProof)), security(("bearer" = [])))]
pub async fn get_consistency_proof(
    State(s): State<AppState>,
    c: Caller,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<proto::ConsistencyProof>> {
    let params = match numbers(q, &["from", "to"]) {
        Ok(p) => p,
        Err(e) => return Err(s.vault.reject(&c.0, "audit.proof", e).await.into()),
    };
    let Some(from) = get(&params, "from") else {
        let e = Error::new(Code::InvalidRequest, "name the older tree size: ?from=N");
        return Err(s.vault.reject(&c.0, "audit.proof", e).await.into());
    };
    Ok(Json(
        s.vault
            .consistency_proof(&c.0, from, get(&params, "to"))
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/audit/subjects/{subject}/accesses", tag = "audit",
    params(("subject" = String, Path),
        ("after" = Option<u64>, Query, description = "continue after this entry (the `next` of the previous page)"),
        ("limit" = Option<u32>, Query, description = "entries examined per page, 1 to 1000 (default 1000)")),
    responses((status = 200, body = proto::SubjectAccessList)), security(("bearer" = [])))]
pub async fn get_subject_accesses(
    State(s): State<AppState>,
    c: Caller,
    PathParams(subject): PathParams<String>,
    QueryPairs(q): QueryPairs,
) -> ApiResult<Json<proto::SubjectAccessList>> {
    let params = match numbers(q, &["after", "limit"]) {
        Ok(p) => p,
        Err(e) => {
            return Err(s
                .vault
                .reject(&c.0, "audit.subject_accesses", e)
                .await
                .into())
        }
    };
    let after = get(&params, "after").unwrap_or(0);
    let limit = get(&params, "limit")
        .unwrap_or(1000)
        .min(u64::from(u32::MAX)) as u32;
    Ok(Json(
        s.vault
            .subject_accesses(&c.0, &subject, after, limit)
            .await?,
    ))
}
