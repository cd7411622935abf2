//! What can go wrong while asking a provider for a reply, and how each failure is
//! reported on the wire (PROTOCOL §3 error codes).

use std::time::Duration;

/// A failed or cut-short generation. Every variant knows its wire error code, whether a
/// client may retry, and how loudly it should be logged, so callers never match on
/// strings.
///
/// Messages never contain API keys: provider error bodies are truncated
/// ([`MAX_ERROR_BODY_BYTES`]) and request headers are never formatted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// No first token arrived within `llm.first_token_timeout`.
    #[error("the provider sent no first token within the deadline")]
    FirstTokenTimeout,
    /// The provider went silent for longer than `llm.idle_timeout` mid-reply.
    #[error("the provider stalled mid-reply")]
    IdleTimeout,
    /// The whole reply took longer than `llm.total_timeout`.
    #[error("the reply exceeded the total deadline")]
    TotalTimeout,
    /// The provider could not be reached, failed (5xx) or closed the stream early.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused because of its rate limit (HTTP 429).
    #[error("provider rate limit reached")]
    RateLimited {
        /// How long the provider asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The provider rejected the request as malformed (HTTP 400/404/413/422).
    #[error("provider rejected the request: {0}")]
    BadRequest(String),
    /// The provider refused our credentials (HTTP 401/403): a configuration problem.
    #[error("provider refused the credentials: {0}")]
    Unauthorized(String),
    /// The provider answered something that is not its documented protocol, or reported
    /// an error inside the stream.
    #[error("provider protocol error: {0}")]
    Protocol(String),
}

/// Provider error bodies are cut to this many bytes before they reach an error or a log,
/// so a misbehaving provider cannot flood logs (or echo a request back into them).
pub const MAX_ERROR_BODY_BYTES: usize = 512;

impl LlmError {
    /// The PROTOCOL §3 error code sent to the client.
    ///
    /// Credential and request problems are the operator's, not the user's: they are
    /// reported as `LLM_UNAVAILABLE` so a client never mistakes them for its own
    /// `UNAUTHORIZED`/`INVALID_FORMAT`.
    pub fn wire_code(&self) -> &'static str {
        match self {
            Self::FirstTokenTimeout | Self::IdleTimeout | Self::TotalTimeout => "LLM_TIMEOUT",
            Self::RateLimited { .. } => "TOO_MANY_REQUESTS",
            Self::Unavailable(_)
            | Self::BadRequest(_)
            | Self::Unauthorized(_)
            | Self::Protocol(_) => "LLM_UNAVAILABLE",
        }
    }

    /// The message shown to the end user: short, and free of provider internals.
    pub fn user_message(&self) -> &'static str {
        match self {
            Self::FirstTokenTimeout | Self::IdleTimeout | Self::TotalTimeout => {
                "The model took too long to answer. Please try again."
            }
            Self::RateLimited { .. } => "The model is busy right now. Please retry shortly.",
            _ => "The model is unavailable right now. Please try again later.",
        }
    }

    /// How long the client should wait before retrying, when the provider said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// True for any deadline miss (all map to `LLM_TIMEOUT`).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::FirstTokenTimeout | Self::IdleTimeout | Self::TotalTimeout
        )
    }

    /// True when sending the same request again (before anything was streamed) may
    /// succeed: transport failures, 5xx, rate limits and a missed first-token deadline.
    /// Credentials, malformed requests and protocol violations will fail again.
    pub fn is_retryable_before_first_byte(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::RateLimited { .. } | Self::FirstTokenTimeout
        )
    }

    /// Whether the client may simply try again later (`error.recoverable` on the wire).
    pub fn is_recoverable(&self) -> bool {
        !matches!(self, Self::Unauthorized(_) | Self::BadRequest(_))
    }

    /// A short, stable name of the variant for metric labels
    /// (`chatbox_llm_provider_attempts_total{outcome}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::FirstTokenTimeout => "first_token_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::TotalTimeout => "total_timeout",
            Self::Unavailable(_) => "unavailable",
            Self::RateLimited { .. } => "rate_limited",
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Protocol(_) => "protocol",
        }
    }

    /// Log level for this failure: operator mistakes (credentials, malformed requests,
    /// protocol violations) are errors; load and latency problems are warnings.
    pub fn log_level(&self) -> tracing::Level {
        match self {
            Self::Unauthorized(_) | Self::BadRequest(_) | Self::Protocol(_) => {
                tracing::Level::ERROR
            }
            _ => tracing::Level::WARN,
        }
    }
}

/// Cuts a provider's error body to [`MAX_ERROR_BODY_BYTES`] on a character boundary,
/// replacing control characters so one log line stays one line.
pub fn truncate_body(body: &str) -> String {
    let mut end = body.len().min(MAX_ERROR_BODY_BYTES);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = body[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if end < body.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_map_to_llm_timeout() {
        for e in [
            LlmError::FirstTokenTimeout,
            LlmError::IdleTimeout,
            LlmError::TotalTimeout,
        ] {
            assert_eq!(e.wire_code(), "LLM_TIMEOUT");
            assert!(e.is_timeout());
        }
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let e = LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(e.wire_code(), "TOO_MANY_REQUESTS");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.is_retryable_before_first_byte());
    }

    #[test]
    fn operator_errors_are_reported_as_unavailable_and_not_retried() {
        for e in [
            LlmError::Unauthorized("401".into()),
            LlmError::BadRequest("400".into()),
            LlmError::Protocol("junk".into()),
        ] {
            assert_eq!(e.wire_code(), "LLM_UNAVAILABLE");
            assert!(!e.is_retryable_before_first_byte());
            assert_eq!(e.log_level(), tracing::Level::ERROR);
        }
        assert_eq!(
            LlmError::Unavailable("503".into()).wire_code(),
            "LLM_UNAVAILABLE"
        );
    }

    #[test]
    fn long_bodies_are_truncated_on_a_char_boundary() {
        let body = "é".repeat(600);
        let cut = truncate_body(&body);
        assert!(cut.len() <= MAX_ERROR_BODY_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(truncate_body("short\nbody"), "short body");
    }
}
