//! One upgraded connection: a read pump, a write pump and a routing worker.
//!
//! ```text
//!  socket ──read pump──► inbound queue (bounded) ──worker──► router.handle_text
//!  socket ◄─write pump── outbound queue (bounded, from the router) + pings + close
//! ```
//!
//! - The read pump never waits on routing: text frames go to a small bounded queue
//!   drained by a worker task; when it is full the client gets `TOO_MANY_REQUESTS`
//!   instead of the pump blocking, so pings, pongs and close frames keep flowing
//!   during long operations.
//! - The write pump owns the sink: frames from the router's queue, a ping every
//!   `ping_interval`, and the final close frame.
//! - Any inbound frame (data, ping, pong) proves the peer alive; after `pong_timeout`
//!   without one the connection is closed.
//! - Close codes: the drain sends 1001 "Server shutting down"; the router's kill
//!   switch (slow consumer) 1008 "too slow"; an oversized frame 1009 "message too
//!   big"; a heartbeat timeout 1000 "heartbeat timeout" (the peer is most likely gone;
//!   a client that does see it simply reconnects); a panic in routing 1011.
//! - Oversized frames: tungstenite enforces `max_frame_size` on the frame header and
//!   `max_message_size` on the assembled message (both set to `max_message_size`), so
//!   an oversized payload is never buffered. It reports `Error::Capacity` and sends
//!   nothing itself; the read pump maps that error to close 1009.
//! - After sending a close frame the pump keeps reading (and discarding) for at most
//!   [`CLOSE_GRACE`] until the peer's close reply, so the close frame is not lost to a
//!   TCP reset caused by dropping a socket with unread data.
//! - Every exit path, including a panic or the drain's abort dropping this future,
//!   unregisters the connection from the router, releases the user's connection slot
//!   and the drain guard (they are owned values dropped with the future), and aborts
//!   the helper tasks (owned by a `JoinSet`).

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use chat_config::WebSocketSettings;
use chat_protocol::{ErrorCode, Message};
use chat_ratelimit::ConnectionSlot;
use chat_router::{CloseReason, ConnectionHandle, ConnectionId, Identity, MessageRouter, Outgoing};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::drain::DrainGuard;

/// Text frames waiting for the routing worker. Small: a client that sends faster than
/// its frames are routed is told to slow down (`TOO_MANY_REQUESTS`), not buffered.
pub const INBOUND_QUEUE_CAPACITY: usize = 8;

/// How long the close handshake may take (our close frame out, the peer's reply in)
/// and how long the helper tasks get to finish before they are aborted.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// `retry_after` (ms) sent with `TOO_MANY_REQUESTS` when the inbound queue is full.
const INBOUND_FULL_RETRY_MS: u64 = 1_000;

/// Close reason sent on shutdown (PROTOCOL §3).
pub const SHUTDOWN_REASON: &str = "Server shutting down";

/// What a connection needs besides its socket.
pub(crate) struct ConnectionContext {
    pub(crate) router: Arc<MessageRouter>,
    pub(crate) identity: Identity,
    pub(crate) settings: WebSocketSettings,
    /// When the token the connection was opened with expires (`exp`): the connection
    /// is told `UNAUTHORIZED` and closed then, so a revoked-by-expiry token cannot keep
    /// a socket open forever.
    pub(crate) token_expires_at: Option<std::time::SystemTime>,
}

/// Why the read pump stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The peer closed, or the transport failed: nothing left to say.
    PeerGone,
    /// We close with this code and reason.
    Close(u16, &'static str),
}

/// Unregisters the connection from the router when dropped, so that every exit path
/// (including a panic or an abort dropping the connection future) runs it.
struct Registration {
    router: Arc<MessageRouter>,
    id: ConnectionId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.router.disconnect(self.id);
    }
}

