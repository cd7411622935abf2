//! Building providers from configuration, and what can go wrong doing it.

use chat_config::{net, ProviderSettings};
use url::Url;

/// A provider configuration the registry cannot use. `chat-config` validation
/// normally catches these first; they are checked again here so that no way of
/// building a provider skips the rules (e.g. the https rule for API keys).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// No provider is configured at all.
    #[error("no LLM provider is configured")]
    NoProviders,
    /// Two providers share an id.
    #[error("duplicate provider id {0:?}")]
    DuplicateId(String),
    /// `llm.default_provider` or an `llm.fallback` entry names no configured provider.
    #[error("{field}: {id:?} is not the id of a configured provider")]
    UnknownProvider {
        /// The setting that names it.
        field: &'static str,
        /// The unknown id.
        id: String,
    },
    /// The endpoint is not https (or http to an internal host), or not a URL.
    #[error("provider {id:?}: endpoint {message}")]
    InvalidEndpoint {
        /// Provider id.
        id: String,
        /// What is wrong with it.
        message: String,
    },
    /// A required setting is missing (model for openai/anthropic, api_key for
    /// anthropic/dify).
    #[error("provider {id:?}: {field} is required for this provider type")]
    Missing {
        /// Provider id.
        id: String,
        /// The missing setting.
        field: &'static str,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("HTTP client: {0}")]
    HttpClient(String),
}

/// The provider's validated base URL.
pub(crate) fn endpoint(settings: &ProviderSettings) -> Result<Url, SetupError> {
    net::validate_endpoint(&settings.endpoint).map_err(|message| SetupError::InvalidEndpoint {
        id: settings.id.clone(),
        message,
    })
}

/// Fails when `value` is blank.
pub(crate) fn required(
    settings: &ProviderSettings,
    field: &'static str,
    value: &str,
) -> Result<(), SetupError> {
    if value.trim().is_empty() {
        Err(SetupError::Missing {
            id: settings.id.clone(),
            field,
        })
    } else {
        Ok(())
    }
}
