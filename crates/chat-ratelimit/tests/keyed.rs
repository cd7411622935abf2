//! Behaviour of the keyed GCRA limiters: quotas, retry-after, the key cap and cleanup
//! (READINESS #11), the settings bundle and its cleanup task.
#![cfg(not(loom))]

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use chat_config::RateLimitSettings;
use chat_ratelimit::{KeyedLimiter, RateLimitError, RateLimited, RateLimiters};
use governor::clock::FakeRelativeClock;
use governor::state::InMemoryState;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn nz32(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn nzu(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

fn limiter(
    per_minute: u32,
    max_keys: usize,
) -> (KeyedLimiter<String, FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (
        KeyedLimiter::with_clock(nz32(per_minute), nzu(max_keys), clock.clone()),
        clock,
    )
}

fn key(s: &str) -> String {
    s.to_owned()
}

#[test]
fn allows_the_per_minute_burst_then_limits_with_retry_after() {
    let (l, _clock) = limiter(60, 100);
    for _ in 0..60 {
        l.check(&key("u")).unwrap();
    }
    let limited = l.check(&key("u")).unwrap_err();
    // 60/min refills one request per second.
    assert_eq!(limited.retry_after, Duration::from_secs(1));
    assert_eq!(limited.retry_after_ms(), 1000);
    assert_eq!(limited.retry_after_secs(), 1);
}

#[test]
fn quota_refills_over_time() {
    let (l, clock) = limiter(60, 100);
    for _ in 0..60 {
        l.check(&key("u")).unwrap();
    }
    assert!(l.check(&key("u")).is_err());
    clock.advance(Duration::from_millis(400));
    assert_eq!(l.check(&key("u")).unwrap_err().retry_after_ms(), 600);
    clock.advance(Duration::from_millis(600));
    l.check(&key("u")).unwrap();
    assert!(l.check(&key("u")).is_err());
}

#[test]
fn keys_are_limited_independently() {
    let (l, _clock) = limiter(2, 100);
    l.check(&key("a")).unwrap();
    l.check(&key("a")).unwrap();
    assert!(l.check(&key("a")).is_err());
    l.check(&key("b")).unwrap();
    assert_eq!(l.len(), 2);
}

#[test]
fn retry_after_is_rounded_up_and_never_zero() {
    let tiny = RateLimited {
        retry_after: Duration::from_nanos(1),
    };
    assert_eq!(tiny.retry_after_ms(), 1);
    assert_eq!(tiny.retry_after_secs(), 1);
    let odd = RateLimited {
        retry_after: Duration::from_micros(1_500),
    };
    assert_eq!(odd.retry_after_ms(), 2);
    let long = RateLimited {
        retry_after: Duration::from_millis(2_001),
    };
    assert_eq!(long.retry_after_secs(), 3);
    assert_eq!(long.to_string(), "rate limited; retry after 2001 ms");
    assert_eq!(long.wire_code(), chat_protocol::ErrorCode::TooManyRequests);
    assert_eq!(long.api_code().http_status(), 429);
}

#[test]
fn limited_retry_after_is_at_least_one_ms_even_at_the_boundary() {
    let (l, clock) = limiter(60, 10);
    for _ in 0..60 {
        l.check(&key("hot")).unwrap();
    }
    // 1 µs before the next request would be allowed: still reported as 1 ms.
    clock.advance(Duration::from_micros(999_999));
    let e = l.check(&key("hot")).unwrap_err();
    assert_eq!(e.retry_after, Duration::from_millis(1));
    assert_eq!(e.retry_after_ms(), 1);
}

#[test]
fn production_issue_11_cleanup_method() {
    let (l, clock) = limiter(100, 1_000);
    for i in 0..50 {
        l.check(&format!("idle-{i}")).unwrap();
    }
    assert_eq!(l.len(), 50);
    // Nothing is dropped while the keys' state still matters.
    assert_eq!(l.cleanup(), 0);
    assert_eq!(l.len(), 50);
    // Two minutes later they are indistinguishable from fresh keys: dropped.
    clock.advance(Duration::from_secs(120));
    l.check(&key("recent")).unwrap();
    assert_eq!(l.cleanup(), 50);
    assert_eq!(l.len(), 1, "a recently used key is kept");
    // A key that exhausted its quota is kept until its state has refilled.
    for _ in 0..100 {
        l.check(&key("busy")).unwrap();
    }
    clock.advance(Duration::from_secs(30));
    l.cleanup();
    assert!(l.check(&key("busy")).is_ok(), "half the quota refilled");
    for _ in 0..60 {
        let _ = l.check(&key("busy"));
    }
    assert!(l.check(&key("busy")).is_err(), "state survived cleanup");
    clock.advance(Duration::from_secs(300));
    l.cleanup();
    assert!(l.is_empty());
}

#[test]
fn production_issue_11_memory_growth() {
    // Below the cap: 10 000 distinct keys are tracked, then all dropped by cleanup.
    let (l, clock) = limiter(100, 100_000);
    for i in 0..10_000 {
        l.check(&format!("client-{i}")).unwrap();
    }
    assert_eq!(l.len(), 10_000);
    clock.advance(Duration::from_secs(120));
    assert_eq!(l.cleanup(), 10_000);
    assert_eq!(l.len(), 0);

    // Above the cap: memory stops growing at the cap; new keys are limited, known keys
    // keep working; after cleanup there is room again.
    let (capped, clock) = limiter(100, 1_000);
    let mut refused = 0;
    for i in 0..10_000 {
        match capped.check(&format!("client-{i}")) {
            Ok(()) => {}
            Err(e) => {
                assert!(e.retry_after >= Duration::from_millis(1));
                refused += 1;
            }
        }
    }
    assert_eq!(capped.len(), 1_000);
    assert_eq!(capped.max_keys(), 1_000);
    assert_eq!(refused, 9_000);
    capped.check(&key("client-0")).unwrap();
    assert!(capped.check(&key("newcomer")).is_err());
    clock.advance(Duration::from_secs(120));
    capped.cleanup();
    assert_eq!(capped.len(), 0);
    capped.check(&key("newcomer")).unwrap();
    assert_eq!(capped.len(), 1);
}

#[test]
fn keyed_entry_size_is_as_documented() {
    // The table part of one entry (key + 8-byte state), as documented in `keyed`.
    assert_eq!(std::mem::size_of::<(String, InMemoryState)>(), 32);
    assert_eq!(std::mem::size_of::<(IpAddr, InMemoryState)>(), 32);
}

#[test]
fn bundle_uses_configured_quotas() {
    let limiters = RateLimiters::from_settings(&RateLimitSettings::default()).unwrap();
    assert_eq!(limiters.user_messages.per_minute(), 100);
    assert_eq!(limiters.admin.per_minute(), 20);
    assert_eq!(limiters.public.per_minute(), 60);
    assert_eq!(limiters.user_messages.max_keys(), 100_000);
    assert_eq!(limiters.cleanup_interval(), Duration::from_secs(60));
    for _ in 0..20 {
        limiters.admin.check(&key("admin")).unwrap();
    }
    let limited = limiters.admin.check(&key("admin")).unwrap_err();
    assert!(limited.retry_after > Duration::from_secs(2));
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    limiters.public.check(&ip).unwrap();
    assert_eq!(limiters.public.len(), 1);
}

#[test]
fn zero_settings_are_refused_naming_the_field() {
    let s = RateLimitSettings {
        admin_requests_per_minute: 0,
        ..RateLimitSettings::default()
    };
    assert_eq!(
        RateLimiters::from_settings(&s).unwrap_err(),
        RateLimitError::Zero {
            field: "rate_limits.admin_requests_per_minute"
        }
    );
    let s = RateLimitSettings {
        max_tracked_keys: 0,
        ..RateLimitSettings::default()
    };
    assert_eq!(
        RateLimiters::from_settings(&s).unwrap_err().to_string(),
        "rate_limits.max_tracked_keys must be greater than 0"
    );
    let s = RateLimitSettings {
        cleanup_interval: Duration::ZERO,
        ..RateLimitSettings::default()
    };
    assert!(RateLimiters::from_settings(&s).is_err());
}

#[tokio::test(start_paused = true)]
async fn cleanup_task_drops_idle_keys_every_interval_and_stops_on_cancel() {
    let clock = FakeRelativeClock::default();
    let settings = RateLimitSettings::default();
    let limiters =
        Arc::new(RateLimiters::from_settings_with_clock(&settings, clock.clone()).unwrap());
    for i in 0..100 {
        limiters.user_messages.check(&format!("u{i}")).unwrap();
        limiters.admin.check(&format!("a{i}")).unwrap();
        limiters
            .public
            .check(&IpAddr::from([10, 0, 0, i as u8]))
            .unwrap();
    }
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    limiters.clone().spawn_cleanup(cancel.clone(), &tracker);

    clock.advance(Duration::from_secs(600));
    tokio::time::sleep(settings.cleanup_interval / 2).await;
    assert_eq!(
        limiters.user_messages.len(),
        100,
        "no cleanup before the interval"
    );
    tokio::time::sleep(settings.cleanup_interval).await;
    assert!(limiters.user_messages.is_empty());
    assert!(limiters.admin.is_empty());
    assert!(limiters.public.is_empty());

    cancel.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_millis(10), tracker.wait())
        .await
        .expect("cleanup task did not stop");
    assert_eq!(
        Arc::strong_count(&limiters),
        1,
        "the task released the limiters"
    );
}
