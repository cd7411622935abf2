//! Graceful shutdown: one cancellation token that every long-lived task watches, and
//! the OS signals that trigger it.

use tokio_util::sync::CancellationToken;

/// Resolves on the first SIGINT or SIGTERM (Ctrl-C elsewhere than Unix). If a signal
/// handler cannot be installed, that is logged and the other signal still works.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = async {
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        let int = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::warn!(error = %e, "cannot listen for SIGINT");
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = term => tracing::info!("SIGTERM received, shutting down"),
            () = int => tracing::info!("SIGINT received, shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Cancels `token` when a shutdown signal arrives (or when the token is cancelled by
/// someone else first, in which case it simply returns).
pub async fn cancel_on_signal(token: CancellationToken) {
    tokio::select! {
        () = signal() => token.cancel(),
        () = token.cancelled() => {}
    }
}
