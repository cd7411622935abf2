//! The provider baseline: a client streaming a reply straight from the provider
//! (OpenAI `chat/completions` with `stream: true`), timed on the same clock as the
//! WebSocket clients, so "added by chatbox" is the difference of the two.

use std::borrow::Cow;

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Deserialize;

use crate::client::Reply;
use crate::clock::now_ns;
use crate::BenchError;

/// Largest SSE line accepted; a longer one is a protocol error (bounds the buffer).
const MAX_LINE: usize = 1 << 20;

/// Streams one reply from `endpoint` (`http://ADDR/v1`), calling
/// `on_chunk(arrival_ns, content)` for each non-empty text delta.
pub async fn stream_reply(
    http: &reqwest::Client,
    endpoint: &str,
    mut on_chunk: impl FnMut(u64, &str),
) -> Result<Reply, BenchError> {
    let mut reply = Reply {
        sent_ns: now_ns(),
        ..Reply::default()
    };
    let mut deltas = Deltas::request(http, endpoint, "benchmark").await?;
    while let Some((arrival, delta)) = deltas.next().await? {
        match delta {
            Delta::Text(text) => {
                reply.first_chunk_ns.get_or_insert(arrival);
                reply.chunks += 1;
                on_chunk(arrival, &text);
            }
            Delta::Done => {
                reply.done_ns = arrival;
                return Ok(reply);
            }
        }
    }
    reply.done_ns = now_ns();
    Ok(reply)
}

/// One event of a streamed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// A non-empty text delta.
    Text(String),
    /// `data: [DONE]`.
    Done,
}

/// The text deltas of one streamed OpenAI reply, read as they arrive.
pub struct Deltas {
    bytes: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: Vec<u8>,
    /// When the piece the buffered lines came in arrived.
    arrival: u64,
}

impl Deltas {
    /// Sends `content` as the user's message to `endpoint` (`http://ADDR/v1`).
    pub async fn request(
        http: &reqwest::Client,
        endpoint: &str,
        content: &str,
    ) -> Result<Self, BenchError> {
        let body = serde_json::json!({
            "model": "m",
            "stream": true,
            "messages": [{"role": "user", "content": content}],
        });
        let response = http
            .post(format!("{endpoint}/chat/completions"))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(Self {
            bytes: response.bytes_stream().boxed(),
            buffer: Vec::new(),
            arrival: 0,
        })
    }

    /// The next delta with the time its bytes arrived (ns on [`now_ns`]'s clock);
    /// `None` when the body ends.
    pub async fn next(&mut self) -> Result<Option<(u64, Delta)>, BenchError> {
        loop {
            while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if let Some(delta) = parse_line(&line) {
                    return Ok(Some((self.arrival, delta)));
                }
            }
            if self.buffer.len() > MAX_LINE {
                return Err(BenchError::Process(
                    "provider sent an over-long line".to_owned(),
                ));
            }
            let Some(piece) = self.bytes.next().await else {
                return Ok(None);
            };
            let piece = piece?;
            self.arrival = now_ns();
            self.buffer.extend_from_slice(&piece);
        }
    }
}

/// The delta one SSE line carries, if any.
fn parse_line(line: &[u8]) -> Option<Delta> {
    let line = String::from_utf8_lossy(line);
    let data = line.trim().strip_prefix("data:")?.trim();
    if data == "[DONE]" {
        return Some(Delta::Done);
    }
    let event = serde_json::from_str::<ChunkEvent<'_>>(data).ok()?;
    let text = event.choices.first()?.delta.as_ref()?.content.as_deref()?;
    (!text.is_empty()).then(|| Delta::Text(text.to_owned()))
}

/// What [`parse_line`] reads of an OpenAI chunk; the rest is skipped, not built into
/// a tree (the direct clients and the bare proxy parse every chunk on the cores the
/// server is measured on: docs/BENCHMARKS.md, twenty-third pass).
#[derive(Deserialize)]
struct ChunkEvent<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChunkChoice<'a>>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<ChunkDelta<'a>>,
}

#[derive(Deserialize)]
struct ChunkDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_lines_become_text_deltas_and_done() {
        let chunk = br#"data: {"choices":[{"delta":{"content":"hi "}}]}"#;
        assert_eq!(parse_line(chunk), Some(Delta::Text("hi ".to_owned())));
        assert_eq!(parse_line(b"data: [DONE]\n"), Some(Delta::Done));
        let empty = br#"data: {"choices":[{"delta":{"content":""}}]}"#;
        assert_eq!(parse_line(empty), None);
        assert_eq!(parse_line(b": keep-alive\n"), None);
        assert_eq!(parse_line(b"data: not json\n"), None);
        let escaped = br#"data: {"id":"x","choices":[{"index":0,"delta":{"content":"a \"b\"\n"},"finish_reason":null}]}"#;
        assert_eq!(
            parse_line(escaped),
            Some(Delta::Text("a \"b\"\n".to_owned()))
        );
        let role = br#"data: {"choices":[{"delta":{"role":"assistant"}}]}"#;
        assert_eq!(parse_line(role), None);
        assert_eq!(parse_line(br#"data: {"choices":[]}"#), None);
        assert_eq!(parse_line(br#"data: {"choices":[{"delta":null}]}"#), None);
    }
}
