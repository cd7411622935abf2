//! The inbound pipeline for one client text frame: parse → sanitize → defaults →
//! validate (PROTOCOL §3). Nothing reaches the router without passing through here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::error::ProtocolError;
use crate::message::Message;
use crate::message_type::MessageType;
use crate::sanitize::{sanitize_metadata, sanitize_text};
use crate::sender::Sender;
use crate::validate::validate;

/// What a client may send, with `type`, `sender` and `timestamp` kept as strings so
/// that a bad value becomes a validation error naming the field. Server-only fields
/// (`user_id`, `models`, `error`) are not read at all: a client cannot set them.
#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    kind: Option<String>,
    session_id: Option<String>,
    content: Option<String>,
    file_id: Option<String>,
    file_url: Option<String>,
    model_id: Option<String>,
    timestamp: Option<String>,
    sender: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
}

/// Decodes one client text frame into a validated [`Message`].
///
/// - not a JSON object → [`ProtocolError::Malformed`];
/// - a field of the wrong JSON type → [`ProtocolError::Invalid`] naming it;
/// - text fields are sanitized (NUL bytes stripped, whitespace trimmed, never
///   HTML-escaped); optional fields that end up empty are treated as absent;
/// - `timestamp` defaults to `now`, `sender` to `user`;
/// - then [`validate`] runs with `now` as the reference clock.
pub fn decode_client_frame(text: &str, now: DateTime<Utc>) -> Result<Message, ProtocolError> {
    // A derived struct visitor also accepts JSON arrays (positional fields); a frame
    // must be an object, so check before parsing.
    if !text.trim_start().starts_with('{') {
        return Err(ProtocolError::Malformed {
            reason: "a frame must be one JSON object".to_owned(),
        });
    }
    let raw = parse(text)?;

    let kind = match clean(raw.kind) {
        None => return Err(ProtocolError::invalid("type", "required")),
        Some(t) => MessageType::from_wire(&t).ok_or_else(|| {
            ProtocolError::invalid("type", format!("unknown message type \"{}\"", truncate(&t)))
        })?,
    };
    let sender = match clean(raw.sender).as_deref() {
        None => Sender::User,
        Some("user") => Sender::User,
        Some("ai") => Sender::Ai,
        Some("admin") => Sender::Admin,
        Some("system") => Sender::System,
        Some(other) => {
            return Err(ProtocolError::invalid(
                "sender",
                format!("unknown sender \"{}\"", truncate(other)),
            ))
        }
    };
    let timestamp = match clean(raw.timestamp) {
        None => now,
        Some(ts) => DateTime::parse_from_rfc3339(&ts)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ProtocolError::invalid("timestamp", "must be an RFC3339 date-time"))?,
    };

    let mut msg = Message::new(kind, sender, timestamp);
    msg.session_id = clean(raw.session_id);
    msg.content = clean(raw.content);
    msg.file_id = clean(raw.file_id);
    msg.file_url = clean(raw.file_url);
    msg.model_id = clean(raw.model_id);
    msg.metadata = sanitize_metadata(raw.metadata.unwrap_or_default());
    validate(&msg, now)?;
    Ok(msg)
}

fn parse(text: &str) -> Result<RawFrame, ProtocolError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let raw: RawFrame = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." || inner.is_syntax() || inner.is_eof() {
            ProtocolError::Malformed {
                reason: inner.to_string(),
            }
        } else {
            ProtocolError::invalid(path, inner.to_string())
        }
    })?;
    de.end().map_err(|e| ProtocolError::Malformed {
        reason: e.to_string(),
    })?;
    Ok(raw)
}

/// Sanitizes an optional text field; empty after sanitizing means absent (legacy
/// clients send `""` for fields they do not use).
fn clean(value: Option<String>) -> Option<String> {
    value.map(|v| sanitize_text(&v)).filter(|v| !v.is_empty())
}

/// Bounds how much of a client's bad value is echoed back in an error message.
fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
