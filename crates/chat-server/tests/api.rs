//! The HTTP API of PROTOCOL §2 against a real server on an ephemeral port.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use chat_protocol::{Message, MessageType};
use chat_router::{Identity, Outgoing};
use chat_testkit::fake_llm::Script;
use common::*;
use serde_json::Value;

/// Chats through the router in-process (the WebSocket layer is tested elsewhere) and
/// returns the session id once the reply is complete.
async fn chat(server: &TestServer, user: &str, text: &str) -> String {
    let router = &server.services.state.router;
    let (handle, mut rx) = router.connect(Identity {
        user_id: user.to_owned(),
        name: user.to_owned(),
        is_admin: false,
    });
    let frame = serde_json::json!({"type": "user_message", "content": text}).to_string();
    router.handle_text(handle.id(), &frame).await;
    let mut session_id = String::new();
    loop {
        let Ok(Some(Outgoing::Frame(f))) =
            tokio::time::timeout(Duration::from_secs(10), rx.recv()).await
        else {
            panic!("no reply");
        };
        let m: Message = serde_json::from_str(&f).unwrap();
        if let Some(id) = m.session_id.clone().filter(|s| !s.is_empty()) {
            session_id = id;
        }
        if m.kind == MessageType::Error {
            panic!("error frame: {f}");
        }
        if m.kind == MessageType::AiResponse && m.is_done() {
            break;
        }
    }
    router.disconnect(handle.id());
    session_id
}

