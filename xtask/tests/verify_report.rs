//! The readiness report end to end on collected results: JUnit parsing of a nextest
//! sample, the name → issue mapping, verdicts (#16 ← #13, anchors), the exit verdict, and
//! the three renderers (HTML escapes test output and stays self-contained).

use std::time::Duration;

use xtask::report::{self, Report};
use xtask::verify::check::{CheckResult, CheckStatus};
use xtask::verify::collected::Collected;
use xtask::verify::coverage::{CoverageSummary, CrateCoverage};
use xtask::verify::junit::parse_junit;
use xtask::verify::libtest::LibtestCase;
use xtask::verify::test_case::{TestCase, TestOutcome};
use xtask::verify::verdict::Verdict;

const SAMPLE: &str = include_str!("verify_data/nextest-junit.xml");

fn case(run: &str, name: &str, outcome: TestOutcome) -> TestCase {
    TestCase {
        run: run.to_owned(),
        suite: "crate::suite".to_owned(),
        name: name.to_owned(),
        outcome,
        duration: Some(Duration::from_millis(12)),
        output: if outcome == TestOutcome::Failed {
            "assertion failed".to_owned()
        } else {
            String::new()
        },
    }
}

fn check(id: &str, blocking: bool, status: CheckStatus) -> CheckResult {
    CheckResult {
        id: id.to_owned(),
        title: id.to_owned(),
        blocking,
        status,
        duration: Some(Duration::from_secs(1)),
        summary: format!("{id} summary"),
        log: None,
    }
}

fn passing_checks() -> Vec<CheckResult> {
    [
        "fmt",
        "clippy",
        "tests-embedded",
        "doctests",
        "loom",
        "manifest-audit",
    ]
    .iter()
    .map(|id| check(id, true, CheckStatus::Passed))
    .chain([check(
        "race",
        false,
        CheckStatus::Skipped {
            reason: "no nightly toolchain".to_owned(),
        },
    )])
    .collect()
}

/// Every issue has one passing test named for it (16 gets none of its own: it relies on
/// #13's).
fn all_resolved() -> Collected {
    Collected {
        generated_at: "2026-11-27T23:00:00Z".to_owned(),
        checks: passing_checks(),
        tests: (1..=19u8)
            .filter(|n| *n != 16)
            .map(|n| {
                case(
                    "embedded",
                    &format!("production_issue_{n:02}_holds"),
                    TestOutcome::Passed,
                )
            })
            .collect(),
        ..Collected::default()
    }
}

fn issue(report: &Report, n: u8) -> &report::IssueReport {
    &report.issues[usize::from(n) - 1]
}

#[test]
fn nextest_junit_yields_names_results_times_and_output() {
    let cases = parse_junit(SAMPLE, "embedded").unwrap();
    let got: Vec<_> = cases
        .iter()
        .map(|c| (c.suite.as_str(), c.name.as_str(), c.outcome))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "chat-config",
                "net::tests::origins_are_bare",
                TestOutcome::Passed
            ),
            (
                "chat-session::manager",
                "production_issue_01_session_cleanup",
                TestOutcome::Passed
            ),
            (
                "chat-session::manager",
                "production_issue_01_memory_growth",
                TestOutcome::Failed
            ),
            ("chat-session::manager", "slow_soak", TestOutcome::Skipped),
            (
                "chat-server::startup",
                "production_issue_05_main_server_startup",
                TestOutcome::Failed
            ),
            (
                "chat-server::startup",
                "tests::production_issue_17_weak_secret_refused_by_the_binary",
                TestOutcome::Passed
            ),
        ]
    );
    assert!(cases.iter().all(|c| c.run == "embedded"));
    assert_eq!(cases[2].duration, Some(Duration::from_millis(1250)));

    let failure = &cases[2].output;
    assert!(failure.contains("panicked at crates/chat-session/tests/manager.rs:88:5"));
    assert!(
        failure.contains("sessions left <script>alert(1)</script> A&B"),
        "entities decoded: {failure}"
    );
    assert!(failure.contains(" right: 0"), "line breaks kept: {failure}");

    assert_eq!(
        cases[4].output, "test timed out\nlistening on 127.0.0.1:0 <ok>",
        "message attribute, then CDATA; no whitespace after an empty <error/>"
    );
    assert!(cases[0].output.is_empty());
}

