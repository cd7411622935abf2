//! (2) Added time to first token: TTFT seen by a WebSocket client through chatbox
//! minus TTFT seen by a client streaming straight from the same fake provider, at
//! the same concurrency, in two load shapes:
//!
//! - **steady** — N streams in flight at once: stream *i* starts `i / N` of a reply
//!   duration after the first (on the [`Pacer`]'s clock) and sends its next message
//!   as soon as its reply has ended, so at any moment about N replies are streaming
//!   and new messages arrive spread over time, as from N independent users (closed
//!   loop, no think time). The fake paces its chunks with tokio's millisecond
//!   timer, so replies end, and next messages leave, at millisecond ticks.
//! - **burst** — all N streams send at the same instant, round after round: the
//!   thundering herd after, say, a mass reconnect. Every message of a round queues
//!   behind the others for the same CPU, so on a small machine this measures mostly
//!   the machine.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chatbox::ChatboxServer;
use crate::client::{chat, Reply, Ws};
use crate::direct::stream_reply;
use crate::histogram::{Latencies, Summary};
use crate::pacer::Pacer;
use crate::scenarios::{
    added_us, chat_round, direct_round, open_all, record_ttft, Round, Stamps, Start,
};
use crate::BenchError;

/// The shape of the load a TTFT sample was taken under (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// N streams in flight, messages spread over time.
    Steady,
    /// N messages at the same instant.
    Burst,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Steady => "steady",
            Self::Burst => "burst",
        })
    }
}

/// TTFT at one concurrency and load shape.
#[derive(Debug, Clone, Serialize)]
pub struct TtftLevel {
    /// Concurrent streams.
    pub streams: usize,
    /// Load shape.
    pub shape: Shape,
    /// Messages per stream (burst: rounds).
    pub rounds: usize,
    /// Through chatbox (WebSocket `user_message` → first `ai_response` with text).
    pub through: Summary,
    /// Straight from the provider (request sent → first text delta).
    pub direct: Summary,
    /// Server CPU time (user + system) per reply through chatbox, in µs — the
    /// gateway's cost per message and its reply, whatever the machine's contention.
    pub server_cpu_us_per_reply: f64,
    /// through.p50 − direct.p50.
    pub added_p50_us: f64,
    /// through.p99 − direct.p99.
    pub added_p99_us: f64,
    /// Replies that failed (either path).
    pub errors: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Measures each level, steady then burst; the fake provider behind `server` is at
/// `endpoint` and takes about `reply` to stream one reply.
pub async fn run(
    server: &ChatboxServer,
    endpoint: &str,
    levels: &[usize],
    rounds: usize,
    reply: Duration,
    pacer: &Pacer,
) -> Result<Vec<TtftLevel>, BenchError> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for &streams in levels {
        out.push(steady(server, &http, endpoint, streams, rounds, reply, pacer).await?);
        out.push(burst(server, &http, endpoint, streams, rounds).await?);
    }
    Ok(out)
}

/// N streams in flight, each sending `messages` messages back to back.
async fn steady(
    server: &ChatboxServer,
    http: &reqwest::Client,
    endpoint: &str,
    streams: usize,
    messages: usize,
    reply: Duration,
    pacer: &Pacer,
) -> Result<TtftLevel, BenchError> {
    let stagger = reply / u32::try_from(streams.max(1)).unwrap_or(u32::MAX);
    let start = Start::Spread {
        every: stagger,
        pacer,
    };
    let mut direct = Latencies::new()?;
    let mut through = Latencies::new()?;

    let mut tasks = tokio::task::JoinSet::new();
    let began = Instant::now();
    for i in 0..streams {
        let (http, endpoint) = (http.clone(), endpoint.to_owned());
        let wait = start.wait(began, i);
        tasks.spawn(async move {
            wait.await;
            let mut replies = Vec::with_capacity(messages);
            for _ in 0..messages {
                replies.push(stream_reply(&http, &endpoint, |_, _| {}).await);
            }
            replies
        });
    }
    let round = collect(tasks).await?;
    record_ttft(&round, &mut direct);
    let mut errors = round.errors;

    let conns = open_all(server.addr(), streams, |i| {
        server.ws_path(&format!("ttft-steady-{streams}-{i}"))
    })
    .await?;
    let cpu_before = server.cpu_time()?;
    let mut tasks = tokio::task::JoinSet::new();
    let began = Instant::now();
    for (i, mut ws) in conns.into_iter().enumerate() {
        let wait = start.wait(began, i);
        tasks.spawn(async move {
            wait.await;
            let mut replies = Vec::with_capacity(messages);
            for n in 0..messages {
                let reply = chat(&mut ws, &format!("question {n}"), |_, _| {}).await;
                let failed = reply.is_err();
                replies.push(reply);
                if failed {
                    break;
                }
            }
            replies
        });
    }
    let round = collect(tasks).await?;
    let cpu = server.cpu_time()?.saturating_sub(cpu_before);
    record_ttft(&round, &mut through);
    errors.extend(round.errors);
    let mut row = level(streams, Shape::Steady, messages, &through, &direct, errors);
    row.server_cpu_us_per_reply = per_reply_us(cpu, round.replies.len());
    println!(
        "    server CPU {:.0} µs per reply",
        row.server_cpu_us_per_reply
    );
    Ok(row)
}

