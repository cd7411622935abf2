//! Behaviour of the per-user connection limiter and its RAII slots.
#![cfg(not(loom))]

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use chat_ratelimit::{ConnectionLimiter, TooManyConnections, DEFAULT_MAX_CONNECTIONS_PER_USER};

fn limiter(limit: usize) -> ConnectionLimiter {
    ConnectionLimiter::new(NonZeroUsize::new(limit).unwrap_or(NonZeroUsize::MIN))
}

#[test]
fn default_limit_is_ten() {
    let l = ConnectionLimiter::default();
    assert_eq!(l.limit(), 10);
    assert_eq!(DEFAULT_MAX_CONNECTIONS_PER_USER, 10);
    let slots: Vec<_> = (0..10).map(|_| l.try_acquire("u").unwrap()).collect();
    assert_eq!(
        l.try_acquire("u").unwrap_err(),
        TooManyConnections { limit: 10 }
    );
    drop(slots);
}

#[test]
fn slots_up_to_the_limit_then_refused() {
    let l = limiter(2);
    let a = l.try_acquire("u").unwrap();
    let _b = l.try_acquire("u").unwrap();
    assert_eq!(l.count("u"), 2);
    let err = l.try_acquire("u").unwrap_err();
    assert_eq!(err, TooManyConnections { limit: 2 });
    assert_eq!(err.to_string(), "too many concurrent connections (limit 2)");
    assert_eq!(err.api_code().http_status(), 429);
    assert_eq!(a.user_id(), "u");
    // Other users are unaffected.
    let _c = l.try_acquire("v").unwrap();
    drop(a);
    assert_eq!(l.count("u"), 1);
    let _d = l.try_acquire("u").unwrap();
}

#[test]
fn releasing_the_last_slot_removes_the_user_entry() {
    let l = limiter(3);
    let slots: Vec<_> = (0..100)
        .map(|i| l.try_acquire(&format!("user-{i}")).unwrap())
        .collect();
    assert_eq!(l.tracked_users(), 100);
    drop(slots);
    assert_eq!(l.tracked_users(), 0);
    assert_eq!(l.count("user-0"), 0);
}

#[test]
fn slot_is_released_when_a_handler_panics() {
    let l = limiter(1);
    let l2 = l.clone();
    let result = thread::spawn(move || {
        let _slot = l2.try_acquire("u").unwrap();
        panic!("handler crashed");
    })
    .join();
    assert!(result.is_err());
    assert_eq!(l.count("u"), 0);
    assert_eq!(l.tracked_users(), 0);
    let _again = l.try_acquire("u").unwrap();
}

#[test]
fn slot_is_released_on_early_error_return() {
    fn failing_upgrade(l: &ConnectionLimiter) -> Result<(), &'static str> {
        let _slot = l.try_acquire("u").map_err(|_| "limited")?;
        Err("upgrade failed")
    }
    let l = limiter(1);
    assert_eq!(failing_upgrade(&l), Err("upgrade failed"));
    assert_eq!(l.count("u"), 0);
}

#[test]
fn concurrent_acquires_never_exceed_the_limit() {
    let l = limiter(3);
    let holding = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (l, holding, max_seen, start) =
                (l.clone(), holding.clone(), max_seen.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for _ in 0..2_000 {
                    if let Ok(slot) = l.try_acquire("u") {
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        max_seen.fetch_max(now, Ordering::SeqCst);
                        holding.fetch_sub(1, Ordering::SeqCst);
                        drop(slot);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(max_seen.load(Ordering::SeqCst) <= 3);
    assert_eq!(l.count("u"), 0);
    assert_eq!(l.tracked_users(), 0);
}
