//! Shared helpers for the chat-llm integration tests (real HTTP to the fake server).
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chat_config::{ProviderKind, ProviderSettings};
use chat_llm::{EventStream, LlmError, ProviderHttp, RetryPolicy, StreamEvent, Usage};
use chat_testkit::fake_llm::{FakeLlmHandle, WireFormat};
use futures::StreamExt;
use secrecy::SecretString;

pub const FORMATS: [WireFormat; 3] = [WireFormat::OpenAi, WireFormat::Anthropic, WireFormat::Dify];

pub fn kind(format: WireFormat) -> ProviderKind {
    match format {
        WireFormat::OpenAi => ProviderKind::Openai,
        WireFormat::Anthropic => ProviderKind::Anthropic,
        WireFormat::Dify => ProviderKind::Dify,
    }
}

pub fn key_for(id: &str) -> String {
    format!("sk-test-{id}-0123456789")
}

/// Provider settings pointing at the fake server, with id-derived model and key.
pub fn provider_settings(server: &FakeLlmHandle, format: WireFormat, id: &str) -> ProviderSettings {
    ProviderSettings {
        id: id.to_owned(),
        name: format!("Provider {id}"),
        kind: kind(format),
        endpoint: server.endpoint(format),
        api_key: Some(SecretString::from(key_for(id))),
        model: format!("model-{id}"),
        max_tokens: Some(256),
        echo_delay: None,
    }
}

/// Quick retries so tests stay fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(2),
    }
}

pub fn http(retry: RetryPolicy) -> ProviderHttp {
    ProviderHttp::new(retry).expect("client")
}

/// Everything a stream yielded, each with its arrival time.
pub async fn collect_timed(
    mut stream: EventStream,
) -> Vec<(Instant, Result<StreamEvent, LlmError>)> {
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push((Instant::now(), item));
    }
    out
}

pub async fn collect(stream: EventStream) -> Vec<Result<StreamEvent, LlmError>> {
    stream.collect().await
}

pub fn text_of(items: &[Result<StreamEvent, LlmError>]) -> String {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(StreamEvent::Delta(d)) => Some(d.as_str()),
            _ => None,
        })
        .collect()
}

pub fn usage_of(items: &[Result<StreamEvent, LlmError>]) -> Option<Usage> {
    items.iter().find_map(|i| match i {
        Ok(StreamEvent::Usage(u)) => Some(*u),
        _ => None,
    })
}
