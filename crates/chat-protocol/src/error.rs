//! Why an inbound frame was refused.

use thiserror::Error;

use crate::error_code::ErrorCode;
use crate::message::Message;

/// An inbound frame that must not reach the router. Both variants map to the wire
/// code `INVALID_FORMAT` and leave the connection open. The `Display` text is what
/// the client sees in `error.message`; for [`ProtocolError::Invalid`] it always
/// starts with the field name (`content: must be at most 10000 bytes, got 10001`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The text is not a JSON object at all.
    #[error("invalid JSON: {reason}")]
    Malformed {
        /// What the JSON parser reported.
        reason: String,
    },
    /// The JSON is an object but one field is wrong.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field, dotted for nested keys (`metadata.last_seq`).
        field: String,
        /// What is wrong, with the limit and the actual value where it applies.
        reason: String,
    },
}

impl ProtocolError {
    /// A validation error on `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ProtocolError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field this error is about (`None` for unparseable JSON).
    pub fn field(&self) -> Option<&str> {
        match self {
            ProtocolError::Malformed { .. } => None,
            ProtocolError::Invalid { field, .. } => Some(field),
        }
    }

    /// The wire code: always `INVALID_FORMAT`.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidFormat
    }

    /// The `error` frame to send back (recoverable: the connection stays open).
    pub fn to_frame(&self) -> Message {
        Message::error(self.code(), self.to_string(), true, None)
    }
}
