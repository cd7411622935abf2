//! Measures message-append throughput of both stores (numbers for docs/STORAGE.md).
//!
//! `cargo run --release -p chat-storage --example append_throughput [messages]`
//!
//! Embedded: a temp redb file. MongoDB: a SecantusDB started by chat-testkit (installed
//! on first use). Encryption on (AES-256-GCM), 200-byte messages.

// A benchmark driver: failing loudly is the right behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_session::model::{Sender, SessionSnapshot, StoredMessage};
use chat_storage::{
    EmbeddedStore, Encryptor, MongoOptions, MongoStore, RetryPolicy, SessionStore, WriteBehindStore,
};
use chrono::Utc;

fn session(id: &str, user: &str) -> SessionSnapshot {
    let now = Utc::now();
    SessionSnapshot {
        name: "benchmark".to_owned(),
        model_id: "m".to_owned(),
        ..SessionSnapshot::new_active(id, user, now)
    }
}

fn message(i: usize) -> StoredMessage {
    StoredMessage::text(
        Sender::User,
        format!("{i:06} {}", "x".repeat(193)),
        Utc::now(),
    )
}

/// Appends `total` messages spread over `sessions` sessions with one task per
/// session; returns messages per second.
async fn run(store: Arc<dyn SessionStore>, label: &str, sessions: usize, total: usize) -> f64 {
    for s in 0..sessions {
        store
            .create_session(&session(
                &format!("{label}-{s}"),
                &format!("{label}-user-{s}"),
            ))
            .await
            .unwrap();
    }
    let per_session = total / sessions;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..sessions {
        let store = store.clone();
        let id = format!("{label}-{s}");
        tasks.spawn(async move {
            for i in 0..per_session {
                store.append_message(&id, &message(i)).await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let acknowledged = started.elapsed().as_secs_f64();
    // Write-behind: count until everything is actually in the database.
    let left = store.shutdown(Duration::from_secs(600)).await.unwrap();
    assert_eq!(left, 0);
    let secs = started.elapsed().as_secs_f64();
    let n = (per_session * sessions) as f64;
    if acknowledged < secs * 0.9 {
        println!(
            "  ({label}: callers acknowledged at {:.0} msg/s, {:.1} µs per append)",
            n / acknowledged,
            acknowledged * 1e6 / n
        );
    }
    n / secs
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4000);
    let enc = Encryptor::new(vec![("k1".to_owned(), [7u8; 32])]).unwrap();
    let retry = RetryPolicy::new(
        3,
        Duration::from_millis(100),
        Duration::from_secs(2),
        Duration::from_secs(5),
    );
    println!("append throughput, {total} messages of 200 bytes, AES-256-GCM on");

    for sessions in [1, 8] {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("bench.redb"), enc.clone()).unwrap();
        let rate = run(Arc::new(store), &format!("emb{sessions}"), sessions, total).await;
        println!(
            "embedded (redb, durable commit per append), {sessions} session(s): {rate:.0} msg/s"
        );
    }

    let server = chat_testkit::mongo::TestMongo::start().unwrap();
    let connect = || async {
        MongoStore::connect(
            MongoOptions {
                uri: server.uri(),
                database: "bench".to_owned(),
                collection: "sessions".to_owned(),
                connect_timeout: Duration::from_secs(5),
            },
            enc.clone(),
            retry.clone(),
        )
        .await
        .unwrap()
    };
    for sessions in [1, 8] {
        let rate = run(
            Arc::new(connect().await),
            &format!("mongo{sessions}"),
            sessions,
            total,
        )
        .await;
        println!("mongodb (SecantusDB, direct), {sessions} session(s): {rate:.0} msg/s");
    }
    for sessions in [1, 8] {
        let store = WriteBehindStore::start(
            Arc::new(connect().await),
            100_000,
            retry.clone(),
            Duration::from_secs(5),
        );
        let rate = run(Arc::new(store), &format!("wb{sessions}"), sessions, total).await;
        println!("mongodb via write-behind queue (until flushed), {sessions} session(s): {rate:.0} msg/s");
    }
}
