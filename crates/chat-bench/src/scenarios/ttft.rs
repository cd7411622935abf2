//! (2) Added time to first token: TTFT seen by a WebSocket client through chatbox
//! minus TTFT seen by a client streaming straight from the same fake provider, at
//! the same concurrency (all streams of a round start together).

use serde::Serialize;

use crate::chatbox::ChatboxServer;
use crate::histogram::{Latencies, Summary};
use crate::scenarios::{added_us, chat_round, direct_round, open_all, record_ttft};
use crate::BenchError;

/// TTFT at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct TtftLevel {
    /// Concurrent streams.
    pub streams: usize,
    /// Rounds (each stream sends one message per round).
    pub rounds: usize,
    /// Through chatbox (WebSocket `user_message` → first `ai_response` with text).
    pub through: Summary,
    /// Straight from the provider (request sent → first text delta).
    pub direct: Summary,
    /// through.p50 − direct.p50.
    pub added_p50_us: f64,
    /// through.p99 − direct.p99.
    pub added_p99_us: f64,
    /// Replies that failed (either path).
    pub errors: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Measures each level; the fake provider behind `server` is at `endpoint`.
pub async fn run(
    server: &ChatboxServer,
    endpoint: &str,
    levels: &[usize],
    rounds: usize,
) -> Result<Vec<TtftLevel>, BenchError> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for &streams in levels {
        let mut direct = Latencies::new()?;
        let mut through = Latencies::new()?;
        let mut errors = Vec::new();
        for _ in 0..rounds {
            let round = direct_round(&http, endpoint, streams, false).await?;
            record_ttft(&round, &mut direct);
            errors.extend(round.errors);
        }
        let mut conns = open_all(server.addr(), streams, |i| {
            server.ws_path(&format!("ttft-{streams}-{i}"))
        })
        .await?;
        for round_no in 0..rounds {
            let round = chat_round(&mut conns, &format!("question {round_no}"), false).await?;
            record_ttft(&round, &mut through);
            errors.extend(round.errors);
        }
        drop(conns);
        let (t, d) = (through.summary(), direct.summary());
        println!(
            "  ttft @{streams}: through p50 {:.0} µs p99 {:.0} µs; direct p50 {:.0} µs p99 {:.0} µs",
            t.p50_us, t.p99_us, d.p50_us, d.p99_us
        );
        out.push(TtftLevel {
            streams,
            rounds,
            through: t,
            direct: d,
            added_p50_us: added_us(t.p50_us, d.p50_us),
            added_p99_us: added_us(t.p99_us, d.p99_us),
            errors: errors.len(),
            first_error: errors.into_iter().next(),
        });
    }
    Ok(out)
}
