//! The WebSocket endpoint over a real socket: handshake refusals, validation through
//! the real handler, origin policy, connection limit, heartbeat, size limit, slow
//! consumers and shutdown.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chat_config::{Config, Mode};
use chat_protocol::{ErrorCode, Message, MessageType};
use chat_testkit::fake_llm::Script;
use chat_testkit::ws_client::{ConnectOptions, WsClient, WsClientError};
use chat_ws::OriginPolicy;
use common::*;
use http::HeaderValue;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn invalid_format(message: &Message) -> &str {
    assert_eq!(message.kind, MessageType::Error, "{message:?}");
    let error = message.error.as_ref().unwrap();
    assert_eq!(error.code, ErrorCode::InvalidFormat, "{message:?}");
    assert!(error.recoverable);
    &error.message
}

async fn assert_open(client: &mut WsClient) {
    client.send_json(&json!({"type": "ping"})).await.unwrap();
    let pong = client.next_message(FRAME_TIMEOUT).await.unwrap();
    assert_eq!(pong.kind, MessageType::Pong, "connection must stay open");
}

fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

// ---------------------------------------------------------------- READINESS #4

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn production_issue_04_session_id_data_race() {
    let server = Server::start(
        Script::reply(["ok"]),
        &format!("{LLM_TIMEOUTS}\n[rate_limits]\nuser_messages_per_minute = 100000\n"),
    )
    .await;
    let server = std::sync::Arc::new(server);
    let mut tasks = tokio::task::JoinSet::new();
    for user in ["alice", "bob"] {
        // A steady device: sends messages and collects every session id it sees.
        let s = server.clone();
        tasks.spawn(async move {
            let mut client = s.connect(user).await;
            let mut seen = Vec::new();
            for i in 0..15 {
                client
                    .send_json(&json!({"type": "user_message", "content": format!("steady {i}")}))
                    .await
                    .unwrap();
                for frame in reply(&mut client).await {
                    if let Some(error) = &frame.error {
                        assert_eq!(error.code, ErrorCode::TooManyRequests, "{frame:?}");
                    }
                    seen.extend(frame.session_id.filter(|s| !s.is_empty()));
                }
            }
            client.close().await.unwrap();
            (user, seen)
        });
        // A churning device: connects, sends, drops, again and again.
        for device in 0..2 {
            let s = server.clone();
            tasks.spawn(async move {
                let mut seen = Vec::new();
                for i in 0..10 {
                    let mut client = s.connect(user).await;
                    client
                        .send_json(&json!({"type": "user_message", "content": format!("churn {device} {i}")}))
                        .await
                        .unwrap();
                    if i % 2 == 0 {
                        // Wait for the first answer frame half of the time, drop at once otherwise.
                        let frame = client.next_message(FRAME_TIMEOUT).await.unwrap();
                        seen.extend(frame.session_id.filter(|s| !s.is_empty()));
                        client.close().await.unwrap();
                    } else {
                        drop(client);
                    }
                }
                (user, seen)
            });
        }
    }
    let mut by_user: HashMap<&str, Vec<String>> = HashMap::new();
    while let Some(result) = tasks.join_next().await {
        let (user, seen) = result.expect("no client task panicked");
        by_user.entry(user).or_default().extend(seen);
    }
    for user in ["alice", "bob"] {
        let active = server
            .router
            .sessions()
            .active_for_user(user)
            .expect("one active session");
        let seen = &by_user[user];
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|id| id == active.id()),
            "{user}: every frame names the one active session {}, saw {seen:?}",
            active.id()
        );
    }
    // Every connection is gone from every registry; nothing leaked.
    server
        .eventually(Duration::from_secs(10), "all connections released", |s| {
            s.router.connection_count() == 0
                && s.state.drain().connection_count() == 0
                && s.state.limiter().tracked_users() == 0
        })
        .await;
}

// ---------------------------------------------------------------- READINESS #7

