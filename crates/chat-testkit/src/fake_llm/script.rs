//! What the fake server does for one request.

use std::time::Duration;

/// One thing the fake server does while streaming a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// One content delta, rendered in the request's wire format.
    Text(String),
    /// Wait this long (nothing is sent meanwhile).
    Sleep(Duration),
    /// Stop sending but keep the connection open until the client goes away or the
    /// server shuts down: a provider stalled mid-stream.
    Hang,
    /// Bytes written exactly as given: malformed lines, comments, partial events.
    Raw(String),
    /// The wire format's in-stream error event carrying this message.
    ProviderError(String),
    /// The wire format's keep-alive (`event: ping` for Anthropic and Dify, an SSE
    /// comment for OpenAI).
    Ping,
    /// Abort the connection without finishing the body: a crash mid-stream.
    Disconnect,
    /// The wire format's proper ending (finish reason, usage if scripted, end marker).
    End,
}

/// The scripted behaviour for one request: either an HTTP error, or a streamed
/// reply made of [`Step`]s. Build with [`Script::reply`] or [`Script::status`] and
/// the chainable modifiers; every script is deterministic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub(crate) status: u16,
    pub(crate) error_body: String,
    pub(crate) retry_after: Option<String>,
    pub(crate) header_delay: Duration,
    pub(crate) hang_before_headers: bool,
    pub(crate) chunk_delay: Duration,
    pub(crate) steps: Vec<Step>,
    pub(crate) usage: Option<(u64, u64)>,
    pub(crate) dify_agent: bool,
}

impl Default for Script {
    /// A short complete reply with reported usage.
    fn default() -> Self {
        Script::reply(["Hello", " from", " the", " fake", " provider."]).usage(11, 5)
    }
}

impl Script {
    /// A complete reply streamed as these chunks, then the format's proper ending.
    /// No usage is reported unless [`Script::usage`] is set.
    pub fn reply<I, S>(chunks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut steps: Vec<Step> = chunks.into_iter().map(|c| Step::Text(c.into())).collect();
        steps.push(Step::End);
        Self::steps(steps)
    }

    /// An exact list of steps (nothing is appended: add [`Step::End`] yourself).
    pub fn steps(steps: Vec<Step>) -> Self {
        Self {
            status: 200,
            error_body: String::new(),
            retry_after: None,
            header_delay: Duration::ZERO,
            hang_before_headers: false,
            chunk_delay: Duration::ZERO,
            steps,
            usage: None,
            dify_agent: false,
        }
    }

    /// An HTTP error response with this status and body (e.g. 429, 500, 401).
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            error_body: body.into(),
            ..Self::steps(Vec::new())
        }
    }

    /// Adds a `Retry-After` header (an error response's, usually a 429).
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }

    /// Waits this long between consecutive text chunks.
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Waits this long before sending the response headers.
    pub fn header_delay(mut self, delay: Duration) -> Self {
        self.header_delay = delay;
        self
    }

    /// Never sends the response headers (until the client leaves or the server
    /// shuts down): a provider that accepted the connection and hangs.
    pub fn hang_before_headers(mut self) -> Self {
        self.hang_before_headers = true;
        self
    }

    /// Sends the first `n` text chunks, then stalls with the connection open
    /// (`n = 0`: headers and the format's preamble only, no text).
    pub fn hang_after(self, n: usize) -> Self {
        self.cut_after(n, Step::Hang)
    }

    /// Sends the first `n` text chunks, then aborts the connection.
    pub fn disconnect_after(self, n: usize) -> Self {
        self.cut_after(n, Step::Disconnect)
    }

    /// Sends the first `n` text chunks, then the format's error event and closes.
    pub fn provider_error_after(self, n: usize, message: impl Into<String>) -> Self {
        self.cut_after(n, Step::ProviderError(message.into()))
    }

    /// Writes `line` (raw, followed by a blank line) before the first text chunk.
    pub fn malformed_line(mut self, line: impl Into<String>) -> Self {
        let at = self.text_index(0).unwrap_or(self.steps.len());
        self.steps
            .insert(at, Step::Raw(format!("{}\n\n", line.into())));
        self
    }

    /// Ends the body cleanly but without the format's end marker.
    pub fn without_end(mut self) -> Self {
        self.steps.retain(|s| *s != Step::End);
        self
    }

    /// Reports this usage (prompt, completion tokens) the way the format does.
    pub fn usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.usage = Some((prompt_tokens, completion_tokens));
        self
    }

    /// Dify only: stream `agent_message` events instead of `message`.
    pub fn dify_agent_messages(mut self) -> Self {
        self.dify_agent = true;
        self
    }

    /// The text chunks, concatenated: what a client should receive.
    pub fn text(&self) -> String {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    fn text_index(&self, nth: usize) -> Option<usize> {
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Step::Text(_)))
            .nth(nth)
            .map(|(i, _)| i)
    }

    fn cut_after(mut self, n: usize, step: Step) -> Self {
        let at = self.text_index(n).unwrap_or_else(|| {
            self.steps
                .iter()
                .position(|s| *s == Step::End)
                .unwrap_or(self.steps.len())
        });
        self.steps.truncate(at);
        self.steps.push(step);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_keeps_the_first_n_chunks() {
        let s = Script::reply(["a", "b", "c"]).hang_after(2);
        assert_eq!(
            s.steps,
            vec![Step::Text("a".into()), Step::Text("b".into()), Step::Hang]
        );
        let s = Script::reply(["a"]).disconnect_after(5);
        assert_eq!(s.steps, vec![Step::Text("a".into()), Step::Disconnect]);
        let s = Script::reply(["a"]).hang_after(0);
        assert_eq!(s.steps, vec![Step::Hang]);
    }

    #[test]
    fn malformed_lines_go_before_the_first_chunk() {
        let s = Script::reply(["a"]).malformed_line("data: {oops");
        assert_eq!(s.steps[0], Step::Raw("data: {oops\n\n".into()));
        assert_eq!(s.text(), "a");
    }
}
