//! What a provider stream yields.

use std::pin::Pin;

use futures::Stream;

use crate::LlmError;

/// Token counts of one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Tokens of the prompt (system prompt, history and the new message).
    pub prompt_tokens: u64,
    /// Tokens of the generated reply.
    pub completion_tokens: u64,
    /// True when the provider did not report usage and the counts were estimated
    /// (about four characters per token), so dashboards can tell the two apart.
    pub estimated: bool,
}

impl Usage {
    /// Prompt plus completion tokens (what a session's `totalTokens` accumulates).
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// The fallback estimate used when a provider reports nothing: one token per four
    /// characters, rounded up.
    pub fn estimate(prompt_chars: usize, completion_chars: usize) -> Self {
        Self {
            prompt_tokens: estimate_tokens(prompt_chars),
            completion_tokens: estimate_tokens(completion_chars),
            estimated: true,
        }
    }
}

/// About four characters per token, rounded up: the usual rule of thumb for English
/// text with BPE tokenizers.
pub fn estimate_tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX)
}

/// One item of a reply stream.
///
/// Every successful stream has the shape `Delta* Usage Done`: deltas in order, exactly
/// one usage report, then `Done` as the last item. A stream that ends without `Done`
/// ended with an error item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The next piece of reply text, delivered as soon as the provider sent it.
    Delta(String),
    /// Token usage of the whole reply, sent once just before `Done`.
    Usage(Usage),
    /// The reply is complete.
    Done,
}

/// A reply stream: owned, sendable, and dropping it closes the connection to the
/// provider (that is how deadlines and `stop` cancel a generation).
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_round_up_and_are_marked() {
        let u = Usage::estimate(9, 4);
        assert_eq!((u.prompt_tokens, u.completion_tokens), (3, 1));
        assert!(u.estimated);
        assert_eq!(u.total(), 4);
        assert_eq!(estimate_tokens(0), 0);
    }
}
