//! The inbound pipeline: decode → sanitize → defaults → validate (PROTOCOL §3,
//! READINESS #7).

use chat_protocol::{
    decode_client_frame, sanitize, sanitize_text, validate, ErrorCode, Message, MessageType,
    ProtocolError, Sender,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 22, 0, 0)
        .single()
        .unwrap_or_default()
}

fn decode(v: Value) -> Result<Message, ProtocolError> {
    decode_client_frame(&v.to_string(), now())
}

fn https(len: usize) -> String {
    let base = "https://files.example.com/";
    format!("{base}{}", "a".repeat(len - base.len()))
}

/// One case per rule of PROTOCOL §3: (name, frame, field the error must name,
/// text the message must contain).
fn rule_cases() -> Vec<(&'static str, Value, &'static str, String)> {
    let future = (now() + Duration::seconds(61)).to_rfc3339();
    vec![
        (
            "missing type",
            json!({"content": "hi"}),
            "type",
            "required".into(),
        ),
        (
            "unknown type",
            json!({"type": "shout"}),
            "type",
            "unknown message type \"shout\"".into(),
        ),
        (
            "server-only type",
            json!({"type": "ai_response", "content": "x"}),
            "type",
            "is not accepted from a client".into(),
        ),
        (
            "unknown sender",
            json!({"type": "ping", "sender": "bot"}),
            "sender",
            "unknown sender \"bot\"".into(),
        ),
        (
            "forged ai sender",
            json!({"type": "user_message", "content": "x", "sender": "ai"}),
            "sender",
            "only as \"user\" or \"admin\"".into(),
        ),
        (
            "forged system sender",
            json!({"type": "ping", "sender": "system"}),
            "sender",
            "only as \"user\" or \"admin\"".into(),
        ),
        (
            "bad timestamp",
            json!({"type": "ping", "timestamp": "yesterday"}),
            "timestamp",
            "RFC3339".into(),
        ),
        (
            "future timestamp",
            json!({"type": "ping", "timestamp": future}),
            "timestamp",
            "60 seconds in the future".into(),
        ),
        (
            "user_message without content",
            json!({"type": "user_message"}),
            "content",
            "required for user_message".into(),
        ),
        (
            "user_message whitespace content",
            json!({"type": "user_message", "content": " \n\t "}),
            "content",
            "required for user_message".into(),
        ),
        (
            "model_select without model_id",
            json!({"type": "model_select"}),
            "model_id",
            "required for model_select".into(),
        ),
        (
            "file_upload without file_id",
            json!({"type": "file_upload", "file_url": https(40)}),
            "file_id",
            "required for file_upload".into(),
        ),
        (
            "file_upload without file_url",
            json!({"type": "file_upload", "file_id": "f1"}),
            "file_url",
            "required for file_upload".into(),
        ),
        (
            "voice_message without file_id",
            json!({"type": "voice_message", "file_url": https(40)}),
            "file_id",
            "required for voice_message".into(),
        ),
        (
            "voice_message without file_url",
            json!({"type": "voice_message", "file_id": "f1"}),
            "file_url",
            "required for voice_message".into(),
        ),
        (
            "resume without session_id",
            json!({"type": "resume", "metadata": {"last_seq": "3"}}),
            "session_id",
            "required for resume".into(),
        ),
        (
            "resume without last_seq",
            json!({"type": "resume", "session_id": "abc"}),
            "metadata.last_seq",
            "required for resume".into(),
        ),
        (
            "resume with non-numeric last_seq",
            json!({"type": "resume", "session_id": "abc", "metadata": {"last_seq": "three"}}),
            "metadata.last_seq",
            "non-negative integer".into(),
        ),
        (
            "resume with negative last_seq",
            json!({"type": "resume", "session_id": "abc", "metadata": {"last_seq": "-1"}}),
            "metadata.last_seq",
            "non-negative integer".into(),
        ),
        (
            "session_id too long",
            json!({"type": "ping", "session_id": "s".repeat(129)}),
            "session_id",
            "must be at most 128 bytes, got 129".into(),
        ),
        (
            "session_id control char",
            json!({"type": "ping", "session_id": "a\u{1b}b"}),
            "session_id",
            "control characters".into(),
        ),
        (
            "content too long",
            json!({"type": "user_message", "content": "c".repeat(10_001)}),
            "content",
            "must be at most 10000 bytes, got 10001".into(),
        ),
        (
            "content too long in bytes",
            json!({"type": "user_message", "content": "é".repeat(5_001)}),
            "content",
            "must be at most 10000 bytes, got 10002".into(),
        ),
        (
            "file_id too long",
            json!({"type": "file_upload", "file_id": "f".repeat(256), "file_url": https(40)}),
            "file_id",
            "must be at most 255 bytes, got 256".into(),
        ),
        (
            "file_url too long",
            json!({"type": "file_upload", "file_id": "f", "file_url": https(2049)}),
            "file_url",
            "must be at most 2048 bytes, got 2049".into(),
        ),
        (
            "file_url http",
            json!({"type": "file_upload", "file_id": "f", "file_url": "http://files.example.com/a"}),
            "file_url",
            "must be an https URL".into(),
        ),
        (
            "file_url javascript",
            json!({"type": "file_upload", "file_id": "f", "file_url": "javascript:alert(1)"}),
            "file_url",
            "must be an https URL".into(),
        ),
        (
            "file_url not a URL",
            json!({"type": "voice_message", "file_id": "f", "file_url": "not a url"}),
            "file_url",
            "must be an https URL".into(),
        ),
        (
            "model_id too long",
            json!({"type": "model_select", "model_id": "m".repeat(101)}),
            "model_id",
            "must be at most 100 bytes, got 101".into(),
        ),
        (
            "metadata value too long",
            json!({"type": "ping", "metadata": {"k": "v".repeat(1001)}}),
            "metadata.k",
            "must be at most 1000 bytes, got 1001".into(),
        ),
        (
            "metadata too many keys",
            json!({"type": "ping", "metadata": (0..33).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
            "metadata",
            "at most 32 entries, got 33".into(),
        ),
        (
            "metadata key too long",
            json!({"type": "ping", "metadata": {"k".repeat(65): "v"}}),
            "metadata",
            "keys must be 1 to 64 bytes, got 65".into(),
        ),
        (
            "metadata empty key",
            json!({"type": "ping", "metadata": {"": "v"}}),
            "metadata",
            "keys must be 1 to 64 bytes, got 0".into(),
        ),
        (
            "content wrong JSON type",
            json!({"type": "user_message", "content": 42}),
            "content",
            "invalid type".into(),
        ),
        (
            "metadata value wrong JSON type",
            json!({"type": "resume", "session_id": "s", "metadata": {"last_seq": 3}}),
            "metadata.last_seq",
            "invalid type".into(),
        ),
        (
            "type wrong JSON type",
            json!({"type": 7}),
            "type",
            "invalid type".into(),
        ),
    ]
}

#[test]
fn production_issue_07_validation_rules() {
    for (name, frame, field, needle) in rule_cases() {
        let err = match decode(frame) {
            Ok(m) => panic!("{name}: accepted {m:?}"),
            Err(e) => e,
        };
        assert_eq!(err.field(), Some(field), "{name}: {err}");
        let text = err.to_string();
        assert!(text.starts_with(&format!("{field}: ")), "{name}: {text}");
        assert!(text.contains(&needle), "{name}: {text:?} lacks {needle:?}");
        let frame = err.to_frame();
        let payload = frame
            .error
            .as_ref()
            .map(|e| (e.code, e.recoverable, e.message.clone()));
        assert_eq!(
            payload,
            Some((ErrorCode::InvalidFormat, true, text)),
            "{name}"
        );
    }
}

#[test]
fn limits_are_inclusive() {
    let ok = [
        json!({"type": "ping", "session_id": "s".repeat(128)}),
        json!({"type": "user_message", "content": "c".repeat(10_000)}),
        json!({"type": "file_upload", "file_id": "f".repeat(255), "file_url": https(2048)}),
        json!({"type": "model_select", "model_id": "m".repeat(100)}),
        json!({"type": "ping", "metadata": {"k".repeat(64): "v".repeat(1000)}}),
        json!({"type": "ping", "metadata": (0..32).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
        json!({"type": "ping", "timestamp": (now() + Duration::seconds(60)).to_rfc3339()}),
    ];
    for frame in ok {
        let text = frame.to_string();
        assert!(
            decode(frame).is_ok(),
            "refused {}",
            &text[..text.len().min(80)]
        );
    }
}

#[test]
fn every_client_type_is_accepted_with_its_required_fields() {
    let frames = [
        json!({"type": "user_message", "content": "hello"}),
        json!({"type": "model_select", "model_id": "gpt"}),
        json!({"type": "help_request"}),
        json!({"type": "file_upload", "file_id": "f1", "file_url": "https://cdn.example.com/f1.png"}),
        json!({"type": "voice_message", "file_id": "v1", "file_url": "https://cdn.example.com/v1.ogg"}),
        json!({"type": "typing_indicator"}),
        json!({"type": "ping"}),
        json!({"type": "resume", "session_id": "0123456789abcdef0123456789abcdef", "metadata": {"last_seq": "17"}}),
        json!({"type": "stop", "session_id": "0123456789abcdef0123456789abcdef"}),
        json!({"type": "user_message", "content": "from admin", "sender": "admin", "session_id": "s1"}),
    ];
    for frame in frames {
        let text = frame.to_string();
        if let Err(e) = decode(frame) {
            panic!("refused {text}: {e}");
        }
    }
}

#[test]
fn server_only_types_are_refused_from_clients() {
    for kind in MessageType::ALL.into_iter().filter(|t| !t.is_client_type()) {
        let err = decode(json!({"type": kind.as_str(), "content": "x"}));
        assert_eq!(
            err.as_ref().err().and_then(|e| e.field()),
            Some("type"),
            "{kind}"
        );
    }
}

#[test]
fn defaults_fill_timestamp_and_sender() {
    let msg = decode(json!({"type": "user_message", "content": "hi"})).unwrap();
    assert_eq!(msg.timestamp, now());
    assert_eq!(msg.sender, Sender::User);
    let msg = decode(json!({"type": "ping", "timestamp": "", "sender": ""})).unwrap();
    assert_eq!((msg.timestamp, msg.sender), (now(), Sender::User));
    let msg = decode(json!({"type": "ping", "timestamp": "2026-11-27T21:00:00+01:00"})).unwrap();
    assert_eq!(msg.timestamp, now() - Duration::hours(2));
}

#[test]
fn nul_bytes_are_stripped_everywhere() {
    let msg = decode(json!({
        "type": "user_\u{0}message",
        "content": "he\u{0}llo\u{0}",
        "session_id": "\u{0}abc",
        "metadata": {"k\u{0}": "v\u{0}"},
    }))
    .unwrap();
    assert_eq!(msg.kind, MessageType::UserMessage);
    assert_eq!(msg.content.as_deref(), Some("hello"));
    assert_eq!(msg.session_id.as_deref(), Some("abc"));
    assert_eq!(msg.metadata.get("k").map(String::as_str), Some("v"));
    assert!(!msg.to_json().contains("\\u0000"));
}

#[test]
fn whitespace_is_trimmed_and_empty_optionals_become_absent() {
    let msg =
        decode(json!({"type": " ping ", "content": "  hi  ", "session_id": "  ", "model_id": ""}))
            .unwrap();
    assert_eq!(msg.content.as_deref(), Some("hi"));
    assert_eq!((msg.session_id, msg.model_id), (None, None));
}

#[test]
fn script_content_is_kept_verbatim_not_escaped() {
    let payload = "<script>alert(\"x\")</script> & <b>bold</b>";
    let msg = decode(json!({"type": "user_message", "content": payload})).unwrap();
    assert_eq!(msg.content.as_deref(), Some(payload));
    let back: Value = serde_json::from_str(&msg.to_json()).unwrap();
    assert_eq!(back["content"], payload);
}

#[test]
fn client_cannot_set_server_only_fields() {
    let msg = decode(json!({
        "type": "user_message", "content": "hi", "user_id": "someone-else",
        "models": [{"id": "x", "name": "y"}],
        "error": {"code": "INTERNAL_ERROR", "message": "m", "recoverable": false},
    }))
    .unwrap();
    assert_eq!((msg.user_id, msg.models, msg.error), (None, None, None));
}

#[test]
fn bad_json_is_malformed_without_a_field() {
    for text in [
        "",
        "not json",
        "{",
        "[1,2]",
        "\"user_message\"",
        "42",
        "null",
        "{\"type\":\"ping\"} trailing",
        "{\"type\":\"ping\",\"type\":\"ping\"}",
    ] {
        let err = decode_client_frame(text, now()).err();
        assert!(
            matches!(err, Some(ProtocolError::Malformed { .. })),
            "{text:?} gave {err:?}"
        );
        assert_eq!(err.map(|e| e.code()), Some(ErrorCode::InvalidFormat));
    }
}

#[test]
fn unknown_fields_are_ignored_for_legacy_clients() {
    let msg =
        decode(json!({"type": "ping", "client_version": "1.2", "extra": {"a": [1]}})).unwrap();
    assert_eq!(msg.kind, MessageType::Ping);
}

#[test]
fn long_unknown_type_is_truncated_in_the_error() {
    let err = decode(json!({"type": "x".repeat(5000)})).unwrap_err();
    assert!(err.to_string().len() < 200, "{}", err.to_string().len());
}

#[test]
fn sanitize_and_validate_work_on_a_built_message() {
    let mut msg = Message::new(MessageType::UserMessage, Sender::User, now());
    msg.content = Some(" \u{0}<i>hi</i>\u{0} ".to_owned());
    msg.metadata.insert(" k ".to_owned(), " v\u{0} ".to_owned());
    sanitize(&mut msg);
    assert_eq!(msg.content.as_deref(), Some("<i>hi</i>"));
    assert_eq!(msg.metadata.get("k").map(String::as_str), Some("v"));
    let once = msg.clone();
    sanitize(&mut msg);
    assert_eq!(msg, once, "sanitize is idempotent");
    assert_eq!(validate(&msg, now()), Ok(()));
    assert_eq!(sanitize_text("\u{0} a b \u{0}"), "a b");
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("user_message".into())),
        Just(Value::String("resume".into())),
        Just(Value::String("https://x.example/a".into())),
        Just(Value::String("9999-12-31T23:59:59Z".into())),
        Just(Value::String("admin".into())),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: [&str; 13] = [
    "type",
    "session_id",
    "content",
    "file_id",
    "file_url",
    "model_id",
    "models",
    "timestamp",
    "sender",
    "metadata",
    "user_id",
    "error",
    "other",
];

fn frame_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(FIELDS.to_vec()), json_value()), 0..10).prop_map(
        |pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
    )
}

fn any_message() -> impl Strategy<Value = Message> {
    let opt = || proptest::option::of(".{0,30}");
    (
        prop::sample::select(MessageType::ALL.to_vec()),
        prop::sample::select(vec![
            Sender::User,
            Sender::Ai,
            Sender::Admin,
            Sender::System,
        ]),
        (opt(), opt(), opt(), opt(), opt(), opt()),
        -62_000_000_000i64..250_000_000_000i64,
        0u32..1_000_000_000,
        prop::collection::btree_map(".{0,10}", ".{0,20}", 0..4),
        proptest::option::of(prop::collection::vec((".{0,10}", ".{0,10}"), 0..3)),
        proptest::option::of((
            prop::sample::select(vec![
                ErrorCode::InvalidFormat,
                ErrorCode::LlmTimeout,
                ErrorCode::SessionEnded,
            ]),
            ".{0,20}",
            any::<bool>(),
            proptest::option::of(any::<u64>()),
        )),
    )
        .prop_map(
            |(
                kind,
                sender,
                (sid, content, fid, furl, mid, uid),
                secs,
                nanos,
                metadata,
                models,
                error,
            )| {
                let ts = DateTime::from_timestamp(secs, nanos).unwrap_or_default();
                let mut m = Message::new(kind, sender, ts);
                m.session_id = sid;
                m.content = content;
                m.file_id = fid;
                m.file_url = furl;
                m.model_id = mid;
                m.user_id = uid;
                m.metadata = metadata;
                m.models = models.map(|v| {
                    v.into_iter()
                        .map(|(id, name)| chat_protocol::ModelInfo { id, name })
                        .collect()
                });
                m.error = error.map(|(code, message, recoverable, retry_after)| {
                    chat_protocol::ErrorPayload {
                        code,
                        message,
                        recoverable,
                        retry_after,
                    }
                });
                m
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn message_json_round_trips(msg in any_message()) {
        let text = msg.to_json();
        let back: Message = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = decode_client_frame(&text, now());
    }

    #[test]
    fn decode_never_panics_on_arbitrary_objects(frame in frame_object()) {
        let result = decode_client_frame(&frame.to_string(), now());
        if let Ok(msg) = result {
            // Anything accepted is a valid, sanitized client frame.
            prop_assert!(msg.kind.is_client_type());
            prop_assert_eq!(validate(&msg, now()), Ok(()));
            let mut again = msg.clone();
            sanitize(&mut again);
            prop_assert_eq!(again, msg);
        }
    }

    #[test]
    fn sanitize_and_validate_never_panic(mut msg in any_message(), offset in any::<i64>()) {
        sanitize(&mut msg);
        prop_assert!(msg.content.as_deref().is_none_or(|c| !c.contains('\0')));
        let reference = DateTime::from_timestamp(offset.rem_euclid(250_000_000_000), 0).unwrap_or_default();
        let _ = validate(&msg, reference);
        let _ = validate(&msg, DateTime::<Utc>::MAX_UTC);
        let _ = validate(&msg, DateTime::<Utc>::MIN_UTC);
    }
}

#[test]
fn file_urls_are_https_or_local_http() {
    let now = chrono::Utc::now();
    for ok in [
        "https://cdn.example.org/f/1",
        "http://127.0.0.1:8080/chatbox/uploads/ab",
        "http://localhost/x",
        "http://[::1]:9/x",
    ] {
        let frame =
            serde_json::json!({"type": "file_upload", "file_id": "f", "file_url": ok}).to_string();
        assert!(
            chat_protocol::decode_client_frame(&frame, now).is_ok(),
            "{ok}"
        );
    }
    for bad in [
        "http://example.org/x",
        "http://10.0.0.1/x",
        "ftp://localhost/x",
        "javascript:alert(1)",
    ] {
        let frame =
            serde_json::json!({"type": "file_upload", "file_id": "f", "file_url": bad}).to_string();
        let err = chat_protocol::decode_client_frame(&frame, now).unwrap_err();
        assert_eq!(err.field(), Some("file_url"), "{bad}");
    }
}
