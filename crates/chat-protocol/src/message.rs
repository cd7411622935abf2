//! The WebSocket frame of PROTOCOL §3 and the constructors for server frames.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error_code::ErrorCode;
use crate::message_type::MessageType;
use crate::sender::Sender;

/// Metadata key of an `ai_response` chunk: always `"true"` for streamed replies.
pub const META_STREAMING: &str = "streaming";
/// Metadata key of an `ai_response` chunk: `"true"` on the final chunk, else `"false"`.
pub const META_DONE: &str = "done";
/// Metadata key of an `ai_response` chunk: its sequence number in the session's
/// reply stream, as a decimal string.
pub const META_SEQ: &str = "seq";
/// Metadata key of a `resume` frame: the last `seq` the client saw.
pub const META_LAST_SEQ: &str = "last_seq";
/// Metadata key of `admin_join` / `admin_leave`: the administrator's display name.
pub const META_ADMIN_NAME: &str = "admin_name";

/// One entry of the `models` list in `connection_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Provider id the client sends back in `model_select`.
    pub id: String,
    /// Human-readable name shown in the model picker.
    pub name: String,
}

/// The `error` payload of an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorPayload {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation (for validation errors it names the field).
    pub message: String,
    /// Whether the connection/session stays usable and a retry may succeed.
    pub recoverable: bool,
    /// Milliseconds to wait before retrying (rate limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// One WebSocket frame, in either direction (PROTOCOL §3).
///
/// Optional fields that are `None` (and an empty `metadata`) are omitted from the
/// JSON. `session_id` is an `Option` rather than an empty-means-absent string
/// because `connection_status` must be able to send `"session_id": ""` (no active
/// session). Inbound frames must go through [`crate::decode_client_frame`], which
/// sanitizes, fills defaults and validates; deserializing a `Message` directly is
/// only for trusted server frames (tests, clients of this crate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// What kind of frame this is (`type` on the wire).
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// The session the frame belongs to; the client adopts the id of any server frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Message text (user/admin message, AI chunk, notice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Uploaded file id (`file_upload`, `voice_message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// Uploaded file URL, https only (`file_upload`, `voice_message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_url: Option<String>,
    /// Provider id (`model_select`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// Available models, default first (`connection_status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<ModelInfo>>,
    /// When the frame was written (RFC3339).
    pub timestamp: DateTime<Utc>,
    /// Who wrote it.
    pub sender: Sender,
    /// Free-form string pairs (`seq`, `done`, `last_seq`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The authenticated user (server frames only; never read from a client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Error details (`error` frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorPayload>,
}

/// Written by [`Message::to_json`] if serialization ever failed. It cannot with these
/// field types (string keys, no custom serializers), but a frame must always be sent.
const FALLBACK_FRAME: &str = r#"{"type":"error","timestamp":"1970-01-01T00:00:00Z","sender":"system","error":{"code":"INTERNAL_ERROR","message":"frame could not be serialized","recoverable":false}}"#;

impl Message {
    /// A frame of `kind` from `sender` at `timestamp`, every optional field empty.
    pub fn new(kind: MessageType, sender: Sender, timestamp: DateTime<Utc>) -> Self {
        Self {
            kind,
            session_id: None,
            content: None,
            file_id: None,
            file_url: None,
            model_id: None,
            models: None,
            timestamp,
            sender,
            metadata: BTreeMap::new(),
            user_id: None,
            error: None,
        }
    }

    /// `connection_status`: sent on connect (with `session_id` `""` when the user
    /// has no active session) and whenever the connection is bound to a session.
    pub fn connection_status(
        user_id: impl Into<String>,
        session_id: impl Into<String>,
        models: Vec<ModelInfo>,
    ) -> Self {
        let mut m = Self::new(MessageType::ConnectionStatus, Sender::System, Utc::now());
        m.user_id = Some(user_id.into());
        m.session_id = Some(session_id.into());
        m.models = Some(models);
        m
    }

