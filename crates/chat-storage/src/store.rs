//! The `SessionStore` seam: everything the service persists about sessions, and the
//! query types of the admin API (PROTOCOL §2).

use std::time::Duration;

use async_trait::async_trait;
use chat_session::model::{SessionSnapshot, StoredMessage};
use chrono::{DateTime, Utc};

use crate::error::StoreError;

/// A session without its messages, plus how many there are: the rows of every list
/// endpoint (`SessionMetadata` of PROTOCOL §2 is built from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// Session id (`_id`).
    pub id: String,
    /// Owner (`uid`).
    pub user_id: String,
    /// Display name (`nm`, decrypted).
    pub name: String,
    /// Selected provider id (`modelId`).
    pub model_id: String,
    /// Start time (`ts`).
    pub start_time: DateTime<Utc>,
    /// End time (`endTs`), `None` while active.
    pub end_time: Option<DateTime<Utc>>,
    /// Last message or state change (`lastActivity`).
    pub last_activity: DateTime<Utc>,
    /// Whether an admin currently assists.
    pub admin_assisted: bool,
    /// The assisting admin's user id.
    pub assisting_admin_id: Option<String>,
    /// The assisting admin's display name.
    pub assisting_admin_name: Option<String>,
    /// The user asked for a human.
    pub help_requested: bool,
    /// Tokens used by all replies.
    pub total_tokens: u64,
    /// Slowest reply (ms).
    pub max_response_time_ms: u64,
    /// Mean reply time (ms).
    pub avg_response_time_ms: u64,
    /// Number of replies the mean is over.
    pub response_count: u64,
    /// Public share token, if shared.
    pub share_token: Option<String>,
    /// Number of messages (`msgs` length).
    pub message_count: u64,
}

impl SessionSummary {
    /// The summary of a full snapshot.
    pub fn of(snapshot: &SessionSnapshot) -> Self {
        Self {
            id: snapshot.id.clone(),
            user_id: snapshot.user_id.clone(),
            name: snapshot.name.clone(),
            model_id: snapshot.model_id.clone(),
            start_time: snapshot.start_time,
            end_time: snapshot.end_time,
            last_activity: snapshot.last_activity,
            admin_assisted: snapshot.admin_assisted,
            assisting_admin_id: snapshot.assisting_admin_id.clone(),
            assisting_admin_name: snapshot.assisting_admin_name.clone(),
            help_requested: snapshot.help_requested,
            total_tokens: snapshot.total_tokens,
            max_response_time_ms: snapshot.max_response_time_ms,
            avg_response_time_ms: snapshot.avg_response_time_ms,
            response_count: snapshot.response_count,
            share_token: snapshot.share_token.clone(),
            message_count: snapshot.messages.len() as u64,
        }
    }

    /// True while the session has not ended.
    pub fn is_active(&self) -> bool {
        self.end_time.is_none()
    }

    /// Whole seconds from start to end (or to `now` while active).
    pub fn duration_secs(&self, now: DateTime<Utc>) -> i64 {
        let end = self.end_time.unwrap_or(now);
        (end - self.start_time).num_seconds().max(0)
    }

    /// The stored `dur` (seconds): set when the session ends, 0 while active. This is
    /// what `sort_by=duration` orders by on every backend.
    pub fn stored_duration_secs(&self) -> i64 {
        match self.end_time {
            Some(end) => (end - self.start_time).num_seconds().max(0),
            None => 0,
        }
    }
}

/// `status=` filter of the admin list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Sessions without an end time.
    Active,
    /// Sessions with an end time.
    Ended,
}

/// `sort_by=` keys of the admin list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// `start_time` (`ts`), the default.
    #[default]
    StartTime,
    /// `end_time` (`endTs`); active sessions (no end) sort lowest.
    EndTime,
    /// `message_count` (length of `msgs`).
    MessageCount,
    /// `total_tokens`.
    TotalTokens,
    /// `user_id` (`uid`).
    UserId,
    /// `last_activity`.
    LastActivity,
    /// `duration`: the stored `dur` (seconds), 0 while active.
    Duration,
}

impl SortKey {
    /// Parses the query-string spelling (`start_time`, …); `None` for unknown keys.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "start_time" => SortKey::StartTime,
            "end_time" => SortKey::EndTime,
            "message_count" => SortKey::MessageCount,
            "total_tokens" => SortKey::TotalTokens,
            "user_id" => SortKey::UserId,
            "last_activity" => SortKey::LastActivity,
            "duration" => SortKey::Duration,
            _ => return None,
        })
    }
}

/// `sort_order=` of the admin list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Smallest first.
    Asc,
    /// Largest first (the default).
    #[default]
    Desc,
}

/// Filters, sort and page of `GET /admin/sessions` (validated by the API layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminQuery {
    /// Only this user's sessions.
    pub user_id: Option<String>,
    /// Only active or only ended sessions.
    pub status: Option<StatusFilter>,
    /// Only sessions with (or without) an assisting admin.
    pub admin_assisted: Option<bool>,
    /// Sessions started at or after this instant.
    pub start_time_from: Option<DateTime<Utc>>,
    /// Sessions started at or before this instant.
    pub start_time_to: Option<DateTime<Utc>>,
    /// Sort key; ties are broken by session id ascending so pages are stable.
    pub sort_by: SortKey,
    /// Sort direction.
    pub sort_order: SortOrder,
    /// Page size (the API allows 1..=1000).
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

impl Default for AdminQuery {
    fn default() -> Self {
        Self {
            user_id: None,
            status: None,
            admin_assisted: None,
            start_time_from: None,
            start_time_to: None,
            sort_by: SortKey::default(),
            sort_order: SortOrder::default(),
            limit: 100,
            offset: 0,
        }
    }
}

