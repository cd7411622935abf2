//! The baselines: a bare tokio-tungstenite server with no gateway logic (no auth,
//! sessions or storage), in one of two modes.
//!
//! - **Echo** (the relay baseline, [`Upstream`] absent): answers each `user_message`
//!   whose content is a number `N` with `loading`, `N` `ai_response` frames shaped
//!   like chatbox's and a final `done:"true"` frame. What it delivers per second on
//!   this machine is the physical limit the gateway's relay is compared with.
//! - **Bare proxy** (the TTFT floor, `--upstream URL`): streams each `user_message`
//!   from the provider at `URL` (OpenAI `chat/completions`, one pooled HTTP client)
//!   and relays every text delta as an `ai_response` frame, then `done`. The least
//!   any gateway in front of that provider must add to the time to first token: one
//!   more WebSocket hop and one more HTTP hop, and nothing else.
//!
//! It runs as a separate process (`chat-bench echo-server`) like the gateway, so both
//! compete with the load generator on equal terms.

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::direct::{Delta, Deltas};
use crate::BenchError;

/// The text of every relayed chunk (also what the fake provider streams in the
/// throughput measurement, so frames have the same size on both sides).
pub const CHUNK_TEXT: &str = "0123456789abcdef";

/// The largest `N` one request may ask for (bounds one reply).
pub const MAX_CHUNKS_PER_REQUEST: usize = 1_000_000;

const SESSION_ID: &str = "0123456789abcdef0123456789abcdef";

/// The provider the bare proxy relays, with its pooled HTTP client.
#[derive(Debug, Clone)]
pub struct Upstream {
    http: reqwest::Client,
    endpoint: String,
}

impl Upstream {
    /// A proxy to `endpoint` (`http://ADDR/v1`), its connections set up like
    /// chatbox's provider client (`TCP_NODELAY`, a pool for hundreds of streams).
    pub fn new(endpoint: &str) -> Result<Self, BenchError> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(512)
            .build()?;
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
        })
    }
}

/// Serves on `127.0.0.1:<free port>`, prints `listening on ADDR`, and stops when
/// standard input reaches end of file (the parent went away) or closes. With
/// `upstream`, as the bare proxy (module docs).
pub async fn run_process(upstream: Option<Upstream>) -> Result<(), BenchError> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    println!("listening on {}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let watcher_stop = stop.clone();
    let watcher = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        watcher_stop.cancel();
    });
    serve(listener, stop, upstream).await;
    watcher.abort();
    let _ = watcher.await;
    Ok(())
}

/// Accepts until `stop`, one task per connection (each ends with its client; the
/// load generator bounds how many there are), then waits for them.
pub async fn serve(listener: TcpListener, stop: CancellationToken, upstream: Option<Upstream>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(connection(stream, stop.clone(), upstream.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn connection(stream: TcpStream, stop: CancellationToken, upstream: Option<Upstream>) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let Ok(mut ws) =
        tokio_tungstenite::accept_async_with_config(stream, Some(crate::client::ws_config())).await
    else {
        return;
    };
    let status = frame("connection_status", "", None);
    if ws.send(Message::text(status.to_string())).await.is_err() {
        return;
    }
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            m = ws.next() => m,
        };
        let Some(Ok(message)) = message else {
            return;
        };
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(request) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let content = request.get("content").and_then(Value::as_str).unwrap_or("");
        let answered = match &upstream {
            None => {
                let n = content
                    .trim()
                    .parse::<usize>()
                    .unwrap_or(1)
                    .min(MAX_CHUNKS_PER_REQUEST);
                relay(&mut ws, n).await.map_err(BenchError::from)
            }
            Some(upstream) => proxy(&mut ws, upstream, content).await,
        };
        if answered.is_err() {
            return;
        }
    }
}

async fn relay(
    ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
    n: usize,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.feed(Message::text(frame("loading", "", None).to_string()))
        .await?;
    for seq in 1..=n {
        let chunk = frame("ai_response", CHUNK_TEXT, Some((seq, false)));
        ws.send(Message::text(chunk.to_string())).await?;
    }
    let last = frame("ai_response", "", Some((n + 1, true)));
    ws.send(Message::text(last.to_string())).await
}

