//! Router test harness: a real router over a recording mock store and the fake LLM
//! provider server (real HTTP).
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_config::Config;
use chat_llm::ProviderRegistry;
use chat_protocol::{Message, MessageType};
use chat_ratelimit::RateLimiters;
use chat_router::{
    ConnectionHandle, DefaultNotifier, Identity, InProcessBus, MessageRouter, Outgoing, RouterDeps,
};
use chat_session::{SessionManager, StoredMessage};
use chat_storage::{MockSessionStore, StoreHealth};
use chat_testkit::fake_llm::{FakeLlmHandle, FakeLlmServer, Script};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// What the mock store was asked to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Create(String),
    Append(String, StoredMessage),
    Name(String),
    Stats(String),
    Assist(String, Option<String>),
    End(String),
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
    permissive_rest(&mut store, log);
    store
}

/// Everything but `create_session`, accepted and recorded.
pub fn permissive_rest(store: &mut MockSessionStore, log: WriteLog) {
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
            log.push(Write::Stats(id.to_owned()));
        }
        Ok(())
    });
    let l = log.clone();
    store.expect_update_name().returning(move |id, _| {
        l.lock().push(Write::Name(id.to_owned()));
        Ok(())
    });
    store.expect_update_model().returning(|_, _| Ok(()));
    let l = log.clone();
    store
        .expect_update_stats()
        .returning(move |id, _, _, _, _| {
            l.lock().push(Write::Stats(id.to_owned()));
            Ok(())
        });
    let l = log.clone();
    store
        .expect_update_assistance()
        .returning(move |id, admin, _| {
            l.lock()
                .push(Write::Assist(id.to_owned(), admin.map(str::to_owned)));
            Ok(())
        });
    store.expect_set_help_requested().returning(|_, _| Ok(()));
    let l = log.clone();
    store.expect_end_session().returning(move |id, t| {
        l.lock().push(Write::End(id.to_owned()));
        Ok(t)
    });
    store.expect_get_session().returning(|_| Ok(None));
    store.expect_health().returning(StoreHealth::default);
    let l = log;
    store.expect_ping().returning(move || {
        l.lock().push(Write::Other("ping"));
        Ok(())
    });
}

pub fn config(extra: &str, fake: Option<&FakeLlmHandle>) -> Config {
    let provider = match fake {
        Some(f) => format!(
            "[[llm.providers]]\nid = \"fake\"\nname = \"Fake\"\ntype = \"openai\"\nendpoint = \"{}\"\nmodel = \"fake-model\"\n",
            f.openai_endpoint()
        ),
        None => String::new(),
    };
    let toml = format!("{extra}\n{provider}");
    Config::from_toml_str(&toml, &HashMap::<String, String>::new())
        .unwrap_or_else(|e| panic!("test config invalid: {e}"))
}

pub struct Harness {
    pub router: Arc<MessageRouter>,
    pub config: Arc<Config>,
    pub log: WriteLog,
    pub fake: Option<FakeLlmHandle>,
}

pub const LLM_TIMEOUTS: &str =
    "[llm]\nfirst_token_timeout = \"2s\"\nidle_timeout = \"2s\"\ntotal_timeout = \"20s\"\n";

impl Harness {
    /// Router over the fake provider replying with `script` by default.
    pub async fn with_script(script: Script, extra: &str) -> Self {
        let fake = FakeLlmServer::start(script).await.expect("fake provider");
        let config = config(extra, Some(&fake));
        let log: WriteLog = Arc::default();
        let store = recording_store(log.clone());
        Self::build(config, store, log, Some(fake))
    }

    pub fn build(
        config: Config,
        store: MockSessionStore,
        log: WriteLog,
        fake: Option<FakeLlmHandle>,
    ) -> Self {
        Self::build_with_store(config, Arc::new(store), log, fake)
    }

    /// Router over the fake provider and the store `config` selects (opened as the
    /// server opens it: the real store behind the write-behind queue). The write log
    /// stays empty.
    pub async fn with_configured_store(script: Script, extra: &str) -> Self {
        let fake = FakeLlmServer::start(script).await.expect("fake provider");
        let config = config(extra, Some(&fake));
        let store = chat_storage::open_store(&config).await.expect("store");
        Self::build_with_store(config, store, WriteLog::default(), Some(fake))
    }

