//! Draining every WebSocket on shutdown (READINESS #15).
//!
//! axum's graceful shutdown stops accepting and waits for HTTP requests, but an
//! upgraded socket is no longer a request: axum hands it to a detached task it does
//! not track. [`Drain`] tracks every connection itself: the handshake takes a
//! [`DrainGuard`] (a task-tracker token) before upgrading, the connection task holds it
//! until its last byte, and [`Drain::drain`] therefore knows exactly when every socket
//! is gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

/// The part of the deadline kept back for force-aborting connections that did not
/// finish their close handshake, so that [`Drain::drain`] as a whole keeps its
/// deadline. Aborting only drops futures, which takes microseconds.
const ABORT_RESERVE_MAX: Duration = Duration::from_millis(500);

/// Tracks the live WebSocket connections and closes them on shutdown. Cheap to clone
/// (shared state).
#[derive(Debug, Clone, Default)]
pub struct Drain {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Set once shutdown begins; new upgrades are refused with 503 from then on.
    draining: AtomicBool,
    /// One token per connection (handshake to last byte).
    tracker: TaskTracker,
    /// Asks every connection to send close 1001 and finish.
    close: CancellationToken,
    /// Drops every connection that is still running at the deadline.
    abort: CancellationToken,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Every connection finished its close handshake before the deadline.
    pub graceful: bool,
    /// Connections that had to be force-aborted.
    pub aborted: usize,
}

/// A connection's membership in the [`Drain`]: while it exists the connection counts
/// as live. Dropping it (on every path: normal close, failed upgrade, panic, abort)
/// removes the connection.
#[derive(Debug)]
pub struct DrainGuard {
    _token: TaskTrackerToken,
    close: CancellationToken,
    abort: CancellationToken,
}

impl DrainGuard {
    /// Cancelled when the connection must send close 1001 and finish.
    pub fn close_signal(&self) -> &CancellationToken {
        &self.close
    }

    /// Cancelled when the connection must stop at once (the drain deadline passed).
    pub fn abort_signal(&self) -> &CancellationToken {
        &self.abort
    }
}

impl Drain {
    /// A drain with no connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// True once shutdown began: new upgrades get 503.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Refuses new upgrades from now on (503) without touching open sockets. The
    /// server calls it as soon as a shutdown signal arrives, before [`Drain::drain`].
    pub fn start_drain(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// Connections counted right now (from a handshake that passed the checks to the
    /// end of its task).
    pub fn connection_count(&self) -> usize {
        self.inner.tracker.len()
    }

    /// Registers a new connection, or `None` when draining. The guard is taken before
    /// the draining flag is re-read, so a connection is either refused or counted:
    /// none can slip past a drain that already started waiting.
    ///
    /// Its signals are child tokens of the drain's: cancelled with them, but each a
    /// token of its own. A connection's loop checks both on every wake-up, and a
    /// token's check takes its lock: clones of one token would have every connection
    /// on every worker take the same lock, many times a millisecond under load.
    pub fn enter(&self) -> Option<DrainGuard> {
        let guard = DrainGuard {
            _token: self.inner.tracker.token(),
            close: self.inner.close.child_token(),
            abort: self.inner.abort.child_token(),
        };
        if self.is_draining() {
            return None;
        }
        Some(guard)
    }

    /// Shuts every socket down within `deadline`: refuses new upgrades, asks every
    /// connection to send close 1001 "Server shutting down" and waits for all of them;
    /// connections still running shortly before the deadline are aborted (their
    /// futures dropped, which releases their slot and router registration).
    pub async fn drain(&self, deadline: Duration) -> DrainOutcome {
        let started = tokio::time::Instant::now();
        self.start_drain();
        self.inner.close.cancel();
        self.inner.tracker.close();
        let reserve = (deadline / 10).min(ABORT_RESERVE_MAX);
        let graceful_until = started + deadline.saturating_sub(reserve);
        if tokio::time::timeout_at(graceful_until, self.inner.tracker.wait())
            .await
            .is_ok()
        {
            return DrainOutcome {
                graceful: true,
                aborted: 0,
            };
        }
        let aborted = self.inner.tracker.len();
        tracing::warn!(
            aborted,
            "WebSocket connections did not close in time; aborting them"
        );
        self.inner.abort.cancel();
        let _ = tokio::time::timeout_at(started + deadline, self.inner.tracker.wait()).await;
        DrainOutcome {
            graceful: false,
            aborted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_connection_is_admitted_once_draining() {
        let drain = Drain::new();
        let guard = drain.enter();
        assert!(guard.is_some());
        assert_eq!(drain.connection_count(), 1);
        drain.start_drain();
        assert!(drain.enter().is_none());
        assert_eq!(
            drain.connection_count(),
            1,
            "the refused one is not counted"
        );
        drop(guard);
        assert_eq!(drain.connection_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_aborts_connections_that_ignore_the_close_signal() {
        let drain = Drain::new();
        let guard = drain.enter();
        let stubborn = tokio::spawn(async move {
            let Some(guard) = guard else { return false };
            // Ignores the close signal; only the abort signal ends it.
            guard.abort_signal().cancelled().await;
            drop(guard);
            true
        });
        let outcome = drain.drain(Duration::from_secs(10)).await;
        assert_eq!(
            outcome,
            DrainOutcome {
                graceful: false,
                aborted: 1
            }
        );
        assert!(matches!(stubborn.await, Ok(true)));
        assert_eq!(drain.connection_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn each_connection_has_signals_of_its_own_that_the_drain_cancels() {
        let drain = Drain::new();
        let (one, other) = (drain.enter().unwrap(), drain.enter().unwrap());
        one.close_signal().cancel();
        one.abort_signal().cancel();
        assert!(
            !other.close_signal().is_cancelled(),
            "one lock per connection"
        );
        assert!(!other.abort_signal().is_cancelled());
        let polite = tokio::spawn(async move {
            other.close_signal().cancelled().await;
        });
        drop(one);
        let outcome = drain.drain(Duration::from_secs(10)).await;
        assert!(outcome.graceful, "the drain's close reached the other one");
        assert!(polite.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn drain_is_graceful_when_connections_close() {
        let drain = Drain::new();
        let guard = drain.enter();
        let polite = tokio::spawn(async move {
            let Some(guard) = guard else { return };
            guard.close_signal().cancelled().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        });
        let outcome = drain.drain(Duration::from_secs(10)).await;
        assert!(outcome.graceful);
        assert!(polite.await.is_ok());
    }
}
