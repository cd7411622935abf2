//! The registry: selector order, failover before the first token, none after it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_config::{LlmSettings, ProviderKind, ProviderSettings};
use chat_llm::{
    ChatRequest, Deadlines, EchoProvider, LlmError, LlmProvider, ModelInfo, ProviderRegistry,
    RetryPolicy, SetupError, StreamEvent,
};
use chat_testkit::fake_llm::{FakeLlmServer, Script, WireFormat};
use common::*;

fn settings(
    providers: Vec<ProviderSettings>,
    fallback: &[&str],
    first_token_ms: u64,
) -> LlmSettings {
    LlmSettings {
        providers,
        fallback: fallback.iter().map(|s| (*s).to_owned()).collect(),
        first_token_timeout: Duration::from_millis(first_token_ms),
        idle_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        ..LlmSettings::default()
    }
}

#[tokio::test]
async fn a_provider_failing_before_its_first_token_hands_over_to_the_next() {
    for format in FORMATS {
        let primary = FakeLlmServer::start(Script::status(500, "down"))
            .await
            .unwrap();
        let backup = FakeLlmServer::start(Script::reply(["from ", "backup"]))
            .await
            .unwrap();
        let s = settings(
            vec![
                provider_settings(&primary, format, "primary"),
                provider_settings(&backup, WireFormat::OpenAi, "backup"),
            ],
            &["backup"],
            2_000,
        );
        let registry = ProviderRegistry::from_settings_with(&s, http(RetryPolicy::none())).unwrap();
        let (id, stream) = registry
            .stream_with_failover(Some("primary"), ChatRequest::single("hi"))
            .await
            .unwrap();
        assert_eq!(id, "backup", "{format:?}");
        let items = collect(stream).await;
        assert_eq!(text_of(&items), "from backup");
        assert_eq!(primary.request_count(), 1);
        assert_eq!(backup.request_count(), 1);
        primary.shutdown().await;
        backup.shutdown().await;
    }
}

#[tokio::test]
async fn a_provider_missing_its_first_token_deadline_hands_over_and_is_disconnected() {
    let primary = FakeLlmServer::start(Script::reply(["late"]).hang_before_headers())
        .await
        .unwrap();
    let backup = FakeLlmServer::start(Script::reply(["on time"]))
        .await
        .unwrap();
    let s = settings(
        vec![
            provider_settings(&primary, WireFormat::Anthropic, "primary"),
            provider_settings(&backup, WireFormat::Dify, "backup"),
        ],
        &["backup"],
        300,
    );
    let registry = ProviderRegistry::from_settings_with(&s, http(RetryPolicy::none())).unwrap();
    let t0 = Instant::now();
    let (id, stream) = registry
        .stream_with_failover(None, ChatRequest::single("hi"))
        .await
        .unwrap();
    assert_eq!(id, "backup");
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(text_of(&collect(stream).await), "on time");
    assert!(
        primary
            .wait_for_open_streams(0, Duration::from_secs(5))
            .await
    );
    primary.shutdown().await;
    backup.shutdown().await;
}

#[tokio::test]
async fn no_failover_once_text_was_delivered() {
    let primary = FakeLlmServer::start(Script::reply(["partial", "rest"]).disconnect_after(1))
        .await
        .unwrap();
    let backup = FakeLlmServer::start(Script::reply(["backup"]))
        .await
        .unwrap();
    let s = settings(
        vec![
            provider_settings(&primary, WireFormat::OpenAi, "primary"),
            provider_settings(&backup, WireFormat::OpenAi, "backup"),
        ],
        &["backup"],
        2_000,
    );
    let registry = ProviderRegistry::from_settings_with(&s, http(RetryPolicy::none())).unwrap();
    let (id, stream) = registry
        .stream_with_failover(None, ChatRequest::single("hi"))
        .await
        .unwrap();
    assert_eq!(id, "primary");
    let items = collect(stream).await;
    assert_eq!(items[0], Ok(StreamEvent::Delta("partial".into())));
    assert!(matches!(items.last(), Some(Err(LlmError::Unavailable(_)))));
    assert_eq!(backup.request_count(), 0);
    primary.shutdown().await;
    backup.shutdown().await;
}

