//! Wire types of the chatbox protocol: the WebSocket [`Message`] frame of PROTOCOL §3
//! with its [`MessageType`]s, [`ErrorCode`]s and server-frame constructors; the
//! inbound pipeline [`decode_client_frame`] (parse → [`sanitize`] → defaults →
//! [`validate`]) whose [`ProtocolError`]s name the offending field; and the HTTP
//! shapes of PROTOCOL §2 ([`ApiErrorBody`] / [`ApiErrorCode`] and the response DTOs
//! such as [`SessionMetadata`]) so the server and every client share one definition.
//!
//! It owns no I/O and knows nothing about sessions, transport or HTTP frameworks.

mod api_error;
mod chunk;
mod decode;
mod dto;
mod error;
mod error_code;
pub mod limits;
mod message;
mod message_type;
mod sanitize;
mod sender;
mod validate;

pub use api_error::{ApiErrorBody, ApiErrorCode};
pub use chunk::ai_chunk_json;
pub use decode::decode_client_frame;
pub use dto::{
    AdminMetricsResponse, AdminSessionListResponse, CheckResult, EndSessionResponse,
    HealthResponse, ReadinessResponse, SessionDetailResponse, SessionListResponse, SessionMetadata,
    ShareTokenResponse, SharedSessionResponse, TimeRange, UploadResponse,
};
pub use error::ProtocolError;
pub use error_code::ErrorCode;
pub use message::{
    ErrorPayload, Message, ModelInfo, META_ADMIN_NAME, META_DONE, META_LAST_SEQ, META_SEQ,
    META_STREAMING,
};
pub use message_type::MessageType;
pub use sanitize::{sanitize, sanitize_text};
pub use sender::Sender;
pub use validate::validate;
