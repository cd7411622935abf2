//! WebSocket endpoint test harness: a real router (recording mock store, fake LLM
//! provider over real HTTP) behind the real axum endpoint on 127.0.0.1:0, and real
//! WebSocket clients (`chat_testkit::ws_client`).
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_auth::{JwtValidator, TokenIssuer};
use chat_config::{Config, JwtAlgorithm};
use chat_llm::ProviderRegistry;
use chat_protocol::{Message, MessageType};
use chat_ratelimit::{ConnectionLimiter, RateLimiters};
use chat_router::{DefaultNotifier, InProcessBus, MessageRouter, RouterDeps};
use chat_session::{SessionManager, StoredMessage};
use chat_storage::{MockSessionStore, StoreHealth};
use chat_testkit::fake_llm::{FakeLlmHandle, FakeLlmServer, Script};
use chat_testkit::ws_client::{ConnectOptions, WsClient, WsClientError};
use chat_ws::{Drain, OriginPolicy, WsState};
use parking_lot::Mutex;

/// What the mock store was asked to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Create(String),
    Append(String, StoredMessage),
    Other(&'static str),
}

pub type WriteLog = Arc<Mutex<Vec<Write>>>;

/// A mock store that accepts everything and records it.
pub fn recording_store(log: WriteLog) -> MockSessionStore {
    let mut store = MockSessionStore::new();
    let l = log.clone();
    store.expect_create_session().returning(move |s| {
        l.lock().push(Write::Create(s.id.clone()));
        Ok(())
    });
    let l = log.clone();
    store.expect_append_message().returning(move |id, m| {
        l.lock().push(Write::Append(id.to_owned(), m.clone()));
        Ok(())
    });
    let l = log.clone();
    store.expect_append_reply().returning(move |id, m, stats| {
        let mut log = l.lock();
        log.push(Write::Append(id.to_owned(), m.clone()));
        if stats.is_some() {
            log.push(Write::Other("stats"));
        }
        Ok(())
    });
    let l = log.clone();
    store.expect_update_name().returning(move |_, _| {
        l.lock().push(Write::Other("name"));
        Ok(())
    });
    store.expect_update_model().returning(|_, _| Ok(()));
    let l = log.clone();
    store.expect_update_stats().returning(move |_, _, _, _, _| {
        l.lock().push(Write::Other("stats"));
        Ok(())
    });
    store.expect_update_assistance().returning(|_, _, _| Ok(()));
    store.expect_set_help_requested().returning(|_, _| Ok(()));
    store.expect_end_session().returning(|_, t| Ok(t));
    store.expect_get_session().returning(|_| Ok(None));
    store.expect_health().returning(StoreHealth::default);
    store.expect_ping().returning(|| Ok(()));
    store
}

/// LLM deadlines short enough for tests.
pub const LLM_TIMEOUTS: &str =
    "[llm]\nfirst_token_timeout = \"5s\"\nidle_timeout = \"5s\"\ntotal_timeout = \"30s\"\n";

pub fn config(extra: &str, fake: &FakeLlmHandle) -> Config {
    let provider = format!(
        "[[llm.providers]]\nid = \"fake\"\nname = \"Fake\"\ntype = \"openai\"\nendpoint = \"{}\"\nmodel = \"fake-model\"\n",
        fake.openai_endpoint()
    );
    let toml = format!("{extra}\n{provider}");
    Config::from_toml_str(&toml, &HashMap::<String, String>::new())
        .unwrap_or_else(|e| panic!("test config invalid: {e}"))
}

pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// A running endpoint.
pub struct Server {
    pub addr: SocketAddr,
    pub state: WsState,
    pub router: Arc<MessageRouter>,
    pub config: Arc<Config>,
    pub log: WriteLog,
    pub fake: FakeLlmHandle,
    pub issuer: TokenIssuer,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Server {
    /// Endpoint over a fake provider replying with `script`; `extra` is TOML.
    pub async fn start(script: Script, extra: &str) -> Self {
        Self::start_with(script, extra, None, None).await
    }

    /// Like [`Server::start`] with an explicit origin policy and/or store.
    pub async fn start_with(
        script: Script,
        extra: &str,
        origins: Option<OriginPolicy>,
        store: Option<MockSessionStore>,
    ) -> Self {
        let fake = FakeLlmServer::start(script).await.expect("fake provider");
        let config = Arc::new(config(extra, &fake));
        let log: WriteLog = Arc::default();
        let providers = ProviderRegistry::from_settings(&config.llm).expect("providers");
        let limiters = RateLimiters::from_settings(&config.rate_limits).unwrap();
        let router = MessageRouter::new(RouterDeps {
            config: config.clone(),
            sessions: Arc::new(SessionManager::new(&config.sessions)),
            store: Arc::new(store.unwrap_or_else(|| recording_store(log.clone()))),
            providers: Arc::new(providers),
            limiters: Arc::new(limiters),
            notifier: Arc::new(DefaultNotifier::log_only()),
            bus: InProcessBus::new(),
        });
        let validator = Arc::new(JwtValidator::from_config(&config).expect("validator"));
        let state = match origins {
            None => WsState::from_config(&config, router.clone(), validator),
            Some(origins) => WsState::new(
                router.clone(),
                validator,
                ConnectionLimiter::new(
                    std::num::NonZeroUsize::new(config.websocket.max_connections_per_user).unwrap(),
                ),
                origins,
                config.websocket.clone(),
                Drain::new(),
            ),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = chat_ws::routes(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let issuer = TokenIssuer::new(config.jwt_secret(), JwtAlgorithm::HS256).expect("issuer");
        Self {
            addr,
            state,
            router,
            config,
            log,
            fake,
            issuer,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn token(&self, user: &str) -> String {
        self.issuer
            .issue(user, None, &["user"], Duration::from_secs(3600))
            .unwrap()
    }

    pub fn admin_token(&self, admin: &str) -> String {
        self.issuer
            .issue(
                admin,
                Some(&format!("Admin {admin}")),
                &["admin"],
                Duration::from_secs(3600),
            )
            .unwrap()
    }

    /// Connects with `options` (no status read).
    pub async fn try_connect(&self, options: &ConnectOptions) -> Result<WsClient, WsClientError> {
        WsClient::connect(&self.url(), options).await
    }

    /// Connects `user` with a bearer token and reads its `connection_status`.
    pub async fn connect(&self, user: &str) -> WsClient {
        let mut client = self
            .try_connect(&ConnectOptions::bearer(self.token(user)))
            .await
            .unwrap_or_else(|e| panic!("{user} could not connect: {e}"));
        // The router subscribes a new device to its user's active session before it
        // queues `connection_status`, so a frame broadcast in between may come first.
        client
            .next_of_type(MessageType::ConnectionStatus, FRAME_TIMEOUT)
            .await
            .unwrap();
        client
    }

    /// Waits until `check` holds, polling; panics after `within`.
    pub async fn eventually(&self, within: Duration, what: &str, check: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !check(self) {
            if tokio::time::Instant::now() > deadline {
                panic!("not within {within:?}: {what}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn writes(&self) -> Vec<Write> {
        self.log.lock().clone()
    }
}

/// Frames until the final `ai_response` (done) or an `error`.
pub async fn reply(client: &mut WsClient) -> Vec<Message> {
    let mut frames = Vec::new();
    loop {
        let m = client.next_message(FRAME_TIMEOUT).await.unwrap();
        let stop =
            (m.kind == MessageType::AiResponse && m.is_done()) || m.kind == MessageType::Error;
        frames.push(m);
        if stop {
            return frames;
        }
    }
}
