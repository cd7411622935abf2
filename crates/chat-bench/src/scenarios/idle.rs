//! (1) Idle connection memory: server RSS growth per idle authenticated WebSocket.

use std::time::Duration;

use serde::Serialize;

use crate::chatbox::ChatboxServer;
use crate::process::open_files_limit;
use crate::scenarios::open_many;
use crate::BenchError;

/// Time for the server to settle before a memory reading.
const SETTLE: Duration = Duration::from_secs(2);

/// File descriptors kept free for everything else in the load generator.
const FD_RESERVE: u64 = 1_024;

/// Memory at one socket count.
#[derive(Debug, Clone, Serialize)]
pub struct IdleLevel {
    /// Idle authenticated sockets open (each a distinct user).
    pub sockets: usize,
    /// Server RSS with them open.
    pub rss_bytes: u64,
    /// (RSS − RSS before any socket) / sockets.
    pub bytes_per_socket: f64,
}

/// The whole idle-memory measurement.
#[derive(Debug, Clone, Serialize)]
pub struct IdleResult {
    /// Server RSS before any socket.
    pub baseline_rss_bytes: u64,
    /// One entry per level reached.
    pub levels: Vec<IdleLevel>,
    /// The soft open-files limit the load generator (and the server) ran with.
    pub fd_limit: Option<u64>,
    /// A level not attempted because the open-files limit is too low (the issue
    /// asks for it only "when file-descriptor limits allow").
    pub limited: Option<String>,
    /// Why a level that was attempted was not reached, if one was not.
    pub note: Option<String>,
}

/// Opens sockets up to each level in turn and reads the server's RSS at each.
pub async fn run(server: &ChatboxServer, levels: &[usize]) -> Result<IdleResult, BenchError> {
    tokio::time::sleep(SETTLE).await;
    let baseline = server.rss_bytes()?;
    let fd_limit = open_files_limit();
    let mut result = IdleResult {
        baseline_rss_bytes: baseline,
        levels: Vec::new(),
        fd_limit,
        limited: None,
        note: None,
    };
    let mut sockets = Vec::new();
    for &level in levels {
        if let Some(limit) = fd_limit {
            if level as u64 + FD_RESERVE > limit {
                result.limited = Some(format!(
                    "{level} sockets not attempted: RLIMIT_NOFILE is {limit} (raise it with \
                     `ulimit -n`; `cargo xtask bench` does when allowed)"
                ));
                break;
            }
        }
        let first = sockets.len();
        let (opened, error) = open_many(server.addr(), first, level - first, |i| {
            server.ws_path(&format!("idle-{i}"))
        })
        .await;
        sockets.extend(opened);
        if let Some(e) = error {
            result.note = Some(format!(
                "stopped at {} of {level} sockets: {e}",
                sockets.len()
            ));
            break;
        }
        tokio::time::sleep(SETTLE).await;
        let rss = server.rss_bytes()?;
        result.levels.push(IdleLevel {
            sockets: sockets.len(),
            rss_bytes: rss,
            bytes_per_socket: rss.saturating_sub(baseline) as f64 / sockets.len().max(1) as f64,
        });
        println!(
            "  idle: {} sockets, server RSS {:.1} MiB, {:.0} B/socket",
            sockets.len(),
            rss as f64 / 1_048_576.0,
            rss.saturating_sub(baseline) as f64 / sockets.len().max(1) as f64
        );
    }
    drop(sockets);
    Ok(result)
}
