//! Request extractors that turn every failure into a domain error with a stable code:
//! the authenticated caller, JSON bodies, paths and query strings.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;
use strongroom_core::{Code, Error, RequestCtx, RequestId};

use super::error::ApiError;
use super::AppState;

/// The longest `X-Purpose` value looked at; longer ones are simply unknown purposes.
const MAX_PURPOSE_LEN: usize = 64;

/// The authenticated caller of a request, with its request id and stated purpose.
pub struct Caller(pub RequestCtx);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| state.vault.request_id());
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        // Failed authentications are limited per client: past the budget, a scanner is
        // refused before any lookup, and its attempts are only counted.
        let client = parts
            .extensions
            .get::<super::PeerAddr>()
            .map(|p| crate::ratelimit::client_ip(p.0, &parts.headers, &state.trusted_proxies));
        let client_name = client.map_or_else(
            || "unknown".to_owned(),
            |ip| crate::ratelimit::ClientKey::of(ip).to_string(),
        );
        let now = state.vault.now();
        if client.is_some_and(|ip| state.bearer_limiter.exhausted(ip, now)) {
            state
                .vault
                .note_refusal(
                    &client_name,
                    strongroom_core::vault::Refusal::TokenThrottled,
                )
                .await;
            return Err(Error::new(
                Code::RateLimited,
                "too many failed authentications from this address; wait a minute",
            )
            .into());
        }
        let principal = match state
            .vault
            .authenticate(token, &request_id, &client_name)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                let auth_failure = matches!(
                    e.code,
                    Code::Unauthenticated | Code::KeyExpired | Code::SessionExpired
                );
                if let Some(ip) = client.filter(|_| auth_failure) {
                    state.bearer_limiter.allow(ip, now);
                }
                return Err(e.into());
            }
        };
        let purpose = parts.headers.get("x-purpose").map(|v| match v.to_str() {
            Ok(s) if s.len() <= MAX_PURPOSE_LEN => s.trim().to_owned(),
            _ => "?".to_owned(),
        });
        Ok(Caller(RequestCtx {
            principal,
            request_id,
            purpose,
        }))
    }
}

/// A JSON body, parsed into `T` or into the error that explains what is wrong with it. It never
/// rejects by itself, so that the handler can audit the rejection where it touches data.
pub struct Body<T>(pub Result<T, Error>);

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                let mime = ct.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
            });
        if !is_json {
            return Ok(Body(Err(Error::new(
                Code::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            ))));
        }
        let bytes = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(BytesRejection::FailedToBufferBody(e)) if is_too_large(&e) => {
                return Ok(Body(Err(Error::new(
                    Code::BodyTooLarge,
                    format!(
                        "the body is larger than the limit of {} bytes",
                        state.max_body_bytes
                    ),
                ))));
            }
            Err(_) => {
                return Ok(Body(Err(Error::new(
                    Code::InvalidRequest,
                    "the request body could not be read",
                ))));
            }
        };
        // Every request body is a JSON object: serde would also fill a struct from an array.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            let err = match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(_) => Error::new(Code::InvalidRequest, "the body must be a JSON object"),
                Err(e) => json_error(&e),
            };
            return Ok(Body(Err(err)));
        }
        let parsed = serde_json::from_slice(&bytes).or_else(|e| {
            // JSON Schema counts `746.0` as an integer: read integral numbers written with a
            // zero fraction as the integers they are, then parse again.
            match integral_numbers(&bytes) {
                Some(fixed) if e.classify() == serde_json::error::Category::Data => {
                    serde_json::from_slice(&fixed).map_err(|e| json_error(&e))
                }
                _ => Err(json_error(&e)),
            }
        });
        // The body may hold a password or personal data: wipe the buffer once parsed (when this
        // is its only owner; the TLS layer's own buffers are beyond reach).
        if let Ok(mut owned) = bytes.try_into_mut() {
            zeroize::Zeroize::zeroize(owned.as_mut());
        }
        Ok(Body(parsed))
    }
}