/// Streams `content`'s reply from `upstream` and relays each delta as it arrives.
/// `loading` is queued, not flushed: it leaves with the first chunk, one write fewer
/// than a gateway that announces the reply before the provider answers.
async fn proxy(
    ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
    upstream: &Upstream,
    content: &str,
) -> Result<(), BenchError> {
    ws.feed(Message::text(frame("loading", "", None).to_string()))
        .await?;
    let mut deltas = Deltas::request(&upstream.http, &upstream.endpoint, content).await?;
    let mut seq = 0;
    while let Some((_, delta)) = deltas.next().await? {
        match delta {
            Delta::Text(text) => {
                seq += 1;
                let chunk = frame("ai_response", &text, Some((seq, false)));
                ws.send(Message::text(chunk.to_string())).await?;
            }
            Delta::Done => break,
        }
    }
    let last = frame("ai_response", "", Some((seq + 1, true)));
    ws.send(Message::text(last.to_string())).await?;
    Ok(())
}

/// A frame with the fields chatbox sends (PROTOCOL §3).
fn frame(kind: &str, content: &str, stream: Option<(usize, bool)>) -> Value {
    let mut frame = json!({
        "type": kind,
        "session_id": SESSION_ID,
        "content": content,
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "sender": if kind == "ai_response" { "ai" } else { "system" },
    });
    if let Some((seq, done)) = stream {
        frame["metadata"] = json!({
            "streaming": "true",
            "done": if done { "true" } else { "false" },
            "seq": seq.to_string(),
        });
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{chat, connect_chat};

    #[tokio::test]
    async fn answers_a_count_with_that_many_chunks_then_done() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, stop.clone(), None));
        let mut ws = connect_chat(addr, "/", 0).await.unwrap();
        let mut texts = Vec::new();
        let reply = chat(&mut ws, "5", |_, t| texts.push(t.to_owned()))
            .await
            .unwrap();
        assert_eq!(reply.chunks, 5);
        assert!(texts.iter().all(|t| t == CHUNK_TEXT));
        assert!(reply.done_ns >= reply.first_chunk_ns.unwrap());
        drop(ws);
        stop.cancel();
        server.await.unwrap();
    }

    /// The bare proxy in front of a fake provider playing `script`, on loopback.
    struct Proxy {
        fake: chat_testkit::fake_llm::FakeLlmHandle,
        addr: std::net::SocketAddr,
        stop: CancellationToken,
        server: tokio::task::JoinHandle<()>,
    }

    impl Proxy {
        async fn start(script: chat_testkit::fake_llm::Script) -> Self {
            let fake = chat_testkit::fake_llm::FakeLlmServer::start(script)
                .await
                .unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = CancellationToken::new();
            let upstream = Upstream::new(&fake.openai_endpoint()).unwrap();
            let server = tokio::spawn(serve(listener, stop.clone(), Some(upstream)));
            Self {
                fake,
                addr,
                stop,
                server,
            }
        }

        async fn stop(self) {
            self.stop.cancel();
            self.server.await.unwrap();
            self.fake.shutdown().await;
        }
    }

    #[tokio::test]
    async fn the_bare_proxy_relays_the_providers_reply_delta_by_delta() {
        let proxy = Proxy::start(chat_testkit::fake_llm::Script::reply([
            "Hel", "lo ", "there",
        ]))
        .await;
        let mut ws = connect_chat(proxy.addr, "/", 0).await.unwrap();
        for _ in 0..2 {
            let mut texts = Vec::new();
            let reply = chat(&mut ws, "hi", |_, t| texts.push(t.to_owned()))
                .await
                .unwrap();
            assert_eq!(texts, ["Hel", "lo ", "there"]);
            assert_eq!(reply.chunks, 3);
        }
        drop(ws);
        proxy.stop().await;
    }

    #[tokio::test]
    async fn frames_larger_than_the_read_buffer_arrive_whole() {
        // The harness reads with a small buffer (`client::READ_BUFFER_SIZE`); a frame
        // larger than it must still arrive whole, on both sides of the socket.
        let big = "x".repeat(crate::client::READ_BUFFER_SIZE * 12 + 7);
        let proxy = Proxy::start(chat_testkit::fake_llm::Script::reply([
            "a",
            big.as_str(),
            "b",
        ]))
        .await;
        let mut ws = connect_chat(proxy.addr, "/", 0).await.unwrap();
        let long_message = "y".repeat(crate::client::READ_BUFFER_SIZE * 3);
        let mut texts = Vec::new();
        let reply = chat(&mut ws, &long_message, |_, t| texts.push(t.to_owned()))
            .await
            .unwrap();
        assert_eq!(reply.chunks, 3);
        assert_eq!(texts, ["a", big.as_str(), "b"]);
        drop(ws);
        proxy.stop().await;
    }
}