#[tokio::test]
async fn production_issue_05_every_route_registered() {
    let server = TestServer::start(Script::reply(["ok"]), "").await;
    let client = http();
    let user = server.token("u1");
    let id = "0123456789abcdef0123456789abcdef";
    // Authenticated routes: 401 without a token (so they exist), never 404.
    for (method, path) in [
        ("GET", "/sessions".to_owned()),
        ("GET", format!("/sessions/{id}")),
        ("POST", format!("/sessions/{id}/end")),
        ("POST", format!("/sessions/{id}/share")),
        ("DELETE", format!("/sessions/{id}/share")),
        ("GET", "/admin/sessions".to_owned()),
        ("GET", "/admin/users/u1/sessions".to_owned()),
        ("GET", "/admin/metrics".to_owned()),
        ("POST", format!("/admin/takeover/{id}")),
        ("POST", format!("/admin/release/{id}")),
        ("POST", "/uploads".to_owned()),
    ] {
        let req = client.request(method.parse().unwrap(), server.url(&path));
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{method} {path}");
        assert_eq!(
            resp.headers().get("x-content-type-options").unwrap(),
            "nosniff",
            "{method} {path}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "UNAUTHORIZED", "{method} {path}");
        assert!(body["error"].as_str().is_some());
    }
    // Admin routes refuse a plain user with 403.
    for path in [
        "/admin/sessions",
        "/admin/metrics",
        "/admin/users/u1/sessions",
    ] {
        let (status, body) = get_json(&client, &server.url(path), Some(&user)).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(body["code"], "FORBIDDEN");
    }
    // Public and health routes.
    assert_eq!(
        get_json(&client, &server.url("/healthz"), None).await.0,
        200
    );
    let (status, ready) = get_json(&client, &server.url("/readyz"), None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["storage"]["status"], "ok");
    assert_eq!(ready["checks"]["llm"]["status"], "ok");
    assert_eq!(
        get_json(&client, &server.url(&format!("/shared/{id}")), None)
            .await
            .0,
        404
    );
    let metrics = client
        .get(server.url("/metrics/prometheus"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("chatbox_"), "{text}");
    // The UI is mounted (both spellings) and the prefix root redirects to it.
    let ui = client.get(server.url("/ui/")).send().await.unwrap();
    assert_eq!(ui.status().as_u16(), 200);
    let ui = client.get(server.url("/ui")).send().await.unwrap();
    assert_eq!(ui.status().as_u16(), 200, "redirect followed");
    let root = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(root.url().path(), "/chatbox/ui/");
    let bare = client
        .get(format!("http://{}/chatbox", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.url().path(), "/chatbox/ui/");
    // Framework-level errors are JSON too: wrong method, a plain GET on /ws.
    let resp = client.put(server.url("/sessions")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "BAD_REQUEST", "{body}");
    let resp = client
        .get(server.url("/ws"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    let body: Value = resp.json().await.unwrap();
    assert!(body["code"].is_string(), "{body}");
    // Unknown routes: a JSON 404.
    let (status, body) = get_json(&client, &server.url("/nope"), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "NOT_FOUND");
    server.stop().await;
}

#[tokio::test]
async fn production_issue_18_admin_rate_limiting() {
    let server = TestServer::start(Script::reply(["ok"]), "").await;
    let client = http();
    let admin = server.admin_token("boss");
    let quota = server.config.rate_limits.admin_requests_per_minute as usize;
    let mut first_429 = None;
    for i in 0..1000 {
        let resp = client
            .get(server.url("/admin/metrics"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() == 429 {
            let retry_after: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry_after >= 1);
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["code"], "RATE_LIMITED");
            assert!(body["retry_after_ms"].as_u64().unwrap() >= 1);
            first_429.get_or_insert(i);
        } else {
            assert_eq!(resp.status().as_u16(), 200, "request {i}");
            assert!(
                first_429.is_none(),
                "a 200 after a 429 at {i} within the same minute"
            );
        }
    }
    let first = first_429.expect("the quota was enforced");
    assert!(
        first >= quota && first <= quota + 1,
        "first 429 at {first}, quota {quota}"
    );
    // Another admin has a quota of their own; non-admins and anonymous callers don't get in.
    let other = server.admin_token("other");
    assert_eq!(
        get_json(&client, &server.url("/admin/metrics"), Some(&other))
            .await
            .0,
        200
    );
    assert_eq!(
        get_json(
            &client,
            &server.url("/admin/metrics"),
            Some(&server.token("pleb"))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        get_json(&client, &server.url("/admin/metrics"), None)
            .await
            .0,
        401
    );
    server.stop().await;
}

#[tokio::test]
async fn sessions_list_detail_share_and_end() {
    let server = TestServer::start(Script::reply(["Hello", " human"]).usage(7, 3), "").await;
    let client = http();
    let alice = server.token("alice");
    let id = chat(
        &server,
        "alice",
        "What is the capital of France? Tell me more.",
    )
    .await;

    // The chat shows up in the Prometheus metrics, latency split included.
    assert_eq!(
        get_json(&client, &server.url("/healthz"), None).await.0,
        200
    );
    let text = client
        .get(server.url("/metrics/prometheus"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "chatbox_llm_time_to_first_token_seconds",
        "chatbox_gateway_overhead_seconds",
        "chatbox_llm_response_seconds",
        "chatbox_messages_total",
        "chatbox_sessions_active",
        "chatbox_http_requests_total",
    ] {
        assert!(
            text.contains(name),
            "{name} missing from /metrics/prometheus"
        );
    }

    let (status, list) = get_json(&client, &server.url("/sessions"), Some(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(list["user_id"], "alice");
    assert_eq!(list["count"], 1);
    assert_eq!(list["limit"], 100);
    assert_eq!(list["truncated"], false);
    let meta = &list["sessions"][0];
    assert_eq!(meta["id"], id.as_str());
    assert_eq!(meta["name"], "What is the capital of France?");
    assert_eq!(meta["message_count"], 2);
    assert_eq!(meta["is_active"], true);
    assert_eq!(meta["total_tokens"], 10);

    let (status, detail) = get_json(
        &client,
        &server.url(&format!("/sessions/{id}")),
        Some(&alice),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(detail["session_id"], id.as_str());
    let messages = detail["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["type"], "user_message");
    assert_eq!(messages[1]["type"], "ai_response");
    assert_eq!(messages[1]["content"], "Hello human");

    // Another user cannot see it (404, never 403).
    let bob = server.token("bob");
    assert_eq!(
        get_json(&client, &server.url(&format!("/sessions/{id}")), Some(&bob))
            .await
            .0,
        404
    );

    // Share: same token on repeat; public read-only view; revoke stops it.
    let (status, shared) = post_json(
        &client,
        &server.url(&format!("/sessions/{id}/share")),
        Some(&alice),
    )
    .await;
    assert_eq!(status, 200);
    let token = shared["share_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);
    let (_, again) = post_json(
        &client,
        &server.url(&format!("/sessions/{id}/share")),
        Some(&alice),
    )
    .await;
    assert_eq!(again["share_token"], token.as_str());
    let (status, view) = get_json(&client, &server.url(&format!("/shared/{token}")), None).await;
    assert_eq!(status, 200);
    assert_eq!(view["session_id"], id.as_str());
    assert_eq!(view["messages"].as_array().unwrap().len(), 2);
    let resp = client
        .delete(server.url(&format!("/sessions/{id}/share")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        get_json(&client, &server.url(&format!("/shared/{token}")), None)
            .await
            .0,
        404
    );

    // End: idempotent, first end time kept.
    let (status, ended) = post_json(
        &client,
        &server.url(&format!("/sessions/{id}/end")),
        Some(&alice),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ended["status"], "ended");
    let (_, list) = get_json(&client, &server.url("/sessions"), Some(&alice)).await;
    let first_end = list["sessions"][0]["end_time"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        post_json(
            &client,
            &server.url(&format!("/sessions/{id}/end")),
            Some(&alice)
        )
        .await
        .0,
        200
    );
    let (_, list) = get_json(&client, &server.url("/sessions"), Some(&alice)).await;
    assert_eq!(list["sessions"][0]["end_time"], first_end.as_str());
    assert_eq!(list["sessions"][0]["is_active"], false);
    assert_eq!(
        post_json(
            &client,
            &server.url(&format!("/sessions/{id}/end")),
            Some(&bob)
        )
        .await
        .0,
        404
    );
    server.stop().await;
}

#[tokio::test]
async fn admin_list_filters_metrics_takeover_and_release() {
    let server = TestServer::start(
        Script::reply(["ok"]).usage(2, 2),
        "[rate_limits]\nadmin_requests_per_minute = 1000\n",
    )
    .await;
    let client = http();
    let admin = server.admin_token("root");
    let a = chat(&server, "ann", "first").await;
    let b = chat(&server, "ben", "second").await;

    let (status, page) = get_json(
        &client,
        &server.url("/admin/sessions?sort_by=user_id&sort_order=asc&limit=1"),
        Some(&admin),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 2);
    assert_eq!(page["count"], 1);
    assert_eq!(page["limit"], 1);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["sessions"][0]["user_id"], "ann");
    let (_, page2) = get_json(
        &client,
        &server.url("/admin/sessions?sort_by=user_id&sort_order=asc&limit=1&offset=1"),
        Some(&admin),
    )
    .await;
    assert_eq!(page2["sessions"][0]["user_id"], "ben");
    let (_, bens) = get_json(
        &client,
        &server.url("/admin/users/ben/sessions"),
        Some(&admin),
    )
    .await;
    assert_eq!(bens["total"], 1);
    assert_eq!(bens["sessions"][0]["id"], b.as_str());
    let (status, bad) = get_json(
        &client,
        &server.url("/admin/sessions?sort_by=shoe_size"),
        Some(&admin),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(bad["code"], "BAD_REQUEST");
    assert!(bad["error"].as_str().unwrap().starts_with("sort_by"));

    // Statistics reach the store right after the reply's closing frame: poll briefly.
    let mut metrics = Value::Null;
    for _ in 0..100 {
        let (status, body) = get_json(&client, &server.url("/admin/metrics"), Some(&admin)).await;
        assert_eq!(status, 200, "{body}");
        metrics = body;
        if metrics["total_tokens"] == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metrics["total_sessions"], 2);
    assert_eq!(metrics["active_sessions"], 2);
    assert_eq!(metrics["total_tokens"], 8);
    assert!(metrics["time_range"]["start"].is_string());
    let (status, _) = get_json(
        &client,
        &server.url("/admin/metrics?start_time=2024-02-01T00:00:00Z&end_time=2024-01-01T00:00:00Z"),
        Some(&admin),
    )
    .await;
    assert_eq!(status, 400);

    // Takeover: 404 unknown, 200 + idempotent, 409 for another admin naming the first.
    let (status, _) = post_json(
        &client,
        &server.url("/admin/takeover/ffffffffffffffffffffffffffffffff"),
        Some(&admin),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = post_json(
        &client,
        &server.url(&format!("/admin/takeover/{a}")),
        Some(&admin),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        post_json(
            &client,
            &server.url(&format!("/admin/takeover/{a}")),
            Some(&admin)
        )
        .await
        .0,
        200
    );
    let other = server.admin_token("other");
    let (status, conflict) = post_json(
        &client,
        &server.url(&format!("/admin/takeover/{a}")),
        Some(&other),
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        conflict["error"].as_str().unwrap().contains("Admin root"),
        "{conflict}"
    );
    let (_, assisted) = get_json(
        &client,
        &server.url("/admin/sessions?admin_assisted=true"),
        Some(&admin),
    )
    .await;
    assert_eq!(assisted["total"], 1);
    assert_eq!(
        assisted["sessions"][0]["assisting_admin_name"],
        "Admin root"
    );
    assert_eq!(
        post_json(
            &client,
            &server.url(&format!("/admin/release/{a}")),
            Some(&other)
        )
        .await
        .0,
        409
    );
    assert_eq!(
        post_json(
            &client,
            &server.url(&format!("/admin/release/{a}")),
            Some(&admin)
        )
        .await
        .0,
        200
    );
    let (_, assisted) = get_json(
        &client,
        &server.url("/admin/sessions?admin_assisted=true"),
        Some(&admin),
    )
    .await;
    assert_eq!(assisted["total"], 0);
    server.stop().await;
}

#[tokio::test]
async fn history_survives_a_restart() {
    let fake = chat_testkit::fake_llm::FakeLlmServer::start(Script::reply(["remembered"]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(fake, dir, "", &Default::default()).await;
    let id = chat(&server, "zoe", "remember me").await;
    let dir = server.stop().await;

    let fake = chat_testkit::fake_llm::FakeLlmServer::start(Script::reply(["again"]))
        .await
        .unwrap();
    let server = TestServer::start_with(fake, dir, "", &Default::default()).await;
    let client = http();
    let zoe = server.token("zoe");
    let (status, detail) =
        get_json(&client, &server.url(&format!("/sessions/{id}")), Some(&zoe)).await;
    assert_eq!(status, 200);
    assert_eq!(detail["messages"][1]["content"], "remembered");
    // The active session was rehydrated: the next message continues it.
    let again = chat(&server, "zoe", "still there?").await;
    assert_eq!(again, id);
    server.stop().await;
}

#[tokio::test]
async fn uploads_enforce_type_and_size() {
    let server =
        TestServer::start(Script::reply(["ok"]), "[uploads]\nmax_file_size = 1024\n").await;
    let client = http();
    let token = server.token("up");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"hello file".to_vec())
            .file_name("a.txt")
            .mime_str("text/plain")
            .unwrap(),
    );
    let resp = client
        .post(server.url("/uploads"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["size"], 10);
    assert_eq!(body["mime_type"], "text/plain");
    let url = body["file_url"].as_str().unwrap();
    let fetched = client.get(url).send().await.unwrap();
    assert_eq!(fetched.status().as_u16(), 200);
    assert_eq!(fetched.headers()["content-type"], "text/plain");
    assert_eq!(fetched.text().await.unwrap(), "hello file");

    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"<html>".to_vec())
            .mime_str("text/html")
            .unwrap(),
    );
    let resp = client
        .post(server.url("/uploads"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![b'x'; 4096])
            .mime_str("text/plain")
            .unwrap(),
    );
    let resp = client
        .post(server.url("/uploads"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    server.stop().await;
}

#[tokio::test]
async fn metrics_are_refused_outside_allowed_networks() {
    let server = TestServer::start(
        Script::reply(["ok"]),
        "[server]\nmetrics_allowed_networks = [\"10.0.0.0/8\"]\n",
    )
    .await;
    let (status, body) = get_json(&http(), &server.url("/metrics/prometheus"), None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "FORBIDDEN");
    server.stop().await;
}

#[tokio::test]
async fn cors_only_when_configured_and_only_for_listed_origins() {
    let client = http();
    let plain = TestServer::start(Script::reply(["ok"]), "").await;
    let resp = client
        .get(plain.url("/healthz"))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers().get("access-control-allow-origin").is_none(),
        "CORS is off by default"
    );
    plain.stop().await;

    let server = TestServer::start(
        Script::reply(["ok"]),
        "[server]\ncors_allowed_origins = [\"http://localhost:3000\"]\n",
    )
    .await;
    let preflight = client
        .request(reqwest::Method::OPTIONS, server.url("/sessions"))
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let other = client
        .get(server.url("/healthz"))
        .header("Origin", "http://localhost:4000")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}
