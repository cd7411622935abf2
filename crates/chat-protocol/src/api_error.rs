//! The JSON error body of every non-2xx HTTP response (PROTOCOL §2).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `code` of an HTTP error body. The wire spelling is SCREAMING_SNAKE_CASE and
/// each code has exactly one HTTP status ([`ApiErrorCode::http_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApiErrorCode {
    /// 401: no credentials, or an `Authorization` header that is not `Bearer <token>`.
    Unauthorized,
    /// 401: a token was presented but is not valid (signature, algorithm, expiry,
    /// claims).
    InvalidToken,
    /// 403: authenticated but not allowed (non-admin on an admin route, metrics from
    /// a network outside the allow-list).
    Forbidden,
    /// 400: a malformed request; the message names the parameter.
    BadRequest,
    /// 404: no such resource, or one the caller may not see (never reveals existence).
    NotFound,
    /// Added, 409: the request conflicts with the resource's state — a takeover of a
    /// session already assisted by another administrator (the message names them).
    Conflict,
    /// Added, 413: an upload (or body) over the configured size limit.
    PayloadTooLarge,
    /// 429: a rate limit was hit; the body carries `retry_after_ms` and the response
    /// a `Retry-After` header.
    RateLimited,
    /// 500: a bug or unexpected failure.
    InternalError,
    /// 503: not ready, a dependency is down, or the server is draining for shutdown.
    ServiceUnavailable,
}

impl ApiErrorCode {
    /// The HTTP status that goes with this code.
    pub fn http_status(&self) -> u16 {
        match self {
            ApiErrorCode::Unauthorized | ApiErrorCode::InvalidToken => 401,
            ApiErrorCode::Forbidden => 403,
            ApiErrorCode::BadRequest => 400,
            ApiErrorCode::NotFound => 404,
            ApiErrorCode::Conflict => 409,
            ApiErrorCode::PayloadTooLarge => 413,
            ApiErrorCode::RateLimited => 429,
            ApiErrorCode::InternalError => 500,
            ApiErrorCode::ServiceUnavailable => 503,
        }
    }

    /// The wire spelling (`INVALID_TOKEN`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            ApiErrorCode::Unauthorized => "UNAUTHORIZED",
            ApiErrorCode::InvalidToken => "INVALID_TOKEN",
            ApiErrorCode::Forbidden => "FORBIDDEN",
            ApiErrorCode::BadRequest => "BAD_REQUEST",
            ApiErrorCode::NotFound => "NOT_FOUND",
            ApiErrorCode::Conflict => "CONFLICT",
            ApiErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ApiErrorCode::RateLimited => "RATE_LIMITED",
            ApiErrorCode::InternalError => "INTERNAL_ERROR",
            ApiErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }
}

impl fmt::Display for ApiErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"error": "<human message>", "code": "<CODE>", "retry_after_ms"?: n}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Human-readable message (names the parameter for 400s).
    pub error: String,
    /// Machine-readable code; determines the status.
    pub code: ApiErrorCode,
    /// Milliseconds until a retry may succeed (429 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ApiErrorBody {
    /// A body without `retry_after_ms`.
    pub fn new(code: ApiErrorCode, error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            code,
            retry_after_ms: None,
        }
    }

    /// A 429 body with `retry_after_ms`.
    pub fn rate_limited(error: impl Into<String>, retry_after_ms: u64) -> Self {
        Self {
            error: error.into(),
            code: ApiErrorCode::RateLimited,
            retry_after_ms: Some(retry_after_ms),
        }
    }

    /// The HTTP status of this body's code.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// The `Retry-After` header value: whole seconds, rounded up, at least 1
    /// (PROTOCOL §2). `None` when the body has no `retry_after_ms`.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_ms.map(|ms| ms.div_ceil(1000).max(1))
    }

    /// The body as JSON text. Infallible (plain strings and integers only); a fixed
    /// INTERNAL_ERROR body is returned should serialization ever fail.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"error":"error body could not be serialized","code":"INTERNAL_ERROR"}"#.to_owned()
        })
    }
}
