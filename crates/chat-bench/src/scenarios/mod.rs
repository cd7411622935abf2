//! The six measurements of `cargo xtask bench`, one module each, and the helpers
//! they share for opening many client connections.

pub mod chunk;
pub mod idle;
pub mod relay;
pub mod soak;
pub mod storage;
pub mod ttft;

use std::net::SocketAddr;

use futures::StreamExt;

use crate::client::{connect_chat, Ws};
use crate::BenchError;

/// Handshakes in flight at once while opening many sockets.
const CONNECT_PARALLELISM: usize = 64;

/// Opens `count` chat connections (`path(i)` gives the path with its token, `first`
/// the index of the first one), `CONNECT_PARALLELISM` at a time. Returns the ones
/// that opened and the first error, if any.
pub async fn open_many(
    addr: SocketAddr,
    first: usize,
    count: usize,
    path: impl Fn(usize) -> Result<String, BenchError>,
) -> (Vec<Ws>, Option<BenchError>) {
    let paths: Vec<(usize, Result<String, BenchError>)> =
        (first..first + count).map(|i| (i, path(i))).collect();
    let mut results = futures::stream::iter(paths)
        .map(|(i, path)| async move { connect_chat(addr, &path?, i).await })
        .buffer_unordered(CONNECT_PARALLELISM);
    let mut open = Vec::with_capacity(count);
    let mut first_error = None;
    while let Some(result) = results.next().await {
        match result {
            Ok(ws) => open.push(ws),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    (open, first_error)
}

/// Opens exactly `count` connections or fails with the first error.
pub async fn open_all(
    addr: SocketAddr,
    count: usize,
    path: impl Fn(usize) -> Result<String, BenchError>,
) -> Result<Vec<Ws>, BenchError> {
    match open_many(addr, 0, count, path).await {
        (open, None) => Ok(open),
        (open, Some(e)) => Err(BenchError::WebSocket(format!(
            "opened {} of {count} connections: {e}",
            open.len()
        ))),
    }
}

/// `b − a` in microseconds, as a signed value (added latency can be negative
/// within noise).
pub fn added_us(through_us: f64, direct_us: f64) -> f64 {
    through_us - direct_us
}

/// What one synchronized round of chats produced.
#[derive(Debug)]
pub struct Round {
    /// Replies that completed.
    pub replies: Vec<crate::client::Reply>,
    /// Errors of the ones that did not (their sockets are dropped).
    pub errors: Vec<String>,
    /// Arrival − emission of stamped chunks (empty unless `stamped`).
    pub chunk_latency: crate::histogram::Latencies,
}

/// Every connection sends `content` (one task each; connection *i* waits
/// `stagger × i` first, zero: all at once) and reads its reply. Connections whose
/// reply failed are dropped from `conns`. With `stamped`, each chunk's text is parsed
/// as the provider's emission time and arrival − emission is recorded.
pub async fn chat_round(
    conns: &mut Vec<Ws>,
    content: &str,
    stamped: bool,
    stagger: std::time::Duration,
) -> Result<Round, BenchError> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut ws) in std::mem::take(conns).into_iter().enumerate() {
        let content = content.to_owned();
        let mut latency = crate::histogram::Latencies::new()?;
        let wait = stagger * u32::try_from(i).unwrap_or(u32::MAX);
        tasks.spawn(async move {
            tokio::time::sleep(wait).await;
            let reply = crate::client::chat(&mut ws, &content, |arrival, text| {
                if stamped {
                    if let Some(emitted) = crate::client::parse_stamp(text) {
                        latency.record_ns(arrival.saturating_sub(emitted));
                    }
                }
            })
            .await;
            (ws, reply, latency)
        });
    }
    let mut round = Round {
        replies: Vec::new(),
        errors: Vec::new(),
        chunk_latency: crate::histogram::Latencies::new()?,
    };
    while let Some(joined) = tasks.join_next().await {
        let (ws, reply, latency) =
            joined.map_err(|e| BenchError::Process(format!("client task: {e}")))?;
        match reply {
            Ok(reply) => {
                round.replies.push(reply);
                round.chunk_latency.merge(&latency)?;
                conns.push(ws);
            }
            Err(e) => round.errors.push(e.to_string()),
        }
    }
    Ok(round)
}

/// `count` direct streams from the provider, started like [`chat_round`].
pub async fn direct_round(
    http: &reqwest::Client,
    endpoint: &str,
    count: usize,
    stamped: bool,
    stagger: std::time::Duration,
) -> Result<Round, BenchError> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let http = http.clone();
        let endpoint = endpoint.to_owned();
        let mut latency = crate::histogram::Latencies::new()?;
        let wait = stagger * u32::try_from(i).unwrap_or(u32::MAX);
        tasks.spawn(async move {
            tokio::time::sleep(wait).await;
            let reply = crate::direct::stream_reply(&http, &endpoint, |arrival, text| {
                if stamped {
                    if let Some(emitted) = crate::client::parse_stamp(text) {
                        latency.record_ns(arrival.saturating_sub(emitted));
                    }
                }
            })
            .await;
            (reply, latency)
        });
    }
    let mut round = Round {
        replies: Vec::new(),
        errors: Vec::new(),
        chunk_latency: crate::histogram::Latencies::new()?,
    };
    while let Some(joined) = tasks.join_next().await {
        let (reply, latency) =
            joined.map_err(|e| BenchError::Process(format!("direct task: {e}")))?;
        match reply {
            Ok(reply) => {
                round.replies.push(reply);
                round.chunk_latency.merge(&latency)?;
            }
            Err(e) => round.errors.push(e.to_string()),
        }
    }
    Ok(round)
}

/// Records each reply's time to first token.
pub fn record_ttft(round: &Round, into: &mut crate::histogram::Latencies) {
    for reply in &round.replies {
        if let Some(first) = reply.first_chunk_ns {
            into.record_ns(first.saturating_sub(reply.sent_ns));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_testkit::fake_llm::{FakeLlmServer, Script};
    use std::time::Duration;

    #[tokio::test]
    async fn direct_rounds_time_the_first_token_of_every_stream() {
        let fake = FakeLlmServer::start(
            Script::reply(["a", "b", "c"]).header_delay(Duration::from_millis(20)),
        )
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let round = direct_round(&http, &fake.openai_endpoint(), 4, false, Duration::ZERO)
            .await
            .unwrap();
        assert!(round.errors.is_empty(), "{:?}", round.errors);
        assert_eq!(round.replies.len(), 4);
        assert!(round.replies.iter().all(|r| r.chunks == 3));
        let mut ttft = crate::histogram::Latencies::new().unwrap();
        record_ttft(&round, &mut ttft);
        assert_eq!(ttft.count(), 4);
        assert!(ttft.summary().p50_us >= 20_000.0, "{:?}", ttft.summary());
        fake.shutdown().await;
    }

    #[tokio::test]
    async fn a_failed_reply_is_an_error_not_a_sample() {
        let fake = FakeLlmServer::start(Script::status(500, "down"))
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let round = direct_round(&http, &fake.openai_endpoint(), 2, false, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(round.errors.len(), 2);
        assert!(round.replies.is_empty());
        fake.shutdown().await;
    }
}