/// `cpu` spread over `replies`, in µs (0 without replies).
fn per_reply_us(cpu: Duration, replies: usize) -> f64 {
    if replies == 0 {
        0.0
    } else {
        cpu.as_secs_f64() * 1e6 / replies as f64
    }
}

/// Gathers the replies of stream tasks into one [`Round`].
async fn collect(
    mut tasks: tokio::task::JoinSet<Vec<Result<Reply, BenchError>>>,
) -> Result<Round, BenchError> {
    let mut round = Round {
        replies: Vec::new(),
        errors: Vec::new(),
        chunk_latency: Latencies::new()?,
    };
    while let Some(joined) = tasks.join_next().await {
        let replies = joined.map_err(|e| BenchError::Process(format!("stream task: {e}")))?;
        for reply in replies {
            match reply {
                Ok(reply) => round.replies.push(reply),
                Err(e) => round.errors.push(e.to_string()),
            }
        }
    }
    Ok(round)
}

/// One summary row, printed as it is measured.
fn level(
    streams: usize,
    shape: Shape,
    rounds: usize,
    through: &Latencies,
    direct: &Latencies,
    errors: Vec<String>,
) -> TtftLevel {
    let (t, d) = (through.summary(), direct.summary());
    // Printed before the CPU figure is known; the caller prints that.
    println!(
        "  ttft @{streams} {shape}: through p50 {:.0} µs p99 {:.0} µs; direct p50 {:.0} µs p99 {:.0} µs",
        t.p50_us, t.p99_us, d.p50_us, d.p99_us
    );
    TtftLevel {
        streams,
        shape,
        rounds,
        through: t,
        direct: d,
        server_cpu_us_per_reply: 0.0,
        added_p50_us: added_us(t.p50_us, d.p50_us),
        added_p99_us: added_us(t.p99_us, d.p99_us),
        errors: errors.len(),
        first_error: errors.into_iter().next(),
    }
}

/// All N streams send at once, `rounds` times.
async fn burst(
    server: &ChatboxServer,
    http: &reqwest::Client,
    endpoint: &str,
    streams: usize,
    rounds: usize,
) -> Result<TtftLevel, BenchError> {
    let mut direct = Latencies::new()?;
    let mut through = Latencies::new()?;
    let mut errors = Vec::new();
    for _ in 0..rounds {
        let round = direct_round(http, endpoint, streams, Stamps::Ignore, Start::AtOnce).await?;
        record_ttft(&round, &mut direct);
        errors.extend(round.errors);
    }
    let mut conns: Vec<Ws> = open_all(server.addr(), streams, |i| {
        server.ws_path(&format!("ttft-burst-{streams}-{i}"))
    })
    .await?;
    let cpu_before = server.cpu_time()?;
    let mut replies = 0;
    for round_no in 0..rounds {
        let round = chat_round(
            &mut conns,
            &format!("question {round_no}"),
            Stamps::Ignore,
            Start::AtOnce,
        )
        .await?;
        record_ttft(&round, &mut through);
        replies += round.replies.len();
        errors.extend(round.errors);
    }
    let cpu = server.cpu_time()?.saturating_sub(cpu_before);
    drop(conns);
    let mut row = level(streams, Shape::Burst, rounds, &through, &direct, errors);
    row.server_cpu_us_per_reply = per_reply_us(cpu, replies);
    println!(
        "    server CPU {:.0} µs per reply",
        row.server_cpu_us_per_reply
    );
    Ok(row)
}
