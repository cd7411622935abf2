//! Every validation rule, each reporting the field it concerns. Rules never stop at
//! the first problem: the caller gets the complete list.

use std::collections::HashSet;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::ConfigError;
use crate::load::decode_key;
use crate::net;
use crate::settings::*;

/// Words that make a JWT secret guessable, matched case-insensitively anywhere in it.
pub const WEAK_WORDS: &[&str] = &[
    "secret",
    "test",
    "password",
    "admin",
    "changeme",
    "default",
    "example",
    "demo",
    "12345",
    "placeholder",
];

/// Markers of a template value that was never filled in, matched case-insensitively.
pub const PLACEHOLDER_MARKERS: &[&str] = &[
    "replace_with",
    "placeholder",
    "change-me",
    "change_me",
    "your-",
];

/// Shortest accepted JWT secret, in bytes (256 bits for HS256).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Smallest accepted `storage.embedded_cache_size`: catches a value meant as MiB.
pub const MIN_EMBEDDED_CACHE: usize = 1024 * 1024;

/// Largest accepted `storage.embedded_writer_nice`: the lowest nice value is 19.
pub const MAX_WRITER_NICE: u8 = 19;

/// Largest accepted `websocket.max_message_size` (64 MiB); larger frames would let one
/// client pin that much memory per connection.
pub const MAX_FRAME_LIMIT: usize = 64 * 1024 * 1024;

/// True when `value` contains a template placeholder marker.
pub fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    PLACEHOLDER_MARKERS.iter().any(|m| lower.contains(m))
}

/// Why a JWT secret is unacceptable, if it is.
pub fn jwt_secret_problem(secret: &str) -> Option<String> {
    if is_placeholder(secret) {
        return Some("is a placeholder value; generate a real secret".to_owned());
    }
    if secret.len() < MIN_JWT_SECRET_BYTES {
        return Some(format!(
            "must be at least {MIN_JWT_SECRET_BYTES} bytes, got {}",
            secret.len()
        ));
    }
    let lower = secret.to_ascii_lowercase();
    if let Some(word) = WEAK_WORDS.iter().find(|w| lower.contains(*w)) {
        return Some(format!(
            "contains the weak word {word:?}; use a random value"
        ));
    }
    let distinct: HashSet<char> = secret.chars().collect();
    if distinct.len() < 8 {
        return Some("has too little variety to be random; use a random value".to_owned());
    }
    None
}

