//! An incremental parser of the `text/event-stream` format (WHATWG HTML, "Server-sent
//! events", *event stream interpretation*), reading a body chunk by chunk.
//!
//! Complete lines are read where they lie, in the chunk the body delivered them in:
//! a chunk that arrives with nothing pending is not copied at all. Only a line left
//! unfinished at the end of a chunk is copied, into the parser's own buffer, where the
//! following chunks are appended until the line is complete. An event's name and data
//! are handed out borrowed from two buffers reused for every event. A provider
//! streaming fast sends many events per read: the general-purpose parser this replaces
//! re-allocated and copied the rest of the buffer after every line, so a read of N
//! events cost O(N²) bytes copied, and allocated several strings per event
//! (docs/BENCHMARKS.md, twentieth and twenty-first passes).
//!
//! Lines end with CRLF, LF or CR (a CR at the end of one chunk and an LF at the start
//! of the next are one line ending). Splitting at those bytes never cuts a UTF-8
//! sequence, so each line is decoded on its own; invalid bytes become U+FFFD rather
//! than stalling the stream. Besides the chunk being read (shared with the body), the
//! parser holds at most the unfinished line: the caller bounds the body's total size.

use std::borrow::Cow;

use bytes::Bytes;

/// The byte-order mark a stream may start with (skipped, as the format says).
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One line as text, invalid bytes as U+FFFD. Valid lines (all of them, from a
/// well-behaved provider) take `str::from_utf8`, which checks ASCII a word at a time;
/// the lossy decoder walks byte by byte (2 % of a relay profile).
fn decode(line: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(line) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(line),
    }
}

/// Parses one event stream; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// The chunk being read, when nothing was pending as it arrived.
    chunk: Bytes,
    /// Otherwise (when not empty, this is what is read) the pending bytes and the
    /// chunks after them, copied.
    owned: Vec<u8>,
    /// Bytes received and not yet consumed start at `pos` (in the one read).
    pos: usize,
    /// Bytes after `pos` already searched for a line ending (none found).
    scanned: usize,
    /// The start of the stream was checked for a byte-order mark.
    bom_checked: bool,
    /// The last line ended with a CR: an LF right after it belongs to that ending.
    after_cr: bool,
    /// The last call handed out an event: its buffers are cleared on the next call.
    dispatched: bool,
    /// The event type buffer (empty: `message`).
    event: String,
    /// The data buffer: each `data` line's value followed by a line feed.
    data: String,
}

