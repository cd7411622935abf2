//! From the bytes of a Server-Sent Events body to [`StreamEvent`]s, shared by the
//! three HTTP adapters: each adapter only supplies an [`SseDecoder`] for its JSON.
//!
//! The path is hardened against arbitrary input: lines are decoded as lossy UTF-8
//! (an invalid byte becomes U+FFFD instead of stalling the stream), a reply is capped
//! at [`MAX_REPLY_BYTES`], malformed events are skipped up to
//! [`MAX_MALFORMED_EVENTS`], and the first transport error ends the stream. The
//! event-stream format itself is parsed by [`crate::sse_parser`], which reads lines
//! in the chunks they arrive in and copies only a line that spans two.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::sse_parser::SseParser;
use crate::{EventStream, LlmError, StreamEvent, Usage};

/// Largest reply body accepted from a provider; also bounds the SSE parser's buffer.
pub const MAX_REPLY_BYTES: usize = 8 * 1024 * 1024;

/// Unparseable events tolerated in one reply before it is declared broken.
pub const MAX_MALFORMED_EVENTS: usize = 16;

/// What one SSE event meant to an adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Reply text.
    Delta(String),
    /// Prompt tokens as reported by the provider (the latest report wins).
    PromptTokens(u64),
    /// Completion tokens as reported by the provider (the latest report wins).
    CompletionTokens(u64),
    /// The provider's end-of-reply marker.
    Finished,
    /// The event could not be understood; skipped (with a bound).
    Malformed(String),
}

/// One wire format's interpretation of SSE events.
pub(crate) trait SseDecoder: Send + 'static {
    /// Interprets one event (`event` is the SSE event name, `message` when absent).
    /// An `Err` is a provider-reported failure and ends the reply.
    fn decode(&mut self, event: &str, data: &str, out: &mut Vec<Decoded>) -> Result<(), LlmError>;

    /// True when a body ending here (without the end marker) is still a complete
    /// reply; e.g. an OpenAI-compatible server that sent `finish_reason` but no `[DONE]`.
    fn complete_at_eof(&self) -> bool {
        false
    }
}

/// Turns an SSE body into a reply stream. `prompt_chars` feeds the usage estimate
/// when the provider reports no usage.
pub(crate) fn decode_stream<S, E, D>(body: S, decoder: D, prompt_chars: usize) -> EventStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::error::Error + Send + 'static,
    D: SseDecoder,
{
    let body = body.map(|chunk| {
        chunk.map_err(|e| {
            LlmError::Unavailable(format!(
                "connection to the provider lost mid-reply: {}",
                crate::http::chain(&e)
            ))
        })
    });
    let state = Driver {
        body: Some(Box::pin(body)),
        parser: SseParser::default(),
        received: 0,
        reply: Reply {
            decoder,
            ended: false,
            failed: false,
            pending: VecDeque::new(),
            scratch: Vec::new(),
            prompt_chars,
            completion_chars: 0,
            prompt_tokens: None,
            completion_tokens: None,
            malformed: 0,
        },
    };
    Box::pin(futures::stream::unfold(state, Driver::next))
}

type Body = Pin<Box<dyn Stream<Item = Result<Bytes, LlmError>> + Send>>;

struct Driver<D> {
    /// `None` once the reply is over; dropping it releases the connection.
    body: Option<Body>,
    parser: SseParser,
    /// Body bytes received so far (bounded by [`MAX_REPLY_BYTES`]).
    received: usize,
    reply: Reply<D>,
}

/// What the events of one reply add up to.
struct Reply<D> {
    decoder: D,
    /// The provider's end marker was seen: the rest of the body is drained (so the
    /// connection can go back to the pool), then usage and `Done` follow.
    ended: bool,
    /// An error ended the reply: the body is dropped, nothing more is read.
    failed: bool,
    /// Items decoded but not yet handed out (one SSE event yields at most a few).
    pending: VecDeque<Result<StreamEvent, LlmError>>,
    scratch: Vec<Decoded>,
    prompt_chars: usize,
    completion_chars: usize,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    malformed: usize,
}