pub(crate) fn validate(s: &Settings, errors: &mut Vec<ConfigError>) {
    let mut err = |field: &str, message: String| errors.push(ConfigError::new(field, message));
    let production = s.mode == Mode::Production;

    // --- server -----------------------------------------------------------------
    if !(0..=65535).contains(&s.server.port) {
        err(
            "server.port",
            format!("must be between 0 and 65535, got {}", s.server.port),
        );
    }
    let prefix = &s.server.path_prefix;
    if !prefix.starts_with('/') {
        err(
            "server.path_prefix",
            format!("must start with '/', got {prefix:?}"),
        );
    } else if prefix.len() > 1 && prefix.ends_with('/') {
        err(
            "server.path_prefix",
            format!("must not end with '/', got {prefix:?}"),
        );
    }
    if prefix
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '?' | '#' | '{' | '}' | '*'))
    {
        err(
            "server.path_prefix",
            format!("must be a plain path, got {prefix:?}"),
        );
    }
    positive(
        &mut err,
        "server.shutdown_timeout",
        s.server.shutdown_timeout,
    );
    positive(&mut err, "server.request_timeout", s.server.request_timeout);
    if let Some(url) = &s.server.public_url {
        if url::Url::parse(url).is_err() {
            err("server.public_url", format!("invalid URL {url:?}"));
        }
    }

    // --- origins ----------------------------------------------------------------
    if production && s.server.allowed_origins.is_empty() {
        err(
            "server.allowed_origins",
            "must list the allowed origins in production mode (an empty list is refused, \
             never 'allow all')"
                .to_owned(),
        );
    }
    check_origins(
        &mut err,
        "server.allowed_origins",
        &s.server.allowed_origins,
        production,
    );
    check_origins(
        &mut err,
        "server.cors_allowed_origins",
        &s.server.cors_allowed_origins,
        production,
    );

    // --- auth -------------------------------------------------------------------
    match &s.auth.jwt_secret {
        Some(secret) => {
            if let Some(problem) = jwt_secret_problem(secret.expose_secret()) {
                err("auth.jwt_secret", format!("JWT secret {problem}"));
            }
        }
        None if production => err(
            "auth.jwt_secret",
            "JWT secret is required in production mode (set JWT_SECRET)".to_owned(),
        ),
        None => {}
    }
    if s.auth.algorithms.is_empty() {
        err(
            "auth.algorithms",
            "must list at least one of HS256, HS384, HS512".to_owned(),
        );
    }

    // --- encryption ---------------------------------------------------------------
    let enc = &s.encryption;
    match &enc.key {
        Some(key) => check_key(&mut err, "encryption.key", key),
        None if production => err(
            "encryption.key",
            "an encryption key is required in production mode (set ENCRYPTION_KEY)".to_owned(),
        ),
        None => {}
    }
    if enc.key.is_none() && !enc.previous_keys.is_empty() {
        err(
            "encryption.key",
            "previous_keys are set but no current key: values could be read but not written"
                .to_owned(),
        );
    }
    let mut ids = HashSet::new();
    check_key_id(&mut err, "encryption.key_id", &enc.key_id);
    ids.insert(enc.key_id.clone());
    for (i, prev) in enc.previous_keys.iter().enumerate() {
        let field = format!("encryption.previous_keys[{i}]");
        check_key_id(&mut err, &format!("{field}.id"), &prev.id);
        if !ids.insert(prev.id.clone()) {
            err(
                &format!("{field}.id"),
                format!("duplicate key id {:?}", prev.id),
            );
        }
        check_key(&mut err, &format!("{field}.key"), &prev.key);
    }

    // --- storage ----------------------------------------------------------------
    let st = &s.storage;
    if production && st.backend != StorageBackend::Mongodb {
        err(
            "storage.backend",
            "production mode requires the mongodb backend (set MONGO_URI)".to_owned(),
        );
    }
    if st.backend == StorageBackend::Mongodb {
        match &st.mongodb.uri {
            None => err(
                "storage.mongodb.uri",
                "is required for the mongodb backend (set MONGO_URI)".to_owned(),
            ),
            Some(uri) => {
                let uri = uri.expose_secret();
                if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
                    err(
                        "storage.mongodb.uri",
                        "must start with mongodb:// or mongodb+srv://".to_owned(),
                    );
                }
                if is_placeholder(uri) {
                    err("storage.mongodb.uri", "is a placeholder value".to_owned());
                }
            }
        }
    }
    if st.backend == StorageBackend::Embedded && st.embedded_path.as_os_str().is_empty() {
        err("storage.embedded_path", "must not be empty".to_owned());
    }
    if st.embedded_cache_size < MIN_EMBEDDED_CACHE {
        err(
            "storage.embedded_cache_size",
            format!(
                "must be at least {MIN_EMBEDDED_CACHE} bytes (1 MiB), got {}",
                st.embedded_cache_size
            ),
        );
    }
    if st.embedded_writer_nice > MAX_WRITER_NICE {
        err(
            "storage.embedded_writer_nice",
            format!(
                "must be from 0 to {MAX_WRITER_NICE} (nice steps below the server), got {}",
                st.embedded_writer_nice
            ),
        );
    }
    not_empty(&mut err, "storage.mongodb.database", &st.mongodb.database);
    not_empty(
        &mut err,
        "storage.mongodb.collection",
        &st.mongodb.collection,
    );
    positive(
        &mut err,
        "storage.mongodb.connect_timeout",
        st.mongodb.connect_timeout,
    );
    positive(
        &mut err,
        "storage.mongodb.operation_timeout",
        st.mongodb.operation_timeout,
    );
    if !(1..=10).contains(&st.retry.max_attempts) {
        err(
            "storage.retry.max_attempts",
            format!("must be between 1 and 10, got {}", st.retry.max_attempts),
        );
    }
    positive(
        &mut err,
        "storage.retry.initial_backoff",
        st.retry.initial_backoff,
    );
    if st.retry.max_backoff < st.retry.initial_backoff {
        err(
            "storage.retry.max_backoff",
            "must not be shorter than initial_backoff".to_owned(),
        );
    }
    if st.write_queue_capacity == 0 {
        err(
            "storage.write_queue_capacity",
            "must be greater than 0".to_owned(),
        );
    }

    // --- llm --------------------------------------------------------------------
    let llm = &s.llm;
    if llm.providers.is_empty() {
        err(
            "llm.providers",
            "at least one provider is required in production mode".to_owned(),
        );
    }
    let mut provider_ids = HashSet::new();
    for (i, p) in llm.providers.iter().enumerate() {
        let field = format!("llm.providers[{i}]");
        if p.id.trim().is_empty() {
            err(&format!("{field}.id"), "must not be empty".to_owned());
        } else if p.id.len() > 100 {
            err(
                &format!("{field}.id"),
                "must be at most 100 bytes".to_owned(),
            );
        } else if !provider_ids.insert(p.id.as_str()) {
            err(
                &format!("{field}.id"),
                format!("duplicate provider id {:?}", p.id),
            );
        }
        not_empty(&mut err, &format!("{field}.name"), &p.name);
        if p.kind == ProviderKind::Echo {
            if production {
                err(
                    &format!("{field}.type"),
                    "the echo development model is not allowed in production mode".to_owned(),
                );
            }
            continue;
        }
        if let Err(problem) = net::validate_endpoint(&p.endpoint) {
            err(&format!("{field}.endpoint"), problem);
        }
        if matches!(p.kind, ProviderKind::Openai | ProviderKind::Anthropic) {
            not_empty(&mut err, &format!("{field}.model"), &p.model);
        }
        match &p.api_key {
            Some(key) if is_placeholder(key.expose_secret()) => err(
                &format!("{field}.api_key"),
                "is a placeholder value".to_owned(),
            ),
            Some(key) if key.expose_secret().trim().is_empty() => {
                err(&format!("{field}.api_key"), "must not be empty".to_owned())
            }
            None if matches!(p.kind, ProviderKind::Anthropic | ProviderKind::Dify) => err(
                &format!("{field}.api_key"),
                format!(
                    "is required for this provider type (or set LLM_PROVIDER_{}_API_KEY)",
                    i + 1
                ),
            ),
            _ => {}
        }
        if p.max_tokens == Some(0) {
            err(
                &format!("{field}.max_tokens"),
                "must be greater than 0".to_owned(),
            );
        }
    }
    if let Some(default) = &llm.default_provider {
        if !provider_ids.contains(default.as_str()) {
            err(
                "llm.default_provider",
                format!("{default:?} is not the id of a configured provider"),
            );
        }
    }
    for (i, id) in llm.fallback.iter().enumerate() {
        if !provider_ids.contains(id.as_str()) {
            err(
                &format!("llm.fallback[{i}]"),
                format!("{id:?} is not the id of a configured provider"),
            );
        }
    }
    positive(&mut err, "llm.first_token_timeout", llm.first_token_timeout);
    positive(&mut err, "llm.idle_timeout", llm.idle_timeout);
    positive(&mut err, "llm.total_timeout", llm.total_timeout);
    if llm.first_token_timeout > llm.total_timeout {
        err(
            "llm.first_token_timeout",
            "must not exceed llm.total_timeout".to_owned(),
        );
    }
    if llm.idle_timeout > llm.total_timeout {
        err(
            "llm.idle_timeout",
            "must not exceed llm.total_timeout".to_owned(),
        );
    }
    if llm.history_max_messages == 0 {
        err(
            "llm.history_max_messages",
            "must be greater than 0".to_owned(),
        );
    }
    if llm.history_max_chars == 0 {
        err("llm.history_max_chars", "must be greater than 0".to_owned());
    }
    if let Some(url) = &s.notifications.help_webhook_url {
        if let Err(problem) = net::validate_endpoint(url) {
            err("notifications.help_webhook_url", problem);
        }
    }

    // --- rate limits ----------------------------------------------------------------
    let rl = &s.rate_limits;
    for (field, v) in [
        (
            "rate_limits.user_messages_per_minute",
            rl.user_messages_per_minute,
        ),
        (
            "rate_limits.admin_requests_per_minute",
            rl.admin_requests_per_minute,
        ),
        (
            "rate_limits.public_requests_per_minute",
            rl.public_requests_per_minute,
        ),
    ] {
        if v == 0 {
            err(field, "must be greater than 0".to_owned());
        }
    }
    if rl.max_tracked_keys == 0 {
        err(
            "rate_limits.max_tracked_keys",
            "must be greater than 0".to_owned(),
        );
    }
    positive(
        &mut err,
        "rate_limits.cleanup_interval",
        rl.cleanup_interval,
    );

    // --- websocket --------------------------------------------------------------------
    let ws = &s.websocket;
    if !(1024..=MAX_FRAME_LIMIT).contains(&ws.max_message_size) {
        err(
            "websocket.max_message_size",
            format!(
                "must be between 1024 and {MAX_FRAME_LIMIT} bytes, got {}",
                ws.max_message_size
            ),
        );
    }
    positive(&mut err, "websocket.ping_interval", ws.ping_interval);
    positive(&mut err, "websocket.pong_timeout", ws.pong_timeout);
    if ws.pong_timeout <= ws.ping_interval {
        err(
            "websocket.pong_timeout",
            "must be longer than websocket.ping_interval, or every connection would time out"
                .to_owned(),
        );
    }
    if ws.send_queue_capacity == 0 {
        err(
            "websocket.send_queue_capacity",
            "must be greater than 0".to_owned(),
        );
    }
    if ws.max_connections_per_user == 0 {
        err(
            "websocket.max_connections_per_user",
            "must be greater than 0".to_owned(),
        );
    }

    // --- sessions -----------------------------------------------------------------------
    positive(&mut err, "sessions.ttl", s.sessions.ttl);
    positive(&mut err, "sessions.idle_timeout", s.sessions.idle_timeout);
    positive(
        &mut err,
        "sessions.sweep_interval",
        s.sessions.sweep_interval,
    );
    if s.sessions.replay_buffer_frames == 0 {
        err(
            "sessions.replay_buffer_frames",
            "must be greater than 0".to_owned(),
        );
    }
    if s.sessions.max_messages_in_memory == 0 {
        err(
            "sessions.max_messages_in_memory",
            "must be greater than 0".to_owned(),
        );
    }
    positive(&mut err, "sessions.release_grace", s.sessions.release_grace);

    // --- uploads ------------------------------------------------------------------------
    if s.uploads.max_file_size == 0 {
        err("uploads.max_file_size", "must be greater than 0".to_owned());
    }
    for (i, mime) in s.uploads.allowed_mime_types.iter().enumerate() {
        if !mime.contains('/') {
            err(
                &format!("uploads.allowed_mime_types[{i}]"),
                format!("{mime:?} is not a MIME type"),
            );
        }
    }

    // --- logging --------------------------------------------------------------------------
    not_empty(&mut err, "logging.level", &s.logging.level);
}

