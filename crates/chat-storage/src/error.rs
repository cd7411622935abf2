//! The one error type of every `SessionStore`.

/// Why a storage operation failed. Every variant maps to the wire code
/// `DATABASE_ERROR` except an unknown session (`NOT_FOUND`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The user already has an active session (one active session per user).
    #[error("user already has an active session {existing_id}")]
    ActiveSessionExists {
        /// The id of the session that is still active.
        existing_id: String,
    },
    /// A session with this id already exists.
    #[error("session {0} already exists")]
    DuplicateId(String),
    /// A unique index refused the write (permanent). The store methods translate it
    /// into a more specific variant where they can.
    #[error("duplicate key: {0}")]
    DuplicateKey(String),
    /// The session is unknown.
    #[error("session {0} not found")]
    NotFound(String),
    /// The session has ended and accepts no more changes of this kind.
    #[error("session {0} has ended")]
    Ended(String),
    /// The database could not be reached or timed out; the operation may succeed later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// One attempt exceeded its deadline.
    #[error("database operation timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The database rejected the operation (permanent: retrying cannot help).
    #[error("database rejected the operation: {0}")]
    Rejected(String),
    /// A stored document could not be understood (corrupt or foreign data).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A stored value could not be decrypted with any configured key.
    #[error("cannot decrypt stored value: {0}")]
    Decrypt(String),
    /// The write-behind queue is full; the write was not accepted.
    #[error("storage write queue is full ({capacity} pending writes)")]
    QueueFull {
        /// The configured capacity.
        capacity: usize,
    },
    /// The store is shutting down and accepts no more writes.
    #[error("storage is shutting down")]
    ShuttingDown,
    /// The store could not be opened (bad configuration, unreadable file).
    #[error("cannot open storage: {0}")]
    Open(String),
}

impl StoreError {
    /// True when retrying the same operation later may succeed (network trouble,
    /// timeouts, elections). Duplicate keys, validation errors and missing sessions
    /// are permanent.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Timeout(_))
    }

    /// The PROTOCOL error code to send a client.
    pub fn wire_code(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "NOT_FOUND",
            _ => "DATABASE_ERROR",
        }
    }

    /// The HTTP status an API handler should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            StoreError::NotFound(_) => 404,
            StoreError::ActiveSessionExists { .. } | StoreError::DuplicateId(_) => 409,
            StoreError::Ended(_) => 409,
            StoreError::Unavailable(_)
            | StoreError::Timeout(_)
            | StoreError::QueueFull { .. }
            | StoreError::ShuttingDown => 503,
            _ => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailability_and_timeouts_are_transient() {
        assert!(StoreError::Unavailable("x".into()).is_transient());
        assert!(StoreError::Timeout(std::time::Duration::from_secs(1)).is_transient());
        assert!(!StoreError::DuplicateId("x".into()).is_transient());
        assert!(!StoreError::Rejected("x".into()).is_transient());
        assert!(!StoreError::ActiveSessionExists {
            existing_id: "a".into()
        }
        .is_transient());
    }

    #[test]
    fn database_failures_use_the_database_error_code() {
        assert_eq!(
            StoreError::Unavailable("x".into()).wire_code(),
            "DATABASE_ERROR"
        );
        assert_eq!(
            StoreError::Corrupt("x".into()).wire_code(),
            "DATABASE_ERROR"
        );
        assert_eq!(
            StoreError::QueueFull { capacity: 1 }.wire_code(),
            "DATABASE_ERROR"
        );
        assert_eq!(StoreError::NotFound("x".into()).wire_code(), "NOT_FOUND");
    }
}
