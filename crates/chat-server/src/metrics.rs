//! Prometheus metrics: one process-wide recorder (installed once, so several servers
//! in one test process share it), HTTP request metrics, and gauges refreshed at
//! scrape time.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// Histogram buckets (seconds) for latencies: sub-millisecond to a few minutes.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
];

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "histogram buckets refused; using summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

/// Gauges computed from state when scraped (cheaper than updating on every change).
pub fn refresh_gauges(state: &AppState) {
    let stats = state.router.sessions().stats();
    metrics::gauge!("chatbox_sessions_active").set(stats.active as f64);
    metrics::gauge!("chatbox_sessions_in_memory").set(stats.total as f64);
    let health = state.store.health();
    metrics::gauge!("chatbox_storage_pending_writes").set(health.pending_writes as f64);
    metrics::gauge!("chatbox_storage_degraded").set(if health.degraded { 1.0 } else { 0.0 });
    metrics::gauge!("chatbox_ratelimit_tracked_keys", "limiter" => "user_messages")
        .set(state.limiters.user_messages.len() as f64);
    metrics::gauge!("chatbox_ratelimit_tracked_keys", "limiter" => "admin")
        .set(state.limiters.admin.len() as f64);
    metrics::gauge!("chatbox_ratelimit_tracked_keys", "limiter" => "public")
        .set(state.limiters.public.len() as f64);
    crate::allocator::refresh_gauges();
}

/// Counts requests and records their latency, labelled by route template (never the
/// raw path: ids would explode the label set).
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("chatbox_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("chatbox_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
