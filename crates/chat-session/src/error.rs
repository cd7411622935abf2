//! What can go wrong when using or registering a session, and how each failure is
//! reported to a client.

use chat_protocol::{ApiErrorCode, ErrorCode};

/// Why a session operation was refused.
///
/// Each variant documents its WebSocket error code (PROTOCOL §3) and HTTP code
/// (PROTOCOL §2); [`SessionError::wire_code`] and [`SessionError::api_code`] return
/// them so transports do not have to re-derive the mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No session with this id is in memory. WebSocket `NOT_FOUND`; HTTP 404
    /// `NOT_FOUND`.
    #[error("session {session_id} not found")]
    NotFound {
        /// The id that was looked up.
        session_id: String,
    },
    /// The session has ended and accepts nothing new; the caller binds the user's
    /// active session (or creates one) and retries. WebSocket `SESSION_ENDED`; HTTP 409
    /// `CONFLICT` (e.g. a takeover of an ended session).
    #[error("session {session_id} has ended")]
    Ended {
        /// The ended session.
        session_id: String,
    },
    /// Another admin already assists this session. WebSocket `FORBIDDEN`; HTTP 409
    /// `CONFLICT` (PROTOCOL §2: "409 assisted by another admin (body names them)").
    #[error("session is already assisted by {admin_name} ({admin_id})")]
    AlreadyAssisted {
        /// The admin who holds the session.
        admin_id: String,
        /// Their display name, for the 409 body.
        admin_name: String,
    },
    /// A release by an admin who is not the one assisting. WebSocket `FORBIDDEN`;
    /// HTTP 409 `CONFLICT`.
    #[error("admin {admin_id} is not assisting this session")]
    NotAssistingAdmin {
        /// The admin who asked to release.
        admin_id: String,
    },
    /// A response statistic was negative (or otherwise unrepresentable). This is a
    /// caller bug, never client input. WebSocket `INTERNAL_ERROR`; HTTP 500.
    #[error("invalid {field}: {value}")]
    InvalidStatistic {
        /// `duration_ms` or `tokens`.
        field: &'static str,
        /// The refused value.
        value: i64,
    },
    /// Rehydration of a session whose id is already in memory. WebSocket
    /// `INTERNAL_ERROR`; HTTP 500.
    #[error("session {session_id} is already in memory")]
    AlreadyExists {
        /// The duplicate id.
        session_id: String,
    },
    /// Rehydration of an active session for a user who already has another active one
    /// (the store's unique index should make this impossible). WebSocket
    /// `INTERNAL_ERROR`; HTTP 500.
    #[error("user {user_id} already has the active session {active_session_id}")]
    UserHasActiveSession {
        /// The owner.
        user_id: String,
        /// The session that is already active.
        active_session_id: String,
    },
    /// A snapshot handed to rehydration is unusable (empty id or user id): the stored
    /// document is corrupt. WebSocket `DATABASE_ERROR`; HTTP 500 `INTERNAL_ERROR`.
    #[error("invalid stored session: {reason}")]
    InvalidSnapshot {
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl SessionError {
    /// The `error.code` of a WebSocket `error` frame (PROTOCOL §3) for this failure.
    pub fn wire_code(&self) -> ErrorCode {
        match self {
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::Ended { .. } => ErrorCode::SessionEnded,
            Self::AlreadyAssisted { .. } | Self::NotAssistingAdmin { .. } => ErrorCode::Forbidden,
            Self::InvalidSnapshot { .. } => ErrorCode::DatabaseError,
            Self::InvalidStatistic { .. }
            | Self::AlreadyExists { .. }
            | Self::UserHasActiveSession { .. } => ErrorCode::InternalError,
        }
    }

    /// The `code` of an HTTP error body (PROTOCOL §2) for this failure; its
    /// [`ApiErrorCode::http_status`] is the response status.
    pub fn api_code(&self) -> ApiErrorCode {
        match self {
            Self::NotFound { .. } => ApiErrorCode::NotFound,
            Self::Ended { .. } | Self::AlreadyAssisted { .. } | Self::NotAssistingAdmin { .. } => {
                ApiErrorCode::Conflict
            }
            Self::InvalidStatistic { .. }
            | Self::AlreadyExists { .. }
            | Self::UserHasActiveSession { .. }
            | Self::InvalidSnapshot { .. } => ApiErrorCode::InternalError,
        }
    }

    /// The HTTP status an endpoint answers with for this failure.
    pub fn http_status(&self) -> u16 {
        self.api_code().http_status()
    }

    /// How loudly to log it: client-visible refusals are routine (`DEBUG`), the
    /// internal ones are bugs or corrupt data (`ERROR`).
    pub fn log_level(&self) -> tracing::Level {
        match self.api_code() {
            ApiErrorCode::InternalError => tracing::Level::ERROR,
            _ => tracing::Level::DEBUG,
        }
    }
}
