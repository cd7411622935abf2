//! No buffering: chunks reach the caller as the provider sends them.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use chat_llm::{build_provider, ChatRequest, RetryPolicy, StreamEvent};
use chat_testkit::fake_llm::{FakeLlmServer, Script};
use common::*;

#[tokio::test]
async fn chunk_gaps_from_the_provider_are_preserved_through_every_adapter() {
    for format in FORMATS {
        let server = FakeLlmServer::start(
            Script::reply(["one ", "two ", "three ", "four"])
                .chunk_delay(Duration::from_millis(200)),
        )
        .await
        .unwrap();
        let p = build_provider(
            &provider_settings(&server, format, "p"),
            &http(RetryPolicy::none()),
        )
        .unwrap();
        let stream = p.stream(ChatRequest::single("hi")).await.unwrap();
        let items = collect_timed(stream).await;
        let arrivals: Vec<_> = items
            .iter()
            .filter(|(_, i)| matches!(i, Ok(StreamEvent::Delta(_))))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(arrivals.len(), 4, "{format:?}");
        for pair in arrivals.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_millis(100),
                "{format:?}: chunks 200 ms apart arrived {gap:?} apart (buffered?)"
            );
        }
        server.shutdown().await;
    }
}
