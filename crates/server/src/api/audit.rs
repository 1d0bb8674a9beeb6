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
            // Sequence numbers and sizes are stored as signed 64-bit integers.
            let n = v
                .parse::<u64>()
                .ok()
                .filter(|n| i64::try_from(*n).is_ok())
                .ok_or_else(|| {
                    Error::new(
                        Code::InvalidRequest,
                        format!("`{k}` must be a whole number from 0 to {}", i64::MAX),
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

/// A decimal of at most `max` digits without a leading zero (except `0` itself).
fn small_number(s: &str, max: usize) -> Option<u64> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok()).flatten()
}

fn three_digits(s: &str) -> Option<u64> {
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A tile coordinate path below `/v1/audit/tile/`: `8/<L>/<N>[.p/<W>]`, with `N` written in
/// groups of three digits, all but the last prefixed by `x` (`x001/x234/067`). Returns
/// `(level, index, width)`, or `None` for anything else (other heights, data tiles,
/// non-canonical numbers).
pub fn parse_tile_path(path: &str) -> Option<(u32, u64, u32)> {
    let (coords, width) = match path.split_once(".p/") {
        Some((c, w)) => {
            let w = small_number(w, 3)?;
            if !(1..=255).contains(&w) {
                return None;
            }
            (c, w as u32)
        }
        None => (path, 256),
    };
    let mut parts = coords.split('/');
    if parts.next()? != "8" {
        return None;
    }
    let level = small_number(parts.next()?, 2)? as u32;
    let groups: Vec<&str> = parts.collect();
    let (last, prefix) = groups.split_last()?;
    if prefix.first() == Some(&"x000") {
        return None;
    }
    let mut n: u64 = 0;
    for g in prefix {
        n = n
            .checked_mul(1000)?
            .checked_add(three_digits(g.strip_prefix('x')?)?)?;
    }
    n = n.checked_mul(1000)?.checked_add(three_digits(last)?)?;
    Some((level, n, width))
}

#[utoipa::path(get, path = "/v1/audit/tile/{path}", tag = "audit",
    params(("path" = String, Path, description = "a C2SP tlog-tiles hash tile: `8/<level>/<index>[.p/<width>]`")),
    responses((status = 200, description = "the tile: width × 32 bytes of hashes", content_type = "application/octet-stream"),
        (status = 404, body = proto::ErrorBody)), security(("bearer" = [])))]
pub async fn get_audit_tile(
    State(s): State<AppState>,
    c: Caller,
    PathParams(path): PathParams<String>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let Some((level, index, width)) = parse_tile_path(&path) else {
        let e = Error::new(
            Code::NotFound,
            "not a hash tile path: 8/<level>/<index>[.p/<width>] (tiles have height 8)",
        );
        return Err(s.vault.reject(&c.0, "audit.tile", e).await.into());
    };
    let bytes = s.vault.audit_tile(&c.0, level, index, width).await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/octet-stream"),
            // A full tile never changes; a partial one grows.
            (
                axum::http::header::CACHE_CONTROL,
                if width == 256 {
                    "private, max-age=31536000, immutable"
                } else {
                    "private, no-cache"
                },
            ),
        ],
        bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_tile_path;
    use proptest::prelude::*;

    #[test]
    fn tile_paths_as_the_spec_writes_them() {
        assert_eq!(parse_tile_path("8/0/000"), Some((0, 0, 256)));
        assert_eq!(
            parse_tile_path("8/1/x001/x234/067.p/1"),
            Some((1, 1_234_067, 1))
        );
        assert_eq!(parse_tile_path("8/0/001.p/255"), Some((0, 1, 255)));
        for bad in [
            "",
            "8",
            "8/0",
            "3/0/000",
            "8/data/000",
            "8/0/00",
            "8/0/0000",
            "8/0/x000/001",
            "8/0/001.p/0",
            "8/0/001.p/256",
            "8/0/001.p/01",
            "8/00/000",
            "8/0/y001/000",
            "8/0/000/",
            "8/0/+01",
            "8/123/000",
            "8/0/x999/x999/x999/x999/x999/x999/x999/999",
        ] {
            assert_eq!(parse_tile_path(bad), None, "{bad}");
        }
    }

    /// The encoding of the tlog-tiles spec, written independently here.
    fn encode(level: u32, n: u64, w: u32) -> String {
        let mut s = format!("{:03}", n % 1000);
        let mut rest = n / 1000;
        while rest > 0 {
            s = format!("x{:03}/{s}", rest % 1000);
            rest /= 1000;
        }
        let p = if w == 256 {
            String::new()
        } else {
            format!(".p/{w}")
        };
        format!("8/{level}/{s}{p}")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_canonical_path_round_trips(level in 0u32..8, n in any::<u64>(), w in 1u32..=256) {
            let n = n >> 8;
            prop_assert_eq!(parse_tile_path(&encode(level, n, w)), Some((level, n, w)));
        }

        #[test]
        fn arbitrary_text_never_panics(path in ".{0,60}") {
            let _ = parse_tile_path(&path);
        }
    }
}
