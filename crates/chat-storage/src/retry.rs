//! Retries of transient storage failures: exponential backoff with jitter, a deadline
//! per attempt, and an observer hook so tests and metrics can count attempts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use crate::error::StoreError;

/// What one attempt of one operation did; given to the [`RetryPolicy`] observer.
#[derive(Debug)]
pub struct AttemptEvent<'a> {
    /// The operation's name (`append_message`, …).
    pub operation: &'static str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// `None` on success, else the error of this attempt.
    pub error: Option<&'a StoreError>,
}

/// Receives every attempt (for metrics and tests).
pub type AttemptObserver = Arc<dyn Fn(&AttemptEvent<'_>) + Send + Sync>;

/// How operations are retried: at most `max_attempts` attempts, each bounded by
/// `attempt_timeout`; only [`StoreError::is_transient`] errors are retried, after a
/// delay drawn from `[d/2, d]` where `d` doubles from `initial_backoff` up to
/// `max_backoff` (jitter spreads retries of many writers apart).
#[derive(Clone)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Base delay before the first retry.
    pub initial_backoff: Duration,
    /// Upper bound of one delay.
    pub max_backoff: Duration,
    /// Deadline of one attempt.
    pub attempt_timeout: Duration,
    observer: Option<AttemptObserver>,
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish()
    }
}

impl RetryPolicy {
    /// A policy from explicit values.
    pub fn new(
        max_attempts: u32,
        initial_backoff: Duration,
        max_backoff: Duration,
        attempt_timeout: Duration,
    ) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            initial_backoff,
            max_backoff: max_backoff.max(initial_backoff),
            attempt_timeout,
            observer: None,
        }
    }

    /// The policy of the `[storage]` configuration.
    pub fn from_settings(retry: &chat_config::RetrySettings, attempt_timeout: Duration) -> Self {
        Self::new(
            retry.max_attempts,
            retry.initial_backoff,
            retry.max_backoff,
            attempt_timeout,
        )
    }

    /// Calls `observer` after every attempt.
    pub fn with_observer(mut self, observer: AttemptObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The delay before retry number `retry` (1 = first retry), jittered.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(20);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let nanos = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX);
        if nanos < 2 {
            return base;
        }
        Duration::from_nanos(rand::rng().random_range(nanos / 2..=nanos))
    }

    /// Runs `attempt` until it succeeds, fails permanently, or attempts run out.
    /// Each attempt is cancelled at `attempt_timeout` ([`StoreError::Timeout`],
    /// transient).
    pub async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        mut attempt: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut number = 0u32;
        loop {
            number += 1;
            let result = match tokio::time::timeout(self.attempt_timeout, attempt()).await {
                Ok(result) => result,
                Err(_) => Err(StoreError::Timeout(self.attempt_timeout)),
            };
            if let Some(observer) = &self.observer {
                observer(&AttemptEvent {
                    operation,
                    attempt: number,
                    error: result.as_ref().err(),
                });
            }
            match result {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() && number < self.max_attempts => {
                    let delay = self.backoff(number);
                    tracing::warn!(operation, attempt = number, ?delay, %error, "transient storage error, retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn counting(policy: RetryPolicy) -> (RetryPolicy, Arc<AtomicU32>) {
        let count = Arc::new(AtomicU32::new(0));
        let seen = count.clone();
        let policy = policy.with_observer(Arc::new(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        }));
        (policy, count)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(
            4,
            Duration::from_millis(100),
            Duration::from_secs(1),
            Duration::from_secs(5),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let (policy, attempts) = counting(policy());
        let calls = AtomicU32::new(0);
        let result = policy
            .run("op", || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        Err(StoreError::Unavailable("down".into()))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 2);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_fail_after_one_attempt() {
        let (policy, attempts) = counting(policy());
        let result: Result<(), _> = policy
            .run("op", || async { Err(StoreError::DuplicateId("x".into())) })
            .await;
        assert!(matches!(result, Err(StoreError::DuplicateId(_))));
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded_and_each_times_out() {
        let (policy, attempts) = counting(policy());
        let start = tokio::time::Instant::now();
        let result: Result<(), _> = policy
            .run("op", || async {
                std::future::pending::<()>().await;
                Ok(())
            })
            .await;
        assert!(matches!(result, Err(StoreError::Timeout(_))));
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
        // 4 timeouts of 5 s plus at most 100 + 200 + 400 ms of backoff.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_secs(20));
        assert!(elapsed <= Duration::from_millis(20_700));
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_is_capped() {
        let p = policy();
        for _ in 0..100 {
            let first = p.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = p.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let capped = p.backoff(30);
            assert!(capped >= Duration::from_millis(500) && capped <= Duration::from_secs(1));
        }
    }
}
