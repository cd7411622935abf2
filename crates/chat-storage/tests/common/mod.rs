//! Test harness shared by the storage test binaries: fixtures and backend selection.
#![allow(dead_code)]
// Test helpers: a failed fixture should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chat_session::model::{Sender, SessionSnapshot, StoredMessage};
use chat_storage::{EmbeddedStore, Encryptor, MongoOptions, MongoStore, RetryPolicy, SessionStore};
use chat_testkit::mongo::TestMongo;
use chrono::{DateTime, TimeZone, Utc};

pub const KEY_A: [u8; 32] = *b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
pub const KEY_B: [u8; 32] = *b"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

/// A fixed instant plus `secs` (millisecond precision, like the stores).
pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + secs, 0).single().unwrap()
}

pub fn session(id: &str, user: &str, start: i64) -> SessionSnapshot {
    SessionSnapshot {
        name: format!("chat {id}"),
        model_id: "gpt".to_owned(),
        ..SessionSnapshot::new_active(id, user, t(start))
    }
}

pub fn msg(sender: Sender, content: &str, at: i64) -> StoredMessage {
    StoredMessage::text(sender, content, t(at))
}

/// A session with every field set to a distinctive value.
pub fn full_session() -> SessionSnapshot {
    let mut meta = BTreeMap::new();
    meta.insert("streaming".to_owned(), "false".to_owned());
    meta.insert("stopped".to_owned(), "true".to_owned());
    SessionSnapshot {
        id: "0123456789abcdef0123456789abcdef".to_owned(),
        user_id: "user-42".to_owned(),
        name: "Weekend trip to Lisbon...".to_owned(),
        model_id: "claude".to_owned(),
        messages: vec![
            msg(Sender::User, "Plan a weekend in Lisbon", 1),
            StoredMessage {
                content: "Here is a plan: ☀️ day 1…".to_owned(),
                timestamp: t(2) + chrono::Duration::milliseconds(345),
                sender: Sender::Ai,
                file_id: None,
                file_url: None,
                metadata: meta,
            },
            StoredMessage {
                content: "photo".to_owned(),
                timestamp: t(3),
                sender: Sender::User,
                file_id: Some("file-1".to_owned()),
                file_url: Some("https://files.example.com/file-1.png".to_owned()),
                metadata: BTreeMap::new(),
            },
            msg(Sender::Admin, "An agent is here", 4),
            msg(Sender::System, "notice", 5),
        ],
        start_time: t(0),
        end_time: Some(t(125)),
        last_activity: t(125),
        admin_assisted: true,
        assisting_admin_id: Some("admin-7".to_owned()),
        assisting_admin_name: Some("Ada Admin".to_owned()),
        help_requested: true,
        total_tokens: 1234,
        max_response_time_ms: 4321,
        avg_response_time_ms: 2100,
        response_count: 3,
        share_token: Some("feedfacefeedfacefeedfacefeedface".to_owned()),
    }
}

pub fn policy() -> RetryPolicy {
    RetryPolicy::new(
        3,
        Duration::from_millis(20),
        Duration::from_millis(200),
        Duration::from_secs(5),
    )
}

pub fn encryptor(keys: &[(&str, [u8; 32])]) -> Encryptor {
    Encryptor::new(keys.iter().map(|(i, k)| ((*i).to_owned(), *k)).collect()).unwrap()
}

/// Keeps the backend's resources (temp dir or server) alive for the test.
pub enum Guard {
    Embedded(tempfile::TempDir),
    Mongo(TestMongo),
}

/// Which backend the conformance suite runs against: `CHATBOX_TEST_STORE=embedded|mongodb`.
pub fn backend() -> String {
    std::env::var("CHATBOX_TEST_STORE").unwrap_or_else(|_| "embedded".to_owned())
}

pub async fn connect_mongo(uri: String, enc: Encryptor, retry: RetryPolicy) -> MongoStore {
    MongoStore::connect(
        MongoOptions {
            uri,
            database: "chat".to_owned(),
            collection: "sessions".to_owned(),
            connect_timeout: Duration::from_secs(5),
        },
        enc,
        retry,
    )
    .await
    .unwrap()
}

pub struct Harness {
    pub store: Arc<dyn SessionStore>,
    pub guard: Guard,
    enc: Encryptor,
}

impl Harness {
    /// A fresh, empty store of the selected backend.
    pub async fn new(enc: Encryptor) -> Self {
        match backend().as_str() {
            "embedded" => {
                let dir = tempfile::tempdir().unwrap();
                let store =
                    EmbeddedStore::open(&dir.path().join("chat.redb"), enc.clone()).unwrap();
                Self {
                    store: Arc::new(store),
                    guard: Guard::Embedded(dir),
                    enc,
                }
            }
            "mongodb" => {
                let server = TestMongo::start().unwrap();
                let store = connect_mongo(server.uri(), enc.clone(), policy()).await;
                Self {
                    store: Arc::new(store),
                    guard: Guard::Mongo(server),
                    enc,
                }
            }
            other => panic!("unknown CHATBOX_TEST_STORE={other} (embedded|mongodb)"),
        }
    }

    /// Reopens the same data with other keys (a key rotation).
    pub async fn reopen_with(&mut self, enc: Encryptor) {
        self.enc = enc;
        self.reopen().await;
    }

    /// Closes the store and opens the same data again (a process restart).
    pub async fn reopen(&mut self) {
        match &self.guard {
            Guard::Embedded(dir) => {
                // redb allows one open handle per file: drop ours first.
                self.store = Arc::new(
                    EmbeddedStore::open(&dir.path().join("other.redb"), self.enc.clone()).unwrap(),
                );
                self.store = Arc::new(
                    EmbeddedStore::open(&dir.path().join("chat.redb"), self.enc.clone()).unwrap(),
                );
            }
            Guard::Mongo(server) => {
                self.store =
                    Arc::new(connect_mongo(server.uri(), self.enc.clone(), policy()).await);
            }
        }
    }
}
