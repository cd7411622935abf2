//! The API's error type: every non-2xx JSON response has the PROTOCOL §2 body
//! `{"error", "code"}`; 429s also carry `Retry-After` and `retry_after_ms`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_protocol::{ApiErrorBody, ApiErrorCode};
use chat_router::RouterError;
use chat_storage::StoreError;

/// An error answered as a PROTOCOL §2 JSON body.
#[derive(Debug)]
pub struct ApiError(pub ApiErrorBody);

impl ApiError {
    /// An error with `code` and a human message.
    pub fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self(ApiErrorBody::new(code, message))
    }

    /// 400 naming the offending parameter.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::BadRequest, message)
    }

    /// 404 — also used for other users' sessions, so existence is never revealed.
    pub fn not_found() -> Self {
        Self::new(ApiErrorCode::NotFound, "session not found")
    }

    /// 429 with the time to wait.
    pub fn rate_limited(retry_after_ms: u64) -> Self {
        Self(ApiErrorBody::rate_limited(
            "rate limit exceeded; retry later",
            retry_after_ms,
        ))
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(_) => Self::not_found(),
            other => {
                tracing::error!(error = %other, "storage error in an API call");
                Self::new(
                    ApiErrorCode::ServiceUnavailable,
                    "storage is temporarily unavailable; please retry",
                )
            }
        }
    }
}

impl From<RouterError> for ApiError {
    fn from(error: RouterError) -> Self {
        if let RouterError::Store(e) = error {
            return e.into();
        }
        Self::new(error.api_code(), error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = if status == StatusCode::TOO_MANY_REQUESTS {
            Some(self.0.retry_after_secs().unwrap_or(1))
        } else {
            None
        };
        let mut response = (status, Json(self.0)).into_response();
        if let Some(secs) = retry_after {
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;
