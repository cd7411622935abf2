//! Config validation: every rule has a case that names its field (READINESS #17, #19).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use chat_config::{Config, ConfigErrors, Mode, StorageBackend};
use secrecy::ExposeSecret;

const STRONG: &str = "q8Vn3xR7tK2mW9pL4zY6bH1cJ5fD0gSa";
const KEY32: &str = "0123456789abcdefghijklmnopqrstuv";

fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
    pairs.iter().copied().collect()
}

fn load(toml: &str) -> Result<Config, ConfigErrors> {
    Config::from_toml_str(toml, &env(&[]))
}

/// A complete, valid production configuration to break one rule at a time.
fn production_toml() -> String {
    format!(
        r#"
mode = "production"
[server]
allowed_origins = ["https://chat.example.org"]
[auth]
jwt_secret = "{STRONG}"
[encryption]
key = "{KEY32}"
[storage]
backend = "mongodb"
[storage.mongodb]
uri = "mongodb://db.internal:27017"
[[llm.providers]]
id = "gpt"
name = "GPT"
type = "openai"
endpoint = "https://api.openai.com/v1"
api_key = "sk-live-abcdefghijklmnop"
model = "gpt-4o-mini"
"#
    )
}

fn expect_error(toml: &str, field: &str, needle: &str) {
    let errors = load(toml).expect_err(&format!("expected an error for {field}"));
    let hit = errors
        .iter()
        .find(|e| e.field.starts_with(field) && e.message.contains(needle));
    assert!(
        hit.is_some(),
        "expected an error on {field} containing {needle:?}, got:\n{errors}"
    );
}

#[test]
fn empty_config_is_a_valid_development_config() {
    let config = load("").expect("defaults are valid");
    assert_eq!(config.mode, Mode::Development);
    assert_eq!(config.storage.backend, StorageBackend::Embedded);
    assert_eq!(config.server.port, 8080);
    assert_eq!(config.server.path_prefix, "/chatbox");
    assert!(config.jwt_secret_generated());
    assert!(config.jwt_secret().expose_secret().len() >= 32);
    assert_eq!(config.llm.providers.len(), 1, "echo provider added");
    assert_eq!(config.default_provider_id(), Some("echo"));
    assert_eq!(config.route("/healthz"), "/chatbox/healthz");
}

#[test]
fn example_config_passes_validation() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.example.toml");
    let config = Config::load(Some(std::path::Path::new(path)), &env(&[]))
        .unwrap_or_else(|e| panic!("config.example.toml is invalid:\n{e}"));
    assert_eq!(config.mode, Mode::Development);
}

#[test]
fn complete_production_config_is_valid() {
    let config = load(&production_toml()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.mode, Mode::Production);
    assert!(config.require_exp());
    assert!(!config.jwt_secret_generated());
    assert_eq!(config.encryption_keys().len(), 1);
}

#[test]
fn production_issue_19_validation_called() {
    // Every path to a Config validates: a bad file, a bad TOML type, a bad env value.
    assert!(load("[server]\nport = 70000\n").is_err());
    assert!(load("[server]\nport = \"eighty\"\n").is_err());
    assert!(load("this is not toml").is_err());
    assert!(Config::from_toml_str("", &env(&[("MAX_MESSAGE_SIZE", "huge")])).is_err());
    assert!(Config::from_toml_str("", &env(&[("JWT_SECRET", "test123")])).is_err());
    let missing = Config::load(
        Some(std::path::Path::new("/nonexistent/chatbox.toml")),
        &env(&[]),
    );
    assert!(missing.is_err());
}

#[test]
fn every_problem_is_reported_at_once() {
    let errors = load(
        r#"
mode = "production"
[server]
port = 99999
path_prefix = "chatbox"
[auth]
jwt_secret = "short"
[websocket]
max_message_size = 0
"#,
    )
    .expect_err("invalid");
    for field in [
        "server.port",
        "server.path_prefix",
        "auth.jwt_secret",
        "websocket.max_message_size",
        "server.allowed_origins",
        "encryption.key",
        "storage.backend",
        "llm.providers",
    ] {
        assert!(errors.mentions(field), "missing {field} in:\n{errors}");
    }
}