    pub fn build_with_store(
        config: Config,
        store: Arc<dyn chat_storage::SessionStore>,
        log: WriteLog,
        fake: Option<FakeLlmHandle>,
    ) -> Self {
        let config = Arc::new(config);
        let providers = ProviderRegistry::from_settings(&config.llm).expect("providers");
        let limiters = RateLimiters::from_settings(&config.rate_limits).unwrap();
        let router = MessageRouter::new(RouterDeps {
            config: config.clone(),
            sessions: Arc::new(SessionManager::new(&config.sessions)),
            store,
            providers: Arc::new(providers),
            limiters: Arc::new(limiters),
            notifier: Arc::new(DefaultNotifier::log_only()),
            bus: InProcessBus::new(),
        });
        Self {
            router,
            config,
            log,
            fake,
        }
    }

    pub fn connect(&self, user: &str) -> Client {
        self.connect_as(Identity {
            user_id: user.to_owned(),
            name: user.to_owned(),
            is_admin: false,
        })
    }

    pub fn connect_admin(&self, admin: &str) -> Client {
        self.connect_as(Identity {
            user_id: admin.to_owned(),
            name: format!("Admin {admin}"),
            is_admin: true,
        })
    }

    pub fn connect_as(&self, identity: Identity) -> Client {
        let (handle, rx) = self.router.connect(identity);
        Client {
            handle,
            rx,
            router: self.router.clone(),
        }
    }

    pub fn appended_ai_texts(&self) -> Vec<StoredMessage> {
        self.log
            .lock()
            .iter()
            .filter_map(|w| match w {
                Write::Append(_, m) if m.sender == chat_session::Sender::Ai => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// Waits until the router owns no task (every generation finished).
    pub async fn wait_idle(&self) {
        for _ in 0..500 {
            if self.router.task_count() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("router still has {} task(s)", self.router.task_count());
    }
}

pub struct Client {
    pub handle: ConnectionHandle,
    pub rx: mpsc::Receiver<Outgoing>,
    pub router: Arc<MessageRouter>,
}

pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

impl Client {
    pub fn id(&self) -> u64 {
        self.handle.id()
    }

    pub async fn send_json(&self, json: serde_json::Value) {
        self.router.handle_text(self.id(), &json.to_string()).await;
    }

    pub async fn say(&self, text: &str) {
        self.send_json(serde_json::json!({"type": "user_message", "content": text}))
            .await;
    }

    pub async fn next(&mut self) -> Message {
        match tokio::time::timeout(FRAME_TIMEOUT, self.rx.recv()).await {
            Ok(Some(Outgoing::Frame(f))) => serde_json::from_str(&f).expect("server frame is JSON"),
            Ok(None) => panic!("connection closed"),
            Err(_) => panic!("no frame within {FRAME_TIMEOUT:?}"),
        }
    }

    /// Frames until (and including) the first one matching `done`.
    pub async fn until(&mut self, done: impl Fn(&Message) -> bool) -> Vec<Message> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            let stop = done(&frame);
            frames.push(frame);
            if stop {
                return frames;
            }
        }
    }

    pub async fn next_of(&mut self, kind: MessageType) -> Message {
        self.until(|m| m.kind == kind).await.pop().expect("frame")
    }

    /// Frames until the final `ai_response` (done = true) or an `error`.
    pub async fn reply(&mut self) -> Vec<Message> {
        self.until(|m| {
            (m.kind == MessageType::AiResponse && m.is_done()) || m.kind == MessageType::Error
        })
        .await
    }

    /// Frames already queued, without waiting.
    pub fn drain(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Ok(Outgoing::Frame(f)) = self.rx.try_recv() {
            out.push(serde_json::from_str(&f).expect("json"));
        }
        out
    }
}

/// Concatenated text of the `ai_response` chunks.
pub fn text_of(frames: &[Message]) -> String {
    frames
        .iter()
        .filter(|m| m.kind == MessageType::AiResponse)
        .filter_map(|m| m.content.clone())
        .collect()
}
