//! `report.json`: the report for tools, versioned by its `schema` field
//! (`chatbox-readiness/1`, documented in docs/TESTING.md).

use super::Report;

/// Pretty-printed JSON of the whole report, ending with a newline.
pub fn render(report: &Report) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}
