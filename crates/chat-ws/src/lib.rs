//! The axum WebSocket endpoint `GET /ws` (PROTOCOL §3): the handshake (drain check,
//! JWT from the header or `?token=`, origin allow-list, per-user connection slot taken
//! before the upgrade), then per connection one task that reads, writes (the router's
//! bounded queue, batched) and routes without reading ever waiting on routing, server
//! pings and a silence timeout, and the close codes of the protocol (1001 shutdown,
//! 1008 slow consumer or expired token, 1009 frame too big, 1011 routing panic).
//! [`Drain`] tracks every socket itself so shutdown can close them all within its
//! deadline.
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
//! About **7–8 KB of server RSS per idle connection**: 7.0 KB at 10 000 and 7.9 KB at
//! 1 000 authenticated idle sockets (`chat-bench run --only idle`, server RSS delta /
//! sockets; docs/BENCHMARKS.md). `cargo run --release -p chat-ws --example idle_memory
//! -- 2000` gives a quick reading without the load generator. With tungstenite's
//! default 128 KiB read buffer, allocated and zero-filled per socket, it would be well
//! over 130 KB; a 4 KiB buffer measured 15 KB, and the earlier design with three tasks
//! per connection (read pump, write pump, routing worker, joined by two channels)
//! 12.5–13.4 KB. What remains: the 1 KiB read buffer
//! ([`handshake::READ_BUFFER_SIZE`]), tungstenite's write buffer (the size of the
//! largest frame written so far), one task with one timer ([`connection`]), the tokio
//! socket registration, and the router's registration with its bounded outbound queue.
//! Kernel socket buffers are not in the process RSS and come on top. A connection that
//! once received a large frame keeps the grown read buffer until it closes.

pub mod coalesce;
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
