//! A small WebSocket client for tests and benchmarks of the chat endpoint: connects
//! with a token (header or `?token=`) and an optional `Origin`, sends JSON frames,
//! reads server frames as JSON or [`chat_protocol::Message`] with a timeout, and
//! reports the close code the server sent. A refused handshake is an error that
//! carries the HTTP status, headers and body so tests can assert PROTOCOL §2 bodies.
//!
//! ```no_run
//! # async fn demo() -> Result<(), chat_testkit::ws_client::WsClientError> {
//! use std::time::Duration;
//! use chat_testkit::ws_client::{ConnectOptions, WsClient};
//! let mut client =
//!     WsClient::connect("ws://127.0.0.1:8080/ws", &ConnectOptions::bearer("jwt")).await?;
//! let status = client.next_message(Duration::from_secs(5)).await?;
//! client.send_json(&serde_json::json!({"type": "ping"})).await?;
//! # let _ = status; Ok(()) }
//! ```

use std::time::Duration;

use chat_protocol::{Message, MessageType};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The close code reported when the connection ended without a close frame
/// (RFC 6455 "abnormal closure"; never sent on the wire).
pub const ABNORMAL_CLOSURE: u16 = 1006;

/// The raw stream type, for tests that need to misbehave (never read, send garbage).
pub type RawStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How to present credentials and origin on the upgrade request.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The JWT, if any.
    pub token: Option<String>,
    /// Send the token as `?token=` (as browsers do) instead of `Authorization: Bearer`.
    pub token_in_query: bool,
    /// The `Origin` header, if any (browsers always send one; other clients may not).
    pub origin: Option<String>,
    /// Any further request headers (name, value).
    pub headers: Vec<(String, String)>,
}

impl ConnectOptions {
    /// No credentials at all (the server must answer 401).
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The token in an `Authorization: Bearer` header.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            ..Self::default()
        }
    }

    /// The token in the `?token=` query parameter.
    pub fn query_token(token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            token_in_query: true,
            ..Self::default()
        }
    }

    /// Adds an `Origin` header.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WsClientError {
    /// The server answered the upgrade with a non-101 response.
    #[error("handshake refused with HTTP {status}: {body}")]
    Rejected {
        /// HTTP status code.
        status: u16,
        /// Response headers (`Retry-After`, `WWW-Authenticate`, ...).
        headers: HeaderMap,
        /// Response body as text (a PROTOCOL §2 JSON error body).
        body: String,
    },
    /// A transport or protocol error.
    #[error("websocket error: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// Nothing arrived in time.
    #[error("no frame within {0:?}")]
    Timeout(Duration),
    /// The server closed the connection (code and reason; 1006 when it sent no close frame).
    #[error("connection closed by the server: {code} {reason:?}")]
    Closed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// A frame that is not what the caller expected (binary, non-JSON text, ...).
    #[error("unexpected frame: {0}")]
    Unexpected(String),
    /// The request could not be built (bad URL or header).
    #[error("invalid request: {0}")]
    Request(String),
}

impl WsClientError {
    /// The HTTP status of a refused handshake.
    pub fn status(&self) -> Option<u16> {
        match self {
            WsClientError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The parsed JSON body of a refused handshake.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        match self {
            WsClientError::Rejected { body, .. } => serde_json::from_str(body).ok(),
            _ => None,
        }
    }

    /// A response header of a refused handshake, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        match self {
            WsClientError::Rejected { headers, .. } => headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            _ => None,
        }
    }
}

/// One server text frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame text as received.
    pub text: String,
    /// The text parsed as JSON.
    pub json: serde_json::Value,
}

impl Frame {
    /// The frame as a protocol [`Message`].
    pub fn message(&self) -> Result<Message, WsClientError> {
        serde_json::from_value(self.json.clone()).map_err(|e| {
            WsClientError::Unexpected(format!("not a protocol message ({e}): {}", self.text))
        })
    }
}

/// A connected WebSocket test client. Pings from the server are answered
/// automatically whenever the client reads.
#[derive(Debug)]
pub struct WsClient {
    stream: RawStream,
}

