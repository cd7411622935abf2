//! The axum WebSocket endpoint `GET /ws` (PROTOCOL §3): the handshake (drain check,
//! JWT from the header or `?token=`, origin allow-list, per-user connection slot taken
//! before the upgrade), then per connection a read pump that never blocks on routing,
//! a write pump fed by the router's bounded queue, server pings and a silence
//! timeout, and the close codes of the protocol (1001 shutdown, 1008 slow consumer,
//! 1009 frame too big). [`Drain`] tracks every socket itself so shutdown can close
//! them all within its deadline.
//!
//! It owns transport concerns only: chat semantics are `chat-router`'s
//! ([`chat_router::MessageRouter`]), tokens are `chat-auth`'s, limits `chat-ratelimit`'s.
//! The server mounts [`routes`] under its path prefix.
//!
//! Main types: [`WsState`] (shared state), [`routes`], [`OriginPolicy`] (live origin
//! allow-list; a request without `Origin` is allowed, see [`origin`]), [`Drain`],
//! [`HandshakeError`].
//!
//! # Memory per idle connection
//!
//! About **12 KB of server RSS per idle connection**, measured with
//! `cargo run --release -p chat-ws --example idle_memory -- 2000` (the server runs in
//! a child process, so client memory is not counted; RSS before and after 2 000 idle
//! sockets that received their `connection_status`). With tungstenite's default
//! 128 KiB read buffer, allocated and zero-filled per socket, it would be well over
//! 130 KB; a 4 KiB buffer measured 15 KB. What remains: the 1 KiB read buffer
//! ([`handshake::READ_BUFFER_SIZE`]), three small tasks (connection, write pump,
//! routing worker), the tokio socket registration, and the router's registration with
//! its bounded outbound queue. Kernel socket buffers are not in the process RSS and
//! come on top. A connection that once received a large frame keeps the grown read
//! buffer until it closes. This is a planning figure, not a benchmark.

pub mod connection;
mod drain;
mod error;
pub mod handshake;
pub mod origin;
mod state;

use axum::routing::get;

pub use drain::{Drain, DrainGuard, DrainOutcome};
pub use error::{HandshakeError, CONNECTION_LIMIT_RETRY_AFTER_MS};
pub use origin::{OriginError, OriginPolicy};
pub use state::WsState;

/// The endpoint's routes: `GET /ws`. Mount under the path prefix
/// (`Router::nest(prefix, routes(state))` or merge into a prefixed router).
pub fn routes(state: WsState) -> axum::Router {
    axum::Router::new()
        .route("/ws", get(handshake::upgrade))
        .with_state(state)
}
