//! The streamed `ai_response` chunk, written straight to JSON.
//!
//! A reply is hundreds of chunks and each one is sent, and kept for `resume`, as its
//! JSON text. Building a [`Message`] per chunk costs about ten allocations (the
//! session id, the text, three metadata keys and values, the map) before
//! serialization even starts; [`ai_chunk_json`] writes the same bytes into one
//! buffer. The final chunk of a reply carries extra metadata and is rare: it keeps
//! using [`Message::ai_chunk`].

use std::io::Write;

use chrono::{DateTime, Utc};

use crate::message::Message;

/// Exactly `Message::ai_chunk(session_id, text, seq, false).with_timestamp(at).to_json()`,
/// written without building the `Message`.
pub fn ai_chunk_json(session_id: &str, text: &str, seq: u64, at: DateTime<Utc>) -> String {
    let mut out = Vec::with_capacity(136 + session_id.len() + text.len());
    match write_chunk(&mut out, session_id, text, seq, at) {
        // Every piece is valid UTF-8 (fixed ASCII, JSON-escaped `&str`s, digits).
        Ok(()) => String::from_utf8(out).unwrap_or_else(|_| slow(session_id, text, seq, at)),
        // Writing to a `Vec` does not fail; the slow path keeps the frame correct if
        // serde_json ever did.
        Err(_) => slow(session_id, text, seq, at),
    }
}

fn write_chunk(
    out: &mut Vec<u8>,
    session_id: &str,
    text: &str,
    seq: u64,
    at: DateTime<Utc>,
) -> Result<(), serde_json::Error> {
    // Field order and metadata key order (sorted, a BTreeMap) as `Message` serializes.
    out.extend_from_slice(br#"{"type":"ai_response","session_id":"#);
    serde_json::to_writer(&mut *out, session_id)?;
    out.extend_from_slice(br#","content":"#);
    serde_json::to_writer(&mut *out, text)?;
    out.extend_from_slice(br#","timestamp":"#);
    serde_json::to_writer(&mut *out, &at)?;
    out.extend_from_slice(br#","sender":"ai","metadata":{"done":"false","seq":""#);
    write!(out, "{seq}").map_err(serde_json::Error::io)?;
    out.extend_from_slice(br#"","streaming":"true"}}"#);
    Ok(())
}

fn slow(session_id: &str, text: &str, seq: u64, at: DateTime<Utc>) -> String {
    Message::ai_chunk(session_id, text, seq, false)
        .with_timestamp(at)
        .to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn reference(session_id: &str, text: &str, seq: u64, at: DateTime<Utc>) -> String {
        Message::ai_chunk(session_id, text, seq, false)
            .with_timestamp(at)
            .to_json()
    }

    #[test]
    fn matches_the_message_serialization_byte_for_byte() {
        let at = Utc
            .timestamp_opt(1_764_000_000, 123_456_789)
            .single()
            .expect("valid time");
        let cases = [
            ("0123456789abcdef0123456789abcdef", "Hello", 1),
            ("s", "", 0),
            (
                "s",
                "quote \" backslash \\ newline \n tab \t nul \0",
                u64::MAX,
            ),
            ("s", "emoji 🦀 and ünïcödé, \u{2028} line separator", 42),
            ("s\"id", "</script><script>", 7),
        ];
        for (sid, text, seq) in cases {
            assert_eq!(
                ai_chunk_json(sid, text, seq, at),
                reference(sid, text, seq, at)
            );
        }
        // Whole seconds serialize without a fraction.
        let whole = Utc.timestamp_opt(0, 0).single().expect("valid time");
        assert_eq!(
            ai_chunk_json("s", "x", 3, whole),
            reference("s", "x", 3, whole)
        );
    }

    #[test]
    fn the_frame_reads_back_as_the_chunk() {
        let at = Utc::now();
        let json = ai_chunk_json("abc", "text", 9, at);
        let back: Message = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(back.seq(), Some(9));
        assert!(!back.is_done());
        assert_eq!(back.content.as_deref(), Some("text"));
        assert_eq!(back.timestamp, at);
    }

    proptest! {
        #[test]
        fn any_text_and_time_match(
            sid in "[0-9a-f]{0,32}",
            text in any::<String>(),
            seq in any::<u64>(),
            secs in 0i64..4_102_444_800,
            nanos in 0u32..1_000_000_000,
        ) {
            let at = Utc.timestamp_opt(secs, nanos).single().expect("valid time");
            prop_assert_eq!(ai_chunk_json(&sid, &text, seq, at), reference(&sid, &text, seq, at));
        }
    }
}
