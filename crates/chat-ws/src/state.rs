//! [`WsState`]: everything the endpoint needs, shared by every handshake.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

use chat_auth::JwtValidator;
use chat_config::{Config, WebSocketSettings};
use chat_ratelimit::{ConnectionLimiter, KeyedLimiter};
use chat_router::MessageRouter;

use crate::drain::Drain;
use crate::origin::OriginPolicy;

/// "Too many connections" notices per user per minute. A client stuck in a reconnect
/// loop would otherwise flood the user's open sockets with notices until their queues
/// filled and they were dropped as slow consumers.
const NOTICES_PER_MINUTE: u32 = 6;

/// Users whose notice rate is tracked at once (bounded memory; beyond it a notice is
/// skipped, never the handshake decision).
const NOTICE_KEYS: usize = 10_000;

/// The endpoint's shared state. Cheap to clone.
#[derive(Clone)]
pub struct WsState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) router: Arc<MessageRouter>,
    pub(crate) validator: Arc<JwtValidator>,
    pub(crate) limiter: ConnectionLimiter,
    pub(crate) origins: OriginPolicy,
    pub(crate) settings: WebSocketSettings,
    pub(crate) drain: Drain,
    pub(crate) notices: KeyedLimiter<String>,
}

impl std::fmt::Debug for WsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsState")
            .field("settings", &self.inner.settings)
            .field("origins", &self.inner.origins)
            .field("connections", &self.inner.drain.connection_count())
            .finish_non_exhaustive()
    }
}

impl WsState {
    /// State from its parts. The server keeps clones of `limiter`, `origins` and
    /// `drain` to update origins on reload and to drain on shutdown.
    pub fn new(
        router: Arc<MessageRouter>,
        validator: Arc<JwtValidator>,
        limiter: ConnectionLimiter,
        origins: OriginPolicy,
        settings: WebSocketSettings,
        drain: Drain,
    ) -> Self {
        let notices = KeyedLimiter::new(
            NonZeroU32::new(NOTICES_PER_MINUTE).unwrap_or(NonZeroU32::MIN),
            NonZeroUsize::new(NOTICE_KEYS).unwrap_or(NonZeroUsize::MIN),
        );
        Self {
            inner: Arc::new(Inner {
                router,
                validator,
                limiter,
                origins,
                settings,
                drain,
                notices,
            }),
        }
    }

    /// State from the validated configuration: the connection limit of
    /// `websocket.max_connections_per_user`, the origin policy of
    /// `server.allowed_origins` and a fresh [`Drain`].
    pub fn from_config(
        config: &Config,
        router: Arc<MessageRouter>,
        validator: Arc<JwtValidator>,
    ) -> Self {
        let limit = NonZeroUsize::new(config.websocket.max_connections_per_user)
            .unwrap_or(NonZeroUsize::MIN);
        Self::new(
            router,
            validator,
            ConnectionLimiter::new(limit),
            OriginPolicy::from_config(config),
            config.websocket.clone(),
            Drain::new(),
        )
    }

    /// The drain (shutdown: `start_drain`, `drain(deadline)`; `connection_count`).
    pub fn drain(&self) -> &Drain {
        &self.inner.drain
    }

    /// The live origin policy (reloads call `update`).
    pub fn origins(&self) -> &OriginPolicy {
        &self.inner.origins
    }

    /// The per-user connection limiter.
    pub fn limiter(&self) -> &ConnectionLimiter {
        &self.inner.limiter
    }

    /// The router connections are handed to.
    pub fn router(&self) -> &Arc<MessageRouter> {
        &self.inner.router
    }

    /// The WebSocket settings in force.
    pub fn settings(&self) -> &WebSocketSettings {
        &self.inner.settings
    }

    /// Sends the "too many connections" notice to the user's other sockets, at most
    /// [`NOTICES_PER_MINUTE`] times a minute per user.
    pub(crate) fn notify_connection_limit(&self, user_id: &str, limit: usize) {
        let notices = &self.inner.notices;
        if notices.len() >= notices.max_keys() {
            notices.cleanup();
        }
        if notices.check(&user_id.to_owned()).is_err() {
            return;
        }
        self.inner.router.notify_user(
            user_id,
            &format!(
                "A new connection was refused: you already have {limit} open connections. \
                 Close a tab or device to connect another."
            ),
        );
    }
}
