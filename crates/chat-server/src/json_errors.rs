//! Every error response is JSON (PROTOCOL §2): responses that a framework layer
//! produced as plain text or with an empty body (405 from the router, 400 from an
//! extractor rejection, 408 from the timeout layer, a non-upgrade `GET /ws`) are
//! rewritten into `{"error", "code"}`. JSON bodies and HTML pages (the web UI's own
//! 404 page) pass untouched.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chat_protocol::ApiErrorCode;

use crate::api::error::ApiError;

/// Largest plain-text error body carried over into the JSON message.
const MAX_REASON_BYTES: usize = 512;

/// Middleware: rewrites non-JSON error responses into PROTOCOL §2 bodies.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match to_bytes(body, MAX_REASON_BYTES * 4).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes)
            .trim()
            .chars()
            .take(MAX_REASON_BYTES)
            .collect(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::UNAUTHORIZED => ApiErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ApiErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ApiErrorCode::NotFound,
        StatusCode::CONFLICT => ApiErrorCode::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => ApiErrorCode::PayloadTooLarge,
        StatusCode::TOO_MANY_REQUESTS => ApiErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::REQUEST_TIMEOUT
        | StatusCode::GATEWAY_TIMEOUT => ApiErrorCode::ServiceUnavailable,
        s if s.is_client_error() => ApiErrorCode::BadRequest,
        _ => ApiErrorCode::InternalError,
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_ascii_lowercase()
    } else {
        text
    };
    let mut rewritten = ApiError::new(code, message).into_response();
    *rewritten.status_mut() = status;
    // Keep headers that matter to the client (Allow on 405, Retry-After, ...).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}
