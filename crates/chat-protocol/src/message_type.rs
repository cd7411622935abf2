//! The `type` field of a frame: every message type of PROTOCOL §3 and which
//! direction may carry it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of a WebSocket frame (PROTOCOL §3). The wire spelling is snake_case.
///
/// Inbound frames are decoded with the type as a plain string first, so an unknown
/// type becomes a validation error naming `type` rather than a generic parse failure
/// (see [`crate::decode_client_frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    /// A chat message: from the user (or an assisting admin) to the session; echoed
    /// to the other party when an admin is involved.
    UserMessage,
    /// The client picks the provider (`model_id`) for its session.
    ModelSelect,
    /// The user asks for a human; the server alerts the administrators.
    HelpRequest,
    /// A file was uploaded (`file_id`, `file_url`); echoed back by the server.
    FileUpload,
    /// A voice recording was uploaded (`file_id`, `file_url`); echoed back.
    VoiceMessage,
    /// "Someone is typing", in both directions.
    TypingIndicator,
    /// Application-level heartbeat for clients behind proxies that hide control
    /// frames; answered with [`MessageType::Pong`].
    Ping,
    /// Re-attach to a session after a reconnect: `session_id` + `metadata.last_seq`;
    /// the server replays the missed `ai_response` chunks and continues live.
    Resume,
    /// Cancel the in-flight generation of the session.
    Stop,
    /// Server: which user and session this connection is bound to, and the models.
    ConnectionStatus,
    /// Server: a reply is being generated.
    Loading,
    /// Server: one chunk of the AI reply (`metadata.seq`, `metadata.done`).
    AiResponse,
    /// Server: something went wrong (`error` payload).
    Error,
    /// Server: an administrator took the session over.
    AdminJoin,
    /// Server: the administrator released the session; the AI answers again.
    AdminLeave,
    /// Server: a notice for the user (e.g. the connection limit was hit elsewhere).
    Notification,
    /// Server: answer to [`MessageType::Ping`].
    Pong,
}

impl MessageType {
    /// Every type, in the order of PROTOCOL §3 (client types first).
    pub const ALL: [MessageType; 17] = [
        MessageType::UserMessage,
        MessageType::ModelSelect,
        MessageType::HelpRequest,
        MessageType::FileUpload,
        MessageType::VoiceMessage,
        MessageType::TypingIndicator,
        MessageType::Ping,
        MessageType::Resume,
        MessageType::Stop,
        MessageType::ConnectionStatus,
        MessageType::Loading,
        MessageType::AiResponse,
        MessageType::Error,
        MessageType::AdminJoin,
        MessageType::AdminLeave,
        MessageType::Notification,
        MessageType::Pong,
    ];

    /// The wire spelling (`user_message`, `ai_response`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::UserMessage => "user_message",
            MessageType::ModelSelect => "model_select",
            MessageType::HelpRequest => "help_request",
            MessageType::FileUpload => "file_upload",
            MessageType::VoiceMessage => "voice_message",
            MessageType::TypingIndicator => "typing_indicator",
            MessageType::Ping => "ping",
            MessageType::Resume => "resume",
            MessageType::Stop => "stop",
            MessageType::ConnectionStatus => "connection_status",
            MessageType::Loading => "loading",
            MessageType::AiResponse => "ai_response",
            MessageType::Error => "error",
            MessageType::AdminJoin => "admin_join",
            MessageType::AdminLeave => "admin_leave",
            MessageType::Notification => "notification",
            MessageType::Pong => "pong",
        }
    }

    /// Parses the wire spelling; `None` for anything that is not a PROTOCOL §3 type
    /// (matching is exact and case-sensitive, like the legacy service).
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether a client may send this type. Server-only types (`ai_response`,
    /// `admin_join`, ...) coming from a client are refused by validation so a client
    /// can never forge them towards other subscribers of the session.
    pub fn is_client_type(self) -> bool {
        matches!(
            self,
            MessageType::UserMessage
                | MessageType::ModelSelect
                | MessageType::HelpRequest
                | MessageType::FileUpload
                | MessageType::VoiceMessage
                | MessageType::TypingIndicator
                | MessageType::Ping
                | MessageType::Resume
                | MessageType::Stop
        )
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
