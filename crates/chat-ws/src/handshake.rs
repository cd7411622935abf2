//! `GET /ws`: the checks before the upgrade, in this order, each with its PROTOCOL §2
//! refusal: draining (503), credentials (401), origin (403), per-user connection slot
//! (429). Only a request that passed all four is upgraded.
//!
//! The request URI is never logged: the token may be in its query (`?token=`). Logs
//! carry the path only.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chat_router::Identity;
use http::header::ORIGIN;
use http::{HeaderMap, Uri};

use crate::connection::{self, ConnectionContext};
use crate::error::HandshakeError;
use crate::state::WsState;

/// Bytes of the tungstenite read buffer per connection (and the most read per
/// syscall). The default (128 KiB) is allocated and zero-filled for every socket;
/// chat frames are small, and a larger frame grows the buffer on demand (up to
/// `max_message_size`). 1 KiB instead of 4 KiB saves 3 KiB per idle connection
/// (measured, see the crate docs).
pub const READ_BUFFER_SIZE: usize = 1024;

/// Bytes buffered before tungstenite writes to the socket. Frames are flushed as soon
/// as the router's queue is empty anyway (a fast stream holds them at most
/// [`crate::coalesce::MAX_HOLD`], and never beyond this size); a small target keeps
/// idle sockets cheap.
pub const WRITE_BUFFER_SIZE: usize = 4 * 1024;

/// Headroom of the write buffer above one frame, for frames queued while the socket
/// is slow (beyond it a write fails and the connection closes).
const WRITE_BUFFER_HEADROOM: usize = 256 * 1024;

/// The upgrade handler (see the module docs for the order of checks).
pub(crate) async fn upgrade(
    State(state): State<WsState>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let inner = &state.inner;
    let path = uri.path().to_owned();

    let Some(guard) = inner.drain.enter() else {
        return HandshakeError::Draining.into_response();
    };

    let claims = match chat_auth::token_from_header_or_query(&headers, uri.query())
        .and_then(|token| inner.validator.validate(token.expose()))
    {
        Ok(claims) => claims,
        Err(e) => {
            tracing::debug!(%path, error = %e, "WebSocket handshake refused: credentials");
            return HandshakeError::Auth(e).into_response();
        }
    };

    if !inner.origins.check(headers.get(ORIGIN)) {
        tracing::info!(%path, user_id = %claims.user_id, origin = ?headers.get(ORIGIN), "WebSocket handshake refused: origin");
        return HandshakeError::OriginNotAllowed.into_response();
    }

    let slot = match inner.limiter.try_acquire(&claims.user_id) {
        Ok(slot) => slot,
        Err(refused) => {
            tracing::info!(%path, user_id = %claims.user_id, limit = refused.limit, "WebSocket handshake refused: connection limit");
            // The notice goes through the router, which copies the user's handles out
            // of its maps before sending: no lock is held across the sends (READINESS #14).
            state.notify_connection_limit(&claims.user_id, refused.limit);
            return HandshakeError::TooManyConnections {
                limit: refused.limit,
            }
            .into_response();
        }
    };

    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        // Not an upgrade request (or an unsupported one): axum's own 4xx. The slot and
        // the drain guard are dropped here, so nothing is leaked.
        Err(rejection) => return rejection.into_response(),
    };

    let token_expires_at = claims
        .expires_at
        .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    let identity = Identity {
        is_admin: claims.is_admin(),
        user_id: claims.user_id,
        name: claims.name,
    };
    let settings = inner.settings.clone();
    let max = settings.max_message_size;
    let context = ConnectionContext {
        router: inner.router.clone(),
        identity,
        settings,
        token_expires_at,
    };
    let user_for_log = context.identity.user_id.clone();
    upgrade
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .max_write_buffer_size(WRITE_BUFFER_SIZE + max + WRITE_BUFFER_HEADROOM)
        .max_message_size(max)
        .max_frame_size(max)
        .on_failed_upgrade(move |error| {
            tracing::debug!(user_id = %user_for_log, %error, "WebSocket upgrade failed");
        })
        // The slot and the drain guard move into the connection task: they are
        // released when it ends, whichever way (close, error, panic, abort), and when
        // the upgrade fails (axum drops this callback unused).
        .on_upgrade(move |socket| connection::serve(socket, context, slot, guard))
}
