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
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Test { skip_loom } => {
            xtask::test_suite::run(xtask::test_suite::TestOptions { skip_loom })
        }
    }
}
