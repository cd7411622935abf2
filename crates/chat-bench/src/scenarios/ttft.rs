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
//!
//! Each steady round is preceded by a **warm-up**: one unmeasured reply per stream,
//! all at once, through the same path (as other users, so the measured streams
//! still open new conversations). It leaves the gateway's pool of provider
//! connections — and the direct client's — holding as many connections as the round
//! needs, as in a gateway that has been serving this load for a while. Without it
//! the streams that start last each wait for a new provider connection while the
//! first ones already stream, and that cold start, not the steady state, sets the
//! p99 (docs/BENCHMARKS.md, seventh pass).
//!
//! At each level the steady shape also runs through the **bare proxy**
//! ([`crate::echo`] with an upstream): a WebSocket server that relays the same
//! provider with nothing else in between. What it adds is the floor any gateway pays
//! on this machine for the extra WebSocket and HTTP hops; chatbox's added TTFT is
//! reported next to it.
//!
//! Every steady sample through chatbox and through the bare proxy is also written to
//! `ttft-samples.csv` next to the results: which stream, which of its messages, when
//! it was sent in its round and its TTFT. The p99 of a round is its fifth-slowest
//! sample, and whether the slow ones come alone or in groups sent together says what
//! held them (docs/BENCHMARKS.md, *What the p99 samples are*).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chatbox::ChatboxServer;
use crate::client::{chat, Reply, Ws};
use crate::direct::stream_reply;
use crate::histogram::{Latencies, Summary};
use crate::pacer::Pacer;
use crate::process::ChildServer;
use crate::scenarios::{
    self, added_us, chat_round, direct_round, open_all, record_ttft, Round, Stamps, Start,
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

/// A WebSocket server the TTFT clients talk to: chatbox, or the bare proxy.
pub trait Gateway {
    /// Where it listens.
    fn addr(&self) -> SocketAddr;
    /// The WebSocket path for `user` (with whatever credentials it wants).
    fn ws_path(&self, user: &str) -> Result<String, BenchError>;
    /// CPU time its process has used so far.
    fn cpu_time(&self) -> Result<Duration, BenchError>;
}

impl Gateway for ChatboxServer {
    fn addr(&self) -> SocketAddr {
        ChatboxServer::addr(self)
    }

    fn ws_path(&self, user: &str) -> Result<String, BenchError> {
        ChatboxServer::ws_path(self, user)
    }

    fn cpu_time(&self) -> Result<Duration, BenchError> {
        ChatboxServer::cpu_time(self)
    }
}

/// The bare proxy (`chat-bench echo-server --upstream`): no credentials.
impl Gateway for ChildServer {
    fn addr(&self) -> SocketAddr {
        ChildServer::addr(self)
    }

    fn ws_path(&self, _user: &str) -> Result<String, BenchError> {
        Ok("/".to_owned())
    }

    fn cpu_time(&self) -> Result<Duration, BenchError> {
        ChildServer::cpu_time(self)
    }
}

/// The steady shape through the bare proxy, at the same level (module docs).
#[derive(Debug, Clone, Serialize)]
pub struct ProxyFloor {
    /// Through the bare proxy.
    pub through: Summary,
    /// Its CPU time per reply, in µs (`None`: too little CPU time to resolve).
    pub cpu_us_per_reply: Option<f64>,
    /// through.p50 − direct.p50 (the same direct round as chatbox's).
    pub added_p50_us: f64,
    /// through.p99 − direct.p99.
    pub added_p99_us: f64,
    /// Replies that failed.
    pub errors: usize,
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
    /// `None` when the round used too little CPU for `/proc`'s 10 ms ticks to
    /// resolve (a handful of replies at one stream).
    pub server_cpu_us_per_reply: Option<f64>,
    /// through.p50 − direct.p50.
    pub added_p50_us: f64,
    /// through.p99 − direct.p99.
    pub added_p99_us: f64,
    /// The added p99 of every trial, in run order (steady: this row is the trial with
    /// the median of these; burst: one trial).
    pub trials_added_p99_us: Vec<f64>,
    /// Replies that failed (either path, every trial).
    pub errors: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Steady shape only: the same load through the bare proxy, or why it could not
    /// be measured (a floor that failed does not take chatbox's row with it).
    pub bare_proxy: Option<Result<ProxyFloor, String>>,
}

/// Measures each level, steady then burst; the fake provider behind `server` (and
/// `proxy`, or why it did not start) is at `endpoint` and takes about `reply` to
/// stream one reply. The steady shape runs `trials` times in a row (direct, chatbox,
/// bare proxy each time); the trial with the median added p99 is reported
/// ([`median_level`]).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    server: &ChatboxServer,
    proxy: Result<&ChildServer, &str>,
    endpoint: &str,
    levels: &[usize],
    rounds: usize,
    trials: usize,
    reply: Duration,
    pacer: &Pacer,
    samples_csv: &Path,
) -> Result<Vec<TtftLevel>, BenchError> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    let mut samples = SampleLog::default();
    for &streams in levels {
        let load = SteadyLoad::new(streams, rounds, reply, pacer);
        let mut steady = Vec::with_capacity(trials.max(1));
        for trial in 0..trials.max(1) {
            steady.push(
                steady_trial(&load, server, proxy, &http, endpoint, trial, &mut samples).await?,
            );
        }
        let row = median_level(steady)
            .ok_or_else(|| BenchError::Process("no steady TTFT trial ran".to_owned()))?;
        if trials > 1 {
            println!(
                "  ttft @{streams} steady: median of {} trials, added p99 {:.0} µs",
                row.trials_added_p99_us.len(),
                row.added_p99_us
            );
        }
        out.push(row);
        out.push(burst(server, &http, endpoint, streams, rounds).await?);
    }
    // The samples are for reading the results; the measurement stands without them.
    match samples.write(samples_csv) {
        Ok(()) => println!("  ttft: every steady sample in {}", samples_csv.display()),
        Err(e) => eprintln!("  ttft: could not write {}: {e}", samples_csv.display()),
    }
    Ok(out)
}

