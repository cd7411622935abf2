//! Measures the server memory of idle WebSocket connections: the server runs in a
//! child process (so client memory is not counted), the parent opens N idle sockets
//! and reads the child's resident set size before and after.
//!
//! `cargo run --release -p chat-ws --example idle_memory -- [N]` (default 2000; Linux,
//! reads /proc/self/status).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chat_auth::{JwtValidator, TokenIssuer};
use chat_config::{Config, JwtAlgorithm};
use chat_ratelimit::RateLimiters;
use chat_router::{DefaultNotifier, InProcessBus, MessageRouter, RouterDeps};
use chat_session::SessionManager;
use chat_storage::MockSessionStore;
use futures::StreamExt;

/// A strong development secret shared by both processes so the parent can mint tokens.
const CONFIG: &str = "[auth]\njwt_secret = \"k7Rp2Vx9Lm4Qw8Nz3Hc6Yb1Tf5Gd0JsUe\"\n";

fn config() -> Config {
    Config::from_toml_str(CONFIG, &HashMap::<String, String>::new()).expect("config")
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn serve() {
    let config = Arc::new(config());
    let providers = chat_llm::ProviderRegistry::from_settings(&config.llm).expect("providers");
    let router = MessageRouter::new(RouterDeps {
        config: config.clone(),
        sessions: Arc::new(SessionManager::new(&config.sessions)),
        // Idle connections never touch the store.
        store: Arc::new(MockSessionStore::new()),
        providers: Arc::new(providers),
        limiters: Arc::new(RateLimiters::from_settings(&config.rate_limits).expect("limiters")),
        notifier: Arc::new(DefaultNotifier::log_only()),
        bus: InProcessBus::new(),
    });
    let validator = Arc::new(JwtValidator::from_config(&config).expect("validator"));
    let state = chat_ws::WsState::from_config(&config, router, validator);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("PORT {}", listener.local_addr().unwrap().port());
    let app = chat_ws::routes(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim() == "rss" {
            println!("RSS {} {}", rss_kib(), state.drain().connection_count());
        }
    }
}

fn ask_rss(stdin: &mut impl Write, stdout: &mut impl BufRead) -> (u64, usize) {
    writeln!(stdin, "rss").unwrap();
    stdin.flush().unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace().skip(1);
    (
        parts.next().unwrap().parse().unwrap(),
        parts.next().unwrap().parse().unwrap(),
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--server") {
        serve().await;
        return;
    }
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port: u16 = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();

    let issuer = TokenIssuer::new(config().jwt_secret(), JwtAlgorithm::HS256).unwrap();
    // Warm up: the first connections allocate the runtime's and allocator's pools.
    let mut clients = Vec::with_capacity(n + 50);
    let connect = |i: usize| {
        let token = issuer
            .issue(
                &format!("user-{i}"),
                None,
                &["user"],
                Duration::from_secs(3600),
            )
            .unwrap();
        async move {
            let url = format!("ws://127.0.0.1:{port}/ws?token={token}");
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            // Wait for connection_status: the connection is fully set up.
            ws.next().await.unwrap().unwrap();
            ws
        }
    };
    for i in 0..50 {
        clients.push(connect(i).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, count_before) = ask_rss(&mut stdin, &mut stdout);
    for i in 50..50 + n {
        clients.push(connect(i).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after, count_after) = ask_rss(&mut stdin, &mut stdout);
    let added = count_after - count_before;
    let per = (after.saturating_sub(before) * 1024) / added as u64;
    println!(
        "{added} idle connections: server RSS {before} KiB -> {after} KiB, about {per} bytes per idle connection"
    );
    drop(clients);
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
}
