//! Everything one verification run gathered, before any judgement: the input of the
//! (pure) report builder, so the report can be tested without running anything.

use super::audits::{ConfigAuditSummary, ManifestAuditSummary};
use super::check::CheckResult;
use super::coverage::CoverageSummary;
use super::libtest::LibtestCase;
use super::test_case::TestCase;

/// The raw results of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    /// When the run finished (RFC 3339, UTC).
    pub generated_at: String,
    /// `--quick`: race run and coverage were skipped on purpose.
    pub quick: bool,
    /// Every check in the order it ran.
    pub checks: Vec<CheckResult>,
    /// Test cases of the nextest runs (both storage backends), from JUnit.
    pub tests: Vec<TestCase>,
    /// Tests of the loom build (`--cfg loom`), with iteration counts when logged.
    pub loom_models: Vec<LibtestCase>,
    /// Line coverage per crate, when the coverage run happened.
    pub coverage: Option<CoverageSummary>,
    /// The manifest audit, when it ran.
    pub manifest_audit: Option<ManifestAuditSummary>,
    /// The config file audit, when `--config FILE` was given.
    pub config_audit: Option<ConfigAuditSummary>,
    /// The performance smoke's results table (Markdown, from `cargo xtask bench
    /// --smoke`), when it produced one.
    pub bench_smoke: Option<String>,
}