#[test]
fn malformed_junit_is_an_error_not_an_empty_run() {
    assert!(parse_junit("<testsuites><testcase name=\"a\"></testsuite>", "embedded").is_err());
    assert!(parse_junit(
        "<testsuites><testcase time=\"1\"/></testsuites>",
        "embedded"
    )
    .is_err());
}

#[test]
fn junit_results_map_to_issues_by_name() {
    let mut input = all_resolved();
    input.tests = parse_junit(SAMPLE, "embedded").unwrap();
    let report = report::build(&input);

    let one = issue(&report, 1);
    assert_eq!(one.verdict, Verdict::Regressed);
    assert_eq!(one.tests.len(), 2);
    assert_eq!(
        one.tests[0].name, "production_issue_01_memory_growth",
        "failures first"
    );
    assert!(one.reason.contains("production_issue_01_memory_growth"));

    assert_eq!(issue(&report, 5).verdict, Verdict::Regressed);
    assert_eq!(
        issue(&report, 17).verdict,
        Verdict::Resolved,
        "nested module path still maps"
    );
    assert_eq!(issue(&report, 2).verdict, Verdict::MissingEvidence);
    assert!(issue(&report, 2).reason.contains("production_issue_02_*"));
    assert!(!report.passed);
}

#[test]
fn every_issue_with_passing_evidence_and_green_checks_passes() {
    let report = report::build(&all_resolved());
    assert!(report.passed, "{:?}", report.failure_reasons);
    assert_eq!(report.summary.resolved, 19);
    assert_eq!(report.summary.tests_passed, 18);
    assert!(report.failure_reasons.is_empty());
}

#[test]
fn issue_16_is_proven_by_the_issue_13_tests() {
    let report = report::build(&all_resolved());
    let sixteen = issue(&report, 16);
    assert_eq!(sixteen.verdict, Verdict::Resolved);
    assert_eq!(sixteen.evidence_from, vec![13]);
    assert_eq!(sixteen.tests.len(), 1);
    assert_eq!(sixteen.tests[0].named_for, 13);
    assert_eq!(sixteen.tests[0].name, "production_issue_13_holds");

    let mut input = all_resolved();
    input.tests.push(case(
        "embedded",
        "production_issue_13_empty_list_refused",
        TestOutcome::Failed,
    ));
    let report = report::build(&input);
    assert_eq!(issue(&report, 13).verdict, Verdict::Regressed);
    assert_eq!(issue(&report, 16).verdict, Verdict::Regressed);

    let mut input = all_resolved();
    input
        .tests
        .retain(|t| !t.name.starts_with("production_issue_13"));
    let report = report::build(&input);
    assert_eq!(issue(&report, 16).verdict, Verdict::MissingEvidence);
    assert!(issue(&report, 16).reason.contains("production_issue_13_*"));
}

#[test]
fn removing_an_invariant_turns_its_issue_regressed_and_the_run_red() {
    let mut input = all_resolved();
    // The session sweeper removed: its test fails on the MongoDB run only.
    input.tests.push(case(
        "mongodb",
        "production_issue_01_session_cleanup",
        TestOutcome::Failed,
    ));
    let report = report::build(&input);
    assert_eq!(issue(&report, 1).verdict, Verdict::Regressed);
    assert_eq!(report.summary.regressed, 1);
    assert!(!report.passed);
    assert!(report
        .failure_reasons
        .iter()
        .any(|r| r.starts_with("issue #1 regressed")));
}

#[test]
fn only_skipped_evidence_is_missing_evidence() {
    let mut input = all_resolved();
    input
        .tests
        .retain(|t| !t.name.starts_with("production_issue_12"));
    input.tests.push(case(
        "embedded",
        "production_issue_12_soak",
        TestOutcome::Skipped,
    ));
    let report = report::build(&input);
    assert_eq!(issue(&report, 12).verdict, Verdict::MissingEvidence);
    assert!(!report.passed);
}

