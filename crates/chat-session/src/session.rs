//! One conversation in memory: the state behind the session's lock and every
//! operation that must be atomic with respect to it (append vs. end, takeover vs. AI
//! send, snapshot vs. any mutation).

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::SessionError;
use crate::model::{Sender, SessionSnapshot, StoredMessage};
use crate::naming::{derive_name, DEFAULT_NAME};
use crate::stats::ResponseStats;
use crate::sync::{Mutex, MutexGuard};

/// The result of a successful [`Session::try_takeover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakeoverOutcome {
    /// True when this call started the assistance (notify the user with `admin_join`);
    /// false when the same admin already assisted (idempotent repeat, nothing to send).
    pub newly_assisted: bool,
}

/// The admin currently assisting a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistingAdmin {
    /// The admin's user id.
    pub id: String,
    /// The admin's display name, shown to the user and in 409 bodies.
    pub name: String,
}

/// One conversation: identity (immutable, readable without the lock) and state (behind
/// one lock, so every operation below is atomic and a [`SessionSnapshot`] is never torn).
///
/// Locking: the session lock is a leaf lock. No method takes another lock while holding
/// it; the `SessionManager` takes it while holding its registry lock (order:
/// registry → session), never the reverse.
#[derive(Debug)]
pub struct Session {
    /// Server-generated id (32 lowercase hex for new sessions).
    id: String,
    /// Owner.
    user_id: String,
    /// Upper bound of `State::messages`; older messages live only in storage.
    max_messages_in_memory: usize,
    /// Everything that changes.
    state: Mutex<State>,
}

/// The mutable part of a session.
#[derive(Debug)]
struct State {
    /// `None` until the first user message names the session.
    name: Option<String>,
    /// Selected provider id; empty = the configured default.
    model_id: String,
    /// The newest messages, at most `max_messages_in_memory`, oldest first.
    messages: VecDeque<StoredMessage>,
    /// Messages ever appended (plus those rehydrated), including the ones no longer in
    /// memory.
    message_count: u64,
    /// Start time.
    start_time: DateTime<Utc>,
    /// End time; `None` while active. Set once, never cleared.
    end_time: Option<DateTime<Utc>>,
    /// Newest message or end time.
    last_activity: DateTime<Utc>,
    /// The admin assisting, if any; while set the AI must not speak.
    assisting: Option<AssistingAdmin>,
    /// The user asked for a human.
    help_requested: bool,
    /// Reply times and tokens, constant memory.
    stats: ResponseStats,
    /// Public read-only share token.
    share_token: Option<String>,
}

/// What one sweeper pass decided for one session (taken under the session lock, so
/// the check and the action are one atomic step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SweepAction {
    /// Active and recently used, or ended less than the TTL ago.
    Keep,
    /// Was idle too long and has just been ended by this pass.
    EndedIdle,
    /// Ended at least the TTL ago: drop it from memory.
    Remove,
}