impl SseParser {
    /// Appends the next chunk of the body.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if self.pos >= self.buf().len() {
            // Nothing pending: the chunk is read where it lies.
            self.owned.clear();
            self.chunk = chunk;
        } else {
            if self.owned.is_empty() {
                // A line continues past its chunk: its start is copied, once.
                self.owned.extend_from_slice(&self.chunk[self.pos..]);
                self.chunk = Bytes::new();
            } else {
                // Only the unfinished line moves: everything before it was consumed.
                self.owned.drain(..self.pos);
            }
            self.owned.extend_from_slice(&chunk);
        }
        self.pos = 0;
    }

    /// The bytes being read.
    fn buf(&self) -> &[u8] {
        if self.owned.is_empty() {
            &self.chunk
        } else {
            &self.owned
        }
    }

    /// The next complete event in what was pushed so far, as `(name, data)`: the
    /// name is `message` when the event set none, and the data is its `data` lines
    /// joined by line feeds. `None` until more bytes complete one.
    pub(crate) fn next_event(&mut self) -> Option<(&str, &str)> {
        if self.dispatched {
            self.dispatched = false;
            self.event.clear();
            self.data.clear();
        }
        if !self.skip_bom() {
            return None;
        }
        loop {
            if self.after_cr {
                let next = *self.buf().get(self.pos)?;
                self.after_cr = false;
                if next == b'\n' {
                    self.pos += 1;
                }
            }
            // `buf()` field by field: the event buffers are written while it is borrowed.
            let buf = if self.owned.is_empty() {
                &self.chunk[..]
            } else {
                &self.owned[..]
            };
            let from = self.pos + self.scanned;
            let Some(offset) = buf[from..].iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.scanned = buf.len() - self.pos;
                return None;
            };
            let (start, end) = (self.pos, from + offset);
            self.after_cr = buf[end] == b'\r';
            self.pos = end + 1;
            self.scanned = 0;
            if start == end {
                // A blank line ends the event; one without data is dropped.
                if self.data.is_empty() {
                    self.event.clear();
                    continue;
                }
                self.data.pop(); // the line feed after the last data line
                self.dispatched = true;
                let name = if self.event.is_empty() {
                    "message"
                } else {
                    self.event.as_str()
                };
                return Some((name, self.data.as_str()));
            }
            let line = decode(&buf[start..end]);
            if line.starts_with(':') {
                continue; // a comment
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_ref(), ""),
            };
            match field {
                "data" => {
                    self.data.push_str(value);
                    self.data.push('\n');
                }
                "event" => {
                    self.event.clear();
                    self.event.push_str(value);
                }
                // `id` and `retry` steer a browser's reconnection; a reply is never
                // resumed from the provider, and unknown fields are ignored.
                _ => {}
            }
        }
    }

    /// Skips a byte-order mark at the start of the stream. False while the bytes so
    /// far could still be the start of one.
    fn skip_bom(&mut self) -> bool {
        if self.bom_checked {
            return true;
        }
        let head = &self.buf()[self.pos..];
        if head.len() < BOM.len() && BOM.starts_with(head) {
            return false;
        }
        if head.starts_with(BOM) {
            self.pos += BOM.len();
        }
        self.bom_checked = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every event of `chunks`, pushed one after the other, as owned pairs.
    fn events(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(Bytes::copy_from_slice(chunk));
            while let Some((name, data)) = parser.next_event() {
                out.push((name.to_owned(), data.to_owned()));
            }
        }
        out
    }

    fn pair(name: &str, data: &str) -> (String, String) {
        (name.to_owned(), data.to_owned())
    }

    #[test]
    fn data_lines_make_message_events() {
        assert_eq!(
            events(&[b"data: one\n\ndata: two\n\n"]),
            [pair("message", "one"), pair("message", "two")]
        );
    }

    #[test]
    fn named_events_and_multi_line_data() {
        assert_eq!(
            events(&[b"event: delta\ndata: a\ndata:b\ndata:  c\n\n"]),
            [pair("delta", "a\nb\n c")]
        );
        // The name applies to one event only.
        assert_eq!(
            events(&[b"event: x\ndata: 1\n\ndata: 2\n\n"]),
            [pair("x", "1"), pair("message", "2")]
        );
    }

    #[test]
    fn every_line_ending_counts() {
        let expected = [pair("message", "a"), pair("message", "b")];
        assert_eq!(events(&[b"data: a\r\n\r\ndata: b\r\n\r\n"]), expected);
        assert_eq!(events(&[b"data: a\r\rdata: b\r\r"]), expected);
        assert_eq!(events(&[b"data: a\n\r\ndata: b\r\n\n"]), expected);
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_ending() {
        assert_eq!(
            events(&[b"data: a\r", b"\n", b"\r", b"\ndata: b\n\n"]),
            [pair("message", "a"), pair("message", "b")]
        );
    }

    #[test]
    fn comments_unknown_fields_and_events_without_data_are_skipped() {
        assert_eq!(
            events(&[b": keep-alive\n\nid: 7\nretry: 10\nevent: ping\n\nfoo: bar\ndata\n\n"]),
            // `data` alone is a data line with an empty value.
            [pair("message", "")]
        );
    }

    #[test]
    fn an_unfinished_event_waits_for_its_blank_line() {
        let mut parser = SseParser::default();
        parser.push(Bytes::from_static(b"data: par"));
        assert_eq!(parser.next_event(), None);
        parser.push(Bytes::from_static(b"tial\n"));
        assert_eq!(parser.next_event(), None);
        parser.push(Bytes::from_static(b"\n"));
        assert_eq!(parser.next_event(), Some(("message", "partial")));
        assert_eq!(parser.next_event(), None);
    }

    #[test]
    fn a_byte_order_mark_is_skipped_even_split() {
        assert_eq!(
            events(&[b"\xEF\xBB\xBFdata: x\n\n"]),
            [pair("message", "x")]
        );
        assert_eq!(
            events(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]),
            [pair("message", "x")]
        );
        // Only at the very start.
        assert_eq!(
            events(&[b"data: x\n\n\xEF\xBB\xBFdata: y\n\n"]),
            [pair("message", "x")]
        );
    }

    #[test]
    fn invalid_utf8_becomes_replacement_chars_and_split_chars_survive() {
        assert_eq!(
            events(&[b"data: a\xFFb\n\n"]),
            [pair("message", "a\u{FFFD}b")]
        );
        let text = "data: é€😀\n\n".as_bytes();
        assert_eq!(
            events(&[&text[..7], &text[7..9], &text[9..]]),
            [pair("message", "é€😀")]
        );
    }

    #[test]
    fn whole_lines_are_read_in_their_chunk_and_only_an_unfinished_one_is_copied() {
        let mut parser = SseParser::default();
        parser.push(Bytes::from_static(b"data: a\n\ndata: b\n\n"));
        assert!(parser.owned.is_empty());
        assert_eq!(parser.next_event(), Some(("message", "a")));
        assert_eq!(parser.next_event(), Some(("message", "b")));
        assert_eq!(parser.next_event(), None);
        assert!(parser.owned.is_empty());

        parser.push(Bytes::from_static(b"data: c\n\ndata: unfin"));
        assert_eq!(parser.next_event(), Some(("message", "c")));
        assert_eq!(parser.next_event(), None);
        parser.push(Bytes::from_static(b"ished\n"));
        assert!(!parser.owned.is_empty());
        assert_eq!(parser.owned, b"data: unfinished\n");
        assert_eq!(parser.next_event(), None);
        parser.push(Bytes::from_static(b"\n"));
        assert!(parser.owned.is_empty(), "nothing was pending");
        assert_eq!(parser.next_event(), Some(("message", "unfinished")));

        parser.push(Bytes::from_static(b"data: d\n\n"));
        assert!(parser.owned.is_empty());
        assert_eq!(parser.next_event(), Some(("message", "d")));
    }

    #[test]
    fn the_buffer_keeps_only_the_unfinished_line() {
        let mut parser = SseParser::default();
        for _ in 0..1_000 {
            parser.push(Bytes::from_static(b"data: 0123456789abcdef\n\ndata: next"));
            while parser.next_event().is_some() {}
            parser.push(Bytes::from_static(b"\n\n"));
            while parser.next_event().is_some() {}
        }
        parser.push(Bytes::from_static(b"data: tail"));
        assert!(parser.next_event().is_none());
        assert!(parser.buf().len() - parser.pos <= b"data: tail".len());
        assert!(
            parser.owned.capacity() < 4_096,
            "{}",
            parser.owned.capacity()
        );
    }

    fn wire() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            "[a-z ]{0,12}".prop_map(|v| format!("data: {v}")),
            "[a-z]{0,6}".prop_map(|v| format!("event: {v}")),
            Just(String::new()),
            Just(": comment".to_owned()),
            Just("id: 3".to_owned()),
            "[a-zé:]{0,8}",
        ];
        let ending = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
        proptest::collection::vec((line, ending), 0..24).prop_map(|lines| {
            lines
                .into_iter()
                .flat_map(|(line, end)| format!("{line}{end}").into_bytes())
                .collect()
        })
    }

    proptest! {
        /// However the body is cut into chunks, the same events come out.
        #[test]
        fn chunking_never_changes_the_events(body in wire(), cuts in proptest::collection::vec(0usize..400, 0..8)) {
            let whole = events(&[&body]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for cut in cuts {
                chunks.push(&body[from..cut]);
                from = cut;
            }
            chunks.push(&body[from..]);
            prop_assert_eq!(events(&chunks), whole.clone());
            let bytes: Vec<&[u8]> = body.chunks(1).collect();
            prop_assert_eq!(events(&bytes), whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let _ = events(&chunks);
        }
    }
}