/// How long the rest of a body is read after the end marker. Real providers close
/// right after it; reading to the end lets the HTTP connection be reused, and the
/// bound keeps a server that lingers from delaying `Done`.
const DRAIN_LIMIT: Duration = Duration::from_millis(250);

impl<D: SseDecoder> Driver<D> {
    async fn next(mut self) -> Option<(Result<StreamEvent, LlmError>, Self)> {
        loop {
            if let Some(item) = self.reply.pending.pop_front() {
                return Some((item, self));
            }
            let mut body = self.body.take()?;
            if self.reply.ended {
                drain(&mut body).await;
                drop(body);
                self.reply.complete();
                continue;
            }
            // Events already buffered first: one read often carries many.
            if let Some((event, data)) = self.parser.next_event() {
                self.reply.on_event(event, data);
                if !self.reply.failed {
                    self.body = Some(body);
                }
                continue;
            }
            match body.next().await {
                Some(Ok(chunk)) => {
                    self.received = self.received.saturating_add(chunk.len());
                    if self.received > MAX_REPLY_BYTES {
                        self.reply.fail(LlmError::Protocol(format!(
                            "reply larger than {MAX_REPLY_BYTES} bytes"
                        )));
                    } else {
                        self.parser.push(chunk);
                        self.body = Some(body);
                    }
                }
                Some(Err(error)) => self.reply.fail(error),
                None if self.reply.decoder.complete_at_eof() => self.reply.complete(),
                None => self.reply.fail(LlmError::Unavailable(
                    "the provider closed the stream before the reply was complete".to_owned(),
                )),
            }
        }
    }
}

impl<D: SseDecoder> Reply<D> {
    fn on_event(&mut self, event: &str, data: &str) {
        self.scratch.clear();
        let mut out = std::mem::take(&mut self.scratch);
        let result = self.decoder.decode(event, data, &mut out);
        for decoded in out.drain(..) {
            match decoded {
                Decoded::Delta(text) if text.is_empty() => {}
                Decoded::Delta(text) => {
                    self.completion_chars += text.chars().count();
                    self.pending.push_back(Ok(StreamEvent::Delta(text)));
                }
                Decoded::PromptTokens(n) => self.prompt_tokens = Some(n),
                Decoded::CompletionTokens(n) => self.completion_tokens = Some(n),
                Decoded::Finished => {
                    self.ended = true;
                    break;
                }
                Decoded::Malformed(reason) => {
                    self.malformed += 1;
                    tracing::warn!(%reason, "skipping a malformed provider event");
                    if self.malformed > MAX_MALFORMED_EVENTS {
                        self.fail(LlmError::Protocol(format!(
                            "more than {MAX_MALFORMED_EVENTS} malformed events (last: {reason})"
                        )));
                        break;
                    }
                }
            }
        }
        self.scratch = out;
        if let Err(e) = result {
            if !self.ended {
                self.fail(e);
            }
        }
    }

    /// Usage (reported, else estimated) and `Done`.
    fn complete(&mut self) {
        let estimate = Usage::estimate(self.prompt_chars, self.completion_chars);
        let usage = Usage {
            prompt_tokens: self.prompt_tokens.unwrap_or(estimate.prompt_tokens),
            completion_tokens: self.completion_tokens.unwrap_or(estimate.completion_tokens),
            estimated: self.prompt_tokens.is_none() || self.completion_tokens.is_none(),
        };
        self.pending.push_back(Ok(StreamEvent::Usage(usage)));
        self.pending.push_back(Ok(StreamEvent::Done));
    }

    /// Ends the reply with `error` (once); the driver then drops the connection.
    fn fail(&mut self, error: LlmError) {
        if !self.failed {
            self.failed = true;
            self.pending.push_back(Err(error));
        }
    }
}

