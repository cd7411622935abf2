//! The seam between the chat router and whatever model answers.

use async_trait::async_trait;

use crate::{ChatRequest, EventStream, LlmError};

/// A model that streams replies. Implementations: [`crate::OpenAiProvider`] (and any
/// OpenAI-compatible server), [`crate::AnthropicProvider`], [`crate::DifyProvider`],
/// [`crate::EchoProvider`]; `MockLlmProvider` with the `mock` feature.
///
/// Contract: `stream` returns once the provider accepted the request (or failed); the
/// returned stream yields `Delta* Usage Done` or ends with one error item, and
/// dropping it at any point releases the connection. Implementations apply no
/// deadlines of their own: [`crate::Deadlines`] are applied around them by the
/// registry, identically for every provider.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// Stable id from the configuration (what `model_select` names).
    fn id(&self) -> &str;
    /// Human name for the model selector.
    fn name(&self) -> &str;
    /// Starts generating a reply to `request`.
    async fn stream(&self, request: ChatRequest) -> Result<EventStream, LlmError>;
}

/// One entry of the model selector (`connection_status.models`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Provider id, sent back by the client in `model_select`.
    pub id: String,
    /// Display name.
    pub name: String,
}
