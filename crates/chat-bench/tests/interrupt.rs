//! `chat-bench` stopped by a signal, or by the end of the standard input it was told to
//! watch, stops the server it started (`src/interrupt.rs`).
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

/// `chat-bench run` against `server`; with `lifeline`, told to watch its standard
/// input, a pipe the test holds (`bench.stdin`).
fn start_bench(server: &Path, out: &Path, lifeline: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-bench"));
    cmd.args(["run", "--smoke", "--only", "idle", "--server"])
        .arg(server)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if lifeline {
        cmd.arg("--stop-when-stdin-closes").stdin(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null());
    }
    cmd.spawn().unwrap()
}

/// Starts a run against the stand-in server, stops it with `stop` once the stand-in
/// is up, and checks the exit code, the message and that the stand-in is gone.
fn stopped_by(lifeline: bool, stop: impl FnOnce(&mut Child), expected_code: i32, why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("server.pid");
    let server = fake_server(dir.path(), &pid_file);
    let mut bench = start_bench(&server, &dir.path().join("out"), lifeline);

    let server_pid: u32 = wait_for("the server to start", || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    let _cleanup = KillOnDrop(server_pid);
    assert!(alive(server_pid));

    stop(&mut bench);

    let status = wait_for("chat-bench to exit", || bench.try_wait().unwrap());
    let mut stderr = String::new();
    std::io::Read::read_to_string(bench.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        status.code(),
        Some(expected_code),
        "chat-bench stopped by {why}: {status}; stderr: {stderr}"
    );
    assert!(
        stderr.contains(&format!("stopped by {why}")),
        "stderr: {stderr}"
    );
    wait_for("the server to be gone", || {
        (!alive(server_pid)).then_some(())
    });
}

fn signal(signal: &'static str) -> impl FnOnce(&mut Child) {
    move |bench| {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(bench.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} failed");
    }
}

#[test]
fn sigterm_stops_the_run_and_the_server_it_started() {
    stopped_by(false, signal("TERM"), 143, "SIGTERM");
}

#[test]
fn sigint_stops_the_run_and_the_server_it_started() {
    stopped_by(false, signal("INT"), 130, "SIGINT");
}

#[test]
fn a_closed_lifeline_stops_the_run_and_the_server_it_started() {
    // What happens when the parent holding the pipe (`cargo xtask bench`) ends,
    // however it ends: the kernel closes its end.
    stopped_by(
        true,
        |bench| drop(bench.stdin.take().unwrap()),
        129,
        "the end of its standard input",
    );
}

#[test]
fn a_run_that_ends_by_itself_exits_while_the_lifeline_is_held() {
    // The watch must not keep the process alive after the run: a server that cannot
    // start fails the phase, and chat-bench exits (not measured: failure) although
    // its standard input is still open.
    let dir = tempfile::tempdir().unwrap();
    let mut bench = start_bench(
        &dir.path().join("no-such-server"),
        &dir.path().join("out"),
        true,
    );
    let status = wait_for("chat-bench to exit", || bench.try_wait().unwrap());
    assert_eq!(status.code(), Some(1), "{status}");
    drop(bench.stdin.take());
}
