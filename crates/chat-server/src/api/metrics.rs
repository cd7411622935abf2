//! `GET /metrics/prometheus`, open only to `server.metrics_allowed_networks`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use chat_protocol::ApiErrorCode;

use super::error::ApiError;
use crate::client_ip::client_ip;
use crate::state::AppState;

/// Prometheus text format; 403 for clients outside the allowed networks.
pub async fn prometheus(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let ip = client_ip(peer, &headers, &state.config.server.trusted_proxies);
    let allowed = state
        .config
        .server
        .metrics_allowed_networks
        .iter()
        .any(|net| net.contains(&ip));
    if !allowed {
        return ApiError::new(
            ApiErrorCode::Forbidden,
            "metrics are not available from this network",
        )
        .into_response();
    }
    crate::metrics::refresh_gauges(&state);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