/// One trial of the steady shape: direct, through chatbox, through the bare proxy,
/// each with its warm-up; trial `trial`'s streams are users of their own, so they
/// open new conversations as the first trial's do.
async fn steady_trial(
    load: &SteadyLoad<'_>,
    server: &ChatboxServer,
    proxy: Result<&ChildServer, &str>,
    http: &reqwest::Client,
    endpoint: &str,
    trial: usize,
    samples: &mut SampleLog,
) -> Result<TtftLevel, BenchError> {
    let (direct, mut errors) = load.direct(http, endpoint).await?;
    let chatbox = load
        .through(server, &format!("ttft-steady-{trial}"))
        .await?;
    samples.add(load.streams, trial, "chatbox", &chatbox.samples);
    let floor = match proxy {
        Ok(proxy) => load
            .through(proxy, &format!("ttft-proxy-{trial}"))
            .await
            .map_err(|e| format!("the bare proxy: {e}")),
        Err(e) => Err(e.to_owned()),
    };
    if let Ok(floor) = &floor {
        samples.add(load.streams, trial, "bare_proxy", &floor.samples);
    }
    errors.extend(chatbox.errors);
    let mut row = level(
        load.streams,
        Shape::Steady,
        load.messages,
        &chatbox.latencies,
        &direct,
        errors,
    );
    row.server_cpu_us_per_reply = chatbox.cpu_us_per_reply;
    row.bare_proxy = Some(floor.map(|floor| ProxyFloor::new(&floor, &direct)));
    match &row.bare_proxy {
        Some(Ok(f)) => println!(
            "    server CPU {} per reply; bare proxy: through p50 {:.0} µs p99 {:.0} µs, CPU {} per reply",
            cpu_text(row.server_cpu_us_per_reply),
            f.through.p50_us,
            f.through.p99_us,
            cpu_text(f.cpu_us_per_reply)
        ),
        _ => println!(
            "    server CPU {} per reply; bare proxy not measured",
            cpu_text(row.server_cpu_us_per_reply)
        ),
    }
    Ok(row)
}

/// The steady trial with the median added p99 (its own through, direct, CPU and
/// floor), carrying every trial's added p99 in run order and the errors of all of
/// them.
fn median_level(trials: Vec<TtftLevel>) -> Option<TtftLevel> {
    let errors: usize = trials.iter().map(|t| t.errors).sum();
    let first_error = trials.iter().find_map(|t| t.first_error.clone());
    let (mut median, all) = scenarios::median_trial(trials, |t| t.added_p99_us)?;
    median.trials_added_p99_us = all;
    median.errors = errors;
    median.first_error = first_error;
    Some(median)
}

