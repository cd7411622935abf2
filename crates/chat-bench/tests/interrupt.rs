//! `chat-bench` stopped by a signal stops the server it started (`src/interrupt.rs`).
//!
//! The "server" here is a shell script that records its process id and then waits
//! without ever printing `listening on`, so the run is still starting it when the
//! signal arrives: the moment a killed load generator used to leave it behind.

// clippy.toml allows unwrap/expect in #[test] functions only; the helpers below are
// test code too, and a failing helper should stop the test just as loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for a loaded 2-core CI machine; every wait polls and ends early.
const PATIENCE: Duration = Duration::from_secs(20);

fn fake_server(dir: &Path, pid_file: &Path) -> std::path::PathBuf {
    let script = dir.join("fake-server.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ > '{}.tmp' && mv '{0}.tmp' '{0}'\nexec sleep 300 2>/dev/null\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Alive: `/proc/PID` exists and the process is not a zombie waiting to be reaped.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the fake server if the test fails before chat-bench did.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(self.0.to_string())
                .status();
        }
    }
}

fn start_bench(server: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chat-bench"))
        .args(["run", "--smoke", "--only", "idle", "--server"])
        .arg(server)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stopped_by(signal: &str, expected_code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("server.pid");
    let server = fake_server(dir.path(), &pid_file);
    let mut bench = start_bench(&server, &dir.path().join("out"));

    let server_pid: u32 = wait_for("the server to start", || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    let _cleanup = KillOnDrop(server_pid);
    assert!(alive(server_pid));

    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(bench.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} failed");

    let status = wait_for("chat-bench to exit", || bench.try_wait().unwrap());
    let mut stderr = String::new();
    std::io::Read::read_to_string(bench.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        status.code(),
        Some(expected_code),
        "chat-bench should exit with the shell's code for {signal}: {status}; stderr: {stderr}"
    );
    assert!(
        stderr.contains(&format!("stopped by SIG{signal}")),
        "stderr: {stderr}"
    );
    wait_for("the server to be gone", || {
        (!alive(server_pid)).then_some(())
    });
}

#[test]
fn sigterm_stops_the_run_and_the_server_it_started() {
    stopped_by("TERM", 143);
}

#[test]
fn sigint_stops_the_run_and_the_server_it_started() {
    stopped_by("INT", 130);
}
