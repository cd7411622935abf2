//! The command line: `serve` (default), `check-config <file>`, `token`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chat_config::{Config, ProcessEnv};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::{app, logging, shutdown};

/// Exit code for an invalid configuration (distinct from runtime failures).
pub const EXIT_INVALID_CONFIG: u8 = 2;

/// chatbox — a production LLM chat gateway.
#[derive(Debug, Parser)]
#[command(name = "chat-server", version, about)]
struct Cli {
    /// Configuration file (TOML). Without one, development defaults are used.
    #[arg(long, global = true, env = "CHATBOX_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Validate a configuration file (plus the environment) and print every problem.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}

/// Parses arguments, runs the chosen command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => run_serve(cli.config),
        Command::CheckConfig { file } => check_config(&file),
    }
}

fn load_or_report(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path, &ProcessEnv).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(EXIT_INVALID_CONFIG)
    })
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match load_or_report(Some(file)) {
        Ok(config) => {
            println!(
                "{}: valid ({:?} mode, {} provider(s), {:?} storage)",
                file.display(),
                config.mode,
                config.llm.providers.len(),
                config.storage.backend
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn run_serve(path: Option<PathBuf>) -> ExitCode {
    let config = match load_or_report(path.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    logging::init(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_until_signal(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "server failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_until_signal(config: Config) -> anyhow::Result<()> {
    let addr = SocketAddr::new(config.server.host, u16::try_from(config.server.port)?);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let base = config.public_base_url(local.port());
    // Machine-readable line: tests and scripts read the bound port from it.
    println!("listening on {local}");
    println!("chatbox {} at {}", config.route("/"), base);
    tracing::info!(addr = %local, mode = ?config.mode, "chatbox listening");
    let token = CancellationToken::new();
    let signals = tokio::spawn(shutdown::cancel_on_signal(token.clone()));
    let result = app::serve(config, listener, token.clone()).await;
    token.cancel();
    signals.await?;
    result
}
