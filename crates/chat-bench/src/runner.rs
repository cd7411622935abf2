//! One benchmark run: the six measurements in order, each on a fresh server where
//! memory matters, each failure recorded instead of aborting the rest, and the
//! results written to the output directory.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use chat_testkit::fake_llm::{FakeLlmHandle, FakeLlmServer, Script};
use tokio::process::Command;

use crate::chatbox::{ChatboxOptions, ChatboxServer};
use crate::clock::now_ns;
use crate::echo::CHUNK_TEXT;
use crate::pacer::Pacer;
use crate::plan::Plan;
use crate::process::ChildServer;
use crate::report::{Machine, Results};
use crate::scenarios::{chunk, idle, relay, soak, storage, ttft};
use crate::stamp::{StampScript, StampServer};
use crate::BenchError;

/// Pause between provider chunks in the TTFT and soak replies: streams overlap, as
/// with a real model, instead of finishing in one burst.
const PACED_CHUNK_DELAY: Duration = Duration::from_millis(5);

/// What to run and where.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Load sizes.
    pub plan: Plan,
    /// The release `chat-server` binary.
    pub server_binary: PathBuf,
    /// The binary that serves the baseline with `echo-server` (this one).
    pub baseline_binary: PathBuf,
    /// Where `results.json` and `results.md` go.
    pub out_dir: PathBuf,
    /// Run only these measurements (empty: all of them). The others are recorded as
    /// "skipped (--only)". For working on one measurement; a recorded run runs all.
    pub only: Vec<Measurement>,
}

/// One of the six measurements, as named on the command line (`--only idle,relay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Measurement {
    /// (1) Idle connection memory.
    Idle,
    /// (2) Added time to first token.
    Ttft,
    /// (3) Added per-chunk latency.
    Chunk,
    /// (4) Relay throughput.
    Relay,
    /// (5) Soak.
    Soak,
    /// (6) Storage append throughput.
    Storage,
}

/// The outcome recorded for a measurement `--only` left out.
pub const SKIPPED: &str = "skipped (--only)";

impl RunOptions {
    fn runs(&self, measurement: Measurement) -> bool {
        self.only.is_empty() || self.only.contains(&measurement)
    }
}

