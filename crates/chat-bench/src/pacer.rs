//! Sub-millisecond pacing for the load shapes.
//!
//! tokio's timer wheel has a resolution of one millisecond: every `sleep` due within
//! the same millisecond fires in the same tick. A "steady" load whose N streams are
//! spread over an interval by `tokio::time::sleep` is therefore not spread at all
//! below a millisecond: at 100 streams × one chunk per 10 ms, the provider emitted
//! its chunks in bursts of ten at every tick, and what the per-chunk and TTFT
//! measurements called steady was a train of small bursts, each chunk queueing
//! behind the others of its tick. The pacer keeps the deadlines on one thread that
//! waits on a condition variable (a futex with a timeout: the kernel's high-resolution
//! timer, tens of microseconds of slack), so a deadline fires at its own time and
//! wakes the waiting task.
//!
//! The thread is owned: it stops and is joined when the last [`Pacer`] handle is
//! dropped, and a waiter whose pacer stopped returns at once.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::BenchError;

/// One pending deadline.
struct Due {
    at: Instant,
    /// Insertion order, so equal deadlines fire first come first served.
    order: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest deadline goes first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

#[derive(Default)]
struct State {
    due: BinaryHeap<Due>,
    next_order: u64,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// Stops and joins the thread when the last handle goes.
struct Owner {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.changed.notify_one();
        if let Some(thread) = self.thread.take() {
            // The thread only waits on the condition variable; it exits at once.
            let _ = thread.join();
        }
    }
}

/// A handle on the pacing thread; clones share it.
#[derive(Clone)]
pub struct Pacer {
    owner: Arc<Owner>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("pending", &self.owner.shared.state.lock().due.len())
            .finish()
    }
}

impl Pacer {
    /// Starts the pacing thread.
    ///
    /// # Errors
    /// The OS refused a thread.
    pub fn start() -> Result<Self, BenchError> {
        let shared = Arc::new(Shared::default());
        let run = shared.clone();
        let thread = std::thread::Builder::new()
            .name("bench-pacer".to_owned())
            .spawn(move || pace(&run))?;
        Ok(Self {
            owner: Arc::new(Owner {
                shared,
                thread: Some(thread),
            }),
        })
    }

    /// Waits until `at` (returns at once when it has passed or the pacer stopped).
    pub async fn until(&self, at: Instant) {
        if at <= Instant::now() {
            return;
        }
        let (wake, woken) = oneshot::channel();
        {
            let shared = &self.owner.shared;
            let mut state = shared.state.lock();
            if state.stop {
                return;
            }
            let order = state.next_order;
            state.next_order += 1;
            let earliest = state.due.peek().is_none_or(|first| at < first.at);
            state.due.push(Due { at, order, wake });
            if earliest {
                shared.changed.notify_one();
            }
        }
        // An error means the pacer stopped: nothing is left to wait for.
        let _ = woken.await;
    }
}

/// The thread: fires every due deadline, then sleeps until the next one or a change.
fn pace(shared: &Shared) {
    let mut state = shared.state.lock();
    loop {
        if state.stop {
            // Dropping the senders wakes every waiter.
            state.due.clear();
            return;
        }
        let now = Instant::now();
        while state.due.peek().is_some_and(|first| first.at <= now) {
            if let Some(due) = state.due.pop() {
                // The waiter may have given up (its task was cancelled): nothing to do.
                let _ = due.wake.send(());
            }
        }
        match state.due.peek().map(|first| first.at) {
            Some(next) => {
                shared.changed.wait_until(&mut state, next);
            }
            None => shared.changed.wait(&mut state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn deadlines_below_a_millisecond_apart_all_fire_none_early() {
        let pacer = Pacer::start().unwrap();
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        // Spread below the timer wheel's millisecond: 20 deadlines 100 µs apart,
        // submitted in reverse order.
        for i in (0..20u32).rev() {
            let pacer = pacer.clone();
            let at = start + Duration::from_millis(20) + Duration::from_micros(100) * i;
            tasks.spawn(async move {
                pacer.until(at).await;
                (i, at, Instant::now())
            });
        }
        let mut fired = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            fired.push(joined.unwrap());
        }
        for (i, at, woke) in &fired {
            assert!(woke >= at, "deadline {i} fired early");
        }
        assert_eq!(fired.len(), 20);
    }

    #[tokio::test]
    async fn a_past_deadline_returns_at_once_and_dropping_stops_the_thread() {
        let pacer = Pacer::start().unwrap();
        pacer.until(Instant::now() - Duration::from_millis(1)).await;
        let far = pacer.clone();
        let waiter =
            tokio::spawn(
                async move { far.until(Instant::now() + Duration::from_secs(3600)).await },
            );
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The waiter holds a handle, so the thread lives on; stop it from the state.
        pacer.owner.shared.state.lock().stop = true;
        pacer.owner.shared.changed.notify_one();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("a stopped pacer releases its waiters")
            .unwrap();
        drop(pacer);
    }
}
