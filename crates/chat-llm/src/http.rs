//! The one pooled HTTP client every adapter shares, with status mapping and the
//! before-the-first-byte retry policy.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde::Serialize;
use url::Url;

use crate::error::truncate_body;
use crate::{LlmError, MAX_ERROR_BODY_BYTES};

/// When a provider request is sent again. Retries happen only before any byte of a
/// reply was received (connect errors, 5xx, 429), so a user never sees text twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after the first (0 = never retry).
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
    /// A 429 asking to wait longer than this is reported at once (with its
    /// `retry_after`) instead of being waited out.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Never retry (tests that count requests, or a caller doing its own failover).
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Shared, pooled HTTP client for provider calls. Cloning is cheap and shares the
/// connection pool.
///
/// No read timeout is set on purpose: streaming replies are bounded by
/// [`crate::Deadlines`], which also close the connection when they fire.
#[derive(Debug, Clone)]
pub struct ProviderHttp {
    client: reqwest::Client,
    retry: RetryPolicy,
}

/// Time allowed to open a TCP/TLS connection to a provider.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this long. 30 s: shorter than the idle
/// timeout of most providers' load balancers (60 s and more), so the pool does not
/// pick a connection the far end is closing, and a wave of replies does not leave its
/// connections (a socket and hyper's buffers each) behind for long once the load has
/// gone — see docs/BENCHMARKS.md (soak).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle pooled connections kept per provider host. Over HTTP/1.1 every stream in
/// flight holds a connection of its own; when a wave of replies ends together, the
/// connections beyond this bound are closed and the next wave pays a new TCP (and TLS)
/// handshake before its first token. An idle connection costs a socket and a few KB,
/// so the pool keeps enough for a few hundred concurrent streams per provider.
const POOL_MAX_IDLE_PER_HOST: usize = 512;

/// `body` as JSON. The adapters' bodies hold only strings, numbers and booleans under
/// string keys, which always encode; the error is kept rather than assumed away.
fn json_body(body: &impl Serialize) -> Result<Bytes, LlmError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| LlmError::Protocol(format!("cannot encode the request: {e}")))
}

impl ProviderHttp {
    /// Builds the pooled client (rustls, HTTP/2 when offered, TCP keep-alive).
    pub fn new(retry: RetryPolicy) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("chatbox/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(60))
            .build()?;
        Ok(Self { client, retry })
    }

    /// Uses an existing client (shares its pool with other callers).
    pub fn with_client(client: reqwest::Client, retry: RetryPolicy) -> Self {
        Self { client, retry }
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// POSTs `body` as JSON asking for an event stream, retrying before the first
    /// byte per the policy, and returns the successful response with its body unread.
    /// `body` is the adapter's borrowed view of the request (no intermediate JSON tree
    /// holding a copy of the conversation), serialized once and sent as is by every
    /// retry. `headers` may carry credentials: they are marked sensitive and never
    /// logged.
    pub(crate) async fn post_stream<B: Serialize + Sync>(
        &self,
        provider_id: &str,
        url: &Url,
        headers: &HeaderMap,
        body: &B,
    ) -> Result<Response, LlmError> {
        let body = json_body(body)?;
        let mut retry = 0u32;
        loop {
            let error = match self.send_once(url, headers, &body).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            let wait = match &error {
                LlmError::RateLimited {
                    retry_after: Some(after),
                } if *after > self.retry.max_retry_after => None,
                LlmError::RateLimited {
                    retry_after: Some(after),
                } => Some(*after),
                LlmError::RateLimited { retry_after: None } | LlmError::Unavailable(_) => {
                    Some(self.retry.backoff(retry))
                }
                _ => None,
            };
            match wait {
                Some(wait) if retry < self.retry.max_retries => {
                    retry += 1;
                    tracing::warn!(
                        provider = provider_id,
                        %error,
                        retry,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "provider request failed before the first byte; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                _ => {
                    log_failure(provider_id, &error);
                    return Err(error);
                }
            }
        }
    }

    async fn send_once(
        &self,
        url: &Url,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Response, LlmError> {
        let response = self
            .client
            .post(url.clone())
            .headers(headers.clone())
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.clone())
            .send()
            .await
            .map_err(|e| {
                LlmError::Unavailable(format!(
                    "could not reach the provider: {}",
                    chain(&e.without_url())
                ))
            })?;
        let status = response.status();
        if status.is_success() {
            let is_json = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("json"));
            if is_json {
                let body = read_bounded(response).await;
                return Err(LlmError::Protocol(format!(
                    "expected an event stream, got JSON: {body}"
                )));
            }
            return Ok(response);
        }
        let retry_after = parse_retry_after(response.headers());
        let body = read_bounded(response).await;
        Err(status_error(status, retry_after, &body))
    }
}

/// An error with its causes (`a: b: c`), since reqwest's own message is generic.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Logs a failed provider call at the level its error kind calls for.
pub(crate) fn log_failure(provider_id: &str, error: &LlmError) {
    if error.log_level() == tracing::Level::ERROR {
        tracing::error!(provider = provider_id, %error, "provider request failed");
    } else {
        tracing::warn!(provider = provider_id, %error, "provider request failed");
    }
}

/// Maps a non-success HTTP status to the error callers act on.
pub(crate) fn status_error(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
) -> LlmError {
    let detail = format!("HTTP {}: {}", status.as_u16(), truncate_body(body));
    match status.as_u16() {
        401 | 403 => LlmError::Unauthorized(detail),
        429 => LlmError::RateLimited { retry_after },
        400 | 404 | 405 | 413 | 415 | 422 => LlmError::BadRequest(detail),
        _ => LlmError::Unavailable(detail),
    }
}

/// `Retry-After` in seconds (integer or decimal), or the `retry-after-ms` some
/// OpenAI-compatible servers send. HTTP dates are not honoured (None).
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    text(RETRY_AFTER.as_str())
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
}

