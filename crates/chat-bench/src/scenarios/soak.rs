//! (5) Soak: server RSS sampled under a steady chat load, and again after the load
//! stops and the clients leave (plateau and recovery).

use std::time::Duration;

use serde::Serialize;

use crate::chatbox::ChatboxServer;
use crate::client::{chat, Ws};
use crate::clock::now_ns;
use crate::scenarios::open_all;
use crate::BenchError;

/// Pause between a client's replies (steady, not saturating).
const THINK: Duration = Duration::from_millis(100);

/// One RSS sample.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub at_s: f64,
    /// Server RSS.
    pub rss_bytes: u64,
}

/// The soak measurement.
#[derive(Debug, Clone, Serialize)]
pub struct SoakResult {
    /// Load duration.
    pub duration_s: f64,
    /// Clients chatting in a loop.
    pub clients: usize,
    /// Replies completed.
    pub replies: u64,
    /// Replies that failed (a failing client stops).
    pub errors: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Server RSS before any client connected.
    pub idle_rss_bytes: u64,
    /// Samples during the load.
    pub samples: Vec<Sample>,
    /// Largest sample in the first half of the load.
    pub first_half_max_bytes: u64,
    /// Largest sample in the second half.
    pub second_half_max_bytes: u64,
    /// (second − first half max) / first half max, in percent.
    pub growth_pct: f64,
    /// Server RSS after the load stopped and the clients left.
    pub after_rss_bytes: u64,
    /// (after − idle) / idle, in percent.
    pub after_vs_idle_pct: f64,
}

/// Runs the load for `duration`, sampling every `every`, then waits `recovery`.
pub async fn run(
    server: &ChatboxServer,
    clients: usize,
    duration: Duration,
    every: Duration,
    recovery: Duration,
) -> Result<SoakResult, BenchError> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = server.rss_bytes()?;
    let conns = open_all(server.addr(), clients, |i| {
        server.ws_path(&format!("soak-{i}"))
    })
    .await?;
    let start = now_ns();
    let deadline = tokio::time::Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for ws in conns {
        tasks.spawn(client_loop(ws, deadline));
    }
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(every);
    while tokio::time::Instant::now() < deadline {
        ticker.tick().await;
        samples.push(Sample {
            at_s: now_ns().saturating_sub(start) as f64 / 1e9,
            rss_bytes: server.rss_bytes()?,
        });
    }
    let mut replies = 0;
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (done, error) = joined.map_err(|e| BenchError::Process(format!("soak client: {e}")))?;
        replies += done;
        errors.extend(error);
    }
    tokio::time::sleep(recovery).await;
    let after = server.rss_bytes()?;
    let half = samples.len() / 2;
    let max_of = |s: &[Sample]| s.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
    let first = max_of(&samples[..half]);
    let second = max_of(&samples[half..]);
    let pct = |a: u64, b: u64| (a as f64 - b as f64) / (b.max(1) as f64) * 100.0;
    println!(
        "  soak: {replies} replies, RSS idle {:.1} MiB, 1st half max {:.1} MiB, 2nd half max \
         {:.1} MiB, after {:.1} MiB",
        mib(idle),
        mib(first),
        mib(second),
        mib(after)
    );
    Ok(SoakResult {
        duration_s: duration.as_secs_f64(),
        clients,
        replies,
        errors: errors.len(),
        first_error: errors.into_iter().next(),
        idle_rss_bytes: idle,
        samples,
        first_half_max_bytes: first,
        second_half_max_bytes: second,
        growth_pct: pct(second, first),
        after_rss_bytes: after,
        after_vs_idle_pct: pct(after, idle),
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Chats until `deadline`; returns replies completed and the error that stopped it.
async fn client_loop(mut ws: Ws, deadline: tokio::time::Instant) -> (u64, Option<String>) {
    let mut replies = 0;
    let mut n = 0u64;
    while tokio::time::Instant::now() < deadline {
        n += 1;
        if let Err(e) = chat(&mut ws, &format!("soak message {n}"), |_, _| {}).await {
            return (replies, Some(e.to_string()));
        }
        replies += 1;
        tokio::time::sleep(THINK).await;
    }
    (replies, None)
}
