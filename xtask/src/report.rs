//! The readiness report: a pure function of what a verification run collected
//! ([`build`]), rendered three ways — Markdown for reviews ([`markdown`]), versioned JSON
//! for tools ([`json`], schema [`SCHEMA`]) and a self-contained HTML page for people
//! ([`html`]).

pub mod html;
pub mod json;
pub mod markdown;

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::verify::audits::{ConfigAuditSummary, ManifestAuditSummary};
use crate::verify::catalogue::{Issue, ISSUES};
use crate::verify::check::{millis, CheckResult, CheckStatus};
use crate::verify::collected::Collected;
use crate::verify::mapping::issue_number_of;
use crate::verify::test_case::{TestCase, TestOutcome};
use crate::verify::verdict::{decide, Verdict};

/// The JSON schema id; bumped on any incompatible change (documented in docs/TESTING.md).
pub const SCHEMA: &str = "chatbox-readiness/1";

/// Failure output kept per test, so one noisy test cannot bloat the report.
pub const MAX_OUTPUT_CHARS: usize = 4_000;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// When the run finished (RFC 3339, UTC).
    pub generated_at: String,
    /// Whether race run and coverage were skipped on purpose (`--quick`).
    pub quick: bool,
    /// The exit verdict: no issue regressed or without evidence, no blocking check failed.
    pub passed: bool,
    /// Why it did not pass, one line each (empty when it passed).
    pub failure_reasons: Vec<String>,
    /// Counts for the headline.
    pub summary: Summary,
    /// One entry per issue, 1..=19.
    pub issues: Vec<IssueReport>,
    /// Every check in the order it ran.
    pub checks: Vec<CheckResult>,
    /// The tests of the loom build.
    pub loom_models: Vec<LoomModel>,
    /// Coverage per crate, when measured.
    pub coverage: Option<CoverageReport>,
    /// The manifest audit, when it ran.
    pub manifest_audit: Option<ManifestAuditSummary>,
    /// The config file audit, when requested.
    pub config_audit: Option<ConfigAuditSummary>,
    /// The performance smoke's results table (Markdown), when it ran.
    pub bench_smoke: Option<String>,
    /// Tests named `production_issue_NN_*` whose NN is not one of the 19: a typo that
    /// would otherwise leave its issue without evidence silently.
    pub stray_tests: Vec<String>,
}

/// Headline counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    /// Issues resolved.
    pub resolved: usize,
    /// Issues regressed.
    pub regressed: usize,
    /// Issues without evidence.
    pub missing_evidence: usize,
    /// Test cases that passed (all runs, loom included).
    pub tests_passed: usize,
    /// Test cases that failed.
    pub tests_failed: usize,
    /// Test cases skipped.
    pub tests_skipped: usize,
    /// Blocking checks that failed.
    pub blocking_checks_failed: usize,
}

/// One issue's verdict and evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssueReport {
    /// 1..=19.
    pub number: u8,
    /// The legacy problem.
    pub title: &'static str,
    /// What must hold here.
    pub must_hold: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// Other issues whose tests count here (#16 ← #13).
    pub evidence_from: Vec<u8>,
    /// Where the tests are expected to live.
    pub owner: &'static str,
    /// The evidence tests and their results, failures first.
    pub tests: Vec<EvidenceTest>,
    /// The anchor checks and their status.
    pub anchors: Vec<AnchorStatus>,
    /// One line explaining the verdict.
    pub reason: String,
}

/// A test that is evidence for an issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceTest {
    /// The issue number the test's name carries (differs from the issue for #16).
    pub named_for: u8,
    /// The run it comes from (`embedded`, `mongodb`, `loom`).
    pub run: String,
    /// The test binary.
    pub suite: String,
    /// The test's full name.
    pub name: String,
    /// Its result.
    pub outcome: TestOutcome,
    /// Wall time in milliseconds, when known.
    #[serde(serialize_with = "millis")]
    pub duration_ms: Option<std::time::Duration>,
    /// Failure output (empty unless failed), cut to [`MAX_OUTPUT_CHARS`].
    pub output: String,
}

/// An anchor check as seen from an issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorStatus {
    /// The check id.
    pub check: &'static str,
    /// Its status with the reason (`passed`, `skipped: …`, `not run`).
    pub status: String,
    /// Whether it failed (which regresses the issue).
    pub failed: bool,
}