/// Runs every measurement and writes the results.
pub async fn run(options: &RunOptions) -> Result<Results, BenchError> {
    let started = now_ns();
    let started_at = chrono::Utc::now().to_rfc3339();
    let plan = &options.plan;
    println!("chat-bench: {} run", plan.name);
    let pacer = Pacer::start()?;
    let fake = FakeLlmServer::start(paced(10)).await?;
    let chatbox = ChatboxOptions {
        binary: options.server_binary.clone(),
        provider_endpoint: fake.openai_endpoint(),
        release_grace: plan.release_grace,
    };

    let idle = phase(
        options.runs(Measurement::Idle),
        "1. idle connection memory",
        async {
            let server = ChatboxServer::start(&chatbox).await?;
            let result = idle::run(&server, &plan.idle_levels).await;
            server.stop().await?;
            result
        },
    )
    .await;

    let ttft = phase(
        options.runs(Measurement::Ttft),
        "2. added time to first token",
        async {
            // The scripted fake, paced by tokio's timer: its chunks leave at
            // millisecond ticks, as before. At 100 streams × a chunk per 5 ms, the
            // stamping provider's exact schedule (one wake-up per chunk) costs the
            // 2-core machine more than the server does: see docs/BENCHMARKS.md.
            fake.set_default(paced(plan.ttft_chunks));
            let server = ChatboxServer::start(&chatbox).await?;
            let proxy = start_bare_proxy(options, &fake).await;
            let result = ttft::run(
                &server,
                proxy.as_ref().map_err(String::as_str),
                &fake.openai_endpoint(),
                &plan.ttft_levels,
                plan.ttft_rounds,
                plan.ttft_trials,
                PACED_CHUNK_DELAY * u32::try_from(plan.ttft_chunks).unwrap_or(u32::MAX),
                &pacer,
                &options.out_dir.join("ttft-samples.csv"),
            )
            .await;
            if let Ok(proxy) = proxy {
                proxy.stop().await?;
            }
            server.stop().await?;
            result
        },
    )
    .await;

    let chunk = phase(
        options.runs(Measurement::Chunk),
        "3. per-chunk latency",
        async {
            let script = StampScript {
                chunks: plan.chunk_count,
                delay: plan.chunk_delay,
            };
            let stamped = Stamped::start(options, script, &pacer).await?;
            let result = chunk::run_trials(
                &stamped.server,
                &stamped.stamp.endpoint(),
                chunk::ChunkLoad {
                    streams: plan.chunk_streams,
                    chunks_per_reply: plan.chunk_count,
                    chunk_delay: plan.chunk_delay,
                    warm_up: plan.chunk_warm_up,
                },
                plan.chunk_trials,
                &pacer,
            )
            .await;
            stamped.stop().await?;
            result
        },
    )
    .await;

    let relay = relay_phase(options, &fake, &chatbox).await;

    let soak = phase(options.runs(Measurement::Soak), "5. soak", async {
        fake.set_default(paced(10));
        let server = ChatboxServer::start(&chatbox).await?;
        let result = soak::run(
            &server,
            soak::SoakPlan {
                clients: plan.soak_clients,
                warm_up: plan.soak_warm_up,
                duration: plan.soak_duration,
                every: plan.soak_sample_every,
                recovery: plan.soak_recovery,
            },
        )
        .await;
        server.stop().await?;
        result
    })
    .await;
    fake.shutdown().await;

    let embedded = phase(
        options.runs(Measurement::Storage),
        "6a. storage: embedded",
        storage::embedded(plan.storage_appends, plan.storage_writers),
    )
    .await;
    let mongodb = phase(
        options.runs(Measurement::Storage),
        "6b. storage: MongoDB (SecantusDB)",
        storage::mongodb(plan.storage_appends, plan.storage_writers),
    )
    .await;

    let mut results = Results {
        plan: plan.clone(),
        machine: Machine::detect(),
        started_at,
        duration_s: now_ns().saturating_sub(started) as f64 / 1e9,
        idle,
        ttft,
        chunk,
        relay,
        soak,
        storage: vec![embedded, mongodb],
        checks: Vec::new(),
    };
    results.judge();
    results.write(&options.out_dir)?;
    Ok(results)
}

/// The stamping provider and a `chat-server` relaying it: (3).
struct Stamped {
    stamp: StampServer,
    server: ChatboxServer,
}

impl Stamped {
    async fn start(
        options: &RunOptions,
        script: StampScript,
        pacer: &Pacer,
    ) -> Result<Self, BenchError> {
        let stamp = StampServer::start(script, pacer.clone()).await?;
        let server = ChatboxServer::start(&ChatboxOptions {
            binary: options.server_binary.clone(),
            provider_endpoint: stamp.endpoint(),
            release_grace: options.plan.release_grace,
        })
        .await?;
        Ok(Self { stamp, server })
    }

    async fn stop(self) -> Result<(), BenchError> {
        let stopped = self.server.stop().await;
        self.stamp.shutdown().await;
        stopped
    }
}

