//! [`MessageRouter`]: the chat semantics of PROTOCOL §3.
//!
//! Transport-agnostic: a connection is a [`ConnectionHandle`] (a bounded outbound
//! queue). The router binds connections to sessions, persists through the
//! [`SessionStore`], runs one generation task per session (owned by the router's task
//! tracker, not by any socket), fans frames out to every subscriber, and applies admin
//! takeover/release.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chat_config::Config;
use chat_llm::ProviderRegistry;
use chat_protocol::{ErrorCode, Message, MessageType, ModelInfo, Sender};
use chat_ratelimit::RateLimiters;
use chat_session::{Session, SessionError, SessionManager, StoredMessage, SweepReport};
use chat_storage::{SessionStore, StoreError};
use chrono::Utc;
use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::{Bus, BusEvent, BusHandler};
use crate::channel::SessionChannel;
use crate::error::RouterError;
use crate::generation::{self, GenerationJob};
use crate::notifier::{HelpNotifier, HelpRequest};
use crate::outbound::{ConnectionHandle, ConnectionId, Identity, Outgoing};

/// Everything the router needs, wired by the server (or a test).
pub struct RouterDeps {
    /// The validated configuration (LLM prompt budget, replay buffer size, …).
    pub config: Arc<Config>,
    /// In-memory sessions.
    pub sessions: Arc<SessionManager>,
    /// Durable storage (normally the write-behind wrapper around the real store).
    pub store: Arc<dyn SessionStore>,
    /// LLM providers with deadlines and failover.
    pub providers: Arc<ProviderRegistry>,
    /// The service's limiters; the router checks `user_messages` (the server's cleanup
    /// task keeps all of them bounded).
    pub limiters: Arc<RateLimiters>,
    /// Where help requests go.
    pub notifier: Arc<dyn HelpNotifier>,
    /// Cross-replica control events.
    pub bus: Arc<dyn Bus>,
}

/// How long creating a session in the store may take before the user gets an error.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection as the router tracks it.
struct ConnState {
    handle: ConnectionHandle,
    /// The session this connection is bound to. Behind a lock: the read pump, the
    /// router and HTTP-triggered events all touch it (READINESS #4).
    bound: Mutex<Option<String>>,
}

/// The live side of one session on this replica.
pub(crate) struct LiveSession {
    pub(crate) channel: SessionChannel,
    /// The in-flight generation, when there is one (at most one per session).
    pub(crate) generation: Mutex<Option<GenerationSlot>>,
}

/// The claim of the one generation a session may run.
pub(crate) struct GenerationSlot {
    /// Distinguishes successive generations, so a finishing task only frees its own slot.
    pub(crate) id: u64,
    /// Cancels it (stop, takeover, end, shutdown).
    pub(crate) token: CancellationToken,
}

/// Source of [`GenerationSlot::id`]s.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

impl LiveSession {
    fn cancel_generation(&self) -> bool {
        match self.generation.lock().take() {
            Some(slot) => {
                slot.token.cancel();
                true
            }
            None => false,
        }
    }
}

/// The router. Create with [`MessageRouter::new`]; share as `Arc`.
pub struct MessageRouter {
    pub(crate) deps: RouterDeps,
    connections: DashMap<ConnectionId, Arc<ConnState>>,
    /// The connection ids of each user (all devices), for binding and notices.
    by_user: DashMap<String, Vec<ConnectionId>>,
    live: DashMap<String, Arc<LiveSession>>,
    next_connection: AtomicU64,
    pub(crate) tasks: TaskTracker,
    pub(crate) cancel: CancellationToken,
    draining: AtomicBool,
    models: Vec<ModelInfo>,
}

impl MessageRouter {
    /// A router over `deps`, attached to its bus.
    pub fn new(deps: RouterDeps) -> Arc<Self> {
        let models = deps
            .providers
            .models()
            .into_iter()
            .map(|m| ModelInfo {
                id: m.id,
                name: m.name,
            })
            .collect();
        let router = Arc::new(Self {
            deps,
            connections: DashMap::new(),
            by_user: DashMap::new(),
            live: DashMap::new(),
            next_connection: AtomicU64::new(1),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            draining: AtomicBool::new(false),
            models,
        });
        let as_handler: Arc<dyn BusHandler> = router.clone();
        let weak: Weak<dyn BusHandler> = Arc::downgrade(&as_handler);
        router.deps.bus.attach(weak);
        router
    }

    /// The models offered to clients, default first.
    pub fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// The session manager (HTTP handlers read sessions through it).
    pub fn sessions(&self) -> &Arc<SessionManager> {
        &self.deps.sessions
    }

