//! What can go wrong when using or registering a session, and how each failure is
//! reported to a client.

/// Why a session operation was refused.
///
/// Each variant documents the wire error code (PROTOCOL §2/§3) the caller reports;
/// [`SessionError::code`] and [`SessionError::http_status`] return them so transports do
/// not have to re-derive the mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No session with this id is in memory. Wire code `NOT_FOUND` (HTTP 404).
    #[error("session {session_id} not found")]
    NotFound {
        /// The id that was looked up.
        session_id: String,
    },
    /// The session has ended and accepts nothing new; the caller binds the user's
    /// active session (or creates one) and retries. Wire code `NOT_FOUND` (HTTP 404):
    /// an ended session no longer exists for new messages.
    #[error("session {session_id} has ended")]
    Ended {
        /// The ended session.
        session_id: String,
    },
    /// Another admin already assists this session. Wire code `FORBIDDEN` with HTTP
    /// status 409 (PROTOCOL §2: "409 assisted by another admin (body names them)").
    #[error("session is already assisted by {admin_name} ({admin_id})")]
    AlreadyAssisted {
        /// The admin who holds the session.
        admin_id: String,
        /// Their display name, for the 409 body.
        admin_name: String,
    },
    /// A release by an admin who is not the one assisting. Wire code `FORBIDDEN`
    /// (HTTP 403).
    #[error("admin {admin_id} is not assisting this session")]
    NotAssistingAdmin {
        /// The admin who asked to release.
        admin_id: String,
    },
    /// A response statistic was negative (or otherwise unrepresentable). This is a
    /// caller bug, never client input. Wire code `INTERNAL_ERROR` (HTTP 500).
    #[error("invalid {field}: {value}")]
    InvalidStatistic {
        /// `duration_ms` or `tokens`.
        field: &'static str,
        /// The refused value.
        value: i64,
    },
    /// Rehydration of a session whose id is already in memory. Wire code
    /// `INTERNAL_ERROR` (HTTP 500).
    #[error("session {session_id} is already in memory")]
    AlreadyExists {
        /// The duplicate id.
        session_id: String,
    },
    /// Rehydration of an active session for a user who already has another active one
    /// (the store's unique index should make this impossible). Wire code
    /// `INTERNAL_ERROR` (HTTP 500).
    #[error("user {user_id} already has the active session {active_session_id}")]
    UserHasActiveSession {
        /// The owner.
        user_id: String,
        /// The session that is already active.
        active_session_id: String,
    },
    /// A snapshot handed to rehydration is unusable (empty id or user id). Wire code
    /// `DATABASE_ERROR` / `INTERNAL_ERROR` (HTTP 500): the stored document is corrupt.
    #[error("invalid stored session: {reason}")]
    InvalidSnapshot {
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl SessionError {
    /// The wire/HTTP error code (PROTOCOL §2 and §3) for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } | Self::Ended { .. } => "NOT_FOUND",
            Self::AlreadyAssisted { .. } | Self::NotAssistingAdmin { .. } => "FORBIDDEN",
            Self::InvalidStatistic { .. }
            | Self::AlreadyExists { .. }
            | Self::UserHasActiveSession { .. }
            | Self::InvalidSnapshot { .. } => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status an endpoint answers with for this failure.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::NotFound { .. } | Self::Ended { .. } => 404,
            Self::AlreadyAssisted { .. } => 409,
            Self::NotAssistingAdmin { .. } => 403,
            Self::InvalidStatistic { .. }
            | Self::AlreadyExists { .. }
            | Self::UserHasActiveSession { .. }
            | Self::InvalidSnapshot { .. } => 500,
        }
    }
}