impl ProxyFloor {
    /// The floor from the proxy's round and the direct round of the same level.
    fn new(through: &Through, direct: &Latencies) -> Self {
        let (f, d) = (through.latencies.summary(), direct.summary());
        Self {
            added_p50_us: added_us(f.p50_us, d.p50_us),
            added_p99_us: added_us(f.p99_us, d.p99_us),
            through: f,
            cpu_us_per_reply: through.cpu_us_per_reply,
            errors: through.errors.len(),
        }
    }
}

/// N streams in flight, each sending `messages` messages back to back.
struct SteadyLoad<'a> {
    streams: usize,
    messages: usize,
    start: Start<'a>,
}

/// The steady load through one gateway.
struct Through {
    latencies: Latencies,
    errors: Vec<String>,
    cpu_us_per_reply: Option<f64>,
    /// Every sample, in no particular order.
    samples: Vec<Sample>,
}

/// One steady TTFT sample through a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    /// The stream (0-based, in start order).
    stream: usize,
    /// Which of the stream's messages (0 = its first; through chatbox, the one that
    /// opens its conversation).
    message: usize,
    /// When it was sent, from the start of its round.
    sent_us: u64,
    ttft_us: u64,
}

/// The steady samples of a run, for `ttft-samples.csv`.
#[derive(Default)]
pub struct SampleLog {
    rows: Vec<(usize, usize, &'static str, Sample)>,
}

impl SampleLog {
    fn add(&mut self, streams: usize, trial: usize, path: &'static str, samples: &[Sample]) {
        let mut samples = samples.to_vec();
        samples.sort_by_key(|s| (s.stream, s.message));
        self.rows
            .extend(samples.into_iter().map(|s| (streams, trial, path, s)));
    }

    /// The rows as CSV, one sample per line after a header.
    pub fn to_csv(&self) -> String {
        let mut csv = String::from("streams,trial,path,stream,message,sent_us,ttft_us\n");
        for (streams, trial, path, s) in &self.rows {
            csv.push_str(&format!(
                "{streams},{trial},{path},{},{},{},{}\n",
                s.stream, s.message, s.sent_us, s.ttft_us
            ));
        }
        csv
    }

    /// Writes [`Self::to_csv`] to `path` (creating its directory).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.to_csv())
    }
}

impl<'a> SteadyLoad<'a> {
    /// Streams start `reply / streams` apart on `pacer`'s clock.
    fn new(streams: usize, messages: usize, reply: Duration, pacer: &'a Pacer) -> Self {
        let stagger = reply / u32::try_from(streams.max(1)).unwrap_or(u32::MAX);
        Self {
            streams,
            messages,
            start: Start::Spread {
                every: stagger,
                pacer,
            },
        }
    }

    /// One unmeasured reply per stream through `gateway`, all at once, as users
    /// `{user}-warm-{streams}-{i}` (module docs). Failed replies are not an error
    /// here: the measured round that follows reports its own.
    async fn warm_up(&self, gateway: &dyn Gateway, user: &str) -> Result<(), BenchError> {
        let streams = self.streams;
        let mut conns = open_all(gateway.addr(), streams, |i| {
            gateway.ws_path(&format!("{user}-warm-{streams}-{i}"))
        })
        .await?;
        chat_round(&mut conns, "warm-up", Stamps::Ignore, Start::AtOnce).await?;
        Ok(())
    }

    /// Straight from the provider: the TTFTs and the failures.
    async fn direct(
        &self,
        http: &reqwest::Client,
        endpoint: &str,
    ) -> Result<(Latencies, Vec<String>), BenchError> {
        let (streams, messages, start) = (self.streams, self.messages, self.start);
        // The warm-up (module docs); its replies are not measured.
        direct_round(http, endpoint, streams, Stamps::Ignore, Start::AtOnce).await?;
        let mut direct = Latencies::new()?;
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
        Ok((direct, round.errors))
    }

