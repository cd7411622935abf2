//! What can stop a measurement.

/// A measurement that could not be taken. Each phase of a run reports its own error
/// in the results instead of aborting the others.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Local I/O: files, sockets, child processes.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A child process (server, baseline) did not start or misbehaved.
    #[error("process: {0}")]
    Process(String),
    /// A WebSocket peer broke the protocol or the connection failed.
    #[error("websocket: {0}")]
    WebSocket(String),
    /// A streaming HTTP request to the provider failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// Something did not happen within its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The storage backend failed or could not be started.
    #[error("storage: {0}")]
    Storage(String),
    /// A histogram could not be created or merged.
    #[error("histogram: {0}")]
    Histogram(String),
    /// Writing the results failed.
    #[error("results: {0}")]
    Results(#[from] serde_json::Error),
}

impl From<tokio_tungstenite::tungstenite::Error> for BenchError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::WebSocket(e.to_string())
    }
}
