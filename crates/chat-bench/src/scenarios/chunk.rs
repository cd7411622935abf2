//! (3) Added per-chunk latency: arrival at the client − emission by the stamping
//! provider (same clock), through chatbox and straight from the provider.

use serde::Serialize;

use crate::chatbox::ChatboxServer;
use crate::histogram::Summary;
use crate::scenarios::{added_us, chat_round, direct_round, open_all};
use crate::BenchError;

/// The per-chunk latency measurement.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkResult {
    /// Concurrent streams.
    pub streams: usize,
    /// Chunks per reply.
    pub chunks_per_reply: usize,
    /// Arrival − emission through chatbox.
    pub through: Summary,
    /// Arrival − emission straight from the provider.
    pub direct: Summary,
    /// through.p50 − direct.p50.
    pub added_p50_us: f64,
    /// through.p99 − direct.p99.
    pub added_p99_us: f64,
    /// Replies that failed.
    pub errors: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// One round of `streams` concurrent stamped replies each way; `server` relays the
/// stamping provider at `endpoint`.
pub async fn run(
    server: &ChatboxServer,
    endpoint: &str,
    streams: usize,
    chunks_per_reply: usize,
) -> Result<ChunkResult, BenchError> {
    let http = reqwest::Client::new();
    let direct = direct_round(&http, endpoint, streams, true).await?;
    let mut conns = open_all(server.addr(), streams, |i| {
        server.ws_path(&format!("chunk-{i}"))
    })
    .await?;
    let through = chat_round(&mut conns, "stamp", true).await?;
    drop(conns);
    let (t, d) = (
        through.chunk_latency.summary(),
        direct.chunk_latency.summary(),
    );
    println!(
        "  chunk: through p50 {:.0} µs p99 {:.0} µs; direct p50 {:.0} µs p99 {:.0} µs",
        t.p50_us, t.p99_us, d.p50_us, d.p99_us
    );
    let errors: Vec<String> = direct.errors.into_iter().chain(through.errors).collect();
    Ok(ChunkResult {
        streams,
        chunks_per_reply,
        through: t,
        direct: d,
        added_p50_us: added_us(t.p50_us, d.p50_us),
        added_p99_us: added_us(t.p99_us, d.p99_us),
        errors: errors.len(),
        first_error: errors.into_iter().next(),
    })
}
