//! The axum server: routes, script selection, streaming and bookkeeping.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::record::RecordedRequest;
use super::script::{Script, Step};
use super::wire::{Renderer, WireFormat};

/// Requests kept for [`FakeLlmHandle::requests`]; older ones are dropped so a long
/// benchmark cannot grow memory.
pub const MAX_RECORDED_REQUESTS: usize = 1024;

/// How long [`FakeLlmHandle::shutdown`] waits for connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Configures and starts a fake LLM provider on `127.0.0.1:<free port>`.
///
/// Each request gets a [`Script`]: the next queued one ([`FakeLlmServer::enqueue`]),
/// else the one registered for its `model`, else the default. Paths served:
/// - OpenAI: `POST /v1/chat/completions` and `/chat/completions` (endpoint
///   [`FakeLlmHandle::openai_endpoint`]);
/// - Anthropic: `POST /v1/messages` (endpoint [`FakeLlmHandle::anthropic_endpoint`]);
/// - Dify: `POST /v1/chat-messages` and `/chat-messages` (endpoint
///   [`FakeLlmHandle::dify_endpoint`]).
#[derive(Debug, Clone, Default)]
pub struct FakeLlmServer {
    default: Script,
    queue: VecDeque<Script>,
    by_model: HashMap<String, Script>,
}

impl FakeLlmServer {
    /// A server answering every request with `script` unless told otherwise.
    pub fn new(default: Script) -> Self {
        Self {
            default,
            ..Self::default()
        }
    }

    /// Starts a server answering every request with `script`.
    pub async fn start(script: Script) -> std::io::Result<FakeLlmHandle> {
        Self::new(script).run().await
    }

    /// Queues a script for the next request (FIFO, before model and default scripts).
    pub fn enqueue(mut self, script: Script) -> Self {
        self.queue.push_back(script);
        self
    }

    /// The script for requests naming this `model` (OpenAI, Anthropic).
    pub fn for_model(mut self, model: impl Into<String>, script: Script) -> Self {
        self.by_model.insert(model.into(), script);
        self
    }

    /// Binds and serves until [`FakeLlmHandle::shutdown`] (or the handle is dropped).
    pub async fn run(self) -> std::io::Result<FakeLlmHandle> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let listener = listener.tap_io(move |tcp| {
            counted.fetch_add(1, Ordering::SeqCst);
            // Each SSE event leaves at once (no Nagle delay), as from a real provider.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "fake LLM server: set_nodelay failed");
            }
        });
        let shared = Arc::new(Shared {
            scripts: Mutex::new(Scripts {
                default: self.default,
                queue: self.queue,
                by_model: self.by_model,
            }),
            requests: Mutex::new(VecDeque::new()),
            request_count: AtomicUsize::new(0),
            open_streams: AtomicUsize::new(0),
            connections,
            shutdown: CancellationToken::new(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .route("/v1/chat-messages", post(dify))
            .route("/chat-messages", post(dify))
            .with_state(shared.clone());
        let stop = shared.shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "fake LLM server stopped with an error");
            }
        });
        Ok(FakeLlmHandle {
            addr,
            shared,
            task: Some(task),
        })
    }
}

struct Scripts {
    default: Script,
    queue: VecDeque<Script>,
    by_model: HashMap<String, Script>,
}

struct Shared {
    scripts: Mutex<Scripts>,
    requests: Mutex<VecDeque<RecordedRequest>>,
    request_count: AtomicUsize,
    open_streams: AtomicUsize,
    /// TCP connections accepted since start (pooling makes this smaller than the
    /// request count).
    connections: Arc<AtomicUsize>,
    shutdown: CancellationToken,
}

/// Counts a request as open from its arrival until its response body is finished or
/// dropped (a client that goes away drops it).
struct OpenGuard(Arc<Shared>);

