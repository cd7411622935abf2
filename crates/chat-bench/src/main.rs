//! `chat-bench`: the load generator behind `cargo xtask bench` (thin: parses the
//! command line and calls the library).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc, like the server, instead of glibc malloc: the harness's clients, its fake
/// providers and the bare baselines allocate on one worker and free on another all
/// the time, and glibc's per-arena locks made the load generator block on `malloc`
/// (1 100 futex waits a second at 100 streams, 63 % of its futex calls) — stalls of
/// the measuring side that landed in both the direct and the through latencies.
/// See docs/BENCHMARKS.md (tenth pass).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// chatbox benchmarks: measures the real `chat-server` on loopback.
#[derive(Debug, Parser)]
#[command(name = "chat-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every measurement and write results.json and results.md.
    Run {
        /// Small counts (under a minute) instead of the full run.
        #[arg(long)]
        smoke: bool,
        /// The chat-server binary to measure.
        #[arg(long)]
        server: PathBuf,
        /// Output directory.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
        /// Run only these measurements (comma-separated); the others are recorded
        /// as skipped. For working on one measurement.
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<chat_bench::Measurement>,
        /// Soak for this many seconds instead of the plan's duration (the recovery
        /// wait is unchanged). For working on the soak without its full 10 minutes.
        #[arg(long)]
        soak_secs: Option<u64>,
        /// Soak with this many clients instead of the plan's.
        #[arg(long)]
        soak_clients: Option<usize>,
        /// Measure the added TTFT at these numbers of streams (comma-separated)
        /// instead of the plan's 1, 100 and 1 000: `--only ttft --ttft-streams 100`
        /// runs the level the target is judged at, five trials, in seconds.
        #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=100_000))]
        ttft_streams: Vec<u32>,
        /// Stop the run, and every server it started, when standard input (a pipe
        /// the parent holds) reaches end of file: the parent is gone, however it
        /// ended. `cargo xtask bench` passes it.
        #[arg(long)]
        stop_when_stdin_closes: bool,
    },
    /// Serve the bare tokio-tungstenite baseline until standard input closes.
    EchoServer {
        /// Relay replies streamed from this OpenAI-compatible provider
        /// (`http://ADDR/v1`) instead of echoing: the bare proxy, the TTFT floor.
        #[arg(long)]
        upstream: Option<String>,
    },
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Cli::parse().command {
        Command::EchoServer { upstream } => {
            let served = upstream
                .as_deref()
                .map(chat_bench::echo::Upstream::new)
                .transpose()
                .and_then(|upstream| runtime.block_on(chat_bench::echo::run_process(upstream)));
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("echo-server: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            smoke,
            server,
            out,
            only,
            soak_secs,
            soak_clients,
            ttft_streams,
            stop_when_stdin_closes,
        } => {
            let plan = plan(smoke, soak_secs, soak_clients, &ttft_streams);
            let options = match std::env::current_exe() {
                Ok(me) => chat_bench::RunOptions {
                    plan,
                    server_binary: server,
                    baseline_binary: me,
                    out_dir: out.clone(),
                    only: only.clone(),
                },
                Err(e) => {
                    eprintln!("cannot locate chat-bench itself: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let finished = runtime.block_on(chat_bench::interrupt::or_interrupted(
                chat_bench::run(&options),
                stop_when_stdin_closes,
            ));
            let run = match finished {
                Ok(run) => run,
                Err(signal) => {
                    eprintln!(
                        "chat-bench: stopped by {}; the servers it started were stopped",
                        signal.name()
                    );
                    return ExitCode::from(signal.exit_code());
                }
            };
            match run {
                Ok(results) => {
                    println!();
                    println!(
                        "{}",
                        results
                            .markdown()
                            .lines()
                            .take(3 + results.checks.len() + 3)
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                    println!(
                        "bench: {} checks, {} missed, {} not measured; results in {}",
                        results.checks.len(),
                        results.failed(),
                        results.not_measured(),
                        out.join("results.md").display()
                    );
                    let skipped = if only.is_empty() {
                        0
                    } else {
                        results.skipped()
                    };
                    if results.not_measured() > skipped {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("chat-bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The plan `run` measures: the full or smoke plan with the command line's overrides.
fn plan(
    smoke: bool,
    soak_secs: Option<u64>,
    soak_clients: Option<usize>,
    ttft_streams: &[u32],
) -> chat_bench::Plan {
    let mut plan = if smoke {
        chat_bench::Plan::smoke()
    } else {
        chat_bench::Plan::full()
    };
    if let Some(secs) = soak_secs {
        plan.soak_duration = std::time::Duration::from_secs(secs);
    }
    if let Some(clients) = soak_clients {
        plan.soak_clients = clients;
    }
    if !ttft_streams.is_empty() {
        plan.ttft_levels = ttft_streams.iter().map(|&n| n as usize).collect();
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<chat_bench::Plan, clap::Error> {
        let cli = Cli::try_parse_from(
            [
                "chat-bench",
                "run",
                "--server",
                "target/release/chat-server",
            ]
            .iter()
            .chain(args),
        )?;
        let Command::Run {
            smoke,
            soak_secs,
            soak_clients,
            ttft_streams,
            ..
        } = cli.command
        else {
            panic!("not a run");
        };
        Ok(plan(smoke, soak_secs, soak_clients, &ttft_streams))
    }

    #[test]
    fn ttft_streams_replace_the_plans_levels_and_nothing_else() {
        let full = chat_bench::Plan::full();
        let plan = parsed(&["--ttft-streams", "100"]).unwrap();
        assert_eq!(plan.ttft_levels, vec![100]);
        assert_eq!(plan.ttft_trials, full.ttft_trials);
        assert_eq!(plan.idle_levels, full.idle_levels);
        let plan = parsed(&["--smoke", "--ttft-streams", "100,1000"]).unwrap();
        assert_eq!(plan.ttft_levels, vec![100, 1_000]);
        assert_eq!(plan.ttft_trials, chat_bench::Plan::smoke().ttft_trials);
        assert_eq!(parsed(&[]).unwrap().ttft_levels, full.ttft_levels);
    }

    #[test]
    fn ttft_streams_must_be_counts_of_streams() {
        for bad in ["0", "many", "100,-1"] {
            let error = parsed(&["--ttft-streams", bad]).err();
            assert!(error.is_some(), "{bad} accepted");
        }
    }
}
