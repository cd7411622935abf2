//! In-memory sessions: the `Session` state of one conversation and the
//! `SessionManager` registry (one active session per user, TTL sweeper, bounded stats,
//! admin assistance). Persistence and transport live elsewhere.

pub mod model;

pub use model::{Sender, SessionSnapshot, StoredMessage};
