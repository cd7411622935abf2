//! Running the steps of a task: each step is a child process whose output streams
//! through, with a heading and its duration, and whose failure stops the task.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

/// The workspace root (the parent of the xtask crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `cargo` as invoked by the user (`$CARGO`), so the pinned toolchain is used, without
/// the variables `cargo run` set for xtask ([`without_cargo_run_vars`]).
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root());
    without_cargo_run_vars(&mut cmd);
    cmd
}

/// Removes from `cmd`'s environment the variables `cargo run` set for the xtask binary
/// itself ([`CARGO_RUN_VARS`], `CARGO_PKG_*`), for every child that runs cargo. Build
/// scripts that read one of them (ring's reads `CARGO_MANIFEST_DIR`) would otherwise
/// see xtask's values, and cargo would rebuild them and everything above them whenever
/// a plain `cargo build` and a `cargo xtask` take turns (~4 minutes of release build
/// each time).
pub fn without_cargo_run_vars(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_cargo_run_var) {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// Variables `cargo run` sets for the binary it runs (besides `CARGO_PKG_*`), which
/// describe the xtask crate, not the build the xtask starts.
const CARGO_RUN_VARS: [&str; 5] = [
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
];

fn is_cargo_run_var(name: &str) -> bool {
    name.starts_with("CARGO_PKG_") || CARGO_RUN_VARS.contains(&name)
}

/// True when `program --version` runs.
pub fn has_program(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs one step, printing a heading and its duration; fails the task on a non-zero exit.
pub fn step(title: &str, cmd: &mut Command) -> anyhow::Result<()> {
    timed(title, || {
        cmd.status()
            .with_context(|| format!("cannot start: {cmd:?}"))
    })
}

/// [`step`] for a child that watches its standard input as a lifeline (`chat-bench
/// run --stop-when-stdin-closes`): its stdin is a pipe whose write end this process
/// holds, unwritten, until the child exits. However xtask ends — SIGTERM or SIGKILL
/// included, which it does not handle — the kernel closes that end, the child reads
/// end of file and stops with everything it started.
pub fn step_with_lifeline(title: &str, cmd: &mut Command) -> anyhow::Result<()> {
    timed(title, || {
        let mut child = cmd
            .stdin(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start: {cmd:?}"))?;
        // `Child::wait` closes the child's stdin first; keep it open until the end.
        let lifeline = child.stdin.take();
        let status = child.wait().context("waiting for the step")?;
        drop(lifeline);
        Ok(status)
    })
}

fn timed(title: &str, run: impl FnOnce() -> anyhow::Result<ExitStatus>) -> anyhow::Result<()> {
    println!("\n==> {title}");
    let start = Instant::now();
    let status = run()?;
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        bail!("step failed after {secs:.1}s: {title} ({status})");
    }
    println!("<== {title}: ok in {secs:.1}s");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lifeline_step_sees_an_open_pipe_until_it_ends() {
        // `cat` returns at once on a closed or null stdin; on the held pipe it blocks
        // until `timeout` stops it (exit 124).
        step_with_lifeline(
            "lifeline",
            Command::new("sh")
                .arg("-c")
                .arg("test -p /dev/stdin && { timeout 0.3 cat; test $? -eq 124; }"),
        )
        .unwrap();
        assert!(step_with_lifeline("fails", &mut Command::new("false")).is_err());
    }

    #[test]
    fn nested_cargo_does_not_inherit_what_cargo_run_set_for_xtask() {
        // `cargo test` sets these for this test binary, as `cargo run` does for xtask.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let cmd = cargo();
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        assert!(
            removed.contains(&"CARGO_MANIFEST_DIR".to_owned()),
            "{removed:?}"
        );
        assert!(
            removed.contains(&"CARGO_PKG_NAME".to_owned()),
            "{removed:?}"
        );
        assert!(!removed.contains(&"CARGO".to_owned()), "{removed:?}");
    }
}
