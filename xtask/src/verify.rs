//! `cargo xtask verify`: the production readiness verification.
//!
//! Runs every check (fmt, clippy, the test suite on both storage backends, doc tests,
//! loom models, the ThreadSanitizer race run, coverage, the manifest and config audits,
//! the performance smoke), maps test results to the 19 legacy issues by their
//! `production_issue_NN_*` names, and writes `target/readiness/report.{md,json,html}`.
//! The judging happens in [`crate::report::build`], a pure function of [`Collected`];
//! this module only runs things and collects what they printed.

pub mod audits;
pub mod catalogue;
pub mod check;
pub mod clock;
pub mod collected;
pub mod coverage;
pub mod junit;
pub mod libtest;
pub mod mapping;
pub mod progress;
pub mod race;
pub mod test_case;
pub mod verdict;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::report::{self, Report};
use crate::run::{cargo, has_program, step, workspace_root};
use crate::test_suite::loom_command;
use audits::{audit_config, ManifestAuditSummary};
use check::{CheckResult, CheckStatus};
use collected::Collected;
use progress::{Logged, Progress};
use race::RacePlan;
use test_case::{TestCase, TestOutcome};

/// Where the reports and logs go, relative to the workspace root.
pub const REPORT_DIR: &str = "target/readiness";

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Skip the race run and coverage (the slow parts), for CI.
    pub quick: bool,
    /// A configuration file to audit as the server would load it.
    pub config: Option<PathBuf>,
}

