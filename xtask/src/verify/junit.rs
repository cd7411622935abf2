//! Reading nextest's JUnit XML (`target/nextest/default/junit.xml`): each `<testcase>`
//! becomes a [`TestCase`] with its suite, name, result, time and failure output.

use std::time::Duration;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::test_case::{TestCase, TestOutcome};

/// Why a JUnit document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    /// The XML itself is malformed.
    #[error("malformed JUnit XML at byte {position}: {source}")]
    Xml {
        /// Byte offset where the reader stopped.
        position: u64,
        /// What the XML reader reported.
        source: quick_xml::Error,
    },
    /// A `<testcase>` without a `name` attribute: the result cannot be attributed.
    #[error("a <testcase> has no name attribute (suite {suite:?})")]
    UnnamedTestCase {
        /// The enclosing `<testsuite>` name.
        suite: String,
    },
}

/// Elements inside a `<testcase>` that mean it failed. nextest writes `failure` and
/// `error`; `flakyFailure`/`rerunFailure` only accompany an eventual pass or failure, so
/// they do not decide the outcome on their own.
const FAILURE_ELEMENTS: [&[u8]; 2] = [b"failure", b"error"];

/// Parses a JUnit document; `run` labels every case (`embedded`, `mongodb`, …).
///
/// A `<testcase>` is passed unless it contains `<failure>`/`<error>` (failed) or
/// `<skipped>` (skipped). Its `classname` is the suite, falling back to the enclosing
/// `<testsuite name>`; `time` is in seconds. Failure messages and `system-out`/`system-err`
/// text are kept as the case's output.
pub fn parse_junit(xml: &str, run: &str) -> Result<Vec<TestCase>, JunitError> {
    let mut reader = Reader::from_str(xml);
    let mut cases = Vec::new();
    let mut suite = String::new();
    let mut current: Option<TestCase> = None;
    let mut in_text_element = false;

    loop {
        let event = reader.read_event().map_err(|source| JunitError::Xml {
            position: reader.buffer_position(),
            source,
        })?;
        match event {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testsuite" => {
                suite = attr(&e, b"name").unwrap_or_default();
            }
            Event::Start(e) if e.name().as_ref() == b"testcase" => {
                current = Some(new_case(&e, &suite, run)?);
            }
            Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                cases.push(new_case(&e, &suite, run)?);
            }
            Event::End(e) if e.name().as_ref() == b"testcase" => {
                if let Some(case) = current.take() {
                    cases.push(case);
                }
                in_text_element = false;
            }
            Event::Start(e) => {
                in_text_element = current
                    .as_mut()
                    .is_some_and(|case| child_element(case, &e, true));
            }
            Event::Empty(e) => {
                if let Some(case) = current.as_mut() {
                    child_element(case, &e, false);
                }
                in_text_element = false;
            }
            Event::End(_) => in_text_element = false,
            Event::Text(t) if in_text_element => {
                if let (Some(case), Ok(text)) = (current.as_mut(), t.xml_content()) {
                    append_output(&mut case.output, &text);
                }
            }
            Event::CData(t) if in_text_element => {
                if let (Some(case), Ok(text)) = (current.as_mut(), t.decode()) {
                    append_output(&mut case.output, &text);
                }
            }
            Event::GeneralRef(r) if in_text_element => {
                if let Some(case) = current.as_mut() {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => Some(c.to_string()),
                        _ => r
                            .decode()
                            .ok()
                            .and_then(|name| quick_xml::escape::resolve_xml_entity(&name))
                            .map(str::to_owned),
                    };
                    if let Some(text) = resolved {
                        case.output.push_str(&text);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(cases)
}

/// Applies an element inside a `<testcase>` to it; returns whether the element's text
/// (only an open element, `has_body`, has any) is output to keep.
fn child_element(case: &mut TestCase, e: &BytesStart<'_>, has_body: bool) -> bool {
    let name = e.name();
    let name = name.as_ref();
    if FAILURE_ELEMENTS.contains(&name) {
        case.outcome = TestOutcome::Failed;
        if let Some(message) = attr(e, b"message") {
            push_output(&mut case.output, &message);
        }
    } else if name == b"skipped" && case.outcome != TestOutcome::Failed {
        case.outcome = TestOutcome::Skipped;
    }
    let keep_text = has_body && is_text_element(name);
    if keep_text {
        start_block(&mut case.output);
    }
    keep_text
}

/// Elements whose text is test output worth showing next to a failure.
fn is_text_element(name: &[u8]) -> bool {
    matches!(
        name,
        b"failure" | b"error" | b"system-out" | b"system-err" | b"skipped"
    )
}

fn new_case(e: &BytesStart<'_>, suite: &str, run: &str) -> Result<TestCase, JunitError> {
    let name = attr(e, b"name").ok_or_else(|| JunitError::UnnamedTestCase {
        suite: suite.to_owned(),
    })?;
    let suite = attr(e, b"classname")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| suite.to_owned());
    let duration = attr(e, b"time")
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(Duration::from_secs_f64);
    Ok(TestCase {
        run: run.to_owned(),
        suite,
        name,
        outcome: TestOutcome::Passed,
        duration,
        output: String::new(),
    })
}

fn attr(e: &BytesStart<'_>, key: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == key)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

fn push_output(output: &mut String, text: &str) {
    start_block(output);
    output.push_str(text);
}

/// Separates blocks of output (message, stdout, stderr) by a line break.
fn start_block(output: &mut String) {
    if !output.is_empty() && !output.ends_with('\n') {
        output.push('\n');
    }
}

fn append_output(output: &mut String, text: &str) {
    output.push_str(text);
}
