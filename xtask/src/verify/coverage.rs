//! `cargo xtask coverage`: line coverage per crate with cargo-llvm-cov (installed with
//! llvm-tools when missing), checked against an 80 % floor for the core crates.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::run::{cargo, workspace_root};

/// The line-coverage goal for the core crates (`READINESS.md`).
pub const FLOOR_PERCENT: f64 = 80.0;

/// The crates the readiness issues live in; the floor applies to them. The test kit
/// and the xtask are reported but not held to it.
pub const CORE_CRATES: [&str; 10] = [
    "chat-auth",
    "chat-config",
    "chat-llm",
    "chat-protocol",
    "chat-ratelimit",
    "chat-router",
    "chat-server",
    "chat-session",
    "chat-storage",
    "chat-ws",
];

/// Line coverage of one crate's sources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrateCoverage {
    /// Package name (the directory under `crates/`, or `xtask`).
    pub name: String,
    /// Lines executed at least once.
    pub lines_covered: u64,
    /// Instrumented lines.
    pub lines_total: u64,
    /// Whether the floor applies.
    pub core: bool,
}

impl CrateCoverage {
    /// Covered lines in percent (100 for a crate without instrumented lines).
    pub fn percent(&self) -> f64 {
        if self.lines_total == 0 {
            100.0
        } else {
            self.lines_covered as f64 * 100.0 / self.lines_total as f64
        }
    }

    /// True when the crate is held to the floor and misses it.
    pub fn below_floor(&self, floor: f64) -> bool {
        self.core && self.percent() < floor
    }
}

/// Coverage of every crate of the workspace that has instrumented sources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageSummary {
    /// The floor the core crates are held to, in percent.
    pub floor_percent: f64,
    /// One entry per crate, sorted by name.
    pub crates: Vec<CrateCoverage>,
}

impl CoverageSummary {
    /// The core crates under the floor.
    pub fn below_floor(&self) -> impl Iterator<Item = &CrateCoverage> {
        self.crates
            .iter()
            .filter(|c| c.below_floor(self.floor_percent))
    }
}

#[derive(Deserialize)]
struct Export {
    data: Vec<ExportData>,
}

#[derive(Deserialize)]
struct ExportData {
    files: Vec<ExportFile>,
}

#[derive(Deserialize)]
struct ExportFile {
    filename: String,
    summary: FileSummary,
}

#[derive(Deserialize)]
struct FileSummary {
    lines: LineSummary,
}

#[derive(Deserialize)]
struct LineSummary {
    count: u64,
    covered: u64,
}

/// Groups an llvm-cov JSON export (`cargo llvm-cov --json`) by crate: files under
/// `<root>/crates/<name>/` belong to `<name>`, files under `<root>/xtask/` to `xtask`;
/// anything else (dependencies, generated code) is ignored.
pub fn parse_llvm_cov_json(json: &str, root: &Path) -> anyhow::Result<CoverageSummary> {
    let export: Export = serde_json::from_str(json)
        .context("not an llvm-cov JSON export (llvm.coverage.json.export)")?;
    let mut per_crate: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for file in export.data.iter().flat_map(|d| &d.files) {
        let Some(name) = crate_of(Path::new(&file.filename), root) else {
            continue;
        };
        let entry = per_crate.entry(name).or_default();
        entry.0 += file.summary.lines.covered;
        entry.1 += file.summary.lines.count;
    }
    Ok(CoverageSummary {
        floor_percent: FLOOR_PERCENT,
        crates: per_crate
            .into_iter()
            .map(|(name, (covered, total))| CrateCoverage {
                core: CORE_CRATES.contains(&name.as_str()),
                name,
                lines_covered: covered,
                lines_total: total,
            })
            .collect(),
    })
}

fn crate_of(file: &Path, root: &Path) -> Option<String> {
    let relative = file.strip_prefix(root).unwrap_or(file);
    let mut parts = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy());
    match parts.next()?.as_ref() {
        "crates" => parts.next().map(|name| name.into_owned()),
        "xtask" => Some("xtask".to_owned()),
        _ => None,
    }
}

/// Files that are tests rather than the code under test.
const IGNORE_FILENAME_REGEX: &str = r"(/tests/|/benches/|/examples/)";

