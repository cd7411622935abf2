//! Why a request is not authenticated or not allowed, with its HTTP status, wire
//! code and log level.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_protocol::{ApiErrorBody, ApiErrorCode};
use thiserror::Error;

/// Authentication and authorization failures. The `Display` text is what the client
/// sees in the `error` field, except for server-side failures, which are reported
/// as a generic "internal error" (see [`AuthError::to_body`]). No variant ever
/// contains the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// No `Authorization` header (and, for WebSockets, no `?token=`). 401 UNAUTHORIZED.
    #[error("missing bearer token")]
    MissingToken,
    /// The header is not `Bearer <token>` (case-sensitive scheme, one non-empty
    /// token). 401 UNAUTHORIZED.
    #[error("Authorization header must be \"Bearer <token>\"")]
    MalformedHeader,
    /// Not a JWT, a disallowed algorithm, or a bad signature. 401 INVALID_TOKEN.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// `exp` is in the past (beyond the leeway). 401 INVALID_TOKEN.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway). 401 INVALID_TOKEN.
    #[error("token not yet valid")]
    NotYetValid,
    /// Signature fine, but the claims break PROTOCOL §1 (missing/empty `user_id`,
    /// missing `roles`, missing `exp` when required, ...). 401 INVALID_TOKEN.
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
    /// Authenticated, but the route needs an administrator. 403 FORBIDDEN.
    #[error("administrator role required")]
    Forbidden,
    /// The validator or issuer cannot work with its configuration (e.g. an empty
    /// secret). 500 INTERNAL_ERROR.
    #[error("authentication is misconfigured: {0}")]
    Misconfigured(String),
    /// Minting a token failed. 500 INTERNAL_ERROR.
    #[error("token could not be signed: {0}")]
    Signing(String),
}

impl AuthError {
    /// The PROTOCOL §2 code for this failure.
    pub fn code(&self) -> ApiErrorCode {
        match self {
            AuthError::MissingToken | AuthError::MalformedHeader => ApiErrorCode::Unauthorized,
            AuthError::InvalidToken(_)
            | AuthError::Expired
            | AuthError::NotYetValid
            | AuthError::InvalidClaims(_) => ApiErrorCode::InvalidToken,
            AuthError::Forbidden => ApiErrorCode::Forbidden,
            AuthError::Misconfigured(_) | AuthError::Signing(_) => ApiErrorCode::InternalError,
        }
    }

    /// The HTTP status (401, 403 or 500).
    pub fn http_status(&self) -> u16 {
        self.code().http_status()
    }

    /// How loudly to log it: refused credentials are routine (`DEBUG`), a refused
    /// admin is worth noticing (`INFO`), server-side failures are errors.
    pub fn log_level(&self) -> tracing::Level {
        match self {
            AuthError::MissingToken
            | AuthError::MalformedHeader
            | AuthError::InvalidToken(_)
            | AuthError::Expired
            | AuthError::NotYetValid
            | AuthError::InvalidClaims(_) => tracing::Level::DEBUG,
            AuthError::Forbidden => tracing::Level::INFO,
            AuthError::Misconfigured(_) | AuthError::Signing(_) => tracing::Level::ERROR,
        }
    }

    /// The PROTOCOL §2 body. Server-side failures say only "internal error" so
    /// configuration details never reach a client.
    pub fn to_body(&self) -> ApiErrorBody {
        let message = match self.code() {
            ApiErrorCode::InternalError => "internal error".to_owned(),
            _ => self.to_string(),
        };
        ApiErrorBody::new(self.code(), message)
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        match self.log_level() {
            tracing::Level::ERROR => tracing::error!(error = %self, "authentication failed"),
            tracing::Level::INFO => tracing::info!(error = %self, "request refused"),
            _ => tracing::debug!(error = %self, "request refused"),
        }
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.to_body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: a 401 for a bearer-protected resource names the scheme.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
