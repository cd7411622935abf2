//! LLM providers behind the streaming [`LlmProvider`] trait: the OpenAI-compatible,
//! Anthropic and Dify adapters over one pooled HTTP client, the development
//! [`EchoProvider`], the three reply [`Deadlines`] (first token, idle, total) and the
//! [`ProviderRegistry`] with ordered failover.
//!
//! The router builds a [`ChatRequest`] from a session's bounded history, calls
//! [`ProviderRegistry::stream_with_failover`] and forwards the [`StreamEvent`]s; each
//! failure is an [`LlmError`] that knows its PROTOCOL §3 wire code. This crate owns no
//! sessions, sockets or persistence. Test doubles: `MockLlmProvider` (feature `mock`)
//! and the fake provider server in `chat-testkit`.

mod anthropic;
mod deadline;
mod dify;
mod echo;
mod error;
mod event;
mod http;
mod openai;
mod provider;
mod registry;
mod request;
mod setup;
mod sse;
mod sse_parser;

pub use anthropic::{AnthropicProvider, ANTHROPIC_VERSION, DEFAULT_ANTHROPIC_MAX_TOKENS};
pub use deadline::Deadlines;
pub use dify::{DifyProvider, DEFAULT_DIFY_USER};
pub use echo::{EchoProvider, DEFAULT_ECHO_DELAY, ECHO_PREFIX};
pub use error::{truncate_body, LlmError, MAX_ERROR_BODY_BYTES};
pub use event::{estimate_tokens, EventStream, StreamEvent, Usage};
pub use http::{ProviderHttp, RetryPolicy};
pub use openai::OpenAiProvider;
#[cfg(any(test, feature = "mock"))]
pub use provider::MockLlmProvider;
pub use provider::{LlmProvider, ModelInfo};
pub use registry::{build_provider, ProviderRegistry};
pub use request::{ChatRequest, ChatTurn, HistoryBudget, Role, ADMIN_PREFIX};
pub use setup::SetupError;
pub use sse::{MAX_MALFORMED_EVENTS, MAX_REPLY_BYTES};
