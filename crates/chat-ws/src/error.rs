//! Why a WebSocket handshake was refused, with its HTTP status and PROTOCOL §2 body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_auth::AuthError;
use chat_protocol::{ApiErrorBody, ApiErrorCode};

/// How long a client refused for too many connections is told to wait. Slots free up
/// when the user closes a tab or device, not on a timer, so this is only a polite
/// back-off that keeps a reconnect loop from hammering the server.
pub const CONNECTION_LIMIT_RETRY_AFTER_MS: u64 = 5_000;

/// A refused upgrade. Each variant knows its status and wire code; none contains the
/// token or the request query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The server is draining for shutdown. 503 SERVICE_UNAVAILABLE.
    #[error("server is shutting down; reconnect shortly")]
    Draining,
    /// Missing or invalid credentials. 401 (UNAUTHORIZED / INVALID_TOKEN).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A browser origin outside the allow-list. 403 FORBIDDEN.
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// The user already holds the maximum number of sockets. 429 RATE_LIMITED with
    /// `Retry-After`.
    #[error("too many concurrent connections (limit {limit}); close another tab or device")]
    TooManyConnections {
        /// The per-user limit.
        limit: usize,
    },
}

impl HandshakeError {
    /// The PROTOCOL §2 code.
    pub fn code(&self) -> ApiErrorCode {
        match self {
            HandshakeError::Draining => ApiErrorCode::ServiceUnavailable,
            HandshakeError::Auth(e) => e.code(),
            HandshakeError::OriginNotAllowed => ApiErrorCode::Forbidden,
            HandshakeError::TooManyConnections { .. } => ApiErrorCode::RateLimited,
        }
    }

    /// The HTTP status.
    pub fn http_status(&self) -> u16 {
        self.code().http_status()
    }

    /// A short label for metrics (`reason` of `chatbox_websocket_rejected_total`).
    pub fn metric_reason(&self) -> &'static str {
        match self {
            HandshakeError::Draining => "draining",
            HandshakeError::Auth(_) => "auth",
            HandshakeError::OriginNotAllowed => "origin",
            HandshakeError::TooManyConnections { .. } => "connection_limit",
        }
    }
}

impl IntoResponse for HandshakeError {
    fn into_response(self) -> Response {
        metrics::counter!("chatbox_websocket_rejected_total", "reason" => self.metric_reason())
            .increment(1);
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match self {
            HandshakeError::Auth(e) => e.into_response(),
            HandshakeError::TooManyConnections { .. } => {
                let body =
                    ApiErrorBody::rate_limited(self.to_string(), CONNECTION_LIMIT_RETRY_AFTER_MS);
                let secs = body.retry_after_secs().unwrap_or(1);
                let mut response = (status, Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                response
            }
            other => (
                status,
                Json(ApiErrorBody::new(other.code(), other.to_string())),
            )
                .into_response(),
        }
    }
}
