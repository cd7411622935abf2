//! One test's result, whichever runner produced it (nextest JUnit, libtest output of the
//! loom and race runs): the common currency of the evidence mapping and the report.

use std::time::Duration;

use serde::Serialize;

/// How one test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestOutcome {
    /// It ran and passed.
    Passed,
    /// It ran and failed (assertion, panic, timeout, crash).
    Failed,
    /// It did not run (`#[ignore]`, filtered, skipped by the runner).
    Skipped,
}

impl TestOutcome {
    /// Lower-case word used in every renderer.
    pub fn as_str(self) -> &'static str {
        match self {
            TestOutcome::Passed => "passed",
            TestOutcome::Failed => "failed",
            TestOutcome::Skipped => "skipped",
        }
    }
}

/// One test case as a runner reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// Which run produced it (`embedded`, `mongodb`, `loom`, …): the same test can run in
    /// several, and each result counts.
    pub run: String,
    /// The test binary (nextest's `crate::binary`, or the libtest binary's name).
    pub suite: String,
    /// The test's path inside its binary (`tests::production_issue_01_session_cleanup`).
    pub name: String,
    /// How it ended.
    pub outcome: TestOutcome,
    /// Wall time, when the runner reports it.
    pub duration: Option<Duration>,
    /// Failure message and captured output (empty for passing tests), as reported.
    pub output: String,
}