#[test]
fn a_failed_loom_run_regresses_the_issues_it_anchors() {
    let mut input = all_resolved();
    for c in &mut input.checks {
        if c.id == "loom" {
            c.status = CheckStatus::Failed;
        }
    }
    input.loom_models.push(LibtestCase {
        case: case(
            "loom",
            "loom_snapshot_vs_mutation_is_never_torn",
            TestOutcome::Failed,
        ),
        iterations: None,
    });
    let report = report::build(&input);
    assert_eq!(issue(&report, 4).verdict, Verdict::Regressed);
    assert_eq!(issue(&report, 10).verdict, Verdict::Regressed);
    assert_eq!(issue(&report, 1).verdict, Verdict::Resolved);
    assert!(issue(&report, 10).reason.contains("loom"));
    assert_eq!(report.summary.blocking_checks_failed, 1);
}

#[test]
fn a_skipped_race_run_is_reported_with_its_reason_never_as_passed() {
    let report = report::build(&all_resolved());
    let race = issue(&report, 4)
        .anchors
        .iter()
        .find(|a| a.check == "race")
        .unwrap();
    assert_eq!(race.status, "skipped: no nightly toolchain");
    assert!(!race.failed);
    assert_eq!(issue(&report, 4).verdict, Verdict::Resolved);
}

#[test]
fn only_blocking_check_failures_fail_the_run() {
    let mut input = all_resolved();
    input
        .checks
        .push(check("coverage", false, CheckStatus::Failed));
    assert!(
        report::build(&input).passed,
        "coverage under the floor is reported, not blocking"
    );

    input
        .checks
        .push(check("clippy", true, CheckStatus::Failed));
    let report = report::build(&input);
    assert!(!report.passed);
    assert_eq!(
        report.failure_reasons,
        vec!["check clippy failed: clippy summary"]
    );
}

#[test]
fn tests_named_for_an_unknown_issue_are_flagged() {
    let mut input = all_resolved();
    input.tests.push(case(
        "embedded",
        "production_issue_20_typo",
        TestOutcome::Passed,
    ));
    let report = report::build(&input);
    assert_eq!(
        report.stray_tests,
        vec!["production_issue_20_typo (crate::suite)"]
    );
}

fn rich_input() -> Collected {
    let mut input = all_resolved();
    input.quick = true;
    input.tests.push(TestCase {
        output: "left: <script>alert('x')</script> | & \"quoted\"\n```\nfence".to_owned(),
        ..case(
            "embedded",
            "production_issue_07_invalid_frames",
            TestOutcome::Failed,
        )
    });
    input.bench_smoke =
        Some("# Benchmarks\n\n| metric | value |\n|---|---|\n| <ttft> | 3 ms |\n".to_owned());
    input.loom_models.push(LibtestCase {
        case: case(
            "loom",
            "loom_one_active_session_per_user",
            TestOutcome::Passed,
        ),
        iterations: Some(4_321),
    });
    input.coverage = Some(CoverageSummary {
        floor_percent: 80.0,
        crates: vec![
            CrateCoverage {
                name: "chat-session".to_owned(),
                lines_covered: 93,
                lines_total: 100,
                core: true,
            },
            CrateCoverage {
                name: "chat-ws".to_owned(),
                lines_covered: 50,
                lines_total: 100,
                core: true,
            },
        ],
    });
    input
}

#[test]
fn html_is_self_contained_and_escapes_everything_from_the_run() {
    let html = report::html::render(&report::build(&rich_input()));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        !html.contains("<script"),
        "test output must not become markup"
    );
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; | &amp; &quot;quoted&quot;")
    );
    for external in ["<link", "src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(external), "external asset: {external}");
    }
    assert!(html.contains("<style>"));
    assert!(html.contains("id=\"issue-7\""));
    assert!(
        html.contains("class=\"fill ok\" style=\"width:93.0%\""),
        "coverage bar"
    );
    assert!(
        html.contains("class=\"fill bad\" style=\"width:50.0%\""),
        "below-floor bar"
    );
    assert!(html.contains("4321"), "loom iterations");
    assert_eq!(
        html.matches("<section class=\"issue").count(),
        19,
        "a table per issue"
    );
    assert!(
        html.contains("| &lt;ttft&gt; | 3 ms |"),
        "bench table escaped"
    );
}