/// One page of the admin list plus the number of sessions matching the filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The rows of this page.
    pub items: Vec<SessionSummary>,
    /// Sessions matching the filters, over all pages.
    pub total: u64,
}

/// `GET /admin/metrics` aggregated over sessions started in a time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreMetrics {
    /// Sessions started in the range.
    pub total_sessions: u64,
    /// Of those, the ones still active.
    pub active_sessions: u64,
    /// Sum of their tokens.
    pub total_tokens: u64,
    /// Mean reply time over all their replies (weighted by reply count; a legacy
    /// document without `respCount` but with a mean counts as one reply).
    pub avg_response_time_ms: u64,
    /// Slowest reply among them.
    pub max_response_time_ms: u64,
    /// Of those, the ones currently assisted by an admin.
    pub admin_assisted_count: u64,
}

/// A session's usage statistics: absolute values computed by the session (its
/// `totalTokens`, `maxResponseTime`, `avgResponseTime` and `respCount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageStats {
    /// Tokens of all replies.
    pub total_tokens: u64,
    /// Slowest reply (ms).
    pub max_response_time_ms: u64,
    /// Mean reply time (ms).
    pub avg_response_time_ms: u64,
    /// Replies in the mean.
    pub response_count: u64,
}

/// What readiness and metrics report about the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreHealth {
    /// Writes accepted but not yet applied.
    pub pending_writes: usize,
    /// Capacity of the write queue (0 when writes are synchronous).
    pub queue_capacity: usize,
    /// True while the database is failing and writes are waiting.
    pub degraded: bool,
    /// The most recent write failure, if any since the last success.
    pub last_error: Option<String>,
}

/// Everything the service persists about sessions. Implementations: `MongoStore`
/// (production), `EmbeddedStore` (development default), the write-behind wrapper
/// (keeps writes off the chat hot path) and, with the `mock` feature, `MockSessionStore`.
///
/// Times are stored with millisecond precision (BSON dates).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session. An active session (no end time) is refused with
    /// [`StoreError::ActiveSessionExists`] when its user already has one — the store
    /// enforces this atomically, across replicas.
    async fn create_session(&self, session: &SessionSnapshot) -> Result<(), StoreError>;

    /// Appends one message at the end of the conversation and updates `lastActivity`.
    async fn append_message(&self, id: &str, message: &StoredMessage) -> Result<(), StoreError>;

    /// Sets the display name.
    async fn update_name(&self, id: &str, name: &str) -> Result<(), StoreError>;

    /// Sets the selected provider id.
    async fn update_model(&self, id: &str, model_id: &str) -> Result<(), StoreError>;

    /// Sets the usage statistics (absolute values computed by the session).
    async fn update_stats(
        &self,
        id: &str,
        total_tokens: u64,
        max_response_time_ms: u64,
        avg_response_time_ms: u64,
        response_count: u64,
    ) -> Result<(), StoreError>;

    /// What a finished AI reply changes, as **one** write: appends `reply` (as
    /// [`Self::append_message`]) and, when the reply completed, sets the statistics it
    /// brought the session to (as [`Self::update_stats`]). Backends make it one
    /// transaction or one update, so a reply costs one write instead of two
    /// (docs/BENCHMARKS.md, eighth pass). Refused as a whole for an unknown session.
    async fn append_reply(
        &self,
        id: &str,
        reply: &StoredMessage,
        stats: Option<UsageStats>,
    ) -> Result<(), StoreError>;

    /// Sets the assisting admin (`None` = no admin assists; `adminAssisted` follows).
    async fn update_assistance<'a>(
        &self,
        id: &str,
        admin_id: Option<&'a str>,
        admin_name: Option<&'a str>,
    ) -> Result<(), StoreError>;

    /// Sets whether the user asked for a human.
    async fn set_help_requested(&self, id: &str, requested: bool) -> Result<(), StoreError>;

    /// Ends the session at `end_time` and stores its duration. Idempotent: ending an
    /// ended session keeps the first end time, which is returned.
    async fn end_session(
        &self,
        id: &str,
        end_time: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError>;

    /// The full session, `None` when unknown.
    async fn get_session(&self, id: &str) -> Result<Option<SessionSnapshot>, StoreError>;

    /// The session shared under `token`, `None` when no session has it.
    async fn get_by_share_token(&self, token: &str) -> Result<Option<SessionSnapshot>, StoreError>;

    /// Shares the session under `token` unless it is already shared; returns the token
    /// in effect (so sharing twice yields the same token).
    async fn set_share_token(&self, id: &str, token: &str) -> Result<String, StoreError>;

    /// Removes the share token; the old link stops working. Idempotent.
    async fn revoke_share_token(&self, id: &str) -> Result<(), StoreError>;

    /// The user's sessions, newest first, at most `limit`; the flag says whether more
    /// exist.
    async fn list_user_sessions(
        &self,
        user_id: &str,
        limit: u32,
    ) -> Result<(Vec<SessionSummary>, bool), StoreError>;

    /// The admin list: filters, sort, page and total count.
    async fn admin_list(&self, query: &AdminQuery) -> Result<Page, StoreError>;

    /// Aggregates over sessions that started within `[from, to]`.
    async fn metrics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<StoreMetrics, StoreError>;

    /// Every active session, for rehydration at startup. Bounded by the number of
    /// active sessions (at most one per user).
    async fn load_active(&self) -> Result<Vec<SessionSnapshot>, StoreError>;

    /// Checks that the backend answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Queue depth and failure state for readiness and metrics.
    fn health(&self) -> StoreHealth;

    /// Applies every accepted write (within `deadline`) and stops background work.
    /// Returns the number of writes that could not be applied in time.
    async fn shutdown(&self, deadline: Duration) -> Result<usize, StoreError>;
}
