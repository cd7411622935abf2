//! The fake provider server itself, spoken to with raw HTTP/1.1 over TCP.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use chat_testkit::fake_llm::{FakeLlmServer, Script, WireFormat};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: fake\r\nContent-Type: application/json\r\n\
         Authorization: Bearer sk-raw\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

async fn read_all(mut stream: TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .expect("response within 5 s")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn each_path_streams_its_own_wire_format_and_records_the_request() {
    let server = FakeLlmServer::start(Script::reply(["Hi"]).usage(4, 1))
        .await
        .unwrap();
    let body = r#"{"model":"m","messages":[{"role":"system","content":"sys"},{"role":"user","content":"q"}],"stream":true,"stream_options":{"include_usage":true}}"#;
    let openai = read_all(post(server.addr(), "/v1/chat/completions", body).await).await;
    assert!(openai.contains("text/event-stream"));
    assert!(openai.contains(r#""delta":{"content":"Hi"}"#));
    assert!(openai.contains(r#""prompt_tokens":4"#));
    assert!(openai.contains("data: [DONE]"));

    let anthropic = read_all(
        post(
            server.addr(),
            "/v1/messages",
            r#"{"model":"m","system":"sys","messages":[]}"#,
        )
        .await,
    )
    .await;
    assert!(anthropic.contains("event: message_start"));
    assert!(anthropic.contains(r#""text":"Hi""#));
    assert!(anthropic.contains("event: message_stop"));

    let dify = read_all(
        post(
            server.addr(),
            "/chat-messages",
            r#"{"query":"q","response_mode":"streaming"}"#,
        )
        .await,
    )
    .await;
    assert!(dify.contains(r#""answer":"Hi""#));
    assert!(dify.contains(r#""event":"message_end""#));

    let recorded = server.requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[0].format, WireFormat::OpenAi);
    assert_eq!(recorded[0].system_prompt().as_deref(), Some("sys"));
    assert_eq!(
        recorded[0].messages(),
        vec![("user".to_owned(), "q".to_owned())]
    );
    assert_eq!(recorded[0].api_key(), Some("sk-raw"));
    assert_eq!(recorded[1].system_prompt().as_deref(), Some("sys"));
    assert_eq!(recorded[2].query(), Some("q"));
    assert_eq!(server.open_streams(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn error_scripts_answer_with_status_body_and_retry_after() {
    let server = FakeLlmServer::new(Script::default())
        .enqueue(Script::status(429, "busy").retry_after("7"))
        .run()
        .await
        .unwrap();
    let first = read_all(post(server.addr(), "/v1/chat/completions", "{}").await).await;
    assert!(first.starts_with("HTTP/1.1 429"), "{first}");
    assert!(first.to_ascii_lowercase().contains("retry-after: 7"));
    assert!(first.ends_with("busy"));
    let second = read_all(post(server.addr(), "/v1/chat/completions", "{}").await).await;
    assert!(
        second.starts_with("HTTP/1.1 200"),
        "the queued script applied once"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn open_streams_follow_clients_and_shutdown_ends_hanging_ones() {
    let server = FakeLlmServer::start(Script::reply(["x"]).hang_before_headers())
        .await
        .unwrap();
    let client = post(server.addr(), "/v1/messages", "{}").await;
    assert!(
        server
            .wait_for_open_streams(1, Duration::from_secs(5))
            .await
    );
    drop(client);
    assert!(
        server
            .wait_for_open_streams(0, Duration::from_secs(5))
            .await,
        "a client that goes away is no longer counted"
    );

    server.set_default(Script::reply(["a", "b"]).hang_after(1));
    let client = post(server.addr(), "/v1/chat/completions", "{}").await;
    assert!(
        server
            .wait_for_open_streams(1, Duration::from_secs(5))
            .await
    );
    let t0 = Instant::now();
    server.shutdown().await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "hanging streams end at shutdown"
    );
    let response = read_all(client).await;
    assert!(response.contains(r#""content":"a""#));
}
