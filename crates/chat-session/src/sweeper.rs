//! The periodic sweeper task: the only async code of the crate, kept out of the loom
//! builds. It owns nothing but an `Arc<SessionManager>` and stops when cancelled.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::manager::{SessionManager, SweepReport};
use crate::session::to_delta;

impl SessionManager {
    /// Starts the sweeper on `tracker`: every `sweep_interval` it runs
    /// [`SessionManager::sweep`] and hands each non-empty [`SweepReport`] to
    /// `on_sweep` (which persists the ends; it must not block — e.g. `try_send` into a
    /// bounded queue). The task stops when `cancel` fires; awaiting the tracker awaits
    /// it.
    ///
    /// Time: "now" is the wall-clock time at spawn plus the elapsed time of tokio's
    /// clock, so tests drive the sweeper with `tokio::time::pause()`/`advance`.
    pub fn spawn_sweeper<F>(
        self: Arc<Self>,
        cancel: CancellationToken,
        tracker: &TaskTracker,
        mut on_sweep: F,
    ) -> JoinHandle<()>
    where
        F: FnMut(SweepReport) + Send + 'static,
    {
        let interval = self.sweep_interval();
        tracker.spawn(async move {
            let clock = SweepClock::start();
            let mut ticker = tokio::time::interval_at(clock.base + interval, interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => break,
                    _ = ticker.tick() => {
                        let report = self.sweep(clock.now());
                        if !report.is_empty() {
                            on_sweep(report);
                        }
                    }
                }
            }
            tracing::debug!("session sweeper stopped");
        })
    }
}

/// Wall-clock time derived from tokio's (pausable) monotonic clock.
struct SweepClock {
    base: Instant,
    base_utc: DateTime<Utc>,
}

impl SweepClock {
    fn start() -> Self {
        Self {
            base: Instant::now(),
            base_utc: Utc::now(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.base_utc + to_delta(self.base.elapsed())
    }
}
