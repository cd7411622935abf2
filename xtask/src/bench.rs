//! `cargo xtask bench [--smoke]`: builds the release `chat-server` and `chat-bench`
//! binaries and runs the load generator against the real server on loopback, with
//! the open-files limit raised so tens of thousands of sockets fit. Results go to
//! `target/bench/results.json` and `target/bench/results.md`.

use std::path::PathBuf;
use std::process::Command;

use crate::run::{cargo, step, step_with_lifeline, workspace_root};

/// Open-files limit asked for: 50 000 sockets need that many descriptors in the
/// load generator and as many in the server (its child, which inherits the limit).
pub const WANTED_OPEN_FILES: u64 = 200_000;

/// What `cargo xtask bench` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Small counts, under a minute (what `cargo xtask verify` runs).
    pub smoke: bool,
}

/// The target directory cargo builds into (`CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The shell snippet that raises the soft (and, when permitted, hard) open-files
/// limit and then execs the load generator with its arguments: `ulimit` is the
/// portable way to change a limit without unsafe code or another dependency.
pub fn raise_limit_script() -> String {
    format!(
        "ulimit -n {WANTED_OPEN_FILES} 2>/dev/null || ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; \
         exec \"$0\" \"$@\""
    )
}

/// The command that runs the benchmarks with the release binaries; `chat-bench`
/// stops when its standard input closes, which [`run`] holds open as a lifeline.
pub fn bench_command(options: BenchOptions) -> Command {
    let release = target_dir().join("release");
    let mut cmd = Command::new("sh");
    cmd.current_dir(workspace_root())
        .arg("-c")
        .arg(raise_limit_script())
        .arg(release.join("chat-bench"))
        .arg("run")
        .arg("--server")
        .arg(release.join("chat-server"))
        .arg("--out")
        .arg(target_dir().join("bench"))
        .arg("--stop-when-stdin-closes");
    if options.smoke {
        cmd.arg("--smoke");
    }
    cmd
}

/// Builds, then measures; fails when a measurement could not be taken (missed
/// targets are reported in the table, not as a failure).
pub fn run(options: BenchOptions) -> anyhow::Result<()> {
    step(
        "Build release binaries (chat-server, chat-bench)",
        cargo().args([
            "build",
            "--release",
            "-p",
            "chat-server",
            "-p",
            "chat-bench",
        ]),
    )?;
    let title = if options.smoke {
        "Benchmarks (smoke)"
    } else {
        "Benchmarks (full run, ~15-20 minutes)"
    };
    step_with_lifeline(title, &mut bench_command(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_script_raises_then_execs_with_the_arguments() {
        let out = Command::new("sh")
            .arg("-c")
            .arg(raise_limit_script())
            .arg("sh")
            .arg("-c")
            .arg("ulimit -n; echo \"$0\"")
            .arg("passed")
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let limit: u64 = lines.next().unwrap().trim().parse().unwrap_or(u64::MAX);
        assert!(limit >= 1024, "{text}");
        assert_eq!(lines.next(), Some("passed"));
    }

    #[test]
    fn smoke_is_passed_on() {
        let args: Vec<String> = bench_command(BenchOptions { smoke: true })
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.ends_with(&["--smoke".to_owned()]));
        assert!(args.iter().any(|a| a.ends_with("chat-server")));
        assert!(args.iter().any(|a| a.ends_with("bench")));
        assert!(args.contains(&"--stop-when-stdin-closes".to_owned()));
    }
}