/// One test of the loom build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoomModel {
    /// The test binary.
    pub suite: String,
    /// The model's name.
    pub name: String,
    /// Its result.
    pub outcome: TestOutcome,
    /// Interleavings explored, when loom logged it.
    pub iterations: Option<u64>,
}

/// Coverage with the percentages computed, for renderers and JSON readers alike.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageReport {
    /// The floor for core crates, in percent.
    pub floor_percent: f64,
    /// Per crate.
    pub crates: Vec<CoverageEntry>,
}

/// One crate's line coverage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageEntry {
    /// Package name.
    pub name: String,
    /// Lines executed.
    pub lines_covered: u64,
    /// Instrumented lines.
    pub lines_total: u64,
    /// Covered lines in percent.
    pub percent: f64,
    /// Whether the floor applies.
    pub core: bool,
    /// Core crate under the floor.
    pub below_floor: bool,
}

/// Builds the report. Pure: same input, same report.
pub fn build(input: &Collected) -> Report {
    let evidence: Vec<&TestCase> = input
        .tests
        .iter()
        .chain(input.loom_models.iter().map(|m| &m.case))
        .collect();

    // When a test run produced no results at all (it did not build), say so in every
    // issue without evidence: the build is the thing to fix, not the tests.
    let broken_runs: Vec<&str> = input
        .checks
        .iter()
        .filter(|c| c.id.starts_with("tests-") && c.status == CheckStatus::Failed)
        .map(|c| c.id.as_str())
        .collect();
    let no_results_because = (evidence.is_empty() && !broken_runs.is_empty()).then(|| {
        format!(
            "no test results at all: check {} failed",
            broken_runs.join(", ")
        )
    });

    let issues: Vec<IssueReport> = ISSUES
        .iter()
        .map(|issue| {
            issue_report(
                issue,
                &evidence,
                &input.checks,
                no_results_because.as_deref(),
            )
        })
        .collect();

    let stray_tests: Vec<String> = evidence
        .iter()
        .filter(|t| matches!(issue_number_of(&t.name), Some(n) if !(1..=19).contains(&n)))
        .map(|t| format!("{} ({})", t.name, t.suite))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let mut summary = Summary::default();
    for issue in &issues {
        match issue.verdict {
            Verdict::Resolved => summary.resolved += 1,
            Verdict::Regressed => summary.regressed += 1,
            Verdict::MissingEvidence => summary.missing_evidence += 1,
        }
    }
    for t in &evidence {
        match t.outcome {
            TestOutcome::Passed => summary.tests_passed += 1,
            TestOutcome::Failed => summary.tests_failed += 1,
            TestOutcome::Skipped => summary.tests_skipped += 1,
        }
    }
    summary.blocking_checks_failed = input
        .checks
        .iter()
        .filter(|c| c.fails_verification())
        .count();

    let mut failure_reasons = Vec::new();
    for issue in issues.iter().filter(|i| i.verdict.fails_verification()) {
        failure_reasons.push(format!(
            "issue #{} {}: {}",
            issue.number,
            issue.verdict.as_str(),
            issue.reason
        ));
    }
    for check in input.checks.iter().filter(|c| c.fails_verification()) {
        failure_reasons.push(format!("check {} failed: {}", check.id, check.summary));
    }

    Report {
        schema: SCHEMA,
        generated_at: input.generated_at.clone(),
        quick: input.quick,
        passed: failure_reasons.is_empty(),
        failure_reasons,
        summary,
        issues,
        checks: input.checks.clone(),
        loom_models: input
            .loom_models
            .iter()
            .map(|m| LoomModel {
                suite: m.case.suite.clone(),
                name: m.case.name.clone(),
                outcome: m.case.outcome,
                iterations: m.iterations,
            })
            .collect(),
        coverage: input.coverage.as_ref().map(|c| CoverageReport {
            floor_percent: c.floor_percent,
            crates: c
                .crates
                .iter()
                .map(|k| CoverageEntry {
                    name: k.name.clone(),
                    lines_covered: k.lines_covered,
                    lines_total: k.lines_total,
                    percent: (k.percent() * 10.0).round() / 10.0,
                    core: k.core,
                    below_floor: k.below_floor(c.floor_percent),
                })
                .collect(),
        }),
        manifest_audit: input.manifest_audit.clone(),
        config_audit: input.config_audit.clone(),
        bench_smoke: input.bench_smoke.clone(),
        stray_tests,
    }
}

