//! The six measurements of `cargo xtask bench`, one module each, and the helpers
//! they share for opening many client connections.

pub mod chunk;
pub mod idle;
pub mod relay;
pub mod soak;
pub mod storage;
pub mod ttft;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::client::{connect_chat, Ws};
use crate::pacer::Pacer;
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

/// Of trials run one after the other, the one whose `key` is the median (the upper one
/// of an even count), with every trial's key in run order; `None` without trials.
/// On the shared 2-core machine a tail percentile swings several-fold from one trial
/// to the next (one scheduling hiccup of a few milliseconds moves it), so the
/// latency measurements judge the median trial, not one draw.
pub fn median_trial<T>(mut trials: Vec<T>, key: impl Fn(&T) -> f64) -> Option<(T, Vec<f64>)> {
    let all: Vec<f64> = trials.iter().map(&key).collect();
    trials.sort_by(|a, b| key(a).total_cmp(&key(b)));
    if trials.is_empty() {
        return None;
    }
    let median = trials.swap_remove(trials.len() / 2);
    Some((median, all))
}

/// `b − a` in microseconds, as a signed value (added latency can be negative
/// within noise).
pub fn added_us(through_us: f64, direct_us: f64) -> f64 {
    through_us - direct_us
}

/// How the streams of a round start.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// All at the same instant: the burst shape.
    AtOnce,
    /// Stream *i* at `every × i` after the round began, on the pacer's clock (tokio's
    /// millisecond timer would gather streams less than a millisecond apart into
    /// one burst): the steady shape.
    Spread {
        /// Interval between two streams' starts.
        every: Duration,
        /// The clock that keeps the interval.
        pacer: &'a Pacer,
    },
}

impl Start<'_> {
    /// What stream `i` of a round that began at `began` waits for before it starts.
    pub fn wait(&self, began: Instant, i: usize) -> impl Future<Output = ()> + Send + 'static {
        let due = match *self {
            Self::AtOnce => None,
            Self::Spread { every, pacer } => Some((
                began + every * u32::try_from(i).unwrap_or(u32::MAX),
                pacer.clone(),
            )),
        };
        async move {
            if let Some((at, pacer)) = due {
                pacer.until(at).await;
            }
        }
    }
}

/// Which chunks of a round have their emission stamp read and timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamps {
    /// None (the provider does not stamp).
    Ignore,
    /// Every chunk of a reply after its first `n` (0: all of them).
    After(usize),
}

impl Stamps {
    /// Records arrival − emission of the `nth` chunk (counted from 1) into `into`.
    fn record(self, nth: usize, arrival_ns: u64, text: &str, into: &mut Vec<u64>) {
        let Self::After(skip) = self else {
            return;
        };
        if nth > skip {
            if let Some(emitted) = crate::client::parse_stamp(text) {
                into.push(arrival_ns.saturating_sub(emitted));
            }
        }
    }
}

/// What one synchronized round of chats produced. A stream task keeps its samples in
/// a plain vector and the round records them into one histogram after the task
/// ended: a histogram per task (~240 KB each, zeroed and freed by the hundred) cost
/// the load generator milliseconds of CPU in the middle of the measurement, on the
/// cores the server needs.
#[derive(Debug)]
pub struct Round {
    /// Replies that completed.
    pub replies: Vec<crate::client::Reply>,
    /// Errors of the ones that did not (their sockets are dropped).
    pub errors: Vec<String>,
    /// Arrival − emission of stamped chunks (empty unless `stamped`).
    pub chunk_latency: crate::histogram::Latencies,
}

/// Every connection sends `content` (one task each, started as `start` says) and
/// reads its reply; `stamps` says which chunks are timed. Connections whose
/// reply failed are dropped from `conns`. With `stamped`, each chunk's text is parsed
/// as the provider's emission time and arrival − emission is recorded.
pub async fn chat_round(
    conns: &mut Vec<Ws>,
    content: &str,
    stamps: Stamps,
    start: Start<'_>,
) -> Result<Round, BenchError> {
    let mut tasks = tokio::task::JoinSet::new();
    let began = Instant::now();
    for (i, mut ws) in std::mem::take(conns).into_iter().enumerate() {
        let content = content.to_owned();
        let wait = start.wait(began, i);
        tasks.spawn(async move {
            wait.await;
            let mut latency = Vec::new();
            let mut seen = 0;
            let reply = crate::client::chat(&mut ws, &content, |arrival, text| {
                seen += 1;
                stamps.record(seen, arrival, text, &mut latency);
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
                round.chunk_latency.record_all(&latency);
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
    stamps: Stamps,
    start: Start<'_>,
) -> Result<Round, BenchError> {
    let mut tasks = tokio::task::JoinSet::new();
    let began = Instant::now();
    for i in 0..count {
        let http = http.clone();
        let endpoint = endpoint.to_owned();
        let wait = start.wait(began, i);
        tasks.spawn(async move {
            wait.await;
            let mut latency = Vec::new();
            let mut seen = 0;
            let reply = crate::direct::stream_reply(&http, &endpoint, |arrival, text| {
                seen += 1;
                stamps.record(seen, arrival, text, &mut latency);
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
                round.chunk_latency.record_all(&latency);
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

    #[test]
    fn stamps_are_timed_after_the_warm_up_only() {
        let mut timed = Vec::new();
        for nth in 1..=4 {
            let emitted = 1_000 * nth as u64;
            Stamps::After(2).record(nth, emitted + 70, &format!("{emitted};"), &mut timed);
        }
        assert_eq!(timed, vec![70, 70]);
        Stamps::Ignore.record(9, 5_000, "1000;", &mut timed);
        Stamps::After(0).record(1, 5_000, "not a stamp", &mut timed);
        assert_eq!(timed.len(), 2, "ignored, and unparsable text is no sample");
    }

    #[tokio::test]
    async fn spread_starts_wait_for_their_slot_and_at_once_does_not() {
        let pacer = Pacer::start().unwrap();
        let began = Instant::now();
        let every = Duration::from_millis(40);
        Start::Spread {
            every,
            pacer: &pacer,
        }
        .wait(began, 4)
        .await;
        assert!(began.elapsed() >= every * 4, "{:?}", began.elapsed());
        let again = Instant::now();
        Start::AtOnce.wait(again, 1_000).await;
        Start::Spread {
            every,
            pacer: &pacer,
        }
        .wait(again, 0)
        .await;
        assert!(again.elapsed() < every, "{:?}", again.elapsed());
    }

    #[tokio::test]
    async fn direct_rounds_time_the_first_token_of_every_stream() {
        let fake = FakeLlmServer::start(
            Script::reply(["a", "b", "c"]).header_delay(Duration::from_millis(20)),
        )
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let round = direct_round(
            &http,
            &fake.openai_endpoint(),
            4,
            Stamps::Ignore,
            Start::AtOnce,
        )
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
        let round = direct_round(
            &http,
            &fake.openai_endpoint(),
            2,
            Stamps::Ignore,
            Start::AtOnce,
        )
        .await
        .unwrap();
        assert_eq!(round.errors.len(), 2);
        assert!(round.replies.is_empty());
        fake.shutdown().await;
    }
}
