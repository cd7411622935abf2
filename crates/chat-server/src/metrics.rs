//! Prometheus metrics: one process-wide recorder (installed once, so several servers
//! in one test process share it), HTTP request metrics, and gauges refreshed at
//! scrape time.
//!
//! The recorder keeps every histogram sample in a per-histogram queue until it is
//! folded into the buckets, which happens on a scrape or on an upkeep pass. A server
//! nobody scrapes (no Prometheus yet, a long scrape interval) would keep them all:
//! the 10-minute soak measured ~70 bytes per reply, RSS rising without bound
//! (docs/BENCHMARKS.md). [`spawn_upkeep`] folds them every [`UPKEEP_INTERVAL`].

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::AppState;

/// How often recorded histogram samples are folded into their buckets (the interval
/// the exporter's own HTTP listener would use).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

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

/// Folds the recorder's pending histogram samples into their buckets every
/// [`UPKEEP_INTERVAL`] until `cancel` fires (module docs).
pub fn spawn_upkeep(
    handle: PrometheusHandle,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> tokio::task::JoinHandle<()> {
    run_every(UPKEEP_INTERVAL, cancel, tracker, move || {
        handle.run_upkeep();
        crate::allocator::request_thread_cache_flush();
    })
}

/// Runs `f` every `period` (the first time after one period) until `cancel` fires.
fn run_every(
    period: Duration,
    cancel: CancellationToken,
    tracker: &TaskTracker,
    f: impl Fn() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tracker.spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                _ = ticker.tick() => f(),
            }
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn upkeep_runs_every_period_until_cancelled() {
        let runs = Arc::new(AtomicUsize::new(0));
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let counted = runs.clone();
        run_every(UPKEEP_INTERVAL, cancel.clone(), &tracker, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        tokio::time::sleep(UPKEEP_INTERVAL / 2).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0, "not before one period");
        tokio::time::sleep(UPKEEP_INTERVAL * 3).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
        tokio::time::sleep(UPKEEP_INTERVAL * 3).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "stopped");
    }

    #[tokio::test]
    async fn upkeep_keeps_what_a_scrape_reports() {
        let handle = handle();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        spawn_upkeep(handle.clone(), cancel.clone(), &tracker);
        for _ in 0..1000 {
            metrics::histogram!("chatbox_test_upkeep_seconds").record(0.002);
        }
        // Folding samples into buckets early must not lose them.
        handle.run_upkeep();
        let text = handle.render();
        assert!(
            text.contains("chatbox_test_upkeep_seconds_count 1000"),
            "{text}"
        );
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
