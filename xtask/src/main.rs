//! `cargo xtask <task>`: the project's multi-step workflows (matklad's xtask pattern).
//! Thin: parses arguments and calls the library.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "chatbox project automation")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run the whole test suite, provisioning the services it needs (what CI runs).
    Test {
        /// Skip the loom models.
        #[arg(long)]
        skip_loom: bool,
        /// Skip the real-browser tests of the web UI.
        #[arg(long)]
        skip_browser: bool,
    },
    /// Production readiness: every check, the 19 issues' verdicts, and the report in
    /// target/readiness/ (exits non-zero unless every issue is resolved).
    Verify {
        /// Skip the race run and coverage (for CI).
        #[arg(long)]
        quick: bool,
        /// Also audit this configuration file as the server would load it.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
    },
    /// ThreadSanitizer run of the concurrent crates (nightly; skipped with the reason
    /// when unavailable).
    Race,
    /// Line coverage per crate with cargo-llvm-cov, against the 80 % floor.
    Coverage,
    /// Benchmarks of the real server on loopback; results in target/bench/.
    Bench {
        /// Small counts, under a minute (what `verify` runs).
        #[arg(long)]
        smoke: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Test {
            skip_loom,
            skip_browser,
        } => xtask::test_suite::run(xtask::test_suite::TestOptions {
            skip_loom,
            skip_browser,
        }),
        Task::Verify { quick, config } => {
            let options = xtask::verify::VerifyOptions { quick, config };
            if xtask::verify::run(&options)? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Task::Race => xtask::verify::race_standalone(),
        Task::Coverage => xtask::verify::coverage_standalone(),
        Task::Bench { smoke } => xtask::bench::run(xtask::bench::BenchOptions { smoke }),
    }
}
