//! `report.md`: the report as Markdown, for a pull request or a review. Every string that
//! comes from test output is escaped for table cells or fenced safely.

use std::fmt::Write as _;

use super::Report;
use crate::verify::check::CheckStatus;
use crate::verify::test_case::TestOutcome;
use crate::verify::verdict::Verdict;

/// Renders the whole report.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let s = &report.summary;
    let _ = writeln!(out, "# Production readiness report\n");
    let _ = writeln!(
        out,
        "**{}** — {} resolved, {} regressed, {} missing evidence; tests: {} passed, {} failed, {} skipped.  ",
        if report.passed { "PASSED" } else { "FAILED" },
        s.resolved,
        s.regressed,
        s.missing_evidence,
        s.tests_passed,
        s.tests_failed,
        s.tests_skipped
    );
    let _ = writeln!(
        out,
        "Generated {}{}; schema `{}`.\n",
        report.generated_at,
        if report.quick {
            " with `--quick` (race run and coverage skipped)"
        } else {
            ""
        },
        report.schema
    );
    if !report.failure_reasons.is_empty() {
        let _ = writeln!(out, "## Why it fails\n");
        for reason in &report.failure_reasons {
            let _ = writeln!(out, "- {}", inline(reason));
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Issues\n");
    let _ = writeln!(out, "| # | Issue | Verdict | Evidence |");
    let _ = writeln!(out, "|---|---|---|---|");
    for issue in &report.issues {
        let _ = writeln!(
            out,
            "| {} | {} | {} {} | {} |",
            issue.number,
            cell(issue.title),
            verdict_mark(issue.verdict),
            issue.verdict.as_str(),
            cell(&issue.reason)
        );
    }
    out.push('\n');

    let _ = writeln!(out, "## Checks\n");
    let _ = writeln!(out, "| Check | Blocking | Status | Time | Detail |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for c in &report.checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} {} | {} | {} |",
            cell(&c.title),
            if c.blocking { "yes" } else { "no" },
            status_mark(&c.status),
            c.status.word(),
            c.duration
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_default(),
            cell(&c.summary)
        );
    }
    out.push('\n');

    let _ = writeln!(out, "## Evidence per issue\n");
    for issue in &report.issues {
        let _ = writeln!(
            out,
            "### #{} {} — {} {}\n",
            issue.number,
            inline(issue.title),
            verdict_mark(issue.verdict),
            issue.verdict.as_str()
        );
        let _ = writeln!(out, "What must hold: {}\n", inline(issue.must_hold));
        if !issue.evidence_from.is_empty() {
            let from: Vec<String> = issue
                .evidence_from
                .iter()
                .map(|n| format!("#{n}"))
                .collect();
            let _ = writeln!(out, "Evidence shared with {}.\n", from.join(", "));
        }
        for a in &issue.anchors {
            let _ = writeln!(out, "- anchor `{}`: {}", a.check, inline(&a.status));
        }
        if !issue.anchors.is_empty() {
            out.push('\n');
        }
        if issue.tests.is_empty() {
            let _ = writeln!(out, "_{}_\n", inline(&issue.reason));
            continue;
        }
        let _ = writeln!(out, "| Test | Run | Suite | Result | Time |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for t in &issue.tests {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} {} | {} |",
                cell(&t.name).replace('`', "'"),
                cell(&t.run),
                cell(&t.suite),
                outcome_mark(t.outcome),
                t.outcome.as_str(),
                t.duration_ms
                    .map(|d| format!("{} ms", d.as_millis()))
                    .unwrap_or_default()
            );
        }
        out.push('\n');
        for t in issue.tests.iter().filter(|t| !t.output.is_empty()) {
            let _ = writeln!(
                out,
                "Output of `{}` ({}):\n",
                t.name.replace('`', "'"),
                inline(&t.run)
            );
            out.push_str(&fenced(&t.output));
            out.push('\n');
        }
    }

    let _ = writeln!(out, "## Loom models\n");
    if report.loom_models.is_empty() {
        let _ = writeln!(out, "_No loom model ran (see the `loom` check)._\n");
    } else {
        let _ = writeln!(out, "| Model | Suite | Result | Iterations |");
        let _ = writeln!(out, "|---|---|---|---|");
        for m in &report.loom_models {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} {} | {} |",
                cell(&m.name).replace('`', "'"),
                cell(&m.suite),
                outcome_mark(m.outcome),
                m.outcome.as_str(),
                m.iterations
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "not reported".to_owned())
            );
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Coverage\n");
    match &report.coverage {
        None => {
            let _ = writeln!(
                out,
                "_Not measured in this run (see the `coverage` check)._\n"
            );
        }
        Some(cov) => {
            let _ = writeln!(
                out,
                "Floor for core crates: {:.0} % of lines.\n",
                cov.floor_percent
            );
            let _ = writeln!(out, "| Crate | Lines | Covered | % | |");
            let _ = writeln!(out, "|---|---|---|---|---|");
            for c in &cov.crates {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.1} | {} |",
                    cell(&c.name),
                    c.lines_total,
                    c.lines_covered,
                    c.percent,
                    if c.below_floor {
                        "❌ below floor"
                    } else if c.core {
                        "✅"
                    } else {
                        "not held to the floor"
                    }
                );
            }
            out.push('\n');
        }
    }

    let _ = writeln!(out, "## Manifest audit\n");
    match &report.manifest_audit {
        None => {
            let _ = writeln!(out, "_Did not run (see the `manifest-audit` check)._\n");
        }
        Some(m) => {
            let _ = writeln!(
                out,
                "{} files, {} objects: {} errors, {} warnings.\n",
                m.files_scanned,
                m.objects_checked,
                m.errors.len(),
                m.warnings.len()
            );
            for e in &m.errors {
                let _ = writeln!(out, "- ❌ {}", inline(e));
            }
            for w in &m.warnings {
                let _ = writeln!(out, "- ⚠️ {}", inline(w));
            }
            out.push('\n');
        }
    }

    if let Some(c) = &report.config_audit {
        let _ = writeln!(out, "## Config audit: `{}`\n", c.file.replace('`', "'"));
        if c.passed() {
            let _ = writeln!(out, "✅ accepted by the server's validation.\n");
        }
        for p in &c.problems {
            let _ = writeln!(out, "- ❌ {}", inline(p));
        }
        for n in &c.notes {
            let _ = writeln!(out, "- {}", inline(n));
        }
        out.push('\n');
    }

    if let Some(table) = &report.bench_smoke {
        // The benchmark's own Markdown, one heading level down.
        let _ = writeln!(out, "## Performance smoke\n");
        for line in table.lines() {
            if line.starts_with('#') {
                let _ = writeln!(out, "##{line}");
            } else {
                let _ = writeln!(out, "{line}");
            }
        }
        out.push('\n');
    }

    if !report.stray_tests.is_empty() {
        let _ = writeln!(out, "## Tests named for an unknown issue\n");
        for t in &report.stray_tests {
            let _ = writeln!(out, "- `{}`", t.replace('`', "'"));
        }
        out.push('\n');
    }
    out
}

