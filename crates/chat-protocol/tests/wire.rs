//! The JSON shapes of server frames and HTTP bodies (PROTOCOL §2–3).

use chat_protocol::{
    AdminMetricsResponse, ApiErrorBody, ApiErrorCode, EndSessionResponse, ErrorCode, Message,
    MessageType, ModelInfo, Sender, SessionMetadata, TimeRange,
};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 22, 0, 0)
        .single()
        .unwrap_or_default()
}

fn as_json(msg: &Message) -> Value {
    // Null makes every assertion on the frame fail.
    serde_json::from_str(&msg.to_json()).unwrap_or(Value::Null)
}

#[test]
fn message_type_wire_names_match_the_spec() {
    let names: Vec<&str> = MessageType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(
        names,
        [
            "user_message",
            "model_select",
            "help_request",
            "file_upload",
            "voice_message",
            "typing_indicator",
            "ping",
            "resume",
            "stop",
            "connection_status",
            "loading",
            "ai_response",
            "error",
            "admin_join",
            "admin_leave",
            "notification",
            "pong",
        ]
    );
    for t in MessageType::ALL {
        assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        assert_eq!(MessageType::from_wire(t.as_str()), Some(t));
    }
    assert_eq!(MessageType::from_wire("USER_MESSAGE"), None);
}

#[test]
fn error_code_wire_names_and_recoverability() {
    let expected = [
        (ErrorCode::InvalidFormat, "INVALID_FORMAT", true),
        (ErrorCode::LlmUnavailable, "LLM_UNAVAILABLE", true),
        (ErrorCode::LlmTimeout, "LLM_TIMEOUT", true),
        (ErrorCode::TooManyRequests, "TOO_MANY_REQUESTS", true),
        (ErrorCode::DatabaseError, "DATABASE_ERROR", true),
        (ErrorCode::NotFound, "NOT_FOUND", false),
        (ErrorCode::Unauthorized, "UNAUTHORIZED", false),
        (ErrorCode::Forbidden, "FORBIDDEN", false),
        (ErrorCode::SessionEnded, "SESSION_ENDED", false),
        (ErrorCode::InternalError, "INTERNAL_ERROR", false),
    ];
    for (code, name, recoverable) in expected {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(name));
        assert_eq!(code.as_str(), name);
        assert_eq!(code.default_recoverable(), recoverable, "{name}");
    }
}

#[test]
fn empty_optional_fields_are_omitted() {
    let msg = Message::new(MessageType::Ping, Sender::User, t0());
    assert_eq!(
        as_json(&msg),
        json!({"type": "ping", "timestamp": "2026-11-27T22:00:00Z", "sender": "user"})
    );
}

#[test]
fn connection_status_carries_user_session_and_models() {
    let models = vec![
        ModelInfo {
            id: "default".into(),
            name: "Default".into(),
        },
        ModelInfo {
            id: "other".into(),
            name: "Other".into(),
        },
    ];
    let v = as_json(&Message::connection_status("u1", "", models).with_timestamp(t0()));
    assert_eq!(
        v,
        json!({
            "type": "connection_status", "session_id": "", "user_id": "u1",
            "models": [{"id": "default", "name": "Default"}, {"id": "other", "name": "Other"}],
            "timestamp": "2026-11-27T22:00:00Z", "sender": "system",
        })
    );
}

#[test]
fn ai_chunks_carry_string_metadata() {
    let chunk = Message::ai_chunk("s1", "Hel", 0, false);
    let v = as_json(&chunk);
    assert_eq!(v["type"], "ai_response");
    assert_eq!(v["sender"], "ai");
    assert_eq!(v["session_id"], "s1");
    assert_eq!(v["content"], "Hel");
    assert_eq!(
        v["metadata"],
        json!({"streaming": "true", "done": "false", "seq": "0"})
    );
    assert_eq!((chunk.seq(), chunk.is_done()), (Some(0), false));

    let last = Message::ai_chunk("s1", "", 7, true);
    assert_eq!(
        as_json(&last)["metadata"],
        json!({"streaming": "true", "done": "true", "seq": "7"})
    );
    assert_eq!((last.seq(), last.is_done()), (Some(7), true));
}

#[test]
fn error_frames_have_the_error_payload() {
    let v = as_json(
        &Message::error(ErrorCode::TooManyRequests, "slow down", true, Some(1500))
            .with_session("s1"),
    );
    assert_eq!(v["type"], "error");
    assert_eq!(v["sender"], "system");
    assert_eq!(v["session_id"], "s1");
    assert_eq!(
        v["error"],
        json!({"code": "TOO_MANY_REQUESTS", "message": "slow down", "recoverable": true, "retry_after": 1500})
    );
    let v = as_json(&Message::error(
        ErrorCode::InternalError,
        "boom",
        false,
        None,
    ));
    assert_eq!(
        v["error"],
        json!({"code": "INTERNAL_ERROR", "message": "boom", "recoverable": false})
    );
}

