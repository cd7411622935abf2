//! The real binary starts, serves, and stops on signals (READINESS #5, #17, #19).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chat-server");

/// A generous bound for a clean exit on a loaded 2-core CI machine; the server's own
/// drain deadline is set far below it.
const EXIT_BOUND: Duration = Duration::from_secs(20);

fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .current_dir(dir)
        .env("CHATBOX_PORT", "0")
        .env("CHATBOX_SHUTDOWN_TIMEOUT", "5s")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Reads stdout until the `listening on ADDR` line and returns ADDR.
fn wait_for_listen_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .expect("readable stdout");
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.trim().to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    addr
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

fn wait_with_bound(child: &mut Child, bound: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            panic!("server did not exit within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop_with(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path()).spawn().expect("binary starts");
    let addr = wait_for_listen_line(&mut child);
    let url = format!("http://{addr}/chatbox/healthz");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (status, body): (u16, serde_json::Value) = runtime.block_on(async {
        let resp = reqwest::get(&url).await.expect("healthz answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    });
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
    assert!(body["timestamp"].as_str().is_some());
    send_signal(&child, signal);
    let exit = wait_with_bound(&mut child, EXIT_BOUND);
    assert!(exit.success(), "exit status after {signal}: {exit:?}");
}

#[test]
fn production_issue_05_main_server_startup() {
    stop_with("TERM");
}

#[test]
fn sigint_also_stops_cleanly() {
    stop_with("INT");
}

#[test]
fn production_issue_17_weak_secret_refused_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    for weak in ["test123", "password", "secret", "12345678"] {
        let out = command(dir.path())
            .env("CHATBOX_MODE", "production")
            .env("JWT_SECRET", weak)
            .output()
            .expect("binary runs");
        assert!(!out.status.success(), "{weak} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("auth.jwt_secret"), "{weak}: {stderr}");
        // Production also lists its other missing settings in the same run.
        assert!(stderr.contains("server.allowed_origins"), "{stderr}");
        assert!(stderr.contains("encryption.key"), "{stderr}");
    }
}

#[test]
fn check_config_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nport = 70000\npath_prefix = \"nope\"\n[websocket]\nsend_queue_capacity = 0\n",
    )
    .unwrap();
    let out = command(dir.path())
        .env_remove("CHATBOX_PORT")
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for field in [
        "server.port",
        "server.path_prefix",
        "websocket.send_queue_capacity",
    ] {
        assert!(stderr.contains(field), "missing {field}: {stderr}");
    }

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.example.toml");
    let out = command(dir.path())
        .arg("check-config")
        .arg(example)
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
