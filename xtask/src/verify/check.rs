//! The result of one check of the run (fmt, clippy, a test run, loom, race, coverage,
//! audits, bench smoke) as the report shows it.

use std::time::Duration;

use serde::Serialize;

/// How a check ended. `Skipped` and `NotAvailable` always carry the reason, so nothing
/// that did not run can be read as passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CheckStatus {
    /// It ran and found nothing wrong.
    Passed,
    /// It ran and found something wrong (or could not start).
    Failed,
    /// Deliberately not run (`--quick`, no nightly toolchain, …).
    Skipped {
        /// Why it did not run.
        reason: String,
    },
    /// The tool or task it needs does not exist in this codebase yet.
    NotAvailable {
        /// What is missing.
        reason: String,
    },
}

impl CheckStatus {
    /// One word for tables and colouring.
    pub fn word(&self) -> &'static str {
        match self {
            CheckStatus::Passed => "passed",
            CheckStatus::Failed => "failed",
            CheckStatus::Skipped { .. } => "skipped",
            CheckStatus::NotAvailable { .. } => "not available",
        }
    }

    /// The status with its reason, e.g. `skipped: no nightly toolchain`.
    pub fn describe(&self) -> String {
        match self {
            CheckStatus::Skipped { reason } | CheckStatus::NotAvailable { reason } => {
                format!("{}: {reason}", self.word())
            }
            _ => self.word().to_owned(),
        }
    }
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Stable id (`fmt`, `clippy`, `tests-embedded`, `tests-mongodb`, `doctests`, `loom`,
    /// `race`, `coverage`, `manifest-audit`, `config-audit`, `bench-smoke`).
    pub id: String,
    /// Human title.
    pub title: String,
    /// Whether a failure fails the whole verification.
    pub blocking: bool,
    /// How it ended.
    pub status: CheckStatus,
    /// Wall time, when it ran (`duration_ms` in JSON).
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Option<Duration>,
    /// One line of detail (counts, the reason, the first problem).
    pub summary: String,
    /// Where its full output was written, relative to the workspace root.
    pub log: Option<String>,
}

impl CheckResult {
    /// True when this check makes the verification fail.
    pub fn fails_verification(&self) -> bool {
        self.blocking && self.status == CheckStatus::Failed
    }
}

/// Serializes an optional duration as whole milliseconds (or `null`).
pub(crate) fn millis<S: serde::Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(d) => serializer.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => serializer.serialize_none(),
    }
}
