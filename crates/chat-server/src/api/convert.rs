//! Stored data → wire shapes (PROTOCOL §2 `SessionMetadata`, §3 `Message`).

use chat_protocol::{Message, MessageType, SessionMetadata};
use chat_session::{Sender, SessionSnapshot, StoredMessage};
use chat_storage::SessionSummary;
use chrono::{DateTime, Utc};

/// `SessionMetadata` of a stored or in-memory session at `now`.
pub fn metadata(s: &SessionSummary, now: DateTime<Utc>) -> SessionMetadata {
    SessionMetadata {
        id: s.id.clone(),
        user_id: s.user_id.clone(),
        name: s.name.clone(),
        last_activity: s.last_activity,
        message_count: s.message_count,
        admin_assisted: s.admin_assisted,
        start_time: s.start_time,
        end_time: s.end_time,
        is_active: s.end_time.is_none(),
        duration: u64::try_from(s.duration_secs(now)).unwrap_or(0),
        total_tokens: s.total_tokens,
        max_response_time: s.max_response_time_ms,
        avg_response_time: s.avg_response_time_ms,
        assisting_admin_name: s.assisting_admin_name.clone(),
        share_token: s.share_token.clone(),
    }
}

/// One stored message as the wire frame a client would have seen: user and admin
/// messages as `user_message`, replies as `ai_response`, service notes as
/// `notification`, uploads as `file_upload`/`voice_message`.
pub fn message(session_id: &str, m: &StoredMessage) -> Message {
    let kind = match (m.metadata.get("type").map(String::as_str), m.sender) {
        (Some("voice_message"), _) => MessageType::VoiceMessage,
        (Some("file_upload"), _) => MessageType::FileUpload,
        (_, Sender::User | Sender::Admin) => MessageType::UserMessage,
        (_, Sender::Ai) => MessageType::AiResponse,
        (_, Sender::System) => MessageType::Notification,
    };
    let mut frame = Message::new(kind, m.sender, m.timestamp);
    frame.session_id = Some(session_id.to_owned());
    frame.content = Some(m.content.clone());
    frame.file_id = m.file_id.clone();
    frame.file_url = m.file_url.clone();
    frame.metadata = m.metadata.clone();
    frame
}

/// Every message of a session as wire frames, oldest first.
pub fn messages(s: &SessionSnapshot) -> Vec<Message> {
    s.messages.iter().map(|m| message(&s.id, m)).collect()
}
