//! The provider baseline: a client streaming a reply straight from the provider
//! (OpenAI `chat/completions` with `stream: true`), timed on the same clock as the
//! WebSocket clients, so "added by chatbox" is the difference of the two.

use futures::StreamExt;
use serde_json::Value;

use crate::client::Reply;
use crate::clock::now_ns;
use crate::BenchError;

/// Largest SSE line accepted; a longer one is a protocol error (bounds the buffer).
const MAX_LINE: usize = 1 << 20;

/// Streams one reply from `endpoint` (`http://ADDR/v1`), calling
/// `on_chunk(arrival_ns, content)` for each non-empty text delta.
pub async fn stream_reply(
    http: &reqwest::Client,
    endpoint: &str,
    mut on_chunk: impl FnMut(u64, &str),
) -> Result<Reply, BenchError> {
    let body = serde_json::json!({
        "model": "m",
        "stream": true,
        "messages": [{"role": "user", "content": "benchmark"}],
    });
    let mut reply = Reply {
        sent_ns: now_ns(),
        ..Reply::default()
    };
    let response = http
        .post(format!("{endpoint}/chat/completions"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    let mut bytes = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    while let Some(piece) = bytes.next().await {
        let piece = piece?;
        let arrival = now_ns();
        buffer.extend_from_slice(&piece);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim().strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                reply.done_ns = arrival;
                return Ok(reply);
            }
            let Ok(event) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            let text = event
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !text.is_empty() {
                reply.first_chunk_ns.get_or_insert(arrival);
                reply.chunks += 1;
                on_chunk(arrival, text);
            }
        }
        if buffer.len() > MAX_LINE {
            return Err(BenchError::Process(
                "provider sent an over-long line".to_owned(),
            ));
        }
    }
    reply.done_ns = now_ns();
    Ok(reply)
}