#[tokio::test]
async fn production_issue_07_validation_called() {
    let server = Server::start(Script::reply(["fine"]), LLM_TIMEOUTS).await;
    let mut client = server.connect("val").await;
    let long = "x".repeat(10_001);
    let cases: Vec<(String, &str)> =
        vec![
        ("this is not json".to_owned(), "JSON"),
        (json!({"type": "user_message"}).to_string(), "content"),
        (json!({"type": "no_such_type", "content": "x"}).to_string(), "type"),
        (json!({"type": "user_message", "content": long}).to_string(), "content"),
        (
            json!({"type": "file_upload", "file_id": "f1", "file_url": "http://files.example/f1"})
                .to_string(),
            "file_url",
        ),
        (
            json!({"type": "model_select", "model_id": "m".repeat(101)}).to_string(),
            "model_id",
        ),
        (
            json!({"type": "user_message", "content": "x", "sender": "robot"}).to_string(),
            "sender",
        ),
        (
            json!({"type": "user_message", "content": "x", "session_id": "s".repeat(129)})
                .to_string(),
            "session_id",
        ),
    ];
    for (frame, field) in &cases {
        client.send_text(frame.clone()).await.unwrap();
        let answer = client.next_message(FRAME_TIMEOUT).await.unwrap();
        let message = invalid_format(&answer);
        assert!(
            message.to_lowercase().contains(&field.to_lowercase()),
            "error for {frame:.80} must name {field}: {message}"
        );
        assert_open(&mut client).await;
    }
    client.send_binary(vec![1, 2, 3]).await.unwrap();
    let answer = client.next_message(FRAME_TIMEOUT).await.unwrap();
    assert!(invalid_format(&answer).contains("binary"));
    assert_open(&mut client).await;

    // Nothing invalid reached routing: no session, no write, no provider call.
    assert!(server.writes().is_empty(), "{:?}", server.writes());
    assert_eq!(server.fake.request_count(), 0);
    assert!(server.router.sessions().active_for_user("val").is_none());

    // A valid frame does: NUL bytes stripped, surrounding whitespace trimmed, HTML kept.
    client
        .send_json(&json!({"type": "user_message", "content": "  <b>hi</b>\u{0000}  "}))
        .await
        .unwrap();
    let frames = reply(&mut client).await;
    assert!(frames
        .iter()
        .any(|f| f.kind == MessageType::AiResponse && f.is_done()));
    let stored: Vec<String> = server
        .writes()
        .into_iter()
        .filter_map(|w| match w {
            Write::Append(_, m) if m.sender == chat_session::Sender::User => Some(m.content),
            _ => None,
        })
        .collect();
    assert_eq!(stored, vec!["<b>hi</b>".to_owned()]);
}

// ---------------------------------------------------------------- READINESS #13 / #16

#[test]
fn production_issue_13_origin_validation_data_race() {
    let old: Vec<String> = (0..50).map(|i| format!("https://old{i}.example")).collect();
    let new: Vec<String> = (0..50).map(|i| format!("https://new{i}.example")).collect();
    let policy = OriginPolicy::new(Mode::Production, old.clone()).unwrap();
    let mut old_sorted = old.clone();
    old_sorted.sort();
    let mut new_sorted = new.clone();
    new_sorted.sort();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|scope| {
        let writer = {
            let policy = policy.clone();
            let (old, new) = (old.clone(), new.clone());
            let stop = stop.clone();
            scope.spawn(move || {
                let mut updates = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || updates < 200 {
                    let next = if updates % 2 == 0 {
                        new.clone()
                    } else {
                        old.clone()
                    };
                    policy.update(next).unwrap();
                    updates += 1;
                }
                updates
            })
        };
        let readers: Vec<_> = (0..4)
            .map(|t| {
                let policy = policy.clone();
                let (old_sorted, new_sorted) = (old_sorted.clone(), new_sorted.clone());
                scope.spawn(move || {
                    for i in 0..20_000usize {
                        let n = (i * 7 + t) % 50;
                        // Never allowed, whatever the list.
                        let evil = HeaderValue::from_static("https://evil.example");
                        assert!(!policy.check(Some(&evil)));
                        // A snapshot is exactly one of the two lists, never a mix.
                        if i % 64 == 0 {
                            let snapshot = policy.allowed_origins();
                            assert!(
                                snapshot == old_sorted || snapshot == new_sorted,
                                "torn allow-list of {} entries",
                                snapshot.len()
                            );
                        }
                        // Listed in one of the two lists: checked without tearing
                        // (the answer itself depends on which list is current).
                        let listed = if i % 2 == 0 {
                            format!("https://old{n}.example")
                        } else {
                            format!("https://new{n}.example")
                        };
                        policy.check(Some(&HeaderValue::from_str(&listed).unwrap()));
                    }
                })
            })
            .collect();
        for reader in readers {
            reader.join().expect("reader panicked");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(writer.join().expect("writer panicked") >= 200);
    });
    // The last update wins completely.
    let last = policy.allowed_origins();
    assert!(last == old_sorted || last == new_sorted);
}

