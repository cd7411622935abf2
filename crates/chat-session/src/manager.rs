//! The registry of sessions in memory: one active session per user (atomic under
//! concurrent creation), lookup, end, rollback, rehydration, and the sweep that keeps
//! memory bounded (READINESS #1).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore;

use crate::error::SessionError;
use crate::model::SessionSnapshot;
use crate::session::{to_delta, Session, SweepAction};
use crate::sync::Mutex;

/// How many sessions are in memory, by state. All three numbers come from one pass
/// under the registry lock, so `active + ended == total` always holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Sessions that accept messages.
    pub active: usize,
    /// Ended sessions waiting for their TTL to pass.
    pub ended: usize,
    /// Everything in memory.
    pub total: usize,
}

/// What one sweeper pass did. The caller persists the end of every session in
/// `ended` (their `endTs`) and may drop connection state for `removed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Sessions this pass ended because they were idle longer than the idle timeout;
    /// they stay in memory (ended) until their TTL passes.
    pub ended: Vec<String>,
    /// Ended sessions this pass dropped from memory because their TTL had passed.
    pub removed: Vec<String>,
}

impl SweepReport {
    /// True when the pass changed nothing.
    pub fn is_empty(&self) -> bool {
        self.ended.is_empty() && self.removed.is_empty()
    }
}

/// The lifetimes the manager enforces, copied from the configuration.
#[derive(Debug, Clone, Copy)]
struct Limits {
    ttl: TimeDelta,
    idle_timeout: TimeDelta,
    sweep_interval: Duration,
    max_messages_in_memory: usize,
}

/// Everything behind the registry lock.
#[derive(Debug, Default)]
struct Registry {
    /// Every session in memory. Bounded by the sweeper: ended sessions leave after the
    /// TTL, idle active ones are ended after the idle timeout, and creation is limited
    /// to one active session per user (and rate limited upstream).
    sessions: HashMap<String, Arc<Session>>,
    /// user id → id of that user's active session. An entry whose session has ended
    /// (ended directly through `Session::end`) is stale and ignored/replaced.
    active_by_user: HashMap<String, String>,
}

impl Registry {
    /// The user's active session, dropping a stale mapping on the way.
    fn active_for(&mut self, user_id: &str) -> Option<Arc<Session>> {
        let id = self.active_by_user.get(user_id)?;
        match self.sessions.get(id) {
            Some(session) if session.is_active() => Some(Arc::clone(session)),
            _ => {
                self.active_by_user.remove(user_id);
                None
            }
        }
    }

    /// Drops the user → session mapping if (and only if) it points at `session`.
    fn unmap(&mut self, session: &Session) {
        if self
            .active_by_user
            .get(session.user_id())
            .is_some_and(|id| id == session.id())
        {
            self.active_by_user.remove(session.user_id());
        }
    }
}

/// The sessions held in memory and the rules over them.
///
/// All registry changes happen under one lock, which makes "one active session per
/// user" a plain check-then-insert. Lock order is registry → session; `Session`
/// methods never touch the registry.
#[derive(Debug)]
pub struct SessionManager {
    limits: Limits,
    registry: Mutex<Registry>,
}

/// A fresh session id, 32 lowercase hex characters: the creation time `now` in
/// milliseconds since the Unix epoch (48 bits, big-endian; zero before the epoch), then
/// 80 bits from the thread-local CSPRNG (ChaCha seeded from the OS), as in UUIDv7.
///
/// Time first, so ids sort by creation: the sessions being written at any moment (the
/// recent ones) sit side by side in a store's B-tree, and a commit of many sessions'
/// writes rewrites a few shared pages instead of one page per session. With random ids
/// the embedded store wrote 3.5 times the bytes (docs/BENCHMARKS.md, seventeenth pass).
/// An id is not a credential (every read checks the owner); its time is the session's
/// `start_time`, which its owner and admins see anyway.
fn generate_session_id(now: DateTime<Utc>) -> String {
    let mut bytes = [0_u8; 16];
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    rand::rng().fill_bytes(&mut bytes[6..]);
    hex::encode(bytes)
}

impl SessionManager {
    /// An empty registry enforcing the configured TTL, idle timeout, sweep interval and
    /// in-memory message bound.
    pub fn new(settings: &chat_config::SessionSettings) -> Self {
        Self {
            limits: Limits {
                ttl: to_delta(settings.ttl),
                idle_timeout: to_delta(settings.idle_timeout),
                sweep_interval: settings.sweep_interval,
                max_messages_in_memory: settings.max_messages_in_memory.max(1),
            },
            registry: Mutex::new(Registry::default()),
        }
    }

    /// How often the sweeper task runs a pass.
    pub fn sweep_interval(&self) -> Duration {
        self.limits.sweep_interval
    }

    /// The user's active session, creating it (started at `now`, with a fresh
    /// server-generated id) if there is none. `created` tells the caller to persist it
    /// (and to call [`SessionManager::remove`] if that fails).
    ///
    /// Atomic: concurrent calls for one user all return the same session and exactly
    /// one of them reports `created`.
    pub fn get_or_create_active(&self, user_id: &str, now: DateTime<Utc>) -> (Arc<Session>, bool) {
        let mut registry = self.registry.lock();
        if let Some(session) = registry.active_for(user_id) {
            return (session, false);
        }
        let mut id = generate_session_id(now);
        // 80 random bits per millisecond do not collide in practice; the check makes it
        // impossible.
        while registry.sessions.contains_key(&id) {
            id = generate_session_id(now);
        }
        let session = Arc::new(Session::new(
            id.clone(),
            user_id,
            now,
            self.limits.max_messages_in_memory,
        ));
        registry.sessions.insert(id.clone(), Arc::clone(&session));
        registry.active_by_user.insert(user_id.to_owned(), id);
        tracing::debug!(session_id = %session.id(), user_id, "session created");
        (session, true)
    }