fn positive(err: &mut impl FnMut(&str, String), field: &str, d: Duration) {
    if d.is_zero() {
        err(field, "must be greater than 0".to_owned());
    }
}

fn not_empty(err: &mut impl FnMut(&str, String), field: &str, v: &str) {
    if v.trim().is_empty() {
        err(field, "must not be empty".to_owned());
    }
}

fn check_key(err: &mut impl FnMut(&str, String), field: &str, key: &SecretString) {
    if is_placeholder(key.expose_secret()) {
        err(
            field,
            "is a placeholder value; generate a real key".to_owned(),
        );
        return;
    }
    if let Err(problem) = decode_key(key) {
        err(field, problem);
    }
}

fn check_key_id(err: &mut impl FnMut(&str, String), field: &str, id: &str) {
    let ok = !id.is_empty()
        && id.len() <= 16
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        err(
            field,
            format!("key id must be 1-16 characters of [A-Za-z0-9_-], got {id:?}"),
        );
    }
}

fn check_origins(
    err: &mut impl FnMut(&str, String),
    field: &str,
    origins: &[String],
    production: bool,
) {
    for (i, origin) in origins.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if is_placeholder(origin) {
            err(&f, format!("{origin:?} is a placeholder value"));
            continue;
        }
        if origin == "*" {
            err(
                &f,
                "'*' is not accepted: list the origins explicitly".to_owned(),
            );
            continue;
        }
        match net::parse_origin(origin) {
            Err(problem) => err(&f, problem),
            Ok(url) => {
                let loopback = url.host().is_some_and(|h| net::is_loopback_host(&h));
                if !production && !loopback {
                    err(
                        &f,
                        format!(
                            "{origin:?}: development mode allows loopback origins only \
                             (set mode = \"production\" to serve other origins)"
                        ),
                    );
                }
            }
        }
    }
}
