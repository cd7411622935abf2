//! The admin API: session lists, metrics, takeover and release. Every handler first
//! authenticates (401/403 by the extractor) and then takes the admin's rate limit
//! (429 with `Retry-After`, READINESS #18).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use chat_auth::{AuthAdmin, Claims};
use chat_protocol::{AdminMetricsResponse, AdminSessionListResponse, ApiErrorCode, TimeRange};
use chat_router::{Identity, RouterError};
use chat_storage::{AdminQuery, SortKey, SortOrder, StatusFilter};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::convert;
use super::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Largest page of `GET /admin/sessions`.
pub const MAX_LIMIT: u32 = 1000;

fn admin_limit(state: &AppState, claims: &Claims) -> ApiResult<()> {
    state
        .limiters
        .admin
        .check(&claims.user_id)
        .map_err(|l| ApiError::rate_limited(l.retry_after_ms()))
}

fn identity(claims: &Claims) -> Identity {
    Identity {
        user_id: claims.user_id.clone(),
        name: claims.name.clone(),
        is_admin: true,
    }
}

fn parse_time(params: &HashMap<String, String>, name: &str) -> ApiResult<Option<DateTime<Utc>>> {
    match params.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                ApiError::bad_request(format!("{name}: must be an RFC3339 time, got {v:?}"))
            }),
    }
}

/// Parses every filter, sort key and page parameter of PROTOCOL §2, naming the
/// offending parameter on a bad value. Unknown parameters are ignored.
pub fn parse_query(params: &HashMap<String, String>) -> ApiResult<AdminQuery> {
    let mut q = AdminQuery::default();
    if let Some(user) = params.get("user_id").filter(|v| !v.is_empty()) {
        q.user_id = Some(user.clone());
    }
    if let Some(v) = params.get("status").filter(|v| !v.is_empty()) {
        q.status = Some(match v.as_str() {
            "active" => StatusFilter::Active,
            "ended" => StatusFilter::Ended,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "status: must be active or ended, got {v:?}"
                )))
            }
        });
    }
    if let Some(v) = params.get("admin_assisted").filter(|v| !v.is_empty()) {
        q.admin_assisted = Some(match v.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "admin_assisted: must be true or false, got {v:?}"
                )))
            }
        });
    }
    q.start_time_from = parse_time(params, "start_time_from")?;
    q.start_time_to = parse_time(params, "start_time_to")?;
    if let (Some(from), Some(to)) = (q.start_time_from, q.start_time_to) {
        if to < from {
            return Err(ApiError::bad_request(
                "start_time_to: must not be before start_time_from",
            ));
        }
    }
    if let Some(v) = params.get("sort_by").filter(|v| !v.is_empty()) {
        q.sort_by = SortKey::parse(v).ok_or_else(|| {
            ApiError::bad_request(format!(
                "sort_by: must be one of start_time, end_time, message_count, total_tokens, user_id, last_activity, duration; got {v:?}"
            ))
        })?;
    }
    if let Some(v) = params.get("sort_order").filter(|v| !v.is_empty()) {
        q.sort_order = match v.as_str() {
            "asc" => SortOrder::Asc,
            "desc" => SortOrder::Desc,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "sort_order: must be asc or desc, got {v:?}"
                )))
            }
        };
    }
    if let Some(v) = params.get("limit").filter(|v| !v.is_empty()) {
        q.limit = v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit: must be an integer from 1 to {MAX_LIMIT}, got {v:?}"
                ))
            })?;
    }
    if let Some(v) = params.get("offset").filter(|v| !v.is_empty()) {
        q.offset = v.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("offset: must be a non-negative integer, got {v:?}"))
        })?;
    }
    Ok(q)
}

async fn list_page(
    state: &AppState,
    query: AdminQuery,
) -> ApiResult<Json<AdminSessionListResponse>> {
    let page = state.store.admin_list(&query).await?;
    let now = Utc::now();
    let sessions: Vec<_> = page
        .items
        .iter()
        .map(|s| convert::metadata(s, now))
        .collect();
    Ok(Json(AdminSessionListResponse {
        count: sessions.len(),
        sessions,
        total: page.total,
        limit: query.limit as usize,
        offset: query.offset,
    }))
}