impl OpenGuard {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.open_streams.fetch_add(1, Ordering::SeqCst);
        Self(shared.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running fake provider. Dropping it stops the server (without waiting);
/// [`FakeLlmHandle::shutdown`] stops it and waits.
#[derive(Debug)]
pub struct FakeLlmHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("open_streams", &self.open_streams.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl FakeLlmHandle {
    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `endpoint` to configure for an OpenAI provider (`{base}/v1`).
    pub fn openai_endpoint(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// The `endpoint` to configure for an Anthropic provider (`{base}`).
    pub fn anthropic_endpoint(&self) -> String {
        self.base_url()
    }

    /// The `endpoint` to configure for a Dify provider (`{base}/v1`).
    pub fn dify_endpoint(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// The endpoint for `format`.
    pub fn endpoint(&self, format: WireFormat) -> String {
        match format {
            WireFormat::OpenAi => self.openai_endpoint(),
            WireFormat::Anthropic => self.anthropic_endpoint(),
            WireFormat::Dify => self.dify_endpoint(),
        }
    }

    /// The last [`MAX_RECORDED_REQUESTS`] requests, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().iter().cloned().collect()
    }

    /// Requests received since start (not capped).
    pub fn request_count(&self) -> usize {
        self.shared.request_count.load(Ordering::SeqCst)
    }

    /// TCP connections accepted since start; with a pooling client, sequential
    /// requests share one.
    pub fn connections_accepted(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests currently being answered: waiting before headers or streaming a body.
    /// Falls back to 0 once every client closed its connection.
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::SeqCst)
    }

    /// Polls until [`Self::open_streams`] equals `expected` or `timeout` passes;
    /// returns whether it did.
    pub async fn wait_for_open_streams(&self, expected: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.open_streams() == expected {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Queues a script for the next request.
    pub fn enqueue(&self, script: Script) {
        self.shared.scripts.lock().queue.push_back(script);
    }

    /// Replaces the default script.
    pub fn set_default(&self, script: Script) {
        self.shared.scripts.lock().default = script;
    }

    /// Sets the script for requests naming `model`.
    pub fn set_for_model(&self, model: impl Into<String>, script: Script) {
        self.shared
            .scripts
            .lock()
            .by_model
            .insert(model.into(), script);
    }

    /// Stops accepting, ends hanging streams, and waits for the server task.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

impl Drop for FakeLlmHandle {
    fn drop(&mut self) {
        // Hanging streams and the accept loop watch this token and end on their own.
        self.shared.shutdown.cancel();
    }
}

async fn openai(state: State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    serve(WireFormat::OpenAi, state, uri, headers, body).await
}

async fn anthropic(
    state: State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(WireFormat::Anthropic, state, uri, headers, body).await
}

async fn dify(state: State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    serve(WireFormat::Dify, state, uri, headers, body).await
}

async fn serve(
    format: WireFormat,
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let guard = OpenGuard::new(&shared);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let request = RecordedRequest {
        format,
        path: uri.path().to_owned(),
        headers,
        body,
    };
    let script = {
        let mut scripts = shared.scripts.lock();
        let model = request.model().unwrap_or_default();
        match scripts.queue.pop_front() {
            Some(s) => s,
            None => scripts
                .by_model
                .get(model)
                .unwrap_or(&scripts.default)
                .clone(),
        }
    };
    let renderer = Renderer {
        format,
        model: request.model().unwrap_or("fake-model").to_owned(),
        usage: script.usage,
        include_usage: request.wants_stream_usage(),
        dify_agent: script.dify_agent,
    };
    shared.request_count.fetch_add(1, Ordering::SeqCst);
    {
        let mut requests = shared.requests.lock();
        if requests.len() >= MAX_RECORDED_REQUESTS {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    let stop = shared.shutdown.clone();
    if script.hang_before_headers {
        stop.cancelled().await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if !script.header_delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(script.header_delay) => {}
            () = stop.cancelled() => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
    if script.status != 200 {
        let status =
            StatusCode::from_u16(script.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, script.error_body.clone()).into_response();
        if let Some(after) = script
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, after);
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return response;
    }

    let state = Streaming {
        steps: script.steps.into(),
        chunk_delay: script.chunk_delay,
        texts_sent: 0,
        preamble: Some(renderer.preamble()),
        renderer,
        stop,
        _guard: guard,
    };
    let body = Body::from_stream(futures::stream::unfold(state, Streaming::next));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The body of one streamed reply. Owns the open-stream guard, so the count drops
/// when hyper drops the body (finished, or the client went away).
struct Streaming {
    steps: VecDeque<Step>,
    chunk_delay: Duration,
    texts_sent: usize,
    preamble: Option<String>,
    renderer: Renderer,
    stop: CancellationToken,
    _guard: OpenGuard,
}

impl Streaming {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if let Some(preamble) = self.preamble.take().filter(|p| !p.is_empty()) {
            return Some((Ok(Bytes::from(preamble)), self));
        }
        loop {
            let out = match self.steps.pop_front()? {
                Step::Text(text) => {
                    if self.texts_sent > 0 && !self.chunk_delay.is_zero() {
                        self.sleep(self.chunk_delay).await?;
                    }
                    self.texts_sent += 1;
                    self.renderer.text(&text)
                }
                Step::Sleep(d) => {
                    self.sleep(d).await?;
                    continue;
                }
                Step::Hang => {
                    self.stop.cancelled().await;
                    return None;
                }
                Step::Raw(raw) => raw,
                Step::ProviderError(message) => {
                    self.steps.clear();
                    self.renderer.error(&message)
                }
                Step::Ping => self.renderer.ping(),
                Step::Disconnect => {
                    self.steps.clear();
                    // Let what was sent so far reach the client first (hyper flushes
                    // when the body is pending), as with a real crash mid-stream.
                    self.sleep(Duration::from_millis(20)).await?;
                    let error = std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "scripted disconnect",
                    );
                    return Some((Err(error), self));
                }
                Step::End => self.renderer.end(),
            };
            return Some((Ok(Bytes::from(out)), self));
        }
    }

    /// Sleeps unless the server shuts down first (then the body ends).
    async fn sleep(&self, d: Duration) -> Option<()> {
        tokio::select! {
            () = tokio::time::sleep(d) => Some(()),
            () = self.stop.cancelled() => None,
        }
    }
}
