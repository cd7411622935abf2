//! The three deadlines of a reply, applied the same way around every provider.

use std::pin::Pin;
use std::time::Duration;

use chat_config::LlmSettings;
use futures::StreamExt;
use tokio::time::{Instant, Sleep};

use crate::{ChatRequest, EventStream, LlmError, LlmProvider, StreamEvent};

/// Deadlines of one reply (`llm.first_token_timeout`, `llm.idle_timeout`,
/// `llm.total_timeout`).
///
/// - `first_token`: from the call to the provider until the first text delta,
///   including connecting and waiting for response headers;
/// - `idle`: the longest gap between two delivered items after the first token
///   (provider keep-alive pings do not count as activity);
/// - `total`: from the call until `Done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Until the first text delta.
    pub first_token: Duration,
    /// Between two items after the first.
    pub idle: Duration,
    /// For the whole reply.
    pub total: Duration,
}

impl Deadlines {
    /// The deadlines configured in `[llm]`.
    pub fn from_settings(settings: &LlmSettings) -> Self {
        Self {
            first_token: settings.first_token_timeout,
            idle: settings.idle_timeout,
            total: settings.total_timeout,
        }
    }

    /// Calls `provider` and bounds both the call and the returned stream by these
    /// deadlines, all measured from now. On a missed deadline the stream yields one
    /// timeout error and drops the provider stream at once, which closes the HTTP
    /// connection so the provider stops generating.
    pub async fn stream(
        &self,
        provider: &dyn LlmProvider,
        request: ChatRequest,
    ) -> Result<EventStream, LlmError> {
        let started = Instant::now();
        let inner = match tokio::time::timeout_at(
            self.first_token_deadline(started),
            provider.stream(request),
        )
        .await
        {
            Ok(result) => result?,
            Err(_) => return Err(LlmError::FirstTokenTimeout),
        };
        Ok(self.wrap(inner, started))
    }

    /// Bounds an already-open stream whose request started at `started`.
    pub fn wrap(&self, inner: EventStream, started: Instant) -> EventStream {
        let state = Watch {
            inner: Some(inner),
            deadlines: *self,
            started,
            first_token_seen: false,
            timer: Box::pin(tokio::time::sleep_until(self.first_token_deadline(started))),
        };
        Box::pin(futures::stream::unfold(state, Watch::next))
    }

    /// When a request started at `started` must have its first token: the first-token
    /// or the total deadline, whichever comes first.
    fn first_token_deadline(&self, started: Instant) -> Instant {
        started + self.first_token.min(self.total)
    }
}

/// The state of one watched stream.
struct Watch {
    /// `None` once the stream finished, failed or timed out: it is dropped right away.
    inner: Option<EventStream>,
    deadlines: Deadlines,
    started: Instant,
    first_token_seen: bool,
    /// One timer for the whole reply, never set later than the deadline in force.
    /// The idle deadline moves on with every chunk; moving the timer with it would
    /// take the runtime's timer wheel twice per chunk (a few per cent of the relay's
    /// CPU, docs/BENCHMARKS.md, twentieth pass). A timer that fires before the
    /// deadline in force is set to it then, at most once per idle period.
    timer: Pin<Box<Sleep>>,
}

impl Watch {
    /// The deadline in force for the next item, and the error its passing means;
    /// `now` is when the item was asked for (the idle deadline counts from there).
    fn deadline(&self, now: Instant) -> (Instant, LlmError) {
        let total_deadline = self.started + self.deadlines.total;
        let (phase_deadline, phase_error) = if self.first_token_seen {
            (now + self.deadlines.idle, LlmError::IdleTimeout)
        } else {
            (
                self.started + self.deadlines.first_token,
                LlmError::FirstTokenTimeout,
            )
        };
        if total_deadline <= phase_deadline {
            (total_deadline, LlmError::TotalTimeout)
        } else {
            (phase_deadline, phase_error)
        }
    }

