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
        let round = chat_round(
            &mut conns,
            &chunks.to_string(),
            false,
            std::time::Duration::ZERO,
        )
        .await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn every_chunk_from_every_client_is_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(crate::echo::serve(listener, stop.clone()));
        let delivery = deliver(addr, 3, 7, 2, |_| Ok("/".to_owned()))
            .await
            .unwrap();
        assert_eq!(delivery.chunks, 3 * 7 * 2);
        assert_eq!(delivery.errors, 0);
        assert!(delivery.chunks_per_s > 0.0);
        stop.cancel();
        server.await.unwrap();
    }
}
