//! The user's own sessions: list, read, end, share, revoke; and the public shared view.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::Json;
use chat_auth::{AuthUser, Claims};
use chat_protocol::{
    EndSessionResponse, SessionDetailResponse, SessionListResponse, ShareTokenResponse,
    SharedSessionResponse,
};
use chat_session::SessionSnapshot;
use chrono::Utc;
use rand::RngCore;
use serde_json::{json, Value};
use std::net::SocketAddr;

use super::convert;
use super::error::{ApiError, ApiResult};
use crate::client_ip::client_ip;
use crate::state::AppState;

/// Sessions returned by `GET /sessions` at most (PROTOCOL §2 `limit`).
pub const USER_LIST_LIMIT: u32 = 100;

/// `GET /sessions`: the caller's sessions, newest first.
pub async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> ApiResult<Json<SessionListResponse>> {
    let (items, truncated) = state
        .store
        .list_user_sessions(&claims.user_id, USER_LIST_LIMIT)
        .await?;
    let now = Utc::now();
    let sessions: Vec<_> = items
        .iter()
        .map(|s| convert::metadata(&fresher_summary(&state, s), now))
        .collect();
    Ok(Json(SessionListResponse {
        count: sessions.len(),
        sessions,
        user_id: claims.user_id,
        limit: USER_LIST_LIMIT as usize,
        truncated,
    }))
}

/// The in-memory state wins over the stored one while writes are in flight.
fn fresher_summary(
    state: &AppState,
    stored: &chat_storage::SessionSummary,
) -> chat_storage::SessionSummary {
    match state.router.sessions().get(&stored.id) {
        Some(session) => {
            let mut summary = chat_storage::SessionSummary::of(&session.snapshot());
            summary.message_count = summary.message_count.max(stored.message_count);
            summary
        }
        None => stored.clone(),
    }
}

/// The session `id` if `claims` owns it: from memory when memory holds the whole
/// conversation, else from the store. Another user's session is a 404.
async fn owned(state: &AppState, id: &str, claims: &Claims) -> ApiResult<SessionSnapshot> {
    if let Some(session) = state.router.sessions().get(id) {
        if session.user_id() != claims.user_id {
            return Err(ApiError::not_found());
        }
        // Memory is authoritative while the session is active and holds the whole
        // conversation; an ended session is read from the store, which also has a
        // partial reply that was still streaming when it ended.
        let snapshot = session.snapshot();
        if session.is_active() && snapshot.messages.len() as u64 >= session.message_count() {
            return Ok(snapshot);
        }
    }
    match state.store.get_session(id).await? {
        Some(s) if s.user_id == claims.user_id => Ok(s),
        _ => Err(ApiError::not_found()),
    }
}

/// `GET /sessions/{id}`: the conversation.
pub async fn detail(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionDetailResponse>> {
    let snapshot = owned(&state, &id, &claims).await?;
    Ok(Json(SessionDetailResponse {
        messages: convert::messages(&snapshot),
        session_id: snapshot.id,
        name: snapshot.name,
        model_id: snapshot.model_id,
    }))
}

/// `POST /sessions/{id}/end`: idempotent; the first end time is kept.
pub async fn end(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<EndSessionResponse>> {
    state.router.end_session(&id, &claims.user_id).await?;
    Ok(Json(EndSessionResponse::ended()))
}

fn new_share_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// `POST /sessions/{id}/share`: a 32-hex token; the same one on repeat.
pub async fn share(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<ShareTokenResponse>> {
    let snapshot = owned(&state, &id, &claims).await?;
    let proposed = match state.router.sessions().get(&id) {
        Some(session) => session.share_token_or_insert_with(new_share_token),
        None => snapshot.share_token.unwrap_or_else(new_share_token),
    };
    let token = state.store.set_share_token(&id, &proposed).await?;
    Ok(Json(ShareTokenResponse { share_token: token }))
}

/// `DELETE /sessions/{id}/share`: the old link stops working. Idempotent.
pub async fn revoke_share(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    owned(&state, &id, &claims).await?;
    if let Some(session) = state.router.sessions().get(&id) {
        session.revoke_share_token();
    }
    state.store.revoke_share_token(&id).await?;
    Ok(Json(json!({"status": "revoked"})))
}

/// `GET /shared/{token}`: read-only view, public, rate limited per client IP.
pub async fn shared(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> ApiResult<Json<SharedSessionResponse>> {
    let ip = client_ip(peer, &headers, &state.config.server.trusted_proxies);
    state
        .limiters
        .public
        .check(&ip)
        .map_err(|l| ApiError::rate_limited(l.retry_after_ms()))?;
    let valid = token.len() == 32 && token.chars().all(|c| c.is_ascii_hexdigit());
    if !valid {
        return Err(ApiError::not_found());
    }
    let stored = state
        .store
        .get_by_share_token(&token)
        .await?
        .ok_or_else(ApiError::not_found)?;
    // Prefer memory (newest messages) when it still holds the whole conversation.
    let snapshot = match state.router.sessions().get(&stored.id) {
        Some(session) if session.share_token().as_deref() == Some(token.as_str()) => {
            let live = session.snapshot();
            if live.messages.len() as u64 >= session.message_count() {
                live
            } else {
                stored
            }
        }
        Some(_) => return Err(ApiError::not_found()), // revoked meanwhile
        None => stored,
    };
    Ok(Json(SharedSessionResponse {
        messages: convert::messages(&snapshot),
        session_id: snapshot.id,
        name: snapshot.name,
    }))
}
