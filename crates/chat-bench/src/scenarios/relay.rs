//! (4) Relay throughput: `ai_response` chunks per second delivered to many clients
//! through chatbox, next to the bare tokio-tungstenite baseline ([`crate::echo`]).

use std::net::SocketAddr;

use serde::Serialize;

use crate::clock::now_ns;
use crate::scenarios::{chat_round, open_all};
use crate::BenchError;

/// Chunks delivered in one measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Delivery {
    /// Text chunks received by all clients.
    pub chunks: u64,
    /// From the first request to the last `done`.
    pub seconds: f64,
    /// chunks / seconds.
    pub chunks_per_s: f64,
    /// Replies that failed.
    pub errors: usize,
}

/// Chatbox next to the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct RelayResult {
    /// Concurrent clients.
    pub clients: usize,
    /// Chunks per request.
    pub chunks_per_request: usize,
    /// Requests per client.
    pub rounds: usize,
    /// Through chatbox (fake provider streaming without pauses).
    pub chatbox: Delivery,
    /// The bare tokio-tungstenite server.
    pub baseline: Delivery,
    /// chatbox / baseline chunks per second.
    pub ratio: f64,
}

/// Opens `clients` connections to `addr` and has each ask for `chunks` chunks
/// `rounds` times (all clients at once per round).
pub async fn deliver(
    addr: SocketAddr,
    clients: usize,
    chunks: usize,
    rounds: usize,
    path: impl Fn(usize) -> Result<String, BenchError>,
) -> Result<Delivery, BenchError> {
    let mut conns = open_all(addr, clients, path).await?;
    let start = now_ns();
    let mut delivered = 0;
    let mut errors = 0;
    for _ in 0..rounds {
        let round = chat_round(&mut conns, &chunks.to_string(), false).await?;
        delivered += round.replies.iter().map(|r| r.chunks).sum::<u64>();
        errors += round.errors.len();
    }
    let seconds = now_ns().saturating_sub(start) as f64 / 1e9;
    Ok(Delivery {
        chunks: delivered,
        seconds,
        chunks_per_s: delivered as f64 / seconds.max(1e-9),
        errors,
    })
}
