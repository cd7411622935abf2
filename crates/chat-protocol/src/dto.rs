//! Response bodies of the HTTP API (PROTOCOL §2), defined once so the server and its
//! clients (web UI, tests, CLI) agree on field names and types. Times are RFC3339.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::message::Message;

/// One session in a list (`GET /sessions`, `GET /admin/sessions`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMetadata {
    /// Session id (32 lowercase hex).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Display name (from the first message; "New Chat" when empty).
    pub name: String,
    /// Last message or state change.
    pub last_activity: DateTime<Utc>,
    /// Number of stored messages.
    pub message_count: u64,
    /// Whether an administrator is currently assisting.
    pub admin_assisted: bool,
    /// When the session started.
    pub start_time: DateTime<Utc>,
    /// When it ended; absent while active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// `end_time` is absent.
    pub is_active: bool,
    /// Seconds from start to end (or to now while active).
    pub duration: u64,
    /// Tokens used by all replies.
    pub total_tokens: u64,
    /// Slowest reply, in milliseconds.
    pub max_response_time: u64,
    /// Mean reply time, in milliseconds.
    pub avg_response_time: u64,
    /// Display name of the assisting administrator, while assisted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assisting_admin_name: Option<String>,
    /// Share token, when the session is shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_token: Option<String>,
}

/// `GET /sessions`: the caller's sessions, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionListResponse {
    /// At most `limit` sessions.
    pub sessions: Vec<SessionMetadata>,
    /// The caller.
    pub user_id: String,
    /// `sessions.len()`.
    pub count: usize,
    /// The page size (100).
    pub limit: usize,
    /// True when the user has more sessions than `limit`.
    pub truncated: bool,
}

/// `GET /sessions/{id}`: one session with its messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDetailResponse {
    /// Session id.
    pub session_id: String,
    /// Display name.
    pub name: String,
    /// Selected provider id (empty = the configured default).
    pub model_id: String,
    /// The conversation as wire frames, oldest first.
    pub messages: Vec<Message>,
}

/// `GET /shared/{token}`: a read-only view of a shared session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedSessionResponse {
    /// Session id.
    pub session_id: String,
    /// Display name.
    pub name: String,
    /// The conversation as wire frames, oldest first.
    pub messages: Vec<Message>,
}

/// `POST /sessions/{id}/end`: `{"status":"ended"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndSessionResponse {
    /// Always `"ended"` (ending twice is idempotent).
    pub status: String,
}

impl EndSessionResponse {
    /// The only body this endpoint returns.
    pub fn ended() -> Self {
        Self {
            status: "ended".to_owned(),
        }
    }
}

/// `POST /sessions/{id}/share`: the session's share token (same on repeat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareTokenResponse {
    /// 32 lowercase hex characters.
    pub share_token: String,
}

/// `GET /admin/sessions` and `GET /admin/users/{user_id}/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSessionListResponse {
    /// One page of sessions.
    pub sessions: Vec<SessionMetadata>,
    /// `sessions.len()`.
    pub count: usize,
    /// Sessions matching the filters, over all pages.
    pub total: u64,
    /// Page size (1..1000).
    pub limit: usize,
    /// Sessions skipped before this page.
    pub offset: u64,
}

/// The window `GET /admin/metrics` covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Inclusive end.
    pub end: DateTime<Utc>,
}

/// `GET /admin/metrics` (snake_case at top level, PROTOCOL §2 **FIX**).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminMetricsResponse {
    /// Sessions started in the window.
    pub total_sessions: u64,
    /// Of those, still active.
    pub active_sessions: u64,
    /// Tokens used by those sessions.
    pub total_tokens: u64,
    /// Mean reply time over those sessions, ms.
    pub avg_response_time_ms: u64,
    /// Slowest reply over those sessions, ms.
    pub max_response_time_ms: u64,
    /// Of those sessions, the ones an admin assists right now.
    pub admin_assisted_count: u64,
    /// The window.
    pub time_range: TimeRange,
}

/// `POST /uploads`: where the stored file can be fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResponse {
    /// Id to send in `file_upload` / `voice_message`.
    pub file_id: String,
    /// https URL to send in `file_upload` / `voice_message`.
    pub file_url: String,
    /// Size in bytes.
    pub size: u64,
    /// Detected MIME type.
    pub mime_type: String,
}

/// `GET /healthz`: `{"status":"healthy","timestamp":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `"healthy"`.
    pub status: String,
    /// When the answer was produced.
    pub timestamp: DateTime<Utc>,
}

/// One dependency check of `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// `"ok"` or `"failing"` (the server adds backend details next to it).
    pub status: String,
    /// Why the check failed (absent when healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /readyz`: `"ready"` (200) or `"not ready"` (503) with one entry per check
/// (`storage`, `llm`, and `mongodb` as an alias of `storage` on MongoDB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessResponse {
    /// `"ready"` or `"not ready"`.
    pub status: String,
    /// When the answer was produced.
    pub timestamp: DateTime<Utc>,
    /// Named checks.
    pub checks: BTreeMap<String, CheckResult>,
}
