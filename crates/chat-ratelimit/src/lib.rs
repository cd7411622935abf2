//! Keyed GCRA rate limiters (user messages, admin and public endpoints) with bounded
//! memory, and the per-user WebSocket connection limiter whose slots are RAII guards.
//!
//! - [`KeyedLimiter`]: one governor GCRA state per key, a cap on tracked keys (new keys
//!   beyond it are limited rather than growing memory; see the [`keyed`] module for the
//!   per-key cost) and [`KeyedLimiter::cleanup`] for idle keys.
//! - [`RateLimiters`]: the three limiters of the service from
//!   [`chat_config::RateLimitSettings`], with an owned, cancellable cleanup task
//!   (`RateLimiters::spawn_cleanup`).
//! - [`ConnectionLimiter`]: concurrent connections per user; a [`ConnectionSlot`] is
//!   released when dropped, on every path.
//!
//! It knows nothing about HTTP or WebSocket: callers map [`RateLimited`] and
//! [`TooManyConnections`] to 429 / `TOO_MANY_REQUESTS` with the retry-after they carry.
//!
//! # Cost of one check
//!
//! About 60 ns per [`KeyedLimiter::check`] (criterion, `benches/check.rs`; the table
//! is in the [`keyed`] module docs).
//!
//! No doctests on purpose: in the loom run (`RUSTFLAGS="--cfg loom"`) they would link
//! the loom build of this crate, whose locks only work inside `loom::model`. Examples
//! live in `tests/`.

#[cfg(not(loom))]
mod cleanup;
mod connection;
mod error;
pub mod keyed;
mod limiters;
mod sync;

pub use connection::{ConnectionLimiter, ConnectionSlot, DEFAULT_MAX_CONNECTIONS_PER_USER};
pub use error::{RateLimitError, RateLimited, TooManyConnections};
pub use keyed::KeyedLimiter;
pub use limiters::RateLimiters;