#[tokio::test]
async fn when_every_provider_fails_the_last_error_is_returned() {
    let a = FakeLlmServer::start(Script::status(500, "a down"))
        .await
        .unwrap();
    let b = FakeLlmServer::start(Script::status(429, "b busy").retry_after("9"))
        .await
        .unwrap();
    let s = settings(
        vec![
            provider_settings(&a, WireFormat::OpenAi, "a"),
            provider_settings(&b, WireFormat::OpenAi, "b"),
        ],
        &["b"],
        2_000,
    );
    let registry = ProviderRegistry::from_settings_with(&s, http(RetryPolicy::none())).unwrap();
    let error = registry
        .stream_with_failover(None, ChatRequest::single("hi"))
        .await
        .err()
        .unwrap();
    assert_eq!(
        error,
        LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(9))
        }
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn the_last_attempt_keeps_its_full_deadline() {
    // The backup needs 500 ms for its first byte; each attempt has 700 ms. Having
    // spent 700 ms on the primary does not shorten the backup's budget.
    let primary = FakeLlmServer::start(Script::reply(["x"]).hang_before_headers())
        .await
        .unwrap();
    let backup = FakeLlmServer::start(
        Script::reply(["slow but fine"]).header_delay(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let s = settings(
        vec![
            provider_settings(&primary, WireFormat::OpenAi, "primary"),
            provider_settings(&backup, WireFormat::OpenAi, "backup"),
        ],
        &["backup"],
        700,
    );
    let registry = ProviderRegistry::from_settings_with(&s, http(RetryPolicy::none())).unwrap();
    let (id, stream) = registry
        .stream_with_failover(None, ChatRequest::single("hi"))
        .await
        .unwrap();
    assert_eq!(id, "backup");
    assert_eq!(text_of(&collect(stream).await), "slow but fine");
    primary.shutdown().await;
    backup.shutdown().await;
}

fn echo(id: &str) -> Arc<dyn LlmProvider> {
    Arc::new(EchoProvider::new(id, format!("Echo {id}"), Duration::ZERO))
}

fn deadlines() -> Deadlines {
    Deadlines {
        first_token: Duration::from_secs(1),
        idle: Duration::from_secs(1),
        total: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn models_are_listed_in_stable_order_with_the_default_first() {
    let registry = ProviderRegistry::new(
        vec![echo("a"), echo("b"), echo("c")],
        Some("b".into()),
        vec!["c".into()],
        deadlines(),
    )
    .unwrap();
    let ids: Vec<String> = registry.models().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["b", "a", "c"]);
    assert_eq!(registry.default_id(), "b");
    assert!(registry.contains("a") && !registry.contains("zzz"));
    assert_eq!(registry.attempt_order(Some("a")), ["a", "c"]);
    assert_eq!(registry.attempt_order(Some("c")), ["c"]);
    assert_eq!(registry.attempt_order(None), ["b", "c"]);
    assert_eq!(registry.attempt_order(Some("removed-model")), ["b", "c"]);
    assert_eq!(
        registry.models()[0],
        ModelInfo {
            id: "b".into(),
            name: "Echo b".into()
        }
    );
}

#[tokio::test]
async fn an_unknown_selection_uses_the_default() {
    let registry =
        ProviderRegistry::new(vec![echo("a"), echo("b")], None, vec![], deadlines()).unwrap();
    let (id, _) = registry
        .stream_with_failover(Some("gone"), ChatRequest::single("hi"))
        .await
        .unwrap();
    assert_eq!(id, "a");
}

#[tokio::test]
async fn invalid_registries_are_refused() {
    assert_eq!(
        ProviderRegistry::new(vec![], None, vec![], deadlines()).err(),
        Some(SetupError::NoProviders)
    );
    assert_eq!(
        ProviderRegistry::new(vec![echo("a"), echo("a")], None, vec![], deadlines()).err(),
        Some(SetupError::DuplicateId("a".into()))
    );
    assert!(matches!(
        ProviderRegistry::new(vec![echo("a")], Some("x".into()), vec![], deadlines()).err(),
        Some(SetupError::UnknownProvider {
            field: "llm.default_provider",
            ..
        })
    ));
    assert!(matches!(
        ProviderRegistry::new(vec![echo("a")], None, vec!["x".into()], deadlines()).err(),
        Some(SetupError::UnknownProvider {
            field: "llm.fallback",
            ..
        })
    ));
}

#[tokio::test]
async fn every_provider_kind_is_built_from_settings() {
    let server = FakeLlmServer::start(Script::default()).await.unwrap();
    let mut providers: Vec<_> = FORMATS
        .iter()
        .enumerate()
        .map(|(i, f)| provider_settings(&server, *f, &format!("p{i}")))
        .collect();
    providers.push(ProviderSettings {
        id: "echo".into(),
        name: "Echo".into(),
        kind: ProviderKind::Echo,
        endpoint: String::new(),
        api_key: None,
        model: String::new(),
        max_tokens: None,
        echo_delay: Some(Duration::ZERO),
    });
    let mut s = settings(providers, &[], 2_000);
    s.default_provider = Some("echo".into());
    let registry = ProviderRegistry::from_settings(&s).unwrap();
    let ids: Vec<String> = registry.models().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["echo", "p0", "p1", "p2"]);
    for id in ["p0", "p1", "p2"] {
        let (used, stream) = registry
            .stream_with_failover(Some(id), ChatRequest::single("hi"))
            .await
            .unwrap();
        assert_eq!(used, id);
        assert_eq!(text_of(&collect(stream).await), Script::default().text());
    }
    let (_, stream) = registry
        .stream_with_failover(None, ChatRequest::single("ping"))
        .await
        .unwrap();
    assert_eq!(
        text_of(&collect(stream).await),
        "[echo — development model] You said: ping"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn one_fake_server_can_script_per_model() {
    let server = FakeLlmServer::new(Script::reply(["healthy"]))
        .for_model("model-sick", Script::status(503, "sick"))
        .run()
        .await
        .unwrap();
    let s = settings(
        vec![
            provider_settings(&server, WireFormat::OpenAi, "sick"),
            provider_settings(&server, WireFormat::Anthropic, "well"),
        ],
        &["well"],
        2_000,
    );
    let registry = ProviderRegistry::from_settings_with(&s, http(RetryPolicy::none())).unwrap();
    let (id, stream) = registry
        .stream_with_failover(None, ChatRequest::single("hi"))
        .await
        .unwrap();
    assert_eq!(id, "well");
    assert_eq!(text_of(&collect(stream).await), "healthy");
    let models: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.model().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(models, ["model-sick", "model-well"]);
    server.shutdown().await;
}
