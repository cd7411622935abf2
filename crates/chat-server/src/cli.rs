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
    /// Mint a JWT signed with the configured secret (JWT_SECRET or auth.jwt_secret).
    Token {
        /// The user id (`user_id` claim).
        #[arg(long)]
        user: String,
        /// Add the `admin` role.
        #[arg(long)]
        admin: bool,
        /// Display name (`name` claim; defaults to the user id).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, e.g. `1h`, `30m`, `7d`.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
    },
}

/// Parses arguments, runs the chosen command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => run_serve(cli.config),
        Command::CheckConfig { file } => check_config(&file),
        Command::Token {
            user,
            admin,
            name,
            ttl,
        } => token(cli.config.as_deref(), &user, admin, name.as_deref(), ttl),
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

fn token(
    path: Option<&std::path::Path>,
    user: &str,
    admin: bool,
    name: Option<&str>,
    ttl: std::time::Duration,
) -> ExitCode {
    let config = match load_or_report(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.jwt_secret_generated() {
        eprintln!(
            "no JWT secret is configured (set JWT_SECRET or auth.jwt_secret); in development \
             without one, the server prints sign-in links with tokens when it starts"
        );
        return ExitCode::from(EXIT_INVALID_CONFIG);
    }
    let roles: &[&str] = if admin { &["admin"] } else { &[] };
    match mint(&config, user, name, roles, ttl) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot mint a token: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A token signed with the configured secret and the first allowed algorithm.
pub fn mint(
    config: &Config,
    user: &str,
    name: Option<&str>,
    roles: &[&str],
    ttl: std::time::Duration,
) -> Result<String, chat_auth::AuthError> {
    let algorithm = config
        .auth
        .algorithms
        .first()
        .copied()
        .unwrap_or(chat_config::JwtAlgorithm::HS256);
    chat_auth::TokenIssuer::new(config.jwt_secret(), algorithm)?.issue(user, name, roles, ttl)
}

/// Development convenience: ready-to-open links for a local user and an admin.
fn print_dev_links(config: &Config, base: &str) {
    let ttl = std::time::Duration::from_secs(12 * 60 * 60);
    let user = mint(config, "local-user", Some("Local User"), &[], ttl);
    let admin = mint(config, "local-admin", Some("Local Admin"), &["admin"], ttl);
    match (user, admin) {
        (Ok(user), Ok(admin)) => {
            let chat = config.route("/ui/");
            let admin_page = config.route("/ui/admin");
            println!();
            println!("Development mode: open these links (tokens valid 12h, until restart):");
            println!("  chat as a user:  {base}{chat}?token={user}");
            println!("  admin console:   {base}{admin_page}?token={admin}");
            println!(
                "  WebSocket:       {}{}?token={user}",
                base.replacen("http", "ws", 1),
                config.route("/ws")
            );
            println!();
        }
        (Err(e), _) | (_, Err(e)) => eprintln!("cannot mint development tokens: {e}"),
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
        .on_thread_park(crate::allocator::flush_thread_cache_if_requested)
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
    println!("chatbox at {base}{}", config.route("/"));
    if config.mode == chat_config::Mode::Development {
        print_dev_links(&config, &base);
    }
    tracing::info!(addr = %local, mode = ?config.mode, "chatbox listening");
    let token = CancellationToken::new();
    let signals = tokio::spawn(shutdown::cancel_on_signal(token.clone()));
    let result = app::serve(config, listener, token.clone()).await;
    token.cancel();
    signals.await?;
    result
}