#[test]
fn type_errors_in_several_sections_are_all_reported() {
    let errors = load("[server]\nport = \"x\"\n[websocket]\nsend_queue_capacity = \"y\"\n")
        .expect_err("invalid");
    assert!(errors.mentions("server.port"), "{errors}");
    assert!(errors.mentions("websocket.send_queue_capacity"), "{errors}");
}

#[test]
fn production_issue_19_validation_coverage() {
    let prod = production_toml();
    // (toml to append or replace, field, message fragment)
    let cases: Vec<(String, &str, &str)> = vec![
        ("[server]\nport = 70000\n".into(), "server.port", "between 0 and 65535"),
        ("[server]\nport = -1\n".into(), "server.port", "between 0 and 65535"),
        ("[server]\npath_prefix = \"chat\"\n".into(), "server.path_prefix", "start with '/'"),
        ("[server]\npath_prefix = \"/chat/\"\n".into(), "server.path_prefix", "end with '/'"),
        ("[server]\npath_prefix = \"/ch at\"\n".into(), "server.path_prefix", "plain path"),
        ("[server]\nshutdown_timeout = \"0s\"\n".into(), "server.shutdown_timeout", "greater than 0"),
        ("[server]\nallowed_origins = [\"https://example.org\"]\n".into(), "server.allowed_origins[0]", "loopback origins only"),
        ("[server]\nallowed_origins = [\"*\"]\n".into(), "server.allowed_origins[0]", "not accepted"),
        ("[server]\nallowed_origins = [\"http://localhost:3000/app\"]\n".into(), "server.allowed_origins[0]", "without a path"),
        ("[server]\ncors_allowed_origins = [\"https://YOUR-DOMAIN.com\"]\n".into(), "server.cors_allowed_origins[0]", "placeholder"),
        ("[server]\ntrusted_proxies = [\"not-a-cidr\"]\n".into(), "server.trusted_proxies", "invalid"),
        ("[server]\nmetrics_allowed_networks = [\"10.0.0.0/99\"]\n".into(), "server.metrics_allowed_networks", "invalid"),
        ("[server]\nunknown = 1\n".into(), "server", "unknown field"),
        ("nonsense = 1\n".into(), "nonsense", "unknown setting"),
        ("[auth]\njwt_secret = \"short\"\n".into(), "auth.jwt_secret", "at least 32 bytes"),
        ("[auth]\njwt_secret = \"this-is-my-secret-value-for-the-chat-app\"\n".into(), "auth.jwt_secret", "weak word"),
        ("[auth]\njwt_secret = \"REPLACE_WITH_A_LONG_RANDOM_STRING_OF_64_CHARS\"\n".into(), "auth.jwt_secret", "placeholder"),
        ("[auth]\njwt_secret = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n".into(), "auth.jwt_secret", "variety"),
        ("[auth]\nalgorithms = []\n".into(), "auth.algorithms", "at least one"),
        ("[auth]\nalgorithms = [\"none\"]\n".into(), "auth.algorithms", "unknown variant"),
        ("[auth]\nalgorithms = [\"RS256\"]\n".into(), "auth.algorithms", "unknown variant"),
        ("[encryption]\nkey = \"too-short\"\n".into(), "encryption.key", "exactly 32 bytes"),
        ("[encryption]\nkey = \"base64:!!!\"\n".into(), "encryption.key", "invalid base64"),
        ("[encryption]\nkey = \"CHANGE_ME_CHANGE_ME_CHANGE_ME_12\"\n".into(), "encryption.key", "placeholder"),
        (format!("[encryption]\nkey = \"{KEY32}\"\nkey_id = \"bad:id\"\n"), "encryption.key_id", "key id"),
        (format!("[encryption]\nkey = \"{KEY32}\"\n[[encryption.previous_keys]]\nid = \"k1\"\nkey = \"{KEY32}\"\n"), "encryption.previous_keys[0].id", "duplicate"),
        ("[storage]\nbackend = \"mongodb\"\n".into(), "storage.mongodb.uri", "required"),
        ("[storage]\nbackend = \"mongodb\"\n[storage.mongodb]\nuri = \"postgres://x\"\n".into(), "storage.mongodb.uri", "mongodb://"),
        ("[storage.mongodb]\noperation_timeout = \"0ms\"\n".into(), "storage.mongodb.operation_timeout", "greater than 0"),
        ("[storage.mongodb]\ndatabase = \"\"\n".into(), "storage.mongodb.database", "must not be empty"),
        ("[storage.retry]\nmax_attempts = 0\n".into(), "storage.retry.max_attempts", "between 1 and 10"),
        ("[storage.retry]\ninitial_backoff = \"5s\"\nmax_backoff = \"1s\"\n".into(), "storage.retry.max_backoff", "shorter"),
        ("[storage]\nwrite_queue_capacity = 0\n".into(), "storage.write_queue_capacity", "greater than 0"),
        ("[[llm.providers]]\nid = \"a\"\nname = \"A\"\ntype = \"openai\"\nendpoint = \"http://api.openai.com/v1\"\nmodel = \"m\"\n".into(), "llm.providers[0].endpoint", "plain http"),
        ("[[llm.providers]]\nid = \"a\"\nname = \"A\"\ntype = \"openai\"\nendpoint = \"ftp://10.0.0.1\"\nmodel = \"m\"\n".into(), "llm.providers[0].endpoint", "scheme"),
        ("[[llm.providers]]\nid = \"a\"\nname = \"A\"\ntype = \"openai\"\nendpoint = \"https://x.org\"\nmodel = \"\"\n".into(), "llm.providers[0].model", "must not be empty"),
        ("[[llm.providers]]\nid = \"\"\nname = \"A\"\ntype = \"openai\"\nendpoint = \"https://x.org\"\nmodel = \"m\"\n".into(), "llm.providers[0].id", "must not be empty"),
        ("[[llm.providers]]\nid = \"a\"\nname = \"\"\ntype = \"openai\"\nendpoint = \"https://x.org\"\nmodel = \"m\"\n".into(), "llm.providers[0].name", "must not be empty"),
        ("[[llm.providers]]\nid = \"a\"\nname = \"A\"\ntype = \"anthropic\"\nendpoint = \"https://x.org\"\nmodel = \"m\"\n".into(), "llm.providers[0].api_key", "required"),
        ("[[llm.providers]]\nid = \"a\"\nname = \"A\"\ntype = \"dify\"\nendpoint = \"https://x.org\"\napi_key = \"YOUR-API-KEY\"\n".into(), "llm.providers[0].api_key", "placeholder"),
        ("[[llm.providers]]\nid = \"a\"\nname = \"A\"\ntype = \"grok\"\n".into(), "llm.providers[0].type", "unknown variant"),
        ("[[llm.providers]]\nid = \"a\"\nname = \"A\"\ntype = \"echo\"\n[[llm.providers]]\nid = \"a\"\nname = \"B\"\ntype = \"echo\"\n".into(), "llm.providers[1].id", "duplicate"),
        ("[llm]\ndefault_provider = \"nope\"\n".into(), "llm.default_provider", "not the id"),
        ("[llm]\nfallback = [\"nope\"]\n".into(), "llm.fallback[0]", "not the id"),
        ("[llm]\nfirst_token_timeout = \"0s\"\n".into(), "llm.first_token_timeout", "greater than 0"),
        ("[llm]\nidle_timeout = \"10m\"\ntotal_timeout = \"1m\"\nfirst_token_timeout = \"5s\"\n".into(), "llm.idle_timeout", "must not exceed"),
        ("[llm]\nfirst_token_timeout = \"10m\"\ntotal_timeout = \"1m\"\nidle_timeout = \"5s\"\n".into(), "llm.first_token_timeout", "must not exceed"),
        ("[llm]\ntotal_timeout = \"soon\"\n".into(), "llm.total_timeout", "invalid"),
        ("[llm]\nhistory_max_messages = 0\n".into(), "llm.history_max_messages", "greater than 0"),
        ("[llm]\nhistory_max_chars = 0\n".into(), "llm.history_max_chars", "greater than 0"),
        ("[rate_limits]\nuser_messages_per_minute = 0\n".into(), "rate_limits.user_messages_per_minute", "greater than 0"),
        ("[rate_limits]\nadmin_requests_per_minute = 0\n".into(), "rate_limits.admin_requests_per_minute", "greater than 0"),
        ("[rate_limits]\npublic_requests_per_minute = 0\n".into(), "rate_limits.public_requests_per_minute", "greater than 0"),
        ("[rate_limits]\nmax_tracked_keys = 0\n".into(), "rate_limits.max_tracked_keys", "greater than 0"),
        ("[websocket]\nmax_message_size = 10\n".into(), "websocket.max_message_size", "between 1024"),
        ("[websocket]\nping_interval = \"60s\"\npong_timeout = \"30s\"\n".into(), "websocket.pong_timeout", "longer than"),
        ("[websocket]\nsend_queue_capacity = 0\n".into(), "websocket.send_queue_capacity", "greater than 0"),
        ("[websocket]\nmax_connections_per_user = 0\n".into(), "websocket.max_connections_per_user", "greater than 0"),
        ("[sessions]\nttl = \"0s\"\n".into(), "sessions.ttl", "greater than 0"),
        ("[sessions]\nidle_timeout = \"0s\"\n".into(), "sessions.idle_timeout", "greater than 0"),
        ("[sessions]\nsweep_interval = \"0s\"\n".into(), "sessions.sweep_interval", "greater than 0"),
        ("[sessions]\nreplay_buffer_frames = 0\n".into(), "sessions.replay_buffer_frames", "greater than 0"),
        ("[sessions]\nrelease_grace = \"0s\"\n".into(), "sessions.release_grace", "greater than 0"),
        ("[storage]\nembedded_cache_size = 32\n".into(), "storage.embedded_cache_size", "at least"),
        ("[storage]\nembedded_writer_nice = 20\n".into(), "storage.embedded_writer_nice", "from 0 to 19"),
        ("[uploads]\nmax_file_size = 0\n".into(), "uploads.max_file_size", "greater than 0"),
        ("[uploads]\nallowed_mime_types = [\"png\"]\n".into(), "uploads.allowed_mime_types[0]", "not a MIME type"),
        ("[notifications]\nhelp_webhook_url = \"http://hooks.example.com/x\"\n".into(), "notifications.help_webhook_url", "plain http"),
        ("mode = \"staging\"\n".into(), "mode", "unknown variant"),
    ];
    for (toml, field, needle) in &cases {
        expect_error(toml, field, needle);
    }
    // Production-only rules, each broken alone on an otherwise valid production config.
    let prod_cases: Vec<(String, &str, &str)> = vec![
        (
            prod.replace(
                "allowed_origins = [\"https://chat.example.org\"]",
                "allowed_origins = []",
            ),
            "server.allowed_origins",
            "production mode",
        ),
        (
            prod.replace(&format!("jwt_secret = \"{STRONG}\""), ""),
            "auth.jwt_secret",
            "required in production",
        ),
        (
            prod.replace(&format!("key = \"{KEY32}\""), ""),
            "encryption.key",
            "required in production",
        ),
        (
            prod.replace("backend = \"mongodb\"", "backend = \"embedded\""),
            "storage.backend",
            "requires the mongodb backend",
        ),
        (
            prod.replace("type = \"openai\"", "type = \"echo\""),
            "llm.providers[0].type",
            "not allowed in production",
        ),
    ];
    for (toml, field, needle) in &prod_cases {
        expect_error(toml, field, needle);
    }
}

