//! Liveness (`/healthz`) and readiness (`/readyz`, PROTOCOL §2).
//!
//! Liveness only says the process serves HTTP. Readiness asks every registered
//! [`ReadinessCheck`] (storage, LLM providers, …) concurrently, each under a short
//! timeout so a hanging dependency makes the probe fail instead of hang, and reports
//! "not ready" while the server drains for shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// How long one readiness check may take before it counts as failing.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Result of one readiness check.
#[derive(Debug, Clone)]
pub struct CheckStatus {
    /// False makes `/readyz` answer 503.
    pub healthy: bool,
    /// Why it is unhealthy (shown as `reason`).
    pub reason: Option<String>,
    /// Extra fields for operators (backend name, pending writes, …).
    pub details: Map<String, Value>,
}

impl CheckStatus {
    /// A passing check with details.
    pub fn ok(details: Map<String, Value>) -> Self {
        Self {
            healthy: true,
            reason: None,
            details,
        }
    }

    /// A failing check with its reason.
    pub fn failing(reason: impl Into<String>, details: Map<String, Value>) -> Self {
        Self {
            healthy: false,
            reason: Some(reason.into()),
            details,
        }
    }
}

/// A dependency whose health decides readiness.
#[async_trait::async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// Key under `checks` (`storage`, `llm`).
    fn name(&self) -> &'static str;
    /// Extra keys the same result is reported under (legacy `mongodb`).
    fn aliases(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Probes the dependency; must not take long (it is also cut at [`CHECK_TIMEOUT`]).
    async fn check(&self) -> CheckStatus;
}

/// Readiness state shared by the HTTP handlers and the shutdown sequence.
#[derive(Default)]
pub struct Readiness {
    draining: AtomicBool,
    checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl Readiness {
    /// Readiness over `checks`.
    pub fn new(checks: Vec<Arc<dyn ReadinessCheck>>) -> Self {
        Self {
            draining: AtomicBool::new(false),
            checks,
        }
    }

    /// Marks the server as draining: `/readyz` answers 503 from now on, so load
    /// balancers stop sending new traffic while existing work finishes.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Runs every check concurrently and builds the `/readyz` body.
    pub async fn report(&self) -> (bool, Value) {
        let results = futures::future::join_all(self.checks.iter().map(|c| async move {
            let status = match tokio::time::timeout(CHECK_TIMEOUT, c.check()).await {
                Ok(status) => status,
                Err(_) => CheckStatus::failing(
                    format!("check timed out after {}s", CHECK_TIMEOUT.as_secs()),
                    Map::new(),
                ),
            };
            (c, status)
        }))
        .await;
        let mut ready = !self.is_draining();
        let mut checks = Map::new();
        for (check, status) in results {
            ready &= status.healthy;
            let mut body = status.details;
            body.insert(
                "status".to_owned(),
                Value::from(if status.healthy { "ok" } else { "failing" }),
            );
            if let Some(reason) = status.reason {
                body.insert("reason".to_owned(), Value::from(reason));
            }
            for alias in check.aliases() {
                checks.insert(alias.to_owned(), Value::Object(body.clone()));
            }
            checks.insert(check.name().to_owned(), Value::Object(body));
        }
        let mut body = json!({
            "status": if ready { "ready" } else { "not ready" },
            "timestamp": now_rfc3339(),
            "checks": checks,
        });
        if self.is_draining() {
            body["reason"] = Value::from("server is shutting down");
        }
        (ready, body)
    }
}

/// RFC3339 timestamp of now, second precision, `Z` suffix.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `GET /healthz`: 200 while the process serves.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "healthy", "timestamp": now_rfc3339()}))
}

/// `GET /readyz`: 200 when every check passes and the server is not draining, else 503.
pub async fn readyz(State(readiness): State<Arc<Readiness>>) -> impl IntoResponse {
    let (ready, body) = readiness.report().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Storage readiness: the backend answers a ping, and the write queue is not stuck.
pub struct StorageCheck {
    store: Arc<dyn chat_storage::SessionStore>,
    backend: chat_config::StorageBackend,
}

impl StorageCheck {
    /// A check of `store` (reported as `storage`, plus the legacy `mongodb` alias for
    /// the MongoDB backend).
    pub fn new(
        store: Arc<dyn chat_storage::SessionStore>,
        backend: chat_config::StorageBackend,
    ) -> Self {
        Self { store, backend }
    }
}

#[async_trait::async_trait]
impl ReadinessCheck for StorageCheck {
    fn name(&self) -> &'static str {
        "storage"
    }

    fn aliases(&self) -> Vec<&'static str> {
        match self.backend {
            chat_config::StorageBackend::Mongodb => vec!["mongodb"],
            chat_config::StorageBackend::Embedded => Vec::new(),
        }
    }

    async fn check(&self) -> CheckStatus {
        let health = self.store.health();
        let mut details = Map::new();
        details.insert(
            "backend".to_owned(),
            Value::from(match self.backend {
                chat_config::StorageBackend::Mongodb => "mongodb",
                chat_config::StorageBackend::Embedded => "embedded",
            }),
        );
        details.insert(
            "pending_writes".to_owned(),
            Value::from(health.pending_writes),
        );
        details.insert("degraded".to_owned(), Value::from(health.degraded));
        match self.store.ping().await {
            Err(e) => CheckStatus::failing(format!("storage unreachable: {e}"), details),
            Ok(()) if health.degraded => CheckStatus::failing(
                health
                    .last_error
                    .unwrap_or_else(|| "writes are waiting for the database".to_owned()),
                details,
            ),
            Ok(()) => CheckStatus::ok(details),
        }
    }
}

/// LLM readiness: providers are configured (their health is per request, with
/// deadlines and failover; probing a paid API on every readiness poll would cost money).
pub struct LlmCheck {
    providers: Arc<chat_llm::ProviderRegistry>,
}

impl LlmCheck {
    /// A check over the configured providers.
    pub fn new(providers: Arc<chat_llm::ProviderRegistry>) -> Self {
        Self { providers }
    }
}

#[async_trait::async_trait]
impl ReadinessCheck for LlmCheck {
    fn name(&self) -> &'static str {
        "llm"
    }

    async fn check(&self) -> CheckStatus {
        let models = self.providers.models();
        let mut details = Map::new();
        details.insert("providers".to_owned(), Value::from(models.len()));
        details.insert(
            "default".to_owned(),
            Value::from(self.providers.default_id()),
        );
        if models.is_empty() {
            CheckStatus::failing("no LLM provider configured", details)
        } else {
            CheckStatus::ok(details)
        }
    }
}