#[tokio::test]
async fn production_issue_13_default_origin_behavior() {
    // Development, no list: loopback origins only.
    let dev = Server::start(Script::reply(["x"]), "").await;
    assert!(dev.config.server.allowed_origins.is_empty());
    assert!(dev.state.origins().is_loopback_only());
    for ok in [
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "http://[::1]:5173",
    ] {
        let client = dev
            .try_connect(&ConnectOptions::bearer(dev.token("u")).origin(ok))
            .await;
        assert!(client.is_ok(), "{ok} must be allowed: {:?}", client.err());
    }
    for bad in [
        "https://evil.example",
        "null",
        "http://localhost.evil.example",
    ] {
        let refused = dev
            .try_connect(&ConnectOptions::bearer(dev.token("u")).origin(bad))
            .await
            .expect_err("foreign origin refused");
        assert_eq!(refused.status(), Some(403), "{bad}");
        assert_eq!(refused.body_json().unwrap()["code"], "FORBIDDEN");
    }
    // Non-browser clients send no Origin: allowed (they still need a token).
    assert!(dev
        .try_connect(&ConnectOptions::bearer(dev.token("u")))
        .await
        .is_ok());

    // Production: the list is enforced, loopback is not implied.
    let listed =
        OriginPolicy::new(Mode::Production, vec!["https://chat.example.com".into()]).unwrap();
    let prod = Server::start_with(Script::reply(["x"]), "", Some(listed), None).await;
    let token = prod.token("p");
    assert!(prod
        .try_connect(&ConnectOptions::bearer(&token).origin("https://chat.example.com"))
        .await
        .is_ok());
    for bad in [
        "https://evil.example",
        "http://localhost:3000",
        "http://chat.example.com",
    ] {
        let refused = prod
            .try_connect(&ConnectOptions::bearer(&token).origin(bad))
            .await
            .expect_err("unlisted origin refused");
        assert_eq!(refused.status(), Some(403), "{bad}");
    }

    // No list never means "allow all": production with an empty list refuses every
    // browser origin, and the configuration refuses to load that way at all.
    let empty = OriginPolicy::new(Mode::Production, vec![]).unwrap();
    for origin in [
        "https://chat.example.com",
        "http://localhost:3000",
        "https://evil.example",
    ] {
        assert!(
            !empty.check(Some(&HeaderValue::from_str(origin).unwrap())),
            "{origin}"
        );
    }
    let refused = Config::from_toml_str(
        "mode = \"production\"\n[server]\nallowed_origins = []\n",
        &HashMap::<String, String>::new(),
    )
    .expect_err("production without origins must not load");
    assert!(
        refused.to_string().contains("server.allowed_origins"),
        "{refused}"
    );
}

// ---------------------------------------------------------------- READINESS #14

#[tokio::test]
async fn production_issue_14_connection_limit_notice() {
    let server = Server::start(
        Script::reply(["x"]),
        "[websocket]\nmax_connections_per_user = 2\n",
    )
    .await;
    let mut first = server.connect("lim").await;
    let mut second = server.connect("lim").await;
    let other_user = server.connect("someone-else").await;

    let refused = server
        .try_connect(&ConnectOptions::query_token(server.token("lim")))
        .await
        .expect_err("third connection refused");
    assert_eq!(refused.status(), Some(429));
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let body = refused.body_json().unwrap();
    assert_eq!(body["code"], "RATE_LIMITED");
    assert!(body["retry_after_ms"].as_u64().unwrap() >= 1);

    for client in [&mut first, &mut second] {
        let notice = client.next_message(FRAME_TIMEOUT).await.unwrap();
        assert_eq!(notice.kind, MessageType::Notification);
        assert!(notice.content.unwrap().contains("connection"));
    }
    drop(other_user);

    // Closing one frees its slot.
    first.close().await.unwrap();
    server
        .eventually(Duration::from_secs(10), "slot released", |s| {
            s.state.limiter().count("lim") == 1
        })
        .await;
    let mut third = server.connect("lim").await;
    assert_open(&mut third).await;
    assert_open(&mut second).await;
}

