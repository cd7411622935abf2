//! End to end: a real WebSocket client → chatbox → the fake provider over HTTP →
//! MongoDB (SecantusDB over TCP) with the legacy schema → the HTTP API.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chat_protocol::{Message, MessageType, Sender};
use chat_testkit::fake_llm::{FakeLlmServer, Script};
use chat_testkit::mongo::TestMongo;
use chat_testkit::ws_client::{ConnectOptions, WsClient};
use common::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

async fn ws(server: &TestServer, token: &str) -> WsClient {
    let url = format!("ws://{}/chatbox/ws", server.addr);
    WsClient::connect(&url, &ConnectOptions::bearer(token))
        .await
        .expect("upgrade accepted")
}

/// Frames until the final chunk of a reply (or an error).
async fn reply(client: &mut WsClient) -> Vec<Message> {
    let mut frames = Vec::new();
    loop {
        let m = client.next_message(WAIT).await.expect("frame");
        let last =
            (m.kind == MessageType::AiResponse && m.is_done()) || m.kind == MessageType::Error;
        frames.push(m);
        if last {
            return frames;
        }
    }
}

fn text(frames: &[Message]) -> String {
    frames
        .iter()
        .filter(|m| m.kind == MessageType::AiResponse)
        .filter_map(|m| m.content.clone())
        .collect()
}

