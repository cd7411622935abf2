//! What every handler shares.

use std::sync::Arc;

use axum::extract::FromRef;
use chat_auth::JwtValidator;
use chat_config::Config;
use chat_ratelimit::RateLimiters;
use chat_router::MessageRouter;
use chat_storage::SessionStore;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::health::Readiness;

/// Everything handlers share. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Readiness checks and the draining flag.
    pub readiness: Arc<Readiness>,
    /// Chat semantics (sessions in memory, takeover, end).
    pub router: Arc<MessageRouter>,
    /// Durable storage (through the write-behind queue for MongoDB).
    pub store: Arc<dyn SessionStore>,
    /// JWT validation for the auth extractors.
    pub validator: Arc<JwtValidator>,
    /// Admin and public limiters.
    pub limiters: Arc<RateLimiters>,
    /// Renders `/metrics/prometheus`.
    pub metrics: PrometheusHandle,
    /// `scheme://host:port` clients reach this server at (upload URLs).
    pub public_base: Arc<str>,
}

impl FromRef<AppState> for Arc<Readiness> {
    fn from_ref(state: &AppState) -> Self {
        state.readiness.clone()
    }
}

impl FromRef<AppState> for Arc<JwtValidator> {
    fn from_ref(state: &AppState) -> Self {
        state.validator.clone()
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(state: &AppState) -> Self {
        state.config.clone()
    }
}
