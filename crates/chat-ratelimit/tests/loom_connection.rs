//! Loom model of the connection limiter. Compiled only under `--cfg loom`.
#![cfg(loom)]

use std::num::NonZeroUsize;

use chat_ratelimit::ConnectionLimiter;
use loom::thread;

/// Two connections of one user race for the single slot while a third releases one:
/// never more slots than the limit, and the entry is gone once every slot is dropped.
#[test]
fn loom_connection_slots_never_exceed_limit_and_are_released() {
    loom::model(|| {
        let l = ConnectionLimiter::new(NonZeroUsize::MIN);
        let held = l.try_acquire("u").unwrap();
        let releaser = thread::spawn(move || drop(held));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                thread::spawn(move || {
                    let slot = l.try_acquire("u").ok();
                    assert!(l.count("u") <= 1);
                    slot.is_some()
                })
            })
            .collect();
        releaser.join().unwrap();
        let won = racers
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|w| *w)
            .count();
        assert!(won <= 2);
        assert_eq!(l.count("u"), 0);
        assert_eq!(l.tracked_users(), 0);
    });
}