/// `GET /admin/sessions`.
pub async fn sessions(
    State(state): State<AppState>,
    AuthAdmin(claims): AuthAdmin,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<AdminSessionListResponse>> {
    admin_limit(&state, &claims)?;
    let query = parse_query(&params)?;
    list_page(&state, query).await
}

/// `GET /admin/users/{user_id}/sessions`: the same list, fixed to one user.
pub async fn user_sessions(
    State(state): State<AppState>,
    AuthAdmin(claims): AuthAdmin,
    Path(user_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<AdminSessionListResponse>> {
    admin_limit(&state, &claims)?;
    let mut query = parse_query(&params)?;
    query.user_id = Some(user_id);
    list_page(&state, query).await
}

/// `GET /admin/sessions/{id}`: any session's conversation, for an admin about to take
/// it over or assisting it (an addition to PROTOCOL §2: the admin chat view needs the
/// history, not only live frames). Memory while the session is active, else the store.
pub async fn session_detail(
    State(state): State<AppState>,
    AuthAdmin(claims): AuthAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<chat_protocol::SessionDetailResponse>> {
    admin_limit(&state, &claims)?;
    let live = state.router.sessions().get(&id).and_then(|s| {
        let snapshot = s.snapshot();
        (s.is_active() && snapshot.messages.len() as u64 >= s.message_count()).then_some(snapshot)
    });
    let snapshot = match live {
        Some(s) => s,
        None => state
            .store
            .get_session(&id)
            .await?
            .ok_or_else(ApiError::not_found)?,
    };
    Ok(Json(chat_protocol::SessionDetailResponse {
        messages: convert::messages(&snapshot),
        session_id: snapshot.id,
        name: snapshot.name,
        model_id: snapshot.model_id,
    }))
}

/// `GET /admin/metrics?start_time&end_time` (default: the last 24 hours).
pub async fn metrics(
    State(state): State<AppState>,
    AuthAdmin(claims): AuthAdmin,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<AdminMetricsResponse>> {
    admin_limit(&state, &claims)?;
    let end = parse_time(&params, "end_time")?.unwrap_or_else(Utc::now);
    let start = parse_time(&params, "start_time")?.unwrap_or(end - Duration::hours(24));
    if end < start {
        return Err(ApiError::bad_request(
            "end_time: must not be before start_time",
        ));
    }
    let m = state.store.metrics(start, end).await?;
    Ok(Json(AdminMetricsResponse {
        total_sessions: m.total_sessions,
        active_sessions: m.active_sessions,
        total_tokens: m.total_tokens,
        avg_response_time_ms: m.avg_response_time_ms,
        max_response_time_ms: m.max_response_time_ms,
        admin_assisted_count: m.admin_assisted_count,
        time_range: TimeRange { start, end },
    }))
}

/// `POST /admin/takeover/{id}`: 404 unknown, 409 naming the assisting admin,
/// idempotent for the same admin.
pub async fn takeover(
    State(state): State<AppState>,
    AuthAdmin(claims): AuthAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    admin_limit(&state, &claims)?;
    match state.router.takeover(&id, &identity(&claims)).await {
        Ok(newly) => Ok(Json(json!({
            "status": "assisted",
            "session_id": id,
            "admin_id": claims.user_id,
            "admin_name": claims.name,
            "already_assisting": !newly,
        }))),
        Err(RouterError::AlreadyAssisted {
            admin_id,
            admin_name,
        }) => Err(ApiError::new(
            ApiErrorCode::Conflict,
            format!("session is already assisted by {admin_name} ({admin_id})"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST /admin/release/{id}`: `admin_leave`, the AI answers again.
pub async fn release(
    State(state): State<AppState>,
    AuthAdmin(claims): AuthAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    admin_limit(&state, &claims)?;
    let released = state.router.release(&id, &identity(&claims)).await?;
    Ok(Json(
        json!({"status": "released", "session_id": id, "was_assisting": released}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_bad_parameter_is_named() {
        for (name, value) in [
            ("status", "open"),
            ("admin_assisted", "yes"),
            ("start_time_from", "yesterday"),
            ("start_time_to", "2024-13-01"),
            ("sort_by", "name"),
            ("sort_order", "up"),
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "ten"),
            ("offset", "-1"),
        ] {
            let err = parse_query(&params(&[(name, value)])).unwrap_err();
            assert!(
                err.0.error.starts_with(name),
                "{name}={value}: {}",
                err.0.error
            );
            assert_eq!(err.0.code, ApiErrorCode::BadRequest);
        }
    }

    #[test]
    fn good_parameters_parse() {
        let q = parse_query(&params(&[
            ("user_id", "u1"),
            ("status", "ended"),
            ("admin_assisted", "true"),
            ("start_time_from", "2024-01-01T00:00:00Z"),
            ("start_time_to", "2024-02-01T00:00:00+01:00"),
            ("sort_by", "total_tokens"),
            ("sort_order", "asc"),
            ("limit", "1000"),
            ("offset", "20"),
        ]))
        .unwrap();
        assert_eq!(q.user_id.as_deref(), Some("u1"));
        assert_eq!(q.status, Some(StatusFilter::Ended));
        assert_eq!(q.admin_assisted, Some(true));
        assert_eq!(q.sort_by, SortKey::TotalTokens);
        assert_eq!(q.sort_order, SortOrder::Asc);
        assert_eq!((q.limit, q.offset), (1000, 20));
    }
}