fn verdict_mark(v: Verdict) -> &'static str {
    match v {
        Verdict::Resolved => "✅",
        Verdict::Regressed => "❌",
        Verdict::MissingEvidence => "⚠️",
    }
}

fn outcome_mark(o: TestOutcome) -> &'static str {
    match o {
        TestOutcome::Passed => "✅",
        TestOutcome::Failed => "❌",
        TestOutcome::Skipped => "⏭️",
    }
}

fn status_mark(s: &CheckStatus) -> &'static str {
    match s {
        CheckStatus::Passed => "✅",
        CheckStatus::Failed => "❌",
        CheckStatus::Skipped { .. } => "⏭️",
        CheckStatus::NotAvailable { .. } => "➖",
    }
}

/// Text inside a table cell: one line, pipes escaped, HTML-significant characters
/// neutralised (Markdown renderers pass raw HTML through).
pub(crate) fn cell(text: &str) -> String {
    inline(text).replace('|', "\\|")
}

/// Text on one line of prose: newlines folded, `<`/`>`/`&` escaped.
pub(crate) fn inline(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\r', '\n'], " ")
}

/// A fenced block whose fence is longer than any backtick run inside `text`.
pub(crate) fn fenced(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let body = text.trim_end_matches('\n');
    format!("{fence}text\n{body}\n{fence}\n")
}
