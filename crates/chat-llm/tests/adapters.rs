//! Every adapter against the fake provider server over real HTTP.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chat_llm::{
    build_provider, ChatRequest, ChatTurn, LlmError, LlmProvider, RetryPolicy, SetupError,
    StreamEvent, Usage, ANTHROPIC_VERSION,
};
use chat_testkit::fake_llm::{FakeLlmServer, Script, WireFormat};
use common::*;

async fn provider(
    server: &chat_testkit::fake_llm::FakeLlmHandle,
    format: WireFormat,
    retry: RetryPolicy,
) -> Arc<dyn LlmProvider> {
    build_provider(&provider_settings(server, format, "p1"), &http(retry)).unwrap()
}

#[tokio::test]
async fn each_adapter_streams_deltas_then_reported_usage_then_done() {
    for format in FORMATS {
        let server = FakeLlmServer::start(Script::reply(["Hel", "lo", " world"]).usage(12, 3))
            .await
            .unwrap();
        let p = provider(&server, format, RetryPolicy::none()).await;
        let items = collect(p.stream(ChatRequest::single("hi")).await.unwrap()).await;
        assert_eq!(
            items,
            vec![
                Ok(StreamEvent::Delta("Hel".into())),
                Ok(StreamEvent::Delta("lo".into())),
                Ok(StreamEvent::Delta(" world".into())),
                Ok(StreamEvent::Usage(Usage {
                    prompt_tokens: 12,
                    completion_tokens: 3,
                    estimated: false
                })),
                Ok(StreamEvent::Done),
            ],
            "{format:?}"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn each_adapter_estimates_usage_when_the_provider_reports_none() {
    for format in FORMATS {
        let server = FakeLlmServer::start(Script::reply(["abcd", "efgh"]))
            .await
            .unwrap();
        let p = provider(&server, format, RetryPolicy::none()).await;
        let request = ChatRequest::single("12345678");
        let items = collect(p.stream(request).await.unwrap()).await;
        assert_eq!(text_of(&items), "abcdefgh");
        assert_eq!(
            usage_of(&items),
            Some(Usage::estimate(8, 8)),
            "{format:?}: chars/4, marked estimated"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn requests_carry_the_system_prompt_history_model_and_key() {
    let request = ChatRequest {
        system_prompt: Some("You are terse.".into()),
        messages: vec![
            ChatTurn::user("first question"),
            ChatTurn::assistant("first answer"),
            ChatTurn::user("second question"),
        ],
        user_id: Some("user-42".into()),
    };
    for format in FORMATS {
        let server = FakeLlmServer::start(Script::default()).await.unwrap();
        let p = provider(&server, format, RetryPolicy::none()).await;
        collect(p.stream(request.clone()).await.unwrap()).await;
        let recorded = server.requests();
        assert_eq!(recorded.len(), 1);
        let r = &recorded[0];
        assert_eq!(r.api_key(), Some(key_for("p1").as_str()), "{format:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        match format {
            WireFormat::OpenAi => {
                assert_eq!(r.path, "/v1/chat/completions");
                assert_eq!(r.model(), Some("model-p1"));
                assert_eq!(r.system_prompt().as_deref(), Some("You are terse."));
                assert!(r.wants_stream_usage());
                assert_eq!(r.body["stream"], true);
                assert_eq!(r.body["max_tokens"], 256);
                assert_eq!(r.body["user"], "user-42");
                assert_eq!(
                    r.messages(),
                    vec![
                        ("user".to_owned(), "first question".to_owned()),
                        ("assistant".to_owned(), "first answer".to_owned()),
                        ("user".to_owned(), "second question".to_owned()),
                    ]
                );
            }
            WireFormat::Anthropic => {
                assert_eq!(r.path, "/v1/messages");
                assert_eq!(r.header("anthropic-version"), Some(ANTHROPIC_VERSION));
                assert_eq!(
                    r.header("authorization"),
                    None,
                    "anthropic uses x-api-key only"
                );
                assert_eq!(r.model(), Some("model-p1"));
                assert_eq!(r.system_prompt().as_deref(), Some("You are terse."));
                assert_eq!(r.body["max_tokens"], 256);
                assert_eq!(r.body["stream"], true);
                assert_eq!(r.body["metadata"]["user_id"], "user-42");
                assert_eq!(r.messages().len(), 3);
                assert_eq!(r.messages()[2].1, "second question");
            }
            WireFormat::Dify => {
                assert_eq!(r.path, "/v1/chat-messages");
                assert_eq!(r.body["response_mode"], "streaming");
                assert_eq!(r.body["inputs"], serde_json::json!({}));
                assert_eq!(r.body["user"], "user-42");
                let query = r.query().unwrap();
                assert!(query.contains("User: first question\nAssistant: first answer"));
                assert!(query.ends_with("second question"));
            }
        }
        server.shutdown().await;
    }
}

#[tokio::test]
async fn http_errors_map_to_typed_errors() {
    for format in FORMATS {
        for (status, check) in [
            (
                401u16,
                (|e: &LlmError| matches!(e, LlmError::Unauthorized(_))) as fn(&LlmError) -> bool,
            ),
            (403, |e| matches!(e, LlmError::Unauthorized(_))),
            (
                400,
                |e| matches!(e, LlmError::BadRequest(m) if m.contains("context too long")),
            ),
            (
                500,
                |e| matches!(e, LlmError::Unavailable(m) if m.contains("500")),
            ),
        ] {
            let server =
                FakeLlmServer::start(Script::status(status, r#"{"error":"context too long"}"#))
                    .await
                    .unwrap();
            let p = provider(&server, format, RetryPolicy::none()).await;
            let error = match p.stream(ChatRequest::single("hi")).await {
                Err(e) => e,
                Ok(_) => panic!("{format:?} {status}: expected an error"),
            };
            assert!(check(&error), "{format:?} {status}: got {error:?}");
            assert_eq!(error.wire_code(), "LLM_UNAVAILABLE");
            server.shutdown().await;
        }
    }
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let server = FakeLlmServer::start(Script::status(503, "overloaded"))
        .await
        .unwrap();
    let p = provider(&server, WireFormat::OpenAi, fast_retry()).await;
    let error = p.stream(ChatRequest::single("hi")).await.err().unwrap();
    assert!(matches!(error, LlmError::Unavailable(_)));
    assert_eq!(server.request_count(), 3, "one attempt plus two retries");
    server.shutdown().await;
}

#[tokio::test]
async fn unauthorized_is_not_retried() {
    let server = FakeLlmServer::start(Script::status(401, "bad key"))
        .await
        .unwrap();
    let p = provider(&server, WireFormat::Anthropic, fast_retry()).await;
    assert!(matches!(
        p.stream(ChatRequest::single("hi")).await.err(),
        Some(LlmError::Unauthorized(_))
    ));
    assert_eq!(server.request_count(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn rate_limit_with_a_short_retry_after_is_waited_out_then_succeeds() {
    for format in FORMATS {
        let server = FakeLlmServer::new(Script::reply(["ok"]))
            .enqueue(Script::status(429, "slow down").retry_after("0.05"))
            .run()
            .await
            .unwrap();
        let p = provider(&server, format, fast_retry()).await;
        let items = collect(p.stream(ChatRequest::single("hi")).await.unwrap()).await;
        assert_eq!(text_of(&items), "ok", "{format:?}");
        assert_eq!(server.request_count(), 2);
        server.shutdown().await;
    }
}

#[tokio::test]
async fn rate_limit_with_a_long_retry_after_is_reported_with_it() {
    for format in FORMATS {
        let server = FakeLlmServer::start(Script::status(429, "quota").retry_after("30"))
            .await
            .unwrap();
        let p = provider(&server, format, fast_retry()).await;
        let error = p.stream(ChatRequest::single("hi")).await.err().unwrap();
        assert_eq!(
            error,
            LlmError::RateLimited {
                retry_after: Some(Duration::from_secs(30))
            },
            "{format:?}"
        );
        assert_eq!(error.wire_code(), "TOO_MANY_REQUESTS");
        assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(
            server.request_count(),
            1,
            "not waited out: longer than the cap"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn an_in_stream_provider_error_ends_the_reply_after_its_text() {
    for format in FORMATS {
        let server = FakeLlmServer::start(
            Script::reply(["a", "b", "c"]).provider_error_after(1, "exploded"),
        )
        .await
        .unwrap();
        let p = provider(&server, format, RetryPolicy::none()).await;
        let items = collect(p.stream(ChatRequest::single("hi")).await.unwrap()).await;
        assert_eq!(items.len(), 2, "{format:?}: {items:?}");
        assert_eq!(items[0], Ok(StreamEvent::Delta("a".into())));
        assert!(
            matches!(&items[1], Err(LlmError::Unavailable(m)) if m.contains("exploded")),
            "{format:?}: {items:?}"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_disconnect_mid_stream_is_unavailable() {
    for format in FORMATS {
        let server = FakeLlmServer::start(Script::reply(["a", "b", "c"]).disconnect_after(2))
            .await
            .unwrap();
        let p = provider(&server, format, RetryPolicy::none()).await;
        let items = collect(p.stream(ChatRequest::single("hi")).await.unwrap()).await;
        assert_eq!(text_of(&items), "ab", "{format:?}");
        assert!(
            matches!(items.last(), Some(Err(LlmError::Unavailable(_)))),
            "{format:?}: {items:?}"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_clean_close_without_the_end_marker_is_unavailable() {
    for format in FORMATS {
        let server = FakeLlmServer::start(Script::reply(["a"]).without_end())
            .await
            .unwrap();
        let p = provider(&server, format, RetryPolicy::none()).await;
        let items = collect(p.stream(ChatRequest::single("hi")).await.unwrap()).await;
        assert!(
            matches!(items.last(), Some(Err(LlmError::Unavailable(_)))),
            "{format:?}: {items:?}"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn malformed_lines_and_pings_are_skipped() {
    for format in FORMATS {
        let script = Script::steps(vec![
            chat_testkit::fake_llm::Step::Ping,
            chat_testkit::fake_llm::Step::Text("x".into()),
            chat_testkit::fake_llm::Step::Raw("data: {this is not json\n\n".into()),
            chat_testkit::fake_llm::Step::Raw(": comment line\n\n".into()),
            chat_testkit::fake_llm::Step::Ping,
            chat_testkit::fake_llm::Step::Text("y".into()),
            chat_testkit::fake_llm::Step::End,
        ]);
        let server = FakeLlmServer::start(script.malformed_line("data: {\"half\":"))
            .await
            .unwrap();
        let p = provider(&server, format, RetryPolicy::none()).await;
        let items = collect(p.stream(ChatRequest::single("hi")).await.unwrap()).await;
        assert_eq!(text_of(&items), "xy", "{format:?}: {items:?}");
        assert_eq!(items.last(), Some(&Ok(StreamEvent::Done)));
        server.shutdown().await;
    }
}

#[tokio::test]
async fn dify_agent_messages_are_answers_too() {
    let server = FakeLlmServer::start(Script::reply(["agent ", "says"]).dify_agent_messages())
        .await
        .unwrap();
    let p = provider(&server, WireFormat::Dify, RetryPolicy::none()).await;
    let items = collect(p.stream(ChatRequest::single("hi")).await.unwrap()).await;
    assert_eq!(text_of(&items), "agent says");
    server.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable() {
    let server = FakeLlmServer::start(Script::default()).await.unwrap();
    let settings = provider_settings(&server, WireFormat::OpenAi, "p1");
    server.shutdown().await;
    // The port is closed now: connection refused, retried, then reported.
    let p = build_provider(&settings, &http(fast_retry())).unwrap();
    let error = p.stream(ChatRequest::single("hi")).await.err().unwrap();
    assert!(matches!(error, LlmError::Unavailable(_)), "{error:?}");
    assert!(error.is_retryable_before_first_byte());
}

#[tokio::test]
async fn the_endpoint_rule_is_enforced_when_building() {
    let server = FakeLlmServer::start(Script::default()).await.unwrap();
    let mut settings = provider_settings(&server, WireFormat::OpenAi, "p1");
    settings.endpoint = "http://api.example.com/v1".into();
    assert!(matches!(
        build_provider(&settings, &http(RetryPolicy::none())).err(),
        Some(SetupError::InvalidEndpoint { .. })
    ));
    settings.endpoint = "https://api.example.com/v1".into();
    assert!(build_provider(&settings, &http(RetryPolicy::none())).is_ok());
    let mut settings = provider_settings(&server, WireFormat::Anthropic, "p2");
    settings.api_key = None;
    assert_eq!(
        build_provider(&settings, &http(RetryPolicy::none())).err(),
        Some(SetupError::Missing {
            id: "p2".into(),
            field: "api_key"
        })
    );
    server.shutdown().await;
}

#[tokio::test]
async fn api_keys_never_appear_in_debug_output_or_errors() {
    for format in FORMATS {
        let server = FakeLlmServer::start(Script::status(401, "invalid key"))
            .await
            .unwrap();
        let settings = provider_settings(&server, format, "p1");
        let p = build_provider(&settings, &http(RetryPolicy::none())).unwrap();
        let error = p.stream(ChatRequest::single("hi")).await.err().unwrap();
        let key = key_for("p1");
        assert!(!format!("{error:?} {error}").contains(&key));
        server.shutdown().await;
    }
    let server = FakeLlmServer::start(Script::default()).await.unwrap();
    let settings = provider_settings(&server, WireFormat::OpenAi, "p1");
    let p = chat_llm::OpenAiProvider::new(&settings, http(RetryPolicy::none())).unwrap();
    assert!(!format!("{p:?}").contains(&key_for("p1")));
    server.shutdown().await;
}

#[tokio::test]
async fn sequential_replies_reuse_one_pooled_connection() {
    for format in FORMATS {
        let server = FakeLlmServer::start(Script::reply(["a", "b"]).usage(1, 1))
            .await
            .unwrap();
        let p = provider(&server, format, RetryPolicy::none()).await;
        for _ in 0..3 {
            let items = collect(p.stream(ChatRequest::single("hi")).await.unwrap()).await;
            assert_eq!(items.last(), Some(&Ok(StreamEvent::Done)));
        }
        assert_eq!(server.request_count(), 3);
        assert_eq!(
            server.connections_accepted(),
            1,
            "{format:?}: the connection was not reused"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn dropping_a_stream_mid_reply_closes_the_provider_connection() {
    for format in FORMATS {
        let server = FakeLlmServer::start(Script::reply(["a", "b", "c"]).hang_after(1))
            .await
            .unwrap();
        let p = provider(&server, format, RetryPolicy::none()).await;
        let mut stream = p.stream(ChatRequest::single("hi")).await.unwrap();
        let first = futures::StreamExt::next(&mut stream).await;
        assert_eq!(first, Some(Ok(StreamEvent::Delta("a".into()))));
        assert_eq!(server.open_streams(), 1);
        drop(stream); // what `stop` does
        assert!(
            server
                .wait_for_open_streams(0, Duration::from_secs(5))
                .await,
            "{format:?}: the connection stayed open after the stream was dropped"
        );
        server.shutdown().await;
    }
}