/// Makes sure cargo-llvm-cov and llvm-tools are installed, installing them when missing.
pub fn ensure_llvm_cov() -> anyhow::Result<()> {
    let installed = cargo()
        .args(["llvm-cov", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !installed {
        let status = cargo()
            .args(["install", "cargo-llvm-cov", "--locked"])
            .status()
            .context("cannot run cargo install")?;
        if !status.success() {
            bail!("cargo install cargo-llvm-cov failed ({status})");
        }
    }
    // Idempotent; the toolchain file lists llvm-tools, but a toolchain installed before
    // that line was added lacks it.
    let status = Command::new("rustup")
        .args(["component", "add", "llvm-tools-preview"])
        .current_dir(workspace_root())
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("rustup component add llvm-tools-preview failed ({status})");
    }
    Ok(())
}

/// The instrumented test run writing the JSON summary to `output`. Failing tests do not
/// stop the report (`--ignore-run-fail`): they are the test check's business.
pub fn coverage_command(output: &Path, nextest: bool) -> Command {
    let mut cmd = cargo();
    cmd.arg("llvm-cov");
    if nextest {
        cmd.arg("nextest");
    }
    cmd.args([
        "--workspace",
        "--ignore-run-fail",
        "--json",
        "--summary-only",
        "--ignore-filename-regex",
        IGNORE_FILENAME_REGEX,
        "--output-path",
    ])
    .arg(output);
    cmd
}

/// Renders the per-crate table printed by `cargo xtask coverage`.
pub fn render_table(summary: &CoverageSummary) -> String {
    let mut out = format!(
        "{:<16} {:>8} {:>8} {:>8}  floor {:.0} %\n",
        "crate", "lines", "covered", "percent", summary.floor_percent
    );
    for c in &summary.crates {
        let mark = if c.below_floor(summary.floor_percent) {
            "  BELOW FLOOR"
        } else if c.core {
            ""
        } else {
            "  (not held to the floor)"
        };
        out.push_str(&format!(
            "{:<16} {:>8} {:>8} {:>7.1}%{mark}\n",
            c.name,
            c.lines_total,
            c.lines_covered,
            c.percent()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = r#"{"type":"llvm.coverage.json.export","version":"2.0.1","data":[{"files":[
        {"filename":"/w/crates/chat-session/src/manager.rs","summary":{"lines":{"count":100,"covered":90,"percent":90.0}}},
        {"filename":"/w/crates/chat-session/src/sweeper.rs","summary":{"lines":{"count":100,"covered":50,"percent":50.0}}},
        {"filename":"/w/crates/chat-testkit/src/mongo.rs","summary":{"lines":{"count":10,"covered":1,"percent":10.0}}},
        {"filename":"/w/xtask/src/run.rs","summary":{"lines":{"count":0,"covered":0,"percent":0.0}}},
        {"filename":"/home/.cargo/registry/src/tokio/lib.rs","summary":{"lines":{"count":5,"covered":5,"percent":100.0}}}
    ],"totals":{}}]}"#;

    #[test]
    fn files_are_summed_per_crate_and_dependencies_ignored() {
        let summary = parse_llvm_cov_json(EXPORT, Path::new("/w")).unwrap();
        let names: Vec<_> = summary.crates.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["chat-session", "chat-testkit", "xtask"]);
        let session = &summary.crates[0];
        assert_eq!((session.lines_covered, session.lines_total), (140, 200));
        assert!((session.percent() - 70.0).abs() < 1e-9);
    }

    #[test]
    fn only_core_crates_are_held_to_the_floor() {
        let summary = parse_llvm_cov_json(EXPORT, Path::new("/w")).unwrap();
        let below: Vec<_> = summary.below_floor().map(|c| c.name.as_str()).collect();
        assert_eq!(below, ["chat-session"]);
        assert!(render_table(&summary).contains("BELOW FLOOR"));
    }

    #[test]
    fn a_crate_without_instrumented_lines_counts_as_covered() {
        let summary = parse_llvm_cov_json(EXPORT, Path::new("/w")).unwrap();
        assert_eq!(summary.crates[2].percent(), 100.0);
    }

    #[test]
    fn rejects_json_that_is_not_an_export() {
        assert!(parse_llvm_cov_json("{\"data\": 3}", Path::new("/w")).is_err());
    }
}
