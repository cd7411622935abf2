//! (5) Soak: server RSS sampled under a steady chat load, and again after the load
//! stops and the clients leave (plateau and recovery).
//!
//! Recovery is judged against the same server at rest after a short warm-up with the
//! same load, not against the process as it started: a server that has answered once
//! has paged in the code that answers, filled its bounded caches (the embedded store's
//! page cache) and set up its allocator's arenas, and keeps them. That footprint is
//! the same after a 10-second load as after a 10-minute one (docs/BENCHMARKS.md), so
//! only the warm baseline shows whether the long load left anything behind. The fresh
//! process's RSS is still measured and reported.

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

/// The shape of one soak run.
#[derive(Debug, Clone, Copy)]
pub struct SoakPlan {
    /// Clients chatting in a loop.
    pub clients: usize,
    /// The warm-up load, before the baseline at rest is taken.
    pub warm_up: Duration,
    /// The steady load.
    pub duration: Duration,
    /// RSS sampling interval during the load.
    pub every: Duration,
    /// Wait after the clients leave before RSS is read (after the warm-up, and after
    /// the load).
    pub recovery: Duration,
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
    /// Warm-up load before the baseline at rest.
    pub warm_up_s: f64,
    /// Server RSS at rest after the warm-up (its clients gone, the recovery wait over):
    /// the baseline recovery is judged against.
    pub warm_idle_rss_bytes: u64,
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
    /// (after − warm idle) / warm idle, in percent.
    pub after_vs_warm_idle_pct: f64,
}

/// Measures idle RSS, warms the server up and measures it at rest, then runs the
/// load for `plan.duration`, sampling every `plan.every`, and measures it at rest
/// again.
pub async fn run(server: &ChatboxServer, plan: SoakPlan) -> Result<SoakResult, BenchError> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = server.rss_bytes()?;
    let warm = load(server, "warm", plan.clients, plan.warm_up, None).await?;
    if let Some(e) = warm.errors.first() {
        return Err(BenchError::Process(format!("soak warm-up: {e}")));
    }
    tokio::time::sleep(plan.recovery).await;
    let warm_idle = server.rss_bytes()?;
    let Load {
        replies,
        errors,
        samples,
    } = load(
        server,
        "soak",
        plan.clients,
        plan.duration,
        Some(plan.every),
    )
    .await?;
    tokio::time::sleep(plan.recovery).await;
    let after = server.rss_bytes()?;
    let half = samples.len() / 2;
    let max_of = |s: &[Sample]| s.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
    let first = max_of(&samples[..half]);
    let second = max_of(&samples[half..]);
    let pct = |a: u64, b: u64| (a as f64 - b as f64) / (b.max(1) as f64) * 100.0;
    println!(
        "  soak: {replies} replies, RSS idle {:.1} MiB, at rest after the warm-up {:.1} MiB, \
         1st half max {:.1} MiB, 2nd half max {:.1} MiB, after {:.1} MiB",
        mib(idle),
        mib(warm_idle),
        mib(first),
        mib(second),
        mib(after)
    );
    Ok(SoakResult {
        duration_s: plan.duration.as_secs_f64(),
        clients: plan.clients,
        replies,
        errors: errors.len(),
        first_error: errors.into_iter().next(),
        idle_rss_bytes: idle,
        warm_up_s: plan.warm_up.as_secs_f64(),
        warm_idle_rss_bytes: warm_idle,
        samples,
        first_half_max_bytes: first,
        second_half_max_bytes: second,
        growth_pct: pct(second, first),
        after_rss_bytes: after,
        after_vs_idle_pct: pct(after, idle),
        after_vs_warm_idle_pct: pct(after, warm_idle),
    })
}

/// What one load left: replies, failures, RSS samples.
struct Load {
    replies: u64,
    errors: Vec<String>,
    samples: Vec<Sample>,
}

/// `clients` clients (users `{name}-{i}`) chat in a loop for `duration`, RSS sampled
/// every `every` if given; returns once every client has stopped and disconnected.
async fn load(
    server: &ChatboxServer,
    name: &str,
    clients: usize,
    duration: Duration,
    every: Option<Duration>,
) -> Result<Load, BenchError> {
    let conns = open_all(server.addr(), clients, |i| {
        server.ws_path(&format!("{name}-{i}"))
    })
    .await?;
    let start = now_ns();
    let deadline = tokio::time::Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for ws in conns {
        tasks.spawn(client_loop(ws, deadline));
    }
    let mut samples = Vec::new();
    if let Some(every) = every {
        let mut ticker = tokio::time::interval(every);
        while tokio::time::Instant::now() < deadline {
            ticker.tick().await;
            samples.push(Sample {
                at_s: now_ns().saturating_sub(start) as f64 / 1e9,
                rss_bytes: server.rss_bytes()?,
            });
        }
    }
    let mut replies = 0;
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (done, error) = joined.map_err(|e| BenchError::Process(format!("soak client: {e}")))?;
        replies += done;
        errors.extend(error);
    }
    Ok(Load {
        replies,
        errors,
        samples,
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