/// Runs the verification and writes the reports. `Ok(true)` when every issue is resolved
/// and no blocking check failed; `Ok(false)` otherwise (the caller exits non-zero).
pub fn run(options: &VerifyOptions) -> anyhow::Result<bool> {
    let root = workspace_root();
    let out_dir = root.join(REPORT_DIR);
    let steps = 10 + u64::from(options.config.is_some());
    let progress = Progress::new(steps, &out_dir.join("logs"), &root)?;
    let mut collected = Collected {
        quick: options.quick,
        ..Collected::default()
    };
    let record = |collected: &mut Collected, check: CheckResult| {
        progress.done(&check);
        collected.checks.push(check);
    };

    // 1. Style and lints.
    let fmt = progress.run_logged(
        "cargo fmt --check",
        "fmt",
        cargo().args(["fmt", "--all", "--", "--check"]),
    );
    record(
        &mut collected,
        command_check(
            "fmt",
            "Formatting (cargo fmt --check)",
            true,
            fmt,
            &progress,
            |l| {
                if l.success {
                    "formatted".to_owned()
                } else {
                    fmt_summary(&l.output())
                }
            },
        ),
    );
    let clippy = progress.run_logged(
        "cargo clippy -D warnings",
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    );
    record(
        &mut collected,
        command_check(
            "clippy",
            "Lints (clippy -D warnings)",
            true,
            clippy,
            &progress,
            |l| {
                if l.success {
                    "no warnings".to_owned()
                } else {
                    clippy_summary(&l.output())
                }
            },
        ),
    );

    // 2. The test suite, both storage backends.
    let (secantusd, _) = progress.task("provisioning the MongoDB-wire test server", || {
        chat_testkit::mongo::ensure_secantusd()
    });
    let secantusd = secantusd.map_err(|e| format!("{e:#}"));
    let nextest = nextest_available();

    let (check, tests) = test_run(
        &progress,
        &root,
        &out_dir,
        TestRun::Embedded,
        nextest,
        &secantusd,
    );
    collected.tests.extend(tests);
    record(&mut collected, check);

    let doc = progress.run_logged(
        "doc tests",
        "doctests",
        cargo().args(["test", "--workspace", "--doc"]),
    );
    record(
        &mut collected,
        command_check("doctests", "Doc tests", true, doc, &progress, |l| {
            libtest_summary(&l.output(), l.success)
        }),
    );

    if root
        .join("crates/chat-storage/tests/conformance.rs")
        .is_file()
    {
        let (check, tests) = test_run(
            &progress,
            &root,
            &out_dir,
            TestRun::Mongodb,
            nextest,
            &secantusd,
        );
        collected.tests.extend(tests);
        record(&mut collected, check);
    } else {
        record(
            &mut collected,
            not_available(
                "tests-mongodb",
                "Storage conformance suite on MongoDB",
                "crates/chat-storage/tests/conformance.rs does not exist yet",
            ),
        );
    }

    // 3. Loom models.
    let (check, models) = loom_run(&progress, &root);
    collected.loom_models = models;
    record(&mut collected, check);

    // 4. Race run.
    let check = if options.quick {
        skipped("race", "ThreadSanitizer race run", "--quick")
    } else {
        race_run(&progress, &root)
    };
    record(&mut collected, check);

    // 5. Coverage.
    if options.quick {
        record(
            &mut collected,
            skipped("coverage", "Line coverage (cargo-llvm-cov)", "--quick"),
        );
    } else {
        let (check, summary) = coverage_run(&progress, &out_dir, nextest, &secantusd);
        collected.coverage = summary;
        record(&mut collected, check);
    }

    // 6. Audits.
    let manifests = root.join(crate::manifest_audit::MANIFEST_DIR);
    let (audit, duration) = progress.task("manifest audit", || {
        crate::manifest_audit::audit_manifests(&manifests)
    });
    let summary = ManifestAuditSummary {
        files_scanned: audit.files_scanned,
        objects_checked: audit.objects_checked,
        errors: audit.errors().map(ToString::to_string).collect(),
        warnings: audit
            .findings
            .iter()
            .filter(|f| f.severity == crate::manifest_audit::Severity::Warning)
            .map(ToString::to_string)
            .collect(),
    };
    record(
        &mut collected,
        CheckResult {
            id: "manifest-audit".to_owned(),
            title: "Kubernetes manifest audit".to_owned(),
            blocking: true,
            status: if summary.passed() {
                CheckStatus::Passed
            } else {
                CheckStatus::Failed
            },
            duration: Some(duration),
            summary: format!(
                "{} files, {} objects, {} errors, {} warnings",
                summary.files_scanned,
                summary.objects_checked,
                summary.errors.len(),
                summary.warnings.len()
            ),
            log: None,
        },
    );
    collected.manifest_audit = Some(summary);

    if let Some(file) = &options.config {
        let (audit, duration) = progress.task("config audit", || audit_config(file));
        record(
            &mut collected,
            CheckResult {
                id: "config-audit".to_owned(),
                title: format!("Config audit of {}", file.display()),
                blocking: true,
                status: if audit.passed() {
                    CheckStatus::Passed
                } else {
                    CheckStatus::Failed
                },
                duration: Some(duration),
                summary: if audit.passed() {
                    "accepted by the server's validation".to_owned()
                } else {
                    format!(
                        "{} problem(s): {}",
                        audit.problems.len(),
                        audit.problems.join("; ")
                    )
                },
                log: None,
            },
        );
        collected.config_audit = Some(audit);
    }

    // 7. Performance smoke.
    let (check, table) = bench_smoke(&progress);
    collected.bench_smoke = table;
    record(&mut collected, check);

    progress.finish();
    collected.generated_at = clock::now_rfc3339();
    let report = report::build(&collected);
    let paths = report::write_all(&report, &out_dir)?;
    print_summary(&report, &paths, &root);
    Ok(report.passed)
}

/// `cargo xtask race` on its own: output streams to the terminal; a skip says why.
pub fn race_standalone() -> anyhow::Result<()> {
    let root = workspace_root();
    match race::plan(&root) {
        RacePlan::Skip { reason } => {
            println!("race run skipped: {reason}");
            Ok(())
        }
        RacePlan::Run { crates, target } => step(
            &format!("ThreadSanitizer run of {}", crates.join(", ")),
            &mut race::race_command(&crates, &target),
        ),
    }
}

