//! The plain data of one conversation, as persisted and as handed between crates.
//!
//! These are the in-memory forms of the PROTOCOL §4 document: `chat-storage` maps
//! them to BSON (legacy field names) and back, `chat-router` builds wire frames from
//! them. They carry no locks; a [`SessionSnapshot`] is a consistent copy taken under
//! the session's lock.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use chat_protocol::Sender;

/// One message of a conversation (an element of the `msgs` array).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Plain text (encryption happens in the store, never here).
    pub content: String,
    /// When the message was written.
    pub timestamp: DateTime<Utc>,
    /// Who wrote it.
    pub sender: Sender,
    /// Uploaded file id, for file and voice messages.
    pub file_id: Option<String>,
    /// Uploaded file URL, for file and voice messages.
    pub file_url: Option<String>,
    /// Free-form string metadata (e.g. `stopped: "true"` on a cut-short reply).
    pub metadata: BTreeMap<String, String>,
}

impl StoredMessage {
    /// A text message with no file and no metadata.
    pub fn text(sender: Sender, content: impl Into<String>, timestamp: DateTime<Utc>) -> Self {
        Self {
            content: content.into(),
            timestamp,
            sender,
            file_id: None,
            file_url: None,
            metadata: BTreeMap::new(),
        }
    }
}

/// A consistent copy of everything persisted about a session (PROTOCOL §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSnapshot {
    /// Server-generated id, 32 lowercase hex characters (`_id`).
    pub id: String,
    /// Owner (`uid`).
    pub user_id: String,
    /// Display name derived from the first message (`nm`).
    pub name: String,
    /// Selected provider id (`modelId`); empty = the configured default.
    pub model_id: String,
    /// The conversation (`msgs`), oldest first.
    pub messages: Vec<StoredMessage>,
    /// Start time (`ts`).
    pub start_time: DateTime<Utc>,
    /// End time (`endTs`); `None` while active.
    pub end_time: Option<DateTime<Utc>>,
    /// Last message or state change (`lastActivity`).
    pub last_activity: DateTime<Utc>,
    /// Whether an admin currently assists (`adminAssisted`).
    pub admin_assisted: bool,
    /// The assisting admin's user id (`assistingAdminId`).
    pub assisting_admin_id: Option<String>,
    /// The assisting admin's display name (`assistingAdminName`).
    pub assisting_admin_name: Option<String>,
    /// The user asked for a human (`helpRequested`).
    pub help_requested: bool,
    /// Tokens used by all replies (`totalTokens`).
    pub total_tokens: u64,
    /// Slowest reply in ms (`maxRespTime`).
    pub max_response_time_ms: u64,
    /// Mean reply time in ms (`avgRespTime`).
    pub avg_response_time_ms: u64,
    /// Number of replies the mean is over (not in the legacy schema; kept so the mean
    /// can be updated incrementally after a restart; `respCount`).
    pub response_count: u64,
    /// Public read-only share token (`shareToken`).
    pub share_token: Option<String>,
}

impl SessionSnapshot {
    /// A new active session of `user_id` started at `now`: no messages, no name yet, the
    /// default model, no assistance, zero statistics.
    pub fn new_active(
        id: impl Into<String>,
        user_id: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: id.into(),
            user_id: user_id.into(),
            name: String::new(),
            model_id: String::new(),
            messages: Vec::new(),
            start_time: now,
            end_time: None,
            last_activity: now,
            admin_assisted: false,
            assisting_admin_id: None,
            assisting_admin_name: None,
            help_requested: false,
            total_tokens: 0,
            max_response_time_ms: 0,
            avg_response_time_ms: 0,
            response_count: 0,
            share_token: None,
        }
    }

    /// True while the session has not ended.
    pub fn is_active(&self) -> bool {
        self.end_time.is_none()
    }

    /// Whole seconds from start to end (or to `now` while active), the `dur` field.
    pub fn duration_secs(&self, now: DateTime<Utc>) -> i64 {
        let end = self.end_time.unwrap_or(now);
        (end - self.start_time).num_seconds().max(0)
    }
}