/// `body` with every number token of the form `-?digits.zeros` written without its fraction,
/// or `None` if there is none. Strings are left exactly as they are.
fn integral_numbers(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut changed = false;
    let mut i = 0;
    let mut in_string = false;
    while i < body.len() {
        let c = body[i];
        if in_string {
            out.push(c);
            if c == b'\\' && i + 1 < body.len() {
                out.push(body[i + 1]);
                i += 2;
                continue;
            }
            in_string = c != b'"';
            i += 1;
            continue;
        }
        if c == b'"' {
            in_string = true;
            out.push(c);
            i += 1;
            continue;
        }
        if c == b'-' || c.is_ascii_digit() {
            let start = i;
            i += 1;
            while i < body.len()
                && matches!(body[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
            {
                i += 1;
            }
            let token = &body[start..i];
            match token.iter().position(|&b| b == b'.') {
                Some(dot)
                    if dot > 0
                        && token[dot + 1..].iter().all(|&b| b == b'0')
                        && dot + 1 < token.len()
                        && token[..dot]
                            .iter()
                            .skip(usize::from(token[0] == b'-'))
                            .all(u8::is_ascii_digit) =>
                {
                    out.extend_from_slice(&token[..dot]);
                    changed = true;
                }
                _ => out.extend_from_slice(token),
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    changed.then_some(out)
}

fn is_too_large(e: &dyn std::error::Error) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("length limit") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Explains a JSON error without echoing any value from the body: serde's messages for wrong
/// types quote the offending value, so only the expectation and the position are kept.
pub fn json_error(e: &serde_json::Error) -> Error {
    use serde_json::error::Category;
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => Error::new(
            Code::InvalidJson,
            format!("the body is not valid JSON ({at})"),
        ),
        Category::Data => {
            let msg = e.to_string();
            if let Some(rest) = msg.strip_prefix("unknown field `") {
                let name = rest.split('`').next().unwrap_or("");
                return Error::new(
                    Code::UnknownField,
                    format!(
                        "unknown field {} ({at})",
                        strongroom_core::error::quote_name(name)
                    ),
                );
            }
            if let Some(rest) = msg.strip_prefix("duplicate key `") {
                let name = rest.split('`').next().unwrap_or("");
                return Error::new(
                    Code::InvalidRequest,
                    format!(
                        "the key {} appears twice in one object ({at}); send each once",
                        strongroom_core::error::quote_name(name)
                    ),
                );
            }
            if let Some(rest) = msg.strip_prefix("missing field `") {
                let name = rest.split('`').next().unwrap_or("");
                return Error::new(Code::InvalidRequest, format!("missing field `{name}`"));
            }
            if msg.starts_with("unknown variant") {
                let options = msg
                    .split(", expected ")
                    .nth(1)
                    .unwrap_or("a documented value");
                let options = options.split(" at line").next().unwrap_or(options);
                return Error::new(
                    Code::InvalidRequest,
                    format!("unsupported value: expected {options} ({at})"),
                );
            }
            let expected = msg
                .split(", expected ")
                .nth(1)
                .map(|s| s.split(" at line").next().unwrap_or(s).to_owned());
            match expected {
                Some(exp) => Error::new(
                    Code::InvalidRequest,
                    format!("wrong type: expected {exp} ({at})"),
                ),
                None => Error::new(
                    Code::InvalidRequest,
                    format!("the body does not have the expected shape ({at})"),
                ),
            }
        }
    }
}

/// Path parameters; a malformed path is a 400 with a stable code.
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(PathParams(v)),
            Err(_) => Err(Error::new(Code::InvalidRequest, "malformed path parameters").into()),
        }
    }
}

/// Query-string pairs, in order.
pub struct QueryPairs(pub Vec<(String, String)>);

impl FromRequestParts<AppState> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(QueryPairs(v)),
            Err(_) => Err(Error::new(Code::InvalidRequest, "malformed query string").into()),
        }
    }
}

/// `If-Match` / `If-None-Match` of a definition change. `If-Match` takes one ETag this server
/// gave out (`"3"`, also written `W/"3"`) or `*`; `If-None-Match` only `*` (create, never
/// replace). Anything else can never match: the change is refused with 412.
pub struct Conditions(pub strongroom_core::vault::Precondition);

