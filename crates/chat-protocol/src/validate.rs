//! Validation of a client frame after sanitizing (PROTOCOL §3): direction, sender,
//! clock skew, byte limits and the fields each type requires. Every error names the
//! field and, for limits, the limit and the actual size.

use chrono::{DateTime, Utc};

use crate::error::ProtocolError;
use crate::limits::*;
use crate::message::{Message, META_LAST_SEQ};
use crate::message_type::MessageType;
use crate::sender::Sender;

/// Checks a sanitized client frame. `now` is the server's clock (the reference for
/// the future-timestamp rule). Returns the first problem found, in this order: type,
/// sender, timestamp, field limits (in wire order), per-type required fields.
///
/// A client may send as `user` or `admin`; whether an `admin` sender is actually an
/// administrator of the session is the router's decision (it knows the token).
pub fn validate(msg: &Message, now: DateTime<Utc>) -> Result<(), ProtocolError> {
    if !msg.kind.is_client_type() {
        return Err(ProtocolError::invalid(
            "type",
            format!("\"{}\" is not accepted from a client", msg.kind),
        ));
    }
    if !matches!(msg.sender, Sender::User | Sender::Admin) {
        return Err(ProtocolError::invalid(
            "sender",
            format!(
                "a client may send only as \"user\" or \"admin\", got \"{}\"",
                msg.sender.as_str()
            ),
        ));
    }
    let skew = chrono::Duration::from_std(MAX_FUTURE_SKEW).unwrap_or(chrono::Duration::MAX);
    if now
        .checked_add_signed(skew)
        .is_some_and(|limit| msg.timestamp > limit)
    {
        return Err(ProtocolError::invalid(
            "timestamp",
            format!(
                "must not be more than {} seconds in the future",
                MAX_FUTURE_SKEW.as_secs()
            ),
        ));
    }

    check_identifier(
        "session_id",
        msg.session_id.as_deref(),
        MAX_SESSION_ID_BYTES,
    )?;
    check_len("content", msg.content.as_deref(), MAX_CONTENT_BYTES)?;
    check_identifier("file_id", msg.file_id.as_deref(), MAX_FILE_ID_BYTES)?;
    check_file_url(msg.file_url.as_deref())?;
    check_identifier("model_id", msg.model_id.as_deref(), MAX_MODEL_ID_BYTES)?;
    check_metadata(msg)?;

    match msg.kind {
        MessageType::UserMessage => require("content", msg.content.as_deref(), msg.kind)?,
        MessageType::ModelSelect => require("model_id", msg.model_id.as_deref(), msg.kind)?,
        MessageType::FileUpload | MessageType::VoiceMessage => {
            require("file_id", msg.file_id.as_deref(), msg.kind)?;
            require("file_url", msg.file_url.as_deref(), msg.kind)?;
        }
        MessageType::Resume => {
            require("session_id", msg.session_id.as_deref(), msg.kind)?;
            let field = format!("metadata.{META_LAST_SEQ}");
            let last_seq = msg.metadata.get(META_LAST_SEQ).map(String::as_str);
            require(&field, last_seq, msg.kind)?;
            if last_seq.is_some_and(|s| s.parse::<u64>().is_err()) {
                return Err(ProtocolError::invalid(
                    field,
                    "must be a non-negative integer",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_len(field: &str, value: Option<&str>, max: usize) -> Result<(), ProtocolError> {
    match value {
        Some(v) if v.len() > max => Err(ProtocolError::invalid(
            field,
            format!("must be at most {max} bytes, got {}", v.len()),
        )),
        _ => Ok(()),
    }
}

/// Identifiers end up in logs, metrics labels and database keys: besides the byte
/// limit they may not contain control characters (added rule).
fn check_identifier(field: &str, value: Option<&str>, max: usize) -> Result<(), ProtocolError> {
    check_len(field, value, max)?;
    if value.is_some_and(|v| v.chars().any(char::is_control)) {
        return Err(ProtocolError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn check_file_url(value: Option<&str>) -> Result<(), ProtocolError> {
    check_len("file_url", value, MAX_FILE_URL_BYTES)?;
    let Some(raw) = value.filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    match url::Url::parse(raw) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        // Plain http only to this machine: the URLs a development server (no TLS,
        // loopback) hands out for its own uploads. Anything else must be https.
        Ok(u) if u.scheme() == "http" && is_loopback(&u) => Ok(()),
        Ok(_) => Err(ProtocolError::invalid(
            "file_url",
            "must be an https URL (plain http only to localhost)",
        )),
        Err(e) => Err(ProtocolError::invalid(
            "file_url",
            format!("must be an https URL ({e})"),
        )),
    }
}

fn check_metadata(msg: &Message) -> Result<(), ProtocolError> {
    let count = msg.metadata.len();
    if count > MAX_METADATA_ENTRIES {
        return Err(ProtocolError::invalid(
            "metadata",
            format!("must have at most {MAX_METADATA_ENTRIES} entries, got {count}"),
        ));
    }
    for (key, value) in &msg.metadata {
        if key.is_empty() || key.len() > MAX_METADATA_KEY_BYTES {
            return Err(ProtocolError::invalid(
                "metadata",
                format!(
                    "keys must be 1 to {MAX_METADATA_KEY_BYTES} bytes, got {}",
                    key.len()
                ),
            ));
        }
        if key.chars().any(char::is_control) {
            return Err(ProtocolError::invalid(
                "metadata",
                "keys must not contain control characters",
            ));
        }
        if value.len() > MAX_METADATA_VALUE_BYTES {
            return Err(ProtocolError::invalid(
                format!("metadata.{key}"),
                format!(
                    "must be at most {MAX_METADATA_VALUE_BYTES} bytes, got {}",
                    value.len()
                ),
            ));
        }
    }
    Ok(())
}

fn require(field: &str, value: Option<&str>, kind: MessageType) -> Result<(), ProtocolError> {
    match value {
        Some(v) if !v.is_empty() => Ok(()),
        _ => Err(ProtocolError::invalid(
            field,
            format!("required for {kind}"),
        )),
    }
}

/// `localhost`, `*.localhost`, 127.0.0.0/8 or `[::1]`.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