/// Runs one upgraded connection to its end. The drain's abort signal drops it at
/// once; everything it owns is released by `Drop`.
pub(crate) async fn serve(
    socket: WebSocket,
    context: ConnectionContext,
    slot: ConnectionSlot,
    guard: DrainGuard,
) {
    let abort = guard.abort_signal().clone();
    let span = tracing::debug_span!(
        "ws",
        user_id = %context.identity.user_id,
        connection = tracing::field::Empty
    );
    tokio::select! {
        biased;
        _ = abort.cancelled() => {
            tracing::debug!(parent: &span, "connection aborted by the drain deadline");
        }
        _ = run(socket, context, &guard).instrument(span.clone()) => {}
    }
    // Explicit for the reader: both are released only now, after the socket is gone.
    drop(slot);
    drop(guard);
}

async fn run(socket: WebSocket, context: ConnectionContext, guard: &DrainGuard) {
    let ConnectionContext {
        router,
        identity,
        settings,
        token_expires_at: context_expiry,
    } = context;
    let (handle, outbound) = router.connect(identity);
    let id = handle.id();
    let _registration = Registration {
        router: router.clone(),
        id,
    };
    tracing::Span::current().record("connection", id);

    let (sink, mut stream) = socket.split();
    let mut tasks = JoinSet::new();

    let (inbound_tx, inbound_rx) = mpsc::channel::<Utf8Bytes>(INBOUND_QUEUE_CAPACITY);
    let worker_done = CancellationToken::new();
    tasks.spawn(route_worker(
        router.clone(),
        id,
        inbound_rx,
        worker_done.clone(),
    ));

    let (close_tx, close_rx) = oneshot::channel::<CloseFrame>();
    let writer_done = CancellationToken::new();
    tasks.spawn(write_pump(
        sink,
        outbound,
        close_rx,
        settings.ping_interval,
        writer_done.clone(),
    ));

    let ending = read_pump(
        &mut stream,
        &handle,
        &inbound_tx,
        &settings,
        guard.close_signal(),
        &writer_done,
        &worker_done,
        context_expiry,
    )
    .await;
    tracing::debug!(?ending, "connection ending");

    // No more frames to route; the worker finishes the one in hand (bounded below).
    drop(inbound_tx);
    let closing = match ending {
        Ending::Close(code, reason) => close_tx
            .send(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })
            .is_ok(),
        Ending::PeerGone => {
            drop(close_tx);
            false
        }
    };
    if closing {
        // Read (and discard) until the peer answers our close frame, so it is not
        // lost to a reset when the socket is dropped with unread data.
        linger(&mut stream, CLOSE_GRACE).await;
    }
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(CLOSE_GRACE, all_done).await.is_err() {
        tracing::debug!("helper tasks did not finish; aborting them");
        tasks.abort_all();
    }
    // `_registration` unregisters from the router here.
}

