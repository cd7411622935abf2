//! The application: wiring of every component ([`Services::start`]), the route table
//! under the path prefix ([`router`]), and [`serve`], which runs it until shutdown and
//! then drains within the configured deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use chat_auth::JwtValidator;
use chat_config::Config;
use chat_llm::ProviderRegistry;
use chat_ratelimit::RateLimiters;
use chat_router::{DefaultNotifier, HelpNotifier, InProcessBus, MessageRouter, RouterDeps};
use chat_session::SessionManager;
use chat_storage::SessionStore;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::health::{self, LlmCheck, Readiness, StorageCheck};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every running component plus the background tasks that serve them.
pub struct Services {
    /// The handlers' shared state.
    pub state: AppState,
    /// WebSocket endpoint state (connections, origin policy, drain).
    pub ws: chat_ws::WsState,
    background: TaskTracker,
    cancel: CancellationToken,
}

impl Services {
    /// Opens storage, rehydrates active sessions, builds providers, limiters and the
    /// router, and starts the sweeper and limiter cleanup.
    pub async fn start(config: Config, public_base: String) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let metrics = crate::metrics::handle();
        let validator = Arc::new(JwtValidator::from_config(&config)?);
        let store: Arc<dyn SessionStore> = chat_storage::open_store(&config)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open storage: {e}"))?;
        let sessions = Arc::new(SessionManager::new(&config.sessions));
        match store.load_active().await {
            Ok(active) => {
                let count = active.len();
                for snapshot in active {
                    let id = snapshot.id.clone();
                    if let Err(e) = sessions.insert_rehydrated(snapshot) {
                        tracing::warn!(session_id = %id, error = %e, "active session not rehydrated");
                    }
                }
                tracing::info!(count, "active sessions rehydrated");
            }
            Err(e) => tracing::warn!(error = %e, "could not load active sessions; starting empty"),
        }
        let providers = Arc::new(
            ProviderRegistry::from_settings(&config.llm)
                .map_err(|e| anyhow::anyhow!("LLM providers: {e}"))?,
        );
        let limiters = Arc::new(
            RateLimiters::from_settings(&config.rate_limits)
                .map_err(|e| anyhow::anyhow!("rate limits: {e}"))?,
        );
        let background = TaskTracker::new();
        let cancel = CancellationToken::new();
        let notifier: Arc<dyn HelpNotifier> = match &config.notifications.help_webhook_url {
            Some(url) => Arc::new(DefaultNotifier::with_webhook(
                url.clone(),
                reqwest::Client::new(),
                &background,
                cancel.clone(),
            )),
            None => Arc::new(DefaultNotifier::log_only()),
        };
        let router = MessageRouter::new(RouterDeps {
            config: config.clone(),
            sessions: sessions.clone(),
            store: store.clone(),
            providers: providers.clone(),
            limiters: limiters.clone(),
            notifier,
            bus: InProcessBus::new(),
        });

        // Sweeper: the session manager decides, the router persists ends and forgets
        // live state. A bounded hand-off keeps the sweeper itself synchronous.
        let (sweep_tx, mut sweep_rx) = mpsc::channel(16);
        sessions
            .clone()
            .spawn_sweeper(cancel.clone(), &background, move |report| {
                if sweep_tx.try_send(report).is_err() {
                    tracing::warn!("sweep report dropped: the previous one is still being applied");
                }
            });
        {
            let router = router.clone();
            let cancel = cancel.clone();
            background.spawn(async move {
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        report = sweep_rx.recv() => match report {
                            Some(report) => router.apply_sweep(report).await,
                            None => break,
                        },
                    }
                }
            });
        }
        limiters.clone().spawn_cleanup(cancel.clone(), &background);
        // Histogram samples are folded into buckets even when nobody scrapes.
        crate::metrics::spawn_upkeep(metrics.clone(), cancel.clone(), &background);
        // Sessions nobody uses give their replay buffer and messages back after the
        // grace period (memory follows active use, not every session of the last hour).
        router.spawn_releaser(cancel.clone(), &background);

        let readiness = Arc::new(Readiness::new(vec![
            Arc::new(StorageCheck::new(store.clone(), config.storage.backend)),
            Arc::new(LlmCheck::new(providers.clone())),
        ]));
        let ws = chat_ws::WsState::from_config(&config, router.clone(), validator.clone());
        let state = AppState {
            config,
            readiness,
            router,
            store,
            validator,
            limiters,
            metrics,
            public_base: Arc::from(public_base),
        };
        Ok(Self {
            state,
            ws,
            background,
            cancel,
        })
    }

    /// Drains within `deadline`: WebSocket clients get 1001, generations are
    /// cancelled (partial replies kept), accepted writes are flushed, background tasks
    /// stop. Returns false when something had to be abandoned at the deadline.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        let remaining = || until.saturating_duration_since(Instant::now());
        self.state.readiness.start_draining();
        let ws_ok = self.ws.drain().drain(remaining()).await.graceful;
        let router_ok = self.state.router.shutdown(remaining()).await;
        self.cancel.cancel();
        self.background.close();
        let background_ok = tokio::time::timeout(remaining(), self.background.wait())
            .await
            .is_ok();
        let unflushed = match self.state.store.shutdown(remaining()).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "storage shutdown failed");
                1
            }
        };
        if unflushed > 0 {
            tracing::error!(unflushed, "writes could not be applied before the deadline");
        }
        ws_ok && router_ok && background_ok && unflushed == 0
    }
}

