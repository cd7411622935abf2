//! `cargo xtask race`: the concurrent crates' tests under ThreadSanitizer.
//!
//! TSan needs a nightly toolchain (`-Zsanitizer=thread`) and the standard library rebuilt
//! with it (`-Zbuild-std`, which needs the `rust-src` component). When either is missing
//! the run is *skipped with the reason* — it is never reported as passed.

use std::path::Path;
use std::process::Command;

use crate::run::{without_cargo_run_vars, workspace_root};

/// The crates whose correctness depends on interleavings. Those not present in the
/// workspace yet are left out of the run (and named in its summary).
pub const RACE_CRATES: [&str; 3] = ["chat-session", "chat-ratelimit", "chat-router"];

/// The toolchain the race run uses.
pub const NIGHTLY: &str = "nightly";

/// What the race run can do on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RacePlan {
    /// Everything is there: run these crates for this host target.
    Run {
        /// Packages to test (`-p`).
        crates: Vec<String>,
        /// The host target triple (`-Zbuild-std` requires an explicit `--target`).
        target: String,
    },
    /// It cannot run; the reason is reported as `skipped: <reason>`.
    Skip {
        /// Why not.
        reason: String,
    },
}

/// Checks for the nightly toolchain and `rust-src` (adding `rust-src` when missing, which
/// is a no-op offline failure rather than an error) and lists the crates present.
pub fn plan(root: &Path) -> RacePlan {
    let toolchains = match rustup(&["toolchain", "list"]) {
        Ok(out) => out,
        Err(e) => return skip(format!("rustup is not usable: {e}")),
    };
    if !toolchains
        .lines()
        .any(|l| l.starts_with("nightly-") || l.starts_with("nightly "))
    {
        return skip("no nightly toolchain installed (`rustup toolchain install nightly --component rust-src`)".to_owned());
    }
    let has_src = |out: &str| out.lines().any(|l| l.trim().starts_with("rust-src"));
    let components =
        rustup(&["component", "list", "--toolchain", NIGHTLY, "--installed"]).unwrap_or_default();
    if !has_src(&components) {
        let _ = rustup(&["component", "add", "rust-src", "--toolchain", NIGHTLY]);
        let again = rustup(&["component", "list", "--toolchain", NIGHTLY, "--installed"])
            .unwrap_or_default();
        if !has_src(&again) {
            return skip(
                "the nightly toolchain lacks rust-src (needed by -Zbuild-std) and it could not be installed"
                    .to_owned(),
            );
        }
    }
    let target = match nightly_host() {
        Some(t) => t,
        None => return skip("cannot determine the nightly host target (rustc -vV)".to_owned()),
    };
    let crates = present_crates(root);
    if crates.is_empty() {
        return skip("none of the concurrent crates exist yet".to_owned());
    }
    RacePlan::Run { crates, target }
}

/// The concurrent crates that exist in the workspace.
pub fn present_crates(root: &Path) -> Vec<String> {
    RACE_CRATES
        .iter()
        .filter(|c| root.join("crates").join(c).join("Cargo.toml").is_file())
        .map(|c| (*c).to_owned())
        .collect()
}

/// The TSan test run: nightly cargo, std rebuilt with the sanitizer, its own target dir
/// (so the normal cache stays valid), unit and integration tests only (doc tests would
/// need the sanitizer in rustdoc too and prove nothing about interleavings).
pub fn race_command(crates: &[String], target: &str) -> Command {
    let root = workspace_root();
    let mut cmd = Command::new("rustup");
    without_cargo_run_vars(&mut cmd)
        .current_dir(&root)
        .args([
            "run",
            NIGHTLY,
            "cargo",
            "test",
            "-Zbuild-std",
            "--target",
            target,
        ])
        .args(crates.iter().flat_map(|c| ["-p", c.as_str()]))
        .args(["--lib", "--tests", "--", "--color", "never"])
        // The outer `cargo xtask` exports its own toolchain's paths; the nightly cargo
        // must pick its own.
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env("RUSTFLAGS", "-Zsanitizer=thread")
        .env("TSAN_OPTIONS", "halt_on_error=0 second_deadlock_stack=1")
        .env("CARGO_TARGET_DIR", root.join("target/tsan"));
    cmd
}

/// The number of `WARNING: ThreadSanitizer:` reports in a run's output.
pub fn count_reports(output: &str) -> usize {
    output.matches("WARNING: ThreadSanitizer:").count()
}

fn skip(reason: String) -> RacePlan {
    RacePlan::Skip { reason }
}

fn rustup(args: &[&str]) -> Result<String, String> {
    let out = Command::new("rustup")
        .args(args)
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn nightly_host() -> Option<String> {
    let out = Command::new("rustup")
        .args(["run", NIGHTLY, "rustc", "-vV"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_sanitizer_report() {
        let out = "==================\nWARNING: ThreadSanitizer: data race (pid=1)\n...\nWARNING: ThreadSanitizer: data race (pid=1)\n";
        assert_eq!(count_reports(out), 2);
        assert_eq!(count_reports("test a ... ok\n"), 0);
    }

    #[test]
    fn the_command_uses_nightly_tsan_and_its_own_target_dir() {
        let cmd = race_command(&["chat-session".to_owned()], "x86_64-unknown-linux-gnu");
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&args[..4], ["run", "nightly", "cargo", "test"]);
        assert!(args.contains(&"-Zbuild-std".to_owned()));
        assert!(args.windows(2).any(|w| w == ["-p", "chat-session"]));
        let rustflags = cmd
            .get_envs()
            .find(|(k, _)| *k == "RUSTFLAGS")
            .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()));
        assert_eq!(rustflags.as_deref(), Some("-Zsanitizer=thread"));
    }
}