#[test]
fn production_issue_17_weak_secret_acceptance() {
    for weak in [
        "test123",
        "password",
        "secret",
        "12345678",
        "short-but-random-Xy7",
        "admin-admin-admin-admin-admin-admin-admin",
        "changeme-changeme-changeme-changeme",
        "my-super-secret-key-for-jwt-tokens-2024",
        "REPLACE_WITH_STRONG_SECRET_0123456789abcdef",
        "PLACEHOLDER_PLACEHOLDER_PLACEHOLDER_PLACE",
        "CHANGE-ME-CHANGE-ME-CHANGE-ME-CHANGE-ME-00",
        "your-jwt-secret-goes-here-0123456789abcdef",
    ] {
        let result = Config::from_toml_str("", &env(&[("JWT_SECRET", weak)]));
        let errors = result.expect_err(weak);
        assert!(
            errors.mentions("auth.jwt_secret"),
            "{weak:?} must be refused naming auth.jwt_secret: {errors}"
        );
    }
    // A random 32+ byte secret is accepted, from TOML and from the environment.
    let mut random = [0u8; 32];
    rand_fill(&mut random);
    let strong = hex_string(&random);
    let config = Config::from_toml_str(
        "",
        &HashMap::from([("JWT_SECRET".to_owned(), strong.clone())]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.jwt_secret().expose_secret(), strong);
    assert!(!config.jwt_secret_generated());
}

fn rand_fill(buf: &mut [u8]) {
    // Deterministic but varied bytes are enough: the rule is about length and
    // content, and this avoids a dev-dependency on rand. Retry on a weak word.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn env_overrides_apply() {
    let config = Config::from_toml_str(
        "",
        &env(&[
            ("CHATBOX_PATH_PREFIX", "/api/chat"),
            ("MAX_MESSAGE_SIZE", "2048"),
            ("CHATBOX_PORT", "0"),
            ("ENCRYPTION_KEY", KEY32),
            ("CHATBOX_SESSION_RELEASE_GRACE", "90s"),
            ("CHATBOX_EMBEDDED_CACHE_SIZE", "8388608"),
            ("CHATBOX_EMBEDDED_WRITER_NICE", "0"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.path_prefix, "/api/chat");
    assert_eq!(config.websocket.max_message_size, 2048);
    assert_eq!(config.server.port, 0);
    assert_eq!(
        config.sessions.release_grace,
        std::time::Duration::from_secs(90)
    );
    assert_eq!(config.storage.embedded_cache_size, 8 * 1024 * 1024);
    assert_eq!(config.storage.embedded_writer_nice, 0);
    assert_eq!(config.encryption_keys()[0].1, *KEY32.as_bytes());
}

#[test]
fn mongo_uri_env_selects_mongodb_and_provider_keys_come_from_env() {
    let toml = r#"
[[llm.providers]]
id = "claude"
name = "Claude"
type = "anthropic"
endpoint = "https://api.anthropic.com"
model = "claude-sonnet"
[[llm.providers]]
id = "local-llama"
name = "Llama"
type = "openai"
endpoint = "http://127.0.0.1:11434/v1"
model = "llama3"
"#;
    let config = Config::from_toml_str(
        toml,
        &env(&[
            ("MONGO_URI", "mongodb://127.0.0.1:27017"),
            ("LLM_PROVIDER_1_API_KEY", "sk-ant-from-env"),
            ("LLM_PROVIDER_LOCAL_LLAMA_API_KEY", "by-id"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.storage.backend, StorageBackend::Mongodb);
    let keys: Vec<_> = config
        .llm
        .providers
        .iter()
        .map(|p| p.api_key.as_ref().map(|k| k.expose_secret().to_owned()))
        .collect();
    assert_eq!(
        keys,
        vec![Some("sk-ant-from-env".to_owned()), Some("by-id".to_owned())]
    );
}

#[test]
fn bad_env_values_are_reported_with_their_names() {
    let errors = Config::from_toml_str(
        "",
        &env(&[
            ("CHATBOX_MODE", "staging"),
            ("CHATBOX_PORT", "http"),
            ("MAX_MESSAGE_SIZE", "1MB"),
            ("CHATBOX_SHUTDOWN_TIMEOUT", "forever"),
            ("CHATBOX_SESSION_RELEASE_GRACE", "soon"),
            ("CHATBOX_EMBEDDED_CACHE_SIZE", "32MiB"),
            ("CHATBOX_EMBEDDED_WRITER_NICE", "-5"),
        ]),
    )
    .expect_err("invalid");
    for field in [
        "env CHATBOX_MODE",
        "env CHATBOX_PORT",
        "env MAX_MESSAGE_SIZE",
        "env CHATBOX_SHUTDOWN_TIMEOUT",
        "env CHATBOX_SESSION_RELEASE_GRACE",
        "env CHATBOX_EMBEDDED_CACHE_SIZE",
        "env CHATBOX_EMBEDDED_WRITER_NICE",
    ] {
        assert!(errors.mentions(field), "missing {field}: {errors}");
    }
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let config = Config::from_toml_str(
        "",
        &env(&[
            ("JWT_SECRET", STRONG),
            ("ENCRYPTION_KEY", KEY32),
            ("MONGO_URI", "mongodb://user:hunter2pass@db:27017"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let debug = format!("{config:?}");
    for secret in [STRONG, KEY32, "hunter2pass"] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug output");
    }
}

#[test]
fn errors_render_one_line_per_problem() {
    let errors = load("[server]\nport = 70000\npath_prefix = \"x\"\n").expect_err("invalid");
    let text = errors.to_string();
    assert!(text.contains("2 problem(s)"), "{text}");
    assert!(text.contains("server.port"), "{text}");
    assert!(text.contains("server.path_prefix"), "{text}");
}
