//! The periodic cleanup task: the only async code of the crate, kept out of loom
//! builds.

use std::sync::Arc;

use governor::clock::Clock;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limiters::RateLimiters;

impl<C> RateLimiters<C>
where
    C: Clock + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    /// Starts the cleanup task on `tracker`: every `cleanup_interval` it drops idle
    /// keys from all limiters (READINESS #11: the legacy cleanup never ran). The task
    /// stops when `cancel` fires; awaiting the tracker awaits it.
    pub fn spawn_cleanup(
        self: Arc<Self>,
        cancel: CancellationToken,
        tracker: &TaskTracker,
    ) -> JoinHandle<()> {
        let interval = self.cleanup_interval();
        tracker.spawn(async move {
            let start = tokio::time::Instant::now() + interval;
            let mut ticker = tokio::time::interval_at(start, interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => break,
                    _ = ticker.tick() => {
                        let dropped = self.cleanup();
                        if dropped > 0 {
                            tracing::debug!(dropped, "rate limiter cleanup");
                        }
                    }
                }
            }
            tracing::debug!("rate limiter cleanup stopped");
        })
    }
}