#[test]
fn markdown_has_an_overview_row_per_issue_and_safe_output() {
    let md = report::markdown::render(&report::build(&rich_input()));
    assert!(md.contains("**FAILED**"));
    assert!(
        md.contains("| 7 | WebSocket messages were not validated or sanitized | ❌ regressed |")
    );
    assert!(md.contains("| 16 | Insecure default origin policy | ✅ resolved |"));
    assert!(
        md.contains("````text\nleft: <script>"),
        "fence longer than the output's backticks"
    );
    assert!(md.contains("| chat-ws | 100 | 50 | 50.0 | ❌ below floor |"));
    assert!(md.contains("skipped: no nightly toolchain"));
    assert!(md.contains("with `--quick`"));
    assert!(
        md.contains("## Performance smoke\n\n### Benchmarks\n"),
        "bench headings demoted"
    );
}

#[test]
fn json_carries_the_schema_and_stable_field_names() {
    let json = report::json::render(&report::build(&rich_input())).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["schema"], "chatbox-readiness/1");
    assert_eq!(value["passed"], false);
    assert_eq!(value["issues"].as_array().map(Vec::len), Some(19));
    assert_eq!(value["issues"][6]["verdict"], "regressed");
    assert_eq!(value["issues"][15]["evidence_from"][0], 13);
    assert_eq!(value["issues"][0]["tests"][0]["outcome"], "passed");
    assert_eq!(value["issues"][0]["tests"][0]["duration_ms"], 12);
    let race = value["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "race"))
        .unwrap();
    assert_eq!(race["status"]["status"], "skipped");
    assert_eq!(race["status"]["reason"], "no nightly toolchain");
    assert_eq!(value["loom_models"][0]["iterations"], 4321);
    assert_eq!(value["coverage"]["crates"][1]["below_floor"], true);
    assert_eq!(value["summary"]["missing_evidence"], 0);
    assert!(value["bench_smoke"].as_str().unwrap().contains("3 ms"));
}

#[test]
fn write_all_produces_the_three_files() {
    let dir = tempfile::tempdir().unwrap();
    let paths = report::write_all(&report::build(&all_resolved()), dir.path()).unwrap();
    let names: Vec<_> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["report.md", "report.json", "report.html"]);
    assert!(paths
        .iter()
        .all(|p| std::fs::metadata(p).unwrap().len() > 100));
}

#[test]
fn real_loom_output_lists_every_model_with_its_iterations() {
    let output = include_str!("verify_data/loom-output.txt");
    let all = xtask::verify::libtest::parse_libtest(output, "loom");
    assert!(
        all.len() > 8,
        "ordinary tests of the loom build are parsed too"
    );
    let models: Vec<_> = all.into_iter().filter(|m| m.is_loom_model()).collect();
    assert_eq!(models.len(), 8, "{models:#?}");
    assert!(models.iter().all(|m| m.case.outcome == TestOutcome::Passed));
    assert!(models.iter().all(|m| m.iterations.is_some()), "{models:#?}");
    let torn = models
        .iter()
        .find(|m| m.case.name == "loom_snapshot_vs_mutation_is_never_torn")
        .unwrap();
    assert_eq!(torn.case.suite, "loom_session");
    assert_eq!(torn.iterations, Some(33));
    assert_eq!(models[0].case.suite, "loom_connection");
}

#[test]
fn real_llvm_cov_export_sums_lines_per_crate() {
    let json = include_str!("verify_data/llvm-cov-chat-config.json");
    let summary =
        xtask::verify::coverage::parse_llvm_cov_json(json, std::path::Path::new("/work/main"))
            .unwrap();
    assert_eq!(summary.crates.len(), 1);
    let config = &summary.crates[0];
    assert_eq!(config.name, "chat-config");
    assert!(config.core);
    assert_eq!((config.lines_covered, config.lines_total), (918, 994));
    assert_eq!(summary.below_floor().count(), 0);
}

#[test]
fn a_test_run_that_did_not_build_is_named_as_the_cause_of_missing_evidence() {
    let mut input = all_resolved();
    input.tests.clear();
    for c in &mut input.checks {
        if c.id == "tests-embedded" {
            c.status = CheckStatus::Failed;
        }
    }
    let report = report::build(&input);
    assert_eq!(report.summary.missing_evidence, 19);
    assert_eq!(
        issue(&report, 5).reason,
        "no test results at all: check tests-embedded failed"
    );
    assert!(!report.passed);
}
