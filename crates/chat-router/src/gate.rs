//! [`Gated`]: a future that is polled again only after it woke its task.
//!
//! A task that waits on several things at once (`select!`) polls every branch each
//! time it wakes, whichever branch woke it. For a signal that almost never fires —
//! shutdown, a kill switch, a cancelled reply — that poll is pure cost, and not a
//! small one: polling `CancellationToken::cancelled()` takes the token's mutex and the
//! mutex of its `Notify`, and the drain's signals are one token shared by every
//! connection, so each outbound frame made both vCPUs trade those cache lines
//! (docs/BENCHMARKS.md, twenty-first pass).
//!
//! `Gated` polls the inner future with a waker of its own. A later poll of the task
//! costs a pointer comparison and one atomic load unless that waker fired: only then
//! is the inner future polled again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// What the inner future's waker reaches: a flag and the task to wake.
#[derive(Debug)]
struct Gate {
    /// Set when the inner future's waker fired: poll it again.
    woken: AtomicBool,
    /// The task polling the [`Gated`].
    task: AtomicWaker,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.task.wake();
    }
}

pin_project_lite::pin_project! {
    /// Polls `F` only when `F` asked to be polled; see the module docs.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Gated<F> {
        #[pin]
        inner: F,
        gate: Arc<Gate>,
        // The inner future's waker (it wakes `gate`).
        waker: Waker,
        // The task waker last registered in `gate`.
        task: Option<Waker>,
    }
}

impl<F: Future> Gated<F> {
    /// Wraps `inner`; the first poll polls it.
    pub fn new(inner: F) -> Self {
        let gate = Arc::new(Gate {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            inner,
            waker: Waker::from(gate.clone()),
            gate,
            task: None,
        }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let same_task = this.task.as_ref().is_some_and(|t| t.will_wake(cx.waker()));
        // Invariant: while `woken` is false, `gate` holds this task's waker (only a
        // wake takes it out, and a wake sets `woken` first).
        if same_task && !this.gate.woken.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        // Cleared before the waker is registered, never after: a wake in between sets
        // it again, and the inner poll below runs after that wake and sees what it
        // announced. Cleared after the registration, it could erase a wake that had
        // taken the waker out, leaving the next wake no task to wake.
        this.gate.woken.store(false, Ordering::SeqCst);
        this.gate.task.register(cx.waker());
        if !same_task {
            *this.task = Some(cx.waker().clone());
        }
        this.inner.poll(&mut Context::from_waker(this.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use futures::task::noop_waker;
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// Pending until `ready`, counting its polls and keeping the last waker.
    struct Probe {
        polls: Arc<AtomicUsize>,
        ready: Arc<AtomicBool>,
        waker: Arc<parking_lot::Mutex<Option<Waker>>>,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.ready.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    struct Counting(AtomicUsize);
    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_inner_future_is_polled_again_only_after_its_waker_fired() {
        let polls = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicBool::new(false));
        let inner_waker = Arc::new(parking_lot::Mutex::new(None));
        let mut gated = std::pin::pin!(Gated::new(Probe {
            polls: polls.clone(),
            ready: ready.clone(),
            waker: inner_waker.clone(),
        }));
        let task = Arc::new(Counting(AtomicUsize::new(0)));
        let task_waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&task_waker);

        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 1, "the first poll reaches it");
        for _ in 0..5 {
            assert!(gated.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1, "other wake-ups do not");

        // A wake that is not followed by readiness: polled once more, pending again.
        let waker = inner_waker.lock().take().unwrap();
        waker.wake_by_ref();
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "its waker wakes the task");
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 2);

        ready.store(true, Ordering::SeqCst);
        inner_waker.lock().take().unwrap().wake();
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            2,
            "registered again after a wake"
        );
        assert!(gated.as_mut().poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_new_task_waker_polls_the_inner_future_and_is_the_one_woken() {
        let polls = Arc::new(AtomicUsize::new(0));
        let inner_waker = Arc::new(parking_lot::Mutex::new(None));
        let mut gated = std::pin::pin!(Gated::new(Probe {
            polls: polls.clone(),
            ready: Arc::new(AtomicBool::new(false)),
            waker: inner_waker.clone(),
        }));
        let noop = noop_waker();
        assert!(gated
            .as_mut()
            .poll(&mut Context::from_waker(&noop))
            .is_pending());

        let task = Arc::new(Counting(AtomicUsize::new(0)));
        let task_waker = Waker::from(task.clone());
        assert!(gated
            .as_mut()
            .poll(&mut Context::from_waker(&task_waker))
            .is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 2, "a different task polls it");
        inner_waker.lock().take().unwrap().wake();
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "and is the one woken");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancellation_from_another_thread_ends_a_select_that_waits_on_others() {
        let token = CancellationToken::new();
        let cancel = token.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
        let (ack, mut acks) = tokio::sync::mpsc::channel::<u32>(8);
        let waiting = tokio::spawn(async move {
            let mut cancelled = std::pin::pin!(Gated::new(token.cancelled()));
            loop {
                tokio::select! {
                    biased;
                    () = &mut cancelled => return,
                    Some(n) = rx.recv() => {
                        let _ = ack.send(n).await;
                    }
                }
            }
        });
        // The task has woken for other branches (and not polled the token since).
        for i in 0..3 {
            tx.send(i).await.unwrap();
            assert_eq!(acks.recv().await, Some(i));
        }
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the cancellation reached the task")
            .unwrap();
    }

    #[tokio::test]
    async fn an_already_cancelled_token_is_seen_on_the_first_poll() {
        let token = CancellationToken::new();
        token.cancel();
        tokio::time::timeout(Duration::from_secs(5), Gated::new(token.cancelled()))
            .await
            .expect("ready at once");
    }
}