/// `cargo xtask coverage` on its own: prints the per-crate table; fails when a core crate
/// is under the floor.
pub fn coverage_standalone() -> anyhow::Result<()> {
    let root = workspace_root();
    coverage::ensure_llvm_cov()?;
    let secantusd = chat_testkit::mongo::ensure_secantusd()
        .context("cannot provision the MongoDB-wire test server")?;
    let output = root.join(REPORT_DIR).join("coverage.json");
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut cmd = coverage::coverage_command(&output, nextest_available());
    cmd.env("SECANTUSD_BIN", &secantusd);
    step("instrumented test run (cargo llvm-cov)", &mut cmd)?;
    let json = std::fs::read_to_string(&output)
        .with_context(|| format!("cannot read {}", output.display()))?;
    let summary = coverage::parse_llvm_cov_json(&json, &root)?;
    print!("{}", coverage::render_table(&summary));
    let below: Vec<&str> = summary.below_floor().map(|c| c.name.as_str()).collect();
    if below.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "under the {:.0} % floor: {}",
            summary.floor_percent,
            below.join(", ")
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TestRun {
    Embedded,
    Mongodb,
}

fn test_run(
    progress: &Progress,
    root: &Path,
    out_dir: &Path,
    run: TestRun,
    nextest: bool,
    secantusd: &Result<PathBuf, String>,
) -> (CheckResult, Vec<TestCase>) {
    let (id, label, title) = match run {
        TestRun::Embedded => ("tests-embedded", "embedded", "Test suite (embedded store)"),
        TestRun::Mongodb => (
            "tests-mongodb",
            "mongodb",
            "Storage conformance suite on MongoDB",
        ),
    };
    let mut cmd = cargo();
    let scope: &[&str] = match run {
        TestRun::Embedded => &["--workspace"],
        TestRun::Mongodb => &["-p", "chat-storage", "--test", "conformance"],
    };
    if nextest {
        cmd.args(["nextest", "run", "--no-fail-fast"]).args(scope);
    } else {
        cmd.args(["test", "--no-fail-fast"]).args(scope);
    }
    match secantusd {
        Ok(bin) => {
            cmd.env("SECANTUSD_BIN", bin);
        }
        Err(e) if run == TestRun::Mongodb => {
            return (
                failed_check(
                    id,
                    title,
                    format!("cannot provision the MongoDB-wire test server: {e}"),
                ),
                Vec::new(),
            );
        }
        Err(_) => {}
    }
    if run == TestRun::Mongodb {
        cmd.env("CHATBOX_TEST_STORE", "mongodb");
    }
    let junit = root.join("target/nextest/default/junit.xml");
    // A stale file from an earlier run must not pass for this run's results.
    let kept = out_dir.join(format!("junit-{label}.xml"));
    let _ = std::fs::remove_file(&junit);
    let _ = std::fs::remove_file(&kept);

    let logged = match progress.run_logged(title, id, &mut cmd) {
        Ok(l) => l,
        Err(e) => return (failed_check(id, title, format!("{e:#}")), Vec::new()),
    };
    let (tests, parse_problem) = if nextest {
        match std::fs::read_to_string(&junit) {
            Ok(xml) => {
                let _ = std::fs::write(&kept, &xml);
                match junit::parse_junit(&xml, label) {
                    Ok(t) => (t, None),
                    Err(e) => (Vec::new(), Some(format!("unreadable JUnit: {e}"))),
                }
            }
            Err(_) => (
                Vec::new(),
                Some("no JUnit output (the build failed?)".to_owned()),
            ),
        }
    } else {
        let cases = libtest::parse_libtest(&logged.output(), label);
        (cases.into_iter().map(|c| c.case).collect(), None)
    };
    let counts = counts(&tests);
    let mut summary = format!(
        "{} passed, {} failed, {} skipped{}",
        counts.0,
        counts.1,
        counts.2,
        if nextest {
            ""
        } else {
            " (cargo test: nextest not installed)"
        }
    );
    if let Some(problem) = &parse_problem {
        summary = format!("{problem}; {}", first_error(&logged.output()));
    }
    let status = if logged.success && parse_problem.is_none() && counts.1 == 0 {
        CheckStatus::Passed
    } else {
        CheckStatus::Failed
    };
    (
        CheckResult {
            id: id.to_owned(),
            title: title.to_owned(),
            blocking: true,
            status,
            duration: Some(logged.duration),
            summary,
            log: Some(progress.relative(&logged.log)),
        },
        tests,
    )
}

fn loom_run(progress: &Progress, root: &Path) -> (CheckResult, Vec<libtest::LibtestCase>) {
    const TITLE: &str = "Loom models (--cfg loom, release)";
    let mut cmd = loom_command(root);
    // `loom::model` logs `Completed in N iterations` at info level through the test
    // writer: visible with --nocapture, attributable with one test thread.
    cmd.env("LOOM_LOG", "loom::model=info").args([
        "--",
        "--nocapture",
        "--test-threads=1",
        "--color",
        "never",
    ]);
    let logged = match progress.run_logged(TITLE, "loom", &mut cmd) {
        Ok(l) => l,
        Err(e) => return (failed_check("loom", TITLE, format!("{e:#}")), Vec::new()),
    };
    let all = libtest::parse_libtest(&logged.output(), "loom");
    let failed = all
        .iter()
        .filter(|m| m.case.outcome == TestOutcome::Failed)
        .count();
    let (models, others): (Vec<_>, Vec<_>) = all.into_iter().partition(|m| m.is_loom_model());
    let with_iterations = models.iter().filter(|m| m.iterations.is_some()).count();
    let (status, summary) = if !logged.success {
        let detail = if models.is_empty() && others.is_empty() {
            first_error(&logged.output())
        } else {
            format!(
                "{failed} of {} tests of the loom build failed",
                models.len() + others.len()
            )
        };
        (CheckStatus::Failed, detail)
    } else if models.is_empty() {
        (
            CheckStatus::Failed,
            "the loom build ran no model: nothing was explored".to_owned(),
        )
    } else {
        (
            CheckStatus::Passed,
            format!(
                "{} models passed (iterations reported for {with_iterations}); {} other tests of the loom build passed",
                models.len(),
                others.len()
            ),
        )
    };
    (
        CheckResult {
            id: "loom".to_owned(),
            title: TITLE.to_owned(),
            blocking: true,
            status,
            duration: Some(logged.duration),
            summary,
            log: Some(progress.relative(&logged.log)),
        },
        models,
    )
}

fn race_run(progress: &Progress, root: &Path) -> CheckResult {
    const TITLE: &str = "ThreadSanitizer race run";
    let (plan, _) = progress.task("checking for a nightly toolchain with rust-src", || {
        race::plan(root)
    });
    let (crates, target) = match plan {
        RacePlan::Skip { reason } => return skipped("race", TITLE, &reason),
        RacePlan::Run { crates, target } => (crates, target),
    };
    let missing: Vec<&str> = race::RACE_CRATES
        .iter()
        .filter(|c| !crates.iter().any(|p| p == *c))
        .copied()
        .collect();
    let logged = match progress.run_logged(TITLE, "race", &mut race::race_command(&crates, &target))
    {
        Ok(l) => l,
        Err(e) => return failed_check("race", TITLE, format!("{e:#}")),
    };
    let output = logged.output();
    let reports = race::count_reports(&output);
    let tests = libtest::parse_libtest(&output, "race");
    let (passed, failed, _) = counts(&tests.iter().map(|t| t.case.clone()).collect::<Vec<_>>());
    let mut summary = if reports > 0 {
        format!("{reports} ThreadSanitizer report(s); {passed} tests passed, {failed} failed")
    } else if logged.success {
        format!("no data race in {passed} tests of {}", crates.join(", "))
    } else if tests.is_empty() {
        first_error(&output)
    } else {
        format!("{failed} test(s) failed under the sanitizer")
    };
    if !missing.is_empty() {
        summary.push_str(&format!(
            " (not in the workspace yet: {})",
            missing.join(", ")
        ));
    }
    CheckResult {
        id: "race".to_owned(),
        title: TITLE.to_owned(),
        // A detected race regresses issue #4 (its anchor), which fails the run.
        blocking: false,
        status: if logged.success && reports == 0 {
            CheckStatus::Passed
        } else {
            CheckStatus::Failed
        },
        duration: Some(logged.duration),
        summary,
        log: Some(progress.relative(&logged.log)),
    }
}

fn coverage_run(
    progress: &Progress,
    out_dir: &Path,
    nextest: bool,
    secantusd: &Result<PathBuf, String>,
) -> (CheckResult, Option<coverage::CoverageSummary>) {
    const TITLE: &str = "Line coverage (cargo-llvm-cov)";
    let (ready, install_time) = progress.task(
        "installing cargo-llvm-cov / llvm-tools if missing",
        coverage::ensure_llvm_cov,
    );
    if let Err(e) = ready {
        let mut check = failed_check(
            "coverage",
            TITLE,
            format!("cannot install cargo-llvm-cov: {e:#}"),
        );
        check.blocking = false;
        check.duration = Some(install_time);
        return (check, None);
    }
    let output = out_dir.join("coverage.json");
    let _ = std::fs::remove_file(&output);
    let mut cmd = coverage::coverage_command(&output, nextest);
    if let Ok(bin) = secantusd {
        cmd.env("SECANTUSD_BIN", bin);
    }
    let logged = progress.run_logged(TITLE, "coverage", &mut cmd);
    let root = workspace_root();
    let (status, summary, coverage, duration, log) = match logged {
        Err(e) => (CheckStatus::Failed, format!("{e:#}"), None, None, None),
        Ok(l) => {
            let parsed = std::fs::read_to_string(&output)
                .map_err(anyhow::Error::from)
                .and_then(|json| coverage::parse_llvm_cov_json(&json, &root));
            let log = Some(progress.relative(&l.log));
            match parsed {
                Err(e) => (
                    CheckStatus::Failed,
                    format!("no coverage data ({e:#}); {}", first_error(&l.output())),
                    None,
                    Some(l.duration),
                    log,
                ),
                Ok(cov) => {
                    let below: Vec<String> = cov
                        .below_floor()
                        .map(|c| format!("{} {:.1} %", c.name, c.percent()))
                        .collect();
                    let (status, summary) = if below.is_empty() {
                        (
                            CheckStatus::Passed,
                            format!("every core crate at or above {:.0} %", cov.floor_percent),
                        )
                    } else {
                        (
                            CheckStatus::Failed,
                            format!(
                                "under the {:.0} % floor: {}",
                                cov.floor_percent,
                                below.join(", ")
                            ),
                        )
                    };
                    (status, summary, Some(cov), Some(l.duration), log)
                }
            }
        }
    };
    (
        CheckResult {
            id: "coverage".to_owned(),
            title: TITLE.to_owned(),
            // The floor is a goal reported on every run, not a gate (READINESS.md).
            blocking: false,
            status,
            duration,
            summary,
            log,
        },
        coverage,
    )
}

/// Runs `cargo xtask bench --smoke` (release build of the server and the load generator,
/// small counts) and returns its results table (`target/bench/results.md`). Nothing is
/// reported that the benchmark did not measure in this run: a stale table is removed first.
fn bench_smoke(progress: &Progress) -> (CheckResult, Option<String>) {
    const TITLE: &str = "Performance smoke (cargo xtask bench --smoke)";
    let results = crate::bench::target_dir().join("bench").join("results.md");
    let _ = std::fs::remove_file(&results);
    let logged = progress.run_logged(
        TITLE,
        "bench-smoke",
        // Through cargo, not `current_exe`: the suite's own build may have replaced
        // the running xtask binary on disk.
        crate::run::cargo().args(["xtask", "bench", "--smoke"]),
    );
    let mut check = command_check("bench-smoke", TITLE, false, logged, progress, |l| {
        if l.success {
            "results in target/bench/results.md".to_owned()
        } else {
            first_error(&l.output())
        }
    });
    // Missed targets are shown in the table; only a measurement that could not be taken
    // fails the smoke, and even that does not block (performance is not a readiness issue).
    check.blocking = false;
    let table = std::fs::read_to_string(&results).ok();
    (check, table)
}

fn command_check(
    id: &str,
    title: &str,
    blocking: bool,
    logged: anyhow::Result<Logged>,
    progress: &Progress,
    summarize: impl FnOnce(&Logged) -> String,
) -> CheckResult {
    match logged {
        Err(e) => CheckResult {
            blocking,
            ..failed_check(id, title, format!("{e:#}"))
        },
        Ok(l) => CheckResult {
            id: id.to_owned(),
            title: title.to_owned(),
            blocking,
            status: if l.success {
                CheckStatus::Passed
            } else {
                CheckStatus::Failed
            },
            duration: Some(l.duration),
            summary: summarize(&l),
            log: Some(progress.relative(&l.log)),
        },
    }
}

fn failed_check(id: &str, title: &str, summary: String) -> CheckResult {
    CheckResult {
        id: id.to_owned(),
        title: title.to_owned(),
        blocking: true,
        status: CheckStatus::Failed,
        duration: None,
        summary,
        log: None,
    }
}

fn skipped(id: &str, title: &str, reason: &str) -> CheckResult {
    CheckResult {
        id: id.to_owned(),
        title: title.to_owned(),
        blocking: false,
        status: CheckStatus::Skipped {
            reason: reason.to_owned(),
        },
        duration: None,
        summary: format!("skipped: {reason}"),
        log: None,
    }
}

fn not_available(id: &str, title: &str, reason: &str) -> CheckResult {
    CheckResult {
        id: id.to_owned(),
        title: title.to_owned(),
        blocking: false,
        status: CheckStatus::NotAvailable {
            reason: reason.to_owned(),
        },
        duration: None,
        summary: format!("not available: {reason}"),
        log: None,
    }
}

fn nextest_available() -> bool {
    has_program("cargo-nextest", &["nextest", "--version"])
        || cargo()
            .args(["nextest", "--version"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
}

fn counts(tests: &[TestCase]) -> (usize, usize, usize) {
    let n = |o| tests.iter().filter(|t| t.outcome == o).count();
    (
        n(TestOutcome::Passed),
        n(TestOutcome::Failed),
        n(TestOutcome::Skipped),
    )
}

fn libtest_summary(output: &str, success: bool) -> String {
    match libtest::result_totals(output) {
        Some((p, f, i)) => format!("{p} passed, {f} failed, {i} ignored"),
        None if success => "no test ran".to_owned(),
        None => format!("failed before running: {}", first_error(output)),
    }
}

/// The files `cargo fmt --check` would change (`Diff in <file>:<line>:` lines).
fn fmt_summary(output: &str) -> String {
    let root = format!("{}/", workspace_root().display());
    let mut files: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("Diff in "))
        .filter_map(|rest| rest.split(':').next())
        .map(|file| file.strip_prefix(root.as_str()).unwrap_or(file))
        .collect();
    files.sort_unstable();
    files.dedup();
    if files.is_empty() {
        first_lines(output, 3)
    } else {
        format!(
            "{} file(s) need formatting: {}",
            files.len(),
            files.join(", ")
        )
    }
}

fn clippy_summary(output: &str) -> String {
    let count = output.lines().filter(|l| l.starts_with("error")).count();
    format!("{count} error line(s); first: {}", first_error(output))
}

/// The first `error` line of a cargo run, or its first lines.
fn first_error(output: &str) -> String {
    output
        .lines()
        .find(|l| l.trim_start().starts_with("error"))
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| first_lines(output, 2))
}

fn first_lines(output: &str, n: usize) -> String {
    output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .collect::<Vec<_>>()
        .join(" / ")
}

fn print_summary(report: &Report, paths: &[PathBuf; 3], root: &Path) {
    println!();
    println!(
        "Production readiness: {}",
        if report.passed { "PASSED" } else { "FAILED" }
    );
    for issue in &report.issues {
        println!(
            "  #{:<2} {:<17} {}",
            issue.number,
            issue.verdict.as_str(),
            issue.title
        );
    }
    let s = &report.summary;
    println!(
        "  {} resolved, {} regressed, {} missing evidence; {} blocking check(s) failed",
        s.resolved, s.regressed, s.missing_evidence, s.blocking_checks_failed
    );
    for reason in &report.failure_reasons {
        println!("  - {reason}");
    }
    for path in paths {
        println!(
            "  report: {}",
            path.strip_prefix(root).unwrap_or(path).display()
        );
    }
}
