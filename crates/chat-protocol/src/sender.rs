//! Who wrote a message; shared by the wire format and the stored document.

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sender {
    /// The session owner.
    User,
    /// The LLM.
    Ai,
    /// An administrator who took the conversation over.
    Admin,
    /// The service itself (notices, errors kept in history).
    System,
}

impl Sender {
    /// The wire/database spelling (`user`, `ai`, `admin`, `system`).
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::User => "user",
            Sender::Ai => "ai",
            Sender::Admin => "admin",
            Sender::System => "system",
        }
    }
}
