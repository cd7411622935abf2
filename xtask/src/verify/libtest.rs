//! Reading libtest's human output (`cargo test`), as the loom and race runs print it:
//! every `test <name> ... ok|FAILED|ignored` line becomes a [`TestCase`], attributed to
//! the binary cargo announced with `Running …`, with loom's iteration count when the
//! model logged it.
//!
//! Two layouts are understood: the usual one, result on the same line, and the
//! `--nocapture --test-threads=1` one, where the test's own output (loom's
//! `Completed in N iterations`) sits between `test <name> ... ` and the result.

use super::test_case::{TestCase, TestOutcome};

/// A test from libtest output, with the loom iteration count when one was printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibtestCase {
    /// The test and its result.
    pub case: TestCase,
    /// `Completed in N iterations` as logged by `loom::model` (needs `LOOM_LOG` and
    /// `--nocapture`); `None` when the run did not print it.
    pub iterations: Option<u64>,
}

impl LibtestCase {
    /// True when this test is a loom model rather than an ordinary test that the loom
    /// build also compiled: it logged loom's iteration count, or its binary or name says
    /// `loom` (a failing model panics before logging its count).
    pub fn is_loom_model(&self) -> bool {
        self.iterations.is_some()
            || self.case.suite.contains("loom")
            || self.case.name.contains("loom")
    }
}

/// Parses libtest output; `run` labels every case. Doc tests are left out (they are not
/// models and nextest never runs them either).
pub fn parse_libtest(output: &str, run: &str) -> Vec<LibtestCase> {
    let mut cases = Vec::new();
    let mut suite = String::new();
    let mut in_doctests = false;
    let mut open: Option<(String, Option<u64>, String)> = None;

    for raw in output.lines() {
        let line = strip_ansi(raw);
        let trimmed = line.trim();

        if let Some(binary) = running_binary(trimmed) {
            suite = binary;
            in_doctests = false;
            open = None;
            continue;
        }
        if trimmed.starts_with("Doc-tests ") {
            in_doctests = true;
            open = None;
            continue;
        }
        if in_doctests {
            continue;
        }

        if let Some(rest) = trimmed.strip_prefix("test ") {
            if let Some((name, after)) = rest.split_once(" ... ") {
                let name = name.trim().to_owned();
                match outcome_word(after) {
                    Some(outcome) => {
                        cases.push(finish(run, &suite, name, outcome, None, String::new()));
                        open = None;
                    }
                    None => {
                        let mut iterations = None;
                        note_iterations(after, &mut iterations);
                        open = Some((name, iterations, after.trim().to_owned()));
                    }
                }
                continue;
            }
            if let Some(name) = rest.strip_suffix(" ...") {
                open = Some((name.trim().to_owned(), None, String::new()));
                continue;
            }
        }

        if let Some((name, iterations, captured)) = open.as_mut() {
            if let Some(outcome) = outcome_word(trimmed) {
                let name = std::mem::take(name);
                let output = std::mem::take(captured);
                let iterations = *iterations;
                open = None;
                cases.push(finish(run, &suite, name, outcome, iterations, output));
                continue;
            }
            note_iterations(trimmed, iterations);
            if !captured.is_empty() {
                captured.push('\n');
            }
            captured.push_str(&line);
        }
    }
    cases
}

/// Sums libtest's `test result: …. N passed; M failed; K ignored` lines over every test
/// binary (doc tests included); `None` when no binary reported a result.
pub fn result_totals(output: &str) -> Option<(u64, u64, u64)> {
    let mut totals: Option<(u64, u64, u64)> = None;
    for line in output.lines() {
        let Some(rest) = strip_ansi(line)
            .trim()
            .strip_prefix("test result: ")
            .map(str::to_owned)
        else {
            continue;
        };
        let t = totals.get_or_insert((0, 0, 0));
        for part in rest.split(['.', ';']) {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(kind)) = (words.next(), words.next()) {
                if let Ok(n) = n.parse::<u64>() {
                    match kind {
                        "passed" => t.0 += n,
                        "failed" => t.1 += n,
                        "ignored" => t.2 += n,
                        _ => {}
                    }
                }
            }
        }
    }
    totals
}

fn finish(
    run: &str,
    suite: &str,
    name: String,
    outcome: TestOutcome,
    iterations: Option<u64>,
    output: String,
) -> LibtestCase {
    LibtestCase {
        case: TestCase {
            run: run.to_owned(),
            suite: suite.to_owned(),
            name,
            outcome,
            duration: None,
            output: if outcome == TestOutcome::Failed {
                output
            } else {
                String::new()
            },
        },
        iterations,
    }
}

