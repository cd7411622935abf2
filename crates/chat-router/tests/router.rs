//! The router's chat semantics over the fake provider server (real HTTP).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::{ErrorCode, MessageType, Sender};
use chat_router::{ConnectionHandle, Identity, META_INTERRUPTED};
use chat_storage::{MockSessionStore, StoreError};
use chat_testkit::fake_llm::{Script, Step};
use common::*;
use serde_json::json;

fn is_hex32(s: &str) -> bool {
    s.len() == 32
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

#[tokio::test]
async fn production_issue_02_session_id_consistency() {
    let h = Harness::with_script(Script::reply(["Hi", " there"]), LLM_TIMEOUTS).await;
    let mut user = h.connect("alice");
    let status = user.next_of(MessageType::ConnectionStatus).await;
    assert_eq!(
        status.session_id.as_deref(),
        Some(""),
        "no active session yet"
    );

    // The client proposes an id the server does not know: it is replaced.
    user.send_json(
        json!({"type": "user_message", "session_id": "client-made-this-up", "content": "hello"}),
    )
    .await;
    let bound = user.next_of(MessageType::ConnectionStatus).await;
    let id = bound.session_id.clone().unwrap();
    assert!(is_hex32(&id), "server-generated id, got {id}");
    let frames = user.reply().await;
    assert!(frames
        .iter()
        .all(|f| f.session_id.as_deref() == Some(id.as_str())));

    // The same id in the manager, the store and the connection registry.
    let session = h.router.sessions().get(&id).expect("in the manager");
    assert_eq!(session.user_id(), "alice");
    assert_eq!(
        h.router.bound_session(user.id()).as_deref(),
        Some(id.as_str())
    );
    let log = h.log.lock().clone();
    assert_eq!(log.first(), Some(&Write::Create(id.clone())));
    assert!(
        log.contains(&Write::Name(id.clone())),
        "the derived name is persisted"
    );
    assert!(log
        .iter()
        .any(|w| matches!(w, Write::Append(sid, m) if sid == &id && m.content == "hello")));
}

#[tokio::test]
async fn production_issue_02_create_new_session_flow() {
    let fake = chat_testkit::fake_llm::FakeLlmServer::start(Script::reply(["ok"]))
        .await
        .unwrap();
    let config = config(LLM_TIMEOUTS, Some(&fake));
    let log: WriteLog = Arc::default();
    let mut store = MockSessionStore::new();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let l = log.clone();
    store.expect_create_session().returning(move |s| {
        // The first attempt fails (database down), the retry succeeds.
        if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Err(StoreError::Unavailable("connection refused".into()))
        } else {
            l.lock().push(Write::Create(s.id.clone()));
            Ok(())
        }
    });
    permissive_rest(&mut store, log.clone());
    let h = Harness::build(config, store, log, Some(fake));
    let mut user = h.connect("bob");
    user.next_of(MessageType::ConnectionStatus).await;

    user.say("first try").await;
    let error = user.next_of(MessageType::Error).await;
    assert_eq!(error.error.as_ref().unwrap().code, ErrorCode::DatabaseError);
    // Rolled back completely: no session in memory, no mapping, no binding.
    assert!(h.router.sessions().active_for_user("bob").is_none());
    assert_eq!(h.router.sessions().stats().total, 0);
    assert_eq!(h.router.bound_session(user.id()), None);
    assert_eq!(h.router.live_session_count(), 0);
    assert!(
        h.log.lock().is_empty(),
        "nothing persisted for the failed create"
    );

    // The user retries and it works, with a fresh server id.
    user.say("second try").await;
    let status = user.next_of(MessageType::ConnectionStatus).await;
    let id = status.session_id.unwrap();
    assert!(is_hex32(&id));
    let frames = user.reply().await;
    assert!(frames.last().unwrap().is_done());
    assert_eq!(h.router.sessions().active_for_user("bob").unwrap().id(), id);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn production_issue_03_connection_replacement() {
    let h = Harness::with_script(Script::reply(["one", " two", " three"]), LLM_TIMEOUTS).await;
    let mut phone = h.connect("carol");
    phone.next_of(MessageType::ConnectionStatus).await;
    let mut laptop = h.connect("carol");
    laptop.next_of(MessageType::ConnectionStatus).await;

    phone.say("hi from the phone").await;
    let phone_frames = phone.reply().await;
    // The laptop joined the same session instead of silently replacing the phone.
    let laptop_frames = laptop.reply().await;
    assert_eq!(text_of(&phone_frames), "one two three");
    assert_eq!(text_of(&laptop_frames), "one two three");
    assert!(laptop_frames
        .iter()
        .any(|m| m.kind == MessageType::UserMessage
            && m.content.as_deref() == Some("hi from the phone")));

    // Registering the same connection twice changes nothing.
    h.router.register(phone.handle.clone());
    assert_eq!(h.router.connection_count(), 2);
}

#[tokio::test]
async fn production_issue_03_unregister_connection() {
    let h = Harness::with_script(
        Script::reply(["a", "b", "c", "d"]).chunk_delay(Duration::from_millis(30)),
        LLM_TIMEOUTS,
    )
    .await;
    let mut first = h.connect("dave");
    let mut second = h.connect("dave");
    first.next_of(MessageType::ConnectionStatus).await;
    second.next_of(MessageType::ConnectionStatus).await;
    first.say("hello").await;
    first.next_of(MessageType::AiResponse).await;

    // Unregister the first device mid-stream: only its entry goes.
    h.router.disconnect(first.id());
    assert_eq!(h.router.connection_count(), 1);
    assert_eq!(h.router.bound_session(first.id()), None);
    assert!(h.router.bound_session(second.id()).is_some());
    h.router.disconnect(first.id()); // twice is harmless

    let frames = second.reply().await;
    assert!(frames.last().unwrap().is_done());
    assert_eq!(text_of(&frames), "abcd");
    // No task is left behind once the reply finished.
    h.wait_idle().await;
    assert_eq!(h.router.task_count(), 0);
    h.router.disconnect(second.id());
    assert_eq!(h.router.connection_count(), 0);
}

#[tokio::test]
async fn production_issue_07_validation_called() {
    let h = Harness::with_script(Script::reply(["never"]), LLM_TIMEOUTS).await;
    let mut user = h.connect("erin");
    user.next_of(MessageType::ConnectionStatus).await;
    let cases = [
        ("{not json", None),
        (r#"{"type":"teleport","content":"x"}"#, Some("type")),
        (r#"{"type":"user_message"}"#, Some("content")),
        (
            r#"{"type":"user_message","content":"   "}"#,
            Some("content"),
        ),
        (r#"{"type":"model_select"}"#, Some("model_id")),
        (
            r#"{"type":"file_upload","file_id":"f","file_url":"http://insecure.example/x"}"#,
            Some("file_url"),
        ),
        (
            r#"{"type":"ai_response","content":"spoofed"}"#,
            Some("type"),
        ),
    ];
    let oversized = json!({"type": "user_message", "content": "x".repeat(10_001)}).to_string();
    for (frame, field) in cases
        .iter()
        .map(|(f, n)| (f.to_string(), *n))
        .chain([(oversized, Some("content"))])
    {
        h.router.handle_text(user.id(), &frame).await;
        let reply = user.next().await;
        assert_eq!(reply.kind, MessageType::Error, "{frame}");
        let error = reply.error.unwrap();
        assert_eq!(error.code, ErrorCode::InvalidFormat, "{frame}");
        if let Some(field) = field {
            assert!(error.message.contains(field), "{frame}: {}", error.message);
        }
    }
    // None of them reached routing: no session, nothing stored, no LLM call.
    assert_eq!(h.router.sessions().stats().total, 0);
    assert!(h.log.lock().is_empty());
    assert_eq!(h.fake.as_ref().unwrap().request_count(), 0);
    // The connection is still usable.
    user.say("now a valid one").await;
    assert!(user.reply().await.last().unwrap().is_done());
}

#[tokio::test]
async fn sanitized_content_reaches_the_store_unescaped() {
    let h = Harness::with_script(Script::reply(["ok"]), LLM_TIMEOUTS).await;
    let mut user = h.connect("frank");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("  <script>alert(1)</script>\u{0}  ").await;
    user.reply().await;
    let stored: Vec<String> = h
        .log
        .lock()
        .iter()
        .filter_map(|w| match w {
            Write::Append(_, m) if m.sender == Sender::User => Some(m.content.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(stored, vec!["<script>alert(1)</script>".to_owned()]);
}

#[tokio::test]
async fn production_issue_08_router_timeout_frame() {
    let extra = "[llm]\nfirst_token_timeout = \"300ms\"\nidle_timeout = \"300ms\"\ntotal_timeout = \"5s\"\n";
    // Hangs before the first byte.
    let h = Harness::with_script(Script::reply(["never"]).hang_before_headers(), extra).await;
    let mut user = h.connect("gina");
    user.next_of(MessageType::ConnectionStatus).await;
    let started = Instant::now();
    user.say("are you there?").await;
    let error = user.next_of(MessageType::Error).await;
    assert_eq!(error.error.unwrap().code, ErrorCode::LlmTimeout);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    h.wait_idle().await;
    let fake = h.fake.as_ref().unwrap();
    assert!(
        fake.wait_for_open_streams(0, Duration::from_secs(5)).await,
        "provider socket released"
    );

    // Hangs mid-stream: the chunks before the hang are delivered, then LLM_TIMEOUT.
    fake.set_default(Script::reply(["partial"]).hang_after(1));
    user.say("again").await;
    let frames = user.until(|m| m.kind == MessageType::Error).await;
    assert_eq!(text_of(&frames), "partial");
    assert_eq!(
        frames.last().unwrap().error.as_ref().unwrap().code,
        ErrorCode::LlmTimeout
    );
    h.wait_idle().await;
    assert!(fake.wait_for_open_streams(0, Duration::from_secs(5)).await);
    // The partial reply is kept, marked with the error.
    let ai = h.appended_ai_texts();
    assert_eq!(ai.last().unwrap().content, "partial");
    assert_eq!(
        ai.last()
            .unwrap()
            .metadata
            .get(META_INTERRUPTED)
            .map(String::as_str),
        Some("LLM_TIMEOUT")
    );
}

#[tokio::test]
async fn reply_completes_and_is_persisted_when_every_socket_drops() {
    let h = Harness::with_script(
        Script::reply(["The", " reply", " survives", " the", " socket."])
            .chunk_delay(Duration::from_millis(40)),
        LLM_TIMEOUTS,
    )
    .await;
    let mut user = h.connect("hank");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("tell me something").await;
    let first = user.next_of(MessageType::AiResponse).await;
    let seen_seq = first.seq().unwrap();
    let session_id = first.session_id.clone().unwrap();
    h.router.disconnect(user.id());
    drop(user);

    h.wait_idle().await;
    let ai = h.appended_ai_texts();
    assert_eq!(ai.len(), 1);
    assert_eq!(ai[0].content, "The reply survives the socket.");
    assert!(h
        .log
        .lock()
        .iter()
        .any(|w| matches!(w, Write::Stats(id) if id == &session_id)));

    // A new connection resumes after the last seen chunk: exactly the missed ones.
    let mut again = h.connect("hank");
    again.next_of(MessageType::ConnectionStatus).await;
    again
        .send_json(json!({"type": "resume", "session_id": session_id, "metadata": {"last_seq": seen_seq.to_string()}}))
        .await;
    again.next_of(MessageType::ConnectionStatus).await;
    let replayed = again.reply().await;
    let seqs: Vec<u64> = replayed.iter().filter_map(|m| m.seq()).collect();
    let expected: Vec<u64> = (seen_seq + 1..=seqs.last().copied().unwrap()).collect();
    assert_eq!(seqs, expected, "no chunk lost or duplicated");
    assert_eq!(
        format!("{}{}", first.content.unwrap(), text_of(&replayed)),
        "The reply survives the socket."
    );
}

#[tokio::test]
async fn resume_mid_stream_continues_live_without_gaps() {
    let h = Harness::with_script(
        Script::reply((0..12).map(|i| format!("w{i} "))).chunk_delay(Duration::from_millis(25)),
        LLM_TIMEOUTS,
    )
    .await;
    let mut user = h.connect("iris");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("count").await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let m = user.next().await;
        if m.kind == MessageType::AiResponse {
            seen.push(m);
        }
    }
    let session_id = seen[0].session_id.clone().unwrap();
    let last_seq = seen.last().unwrap().seq().unwrap();
    h.router.disconnect(user.id());

    let mut back = h.connect("iris");
    back.send_json(json!({"type": "resume", "session_id": session_id, "metadata": {"last_seq": last_seq.to_string()}}))
        .await;
    let rest = back.reply().await;
    let mut all = seen;
    all.extend(rest);
    let seqs: Vec<u64> = all
        .iter()
        .filter(|m| m.kind == MessageType::AiResponse)
        .filter_map(|m| m.seq())
        .collect();
    let mut sorted = seqs.clone();
    sorted.dedup();
    assert_eq!(seqs, sorted, "strictly increasing, no duplicates");
    assert_eq!(
        seqs.windows(2).filter(|w| w[1] != w[0] + 1).count(),
        0,
        "no gaps: {seqs:?}"
    );
    assert_eq!(
        text_of(&all),
        (0..12).map(|i| format!("w{i} ")).collect::<String>()
    );
}

#[tokio::test]
async fn stop_cancels_and_keeps_the_partial_reply() {
    let h = Harness::with_script(
        Script::reply((0..50).map(|i| format!("t{i} "))).chunk_delay(Duration::from_millis(30)),
        LLM_TIMEOUTS,
    )
    .await;
    let mut user = h.connect("jack");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("long answer please").await;
    user.next_of(MessageType::AiResponse).await;
    user.send_json(json!({"type": "stop"})).await;
    let frames = user.reply().await;
    let last = frames.last().unwrap();
    assert!(last.is_done());
    assert_eq!(
        last.metadata.get(META_INTERRUPTED).map(String::as_str),
        Some("stopped")
    );
    h.wait_idle().await;
    let ai = h.appended_ai_texts();
    assert_eq!(ai.len(), 1);
    assert!(ai[0].content.starts_with("t0 "));
    assert!(ai[0].content.len() < (0..50).map(|i| format!("t{i} ").len()).sum::<usize>());
    assert_eq!(
        ai[0].metadata.get(META_INTERRUPTED).map(String::as_str),
        Some("stopped")
    );
    let fake = h.fake.as_ref().unwrap();
    assert!(
        fake.wait_for_open_streams(0, Duration::from_secs(5)).await,
        "provider stream closed"
    );
}

#[tokio::test]
async fn a_second_message_during_a_reply_is_refused_without_a_trace() {
    let h = Harness::with_script(
        Script::reply(["slow", " reply"]).chunk_delay(Duration::from_millis(200)),
        LLM_TIMEOUTS,
    )
    .await;
    let mut user = h.connect("kim");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("first").await;
    user.next_of(MessageType::Loading).await;
    user.say("second").await;
    let error = user.next_of(MessageType::Error).await;
    assert_eq!(error.error.unwrap().code, ErrorCode::TooManyRequests);
    user.reply().await;
    let users: Vec<String> = h
        .log
        .lock()
        .iter()
        .filter_map(|w| match w {
            Write::Append(_, m) if m.sender == Sender::User => Some(m.content.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(users, vec!["first".to_owned()]);
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_and_others_get_everything() {
    let h = Harness::with_script(
        Script::reply((0..40).map(|i| format!("{i},"))),
        LLM_TIMEOUTS,
    )
    .await;
    let mut fast = h.connect("lee");
    fast.next_of(MessageType::ConnectionStatus).await;
    // A device whose queue holds 4 frames and that never reads.
    let (slow, _slow_rx) = ConnectionHandle::new(
        999_999,
        Identity {
            user_id: "lee".into(),
            name: "lee".into(),
            is_admin: false,
        },
        4,
    );
    h.router.register(slow.clone());
    fast.say("many chunks").await;
    let frames = fast.reply().await;
    assert_eq!(
        text_of(&frames),
        (0..40).map(|i| format!("{i},")).collect::<String>()
    );
    assert!(slow.is_closed(), "slow consumer was told to go away");
    assert_eq!(
        slow.close_reason(),
        Some(chat_router::CloseReason::SlowConsumer)
    );
}

#[tokio::test]
async fn takeover_chat_both_ways_and_release() {
    let h = Harness::with_script(Script::reply(["AI", " here"]), LLM_TIMEOUTS).await;
    let mut user = h.connect("maya");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("I need a human").await;
    let frames = user.reply().await;
    let session_id = frames[0].session_id.clone().unwrap();
    let calls_before = h.fake.as_ref().unwrap().request_count();

    let admin_identity = Identity {
        user_id: "root".into(),
        name: "Admin root".into(),
        is_admin: true,
    };
    assert!(h
        .router
        .takeover(&session_id, &admin_identity)
        .await
        .unwrap());
    assert!(
        !h.router
            .takeover(&session_id, &admin_identity)
            .await
            .unwrap(),
        "idempotent"
    );
    let other = Identity {
        user_id: "other".into(),
        name: "Other Admin".into(),
        is_admin: true,
    };
    match h.router.takeover(&session_id, &other).await {
        Err(chat_router::RouterError::AlreadyAssisted { admin_name, .. }) => {
            assert_eq!(admin_name, "Admin root")
        }
        r => panic!("expected AlreadyAssisted, got {r:?}"),
    }
    let join = user.next_of(MessageType::AdminJoin).await;
    assert_eq!(
        join.metadata.get("admin_name").map(String::as_str),
        Some("Admin root")
    );

    // Admin writes over WebSocket; the user sees it.
    let mut admin = h.connect_admin("root");
    admin.next_of(MessageType::ConnectionStatus).await;
    admin
        .send_json(json!({"type": "user_message", "session_id": session_id, "sender": "admin", "content": "Hello, I'm here"}))
        .await;
    let from_admin = user.next_of(MessageType::UserMessage).await;
    assert_eq!(from_admin.sender, Sender::Admin);
    assert_eq!(from_admin.content.as_deref(), Some("Hello, I'm here"));

    // The user's reply goes to the admin, not to the LLM.
    user.say("thanks!").await;
    let to_admin = admin.next_of(MessageType::UserMessage).await;
    assert_eq!(to_admin.content.as_deref(), Some("thanks!"));
    assert_eq!(h.fake.as_ref().unwrap().request_count(), calls_before);
    assert!(user
        .drain()
        .iter()
        .all(|m| m.kind != MessageType::Loading && m.kind != MessageType::AiResponse));

    // A non-admin cannot send as admin; another admin must take over first.
    let mut other_admin = h.connect_admin("other");
    other_admin.next_of(MessageType::ConnectionStatus).await;
    other_admin
        .send_json(json!({"type": "user_message", "session_id": session_id, "sender": "admin", "content": "x"}))
        .await;
    assert_eq!(
        other_admin
            .next_of(MessageType::Error)
            .await
            .error
            .unwrap()
            .code,
        ErrorCode::Forbidden
    );

    // Release: admin_leave, and the AI answers again.
    assert!(h
        .router
        .release(&session_id, &admin_identity)
        .await
        .unwrap());
    user.next_of(MessageType::AdminLeave).await;
    user.say("back to the bot").await;
    let frames = user.reply().await;
    assert_eq!(text_of(&frames), "AI here");
    let log = h.log.lock().clone();
    assert!(log.contains(&Write::Assist(session_id.clone(), Some("root".into()))));
    assert!(log.contains(&Write::Assist(session_id, None)));
}

#[tokio::test]
async fn no_ai_frame_follows_admin_join_when_taken_over_mid_stream() {
    for round in 0..5u64 {
        let h = Harness::with_script(
            Script::reply((0..30).map(|i| format!("c{i} ")))
                .chunk_delay(Duration::from_millis(5 + round)),
            LLM_TIMEOUTS,
        )
        .await;
        let mut user = h.connect("nora");
        user.next_of(MessageType::ConnectionStatus).await;
        user.say("stream please").await;
        let first = user.next_of(MessageType::AiResponse).await;
        let session_id = first.session_id.unwrap();
        tokio::time::sleep(Duration::from_millis(round * 7)).await;
        let admin = Identity {
            user_id: "root".into(),
            name: "Root".into(),
            is_admin: true,
        };
        h.router.takeover(&session_id, &admin).await.unwrap();
        let frames = user.until(|m| m.kind == MessageType::AdminJoin).await;
        assert!(frames
            .iter()
            .all(|m| !(m.kind == MessageType::AiResponse && m.is_done())));
        h.wait_idle().await;
        let after = user.drain();
        assert!(
            after.iter().all(|m| m.kind != MessageType::AiResponse),
            "round {round}: AI frame after admin_join: {after:?}"
        );
        let ai = h.appended_ai_texts();
        if let Some(partial) = ai.last() {
            assert_eq!(
                partial.metadata.get(META_INTERRUPTED).map(String::as_str),
                Some("admin_takeover")
            );
        }
    }
}

#[tokio::test]
async fn concurrent_takeovers_have_exactly_one_winner() {
    let h = Harness::with_script(Script::reply(["x"]), LLM_TIMEOUTS).await;
    let mut user = h.connect("olga");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("hi").await;
    let session_id = user.reply().await[0].session_id.clone().unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let router = h.router.clone();
        let id = session_id.clone();
        tasks.push(tokio::spawn(async move {
            let admin = Identity {
                user_id: format!("admin{i}"),
                name: format!("Admin {i}"),
                is_admin: true,
            };
            router.takeover(&id, &admin).await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => winners += 1,
            Err(chat_router::RouterError::AlreadyAssisted { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners, 1);
    let joins: Vec<_> = user
        .until(|m| m.kind == MessageType::AdminJoin)
        .await
        .into_iter()
        .filter(|m| m.kind == MessageType::AdminJoin)
        .collect();
    assert_eq!(joins.len(), 1);
}

#[tokio::test]
async fn ended_sessions_refuse_messages_and_a_new_one_starts() {
    let h = Harness::with_script(Script::reply(["ok"]), LLM_TIMEOUTS).await;
    let mut user = h.connect("pia");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("one").await;
    let first_id = user.reply().await[0].session_id.clone().unwrap();
    h.router.end_session(&first_id, "pia").await.unwrap();
    h.router.end_session(&first_id, "pia").await.unwrap(); // idempotent
    user.next_of(MessageType::Notification).await;
    assert!(matches!(
        h.router.end_session(&first_id, "mallory").await,
        Err(chat_router::RouterError::NotFound)
    ));
    // A message naming the ended session goes to a new session instead.
    user.send_json(json!({"type": "user_message", "session_id": first_id, "content": "two"}))
        .await;
    let status = user.next_of(MessageType::ConnectionStatus).await;
    let second_id = status.session_id.unwrap();
    assert_ne!(second_id, first_id);
    user.reply().await;
    assert!(!h.router.sessions().get(&first_id).unwrap().is_active());
}

#[tokio::test]
async fn ping_model_select_and_help_request() {
    let h = Harness::with_script(Script::reply(["ok"]), LLM_TIMEOUTS).await;
    let mut user = h.connect("quinn");
    let status = user.next_of(MessageType::ConnectionStatus).await;
    assert_eq!(status.models.unwrap()[0].id, "fake");
    user.send_json(json!({"type": "ping"})).await;
    user.next_of(MessageType::Pong).await;
    user.send_json(json!({"type": "model_select", "model_id": "nope"}))
        .await;
    assert_eq!(
        user.next_of(MessageType::Error).await.error.unwrap().code,
        ErrorCode::InvalidFormat
    );
    user.send_json(json!({"type": "model_select", "model_id": "fake"}))
        .await;
    let selected = user
        .until(|m| m.kind == MessageType::ConnectionStatus && m.model_id.is_some())
        .await;
    assert_eq!(selected.last().unwrap().model_id.as_deref(), Some("fake"));
    user.send_json(json!({"type": "help_request"})).await;
    user.next_of(MessageType::Notification).await;
    let session = h.router.sessions().active_for_user("quinn").unwrap();
    assert!(session.help_requested());
}

#[tokio::test]
async fn rate_limited_messages_get_retry_after() {
    let h = Harness::with_script(
        Script::reply(["ok"]),
        &format!("{LLM_TIMEOUTS}[rate_limits]\nuser_messages_per_minute = 1\n"),
    )
    .await;
    let mut user = h.connect("ruth");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("one").await;
    user.reply().await;
    user.say("two").await;
    let error = user.next_of(MessageType::Error).await.error.unwrap();
    assert_eq!(error.code, ErrorCode::TooManyRequests);
    assert!(error.retry_after.unwrap() >= 1);
}

#[tokio::test]
async fn provider_errors_become_error_frames() {
    let h = Harness::with_script(Script::status(500, "boom"), LLM_TIMEOUTS).await;
    let mut user = h.connect("sam");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("hi").await;
    let error = user.next_of(MessageType::Error).await.error.unwrap();
    assert_eq!(error.code, ErrorCode::LlmUnavailable);
    h.fake
        .as_ref()
        .unwrap()
        .set_default(Script::status(429, "slow down").retry_after("3"));
    user.say("again").await;
    let error = user.next_of(MessageType::Error).await.error.unwrap();
    assert_eq!(error.code, ErrorCode::TooManyRequests);
    assert_eq!(error.retry_after, Some(3000));
}

#[tokio::test]
async fn shutdown_cancels_generations_within_the_deadline() {
    let h = Harness::with_script(
        Script::steps(vec![Step::Text("forever".into()), Step::Hang]),
        LLM_TIMEOUTS,
    )
    .await;
    let mut user = h.connect("tess");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("hang").await;
    user.next_of(MessageType::AiResponse).await;
    let started = Instant::now();
    assert!(h.router.shutdown(Duration::from_secs(5)).await);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(h.router.task_count(), 0);
    let ai = h.appended_ai_texts();
    assert_eq!(
        ai.last()
            .unwrap()
            .metadata
            .get(META_INTERRUPTED)
            .map(String::as_str),
        Some("shutdown")
    );
    user.say("after shutdown").await;
    assert_eq!(
        user.next_of(MessageType::Error).await.error.unwrap().code,
        ErrorCode::InternalError
    );
}

#[tokio::test]
async fn a_message_right_after_done_is_accepted_and_stored_in_order() {
    let h = Harness::with_script(Script::reply(["r"]), LLM_TIMEOUTS).await;
    let mut user = h.connect("uri");
    user.next_of(MessageType::ConnectionStatus).await;
    for i in 0..5 {
        user.say(&format!("m{i}")).await;
        let frames = user.reply().await;
        assert!(frames.last().unwrap().is_done(), "round {i}: {frames:?}");
    }
    h.wait_idle().await;
    let order: Vec<(Sender, String)> = h
        .log
        .lock()
        .iter()
        .filter_map(|w| match w {
            Write::Append(_, m) => Some((m.sender, m.content.clone())),
            _ => None,
        })
        .collect();
    let expected: Vec<(Sender, String)> = (0..5)
        .flat_map(|i| {
            [
                (Sender::User, format!("m{i}")),
                (Sender::Ai, "r".to_owned()),
            ]
        })
        .collect();
    assert_eq!(order, expected);
}

#[tokio::test]
async fn ending_twice_notifies_once_and_release_unsubscribes_the_admin() {
    let h = Harness::with_script(Script::reply(["ok"]), LLM_TIMEOUTS).await;
    let mut user = h.connect("vic");
    user.next_of(MessageType::ConnectionStatus).await;
    user.say("hi").await;
    let id = user.reply().await[0].session_id.clone().unwrap();

    let admin = Identity {
        user_id: "root".into(),
        name: "Root".into(),
        is_admin: true,
    };
    h.router.takeover(&id, &admin).await.unwrap();
    let mut admin_conn = h.connect_admin("root");
    admin_conn.next_of(MessageType::ConnectionStatus).await;
    admin_conn
        .send_json(json!({"type": "user_message", "session_id": id, "sender": "admin", "content": "hello"}))
        .await;
    user.next_of(MessageType::UserMessage).await;
    h.router.release(&id, &admin).await.unwrap();
    user.next_of(MessageType::AdminLeave).await;
    user.say("after release").await;
    user.reply().await;
    h.wait_idle().await;
    let seen_by_admin = admin_conn.drain();
    assert!(
        seen_by_admin
            .iter()
            .all(|m| m.kind != MessageType::AiResponse),
        "the admin no longer follows the session: {seen_by_admin:?}"
    );

    h.router.end_session(&id, "vic").await.unwrap();
    h.router.end_session(&id, "vic").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let notices = user
        .drain()
        .into_iter()
        .filter(|m| m.kind == MessageType::Notification)
        .count();
    assert_eq!(notices, 1);
}

#[tokio::test]
async fn help_requests_reach_the_webhook() {
    use axum::routing::post;
    let received = Arc::new(parking_lot::Mutex::new(Vec::<serde_json::Value>::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let notifier = chat_router::DefaultNotifier::with_webhook(
        format!("http://{addr}/hook"),
        reqwest::Client::new(),
        &tracker,
        cancel.clone(),
    );
    use chat_router::HelpNotifier;
    notifier.notify(chat_router::HelpRequest {
        session_id: "s1".into(),
        user_id: "u1".into(),
        at: chrono::Utc::now(),
    });
    for _ in 0..200 {
        if !received.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = received.lock().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["event"], "help_request");
    assert_eq!(got[0]["session_id"], "s1");
    assert_eq!(got[0]["user_id"], "u1");
    // The webhook task is owned: cancelled and awaited.
    cancel.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .unwrap();
    server.abort();
}

#[tokio::test]
async fn a_user_message_the_store_refused_is_not_kept_twice_after_the_retry() {
    let fake = chat_testkit::fake_llm::FakeLlmServer::start(Script::reply(["ok"]))
        .await
        .unwrap();
    let config = config(LLM_TIMEOUTS, Some(&fake));
    let log: WriteLog = Arc::default();
    let mut store = MockSessionStore::new();
    let l = log.clone();
    store.expect_create_session().returning(move |s| {
        l.lock().push(Write::Create(s.id.clone()));
        Ok(())
    });
    let appends = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (a, l) = (appends.clone(), log.clone());
    // Declared before `permissive_rest`'s, so it answers every append: the first one
    // (the user's message) is refused, as by a full or unreachable store.
    store.expect_append_message().returning(move |id, m| {
        if a.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            return Err(StoreError::Unavailable("write queue full".into()));
        }
        l.lock().push(Write::Append(id.to_owned(), m.clone()));
        Ok(())
    });
    permissive_rest(&mut store, log.clone());
    let h = Harness::build(config, store, log, Some(fake));
    let fake = h.fake.as_ref().unwrap();
    let mut user = h.connect("erin");
    user.next_of(MessageType::ConnectionStatus).await;

    user.say("how far is the moon?").await;
    let bound = user.next_of(MessageType::ConnectionStatus).await;
    let id = bound.session_id.unwrap();
    let error = user.next_of(MessageType::Error).await;
    assert_eq!(error.error.as_ref().unwrap().code, ErrorCode::DatabaseError);
    let session = h.router.sessions().get(&id).unwrap();
    assert!(
        session.recent_messages(10).is_empty(),
        "the refused message is not in memory"
    );
    assert!(!session.is_named(), "nor is the name it gave the session");
    assert_eq!(fake.request_count(), 0, "no reply was generated for it");

    // "please retry": the same text again, accepted this time.
    user.say("how far is the moon?").await;
    let frames = user.reply().await;
    assert!(frames.last().unwrap().is_done());
    let request = fake.requests().pop().unwrap();
    let asked = request.body["messages"].to_string();
    assert_eq!(
        asked.matches("how far is the moon?").count(),
        1,
        "the provider saw the message once: {asked}"
    );
    let history: Vec<_> = session
        .recent_messages(10)
        .into_iter()
        .map(|m| (m.sender, m.content))
        .collect();
    assert_eq!(
        history,
        vec![
            (
                chat_session::Sender::User,
                "how far is the moon?".to_owned()
            ),
            (chat_session::Sender::Ai, "ok".to_owned()),
        ]
    );
    assert_eq!(session.name(), "how far is the moon?");
}
