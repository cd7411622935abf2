//! `cargo xtask test`: the whole test suite, exactly what CI runs.
//!
//! It provisions what the tests need first (the MongoDB-wire test server), so a fresh
//! machine needs nothing installed by hand, then runs: every unit and integration test
//! (nextest when installed, else `cargo test`), the doc tests, the storage conformance
//! suite a second time against MongoDB, the loom models, and the web UI in a real
//! headless browser.

use std::path::Path;

use anyhow::Context;

use crate::run::{cargo, has_program, step, without_cargo_run_vars, workspace_root};

/// What to leave out (for quick local runs; CI runs everything).
#[derive(Debug, Clone, Copy, Default)]
pub struct TestOptions {
    /// Skip the loom models (they rebuild the concurrent crates with `--cfg loom`).
    pub skip_loom: bool,
    /// Skip the real-browser tests of the web UI.
    pub skip_browser: bool,
}

/// Runs the suite; the first failing step fails the whole run.
pub fn run(options: TestOptions) -> anyhow::Result<()> {
    let root = workspace_root();

    println!("==> provisioning the MongoDB-wire test server (SecantusDB)");
    let secantusd = chat_testkit::mongo::ensure_secantusd()
        .context("cannot provision the MongoDB-wire test server")?;
    println!("<== using {}", secantusd.display());

    let nextest = has_program("cargo-nextest", &["nextest", "--version"])
        || cargo()
            .args(["nextest", "--version"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);

    let mut tests = cargo();
    if nextest {
        tests.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        tests.args(["test", "--workspace", "--no-fail-fast"]);
    }
    tests.env("SECANTUSD_BIN", &secantusd);
    step("unit and integration tests (embedded store)", &mut tests)?;

    if nextest {
        step(
            "doc tests",
            cargo().args(["test", "--workspace", "--doc", "--quiet"]),
        )?;
    }

    if root
        .join("crates/chat-storage/tests/conformance.rs")
        .is_file()
    {
        let mut conformance = cargo();
        if nextest {
            conformance.args([
                "nextest",
                "run",
                "-p",
                "chat-storage",
                "--test",
                "conformance",
            ]);
        } else {
            conformance.args(["test", "-p", "chat-storage", "--test", "conformance"]);
        }
        conformance
            .env("CHATBOX_TEST_STORE", "mongodb")
            .env("SECANTUSD_BIN", &secantusd);
        step("storage conformance suite on MongoDB", &mut conformance)?;
    }

    if !options.skip_loom {
        step("loom models", &mut loom_command(&root))?;
    }

    let browser = root.join("web/tests/run.sh");
    if !options.skip_browser && browser.is_file() {
        // Installs Chromium and playwright-core on first use, builds the server.
        let mut cmd = std::process::Command::new("bash");
        without_cargo_run_vars(&mut cmd)
            .arg(&browser)
            .current_dir(&root);
        step("browser tests of the web UI (headless Chromium)", &mut cmd)?;
    }
    Ok(())
}

/// The loom run: the concurrent crates rebuilt with `--cfg loom` in release mode, in a
/// separate target dir so the normal build cache is not invalidated.
pub fn loom_command(root: &Path) -> std::process::Command {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--release",
        "-p",
        "chat-session",
        "-p",
        "chat-ratelimit",
    ])
    .env("RUSTFLAGS", "--cfg loom")
    .env("LOOM_MAX_PREEMPTIONS", "3")
    .env("CARGO_TARGET_DIR", root.join("target/loom"));
    cmd
}
