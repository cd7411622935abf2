//! One upgraded connection: one task that reads and writes; routing runs beside it.
//!
//! ```text
//!  socket ──read──► inbound queue (bounded) ──one frame at a time──► router.handle_text
//!  socket ◄─write── outbound queue (bounded, from the router) + pings + close
//! ```
//!
//! Reading and writing run in the connection's own future (one `select!` loop): per
//! idle socket that is one task, one timer and no helper channel, which is what keeps
//! an idle connection cheap (see the crate docs).
//!
//! - Reading never waits on routing: a text frame is routed in a task spawned for it
//!   (only while a frame is being routed; the loop awaits its handle next to the
//!   socket), so a long routing call — a slow database — does not stop the loop.
//!   (Store calls must not block their thread: a call that does holds a runtime
//!   worker, and when the other workers are parked without the I/O driver, tokio
//!   drives no socket at all until it returns, whatever the connection's design. The
//!   stores keep blocking work off the workers: redb runs on the embedded store's
//!   own writer thread.) Frames arriving meanwhile wait in a small
//!   bounded queue ([`INBOUND_QUEUE_CAPACITY`]) and are routed one at a time, in order;
//!   when it is full the client gets `TOO_MANY_REQUESTS` instead of being buffered,
//!   and pings, pongs and close frames keep flowing.
//! - Writing: frames from the router's queue, a ping every `ping_interval`, and the
//!   final close frame. Every frame already queued is taken at once (up to
//!   [`WRITE_BATCH`]) and the batch is flushed with one write, so a fast stream costs
//!   one syscall per batch rather than per frame; a socket streaming faster than
//!   a chat reply holds frames for at most [`crate::coalesce::MAX_HOLD`] so that
//!   more share a write ([`crate::coalesce`]). A socket that does not take more
//!   (the peer does not read) stops only the writing: the loop keeps reading, and the
//!   router's bounded queue fills up until its slow-consumer rule fires.
//! - Any inbound frame (data, ping, pong) proves the peer alive; after `pong_timeout`
//!   without one the connection is closed. The silence deadline, the next ping and the
//!   token's expiry share one timer.
//! - Close codes: the drain sends 1001 "Server shutting down"; the router's kill
//!   switch (slow consumer) 1008 "too slow"; an expired token 1008 "token expired"
//!   (after an `UNAUTHORIZED` error frame); an oversized frame 1009 "message too big";
//!   a heartbeat timeout 1000 "heartbeat timeout" (the peer is most likely gone; a
//!   client that does see it simply reconnects); a panic in routing (the routing
//!   task's handle reports it) 1011, since frames would otherwise go nowhere.
//! - Oversized frames: tungstenite enforces `max_frame_size` on the frame header and
//!   `max_message_size` on the assembled message (both set to `max_message_size`), so
//!   an oversized payload is never buffered. It reports `Error::Capacity` and sends
//!   nothing itself; the loop maps that error to close 1009.
//! - After sending a close frame the connection keeps reading (and discarding) until
//!   the peer's close reply, so the close frame is not lost to a TCP reset caused by
//!   dropping a socket with unread data. Meanwhile the frame being routed and the ones
//!   already queued are still routed. Both together are bounded by [`CLOSE_GRACE`].
//! - Every exit path, including a panic or the drain's abort dropping this future,
//!   unregisters the connection from the router, releases the user's connection slot
//!   and the drain guard: they are owned values dropped with the future; the routing
//!   task in flight is aborted by its dropped handle.

