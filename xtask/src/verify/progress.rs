//! The progress display of `cargo xtask verify`: an overall bar plus a spinner for the
//! running step, with each child process's output sent to a log file instead of the
//! terminal. When stderr is not a terminal (CI) the bars hide themselves and only the
//! one-line results are printed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::check::{CheckResult, CheckStatus};

/// A finished child process whose output went to a log file.
#[derive(Debug)]
pub struct Logged {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Wall time.
    pub duration: Duration,
    /// The log file (stdout and stderr interleaved).
    pub log: PathBuf,
}

impl Logged {
    /// The log's contents (lossy UTF-8; empty if it cannot be read).
    pub fn output(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

/// The display; one per run.
pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    log_dir: PathBuf,
    root: PathBuf,
}

impl Progress {
    /// A display for `steps` steps, writing logs under `log_dir`.
    pub fn new(steps: u64, log_dir: &Path, root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(steps));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} checks · {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        overall.set_prefix("verify");
        Ok(Self {
            multi,
            overall,
            log_dir: log_dir.to_path_buf(),
            root: root.to_path_buf(),
        })
    }

    /// Runs `cmd` with its output going to `<log_dir>/<log_name>.log`, showing `title`
    /// with a spinner until it exits. An error means it could not be started at all.
    pub fn run_logged(
        &self,
        title: &str,
        log_name: &str,
        cmd: &mut Command,
    ) -> anyhow::Result<Logged> {
        let log = self.log_dir.join(format!("{log_name}.log"));
        let file =
            File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = file
            .try_clone()
            .context("cannot duplicate the log file handle")?;
        let spinner = self.spinner(title);
        let start = Instant::now();
        let status = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .status()
            .with_context(|| format!("cannot start {cmd:?}"));
        spinner.finish_and_clear();
        let status = status?;
        Ok(Logged {
            success: status.success(),
            duration: start.elapsed(),
            log,
        })
    }

    /// Runs in-process work under a spinner, returning its result and wall time.
    pub fn task<T>(&self, title: &str, work: impl FnOnce() -> T) -> (T, Duration) {
        let spinner = self.spinner(title);
        let start = Instant::now();
        let value = work();
        spinner.finish_and_clear();
        (value, start.elapsed())
    }

    /// Prints one result line above the bars and advances the overall bar.
    pub fn done(&self, check: &CheckResult) {
        let mark = match check.status {
            CheckStatus::Passed => "ok  ",
            CheckStatus::Failed if check.blocking => "FAIL",
            CheckStatus::Failed => "warn",
            CheckStatus::Skipped { .. } => "skip",
            CheckStatus::NotAvailable { .. } => "n/a ",
        };
        let time = check
            .duration
            .map(|d| format!(" ({:.1}s)", d.as_secs_f64()))
            .unwrap_or_default();
        let line = format!("[{mark}] {}{time}: {}", check.title, check.summary);
        // `suspend` prints even when the bars are hidden (not a terminal).
        self.multi.suspend(|| eprintln!("{line}"));
        self.overall.inc(1);
    }

    /// Removes the bars.
    pub fn finish(&self) {
        self.overall.finish_and_clear();
    }

    /// A log path relative to the workspace root, for the report.
    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn spinner(&self, title: &str) -> ProgressBar {
        let spinner = self.multi.add(ProgressBar::new_spinner());
        spinner.set_style(
            ProgressStyle::with_template("  {spinner} {msg} · {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        spinner.set_message(title.to_owned());
        spinner.enable_steady_tick(Duration::from_millis(120));
        spinner
    }
}