// ---------------------------------------------------------------- READINESS #15

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_issue_15_shutdown_timeout() {
    // The provider sends one chunk and then hangs: a stream stays in flight.
    let server = Server::start(
        Script::reply(["partial", " never"]).hang_after(1),
        "[llm]\nfirst_token_timeout = \"30s\"\nidle_timeout = \"60s\"\ntotal_timeout = \"120s\"\n",
    )
    .await;
    let mut streaming = server.connect("s1").await;
    let idle = server.connect("s2").await;
    // A client that never reads again: it will not answer our close frame.
    let silent = server.connect("s3").await;
    streaming
        .send_json(&json!({"type": "user_message", "content": "tell me"}))
        .await
        .unwrap();
    let chunk = streaming
        .next_of_type(MessageType::AiResponse, FRAME_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(chunk.content.as_deref(), Some("partial"));
    assert_eq!(server.fake.open_streams(), 1, "the stream is in flight");

    server.state.drain().start_drain();
    let refused = server
        .try_connect(&ConnectOptions::bearer(server.token("late")))
        .await
        .expect_err("upgrade during drain refused");
    assert_eq!(refused.status(), Some(503));
    assert_eq!(refused.body_json().unwrap()["code"], "SERVICE_UNAVAILABLE");

    // The two live clients read while the server drains (so they answer its close
    // frame); the silent one does not.
    let watchers: Vec<_> = [streaming, idle]
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move { client.expect_close(FRAME_TIMEOUT).await.unwrap() })
        })
        .collect();
    let deadline = Duration::from_millis(1500);
    let started = Instant::now();
    let (outcome, router_done) = tokio::join!(
        server.state.drain().drain(deadline),
        server.router.shutdown(deadline)
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < deadline * 3,
        "drain took {elapsed:?} for a {deadline:?} deadline"
    );
    assert!(
        router_done,
        "the in-flight generation was cancelled in time"
    );
    // The silent client never answers our close frame: it is the one force-aborted.
    assert_eq!(
        outcome,
        chat_ws::DrainOutcome {
            graceful: false,
            aborted: 1
        }
    );
    assert_eq!(server.state.drain().connection_count(), 0);
    assert_eq!(server.router.connection_count(), 0);
    assert_eq!(server.state.limiter().tracked_users(), 0);

    for watcher in watchers {
        let (code, reason) = watcher.await.unwrap();
        assert_eq!((code, reason.as_str()), (1001, "Server shutting down"));
    }
    // Even the silent client finds the close frame once it reads.
    let mut silent = silent;
    let (code, _) = silent.expect_close(FRAME_TIMEOUT).await.unwrap();
    assert_eq!(code, 1001);
}

// ---------------------------------------------------------------- JWT at the handshake

