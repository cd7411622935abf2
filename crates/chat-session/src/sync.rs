//! The synchronization primitives of the modelled core, switched to `loom` under
//! `cfg(loom)` so the same code runs in the loom models (`tests/loom_*.rs`).
//!
//! Only the lock is modelled: `Arc` stays `std::sync::Arc` in both builds so the public
//! API (`Arc<Session>`) does not change with the cfg; loom does not need to see
//! reference counting to explore the interleavings of the lock.
//!
//! The lock ignores poisoning: every critical section of this crate leaves the state
//! consistent before anything that could panic runs (the only foreign code run under a
//! lock is the closure of `Session::if_ai_may_speak`, which is documented not to panic
//! or block), so the data behind a poisoned lock is still valid and refusing to serve
//! it would turn one panic into a dead session.

#[cfg(loom)]
use loom::sync as imp;
#[cfg(not(loom))]
use std::sync as imp;

pub(crate) use imp::MutexGuard;

/// A mutual-exclusion lock whose `lock` never fails (see the module docs on poisoning).
#[derive(Debug)]
pub(crate) struct Mutex<T>(imp::Mutex<T>);

impl<T> Mutex<T> {
    /// Wraps `value`.
    pub(crate) fn new(value: T) -> Self {
        Self(imp::Mutex::new(value))
    }

    /// Blocks until the lock is held.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
