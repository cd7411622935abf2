//! The sending side of one connection as the router sees it: a bounded queue drained
//! by the transport's write pump, and a kill switch for consumers that fall behind.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Process-unique id of one connection (one socket).
pub type ConnectionId = u64;

/// What the write pump receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// One JSON text frame, serialized once and shared by every recipient.
    Frame(Arc<str>),
}

/// Why a connection was told to go away by the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its outbound queue was full: a consumer that cannot keep up is dropped instead
    /// of slowing everyone else (close code 1008, policy).
    SlowConsumer,
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Authenticated user id.
    pub user_id: String,
    /// Display name (admins are announced by it).
    pub name: String,
    /// Holds the `admin` or `chat_admin` role.
    pub is_admin: bool,
}

/// The router's handle on one connection. Cloning shares the same queue.
#[derive(Debug, Clone)]
pub struct ConnectionHandle {
    id: ConnectionId,
    identity: Arc<Identity>,
    tx: mpsc::Sender<Outgoing>,
    kill: CancellationToken,
    close_reason: Arc<parking_lot::Mutex<Option<CloseReason>>>,
}

impl ConnectionHandle {
    /// A handle plus the receiving end for the write pump. `capacity` bounds the
    /// frames queued for this connection.
    pub fn new(
        id: ConnectionId,
        identity: Identity,
        capacity: usize,
    ) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                id,
                identity: Arc::new(identity),
                tx,
                kill: CancellationToken::new(),
                close_reason: Arc::new(parking_lot::Mutex::new(None)),
            },
            rx,
        )
    }

    /// The connection id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Who is connected.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Cancelled when the router wants the transport to close this connection.
    pub fn kill_switch(&self) -> CancellationToken {
        self.kill.clone()
    }

    /// Why the router closed the connection, if it did.
    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.close_reason.lock()
    }

    /// Queues a frame without waiting. A full queue means the consumer cannot keep up:
    /// the connection is killed (never blocks the caller, never slows other
    /// connections). Returns false when the frame was not queued.
    pub fn try_send(&self, frame: Arc<str>) -> bool {
        match self.tx.try_send(Outgoing::Frame(frame)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(connection = self.id, user_id = %self.identity.user_id, "outbound queue full; disconnecting slow consumer");
                metrics::counter!("chatbox_slow_consumer_disconnects_total").increment(1);
                *self.close_reason.lock() = Some(CloseReason::SlowConsumer);
                self.kill.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// True once the connection is gone or was killed.
    pub fn is_closed(&self) -> bool {
        self.kill.is_cancelled() || self.tx.is_closed()
    }
}
