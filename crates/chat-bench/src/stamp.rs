//! A provider that writes its emission time into each chunk: an OpenAI-compatible
//! streaming endpoint (`POST /v1/chat/completions`) whose text deltas are
//! `"<ns>;"` on the [`crate::clock`] clock, taken when the chunk is handed to the
//! connection. The scripted fake of `chat-testkit` renders its chunks before the
//! request arrives, so it cannot carry emission times.
//!
//! Chunk *k* of a reply is emitted at `request + k × delay` exactly, on the
//! [`Pacer`]'s sub-millisecond clock — an absolute schedule, so replies that start
//! spread over an interval stay spread (tokio's millisecond timer would gather them
//! into bursts at each tick, and a relative pause would drift).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ns;
use crate::pacer::Pacer;
use crate::BenchError;

/// The reply every request gets.
#[derive(Debug, Clone, Copy)]
pub struct StampScript {
    /// Text chunks per reply.
    pub chunks: usize,
    /// Interval between chunks (the first one leaves when the request arrives).
    pub delay: Duration,
}

/// A running stamping provider on `127.0.0.1:<free port>`; stops when dropped.
#[derive(Debug)]
pub struct StampServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl StampServer {
    /// Binds and serves `script` to every request, paced by `pacer`.
    pub async fn start(script: StampScript, pacer: Pacer) -> Result<Self, BenchError> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let script = Arc::new(script);
        let body_stop = stop.clone();
        let app = Router::new().route(
            "/v1/chat/completions",
            post(move || reply(*script, pacer.clone(), body_stop.clone())),
        );
        // Like a real provider's streaming endpoint (and the testkit's fake): each
        // chunk leaves at once instead of waiting for the peer's ACK of the last one.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                eprintln!("stamping provider: TCP_NODELAY not set: {e}");
            }
        });
        let serve_stop = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(serve_stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                eprintln!("stamping provider stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            stop,
            task: Some(task),
        })
    }

    /// The endpoint to configure (`http://ADDR/v1`).
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for StampServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Where one streamed reply stands.
struct Progress {
    script: StampScript,
    /// When the request arrived: chunk *k* is due at `start + k × delay`.
    start: Instant,
    pacer: Pacer,
    sent: usize,
    ended: bool,
    stop: CancellationToken,
}

async fn reply(script: StampScript, pacer: Pacer, stop: CancellationToken) -> Response {
    let progress = Progress {
        script,
        start: Instant::now(),
        pacer,
        sent: 0,
        ended: false,
        stop,
    };
    let stream = futures::stream::unfold(progress, |mut p| async move {
        if p.ended {
            return None;
        }
        if p.sent == p.script.chunks {
            p.ended = true;
            let end = format!("{}data: [DONE]\n\n", chunk_event("", Some("stop")));
            return Some((Ok::<_, std::io::Error>(Bytes::from(end)), p));
        }
        if p.sent > 0 && !p.script.delay.is_zero() {
            let due = p.start + p.script.delay * u32::try_from(p.sent).unwrap_or(u32::MAX);
            tokio::select! {
                () = p.pacer.until(due) => {}
                () = p.stop.cancelled() => return None,
            }
        }
        p.sent += 1;
        let event = chunk_event(&format!("{};", now_ns()), None);
        Some((Ok(Bytes::from(event)), p))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// One OpenAI `chat.completion.chunk` server-sent event.
fn chunk_event(content: &str, finish: Option<&str>) -> String {
    let delta = if finish.is_some() {
        serde_json::json!({})
    } else {
        serde_json::json!({"content": content})
    };
    let event = serde_json::json!({
        "id": "bench", "object": "chat.completion.chunk", "created": 0, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    format!("data: {event}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::parse_stamp;
    use crate::direct::stream_reply;

    #[tokio::test]
    async fn each_chunk_carries_its_emission_time() {
        let server = StampServer::start(
            StampScript {
                chunks: 3,
                delay: Duration::from_millis(5),
            },
            Pacer::start().unwrap(),
        )
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let before = now_ns();
        let mut stamps = Vec::new();
        let reply = stream_reply(&http, &server.endpoint(), |arrival, text| {
            let stamp = parse_stamp(text).unwrap();
            assert!(stamp <= arrival);
            stamps.push(stamp);
        })
        .await
        .unwrap();
        assert_eq!(reply.chunks, 3);
        assert_eq!(stamps.len(), 3);
        assert!(stamps[0] >= before);
        // Chunk k is due k × 5 ms after the request, which came after `before`.
        assert!(stamps[2] >= before + 10_000_000, "{stamps:?}");
        server.shutdown().await;
    }
}
