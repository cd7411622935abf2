//! Alerts raised when a user asks for a human (`help_request`).
//!
//! Every request is logged and counted; a webhook can be configured on top. The
//! webhook is sent by an owned background task through a bounded queue, so a slow or
//! unreachable webhook never delays the chat and can never grow memory.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One help request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpRequest {
    /// The session that needs a human.
    pub session_id: String,
    /// Its owner.
    pub user_id: String,
    /// When it was asked.
    pub at: DateTime<Utc>,
}

/// Receives help requests; implementations must not block.
pub trait HelpNotifier: Send + Sync {
    /// Raises the alert (fire and forget: delivery problems are logged, not returned).
    fn notify(&self, request: HelpRequest);
}

/// Log line + `chatbox_help_requests_total`, and optionally a webhook POST.
pub struct DefaultNotifier {
    webhook: Option<mpsc::Sender<HelpRequest>>,
}

/// Webhook requests waiting to be sent; beyond this they are dropped with a warning
/// (the log line and metric are still emitted for every request).
pub const WEBHOOK_QUEUE: usize = 256;

impl DefaultNotifier {
    /// A notifier that only logs and counts.
    pub fn log_only() -> Self {
        Self { webhook: None }
    }

    /// A notifier that also POSTs JSON `{session_id, user_id, at}` to `url`, from a task
    /// owned by `tracker` that stops when `cancel` fires.
    pub fn with_webhook(
        url: String,
        http: reqwest::Client,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<HelpRequest>(WEBHOOK_QUEUE);
        tracker.spawn(async move {
            loop {
                let request = tokio::select! {
                    () = cancel.cancelled() => break,
                    r = rx.recv() => match r { Some(r) => r, None => break },
                };
                let body = serde_json::json!({
                    "event": "help_request",
                    "session_id": request.session_id,
                    "user_id": request.user_id,
                    "at": request.at.to_rfc3339(),
                });
                let sent = http
                    .post(&url)
                    .timeout(Duration::from_secs(5))
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status().is_success() => {}
                    Ok(resp) => {
                        tracing::warn!(status = %resp.status(), "help webhook refused the alert")
                    }
                    Err(e) => tracing::warn!(error = %e, "help webhook unreachable"),
                }
            }
        });
        Self { webhook: Some(tx) }
    }
}

impl HelpNotifier for DefaultNotifier {
    fn notify(&self, request: HelpRequest) {
        tracing::warn!(session_id = %request.session_id, user_id = %request.user_id, "user requested human help");
        metrics::counter!("chatbox_help_requests_total").increment(1);
        if let Some(tx) = &self.webhook {
            if tx.try_send(request).is_err() {
                tracing::warn!("help webhook queue full; alert delivered to logs and metrics only");
            }
        }
    }
}

/// A shared notifier.
pub type SharedNotifier = Arc<dyn HelpNotifier>;
