//! `open_store` picks the backend from the validated configuration.

// Fixtures outside #[test] fns: a failure should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chat_config::Config;
use chat_session::model::Sender;
use chat_storage::open_store;
use chat_testkit::mongo::TestMongo;
use common::*;

const KEY: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn the_default_is_the_embedded_file_store_and_history_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/chat.redb");
    let path_text = path.to_str().unwrap().to_owned();
    let env = HashMap::from([
        ("CHATBOX_EMBEDDED_PATH", path_text.as_str()),
        ("ENCRYPTION_KEY", KEY),
    ]);
    let config = Config::from_toml_str("", &env).unwrap();
    {
        let store = open_store(&config).await.unwrap();
        store.create_session(&session("s", "u", 0)).await.unwrap();
        store
            .append_message("s", &msg(Sender::User, "a very secret message", 1))
            .await
            .unwrap();
        assert_eq!(
            store.health().queue_capacity,
            config.storage.write_queue_capacity,
            "embedded writes go through the write-behind queue too"
        );
        store.shutdown(Duration::from_secs(1)).await.unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        !bytes.windows(6).any(|w| w == b"secret"),
        "content is encrypted on disk"
    );
    let store = open_store(&config).await.unwrap();
    let s = store.get_session("s").await.unwrap().unwrap();
    assert_eq!(s.messages[0].content, "a very secret message");
}

#[tokio::test]
async fn mongo_uri_selects_mongodb_behind_the_write_behind_queue() {
    let server = TestMongo::start().unwrap();
    let uri = server.uri();
    let env = HashMap::from([("MONGO_URI", uri.as_str())]);
    let config = Config::from_toml_str("", &env).unwrap();
    let store = open_store(&config).await.unwrap();
    assert_eq!(
        store.health().queue_capacity,
        config.storage.write_queue_capacity
    );
    store.create_session(&session("s", "u", 0)).await.unwrap();
    store
        .append_message("s", &msg(Sender::User, "hello", 1))
        .await
        .unwrap();
    // A read of the session waits for its queued writes.
    let s = store.get_session("s").await.unwrap().unwrap();
    assert_eq!(s.messages.len(), 1);
    store.ping().await.unwrap();
    assert_eq!(store.shutdown(Duration::from_secs(5)).await.unwrap(), 0);
}
