//! Concurrent WebSocket connections per user, as RAII slots.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use crate::error::TooManyConnections;
use crate::sync::Mutex;

/// The default per-user connection limit (PROTOCOL §2).
pub const DEFAULT_MAX_CONNECTIONS_PER_USER: usize = 10;

/// Counts each user's open connections and refuses more than the limit.
///
/// Cheap to clone (shared state). The map only holds users with at least one slot
/// (an entry is removed when its last slot is released), so it is bounded by the
/// number of open connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    /// user id → slots held; never 0 (entries at 0 are removed).
    counts: Mutex<HashMap<String, usize>>,
}

/// One held connection slot. Dropping it releases the slot, so every path — normal
/// close, failed upgrade, early return, a panic unwinding through the handler — gives
/// the slot back.
#[derive(Debug)]
#[must_use = "the slot is released as soon as it is dropped"]
pub struct ConnectionSlot {
    inner: Arc<Inner>,
    user_id: String,
}

impl Default for ConnectionLimiter {
    fn default() -> Self {
        Self::new(NonZeroUsize::new(DEFAULT_MAX_CONNECTIONS_PER_USER).unwrap_or(NonZeroUsize::MIN))
    }
}

impl ConnectionLimiter {
    /// At most `limit` concurrent connections per user.
    pub fn new(limit: NonZeroUsize) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit: limit.get(),
                counts: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The per-user limit.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Takes a slot for `user_id`, atomically with respect to concurrent acquires and
    /// releases, or refuses when the user already holds `limit` slots.
    pub fn try_acquire(&self, user_id: &str) -> Result<ConnectionSlot, TooManyConnections> {
        let mut counts = self.inner.counts.lock();
        let held = counts.get(user_id).copied().unwrap_or(0);
        if held >= self.inner.limit {
            return Err(TooManyConnections {
                limit: self.inner.limit,
            });
        }
        counts.insert(user_id.to_owned(), held + 1);
        Ok(ConnectionSlot {
            inner: Arc::clone(&self.inner),
            user_id: user_id.to_owned(),
        })
    }

    /// Slots `user_id` holds now.
    pub fn count(&self, user_id: &str) -> usize {
        self.inner.counts.lock().get(user_id).copied().unwrap_or(0)
    }

    /// Users holding at least one slot (the size of the map).
    pub fn tracked_users(&self) -> usize {
        self.inner.counts.lock().len()
    }
}

impl ConnectionSlot {
    /// Whose slot this is.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.inner.counts.lock();
        if let Some(held) = counts.get_mut(&self.user_id) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.remove(&self.user_id);
            }
        }
    }
}
