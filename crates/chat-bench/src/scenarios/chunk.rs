//! (3) Added per-chunk latency: arrival at the client − emission by the stamping
//! provider (same clock), through chatbox and straight from the provider, in the two
//! load shapes of the TTFT measurement: **steady** — the N streams start spread over
//! one chunk interval, so their chunks are emitted spread over time as by N
//! independent model streams (judged) — and **burst** — all N streams start at once,
//! so the provider emits N chunks at the same instant every interval and each chunk
//! queues behind the others (reported beside it).

use std::time::Duration;

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
    /// The burst shape: arrival − emission through chatbox.
    pub burst_through: Summary,
    /// The burst shape: arrival − emission straight from the provider.
    pub burst_direct: Summary,
    /// The burst shape: through.p99 − direct.p99.
    pub burst_added_p99_us: f64,
    /// Replies that failed.
    pub errors: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// One round of `streams` concurrent stamped replies each way and shape; `server`
/// relays the stamping provider at `endpoint`, which emits a chunk every
/// `chunk_delay`.
pub async fn run(
    server: &ChatboxServer,
    endpoint: &str,
    streams: usize,
    chunks_per_reply: usize,
    chunk_delay: Duration,
) -> Result<ChunkResult, BenchError> {
    let http = reqwest::Client::new();
    let stagger = chunk_delay / u32::try_from(streams.max(1)).unwrap_or(u32::MAX);
    let mut errors = Vec::new();
    let mut shape = |direct: super::Round, through: super::Round| {
        errors.extend(direct.errors.into_iter().chain(through.errors));
        let (t, d) = (
            through.chunk_latency.summary(),
            direct.chunk_latency.summary(),
        );
        (t, d)
    };
    let direct = direct_round(&http, endpoint, streams, true, stagger).await?;
    let mut conns = open_all(server.addr(), streams, |i| {
        server.ws_path(&format!("chunk-{i}"))
    })
    .await?;
    let through = chat_round(&mut conns, "stamp", true, stagger).await?;
    let (t, d) = shape(direct, through);
    let direct = direct_round(&http, endpoint, streams, true, Duration::ZERO).await?;
    let through = chat_round(&mut conns, "stamp", true, Duration::ZERO).await?;
    let (bt, bd) = shape(direct, through);
    drop(conns);
    for (name, t, d) in [("steady", &t, &d), ("burst", &bt, &bd)] {
        println!(
            "  chunk {name}: through p50 {:.0} µs p99 {:.0} µs; direct p50 {:.0} µs p99 {:.0} µs",
            t.p50_us, t.p99_us, d.p50_us, d.p99_us
        );
    }
    Ok(ChunkResult {
        streams,
        chunks_per_reply,
        added_p50_us: added_us(t.p50_us, d.p50_us),
        added_p99_us: added_us(t.p99_us, d.p99_us),
        through: t,
        direct: d,
        burst_added_p99_us: added_us(bt.p99_us, bd.p99_us),
        burst_through: bt,
        burst_direct: bd,
        errors: errors.len(),
        first_error: errors.into_iter().next(),
    })
}
