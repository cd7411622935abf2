//! The seam for cross-replica delivery.
//!
//! Streaming fan-out is local to the replica that runs a session's generation (its
//! [`crate::channel::SessionChannel`]); what must reach *every* replica are the control
//! events: an admin took a session over or released it, a session ended, a user must
//! be notified. The router publishes those on a [`Bus`] and applies the ones it
//! receives. The in-process bus delivers to the local router directly; a
//! broker-backed bus (Redis pub/sub) can implement the same trait for multi-replica
//! deployments without touching the router.

use std::sync::{Arc, Weak};

use parking_lot::RwLock;

/// A control event every replica must apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// An admin took `session_id` over: cancel its generation, announce `admin_join`.
    Takeover {
        /// The session.
        session_id: String,
        /// The admin's user id.
        admin_id: String,
        /// The admin's display name.
        admin_name: String,
    },
    /// The admin released `session_id`: announce `admin_leave`.
    Release {
        /// The session.
        session_id: String,
        /// The admin's user id (their sockets stop following the session).
        admin_id: String,
        /// The admin's display name.
        admin_name: String,
    },
    /// `session_id` ended: cancel its generation, tell its subscribers.
    SessionEnded {
        /// The session.
        session_id: String,
    },
    /// Send a `notification` to every connection of `user_id`.
    UserNotice {
        /// The user.
        user_id: String,
        /// The text.
        text: String,
    },
}

/// Receives bus events (implemented by the router).
pub trait BusHandler: Send + Sync {
    /// Applies one event locally. Must not block.
    fn handle(&self, event: &BusEvent);
}

/// Publishes control events to every replica, this one included.
pub trait Bus: Send + Sync {
    /// Publishes `event`; delivery to this replica's handler happens before (in-process)
    /// or shortly after (brokers) the call returns.
    fn publish(&self, event: BusEvent);
    /// Sets the local handler (the router, once constructed).
    fn attach(&self, handler: Weak<dyn BusHandler>);
}

/// Single-replica bus: publishing delivers to the local handler synchronously.
#[derive(Default)]
pub struct InProcessBus {
    handler: RwLock<Option<Weak<dyn BusHandler>>>,
}

impl InProcessBus {
    /// A bus with no handler attached yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}

impl Bus for InProcessBus {
    fn publish(&self, event: BusEvent) {
        let handler = self.handler.read().as_ref().and_then(Weak::upgrade);
        match handler {
            Some(h) => h.handle(&event),
            None => tracing::debug!(?event, "bus event with no handler attached"),
        }
    }

    fn attach(&self, handler: Weak<dyn BusHandler>) {
        *self.handler.write() = Some(handler);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<BusEvent>>);

    impl BusHandler for Recorder {
        fn handle(&self, event: &BusEvent) {
            self.0.lock().push(event.clone());
        }
    }

    #[test]
    fn in_process_bus_delivers_to_the_attached_handler() {
        let bus = InProcessBus::new();
        let recorder = Arc::new(Recorder::default());
        let event = BusEvent::SessionEnded {
            session_id: "s".into(),
        };
        bus.publish(event.clone()); // no handler yet: dropped, no panic
        let weak: Weak<dyn BusHandler> = Arc::downgrade(&(recorder.clone() as Arc<dyn BusHandler>));
        bus.attach(weak);
        bus.publish(event.clone());
        assert_eq!(*recorder.0.lock(), vec![event]);
    }
}