use std::collections::VecDeque;
use std::error::Error as _;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::extract::ws::{close_code, CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use chat_config::WebSocketSettings;
use chat_protocol::{ErrorCode, Message};
use chat_ratelimit::ConnectionSlot;
use chat_router::{
    CloseReason, ConnectionHandle, ConnectionId, Gated, Identity, MessageRouter, Outgoing,
};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinError;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::coalesce::Coalescer;
use crate::drain::DrainGuard;

/// Text frames waiting while another one is routed. Small: a client that sends faster
/// than its frames are routed is told to slow down (`TOO_MANY_REQUESTS`), not buffered.
pub const INBOUND_QUEUE_CAPACITY: usize = 8;

/// How long the close handshake may take (our close frame out, the peer's reply in),
/// together with routing the frames accepted before the end.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The most frames taken from the router's queue before one flush. Bounds the time
/// spent writing before the loop looks at the socket's read side again.
pub const WRITE_BATCH: usize = 64;

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
    pub(crate) token_expires_at: Option<SystemTime>,
}

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The peer closed, or the transport failed: nothing left to say.
    PeerGone,
    /// We close with this code and reason.
    Close(u16, &'static str),
    /// The token expired: an `UNAUTHORIZED` error frame, then close 1008.
    TokenExpired,
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
    let span = tracing::debug_span!(
        "ws",
        user_id = %context.identity.user_id,
        connection = tracing::field::Empty
    );
    tokio::select! {
        biased;
        _ = Gated::new(guard.abort_signal().cancelled()) => {
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
        token_expires_at,
    } = context;
    let (handle, outbound) = router.connect(identity);
    let id = handle.id();
    let _registration = Registration {
        router: router.clone(),
        id,
    };
    tracing::Span::current().record("connection", id);

    let mut io = Io {
        socket,
        outbound,
        ping_due: false,
        unflushed: false,
        coalescer: Coalescer::default(),
    };
    let mut routing = Routing {
        router,
        id,
        queue: VecDeque::new(),
        current: None,
    };
    let ending = serve_frames(
        &mut io,
        &mut routing,
        &handle,
        &settings,
        guard,
        token_expires_at,
    )
    .await;
    tracing::debug!(?ending, "connection ending");

    let close = match ending {
        Ending::PeerGone => None,
        Ending::Close(code, reason) => Some((None, code, reason)),
        Ending::TokenExpired => {
            let notice = Message::error(
                ErrorCode::Unauthorized,
                "your token expired; reconnect with a new one",
                false,
                None,
            );
            Some((Some(notice.to_json()), close_code::POLICY, "token expired"))
        }
    };
    let handshake = async {
        if let Some((notice, code, reason)) = close {
            io.close(notice, code, reason).await;
        }
    };
    // The frame in hand and the ones accepted before are routed while the close
    // handshake runs; both are bounded together.
    let finish = async { futures::join!(handshake, routing.finish()) };
    if tokio::time::timeout(CLOSE_GRACE, finish).await.is_err() {
        tracing::debug!("close handshake or routing did not finish in time; dropping them");
    }
    // `_registration` unregisters from the router here.
}

/// The loop: reads, writes and routes until the connection must end, and says why.
async fn serve_frames(
    io: &mut Io,
    routing: &mut Routing,
    handle: &ConnectionHandle,
    settings: &WebSocketSettings,
    guard: &DrainGuard,
    token_expires_at: Option<SystemTime>,
) -> Ending {
    // The loop wakes for every frame in or out; these two are polled again only when
    // they fire (`Gated`): both are tokens, and the drain's is shared by every
    // connection.
    let kill_switch = handle.kill_switch();
    let killed = Gated::new(kill_switch.cancelled());
    tokio::pin!(killed);
    let shutdown = Gated::new(guard.close_signal().cancelled());
    tokio::pin!(shutdown);
    let mut clock = Clock::new(settings, token_expires_at);
    let timer = tokio::time::sleep_until(clock.next_deadline());
    tokio::pin!(timer);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => return Ending::Close(close_code::AWAY, SHUTDOWN_REASON),
            _ = &mut killed => {
                // The only reason the router kills a connection today.
                debug_assert!(matches!(handle.close_reason(), Some(CloseReason::SlowConsumer) | None));
                return Ending::Close(close_code::POLICY, "too slow");
            }
            _ = &mut timer => {
                match clock.on_timer(Instant::now()) {
                    Some(Alarm::TokenExpired) => return Ending::TokenExpired,
                    Some(Alarm::Silent) => {
                        tracing::debug!("no frame or pong within the timeout");
                        return Ending::Close(close_code::NORMAL, "heartbeat timeout");
                    }
                    Some(Alarm::Ping) => io.ping_due = true,
                    None => {}
                }
                timer.as_mut().reset(clock.next_deadline());
            }
            routed = poll_fn(|cx| routing.poll_current(cx)) => {
                if routed.is_err() {
                    // Frames would go nowhere from now on: the client is told to
                    // reconnect.
                    tracing::error!("routing panicked; closing the connection");
                    return Ending::Close(close_code::ERROR, "internal error");
                }
                routing.start_next();
            }
            event = poll_fn(|cx| io.poll_event(cx)) => {
                let frame = match event {
                    Event::Frame(frame) => frame,
                    Event::PeerGone => return Ending::PeerGone,
                    Event::TooBig => return Ending::Close(close_code::SIZE, "message too big"),
                };
                clock.seen(Instant::now());
                match frame {
                    WsMessage::Text(text) => routing.dispatch(handle, text),
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

/// What the timer found due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alarm {
    TokenExpired,
    Silent,
    Ping,
}

/// The connection's deadlines, served by one timer: the token's expiry, the silence
/// deadline (`pong_timeout` after the last inbound frame) and the next ping. An
/// inbound frame only records the time; the timer is moved when it fires.
#[derive(Debug)]
struct Clock {
    expires_at: Option<Instant>,
    last_seen: Instant,
    pong_timeout: Duration,
    next_ping: Instant,
    ping_interval: Duration,
}

impl Clock {
    fn new(settings: &WebSocketSettings, token_expires_at: Option<SystemTime>) -> Self {
        let now = Instant::now();
        let expires_at = token_expires_at.and_then(|at| {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            // Beyond what `Instant` can represent means never.
            now.checked_add(left)
        });
        Self {
            expires_at,
            last_seen: now,
            pong_timeout: settings.pong_timeout,
            next_ping: now + settings.ping_interval,
            ping_interval: settings.ping_interval,
        }
    }

    fn seen(&mut self, now: Instant) {
        self.last_seen = now;
    }

    fn silent_until(&self) -> Instant {
        self.last_seen + self.pong_timeout
    }

    fn next_deadline(&self) -> Instant {
        let next = self.silent_until().min(self.next_ping);
        self.expires_at.map_or(next, |at| at.min(next))
    }

    /// What is due at `now`, most important first; schedules the next ping when one is.
    fn on_timer(&mut self, now: Instant) -> Option<Alarm> {
        if self.expires_at.is_some_and(|at| at <= now) {
            return Some(Alarm::TokenExpired);
        }
        if self.silent_until() <= now {
            return Some(Alarm::Silent);
        }
        if self.next_ping <= now {
            // A late tick delays the following ones (no burst of pings).
            self.next_ping = now + self.ping_interval;
            return Some(Alarm::Ping);
        }
        None
    }
}

/// What the socket produced.
enum Event {
    Frame(WsMessage),
    /// End of stream, or a read or write error.
    PeerGone,
    /// tungstenite refused a frame or message above `max_message_size`.
    TooBig,
}

/// The socket and the router's queue for it.
struct Io {
    socket: WebSocket,
    outbound: mpsc::Receiver<Outgoing>,
    /// A ping is to be sent at the next chance.
    ping_due: bool,
    /// Frames were handed to tungstenite since the last completed flush.
    unflushed: bool,
    /// Whether those may wait for more (a fast stream; see [`crate::coalesce`]).
    coalescer: Coalescer,
}

impl Io {
    /// Writes what is queued, then reads: ready with the next inbound frame, or when
    /// the connection ended. Writing never blocks reading.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if self.poll_write(cx).is_err() {
            return Poll::Ready(Event::PeerGone);
        }
        match self.socket.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Event::Frame(frame)),
            Poll::Ready(Some(Err(error))) => {
                if is_too_big(&error) {
                    return Poll::Ready(Event::TooBig);
                }
                tracing::debug!(%error, "read failed");
                Poll::Ready(Event::PeerGone)
            }
            Poll::Ready(None) => Poll::Ready(Event::PeerGone),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Hands the due ping and up to [`WRITE_BATCH`] queued frames to tungstenite, as
    /// long as it takes them, then flushes once. Returns without waiting; the task is
    /// woken when the socket takes more or a frame is queued. `Err` when the socket
    /// failed.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), axum::Error> {
        let mut batch = 0;
        while batch < WRITE_BATCH {
            match self.socket.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Err(error),
                // The socket does not take more now; what tungstenite holds is written
                // when it does (it wakes this task).
                Poll::Pending => return Ok(()),
            }
            let frame = if self.ping_due {
                self.ping_due = false;
                WsMessage::Ping(Default::default())
            } else {
                match self.outbound.poll_recv(cx) {
                    Poll::Ready(Some(Outgoing::Frame(text))) => {
                        WsMessage::Text(Utf8Bytes::from(&*text))
                    }
                    // The router holds a sender for as long as the connection is
                    // registered; nothing more to write either way.
                    Poll::Ready(None) | Poll::Pending => break,
                }
            };
            self.socket.start_send_unpin(frame)?;
            self.unflushed = true;
            batch += 1;
        }
        // Flushed at once, not after a turn of the producers: waiting to fill a
        // batch would add a scheduler round to every chunk's latency. Under load the
        // queue fills by itself while the task waits to run, and all of it goes out
        // in this one write. Only a socket streaming faster than a chat reply does
        // holds its frames a moment for the next ones (`coalesce`).
        if self.unflushed && batch < WRITE_BATCH && self.coalescer.hold(std::time::Instant::now()) {
            // Polled again after the worker's next turn of the I/O driver, whether or
            // not more frames come (tokio's `yield_now` defers the wake-up).
            let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
            return Ok(());
        }
        if self.unflushed {
            match self.socket.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    self.unflushed = false;
                    self.coalescer.flushed(std::time::Instant::now());
                }
                Poll::Ready(Err(error)) => return Err(error),
                Poll::Pending => {}
            }
        }
        if batch == WRITE_BATCH {
            // More may be queued: come back after the others had their turn.
            cx.waker().wake_by_ref();
        }
        Ok(())
    }

    /// Sends `notice` (if any) and the close frame, then reads (and discards) until
    /// the peer's close reply, the end of the stream or an error. Frames still in the
    /// router's queue are dropped: the connection is going away.
    async fn close(&mut self, notice: Option<String>, code: u16, reason: &'static str) {
        if let Some(notice) = notice {
            if self
                .socket
                .feed(WsMessage::Text(notice.into()))
                .await
                .is_err()
            {
                return;
            }
        }
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        if self
            .socket
            .send(WsMessage::Close(Some(frame)))
            .await
            .is_err()
        {
            return;
        }
        while let Some(Ok(frame)) = self.socket.next().await {
            if matches!(frame, WsMessage::Close(_)) {
                break;
            }
        }
    }
}