/// `ok`, `FAILED`, `ignored` (optionally `ignored, <reason>`) at the start of `text`.
fn outcome_word(text: &str) -> Option<TestOutcome> {
    let text = text.trim();
    if text == "ok" {
        Some(TestOutcome::Passed)
    } else if text == "FAILED" {
        Some(TestOutcome::Failed)
    } else if text == "ignored" || text.starts_with("ignored, ") {
        Some(TestOutcome::Skipped)
    } else {
        None
    }
}

/// Records loom's `Completed in N iterations`; the last one printed wins.
fn note_iterations(text: &str, iterations: &mut Option<u64>) {
    if let Some((_, after)) = text.split_once("Completed in ") {
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if after[digits.len()..].trim_start().starts_with("iterations") {
            if let Ok(n) = digits.parse() {
                *iterations = Some(n);
            }
        }
    }
}

/// The test binary from cargo's `Running tests/loom_session.rs (target/…/loom_session-1a2b)`
/// or `Running unittests src/lib.rs (target/…/chat_session-1a2b)`: the file name without
/// its hash.
fn running_binary(line: &str) -> Option<String> {
    let rest = line.strip_prefix("Running ")?;
    let path = rest
        .rsplit_once('(')
        .map(|(_, p)| p.trim_end_matches(')'))
        .unwrap_or(rest);
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = match file.rsplit_once('-') {
        Some((stem, hash)) if !hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            stem
        }
        _ => file,
    };
    Some(stem.to_owned())
}

/// Removes ANSI escape sequences (colours from tracing or cargo).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAME_LINE: &str = "\
     Running unittests src/lib.rs (target/loom/release/deps/chat_session-0123abcd)

running 1 test
test session::tests::snapshot_orders ... ok

     Running tests/loom_session.rs (target/loom/release/deps/loom_session-89ef0123)

running 3 tests
test loom_one_active_session_per_user_under_concurrent_create ... ok
test loom_snapshot_vs_mutation_is_never_torn ... FAILED
test loom_slow ... ignored, takes minutes

failures:

---- loom_snapshot_vs_mutation_is_never_torn stdout ----
thread 'loom_snapshot_vs_mutation_is_never_torn' panicked at tests/loom_session.rs:230:9:
torn
   Doc-tests chat_session

running 1 test
test crates/chat-session/src/lib.rs - (line 5) ... ok
";

    #[test]
    fn results_on_the_same_line_are_attributed_to_their_binary() {
        let cases = parse_libtest(SAME_LINE, "loom");
        let got: Vec<_> = cases
            .iter()
            .map(|c| (c.case.suite.as_str(), c.case.name.as_str(), c.case.outcome))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "chat_session",
                    "session::tests::snapshot_orders",
                    TestOutcome::Passed
                ),
                (
                    "loom_session",
                    "loom_one_active_session_per_user_under_concurrent_create",
                    TestOutcome::Passed
                ),
                (
                    "loom_session",
                    "loom_snapshot_vs_mutation_is_never_torn",
                    TestOutcome::Failed
                ),
                ("loom_session", "loom_slow", TestOutcome::Skipped),
            ]
        );
        assert!(cases
            .iter()
            .all(|c| c.iterations.is_none() && c.case.run == "loom"));
    }

    #[test]
    fn nocapture_output_yields_iterations_and_failure_output() {
        let output = "\
     Running tests/loom_session.rs (target/loom/release/deps/loom_session-89ef0123)

running 2 tests
test loom_a ... \u{1b}[32m INFO\u{1b}[0m \u{1b}[2mloom::model\u{1b}[0m: Completed in 1234 iterations
ok
test loom_b ... 
thread 'loom_b' panicked at tests/loom_session.rs:9:9:
assertion failed
FAILED
";
        let cases = parse_libtest(output, "loom");
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].case.name, "loom_a");
        assert_eq!(cases[0].iterations, Some(1234));
        assert_eq!(cases[0].case.outcome, TestOutcome::Passed);
        assert_eq!(cases[1].case.outcome, TestOutcome::Failed);
        assert_eq!(cases[1].iterations, None);
        assert!(cases[1].case.output.contains("assertion failed"));
    }

    #[test]
    fn result_lines_are_summed_over_binaries() {
        let out = "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
                   test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(result_totals(out), Some((5, 1, 1)));
        assert_eq!(result_totals("error[E0432]: unresolved import"), None);
    }

    #[test]
    fn summary_lines_are_not_tests() {
        let cases = parse_libtest(
            "test result: ok. 3 passed; 0 failed; 0 ignored\nrunning 0 tests\n",
            "loom",
        );
        assert!(cases.is_empty());
    }
}
