//! The development model: answers without any network, so a fresh checkout chats.

use std::time::Duration;

use async_trait::async_trait;
use chat_config::ProviderSettings;
use futures::StreamExt;

use crate::{ChatRequest, EventStream, LlmError, LlmProvider, StreamEvent, Usage};

/// Marks every echo reply so nobody mistakes it for a real model.
pub const ECHO_PREFIX: &str = "[echo — development model]";

/// Pause between words when the configuration sets none: slow enough to see the
/// streaming in a browser, fast enough not to annoy.
pub const DEFAULT_ECHO_DELAY: Duration = Duration::from_millis(40);

/// Streams `"[echo — development model] You said: <message>"` word by word with a
/// fixed delay. Deterministic (same input, same chunks), usage estimated.
#[derive(Debug, Clone)]
pub struct EchoProvider {
    id: String,
    name: String,
    delay: Duration,
}

impl EchoProvider {
    /// An echo provider with an explicit id, name and delay between words.
    pub fn new(id: impl Into<String>, name: impl Into<String>, delay: Duration) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            delay,
        }
    }

    /// From `[[llm.providers]]` with `type = "echo"` (`echo_delay` optional).
    pub fn from_settings(settings: &ProviderSettings) -> Self {
        Self::new(
            settings.id.clone(),
            settings.name.clone(),
            settings.echo_delay.unwrap_or(DEFAULT_ECHO_DELAY),
        )
    }

    /// The full reply to `message`.
    pub fn reply_to(message: &str) -> String {
        let message = message.trim();
        if message.is_empty() {
            format!("{ECHO_PREFIX} You said nothing.")
        } else {
            format!("{ECHO_PREFIX} You said: {message}")
        }
    }

    /// The reply split into the chunks it is streamed as: each word keeps the
    /// whitespace that follows it, so the chunks concatenate to the reply exactly.
    pub fn chunks(reply: &str) -> Vec<String> {
        let mut chunks = Vec::new();
        let mut current = String::new();
        let mut in_space = false;
        for c in reply.chars() {
            if c.is_whitespace() {
                in_space = true;
            } else if in_space {
                chunks.push(std::mem::take(&mut current));
                in_space = false;
            }
            current.push(c);
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        chunks
    }
}

#[async_trait]
impl LlmProvider for EchoProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        let reply = Self::reply_to(request.last_user_message());
        let usage = Usage::estimate(request.prompt_chars(), reply.chars().count());
        let delay = self.delay;
        let deltas = futures::stream::iter(Self::chunks(&reply))
            .enumerate()
            .then(move |(i, word)| async move {
                if i > 0 && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(StreamEvent::Delta(word))
            });
        let tail = futures::stream::iter([Ok(StreamEvent::Usage(usage)), Ok(StreamEvent::Done)]);
        Ok(Box::pin(deltas.chain(tail)))
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn streams_a_marked_reply_word_by_word_with_the_delay() {
        let echo = EchoProvider::new("echo", "Echo", Duration::from_millis(100));
        let t0 = Instant::now();
        let items: Vec<_> = echo
            .stream(ChatRequest::single("hello  there"))
            .await
            .unwrap()
            .collect()
            .await;
        let text: String = items
            .iter()
            .filter_map(|i| match i {
                Ok(StreamEvent::Delta(d)) => Some(d.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "[echo — development model] You said: hello  there");
        let deltas = items.len() - 2;
        assert_eq!(deltas, 8);
        assert_eq!(
            t0.elapsed(),
            Duration::from_millis(100 * (deltas as u64 - 1))
        );
        assert!(matches!(items[deltas], Ok(StreamEvent::Usage(u)) if u.estimated));
        assert_eq!(items.last(), Some(&Ok(StreamEvent::Done)));
    }

    #[test]
    fn chunks_concatenate_to_the_reply() {
        for reply in ["", "one", " lead and  double ", "tab\tand\nnewline"] {
            assert_eq!(EchoProvider::chunks(reply).concat(), reply);
        }
        assert_eq!(
            EchoProvider::reply_to("  "),
            "[echo — development model] You said nothing."
        );
    }
}
