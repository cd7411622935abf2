//! READINESS #8: replies are bounded by the configured deadlines, and a timed-out
//! provider connection is really closed.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use chat_config::{LlmSettings, ProviderKind, ProviderSettings};
use chat_llm::{ChatRequest, Deadlines, LlmError, ProviderRegistry, RetryPolicy, StreamEvent};
use chat_testkit::fake_llm::{FakeLlmServer, Script, WireFormat};
use common::*;

fn llm_settings(
    providers: Vec<ProviderSettings>,
    first: u64,
    idle: u64,
    total: u64,
) -> LlmSettings {
    LlmSettings {
        providers,
        first_token_timeout: Duration::from_millis(first),
        idle_timeout: Duration::from_millis(idle),
        total_timeout: Duration::from_millis(total),
        ..LlmSettings::default()
    }
}

/// The durations configured in `[llm]` are exactly the ones the registry applies to a
/// real provider call: first-token, idle and total each fire at their configured time.
#[tokio::test]
async fn production_issue_08_streaming_context() {
    let server = FakeLlmServer::start(Script::default()).await.unwrap();
    let settings = llm_settings(
        vec![provider_settings(&server, WireFormat::OpenAi, "main")],
        300,
        500,
        1_500,
    );
    let registry =
        ProviderRegistry::from_settings_with(&settings, http(RetryPolicy::none())).unwrap();
    assert_eq!(
        registry.deadlines(),
        Deadlines {
            first_token: Duration::from_millis(300),
            idle: Duration::from_millis(500),
            total: Duration::from_millis(1_500),
        }
    );
    assert_eq!(registry.deadlines(), Deadlines::from_settings(&settings));

    // First token: the provider never answers.
    server.enqueue(Script::reply(["x"]).hang_before_headers());
    let t0 = Instant::now();
    let error = registry
        .stream_with_failover(None, ChatRequest::single("hi"))
        .await
        .err()
        .unwrap();
    let elapsed = t0.elapsed();
    assert_eq!(error, LlmError::FirstTokenTimeout);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1_400), "{elapsed:?}");

    // Idle: one chunk, then silence.
    server.enqueue(Script::reply(["a", "b"]).hang_after(1));
    let (_, stream) = registry
        .stream_with_failover(None, ChatRequest::single("hi"))
        .await
        .unwrap();
    let items = collect_timed(stream).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[1].1, Err(LlmError::IdleTimeout));
    let gap = items[1].0 - items[0].0;
    assert!(gap >= Duration::from_millis(480), "{gap:?}");
    assert!(gap < Duration::from_millis(1_400), "{gap:?}");

    // Total: a steady trickle that never pauses longer than idle still ends on time.
    server.enqueue(Script::reply(vec!["tick"; 100]).chunk_delay(Duration::from_millis(100)));
    let t0 = Instant::now();
    let (_, stream) = registry
        .stream_with_failover(None, ChatRequest::single("hi"))
        .await
        .unwrap();
    let items = collect_timed(stream).await;
    let elapsed = t0.elapsed();
    assert_eq!(
        items.last().map(|i| &i.1),
        Some(&Err(LlmError::TotalTimeout))
    );
    assert!(items.len() > 3, "text flowed before the cut");
    assert!(elapsed >= Duration::from_millis(1_500), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(3_000), "{elapsed:?}");
    server.shutdown().await;
}

/// The same, on a paused clock with the echo provider: exact durations, no slack.
#[tokio::test(start_paused = true)]
async fn production_issue_08_streaming_context_exact_on_a_paused_clock() {
    let echo = ProviderSettings {
        id: "echo".into(),
        name: "Echo".into(),
        kind: ProviderKind::Echo,
        endpoint: String::new(),
        api_key: None,
        model: String::new(),
        max_tokens: None,
        echo_delay: Some(Duration::from_secs(7)),
    };
    // idle (5 s) is shorter than the echo's 7 s between words.
    let settings = llm_settings(vec![echo], 10_000, 5_000, 60_000);
    let registry = ProviderRegistry::from_settings(&settings).unwrap();
    let t0 = tokio::time::Instant::now();
    let (id, stream) = registry
        .stream_with_failover(Some("echo"), ChatRequest::single("hello there"))
        .await
        .unwrap();
    assert_eq!(id, "echo");
    let items = collect(stream).await;
    assert_eq!(items.len(), 2);
    assert!(matches!(items[0], Ok(StreamEvent::Delta(_))));
    assert_eq!(items[1], Err(LlmError::IdleTimeout));
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
}

/// A provider that hangs before its first byte, and one that hangs mid-stream, both
/// yield LLM_TIMEOUT within their deadline, and the fake server sees the connection
/// closed (no stream left open).
#[tokio::test]
async fn production_issue_08_streaming_timeout() {
    for format in FORMATS {
        for (label, script) in [
            ("before headers", Script::reply(["a"]).hang_before_headers()),
            (
                "after headers, before text",
                Script::reply(["a"]).hang_after(0),
            ),
            ("mid-stream", Script::reply(["a", "b", "c"]).hang_after(2)),
        ] {
            let server = FakeLlmServer::start(script).await.unwrap();
            let settings = llm_settings(
                vec![provider_settings(&server, format, "main")],
                800,
                800,
                10_000,
            );
            let registry =
                ProviderRegistry::from_settings_with(&settings, http(RetryPolicy::none())).unwrap();
            let t0 = Instant::now();
            let (outcome, open_while_waiting) = tokio::join!(
                registry.stream_with_failover(None, ChatRequest::single("hi")),
                server.wait_for_open_streams(1, Duration::from_secs(5))
            );
            assert!(
                open_while_waiting,
                "{format:?} {label}: the server saw the request as an open stream"
            );
            let error = match outcome {
                Err(e) => e,
                Ok((_, stream)) => {
                    let items = collect(stream).await;
                    assert_eq!(text_of(&items), "ab", "{format:?} {label}");
                    items.last().cloned().unwrap().err().unwrap()
                }
            };
            let elapsed = t0.elapsed();
            assert_eq!(
                error.wire_code(),
                "LLM_TIMEOUT",
                "{format:?} {label}: {error:?}"
            );
            assert!(
                elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(4),
                "{format:?} {label}: {elapsed:?}"
            );
            assert!(
                server
                    .wait_for_open_streams(0, Duration::from_secs(5))
                    .await,
                "{format:?} {label}: the provider connection stayed open ({} open)",
                server.open_streams()
            );
            server.shutdown().await;
        }
    }
}