#[tokio::test]
async fn jwt_attacks_are_refused_at_the_handshake() {
    let server = Server::start(Script::reply(["x"]), "").await;
    let secret = {
        use secrecy::ExposeSecret;
        server.config.jwt_secret().expose_secret().to_owned()
    };
    let sign = |claims: &Value, key: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    };
    let good_claims = json!({"user_id": "mallory", "roles": ["user"], "exp": now() + 3600});
    let good = sign(&good_claims, &secret);
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good_claims)
    );
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        let admin = json!({"user_id": "mallory", "roles": ["admin"], "exp": now() + 3600});
        format!("{}.{}.{}", parts[0], b64(&admin), parts[2])
    };
    let attacks = [
        ("alg none", alg_none),
        (
            "wrong key",
            sign(&good_claims, "Zq9Wv4Lm7Tn2Rb5Xc8Hp3Jk6Yd1Gf0SeA"),
        ),
        (
            "expired",
            sign(
                &json!({"user_id": "mallory", "roles": [], "exp": now() - 3600}),
                &secret,
            ),
        ),
        ("tampered", tampered),
        (
            "missing user_id",
            sign(&json!({"roles": [], "exp": now() + 3600}), &secret),
        ),
        (
            "missing roles",
            sign(&json!({"user_id": "mallory", "exp": now() + 3600}), &secret),
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, token) in &attacks {
        for options in [
            ConnectOptions::bearer(token),
            ConnectOptions::query_token(token),
        ] {
            let refused = server
                .try_connect(&options)
                .await
                .expect_err("attack token refused");
            assert_eq!(refused.status(), Some(401), "{what}");
            assert_eq!(
                refused.body_json().unwrap()["code"],
                "INVALID_TOKEN",
                "{what}"
            );
        }
    }
    for options in [
        ConnectOptions::anonymous(),
        ConnectOptions::anonymous().header("authorization", format!("Basic {good}")),
    ] {
        let refused = server.try_connect(&options).await.expect_err("refused");
        assert_eq!(refused.status(), Some(401));
        assert_eq!(refused.body_json().unwrap()["code"], "UNAUTHORIZED");
    }
    // The genuine token works both ways; nothing was left registered by the refusals.
    for options in [
        ConnectOptions::bearer(&good),
        ConnectOptions::query_token(&good),
    ] {
        let mut client = server.try_connect(&options).await.unwrap();
        let status = client.next_message(FRAME_TIMEOUT).await.unwrap();
        assert_eq!(status.user_id.as_deref(), Some("mallory"));
        client.close().await.unwrap();
    }
    server
        .eventually(Duration::from_secs(10), "no connection left", |s| {
            s.state.drain().connection_count() == 0 && s.state.limiter().tracked_users() == 0
        })
        .await;
}

