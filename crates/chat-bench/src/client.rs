//! A minimal chatbox WebSocket client for load: connect with a token, wait for
//! `connection_status`, send a `user_message` and time every `ai_response` frame of
//! the reply until `done:"true"` (PROTOCOL §3). Works against the baseline server
//! too, which speaks the same frames.

use std::borrow::Cow;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::clock::now_ns;
use crate::BenchError;

/// One client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Read buffer of every WebSocket the harness opens or accepts (its clients and the
/// bare baselines). tungstenite zero-fills the free part of its read buffer, up to
/// this size, before every read of the socket — a read that finds nothing included —
/// and its default is 128 KiB: at 100 streams the load generator spent 17 % of its CPU
/// in that `memset` (a `perf` profile, tenth pass of docs/BENCHMARKS.md), CPU taken
/// from the same two cores the server is measured on. 8 KiB still takes a relay burst
/// of ~80 small frames per read; a larger frame grows the buffer on demand.
pub const READ_BUFFER_SIZE: usize = 8 * 1024;

/// The harness's WebSocket configuration: tungstenite's defaults but the read buffer.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER_SIZE)
}

/// Source addresses used round-robin (all of 127/8 is loopback): each gives its own
/// ~28 000 ephemeral ports, so 50 000 sockets to one server port fit.
const SOURCE_IPS: u8 = 8;

/// Deadline for one frame while a reply streams, and for the handshake.
const FRAME_TIMEOUT: Duration = Duration::from_secs(60);

/// Opens a WebSocket to `addr` + `path` from source address `127.0.0.(1 + n % 8)`.
pub async fn connect(addr: SocketAddr, path: &str, n: usize) -> Result<Ws, BenchError> {
    let source = Ipv4Addr::new(127, 0, 0, 1 + (n % usize::from(SOURCE_IPS)) as u8);
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}{path}");
    let (ws, _) = tokio::time::timeout(
        FRAME_TIMEOUT,
        tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config())),
    )
    .await
    .map_err(|_| BenchError::Timeout("websocket handshake".to_owned()))??;
    Ok(ws)
}

/// Connects and waits for the server's first `connection_status` frame.
pub async fn connect_chat(addr: SocketAddr, path: &str, n: usize) -> Result<Ws, BenchError> {
    let mut ws = connect(addr, path, n).await?;
    loop {
        let frame = next_json(&mut ws).await?;
        if frame_type(&frame) == "connection_status" {
            return Ok(ws);
        }
    }
}

/// The next text frame as JSON (control frames are skipped; tungstenite answers
/// pings while we read).
pub async fn next_json(ws: &mut Ws) -> Result<Value, BenchError> {
    next_frame(ws).await.map(|(_, frame)| frame)
}

/// The next text frame as JSON with its arrival time, taken as soon as the frame is
/// read — before it is parsed, like the direct client's, so that parsing on the
/// client side is not counted as latency of one path only.
pub async fn next_frame(ws: &mut Ws) -> Result<(u64, Value), BenchError> {
    let (arrival, text) = next_text(ws).await?;
    Ok((arrival, serde_json::from_str(text.as_str())?))
}

/// The next text frame, unparsed, and when it arrived on the [`now_ns`] clock.
async fn next_text(ws: &mut Ws) -> Result<(u64, Utf8Bytes), BenchError> {
    loop {
        let message = tokio::time::timeout(FRAME_TIMEOUT, ws.next())
            .await
            .map_err(|_| BenchError::Timeout("waiting for a frame".to_owned()))?;
        let arrival = now_ns();
        match message {
            None => return Err(BenchError::WebSocket("connection ended".to_owned())),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Message::Text(text))) => return Ok((arrival, text)),
            Some(Ok(Message::Close(frame))) => {
                return Err(BenchError::WebSocket(format!(
                    "closed by the server: {frame:?}"
                )))
            }
            Some(Ok(_)) => {}
        }
    }
}

/// What [`chat`] reads of a server frame; the other fields are skipped, not built
/// into a tree: the clients parse every frame of every reply on the two cores the
/// server is measured on (docs/BENCHMARKS.md, twenty-third pass).
#[derive(Debug, Deserialize)]
struct ReplyFrame<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    metadata: Option<ReplyMetadata<'a>>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ReplyMetadata<'a> {
    #[serde(default, borrow)]
    done: Option<Cow<'a, str>>,
}