    async fn next(mut self) -> Option<(Result<StreamEvent, LlmError>, Self)> {
        let (deadline, error) = self.deadline(Instant::now());
        let Self { inner, timer, .. } = &mut self;
        let inner = inner.as_mut()?;
        if deadline < timer.deadline() {
            // Earlier than the timer (the first token switched to the idle deadline).
            timer.as_mut().reset(deadline);
        }
        let item = loop {
            tokio::select! {
                biased;
                item = inner.next() => break Some(item),
                () = timer.as_mut() => {
                    if timer.deadline() >= deadline {
                        break None;
                    }
                    timer.as_mut().reset(deadline);
                }
            }
        };
        match item {
            Some(Some(Ok(event))) => {
                match &event {
                    StreamEvent::Delta(_) => self.first_token_seen = true,
                    StreamEvent::Done => self.inner = None,
                    StreamEvent::Usage(_) => {}
                }
                Some((Ok(event), self))
            }
            Some(Some(Err(e))) => {
                self.inner = None;
                Some((Err(e), self))
            }
            Some(None) => {
                self.inner = None;
                None
            }
            None => {
                // Dropping the provider stream here (not when the caller gets around to
                // dropping ours) closes the connection at the deadline.
                self.inner = None;
                Some((Err(error), self))
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use futures::stream;

    use super::*;
    use crate::MockLlmProvider;

    fn deadlines() -> Deadlines {
        Deadlines {
            first_token: Duration::from_secs(5),
            idle: Duration::from_secs(2),
            total: Duration::from_secs(20),
        }
    }

    /// A stream that yields the given items, each after its delay, then hangs forever.
    fn scripted(items: Vec<(u64, StreamEvent)>) -> EventStream {
        Box::pin(
            stream::iter(items)
                .then(|(ms, ev)| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(ev)
                })
                .chain(stream::pending()),
        )
    }

    fn provider_with(mut items: Vec<(u64, StreamEvent)>) -> MockLlmProvider {
        let mut p = MockLlmProvider::new();
        p.expect_stream()
            .times(1)
            .returning(move |_| Ok(scripted(std::mem::take(&mut items))));
        p
    }

    async fn collect(s: EventStream) -> Vec<Result<StreamEvent, LlmError>> {
        s.collect().await
    }

    #[tokio::test(start_paused = true)]
    async fn first_token_deadline_counts_from_the_call() {
        let p = provider_with(vec![(5_001, StreamEvent::Delta("late".into()))]);
        let t0 = Instant::now();
        let s = deadlines()
            .stream(&p, ChatRequest::single("hi"))
            .await
            .unwrap();
        let out = collect(s).await;
        assert_eq!(out, vec![Err(LlmError::FirstTokenTimeout)]);
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_misses_the_first_token_deadline() {
        let mut p = MockLlmProvider::new();
        p.expect_stream()
            .returning(|_| Ok(Box::pin(stream::pending::<Result<StreamEvent, LlmError>>())));
        let t0 = Instant::now();
        let out = collect(
            deadlines()
                .stream(&p, ChatRequest::single("hi"))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(out, vec![Err(LlmError::FirstTokenTimeout)]);
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_deadline_applies_between_chunks() {
        let p = provider_with(vec![
            (100, StreamEvent::Delta("a".into())),
            (1_900, StreamEvent::Delta("b".into())),
            (2_001, StreamEvent::Delta("c".into())),
        ]);
        let t0 = Instant::now();
        let out = collect(
            deadlines()
                .stream(&p, ChatRequest::single("hi"))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            out,
            vec![
                Ok(StreamEvent::Delta("a".into())),
                Ok(StreamEvent::Delta("b".into())),
                Err(LlmError::IdleTimeout)
            ]
        );
        assert_eq!(t0.elapsed(), Duration::from_millis(100 + 1_900 + 2_000));
    }

    #[tokio::test(start_paused = true)]
    async fn chunks_within_the_idle_period_leave_the_timer_alone() {
        let items = (0..6)
            .map(|i| (10, StreamEvent::Delta(i.to_string())))
            .collect();
        let started = Instant::now();
        let mut watch = Watch {
            inner: Some(scripted(items)),
            deadlines: deadlines(),
            started,
            first_token_seen: false,
            timer: Box::pin(tokio::time::sleep_until(started + Duration::from_secs(5))),
        };
        let next = |watch: Watch| async move {
            let (item, watch) = watch.next().await.unwrap();
            assert!(item.is_ok(), "{item:?}");
            watch
        };
        watch = next(watch).await;
        assert_eq!(watch.timer.deadline(), started + Duration::from_secs(5));
        // After the first token the idle deadline (2 s) is the earlier one: set once.
        watch = next(watch).await;
        let armed = watch.timer.deadline();
        assert_eq!(
            armed,
            started + Duration::from_millis(10) + Duration::from_secs(2)
        );
        for _ in 0..4 {
            watch = next(watch).await;
        }
        assert_eq!(watch.timer.deadline(), armed);
        // Silence: the timer fires early, moves to the deadline in force, and the
        // reply ends exactly one idle period after the last chunk.
        let (item, _) = watch.next().await.unwrap();
        assert_eq!(item, Err(LlmError::IdleTimeout));
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(60) + Duration::from_secs(2)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn total_deadline_cuts_a_steady_trickle() {
        let items = (0..100)
            .map(|i| (1_100, StreamEvent::Delta(i.to_string())))
            .collect();
        let p = provider_with(items);
        let t0 = Instant::now();
        let out = collect(
            deadlines()
                .stream(&p, ChatRequest::single("hi"))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            out.len(),
            19,
            "18 deltas (at 1.1 s … 19.8 s) then the timeout"
        );
        assert_eq!(out.last(), Some(&Err(LlmError::TotalTimeout)));
        assert_eq!(t0.elapsed(), Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_reply_passes_through_and_ends_after_done() {
        let p = provider_with(vec![
            (10, StreamEvent::Delta("hi".into())),
            (10, StreamEvent::Usage(crate::Usage::estimate(4, 2))),
            (10, StreamEvent::Done),
        ]);
        let out = collect(
            deadlines()
                .stream(&p, ChatRequest::single("hi"))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(out.len(), 3);
        assert_eq!(out.last(), Some(&Ok(StreamEvent::Done)));
    }
}
