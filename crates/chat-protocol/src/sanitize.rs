//! Sanitizing inbound text: strip NUL bytes and trim whitespace.
//!
//! Text is deliberately **not** HTML-escaped: escaping is the renderer's job
//! (PROTOCOL §3), and escaping here would corrupt stored conversations and code the
//! user pasted (`<script>` stays `<script>`).

use std::collections::BTreeMap;

use crate::message::Message;

/// Removes every NUL character and trims leading/trailing whitespace.
pub fn sanitize_text(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "").trim().to_owned()
    } else {
        text.trim().to_owned()
    }
}

fn sanitize_opt(field: &mut Option<String>) {
    if let Some(value) = field.as_mut() {
        *value = sanitize_text(value);
    }
}

/// Applies [`sanitize_text`] to every client-supplied text field of `msg`
/// (`session_id`, `content`, `file_id`, `file_url`, `model_id`, metadata keys and
/// values). Idempotent.
pub fn sanitize(msg: &mut Message) {
    sanitize_opt(&mut msg.session_id);
    sanitize_opt(&mut msg.content);
    sanitize_opt(&mut msg.file_id);
    sanitize_opt(&mut msg.file_url);
    sanitize_opt(&mut msg.model_id);
    msg.metadata = sanitize_metadata(std::mem::take(&mut msg.metadata));
}

/// Sanitizes keys and values; when two keys become equal the later one wins.
pub(crate) fn sanitize_metadata(metadata: BTreeMap<String, String>) -> BTreeMap<String, String> {
    metadata
        .into_iter()
        .map(|(k, v)| (sanitize_text(&k), sanitize_text(&v)))
        .collect()
}