/// Reads until the connection must end and says why.
#[allow(clippy::too_many_arguments)]
async fn read_pump(
    stream: &mut SplitStream<WebSocket>,
    handle: &ConnectionHandle,
    inbound: &mpsc::Sender<Utf8Bytes>,
    settings: &WebSocketSettings,
    shutdown: &CancellationToken,
    writer_done: &CancellationToken,
    worker_done: &CancellationToken,
    token_expires_at: Option<std::time::SystemTime>,
) -> Ending {
    let kill = handle.kill_switch();
    let idle = tokio::time::sleep(settings.pong_timeout);
    tokio::pin!(idle);
    // A far-away instant stands for "never" so the select below stays uniform.
    let until_expiry = token_expires_at
        .map(|at| {
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
        })
        .unwrap_or(std::time::Duration::from_secs(100 * 365 * 24 * 3600));
    let expiry = tokio::time::sleep(until_expiry);
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ending::Close(close_code::AWAY, SHUTDOWN_REASON),
            _ = &mut expiry => {
                let notice = Message::error(
                    ErrorCode::Unauthorized,
                    "your token expired; reconnect with a new one",
                    false,
                    None,
                );
                handle.try_send(Arc::from(notice.to_json()));
                return Ending::Close(close_code::POLICY, "token expired");
            }
            _ = kill.cancelled() => {
                // The only reason the router kills a connection today.
                debug_assert!(matches!(handle.close_reason(), Some(CloseReason::SlowConsumer) | None));
                return Ending::Close(close_code::POLICY, "too slow");
            }
            _ = writer_done.cancelled() => return Ending::PeerGone,
            // The worker only stops on its own if routing panicked: frames would go
            // nowhere from now on, so the client is told to reconnect.
            _ = worker_done.cancelled() => {
                tracing::error!("routing worker ended unexpectedly; closing the connection");
                return Ending::Close(close_code::ERROR, "internal error");
            }
            _ = &mut idle => {
                tracing::debug!("no frame or pong within the timeout");
                return Ending::Close(close_code::NORMAL, "heartbeat timeout");
            }
            frame = stream.next() => {
                let frame = match frame {
                    None => return Ending::PeerGone,
                    Some(Err(error)) => {
                        if is_too_big(&error) {
                            return Ending::Close(close_code::SIZE, "message too big");
                        }
                        tracing::debug!(%error, "read failed");
                        return Ending::PeerGone;
                    }
                    Some(Ok(frame)) => frame,
                };
                idle.as_mut().reset(Instant::now() + settings.pong_timeout);
                match frame {
                    WsMessage::Text(text) => dispatch(handle, inbound, text),
                    WsMessage::Binary(_) => {
                        let reply = Message::error(
                            ErrorCode::InvalidFormat,
                            "frame: binary frames are not supported; send one JSON object per text frame",
                            true,
                            None,
                        );
                        handle.try_send(Arc::from(reply.to_json()));
                    }
                    // tungstenite answers pings itself; both prove the peer alive.
                    WsMessage::Ping(_) | WsMessage::Pong(_) => {}
                    // tungstenite queued the reply; the next read flushes it and ends
                    // the stream.
                    WsMessage::Close(_) => {}
                }
            }
        }
    }
}

/// Hands a text frame to the worker without waiting.
fn dispatch(handle: &ConnectionHandle, inbound: &mpsc::Sender<Utf8Bytes>, text: Utf8Bytes) {
    match inbound.try_send(text) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            metrics::counter!("chatbox_websocket_inbound_full_total").increment(1);
            let reply = Message::error(
                ErrorCode::TooManyRequests,
                "too many frames in flight; slow down",
                true,
                Some(INBOUND_FULL_RETRY_MS),
            );
            handle.try_send(Arc::from(reply.to_json()));
        }
        // The worker is gone only while the connection is ending.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

/// Routes queued frames one at a time, in order. `done` is cancelled when it ends,
/// including by a panic.
async fn route_worker(
    router: Arc<MessageRouter>,
    id: ConnectionId,
    mut inbound: mpsc::Receiver<Utf8Bytes>,
    done: CancellationToken,
) {
    let _done = done.drop_guard();
    while let Some(text) = inbound.recv().await {
        router.handle_text(id, text.as_str()).await;
    }
}

/// Writes the router's frames and the pings, then the close frame when asked.
async fn write_pump(
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut outbound: mpsc::Receiver<Outgoing>,
    mut close: oneshot::Receiver<CloseFrame>,
    ping_interval: Duration,
    done: CancellationToken,
) {
    let _done = done.drop_guard();
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            frame = &mut close => {
                if let Ok(frame) = frame {
                    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(WsMessage::Close(Some(frame)))).await;
                }
                return;
            }
            frame = outbound.recv() => {
                let Some(Outgoing::Frame(text)) = frame else { return };
                if sink.send(WsMessage::Text(Utf8Bytes::from(&*text))).await.is_err() {
                    return;
                }
            }
            _ = ping.tick() => {
                if sink.send(WsMessage::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Discards inbound frames until the peer's close reply (or the end of the stream,
/// an error, or `grace`).
async fn linger(stream: &mut SplitStream<WebSocket>, grace: Duration) {
    let _ = tokio::time::timeout(grace, async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, WsMessage::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Whether a read error is tungstenite's "message/frame too long" (→ close 1009).
fn is_too_big(error: &axum::Error) -> bool {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(ws) = e.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            return matches!(ws, tokio_tungstenite::tungstenite::Error::Capacity(_));
        }
        source = e.source();
    }
    false
}
