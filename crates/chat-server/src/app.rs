//! The axum application: shared state, the route table under the path prefix, the
//! cross-cutting layers, and [`serve`], which runs it until shutdown and then drains
//! within the configured deadline.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::FromRef;
use axum::http::{header, HeaderName, HeaderValue, Request};
use axum::routing::get;
use axum::Router;
use chat_config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::health::{self, Readiness};

/// Everything handlers share. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Readiness checks and the draining flag.
    pub readiness: Arc<Readiness>,
}

impl FromRef<AppState> for Arc<Readiness> {
    fn from_ref(state: &AppState) -> Self {
        state.readiness.clone()
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(state: &AppState) -> Self {
        state.config.clone()
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The complete route table, mounted under `server.path_prefix`.
pub fn router(state: AppState) -> Router {
    let prefix = state.config.server.path_prefix.clone();
    let api = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state);
    let app = if prefix == "/" {
        api
    } else {
        Router::new().nest(&prefix, api)
    };
    with_layers(app)
}

/// Layers every response goes through: request ids, access log without query strings
/// (a `?token=` must never reach a log), and the PROTOCOL §2 security headers.
fn with_layers(app: Router) -> Router {
    app.layer(SetResponseHeaderLayer::overriding(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
    .layer(SetResponseHeaderLayer::overriding(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    ))
    .layer(SetResponseHeaderLayer::overriding(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    ))
    .layer(PropagateRequestIdLayer::new(REQUEST_ID))
    .layer(
        TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let request_id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            // Path only: the query may carry a token.
            tracing::info_span!(
                "http",
                method = %req.method(),
                path = %req.uri().path(),
                request_id = %request_id,
            )
        }),
    )
    .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Serves the application on `listener` until `shutdown` is cancelled, then drains:
/// readiness turns 503, no new connections are accepted, and in-flight work gets
/// `server.shutdown_timeout` to finish before it is abandoned.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let readiness = Arc::new(Readiness::new(Vec::new()));
    let state = AppState {
        config: config.clone(),
        readiness: readiness.clone(),
    };
    let deadline = config.server.shutdown_timeout;
    let stop_accepting = CancellationToken::new();
    let server = axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop_accepting.clone().cancelled_owned());
    let mut server_task = tokio::spawn(async move { server.await });

    tokio::select! {
        result = &mut server_task => {
            // The server stopped by itself: that is an error (bind loss, …).
            result??;
            anyhow::bail!("HTTP server stopped unexpectedly");
        }
        () = shutdown.cancelled() => {}
    }

    tracing::info!(deadline = ?deadline, "draining");
    readiness.start_draining();
    stop_accepting.cancel();
    match tokio::time::timeout(deadline, &mut server_task).await {
        Ok(result) => result??,
        Err(_) => {
            tracing::warn!("shutdown deadline reached; abandoning remaining connections");
            server_task.abort();
        }
    }
    tracing::info!("shutdown complete");
    Ok(())
}
