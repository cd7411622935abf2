//! Durable storage of sessions behind the [`SessionStore`] trait.
//!
//! Owns: the trait and its query types ([`store`]), the MongoDB store with the legacy
//! `chat.sessions` schema ([`mongo`], [`document`]), the embedded file-backed store
//! used by default in development ([`embedded`]), encryption at rest with key rotation
//! ([`encryption`]), the retry policy for transient failures ([`retry`]) and the
//! write-behind queue that keeps database writes off the chat hot path
//! ([`write_behind`]). [`open_store`] picks the backend from the configuration.
//! It does not own in-memory session state (`chat-session`) or any HTTP/WebSocket
//! surface.

pub mod document;
pub mod embedded;
pub mod encryption;
pub mod error;
pub mod mongo;
pub mod query;
pub mod retry;
pub mod store;
pub mod write_behind;

mod open;

pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use encryption::Encryptor;
pub use error::StoreError;
pub use mongo::{MongoOptions, MongoStore};
pub use open::open_store;
pub use retry::{AttemptEvent, RetryPolicy};
#[cfg(any(test, feature = "mock"))]
pub use store::MockSessionStore;
pub use store::{
    AdminQuery, Page, SessionStore, SessionSummary, SortKey, SortOrder, StatusFilter, StoreHealth,
    StoreMetrics, UsageStats,
};
pub use write_behind::{Creation, WriteBehindStore, WriteOp};