/// Reads at most [`MAX_ERROR_BODY_BYTES`] (plus one chunk) of an error body, so a
/// huge or endless error response cannot hold memory or the caller.
async fn read_bounded(mut response: Response) -> String {
    let mut buf = Vec::new();
    while buf.len() <= MAX_ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    truncate_body(&String::from_utf8_lossy(&buf))
}

/// A header value that carries a credential: marked sensitive so it is never printed
/// (hyper also keeps it out of HTTP/2 header compression tables).
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue, LlmError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        LlmError::Unauthorized("the API key contains characters not allowed in a header".to_owned())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Appends `suffix` (e.g. `/chat/completions`) to a configured base URL unless the
/// operator already gave the full path.
pub(crate) fn endpoint_url(base: &Url, suffix: &str) -> Url {
    let mut url = base.clone();
    let path = base.path().trim_end_matches('/');
    if !path.ends_with(suffix) {
        url.set_path(&format!("{path}{suffix}"));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_typed_errors() {
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, None, "no"),
            LlmError::Unauthorized(_)
        ));
        assert!(matches!(
            status_error(StatusCode::FORBIDDEN, None, "no"),
            LlmError::Unauthorized(_)
        ));
        assert!(matches!(
            status_error(StatusCode::BAD_REQUEST, None, "no"),
            LlmError::BadRequest(_)
        ));
        assert!(matches!(
            status_error(StatusCode::INTERNAL_SERVER_ERROR, None, "x"),
            LlmError::Unavailable(_)
        ));
        assert_eq!(
            status_error(
                StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_secs(7)),
                ""
            ),
            LlmError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("-1"));
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn endpoint_suffix_is_appended_once() {
        let base = Url::parse("https://api.openai.com/v1/").unwrap();
        assert_eq!(
            endpoint_url(&base, "/chat/completions").as_str(),
            "https://api.openai.com/v1/chat/completions"
        );
        let full = Url::parse("http://localhost:11434/v1/chat/completions").unwrap();
        assert_eq!(
            endpoint_url(&full, "/chat/completions").as_str(),
            "http://localhost:11434/v1/chat/completions"
        );
        let root = Url::parse("https://api.anthropic.com").unwrap();
        assert_eq!(
            endpoint_url(&root, "/v1/messages").as_str(),
            "https://api.anthropic.com/v1/messages"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(0), Duration::from_millis(200));
        assert_eq!(p.backoff(1), Duration::from_millis(400));
        assert_eq!(p.backoff(10), Duration::from_secs(2));
    }

    #[test]
    fn api_keys_are_sensitive_headers() {
        let v = secret_header("Bearer sk-123").unwrap();
        assert!(v.is_sensitive());
        assert!(secret_header("bad\nkey").is_err());
    }
}
