//! How much load each measurement applies: the full run of the targets, and
//! the smoke run (small counts, under a minute) that `cargo xtask verify` calls.

use std::time::Duration;

use serde::Serialize;

/// Load sizes of one run. Every loop of the harness is bounded by one of these.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// `"smoke"` or `"full"`.
    pub name: &'static str,
    /// Idle sockets at which server memory is read (cumulative, ascending).
    pub idle_levels: Vec<usize>,
    /// Concurrent streams for the time-to-first-token measurement (1 = no contention).
    pub ttft_levels: Vec<usize>,
    /// Synchronized rounds per TTFT level (each stream sends one message per round).
    pub ttft_rounds: usize,
    /// Steady TTFT trials in a row at each level (direct, chatbox and bare proxy each
    /// time); the trial with the median added p99 is reported.
    pub ttft_trials: usize,
    /// Chunks per reply and the pause between them, for TTFT replies.
    pub ttft_chunks: usize,
    /// Concurrent streams in the per-chunk latency measurement.
    pub chunk_streams: usize,
    /// Stamped chunks per reply there.
    pub chunk_count: usize,
    /// Pause between stamped chunks.
    pub chunk_delay: Duration,
    /// Leading chunks of each steady reply not timed (the streams' opening messages
    /// are still being taken in; see `scenarios::chunk`).
    pub chunk_warm_up: usize,
    /// Per-chunk measurements in a row; the median trial is reported.
    pub chunk_trials: usize,
    /// Concurrent clients in the relay throughput measurement.
    pub throughput_clients: usize,
    /// Chunks each of them asks for per request.
    pub throughput_chunks: usize,
    /// Requests per client.
    pub throughput_rounds: usize,
    /// Alternated chatbox/baseline trials; the median ratio is reported (one trial
    /// of a few seconds on a shared machine swings by ±30 %).
    pub throughput_trials: usize,
    /// Steady-load duration of the soak.
    pub soak_duration: Duration,
    /// The soak's warm-up load, after which the server's RSS at rest is the baseline
    /// recovery is judged against (see `scenarios::soak`).
    pub soak_warm_up: Duration,
    /// Clients chatting in a loop during the soak.
    pub soak_clients: usize,
    /// RSS sampling interval during the soak.
    pub soak_sample_every: Duration,
    /// The server's `sessions.release_grace` in this run: `None` measures the
    /// default (30 s: a client that reconnects within it still resumes losslessly, so
    /// nothing is released before). The smoke sets a short one to stay under a minute.
    pub release_grace: Option<Duration>,
    /// How long after a load stops (the warm-up, then the soak) RSS at rest is read.
    /// It covers the release grace period plus one release pass (a quarter of the
    /// grace period) and the allocator's page decay: see docs/BENCHMARKS.md.
    pub soak_recovery: Duration,
    /// Messages appended per storage backend.
    pub storage_appends: usize,
    /// Concurrent appenders (each on its own session).
    pub storage_writers: usize,
}

/// The soak's recovery wait: the server's default release grace period (30 s), one
/// release pass (up to 7.5 s), jemalloc's dirty-page decay (10 s) and a margin.
pub const SOAK_RECOVERY: Duration = Duration::from_secs(60);

/// The smoke's release grace period, and its recovery wait: the grace period, one
/// release pass (0.5 s), the page decay (10 s) and a margin.
pub const SMOKE_RELEASE_GRACE: Duration = Duration::from_secs(2);
/// See [`SMOKE_RELEASE_GRACE`].
pub const SMOKE_SOAK_RECOVERY: Duration = Duration::from_secs(14);

impl Plan {
    /// The run the targets are stated for (~15–20 minutes on 2 cores).
    pub fn full() -> Self {
        Self {
            name: "full",
            idle_levels: vec![1_000, 10_000, 50_000],
            ttft_levels: vec![1, 100, 1_000],
            ttft_rounds: 5,
            ttft_trials: 5,
            ttft_chunks: 10,
            chunk_streams: 100,
            chunk_count: 100,
            chunk_delay: Duration::from_millis(10),
            chunk_warm_up: 10,
            chunk_trials: 5,
            throughput_clients: 100,
            throughput_chunks: 1_000,
            throughput_rounds: 3,
            throughput_trials: 5,
            soak_duration: Duration::from_secs(600),
            soak_warm_up: Duration::from_secs(10),
            soak_clients: 100,
            soak_sample_every: Duration::from_secs(5),
            release_grace: None,
            soak_recovery: SOAK_RECOVERY,
            storage_appends: 5_000,
            storage_writers: 8,
        }
    }

    /// Small counts: every measurement runs, in under a minute (a short release grace
    /// period lets the soak's recoveries be measured in 14 s instead of 60 s).
    pub fn smoke() -> Self {
        Self {
            name: "smoke",
            idle_levels: vec![1_000],
            ttft_levels: vec![1, 100],
            ttft_rounds: 2,
            ttft_trials: 1,
            ttft_chunks: 5,
            chunk_streams: 20,
            chunk_count: 20,
            chunk_delay: Duration::from_millis(10),
            chunk_warm_up: 5,
            chunk_trials: 1,
            throughput_clients: 20,
            throughput_chunks: 200,
            throughput_rounds: 1,
            throughput_trials: 1,
            soak_duration: Duration::from_secs(12),
            soak_warm_up: Duration::from_secs(3),
            soak_clients: 20,
            soak_sample_every: Duration::from_secs(1),
            release_grace: Some(SMOKE_RELEASE_GRACE),
            soak_recovery: SMOKE_SOAK_RECOVERY,
            storage_appends: 300,
            storage_writers: 4,
        }
    }
}
