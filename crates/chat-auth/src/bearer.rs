//! Finding the token in a request: `Authorization: Bearer <token>` (PROTOCOL §1), or
//! for WebSocket upgrades also `?token=<jwt>`, plus redaction of that query for logs.

use std::fmt;

use http::header::AUTHORIZATION;
use http::{HeaderMap, Uri};

use crate::error::AuthError;

/// The query parameter browsers use to pass the token on a WebSocket upgrade.
pub const TOKEN_QUERY_PARAM: &str = "token";

/// What replaces the token in a redacted query.
pub const REDACTED: &str = "REDACTED";

/// A raw bearer token. Its `Debug` output is redacted so that logging a request's
/// extracted credentials by accident cannot leak it; read it with
/// [`BearerToken::expose`] only to validate it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// The token text, for validation.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(REDACTED)")
    }
}

/// Parses an `Authorization` value: exactly `Bearer ` (case-sensitive) followed by
/// one non-empty token without whitespace.
pub fn parse_bearer(value: &str) -> Result<BearerToken, AuthError> {
    let token = value
        .strip_prefix("Bearer ")
        .ok_or(AuthError::MalformedHeader)?
        .trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(AuthError::MalformedHeader);
    }
    Ok(BearerToken(token.to_owned()))
}

/// The token from the `Authorization` header: missing → [`AuthError::MissingToken`],
/// anything but one valid `Bearer <token>` → [`AuthError::MalformedHeader`].
pub fn bearer_from_headers(headers: &HeaderMap) -> Result<BearerToken, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::MissingToken)?;
    if values.next().is_some() {
        // Two credentials are ambiguous; a proxy and a client may disagree on which wins.
        return Err(AuthError::MalformedHeader);
    }
    parse_bearer(value.to_str().map_err(|_| AuthError::MalformedHeader)?)
}

/// The token of a WebSocket upgrade: the `Authorization` header when present (a
/// malformed header is an error, never a reason to look elsewhere), else the first
/// non-empty `?token=` query parameter (browsers cannot set headers on upgrades).
pub fn token_from_header_or_query(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<BearerToken, AuthError> {
    if headers.contains_key(AUTHORIZATION) {
        return bearer_from_headers(headers);
    }
    query
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, v)| k == TOKEN_QUERY_PARAM && !v.trim().is_empty())
                .map(|(_, v)| BearerToken(v.trim().to_owned()))
        })
        .ok_or(AuthError::MissingToken)
}

/// `query` with the value of every `token` parameter replaced by `REDACTED`; other
/// parameters are kept byte for byte. Use it for anything that logs a request URI
/// (PROTOCOL §1 **FIX**: the token never appears in access logs).
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let raw_key = pair.split('=').next().unwrap_or_default();
            let is_token = url::form_urlencoded::parse(raw_key.as_bytes())
                .next()
                .is_some_and(|(k, _)| k == TOKEN_QUERY_PARAM);
            if is_token {
                format!("{raw_key}={REDACTED}")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The path and redacted query of `uri`, for access logs and spans.
pub fn redacted_path_and_query(uri: &Uri) -> String {
    match uri.query() {
        Some(q) => format!("{}?{}", uri.path(), redact_query(q)),
        None => uri.path().to_owned(),
    }
}
