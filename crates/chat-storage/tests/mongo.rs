//! MongoDB-only behaviour against a real MongoDB-wire server (SecantusDB, started per
//! test): retries under injected network faults, the write-behind queue across a
//! server outage, the raw document schema and indexes, encryption at rest as stored.

// Fixtures outside #[test] fns: a failure should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use chat_session::model::Sender;
use chat_storage::document::fields as f;
use chat_storage::encryption::legacy_encrypt;
use chat_storage::{Encryptor, RetryPolicy, SessionStore, StoreError, WriteBehindStore};
use chat_testkit::mongo::TestMongo;
use common::*;
use futures::TryStreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const FORWARD: u8 = 0;
const DROP: u8 = 1;
const STALL: u8 = 2;

/// A loopback TCP proxy between the driver and the server that can forward, drop
/// new connections, or accept and never answer; `cut()` closes live connections.
struct FaultProxy {
    port: u16,
    mode: Arc<AtomicU8>,
    generation: Arc<parking_lot::Mutex<CancellationToken>>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl FaultProxy {
    async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let generation = Arc::new(parking_lot::Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let (m, g, s) = (mode.clone(), generation.clone(), stop.clone());
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let (mut client, _) = tokio::select! {
                    _ = s.cancelled() => break,
                    accepted = listener.accept() => match accepted { Ok(c) => c, Err(_) => continue },
                };
                let cut = g.lock().clone();
                let stop = s.clone();
                match m.load(Ordering::SeqCst) {
                    DROP => drop(client),
                    STALL => {
                        conns.spawn(async move {
                            // Hold the socket open without reading or answering.
                            tokio::select! { _ = cut.cancelled() => {}, _ = stop.cancelled() => {} }
                            drop(client);
                        });
                    }
                    _ => {
                        conns.spawn(async move {
                            let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                            tokio::select! {
                                _ = cut.cancelled() => {}
                                _ = stop.cancelled() => {}
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            }
                        });
                    }
                }
                while conns.try_join_next().is_some() {}
            }
            conns.shutdown().await;
        });
        Self {
            port,
            mode,
            generation,
            stop,
            tasks,
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    /// Closes every live connection (the driver sees a network error).
    fn cut(&self) {
        let mut g = self.generation.lock();
        g.cancel();
        *g = CancellationToken::new();
    }

    async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// `(operation, attempt number, failed)` of every attempt.
type AttemptLog = Arc<parking_lot::Mutex<Vec<(String, u32, bool)>>>;

/// Counts attempts per operation name.
fn counted(policy: RetryPolicy) -> (RetryPolicy, AttemptLog) {
    let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = log.clone();
    let policy = policy.with_observer(Arc::new(move |e: &chat_storage::AttemptEvent<'_>| {
        seen.lock()
            .push((e.operation.to_owned(), e.attempt, e.error.is_some()));
    }));
    (policy, log)
}