#[test]
fn other_server_frames() {
    let join = as_json(&Message::admin_join("s1", "Alice"));
    assert_eq!(
        (join["type"].clone(), join["sender"].clone()),
        (json!("admin_join"), json!("admin"))
    );
    assert_eq!(join["metadata"]["admin_name"], "Alice");
    assert!(join["content"].as_str().unwrap().contains("Alice"));
    let leave = as_json(&Message::admin_leave("s1", "Alice"));
    assert_eq!(
        (leave["type"].clone(), leave["session_id"].clone()),
        (json!("admin_leave"), json!("s1"))
    );
    let loading = as_json(&Message::loading("s1"));
    assert_eq!(
        (loading["type"].clone(), loading["session_id"].clone()),
        (json!("loading"), json!("s1"))
    );
    let note = as_json(&Message::notification("too many connections"));
    assert_eq!(
        (note["type"].clone(), note["content"].clone()),
        (json!("notification"), json!("too many connections"))
    );
    assert_eq!(as_json(&Message::pong())["type"], "pong");
}

#[test]
fn timestamps_are_rfc3339_with_sub_second_precision_kept() {
    let ts = DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap();
    let msg = Message::new(MessageType::Pong, Sender::System, ts);
    let v = as_json(&msg);
    let text = v["timestamp"].as_str().unwrap();
    assert_eq!(DateTime::parse_from_rfc3339(text).unwrap(), ts);
}

#[test]
fn api_error_codes_map_to_statuses() {
    let expected = [
        (ApiErrorCode::Unauthorized, "UNAUTHORIZED", 401),
        (ApiErrorCode::InvalidToken, "INVALID_TOKEN", 401),
        (ApiErrorCode::Forbidden, "FORBIDDEN", 403),
        (ApiErrorCode::BadRequest, "BAD_REQUEST", 400),
        (ApiErrorCode::NotFound, "NOT_FOUND", 404),
        (ApiErrorCode::Conflict, "CONFLICT", 409),
        (ApiErrorCode::PayloadTooLarge, "PAYLOAD_TOO_LARGE", 413),
        (ApiErrorCode::RateLimited, "RATE_LIMITED", 429),
        (ApiErrorCode::InternalError, "INTERNAL_ERROR", 500),
        (ApiErrorCode::ServiceUnavailable, "SERVICE_UNAVAILABLE", 503),
    ];
    for (code, name, status) in expected {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(name));
        assert_eq!((code.as_str(), code.http_status()), (name, status));
    }
}

#[test]
fn api_error_body_shape_and_retry_after() {
    let body = ApiErrorBody::new(ApiErrorCode::NotFound, "session not found");
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        json!({"error": "session not found", "code": "NOT_FOUND"})
    );
    assert_eq!((body.http_status(), body.retry_after_secs()), (404, None));

    let body = ApiErrorBody::rate_limited("too many requests", 1001);
    assert_eq!(
        serde_json::from_str::<Value>(&body.to_json()).unwrap(),
        json!({"error": "too many requests", "code": "RATE_LIMITED", "retry_after_ms": 1001})
    );
    assert_eq!(body.retry_after_secs(), Some(2));
    assert_eq!(
        ApiErrorBody::rate_limited("x", 0).retry_after_secs(),
        Some(1)
    );
    assert_eq!(
        ApiErrorBody::rate_limited("x", 3000).retry_after_secs(),
        Some(3)
    );
}

#[test]
fn session_metadata_has_exactly_the_spec_fields() {
    let meta = SessionMetadata {
        id: "0123456789abcdef0123456789abcdef".into(),
        user_id: "u1".into(),
        name: "Hello".into(),
        last_activity: t0(),
        message_count: 4,
        admin_assisted: false,
        start_time: t0(),
        end_time: None,
        is_active: true,
        duration: 60,
        total_tokens: 120,
        max_response_time: 900,
        avg_response_time: 450,
        assisting_admin_name: None,
        share_token: None,
    };
    let v = serde_json::to_value(&meta).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "admin_assisted",
            "avg_response_time",
            "duration",
            "id",
            "is_active",
            "last_activity",
            "max_response_time",
            "message_count",
            "name",
            "start_time",
            "total_tokens",
            "user_id",
        ]
    );
    let ended = SessionMetadata {
        end_time: Some(t0()),
        is_active: false,
        assisting_admin_name: Some("Alice".into()),
        share_token: Some("ab".repeat(16)),
        ..meta
    };
    let v = serde_json::to_value(&ended).unwrap();
    assert_eq!(v["end_time"], "2026-11-27T22:00:00Z");
    assert_eq!(v["assisting_admin_name"], "Alice");
    let back: SessionMetadata = serde_json::from_value(v).unwrap();
    assert_eq!(back, ended);
}

#[test]
fn admin_metrics_and_end_bodies() {
    let body = AdminMetricsResponse {
        total_sessions: 3,
        active_sessions: 1,
        total_tokens: 500,
        avg_response_time_ms: 200,
        max_response_time_ms: 900,
        admin_assisted_count: 1,
        time_range: TimeRange {
            start: t0(),
            end: t0(),
        },
    };
    let v = serde_json::to_value(&body).unwrap();
    assert_eq!(
        v["time_range"],
        json!({"start": "2026-11-27T22:00:00Z", "end": "2026-11-27T22:00:00Z"})
    );
    assert_eq!(v["avg_response_time_ms"], 200);
    assert_eq!(
        serde_json::to_value(EndSessionResponse::ended()).unwrap(),
        json!({"status": "ended"})
    );
}