    /// The session with this id, active or ended, if it is in memory.
    pub fn get(&self, session_id: &str) -> Option<Arc<Session>> {
        self.registry.lock().sessions.get(session_id).cloned()
    }

    /// The user's active session, if any.
    pub fn active_for_user(&self, user_id: &str) -> Option<Arc<Session>> {
        self.registry.lock().active_for(user_id)
    }

    /// Ends a session at `now` and drops the user → session mapping, so the user's next
    /// message starts a new session. `Ok(true)` for the call that ended it, `Ok(false)`
    /// when it had already ended (the first end time is kept).
    pub fn end(&self, session_id: &str, now: DateTime<Utc>) -> Result<bool, SessionError> {
        let mut registry = self.registry.lock();
        let session =
            registry
                .sessions
                .get(session_id)
                .cloned()
                .ok_or_else(|| SessionError::NotFound {
                    session_id: session_id.to_owned(),
                })?;
        let ended_now = session.end(now);
        registry.unmap(&session);
        Ok(ended_now)
    }

    /// Withdraws a session completely (the rollback when persisting a new session
    /// fails): afterwards neither its id nor its user mapping is left, the user's next
    /// request creates a new session, and holders of the old `Arc` can no longer append
    /// to it (it is marked ended).
    pub fn remove(&self, session_id: &str) -> Option<Arc<Session>> {
        let mut registry = self.registry.lock();
        let session = registry.sessions.remove(session_id)?;
        registry.unmap(&session);
        session.retire();
        tracing::debug!(session_id, "session removed from memory");
        Some(session)
    }

    /// Puts a stored session back into memory (startup rehydration). An active one
    /// becomes its user's active session; refused if the id is already in memory or
    /// the user already has another active session.
    pub fn insert_rehydrated(
        &self,
        snapshot: SessionSnapshot,
    ) -> Result<Arc<Session>, SessionError> {
        let session = Arc::new(Session::from_snapshot(
            snapshot,
            self.limits.max_messages_in_memory,
        )?);
        let mut registry = self.registry.lock();
        if registry.sessions.contains_key(session.id()) {
            return Err(SessionError::AlreadyExists {
                session_id: session.id().to_owned(),
            });
        }
        if session.is_active() {
            if let Some(active) = registry.active_for(session.user_id()) {
                return Err(SessionError::UserHasActiveSession {
                    user_id: session.user_id().to_owned(),
                    active_session_id: active.id().to_owned(),
                });
            }
            registry
                .active_by_user
                .insert(session.user_id().to_owned(), session.id().to_owned());
        }
        registry
            .sessions
            .insert(session.id().to_owned(), Arc::clone(&session));
        Ok(session)
    }

    /// Releases the in-memory messages ([`Session::release_history`]) of every session
    /// for which `in_use` is false (the caller knows which sessions have connections or
    /// a reply in flight). Returns how many sessions gave messages back. Their history
    /// stays in the store and is reloaded on demand.
    ///
    /// `in_use` runs without the registry lock held (it may take the caller's locks,
    /// which are sometimes held while the registry is locked). A session that becomes
    /// used meanwhile only costs a reload.
    pub fn release_history_unless(&self, in_use: impl Fn(&str) -> bool) -> usize {
        let sessions: Vec<Arc<Session>> = self.registry.lock().sessions.values().cloned().collect();
        sessions
            .iter()
            .filter(|s| !in_use(s.id()) && s.release_history() > 0)
            .count()
    }

    /// Counts the sessions in memory, in one consistent pass.
    pub fn stats(&self) -> MemoryStats {
        let registry = self.registry.lock();
        let total = registry.sessions.len();
        let active = registry.sessions.values().filter(|s| s.is_active()).count();
        MemoryStats {
            active,
            ended: total - active,
            total,
        }
    }

    /// One sweeper pass at `now`: ends active sessions idle for at least the idle
    /// timeout (dropping their user mapping) and removes ended sessions whose end is at
    /// least the TTL ago. Each session's check-and-act is atomic with respect to
    /// concurrent appends, so a message is either appended before the end (and the
    /// session was not idle) or refused; an ended or removed session is never handed
    /// out again.
    ///
    /// The pass holds the registry lock throughout (O(sessions), tens of ns each).
    pub fn sweep(&self, now: DateTime<Utc>) -> SweepReport {
        let mut registry = self.registry.lock();
        let mut report = SweepReport::default();
        let mut to_remove = Vec::new();
        for (id, session) in &registry.sessions {
            match session.sweep(now, self.limits.ttl, self.limits.idle_timeout) {
                SweepAction::Keep => {}
                SweepAction::EndedIdle => report.ended.push(id.clone()),
                SweepAction::Remove => to_remove.push(id.clone()),
            }
        }
        for id in &report.ended {
            if let Some(session) = registry.sessions.get(id).cloned() {
                registry.unmap(&session);
            }
        }
        for id in to_remove {
            if let Some(session) = registry.sessions.remove(&id) {
                registry.unmap(&session);
                report.removed.push(id);
            }
        }
        if !report.is_empty() {
            tracing::debug!(
                ended = report.ended.len(),
                removed = report.removed.len(),
                "session sweep"
            );
        }
        report
    }
}
