//! (3) Added per-chunk latency: arrival at the client − emission by the stamping
//! provider (same clock), through chatbox and straight from the provider, in the two
//! load shapes of the TTFT measurement: **steady** — the N streams start spread over
//! one chunk interval (on the [`Pacer`]'s clock, below tokio's millisecond), so their
//! chunks are emitted spread over time as by N independent model streams (judged) —
//! and **burst** — all N streams start at once,
//! so the provider emits N chunks at the same instant every interval and each chunk
//! queues behind the others (reported beside it).
//!
//! The steady shape leaves out the first chunks of each reply (`warm_up`, 10 in the
//! full run: the first 100 ms): the N user messages that open the streams arrive
//! within one chunk interval, and until the server has taken them all in, chunks
//! queue behind message handling — that is the burst of new messages, which the
//! time-to-first-token measurement times, not the relaying of a steady stream.
//! The burst shape counts every chunk.

use std::time::Duration;

use serde::Serialize;

use crate::chatbox::ChatboxServer;
use crate::histogram::Summary;
use crate::pacer::Pacer;
use crate::scenarios::{self, added_us, chat_round, direct_round, open_all, Stamps, Start};
use crate::BenchError;

/// The per-chunk latency measurement.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkResult {
    /// Concurrent streams.
    pub streams: usize,
    /// Chunks per reply.
    pub chunks_per_reply: usize,
    /// Leading chunks of each steady reply left out (see the module docs).
    pub warm_up_chunks: usize,
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
    /// The steady added p99 of every trial, in run order; this result is the trial
    /// with the median of these.
    pub trials_added_p99_us: Vec<f64>,
    /// Replies that failed.
    pub errors: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// The load of one per-chunk measurement.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLoad {
    /// Concurrent streams.
    pub streams: usize,
    /// Stamped chunks per reply.
    pub chunks_per_reply: usize,
    /// Interval between a reply's chunks.
    pub chunk_delay: Duration,
    /// Leading chunks of each steady reply not timed (see the module docs).
    pub warm_up: usize,
}

/// Runs `trials` measurements ([`run`]) one after the other and returns the one with
/// the median steady added p99, with every trial's value in `trials_added_p99_us`
/// and the errors of all of them. A p99 over one second of chunks on a shared
/// 2-core machine swings several-fold from one trial to the next (one scheduling
/// hiccup of a few milliseconds moves it), so one trial decides nothing.
pub async fn run_trials(
    server: &ChatboxServer,
    endpoint: &str,
    load: ChunkLoad,
    trials: usize,
    pacer: &Pacer,
) -> Result<ChunkResult, BenchError> {
    let mut results = Vec::with_capacity(trials.max(1));
    for _ in 0..trials.max(1) {
        results.push(run(server, endpoint, load, pacer).await?);
    }
    median_trial(results).ok_or_else(|| BenchError::Process("no per-chunk trial ran".to_owned()))
}

/// The trial with the median steady added p99 (the upper one of an even count),
/// carrying every trial's value in run order and the errors of all of them.
fn median_trial(results: Vec<ChunkResult>) -> Option<ChunkResult> {
    let errors: usize = results.iter().map(|r| r.errors).sum();
    let first_error = results.iter().find_map(|r| r.first_error.clone());
    let (mut median, all) = scenarios::median_trial(results, |r| r.added_p99_us)?;
    median.trials_added_p99_us = all;
    median.errors = errors;
    median.first_error = first_error;
    Some(median)
}

/// One round of `load.streams` concurrent stamped replies each way and shape;
/// `server` relays the stamping provider at `endpoint`, which emits a chunk every
/// `load.chunk_delay`.
pub async fn run(
    server: &ChatboxServer,
    endpoint: &str,
    load: ChunkLoad,
    pacer: &Pacer,
) -> Result<ChunkResult, BenchError> {
    let ChunkLoad {
        streams,
        chunks_per_reply,
        chunk_delay,
        warm_up,
    } = load;
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
    let steady = Start::Spread {
        every: stagger,
        pacer,
    };
    let warmed = Stamps::After(warm_up);
    let direct = direct_round(&http, endpoint, streams, warmed, steady).await?;
    let mut conns = open_all(server.addr(), streams, |i| {
        server.ws_path(&format!("chunk-{i}"))
    })
    .await?;
    let through = chat_round(&mut conns, "stamp", warmed, steady).await?;
    let (t, d) = shape(direct, through);
    let all = Stamps::After(0);
    let direct = direct_round(&http, endpoint, streams, all, Start::AtOnce).await?;
    let through = chat_round(&mut conns, "stamp", all, Start::AtOnce).await?;
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
        warm_up_chunks: warm_up,
        added_p50_us: added_us(t.p50_us, d.p50_us),
        added_p99_us: added_us(t.p99_us, d.p99_us),
        through: t,
        direct: d,
        burst_added_p99_us: added_us(bt.p99_us, bd.p99_us),
        burst_through: bt,
        burst_direct: bd,
        trials_added_p99_us: vec![added_us(t.p99_us, d.p99_us)],
        errors: errors.len(),
        first_error: errors.into_iter().next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(added_p99_us: f64, errors: usize) -> ChunkResult {
        ChunkResult {
            streams: 10,
            chunks_per_reply: 20,
            warm_up_chunks: 5,
            through: Summary::default(),
            direct: Summary::default(),
            added_p50_us: added_p99_us / 4.0,
            added_p99_us,
            burst_through: Summary::default(),
            burst_direct: Summary::default(),
            burst_added_p99_us: 0.0,
            trials_added_p99_us: vec![added_p99_us],
            errors,
            first_error: (errors > 0).then(|| format!("failed at {added_p99_us}")),
        }
    }

    #[test]
    fn the_median_trial_is_reported_with_every_trial_and_all_errors() {
        let picked = median_trial(vec![
            trial(900.0, 0),
            trial(120.0, 1),
            trial(300.0, 0),
            trial(5000.0, 0),
            trial(200.0, 2),
        ])
        .unwrap();
        assert_eq!(picked.added_p99_us, 300.0);
        assert_eq!(picked.added_p50_us, 75.0, "the median trial's own p50");
        assert_eq!(
            picked.trials_added_p99_us,
            vec![900.0, 120.0, 300.0, 5000.0, 200.0]
        );
        assert_eq!(picked.errors, 3);
        assert_eq!(picked.first_error.as_deref(), Some("failed at 120"));
    }

    #[test]
    fn one_trial_is_its_own_median_and_none_is_none() {
        assert_eq!(
            median_trial(vec![trial(42.0, 0)]).unwrap().added_p99_us,
            42.0
        );
        assert!(median_trial(Vec::new()).is_none());
    }
}