fn issue_report(
    issue: &Issue,
    evidence: &[&TestCase],
    checks: &[CheckResult],
    no_results_because: Option<&str>,
) -> IssueReport {
    let sources: Vec<u8> = issue.evidence_issues().collect();
    let mut tests: Vec<EvidenceTest> = evidence
        .iter()
        .filter_map(|t| {
            let n = issue_number_of(&t.name)?;
            sources.contains(&n).then(|| EvidenceTest {
                named_for: n,
                run: t.run.clone(),
                suite: t.suite.clone(),
                name: t.name.clone(),
                outcome: t.outcome,
                duration_ms: t.duration,
                output: truncate(&t.output, MAX_OUTPUT_CHARS),
            })
        })
        .collect();
    // Failures first, then by name, so the reason for a regression is on top.
    tests.sort_by(|a, b| {
        (b.outcome == TestOutcome::Failed)
            .cmp(&(a.outcome == TestOutcome::Failed))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.run.cmp(&b.run))
    });

    let anchors: Vec<AnchorStatus> = issue
        .anchors
        .iter()
        .map(|anchor| {
            let id = anchor.check_id();
            match checks.iter().find(|c| c.id == id) {
                Some(c) => AnchorStatus {
                    check: id,
                    status: c.status.describe(),
                    failed: c.status == CheckStatus::Failed,
                },
                None => AnchorStatus {
                    check: id,
                    status: "not run".to_owned(),
                    failed: false,
                },
            }
        })
        .collect();
    let anchor_failed = anchors.iter().any(|a| a.failed);
    let verdict = decide(tests.iter().map(|t| t.outcome), anchor_failed);

    let count = |o: TestOutcome| tests.iter().filter(|t| t.outcome == o).count();
    let via = if issue.evidence_from.is_empty() {
        String::new()
    } else {
        let from: Vec<String> = issue
            .evidence_from
            .iter()
            .map(|n| format!("#{n}"))
            .collect();
        format!(" (evidence shared with {})", from.join(", "))
    };
    let reason = match verdict {
        Verdict::Resolved => format!("{} passing test(s){via}", count(TestOutcome::Passed)),
        Verdict::Regressed => {
            let mut failing: Vec<&str> = tests
                .iter()
                .filter(|t| t.outcome == TestOutcome::Failed)
                .map(|t| t.name.as_str())
                .collect();
            failing.dedup();
            let failed_anchors: Vec<&str> = anchors
                .iter()
                .filter(|a| a.failed)
                .map(|a| a.check)
                .collect();
            let mut parts = Vec::new();
            if !failing.is_empty() {
                parts.push(format!("failing test(s): {}", failing.join(", ")));
            }
            if !failed_anchors.is_empty() {
                parts.push(format!("failed check(s): {}", failed_anchors.join(", ")));
            }
            parts.join("; ")
        }
        Verdict::MissingEvidence => {
            let prefixes: Vec<String> = sources
                .iter()
                .map(|n| format!("production_issue_{n:02}_*"))
                .collect();
            if let Some(cause) = no_results_because {
                cause.to_owned()
            } else if tests.is_empty() {
                format!(
                    "no test named {} ran (expected in {})",
                    prefixes.join(" or "),
                    issue.owner
                )
            } else {
                format!("all {} evidence test(s) were skipped", tests.len())
            }
        }
    };

    IssueReport {
        number: issue.number,
        title: issue.title,
        must_hold: issue.must_hold,
        verdict,
        evidence_from: issue.evidence_from.to_vec(),
        owner: issue.owner,
        tests,
        anchors,
        reason,
    }
}

/// Cuts `text` to at most `max` characters (on a char boundary), saying so.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!(
            "{}\n… ({} more characters)",
            &text[..cut],
            text[cut..].chars().count()
        ),
    }
}

/// Writes `report.md`, `report.json` and `report.html` into `dir` (created if needed),
/// returning their paths.
pub fn write_all(report: &Report, dir: &Path) -> anyhow::Result<[std::path::PathBuf; 3]> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let md = dir.join("report.md");
    let js = dir.join("report.json");
    let ht = dir.join("report.html");
    std::fs::write(&md, markdown::render(report))
        .with_context(|| format!("cannot write {}", md.display()))?;
    std::fs::write(&js, json::render(report)?)
        .with_context(|| format!("cannot write {}", js.display()))?;
    std::fs::write(&ht, html::render(report))
        .with_context(|| format!("cannot write {}", ht.display()))?;
    Ok([md, js, ht])
}
