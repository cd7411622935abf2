//! The chat semantics: [`MessageRouter`] binds connections to sessions, runs one
//! generation task per session (owned by the router, not the socket), fans frames out
//! to every subscribed connection (all of a user's devices and an assisting admin),
//! replays missed chunks on `resume`, and applies admin takeover and release.
//!
//! It is transport-agnostic: a connection is a [`ConnectionHandle`] with a bounded
//! outbound queue that the WebSocket layer (`chat-ws`) drains. Cross-replica control
//! events go through the [`Bus`] seam (in-process by default).

pub mod bus;
pub mod channel;
pub mod error;
pub mod gate;
mod generation;
pub mod notifier;
pub mod outbound;
mod router;

pub use bus::{Bus, BusEvent, BusHandler, InProcessBus};
pub use channel::{ResumeOutcome, SessionChannel};
pub use error::RouterError;
pub use gate::Gated;
pub use generation::META_INTERRUPTED;
pub use notifier::{DefaultNotifier, HelpNotifier, HelpRequest};
pub use outbound::{CloseReason, ConnectionHandle, ConnectionId, Identity, Outgoing};
pub use router::{release_interval, MessageRouter, ReleaseReport, RouterDeps, CREATE_TIMEOUT};