impl WsClient {
    /// Connects to `url` (`ws://host:port/path`) with `options`. A refused handshake is
    /// [`WsClientError::Rejected`] with the status, headers and body.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self, WsClientError> {
        let mut url = url.to_owned();
        if options.token_in_query {
            if let Some(token) = &options.token {
                let sep = if url.contains('?') { '&' } else { '?' };
                url = format!("{url}{sep}token={token}");
            }
        }
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| WsClientError::Request(e.to_string()))?;
        let headers = request.headers_mut();
        if !options.token_in_query {
            if let Some(token) = &options.token {
                headers.insert("authorization", header_value(&format!("Bearer {token}"))?);
            }
        }
        if let Some(origin) = &options.origin {
            headers.insert("origin", header_value(origin)?);
        }
        for (name, value) in &options.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| WsClientError::Request(e.to_string()))?;
            headers.append(name, header_value(value)?);
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _response)) => Ok(Self { stream }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let body = response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err(WsClientError::Rejected {
                    status,
                    headers,
                    body,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends one JSON text frame.
    pub async fn send_json(&mut self, value: &serde_json::Value) -> Result<(), WsClientError> {
        self.send_text(value.to_string()).await
    }

    /// Sends one text frame as is (for invalid JSON tests).
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<(), WsClientError> {
        self.send_raw(WsMessage::text(text.into())).await
    }

    /// Sends one binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), WsClientError> {
        self.send_raw(WsMessage::binary(bytes)).await
    }

    /// Sends any WebSocket message.
    pub async fn send_raw(&mut self, message: WsMessage) -> Result<(), WsClientError> {
        self.stream.send(message).await?;
        Ok(())
    }

    /// The next message of any kind (pings and pongs included), or `None` when the
    /// stream ended.
    pub async fn next_raw(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<WsMessage>, WsClientError> {
        match tokio::time::timeout(timeout, self.stream.next()).await {
            Err(_) => Err(WsClientError::Timeout(timeout)),
            Ok(None) => Ok(None),
            Ok(Some(Ok(message))) => Ok(Some(message)),
            Ok(Some(Err(e))) => Err(e.into()),
        }
    }

    /// The next text frame, parsed as JSON, skipping pings and pongs. A close frame
    /// (or the end of the stream) is [`WsClientError::Closed`].
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<Frame, WsClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = match self.next_raw(left).await {
                Err(WsClientError::Timeout(_)) => return Err(WsClientError::Timeout(timeout)),
                other => other?,
            };
            match message {
                None => {
                    return Err(WsClientError::Closed {
                        code: ABNORMAL_CLOSURE,
                        reason: String::new(),
                    })
                }
                Some(WsMessage::Text(text)) => {
                    let text = text.as_str().to_owned();
                    let json = serde_json::from_str(&text).map_err(|e| {
                        WsClientError::Unexpected(format!("text frame is not JSON ({e}): {text}"))
                    })?;
                    return Ok(Frame { text, json });
                }
                Some(WsMessage::Close(frame)) => {
                    let (code, reason) = close_parts(frame);
                    return Err(WsClientError::Closed { code, reason });
                }
                Some(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_)) => continue,
                Some(WsMessage::Binary(b)) => {
                    return Err(WsClientError::Unexpected(format!(
                        "binary frame of {} bytes",
                        b.len()
                    )))
                }
            }
        }
    }

    /// The next server frame as a protocol [`Message`].
    pub async fn next_message(&mut self, timeout: Duration) -> Result<Message, WsClientError> {
        self.next_frame(timeout).await?.message()
    }

    /// Reads frames until one of type `kind` arrives (others are skipped); the whole
    /// wait is bounded by `timeout`.
    pub async fn next_of_type(
        &mut self,
        kind: MessageType,
        timeout: Duration,
    ) -> Result<Message, WsClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = match self.next_message(left).await {
                Err(WsClientError::Timeout(_)) => return Err(WsClientError::Timeout(timeout)),
                other => other?,
            };
            if message.kind == kind {
                return Ok(message);
            }
        }
    }

    /// Reads until the server closes and returns its close code and reason
    /// ([`ABNORMAL_CLOSURE`] when the stream ended without a close frame). Data frames
    /// before the close are skipped.
    pub async fn expect_close(
        &mut self,
        timeout: Duration,
    ) -> Result<(u16, String), WsClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_raw(left).await {
                Err(WsClientError::Timeout(_)) => return Err(WsClientError::Timeout(timeout)),
                Err(WsClientError::WebSocket(_)) | Ok(None) => {
                    return Ok((ABNORMAL_CLOSURE, String::new()))
                }
                Err(other) => return Err(other),
                Ok(Some(WsMessage::Close(frame))) => return Ok(close_parts(frame)),
                Ok(Some(_)) => continue,
            }
        }
    }

    /// Closes politely (code 1000) and waits briefly for the server's reply.
    pub async fn close(mut self) -> Result<(), WsClientError> {
        self.stream.close(None).await?;
        let wait = Duration::from_secs(5);
        while let Ok(Some(Ok(_))) = tokio::time::timeout(wait, self.stream.next()).await {}
        Ok(())
    }

    /// The underlying stream, for tests that need to misbehave.
    pub fn raw(&mut self) -> &mut RawStream {
        &mut self.stream
    }

    /// Gives up the client, returning the underlying stream.
    pub fn into_raw(self) -> RawStream {
        self.stream
    }
}

fn header_value(value: &str) -> Result<HeaderValue, WsClientError> {
    HeaderValue::from_str(value).map_err(|e| WsClientError::Request(e.to_string()))
}

fn close_parts(frame: Option<CloseFrame>) -> (u16, String) {
    match frame {
        Some(frame) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
        // A close frame without a status (RFC 6455 1005 "no status received").
        None => (1005, String::new()),
    }
}
