//! The chatbox server: wires configuration, storage, providers, the router and the
//! WebSocket endpoint into one axum application, serves the HTTP API, and shuts it all
//! down within the configured deadline.
//!
//! `main.rs` only calls [`cli::main`]; everything else is a library so tests can start
//! the real application on an ephemeral port ([`app::serve`]).

pub mod app;
pub mod cli;
pub mod health;
pub mod logging;
pub mod shutdown;
pub mod web;