impl ReplyFrame<'_> {
    fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("")
    }

    fn content(&self) -> &str {
        self.content.as_deref().unwrap_or("")
    }

    /// The reply's final frame (`metadata.done` is `"true"`).
    fn is_done(&self) -> bool {
        self.metadata
            .as_ref()
            .and_then(|m| m.done.as_deref())
            .is_some_and(|d| d == "true")
    }
}

/// The `type` of a frame (`""` when absent).
pub fn frame_type(frame: &Value) -> &str {
    frame.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Timings of one reply, on the [`now_ns`] clock.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// When the `user_message` was sent.
    pub sent_ns: u64,
    /// When the first `ai_response` with content arrived.
    pub first_chunk_ns: Option<u64>,
    /// `ai_response` frames with content.
    pub chunks: u64,
    /// When the final `done:"true"` frame arrived.
    pub done_ns: u64,
}

/// Sends `content` as a `user_message` and reads the reply to its end, calling
/// `on_chunk(arrival_ns, content)` for each `ai_response` frame with content. An
/// `error` frame ends the reply with an error.
pub async fn chat(
    ws: &mut Ws,
    content: &str,
    mut on_chunk: impl FnMut(u64, &str),
) -> Result<Reply, BenchError> {
    let request = serde_json::json!({"type": "user_message", "content": content});
    let mut reply = Reply {
        sent_ns: now_ns(),
        ..Reply::default()
    };
    ws.send(Message::text(request.to_string())).await?;
    loop {
        let (arrival, text) = next_text(ws).await?;
        let frame: ReplyFrame<'_> = serde_json::from_str(text.as_str())?;
        match frame.kind() {
            "ai_response" => {
                let text = frame.content();
                if !text.is_empty() {
                    reply.first_chunk_ns.get_or_insert(arrival);
                    reply.chunks += 1;
                    on_chunk(arrival, text);
                }
                if frame.is_done() {
                    reply.done_ns = arrival;
                    return Ok(reply);
                }
            }
            "error" => {
                return Err(BenchError::WebSocket(format!(
                    "error frame: {}",
                    frame.error.unwrap_or(Value::Null)
                )))
            }
            _ => {}
        }
    }
}

/// Parses the emission stamp `"<ns>;"` that [`crate::stamp`] puts in each chunk.
pub fn parse_stamp(content: &str) -> Option<u64> {
    content.split(';').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_parse_from_chunk_text() {
        assert_eq!(parse_stamp("123456;"), Some(123_456));
        assert_eq!(parse_stamp("42"), Some(42));
        assert_eq!(parse_stamp("hello"), None);
    }

    #[test]
    fn reply_frames_read_type_content_and_done() {
        let chunk: ReplyFrame<'_> = serde_json::from_str(
            r#"{"type":"ai_response","session_id":"s","content":"a \"quoted\"\nline","timestamp":"t","sender":"ai","metadata":{"streaming":"true","done":"false","seq":"3"}}"#,
        )
        .unwrap();
        assert_eq!(chunk.kind(), "ai_response");
        assert_eq!(chunk.content(), "a \"quoted\"\nline");
        assert!(!chunk.is_done());
        let last: ReplyFrame<'_> = serde_json::from_str(
            r#"{"type":"ai_response","content":"","metadata":{"done":"true"}}"#,
        )
        .unwrap();
        assert!(last.is_done());
        let bare: ReplyFrame<'_> =
            serde_json::from_str(r#"{"content":null,"metadata":null,"models":[{"id":"m"}]}"#)
                .unwrap();
        assert_eq!(
            (bare.kind(), bare.content(), bare.is_done()),
            ("", "", false)
        );
        let error: ReplyFrame<'_> =
            serde_json::from_str(r#"{"type":"error","error":{"code":"LLM_TIMEOUT"}}"#).unwrap();
        assert_eq!(error.error.unwrap()["code"], "LLM_TIMEOUT");
    }

    #[test]
    fn frame_types_default_to_empty() {
        assert_eq!(frame_type(&serde_json::json!({"type": "pong"})), "pong");
        assert_eq!(frame_type(&serde_json::json!({})), "");
    }
}