fn attempts(log: &parking_lot::Mutex<Vec<(String, u32, bool)>>, op: &str) -> usize {
    log.lock().iter().filter(|(o, _, _)| o == op).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_issue_09_mongodb_retry() {
    let server = TestMongo::start().unwrap();
    let proxy = FaultProxy::start(server.port()).await;
    let (policy, log) = counted(RetryPolicy::new(
        12,
        Duration::from_millis(100),
        Duration::from_millis(400),
        Duration::from_millis(800),
    ));
    let store = connect_mongo(
        server.direct_uri_via(proxy.port),
        Encryptor::disabled(),
        policy,
    )
    .await;
    store.create_session(&session("s1", "u1", 0)).await.unwrap();

    // 1. Transient: connections are dropped for longer than one attempt's deadline;
    //    the write is retried with backoff and succeeds once the network heals.
    proxy.set(DROP);
    proxy.cut();
    let healer = {
        let mode = proxy.mode.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            mode.store(FORWARD, Ordering::SeqCst);
        })
    };
    store
        .append_message("s1", &msg(Sender::User, "survives a network fault", 1))
        .await
        .unwrap();
    healer.await.unwrap();
    let tries = attempts(&log, "append_message");
    assert!(
        tries >= 2,
        "the transient fault must have been retried, got {tries} attempt(s)"
    );
    {
        let log = log.lock();
        let appends: Vec<_> = log
            .iter()
            .filter(|(o, _, _)| o == "append_message")
            .collect();
        assert!(appends[..appends.len() - 1]
            .iter()
            .all(|(_, _, failed)| *failed));
        assert!(!appends[appends.len() - 1].2, "the last attempt succeeded");
    }
    let stored = store.get_session("s1").await.unwrap().unwrap();
    assert_eq!(stored.messages.len(), 1, "exactly one copy of the message");

    // 2. Permanent: a duplicate key fails after exactly one attempt.
    log.lock().clear();
    let err = store
        .create_session(&session("s1", "someone-else", 5))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateId(_)), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(attempts(&log, "insert_session"), 1);

    // 3. Stalled server: every attempt is cut at its deadline, attempts are bounded.
    let (policy, log) = counted(RetryPolicy::new(
        3,
        Duration::from_millis(50),
        Duration::from_millis(100),
        Duration::from_millis(500),
    ));
    let stalled = connect_mongo(
        server.direct_uri_via(proxy.port),
        Encryptor::disabled(),
        policy,
    )
    .await;
    proxy.set(STALL);
    proxy.cut();
    let started = Instant::now();
    let err = stalled.get_session("s1").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(attempts(&log, "get_session"), 3);
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    // 3 × 500 ms + ≤ 200 ms backoff, with generous slack for a loaded machine.
    assert!(
        elapsed < Duration::from_secs(6),
        "attempts overran their deadline: {elapsed:?}"
    );

    proxy.set(FORWARD);
    proxy.cut();
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_writes_survive_a_server_outage_and_flush_in_order() {
    let mut server = TestMongo::start().unwrap();
    let retry = RetryPolicy::new(
        2,
        Duration::from_millis(50),
        Duration::from_millis(300),
        Duration::from_secs(1),
    );
    let mongo = connect_mongo(server.uri(), Encryptor::disabled(), retry.clone()).await;
    let store = WriteBehindStore::start(Arc::new(mongo), 1000, retry, Duration::from_secs(1));
    store.create_session(&session("s", "u", 0)).await.unwrap();
    for i in 1..=10 {
        store
            .append_message("s", &msg(Sender::User, &format!("m{i}"), i))
            .await
            .unwrap();
    }
    assert_eq!(store.flush(Duration::from_secs(10)).await, 0);

    server.stop();
    // Chatting continues: writes are accepted immediately while the server is down.
    for i in 11..=30 {
        let started = Instant::now();
        store
            .append_message("s", &msg(Sender::Ai, &format!("m{i}"), i))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_millis(200));
    }
    store.update_stats("s", 300, 20, 10, 20).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !store.health().degraded {
        assert!(Instant::now() < deadline, "the outage was never reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = store.health();
    assert!(
        health.pending_writes > 0 && health.last_error.is_some(),
        "{health:?}"
    );

    server.restart().unwrap();
    assert_eq!(
        store.flush(Duration::from_secs(30)).await,
        0,
        "everything flushed after the restart"
    );
    assert!(!store.health().degraded);

    let reader = connect_mongo(server.uri(), Encryptor::disabled(), policy()).await;
    let s = reader.get_session("s").await.unwrap().unwrap();
    let contents: Vec<_> = s.messages.iter().map(|m| m.content.clone()).collect();
    let expected: Vec<_> = (1..=30).map(|i| format!("m{i}")).collect();
    assert_eq!(contents, expected);
    assert_eq!(s.total_tokens, 300);
    assert_eq!(store.shutdown(Duration::from_secs(5)).await.unwrap(), 0);
}

async fn raw(store: &chat_storage::MongoStore, id: &str) -> Document {
    store
        .collection()
        .find_one(doc! { "_id": id })
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn content_and_name_are_ciphertext_in_the_raw_document() {
    let server = TestMongo::start().unwrap();
    let store = connect_mongo(server.uri(), encryptor(&[("k1", KEY_A)]), policy()).await;
    let mut s = session("s", "u", 0);
    s.name = "Secret project name".to_owned();
    store.create_session(&s).await.unwrap();
    store
        .append_message("s", &msg(Sender::User, "my secret message", 1))
        .await
        .unwrap();
    store.update_name("s", "Renamed secret").await.unwrap();

    let d = raw(&store, "s").await;
    let name = d.get_str(f::NAME).unwrap();
    assert!(name.starts_with("enc:v1:k1:"), "{name}");
    assert!(!name.contains("secret"));
    let content = d.get_array(f::MESSAGES).unwrap()[0]
        .as_document()
        .unwrap()
        .get_str(f::MSG_CONTENT)
        .unwrap();
    assert!(content.starts_with("enc:v1:k1:"), "{content}");
    assert!(!format!("{d:?}").contains("secret"));

    let back = store.get_session("s").await.unwrap().unwrap();
    assert_eq!(back.name, "Renamed secret");
    assert_eq!(back.messages[0].content, "my secret message");
}

#[tokio::test]
async fn legacy_documents_decrypt_and_legacy_active_sessions_are_enforced() {
    let server = TestMongo::start().unwrap();
    // A collection written by the legacy Go service: unprefixed ciphertext, int32
    // numbers, no `active` marker, no `respCount`.
    let seed = connect_mongo(server.uri(), Encryptor::disabled(), policy()).await;
    let legacy = doc! {
        "_id": "legacy1", "uid": "old-user", "nm": legacy_encrypt(&KEY_A, "Legacy name"),
        "modelId": "gpt", "ts": bson::DateTime::from_chrono(t(0)), "lastActivity": bson::DateTime::from_chrono(t(9)),
        "msgs": [
            { "content": legacy_encrypt(&KEY_A, "legacy hello"), "ts": bson::DateTime::from_chrono(t(1)), "sender": "user" },
            { "content": legacy_encrypt(&KEY_A, "legacy reply"), "ts": bson::DateTime::from_chrono(t(2)), "sender": "ai", "meta": { "tokens": "7" } },
        ],
        "adminAssisted": false, "helpRequested": false, "totalTokens": 7i32, "maxRespTime": 120i32, "avgRespTime": 120i32,
    };
    seed.collection().insert_one(legacy).await.unwrap();
    drop(seed);

    // Reconnect as the service with the legacy key as a previous key.
    let store = connect_mongo(
        server.uri(),
        encryptor(&[("k2", KEY_B), ("legacy", KEY_A)]),
        policy(),
    )
    .await;
    let s = store.get_session("legacy1").await.unwrap().unwrap();
    assert_eq!(s.name, "Legacy name");
    assert_eq!(s.messages[0].content, "legacy hello");
    assert_eq!(s.messages[1].content, "legacy reply");
    assert_eq!(
        s.messages[1].metadata.get("tokens").map(String::as_str),
        Some("7")
    );
    assert_eq!(
        (s.total_tokens, s.max_response_time_ms, s.response_count),
        (7, 120, 0)
    );
    assert!(s.is_active());
    // The legacy active session was marked, so the unique index now covers it.
    assert!(raw(&store, "legacy1").await.get_bool(f::ACTIVE).unwrap());
    assert!(matches!(
        store.create_session(&session("new", "old-user", 10)).await,
        Err(StoreError::ActiveSessionExists { existing_id }) if existing_id == "legacy1"
    ));
    // A new message is written in the new format next to the legacy ones.
    store
        .append_message("legacy1", &msg(Sender::User, "new format", 3))
        .await
        .unwrap();
    let d = raw(&store, "legacy1").await;
    let third = d.get_array(f::MESSAGES).unwrap()[2]
        .as_document()
        .unwrap()
        .get_str(f::MSG_CONTENT)
        .unwrap()
        .to_owned();
    assert!(third.starts_with("enc:v1:k2:"));
    let s = store.get_session("legacy1").await.unwrap().unwrap();
    assert_eq!(s.messages.len(), 3);
    assert_eq!(s.messages[2].content, "new format");
}

#[tokio::test]
async fn several_legacy_active_sessions_of_one_user_keep_only_the_newest_active() {
    let server = TestMongo::start().unwrap();
    let seed = connect_mongo(server.uri(), Encryptor::disabled(), policy()).await;
    for (id, start) in [("old", 0), ("newer", 100)] {
        seed.collection()
            .insert_one(doc! { "_id": id, "uid": "x", "nm": "n", "ts": bson::DateTime::from_chrono(t(start)), "lastActivity": bson::DateTime::from_chrono(t(start + 5)), "msgs": [] })
            .await
            .unwrap();
    }
    drop(seed);
    let store = connect_mongo(server.uri(), Encryptor::disabled(), policy()).await;
    let active = store.load_active().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, "newer");
    let old = store.get_session("old").await.unwrap().unwrap();
    assert_eq!(old.end_time, Some(t(5)));
}

#[tokio::test]
async fn the_collection_has_the_protocol_indexes() {
    let server = TestMongo::start().unwrap();
    let store = connect_mongo(server.uri(), Encryptor::disabled(), policy()).await;
    let indexes: Vec<_> = store
        .collection()
        .list_indexes()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let find = |name: &str| {
        indexes
            .iter()
            .find(|i| i.options.as_ref().and_then(|o| o.name.as_deref()) == Some(name))
            .unwrap_or_else(|| panic!("index {name} missing"))
    };
    assert_eq!(find("idx_user_id").keys, doc! { "uid": 1 });
    assert_eq!(find("idx_start_time").keys, doc! { "ts": -1 });
    assert_eq!(find("idx_admin_assisted").keys, doc! { "adminAssisted": 1 });
    assert_eq!(
        find("idx_user_start_time").keys,
        doc! { "uid": 1, "ts": -1 }
    );
    let share = find("idx_share_token");
    assert_eq!(share.keys, doc! { "shareToken": 1 });
    let opts = share.options.as_ref().unwrap();
    assert_eq!((opts.unique, opts.sparse), (Some(true), Some(true)));
    let active = find(chat_storage::mongo::ACTIVE_SESSION_INDEX);
    assert_eq!(active.keys, doc! { "uid": 1 });
    let opts = active.options.as_ref().unwrap();
    assert_eq!(opts.unique, Some(true));
    assert_eq!(
        opts.partial_filter_expression,
        Some(doc! { "active": true })
    );
    // Connecting again (a restart) keeps the same indexes without error.
    connect_mongo(server.uri(), Encryptor::disabled(), policy()).await;
}

#[tokio::test]
async fn the_stored_document_uses_the_legacy_field_names() {
    let server = TestMongo::start().unwrap();
    let store = connect_mongo(server.uri(), Encryptor::disabled(), policy()).await;
    let mut s = full_session();
    s.end_time = None;
    store.create_session(&s).await.unwrap();
    store.end_session(&s.id, t(125)).await.unwrap();
    let d = raw(&store, &s.id).await;
    let keys: Vec<&str> = d.keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    let mut expected = vec![
        "_id",
        "uid",
        "nm",
        "modelId",
        "msgs",
        "ts",
        "endTs",
        "dur",
        "lastActivity",
        "adminAssisted",
        "assistingAdminId",
        "assistingAdminName",
        "helpRequested",
        "totalTokens",
        "maxRespTime",
        "avgRespTime",
        "respCount",
        "shareToken",
    ];
    expected.sort_unstable();
    assert_eq!(sorted, expected, "an ended session has no `active` marker");
    assert_eq!(d.get_i64(f::DURATION).unwrap(), 125);
    assert_eq!(
        d.get(f::END),
        Some(&Bson::DateTime(bson::DateTime::from_chrono(t(125))))
    );
    let m = d.get_array(f::MESSAGES).unwrap()[2].as_document().unwrap();
    assert_eq!(m.get_str("fileId").unwrap(), "file-1");
    assert_eq!(
        m.get_str("fileUrl").unwrap(),
        "https://files.example.com/file-1.png"
    );
    assert_eq!(m.get_str("sender").unwrap(), "user");
    assert_eq!(
        store.get_session(&s.id).await.unwrap().unwrap(),
        full_session()
    );
}

#[tokio::test]
async fn a_full_write_queue_refuses_new_writes_while_the_server_is_down() {
    let mut server = TestMongo::start().unwrap();
    let retry = RetryPolicy::new(
        1,
        Duration::from_millis(50),
        Duration::from_millis(200),
        Duration::from_millis(500),
    );
    let mongo = connect_mongo(server.uri(), Encryptor::disabled(), retry.clone()).await;
    let store = WriteBehindStore::start(Arc::new(mongo), 5, retry, Duration::from_millis(500));
    store.create_session(&session("s", "u", 0)).await.unwrap();
    server.stop();
    for i in 0..5 {
        store
            .append_message("s", &msg(Sender::User, &format!("q{i}"), i))
            .await
            .unwrap();
    }
    let err = store
        .append_message("s", &msg(Sender::User, "one too many", 9))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::QueueFull { capacity: 5 }),
        "{err:?}"
    );
    server.restart().unwrap();
    assert_eq!(store.flush(Duration::from_secs(30)).await, 0);
    let s = store.get_session("s").await.unwrap().unwrap();
    assert_eq!(
        s.messages.len(),
        5,
        "every accepted write landed, the refused one did not"
    );
    store.shutdown(Duration::from_secs(1)).await.unwrap();
}
