//! In-memory sessions: the [`Session`] state of one conversation and the
//! [`SessionManager`] registry (one active session per user, TTL/idle sweeper, memory
//! stats), bounded response statistics ([`ResponseStats`]), admin assistance with the
//! AI gate ([`Session::if_ai_may_speak`]), and the naming rule ([`derive_name`]).
//!
//! Persistence (`chat-storage`) and transport (`chat-router`, `chat-ws`) live
//! elsewhere: they work on [`SessionSnapshot`]s, consistent copies taken under the
//! session's lock. Time is always passed in (`now`), never read inside the core, so
//! tests control it.
//!
//! The concurrency core imports its lock from a `sync` shim that becomes `loom` under
//! `--cfg loom`; the loom models live in `tests/loom_*.rs` and run with
//! `RUSTFLAGS="--cfg loom" cargo test -p chat-session --release`. The tokio sweeper
//! task is compiled out of loom builds.
//!
//! No doctests on purpose: in the loom run (`RUSTFLAGS="--cfg loom"`) they would link
//! the loom build of this crate, whose locks only work inside `loom::model`. Examples
//! live in `tests/`.

mod error;
mod manager;
pub mod model;
mod naming;
mod session;
mod stats;
#[cfg(not(loom))]
mod sweeper;
mod sync;

pub use error::SessionError;
pub use manager::{MemoryStats, SessionManager, SweepReport};
pub use model::{Sender, SessionSnapshot, StoredMessage};
pub use naming::{derive_name, DEFAULT_NAME, MAX_NAME_CHARS};
pub use session::{AssistingAdmin, Session, TakeoverOutcome};
pub use stats::ResponseStats;
