//! The synchronization primitives of the modelled core, switched to `loom` under
//! `cfg(loom)` so the same code runs in the loom models (`tests/loom_*.rs`).
//!
//! Only the lock is modelled: `Arc` stays `std::sync::Arc` in both builds; loom does
//! not need to see reference counting to explore the interleavings of the lock.
//!
//! The lock ignores poisoning: no critical section of this crate runs code that can
//! panic, and a slot guard dropped while unwinding must still be able to release its
//! slot, so the counts behind a poisoned lock stay valid and are used as they are.

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
