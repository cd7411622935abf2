//! (6) Storage: message append throughput on the embedded store and on MongoDB
//! (SecantusDB started by `chat-testkit`), through the `SessionStore` trait the
//! server uses.

use std::sync::Arc;
use std::time::Duration;

use chat_session::model::{Sender, SessionSnapshot, StoredMessage};
use chat_storage::{EmbeddedStore, Encryptor, MongoOptions, MongoStore, RetryPolicy, SessionStore};
use serde::Serialize;

use crate::clock::now_ns;
use crate::histogram::{Latencies, Summary};
use crate::BenchError;

/// One backend's append throughput.
#[derive(Debug, Clone, Serialize)]
pub struct StorageResult {
    /// `embedded` or `mongodb`.
    pub backend: String,
    /// Messages appended.
    pub appends: usize,
    /// Concurrent writers (one session each).
    pub writers: usize,
    /// Wall time of all appends.
    pub seconds: f64,
    /// appends / seconds.
    pub appends_per_s: f64,
    /// Latency of one append.
    pub latency: Summary,
}

/// The embedded (redb) store in a temporary directory.
pub async fn embedded(appends: usize, writers: usize) -> Result<StorageResult, BenchError> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(&dir.path().join("bench.redb"), Encryptor::disabled())
        .map_err(|e| BenchError::Storage(e.to_string()))?;
    measure("embedded", Arc::new(store), appends, writers).await
}

/// MongoDB: starts a SecantusDB server (installing it if needed) and measures
/// against it.
pub async fn mongodb(appends: usize, writers: usize) -> Result<StorageResult, BenchError> {
    let mongo = tokio::task::spawn_blocking(chat_testkit::mongo::TestMongo::start)
        .await
        .map_err(|e| BenchError::Storage(format!("mongo launcher: {e}")))?
        .map_err(|e| BenchError::Storage(format!("cannot start SecantusDB: {e}")))?;
    let options = MongoOptions {
        uri: mongo.uri(),
        database: "chatbox_bench".to_owned(),
        collection: "sessions".to_owned(),
        connect_timeout: Duration::from_secs(10),
    };
    let retry = RetryPolicy::new(
        3,
        Duration::from_millis(50),
        Duration::from_secs(1),
        Duration::from_secs(10),
    );
    let store = MongoStore::connect(options, Encryptor::disabled(), retry)
        .await
        .map_err(|e| BenchError::Storage(e.to_string()))?;
    let result = measure("mongodb", Arc::new(store), appends, writers).await;
    drop(mongo);
    result
}

/// Creates one session per writer, then appends `appends` messages split across the
/// writers, each writer sequentially (like one session's generation task).
pub async fn measure(
    backend: &str,
    store: Arc<dyn SessionStore>,
    appends: usize,
    writers: usize,
) -> Result<StorageResult, BenchError> {
    let writers = writers.max(1);
    let now = chrono::Utc::now();
    for w in 0..writers {
        store
            .create_session(&session(w, now))
            .await
            .map_err(|e| BenchError::Storage(e.to_string()))?;
    }
    let start = now_ns();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = store.clone();
        let count = appends / writers + usize::from(w < appends % writers);
        let mut latency = Latencies::new()?;
        tasks.spawn(async move {
            let id = session_id(w);
            for n in 0..count {
                let message = StoredMessage::text(
                    if n % 2 == 0 { Sender::User } else { Sender::Ai },
                    format!(
                        "benchmark message {n} of writer {w}: {}",
                        "lorem ipsum ".repeat(12)
                    ),
                    chrono::Utc::now(),
                );
                let t0 = now_ns();
                store
                    .append_message(&id, &message)
                    .await
                    .map_err(|e| BenchError::Storage(e.to_string()))?;
                latency.record_ns(now_ns().saturating_sub(t0));
            }
            Ok::<_, BenchError>(latency)
        });
    }
    let mut latency = Latencies::new()?;
    while let Some(joined) = tasks.join_next().await {
        let writer = joined.map_err(|e| BenchError::Storage(format!("writer task: {e}")))??;
        latency.merge(&writer)?;
    }
    let seconds = now_ns().saturating_sub(start) as f64 / 1e9;
    let summary = latency.summary();
    println!(
        "  storage {backend}: {appends} appends in {seconds:.2} s ({:.0}/s), p99 {:.0} µs",
        appends as f64 / seconds.max(1e-9),
        summary.p99_us
    );
    Ok(StorageResult {
        backend: backend.to_owned(),
        appends,
        writers,
        seconds,
        appends_per_s: appends as f64 / seconds.max(1e-9),
        latency: summary,
    })
}

fn session_id(writer: usize) -> String {
    format!("{:032x}", 0xbe_0000 + writer)
}

fn session(writer: usize, now: chrono::DateTime<chrono::Utc>) -> SessionSnapshot {
    SessionSnapshot {
        name: "Benchmark".to_owned(),
        model_id: "fake".to_owned(),
        ..SessionSnapshot::new_active(session_id(writer), format!("bench-writer-{writer}"), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_appends_are_counted_and_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            EmbeddedStore::open(&dir.path().join("t.redb"), Encryptor::disabled()).unwrap(),
        );
        let result = measure("embedded", store.clone(), 7, 3).await.unwrap();
        assert_eq!(result.latency.count, 7);
        let stored: usize = futures::future::join_all((0..3).map(|w| {
            let store = store.clone();
            async move {
                store
                    .get_session(&session_id(w))
                    .await
                    .unwrap()
                    .unwrap()
                    .messages
                    .len()
            }
        }))
        .await
        .into_iter()
        .sum();
        assert_eq!(stored, 7);
    }
}
