//! Memory follows active use: a session nobody is connected to releases its replay
//! buffer and in-memory messages after `sessions.release_grace`, resumes within the
//! grace period still replay, and the history comes back from the store (the real
//! embedded store behind the write-behind queue) on the next message.
//!
//! Time: the replies run on the real clock (the fake provider is a real HTTP server);
//! the grace period is crossed with tokio's paused clock (`pause` + `advance`), and
//! the clock is resumed before the next reply.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use chat_protocol::{MessageType, Sender};
use chat_router::ReleaseReport;
use chat_testkit::fake_llm::Script;
use common::*;
use serde_json::json;

const GRACE: Duration = Duration::from_secs(30);

fn extra(dir: &tempfile::TempDir) -> String {
    format!(
        "{LLM_TIMEOUTS}\n[sessions]\nrelease_grace = \"30s\"\n\n[storage]\nbackend = \"embedded\"\nembedded_path = {:?}\n",
        dir.path().join("chat.redb")
    )
}

/// Says `text` and returns the reply's frames.
async fn exchange(client: &mut Client, text: &str) -> Vec<chat_protocol::Message> {
    client.say(text).await;
    let frames = client.reply().await;
    assert!(
        frames.iter().all(|m| m.kind != MessageType::Error),
        "{frames:?}"
    );
    frames
}

#[tokio::test]
async fn an_idle_session_is_released_after_the_grace_period_and_reloads_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::with_configured_store(Script::reply(["Sure", ", noted."]), &extra(&dir)).await;
    let mut user = h.connect("rosa");
    user.next_of(MessageType::ConnectionStatus).await;
    let first = exchange(&mut user, "my name is Rosa").await;
    exchange(&mut user, "I like tea").await;
    let session_id = first[0].session_id.clone().unwrap();
    let last_seq = user_last_seq(&first);
    h.wait_idle().await;
    let session = h.router.sessions().get(&session_id).unwrap();
    let before = session.recent_messages(usize::MAX);
    assert_eq!(before.len(), 4);

    // Connected: never released, however long it stays quiet.
    tokio::time::pause();
    tokio::time::advance(GRACE * 3).await;
    assert_eq!(
        h.router.release_idle(),
        ReleaseReport {
            in_use: 1,
            released: 0
        }
    );

    // The last device leaves: kept for the grace period, released after it.
    h.router.disconnect(user.id());
    drop(user);
    tokio::time::advance(GRACE - Duration::from_secs(1)).await;
    assert_eq!(h.router.release_idle().released, 0);
    assert_eq!(session.recent_messages(usize::MAX), before);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        h.router.release_idle(),
        ReleaseReport {
            in_use: 0,
            released: 1
        }
    );
    assert!(session.recent_messages(usize::MAX).is_empty());
    assert_eq!(session.message_count(), 4);
    assert!(session.is_active(), "released, not ended");

    // The user comes back: the same active session, and a resume from before the
    // release says the buffer is gone (the client reloads over HTTP).
    let mut back = h.connect("rosa");
    let status = back.next_of(MessageType::ConnectionStatus).await;
    assert_eq!(status.session_id.as_deref(), Some(session_id.as_str()));
    back.send_json(json!({"type": "resume", "session_id": session_id, "metadata": {"last_seq": (last_seq - 1).to_string()}}))
        .await;
    let frames = back.drain();
    assert!(
        frames
            .iter()
            .any(|m| m.metadata.get("replay_gap").map(String::as_str) == Some("true")),
        "{frames:?}"
    );

    // The next message reloads the history from the store: the provider sees the
    // whole conversation, and memory holds the same messages as before.
    tokio::time::resume();
    let third = exchange(&mut back, "what do I like?").await;
    assert!(
        third.iter().filter_map(|m| m.seq()).all(|s| s > last_seq),
        "sequence numbers go on after a release"
    );
    h.wait_idle().await;
    let request = h.fake.as_ref().unwrap().requests().pop().unwrap();
    let roles: Vec<(String, String)> = request.messages();
    assert_eq!(
        roles,
        [
            ("user", "my name is Rosa"),
            ("assistant", "Sure, noted."),
            ("user", "I like tea"),
            ("assistant", "Sure, noted."),
            ("user", "what do I like?"),
        ]
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
    );
    let now = session.recent_messages(usize::MAX);
    assert_eq!(at_ms(&now[..4]), at_ms(&before), "the same history");
    assert_eq!(now.len(), 6);
    assert_eq!(now[4].sender, Sender::User);
    let stored = h
        .router
        .store()
        .get_session(&session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        at_ms(&stored.messages),
        at_ms(&now),
        "memory and store agree"
    );
    assert_eq!(session.message_count(), 6);
}

