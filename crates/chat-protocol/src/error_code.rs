//! Error codes carried in the `error` payload of WebSocket frames (PROTOCOL §3).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `error.code` of an `error` frame. The wire spelling is SCREAMING_SNAKE_CASE.
///
/// `recoverable` tells the client whether the connection and session are still
/// usable and retrying (possibly after `retry_after`) may succeed;
/// [`ErrorCode::default_recoverable`] gives the value the server uses unless the
/// situation says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The frame was not valid JSON or failed validation; the message names the
    /// field. Recoverable: the connection stays open, the client fixes the frame.
    InvalidFormat,
    /// The LLM provider could not be reached or refused the request. Recoverable:
    /// a later message may succeed.
    LlmUnavailable,
    /// The provider missed its first-token, idle or total deadline. Recoverable.
    LlmTimeout,
    /// A rate limit was hit; `retry_after` (ms) says when to try again. Recoverable.
    TooManyRequests,
    /// Persisting or loading the session failed. Recoverable: storage errors are
    /// usually transient and the message can be sent again.
    DatabaseError,
    /// The session (or model) named by the frame does not exist for this user.
    /// Not recoverable for that id: the client must use another one.
    NotFound,
    /// The connection is not authenticated (e.g. the token expired). Not recoverable:
    /// reconnect with a fresh token.
    Unauthorized,
    /// The caller may not do this (e.g. `sender: "admin"` without an admin token, or
    /// a session assisted by someone else). Not recoverable.
    Forbidden,
    /// Added: the session has ended and accepts no more messages. Not recoverable
    /// for that session; the client starts a new one.
    SessionEnded,
    /// A bug or an unexpected failure inside the server. Not recoverable.
    InternalError,
}

impl ErrorCode {
    /// The wire spelling (`INVALID_FORMAT`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidFormat => "INVALID_FORMAT",
            ErrorCode::LlmUnavailable => "LLM_UNAVAILABLE",
            ErrorCode::LlmTimeout => "LLM_TIMEOUT",
            ErrorCode::TooManyRequests => "TOO_MANY_REQUESTS",
            ErrorCode::DatabaseError => "DATABASE_ERROR",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::SessionEnded => "SESSION_ENDED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The `recoverable` flag the server sends with this code (see the variants).
    pub fn default_recoverable(self) -> bool {
        matches!(
            self,
            ErrorCode::InvalidFormat
                | ErrorCode::LlmUnavailable
                | ErrorCode::LlmTimeout
                | ErrorCode::TooManyRequests
                | ErrorCode::DatabaseError
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