#[tokio::test]
async fn chat_over_websocket_is_stored_in_mongodb_with_the_legacy_schema() {
    let mongo = tokio::task::spawn_blocking(TestMongo::start)
        .await
        .unwrap()
        .expect("MongoDB-wire test server");
    let fake = FakeLlmServer::start(
        Script::reply(["Paris", " is", " the", " capital."])
            .chunk_delay(Duration::from_millis(10))
            .usage(12, 4),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([("MONGO_URI".to_owned(), mongo.uri())]);
    let server = TestServer::start_with(
        fake,
        dir,
        "[storage.mongodb]\ndatabase = \"chat_e2e\"\n",
        &env,
    )
    .await;

    let token = server.token("alice");
    let mut client = ws(&server, &token).await;
    let hello = client
        .next_of_type(MessageType::ConnectionStatus, WAIT)
        .await
        .unwrap();
    assert_eq!(hello.user_id.as_deref(), Some("alice"));
    assert_eq!(hello.session_id.as_deref(), Some(""));
    assert_eq!(hello.models.unwrap()[0].id, "fake");

    client
        .send_json(&json!({"type": "user_message", "content": "What is the capital of France?"}))
        .await
        .unwrap();
    let frames = reply(&mut client).await;
    assert_eq!(text(&frames), "Paris is the capital.");
    let session_id = frames
        .iter()
        .find_map(|m| m.session_id.clone().filter(|s| !s.is_empty()))
        .unwrap();
    let seqs: Vec<u64> = frames.iter().filter_map(|m| m.seq()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert!(frames.last().unwrap().is_done());

    // The HTTP API returns the conversation.
    let http = http();
    let (status, detail) = get_json(
        &http,
        &server.url(&format!("/sessions/{session_id}")),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        detail["messages"][0]["content"],
        "What is the capital of France?"
    );
    assert_eq!(detail["messages"][1]["content"], "Paris is the capital.");

    // The raw document in MongoDB has the legacy field names (write-behind: poll).
    let client_db = mongodb::Client::with_uri_str(mongo.uri()).await.unwrap();
    let coll = client_db
        .database("chat_e2e")
        .collection::<mongodb::bson::Document>("sessions");
    let mut doc = None;
    for _ in 0..200 {
        if let Some(d) = coll
            .find_one(mongodb::bson::doc! {"_id": &session_id})
            .await
            .unwrap()
        {
            let msgs = d.get_array("msgs").map(|a| a.len()).unwrap_or(0);
            if msgs == 2
                && d.get_i64("totalTokens").unwrap_or(0)
                    + i64::from(d.get_i32("totalTokens").unwrap_or(0))
                    > 0
            {
                doc = Some(d);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let doc = doc.expect("document with both messages and stats in MongoDB");
    assert_eq!(doc.get_str("uid").unwrap(), "alice");
    assert_eq!(doc.get_str("nm").unwrap(), "What is the capital of France?");
    assert!(doc.get_datetime("ts").is_ok());
    assert!(doc.get("endTs").is_none() || doc.get("endTs") == Some(&mongodb::bson::Bson::Null));
    let msgs = doc.get_array("msgs").unwrap();
    let first = msgs[0].as_document().unwrap();
    assert_eq!(first.get_str("sender").unwrap(), "user");
    assert_eq!(
        first.get_str("content").unwrap(),
        "What is the capital of France?"
    );
    assert!(first.get_datetime("ts").is_ok());
    assert_eq!(
        msgs[1].as_document().unwrap().get_str("sender").unwrap(),
        "ai"
    );
    for field in [
        "modelId",
        "lastActivity",
        "adminAssisted",
        "totalTokens",
        "maxRespTime",
        "avgRespTime",
    ] {
        assert!(doc.contains_key(field), "missing {field} in {doc}");
    }
    client.close().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn takeover_end_to_end_user_and_admin_sockets_chat_both_ways() {
    let server = TestServer::start(Script::reply(["AI", " answer"]), "").await;
    let user_token = server.token("uma");
    let admin_token = server.admin_token("root");
    let mut user = ws(&server, &user_token).await;
    user.next_of_type(MessageType::ConnectionStatus, WAIT)
        .await
        .unwrap();
    user.send_json(&json!({"type": "user_message", "content": "help me please"}))
        .await
        .unwrap();
    let frames = reply(&mut user).await;
    let session_id = frames[0].session_id.clone().unwrap();

    // The admin takes over over HTTP; the user hears about it.
    let http = http();
    let (status, body) = post_json(
        &http,
        &server.url(&format!("/admin/takeover/{session_id}")),
        Some(&admin_token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let join = user
        .next_of_type(MessageType::AdminJoin, WAIT)
        .await
        .unwrap();
    assert_eq!(
        join.metadata.get("admin_name").map(String::as_str),
        Some("Admin root")
    );

    // Admin → user.
    let mut admin = ws(&server, &admin_token).await;
    admin
        .next_of_type(MessageType::ConnectionStatus, WAIT)
        .await
        .unwrap();
    admin
        .send_json(&json!({"type": "user_message", "session_id": session_id, "sender": "admin", "content": "Hi, a human here."}))
        .await
        .unwrap();
    let got = user
        .next_of_type(MessageType::UserMessage, WAIT)
        .await
        .unwrap();
    assert_eq!(got.sender, Sender::Admin);
    assert_eq!(got.content.as_deref(), Some("Hi, a human here."));

    // User → admin, and the LLM stays silent.
    let calls = server.fake.request_count();
    user.send_json(&json!({"type": "user_message", "content": "great, thanks"}))
        .await
        .unwrap();
    let to_admin = admin
        .next_of_type(MessageType::UserMessage, WAIT)
        .await
        .unwrap();
    assert_eq!(to_admin.content.as_deref(), Some("great, thanks"));
    assert_eq!(to_admin.sender, Sender::User);
    assert_eq!(server.fake.request_count(), calls);

    // Release: the AI answers again.
    let (status, _) = post_json(
        &http,
        &server.url(&format!("/admin/release/{session_id}")),
        Some(&admin_token),
    )
    .await;
    assert_eq!(status, 200);
    user.next_of_type(MessageType::AdminLeave, WAIT)
        .await
        .unwrap();
    user.send_json(&json!({"type": "user_message", "content": "bot?"}))
        .await
        .unwrap();
    assert_eq!(text(&reply(&mut user).await), "AI answer");

    // History has all of it, in order, with the senders.
    let (_, detail) = get_json(
        &http,
        &server.url(&format!("/sessions/{session_id}")),
        Some(&user_token),
    )
    .await;
    let senders: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sender"].as_str().unwrap())
        .collect();
    assert_eq!(senders, ["user", "ai", "admin", "user", "user", "ai"]);
    user.close().await.unwrap();
    admin.close().await.unwrap();
    server.stop().await;
}