/// Messages with their timestamps at the store's precision (milliseconds).
fn at_ms(messages: &[chat_session::StoredMessage]) -> Vec<chat_session::StoredMessage> {
    messages
        .iter()
        .cloned()
        .map(|mut m| {
            m.timestamp =
                chrono::DateTime::from_timestamp_millis(m.timestamp.timestamp_millis()).unwrap();
            m
        })
        .collect()
}

fn user_last_seq(frames: &[chat_protocol::Message]) -> u64 {
    frames.iter().filter_map(|m| m.seq()).max().unwrap()
}

#[tokio::test]
async fn a_resume_within_the_grace_period_still_replays_what_was_missed() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::with_configured_store(
        Script::reply(["One", " two", " three", " four."]).chunk_delay(Duration::from_millis(20)),
        &extra(&dir),
    )
    .await;
    let mut user = h.connect("sam");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("count to four").await;
    let first = user.next_of(MessageType::AiResponse).await;
    let seen = first.seq().unwrap();
    let session_id = first.session_id.clone().unwrap();
    h.router.disconnect(user.id());
    drop(user);
    h.wait_idle().await;

    // The reply finished with nobody connected; most of the grace period passes.
    tokio::time::pause();
    tokio::time::advance(GRACE - Duration::from_secs(1)).await;
    assert_eq!(h.router.release_idle().released, 0);

    let mut back = h.connect("sam");
    back.next_of(MessageType::ConnectionStatus).await;
    back.send_json(json!({"type": "resume", "session_id": session_id, "metadata": {"last_seq": seen.to_string()}}))
        .await;
    let frames = back.drain();
    assert!(
        frames
            .iter()
            .all(|m| !m.metadata.contains_key("replay_gap")),
        "{frames:?}"
    );
    let replayed: Vec<_> = frames
        .iter()
        .filter(|m| m.kind == MessageType::AiResponse)
        .collect();
    let seqs: Vec<u64> = replayed.iter().filter_map(|m| m.seq()).collect();
    assert_eq!(
        seqs,
        (seen + 1..=seqs.last().copied().unwrap()).collect::<Vec<_>>()
    );
    assert!(replayed.last().unwrap().is_done());
    let text: String = std::iter::once(first.content.clone().unwrap())
        .chain(replayed.iter().filter_map(|m| m.content.clone()))
        .collect();
    assert_eq!(text, "One two three four.");

    // Connected again: the grace period no longer runs.
    tokio::time::advance(GRACE * 2).await;
    assert_eq!(h.router.release_idle().released, 0);
}

#[tokio::test]
async fn a_reply_in_flight_keeps_the_session_and_the_grace_period_starts_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::with_configured_store(
        Script::reply(["slow", " reply"]).chunk_delay(Duration::from_millis(200)),
        &extra(&dir),
    )
    .await;
    let mut user = h.connect("tao");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("take your time").await;
    user.next_of(MessageType::Loading).await;
    h.router.disconnect(user.id());
    drop(user);
    // Nobody is connected, but the reply is still being generated.
    assert_eq!(h.router.release_idle().in_use, 1);
    h.wait_idle().await;

    tokio::time::pause();
    tokio::time::advance(GRACE - Duration::from_secs(1)).await;
    assert_eq!(h.router.release_idle().released, 0);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(h.router.release_idle().released, 1);
}

#[tokio::test(start_paused = true)]
async fn the_releaser_task_runs_the_passes_and_stops_on_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::with_configured_store(Script::reply(["hi"]), &extra(&dir)).await;
    // A session nobody has connected to (as after a restart's rehydration).
    let (session, _) = h
        .router
        .sessions()
        .get_or_create_active("uma", chrono::Utc::now());
    session
        .append(chat_session::StoredMessage::text(
            Sender::User,
            "hello",
            chrono::Utc::now(),
        ))
        .unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    h.router.spawn_releaser(cancel.clone(), &tracker);
    assert_eq!(chat_router::release_interval(GRACE), GRACE / 4);
    tokio::time::sleep(chat_router::release_interval(GRACE) + Duration::from_millis(1)).await;
    assert!(session.recent_messages(10).is_empty());
    assert_eq!(session.message_count(), 1);
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}