// ---------------------------------------------------------------- frames and liveness

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let server = Server::start(
        Script::reply(["x"]),
        "[websocket]\nmax_message_size = 4096\n",
    )
    .await;
    let mut fits = server.connect("big").await;
    let at_limit = json!({"type": "typing_indicator", "metadata": {"pad": "p".repeat(900)}});
    fits.send_json(&at_limit).await.unwrap();
    assert_open(&mut fits).await;

    let mut client = server.connect("big").await;
    client.send_text("x".repeat(10_000)).await.unwrap();
    let (code, reason) = client.expect_close(FRAME_TIMEOUT).await.unwrap();
    assert_eq!((code, reason.as_str()), (1009, "message too big"));
    assert_open(&mut fits).await;
    server
        .eventually(
            Duration::from_secs(10),
            "oversized connection released",
            |s| s.state.limiter().count("big") == 1,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_keeps_answering_clients_and_closes_silent_ones() {
    let server = Server::start(
        Script::reply(["x"]),
        "[websocket]\nping_interval = \"200ms\"\npong_timeout = \"600ms\"\n",
    )
    .await;
    let answering = server.connect("alive").await;
    let silent = server.connect("silent").await;

    // The answering client only reads (which answers pings); it sends nothing itself.
    let reader = tokio::spawn(async move {
        let mut client = answering;
        let mut pings = 0;
        let until = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < until {
            match client.next_raw(Duration::from_millis(100)).await {
                Ok(Some(WsMessage::Ping(_))) => pings += 1,
                Ok(Some(other)) => panic!("unexpected {other:?}"),
                Ok(None) => panic!("answering client was closed"),
                Err(WsClientError::Timeout(_)) => {}
                Err(e) => panic!("answering client failed: {e}"),
            }
        }
        (client, pings)
    });
    // The silent one never reads, so it never answers a ping: it must be dropped.
    server
        .eventually(Duration::from_secs(10), "silent client closed", |s| {
            s.state.limiter().count("silent") == 0
        })
        .await;
    let (mut answering, pings) = reader.await.unwrap();
    assert!(pings >= 3, "server pings every 200 ms, got {pings}");
    assert_eq!(server.state.limiter().count("alive"), 1);
    assert_open(&mut answering).await;

    let mut silent = silent;
    let (code, _) = silent.expect_close(FRAME_TIMEOUT).await.unwrap();
    assert!(code == 1000 || code == 1006, "closed, got {code}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_with_1008_while_others_continue() {
    let server = Server::start(
        Script::reply(["x"]),
        "[websocket]\nsend_queue_capacity = 4\n",
    )
    .await;
    let mut slow = server.connect("slow").await;
    let mut fast = server.connect("fast").await;

    // Far more than the socket buffers hold while the slow client does not read.
    let big = "n".repeat(64 * 1024);
    for _ in 0..400 {
        server.router.notify_user("slow", &big);
        tokio::task::yield_now().await;
    }
    assert_open(&mut fast).await;

    // Once the slow client reads again it finds the policy close after the backlog.
    let (code, reason) = slow.expect_close(Duration::from_secs(30)).await.unwrap();
    assert_eq!((code, reason.as_str()), (1008, "too slow"));
    server
        .eventually(Duration::from_secs(10), "slow consumer released", |s| {
            s.state.limiter().count("slow") == 0
        })
        .await;
    assert_open(&mut fast).await;
    assert_eq!(server.state.limiter().count("fast"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_pump_never_waits_on_routing() {
    // Creating the session takes 2.5 s (a slow database), so routing is stuck on the
    // first message while the client keeps sending. The call blocks its thread the way
    // a blocking client library must (`block_in_place`): a plain `thread::sleep` on a
    // runtime worker would stop tokio's I/O driver too when the other worker is
    // parked without it, and then no design could answer the ping.
    let store = {
        let mut s = chat_storage::MockSessionStore::new();
        s.expect_create_session().returning(|_| {
            tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(2500)));
            Ok(())
        });
        s.expect_append_message().returning(|_, _| Ok(()));
        s.expect_append_reply().returning(|_, _, _| Ok(()));
        s.expect_update_name().returning(|_, _| Ok(()));
        s.expect_update_stats().returning(|_, _, _, _, _| Ok(()));
        s.expect_update_model().returning(|_, _| Ok(()));
        s.expect_get_session().returning(|_| Ok(None));
        s
    };
    let server = Server::start_with(
        Script::reply(["x"]),
        &format!("{LLM_TIMEOUTS}\n[rate_limits]\nuser_messages_per_minute = 100000\n"),
        None,
        Some(store),
    )
    .await;
    let mut client = server.connect("burst").await;
    client
        .send_json(&json!({"type": "user_message", "content": "first"}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..30 {
        client
            .send_json(&json!({"type": "typing_indicator", "metadata": {"n": i.to_string()}}))
            .await
            .unwrap();
    }
    // A protocol-level ping is answered by the pump while routing is stuck.
    let started = Instant::now();
    client
        .send_raw(WsMessage::Ping(b"alive".to_vec().into()))
        .await
        .unwrap();
    let mut too_many = 0;
    let mut answered = false;
    loop {
        match client.next_raw(FRAME_TIMEOUT).await.unwrap() {
            Some(WsMessage::Pong(payload)) => {
                assert_eq!(&payload[..], b"alive");
                break;
            }
            Some(WsMessage::Text(text)) => {
                let m: Message = serde_json::from_str(text.as_str()).unwrap();
                if let Some(e) = &m.error {
                    assert_eq!(e.code, ErrorCode::TooManyRequests);
                    assert!(e.retry_after.is_some());
                    too_many += 1;
                }
                answered |= m.kind == MessageType::AiResponse && m.is_done();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "pong must not wait for routing ({:?})",
        started.elapsed()
    );
    assert!(
        too_many >= 1,
        "frames beyond the inbound queue are refused, not buffered"
    );
    assert!(
        !answered,
        "the pong came before the reply that waited 2.5 s"
    );
    // Routing catches up afterwards: the first message is answered.
    loop {
        let m = client.next_message(FRAME_TIMEOUT).await.unwrap();
        if let Some(e) = &m.error {
            assert_eq!(e.code, ErrorCode::TooManyRequests, "{m:?}");
        }
        if m.kind == MessageType::AiResponse && m.is_done() {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_refusals_do_not_flood_the_open_sockets() {
    let server = Server::start(
        Script::reply(["x"]),
        "[websocket]\nmax_connections_per_user = 1\n",
    )
    .await;
    let mut open = server.connect("loop").await;
    // A client stuck in a reconnect loop: 30 concurrent refused handshakes.
    let attempts: Vec<_> = (0..30)
        .map(|_| {
            let url = server.url();
            let options = ConnectOptions::bearer(server.token("loop"));
            tokio::spawn(async move { WsClient::connect(&url, &options).await })
        })
        .collect();
    for attempt in attempts {
        let refused = attempt.await.unwrap().expect_err("over the limit");
        assert_eq!(refused.status(), Some(429));
    }
    // The open socket is told, but a bounded number of times, and it stays usable.
    // Every notice was queued before its 429 was sent, so all precede this pong.
    open.send_json(&json!({"type": "ping"})).await.unwrap();
    let mut notices = 0;
    loop {
        let m = open.next_message(FRAME_TIMEOUT).await.unwrap();
        match m.kind {
            MessageType::Notification => notices += 1,
            MessageType::Pong => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        (1..=6).contains(&notices),
        "notices are throttled per user, got {notices}"
    );
    assert_eq!(server.state.limiter().count("loop"), 1);
}

/// A log sink shared with the test.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Single-threaded runtime: every server task logs through this thread's subscriber.
#[tokio::test]
async fn the_query_token_never_reaches_a_log() {
    let logs = LogBuffer::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let server = Server::start(Script::reply(["x"]), "").await;
    let good = server.token("logged");
    let expired = {
        use secrecy::ExposeSecret;
        let secret = server.config.jwt_secret().expose_secret().to_owned();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"user_id": "logged", "roles": [], "exp": now() - 3600}),
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    // Accepted, refused for the token, refused for the origin: all with ?token=.
    let mut client = server
        .try_connect(&ConnectOptions::query_token(&good))
        .await
        .unwrap();
    client.next_message(FRAME_TIMEOUT).await.unwrap();
    let refused = server
        .try_connect(&ConnectOptions::query_token(&expired))
        .await
        .expect_err("expired");
    assert_eq!(refused.status(), Some(401));
    let refused = server
        .try_connect(&ConnectOptions::query_token(&good).origin("https://evil.example"))
        .await
        .expect_err("origin");
    assert_eq!(refused.status(), Some(403));
    client.close().await.unwrap();

    let text = String::from_utf8_lossy(&logs.0.lock()).into_owned();
    assert!(
        text.contains("WebSocket handshake refused"),
        "the refusals were logged: {text}"
    );
    for token in [&good, &expired] {
        // Not the token, and not even its signature part.
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !text.contains(signature),
            "a token reached the log:\n{text}"
        );
    }
}

async fn raw_request(server: &Server, request: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(FRAME_TIMEOUT, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    // The socket is dropped here: a client that vanishes right after the response.
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn the_slot_is_released_on_every_path() {
    let server = Server::start(
        Script::reply(["x"]),
        "[websocket]\nmax_connections_per_user = 1\n",
    )
    .await;
    let token = server.token("paths");
    // Authenticated, but not an upgrade request: axum's rejection, no slot kept.
    let plain = raw_request(
        &server,
        format!("GET /ws HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\r\n"),
    )
    .await;
    assert!(!plain.starts_with("HTTP/1.1 101"), "{plain}");
    assert!(plain.starts_with("HTTP/1.1 4"), "{plain}");
    assert_eq!(server.state.limiter().count("paths"), 0);

    // Upgraded, then the client disappears without a close frame.
    let upgraded = raw_request(
        &server,
        format!(
            "GET /ws HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    )
    .await;
    assert!(upgraded.starts_with("HTTP/1.1 101"), "{upgraded}");
    server
        .eventually(Duration::from_secs(10), "vanished client released", |s| {
            s.state.limiter().count("paths") == 0
                && s.state.drain().connection_count() == 0
                && s.router.connection_count() == 0
        })
        .await;

    // With the only slot free again, a real client connects.
    let mut client = server.connect("paths").await;
    assert_open(&mut client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_socket_is_closed_when_its_token_expires() {
    let server = Server::start(Script::reply(["x"]), "").await;
    let short = server
        .issuer
        .issue("brief", None, &["user"], Duration::from_secs(2))
        .unwrap();
    let mut client = server
        .try_connect(&ConnectOptions::bearer(short))
        .await
        .unwrap();
    // The close (1008 "token expired") is the signal; an UNAUTHORIZED error frame
    // precedes it when the writer gets to it first.
    let (code, reason) = loop {
        match client.next_frame(Duration::from_secs(15)).await {
            Ok(frame) => {
                let m = frame.message().unwrap();
                if m.kind == MessageType::Error {
                    assert_eq!(
                        m.error.unwrap().code,
                        chat_protocol::ErrorCode::Unauthorized
                    );
                }
            }
            Err(chat_testkit::ws_client::WsClientError::Closed { code, reason }) => {
                break (code, reason)
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    };
    assert_eq!((code, reason.as_str()), (1008, "token expired"));
    // A long-lived token on another socket is unaffected.
    let mut other = server.connect("steady").await;
    assert_open(&mut other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_routing_closes_with_1011_and_releases_the_connection() {
    // The store panics while the first message creates its session: routing panics
    // inside the connection's task.
    let store = {
        let mut s = chat_storage::MockSessionStore::new();
        s.expect_create_session()
            .returning(|_| panic!("store bug (expected by this test)"));
        s.expect_get_session().returning(|_| Ok(None));
        s
    };
    let server = Server::start_with(Script::reply(["x"]), "", None, Some(store)).await;
    let mut client = server.connect("oops").await;
    client
        .send_json(&json!({"type": "user_message", "content": "hi"}))
        .await
        .unwrap();
    let (code, reason) = client.expect_close(FRAME_TIMEOUT).await.unwrap();
    assert_eq!((code, reason.as_str()), (1011, "internal error"));
    server
        .eventually(
            Duration::from_secs(10),
            "panicked connection released",
            |s| s.state.limiter().count("oops") == 0 && s.router.connection_count() == 0,
        )
        .await;
    // The server itself carries on.
    let mut other = server.connect("fine").await;
    assert_open(&mut other).await;
}

/// Waits for the notices `n0` … `n{count - 1}` sent by `notify_user`, in that order
/// (other frames are skipped).
async fn expect_numbered(client: &mut WsClient, count: usize) {
    let mut seen = 0;
    while seen < count {
        let m = client.next_message(FRAME_TIMEOUT).await.unwrap();
        let content = m.content.unwrap_or_default();
        if content.starts_with('n') {
            assert_eq!(content, format!("n{seen}"));
            seen += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_frames_arrives_complete_and_in_order() {
    // Frames queued faster than the socket is written go out in batches; none may be
    // lost or reordered.
    let server = Server::start(
        Script::reply(["x"]),
        "[websocket]\nsend_queue_capacity = 4096\n",
    )
    .await;
    let mut client = server.connect("burst").await;
    for i in 0..2_000 {
        server.router.notify_user("burst", &format!("n{i}"));
    }
    expect_numbered(&mut client, 2_000).await;
    assert_open(&mut client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_stream_is_held_back_briefly_and_ends_complete() {
    // Frames queued one at a time, 100 µs apart: the connection flushes them one by
    // one until it counts as streaming fast, then holds frames for the next ones
    // (`chat_ws::coalesce`). The last frame, with nothing behind it, must still go
    // out on its own, and none may be lost or reordered.
    let server = Server::start(
        Script::reply(["x"]),
        "[websocket]\nsend_queue_capacity = 4096\n",
    )
    .await;
    let mut client = server.connect("fast").await;
    let router = server.router.clone();
    let producer = std::thread::spawn(move || {
        for i in 0..1_000 {
            router.notify_user("fast", &format!("n{i}"));
            let next = std::time::Instant::now() + std::time::Duration::from_micros(100);
            while std::time::Instant::now() < next {
                std::hint::spin_loop();
            }
        }
    });
    expect_numbered(&mut client, 1_000).await;
    producer.join().unwrap();
    assert_open(&mut client).await;
}
