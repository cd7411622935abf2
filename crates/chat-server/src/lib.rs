//! The chatbox server: wires configuration, storage, providers, the router and the
//! WebSocket endpoint into one axum application, serves the HTTP API of PROTOCOL §2,
//! and shuts it all down within the configured deadline.
//!
//! `main.rs` only calls [`cli::main`]; everything else is a library so tests can start
//! the real application on an ephemeral port ([`app::serve`]).

pub mod allocator;
pub mod api;
pub mod app;
pub mod cli;
pub mod client_ip;
pub mod health;
pub mod json_errors;
pub mod logging;
pub mod metrics;
pub mod shutdown;
pub mod state;
pub mod web;
