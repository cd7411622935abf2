//! Running the steps of a task: each step is a child process whose output streams
//! through, with a heading and its duration, and whose failure stops the task.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

/// The workspace root (the parent of the xtask crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `cargo` as invoked by the user (`$CARGO`), so the pinned toolchain is used.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root());
    cmd
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
    println!("\n==> {title}");
    let start = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot start: {cmd:?}"))?;
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        bail!("step failed after {secs:.1}s: {title} ({status})");
    }
    println!("<== {title}: ok in {secs:.1}s");
    Ok(())
}