    /// The store the router writes through.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.deps.store
    }

    /// Number of registered connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Number of tasks the router owns right now (generations, …).
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Registers a new connection for `identity` and sends its `connection_status`
    /// (with the user's active session, or `""`). Returns the handle and the receiver
    /// the transport's write pump drains.
    pub fn connect(&self, identity: Identity) -> (ConnectionHandle, mpsc::Receiver<Outgoing>) {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let capacity = self.deps.config.websocket.send_queue_capacity;
        let (handle, rx) = ConnectionHandle::new(id, identity, capacity);
        self.register(handle.clone());
        (handle, rx)
    }

    /// Registers an existing handle. Idempotent: registering the same connection again
    /// changes nothing (READINESS #3).
    pub fn register(&self, handle: ConnectionHandle) {
        let id = handle.id();
        if self.connections.contains_key(&id) {
            return;
        }
        let user_id = handle.identity().user_id.clone();
        let state = Arc::new(ConnState {
            handle: handle.clone(),
            bound: Mutex::new(None),
        });
        self.connections.insert(id, state.clone());
        {
            let mut ids = self.by_user.entry(user_id.clone()).or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        metrics::gauge!("chatbox_websocket_connections").increment(1.0);
        let active = self.deps.sessions.active_for_user(&user_id);
        let session_id = active
            .as_ref()
            .map(|s| s.id().to_owned())
            .unwrap_or_default();
        // `connection_status` is always the first frame: queue it before subscribing,
        // so no session frame can overtake it.
        send(
            &handle,
            &Message::connection_status(user_id, session_id, self.models.clone()),
        );
        if let Some(session) = &active {
            self.bind(&state, session.id());
        }
    }

    /// Removes exactly this connection: from the registry, its user's list and its
    /// session's subscribers. A generation in flight keeps running.
    pub fn disconnect(&self, id: ConnectionId) {
        let Some((_, state)) = self.connections.remove(&id) else {
            return;
        };
        metrics::gauge!("chatbox_websocket_connections").decrement(1.0);
        let user_id = state.handle.identity().user_id.clone();
        self.by_user.remove_if_mut(&user_id, |_, ids| {
            ids.retain(|c| *c != id);
            ids.is_empty()
        });
        let bound = state.bound.lock().take();
        if let Some(session_id) = bound {
            if let Some(live) = self.live.get(&session_id) {
                live.channel.unsubscribe(id);
            }
        }
    }

    /// The session a connection is bound to (`None` before its first message).
    pub fn bound_session(&self, id: ConnectionId) -> Option<String> {
        self.connections
            .get(&id)
            .and_then(|state| state.bound.lock().clone())
    }

    /// The live channel of a session (created on first use).
    pub(crate) fn live(&self, session_id: &str) -> Arc<LiveSession> {
        if let Some(live) = self.live.get(session_id) {
            return live.clone();
        }
        self.live
            .entry(session_id.to_owned())
            .or_insert_with(|| {
                Arc::new(LiveSession {
                    channel: SessionChannel::new(
                        session_id,
                        self.deps.config.sessions.replay_buffer_frames,
                    ),
                    generation: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Binds one connection to a session and subscribes it. Returns true when the
    /// binding changed (the client is then told with `connection_status`).
    fn bind(&self, state: &ConnState, session_id: &str) -> bool {
        let previous = {
            let mut bound = state.bound.lock();
            if bound.as_deref() == Some(session_id) {
                return false;
            }
            bound.replace(session_id.to_owned())
        };
        if let Some(old) = previous {
            if let Some(live) = self.live.get(&old) {
                live.channel.unsubscribe(state.handle.id());
            }
        }
        self.live(session_id).channel.subscribe(&state.handle);
        true
    }

    /// Binds every connection of `user_id` (all devices) to `session_id`, telling each
    /// one whose binding changed.
    fn bind_user_devices(&self, user_id: &str, session_id: &str) {
        let ids: Vec<ConnectionId> = self
            .by_user
            .get(user_id)
            .map(|ids| ids.clone())
            .unwrap_or_default();
        for id in ids {
            let Some(state) = self.connections.get(&id).map(|s| s.clone()) else {
                continue;
            };
            if state.handle.identity().user_id != user_id {
                continue;
            }
            if self.bind(&state, session_id) {
                send(
                    &state.handle,
                    &Message::connection_status(user_id, session_id, self.models.clone()),
                );
            }
        }
    }

    /// Decodes one text frame (parse → sanitize → defaults → validate, PROTOCOL §3) and
    /// routes it. An invalid frame is answered with `INVALID_FORMAT` naming the field
    /// and never reaches routing; the connection stays open (READINESS #7).
    pub async fn handle_text(self: &Arc<Self>, id: ConnectionId, text: &str) {
        match chat_protocol::decode_client_frame(text, Utc::now()) {
            Ok(message) => self.handle(id, message).await,
            Err(error) => {
                metrics::counter!("chatbox_invalid_frames_total").increment(1);
                if let Some(state) = self.connections.get(&id).map(|s| s.clone()) {
                    send(&state.handle, &error.to_frame());
                }
            }
        }
    }

    /// Routes one validated inbound frame from connection `id`. Never waits on an LLM:
    /// generation runs in its own task. Errors are answered on the connection.
    pub async fn handle(self: &Arc<Self>, id: ConnectionId, message: Message) {
        let Some(state) = self.connections.get(&id).map(|s| s.clone()) else {
            return;
        };
        if self.draining.load(Ordering::SeqCst) {
            send(
                &state.handle,
                &Message::error(
                    ErrorCode::InternalError,
                    "server is shutting down; reconnect shortly",
                    true,
                    None,
                ),
            );
            return;
        }
        let result = match message.kind {
            MessageType::Ping => {
                send(&state.handle, &Message::pong());
                Ok(())
            }
            MessageType::UserMessage if message.sender == Sender::Admin => {
                self.admin_message(&state, message).await
            }
            MessageType::UserMessage => self.user_message(&state, message).await,
            MessageType::ModelSelect => self.model_select(&state, message).await,
            MessageType::HelpRequest => self.help_request(&state, message).await,
            MessageType::FileUpload | MessageType::VoiceMessage => {
                self.file_message(&state, message).await
            }
            MessageType::TypingIndicator => {
                self.typing(&state, &message);
                Ok(())
            }
            MessageType::Resume => self.resume(&state, &message).await,
            MessageType::Stop => self.stop(&state, &message),
            other => Err(FrameError::new(
                ErrorCode::InvalidFormat,
                format!(
                    "type: {} is sent by the server, not by clients",
                    other.as_str()
                ),
            )),
        };
        if let Err(error) = result {
            let mut frame = Message::error(
                error.code,
                error.message,
                error.recoverable,
                error.retry_after_ms,
            );
            frame.session_id = error.session_id;
            send(&state.handle, &frame);
        }
    }

    /// The user's session for a message: the requested one when it is theirs and
    /// active, else their active one, else (when `create`) a new one — persisted before
    /// use, and rolled back completely if the store refuses it (READINESS #2).
    async fn session_for(
        &self,
        state: &ConnState,
        requested: Option<&str>,
        create: bool,
    ) -> Result<Arc<Session>, FrameError> {
        let user_id = state.handle.identity().user_id.clone();
        let mut chosen = requested
            .filter(|id| !id.is_empty())
            .and_then(|id| self.deps.sessions.get(id))
            .filter(|s| s.user_id() == user_id && s.is_active());
        if chosen.is_none() {
            chosen = self.deps.sessions.active_for_user(&user_id);
        }
        let session = match chosen {
            Some(session) => session,
            None if !create => {
                return Err(FrameError::new(
                    ErrorCode::NotFound,
                    "no active session: send a message to start one",
                ))
            }
            None => self.create_session(&user_id).await?,
        };
        self.bind_user_devices(&user_id, session.id());
        // A connection of an admin acting as a user is bound too (bind_user_devices
        // covers every connection of the user, including this one).
        Ok(session)
    }

    async fn create_session(&self, user_id: &str) -> Result<Arc<Session>, FrameError> {
        let (session, created) = self.deps.sessions.get_or_create_active(user_id, Utc::now());
        if !created {
            return Ok(session);
        }
        let snapshot = session.snapshot();
        let stored =
            tokio::time::timeout(CREATE_TIMEOUT, self.deps.store.create_session(&snapshot)).await;
        let error = match stored {
            Ok(Ok(())) => {
                tracing::info!(session_id = %session.id(), %user_id, "session created");
                metrics::counter!("chatbox_sessions_created_total").increment(1);
                return Ok(session);
            }
            Ok(Err(e)) => e,
            Err(_) => StoreError::Timeout(CREATE_TIMEOUT),
        };
        // Roll back: no trace of the session may remain, so the user can retry.
        self.deps.sessions.remove(session.id());
        self.live.remove(session.id());
        if let StoreError::ActiveSessionExists { existing_id } = &error {
            // Another replica created the user's session first: adopt it.
            if let Ok(Some(existing)) = self.deps.store.get_session(existing_id).await {
                if let Ok(adopted) = self.deps.sessions.insert_rehydrated(existing) {
                    return Ok(adopted);
                }
            }
        }
        tracing::warn!(%user_id, error = %error, "could not create a session");
        Err(FrameError::new(
            ErrorCode::DatabaseError,
            "could not start a conversation right now; please retry",
        ))
    }

    async fn user_message(
        self: &Arc<Self>,
        state: &ConnState,
        message: Message,
    ) -> Result<(), FrameError> {
        let user_id = state.handle.identity().user_id.clone();
        if let Err(limited) = self.deps.limiters.user_messages.check(&user_id) {
            return Err(FrameError::new(
                ErrorCode::TooManyRequests,
                "too many messages; slow down",
            )
            .retry_after(limited.retry_after_ms()));
        }
        let content = message.content.clone().unwrap_or_default();
        let session = self
            .session_for(state, message.session_id.as_deref(), true)
            .await?;
        let session_id = session.id().to_owned();
        let live = self.live(&session_id);
        let assisted = session.is_admin_assisted();

        // At most one reply per session at a time: claim the generation slot before the
        // message is stored, so a refused message leaves no trace.
        let token = if assisted {
            None
        } else {
            let mut slot = live.generation.lock();
            if slot.is_some() {
                return Err(FrameError::new(
                    ErrorCode::TooManyRequests,
                    "a reply is still being generated; wait for it or send stop",
                )
                .session(&session_id));
            }
            let token = self.cancel.child_token();
            let id = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
            *slot = Some(GenerationSlot {
                id,
                token: token.clone(),
            });
            Some((id, token))
        };
        let release_slot = || {
            if token.is_some() {
                live.generation.lock().take();
            }
        };

        let now = Utc::now();
        let stored = StoredMessage::text(Sender::User, content.clone(), now);
        // The session names itself from its first user message (PROTOCOL §4).
        let name_before = session.name();
        if let Err(e) = self
            .append_and_store(
                &session,
                &stored,
                "user message",
                "your message could not be saved; please retry",
            )
            .await
        {
            release_slot();
            return Err(e);
        }
        metrics::counter!("chatbox_messages_total", "sender" => "user").increment(1);
        let name_after = session.name();
        if name_after != name_before {
            self.persist(
                "update_name",
                self.deps.store.update_name(&session_id, &name_after).await,
            );
        }

        // Echo to the user's other devices and to an assisting admin.
        live.channel.broadcast_to_others(state.handle.id(), || {
            let mut echo = Message::new(MessageType::UserMessage, Sender::User, now);
            echo.session_id = Some(session_id.clone());
            echo.content = Some(content.clone());
            echo.user_id = Some(user_id.clone());
            echo.to_json()
        });

        let Some((slot_id, token)) = token else {
            // Assisted: the admin answers, not the LLM.
            return Ok(());
        };
        live.channel
            .broadcast(Arc::from(Message::loading(&session_id).to_json()), None);
        let want = self.deps.config.llm.history_max_messages + 1;
        if session.history_missing(want) {
            self.reload_history(&session).await;
        }
        let history = {
            let mut recent = session.recent_messages(self.deps.config.llm.history_max_messages + 1);
            recent.pop(); // the message just appended is the new turn, not history
            recent
        };
        let job = GenerationJob {
            session,
            live,
            history,
            content,
            started: Instant::now(),
            cancel: token,
            slot_id,
        };
        let router = self.clone();
        self.tasks
            .spawn(async move { generation::run(router, job).await });
        Ok(())
    }

    async fn admin_message(&self, state: &ConnState, message: Message) -> Result<(), FrameError> {
        let identity = state.handle.identity().clone();
        if !identity.is_admin {
            return Err(FrameError::new(
                ErrorCode::Forbidden,
                "sender: only administrators may send as admin",
            ));
        }
        let session_id = message.session_id.clone().unwrap_or_default();
        let session = self
            .session_by_id(&session_id)
            .await
            .ok_or_else(|| FrameError::new(ErrorCode::NotFound, "session_id: no such session"))?;
        match session.assisting_admin() {
            Some(admin) if admin.id == identity.user_id => {}
            _ => {
                return Err(FrameError::new(
                    ErrorCode::Forbidden,
                    "take the session over (POST /admin/takeover/{id}) before writing to it",
                )
                .session(&session_id))
            }
        }
        let now = Utc::now();
        let content = message.content.unwrap_or_default();
        let mut stored = StoredMessage::text(Sender::Admin, content.clone(), now);
        stored
            .metadata
            .insert("admin_name".to_owned(), identity.name.clone());
        self.append_and_store(
            &session,
            &stored,
            "admin message",
            "message could not be saved; please retry",
        )
        .await?;
        metrics::counter!("chatbox_messages_total", "sender" => "admin").increment(1);
        let live = self.live(&session_id);
        self.bind(state, &session_id);
        live.channel.broadcast_to_others(state.handle.id(), || {
            let mut frame = Message::new(MessageType::UserMessage, Sender::Admin, now);
            frame.session_id = Some(session_id);
            frame.content = Some(content);
            frame
                .metadata
                .insert(chat_protocol::META_ADMIN_NAME.to_owned(), identity.name);
            frame.to_json()
        });
        Ok(())
    }

    async fn model_select(&self, state: &ConnState, message: Message) -> Result<(), FrameError> {
        let model_id = message.model_id.clone().unwrap_or_default();
        if !self.deps.providers.contains(&model_id) {
            return Err(FrameError::new(
                ErrorCode::InvalidFormat,
                format!("model_id: {model_id:?} is not an available model"),
            ));
        }
        let session = self
            .session_for(state, message.session_id.as_deref(), true)
            .await?;
        session
            .set_model(model_id.clone())
            .map_err(|e| session_error(e, session.id()))?;
        self.persist(
            "update_model",
            self.deps.store.update_model(session.id(), &model_id).await,
        );
        let mut status = Message::connection_status(
            state.handle.identity().user_id.clone(),
            session.id(),
            self.models.clone(),
        );
        status.model_id = Some(model_id);
        send(&state.handle, &status);
        Ok(())
    }

    async fn help_request(&self, state: &ConnState, message: Message) -> Result<(), FrameError> {
        let session = self
            .session_for(state, message.session_id.as_deref(), true)
            .await?;
        session.set_help_requested(true);
        self.persist(
            "set_help_requested",
            self.deps.store.set_help_requested(session.id(), true).await,
        );
        self.deps.notifier.notify(HelpRequest {
            session_id: session.id().to_owned(),
            user_id: session.user_id().to_owned(),
            at: Utc::now(),
        });
        send(
            &state.handle,
            &Message::notification("An administrator has been notified and will join shortly.")
                .with_session(session.id()),
        );
        Ok(())
    }

    async fn file_message(&self, state: &ConnState, message: Message) -> Result<(), FrameError> {
        let session = self
            .session_for(state, message.session_id.as_deref(), true)
            .await?;
        let session_id = session.id().to_owned();
        let now = Utc::now();
        let mut stored = StoredMessage::text(
            Sender::User,
            message.content.clone().unwrap_or_default(),
            now,
        );
        stored.file_id = message.file_id.clone();
        stored.file_url = message.file_url.clone();
        stored
            .metadata
            .insert("type".to_owned(), message.kind.as_str().to_owned());
        self.append_and_store(
            &session,
            &stored,
            "file message",
            "file message could not be saved; please retry",
        )
        .await?;
        let mut echo = message;
        echo.session_id = Some(session_id.clone());
        echo.timestamp = now;
        echo.user_id = Some(state.handle.identity().user_id.clone());
        // Echoed to every subscriber, the sender included (it confirms the upload).
        self.live(&session_id)
            .channel
            .broadcast(Arc::from(echo.to_json()), None);
        Ok(())
    }

    fn typing(&self, state: &ConnState, message: &Message) {
        let Some(session_id) = state.bound.lock().clone() else {
            return;
        };
        self.live(&session_id)
            .channel
            .broadcast_to_others(state.handle.id(), || {
                let mut frame =
                    Message::new(MessageType::TypingIndicator, message.sender, Utc::now());
                frame.session_id = Some(session_id.clone());
                frame.metadata = message.metadata.clone();
                frame.user_id = Some(state.handle.identity().user_id.clone());
                frame.to_json()
            });
    }

    async fn resume(&self, state: &ConnState, message: &Message) -> Result<(), FrameError> {
        let session_id = message.session_id.clone().unwrap_or_default();
        let last_seq = message.last_seq().unwrap_or(0);
        let identity = state.handle.identity();
        let session = self
            .session_by_id(&session_id)
            .await
            .ok_or_else(|| FrameError::new(ErrorCode::NotFound, "session_id: no such session"))?;
        let allowed = session.user_id() == identity.user_id
            || (identity.is_admin
                && session
                    .assisting_admin()
                    .is_some_and(|a| a.id == identity.user_id));
        if !allowed {
            return Err(FrameError::new(
                ErrorCode::NotFound,
                "session_id: no such session",
            ));
        }
        {
            let mut bound = state.bound.lock();
            if let Some(old) = bound.replace(session_id.clone()) {
                if old != session_id {
                    if let Some(live) = self.live.get(&old) {
                        live.channel.unsubscribe(state.handle.id());
                    }
                }
            }
        }
        let mut status = Message::connection_status(
            identity.user_id.clone(),
            session_id.clone(),
            self.models.clone(),
        );
        if !session.is_active() {
            status
                .metadata
                .insert("session_ended".to_owned(), "true".to_owned());
        }
        send(&state.handle, &status);
        let outcome = self
            .live(&session_id)
            .channel
            .resume(&state.handle, last_seq);
        if outcome.gap {
            let mut notice = Message::notification(
                "Part of the reply is no longer buffered; reload the conversation to see it.",
            )
            .with_session(&session_id);
            notice
                .metadata
                .insert("replay_gap".to_owned(), "true".to_owned());
            send(&state.handle, &notice);
        }
        Ok(())
    }

    fn stop(&self, state: &ConnState, message: &Message) -> Result<(), FrameError> {
        let session_id = message
            .session_id
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| state.bound.lock().clone())
            .ok_or_else(|| {
                FrameError::new(ErrorCode::NotFound, "session_id: no session to stop")
            })?;
        let owned = self
            .deps
            .sessions
            .get(&session_id)
            .is_some_and(|s| s.user_id() == state.handle.identity().user_id);
        if !owned {
            return Err(FrameError::new(
                ErrorCode::NotFound,
                "session_id: no such session",
            ));
        }
        if let Some(live) = self.live.get(&session_id) {
            // Stop is a user decision: the generation task sees the cancellation, keeps
            // the partial reply (marked stopped) and sends the final frame.
            if let Some(slot) = live.generation.lock().as_ref() {
                slot.token.cancel();
            }
        }
        Ok(())
    }

    /// Puts a session's history back in memory from the store after it was released
    /// ([`MessageRouter::release_idle`]). On a store error the reply is generated from
    /// the messages still in memory (the newest ones), and the next message retries.
    async fn reload_history(&self, session: &Session) {
        match self.deps.store.get_session(session.id()).await {
            Ok(Some(stored)) => {
                let restored = session.restore_history(stored.messages);
                metrics::counter!("chatbox_session_history_reloads_total").increment(1);
                tracing::debug!(session_id = %session.id(), restored, "history reloaded");
            }
            Ok(None) => {
                tracing::warn!(session_id = %session.id(), "history not reloaded: session not in the store");
            }
            Err(e) => {
                metrics::counter!("chatbox_persist_errors_total", "op" => "reload_history")
                    .increment(1);
                tracing::warn!(session_id = %session.id(), error = %e, "history not reloaded");
            }
        }
    }

    /// A session by id: from memory, or (for an active session another replica
    /// created, or one this replica forgot) rehydrated from the store.
    async fn session_by_id(&self, session_id: &str) -> Option<Arc<Session>> {
        if session_id.is_empty() {
            return None;
        }
        if let Some(session) = self.deps.sessions.get(session_id) {
            return Some(session);
        }
        let snapshot = self.deps.store.get_session(session_id).await.ok()??;
        match self.deps.sessions.insert_rehydrated(snapshot) {
            Ok(session) => Some(session),
            Err(_) => self.deps.sessions.get(session_id),
        }
    }

    /// Admin takeover (HTTP): marks the session as assisted by `admin`, cancels an
    /// in-flight reply, persists, and announces `admin_join` on every replica.
    /// Idempotent for the same admin; another admin gets [`RouterError::AlreadyAssisted`].
    pub async fn takeover(&self, session_id: &str, admin: &Identity) -> Result<bool, RouterError> {
        let session = self
            .session_by_id(session_id)
            .await
            .ok_or(RouterError::NotFound)?;
        let outcome = session
            .try_takeover(&admin.user_id, &admin.name)
            .map_err(|e| match e {
                SessionError::AlreadyAssisted {
                    admin_id,
                    admin_name,
                } => RouterError::AlreadyAssisted {
                    admin_id,
                    admin_name,
                },
                SessionError::Ended { .. } => RouterError::Ended,
                _ => RouterError::NotFound,
            })?;
        if !outcome.newly_assisted {
            return Ok(false);
        }
        self.deps
            .store
            .update_assistance(session_id, Some(&admin.user_id), Some(&admin.name))
            .await?;
        metrics::counter!("chatbox_admin_takeovers_total").increment(1);
        self.deps.bus.publish(BusEvent::Takeover {
            session_id: session_id.to_owned(),
            admin_id: admin.user_id.clone(),
            admin_name: admin.name.clone(),
        });
        Ok(true)
    }

    /// Ends the assistance of `admin` (HTTP): `admin_leave`, and the AI answers again.
    pub async fn release(&self, session_id: &str, admin: &Identity) -> Result<bool, RouterError> {
        let session = self
            .session_by_id(session_id)
            .await
            .ok_or(RouterError::NotFound)?;
        let released = session.release(&admin.user_id).map_err(|e| match e {
            SessionError::NotAssistingAdmin { .. } => RouterError::NotAssisting,
            _ => RouterError::NotFound,
        })?;
        if !released {
            return Ok(false);
        }
        self.deps
            .store
            .update_assistance(session_id, None, None)
            .await?;
        self.deps.bus.publish(BusEvent::Release {
            session_id: session_id.to_owned(),
            admin_id: admin.user_id.clone(),
            admin_name: admin.name.clone(),
        });
        Ok(true)
    }

    /// Ends a session of `user_id` (HTTP). Idempotent; the first end time is kept.
    pub async fn end_session(&self, session_id: &str, user_id: &str) -> Result<(), RouterError> {
        let session = self.session_by_id(session_id).await;
        let newly_ended = match session {
            Some(session) if session.user_id() == user_id => {
                let end_time = session.end_time().unwrap_or_else(Utc::now);
                let newly = session.end(end_time);
                self.deps.store.end_session(session_id, end_time).await?;
                newly
            }
            Some(_) => return Err(RouterError::NotFound),
            None => {
                let stored = self.deps.store.get_session(session_id).await?;
                match stored {
                    Some(s) if s.user_id == user_id => {
                        self.deps.store.end_session(session_id, Utc::now()).await?;
                        s.end_time.is_none()
                    }
                    _ => return Err(RouterError::NotFound),
                }
            }
        };
        // Ending twice is idempotent: the first end time is kept and the devices are
        // told once.
        if newly_ended {
            self.deps.bus.publish(BusEvent::SessionEnded {
                session_id: session_id.to_owned(),
            });
        }
        Ok(())
    }

    /// Sends a `notification` to every connection of `user_id` (e.g. "too many
    /// connections"). Handles are collected first; no map lock is held while sending
    /// (READINESS #14).
    pub fn notify_user(&self, user_id: &str, text: &str) {
        self.deps.bus.publish(BusEvent::UserNotice {
            user_id: user_id.to_owned(),
            text: text.to_owned(),
        });
    }

    fn local_user_notice(&self, user_id: &str, text: &str) {
        let ids: Vec<ConnectionId> = self
            .by_user
            .get(user_id)
            .map(|ids| ids.clone())
            .unwrap_or_default();
        let handles: Vec<ConnectionHandle> = ids
            .iter()
            .filter_map(|id| self.connections.get(id).map(|s| s.handle.clone()))
            .collect();
        let frame: Arc<str> = Arc::from(Message::notification(text).to_json());
        for handle in handles {
            handle.try_send(frame.clone());
        }
    }

    /// Persists what a sweeper pass did (ends) and forgets the live state of sessions
    /// that left memory.
    pub async fn apply_sweep(&self, report: SweepReport) {
        for session_id in &report.ended {
            if let Some(session) = self.deps.sessions.get(session_id) {
                let end_time = session.end_time().unwrap_or_else(Utc::now);
                self.persist(
                    "end_session",
                    self.deps
                        .store
                        .end_session(session_id, end_time)
                        .await
                        .map(|_| ()),
                );
            }
            // Idle sessions ended by the sweeper: tell the devices still connected.
            self.deps.bus.publish(BusEvent::SessionEnded {
                session_id: session_id.clone(),
            });
        }
        for session_id in &report.removed {
            self.live.remove(session_id);
        }
    }

    /// Releases the memory of sessions nobody uses: a session whose last connection
    /// left (or whose last frame went out) at least `sessions.release_grace` ago and
    /// that has no reply in flight gives back its replay buffer and its in-memory
    /// messages. The session itself stays (identity, active mapping, assistance, end
    /// state: a few hundred bytes) until the sweeper ends and removes it; its history
    /// is reloaded from the store on the next message, and a `resume` after the grace
    /// period reports a replay gap (the client reloads the conversation over HTTP).
    ///
    /// Sessions without live state (rehydrated at startup, never connected) are
    /// released too. Idempotent; [`MessageRouter::spawn_releaser`] runs it
    /// periodically.
    pub fn release_idle(&self) -> ReleaseReport {
        let now = tokio::time::Instant::now();
        let grace = self.deps.config.sessions.release_grace;
        let lives: Vec<(String, Arc<LiveSession>)> = self
            .live
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        let mut in_use = std::collections::HashSet::new();
        for (session_id, live) in lives {
            let generating = live.generation.lock().is_some();
            if generating || !live.channel.release_if_idle(now, grace) {
                in_use.insert(session_id);
            }
        }
        let released = self
            .deps
            .sessions
            .release_history_unless(|id| in_use.contains(id));
        if released > 0 {
            metrics::counter!("chatbox_session_releases_total").increment(released as u64);
            tracing::debug!(released, in_use = in_use.len(), "idle sessions released");
        }
        ReleaseReport {
            in_use: in_use.len(),
            released,
        }
    }

    /// Runs [`MessageRouter::release_idle`] every [`release_interval`] until `cancel`
    /// fires. The task holds only a weak reference to the router.
    pub fn spawn_releaser(
        self: &Arc<Self>,
        cancel: CancellationToken,
        tracker: &TaskTracker,
    ) -> tokio::task::JoinHandle<()> {
        let interval = release_interval(self.deps.config.sessions.release_grace);
        let router = Arc::downgrade(self);
        tracker.spawn(async move {
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => break,
                    _ = ticker.tick() => match router.upgrade() {
                        Some(router) => {
                            router.release_idle();
                        }
                        None => break,
                    },
                }
            }
            tracing::debug!("session releaser stopped");
        })
    }

    /// Number of sessions with live state on this replica (bounded by the sweeper).
    pub fn live_session_count(&self) -> usize {
        self.live.len()
    }

    /// Stops accepting messages, cancels every generation (partial replies are kept)
    /// and waits for the router's tasks, at most `deadline`. Returns false when tasks
    /// were still running at the deadline.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.draining.store(true, Ordering::SeqCst);
        self.cancel.cancel();
        self.tasks.close();
        tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_ok()
    }

    /// Appends `stored` to the session in memory, then to the store. When the store
    /// refuses it, the message is taken back from memory (with the name it gave the
    /// session): the user is told to send it again (`DATABASE_ERROR`, `retry`), and a
    /// kept copy would reach the LLM history twice. `what` names it in the log.
    async fn append_and_store(
        &self,
        session: &Session,
        stored: &StoredMessage,
        what: &'static str,
        retry: &'static str,
    ) -> Result<(), FrameError> {
        let session_id = session.id();
        let was_named = session.is_named();
        session
            .append(stored.clone())
            .map_err(|e| session_error(e, session_id))?;
        if let Err(e) = self.deps.store.append_message(session_id, stored).await {
            tracing::error!(%session_id, error = %e, "{what} not persisted");
            session.retract_last(stored, !was_named);
            return Err(FrameError::new(ErrorCode::DatabaseError, retry).session(session_id));
        }
        Ok(())
    }

    /// Logs a failed background write (the write-behind store already retries and
    /// keeps it; an error here means it was refused outright).
    pub(crate) fn persist<T>(&self, what: &'static str, result: Result<T, StoreError>) {
        if let Err(e) = result {
            metrics::counter!("chatbox_persist_errors_total", "op" => what).increment(1);
            tracing::error!(op = what, error = %e, "write not accepted by the store");
        }
    }
}

impl BusHandler for MessageRouter {
    fn handle(&self, event: &BusEvent) {
        match event {
            BusEvent::Takeover {
                session_id,
                admin_name,
                ..
            } => {
                if let Some(live) = self.live.get(session_id) {
                    live.cancel_generation();
                    live.channel.broadcast(
                        Arc::from(Message::admin_join(session_id, admin_name).to_json()),
                        None,
                    );
                }
            }
            BusEvent::Release {
                session_id,
                admin_id,
                admin_name,
            } => {
                if let Some(live) = self.live.get(session_id) {
                    live.channel.broadcast(
                        Arc::from(Message::admin_leave(session_id, admin_name).to_json()),
                        None,
                    );
                    // The admin's sockets stop following the conversation (unless the
                    // admin is the owner).
                    let owner = self
                        .deps
                        .sessions
                        .get(session_id)
                        .map(|s| s.user_id().to_owned());
                    live.channel.unsubscribe_where(|c| {
                        let who = c.identity();
                        who.is_admin
                            && &who.user_id == admin_id
                            && owner.as_deref() != Some(who.user_id.as_str())
                    });
                }
            }
            BusEvent::SessionEnded { session_id } => {
                if let Some(live) = self.live.get(session_id) {
                    live.cancel_generation();
                    live.channel.broadcast(
                        Arc::from(
                            Message::notification("This conversation has ended.")
                                .with_session(session_id)
                                .to_json(),
                        ),
                        None,
                    );
                }
            }
            BusEvent::UserNotice { user_id, text } => self.local_user_notice(user_id, text),
        }
    }
}

/// What one [`MessageRouter::release_idle`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReleaseReport {
    /// Sessions kept: a connection is subscribed, a reply is in flight, or the grace
    /// period has not passed.
    pub in_use: usize,
    /// Sessions that gave their in-memory messages back in this pass.
    pub released: usize,
}

/// How often the releaser runs for a grace period: a quarter of it (so a session is
/// released at most 25 % after its grace period), between 1 s and 60 s.
pub fn release_interval(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// An error answered on the connection as an `error` frame.
#[derive(Debug)]
pub(crate) struct FrameError {
    code: ErrorCode,
    message: String,
    recoverable: bool,
    retry_after_ms: Option<u64>,
    session_id: Option<String>,
}

impl FrameError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            recoverable: code.default_recoverable(),
            retry_after_ms: None,
            session_id: None,
        }
    }

    fn retry_after(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms.max(1));
        self
    }

    fn session(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.to_owned());
        self
    }
}

fn session_error(error: SessionError, session_id: &str) -> FrameError {
    let code = match &error {
        SessionError::Ended { .. } => ErrorCode::SessionEnded,
        SessionError::NotFound { .. } => ErrorCode::NotFound,
        _ => ErrorCode::InternalError,
    };
    FrameError::new(code, error.to_string()).session(session_id)
}

/// Sends one frame to one connection (non-blocking).
pub(crate) fn send(handle: &ConnectionHandle, message: &Message) {
    handle.try_send(Arc::from(message.to_json()));
}