    /// Through `gateway`, as users `{user}-{streams}-{i}`.
    async fn through(&self, gateway: &dyn Gateway, user: &str) -> Result<Through, BenchError> {
        let (streams, messages, start) = (self.streams, self.messages, self.start);
        self.warm_up(gateway, user).await?;
        let conns = open_all(gateway.addr(), streams, |i| {
            gateway.ws_path(&format!("{user}-{streams}-{i}"))
        })
        .await?;
        let cpu_before = gateway.cpu_time()?;
        let mut tasks = tokio::task::JoinSet::new();
        let samples = Arc::new(Mutex::new(Vec::with_capacity(streams * messages)));
        let began = Instant::now();
        let began_ns = crate::clock::now_ns();
        for (i, mut ws) in conns.into_iter().enumerate() {
            let wait = start.wait(began, i);
            let samples = samples.clone();
            tasks.spawn(async move {
                wait.await;
                let mut replies = Vec::with_capacity(messages);
                for n in 0..messages {
                    let reply = chat(&mut ws, &format!("question {n}"), |_, _| {}).await;
                    if let Ok(Reply {
                        sent_ns,
                        first_chunk_ns: Some(first),
                        ..
                    }) = &reply
                    {
                        let sample = Sample {
                            stream: i,
                            message: n,
                            sent_us: sent_ns.saturating_sub(began_ns) / 1_000,
                            ttft_us: first.saturating_sub(*sent_ns) / 1_000,
                        };
                        samples
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(sample);
                    }
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
        let cpu = gateway.cpu_time()?.saturating_sub(cpu_before);
        let mut latencies = Latencies::new()?;
        record_ttft(&round, &mut latencies);
        let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(Through {
            latencies,
            errors: round.errors,
            cpu_us_per_reply: per_reply_us(cpu, round.replies.len()),
            samples,
        })
    }
}

/// Less CPU time than this is not spread over replies: `/proc` counts in 10 ms
/// ticks, so below 100 ms the figure would be off by more than 10 %.
const MIN_CPU_RESOLVED: Duration = Duration::from_millis(100);

/// `cpu` spread over `replies`, in µs; `None` without replies or when `cpu` is too
/// small to resolve ([`MIN_CPU_RESOLVED`]).
fn per_reply_us(cpu: Duration, replies: usize) -> Option<f64> {
    (replies > 0 && cpu >= MIN_CPU_RESOLVED).then(|| cpu.as_secs_f64() * 1e6 / replies as f64)
}

/// A CPU-per-reply figure for the console and the report.
pub fn cpu_text(us: Option<f64>) -> String {
    us.map_or_else(
        || "too little to resolve".to_owned(),
        |us| format!("{us:.0} µs"),
    )
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
        server_cpu_us_per_reply: None,
        added_p50_us: added_us(t.p50_us, d.p50_us),
        added_p99_us: added_us(t.p99_us, d.p99_us),
        trials_added_p99_us: vec![added_us(t.p99_us, d.p99_us)],
        errors: errors.len(),
        first_error: errors.into_iter().next(),
        bare_proxy: None,
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
        "    server CPU {} per reply",
        cpu_text(row.server_cpu_us_per_reply)
    );
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady_trial_row(added_p99_us: f64, errors: Vec<String>) -> TtftLevel {
        let latencies = |us: u64| {
            let mut l = Latencies::new().unwrap();
            l.record_ns(us * 1_000);
            l
        };
        let mut row = level(
            100,
            Shape::Steady,
            5,
            &latencies(1_000 + added_p99_us as u64),
            &latencies(1_000),
            errors,
        );
        row.server_cpu_us_per_reply = Some(added_p99_us);
        row
    }

    #[test]
    fn the_median_steady_trial_is_reported_with_every_trial_and_all_errors() {
        let picked = median_level(vec![
            steady_trial_row(3_000.0, Vec::new()),
            steady_trial_row(700.0, vec!["first".to_owned()]),
            steady_trial_row(1_200.0, Vec::new()),
            steady_trial_row(900.0, Vec::new()),
            steady_trial_row(2_000.0, vec!["second".to_owned(), "third".to_owned()]),
        ])
        .unwrap();
        let near = |a: f64, b: f64| (a - b).abs() <= b * 0.01;
        assert!(
            near(picked.added_p99_us, 1_200.0),
            "{}",
            picked.added_p99_us
        );
        // The median trial's own figures travel with it.
        assert_eq!(picked.server_cpu_us_per_reply, Some(1_200.0));
        let trials = &picked.trials_added_p99_us;
        assert_eq!(trials.len(), 5);
        for (got, want) in trials.iter().zip([3_000.0, 700.0, 1_200.0, 900.0, 2_000.0]) {
            assert!(near(*got, want), "{trials:?}");
        }
        assert_eq!(picked.errors, 3);
        assert_eq!(picked.first_error.as_deref(), Some("first"));
        assert!(median_level(Vec::new()).is_none());
    }

    #[test]
    fn cpu_per_reply_is_only_reported_when_proc_ticks_can_resolve_it() {
        // Five replies in one 10 ms tick: "2 000 µs per reply" would be noise.
        assert_eq!(per_reply_us(Duration::from_millis(10), 5), None);
        assert_eq!(per_reply_us(Duration::from_secs(1), 0), None);
        let us = per_reply_us(Duration::from_millis(350), 500);
        assert_eq!(us.map(f64::round), Some(700.0));
        assert_eq!(cpu_text(us), "700 µs");
        assert_eq!(cpu_text(None), "too little to resolve");
    }

    /// The bare proxy, served in this process.
    struct InProcess(SocketAddr);

    impl Gateway for InProcess {
        fn addr(&self) -> SocketAddr {
            self.0
        }

        fn ws_path(&self, _user: &str) -> Result<String, BenchError> {
            Ok("/".to_owned())
        }

        fn cpu_time(&self) -> Result<Duration, BenchError> {
            Ok(Duration::ZERO)
        }
    }

    #[tokio::test]
    async fn a_steady_round_streams_over_a_warm_provider_pool_and_measures_only_its_own_replies() {
        use chat_testkit::fake_llm::{FakeLlmServer, Script};
        // Replies long enough that the warm-up's streams overlap at the provider.
        let script = Script::reply(["a", "b"]).header_delay(Duration::from_millis(50));
        let fake = FakeLlmServer::start(script).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = InProcess(listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let upstream = crate::echo::Upstream::new(&fake.openai_endpoint()).unwrap();
        let server = tokio::spawn(crate::echo::serve(listener, stop.clone(), Some(upstream)));
        let pacer = Pacer::start().unwrap();
        let (streams, messages) = (4, 3);
        let load = SteadyLoad::new(streams, messages, Duration::from_millis(60), &pacer);

        // The warm-up leaves one provider connection per stream in the gateway's pool.
        load.warm_up(&proxy, "first").await.unwrap();
        assert_eq!(fake.request_count(), streams);
        assert_eq!(fake.connections_accepted(), streams);

        // A round warms up first; only its own replies are samples.
        let through = load.through(&proxy, "then").await.unwrap();
        assert!(through.errors.is_empty(), "{:?}", through.errors);
        assert_eq!(through.latencies.count(), (streams * messages) as u64);
        // Every sample is kept with its stream and message, for ttft-samples.csv.
        let mut log = SampleLog::default();
        log.add(streams, 0, "bare_proxy", &through.samples);
        let csv = log.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "streams,trial,path,stream,message,sent_us,ttft_us"
        );
        assert_eq!(lines.len(), 1 + streams * messages);
        for (k, line) in lines[1..].iter().enumerate() {
            let fields: Vec<&str> = line.split(',').collect();
            let (stream, message) = (k / messages, k % messages);
            assert_eq!(
                fields[..5],
                [
                    "4",
                    "0",
                    "bare_proxy",
                    &stream.to_string(),
                    &message.to_string()
                ]
            );
            let ttft_us: u64 = fields[6].parse().unwrap();
            // The fake holds its headers 50 ms.
            assert!(ttft_us >= 50_000, "{line}");
        }
        // A stream's messages leave one after another, each after the last reply.
        let sent = |stream: usize, message: usize| {
            through
                .samples
                .iter()
                .find(|s| s.stream == stream && s.message == message)
                .unwrap()
                .sent_us
        };
        assert!(sent(0, 1) >= sent(0, 0) + 50_000);
        assert_eq!(fake.request_count(), 2 * streams + streams * messages);

        // So does the direct round.
        let http = reqwest::Client::new();
        let (direct, errors) = load.direct(&http, &fake.openai_endpoint()).await.unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(direct.count(), (streams * messages) as u64);
        assert_eq!(fake.request_count(), 3 * streams + 2 * streams * messages);

        stop.cancel();
        server.await.unwrap();
        fake.shutdown().await;
    }
}