/// Inbound text frames: the one being routed and the ones waiting for it, in order.
struct Routing {
    router: Arc<MessageRouter>,
    id: ConnectionId,
    queue: VecDeque<Utf8Bytes>,
    /// The task routing one frame; aborted if the connection is dropped first.
    current: Option<AbortOnDropHandle<()>>,
}

impl Routing {
    /// Starts routing `text` now, or queues it behind the frame being routed, or
    /// (queue full) tells the client to slow down. Never waits.
    fn dispatch(&mut self, handle: &ConnectionHandle, text: Utf8Bytes) {
        if self.current.is_none() {
            self.current = Some(self.route(text));
        } else if self.queue.len() < INBOUND_QUEUE_CAPACITY {
            self.queue.push_back(text);
        } else {
            metrics::counter!("chatbox_websocket_inbound_full_total").increment(1);
            let reply = Message::error(
                ErrorCode::TooManyRequests,
                "too many frames in flight; slow down",
                true,
                Some(INBOUND_FULL_RETRY_MS),
            );
            handle.try_send(Arc::from(reply.to_json()));
        }
    }

    /// Routes `text` in a task of its own: a routing call that waits long (a slow
    /// store) or panics must not stop the connection's loop.
    fn route(&self, text: Utf8Bytes) -> AbortOnDropHandle<()> {
        let router = self.router.clone();
        let id = self.id;
        AbortOnDropHandle::new(tokio::spawn(
            async move { router.handle_text(id, text.as_str()).await }
                .instrument(tracing::Span::current()),
        ))
    }

    /// Ready when the frame being routed is done (`Err`: it panicked); pending while
    /// none is.
    fn poll_current(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), JoinError>> {
        let Some(current) = self.current.as_mut() else {
            return Poll::Pending;
        };
        let done = std::task::ready!(Pin::new(current).poll(cx));
        self.current = None;
        Poll::Ready(done)
    }

    /// Starts the next queued frame, if any (after the previous one finished).
    fn start_next(&mut self) {
        if let Some(text) = self.queue.pop_front() {
            self.current = Some(self.route(text));
        }
    }

    /// Routes the frame in hand and every queued one (the connection is ending; a
    /// panic stops it).
    async fn finish(&mut self) {
        loop {
            if self.current.is_none() {
                self.start_next();
            }
            if self.current.is_none() {
                return;
            }
            if poll_fn(|cx| self.poll_current(cx)).await.is_err() {
                tracing::error!("routing panicked while the connection was ending");
                return;
            }
        }
    }
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
