//! Errors of the router operations called by the HTTP API (takeover, release, end).

use chat_protocol::ApiErrorCode;
use chat_storage::StoreError;

/// Why a router operation failed; each variant knows its HTTP status and code.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The session does not exist, or belongs to someone else (never reveal which).
    #[error("session not found")]
    NotFound,
    /// Another admin assists the session (409, names them).
    #[error("session is already assisted by {admin_name}")]
    AlreadyAssisted {
        /// The assisting admin's user id.
        admin_id: String,
        /// The assisting admin's display name.
        admin_name: String,
    },
    /// The caller is not the admin assisting this session.
    #[error("you are not assisting this session")]
    NotAssisting,
    /// The session has ended and cannot change.
    #[error("session has ended")]
    Ended,
    /// The store failed.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    /// The server is shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
}

impl RouterError {
    /// HTTP status for the API.
    pub fn http_status(&self) -> u16 {
        match self {
            RouterError::NotFound => 404,
            RouterError::AlreadyAssisted { .. }
            | RouterError::NotAssisting
            | RouterError::Ended => 409,
            RouterError::Store(_) | RouterError::ShuttingDown => 503,
        }
    }

    /// PROTOCOL §2 error code.
    pub fn api_code(&self) -> ApiErrorCode {
        match self {
            RouterError::NotFound => ApiErrorCode::NotFound,
            RouterError::AlreadyAssisted { .. }
            | RouterError::NotAssisting
            | RouterError::Ended => ApiErrorCode::Conflict,
            RouterError::Store(_) | RouterError::ShuttingDown => ApiErrorCode::ServiceUnavailable,
        }
    }
}