/// (4): a server relaying the scripted fake provider, next to the bare echo server.
async fn relay_phase(
    options: &RunOptions,
    fake: &FakeLlmHandle,
    chatbox: &ChatboxOptions,
) -> Result<relay::RelayResult, String> {
    let plan = &options.plan;
    phase(
        options.runs(Measurement::Relay),
        "4. relay throughput",
        async {
            let server = ChatboxServer::start(chatbox).await?;
            fake.set_default(Script::reply(vec![CHUNK_TEXT; plan.throughput_chunks]));
            let mut command = Command::new(&options.baseline_binary);
            command.arg("echo-server");
            let echo = ChildServer::spawn(command).await?;
            // The floor: the bare proxy relaying the same provider stream. Best
            // effort: without it the ratio is still measured.
            let mut proxy = start_bare_proxy(options, fake).await;
            // Alternated, so that a slow moment of the shared machine hits one
            // trial, not one side.
            let mut trials = Vec::with_capacity(plan.throughput_trials);
            let mut failure = None;
            // The echo baseline and the bare proxy are driven the same way.
            let deliver_bare = |addr| {
                relay::deliver(
                    addr,
                    plan.throughput_clients,
                    plan.throughput_chunks,
                    plan.throughput_rounds,
                    |_| Ok("/".to_owned()),
                )
            };
            for _ in 0..plan.throughput_trials.max(1) {
                let chatbox = relay::deliver(
                    server.addr(),
                    plan.throughput_clients,
                    plan.throughput_chunks,
                    plan.throughput_rounds,
                    |i| server.ws_path(&format!("relay-{i}")),
                )
                .await;
                let baseline = deliver_bare(echo.addr()).await;
                let floor = match &proxy {
                    Ok(proxy) => deliver_bare(proxy.addr())
                        .await
                        .map_err(|e| format!("through the bare proxy: {e}")),
                    Err(e) => Err(e.clone()),
                };
                match (chatbox, baseline) {
                    (Ok(chatbox), Ok(baseline)) => {
                        let mut trial = relay::RelayTrial::new(chatbox, baseline);
                        let floor_text = match floor {
                            Ok(floor) => {
                                trial = trial.with_floor(floor);
                                format!(
                                    "bare proxy {:.0} chunks/s ({:.2}×)",
                                    floor.chunks_per_s,
                                    trial.floor_ratio.unwrap_or_default()
                                )
                            }
                            Err(e) => {
                                // Stop asking a proxy that failed once.
                                proxy = Err(e.clone());
                                format!("bare proxy not measured: {e}")
                            }
                        };
                        println!(
                            "  relay: chatbox {:.0} chunks/s, baseline {:.0} chunks/s ({:.2}×); {floor_text}",
                            chatbox.chunks_per_s, baseline.chunks_per_s, trial.ratio
                        );
                        trials.push(trial);
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            let floor_error = match proxy {
                Ok(proxy) => {
                    proxy.stop().await?;
                    None
                }
                Err(e) => Some(e),
            };
            echo.stop().await?;
            server.stop().await?;
            if let Some(e) = failure {
                return Err(e);
            }
            relay::RelayResult::from_trials(
                plan.throughput_clients,
                plan.throughput_chunks,
                plan.throughput_rounds,
                trials,
            )
            .map(|mut result| {
                result.floor_error = floor_error;
                result
            })
            .ok_or_else(|| BenchError::Process("no relay trial ran".to_owned()))
        },
    )
    .await
}

/// The bare proxy (`echo-server --upstream`) in front of `fake`: the floor of the
/// TTFT and relay measurements. An error is the reason it is missing.
async fn start_bare_proxy(
    options: &RunOptions,
    fake: &FakeLlmHandle,
) -> Result<ChildServer, String> {
    let mut command = Command::new(&options.baseline_binary);
    command
        .arg("echo-server")
        .arg("--upstream")
        .arg(fake.openai_endpoint());
    ChildServer::spawn(command)
        .await
        .map_err(|e| format!("the bare proxy did not start: {e}"))
}

/// A reply of `chunks` short words, paced by [`PACED_CHUNK_DELAY`].
fn paced(chunks: usize) -> Script {
    Script::reply((0..chunks).map(|i| format!("word{i} "))).chunk_delay(PACED_CHUNK_DELAY)
}

/// Runs one measurement with a heading (unless `selected` is false); its error
/// becomes the recorded outcome.
async fn phase<T>(
    selected: bool,
    title: &str,
    work: impl Future<Output = Result<T, BenchError>>,
) -> Result<T, String> {
    if !selected {
        return Err(SKIPPED.to_owned());
    }
    println!("-- {title}");
    let start = now_ns();
    let result = work.await.map_err(|e| e.to_string());
    let secs = now_ns().saturating_sub(start) as f64 / 1e9;
    match &result {
        Ok(_) => println!("   done in {secs:.1} s"),
        Err(e) => println!("   FAILED after {secs:.1} s: {e}"),
    }
    result
}