    /// One `ai_response` chunk with `metadata {"streaming":"true","done":"true|false",
    /// "seq":"<n>"}`. The final chunk has `done = true` (its text may be empty).
    pub fn ai_chunk(
        session_id: impl Into<String>,
        text: impl Into<String>,
        seq: u64,
        done: bool,
    ) -> Self {
        let mut m = Self::new(MessageType::AiResponse, Sender::Ai, Utc::now());
        m.session_id = Some(session_id.into());
        m.content = Some(text.into());
        m.metadata
            .insert(META_STREAMING.to_owned(), "true".to_owned());
        m.metadata.insert(META_DONE.to_owned(), done.to_string());
        m.metadata.insert(META_SEQ.to_owned(), seq.to_string());
        m
    }

    /// An `error` frame (sender `system`). Add the session with [`Message::with_session`].
    pub fn error(
        code: ErrorCode,
        message: impl Into<String>,
        recoverable: bool,
        retry_after_ms: Option<u64>,
    ) -> Self {
        let mut m = Self::new(MessageType::Error, Sender::System, Utc::now());
        m.error = Some(ErrorPayload {
            code,
            message: message.into(),
            recoverable,
            retry_after: retry_after_ms,
        });
        m
    }

    /// `loading`: the user's message was accepted and a reply is being generated.
    /// Sent as `ai` because it stands for the assistant "thinking".
    pub fn loading(session_id: impl Into<String>) -> Self {
        let mut m = Self::new(MessageType::Loading, Sender::Ai, Utc::now());
        m.session_id = Some(session_id.into());
        m
    }

    /// `admin_join`: `admin_name` took the session over; no AI frame follows until
    /// `admin_leave`. The name is in `content` (a sentence) and `metadata.admin_name`.
    pub fn admin_join(session_id: impl Into<String>, admin_name: impl Into<String>) -> Self {
        let name = admin_name.into();
        let mut m = Self::new(MessageType::AdminJoin, Sender::Admin, Utc::now());
        m.session_id = Some(session_id.into());
        m.content = Some(format!("{name} joined the conversation"));
        m.metadata.insert(META_ADMIN_NAME.to_owned(), name);
        m
    }

    /// `admin_leave`: the administrator released the session; the AI answers again.
    pub fn admin_leave(session_id: impl Into<String>, admin_name: impl Into<String>) -> Self {
        let name = admin_name.into();
        let mut m = Self::new(MessageType::AdminLeave, Sender::Admin, Utc::now());
        m.session_id = Some(session_id.into());
        m.content = Some(format!("{name} left the conversation"));
        m.metadata.insert(META_ADMIN_NAME.to_owned(), name);
        m
    }

    /// `notification`: a notice for the user from the service.
    pub fn notification(text: impl Into<String>) -> Self {
        let mut m = Self::new(MessageType::Notification, Sender::System, Utc::now());
        m.content = Some(text.into());
        m
    }

    /// `pong`: the answer to an application-level `ping`.
    pub fn pong() -> Self {
        Self::new(MessageType::Pong, Sender::System, Utc::now())
    }

    /// Sets `session_id` (builder style), e.g. on an `error` frame.
    pub fn with_session(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// Sets `timestamp` (builder style); constructors stamp `Utc::now()`.
    pub fn with_timestamp(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// `metadata.seq` of an `ai_response` chunk, when present and numeric.
    pub fn seq(&self) -> Option<u64> {
        self.metadata.get(META_SEQ).and_then(|s| s.parse().ok())
    }

    /// `metadata.done == "true"`: the last chunk of a reply.
    pub fn is_done(&self) -> bool {
        self.metadata.get(META_DONE).is_some_and(|d| d == "true")
    }

    /// `metadata.last_seq` of a `resume` frame (validation guarantees it parses).
    pub fn last_seq(&self) -> Option<u64> {
        self.metadata
            .get(META_LAST_SEQ)
            .and_then(|s| s.parse().ok())
    }

    /// The frame as one JSON object, ready for a text frame. Infallible: should
    /// serialization ever fail, a fixed `INTERNAL_ERROR` frame is returned instead.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| FALLBACK_FRAME.to_owned())
    }
}
