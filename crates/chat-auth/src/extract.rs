//! axum extractors: a route that takes [`AuthUser`] or [`AuthAdmin`] cannot run for a
//! caller without a valid token (or, for admins, without an admin role).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;

use crate::bearer::{bearer_from_headers, token_from_header_or_query, BearerToken};
use crate::claims::Claims;
use crate::error::AuthError;
use crate::validator::JwtValidator;

/// An authenticated caller (token from `Authorization: Bearer`). Rejections:
/// missing/malformed header → 401 UNAUTHORIZED, bad token → 401 INVALID_TOKEN.
/// The validator comes from the router state via `FromRef<S>` for `Arc<JwtValidator>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(pub Claims);

/// An authenticated administrator (role `admin` or `chat_admin`). Rejections as
/// [`AuthUser`], plus a valid non-admin token → 403 FORBIDDEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthAdmin(pub Claims);

/// An authenticated WebSocket upgrade: the token comes from the `Authorization`
/// header or, since browsers cannot set headers on upgrades, from `?token=`.
/// Rejections as [`AuthUser`]. The query must be logged only through
/// [`crate::redacted_path_and_query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsAuthUser(pub Claims);

fn authenticate<S>(parts: &mut Parts, state: &S, token: BearerToken) -> Result<Claims, AuthError>
where
    Arc<JwtValidator>: FromRef<S>,
{
    let validator = Arc::<JwtValidator>::from_ref(state);
    let claims = validator.validate(token.expose())?;
    // Later layers (rate limiting, tracing) read the identity without re-validating.
    parts.extensions.insert(claims.clone());
    Ok(claims)
}

impl<S> FromRequestParts<S> for AuthUser
where
    Arc<JwtValidator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_from_headers(&parts.headers)?;
        authenticate(parts, state, token).map(AuthUser)
    }
}

impl<S> FromRequestParts<S> for AuthAdmin
where
    Arc<JwtValidator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_from_headers(&parts.headers)?;
        let claims = authenticate(parts, state, token)?;
        if !claims.is_admin() {
            return Err(AuthError::Forbidden);
        }
        Ok(AuthAdmin(claims))
    }
}

impl<S> FromRequestParts<S> for WsAuthUser
where
    Arc<JwtValidator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = token_from_header_or_query(&parts.headers, parts.uri.query())?;
        authenticate(parts, state, token).map(WsAuthUser)
    }
}
