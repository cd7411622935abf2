//! Refusals of the limiters and invalid limiter settings.

use std::time::Duration;

use chat_protocol::{ApiErrorCode, ErrorCode};

/// A request over its key's quota (or a new key while the limiter tracks its maximum
/// number of keys). Reported as HTTP 429 with code `RATE_LIMITED` and a `Retry-After`
/// header, or as the WebSocket error `TOO_MANY_REQUESTS` with `retry_after` in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited; retry after {} ms", self.retry_after_ms())]
pub struct RateLimited {
    /// How long until the request would be allowed; at least 1 ms.
    pub retry_after: Duration,
}

impl RateLimited {
    /// The WebSocket error code: `TOO_MANY_REQUESTS` (with `retry_after` in ms).
    pub fn wire_code(&self) -> ErrorCode {
        ErrorCode::TooManyRequests
    }

    /// The HTTP error code: `RATE_LIMITED` (429, with `Retry-After`).
    pub fn api_code(&self) -> ApiErrorCode {
        ApiErrorCode::RateLimited
    }

    /// `retry_after` in whole milliseconds, rounded up, at least 1 (the wire
    /// `retry_after` and the `retry_after_ms` body field).
    pub fn retry_after_ms(&self) -> u64 {
        let ms = self.retry_after.as_nanos().div_ceil(1_000_000).max(1);
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// `retry_after` in whole seconds, rounded up, at least 1 (the `Retry-After`
    /// header).
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_nanos().div_ceil(1_000_000_000).max(1);
        u64::try_from(secs).unwrap_or(u64::MAX)
    }
}

/// A WebSocket upgrade over the user's concurrent-connection limit. Reported as HTTP
/// 429 (code `RATE_LIMITED`) on the handshake; the user's other sockets get a
/// `notification` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many concurrent connections (limit {limit})")]
pub struct TooManyConnections {
    /// The per-user limit that was reached.
    pub limit: usize,
}

impl TooManyConnections {
    /// The HTTP error code of the refused handshake: `RATE_LIMITED` (429).
    pub fn api_code(&self) -> ApiErrorCode {
        ApiErrorCode::RateLimited
    }
}

/// A limiter setting that cannot be used (only reachable with settings that bypassed
/// config validation). Startup error, never reported to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// A quota, key cap or interval of zero.
    #[error("{field} must be greater than 0")]
    Zero {
        /// The setting, as named in the config file.
        field: &'static str,
    },
}
