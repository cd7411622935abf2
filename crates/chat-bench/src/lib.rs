//! The load generator and measurements behind `cargo xtask bench`: what the chatbox
//! gateway costs, measured side by side with what a client would see without it.
//!
//! Owns: starting the real `chat-server` binary as a child process on loopback
//! ([`chatbox`]), its resident memory ([`process`]), a minimal WebSocket chat client
//! ([`client`]), a provider that stamps each chunk with its emission time ([`stamp`]),
//! a direct streaming client for the provider baseline ([`direct`]), sub-millisecond
//! pacing of the load shapes ([`pacer`]), a bare
//! tokio-tungstenite server as the relay baseline ([`echo`]), the six measurements
//! ([`scenarios`]), the load sizes of the smoke and full runs ([`plan`]) and the
//! results with their targets ([`report`]). Every loop is bounded by a count or a
//! deadline, randomness comes from a fixed seed, and every child process is killed
//! when its handle is dropped, so a run always stops by itself, and a run stopped by
//! SIGINT or SIGTERM drops them too ([`interrupt`]). It does not own any
//! server behaviour: it only measures the binaries the workspace builds.

pub mod chatbox;
pub mod client;
pub mod clock;
pub mod direct;
pub mod echo;
pub mod error;
pub mod histogram;
pub mod interrupt;
pub mod pacer;
pub mod plan;
pub mod process;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod stamp;

pub use error::BenchError;
pub use plan::Plan;
pub use report::Results;
pub use runner::{run, Measurement, RunOptions};