/// Converts a configured duration to chrono, saturating (a TTL of centuries means
/// "never").
pub(crate) fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl Session {
    /// A new, active, unnamed session started at `now`. `max_messages_in_memory` is at
    /// least 1.
    pub fn new(
        id: impl Into<String>,
        user_id: impl Into<String>,
        now: DateTime<Utc>,
        max_messages_in_memory: usize,
    ) -> Self {
        Self {
            id: id.into(),
            user_id: user_id.into(),
            max_messages_in_memory: max_messages_in_memory.max(1),
            state: Mutex::new(State {
                name: None,
                model_id: String::new(),
                messages: VecDeque::new(),
                message_count: 0,
                start_time: now,
                end_time: None,
                last_activity: now,
                assisting: None,
                help_requested: false,
                stats: ResponseStats::default(),
                share_token: None,
            }),
        }
    }

    /// Rebuilds a session from its stored form (startup rehydration). Only the newest
    /// `max_messages_in_memory` messages are kept in memory. A stored name equal to
    /// [`DEFAULT_NAME`] (or empty) counts as unset, so the first user message still
    /// names the session. `adminAssisted` without an admin id is treated as not
    /// assisted (no admin could ever release it).
    pub fn from_snapshot(
        snapshot: SessionSnapshot,
        max_messages_in_memory: usize,
    ) -> Result<Self, SessionError> {
        if snapshot.id.is_empty() {
            return Err(SessionError::InvalidSnapshot {
                reason: "empty session id",
            });
        }
        if snapshot.user_id.is_empty() {
            return Err(SessionError::InvalidSnapshot {
                reason: "empty user id",
            });
        }
        let max = max_messages_in_memory.max(1);
        let message_count = snapshot.messages.len() as u64;
        let skip = snapshot.messages.len().saturating_sub(max);
        let messages: VecDeque<StoredMessage> = snapshot.messages.into_iter().skip(skip).collect();
        let name = Some(snapshot.name).filter(|n| !n.is_empty() && n != DEFAULT_NAME);
        let assisting = match (snapshot.admin_assisted, snapshot.assisting_admin_id) {
            (true, Some(id)) if !id.is_empty() => Some(AssistingAdmin {
                id,
                name: snapshot.assisting_admin_name.unwrap_or_default(),
            }),
            (true, _) => {
                tracing::warn!(
                    session_id = %snapshot.id,
                    "stored session is marked admin-assisted without an admin id; treating it as not assisted"
                );
                None
            }
            (false, _) => None,
        };
        Ok(Self {
            id: snapshot.id,
            user_id: snapshot.user_id,
            max_messages_in_memory: max,
            state: Mutex::new(State {
                name,
                model_id: snapshot.model_id,
                messages,
                message_count,
                start_time: snapshot.start_time,
                end_time: snapshot.end_time,
                last_activity: snapshot.last_activity,
                assisting,
                help_requested: snapshot.help_requested,
                stats: ResponseStats::from_persisted(
                    snapshot.response_count,
                    snapshot.max_response_time_ms,
                    snapshot.avg_response_time_ms,
                    snapshot.total_tokens,
                ),
                share_token: snapshot.share_token,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    fn ended_error(&self) -> SessionError {
        SessionError::Ended {
            session_id: self.id.clone(),
        }
    }

    /// The session id; immutable, so no lock.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The owner; immutable, so no lock.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// True until the session ends; once false it stays false.
    pub fn is_active(&self) -> bool {
        self.state().end_time.is_none()
    }

    /// Appends a message and moves `last_activity` forward to its timestamp (never
    /// backwards). The first user message names the session. Only the newest
    /// `max_messages_in_memory` messages stay in memory, but all are counted.
    ///
    /// Refused with [`SessionError::Ended`] once the session has ended: the message
    /// is then in no session, and the caller retries on the user's active session.
    pub fn append(&self, message: StoredMessage) -> Result<(), SessionError> {
        let mut state = self.state();
        if state.end_time.is_some() {
            return Err(self.ended_error());
        }
        if message.sender == Sender::User && state.name.is_none() {
            state.name = Some(derive_name(&message.content));
        }
        state.last_activity = state.last_activity.max(message.timestamp);
        if state.messages.len() >= self.max_messages_in_memory {
            state.messages.pop_front();
        }
        state.messages.push_back(message);
        state.message_count = state.message_count.saturating_add(1);
        Ok(())
    }

    /// Takes back `message`, appended by [`Session::append`], if it is still the newest
    /// message held in memory: for a caller that could not store it and tells the user
    /// to send it again (kept, it would reach the LLM history twice). With `unname`, a
    /// name the message gave the session is taken back too. Returns whether it was
    /// taken back (false when another message came after it).
    pub fn retract_last(&self, message: &StoredMessage, unname: bool) -> bool {
        let mut state = self.state();
        if state.messages.back() != Some(message) {
            return false;
        }
        state.messages.pop_back();
        state.message_count = state.message_count.saturating_sub(1);
        if unname {
            state.name = None;
        }
        true
    }

    /// Messages ever appended, including those no longer held in memory.
    pub fn message_count(&self) -> u64 {
        self.state().message_count
    }

    /// The newest `limit` messages held in memory, oldest first (the LLM history).
    pub fn recent_messages(&self, limit: usize) -> Vec<StoredMessage> {
        let state = self.state();
        let skip = state.messages.len().saturating_sub(limit);
        state.messages.iter().skip(skip).cloned().collect()
    }

    /// True when fewer than `want` of the newest messages are held in memory although
    /// the conversation has them (capped at `max_messages_in_memory`): the memory was
    /// released ([`Session::release_history`]) and the caller should reload them from
    /// the store ([`Session::restore_history`]) before using [`Session::recent_messages`].
    pub fn history_missing(&self, want: usize) -> bool {
        let state = self.state();
        let want = want.min(self.max_messages_in_memory) as u64;
        (state.messages.len() as u64) < want.min(state.message_count)
    }

    /// Drops the messages held in memory (and their allocation); the session keeps
    /// everything else, including [`Session::message_count`]. Used when nobody has
    /// used the session for a while: its history stays in the store. Returns how many
    /// messages were released.
    pub fn release_history(&self) -> usize {
        let mut state = self.state();
        let released = state.messages.len();
        if released > 0 || state.messages.capacity() > 0 {
            state.messages = VecDeque::new();
        }
        released
    }

    /// Puts older messages back in front of those in memory after a
    /// [`Session::release_history`]. `stored` is the conversation as the store has it,
    /// oldest first: message `i` of the conversation is `stored[i]`. Only the messages
    /// before the oldest one in memory are taken (the newer ones are already here),
    /// at most up to `max_messages_in_memory` in total. Returns how many were restored.
    ///
    /// Safe against appends in between: positions come from `message_count`, read
    /// under the same lock as the insertion.
    pub fn restore_history(&self, stored: Vec<StoredMessage>) -> usize {
        let mut state = self.state();
        let resident = state.messages.len();
        let first_resident =
            usize::try_from(state.message_count.saturating_sub(resident as u64)).unwrap_or(0);
        let room = self.max_messages_in_memory.saturating_sub(resident);
        let available = stored.len().min(first_resident);
        let skip = available.saturating_sub(room);
        let older: Vec<StoredMessage> = stored.into_iter().take(available).skip(skip).collect();
        let restored = older.len();
        for message in older.into_iter().rev() {
            state.messages.push_front(message);
        }
        restored
    }

    /// The display name: derived from the first user message, [`DEFAULT_NAME`] before.
    pub fn name(&self) -> String {
        self.state()
            .name
            .clone()
            .unwrap_or_else(|| DEFAULT_NAME.to_owned())
    }

    /// True once the session has a name (from its first user message or set).
    pub fn is_named(&self) -> bool {
        self.state().name.is_some()
    }

    /// Names the session after `text` (through the naming rule, so the ≤ 50 chars
    /// guarantee holds) unless it already has a name. Returns whether it was set.
    pub fn set_name_if_unset(&self, text: &str) -> bool {
        let mut state = self.state();
        if state.name.is_some() {
            return false;
        }
        state.name = Some(derive_name(text));
        true
    }

    /// The selected provider id; empty = the configured default.
    pub fn model_id(&self) -> String {
        self.state().model_id.clone()
    }

    /// Selects the provider for the following replies. Refused once ended.
    pub fn set_model(&self, model_id: impl Into<String>) -> Result<(), SessionError> {
        let mut state = self.state();
        if state.end_time.is_some() {
            return Err(self.ended_error());
        }
        state.model_id = model_id.into();
        Ok(())
    }

    /// Records one reply's duration and token usage in O(1) memory. Negative values
    /// are refused and change nothing. Accepted after the end too: a reply that
    /// finishes while the session is ended still happened and is billed.
    pub fn record_response(&self, duration_ms: i64, tokens: i64) -> Result<(), SessionError> {
        self.state().stats.record(duration_ms, tokens)
    }

    /// The reply statistics.
    pub fn stats(&self) -> ResponseStats {
        self.state().stats
    }

    /// Atomic check-and-set of admin assistance: the first admin wins; the same admin
    /// again is an idempotent success (`newly_assisted: false`); a different admin gets
    /// [`SessionError::AlreadyAssisted`] naming the current one. Refused once ended.
    ///
    /// Takes the same lock as [`Session::if_ai_may_speak`]: once this returns, no AI
    /// frame can be sent for the session until [`Session::release`].
    pub fn try_takeover(
        &self,
        admin_id: &str,
        admin_name: &str,
    ) -> Result<TakeoverOutcome, SessionError> {
        let mut state = self.state();
        if state.end_time.is_some() {
            return Err(self.ended_error());
        }
        match &state.assisting {
            Some(current) if current.id == admin_id => Ok(TakeoverOutcome {
                newly_assisted: false,
            }),
            Some(current) => Err(SessionError::AlreadyAssisted {
                admin_id: current.id.clone(),
                admin_name: current.name.clone(),
            }),
            None => {
                state.assisting = Some(AssistingAdmin {
                    id: admin_id.to_owned(),
                    name: admin_name.to_owned(),
                });
                Ok(TakeoverOutcome {
                    newly_assisted: true,
                })
            }
        }
    }

    /// Ends the assistance of `admin_id`, so the AI answers again. `Ok(true)` when it
    /// was assisting, `Ok(false)` when nobody was (idempotent), and
    /// [`SessionError::NotAssistingAdmin`] when another admin assists.
    pub fn release(&self, admin_id: &str) -> Result<bool, SessionError> {
        let mut state = self.state();
        match &state.assisting {
            None => Ok(false),
            Some(current) if current.id == admin_id => {
                state.assisting = None;
                Ok(true)
            }
            Some(_) => Err(SessionError::NotAssistingAdmin {
                admin_id: admin_id.to_owned(),
            }),
        }
    }

    /// The admin assisting, if any.
    pub fn assisting_admin(&self) -> Option<AssistingAdmin> {
        self.state().assisting.clone()
    }

    /// True while an admin assists (user messages go to them, not to the LLM).
    pub fn is_admin_assisted(&self) -> bool {
        self.state().assisting.is_some()
    }

    /// The AI gate: runs `f` while holding the session lock if and only if the session
    /// is active and no admin assists, and returns its result; `None` otherwise.
    ///
    /// Because [`Session::try_takeover`] and [`Session::end`] take the same lock, a
    /// send done inside `f` is ordered before any takeover/end that completes later:
    /// once `try_takeover` has returned, no AI frame can follow `admin_join`.
    ///
    /// `f` must not block, must not panic and must not call back into this session
    /// (the lock is not reentrant): use a non-blocking `try_send` into a bounded queue.
    pub fn if_ai_may_speak<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let state = self.state();
        if state.end_time.is_some() || state.assisting.is_some() {
            return None;
        }
        let result = f();
        drop(state);
        Some(result)
    }

    /// Whether the user asked for a human.
    pub fn help_requested(&self) -> bool {
        self.state().help_requested
    }

    /// Sets or clears the help-requested flag (cleared by the caller when an admin
    /// takes over or the request is handled).
    pub fn set_help_requested(&self, requested: bool) {
        self.state().help_requested = requested;
    }

    /// The public share token, if shared.
    pub fn share_token(&self) -> Option<String> {
        self.state().share_token.clone()
    }

    /// Returns the share token, creating it with `generate` if there is none — atomic,
    /// so repeated or concurrent share requests all get the same token.
    pub fn share_token_or_insert_with(&self, generate: impl FnOnce() -> String) -> String {
        self.state()
            .share_token
            .get_or_insert_with(generate)
            .clone()
    }

    /// Revokes the share token; returns the revoked one.
    pub fn revoke_share_token(&self) -> Option<String> {
        self.state().share_token.take()
    }

    /// Start time.
    pub fn start_time(&self) -> DateTime<Utc> {
        self.state().start_time
    }

    /// End time; `None` while active.
    pub fn end_time(&self) -> Option<DateTime<Utc>> {
        self.state().end_time
    }

    /// Newest message or end time.
    pub fn last_activity(&self) -> DateTime<Utc> {
        self.state().last_activity
    }

    /// Ends the session at `now`. Idempotent: returns true only for the call that
    /// ended it, and the first end time is kept. Prefer `SessionManager::end`, which
    /// also drops the user → session mapping.
    pub fn end(&self, now: DateTime<Utc>) -> bool {
        let mut state = self.state();
        Self::end_locked(&mut state, now)
    }

    fn end_locked(state: &mut State, now: DateTime<Utc>) -> bool {
        if state.end_time.is_some() {
            return false;
        }
        state.end_time = Some(now);
        state.last_activity = state.last_activity.max(now);
        true
    }

    /// Ends the session without a new timestamp (its end time is its last activity);
    /// used when a session is withdrawn from the registry so holders of the `Arc`
    /// can no longer append to an orphan.
    pub(crate) fn retire(&self) {
        let mut state = self.state();
        let at = state.last_activity;
        Self::end_locked(&mut state, at);
    }

    /// The sweeper's decision for this session, checked and applied in one critical
    /// section: an append that wins the lock refreshes `last_activity` and keeps the
    /// session; an append that loses finds it ended and is refused.
    pub(crate) fn sweep(&self, now: DateTime<Utc>, ttl: TimeDelta, idle: TimeDelta) -> SweepAction {
        let mut state = self.state();
        match state.end_time {
            Some(end) if now.signed_duration_since(end) >= ttl => SweepAction::Remove,
            Some(_) => SweepAction::Keep,
            None if now.signed_duration_since(state.last_activity) >= idle => {
                Self::end_locked(&mut state, now);
                SweepAction::EndedIdle
            }
            None => SweepAction::Keep,
        }
    }

    /// A consistent copy of everything persisted, taken under the lock: no concurrent
    /// mutation can be half-visible in it. `messages` holds the messages in memory
    /// (the newest `max_messages_in_memory`); [`Session::message_count`] counts all.
    pub fn snapshot(&self) -> SessionSnapshot {
        let state = self.state();
        SessionSnapshot {
            id: self.id.clone(),
            user_id: self.user_id.clone(),
            name: state
                .name
                .clone()
                .unwrap_or_else(|| DEFAULT_NAME.to_owned()),
            model_id: state.model_id.clone(),
            messages: state.messages.iter().cloned().collect(),
            start_time: state.start_time,
            end_time: state.end_time,
            last_activity: state.last_activity,
            admin_assisted: state.assisting.is_some(),
            assisting_admin_id: state.assisting.as_ref().map(|a| a.id.clone()),
            assisting_admin_name: state.assisting.as_ref().map(|a| a.name.clone()),
            help_requested: state.help_requested,
            total_tokens: state.stats.total_tokens(),
            max_response_time_ms: state.stats.max_ms(),
            avg_response_time_ms: state.stats.avg_ms(),
            response_count: state.stats.count(),
            share_token: state.share_token.clone(),
        }
    }
}
