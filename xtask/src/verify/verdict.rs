//! The verdict on one issue, from the results of its evidence tests and anchor checks.

use serde::Serialize;

use super::test_case::TestOutcome;

/// Whether an issue is proven resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At least one evidence test passed and none failed, and no anchor check failed.
    Resolved,
    /// An evidence test or an anchor check failed: the issue is back.
    Regressed,
    /// Nothing ran that proves it (no test by its name, or all of them skipped).
    MissingEvidence,
}

impl Verdict {
    /// The words used in every renderer.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Resolved => "resolved",
            Verdict::Regressed => "regressed",
            Verdict::MissingEvidence => "missing evidence",
        }
    }

    /// True for the verdicts that make `cargo xtask verify` fail.
    pub fn fails_verification(self) -> bool {
        !matches!(self, Verdict::Resolved)
    }
}

/// Decides the verdict: any failed test or failed anchor → regressed; otherwise at least
/// one passed test → resolved; otherwise → missing evidence. A skipped anchor (race run
/// without a nightly toolchain) neither proves nor disproves anything.
pub fn decide(outcomes: impl IntoIterator<Item = TestOutcome>, anchor_failed: bool) -> Verdict {
    let mut passed = false;
    for outcome in outcomes {
        match outcome {
            TestOutcome::Failed => return Verdict::Regressed,
            TestOutcome::Passed => passed = true,
            TestOutcome::Skipped => {}
        }
    }
    if anchor_failed {
        Verdict::Regressed
    } else if passed {
        Verdict::Resolved
    } else {
        Verdict::MissingEvidence
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TestOutcome::*;

    #[test]
    fn one_failure_among_passes_is_a_regression() {
        assert_eq!(decide([Passed, Failed, Passed], false), Verdict::Regressed);
    }

    #[test]
    fn passes_without_failures_resolve() {
        assert_eq!(decide([Passed, Skipped], false), Verdict::Resolved);
    }

    #[test]
    fn no_tests_or_only_skipped_ones_are_missing_evidence() {
        assert_eq!(decide([], false), Verdict::MissingEvidence);
        assert_eq!(decide([Skipped], false), Verdict::MissingEvidence);
    }

    #[test]
    fn a_failed_anchor_regresses_even_with_passing_tests() {
        assert_eq!(decide([Passed], true), Verdict::Regressed);
        assert_eq!(decide([], true), Verdict::Regressed);
    }
}
