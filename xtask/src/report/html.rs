//! `report.html`: one self-contained page (inline CSS, no scripts, no external assets)
//! with the headline, the issue overview, a table per issue, the checks, loom models and
//! coverage bars. Every string from the run — test names, output, audit messages — is
//! HTML-escaped.

use std::fmt::Write as _;

use super::{CoverageReport, IssueReport, Report};
use crate::verify::check::CheckStatus;
use crate::verify::test_case::TestOutcome;
use crate::verify::verdict::Verdict;

const STYLE: &str = r#"
:root { --ok:#1a7f37; --ok-bg:#dafbe1; --bad:#cf222e; --bad-bg:#ffebe9; --warn:#9a6700; --warn-bg:#fff8c5; --mute:#57606a; --line:#d0d7de; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1100px; padding: 24px; color: #1f2328; }
h1 { margin: 0 0 8px; } h2 { margin-top: 36px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { margin: 0; font-size: 16px; }
.banner { padding: 16px 20px; border-radius: 8px; margin: 16px 0; font-size: 17px; }
.banner.pass { background: var(--ok-bg); border: 1px solid var(--ok); }
.banner.fail { background: var(--bad-bg); border: 1px solid var(--bad); }
.meta { color: var(--mute); font-size: 13px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; white-space: pre-wrap; max-height: 360px; overflow-y: auto; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.ok { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); } .mute { color: var(--mute); }
.pill.ok { background: var(--ok-bg); } .pill.bad { background: var(--bad-bg); } .pill.warn { background: var(--warn-bg); } .pill.mute { background: #eaeef2; }
tr.failed td { background: var(--bad-bg); }
section.issue { border: 1px solid var(--line); border-left: 6px solid var(--line); border-radius: 6px; padding: 12px 16px; margin: 14px 0; }
section.issue.ok { border-left-color: var(--ok); } section.issue.bad { border-left-color: var(--bad); } section.issue.warn { border-left-color: var(--warn); }
.bar { background: #eaeef2; border-radius: 4px; height: 14px; width: 100%; position: relative; min-width: 160px; }
.bar .fill { height: 100%; border-radius: 4px; }
.bar .fill.ok { background: var(--ok); } .bar .fill.bad { background: var(--bad); } .bar .fill.mute { background: #8c959f; }
.bar .floor { position: absolute; top: -3px; bottom: -3px; width: 2px; background: #1f2328; }
ul { margin: 4px 0; }
"#;

/// Renders the whole page.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(32 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        out,
        "<title>Readiness: {}</title>",
        if report.passed { "passed" } else { "FAILED" }
    );
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");
    out.push_str("<h1>Production readiness report</h1>\n");
    let _ = writeln!(
        out,
        "<p class=\"meta\">Generated {} · schema <code>{}</code>{}</p>",
        esc(&report.generated_at),
        esc(report.schema),
        if report.quick {
            " · <strong>--quick</strong>: race run and coverage skipped"
        } else {
            ""
        }
    );

    let s = &report.summary;
    let _ = writeln!(
        out,
        "<div class=\"banner {}\"><strong>{}</strong> — {} of 19 issues resolved, {} regressed, {} missing evidence · tests {} passed, {} failed, {} skipped · {} blocking check(s) failed</div>",
        if report.passed { "pass" } else { "fail" },
        if report.passed { "PASSED" } else { "FAILED" },
        s.resolved,
        s.regressed,
        s.missing_evidence,
        s.tests_passed,
        s.tests_failed,
        s.tests_skipped,
        s.blocking_checks_failed
    );
    if !report.failure_reasons.is_empty() {
        out.push_str("<ul>\n");
        for r in &report.failure_reasons {
            let _ = writeln!(out, "<li class=\"bad\">{}</li>", esc(r));
        }
        out.push_str("</ul>\n");
    }

    out.push_str("<h2>Issues</h2>\n<table>\n<tr><th>#</th><th>Legacy issue</th><th>Verdict</th><th>Evidence</th></tr>\n");
    for i in &report.issues {
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#issue-{n}\">{n}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(i.title),
            verdict_pill(i.verdict),
            esc(&i.reason),
            n = i.number
        );
    }
    out.push_str("</table>\n");

    out.push_str("<h2>Checks</h2>\n<table>\n<tr><th>Check</th><th>Blocking</th><th>Status</th><th>Time</th><th>Detail</th></tr>\n");
    for c in &report.checks {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
            esc(&c.title),
            if c.blocking { "yes" } else { "no" },
            status_pill(&c.status),
            c.duration
                .map(|d| format!("{:.1}&nbsp;s", d.as_secs_f64()))
                .unwrap_or_default(),
            esc(&c.summary),
            c.log
                .as_ref()
                .map(|l| format!(
                    " <span class=\"mute\">(log: <code>{}</code>)</span>",
                    esc(l)
                ))
                .unwrap_or_default()
        );
    }
    out.push_str("</table>\n");

    out.push_str("<h2>Evidence per issue</h2>\n");
    for i in &report.issues {
        issue_section(&mut out, i);
    }

    out.push_str("<h2>Loom models</h2>\n");
    if report.loom_models.is_empty() {
        out.push_str(
            "<p class=\"mute\">No loom model ran (see the <code>loom</code> check).</p>\n",
        );
    } else {
        out.push_str(
            "<table>\n<tr><th>Model</th><th>Suite</th><th>Result</th><th>Iterations</th></tr>\n",
        );
        for m in &report.loom_models {
            let _ = writeln!(
                out,
                "<tr{}><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                failed_row(m.outcome),
                esc(&m.name),
                esc(&m.suite),
                outcome_pill(m.outcome),
                m.iterations
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "<span class=\"mute\">not reported</span>".to_owned())
            );
        }
        out.push_str("</table>\n");
    }

    out.push_str("<h2>Coverage</h2>\n");
    match &report.coverage {
        None => out.push_str(
            "<p class=\"mute\">Not measured in this run (see the <code>coverage</code> check).</p>\n",
        ),
        Some(cov) => coverage_table(&mut out, cov),
    }

    out.push_str("<h2>Manifest audit</h2>\n");
    match &report.manifest_audit {
        None => out.push_str(
            "<p class=\"mute\">Did not run (see the <code>manifest-audit</code> check).</p>\n",
        ),
        Some(m) => {
            let _ = writeln!(
                out,
                "<p>{} {} files, {} objects: {} errors, {} warnings.</p>",
                if m.passed() {
                    pill("ok", "passed")
                } else {
                    pill("bad", "failed")
                },
                m.files_scanned,
                m.objects_checked,
                m.errors.len(),
                m.warnings.len()
            );
            list(&mut out, "bad", &m.errors);
            list(&mut out, "warn", &m.warnings);
        }
    }

    if let Some(c) = &report.config_audit {
        let _ = writeln!(out, "<h2>Config audit: <code>{}</code></h2>", esc(&c.file));
        let _ = writeln!(
            out,
            "<p>{}</p>",
            if c.passed() {
                pill("ok", "accepted")
            } else {
                pill("bad", "refused")
            }
        );
        list(&mut out, "bad", &c.problems);
        list(&mut out, "mute", &c.notes);
    }

    if let Some(table) = &report.bench_smoke {
        out.push_str("<h2>Performance smoke</h2>\n");
        let _ = writeln!(out, "<pre>{}</pre>", esc(table));
    }

    if !report.stray_tests.is_empty() {
        out.push_str("<h2>Tests named for an unknown issue</h2>\n");
        list(&mut out, "warn", &report.stray_tests);
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn issue_section(out: &mut String, i: &IssueReport) {
    let _ = writeln!(
        out,
        "<section class=\"issue {}\" id=\"issue-{}\">\n<h3>#{} {} {}</h3>",
        verdict_class(i.verdict),
        i.number,
        i.number,
        esc(i.title),
        verdict_pill(i.verdict)
    );
    let _ = writeln!(
        out,
        "<p><strong>What must hold:</strong> {}</p>",
        esc(i.must_hold)
    );
    if !i.evidence_from.is_empty() {
        let from: Vec<String> = i.evidence_from.iter().map(|n| format!("#{n}")).collect();
        let _ = writeln!(
            out,
            "<p class=\"mute\">Evidence shared with {}: its tests prove this issue too.</p>",
            esc(&from.join(", "))
        );
    }
    if !i.anchors.is_empty() {
        out.push_str("<p>Anchors: ");
        let parts: Vec<String> = i
            .anchors
            .iter()
            .map(|a| {
                let class = if a.failed {
                    "bad"
                } else if a.status == "passed" {
                    "ok"
                } else {
                    "mute"
                };
                format!("<code>{}</code> {}", esc(a.check), pill(class, &a.status))
            })
            .collect();
        out.push_str(&parts.join(" · "));
        out.push_str("</p>\n");
    }
    if i.tests.is_empty() {
        let _ = writeln!(out, "<p class=\"warn\">{}</p>", esc(&i.reason));
    } else {
        out.push_str("<table>\n<tr><th>Test</th><th>Run</th><th>Suite</th><th>Result</th><th>Time</th></tr>\n");
        for t in &i.tests {
            let _ = writeln!(
                out,
                "<tr{}><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                failed_row(t.outcome),
                esc(&t.name),
                esc(&t.run),
                esc(&t.suite),
                outcome_pill(t.outcome),
                t.duration_ms
                    .map(|d| format!("{}&nbsp;ms", d.as_millis()))
                    .unwrap_or_default()
            );
            if !t.output.is_empty() {
                let _ = writeln!(
                    out,
                    "<tr class=\"failed\"><td colspan=\"5\"><details open><summary>output</summary><pre>{}</pre></details></td></tr>",
                    esc(&t.output)
                );
            }
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
}

fn coverage_table(out: &mut String, cov: &CoverageReport) {
    let floor = cov.floor_percent.clamp(0.0, 100.0);
    let _ = writeln!(
        out,
        "<p>Floor for core crates: {floor:.0}&nbsp;% of lines (the black mark on each bar).</p>"
    );
    out.push_str("<table>\n<tr><th>Crate</th><th>Lines</th><th>Covered</th><th>%</th><th style=\"width:40%\">Coverage</th></tr>\n");
    for c in &cov.crates {
        let class = if c.below_floor {
            "bad"
        } else if c.core {
            "ok"
        } else {
            "mute"
        };
        let width = c.percent.clamp(0.0, 100.0);
        let _ = writeln!(
            out,
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{:.1}</td><td><div class=\"bar\"><div class=\"fill {class}\" style=\"width:{width:.1}%\"></div>{}</div></td></tr>",
            esc(&c.name),
            if c.core { "" } else { " <span class=\"mute\">(not held to the floor)</span>" },
            c.lines_total,
            c.lines_covered,
            c.percent,
            if c.core {
                format!("<div class=\"floor\" style=\"left:{floor:.1}%\"></div>")
            } else {
                String::new()
            }
        );
    }
    out.push_str("</table>\n");
}

fn list(out: &mut String, class: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    out.push_str("<ul>\n");
    for item in items {
        let _ = writeln!(out, "<li class=\"{class}\">{}</li>", esc(item));
    }
    out.push_str("</ul>\n");
}

fn failed_row(o: TestOutcome) -> &'static str {
    if o == TestOutcome::Failed {
        " class=\"failed\""
    } else {
        ""
    }
}

fn pill(class: &str, text: &str) -> String {
    format!("<span class=\"pill {class}\">{}</span>", esc(text))
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Resolved => "ok",
        Verdict::Regressed => "bad",
        Verdict::MissingEvidence => "warn",
    }
}

fn verdict_pill(v: Verdict) -> String {
    pill(verdict_class(v), v.as_str())
}

fn outcome_pill(o: TestOutcome) -> String {
    let class = match o {
        TestOutcome::Passed => "ok",
        TestOutcome::Failed => "bad",
        TestOutcome::Skipped => "mute",
    };
    pill(class, o.as_str())
}

fn status_pill(s: &CheckStatus) -> String {
    let class = match s {
        CheckStatus::Passed => "ok",
        CheckStatus::Failed => "bad",
        CheckStatus::Skipped { .. } | CheckStatus::NotAvailable { .. } => "warn",
    };
    pill(class, s.word())
}

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
