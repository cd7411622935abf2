//! The HTTP API of PROTOCOL §2 (everything but `/ws`, health and the web UI).

pub mod admin;
pub mod convert;
pub mod error;
pub mod metrics;
pub mod sessions;
pub mod uploads;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// Routes relative to the path prefix.
pub fn routes(state: &AppState) -> Router<AppState> {
    let upload_limit = state.config.uploads.max_file_size + 64 * 1024;
    Router::new()
        .route("/sessions", get(sessions::list))
        .route("/sessions/{id}", get(sessions::detail))
        .route("/sessions/{id}/end", post(sessions::end))
        .route(
            "/sessions/{id}/share",
            post(sessions::share).delete(sessions::revoke_share),
        )
        .route("/shared/{token}", get(sessions::shared))
        .route("/admin/sessions", get(admin::sessions))
        .route("/admin/sessions/{id}", get(admin::session_detail))
        .route("/admin/users/{user_id}/sessions", get(admin::user_sessions))
        .route("/admin/metrics", get(admin::metrics))
        .route("/admin/takeover/{id}", post(admin::takeover))
        .route("/admin/release/{id}", post(admin::release))
        .route(
            "/uploads",
            post(uploads::upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/uploads/{file_id}", get(uploads::download))
        .route("/metrics/prometheus", get(metrics::prometheus))
}