/// The complete route table, mounted under `server.path_prefix`.
pub fn router(services: &Services) -> Router {
    let state = services.state.clone();
    let prefix = state.config.server.path_prefix.clone();
    let ui = state.config.route("/ui/");
    let api = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(
            crate::api::routes(&state).layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                state.config.server.request_timeout,
            )),
        )
        .route_layer(axum::middleware::from_fn(crate::metrics::track_http))
        .with_state(state.clone())
        .merge(chat_ws::routes(services.ws.clone()))
        .nest("/ui/", crate::web::router())
        .route("/ui", get(|| async { Redirect::permanent("ui/") }))
        .route("/", get(move || async move { Redirect::temporary(&ui) }));
    let app = if prefix == "/" {
        api
    } else {
        // `{prefix}` is served by the nested `/` route, `{prefix}/` needs its own.
        let ui = state.config.route("/ui/");
        Router::new().nest(&prefix, api).route(
            &format!("{prefix}/"),
            get(move || async move { Redirect::temporary(&ui) }),
        )
    };
    let app = app.fallback(|| async {
        crate::api::error::ApiError::new(chat_protocol::ApiErrorCode::NotFound, "no such endpoint")
            .into_response()
    });
    with_layers(app, &state.config)
}

/// Layers every response goes through: request ids, access log without query strings
/// (a `?token=` must never reach a log), CORS when configured, and the PROTOCOL §2
/// security headers.
fn with_layers(app: Router, config: &Config) -> Router {
    let mut app = app
        .layer(SetResponseHeaderLayer::overriding(
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
        ));
    let cors_origins: Vec<HeaderValue> = config
        .server
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if !cors_origins.is_empty() {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(cors_origins))
                .allow_methods([
                    axum::http::Method::GET,
                    axum::http::Method::POST,
                    axum::http::Method::DELETE,
                ])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .max_age(Duration::from_secs(600)),
        );
    }
    app.layer(axum::middleware::from_fn(crate::json_errors::json_errors))
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
/// readiness turns 503, WebSocket upgrades get 503, sockets get 1001, in-flight work
/// gets `server.shutdown_timeout` to finish before it is abandoned.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let public_base = config.public_base_url(local.port());
    let deadline = config.server.shutdown_timeout;
    let services = Services::start(config, public_base).await?;
    let app = router(&services);
    let stop_accepting = CancellationToken::new();
    // Nagle's algorithm would hold small frames (one streamed chunk each) until the
    // peer's delayed ACK: ~40 ms per chunk. Chat frames must leave at once.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop_accepting.clone().cancelled_owned());
    let mut server_task = tokio::spawn(async move { server.await });

    tokio::select! {
        result = &mut server_task => {
            result??;
            anyhow::bail!("HTTP server stopped unexpectedly");
        }
        () = shutdown.cancelled() => {}
    }

    tracing::info!(deadline = ?deadline, "draining");
    let started = Instant::now();
    let clean = services.shutdown(deadline).await;
    stop_accepting.cancel();
    let remaining = deadline
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(100));
    if tokio::time::timeout(remaining, &mut server_task)
        .await
        .is_err()
    {
        tracing::warn!("shutdown deadline reached; abandoning remaining HTTP connections");
        server_task.abort();
    }
    if clean {
        tracing::info!(elapsed = ?started.elapsed(), "shutdown complete");
    } else {
        tracing::warn!(elapsed = ?started.elapsed(), "shutdown finished at the deadline with work abandoned");
    }
    Ok(())
}