/// Reads and discards the rest of the body, up to [`DRAIN_LIMIT`] or the first error.
async fn drain(body: &mut Body) {
    let rest = async { while let Some(Ok(_)) = body.next().await {} };
    let _ = tokio::time::timeout(DRAIN_LIMIT, rest).await;
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    /// Emits every data line as a delta and `end` as the end marker.
    struct Echo;
    impl SseDecoder for Echo {
        fn decode(
            &mut self,
            _event: &str,
            data: &str,
            out: &mut Vec<Decoded>,
        ) -> Result<(), LlmError> {
            match data {
                "end" => out.push(Decoded::Finished),
                "bad" => out.push(Decoded::Malformed("bad".into())),
                "fail" => return Err(LlmError::Unavailable("reported".into())),
                d => out.push(Decoded::Delta(d.to_owned())),
            }
            Ok(())
        }
    }

    async fn run(chunks: Vec<&[u8]>) -> Vec<Result<StreamEvent, LlmError>> {
        let owned: Vec<_> = chunks.into_iter().map(Bytes::copy_from_slice).collect();
        let body = futures::stream::iter(owned.into_iter().map(Ok::<_, Infallible>));
        decode_stream(body, Echo, 8).collect().await
    }

    #[tokio::test]
    async fn events_split_across_chunks_are_reassembled() {
        let out = run(vec![b"data: he", b"llo\n", b"\ndata: end\n\n"]).await;
        assert_eq!(
            out,
            vec![
                Ok(StreamEvent::Delta("hello".into())),
                Ok(StreamEvent::Usage(Usage::estimate(8, 5))),
                Ok(StreamEvent::Done)
            ]
        );
    }

    #[tokio::test]
    async fn a_multibyte_char_split_across_chunks_survives() {
        let out = run(vec![b"data: caf\xc3", b"\xa9\n\ndata: end\n\n"]).await;
        assert_eq!(out[0], Ok(StreamEvent::Delta("café".into())));
    }

    #[tokio::test]
    async fn an_invalid_byte_becomes_a_replacement_char_instead_of_stalling() {
        let out = run(vec![b"data: a\xffb\n\n", b"data: end\n\n"]).await;
        assert_eq!(out[0], Ok(StreamEvent::Delta("a\u{fffd}b".into())));
        assert_eq!(out.last(), Some(&Ok(StreamEvent::Done)));
    }

    #[tokio::test]
    async fn eof_without_end_marker_is_an_error() {
        let out = run(vec![b"data: partial\n\n"]).await;
        assert_eq!(out.len(), 2);
        assert!(matches!(out[1], Err(LlmError::Unavailable(_))));
    }

    #[tokio::test]
    async fn a_reported_error_ends_the_stream_after_earlier_deltas() {
        let out = run(vec![b"data: x\n\ndata: fail\n\ndata: y\n\n"]).await;
        assert_eq!(
            out,
            vec![
                Ok(StreamEvent::Delta("x".into())),
                Err(LlmError::Unavailable("reported".into()))
            ]
        );
    }

    #[tokio::test]
    async fn a_few_malformed_events_are_skipped_but_many_fail() {
        let out = run(vec![b"data: bad\n\ndata: ok\n\ndata: end\n\n"]).await;
        assert_eq!(out[0], Ok(StreamEvent::Delta("ok".into())));
        let many = "data: bad\n\n".repeat(MAX_MALFORMED_EVENTS + 1);
        let out = run(vec![many.as_bytes(), b"data: end\n\n"]).await;
        assert!(matches!(out.as_slice(), [Err(LlmError::Protocol(_))]));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_end_once(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..16)) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let out: Vec<_> = rt.block_on(async {
                let body = futures::stream::iter(chunks.into_iter().map(|c| Ok::<_, Infallible>(Bytes::from(c))));
                decode_stream(body, Echo, 0).collect::<Vec<_>>().await
            });
            // Exactly one terminal item, and it is the last one.
            let terminals = out.iter().filter(|i| matches!(i, Ok(StreamEvent::Done) | Err(_))).count();
            proptest::prop_assert_eq!(terminals, 1);
            proptest::prop_assert!(matches!(out.last(), Some(Ok(StreamEvent::Done) | Err(_))));
        }
    }

    /// Lines that look like the three wire formats, mixed with junk.
    fn wire_like_line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let text = "[a-zA-Z0-9 \"{}:,\\\\\u{e9}\u{1F600}]{0,12}";
        prop_oneof![
            Just("data: [DONE]".to_owned()),
            Just("event: ping".to_owned()),
            Just("event: error".to_owned()),
            Just(": comment".to_owned()),
            Just(String::new()),
            text.prop_map(|t| format!("data: {t}")),
            text.prop_map(|t| format!(r#"data: {{"choices":[{{"index":0,"delta":{{"content":"{t}"}},"finish_reason":null}}]}}"#)),
            Just(r#"data: {"choices":null,"usage":{"prompt_tokens":1,"completion_tokens":99999999999999999999}}"#.to_owned()),
            Just(r#"data: {"choices":[{"finish_reason":"stop"}]}"#.to_owned()),
            text.prop_map(|t| format!(r#"data: {{"type":"content_block_delta","delta":{{"type":"text_delta","text":"{t}"}}}}"#)),
            Just(r#"data: {"type":"message_start","message":{"usage":{"input_tokens":-1}}}"#.to_owned()),
            Just(r#"data: {"type":"message_delta","usage":{"output_tokens":3}}"#.to_owned()),
            Just(r#"data: {"type":"message_stop"}"#.to_owned()),
            Just(r#"data: {"type":"error","error":{"type":"overloaded_error"}}"#.to_owned()),
            text.prop_map(|t| format!(r#"data: {{"event":"message","answer":"{t}"}}"#)),
            Just(r#"data: {"event":"message_end","metadata":{"usage":[]}}"#.to_owned()),
            Just(r#"data: {"event":"error","status":"x"}"#.to_owned()),
            any::<String>(),
        ]
    }

    fn run_decoder(decoder: u8, body: Vec<u8>, split: usize) -> Vec<Result<StreamEvent, LlmError>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async move {
            let cut = split.min(body.len());
            let (a, b) = body.split_at(cut);
            let chunks = vec![Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)];
            let body = futures::stream::iter(chunks.into_iter().map(Ok::<_, Infallible>));
            let stream = match decoder {
                0 => decode_stream(body, crate::openai::OpenAiDecoder::default(), 10),
                1 => decode_stream(body, crate::anthropic::AnthropicDecoder, 10),
                _ => decode_stream(body, crate::dify::DifyDecoder, 10),
            };
            stream.collect::<Vec<_>>().await
        })
    }

    proptest::proptest! {
        #[test]
        fn adapter_event_mapping_survives_arbitrary_lines(
            decoder in 0u8..3,
            lines in proptest::collection::vec(wire_like_line(), 0..24),
            crlf in proptest::bool::ANY,
            split in 0usize..4096,
        ) {
            let sep = if crlf { "\r\n" } else { "\n" };
            let body = lines.join(sep).into_bytes();
            let out = run_decoder(decoder, body, split);
            let terminals = out.iter().filter(|i| matches!(i, Ok(StreamEvent::Done) | Err(_))).count();
            proptest::prop_assert_eq!(terminals, 1);
            let last_is_terminal = matches!(out.last(), Some(Ok(StreamEvent::Done) | Err(_)));
            proptest::prop_assert!(last_is_terminal);
            if matches!(out.last(), Some(Ok(StreamEvent::Done))) {
                let usages = out.iter().filter(|i| matches!(i, Ok(StreamEvent::Usage(_)))).count();
                proptest::prop_assert_eq!(usages, 1);
            }
        }

        #[test]
        fn adapter_event_mapping_survives_arbitrary_bytes(
            decoder in 0u8..3,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            split in 0usize..512,
        ) {
            let out = run_decoder(decoder, body, split);
            proptest::prop_assert!(matches!(out.last(), Some(Ok(StreamEvent::Done) | Err(_))));
        }
    }
}