impl<S: Send + Sync> FromRequestParts<S> for Conditions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        use strongroom_core::vault::Precondition;
        let value = |name| {
            parts
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("\u{0}").trim().to_owned())
                // An empty header says nothing: as if it were not sent.
                .filter(|v| !v.is_empty())
        };
        let pre = match (value(header::IF_MATCH), value(header::IF_NONE_MATCH)) {
            (Some(_), Some(_)) => Precondition::Unmatchable,
            (Some(m), None) if m == "*" => Precondition::Exists,
            (Some(m), None) => m
                .strip_prefix("W/")
                .unwrap_or(&m)
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|v| *v > 0)
                .map_or(Precondition::Unmatchable, Precondition::Version),
            (None, Some(n)) if n == "*" => Precondition::Absent,
            (None, Some(_)) => Precondition::Unmatchable,
            (None, None) => Precondition::Any,
        };
        Ok(Conditions(pre))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use strongroom_proto as proto;

    use super::json_error;

    const MARK: &str = "Zq7Secret";

    /// Bodies shaped like requests, with the marker in keys and values of every type.
    fn body() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            Just(format!("\"{MARK}\"")),
            Just(format!("[\"{MARK}\"]")),
            Just(format!("{{\"{MARK}\": 1}}")),
            Just(format!("\"{MARK}@example.com\"")),
            Just("1e999".to_owned()),
            Just("-0".to_owned()),
            Just("true".to_owned()),
            Just("null".to_owned()),
            Just(format!("\"\\u0000{MARK}\"")),
        ];
        let key = prop_oneof![
            Just("fields".to_owned()),
            Just("email".to_owned()),
            Just("password".to_owned()),
            Just("username".to_owned()),
            Just("roles".to_owned()),
            Just("name".to_owned()),
            Just("subject".to_owned()),
            Just("expires_in_days".to_owned()),
            Just(MARK.to_owned()),
        ];
        (
            proptest::collection::vec((key, value), 0..5),
            any::<bool>(),
            any::<usize>(),
        )
            .prop_map(|(pairs, nest, cut)| {
                let inner: Vec<String> =
                    pairs.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                let obj = format!("{{{}}}", inner.join(", "));
                let s = if nest {
                    format!("{{\"fields\": {obj}, \"values\": {obj}}}")
                } else {
                    obj
                };
                // Sometimes cut short, to exercise syntax errors too.
                if cut % 4 == 0 {
                    let at = cut % (s.len() + 1);
                    let mut at = at;
                    while !s.is_char_boundary(at) {
                        at -= 1;
                    }
                    s[..at].to_owned()
                } else {
                    s
                }
            })
    }

    fn check<T: serde::de::DeserializeOwned>(text: &str) -> Result<(), TestCaseError> {
        if let Err(e) = serde_json::from_str::<T>(text) {
            let err = json_error(&e);
            prop_assert!(
                !err.message.contains(MARK),
                "a value was echoed: {}",
                err.message
            );
            prop_assert!(!err.message.is_empty());
        }
        Ok(())
    }

    #[test]
    fn integral_numbers_lose_their_zero_fraction_and_nothing_else() {
        let fix =
            |s: &str| super::integral_numbers(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            fix(r#"{"a": 746.0, "b": -3.00}"#).as_deref(),
            Some(r#"{"a": 746, "b": -3}"#)
        );
        assert_eq!(fix(r#"{"a": "746.0", "b": 1.5, "c": 1e3, "d": 7}"#), None);
        assert_eq!(fix(r#"{"a\"": 2.0}"#).as_deref(), Some(r#"{"a\"": 2}"#));
        assert_eq!(fix("[1.0e5, 2.]"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The rewrite never touches strings and never panics, whatever the bytes.
        #[test]
        fn integral_number_rewriting_keeps_strings(text in ".{0,120}", s in "[a-z0-9. ]{0,20}") {
            let _ = super::integral_numbers(text.as_bytes());
            let body = format!(r#"{{"k": "{s}", "n": 3.0}}"#);
            let fixed = super::integral_numbers(body.as_bytes()).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&fixed).unwrap();
            prop_assert_eq!(v["k"].as_str(), Some(s.as_str()));
            prop_assert_eq!(v["n"].as_u64(), Some(3));
        }

        /// Whatever a body holds, the error that explains it quotes no value from it.
        #[test]
        fn json_errors_never_echo_a_value(text in body(), junk in ".{0,60}") {
            for t in [text.as_str(), junk.as_str()] {
                check::<proto::CreateRecord>(t)?;
                check::<proto::UpdateRecord>(t)?;
                check::<proto::SearchRequest>(t)?;
                check::<proto::Login>(t)?;
                check::<proto::CreateUser>(t)?;
                check::<proto::CreateApiKey>(t)?;
                check::<proto::CollectionDef>(t)?;
                check::<proto::RoleDef>(t)?;
                check::<proto::SecuritySettings>(t)?;
            }
        }
    }
}
